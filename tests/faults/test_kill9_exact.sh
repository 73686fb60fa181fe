# kill -9 of the daemon FAULT_TRIALS times while 4 threads call an int3-probed function (the
# value reads memory, so it takes the exact path). Needs the SIGTRAP safety handler wired into
# the engine (issue 6); until then the target dies of SIGTRAP on the first trial.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/kill9_common.sh"
kill9_run exact KILL "$FAULT_TRIALS"
finish
