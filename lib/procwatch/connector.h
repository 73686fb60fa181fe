/* procwatch/connector: the kernel's process events (the netlink proc connector): every fork,
 * exec, comm change and exit on the machine, as they happen, without polling /proc. Used to
 * find the processes a selector takes (issue 11) when no exec gate can hold them (execgate.h).
 * Owns one netlink socket. Reads only: never touches, stops or traces a process. Needs root
 * (CAP_NET_ADMIN); every message from the socket is checked as hostile input. */
#ifndef DIAG_PROCWATCH_CONNECTOR_H
#define DIAG_PROCWATCH_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

enum diag_procev_kind {
	DIAG_PROCEV_FORK = 1, /* pid/tid: the child; parent: the parent's tgid */
	DIAG_PROCEV_EXEC,     /* pid: the process, tid: the thread that called execve */
	DIAG_PROCEV_COMM,     /* comm: the new name */
	DIAG_PROCEV_EXIT,     /* tid exited; pid == tid when the whole process did */
	DIAG_PROCEV_LOST,     /* the socket overflowed: events were lost (rescan /proc) */
};

struct diag_procev_event {
	enum diag_procev_kind kind;
	pid_t pid;     /* thread group id */
	pid_t tid;
	pid_t parent;  /* FORK only */
	char comm[16]; /* COMM only, NUL-terminated */
};

struct diag_procev;

/* Open and subscribe. -EPERM (with err saying root is needed) or another -errno. */
int diag_procev_open(struct diag_procev **out, struct diag_error *err);
void diag_procev_close(struct diag_procev *w);

/* The socket, non-blocking, for poll(POLLIN). */
int diag_procev_fd(const struct diag_procev *w);

/* Up to cap pending events into out without blocking. Returns their count (0: none
 * pending). Malformed messages are skipped; an overflow of the socket's buffer gives one
 * DIAG_PROCEV_LOST event. */
int diag_procev_read(struct diag_procev *w, struct diag_procev_event *out, size_t cap);

#endif
