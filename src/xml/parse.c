/* xml/parse.c: pl_stanza_parse, for stanzas stored as text (offline
 * messages, private XML). It runs the stream parser over the text inside a
 * synthetic stream header, so stored data gets the same XML restrictions
 * as the wire. */
#include <string.h>
#include <parley/stanza.h>
#include "xml/stream.h"

typedef struct parse_ctx {
    pl_stanza *st;
    int count;
    int failed;
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
}

static void on_error(void *ud, const char *condition, const char *text)
{
    parse_ctx *c = ud;
    c->failed = 1;
}

static const pl_xml_stream_cb cbs = { on_open, on_stanza, on_close, on_error };

pl_stanza *pl_stanza_parse(const char *xml, size_t len)
{
    static const char head[] = "<stream:stream xmlns='jabber:client' "
                               "xmlns:stream='http://etherx.jabber.org/streams'>";
    static const char tail[] = "</stream:stream>";
    parse_ctx c = { NULL, 0, 0 };
    pl_xml_stream *xs = pl_xml_stream_new(&cbs, &c, PL_NS_CLIENT, 0);
    if (pl_xml_stream_feed(xs, head, sizeof head - 1) == 0 && pl_xml_stream_feed(xs, xml, len) == 0)
        pl_xml_stream_feed(xs, tail, sizeof tail - 1);
    pl_xml_stream_free(xs);
    if (c.failed || c.count != 1) {
        pl_stanza_unref(c.st);
        return NULL;
    }
    return c.st;
}
