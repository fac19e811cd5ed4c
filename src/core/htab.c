/* core/htab.c: the intrusive hash table of parley/htab.h (chained,
 * power-of-two buckets, doubling at load factor 1) and the string hash
 * every table uses. */
#include <string.h>
#include <parley/base.h>
#include <parley/htab.h>

#define BUCKETS_MIN 16

uint32_t pl_strhash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

void pl_htab_init(pl_htab *t)
{
    t->buckets = NULL;
    t->nbuckets = t->count = 0;
}

void pl_htab_clear(pl_htab *t)
{
    pl_free(t->buckets);
    pl_htab_init(t);
}

static pl_hnode **bucket_of(const pl_htab *t, uint32_t hash)
{
    return &t->buckets[hash & (t->nbuckets - 1)];
}

pl_hnode *pl_htab_find(const pl_htab *t, uint32_t hash, const void *key, pl_htab_eq_fn eq)
{
    if (!t->nbuckets)
        return NULL;
    for (pl_hnode *n = *bucket_of(t, hash); n; n = n->next)
        if (n->hash == hash && eq(n, key))
            return n;
    return NULL;
}

pl_hnode *pl_htab_find_str(const pl_htab *t, const char *key, pl_htab_key_fn key_of)
{
    if (!t->nbuckets)
        return NULL;
    uint32_t hash = pl_strhash(key);
    for (pl_hnode *n = *bucket_of(t, hash); n; n = n->next)
        if (n->hash == hash && strcmp(key_of(n), key) == 0)
            return n;
    return NULL;
}

static void grow(pl_htab *t)
{
    size_t nbuckets = t->nbuckets ? t->nbuckets * 2 : BUCKETS_MIN;
    pl_hnode **buckets = pl_calloc(nbuckets, sizeof *buckets);
    for (size_t i = 0; i < t->nbuckets; i++) {
        pl_hnode *n = t->buckets[i], *next;
        for (; n; n = next) {
            next = n->next;
            n->next = buckets[n->hash & (nbuckets - 1)];
            buckets[n->hash & (nbuckets - 1)] = n;
        }
    }
    pl_free(t->buckets);
    t->buckets = buckets;
    t->nbuckets = nbuckets;
}

void pl_htab_insert(pl_htab *t, pl_hnode *node, uint32_t hash)
{
    if (t->count >= t->nbuckets)
        grow(t);
    pl_hnode **head = bucket_of(t, hash);
    node->hash = hash;
    node->next = *head;
    *head = node;
    t->count++;
}

void pl_htab_remove(pl_htab *t, pl_hnode *node)
{
    if (!t->nbuckets)
        return;
    pl_hnode **pp = bucket_of(t, node->hash);
    while (*pp && *pp != node)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = node->next;
    node->next = NULL;
    t->count--;
}

size_t pl_htab_count(const pl_htab *t)
{
    return t->count;
}

/* Points it at n, or when n is NULL at the head of the next non-empty
 * bucket after it->bucket (NULL at the end). */
static void settle(pl_htab_iter *it, pl_hnode *n)
{
    while (!n && ++it->bucket < it->tab->nbuckets)
        n = it->tab->buckets[it->bucket];
    it->next = n;
}

pl_hnode *pl_htab_first(const pl_htab *t, pl_htab_iter *it)
{
    it->tab = t;
    it->bucket = 0;
    it->next = NULL;
    if (t->nbuckets)
        settle(it, t->buckets[0]);
    return pl_htab_next(it);
}

pl_hnode *pl_htab_next(pl_htab_iter *it)
{
    pl_hnode *n = it->next;
    if (n)
        settle(it, n->next);
    return n;
}
