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

#include <errno.h> /* program_invocation_short_name (_GNU_SOURCE) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sp_test_failed_asserts;
static int sp_test_totals[3]; /* pass, fail, skip */
/* sp_test_failed_asserts when the last case was reported: assertions that
 * fail after it belong to the next case, or to none (see sp_test_exit()). */
static int sp_test_mark;
static int sp_test_hidden_fails; /* failed cases that SP_TEST_CASE did not select */

/* SP_TEST_CASE=SUBSTRING (make test CASE=...): run only the cases whose name
 * contains SUBSTRING. True if the case NAME is to be run. Table-driven tests
 * ask before running each named case; RUN_TEST asks with the function's name. */
static inline bool sp_test_selected(const char *name)
{
	const char *want = getenv("SP_TEST_CASE");

	return !want || !*want || strstr(name, want);
}

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

/* Report a named case (table-driven tests): ok decides PASS/FAIL. A case
 * reported as passed while an assertion failed since the previous report
 * is a FAIL: a failed assertion never goes unreported. */
static inline void sp_test_report(const char *name, bool ok)
{
	int failed = sp_test_failed_asserts - sp_test_mark;

	sp_test_mark = sp_test_failed_asserts;
	if (!sp_test_selected(name)) {
		/* Run anyway (a table whose rows depend on each other), not
		 * reported; a failure still makes the exit status non-zero. */
		sp_test_hidden_fails += !ok || failed;
		return;
	}
	if (ok && failed)
		printf("FAIL: %s: %d assertion(s) failed since the previous case\n", name, failed);
	else
		printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
	fflush(stdout);
	sp_test_totals[ok && !failed ? 0 : 1]++;
}

/* Run one test function: void fn(void), if SP_TEST_CASE selects it.
 * Prints PASS/FAIL. */
#define RUN_TEST(fn)                                                                       \
	do {                                                                               \
		if (sp_test_selected(#fn)) {                                               \
			int ___before = sp_test_failed_asserts;                            \
			fn();                                                              \
			sp_test_report(#fn, sp_test_failed_asserts == ___before);          \
		}                                                                          \
	} while (0)

static inline void sp_test_skip(const char *name, const char *why)
{
	int failed = sp_test_failed_asserts - sp_test_mark;

	sp_test_mark = sp_test_failed_asserts;
	if (failed) {
		printf("FAIL: %s: %d assertion(s) failed since the previous case\n", name, failed);
		sp_test_totals[1]++;
	} else {
		printf("SKIP: %s: %s\n", name, why);
		sp_test_totals[2]++;
	}
	fflush(stdout);
}

/* Exit status for main(): non-zero if a case failed or an assertion failed
 * after the last reported case (which then gets its own FAIL line). */
static inline int sp_test_exit(void)
{
	int failed = sp_test_failed_asserts - sp_test_mark;

	if (failed) {
		printf("FAIL: %s: %d assertion(s) failed after the last reported case\n",
		       program_invocation_short_name, failed);
		fflush(stdout);
		sp_test_mark = sp_test_failed_asserts;
		sp_test_totals[1]++;
	}
	return sp_test_totals[1] || sp_test_hidden_fails ? 1 : 0;
}

#endif /* SP_TEST_H */
