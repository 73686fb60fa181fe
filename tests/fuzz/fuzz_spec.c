/* fuzz_spec: libFuzzer target for the spec JSON codec. Each input is parsed as the control
 * socket does (one object) and as the store does (an array, with `applied`); every spec that
 * decodes is encoded again, decoded again and must come back with the same text. Any crash,
 * leak, sanitizer report or failed round trip is a bug. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"

static char *encode(const struct diag_spec *s)
{
	cJSON *j = diag_spec_to_json(s, DIAG_SPEC_JSON_APPLIED, 0);
	char *t = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	return t;
}

/* What the daemon writes it must read back unchanged. */
static void round_trip(const struct diag_spec *s)
{
	char *t1 = encode(s);
	if (!t1)
		return;
	struct diag_spec **v = NULL;
	struct diag_error err = { 0 };
	int n = diag_spec_parse(t1, strlen(t1), false, DIAG_SPEC_KEEP_APPLIED, &v, &err);
	if (n != 1)
		abort();
	char *t2 = encode(v[0]);
	if (!t2 || strcmp(t1, t2) != 0)
		abort();
	struct diag_spec *d = diag_spec_dup(v[0]);
	diag_spec_free(d);
	(void)diag_spec_expiry_ns(v[0]);
	diag_spec_free_array(v, n);
	free(t1);
	free(t2);
}

static void run(const char *text, size_t len, bool store)
{
	struct diag_spec **v = NULL;
	struct diag_error err = { 0 };
	int n = diag_spec_parse(text, len, store, store ? DIAG_SPEC_KEEP_APPLIED : 0, &v, &err);
	if (n < 0) {
		if (!err.msg[0] || strchr(err.msg, '\n'))
			abort(); /* every error is one non-empty line */
		return;
	}
	for (int i = 0; i < n; i++) {
		if (!v[i]->id[0]) /* the daemon names a spec before it is ever written */
			snprintf(v[i]->id, sizeof(v[i]->id), "p1");
		round_trip(v[i]);
	}
	diag_spec_free_array(v, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	run(text, size, false);
	run(text, size, true);
	free(text);
	return 0;
}
