/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Minimal test harness shared by the user-space and BPF test drivers.
 * Each test prints one line the runner counts: "PASS: name",
 * "FAIL: name: why" or "SKIP: name: why". Assertions log what was expected
 * and what was seen and return a bool so a test can stop early:
 *   if (!ASSERT_EQ(got, 3, "entries")) goto out;
 */
#ifndef SP_TEST_H
#define SP_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sp_test_failed_asserts;
static int sp_test_totals[3]; /* pass, fail, skip */

#define ASSERT_TRUE(cond, what)                                                            \
	({                                                                                 \
		bool ___ok = !!(cond);                                                     \
		if (!___ok) {                                                              \
			fprintf(stderr, "  %s:%d: %s: expected true\n", __FILE__, __LINE__, \
				(what));                                                   \
			sp_test_failed_asserts++;                                          \
		}                                                                          \
		___ok;                                                                     \
	})

#define ASSERT_EQ(got, want, what)                                                         \
	({                                                                                 \
		long long ___g = (long long)(got), ___w = (long long)(want);               \
		bool ___ok = ___g == ___w;                                                 \
		if (!___ok) {                                                              \
			fprintf(stderr, "  %s:%d: %s: expected %lld, got %lld\n", __FILE__,  \
				__LINE__, (what), ___w, ___g);                              \
			sp_test_failed_asserts++;                                          \
		}                                                                          \
		___ok;                                                                     \
	})

#define ASSERT_NEQ(got, notwant, what)                                                     \
	({                                                                                 \
		long long ___g = (long long)(got), ___w = (long long)(notwant);            \
		bool ___ok = ___g != ___w;                                                 \
		if (!___ok) {                                                              \
			fprintf(stderr, "  %s:%d: %s: expected not %lld\n", __FILE__,        \
				__LINE__, (what), ___w);                                   \
			sp_test_failed_asserts++;                                          \
		}                                                                          \
		___ok;                                                                     \
	})

#define ASSERT_LE(got, max, what)                                                          \
	({                                                                                 \
		double ___g = (double)(got), ___m = (double)(max);                         \
		bool ___ok = ___g <= ___m;                                                 \
		if (!___ok) {                                                              \
			fprintf(stderr, "  %s:%d: %s: expected <= %g, got %g\n", __FILE__,   \
				__LINE__, (what), ___m, ___g);                              \
			sp_test_failed_asserts++;                                          \
		}                                                                          \
		___ok;                                                                     \
	})

#define ASSERT_STREQ(got, want, what)                                                      \
	({                                                                                 \
		const char *___g = (got), *___w = (want);                                  \
		bool ___ok = ___g && ___w && strcmp(___g, ___w) == 0;                      \
		if (!___ok) {                                                              \
			fprintf(stderr, "  %s:%d: %s: expected \"%s\", got \"%s\"\n",        \
				__FILE__, __LINE__, (what), ___w ? ___w : "(null)",        \
				___g ? ___g : "(null)");                                   \
			sp_test_failed_asserts++;                                          \
		}                                                                          \
		___ok;                                                                     \
	})

/* Substring check: handy for error messages. */
#define ASSERT_CONTAINS(hay, needle, what)                                                 \
	({                                                                                 \
		const char *___h = (hay), *___n = (needle);                                \
		bool ___ok = ___h && ___n && strstr(___h, ___n);                           \
		if (!___ok) {                                                              \
			fprintf(stderr, "  %s:%d: %s: expected \"%s\" in \"%s\"\n",          \
				__FILE__, __LINE__, (what), ___n, ___h ? ___h : "(null)"); \
			sp_test_failed_asserts++;                                          \
		}                                                                          \
		___ok;                                                                     \
	})

/* Run one test function: void fn(void). Prints PASS/FAIL. */
#define RUN_TEST(fn)                                                                       \
	do {                                                                               \
		int ___before = sp_test_failed_asserts;                                    \
		fn();                                                                      \
		bool ___ok = sp_test_failed_asserts == ___before;                          \
		printf("%s: %s\n", ___ok ? "PASS" : "FAIL", #fn);                          \
		fflush(stdout);                                                            \
		sp_test_totals[___ok ? 0 : 1]++;                                           \
	} while (0)

/* Report a named case (table-driven tests): ok decides PASS/FAIL. */
static inline void sp_test_report(const char *name, bool ok)
{
	printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
	fflush(stdout);
	sp_test_totals[ok ? 0 : 1]++;
}

static inline void sp_test_skip(const char *name, const char *why)
{
	printf("SKIP: %s: %s\n", name, why);
	fflush(stdout);
	sp_test_totals[2]++;
}

/* Exit status for main(): non-zero if anything failed. */
static inline int sp_test_exit(void)
{
	return sp_test_totals[1] ? 1 : 0;
}

#endif /* SP_TEST_H */
