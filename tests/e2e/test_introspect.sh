# diagnosectl symbols and vars against live fixtures that the daemon has NOT attached (both
# commands only read /proc and ELF/DWARF): real rows (a function with its module, address and
# size; parameters and locals with their C types) in all four builds, --json, --at, and the
# errors: unknown function (with suggestions), binary without DWARF, no such process, usage.
source "$(dirname "$0")/lib.sh"

start_daemon

# rich never waits for input: run it under a tiny ptrace launcher that leaves it stopped right
# after exec (SIGSTOP on detach), so its image and ld.so are mapped but nothing ran yet.
start_stopped() {
	local name=$1; shift
	start_fixture "$name" python3 -c '
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = os.fork()
if pid == 0:
    libc.ptrace(0, 0, None, None)          # PTRACE_TRACEME: stop at exec
    os.execv(sys.argv[1], sys.argv[1:])
os.waitpid(pid, 0)                          # the exec SIGTRAP stop
libc.ptrace(17, pid, None, signal.SIGSTOP)  # PTRACE_DETACH, leaving it stopped
print("ready", pid, flush=True)
sys.stdin.readline()
os.kill(pid, signal.SIGKILL)
' "$@"
	local pid_var=${name}_pid
	FIXTURE_PIDS+=("${!pid_var}")
}

# A binary without DWARF, first: DWARF indexes are shared per build-id, and this copy has the
# build-id of work-O0-pie (whose index, once built below, would serve it).
cp "$DIAG_FIXTURE_DIR/work-O0-pie" "$T/work-stripped"
strip --strip-debug "$T/work-stripped"
start_fixture s "$T/work-stripped" 1 10
err=$(ctl vars --pid "$s_pid" work 2>&1); rc=$?
expect_eq "$rc" 1 "no DWARF: exit 1"
expect_contains "$err" "diagnosectl: vars: no DWARF for work-stripped" "no DWARF: message"
expect_contains "$err" '$arg1' "no DWARF: says what still works"
expect_eq "$(ctl symbols --pid "$s_pid" work | awk '$4 == "work" {print $1}')" "work-stripped" \
	"no DWARF: symbols still listed"
fixture_go s
expect_eq "$(fixture_line s)" "sum $((45 * 3 + 70))" "stripped target ran"

n=0
for build in O0-pie O0-nopie O2-pie O2-nopie; do
	n=$((n + 1))
	bin=work-$build
	start_fixture "w$n" "$DIAG_FIXTURE_DIR/$bin" 1 10
	wn=w$n; wp=${wn}_pid; w_pid=${!wp}
	out=$(ctl symbols --pid "$w_pid" 'wor*')
	expect_contains "$out" "MODULE" "$build: symbols table header"
	row=$(echo "$out" | awk '$4 == "work"')
	expect_eq "$(echo "$row" | awk '{print $1}')" "$bin" "$build: symbols: work in module $bin"
	j=$(ctl --json symbols --pid "$w_pid" 'wor*')
	expect_eq "$(echo "$j" | jget "[(s['module'], s['addr'].startswith('0x'), s['size'] > 0) for s in j['symbols'] if s['name']=='work']")" \
		"[('$bin', True, True)]" "$build: symbols --json: module, address, size"
	expect_eq "$(echo "$j" | jget "j['truncated']")" False "$build: symbols not truncated"
	addr=$(echo "$j" | jget "[s['addr'] for s in j['symbols'] if s['name']=='work'][0]")
	libc=$(ctl --json symbols --pid "$w_pid" 'getppid' | jget "[s['module'] for s in j['symbols']]")
	expect_contains "$libc" "libc.so.6" "$build: symbols lists libc functions"

	out=$(ctl vars --pid "$w_pid" work)
	for p in a b c; do
		expect_eq "$(echo "$out" | awk -v p=$p '$1 == "param" && $2 == p {print $3, $4}')" "long int" \
			"$build: vars: param $p is long int"
	done
	j=$(ctl --json vars --pid "$w_pid" work)
	expect_eq "$(echo "$j" | jget "[(v['name'], v['type'], v['param'], bool(v['location'])) for v in j['vars']]")" \
		"[('a', 'long int', True, True), ('b', 'long int', True, True), ('c', 'long int', True, True)]" \
		"$build: vars --json"
	expect_eq "$(ctl --json vars --pid "$w_pid" --at "$addr" | jget "[v['name'] for v in j['vars']]")" \
		"['a', 'b', 'c']" "$build: vars --at ADDR"
	expect_eq "$(ctl --json vars --pid "$w_pid" "$bin:work" | jget "len(j['vars'])")" 3 "$build: vars MODULE:FUNC"

	start_stopped "r$n" "$DIAG_FIXTURE_DIR/rich-$build"
	rp=r${n}_pid; r_pid=${!rp}
	expect_eq "$(ctl symbols --pid "$r_pid" handle | awk '$4 == "handle" {print $1}')" "rich-$build" \
		"$build: symbols in a process stopped at exec"
	j=$(ctl --json vars --pid "$r_pid" handle)
	expect_eq "$(echo "$j" | jget "[(v['name'], v['type']) for v in j['vars'] if v['param']]")" \
		"[('req', 'req_t *'), ('len', 'int'), ('scale', 'double'), ('name', 'const char *')]" \
		"$build: rich: parameters with C types"
	expect_contains "$(echo "$j" | jget "[(v['name'], v['type']) for v in j['vars'] if not v['param']]")" \
		"('total', 'long int')" "$build: rich: a local with its type"
	fixture_go "r$n"
	fixture_go "w$n"
	expect_eq "$(fixture_line "w$n")" "sum $((45 * 3 + 70))" "$build: the target ran unchanged"
done

# Errors. A fresh target, still waiting for "go".
start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 1 10
err=$(ctl vars --pid "$w_pid" wrok 2>&1); rc=$?
expect_eq "$rc" 1 "unknown function: exit 1"
expect_contains "$err" "no function 'wrok'" "unknown function: named"
expect_contains "$err" "did you mean" "unknown function: suggestions"
expect_contains "$err" "work" "unknown function: suggests work"


err=$(ctl symbols --pid 4194303 2>&1); rc=$?
expect_eq "$rc" 1 "symbols of a missing process: exit 1"
expect_contains "$err" "process 4194303 does not exist" "symbols of a missing process: message"
expect_contains "$(ctl symbols --pid "$w_pid" 'zz_no_such_*')" "no matching functions" "empty glob result"
err=$(ctl vars work 2>&1); rc=$?
expect_eq "$rc" 2 "vars without --pid: usage error"
expect_contains "$err" "vars: --pid is required" "vars without --pid: message"
err=$(ctl vars --pid "$w_pid" 2>&1); rc=$?
expect_eq "$rc" 2 "vars without FUNC: usage error"
err=$(ctl vars --pid "$w_pid" work --at 0x10 2>&1); rc=$?
expect_contains "$err" "not both" "vars FUNC --at ADDR: usage error"
expect_eq "$(ctl --json vars --pid "$w_pid" work --at +0 | jget "len(j['vars'])")" 3 "vars FUNC --at +OFF"
expect_eq "$(req '{"cmd":"vars","pid":1}' | jget "j['error']")" "target: required string is missing" "protocol: vars without target"
expect_eq "$(req '{"cmd":"symbols","pid":1,"glob":3}' | jget "j['error']")" "glob: must be a string" "protocol: bad glob"
expect_eq "$(req '{"cmd":"status"}' | jget "j['targets']")" "[]" "nothing was attached"
fixture_go w
expect_eq "$(fixture_line w)" "sum $((45 * 3 + 70))" "the last target ran unchanged"
finish
