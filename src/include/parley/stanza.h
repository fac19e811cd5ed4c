/* parley/stanza.h: the stanza tree. A stanza is one refcounted object that
 * owns an arena; every node, attribute and string of the stanza lives in
 * that arena and is freed with it. */
#ifndef PARLEY_STANZA_H
#define PARLEY_STANZA_H

#include <stddef.h>
#include <parley/buf.h>

/* The content namespace of client and server streams. Top-level stanzas
 * parsed from a server stream (jabber:server) are stored with this
 * namespace too, so the router never sees the difference; the serializer
 * writes them in the namespace of the stream they are sent on. */
#define PL_NS_CLIENT  "jabber:client"
#define PL_NS_SERVER  "jabber:server"
#define PL_NS_STREAM  "http://etherx.jabber.org/streams"
#define PL_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define PL_NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define PL_NS_XML     "http://www.w3.org/XML/1998/namespace"

typedef struct pl_stanza pl_stanza;
typedef struct pl_node pl_node;

/* An attribute. Names are local names; the xml namespace is written with
 * its prefix ("xml:lang"); any other namespaced attribute is named
 * "<namespace-uri> <local-name>" (a space separates them). */
typedef struct pl_attr {
    struct pl_attr *next;
    const char *name;
    const char *value;
} pl_attr;

/* An element (name != NULL) or a text node (name == NULL). */
struct pl_node {
    pl_node *parent;
    pl_node *next;      /* next sibling */
    pl_node *first;     /* first child */
    pl_node *last;      /* last child */
    const char *name;   /* local name; NULL for text */
    const char *ns;     /* namespace URI of an element; never NULL */
    pl_attr *attrs;
    const char *text;   /* text nodes: unescaped, NUL terminated */
    size_t text_len;
};

/* ==== lifetime ==== */

/* A new stanza whose root element is name in namespace ns (NULL means
 * PL_NS_CLIENT). The caller holds the one reference. */
pl_stanza *pl_stanza_new(const char *name, const char *ns);

/* Takes a reference; returns st. */
pl_stanza *pl_stanza_ref(pl_stanza *st);

/* Drops a reference; the stanza is freed at zero. NULL is ignored. */
void pl_stanza_unref(pl_stanza *st);

/* Reference count, for copy-before-mutate decisions. */
int pl_stanza_refs(const pl_stanza *st);

/* A deep copy with one reference. */
pl_stanza *pl_stanza_copy(const pl_stanza *st);

/* The root element. */
pl_node *pl_stanza_root(const pl_stanza *st);

/* Bytes used by the stanza's arena (for accounting and limits). */
size_t pl_stanza_mem(const pl_stanza *st);

/* Copies a string into the stanza's arena. */
char *pl_stanza_strdup(pl_stanza *st, const char *s);
char *pl_stanza_strndup(pl_stanza *st, const char *s, size_t n);

/* ==== building ==== */

/* Appends a child element; ns NULL inherits the parent's namespace.
 * Returns the new node (owned by the stanza). */
pl_node *pl_node_add(pl_stanza *st, pl_node *parent, const char *name, const char *ns);

/* Appends a text node (copied); merges with a preceding text node. */
pl_node *pl_node_add_text(pl_stanza *st, pl_node *parent, const char *text, size_t len);

/* Appends a deep copy of node (which may belong to another stanza). */
pl_node *pl_node_add_copy(pl_stanza *st, pl_node *parent, const pl_node *node);

/* Sets (value != NULL, copied) or removes (value == NULL) an attribute. */
void pl_node_set_attr(pl_stanza *st, pl_node *n, const char *name, const char *value);

/* Unlinks a node from its parent (its memory stays in the arena). */
void pl_node_remove(pl_node *n);

/* Removes all children of n. */
void pl_node_clear(pl_node *n);

/* ==== reading ==== */

/* The attribute's value or NULL. */
const char *pl_node_attr(const pl_node *n, const char *name);

/* First child element with this local name and namespace; ns NULL matches
 * any namespace, name NULL matches any name. */
pl_node *pl_node_child(const pl_node *n, const char *name, const char *ns);

/* Next sibling element after `after` matching name/ns as above. */
pl_node *pl_node_next(const pl_node *after, const char *name, const char *ns);

/* First child element, or NULL. */
pl_node *pl_node_first_element(const pl_node *n);

/* Number of child elements. */
int pl_node_count_elements(const pl_node *n);

/* The concatenated text of n's direct text children. The result is stored
 * in st's arena (or points into a text node); "" if there is none. */
const char *pl_node_text(pl_stanza *st, const pl_node *n);

/* True if n is named name in namespace ns (ns NULL: any). */
int pl_node_is(const pl_node *n, const char *name, const char *ns);

/* ==== parsing ==== */

/* Parses one element serialized in the client namespace (as
 * pl_xml_serialize writes it for PL_NS_CLIENT), with the same restrictions
 * as a stream (no DTD, comments, processing instructions). Returns a
 * stanza with one reference, or NULL if the text is not exactly one
 * well-formed element. */
pl_stanza *pl_stanza_parse(const char *xml, size_t len);

/* ==== serializing ==== */

/* Appends n and its subtree as XML to out. content_ns is the default
 * namespace of the stream it is written to (PL_NS_CLIENT or PL_NS_SERVER):
 * an element in PL_NS_CLIENT at the top gets no xmlns and is written in
 * the stream's namespace; below that an xmlns is written wherever an
 * element's namespace differs from its parent's. Text and attribute values
 * are escaped. */
void pl_xml_serialize(const pl_node *n, pl_buf *out, const char *content_ns);

/* Escapes s (len bytes) for text (attr == 0) or attribute values
 * (attr != 0, also escapes quotes) and appends it to out. */
void pl_xml_escape(pl_buf *out, const char *s, size_t len, int attr);

/* Serializes into a new NUL-terminated string (caller frees with pl_free);
 * handy for logs and tests. */
char *pl_stanza_to_string(const pl_stanza *st);

#endif
