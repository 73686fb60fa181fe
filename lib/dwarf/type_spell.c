/* dwarf/type_spell: C spelling of diag_type values (for messages, casts and gdb-style pointer
 * prefixes). Pure; owns nothing. */
#include "dwarf/dwarf.h"

#include <stdio.h>
#include <string.h>

static size_t spell_base(const struct diag_type *t, char *buf, size_t cap)
{
	const char *tag = "";
	const char *name = t && t->name ? t->name : NULL;
	if (!t)
		return (size_t)snprintf(buf, cap, "void");
	switch (t->kind) {
	case DIAG_TYPE_STRUCT: tag = "struct "; break;
	case DIAG_TYPE_UNION: tag = "union "; break;
	case DIAG_TYPE_ENUM: tag = "enum "; break;
	case DIAG_TYPE_CONST: {
		size_t n = (size_t)snprintf(buf, cap, "const ");
		return n < cap ? n + spell_base(t->target, buf + n, cap - n) : n;
	}
	case DIAG_TYPE_VOLATILE: {
		size_t n = (size_t)snprintf(buf, cap, "volatile ");
		return n < cap ? n + spell_base(t->target, buf + n, cap - n) : n;
	}
	default: break;
	}
	if (!name)
		name = t->kind == DIAG_TYPE_STRUCT || t->kind == DIAG_TYPE_UNION || t->kind == DIAG_TYPE_ENUM
			? "{...}" : t->kind == DIAG_TYPE_VOID ? "void" : "?";
	return (size_t)snprintf(buf, cap, "%s%s", tag, name);
}

/* Function and array levels spelt inside one another: a hostile file's function may return a
 * pointer to itself (a cycle through a pointer is allowed), which would recurse for ever; real
 * C nests a handful (TYPE_MAX_DIMS array dimensions, 8, are each one level). */
#define SPELL_MAX_DEPTH 16

static void spell(const struct diag_type *t, char *buf, size_t cap, unsigned depth)
{
	if (!cap)
		return;
	if (depth > SPELL_MAX_DEPTH) {
		snprintf(buf, cap, "...");
		return;
	}
	/* peel pointers, consts on pointers and one array level, spell the base, then append */
	char suffix[64] = "";
	size_t sl = 0;
	const struct diag_type *cur = t;
	/* C has no qualified arrays: a const on an array (gcc's __func__) qualifies its elements */
	const char *elem_qual = NULL;
	if (cur && (cur->kind == DIAG_TYPE_CONST || cur->kind == DIAG_TYPE_VOLATILE) && cur->target &&
	    cur->target->kind == DIAG_TYPE_ARRAY) {
		elem_qual = cur->kind == DIAG_TYPE_CONST ? "const " : "volatile ";
		cur = cur->target;
	}
	while (cur && (cur->kind == DIAG_TYPE_PTR ||
		       (cur->kind == DIAG_TYPE_CONST && cur->target && cur->target->kind == DIAG_TYPE_PTR))) {
		const char *piece = cur->kind == DIAG_TYPE_PTR ? "*" : " const";
		size_t pl = strlen(piece);
		if (sl + pl + 1 >= sizeof(suffix))
			break;
		memmove(suffix + pl, suffix, sl + 1);
		memcpy(suffix, piece, pl);
		sl += pl;
		cur = cur->target;
	}
	if (cur && cur->kind == DIAG_TYPE_FUNC) {
		char ret[96];
		spell(cur->target, ret, sizeof(ret), depth + 1);
		snprintf(buf, cap, "%s (%s)()", ret, sl ? suffix : "");
		return;
	}
	if (cur && cur->kind == DIAG_TYPE_ARRAY) {
		char elem[128], spelt[120];
		spell(cur->target, spelt, sizeof(spelt), depth + 1);
		snprintf(elem, sizeof(elem), "%s%s",
			 elem_qual && strncmp(spelt, elem_qual, strlen(elem_qual)) != 0 ? elem_qual : "",
			 spelt);
		if (sl)
			snprintf(buf, cap, "%s (%s)[%llu]", elem, suffix, (unsigned long long)cur->count);
		else
			snprintf(buf, cap, "%s [%llu]", elem, (unsigned long long)cur->count);
		return;
	}
	size_t n = spell_base(cur, buf, cap);
	if (sl && n < cap)
		snprintf(buf + n, cap - n, " %s", suffix);
}

void diag_type_spell(const struct diag_type *t, char *buf, size_t cap)
{
	spell(t, buf, cap, 0);
}
