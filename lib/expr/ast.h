/* expr/ast: the syntax tree shared by the parser, the type checker, the evaluator and the
 * renderer of the value language. Internal to lib/expr; owns nothing outside the tree. */
#ifndef DIAG_EXPR_AST_H
#define DIAG_EXPR_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dwarf/type_model.h"
#include "expr/expr.h"

#define EXPR_MAX_SRC 1024   /* longest expression accepted */
#define EXPR_MAX_NODES 256  /* bound on the tree, so a hit's work is bounded */
#define EXPR_MAX_DEPTH 48   /* parser recursion bound */
#define EXPR_STR_MAX 200    /* default string capture, gdb's `print elements` */
#define EXPR_RUNTIME_LEN_MAX 1024 /* str(p, n) / bytes(p, n) with n an expression: clamped here
                                   * (a capture in the target reserves the bound per hit) */

enum expr_op {
	N_INT,      /* ival, literal */
	N_FLOAT,    /* fval */
	N_STRLIT,   /* s (length slen) */
	N_NAME,     /* s: resolved by the checker into N_VAR / N_REG / ... */
	N_DOLLAR,   /* s: $name before resolution */
	N_REG,      /* reg_off, reg_width */
	N_ARG,      /* ival = 1..6 */
	N_TID, N_PID, N_COMM, N_TIME, N_ELAPSED, N_RETVAL,
	N_VAR,      /* var_index into the scope's variables */
	N_UNARY,    /* tok in '-', '!', '~' */
	N_BINARY,   /* tok: arithmetic, comparison, && || */
	N_STREQ,    /* a (C string) tok(== / !=) b (literal) */
	N_DEREF,    /* *a */
	N_ADDR,     /* &a */
	N_MEMBER,   /* a.s / a->s (tok '.' or ARROW); member set by the checker */
	N_INDEX,    /* a[b] */
	N_CAST,     /* (type)a: cast_type set by the parser spelling (s) and the checker */
	N_CALL,     /* s(args): str, hex, bytes */
	N_STACK,    /* `stack` / `stack(N)`: the call stack, ival = frames at most (checker) */
};

enum expr_tok {
	T_EOF = 0, T_INT, T_FLOAT, T_STR, T_CHAR, T_IDENT, T_DOLLAR,
	T_LP, T_RP, T_LB, T_RB, T_DOT, T_ARROW, T_COMMA,
	T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PCT, T_AMP, T_PIPE, T_CARET, T_TILDE, T_BANG,
	T_SHL, T_SHR, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_ANDAND, T_OROR,
};

struct expr_node {
	enum expr_op op;
	enum expr_tok tok;
	int line, col;                 /* position of the node's first character */
	struct expr_node *a, *b;       /* operands; N_CALL: a = first arg, b = second */
	int nargs;
	int64_t ival;
	double fval;
	char *s;                       /* name, string literal, member, cast spelling */
	size_t slen;
	/* filled by the checker */
	const struct diag_type *type;  /* value type (never NULL after checking; void-type for void) */
	const struct diag_member *member;
	int reg_off;
	unsigned reg_width;
	int var;                       /* index in the compiled scope's variables */
	uint64_t max;                  /* str()/bytes() bound */
	bool runtime_len;              /* str()/bytes(): the length is the expression b, clamped
	                                * to max (EXPR_RUNTIME_LEN_MAX) */
	bool lvalue;                   /* designates an object (memory or register location) */
};

/* Parse src into a tree (nodes allocated in arena order; *count set). is_type tells the parser
 * which identifiers name types (for casts); it may be NULL. Returns 0 or -DIAG_E_PARSE /
 * -DIAG_E_LIMIT / -ENOMEM with err set ("value: syntax error at 1:7: expected ')'"). */
struct expr_parse_arena {
	struct expr_node nodes[EXPR_MAX_NODES];
	size_t n;
};
int expr_parse(const char *src, struct expr_parse_arena *ar,
	       bool (*is_type)(void *arg, const char *name), void *arg,
	       struct expr_node **root, struct diag_error *err);
void expr_tree_free_strings(struct expr_parse_arena *ar);

/* Cast spellings are stored in s as "struct foo **": base words then stars. */

/* Builtin types used when there is no DWARF, and for literals and results (builtin_types.c). */
extern const struct diag_type expr_t_int, expr_t_uint, expr_t_long, expr_t_ulong, expr_t_double,
	expr_t_float, expr_t_char, expr_t_uchar, expr_t_schar, expr_t_short, expr_t_ushort,
	expr_t_llong, expr_t_ullong, expr_t_bool, expr_t_void, expr_t_voidptr, expr_t_charptr,
	expr_t_string, expr_t_bytes;

#endif

#define EXPR_MAX_OWNED_TYPES 32

/* A compiled expression: the checked tree and what it needs at a hit. */
struct diag_expr {
	char *src;
	struct expr_parse_arena ar;
	struct expr_node *root;
	struct diag_dwarf_scope *scope;     /* NULL without DWARF */
	struct diag_dwarf_var *globals;     /* globals referenced, var index >= scope->nvars */
	size_t nglobals, capglobals;
	uint64_t bias;
	enum diag_event_kind event;
	struct diag_type owned[EXPR_MAX_OWNED_TYPES]; /* pointer types made by casts and & */
	size_t nowned;
	_Atomic unsigned extra_refs; /* diag_expr_ref's, beyond the compiler's own */
};

/* The variable a N_VAR node names. */
struct diag_dwarf_var;
const struct diag_dwarf_var *expr_var(const struct diag_expr *x, int index);

/* Type predicates shared by checker, evaluator and renderer (types stripped inside). */
bool expr_is_integer(const struct diag_type *t);   /* INT, BOOL, ENUM */
bool expr_is_scalar(const struct diag_type *t);    /* integer, FLOAT, PTR */
bool expr_is_char_ptr(const struct diag_type *t);  /* pointer to a char-like INT */
bool expr_is_signed(const struct diag_type *t);

/* A bit field's value from the bytes of its storage unit (avail of them; callers check
 * expr_bitfield_fits first: DWARF may claim any width, only fields inside 64 bits are read). */
bool expr_bitfield_fits(const struct diag_member *m);
uint64_t expr_bitfield(const uint8_t *b, size_t avail, const struct diag_member *m);

/* Walk the char pointers inside an aggregate of type t in a fixed order (members in order,
 * array elements up to EXPR_ARRAY_MAX), calling cb with the byte offset of each pointer. Both
 * the evaluator (which captures the strings) and the renderer (which prints them) use it. */
#define EXPR_ARRAY_MAX 200
void expr_walk_strings(const struct diag_type *t, uint64_t off, uint64_t limit,
		       void (*cb)(void *arg, uint64_t off), void *arg, int depth);

/* u truncated to size bytes (0 or >= 8: 64 bits) and extended back, with its sign when
 * is_signed: how every integer value of the language is held in 64 bits (eval.c). */
uint64_t expr_extend(uint64_t u, uint64_t size, bool is_signed);
/* Bytes of what a pointer or array type points to (1 for void or unknown sizes). */
uint64_t expr_elem_size(const struct diag_type *t);

/* Usual arithmetic conversions of C for two operand types. */
const struct diag_type *expr_arith_type(const struct diag_type *a, const struct diag_type *b);

/* Aggregates: bytes of the object kept in a result (the rest is left for captured strings). */
#define EXPR_OBJ_MAX 3072
/* Status byte before a captured string. */
enum { EXPR_STR_OK = 0, EXPR_STR_FAULT = 1, EXPR_STR_TRUNC = 2, EXPR_STR_NULL = 3, EXPR_STR_SKIPPED = 4 };
