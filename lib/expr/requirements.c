/* requirements: what a compiled expression needs from a hit, so the engine can choose how to
 * take the hit. An expression over registers and constants can be evaluated from a register
 * snapshot recorded in the target (the jump-trampoline fast path, no stop); anything that
 * reads target memory or SSE state needs the thread stopped at the hit. Reads nothing. */
#include <string.h>

#include "expr/ast.h"

static bool node_registers_only(const struct expr_node *n)
{
	if (!n)
		return true;
	switch (n->op) {
	case N_INT:
	case N_FLOAT:
	case N_STRLIT:
	case N_REG:
	case N_ARG:
	case N_TID:
	case N_PID:
	case N_TIME:
	case N_COMM: /* the engine reads the thread's name from /proc, not from the target */
		return true;
	case N_UNARY:
	case N_BINARY:
		return node_registers_only(n->a) && node_registers_only(n->b);
	case N_CAST: /* a cast to a pointer or integer type is pure arithmetic */
		return node_registers_only(n->a);
	case N_CALL: /* hex() formats; str() and bytes() read memory */
		return n->s && strcmp(n->s, "hex") == 0 && node_registers_only(n->a);
	case N_STACK: /* walks the stopped thread's stack: never from a register snapshot */
		return false;
	default:
		return false; /* variables (locations), dereferences, strings, elapsed... */
	}
}

bool diag_expr_registers_only(const struct diag_expr *x)
{
	return !x || node_registers_only(x->root);
}
