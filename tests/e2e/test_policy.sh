# Who may probe what (issue 16, item 6), as real non-root users: a policy file admits users and
# groups; a user probes only their own processes (the kernel's ptrace rules), only the
# instrument types a rule allows, reads no memory where a rule says so, and sees and removes
# only their own specs. Root keeps full access; every add, remove, attach and detach is audited;
# a refusal names the rule; SIGHUP re-reads the file.
source "$(dirname "$0")/lib.sh"

for u in diagu1 diagu2 diagu3; do
	id "$u" > /dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$u" || die "useradd $u"
done
getent group diaggrp > /dev/null || groupadd diaggrp || die "groupadd diaggrp"
usermod -a -G diaggrp diagu2 || die "usermod diagu2"
as() { local u=$1; shift; runuser -u "$u" -- "$@"; }

# the socket in a directory every user may reach (the policy, not the mode, decides)
chmod 0711 "$T"
mkdir -m 0755 "$T/pub"
SOCK=$T/pub/sock
cat > "$T/policy.json" <<'JSON'
{"rules": [
  {"users": ["diagu1"], "types": ["incr", "log"]},
  {"groups": ["diaggrp"], "read_memory": false}
]}
JSON

start_fixture f1 runuser -u diagu1 -- "$DIAG_FIXTURE_DIR/work-O0-pie" 1 10
start_fixture f2 runuser -u diagu2 -- "$DIAG_FIXTURE_DIR/work-O0-pie" 1 10
start_daemon --policy "$T/policy.json"
expect_contains "$(cat "$DERR")" "policy $T/policy.json: 2 rules" "the policy is read at start"
uc() { local u=$1; shift; as "$u" "$DIAGNOSECTL" --socket "$SOCK" "$@"; }

# diagu1: own process, allowed type
uc diagu1 add-probe --pid "$f1_pid" --target work --type incr --name mine --id mine > "$T/out" 2> "$T/err"
expect_eq "$?" 0 "a user probes their own process"
expect_eq "$(state_of mine "$f1_pid")" applied "the user's probe applied"
expect_eq "$(req '{"cmd":"list"}' | jget "[s.get('owner') for s in j['specs'] if s['id'] == 'mine']")" \
	"[$(id -u diagu1)]" "the spec records its owner"

# another user's process: the kernel's rule, quoted with the rule
uc diagu1 add-probe --pid "$f2_pid" --target work --type incr --name theirs --id theirs > /dev/null 2> "$T/err"
expect_eq "$?" 1 "another user's process: refused"
expect_contains "$(cat "$T/err")" "policy: $T/policy.json rule 1 (users diagu1): pid $f2_pid: not your process" \
	"the refusal names the rule and the reason"
# a type the rule does not allow
uc diagu1 add-probe --pid "$f1_pid" --target work --type hist --name h --id h > /dev/null 2> "$T/err"
expect_contains "$(cat "$T/err")" "instrument type 'hist' is not one the rule allows" "a type the rule does not allow"
# without a pid: never every attached process
uc diagu1 add-probe --target work --type incr --name all --id all > /dev/null 2> "$T/err"
expect_contains "$(cat "$T/err")" "name the process to probe (pid)" "a user's probe needs a pid"

# diagu2 (group diaggrp): registers and counts only
uc diagu2 add-probe --pid "$f2_pid" --target work --type log --name m --id m2 --value 'a + b' > /dev/null 2> "$T/err"
expect_eq "$?" 1 "a value reading memory: refused"
expect_contains "$(cat "$T/err")" "value 'a + b' may read the target's memory (a variable by name)" \
	"the memory rule says why"
uc diagu2 add-probe --pid "$f2_pid" --target work --type hist --name r --id r2 --value '$arg2 * 2' > /dev/null 2> "$T/err"
expect_eq "$?" 0 "registers only: allowed (by group)"

# diagu3: named by no rule
uc diagu3 list > /dev/null 2> "$T/err"
expect_eq "$?" 1 "a user no rule names: refused"
expect_contains "$(cat "$T/err")" "uid $(id -u diagu3) (diagu3) is named by no rule of $T/policy.json" "and told why"

# each sees and removes only their own specs; root sees all
add rootspec work incr > /dev/null
expect_eq "$(uc diagu1 --json list | jget "sorted(s['id'] for s in j['specs'])")" "['mine']" "a user lists only their specs"
expect_eq "$(req '{"cmd":"list"}' | jget "sorted(s['id'] for s in j['specs'])")" "['mine', 'r2', 'rootspec']" "root lists every spec"
uc diagu1 remove-probe rootspec > /dev/null 2> "$T/err"
expect_contains "$(cat "$T/err")" "id: no probe 'rootspec'" "a user cannot remove root's spec"
uc diagu2 remove-probe mine > /dev/null 2>&1
expect_eq "$?" 1 "a user cannot remove another user's spec"
uc diagu1 remove-probe mine > /dev/null
expect_eq "$?" 0 "a user removes their own spec"

# the audit trail
expect_contains "$(cat "$DERR")" "audit: uid $(id -u diagu1) (diagu1) pid " "audit: who"
expect_contains "$(cat "$DERR")" "(diagnosectl): add spec 'mine': allowed" "audit: an allowed add"
expect_contains "$(cat "$DERR")" "add spec 'theirs': policy: " "audit: a refused add, with its reason"
expect_contains "$(cat "$DERR")" "remove spec 'mine': allowed" "audit: a remove"
expect_contains "$(cat "$DERR")" "(diagu3) pid " "audit: a refused connection"

# SIGHUP re-reads the file: diagu1 no longer named
echo '{"rules": [{"groups": ["diaggrp"], "read_memory": false}]}' > "$T/policy.json"
kill -HUP "$DPID"
for _ in $(seq 100); do grep -q "policy $T/policy.json: 1 rule$" "$DERR" && break; sleep 0.05; done
expect_contains "$(cat "$DERR")" "policy $T/policy.json: 1 rule" "SIGHUP: the file re-read"
uc diagu1 list > /dev/null 2> "$T/err"
expect_contains "$(cat "$T/err")" "(diagu1) is named by no rule" "SIGHUP: the new rules apply"
# a broken file keeps the rules in force
echo '{"rules": [{"users": ["diagu1"], "typo": 1}]}' > "$T/policy.json"
kill -HUP "$DPID"
for _ in $(seq 100); do grep -q "the rules in force are kept" "$DERR" && break; sleep 0.05; done
expect_contains "$(cat "$DERR")" "rules[0]: unknown field 'typo'" "a bad policy: the field named"
uc diagu2 list > /dev/null
expect_eq "$?" 0 "a bad policy: the previous rules still in force"
fixture_go f1
fixture_go f2
finish
