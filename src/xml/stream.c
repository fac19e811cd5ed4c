/* xml/stream.c: the incremental XMPP stream parser of xml/stream.h, on
 * libexpat in namespace mode. The stream header becomes a stream_open
 * event, each element below it is built straight into its own stanza
 * arena and handed over when it ends, and the restricted XML of RFC 6120
 * 11.1 (DTDs, comments, processing instructions) ends the stream. The
 * bytes of every top-level element are counted while they arrive, and
 * input is handed to expat in slices no larger than what is left of the
 * limit, so an oversized element is refused without being buffered.
 *
 * pl_xml_stream_free must not be called from inside a callback; callers
 * defer it. pl_xml_stream_restart may be called from any callback. */
#include <limits.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <expat.h>
#include <gnutls/crypto.h>
#include <parley/base.h>
#include <parley/stanza.h>
#include "xml/arena.h"
#include "xml/stream.h"

/* Separates namespace URI and local name in the names expat reports. It
 * cannot occur in either: XML 1.0 forbids the character everywhere. */
#define NS_SEP '\x01'

/* The stream header may always be this large, even under a smaller
 * stanza limit. */
#define HEADER_MIN_LIMIT 4096

/* Most bytes handed to one XML_Parse call. Expat copies its input into
 * its own buffer, which keeps the size of the largest call (or partial
 * token) for the life of the connection. */
#define MAX_SLICE (2 * 1024)

/* The content namespace client streams share instead of a copy each. */
static const char ns_client[] = PL_NS_CLIENT;

/* COMPAT: expat 2.6 (and distributions that backported it) by default
 * re-parses an incomplete token only once much more data has arrived,
 * which would hold back a stanza that a small read completes. Versions
 * without the switch do not defer; the weak reference is NULL there. */
#pragma weak XML_SetReparseDeferralEnabled
XML_Bool XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled);

enum stream_state { EXPECT_HEADER, OPEN, CLOSED, DEAD };

/* Chunks holding the parser's memory (see "the parser's memory"). */
typedef struct mem_pool {
    struct mem_chunk *chunks;
} mem_pool;

struct pl_xml_stream {
    XML_Parser p;
    mem_pool pool;           /* expat's memory (see above) */
    pl_xml_stream_cb cb;
    void *ud;
    char *content_ns;
    size_t content_len;
    size_t max;              /* byte limit of a top-level element; 0: none */
    enum stream_state state;
    int depth;               /* open elements: 1 in the header, 2+ in a stanza */
    int mapped;              /* depth of the innermost element mapped to PL_NS_CLIENT */
    pl_stanza *st;           /* the stanza being built */
    pl_node *cur;            /* its innermost open element */
    pl_stanza *hdr;          /* holds the header's strings during stream_open */
    const char *hdr_ns;      /* default namespace declared on the header */
    char *hdr_raw;           /* the header's start tag as received, to rebuild */
    size_t hdr_raw_len;      /*   the parser after pl_xml_stream_trim */
    int silent;              /* re-parsing hdr_raw: no callbacks */
    unsigned char hdr_decls;     /* namespace declarations on the header */
    unsigned char hdr_stream_ok; /* one of them binds "stream" to PL_NS_STREAM */
    unsigned char hdr_canon;     /* it binds what PL_XML_CLIENT_HEADER does,
                                  * so no copy of it is kept */
    XML_Index pos;           /* bytes handed to expat since the last reset */
    XML_Index slice_end;     /* pos once the current XML_Parse call is done */
    XML_Index start;         /* where the pending top-level item begins */
    int in_parse;            /* inside XML_Parse */
    int stopped;             /* XML_StopParser was called */
    const char *err_cond;    /* error found by a handler */
    const char *err_text;
    int restart;             /* restart requested from a callback */
    int discard;
    XML_Index restart_at;    /* end of the event that requested it */
};

/* ==== the parser's memory ====
 * Expat's allocations for a stream come from chunks the stream owns, so
 * releasing the parser of an idle stream frees whole chunks (whose pages
 * the allocator can return) instead of leaving small holes between other
 * connections' data. Frees inside a chunk are no-ops; the chunk goes with
 * the parser. Large blocks (buffers for big stanzas) are ordinary heap
 * blocks. Expat's callbacks carry no context, so the stream being parsed
 * is named in cur_pool around every expat call. */

/* One chunk is one anonymous mapping of CHUNK_MAP bytes, so releasing it
 * returns exactly its pages to the system. */
#define CHUNK_MAP (12 * 1024)
#define CHUNK_SIZE (CHUNK_MAP - offsetof(mem_chunk, data))
#define BIG_BLOCK (4 * 1024)
#define BIG_FLAG ((size_t)1)

typedef struct mem_chunk {
    struct mem_chunk *next;
    size_t used;
    max_align_t data[];
} mem_chunk;

typedef union mem_hdr {
    size_t size;          /* block size; BIG_FLAG set for heap blocks */
    max_align_t align;
} mem_hdr;

static mem_pool *cur_pool;
static size_t mapped_total;   /* bytes of chunks mapped by all streams */

/* Chunks released by parsers are kept for the next parsers, so a stream
 * restart or a new connection costs no system call and touches no fresh
 * pages. The cache follows demand: pl_xml_stream_shrink_cache, called
 * once a second, keeps at most as many chunks as parsers took in the
 * second before, so a steady stream of logins reuses the chunks that the
 * idle sweep freed, and a quiet second empties the cache. CACHE_MAX
 * bounds it in any case. */
#define CACHE_MAX 8192
static mem_chunk *cache;
static size_t cache_n;        /* chunks in the cache */
static size_t taken;          /* chunks parsers took since the last shrink */

/* Fresh chunks are carved from regions of REGION_CHUNKS populated in one
 * mapping, so a burst of new connections costs one system call per
 * REGION_CHUNKS parsers instead of one mapping and three page faults
 * each. Released chunks are unmapped one by one like any other. */
#define REGION_CHUNKS 32
static char *region;          /* the unused rest of the current region */
static size_t region_left;    /* chunks in it */

static mem_chunk *chunk_get(void)
{
    taken++;
    if (cache) {
        mem_chunk *c = cache;
        cache = c->next;
        cache_n--;
        return c;
    }
    if (!region_left) {
        void *m = mmap(NULL, REGION_CHUNKS * CHUNK_MAP, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        region = m;
        region_left = REGION_CHUNKS;
    }
    mem_chunk *c = (mem_chunk *)region;
    region += CHUNK_MAP;
    region_left--;
    mapped_total += CHUNK_MAP;
    return c;
}

static void chunk_unmap(mem_chunk *c)
{
    munmap(c, CHUNK_MAP);
    mapped_total -= CHUNK_MAP;
}

static void chunk_put(mem_chunk *c)
{
    if (cache_n >= CACHE_MAX) {
        chunk_unmap(c);
        return;
    }
    c->next = cache;
    cache = c;
    cache_n++;
}

/* Unmaps the cached chunks beyond the last second's demand, and after a
 * second in which no parser was made, the unused rest of the region. */
void pl_xml_stream_shrink_cache(void)
{
    for (size_t guard = 0; cache_n > taken && cache && guard < CACHE_MAX; guard++) {
        mem_chunk *c = cache;
        cache = c->next;
        cache_n--;
        chunk_unmap(c);
    }
    if (!taken && region_left) {
        munmap(region, region_left * CHUNK_MAP);
        region = NULL;
        region_left = 0;
    }
    taken = 0;
}

static size_t round_up(size_t n)
{
    size_t a = sizeof(max_align_t);
    return (n + a - 1) / a * a;
}

static void *pool_malloc(size_t n)
{
    size_t need = round_up(sizeof(mem_hdr) + n);
    mem_hdr *h;
    if (!cur_pool || need > BIG_BLOCK) {
        h = pl_malloc(sizeof(mem_hdr) + n);
        h->size = (n << 1) | BIG_FLAG;
        return h + 1;
    }
    mem_chunk *c = cur_pool->chunks;
    if (!c || CHUNK_SIZE - c->used < need) {
        c = chunk_get();
        if (!c) {
            /* out of mappings: an ordinary heap block will do */
            h = pl_malloc(sizeof(mem_hdr) + n);
            h->size = (n << 1) | BIG_FLAG;
            return h + 1;
        }
        c->used = 0;
        c->next = cur_pool->chunks;
        cur_pool->chunks = c;
    }
    h = (mem_hdr *)((char *)c->data + c->used);
    c->used += need;
    h->size = n << 1;
    return h + 1;
}

static void pool_free(void *p)
{
    if (!p)
        return;
    mem_hdr *h = (mem_hdr *)p - 1;
    if (h->size & BIG_FLAG)
        pl_free(h);
}

static void *pool_realloc(void *p, size_t n)
{
    if (!p)
        return pool_malloc(n);
    mem_hdr *h = (mem_hdr *)p - 1;
    if (h->size & BIG_FLAG && round_up(sizeof(mem_hdr) + n) > BIG_BLOCK) {
        h = pl_realloc(h, sizeof(mem_hdr) + n);
        h->size = (n << 1) | BIG_FLAG;
        return h + 1;
    }
    size_t old = h->size >> 1;
    if (n <= old && !(h->size & BIG_FLAG))
        return p;
    void *q = pool_malloc(n);
    memcpy(q, p, old < n ? old : n);
    pool_free(p);
    return q;
}

static void pool_release(mem_pool *pool)
{
    while (pool->chunks) {
        mem_chunk *c = pool->chunks;
        pool->chunks = c->next;
        chunk_put(c);
    }
}

static const XML_Memory_Handling_Suite mem_suite = { pool_malloc, pool_realloc, pool_free };

/* ==== helpers ==== */

static void stop(pl_xml_stream *xs)
{
    if (xs->stopped)
        return;
    xs->stopped = 1;
    XML_StopParser(xs->p, XML_FALSE);
}

/* Records a stream error found inside a handler and stops the parser; the
 * error callback runs once XML_Parse has returned. */
static void fail(pl_xml_stream *xs, const char *cond, const char *text)
{
    xs->err_cond = cond;
    xs->err_text = text;
    stop(xs);
}

/* Stream position just after the current expat event. */
static XML_Index event_end(pl_xml_stream *xs)
{
    return XML_GetCurrentByteIndex(xs->p) + XML_GetCurrentByteCount(xs->p);
}

/* The limit for the pending item: the header's or a stanza's. */
static XML_Index current_limit(const pl_xml_stream *xs)
{
    if (xs->depth > 0 || xs->max >= HEADER_MIN_LIMIT)
        return (XML_Index)xs->max;
    return HEADER_MIN_LIMIT;
}

/* True (after recording the error) when the pending top-level element,
 * up to the end of the current event, is over the limit. Expat is only
 * asked for the position when the slice being parsed could take the
 * element over the limit. */
static int over_limit(pl_xml_stream *xs)
{
    XML_Index limit = current_limit(xs);
    if (!xs->max || xs->slice_end - xs->start <= limit || event_end(xs) - xs->start <= limit)
        return 0;
    fail(xs, "policy-violation", xs->depth ? "stanza too large" : "stream header too large");
    return 1;
}

/* Splits an expat name "uri<SEP>local" (or "local"); returns the local
 * name and sets *urilen (0 without a namespace). */
static const char *split_name(const char *name, size_t *urilen)
{
    const char *sep = strchr(name, NS_SEP);
    if (!sep) {
        *urilen = 0;
        return name;
    }
    *urilen = (size_t)(sep - name);
    return sep + 1;
}

/* An attribute name in the form of parley/stanza.h: "local", "xml:local"
 * or "uri local". */
static const char *attr_name(pl__arena *a, const char *name)
{
    size_t urilen;
    const char *local = split_name(name, &urilen);
    if (local == name)
        return pl__arena_strndup(a, name, strlen(name));
    size_t llen = strlen(local);
    if (urilen == sizeof(PL_NS_XML) - 1 && memcmp(name, PL_NS_XML, urilen) == 0) {
        char *s = pl__arena_str(a, 4 + llen + 1);
        memcpy(s, "xml:", 4);
        memcpy(s + 4, local, llen + 1);
        return s;
    }
    char *s = pl__arena_str(a, urilen + 1 + llen + 1);
    memcpy(s, name, urilen);
    s[urilen] = ' ';
    memcpy(s + urilen + 1, local, llen + 1);
    return s;
}

static void add_attrs(pl_stanza *st, pl_node *n, const char **atts)
{
    pl_attr **tail = &n->attrs;
    for (int i = 0; atts[i]; i += 2) {
        const char *name = attr_name(&st->arena, atts[i]);
        const char *value = pl__arena_strndup(&st->arena, atts[i + 1], strlen(atts[i + 1]));
        tail = pl__attr_append(st, tail, name, value);
    }
}

/* ==== handlers ==== */

static void XMLCALL on_nsdecl(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    pl_xml_stream *xs = ud;
    if (xs->stopped || xs->silent || xs->depth != 0)
        return;
    if (xs->hdr_decls < UCHAR_MAX)
        xs->hdr_decls++;
    if (prefix) {
        if (strcmp(prefix, "stream") == 0 && uri && strcmp(uri, PL_NS_STREAM) == 0)
            xs->hdr_stream_ok = 1;
        return;
    }
    if (!xs->hdr)
        xs->hdr = pl__stanza_alloc(0);
    xs->hdr_ns = uri ? pl_stanza_strdup(xs->hdr, uri) : NULL;
}

/* Keeps a copy of the header's start tag, whose namespace declarations
 * a rebuilt parser needs (see pl_xml_stream_trim), unless they are
 * exactly PL_XML_CLIENT_HEADER's: the default namespace is the client
 * one and "stream" the streams one. The element is then stream:stream,
 * since no other prefix is bound to that namespace, and
 * PL_XML_CLIENT_HEADER rebuilds the same bindings for what follows, its
 * end tag included. */
static void save_header(pl_xml_stream *xs, const char *element_ns, size_t element_ns_len)
{
    xs->hdr_canon = xs->hdr_decls == 2 && xs->hdr_stream_ok && xs->hdr_ns
        && strcmp(xs->hdr_ns, PL_NS_CLIENT) == 0 && xs->content_ns == ns_client
        && element_ns_len == sizeof PL_NS_STREAM - 1
        && memcmp(element_ns, PL_NS_STREAM, element_ns_len) == 0;
    pl_free(xs->hdr_raw);
    xs->hdr_raw = NULL;
    if (xs->hdr_canon)
        return;
    int off = 0, size = 0;
    const char *buf = XML_GetInputContext(xs->p, &off, &size);
    int count = XML_GetCurrentByteCount(xs->p);
    pl_free(xs->hdr_raw);
    xs->hdr_raw = NULL;
    if (!buf || count <= 0 || off < 0 || off + count > size)
        return;
    xs->hdr_raw = pl_strndup(buf + off, (size_t)count);
    xs->hdr_raw_len = (size_t)count;
}

static void header_start(pl_xml_stream *xs, const char *name, const char **atts)
{
    XML_SetStartNamespaceDeclHandler(xs->p, NULL);
    if (over_limit(xs))
        return;
    xs->depth = 1;
    xs->mapped = 1;
    xs->state = OPEN;
    xs->start = event_end(xs);
    if (xs->silent)
        return;
    size_t urilen;
    const char *local = split_name(name, &urilen);
    save_header(xs, name, urilen);
    if (!xs->hdr)
        xs->hdr = pl__stanza_alloc(0);
    pl_stanza *h = xs->hdr;
    const char *ns = pl_stanza_strndup(h, name, urilen);
    pl_node *root = pl__node_new(h, NULL, pl_stanza_strdup(h, local), ns);
    add_attrs(h, root, atts);
    h->root = root;
    if (xs->cb.stream_open)
        xs->cb.stream_open(xs->ud, ns, root->name, xs->hdr_ns, root->attrs);
    pl_stanza_unref(h);
    xs->hdr = NULL;
    xs->hdr_ns = NULL;
}

/* The namespace string for a new element of the stanza at depth d: the
 * content namespace becomes PL_NS_CLIENT on the top-level element and on
 * descendants that inherit it without interruption; an URI equal to the
 * parent's shares its string. */
static const char *element_ns(pl_xml_stream *xs, const pl_node *parent, const char *uri,
                              size_t len, int d)
{
    if (xs->mapped == d - 1 && len == xs->content_len && memcmp(uri, xs->content_ns, len) == 0) {
        xs->mapped = d;
        return PL_NS_CLIENT;
    }
    if (parent && strncmp(parent->ns, uri, len) == 0 && parent->ns[len] == '\0')
        return parent->ns;
    return pl__arena_strndup(&xs->st->arena, uri, len);
}

static void element_start(pl_xml_stream *xs, const char *name, const char **atts)
{
    if (xs->depth == 1) {
        xs->start = XML_GetCurrentByteIndex(xs->p);
        xs->st = pl__stanza_alloc(0);
        xs->cur = NULL;
    }
    if (over_limit(xs))
        return;
    pl_stanza *st = xs->st;
    size_t urilen;
    const char *local = split_name(name, &urilen);
    int d = xs->depth + 1;
    const char *ns = element_ns(xs, xs->cur, name, urilen, d);
    pl_node *n = pl__node_new(st, xs->cur, pl__arena_strndup(&st->arena, local, strlen(local)), ns);
    add_attrs(st, n, atts);
    if (!xs->cur)
        st->root = n;
    xs->cur = n;
    xs->depth = d;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    pl_xml_stream *xs = ud;
    if (xs->stopped)
        return;
    if (xs->depth == 0)
        header_start(xs, name, atts);
    else
        element_start(xs, name, atts);
}

static void stanza_end(pl_xml_stream *xs)
{
    if (over_limit(xs))
        return;
    pl_stanza *st = xs->st;
    xs->st = NULL;
    xs->cur = NULL;
    xs->depth = 1;
    xs->mapped = 1;
    xs->start = event_end(xs);
    if (xs->cb.stanza)
        xs->cb.stanza(xs->ud, st);
    else
        pl_stanza_unref(st);
}

static void stream_end(pl_xml_stream *xs)
{
    xs->depth = 0;
    xs->state = CLOSED;
    if (xs->cb.stream_close)
        xs->cb.stream_close(xs->ud);
    stop(xs);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    pl_xml_stream *xs = ud;
    if (xs->stopped)
        return;
    if (xs->depth == 1) {
        stream_end(xs);
    } else if (xs->depth == 2) {
        stanza_end(xs);
    } else {
        if (over_limit(xs))
            return;
        if (xs->mapped == xs->depth)
            xs->mapped--;
        xs->depth--;
        xs->cur = xs->cur->parent;
    }
}

static int all_space(const char *s, int len)
{
    for (int i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    pl_xml_stream *xs = ud;
    if (xs->stopped || xs->depth == 0)
        return;
    if (xs->depth == 1) {
        if (!all_space(s, len))
            fail(xs, "bad-format", "text outside stanzas");
        else
            xs->start = event_end(xs);
        return;
    }
    if (over_limit(xs))
        return;
    pl__node_append_text(xs->st, xs->cur, s, (size_t)len);
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
    pl_xml_stream *xs = ud;
    if (!xs->stopped)
        fail(xs, "restricted-xml", "comments are not allowed");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    pl_xml_stream *xs = ud;
    if (!xs->stopped)
        fail(xs, "restricted-xml", "processing instructions are not allowed");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    pl_xml_stream *xs = ud;
    if (!xs->stopped)
        fail(xs, "restricted-xml", "DTDs are not allowed");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
                              int value_len, const XML_Char *base, const XML_Char *sysid,
                              const XML_Char *pubid, const XML_Char *notation)
{
    pl_xml_stream *xs = ud;
    if (!xs->stopped)
        fail(xs, "restricted-xml", "entity declarations are not allowed");
}

/* Installs the handlers and settings; expat clears them on reset. */
static void install(pl_xml_stream *xs)
{
    XML_Parser p = xs->p;
    XML_SetUserData(p, xs);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    XML_SetStartNamespaceDeclHandler(p, on_nsdecl);
    XML_SetCommentHandler(p, on_comment);
    XML_SetProcessingInstructionHandler(p, on_pi);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    XML_SetEntityDeclHandler(p, on_entity);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
    if (XML_SetReparseDeferralEnabled)
        XML_SetReparseDeferralEnabled(p, XML_FALSE);
}

static void release_parser(pl_xml_stream *xs);

static void create_parser(pl_xml_stream *xs)
{
    char sep[2] = { NS_SEP, '\0' };
    mem_pool *saved = cur_pool;
    cur_pool = &xs->pool;
    xs->p = XML_ParserCreate_MM("UTF-8", &mem_suite, sep);
    cur_pool = saved;
    if (!xs->p) {
        pl_log(PL_LOG_ERROR, "cannot create an XML parser");
        abort();
    }
    /* Expat salts its name hashes against collision floods; a salt from
     * GnuTLS's nonce generator spares it a getrandom call per parser. */
    unsigned long salt = 0;
    gnutls_rnd(GNUTLS_RND_NONCE, &salt, sizeof salt);
    XML_SetHashSalt(xs->p, salt | 1);
    install(xs);
}

/* Forgets all parse state: the next byte starts a new stream. */
static void reset(pl_xml_stream *xs)
{
    /* a fresh parser in a fresh pool, so a restart leaves no dead blocks */
    if (xs->p)
        release_parser(xs);
    create_parser(xs);
    pl_free(xs->hdr_raw);
    xs->hdr_raw = NULL;
    xs->hdr_decls = xs->hdr_stream_ok = xs->hdr_canon = 0;
    pl_stanza_unref(xs->st);
    pl_stanza_unref(xs->hdr);
    xs->st = xs->hdr = NULL;
    xs->cur = NULL;
    xs->hdr_ns = NULL;
    xs->state = EXPECT_HEADER;
    xs->depth = 0;
    xs->mapped = 1;
    xs->pos = xs->start = xs->slice_end = 0;
    xs->stopped = 0;
    xs->err_cond = xs->err_text = NULL;
    xs->restart = xs->discard = 0;
    xs->restart_at = 0;
}

/* ==== public ==== */

/* Creates a parser expecting a stream header. The callbacks are copied
 * (any may be NULL; a stanza nobody takes is freed) and so is content_ns
 * (NULL: PL_NS_CLIENT). */
pl_xml_stream *pl_xml_stream_new(const pl_xml_stream_cb *cb, void *ud,
                                 const char *content_ns, size_t max_stanza)
{
    pl_xml_stream *xs = pl_calloc(1, sizeof(*xs));
    if (cb)
        xs->cb = *cb;
    xs->ud = ud;
    xs->content_ns = !content_ns || strcmp(content_ns, PL_NS_CLIENT) == 0
        ? (char *)ns_client : pl_strdup(content_ns);
    xs->content_len = strlen(xs->content_ns);
    xs->max = max_stanza;
    reset(xs);
    return xs;
}

/* Frees the parser and any partly built stanza. Must not be called from
 * inside one of its callbacks. NULL is ignored. */
void pl_xml_stream_free(pl_xml_stream *xs)
{
    if (!xs)
        return;
    pl_stanza_unref(xs->st);
    pl_stanza_unref(xs->hdr);
    if (xs->p)
        release_parser(xs);
    pl_free(xs->hdr_raw);
    if (xs->content_ns != ns_client)
        pl_free(xs->content_ns);
    pl_free(xs);
}

/* Marks the stream dead and runs the error callback. A restart requested
 * from that callback revives the stream for the next feed. */
static int report(pl_xml_stream *xs, const char *cond, const char *text)
{
    xs->state = DEAD;
    if (xs->cb.error)
        xs->cb.error(xs->ud, cond, text);
    if (xs->state == DEAD) {
        pl_stanza_unref(xs->st);
        xs->st = NULL;
        xs->cur = NULL;
    }
    return -1;
}

/* How many of the remaining bytes the next XML_Parse call may see: no more
 * than one byte past what the pending element may still grow by. */
static size_t slice_len(const pl_xml_stream *xs, size_t remaining)
{
    size_t n = remaining < MAX_SLICE ? remaining : MAX_SLICE;
    if (!xs->max)
        return n;
    XML_Index budget = current_limit(xs) + 1 - (xs->pos - xs->start);
    if (budget < 1)
        budget = 1;
    return (XML_Index)n < budget ? n : (size_t)budget;
}

/* After XML_Parse failed or was stopped: the error to report, or 0 when
 * the stream simply ended. */
static int parse_stopped(pl_xml_stream *xs)
{
    if (xs->err_cond)
        return report(xs, xs->err_cond, xs->err_text);
    if (xs->state == CLOSED)
        return 0;
    return report(xs, "not-well-formed", XML_ErrorString(XML_GetErrorCode(xs->p)));
}

/* Re-creates the parser of an open stream that pl_xml_stream_trim
 * released, by parsing the saved header again without callbacks: the
 * namespace prefixes it declared are bound again and its end tag will
 * match. */
static int rebuild(pl_xml_stream *xs)
{
    size_t max = xs->max;
    create_parser(xs);
    xs->depth = 0;
    xs->max = 0;   /* the header was accepted once */
    xs->silent = 1;
    xs->in_parse = 1;
    xs->pos = xs->start = 0;
    const char *hdr = xs->hdr_canon ? PL_XML_CLIENT_HEADER : xs->hdr_raw;
    size_t hdr_len = xs->hdr_canon ? sizeof PL_XML_CLIENT_HEADER - 1 : xs->hdr_raw_len;
    xs->slice_end = (XML_Index)hdr_len;
    mem_pool *saved = cur_pool;
    cur_pool = &xs->pool;
    enum XML_Status r = XML_Parse(xs->p, hdr, (int)hdr_len, XML_FALSE);
    cur_pool = saved;
    xs->in_parse = 0;
    xs->silent = 0;
    xs->max = max;
    if (r != XML_STATUS_OK || xs->depth != 1)
        return parse_stopped(xs);
    xs->pos = xs->slice_end;
    return 0;
}

/* Parses len bytes of the stream, running the callbacks for each complete
 * event. Returns 0, or -1 once the error callback has run. */
int pl_xml_stream_feed(pl_xml_stream *xs, const char *data, size_t len)
{
    if (xs->state == DEAD)
        return -1;
    if (!xs->p && xs->state == EXPECT_HEADER)
        reset(xs);
    if (!xs->p && xs->state == OPEN && len && rebuild(xs) != 0)
        return -1;
    size_t done = 0;
    while (done < len && xs->state != CLOSED) {
        size_t n = slice_len(xs, len - done);
        XML_Index base = xs->pos;
        xs->slice_end = base + (XML_Index)n;
        xs->in_parse = 1;
        mem_pool *saved = cur_pool;
        cur_pool = &xs->pool;
        enum XML_Status r = XML_Parse(xs->p, data + done, (int)n, XML_FALSE);
        cur_pool = saved;
        xs->in_parse = 0;
        if (xs->restart) {
            size_t at = done + (size_t)(xs->restart_at - base);
            int discard = xs->discard;
            reset(xs);
            if (discard)
                return 0;
            done = at > done ? at : done + n;
            continue;
        }
        if (r != XML_STATUS_OK)
            return parse_stopped(xs);
        xs->pos += (XML_Index)n;
        done += n;
        if (xs->max && xs->pos - xs->start > current_limit(xs))
            return report(xs, "policy-violation",
                          xs->depth ? "stanza too large" : "stream header too large");
    }
    return 0;
}

/* Requests a restart. Inside a callback it stops expat after the current
 * event and the feed resets the parser once XML_Parse returns, then
 * continues with (or, with discard_rest, drops) the rest of its bytes;
 * outside parsing it resets at once. */
void pl_xml_stream_restart(pl_xml_stream *xs, int discard_rest)
{
    if (!xs->in_parse) {
        reset(xs);
        return;
    }
    if (!xs->restart)
        xs->restart_at = event_end(xs);
    xs->restart = 1;
    xs->discard |= discard_rest;
    stop(xs);
}

static void release_parser(pl_xml_stream *xs)
{
    mem_pool *saved = cur_pool;
    cur_pool = &xs->pool;
    XML_ParserFree(xs->p);
    cur_pool = saved;
    pool_release(&xs->pool);
    xs->p = NULL;
}

/* Releases the expat parser with all its buffers when nothing is pending:
 * before the first byte of a stream, between stanzas of an open stream
 * with no partial token buffered (the next feed rebuilds the parser from
 * the saved header), or once the stream is closed or dead (a restart
 * re-creates it). Otherwise, or inside a callback, it does nothing. */
void pl_xml_stream_trim(pl_xml_stream *xs)
{
    if (xs->in_parse || !xs->p)
        return;
    if (xs->state == CLOSED || xs->state == DEAD) {
        release_parser(xs);
        pl_stanza_unref(xs->st);
        pl_stanza_unref(xs->hdr);
        xs->st = xs->hdr = NULL;
        xs->cur = NULL;
        xs->hdr_ns = NULL;
        return;
    }
    if (xs->state == EXPECT_HEADER && xs->pos == 0 && !xs->hdr)
        release_parser(xs);
    else if (xs->state == OPEN && xs->depth == 1 && !xs->st && xs->pos == xs->start
             && (xs->hdr_raw || xs->hdr_canon))
        release_parser(xs);
}

/* Between top-level elements: what pl_xml_stream_trim also requires
 * before it releases the parser of an open stream. */
int pl_xml_stream_between(const pl_xml_stream *xs)
{
    return !xs->in_parse && xs->state == OPEN && xs->depth == 1 && !xs->st
        && xs->pos == xs->start;
}

/* Bytes of the header copy kept to rebuild the parser after a trim: 0
 * for a header that binds the namespaces PL_XML_CLIENT_HEADER does. */
size_t pl_xml_stream_header_kept(const pl_xml_stream *xs)
{
    return xs->hdr_raw ? xs->hdr_raw_len : 0;
}

/* Bytes of parser memory held by all streams at this moment. */
size_t pl_xml_stream_mapped(void)
{
    return mapped_total - cache_n * CHUNK_MAP;
}

/* Bytes of released parser memory kept for reuse. */
size_t pl_xml_stream_cached(void)
{
    return cache_n * CHUNK_MAP;
}

/* Replaces the byte limit of one top-level element (0: none). */
void pl_xml_stream_set_limit(pl_xml_stream *xs, size_t max_stanza)
{
    xs->max = max_stanza;
}
