/* diagnose/event.h: what an instrument receives when a probe fires (public ABI).
 * Every pointer in an event is valid only for the duration of the call that receives it. */
#ifndef DIAGNOSE_EVENT_H
#define DIAGNOSE_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum diag_event_kind {
	DIAG_EVENT_CALL = 0,   /* function entry (or line / address reached) */
	DIAG_EVENT_RETURN = 1, /* after the function returned: result and elapsed visible */
	DIAG_EVENT_END = 2,    /* at each exit of the function body: locals visible */
};

enum diag_value_kind {
	DIAG_VALUE_NONE = 0,  /* no value expression */
	DIAG_VALUE_SIGNED,    /* .i */
	DIAG_VALUE_UNSIGNED,  /* .u (also pointers, addresses) */
	DIAG_VALUE_FLOAT,     /* .f */
	DIAG_VALUE_STRING,    /* .buf: text, not NUL-terminated in .buf, see .text */
	DIAG_VALUE_BYTES,     /* .buf: raw bytes */
	DIAG_VALUE_ERROR,     /* .text holds the reason, e.g. "<fault at 0x10>" */
};

struct diag_value {
	enum diag_value_kind kind;
	union {
		int64_t i;
		uint64_t u;
		double f;
	};
	const void *buf;   /* STRING and BYTES */
	size_t len;        /* STRING and BYTES */
	const char *text;  /* always set: the value as a user reads it (gdb-like), NUL-terminated */
};

struct diag_event {
	const char *probe_id;   /* spec id */
	const char *name;       /* instrument name */
	pid_t pid;
	pid_t tid;
	uint64_t time_ns;       /* CLOCK_REALTIME of the hit */
	enum diag_event_kind kind;
	struct diag_value value;
	/* ABI 3: how many alike hits this event stands for. Always 1, except for an instance
	 * whose plugin sets DIAG_INSTRUMENT_COUNTS: a probe of it with no value and no condition
	 * is counted in the target, and its hits arrive as events of kind NONE, tid 0, count N. */
	uint64_t count;
};

/* Text for an event kind: "call", "return", "end". */
static inline const char *diag_event_kind_name(enum diag_event_kind k)
{
	return k == DIAG_EVENT_RETURN ? "return" : k == DIAG_EVENT_END ? "end" : "call";
}

#ifdef __cplusplus
}
#endif
#endif
