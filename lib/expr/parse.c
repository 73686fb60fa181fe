/* expr/parse: lexer and recursive-descent parser of the value language (C expression subset
 * plus $names and helper calls). Produces an untyped tree in a fixed arena; knows nothing of
 * DWARF beyond the is_type callback, and never reads a process. */
#include "expr/ast.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lexer {
	const char *src;
	size_t pos;
	/* current token */
	enum expr_tok tok;
	size_t start;          /* offset of the token */
	int64_t ival;
	int isuffix;           /* integer literal: 1 'u', 2 'l' (bits) */
	double fval;
	char *text;            /* identifier / string literal (malloc'd, owned by the lexer until taken) */
	size_t tlen;
	int depth;
	struct expr_parse_arena *ar;
	bool (*is_type)(void *arg, const char *name);
	void *arg;
	struct diag_error *err;
	int rc;                /* first error */
};

static void pos_of(const struct lexer *lx, size_t off, int *line, int *col)
{
	int l = 1, c = 1;
	for (size_t i = 0; i < off && lx->src[i]; i++) {
		if (lx->src[i] == '\n') {
			l++;
			c = 1;
		} else {
			c++;
		}
	}
	*line = l;
	*col = c;
}

static int fail(struct lexer *lx, int code, size_t off, const char *what)
{
	if (lx->rc)
		return lx->rc;
	int line, col;
	pos_of(lx, off, &line, &col);
	if (code == -DIAG_E_PARSE)
		diag_error_set(lx->err, code, "syntax error at %d:%d: %s", line, col, what);
	else
		diag_error_set(lx->err, code, "%s at %d:%d", what, line, col);
	lx->rc = code;
	return code;
}

static int lex_escape(const char *s, size_t *i)
{
	char c = s[(*i)++];
	switch (c) {
	case 'n': return '\n';
	case 't': return '\t';
	case 'r': return '\r';
	case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
		int v = c - '0';
		for (int k = 0; k < 2 && s[*i] >= '0' && s[*i] <= '7'; k++)
			v = v * 8 + (s[(*i)++] - '0');
		return v & 0xff;
	}
	case 'x': {
		int v = 0, k = 0;
		while (isxdigit((unsigned char)s[*i]) && k++ < 2) {
			char h = s[(*i)++];
			v = v * 16 + (isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
		}
		return v;
	}
	case 'a': return '\a';
	case 'b': return '\b';
	case 'f': return '\f';
	case 'v': return '\v';
	case 'e': return 27;
	case '\0': (*i)--; return -1;
	default: return (unsigned char)c;
	}
}

static int lex_string(struct lexer *lx)
{
	const char *s = lx->src;
	size_t i = lx->pos + 1, n = 0;
	char *buf = malloc(strlen(s + i) + 1);
	if (!buf)
		return fail(lx, -ENOMEM, lx->start, "out of memory");
	while (s[i] && s[i] != '"') {
		int c = (unsigned char)s[i++];
		if (c == '\\' && (c = lex_escape(s, &i)) < 0)
			break;
		buf[n++] = (char)c;
	}
	if (s[i] != '"') {
		free(buf);
		return fail(lx, -DIAG_E_PARSE, lx->start, "unterminated string literal");
	}
	buf[n] = '\0';
	lx->text = buf;
	lx->tlen = n;
	lx->pos = i + 1;
	lx->tok = T_STR;
	return 0;
}

static int lex_number(struct lexer *lx)
{
	const char *s = lx->src + lx->pos;
	char *end = NULL;
	bool is_float = false;
	if (!(s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) {
		size_t k = strspn(s, "0123456789");
		is_float = s[k] == '.' || s[k] == 'e' || s[k] == 'E';
	}
	errno = 0;
	if (is_float) {
		lx->fval = strtod(s, &end);
		lx->tok = T_FLOAT;
	} else {
		lx->ival = (int64_t)strtoull(s, &end, 0);
		lx->tok = T_INT;
	}
	if (errno == ERANGE)
		return fail(lx, -DIAG_E_PARSE, lx->start, "number out of range");
	lx->isuffix = 0;
	while (*end == 'u' || *end == 'U' || *end == 'l' || *end == 'L' ||
	       (is_float && (*end == 'f' || *end == 'F'))) {
		lx->isuffix |= (*end == 'u' || *end == 'U') ? 1 : (*end == 'l' || *end == 'L') ? 2 : 0;
		end++;
	}
	if (isalnum((unsigned char)*end) || *end == '_')
		return fail(lx, -DIAG_E_PARSE, (size_t)(end - lx->src), "malformed number");
	lx->pos = (size_t)(end - lx->src);
	return 0;
}

static int lex_ident(struct lexer *lx, size_t from)
{
	const char *s = lx->src;
	size_t i = from;
	while (isalnum((unsigned char)s[i]) || s[i] == '_')
		i++;
	lx->tlen = i - from;
	lx->text = strndup(s + from, lx->tlen);
	if (!lx->text)
		return fail(lx, -ENOMEM, lx->start, "out of memory");
	lx->pos = i;
	return 0;
}

struct punct {
	const char *s;
	enum expr_tok t;
};

static const struct punct puncts[] = {
	{ "->", T_ARROW }, { "<<", T_SHL }, { ">>", T_SHR }, { "==", T_EQ }, { "!=", T_NE },
	{ "<=", T_LE }, { ">=", T_GE }, { "&&", T_ANDAND }, { "||", T_OROR }, { "(", T_LP },
	{ ")", T_RP }, { "[", T_LB }, { "]", T_RB }, { ".", T_DOT }, { ",", T_COMMA },
	{ "+", T_PLUS }, { "-", T_MINUS }, { "*", T_STAR }, { "/", T_SLASH }, { "%", T_PCT },
	{ "&", T_AMP }, { "|", T_PIPE }, { "^", T_CARET }, { "~", T_TILDE }, { "!", T_BANG },
	{ "<", T_LT }, { ">", T_GT },
};

static int next(struct lexer *lx)
{
	free(lx->text);
	lx->text = NULL;
	if (lx->rc)
		return lx->rc;
	const char *s = lx->src;
	while (isspace((unsigned char)s[lx->pos]))
		lx->pos++;
	lx->start = lx->pos;
	char c = s[lx->pos];
	if (!c) {
		lx->tok = T_EOF;
		return 0;
	}
	if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)s[lx->pos + 1])))
		return lex_number(lx);
	if (c == '"')
		return lex_string(lx);
	if (c == '\'') {
		size_t i = lx->pos + 1;
		int v = (unsigned char)s[i++];
		if (v == 0)
			return fail(lx, -DIAG_E_PARSE, lx->start, "malformed character literal");
		if (v == '\\')
			v = lex_escape(s, &i);
		if (v < 0 || s[i] != '\'' || s[lx->pos + 1] == '\'')
			return fail(lx, -DIAG_E_PARSE, lx->start, "malformed character literal");
		lx->ival = (signed char)v;
		lx->tok = T_CHAR;
		lx->pos = i + 1;
		return 0;
	}
	if (isalpha((unsigned char)c) || c == '_') {
		lx->tok = T_IDENT;
		return lex_ident(lx, lx->pos);
	}
	if (c == '$') {
		if (!isalnum((unsigned char)s[lx->pos + 1]) && s[lx->pos + 1] != '_')
			return fail(lx, -DIAG_E_PARSE, lx->start, "expected a name after '$'");
		lx->tok = T_DOLLAR;
		return lex_ident(lx, lx->pos + 1);
	}
	for (size_t k = 0; k < sizeof(puncts) / sizeof(puncts[0]); k++) {
		size_t n = strlen(puncts[k].s);
		if (!strncmp(s + lx->pos, puncts[k].s, n)) {
			lx->tok = puncts[k].t;
			lx->pos += n;
			return 0;
		}
	}
	char what[48];
	snprintf(what, sizeof(what), "unexpected character '%c'", c);
	return fail(lx, -DIAG_E_PARSE, lx->start, what);
}

static struct expr_node *node(struct lexer *lx, enum expr_op op, size_t off)
{
	if (lx->rc)
		return NULL;
	if (lx->ar->n >= EXPR_MAX_NODES) {
		fail(lx, -DIAG_E_LIMIT, off, "expression too large (more than 256 nodes)");
		return NULL;
	}
	struct expr_node *n = &lx->ar->nodes[lx->ar->n++];
	memset(n, 0, sizeof(*n));
	n->op = op;
	n->var = -1;
	pos_of(lx, off, &n->line, &n->col);
	return n;
}

static char *take_text(struct lexer *lx)
{
	char *t = lx->text;
	lx->text = NULL;
	return t;
}

static bool expect(struct lexer *lx, enum expr_tok t, const char *what)
{
	if (lx->tok != t) {
		char msg[64];
		snprintf(msg, sizeof(msg), "expected %s", what);
		fail(lx, -DIAG_E_PARSE, lx->start, msg);
		return false;
	}
	return next(lx) == 0;
}

static struct expr_node *parse_expr(struct lexer *lx);
static struct expr_node *parse_unary(struct lexer *lx);

static const char *const type_words[] = {
	"struct", "union", "enum", "const", "volatile", "unsigned", "signed", "int", "char",
	"short", "long", "float", "double", "void", "_Bool", "bool", NULL,
};

static bool is_type_word(const char *w)
{
	for (size_t i = 0; type_words[i]; i++)
		if (!strcmp(w, type_words[i]))
			return true;
	return false;
}

static bool starts_type(struct lexer *lx)
{
	if (lx->tok != T_IDENT)
		return false;
	return is_type_word(lx->text) || (lx->is_type && lx->is_type(lx->arg, lx->text));
}

/* After '(' when a type starts: "unsigned long **" -> s = "unsigned long", ival = 2. */
static struct expr_node *parse_cast(struct lexer *lx, size_t off)
{
	char spell[256] = "";
	size_t used = 0;
	bool seen_name = false;
	while (lx->tok == T_IDENT) {
		bool kw = is_type_word(lx->text);
		if (!kw && seen_name)
			break;
		if (!kw || !strcmp(lx->text, "struct") || !strcmp(lx->text, "union") ||
		    !strcmp(lx->text, "enum"))
			seen_name = !kw;
		int n = snprintf(spell + used, sizeof(spell) - used, "%s%s", used ? " " : "", lx->text);
		if (n < 0 || (size_t)n >= sizeof(spell) - used) {
			fail(lx, -DIAG_E_LIMIT, lx->start, "type name too long");
			return NULL;
		}
		used += (size_t)n;
		if (next(lx))
			return NULL;
	}
	int stars = 0;
	while (lx->tok == T_STAR || (lx->tok == T_IDENT && (!strcmp(lx->text, "const") ||
							    !strcmp(lx->text, "volatile")))) {
		stars += lx->tok == T_STAR;
		if (next(lx))
			return NULL;
	}
	if (!expect(lx, T_RP, "')' after the type name"))
		return NULL;
	struct expr_node *n = node(lx, N_CAST, off);
	if (!n)
		return NULL;
	n->s = strdup(spell);
	n->ival = stars;
	if (!n->s) {
		fail(lx, -ENOMEM, off, "out of memory");
		return NULL;
	}
	n->a = parse_unary(lx);
	return n->a ? n : NULL;
}

static struct expr_node *parse_call(struct lexer *lx, struct expr_node *n)
{
	n->op = N_CALL;
	if (next(lx))
		return NULL;
	struct expr_node **slot = &n->a;
	if (lx->tok != T_RP) {
		for (;;) {
			struct expr_node *arg = parse_expr(lx);
			if (!arg)
				return NULL;
			if (n->nargs == 2) {
				fail(lx, -DIAG_E_PARSE, lx->start, "too many arguments (at most 2)");
				return NULL;
			}
			*slot = arg;
			slot = &n->b;
			n->nargs++;
			if (lx->tok != T_COMMA)
				break;
			if (next(lx))
				return NULL;
		}
	}
	return expect(lx, T_RP, "')' after the arguments") ? n : NULL;
}

static struct expr_node *parse_primary(struct lexer *lx)
{
	size_t off = lx->start;
	struct expr_node *n = NULL;
	switch (lx->tok) {
	case T_INT:
	case T_CHAR:
		n = node(lx, N_INT, off);
		if (n) {
			n->ival = lx->ival;
			n->type = lx->tok == T_CHAR ? &expr_t_char : NULL;
			if (lx->tok == T_INT && lx->isuffix)
				n->type = lx->isuffix == 1 ? &expr_t_uint : lx->isuffix == 2 ? &expr_t_long
					: &expr_t_ulong;
		}
		break;
	case T_FLOAT:
		n = node(lx, N_FLOAT, off);
		if (n)
			n->fval = lx->fval;
		break;
	case T_STR:
		n = node(lx, N_STRLIT, off);
		if (n) {
			n->slen = lx->tlen;
			n->s = take_text(lx);
		}
		break;
	case T_DOLLAR:
		n = node(lx, N_DOLLAR, off);
		if (n)
			n->s = take_text(lx);
		break;
	case T_IDENT:
		n = node(lx, N_NAME, off);
		if (!n)
			return NULL;
		n->s = take_text(lx);
		if (next(lx))
			return NULL;
		return lx->tok == T_LP ? parse_call(lx, n) : n;
	case T_LP:
		if (next(lx))
			return NULL;
		if (starts_type(lx))
			return parse_cast(lx, off);
		n = parse_expr(lx);
		return n && expect(lx, T_RP, "')'") ? n : NULL;
	case T_EOF:
		fail(lx, -DIAG_E_PARSE, off, "unexpected end of expression");
		return NULL;
	default:
		fail(lx, -DIAG_E_PARSE, off, "expected a value");
		return NULL;
	}
	if (!n || next(lx))
		return NULL;
	return n;
}

static struct expr_node *parse_postfix(struct lexer *lx)
{
	struct expr_node *n = parse_primary(lx);
	while (n && (lx->tok == T_DOT || lx->tok == T_ARROW || lx->tok == T_LB)) {
		size_t off = lx->start;
		enum expr_tok t = lx->tok;
		if (next(lx))
			return NULL;
		struct expr_node *p = node(lx, t == T_LB ? N_INDEX : N_MEMBER, off);
		if (!p)
			return NULL;
		p->tok = t;
		p->a = n;
		if (t == T_LB) {
			p->b = parse_expr(lx);
			if (!p->b || !expect(lx, T_RB, "']'"))
				return NULL;
		} else {
			if (lx->tok != T_IDENT) {
				fail(lx, -DIAG_E_PARSE, lx->start, "expected a member name");
				return NULL;
			}
			p->s = take_text(lx);
			if (next(lx))
				return NULL;
		}
		n = p;
	}
	return n;
}

static struct expr_node *parse_unary(struct lexer *lx)
{
	size_t off = lx->start;
	enum expr_tok t = lx->tok;
	if (t != T_MINUS && t != T_BANG && t != T_TILDE && t != T_STAR && t != T_AMP && t != T_PLUS)
		return parse_postfix(lx);
	if (++lx->depth > EXPR_MAX_DEPTH) {
		fail(lx, -DIAG_E_LIMIT, off, "expression nested too deeply");
		return NULL;
	}
	if (next(lx))
		return NULL;
	struct expr_node *a = parse_unary(lx);
	lx->depth--;
	if (!a || t == T_PLUS)
		return a;
	struct expr_node *n = node(lx, t == T_STAR ? N_DEREF : t == T_AMP ? N_ADDR : N_UNARY, off);
	if (!n)
		return NULL;
	n->tok = t;
	n->a = a;
	return n;
}

/* Binary precedence, higher binds tighter; 0: not a binary operator. */
static int prec(enum expr_tok t)
{
	switch (t) {
	case T_OROR: return 1;
	case T_ANDAND: return 2;
	case T_PIPE: return 3;
	case T_CARET: return 4;
	case T_AMP: return 5;
	case T_EQ: case T_NE: return 6;
	case T_LT: case T_LE: case T_GT: case T_GE: return 7;
	case T_SHL: case T_SHR: return 8;
	case T_PLUS: case T_MINUS: return 9;
	case T_STAR: case T_SLASH: case T_PCT: return 10;
	default: return 0;
	}
}

static struct expr_node *parse_binary(struct lexer *lx, int min)
{
	if (++lx->depth > EXPR_MAX_DEPTH) {
		fail(lx, -DIAG_E_LIMIT, lx->start, "expression nested too deeply");
		return NULL;
	}
	struct expr_node *l = parse_unary(lx);
	while (l && prec(lx->tok) >= min) {
		enum expr_tok t = lx->tok;
		size_t off = lx->start;
		if (next(lx))
			return NULL;
		struct expr_node *r = parse_binary(lx, prec(t) + 1);
		if (!r)
			return NULL;
		struct expr_node *n = node(lx, N_BINARY, off);
		if (!n)
			return NULL;
		n->tok = t;
		n->a = l;
		n->b = r;
		/* the operator's position is less useful than the left operand's */
		n->line = l->line;
		n->col = l->col;
		l = n;
	}
	lx->depth--;
	return l;
}

static struct expr_node *parse_expr(struct lexer *lx)
{
	return parse_binary(lx, 1);
}

int expr_parse(const char *src, struct expr_parse_arena *ar,
	       bool (*is_type)(void *arg, const char *name), void *arg,
	       struct expr_node **root, struct diag_error *err)
{
	struct lexer lx = { .src = src, .ar = ar, .is_type = is_type, .arg = arg, .err = err };
	ar->n = 0;
	if (strlen(src) > EXPR_MAX_SRC)
		return fail(&lx, -DIAG_E_LIMIT, 0, "expression longer than 1024 characters");
	struct expr_node *n = NULL;
	if (next(&lx) == 0) {
		if (lx.tok == T_EOF)
			fail(&lx, -DIAG_E_PARSE, 0, "empty expression");
		else
			n = parse_expr(&lx);
	}
	if (n && lx.tok != T_EOF)
		fail(&lx, -DIAG_E_PARSE, lx.start,
		     lx.tok == T_RP ? "unbalanced ')'" : "expected an operator or the end");
	free(lx.text);
	if (lx.rc) {
		expr_tree_free_strings(ar);
		return lx.rc;
	}
	*root = n;
	return 0;
}

void expr_tree_free_strings(struct expr_parse_arena *ar)
{
	for (size_t i = 0; i < ar->n; i++) {
		free(ar->nodes[i].s);
		ar->nodes[i].s = NULL;
	}
}
