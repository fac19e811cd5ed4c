/* parley/htab.h: an intrusive hash table, shared by the core and modules.
 *
 * The caller's struct embeds a pl_hnode (the chain link and the key's
 * hash) and the table only links those nodes: it never allocates per
 * entry, owns nothing but its bucket array, and never frees a node.
 * Buckets are a power of two and double when the table holds as many
 * entries as buckets. Keys are whatever the caller compares; strings are
 * the common case, hashed with pl_strhash and found with
 * pl_htab_find_str.
 *
 *     typedef struct account {
 *         pl_hnode link;
 *         char *name;
 *     } account;
 *
 *     static const char *account_name(const pl_hnode *n)
 *     {
 *         return PL_HTAB_ENTRY(n, account, link)->name;
 *     }
 *
 *     pl_htab_insert(&t, &a->link, pl_strhash(a->name));
 *     account *a = PL_HTAB_ENTRY(pl_htab_find_str(&t, "alice", account_name),
 *                                account, link);
 */
#ifndef PARLEY_HTAB_H
#define PARLEY_HTAB_H

#include <stddef.h>
#include <stdint.h>

/* The link a struct embeds to be in a table. */
typedef struct pl_hnode {
    struct pl_hnode *next;
    uint32_t hash;
} pl_hnode;

typedef struct pl_htab {
    pl_hnode **buckets;
    size_t nbuckets;   /* 0 or a power of two */
    size_t count;
} pl_htab;

#define PL_HTAB_INIT { NULL, 0, 0 }

/* The struct of the given type whose member `member` is the node n; NULL
 * when n is NULL, so a lookup's result converts directly. */
#define PL_HTAB_ENTRY(n, type, member) ((type *)pl__hnode_base((n), offsetof(type, member)))

static inline void *pl__hnode_base(const pl_hnode *n, size_t offset)
{
    return n ? (void *)((const char *)n - offset) : NULL;
}

/* Whether node's key equals key (a lookup calls it only for nodes whose
 * stored hash matches). */
typedef int (*pl_htab_eq_fn)(const pl_hnode *node, const void *key);
/* The key of node, in a table keyed by strings. */
typedef const char *(*pl_htab_key_fn)(const pl_hnode *node);

/* The string hash of every table in Parley (32-bit FNV-1a). */
uint32_t pl_strhash(const char *s);

/* Makes t an empty table; PL_HTAB_INIT does the same statically. */
void pl_htab_init(pl_htab *t);

/* Frees the bucket array and empties t. The nodes stay the caller's:
 * free them first (iterating) if the table was the only way to reach
 * them. */
void pl_htab_clear(pl_htab *t);

/* The node with the given hash for which eq(node, key) holds, or NULL. */
pl_hnode *pl_htab_find(const pl_htab *t, uint32_t hash, const void *key, pl_htab_eq_fn eq);

/* The node whose key_of(node) equals key, or NULL. */
pl_hnode *pl_htab_find_str(const pl_htab *t, const char *key, pl_htab_key_fn key_of);

/* Links node under hash (growing the bucket array if needed). The table
 * does not check for an equal key: look it up first. */
void pl_htab_insert(pl_htab *t, pl_hnode *node, uint32_t hash);

/* Unlinks node, which is in t; nothing happens if it is not. */
void pl_htab_remove(pl_htab *t, pl_hnode *node);

/* The number of nodes in t. */
size_t pl_htab_count(const pl_htab *t);

/* Iteration in no particular order:
 *
 *     pl_htab_iter it;
 *     for (pl_hnode *n = pl_htab_first(&t, &it); n; n = pl_htab_next(&it))
 *
 * The node just returned may be removed or freed; inserting, or removing
 * any other node, ends the iteration's validity. */
typedef struct pl_htab_iter {
    const pl_htab *tab;
    size_t bucket;     /* the bucket of next */
    pl_hnode *next;    /* the node the following call returns */
} pl_htab_iter;

pl_hnode *pl_htab_first(const pl_htab *t, pl_htab_iter *it);
pl_hnode *pl_htab_next(pl_htab_iter *it);

#endif
