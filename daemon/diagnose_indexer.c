/* diagnose-indexer: the worker diagnosed starts to parse target-supplied ELF and DWARF files
 * (docs/architecture.md, "Parsing target files without root"). Its socket to the daemon is fd
 * 3. Before reading any request it closes every other descriptor and enters its sandbox
 * (lib/indexworker/sandbox.c); then it answers requests until the daemon closes the socket.
 * usage: diagnose-indexer [--uid UID] [--gid GID]   (started by diagnosed, not by hand) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "indexer/indexer.h"
#include "indexworker/worker.h"

#define SOCK_FD 3

static int id_arg(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v > 0xfffffffeul)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned uid = DIAG_INDEXER_UID, gid = DIAG_INDEXER_UID;
	for (int i = 1; i < argc; i++) {
		unsigned *to = !strcmp(argv[i], "--uid") ? &uid : !strcmp(argv[i], "--gid") ? &gid : NULL;
		if (!to || i + 1 >= argc || id_arg(argv[++i], to)) {
			fprintf(stderr, "usage: diagnose-indexer [--uid UID] [--gid GID] (fd 3: the daemon's socket)\n");
			return 2;
		}
	}
	close_range(SOCK_FD + 1, ~0U, 0);
	struct diag_error err = { 0 };
	if (diag_indexer_sandbox((uid_t)uid, (gid_t)gid, &err)) {
		struct diag_ix_buf b = { 0 };
		diag_ix_put_u32(&b, (uint32_t)err.code);
		diag_ix_put_str(&b, err.msg);
		diag_ix_send(SOCK_FD, &b, NULL, 0, 0);
		diag_ix_buf_release(&b);
		return 1;
	}
	/* _exit: skip atexit work (LeakSanitizer's check would need syscalls the filter kills) */
	_exit(diag_indexer_serve(SOCK_FD));
}
