# kill -9 of the daemon FAULT_TRIALS times while 4 threads call a fast-path probed function.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/kill9_common.sh"
kill9_run fast KILL "$FAULT_TRIALS"
finish
