/* core/strmap_test.c: tests of the core's string-keyed map (strmap.c):
 * copied keys, replacing and deleting values, many keys, each and clear. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <parley/base.h>
#include "core/strmap.h"
#include "../../tests/unit/test.h"

static void *val(intptr_t i)
{
    return (void *)i;
}

PL_TEST(keys_are_copied)
{
    pl__strmap m = PL__STRMAP_INIT;
    char key[16] = "alice";
    CHECK_NULL(pl__strmap_set(&m, key, val(1)));
    strcpy(key, "bob");
    CHECK(pl__strmap_get(&m, "alice") == val(1));
    CHECK_NULL(pl__strmap_get(&m, "bob"));
    pl__strmap_clear(&m);
}

PL_TEST(set_replaces_and_del_returns_the_value)
{
    pl__strmap m = PL__STRMAP_INIT;
    CHECK_NULL(pl__strmap_get(&m, "a"));
    CHECK_NULL(pl__strmap_del(&m, "a"));
    CHECK_NULL(pl__strmap_set(&m, "a", val(1)));
    CHECK(pl__strmap_set(&m, "a", val(2)) == val(1));
    CHECK_EQ(pl__strmap_count(&m), 1);
    CHECK(pl__strmap_del(&m, "a") == val(2));
    CHECK_NULL(pl__strmap_get(&m, "a"));
    CHECK_EQ(pl__strmap_count(&m), 0);
    pl__strmap_clear(&m);
}

static void sum(const char *key, void *value, void *ud)
{
    *(intptr_t *)ud += (intptr_t)value;
}

PL_TEST(many_keys_each_and_clear)
{
    pl__strmap m = PL__STRMAP_INIT;
    char key[16];
    for (intptr_t i = 1; i <= 1000; i++) {
        snprintf(key, sizeof key, "k%ld", (long)i);
        pl__strmap_set(&m, key, val(i));
    }
    CHECK_EQ(pl__strmap_count(&m), 1000);
    for (intptr_t i = 1; i <= 1000; i++) {
        snprintf(key, sizeof key, "k%ld", (long)i);
        CHECK(pl__strmap_get(&m, key) == val(i));
    }
    intptr_t total = 0;
    pl__strmap_each(&m, sum, &total);
    CHECK_EQ(total, 1000 * 1001 / 2);
    pl__strmap_clear(&m);
    CHECK_EQ(pl__strmap_count(&m), 0);
    CHECK_NULL(pl__strmap_get(&m, "k1"));
}
