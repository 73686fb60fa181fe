/* capture/internal: what the checker, the interpreter and the snapshot reader of lib/capture
 * share: each op's name and stack effect. Internal to lib/capture. */
#ifndef DIAG_CAPTURE_INTERNAL_H
#define DIAG_CAPTURE_INTERNAL_H

#include <stdint.h>

#include "arch/capture.h"

struct cap_op_info {
	const char *name;
	uint8_t pops, pushes;
};

/* The op's name and stack effect; NULL for an opcode >= DIAG_CAP_NOPS. */
const struct cap_op_info *cap_op_info(unsigned op);

#endif
