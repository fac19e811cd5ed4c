/* xml/parse.c: pl_stanza_parse, for stanzas stored as text (offline
 * messages, private XML). It runs the stream parser over the text inside a
 * synthetic stream header, so stored data gets the same XML restrictions
 * as the wire. One such stream is kept open between calls (the server is
 * single-threaded): its header is parsed once and each call feeds only the
 * stanza's text, which spares an expat parser per stanza. A call that may
 * have left the stream in a bad state discards it, and an unused stream
 * is released by pl__stanza_parse_trim. */
#include <string.h>
#include <parley/stanza.h>
#include "xml/parse.h"
#include "xml/stream.h"

/* Bytes of text one kept stream parses before it is replaced: expat keeps
 * every element and attribute name it has seen, so this bounds what a
 * stream can collect from stanzas with many distinct names. */
#define KEEP_BYTES (1024 * 1024)

typedef struct parse_ctx {
    pl_stanza *st;
    int count;
    int failed;
    int closed;
} parse_ctx;

static void on_open(void *ud, const char *ns, const char *name, const char *content_ns,
                    const pl_attr *attrs)
{
}

static void on_stanza(void *ud, pl_stanza *st)
{
    parse_ctx *c = ud;
    if (c->count++ == 0)
        c->st = st;
    else
        pl_stanza_unref(st);
}

static void on_close(void *ud)
{
    parse_ctx *c = ud;
    c->closed = 1;
}

static void on_error(void *ud, const char *condition, const char *text)
{
    parse_ctx *c = ud;
    c->failed = 1;
}

static const pl_xml_stream_cb cbs = { on_open, on_stanza, on_close, on_error };

static const char head[] = PL_XML_CLIENT_HEADER;
static const char tail[] = "</stream:stream>";

static parse_ctx ctx;            /* the results of the current call */
static pl_xml_stream *kept;      /* the open stream, between stanzas */
static size_t kept_bytes;        /* text it has parsed */
static int kept_used;            /* used since the last pl__stanza_parse_trim */

static void discard(void)
{
    pl_xml_stream_free(kept);
    kept = NULL;
}

/* The kept stream, opened (header parsed) if there is none. */
static pl_xml_stream *stream(void)
{
    if (kept)
        return kept;
    kept = pl_xml_stream_new(&cbs, &ctx, PL_NS_CLIENT, 0);
    kept_bytes = 0;
    if (pl_xml_stream_feed(kept, head, sizeof head - 1) != 0 || !pl_xml_stream_between(kept))
        discard();
    return kept;
}

pl_stanza *pl_stanza_parse(const char *xml, size_t len)
{
    memset(&ctx, 0, sizeof ctx);
    kept_used = 1;
    pl_xml_stream *xs = stream();
    if (!xs)
        return NULL;
    int fed = pl_xml_stream_feed(xs, xml, len) == 0;
    int closed = ctx.closed;   /* by the text: never a stanza */
    int between = fed && !closed && pl_xml_stream_between(xs);
    if (fed && !closed && !between)
        /* an element left open or a partial token: the text is judged as
         * a whole stream would be, and the stream is spent */
        pl_xml_stream_feed(xs, tail, sizeof tail - 1);
    int ok = !ctx.failed && !closed && ctx.count == 1;
    kept_bytes += len;
    if (!between || !ok || kept_bytes > KEEP_BYTES)
        discard();
    pl_stanza *st = ctx.st;
    ctx.st = NULL;
    if (!ok) {
        pl_stanza_unref(st);
        return NULL;
    }
    return st;
}

/* Frees the kept stream if no call used it since the previous call. */
void pl__stanza_parse_trim(void)
{
    if (!kept_used)
        discard();
    kept_used = 0;
}
