/* c2s/throttle.c: failed-authentication counters per source address,
 * with a bounded table swept of expired entries. */
#include <parley/base.h>
#include <parley/module.h>
#include "c2s/throttle.h"
#include "core/loop.h"
#include "core/server.h"
#include "core/strmap.h"

typedef struct entry {
    int count;
    long long since;  /* ms of the first failure of the window */
} entry;

static pl__strmap table = PL__STRMAP_INIT;

static long long window_ms(void)
{
    return pl__server.config->limits.auth_window * 1000;
}

static entry *current(const char *addr)
{
    entry *e = pl__strmap_get(&table, addr);
    if (e && pl_now_ms() - e->since >= window_ms()) {
        pl__strmap_del(&table, addr);
        pl_free(e);
        e = NULL;
    }
    return e;
}

int pl__throttle_blocked(const char *addr)
{
    entry *e = current(addr);
    return e && e->count >= pl__server.config->limits.auth_failures;
}

struct sweep {
    const char *keys[256];
    int n;
    long long now;
};

static void collect(const char *key, void *value, void *ud)
{
    struct sweep *sw = ud;
    entry *e = value;
    if (sw->n < 256 && sw->now - e->since >= window_ms())
        sw->keys[sw->n++] = key;
}

static void sweep(void)
{
    struct sweep sw = { .n = 0, .now = pl_now_ms() };
    pl__strmap_each(&table, collect, &sw);
    /* keys point into the entries: copy before deleting */
    for (int i = 0; i < sw.n; i++) {
        char *k = pl_strdup(sw.keys[i]);
        pl_free(pl__strmap_del(&table, k));
        pl_free(k);
    }
}

void pl__throttle_fail(const char *addr)
{
    if (pl__strmap_count(&table) > 10000)
        sweep();
    entry *e = current(addr);
    if (!e) {
        e = pl_calloc(1, sizeof *e);
        e->since = pl_now_ms();
        pl__strmap_set(&table, addr, e);
    }
    e->count++;
}

void pl__throttle_clear(const char *addr)
{
    pl_free(pl__strmap_del(&table, addr));
}

static void free_one(const char *key, void *value, void *ud)
{
    pl_free(value);
}

void pl__throttle_free(void)
{
    pl__strmap_each(&table, free_one, NULL);
    pl__strmap_clear(&table);
}
