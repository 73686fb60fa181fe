# The daemon crashes (SIGSEGV, SIGABRT) under load, fast and exact probes: the target survives.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/kill9_common.sh"
kill9_run fast SEGV 3
kill9_run exact SEGV 3
finish
