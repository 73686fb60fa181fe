# kill -9 of the daemon FAULT_TRIALS times while 4 threads call a function whose probe runs
# memory-reading capture programs in the target (a string two loads away under a condition
# reading memory; NULL, freed and unmapped pointers on most calls): each death leaves the
# trampoline patched, its faults repaired by the in-target guard until a new daemon's recovery
# takes it out (capture_common.sh, kill9_common.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/capture_common.sh"
source "$(dirname "$0")/kill9_common.sh"
kill9_run capture KILL "$FAULT_TRIALS"
finish
