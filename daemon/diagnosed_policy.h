/* diagnosed_policy: who may use the daemon and on what (issue 16, docs/daemon.md "Who may
 * probe what"). Root may do everything. Anyone else must match a rule of the policy file
 * (--policy, default /etc/diagnose/policy.json, read at start and on SIGHUP), and then may
 * probe only the processes the rule allows: by default their own, under the rules the kernel
 * applies to ptrace by that user (same uid and gid throughout, dumpable, Yama's ptrace_scope),
 * optionally only some executables or systemd units, some instrument types, and values that
 * read no memory. Every refusal names the rule and the reason. Owns the rules and the checks;
 * never reads a spec store, never touches a target beyond /proc. */
#ifndef DMN_POLICY_H
#define DMN_POLICY_H

#include <stdbool.h>
#include <sys/types.h>

#include "spec/spec.h"
#include "util/error.h"

#define DMN_POLICY_DEFAULT "/etc/diagnose/policy.json"
#define DMN_PEER_GROUPS 64

/* The client at the other end of a control connection. */
struct dmn_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char user[64];    /* the uid's name, or its number */
	char comm[16];
	gid_t groups[DMN_PEER_GROUPS]; /* primary and supplementary */
	int ngroups;
};

struct dmn_policy;

/* Read the policy file (strict JSON; each error names the rule and the field). A missing file
 * is not an error: *out = NULL (root only). Returns 0, or a negative code with err set. */
int dmn_policy_load(const char *path, struct dmn_policy **out, struct diag_error *err);
void dmn_policy_free(struct dmn_policy *p);
/* How many rules; the file the policy came from. */
int dmn_policy_rules(const struct dmn_policy *p);
const char *dmn_policy_path(const struct dmn_policy *p);

/* Credentials of the socket's peer. Returns 0 or -errno. */
int dmn_peer_identify(int fd, struct dmn_peer *out);

/* May peer connect at all? 0, or -EACCES with err saying why. p may be NULL (root only). */
int dmn_policy_connect(const struct dmn_policy *p, const struct dmn_peer *peer,
		       struct diag_error *err);
/* May peer attach to, read the files of, or detach pid? */
int dmn_policy_check_process(const struct dmn_policy *p, const struct dmn_peer *peer, pid_t pid,
			     struct diag_error *err);
/* May peer add spec s (its type, value and condition, and each of its pids)? */
int dmn_policy_check_spec(const struct dmn_policy *p, const struct dmn_peer *peer,
			  const struct diag_spec *s, struct diag_error *err);

#endif
