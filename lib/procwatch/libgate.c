/* procwatch/libgate: see libgate.h. */
#include "procwatch/libgate.h"

#include "util/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct diag_libgate {
	int fan;          /* the fanotify group */
	int stop;         /* eventfd: the thread leaves */
	int pipe[2];      /* handed opens: the thread writes, the daemon reads */
	pid_t self;
	pthread_t thread;
	bool running;
	struct diag_marks marks; /* what diag_libgate_sync marked (the daemon's thread's) */
	uint64_t n_self, n_other, n_handed, n_overflow; /* written by the thread (atomics) */
};

static void count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

static void respond(int fan, int fd)
{
	struct fanotify_response r = {.fd = fd, .response = FAN_ALLOW};
	if (write(fan, &r, sizeof(r)) < 0) {
		/* the opener was killed meanwhile: nothing waits any more */
	}
	close(fd);
}

/* The user pc of the system call tid is blocked in ("NR a1..a6 sp pc"); 0 when not in one. */
static uint64_t syscall_pc(pid_t tgid, pid_t tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)tgid, (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *tok[9], *save = NULL;
	int k = 0;
	for (char *t = strtok_r(buf, " \n", &save); t && k < 9; t = strtok_r(NULL, " \n", &save))
		tok[k++] = t;
	return k == 9 ? strtoull(tok[8], NULL, 0) : 0;
}

/* Where the dynamic linker was mapped (AT_BASE); 0 for a static program. */
static uint64_t ldso_base(pid_t tgid)
{
	char path[64];
	unsigned long v[2 * 64];
	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)tgid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, v, sizeof(v)) : -1;
	if (fd >= 0)
		close(fd);
	for (ssize_t i = 0; n > 0 && (i + 2) * (ssize_t)sizeof(v[0]) <= n && v[i] != AT_NULL; i += 2)
		if (v[i] == AT_BASE)
			return v[i + 1];
	return 0;
}

bool diag_libgate_from_ldso(pid_t tgid, pid_t tid)
{
	uint64_t pc = syscall_pc(tgid, tid), base = ldso_base(tgid);
	if (!pc || !base)
		return false;
	struct diag_proc_maps m;
	struct diag_proc_map e;
	uint64_t ld_dev = 0, ld_ino = 0, pc_dev = 0, pc_ino = 0;
	if (diag_proc_maps_open(tgid, &m) < 0)
		return false;
	while (diag_proc_maps_next(&m, &e)) {
		if (e.start == base) {
			ld_dev = e.dev;
			ld_ino = e.inode;
		}
		if (e.start <= pc && pc < e.end) {
			pc_dev = e.dev;
			pc_ino = e.inode;
		}
	}
	diag_proc_maps_close(&m);
	return ld_ino && pc_ino == ld_ino && pc_dev == ld_dev;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One open at the gate: allowed at once, or handed to the daemon. */
static void classify(struct diag_libgate *g, const struct fanotify_event_metadata *m)
{
	struct stat st;
	unsigned long long tgid = 0, ppid = 0;
	if (!(m->mask & FAN_OPEN_PERM) || fstat(m->fd, &st) < 0 ||
	    !diag_proc_status_field(m->pid, "Tgid", 10, &tgid) || !tgid) {
		respond(g->fan, m->fd);
		return;
	}
	diag_proc_status_field((pid_t)tgid, "PPid", 10, &ppid);
	if ((pid_t)tgid == g->self || (pid_t)ppid == g->self) {
		count(&g->n_self);
		respond(g->fan, m->fd);
		return;
	}
	if (!diag_libgate_from_ldso((pid_t)tgid, m->pid)) {
		count(&g->n_other);
		respond(g->fan, m->fd);
		return;
	}
	struct diag_libgate_event ev = {.tid = m->pid, .tgid = (pid_t)tgid, .fd = m->fd,
					.dev = st.st_dev, .ino = st.st_ino, .t_ns = now_ns()};
	/* counted before the write: once the record is in the pipe the daemon may act on it and
	 * read the stats before this thread runs again (unit.test_procwatch saw handed 0 after
	 * its event) */
	count(&g->n_handed);
	/* one record, below PIPE_BUF: written whole or not at all */
	if (write(g->pipe[1], &ev, sizeof(ev)) != (ssize_t)sizeof(ev)) {
		__atomic_sub_fetch(&g->n_handed, 1, __ATOMIC_RELAXED);
		count(&g->n_overflow);
		respond(g->fan, m->fd);
	}
}

static void drain_kernel(struct diag_libgate *g)
{
	struct fanotify_event_metadata m;
	while (read(g->fan, &m, sizeof(m)) >= (ssize_t)FAN_EVENT_METADATA_LEN) {
		if (m.fd < 0)
			continue;
		if (m.vers != FANOTIFY_METADATA_VERSION || m.event_len < FAN_EVENT_METADATA_LEN)
			respond(g->fan, m.fd);
		else
			classify(g, &m);
	}
}

static void *gate_thread(void *arg)
{
	struct diag_libgate *g = arg;
	struct pollfd p[2] = {{.fd = g->fan, .events = POLLIN}, {.fd = g->stop, .events = POLLIN}};
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			drain_kernel(g);
	}
	return NULL;
}

int diag_libgate_open(struct diag_libgate **out, struct diag_error *err)
{
	struct diag_libgate *g = calloc(1, sizeof(*g));
	if (!g)
		return diag_error_set(err, -ENOMEM, "library gate: out of memory");
	g->stop = g->pipe[0] = g->pipe[1] = -1;
	g->self = getpid();
	g->fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_TID,
			       O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	int r = 0;
	if (g->fan < 0)
		r = diag_error_set(err, -errno, "library gate (fanotify): %s%s", strerror(errno),
				   errno == EPERM ? " (needs root: CAP_SYS_ADMIN)" : "");
	else if ((g->stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
		 pipe2(g->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		r = diag_error_set(err, -errno, "library gate: %s", strerror(errno));
	else if ((r = -pthread_create(&g->thread, NULL, gate_thread, g)) < 0)
		diag_error_set(err, r, "library gate: thread: %s", strerror(-r));
	if (r < 0) {
		diag_libgate_close(g);
		return r;
	}
	g->running = true;
	*out = g;
	return 0;
}

void diag_libgate_close(struct diag_libgate *g)
{
	if (!g)
		return;
	if (g->running) {
		uint64_t one = 1;
		if (write(g->stop, &one, sizeof(one)) < 0) {
			/* an eventfd write fails only on overflow: it is readable then anyway */
		}
		pthread_join(g->thread, NULL);
	}
	struct diag_libgate_event ev;
	while (g->pipe[0] >= 0 && g->fan >= 0 && read(g->pipe[0], &ev, sizeof(ev)) == sizeof(ev))
		diag_libgate_allow(g, &ev);
	if (g->fan >= 0)
		close(g->fan); /* the kernel allows what was not read */
	for (int i = 0; i < 2; i++)
		if (g->pipe[i] >= 0)
			close(g->pipe[i]);
	if (g->stop >= 0)
		close(g->stop);
	diag_marks_clear(&g->marks);
	free(g);
}

int diag_libgate_fd(const struct diag_libgate *g)
{
	return g->pipe[0];
}

int diag_libgate_sync(struct diag_libgate *g, const char *const *paths, size_t n,
		      struct diag_error *err)
{
	return diag_marks_sync(&g->marks, g->fan, FAN_OPEN_PERM, paths, n, err);
}

const struct diag_marks *diag_libgate_marks(const struct diag_libgate *g)
{
	return &g->marks;
}

int diag_libgate_read(struct diag_libgate *g, struct diag_libgate_event *out, size_t cap)
{
	size_t n = 0;
	while (n < cap && read(g->pipe[0], &out[n], sizeof(out[n])) == (ssize_t)sizeof(out[n]))
		n++;
	return (int)n;
}

int diag_libgate_allow(struct diag_libgate *g, struct diag_libgate_event *ev)
{
	if (ev->fd < 0)
		return 0;
	struct fanotify_response r = {.fd = ev->fd, .response = FAN_ALLOW};
	int rc = write(g->fan, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : -errno;
	close(ev->fd);
	ev->fd = -1;
	return rc;
}

void diag_libgate_stats(const struct diag_libgate *g, struct diag_libgate_stats *out)
{
	out->self = __atomic_load_n(&g->n_self, __ATOMIC_RELAXED);
	out->other = __atomic_load_n(&g->n_other, __ATOMIC_RELAXED);
	out->handed = __atomic_load_n(&g->n_handed, __ATOMIC_RELAXED);
	out->overflow = __atomic_load_n(&g->n_overflow, __ATOMIC_RELAXED);
}
