/* core/htab_test.c: tests of the intrusive hash table (htab.c): lookups
 * by string and by callback, growth over many entries, removal, chains
 * of equal hashes, iteration that removes as it goes, and clearing. */
#include <stdio.h>
#include <string.h>
#include <parley/base.h>
#include <parley/htab.h>
#include "../../tests/unit/test.h"

/* ==== fixture: named items ==== */

typedef struct item {
    int id;
    pl_hnode link;   /* not first, so PL_HTAB_ENTRY has an offset to undo */
    char name[16];
    int seen;
} item;

#define NITEMS 5000

static item items[NITEMS];

static const char *item_name(const pl_hnode *n)
{
    return PL_HTAB_ENTRY(n, item, link)->name;
}

static int item_has_id(const pl_hnode *n, const void *key)
{
    return PL_HTAB_ENTRY(n, item, link)->id == *(const int *)key;
}

static item *find(const pl_htab *t, const char *name)
{
    return PL_HTAB_ENTRY(pl_htab_find_str(t, name, item_name), item, link);
}

/* Names items[0..n) "item-<i>" and inserts them under hash (or, when
 * hash is 0, under the hash of their name). */
static void fill(pl_htab *t, int n, uint32_t hash)
{
    for (int i = 0; i < n; i++) {
        items[i].id = i;
        items[i].seen = 0;
        snprintf(items[i].name, sizeof items[i].name, "item-%d", i);
        pl_htab_insert(t, &items[i].link, hash ? hash : pl_strhash(items[i].name));
    }
}

/* ==== tests ==== */

PL_TEST(strhash_is_fnv1a)
{
    CHECK_EQ(pl_strhash(""), 2166136261u);
    CHECK_EQ(pl_strhash("a"), 0xe40c292cu);
    CHECK_EQ(pl_strhash("foobar"), 0xbf9cf968u);
}

PL_TEST(empty_table)
{
    pl_htab t = PL_HTAB_INIT;
    pl_htab_iter it;
    int key = 1;
    CHECK_EQ(pl_htab_count(&t), 0);
    CHECK_NULL(find(&t, "item-0"));
    CHECK_NULL(pl_htab_find(&t, 7, &key, item_has_id));
    CHECK_NULL(pl_htab_first(&t, &it));
    items[0].link.hash = 7;
    pl_htab_remove(&t, &items[0].link);   /* not in the table: no effect */
    CHECK_EQ(pl_htab_count(&t), 0);
    pl_htab_clear(&t);
}

PL_TEST(insert_find_remove)
{
    pl_htab t;
    pl_htab_init(&t);
    fill(&t, 3, 0);
    CHECK_EQ(pl_htab_count(&t), 3);
    CHECK(find(&t, "item-0") == &items[0]);
    CHECK(find(&t, "item-2") == &items[2]);
    CHECK_NULL(find(&t, "item-3"));
    CHECK_NULL(find(&t, "item"));

    int key = 1;
    pl_hnode *n = pl_htab_find(&t, pl_strhash("item-1"), &key, item_has_id);
    CHECK(n == &items[1].link);
    CHECK_NULL(pl_htab_find(&t, pl_strhash("item-0"), &key, item_has_id));

    pl_htab_remove(&t, &items[1].link);
    CHECK_EQ(pl_htab_count(&t), 2);
    CHECK_NULL(find(&t, "item-1"));
    CHECK(find(&t, "item-0") == &items[0]);
    pl_htab_remove(&t, &items[1].link);   /* already out: no effect */
    CHECK_EQ(pl_htab_count(&t), 2);

    pl_htab_insert(&t, &items[1].link, pl_strhash("item-1"));
    CHECK(find(&t, "item-1") == &items[1]);
    CHECK_EQ(pl_htab_count(&t), 3);
    pl_htab_clear(&t);
}

PL_TEST(growth_keeps_every_entry)
{
    pl_htab t = PL_HTAB_INIT;
    fill(&t, NITEMS, 0);
    CHECK_EQ(pl_htab_count(&t), NITEMS);
    CHECK(t.nbuckets >= NITEMS);
    CHECK_EQ(t.nbuckets & (t.nbuckets - 1), 0);
    for (int i = 0; i < NITEMS; i++)
        CHECK(find(&t, items[i].name) == &items[i]);
    for (int i = 0; i < NITEMS; i += 2)
        pl_htab_remove(&t, &items[i].link);
    CHECK_EQ(pl_htab_count(&t), NITEMS / 2);
    for (int i = 0; i < NITEMS; i++)
        CHECK(find(&t, items[i].name) == (i % 2 ? &items[i] : NULL));
    pl_htab_clear(&t);
}

PL_TEST(equal_hashes_share_a_chain)
{
    pl_htab t = PL_HTAB_INIT;
    fill(&t, 100, 42);
    CHECK_EQ(pl_htab_count(&t), 100);
    for (int i = 0; i < 100; i++) {
        CHECK(pl_htab_find(&t, 42, &i, item_has_id) == &items[i].link);
        CHECK_NULL(pl_htab_find(&t, 43, &i, item_has_id));
    }
    /* from the middle, the head and the tail of the chain */
    pl_htab_remove(&t, &items[50].link);
    pl_htab_remove(&t, &items[99].link);
    pl_htab_remove(&t, &items[0].link);
    CHECK_EQ(pl_htab_count(&t), 97);
    for (int i = 0; i < 100; i++) {
        int gone = i == 0 || i == 50 || i == 99;
        CHECK(pl_htab_find(&t, 42, &i, item_has_id) == (gone ? NULL : &items[i].link));
    }
    pl_htab_clear(&t);
}

PL_TEST(iteration_visits_each_once)
{
    pl_htab t = PL_HTAB_INIT;
    fill(&t, 1000, 0);
    pl_htab_iter it;
    int visited = 0;
    for (pl_hnode *n = pl_htab_first(&t, &it); n; n = pl_htab_next(&it)) {
        PL_HTAB_ENTRY(n, item, link)->seen++;
        visited++;
    }
    CHECK_EQ(visited, 1000);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(items[i].seen, 1);
    pl_htab_clear(&t);
}

PL_TEST(iteration_may_remove_the_current_node)
{
    pl_htab t = PL_HTAB_INIT;
    fill(&t, 1000, 0);
    for (int i = 0; i < 10; i++)   /* a chain of equal hashes as well */
        pl_htab_remove(&t, &items[i].link);
    for (int i = 0; i < 10; i++)
        pl_htab_insert(&t, &items[i].link, 7);
    pl_htab_iter it;
    int visited = 0;
    for (pl_hnode *n = pl_htab_first(&t, &it); n; n = pl_htab_next(&it)) {
        item *x = PL_HTAB_ENTRY(n, item, link);
        x->seen++;
        visited++;
        if (x->id % 3 != 0) {
            pl_htab_remove(&t, n);
            memset(n, 0xA5, sizeof *n);   /* as if freed */
        }
    }
    CHECK_EQ(visited, 1000);
    CHECK_EQ(pl_htab_count(&t), 334);
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(items[i].seen, 1);
        if (i % 3 != 0)
            continue;
        if (i < 10)
            CHECK(pl_htab_find(&t, 7, &i, item_has_id) == &items[i].link);
        else
            CHECK(find(&t, items[i].name) == &items[i]);
    }
    pl_htab_clear(&t);
}

PL_TEST(clear_empties_and_allows_reuse)
{
    pl_htab t = PL_HTAB_INIT;
    fill(&t, 200, 0);
    pl_htab_clear(&t);
    CHECK_EQ(pl_htab_count(&t), 0);
    CHECK_NULL(t.buckets);
    CHECK_EQ(t.nbuckets, 0);
    CHECK_NULL(find(&t, "item-1"));
    fill(&t, 20, 0);
    CHECK_EQ(pl_htab_count(&t), 20);
    CHECK(find(&t, "item-19") == &items[19]);
    pl_htab_clear(&t);
}
