/* core/strmap.c: the string-keyed hash map of strmap.h (FNV-1a hashing,
 * doubling at load factor 1). */
#include <string.h>
#include <parley/base.h>
#include "core/strmap.h"

unsigned pl__strhash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static pl__strmap_entry **find(const pl__strmap *m, const char *key, unsigned h)
{
    pl__strmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            return pp;
    return pp;
}

void *pl__strmap_get(const pl__strmap *m, const char *key)
{
    if (!m->nbuckets)
        return NULL;
    pl__strmap_entry **pp = find(m, key, pl__strhash(key));
    return *pp ? (*pp)->value : NULL;
}

static void grow(pl__strmap *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    pl__strmap_entry **b = pl_calloc(n, sizeof *b);
    for (size_t i = 0; i < m->nbuckets; i++) {
        pl__strmap_entry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    pl_free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void *pl__strmap_set(pl__strmap *m, const char *key, void *value)
{
    if (m->count >= m->nbuckets)
        grow(m);
    unsigned h = pl__strhash(key);
    pl__strmap_entry **pp = find(m, key, h);
    if (*pp) {
        void *old = (*pp)->value;
        (*pp)->value = value;
        return old;
    }
    size_t klen = strlen(key) + 1;
    pl__strmap_entry *e = pl_malloc(sizeof *e + klen);
    memcpy(e->key, key, klen);
    e->hash = h;
    e->value = value;
    e->next = NULL;
    *pp = e;
    m->count++;
    return NULL;
}

void *pl__strmap_del(pl__strmap *m, const char *key)
{
    if (!m->nbuckets)
        return NULL;
    pl__strmap_entry **pp = find(m, key, pl__strhash(key));
    pl__strmap_entry *e = *pp;
    if (!e)
        return NULL;
    void *v = e->value;
    *pp = e->next;
    pl_free(e);
    m->count--;
    return v;
}

void pl__strmap_each(const pl__strmap *m, void (*fn)(const char *, void *, void *), void *ud)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (pl__strmap_entry *e = m->buckets[i]; e; e = e->next)
            fn(e->key, e->value, ud);
}

void pl__strmap_clear(pl__strmap *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        pl__strmap_entry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            pl_free(e);
        }
    }
    pl_free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->count = 0;
}
