/* ctl_print: human output of diagnosectl (see ctl_print.h). Reads reply JSON and prints;
 * tolerates missing members (prints "-") because a table must never crash on a newer daemon.
 * Every string of a reply is printed through diag_text_escape (esc, put_esc): names, targets,
 * errors and symbols come from clients and targets and must not forge lines or drive the
 * terminal. */
#include "ctl_print.h"

#include "util/text.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_COLS 9

/* A table of strings with per-row notes printed under the row; columns padded to their
 * widest cell, the last column unpadded. */
struct table {
	size_t ncols, nrows, cap;
	char **cells; /* nrows * ncols, owned */
	char **notes; /* nrows, owned, may be NULL */
};

static void table_add(struct table *t, char **row, const char *note)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **cells = realloc(t->cells, cap * t->ncols * sizeof(*cells));
		if (cells)
			t->cells = cells;
		char **notes = realloc(t->notes, cap * sizeof(*notes));
		if (notes)
			t->notes = notes;
		if (!cells || !notes) {
			for (size_t i = 0; i < t->ncols; i++)
				free(row[i]);
			return;
		}
		t->cap = cap;
	}
	memcpy(t->cells + t->nrows * t->ncols, row, t->ncols * sizeof(*row));
	t->notes[t->nrows++] = note ? strdup(note) : NULL;
}

static void table_print(FILE *out, const struct table *t, const char *const *header)
{
	size_t width[16] = {0};
	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = strlen(header[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			const char *s = t->cells[r * t->ncols + c];
			if (s && strlen(s) > width[c])
				width[c] = strlen(s);
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = r == 0 ? header[c] : t->cells[(r - 1) * t->ncols + c];
			if (!s)
				s = "?";
			if (c + 1 == t->ncols)
				fprintf(out, "%s\n", s);
			else
				fprintf(out, "%-*s  ", (int)width[c], s);
		}
		if (r > 0 && t->notes[r - 1])
			fprintf(out, "    %s\n", t->notes[r - 1]);
	}
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	for (size_t i = 0; i < t->nrows; i++)
		free(t->notes[i]);
	free(t->cells);
	free(t->notes);
}

static const char *json_str(const cJSON *obj, const char *key, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* A table cell or note: the escaped copy. */
static char *esc(const char *s)
{
	return diag_text_escape_dup(s, 0);
}

static void put_esc(FILE *out, const char *s, unsigned flags)
{
	char *e = diag_text_escape_dup(s, flags);
	if (e)
		fputs(e, out);
	free(e);
}

/* A number for people: integers plainly, others with 6 significant digits, "-" for null. */
static void fmt_number(char *buf, size_t len, const cJSON *v)
{
	if (!cJSON_IsNumber(v)) {
		snprintf(buf, len, "-");
		return;
	}
	double d = v->valuedouble;
	if (d > -1e15 && d < 1e15 && d == (double)(long long)d)
		snprintf(buf, len, "%lld", (long long)d);
	else
		snprintf(buf, len, "%.6g", d);
}

static char *fmt_dup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_dup(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Seconds left as "45s", "9m59s" or "2h05m"; "never" without a lifespan. */
static char *fmt_expires(const cJSON *v)
{
	if (!cJSON_IsNumber(v))
		return strdup("never");
	long s = v->valuedouble > 0 ? lround(v->valuedouble) : 0;
	if (s < 60)
		return fmt_dup("%lds", s);
	if (s < 3600)
		return fmt_dup("%ldm%02lds", s / 60, s % 60);
	return fmt_dup("%ldh%02ldm", s / 3600, s / 60 % 60);
}

/* "select exe=/usr/sbin/nginx: 3 processes" for a spec with a selector, else NULL. */
static char *select_note(const cJSON *spec)
{
	const cJSON *sel = cJSON_GetObjectItemCaseSensitive(spec, "select"), *m;
	if (!cJSON_IsObject(sel))
		return NULL;
	char what[1024] = "";
	size_t at = 0;
	cJSON_ArrayForEach(m, sel)
		if (cJSON_IsString(m) && at < sizeof(what)) {
			int n = snprintf(what + at, sizeof(what) - at, "%s%s=%s", at ? " " : "", m->string,
					 m->valuestring);
			at = n < 0 ? sizeof(what) : at + (size_t)n;
		}
	char num[32];
	fmt_number(num, sizeof(num), cJSON_GetObjectItemCaseSensitive(spec, "processes"));
	char *safe = esc(what);
	char *note = fmt_dup("select %s: %s process%s", safe ? safe : "?", num,
			     strcmp(num, "1") ? "es" : "");
	free(safe);
	return note;
}

static void list_add_spec(struct table *t, const cJSON *spec)
{
	const cJSON *ins = cJSON_GetObjectItemCaseSensitive(spec, "instrument");
	const cJSON *applied = cJSON_GetObjectItemCaseSensitive(spec, "applied");
	const cJSON *proc = cJSON_IsObject(applied) ? applied->child : NULL;
	char *sel = select_note(spec);
	do {
		char num[32];
		char *row[LIST_COLS] = {
			esc(json_str(spec, "id", "-")),
			esc(json_str(spec, "target", "-")),
			esc(json_str(ins, "type", "-")),
			esc(json_str(ins, "name", "-")),
			esc(json_str(ins, "event", "call")),
			esc(proc ? proc->string : "-"),
			cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(proc, "stale"))
				? fmt_dup("%s (stale host)", json_str(proc, "state", "-"))
				: esc(json_str(proc, "state", "-")),
			NULL,
			fmt_expires(cJSON_GetObjectItemCaseSensitive(spec, "expires_in")),
		};
		fmt_number(num, sizeof(num), cJSON_GetObjectItemCaseSensitive(proc, "hits"));
		row[7] = strdup(proc ? num : "0");
		const char *error = json_str(proc, "error", NULL);
		char *safe = error && *error ? esc(error) : NULL;
		/* a pending record says what it waits for (a library, a process to select) */
		const char *label = strcmp(json_str(proc, "state", ""), "pending") ? "error" : "waiting";
		char *note = safe ? fmt_dup("%s%s%s: %s", sel ? sel : "", sel ? "\n    " : "", label, safe)
			   : sel ? strdup(sel) : NULL;
		table_add(t, row, note);
		free(note);
		free(safe);
		free(sel);
		sel = NULL; /* under the spec's first row only */
		proc = proc ? proc->next : NULL;
	} while (proc);
}

void diag_ctl_print_list(FILE *out, const cJSON *reply)
{
	static const char *const header[LIST_COLS] = {"ID", "TARGET", "TYPE", "NAME", "EVENT",
						      "PROCESS", "STATE", "HITS", "EXPIRES"};
	struct table t = {.ncols = LIST_COLS};
	const cJSON *spec;
	cJSON_ArrayForEach(spec, cJSON_GetObjectItemCaseSensitive(reply, "specs"))
		list_add_spec(&t, spec);
	table_print(out, &t, header);
	table_free(&t);
}

/* A target's reasons joined with "; " (escaped), "-" when none. */
static char *why_text(const cJSON *why)
{
	size_t len = 2;
	const cJSON *w;
	cJSON_ArrayForEach(w, why)
		len += cJSON_IsString(w) ? strlen(w->valuestring) + 2 : 0;
	char *s = calloc(1, len), *e = NULL;
	cJSON_ArrayForEach(w, why)
		if (s && cJSON_IsString(w)) {
			if (*s)
				strcat(s, "; ");
			strcat(s, w->valuestring);
		}
	e = esc(s && *s ? s : "-");
	free(s);
	return e;
}

/* The RING cell: its kind, then each sub-ring that dropped hits (and how many threads write
 * it): "shared; sub 2: 3616 dropped; sub 5 (2 threads): 10 dropped". */
static char *ring_text(const cJSON *target)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(target, "ring"), *sub;
	char buf[512];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", cJSON_IsString(kind) ? kind->valuestring : "-");
	cJSON_ArrayForEach(sub, cJSON_GetObjectItemCaseSensitive(target, "ring_subs")) {
		double id = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sub, "sub"));
		double threads = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sub, "threads"));
		double dropped = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sub, "dropped"));
		if (!(dropped > 0) || n >= sizeof(buf))
			continue;
		char shared[32] = "";
		if (threads > 1)
			snprintf(shared, sizeof(shared), " (%.0f threads)", threads);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "; sub %.0f%s: %.0f dropped", id, shared,
				      dropped);
	}
	return esc(buf);
}

void diag_ctl_print_status(FILE *out, const cJSON *reply)
{
	static const char *const header[4] = {"PID", "THREADS", "RING", "WHY"};
	char pid[32], specs[32], probes[32], hits[32], len[32], bytes[32], cap[32], dropped[32];
	char ring[32], tail[32];
	const cJSON *queue = cJSON_GetObjectItemCaseSensitive(reply, "queue");
	const cJSON *lost = cJSON_GetObjectItemCaseSensitive(reply, "dropped");
	fmt_number(pid, sizeof(pid), cJSON_GetObjectItemCaseSensitive(reply, "pid"));
	fmt_number(specs, sizeof(specs), cJSON_GetObjectItemCaseSensitive(reply, "specs"));
	fmt_number(probes, sizeof(probes), cJSON_GetObjectItemCaseSensitive(reply, "probes"));
	fmt_number(hits, sizeof(hits), cJSON_GetObjectItemCaseSensitive(reply, "hits"));
	fmt_number(len, sizeof(len), cJSON_GetObjectItemCaseSensitive(queue, "length"));
	fmt_number(bytes, sizeof(bytes), cJSON_GetObjectItemCaseSensitive(queue, "bytes"));
	fmt_number(cap, sizeof(cap), cJSON_GetObjectItemCaseSensitive(queue, "capacity"));
	fmt_number(dropped, sizeof(dropped), cJSON_GetObjectItemCaseSensitive(queue, "dropped"));
	fmt_number(ring, sizeof(ring), cJSON_GetObjectItemCaseSensitive(lost, "ring"));
	fmt_number(tail, sizeof(tail), cJSON_GetObjectItemCaseSensitive(lost, "tail"));
	fprintf(out, "diagnosed pid %s: %s specs, %s probes, %s hits\n", pid, specs, probes, hits);
	fprintf(out, "queue: %s events (%s of %s bytes), %s dropped\n", len, bytes, cap, dropped);
	fprintf(out, "dropped: %s in target rings, %s in the queue, %s to tail clients\n", ring,
		dropped, tail);
	const cJSON *store = cJSON_GetObjectItemCaseSensitive(reply, "store");
	const char *store_error = json_str(store, "error", NULL);
	const char *url = json_str(store, "url", NULL);
	if (url) { /* the shared store: where, as whom, whether it answers */
		fputs("store: ", out);
		put_esc(out, url, 0);
		fputs(" as host ", out);
		put_esc(out, json_str(store, "host", "?"), 0);
		fprintf(out, ": %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(store, "connected"))
					      ? "connected" : "not connected");
		const char *problems = json_str(store, "problems", NULL);
		if (problems) {
			fputs("store: not run here: ", out);
			put_esc(out, problems, 0);
			fputc('\n', out);
		}
	}
	if (store_error) {
		fputs("WARNING: ", out);
		put_esc(out, store_error, 0);
		fputc('\n', out);
	}
	struct table t = {.ncols = 4};
	const cJSON *target;
	cJSON_ArrayForEach(target, cJSON_GetObjectItemCaseSensitive(reply, "targets")) {
		char *row[4] = {NULL, NULL, NULL, NULL};
		fmt_number(pid, sizeof(pid), cJSON_GetObjectItemCaseSensitive(target, "pid"));
		row[0] = strdup(pid);
		fmt_number(pid, sizeof(pid), cJSON_GetObjectItemCaseSensitive(target, "threads"));
		row[1] = strdup(pid);
		row[2] = ring_text(target);
		row[3] = why_text(cJSON_GetObjectItemCaseSensitive(target, "why"));
		table_add(&t, row, NULL);
	}
	if (t.nrows)
		table_print(out, &t, header);
	else
		fprintf(out, "no target processes\n");
	table_free(&t);
}

/* Append " key=value" for each listed report member. */
static void stats_add_fields(FILE *out, const cJSON *report, const char *const *keys)
{
	for (size_t i = 0; keys[i]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(report, keys[i]);
		char num[64];
		if (!v)
			continue;
		fmt_number(num, sizeof(num), v);
		fprintf(out, " %s=%s", keys[i], num);
	}
}

/* Prints one probe's statistics; returns whether more than one line was printed. */
static bool stats_print_one(FILE *out, const cJSON *st)
{
	static const char *const hist_keys[] = {"count", "min", "max", "mean", "p50", "p90", "p99",
						NULL};
	static const char *const incr_keys[] = {"count", "sum", NULL};
	const char *type = json_str(st, "type", "");
	const cJSON *report = cJSON_GetObjectItemCaseSensitive(st, "report");
	put_esc(out, json_str(st, "id", "-"), 0);
	fputs(" (", out);
	put_esc(out, json_str(st, "name", "-"), 0);
	fputc(')', out);
	if (!cJSON_IsObject(report)) {
		fprintf(out, " (no report)\n");
		return false;
	}
	if (strcmp(type, "hist") == 0) {
		stats_add_fields(out, report, hist_keys);
		fputc('\n', out);
		const char *text = json_str(report, "text", "");
		put_esc(out, text, DIAG_TEXT_KEEP_NL);
		return *text != '\0';
	}
	if (strcmp(type, "incr") == 0) {
		stats_add_fields(out, report, incr_keys);
		fputc('\n', out);
		const cJSON *key;
		bool more = false;
		cJSON_ArrayForEach(key, cJSON_GetObjectItemCaseSensitive(report, "keys")) {
			char num[64];
			fmt_number(num, sizeof(num), key);
			fprintf(out, "%12s  ", num);
			put_esc(out, key->string, 0);
			fputc('\n', out);
			more = true;
		}
		return more;
	}
	char *json = cJSON_PrintUnformatted(report);
	fputc(' ', out);
	put_esc(out, json ? json : "?", 0);
	fputc('\n', out);
	free(json);
	return false;
}

void diag_ctl_print_stats(FILE *out, const cJSON *reply)
{
	const cJSON *st;
	bool gap = false;
	cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(reply, "stats")) {
		if (gap)
			fputc('\n', out);
		gap = stats_print_one(out, st);
	}
}

size_t diag_ctl_print_folded(FILE *out, const cJSON *reply)
{
	const cJSON *st;
	size_t n = 0;
	cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(reply, "stats")) {
		const cJSON *report = cJSON_GetObjectItemCaseSensitive(st, "report");
		const cJSON *folded = cJSON_GetObjectItemCaseSensitive(report, "folded");
		if (!cJSON_IsString(folded))
			continue;
		put_esc(out, folded->valuestring, DIAG_TEXT_KEEP_NL);
		n++;
	}
	return n;
}

void diag_ctl_print_event(FILE *out, const cJSON *event)
{
	const char *text = json_str(event, "text", NULL);
	fputs("Probe (", out);
	put_esc(out, json_str(event, "name", "?"), 0);
	fputc(')', out);
	if (text && *text) {
		fputs(" = ", out);
		put_esc(out, text, 0);
	}
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(event, "count");
	if (cJSON_IsNumber(count)) /* hits counted in the target since the last drain */
		fprintf(out, " x %.0f", count->valuedouble);
	fputc('\n', out);
}

void diag_ctl_print_symbols(FILE *out, const cJSON *reply)
{
	static const char *const header[4] = {"MODULE", "ADDRESS", "SIZE", "FUNCTION"};
	struct table t = {.ncols = 4};
	const cJSON *sym;
	cJSON_ArrayForEach(sym, cJSON_GetObjectItemCaseSensitive(reply, "symbols")) {
		char size[32];
		fmt_number(size, sizeof(size), cJSON_GetObjectItemCaseSensitive(sym, "size"));
		char *row[4] = {esc(json_str(sym, "module", "-")), esc(json_str(sym, "addr", "-")),
				strdup(size), esc(json_str(sym, "name", "-"))};
		table_add(&t, row, NULL);
	}
	if (t.nrows)
		table_print(out, &t, header);
	else
		fprintf(out, "no matching functions\n");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "truncated")))
		fprintf(out, "(list cut at %zu functions: narrow the glob)\n", t.nrows);
	table_free(&t);
}

void diag_ctl_print_vars(FILE *out, const cJSON *reply)
{
	static const char *const header[4] = {"KIND", "NAME", "TYPE", "LOCATION"};
	struct table t = {.ncols = 4};
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(reply, "vars")) {
		bool param = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "param"));
		char *row[4] = {strdup(param ? "param" : "local"), esc(json_str(v, "name", "-")),
				esc(json_str(v, "type", "-")), esc(json_str(v, "location", "-"))};
		table_add(&t, row, NULL);
	}
	if (t.nrows)
		table_print(out, &t, header);
	else
		fprintf(out, "no parameters or locals in scope\n");
	table_free(&t);
}

void diag_ctl_print_hosts(FILE *out, const cJSON *reply)
{
	fprintf(out, "%-24s %-10s %-21s %9s %s\n", "HOST", "VERSION", "LAST-SEEN", "PROCESSES",
		"STATE");
	const cJSON *h;
	cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(reply, "hosts")) {
		const cJSON *seen = cJSON_GetObjectItemCaseSensitive(h, "last_seen");
		const cJSON *procs = cJSON_GetObjectItemCaseSensitive(h, "processes");
		char when[32] = "-";
		if (cJSON_IsNumber(seen)) {
			time_t t = (time_t)seen->valuedouble;
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		}
		put_esc(out, h->string, 0);
		fprintf(out, "%*s", (int)(25 - (strlen(h->string) < 24 ? strlen(h->string) : 24)), "");
		const char *ver = json_str(h, "version", "-");
		put_esc(out, ver, 0);
		fprintf(out, "%*s", (int)(11 - (strlen(ver) < 10 ? strlen(ver) : 10)), "");
		fprintf(out, "%-21s %9d %s", when, cJSON_IsNumber(procs) ? (int)procs->valuedouble : 0,
			cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "stale")) ? "stale" : "live");
		const char *problem = json_str(h, "problem", NULL);
		if (problem) { /* what that daemon could not read or apply */
			fputs("  ", out);
			put_esc(out, problem, 0);
		}
		fputc('\n', out);
	}
}
