/* xml/stanza.c: the stanza tree of parley/stanza.h. A stanza is one
 * refcounted block holding the start of its arena; nodes, attributes and
 * strings are bump-allocated from it and never freed one by one. Element
 * namespaces are shared with the parent's string when equal, so a tree in
 * one namespace stores its URI once. */
#include <string.h>
#include <parley/base.h>
#include <parley/stanza.h>
#include "xml/arena.h"

/* The malloc block of a stanza (struct plus inline chunk) by default:
 * large enough for a typical message or presence. */
#define STANZA_BLOCK 1024

/* ==== internals ==== */

/* Allocates a stanza with one reference and no root; the inline arena
 * chunk holds exactly hint bytes (rounded up), or the default size when
 * hint is 0. */
pl_stanza *pl__stanza_alloc(size_t hint)
{
    size_t inl = STANZA_BLOCK - sizeof(pl_stanza);
    if (hint)
        inl = (hint + PL_ARENA_ALIGN - 1) & ~(size_t)(PL_ARENA_ALIGN - 1);
    pl_stanza *st = pl_malloc(sizeof(*st) + inl);
    st->refs = 1;
    st->root = NULL;
    pl__arena_init(&st->arena, st + 1, inl);
    return st;
}

static void link_child(pl_node *parent, pl_node *n)
{
    n->parent = parent;
    if (!parent)
        return;
    if (parent->last)
        parent->last->next = n;
    else
        parent->first = n;
    parent->last = n;
}

/* Creates an element with name and ns stored as given (in the arena or
 * static) and appends it to parent when parent is not NULL. */
pl_node *pl__node_new(pl_stanza *st, pl_node *parent, const char *name, const char *ns)
{
    pl_node *n = pl__arena_alloc(&st->arena, sizeof(*n));
    n->next = n->first = n->last = NULL;
    n->name = name;
    n->ns = ns;
    n->attrs = NULL;
    n->text = NULL;
    n->text_len = 0;
    link_child(parent, n);
    return n;
}

/* Appends text to parent, extending a trailing text node in place when it
 * is the arena's latest allocation. */
pl_node *pl__node_append_text(pl_stanza *st, pl_node *parent, const char *text, size_t len)
{
    pl_node *last = parent->last;
    if (last && !last->name) {
        char *t = pl__arena_grow(&st->arena, (char *)last->text, last->text_len + 1,
                                 last->text_len + len + 1);
        memcpy(t + last->text_len, text, len);
        last->text_len += len;
        t[last->text_len] = '\0';
        last->text = t;
        return last;
    }
    pl_node *n = pl__node_new(st, parent, NULL, "");
    n->text = pl__arena_strndup(&st->arena, text, len);
    n->text_len = len;
    return n;
}

/* Links a new attribute at *tail and returns the next tail. */
pl_attr **pl__attr_append(pl_stanza *st, pl_attr **tail, const char *name, const char *value)
{
    pl_attr *a = pl__arena_alloc(&st->arena, sizeof(*a));
    a->next = NULL;
    a->name = name;
    a->value = value;
    *tail = a;
    return &a->next;
}

/* The namespace string for a child of parent in ns: the parent's own
 * string when equal, else a copy. */
static const char *child_ns(pl_stanza *st, const pl_node *parent, const char *ns)
{
    if (!ns)
        return parent ? parent->ns : PL_NS_CLIENT;
    if (parent && (parent->ns == ns || strcmp(parent->ns, ns) == 0))
        return parent->ns;
    if (strcmp(ns, PL_NS_CLIENT) == 0)
        return PL_NS_CLIENT;
    return pl__arena_strndup(&st->arena, ns, strlen(ns));
}

/* ==== lifetime ==== */

/* Creates a stanza whose root is name in ns (NULL: PL_NS_CLIENT). */
pl_stanza *pl_stanza_new(const char *name, const char *ns)
{
    pl_stanza *st = pl__stanza_alloc(0);
    const char *n = pl__arena_strndup(&st->arena, name, strlen(name));
    st->root = pl__node_new(st, NULL, n, child_ns(st, NULL, ns));
    return st;
}

/* Takes a reference. */
pl_stanza *pl_stanza_ref(pl_stanza *st)
{
    st->refs++;
    return st;
}

/* Drops a reference and frees the stanza and its arena at zero. */
void pl_stanza_unref(pl_stanza *st)
{
    if (!st || --st->refs > 0)
        return;
    pl__arena_release(&st->arena);
    pl_free(st);
}

/* The current number of references. */
int pl_stanza_refs(const pl_stanza *st)
{
    return st->refs;
}

/* Copies the subtree src under parent (NULL: as a root) in st, without
 * recursion so that deeply nested input cannot exhaust the stack. */
static pl_node *copy_tree(pl_stanza *st, pl_node *parent, const pl_node *src)
{
    if (!src->name)
        return pl__node_append_text(st, parent, src->text, src->text_len);
    const pl_node *s = src;
    pl_node *d = parent, *top = NULL;
    for (;;) {
        if (s->name) {
            const char *name = pl__arena_strndup(&st->arena, s->name, strlen(s->name));
            pl_node *n = pl__node_new(st, d, name, child_ns(st, d, s->ns));
            pl_attr **tail = &n->attrs;
            for (const pl_attr *a = s->attrs; a; a = a->next)
                tail = pl__attr_append(st, tail,
                                       pl__arena_strndup(&st->arena, a->name, strlen(a->name)),
                                       pl__arena_strndup(&st->arena, a->value, strlen(a->value)));
            if (!top)
                top = n;
            if (s->first) {
                d = n;
                s = s->first;
                continue;
            }
        } else {
            pl__node_append_text(st, d, s->text, s->text_len);
        }
        while (s != src && !s->next) {
            s = s->parent;
            d = d->parent;
        }
        if (s == src)
            return top;
        s = s->next;
    }
}

/* A deep copy of st with one reference, sized to fit in one block. */
/* Arena bytes a copy of one node needs, children excluded (an upper
 * bound: every allocation padded to the arena's alignment). */
static size_t node_bytes(const pl_node *n)
{
    const size_t pad = PL_ARENA_ALIGN;
    size_t total = sizeof(pl_node) + pad;
    if (!n->name)
        return total + n->text_len + 1;
    total += strlen(n->name) + 1 + strlen(n->ns) + 1;
    for (const pl_attr *a = n->attrs; a; a = a->next)
        total += sizeof(pl_attr) + pad + strlen(a->name) + 1 + strlen(a->value) + 1;
    return total;
}

/* The same for the whole tree under top, walked without recursion (the
 * depth is bounded only by the stanza size limit). */
static size_t tree_bytes(const pl_node *top)
{
    size_t total = 0;
    const pl_node *n = top;
    for (;;) {
        total += node_bytes(n);
        if (n->first) {
            n = n->first;
            continue;
        }
        while (n != top && !n->next)
            n = n->parent;
        if (n == top)
            return total;
        n = n->next;
    }
}

/* A deep copy in one block sized to the tree, so kept stanzas (a
 * session's last presence, queued stanzas) hold no slack. */
pl_stanza *pl_stanza_copy(const pl_stanza *st)
{
    pl_stanza *c = pl__stanza_alloc(tree_bytes(st->root));
    c->root = copy_tree(c, NULL, st->root);
    return c;
}

/* The root element. */
pl_node *pl_stanza_root(const pl_stanza *st)
{
    return st->root;
}

/* Bytes held by the stanza: its block and every arena chunk. */
size_t pl_stanza_mem(const pl_stanza *st)
{
    return sizeof(*st) + st->arena.size;
}

/* A copy of s in the stanza's arena. */
char *pl_stanza_strdup(pl_stanza *st, const char *s)
{
    return pl__arena_strndup(&st->arena, s, strlen(s));
}

/* A NUL-terminated copy of n bytes of s in the stanza's arena. */
char *pl_stanza_strndup(pl_stanza *st, const char *s, size_t n)
{
    return pl__arena_strndup(&st->arena, s, n);
}

/* ==== building ==== */

/* Appends an element to parent (NULL: the root); ns NULL inherits. */
pl_node *pl_node_add(pl_stanza *st, pl_node *parent, const char *name, const char *ns)
{
    if (!parent)
        parent = st->root;
    const char *n = pl__arena_strndup(&st->arena, name, strlen(name));
    return pl__node_new(st, parent, n, child_ns(st, parent, ns));
}

/* Appends a copy of len bytes of text to parent (NULL: the root). */
pl_node *pl_node_add_text(pl_stanza *st, pl_node *parent, const char *text, size_t len)
{
    return pl__node_append_text(st, parent ? parent : st->root, text, len);
}

/* Appends a deep copy of node (from any stanza) to parent (NULL: root). */
pl_node *pl_node_add_copy(pl_stanza *st, pl_node *parent, const pl_node *node)
{
    return copy_tree(st, parent ? parent : st->root, node);
}

/* Sets, replaces or (value NULL) removes the attribute name of n. */
void pl_node_set_attr(pl_stanza *st, pl_node *n, const char *name, const char *value)
{
    pl_attr **pp = &n->attrs;
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) != 0)
            continue;
        if (!value) {
            *pp = (*pp)->next;
            return;
        }
        (*pp)->value = pl__arena_strndup(&st->arena, value, strlen(value));
        return;
    }
    if (value)
        pl__attr_append(st, pp, pl__arena_strndup(&st->arena, name, strlen(name)),
                        pl__arena_strndup(&st->arena, value, strlen(value)));
}

/* Unlinks n from its parent; its memory stays in the arena. */
void pl_node_remove(pl_node *n)
{
    pl_node *p = n->parent;
    if (!p)
        return;
    pl_node *prev = NULL;
    for (pl_node *c = p->first; c && c != n; c = c->next)
        prev = c;
    if (prev)
        prev->next = n->next;
    else if (p->first == n)
        p->first = n->next;
    else
        return;   /* not actually a child of p */
    if (p->last == n)
        p->last = prev;
    n->parent = NULL;
    n->next = NULL;
}

/* Unlinks every child of n. */
void pl_node_clear(pl_node *n)
{
    for (pl_node *c = n->first; c; c = c->next)
        c->parent = NULL;
    n->first = n->last = NULL;
}

/* ==== reading ==== */

/* The value of attribute name of n, or NULL. */
const char *pl_node_attr(const pl_node *n, const char *name)
{
    for (const pl_attr *a = n->attrs; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->value;
    return NULL;
}

static int matches(const pl_node *c, const char *name, const char *ns)
{
    return c->name && (!name || strcmp(c->name, name) == 0) &&
           (!ns || c->ns == ns || strcmp(c->ns, ns) == 0);
}

/* The first child element of n matching name and ns (NULL: any). */
pl_node *pl_node_child(const pl_node *n, const char *name, const char *ns)
{
    for (pl_node *c = n->first; c; c = c->next)
        if (matches(c, name, ns))
            return c;
    return NULL;
}

/* The next sibling element after `after` matching name and ns. */
pl_node *pl_node_next(const pl_node *after, const char *name, const char *ns)
{
    for (pl_node *c = after->next; c; c = c->next)
        if (matches(c, name, ns))
            return c;
    return NULL;
}

/* The first child element of n, or NULL. */
pl_node *pl_node_first_element(const pl_node *n)
{
    return pl_node_child(n, NULL, NULL);
}

/* How many child elements n has. */
int pl_node_count_elements(const pl_node *n)
{
    int count = 0;
    for (const pl_node *c = n->first; c; c = c->next)
        if (c->name)
            count++;
    return count;
}

/* The direct text of n: a text child's own string when there is exactly
 * one, a concatenation in st's arena when there are several ("" when
 * there are none). With st NULL, only the first text child is returned. */
const char *pl_node_text(pl_stanza *st, const pl_node *n)
{
    const pl_node *first = NULL;
    size_t total = 0;
    int count = 0;
    for (const pl_node *c = n->first; c; c = c->next) {
        if (c->name)
            continue;
        if (!first)
            first = c;
        total += c->text_len;
        count++;
    }
    if (!first)
        return "";
    if (count == 1 || !st)
        return first->text;
    char *s = pl__arena_str(&st->arena, total + 1), *p = s;
    for (const pl_node *c = first; c; c = c->next) {
        if (c->name)
            continue;
        memcpy(p, c->text, c->text_len);
        p += c->text_len;
    }
    *p = '\0';
    return s;
}

/* True if n is an element named name (NULL: any) in ns (NULL: any). */
int pl_node_is(const pl_node *n, const char *name, const char *ns)
{
    return n && matches(n, name, ns);
}
