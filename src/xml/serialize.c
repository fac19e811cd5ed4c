/* xml/serialize.c: writes stanza trees as XML. Elements use default
 * namespace declarations only where the namespace changes; elements of the
 * streams namespace use the "stream:" prefix the stream header binds; the
 * stanza's own content namespace at the top is left to the stream. Text
 * and attribute values are escaped so that parsing the output gives back
 * the same tree. */
#include <string.h>
#include <parley/base.h>
#include <parley/buf.h>
#include <parley/stanza.h>

/* Namespaced attributes of one element that share a generated prefix;
 * beyond this many distinct URIs each further attribute declares its own
 * prefix, which keeps the work linear. */
#define MAX_ATTR_NS 8

/* ==== output ==== */

/* Appends without terminating; callers end with terminate(). This keeps
 * the many small appends of a stanza down to a bounds check and a copy. */
static inline void put(pl_buf *out, const char *s, size_t n)
{
    if (out->cap - out->len <= n)
        pl_buf_reserve(out, n);
    memcpy(out->data + out->len, s, n);
    out->len += n;
}

static inline void put_str(pl_buf *out, const char *s)
{
    put(out, s, strlen(s));
}

static inline void put_char(pl_buf *out, char c)
{
    if (out->cap - out->len <= 1)
        pl_buf_reserve(out, 1);
    out->data[out->len++] = c;
}

static void terminate(pl_buf *out)
{
    if (out->cap)
        out->data[out->len] = '\0';
}

/* ==== escaping ==== */

/* What a byte becomes: 0 copies it, 1 drops it (a control character XML
 * 1.0 cannot carry), anything else indexes the replacement. */
enum { ESC_COPY = 0, ESC_DROP, ESC_AMP, ESC_LT, ESC_GT, ESC_QUOT, ESC_APOS,
       ESC_TAB, ESC_LF, ESC_CR };

static const struct { const char *s; size_t len; } replacements[] = {
    [ESC_AMP] = { "&amp;", 5 },  [ESC_LT] = { "&lt;", 4 },
    [ESC_GT] = { "&gt;", 4 },    [ESC_QUOT] = { "&quot;", 6 },
    [ESC_APOS] = { "&apos;", 6 }, [ESC_TAB] = { "&#9;", 4 },
    [ESC_LF] = { "&#10;", 5 },   [ESC_CR] = { "&#13;", 5 },
};

#define D ESC_DROP
static const unsigned char text_class[256] = {
    D, D, D, D, D, D, D, D, D, 0, 0, D, D, ESC_CR, D, D,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    ['&'] = ESC_AMP, ['<'] = ESC_LT, ['>'] = ESC_GT,
};
static const unsigned char attr_class[256] = {
    D, D, D, D, D, D, D, D, D, ESC_TAB, ESC_LF, D, D, ESC_CR, D, D,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    ['&'] = ESC_AMP, ['<'] = ESC_LT, ['>'] = ESC_GT,
    ['"'] = ESC_QUOT, ['\''] = ESC_APOS,
};
#undef D

static void escape(pl_buf *out, const char *s, size_t len, int attr)
{
    const unsigned char *cls = attr ? attr_class : text_class;
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    for (; p < end; p++) {
        unsigned char k = cls[*p];
        if (k == ESC_COPY)
            continue;
        if (p > run)
            put(out, (const char *)run, (size_t)(p - run));
        if (k != ESC_DROP)
            put(out, replacements[k].s, replacements[k].len);
        run = p + 1;
    }
    if (p > run)
        put(out, (const char *)run, (size_t)(p - run));
}

/* Appends s (len bytes) to out escaped for text (&, <, > and CR) or, with
 * attr set, for a quoted attribute value (also both quotes, TAB and LF,
 * which attribute normalisation would otherwise turn into spaces). Control
 * characters that XML 1.0 cannot represent are dropped. */
void pl_xml_escape(pl_buf *out, const char *s, size_t len, int attr)
{
    pl_buf_reserve(out, len);
    escape(out, s, len, attr);
    terminate(out);
}

/* ==== elements ==== */

static int is_stream_ns(const char *ns)
{
    return strcmp(ns, PL_NS_STREAM) == 0;
}

/* The default namespace in effect for the children of e, the top of the
 * serialized subtree being top: elements in the streams namespace are
 * written prefixed and do not change it. */
static const char *scope_of(const pl_node *e, const pl_node *top)
{
    while (e != top && is_stream_ns(e->ns))
        e = e->parent;
    if (is_stream_ns(e->ns))
        return PL_NS_CLIENT;
    return e->ns;
}

static void put_name(pl_buf *out, const pl_node *e)
{
    if (is_stream_ns(e->ns))
        put(out, "stream:", 7);
    put_str(out, e->name);
}

/* Writes the namespace declaration e needs, if any. */
static void put_xmlns(pl_buf *out, const pl_node *e, const pl_node *top, const char *content_ns)
{
    if (is_stream_ns(e->ns)) {
        if (e != top && !is_stream_ns(e->parent->ns))
            put_str(out, " xmlns:stream=\"" PL_NS_STREAM "\"");
        return;
    }
    if (e == top) {
        if (strcmp(e->ns, PL_NS_CLIENT) == 0 || (content_ns && strcmp(e->ns, content_ns) == 0))
            return;
    } else if (strcmp(e->ns, scope_of(e->parent, top)) == 0) {
        return;
    }
    put(out, " xmlns=\"", 8);
    escape(out, e->ns, strlen(e->ns), 1);
    put_char(out, '"');
}

struct attr_ns {
    const char *uri;
    size_t len;
    int prefix;
};

static void put_prefix_decl(pl_buf *out, int prefix, const char *uri, size_t len)
{
    pl_buf_printf(out, " xmlns:ns%d=\"", prefix);
    escape(out, uri, len, 1);
    put_char(out, '"');
}

/* Writes one "<uri> <local>" attribute, declaring a prefix for its URI on
 * this element unless one was declared for an earlier attribute. */
static void put_ns_attr(pl_buf *out, const pl_attr *a, const char *space, struct attr_ns *seen,
                        int *nseen, int *next_prefix)
{
    const char *uri = a->name, *local = space + 1;
    size_t len = (size_t)(space - uri);
    if (len == 0) {
        pl_buf_printf(out, " %s=\"", local);
        return;
    }
    if (len == sizeof(PL_NS_XML) - 1 && memcmp(uri, PL_NS_XML, len) == 0) {
        pl_buf_printf(out, " xml:%s=\"", local);
        return;
    }
    int prefix = -1;
    for (int i = 0; i < *nseen && prefix < 0; i++)
        if (seen[i].len == len && memcmp(seen[i].uri, uri, len) == 0)
            prefix = seen[i].prefix;
    if (prefix < 0) {
        prefix = (*next_prefix)++;
        put_prefix_decl(out, prefix, uri, len);
        if (*nseen < MAX_ATTR_NS)
            seen[(*nseen)++] = (struct attr_ns){ uri, len, prefix };
    }
    pl_buf_printf(out, " ns%d:%s=\"", prefix, local);
}

static void put_attrs(pl_buf *out, const pl_node *e)
{
    struct attr_ns seen[MAX_ATTR_NS];
    int nseen = 0, next_prefix = 0;
    for (const pl_attr *a = e->attrs; a; a = a->next) {
        const char *space = strrchr(a->name, ' ');
        if (space) {
            put_ns_attr(out, a, space, seen, &nseen, &next_prefix);
        } else {
            put_char(out, ' ');
            put_str(out, a->name);
            put(out, "=\"", 2);
        }
        escape(out, a->value, strlen(a->value), 1);
        put_char(out, '"');
    }
}

/* Writes the start tag of e (or the whole element if it is empty).
 * Returns true if e has children to write. */
static int put_start(pl_buf *out, const pl_node *e, const pl_node *top, const char *content_ns)
{
    put_char(out, '<');
    put_name(out, e);
    put_xmlns(out, e, top, content_ns);
    put_attrs(out, e);
    if (!e->first) {
        put(out, "/>", 2);
        return 0;
    }
    put_char(out, '>');
    return 1;
}

static void put_end(pl_buf *out, const pl_node *e)
{
    put(out, "</", 2);
    put_name(out, e);
    put_char(out, '>');
}

/* Appends n and its subtree to out as XML for a stream whose content
 * namespace is content_ns. The walk is iterative, so any depth the parser
 * accepted can be written back. */
void pl_xml_serialize(const pl_node *n, pl_buf *out, const char *content_ns)
{
    const pl_node *cur = n;
    for (;;) {
        if (!cur->name) {
            escape(out, cur->text, cur->text_len, 0);
        } else if (put_start(out, cur, n, content_ns)) {
            cur = cur->first;
            continue;
        }
        while (cur != n && !cur->next) {
            cur = cur->parent;
            put_end(out, cur);
        }
        if (cur == n)
            break;
        cur = cur->next;
    }
    terminate(out);
}

/* The stanza as a NUL-terminated XML string for a client stream; the
 * caller frees it with pl_free. */
char *pl_stanza_to_string(const pl_stanza *st)
{
    pl_buf b = PL_BUF_INIT;
    pl_xml_serialize(pl_stanza_root(st), &b, PL_NS_CLIENT);
    return pl_buf_steal(&b);
}
