/* check: the minimal assertion helpers shared by unit tests. Prints file:line and both sides of
 * a failed assertion; never aborts, so one run reports every failure. */
#ifndef DIAG_TESTS_CHECK_H
#define DIAG_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
			check_failures++;                                            \
		}                                                                    \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                           \
	do {                                                                         \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);      \
		if (check_a_ != check_b_) {                                          \
			fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, \
				__LINE__, #a, #b, check_a_, check_b_);               \
			check_failures++;                                            \
		}                                                                    \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                           \
	do {                                                                         \
		const char *check_a_ = (a), *check_b_ = (b);                         \
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {     \
			fprintf(stderr, "%s:%d: %s == %s failed:\n  left:  %s\n  right: %s\n", \
				__FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)", \
				check_b_ ? check_b_ : "(null)");                     \
			check_failures++;                                            \
		}                                                                    \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                                  \
	do {                                                                         \
		if (!strstr((hay), (needle))) {                                      \
			fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n", __FILE__, \
				__LINE__, (hay), (needle));                          \
			check_failures++;                                            \
		}                                                                    \
	} while (0)

#define CHECK_DONE()                                                                 \
	(check_failures ? (fprintf(stderr, "%d check(s) failed\n", check_failures), 1) : 0)

#endif
