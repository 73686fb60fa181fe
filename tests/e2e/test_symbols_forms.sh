# `diagnosectl symbols` understands what add-probe understands (issue 16, item 1): MODULE:GLOB,
# C++ functions by their demangled names (globs over the qualified name, with or without the
# parameters), demangled names in the output, and an unknown module named with the mapped ones.
source "$(dirname "$0")/lib.sh"

start_fixture fx "$DIAG_FIXTURE_DIR/sym5cxx-O0-pie" 1
start_daemon

ctl symbols --pid "$fx_pid" 'ns::Widget::add*' > "$T/add.out"
expect_eq "$?" 0 "symbols 'ns::Widget::add*'"
expect_eq "$(tail -n +2 "$T/add.out" | wc -l)" 3 "the three overloads of add"
expect_contains "$(cat "$T/add.out")" "ns::Widget::add(int, int)" "shown demangled, with parameters"
expect_contains "$(cat "$T/add.out")" "ns::Widget::add(double)" "every overload"

ctl symbols --pid "$fx_pid" '*Widget*get*' > "$T/get.out"
expect_contains "$(cat "$T/get.out")" "ns::Widget::get() const" "a glob over the demangled name"

ctl symbols --pid "$fx_pid" 'libc.so.6:write' > "$T/libc.out"
expect_eq "$?" 0 "symbols 'libc.so.6:write'"
expect_contains "$(cat "$T/libc.out")" "libc.so.6" "MODULE:GLOB: the module"
expect_eq "$(tail -n +2 "$T/libc.out" | awk '{print $NF}' | sort -u)" "write" "MODULE:GLOB: only that function"

ctl symbols --pid "$fx_pid" 'sym5cxx-O0-pie:handle_*' > "$T/h.out"
expect_eq "$(tail -n +2 "$T/h.out" | wc -l)" 3 "MODULE:GLOB in the executable"
ctl symbols --pid "$fx_pid" 'libc.so.6:handle_*' > "$T/none.out"
expect_eq "$(tail -n +2 "$T/none.out" | wc -l)" 0 "MODULE:GLOB looks in that module only"

ctl symbols --pid "$fx_pid" 'nosuch:f*' > /dev/null 2> "$T/err"
expect_eq "$?" 1 "an unknown module: exit 1"
expect_contains "$(cat "$T/err")" "'nosuch:f*' names no module of process $fx_pid; mapped: sym5cxx-O0-pie" \
	"an unknown module: the mapped ones"

# did you mean: a C++ function by the last parts of its name, suggested by its qualified name
ctl attach "$fx_pid" > /dev/null
ctl add-probe --pid "$fx_pid" --target 'addd' --type incr --name s1 --id s1 > /dev/null 2> "$T/err"
expect_contains "$(cat "$T/err")" "did you mean: ns::Widget::add" "a suggestion by name parts"
ctl add-probe --pid "$fx_pid" --target 'Widget::gett' --type incr --name s2 --id s2 > /dev/null 2> "$T/err"
expect_contains "$(cat "$T/err")" "did you mean: ns::Widget::get" "a suggestion for a qualified query"
fixture_go fx
finish
