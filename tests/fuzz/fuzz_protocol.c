/* fuzz_protocol: libFuzzer target for the control server's input: each line of the input is
 * parsed by dmn_request_parse (daemon/diagnosed_request.c), the function the server runs on
 * every request line before it touches the daemon's state. A line must yield a command or a
 * one-line error reply, never a crash, a leak or an unterminated reply. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diagnosed_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct dmn_request rq;
		struct diag_error err = { 0 };
		if (dmn_request_parse(p, len, &rq, &err) < 0) {
			const char *why = err.msg;
			if (!memchr(why, '\0', sizeof(err.msg)) || !why[0] || strchr(why, '\n'))
				abort();
		} else {
			if (rq.cmd == DMN_CMD_ADD && !rq.spec)
				abort();
			if (memchr(rq.id, '\0', sizeof(rq.id)) == NULL)
				abort();
			dmn_request_fini(&rq);
		}
		p += len + 1;
	}
	return 0;
}
