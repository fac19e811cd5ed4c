/* xml/arena.c: the slow paths of the stanza arena. Heap chunks double in
 * size up to a cap, so a stanza that grows costs a logarithmic number of
 * allocations; a request larger than that gets a chunk of its own size. */
#include <parley/base.h>
#include "xml/arena.h"

#define ARENA_FIRST_HEAP 2048
#define ARENA_MAX_CHUNK  (64 * 1024)

struct pl__arena_chunk {
    pl__arena_chunk *next;
    size_t pad;   /* keeps the data after the header 16-byte aligned */
};

/* Starts an arena whose first chunk is the caller's block mem of len
 * bytes. Later chunks come from the heap and are freed by
 * pl__arena_release. */
void pl__arena_init(pl__arena *a, void *mem, size_t len)
{
    a->cur = mem;
    a->end = (char *)mem + len;
    a->chunks = NULL;
    a->size = len;
    a->next = len * 2 > ARENA_FIRST_HEAP ? len * 2 : ARENA_FIRST_HEAP;
    if (a->next > ARENA_MAX_CHUNK)
        a->next = ARENA_MAX_CHUNK;
}

/* Frees every heap chunk of the arena. The arena must not be used again
 * before pl__arena_init. */
void pl__arena_release(pl__arena *a)
{
    pl__arena_chunk *c = a->chunks;
    while (c) {
        pl__arena_chunk *next = c->next;
        pl_free(c);
        c = next;
    }
    a->chunks = NULL;
    a->cur = a->end = NULL;
}

/* Makes a new current chunk with room for at least n bytes. What was left
 * in the previous chunk is abandoned. */
static void new_chunk(pl__arena *a, size_t n)
{
    size_t size = a->next;
    if (size < n)
        size = n;
    pl__arena_chunk *c = pl_malloc(sizeof(*c) + size);
    c->next = a->chunks;
    a->chunks = c;
    a->cur = (char *)(c + 1);
    a->end = a->cur + size;
    a->size += sizeof(*c) + size;
    if (a->next < ARENA_MAX_CHUNK)
        a->next *= 2;
}

/* Slow path of pl__arena_alloc: the current chunk is full. */
void *pl__arena_alloc_slow(pl__arena *a, size_t n)
{
    new_chunk(a, n + PL_ARENA_ALIGN);
    return pl__arena_alloc(a, n);
}

/* Slow path of pl__arena_str: the current chunk is full. */
char *pl__arena_str_slow(pl__arena *a, size_t n)
{
    new_chunk(a, n);
    return pl__arena_str(a, n);
}

/* Grows (or shrinks) the string p of oldn bytes to newn bytes. When p is
 * the most recent allocation and the chunk has room it grows in place;
 * otherwise it moves to a chunk with half as much again to spare, so that a string
 * built by many appends (character data arriving piecewise) costs
 * amortised linear time. */
char *pl__arena_grow(pl__arena *a, char *p, size_t oldn, size_t newn)
{
    if (p + oldn == a->cur && (size_t)(a->end - p) >= newn) {
        a->cur = p + newn;
        return p;
    }
    if ((size_t)(a->end - a->cur) < newn)
        new_chunk(a, newn + newn / 2);
    char *q = pl__arena_str(a, newn);
    memcpy(q, p, oldn < newn ? oldn : newn);
    return q;
}
