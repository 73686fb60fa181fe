/* expr/render: turns a captured result into the text a user reads, in the style of gdb's
 * `print` (structs, arrays with <repeats>, strings with escapes, enums by name, floats with
 * 9/17 significant digits). Runs after the thread resumed; reads only the result bytes. */
#include "expr/ast.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dwarf/dwarf.h"

#define REPEAT_THRESHOLD 10 /* gdb's `set print repeats` */

struct out {
	char *buf;
	size_t cap, len;
	/* captured strings of an aggregate, consumed in walk order */
	const uint8_t *caps;
	size_t ncaps;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	if (o->len + 1 >= o->cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < o->cap - o->len ? (size_t)n : o->cap - o->len - 1;
}

/* The bytes of s as they are, cut where the buffer ends (as put's vsnprintf would): the text
 * of every event goes through here, millions of times a second, without a format to parse. */
static void put_mem(struct out *o, const char *s, size_t n)
{
	if (o->len + 1 >= o->cap)
		return;
	size_t room = o->cap - o->len - 1;
	if (n > room)
		n = room;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void put_str(struct out *o, const char *s)
{
	if (!s) /* a name hostile DWARF left out: what printf's %s made of it */
		s = "(null)";
	put_mem(o, s, strlen(s));
}

static void put_c(struct out *o, char c)
{
	put_mem(o, &c, 1);
}

/* v in decimal, a minus sign first when neg (v is then the magnitude). */
static void put_dec(struct out *o, uint64_t v, bool neg)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	if (neg)
		*--p = '-';
	put_mem(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void put_int(struct out *o, uint64_t u, bool is_signed)
{
	bool neg = is_signed && (int64_t)u < 0;
	put_dec(o, neg ? 0 - u : u, neg);
}

/* At most n bytes of s, up to its first NUL (printf's %.*s). */
static void put_text(struct out *o, const uint8_t *s, size_t n)
{
	put_mem(o, (const char *)s, strnlen((const char *)s, n));
}

static const char hexdig[] = "0123456789abcdef";

static void put_hex(struct out *o, uint64_t v)
{
	char tmp[18], *p = tmp + sizeof(tmp);
	do
		*--p = hexdig[v & 15];
	while (v >>= 4);
	*--p = 'x';
	*--p = '0';
	put_mem(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

void expr_walk_strings(const struct diag_type *t, uint64_t off, uint64_t limit,
		       void (*cb)(void *arg, uint64_t off), void *arg, int depth)
{
	const struct diag_type *s = diag_type_strip(t);
	if (!s || depth > 8 || off >= limit)
		return;
	if (expr_is_char_ptr(s)) {
		cb(arg, off);
	} else if (s->kind == DIAG_TYPE_STRUCT || s->kind == DIAG_TYPE_UNION) {
		for (size_t i = 0; i < s->nmembers; i++)
			if (!s->members[i].bit_size)
				expr_walk_strings(s->members[i].type, off + s->members[i].offset, limit, cb,
						  arg, depth + 1);
	} else if (s->kind == DIAG_TYPE_ARRAY) {
		const struct diag_type *e = diag_type_strip(s->target);
		if (!e || !e->size)
			return;
		for (uint64_t i = 0; i < s->count && i < EXPR_ARRAY_MAX; i++)
			expr_walk_strings(e, off + i * e->size, limit, cb, arg, depth + 1);
	}
}

/* One character as gdb escapes it inside quote q. */
static void put_char_escaped(struct out *o, unsigned char c, char q)
{
	static const char esc[] = { '\a', 'a', '\b', 'b', '\f', 'f', '\n', 'n', '\r', 'r', '\t', 't', '\v', 'v' };
	for (size_t i = 0; i < sizeof(esc); i += 2)
		if (c == (unsigned char)esc[i]) {
			put_c(o, '\\');
			put_c(o, esc[i + 1]);
			return;
		}
	if (c == (unsigned char)q || c == '\\') {
		put_c(o, '\\');
		put_c(o, (char)c);
	} else if (c >= 0x20 && c < 0x7f) {
		put_c(o, (char)c);
	} else {
		put(o, "\\%03o", c);
	}
}

/* gdb's generic_printstr: quoted runs and 'c' <repeats N times> blocks; drops one trailing NUL
 * of an array; "..." when the string went on beyond what was printed. */
static void put_string(struct out *o, const uint8_t *s, size_t len, bool drop_nul, bool more)
{
	if (drop_nul && !more && len > 0 && s[len - 1] == 0)
		len--;
	if (len == 0 && !more) {
		put_str(o, "\"\"");
		return;
	}
	enum { START, SINGLE, REPEAT } last = START;
	size_t i = 0, printed = 0;
	while (i < len && printed < EXPR_STR_MAX) {
		size_t r = 1;
		while (i + r < len && s[i + r] == s[i])
			r++;
		if (r > REPEAT_THRESHOLD) {
			put_str(o, last == SINGLE ? "\", " : last == REPEAT ? ", " : "");
			put_str(o, "'");
			put_char_escaped(o, s[i], '\'');
			put(o, "' <repeats %zu times>", r);
			last = REPEAT;
		} else {
			put_str(o, last == REPEAT ? ", \"" : last == START ? "\"" : "");
			for (size_t k = 0; k < r; k++)
				put_char_escaped(o, s[i], '"');
			last = SINGLE;
		}
		i += r;
		printed += r;
	}
	if (last == SINGLE)
		put_c(o, '"');
	if (more || i < len)
		put_str(o, "...");
}

static void put_float(struct out *o, double f, uint64_t size)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), size == 4 ? "%.9g" : "%.17g", f);
	put_str(o, tmp);
}

static void put_char_value(struct out *o, int64_t v, bool is_signed)
{
	put_int(o, (uint64_t)v, is_signed);
	put_str(o, " '");
	put_char_escaped(o, (unsigned char)v, '\'');
	put_str(o, "'");
}

static void put_enum(struct out *o, const struct diag_type *t, int64_t v)
{
	for (size_t i = 0; i < t->nenums; i++)
		if (t->enums[i].value == v) {
			put_str(o, t->enums[i].name);
			return;
		}
	/* gdb treats an enum whose values are disjoint bit sets as flags */
	uint64_t mask = 0;
	bool flags = true;
	for (size_t i = 0; i < t->nenums && flags; i++) {
		uint64_t e = (uint64_t)t->enums[i].value;
		/* like gdb 13: each non-zero value a single bit, no bit used twice */
		flags = t->enums[i].value >= 0 && !(mask & e) && !(e & (e - 1));
		mask |= e;
	}
	if (!flags || v == 0) {
		put_int(o, (uint64_t)v, true);
		return;
	}
	uint64_t rest = (uint64_t)v;
	bool first = true;
	put_str(o, "(");
	for (size_t i = 0; i < t->nenums; i++) {
		uint64_t e = (uint64_t)t->enums[i].value;
		if (e && (rest & e) == e) {
			put(o, "%s%s", first ? "" : " | ", t->enums[i].name);
			rest &= ~e;
			first = false;
		}
	}
	if (rest)
		put(o, "%sunknown: 0x%" PRIx64, first ? "" : " | ", rest);
	put_str(o, ")");
}

static void next_capture(struct out *o, int *status, const uint8_t **s, size_t *len)
{
	*status = EXPR_STR_SKIPPED;
	*s = NULL;
	*len = 0;
	if (o->ncaps < 3)
		return;
	*status = o->caps[0];
	size_t n = (size_t)o->caps[1] | ((size_t)o->caps[2] << 8);
	if (n > o->ncaps - 3)
		n = o->ncaps - 3;
	*s = o->caps + 3;
	*len = n;
	o->caps += 3 + n;
	o->ncaps -= 3 + n;
}

/* 0x4006f4 "abc" as gdb prints a char pointer. */
static void put_char_ptr(struct out *o, uint64_t p, int status, const uint8_t *s, size_t len)
{
	put_hex(o, p);
	if (!p || status == EXPR_STR_NULL || status == EXPR_STR_SKIPPED)
		return;
	if (status == EXPR_STR_FAULT && len == 0) {
		put(o, " <error: Cannot access memory at address 0x%" PRIx64 ">", p);
		return;
	}
	put_str(o, " ");
	put_string(o, s, len, false, status == EXPR_STR_TRUNC);
	if (status == EXPR_STR_FAULT)
		put(o, "<error: Cannot access memory at address 0x%" PRIx64 ">", p + len);
}

static void put_scalar(struct out *o, const struct diag_type *t, uint64_t u, double f, bool top);

static void skip_capture(void *arg, uint64_t off)
{
	int status;
	const uint8_t *s;
	size_t len;
	(void)off;
	next_capture(arg, &status, &s, &len);
}

static void put_object(struct out *o, const struct diag_type *t, const uint8_t *b, size_t avail, int depth);

static void put_struct(struct out *o, const struct diag_type *s, const uint8_t *b, size_t avail, int depth)
{
	put_str(o, "{");
	for (size_t i = 0; i < s->nmembers; i++) {
		const struct diag_member *m = &s->members[i];
		put_str(o, i ? ", " : "");
		if (m->name) {
			put_str(o, m->name);
			put_str(o, " = ");
		}
		if (m->offset >= avail) {
			put_str(o, "<unavailable>");
			continue;
		}
		if (m->bit_size && !expr_bitfield_fits(m))
			put_str(o, "<bit field too wide>");
		else if (m->bit_size)
			put_scalar(o, m->type, expr_bitfield(b + m->offset, avail - m->offset, m), 0, false);
		else
			put_object(o, m->type, b + m->offset, avail - m->offset, depth + 1);
	}
	put_str(o, "}");
}

static void put_array(struct out *o, const struct diag_type *s, const uint8_t *b, size_t avail, int depth)
{
	const struct diag_type *e = diag_type_strip(s->target);
	uint64_t es = e ? e->size : 0;
	if (e && e->kind == DIAG_TYPE_INT && e->is_char && es == 1) {
		size_t n = s->count < avail ? s->count : avail;
		put_string(o, b, n, true, n < s->count && n >= EXPR_STR_MAX);
		return;
	}
	if (!es) {
		put_str(o, "{}");
		return;
	}
	put_str(o, "{");
	uint64_t i = 0, things = 0;
	for (; i < s->count && things < EXPR_ARRAY_MAX; i++) {
		if ((i + 1) * es > avail)
			break;
		put_str(o, i ? ", " : "");
		uint64_t reps = 1;
		while (i + reps < s->count && (i + reps + 1) * es <= avail &&
		       !memcmp(b + i * es, b + (i + reps) * es, es))
			reps++;
		put_object(o, s->target, b + i * es, es, depth + 1);
		if (reps > REPEAT_THRESHOLD) {
			put(o, " <repeats %" PRIu64 " times>", reps);
			/* the other copies hold strings too: skip their captures */
			for (uint64_t k = 1; k < reps; k++)
				expr_walk_strings(s->target, 0, es, skip_capture, o, depth + 1);
			i += reps - 1;
			things += REPEAT_THRESHOLD;
		} else {
			things++;
		}
	}
	for (uint64_t k = i; k < s->count && k < EXPR_ARRAY_MAX && (k + 1) * es <= avail; k++)
		expr_walk_strings(s->target, 0, es, skip_capture, o, depth + 1);
	put_str(o, i < s->count ? "...}" : "}");
}

static void put_object(struct out *o, const struct diag_type *t, const uint8_t *b, size_t avail, int depth)
{
	const struct diag_type *s = diag_type_strip(t);
	if (!s || depth > 16) {
		put_str(o, "...");
		return;
	}
	if (s->kind == DIAG_TYPE_STRUCT || s->kind == DIAG_TYPE_UNION) {
		put_struct(o, s, b, avail, depth);
		return;
	}
	if (s->kind == DIAG_TYPE_ARRAY) {
		put_array(o, s, b, avail, depth);
		return;
	}
	uint8_t w[16] = { 0 };
	if (s->size > avail || s->size > sizeof(w)) {
		if (expr_is_char_ptr(s))
			skip_capture(o, 0);
		put_str(o, "<unavailable>");
		return;
	}
	memcpy(w, b, s->size);
	if (expr_is_char_ptr(s)) {
		uint64_t p;
		int status;
		const uint8_t *str;
		size_t len;
		memcpy(&p, w, 8);
		next_capture(o, &status, &str, &len);
		put_char_ptr(o, p, status, str, len);
		return;
	}
	uint64_t u = 0;
	double f = 0;
	if (s->kind == DIAG_TYPE_FLOAT) {
		if (s->size == 4) {
			float ff;
			memcpy(&ff, w, 4);
			f = ff;
		} else if (s->size == 8) {
			memcpy(&f, w, 8);
		} else {
			long double ld;
			memcpy(&ld, w, sizeof(ld));
			f = (double)ld;
		}
	} else {
		memcpy(&u, w, s->size < 8 ? s->size : 8);
		if (expr_is_signed(s) && s->size < 8 && (u >> (s->size * 8 - 1)) & 1)
			u |= ~0ULL << (s->size * 8);
	}
	put_scalar(o, t, u, f, false);
}

static void put_scalar(struct out *o, const struct diag_type *t, uint64_t u, double f, bool top)
{
	const struct diag_type *s = diag_type_strip(t);
	switch (s->kind) {
	case DIAG_TYPE_FLOAT:
		put_float(o, f, s->size);
		return;
	case DIAG_TYPE_BOOL:
		put_str(o, u ? "true" : "false");
		return;
	case DIAG_TYPE_ENUM:
		put_enum(o, s, (int64_t)u);
		return;
	case DIAG_TYPE_PTR:
		if (top) {
			char ts[160];
			diag_type_spell(t, ts, sizeof(ts));
			put(o, "(%s) ", ts);
		}
		put_hex(o, u);
		return;
	default:
		if (s->is_char && s->size == 1)
			put_char_value(o, (int64_t)u, s->is_signed);
		else
			put_int(o, u, s->is_signed);
		return;
	}
}

void diag_expr_render(const struct diag_expr *x, const struct diag_expr_result *r, char *text,
		      size_t cap, struct diag_value *out)
{
	struct out o = { .buf = text, .cap = cap };
	if (cap)
		text[0] = '\0';
	*out = (struct diag_value){ .kind = r->kind, .u = r->u, .text = text };
	const struct expr_node *root = x ? x->root : NULL;
	const struct diag_type *t = root ? root->type : NULL;
	const struct diag_type *s = diag_type_strip(t);
	if (r->kind == DIAG_VALUE_ERROR || !s) {
		put_text(&o, r->data, r->len < DIAG_EXPR_MAX_BYTES ? r->len : DIAG_EXPR_MAX_BYTES);
		out->kind = DIAG_VALUE_ERROR;
		return;
	}
	if (root->op == N_STACK) { /* folded frames, unquoted: what flame graph tools read */
		out->buf = r->data;
		out->len = r->len;
		put_text(&o, r->data, r->len);
	} else if (s->kind == DIAG_TYPE_STRING) {
		out->buf = r->data;
		out->len = r->len;
		put_string(&o, r->data, r->len, false, r->u != EXPR_STR_OK);
	} else if (s->kind == DIAG_TYPE_BYTES) {
		out->buf = r->data;
		out->len = r->len;
		for (size_t i = 0; i < r->len; i++) {
			put_c(&o, hexdig[r->data[i] >> 4]);
			put_c(&o, hexdig[r->data[i] & 15]);
		}
	} else if (s->kind == DIAG_TYPE_STRUCT || s->kind == DIAG_TYPE_UNION || s->kind == DIAG_TYPE_ARRAY) {
		size_t objlen = s->size < EXPR_OBJ_MAX ? s->size : EXPR_OBJ_MAX;
		if (objlen > r->len)
			objlen = r->len;
		out->buf = r->data;
		out->len = objlen;
		o.caps = r->data + objlen;
		o.ncaps = r->len - objlen;
		put_object(&o, t, r->data, objlen, 0);
	} else if (root->op == N_CALL && !strcmp(root->s, "hex")) {
		put_hex(&o, r->u);
	} else if (expr_is_char_ptr(s)) {
		int status = r->len ? r->data[0] : EXPR_STR_NULL;
		size_t len = r->len ? r->len - 1 : 0;
		put_char_ptr(&o, r->u, status, r->data + 1, len);
		if (status == EXPR_STR_OK || status == EXPR_STR_TRUNC) {
			out->kind = DIAG_VALUE_STRING;
			out->buf = r->data + 1;
			out->len = len;
		}
	} else {
		put_scalar(&o, t, r->u, r->f, true);
	}
}
