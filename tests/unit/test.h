/* tests/unit/test.h: the unit test API. Each PL_TEST registers a test;
 * the runner (runner.c) gives every test its own process and a timeout
 * and prints one "PASS suite:name" or "FAIL suite:name" line per test. */
#ifndef PL_TEST_H
#define PL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*pl_test_fn)(void);
void pl_test_register(const char *name, pl_test_fn fn);

#define PL_TEST(name) \
    static void name(void); \
    __attribute__((constructor)) static void pl_test_reg_##name(void) \
    { pl_test_register(#name, name); } \
    static void name(void)

#define CHECK(cond) do { \
    if (!(cond)) { \
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        exit(1); \
    } } while (0)

#define CHECK_EQ(a, b) do { \
    long long pl_a_ = (long long)(a), pl_b_ = (long long)(b); \
    if (pl_a_ != pl_b_) { \
        fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, expected %s == %lld\n", \
                __FILE__, __LINE__, #a, pl_a_, #b, pl_b_); \
        exit(1); \
    } } while (0)

#define CHECK_STR(a, b) do { \
    const char *pl_sa_ = (a), *pl_sb_ = (b); \
    if (!pl_sa_ || !pl_sb_ || strcmp(pl_sa_, pl_sb_) != 0) { \
        fprintf(stderr, "%s:%d: CHECK_STR failed: %s\n  got:      %s\n  expected: %s\n", \
                __FILE__, __LINE__, #a, pl_sa_ ? pl_sa_ : "(null)", \
                pl_sb_ ? pl_sb_ : "(null)"); \
        exit(1); \
    } } while (0)

#define CHECK_NULL(a) CHECK((a) == NULL)

#endif
