# The target misbehaves while probed: crashes (SIGSEGV), threads come and go (churn), forks
# and vforks in storms, execs. The daemon keeps serving; every result the target checks itself
# is right; what exits leaves the daemon's records consistent.
source "$(dirname "$0")/lib.sh"

start_daemon $NOGOV
# crash: a probed target dies of its own SIGSEGV; the daemon notices and keeps serving.
start_fixture c "$DIAG_FIXTURE_DIR/victim-O2-nopie" 2 ""
req "{\"cmd\":\"attach\",\"pid\":$c_pid}" > /dev/null
add cf work incr "\"pid\":$c_pid" > /dev/null
exact_add ce work2 "\"pid\":$c_pid" > /dev/null
fixture_go c
[ "$(wait_more ce 20)" = True ] || fail "crash: exact probe not counting"
victim_send c crash
for _ in $(seq 100); do [ "$(state_of cf "$c_pid")" = exited ] && break; sleep 0.1; done
expect_eq "$(state_of cf "$c_pid")" exited "crash: record marked exited"
expect_eq "$(serving)" True "crash: daemon serving"
figure "target crashes (SIGSEGV) while probed" 1 "n/a" 0 0

# thread churn: each call of work in a new thread (work fixture, churn mode, exact sum).
N=2000
start_fixture t "$DIAG_FIXTURE_DIR/work-O2-pie" 1 $N churn
req "{\"cmd\":\"attach\",\"pid\":$t_pid}" > /dev/null
add tf work incr "\"pid\":$t_pid" > /dev/null
fixture_go t
expect_eq "$(fixture_line t)" "sum $(python3 -c "print(sum(i*3+2+2 for i in range($N)))")" "thread churn: result unchanged"
expect_eq "$(hits_of tf)" $N "thread churn: every call counted"
figure "thread churn ($N threads)" 1 1 0 0

# fork and vfork storms: 4 threads calling the probed functions, main forking 50 children
# (each runs the probed code and checks it) or vforking 50 children that exec.
for m in fork vfork; do
	rm -f "$T/f.in" "$T/f.out"
	start_fixture f "$DIAG_FIXTURE_DIR/victim-O0-pie" 4 $m
	req "{\"cmd\":\"attach\",\"pid\":$f_pid}" > /dev/null
	add "s$m" work incr "\"pid\":$f_pid" > /dev/null
	exact_add "e$m" work2 "\"pid\":$f_pid" > /dev/null
	addr=$(first_addr "e$m" "$f_pid")
	fixture_go f
	victim_send f storm
	expect_eq "$(fixture_line f)" "stormed 50" "$m storm: 50 children"
	expect_eq "$(serving)" True "$m storm: daemon serving"
	req "{\"cmd\":\"detach\",\"pid\":$f_pid}" > /dev/null
	p=$(patched_count "$f_pid" "$addr")
	expect_eq "$p" 0 "$m storm: bytes restored at detach"
	r=$(victim_result f)
	expect_eq "$(field "$r" bad) $(field "$r" childfail)" "0 0" "$m storm: parent and children results right ($r)"
	ok=$(( $(field "$r" children) - $(field "$r" childfail) ))
	figure "$m storm (50 children, 4 threads)" 50 "$ok" 0 "$p"
done

# exec while probed: the work fixture's fork mode forks a child that execs /bin/true.
start_fixture x "$DIAG_FIXTURE_DIR/work-O0-nopie" 2 1000 fork
req "{\"cmd\":\"attach\",\"pid\":$x_pid}" > /dev/null
add xf work incr > /dev/null
fixture_go x
expect_eq "$(fixture_line x)" "sum $(python3 -c "print(sum(i*3+t*2+7 for t in range(2) for i in range(1000)))")" "exec: parent result"
fixture_line x > /dev/null # calls
expect_eq "$(fixture_line x)" "child-sum $(python3 -c "print(sum(i*3+200+7 for i in range(1000)))")" "exec: forked child's result"
expect_eq "$(fixture_line x)" "grandchild-exit 0" "exec: the exec'd grandchild ran"
expect_eq "$(fixture_line x)" "child-exit 0" "exec: child exited 0"
expect_eq "$(serving)" True "exec: daemon serving"
figure "target forks and execs while probed" 1 1 0 0
finish
