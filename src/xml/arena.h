/* xml/arena.h: the bump allocator behind every stanza, and the stanza
 * internals shared by the files of src/xml. A stanza's nodes, attributes
 * and strings are carved out of its arena and all freed together; the
 * first chunk lives in the same malloc block as the stanza itself, so a
 * small stanza costs a single allocation. Nothing outside src/xml may
 * include this header. */
#ifndef PL_XML_ARENA_H
#define PL_XML_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <parley/stanza.h>

/* Alignment of pl__arena_alloc results: enough for pointers and size_t. */
#define PL_ARENA_ALIGN 8

typedef struct pl__arena_chunk pl__arena_chunk;

typedef struct pl__arena {
    char *cur;                /* next free byte of the current chunk */
    char *end;                /* end of the current chunk */
    pl__arena_chunk *chunks;  /* heap chunks, newest first */
    size_t size;              /* bytes reserved, inline chunk included */
    size_t next;              /* size of the next heap chunk */
} pl__arena;

/* Starts an arena whose first chunk is mem (len bytes, owned by the
 * caller and PL_ARENA_ALIGN aligned); len may be 0. */
void pl__arena_init(pl__arena *a, void *mem, size_t len);

/* Frees the heap chunks; the inline chunk belongs to the caller. */
void pl__arena_release(pl__arena *a);

/* Slow paths of the inline allocators below: start a new chunk holding at
 * least n bytes (plus alignment). */
void *pl__arena_alloc_slow(pl__arena *a, size_t n);
char *pl__arena_str_slow(pl__arena *a, size_t n);

/* Resizes the string p (oldn bytes, the latest allocation if it is to be
 * grown in place) to newn bytes; the first oldn bytes are kept. Returns
 * the (possibly moved) string. */
char *pl__arena_grow(pl__arena *a, char *p, size_t oldn, size_t newn);

/* n uninitialised bytes, aligned for any node or attribute. */
static inline void *pl__arena_alloc(pl__arena *a, size_t n)
{
    size_t pad = (size_t)(-(uintptr_t)a->cur) & (PL_ARENA_ALIGN - 1);
    if ((size_t)(a->end - a->cur) < pad + n)
        return pl__arena_alloc_slow(a, n);
    void *p = a->cur + pad;
    a->cur += pad + n;
    return p;
}

/* n uninitialised bytes with no alignment (for strings). */
static inline char *pl__arena_str(pl__arena *a, size_t n)
{
    if ((size_t)(a->end - a->cur) < n)
        return pl__arena_str_slow(a, n);
    char *p = a->cur;
    a->cur += n;
    return p;
}

/* A NUL-terminated copy of the n bytes at s. */
static inline char *pl__arena_strndup(pl__arena *a, const char *s, size_t n)
{
    char *p = pl__arena_str(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ==== stanza internals ==== */

struct pl_stanza {
    int refs;
    pl_node *root;
    pl__arena arena;
};

/* A stanza with no root yet and one reference, whose first arena chunk
 * (in the same block) holds at least hint bytes (0: the default size). */
pl_stanza *pl__stanza_alloc(size_t hint);

/* A new element named name in namespace ns, appended to parent (NULL:
 * no parent). name and ns are stored as given, not copied: they must live
 * in st's arena or be static. */
pl_node *pl__node_new(pl_stanza *st, pl_node *parent, const char *name, const char *ns);

/* Appends len bytes of text to parent, merging with a text node that is
 * its last child. Returns the text node. */
pl_node *pl__node_append_text(pl_stanza *st, pl_node *parent, const char *text, size_t len);

/* Appends a new attribute after *tail (name and value stored as given, not
 * copied) and returns the new tail pointer, so a caller adding many
 * attributes in order does not walk the list each time. */
pl_attr **pl__attr_append(pl_stanza *st, pl_attr **tail, const char *name, const char *value);

#endif
