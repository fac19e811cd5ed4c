/* core/strmap.c: the string-keyed map of strmap.h, one table entry per
 * key holding a copy of the key and the borrowed value. */
#include <string.h>
#include <parley/base.h>
#include "core/strmap.h"

static pl__strmap_entry *entry_of(const pl_hnode *n)
{
    return PL_HTAB_ENTRY(n, pl__strmap_entry, link);
}

static int entry_has_key(const pl_hnode *n, const void *key)
{
    return strcmp(entry_of(n)->key, key) == 0;
}

static pl__strmap_entry *find(const pl__strmap *m, const char *key, uint32_t hash)
{
    return entry_of(pl_htab_find(&m->tab, hash, key, entry_has_key));
}

void *pl__strmap_get(const pl__strmap *m, const char *key)
{
    pl__strmap_entry *e = find(m, key, pl_strhash(key));
    return e ? e->value : NULL;
}

void *pl__strmap_set(pl__strmap *m, const char *key, void *value)
{
    uint32_t hash = pl_strhash(key);
    pl__strmap_entry *e = find(m, key, hash);
    if (e) {
        void *old = e->value;
        e->value = value;
        return old;
    }
    size_t klen = strlen(key) + 1;
    e = pl_malloc(sizeof *e + klen);
    memcpy(e->key, key, klen);
    e->value = value;
    pl_htab_insert(&m->tab, &e->link, hash);
    return NULL;
}

void *pl__strmap_del(pl__strmap *m, const char *key)
{
    pl__strmap_entry *e = find(m, key, pl_strhash(key));
    if (!e)
        return NULL;
    void *v = e->value;
    pl_htab_remove(&m->tab, &e->link);
    pl_free(e);
    return v;
}

size_t pl__strmap_count(const pl__strmap *m)
{
    return pl_htab_count(&m->tab);
}

void pl__strmap_each(const pl__strmap *m, void (*fn)(const char *, void *, void *), void *ud)
{
    pl_htab_iter it;
    for (pl_hnode *n = pl_htab_first(&m->tab, &it); n; n = pl_htab_next(&it))
        fn(entry_of(n)->key, entry_of(n)->value, ud);
}

void pl__strmap_clear(pl__strmap *m)
{
    pl_htab_iter it;
    for (pl_hnode *n = pl_htab_first(&m->tab, &it); n; n = pl_htab_next(&it))
        pl_free(entry_of(n));
    pl_htab_clear(&m->tab);
}
