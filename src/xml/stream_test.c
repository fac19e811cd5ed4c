/* xml/stream_test.c: unit tests of the incremental stream parser
 * (stream.c): events, namespaces, restricted XML, size limits and
 * restarts. Every event is logged as one line and compared exactly. */
#include <malloc.h>
#include <string.h>
#include <unistd.h>
#include <parley/base.h>
#include <parley/buf.h>
#include <parley/stanza.h>
#include "xml/stream.h"
#include "../../tests/unit/test.h"

#define STREAM_NS "http://etherx.jabber.org/streams"
#define HDR "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " \
            "xmlns:stream='" STREAM_NS "' to='example.com' version='1.0' xml:lang='en'>"
#define HDR_LOG "open " STREAM_NS " stream content=jabber:client to=example.com " \
                "version=1.0 xml:lang=en\n"
#define SHDR "<stream:stream xmlns='jabber:server' xmlns:stream='" STREAM_NS "' " \
             "xmlns:db='jabber:server:dialback' to='example.com' version='1.0'>"

typedef struct rec {
    pl_xml_stream *xs;
    pl_buf log;
    pl_stanza *last;            /* the latest stanza, kept for inspection */
    const char *restart_name;   /* restart when a stanza of this name ends */
    int discard;
    int restart_on_error;
    size_t heap_base;           /* heap in use before the feed, for limits */
    size_t heap_growth;         /* growth seen when the error arrived */
} rec;

static void on_open(void *ud, const char *ns, const char *name, const char *content_ns,
                    const pl_attr *attrs)
{
    rec *r = ud;
    pl_buf_printf(&r->log, "open %s %s content=%s", ns, name, content_ns ? content_ns : "(none)");
    for (const pl_attr *a = attrs; a; a = a->next)
        pl_buf_printf(&r->log, " %s=%s", a->name, a->value);
    pl_buf_putc(&r->log, '\n');
}

static void on_stanza(void *ud, pl_stanza *st)
{
    rec *r = ud;
    char *s = pl_stanza_to_string(st);
    pl_buf_printf(&r->log, "stanza %s\n", s);
    pl_free(s);
    pl_stanza_unref(r->last);
    r->last = st;
    if (r->restart_name && strcmp(pl_stanza_root(st)->name, r->restart_name) == 0)
        pl_xml_stream_restart(r->xs, r->discard);
}

static void on_close(void *ud)
{
    rec *r = ud;
    pl_buf_puts(&r->log, "close\n");
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void on_error(void *ud, const char *cond, const char *text)
{
    rec *r = ud;
    size_t now = heap_in_use();
    r->heap_growth = now > r->heap_base ? now - r->heap_base : 0;
    pl_buf_printf(&r->log, "error %s: %s\n", cond, text);
    if (r->restart_on_error)
        pl_xml_stream_restart(r->xs, 1);
}

static const pl_xml_stream_cb callbacks = { on_open, on_stanza, on_close, on_error };

static rec *rec_new(const char *content_ns, size_t limit)
{
    rec *r = pl_calloc(1, sizeof(*r));
    r->xs = pl_xml_stream_new(&callbacks, r, content_ns, limit);
    pl_buf_puts(&r->log, "");
    return r;
}

static void rec_free(rec *r)
{
    pl_xml_stream_free(r->xs);
    pl_stanza_unref(r->last);
    pl_buf_free(&r->log);
    pl_free(r);
}

static int feed(rec *r, const char *s)
{
    return pl_xml_stream_feed(r->xs, s, strlen(s));
}

/* Feeds s in pieces of n bytes; returns the first non-zero result. */
static int feed_pieces(rec *r, const char *s, size_t n)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i += n) {
        size_t k = len - i < n ? len - i : n;
        int rc = pl_xml_stream_feed(r->xs, s + i, k);
        if (rc)
            return rc;
    }
    return 0;
}

static void check_log(rec *r, const char *expected)
{
    CHECK_STR(r->log.data, expected);
}

/* ==== events ==== */

PL_TEST(stream_open_attrs)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR), 0);
    check_log(r, HDR_LOG);
    rec_free(r);
}

PL_TEST(stream_open_without_content_ns)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, "<s:stream xmlns:s='" STREAM_NS "' from='a' id='x&amp;y'>"), 0);
    check_log(r, "open " STREAM_NS " stream content=(none) from=a id=x&y\n");
    rec_free(r);
}

PL_TEST(stream_open_wrong_namespace_reported)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, "<stream xmlns='urn:wrong'>"), 0);
    check_log(r, "open urn:wrong stream content=urn:wrong\n");
    rec_free(r);
}

#define STANZAS "<message to='a@b' type='chat'><body>hi</body></message>" \
                "<presence/>\n  <iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>"
#define STANZAS_LOG "stanza <message to=\"a@b\" type=\"chat\"><body>hi</body></message>\n" \
                    "stanza <presence/>\n" \
                    "stanza <iq type=\"get\" id=\"1\"><query xmlns=\"jabber:iq:roster\"/></iq>\n"

PL_TEST(several_stanzas_one_feed)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR STANZAS), 0);
    check_log(r, HDR_LOG STANZAS_LOG);
    pl_node *root = pl_stanza_root(r->last);
    CHECK_STR(root->ns, PL_NS_CLIENT);
    CHECK_STR(pl_node_first_element(root)->ns, "jabber:iq:roster");
    rec_free(r);
}

PL_TEST(small_stanza_is_one_block)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<message to='juliet@example.com/balcony' from='romeo@example.net/"
                     "orchard' type='chat' id='m1'><body>Art thou not Romeo?</body>"
                     "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"), 0);
    pl_stanza *empty = pl_stanza_new("x", NULL);
    CHECK_EQ(pl_stanza_mem(r->last), pl_stanza_mem(empty));
    pl_stanza_unref(empty);
    rec_free(r);
}

PL_TEST(byte_by_byte)
{
    rec *r = rec_new(PL_NS_CLIENT, 1000);
    CHECK_EQ(feed_pieces(r, HDR STANZAS "</stream:stream>", 1), 0);
    check_log(r, HDR_LOG STANZAS_LOG "close\n");
    rec_free(r);
}

PL_TEST(stanza_ready_without_more_data)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<message><body>a long enough body to be a partial tok"), 0);
    CHECK_EQ(feed(r, "en</body></mes"), 0);
    CHECK_EQ(feed(r, "sage>"), 0);
    check_log(r, HDR_LOG "stanza <message><body>a long enough body to be a partial token"
                         "</body></message>\n");
    rec_free(r);
}

PL_TEST(whitespace_between_stanzas)
{
    rec *r = rec_new(PL_NS_CLIENT, 100);
    CHECK_EQ(feed(r, HDR "\n \t\r\n<a/>  \n"), 0);
    CHECK_EQ(feed(r, " <b>  </b>\n"), 0);
    check_log(r, HDR_LOG "stanza <a/>\nstanza <b>  </b>\n");
    rec_free(r);
}

PL_TEST(stream_close)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<presence/></stream:stream><junk"), 0);
    CHECK_EQ(feed(r, "more junk"), 0);
    check_log(r, HDR_LOG "stanza <presence/>\nclose\n");
    rec_free(r);
}

PL_TEST(server_stream_mapping)
{
    rec *r = rec_new(PL_NS_SERVER, 0);
    CHECK_EQ(feed(r, SHDR "<message from='a@x' to='b@y'><body>hi</body>"
                     "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:server'/>"
                     "<message xmlns='jabber:client'><body/></message></forwarded></message>"
                     "<db:result from='x' to='y'>key</db:result>"), 0);
    check_log(r, "open " STREAM_NS " stream content=jabber:server to=example.com version=1.0\n"
                 "stanza <message from=\"a@x\" to=\"b@y\"><body>hi</body>"
                 "<forwarded xmlns=\"urn:xmpp:forward:0\"><message xmlns=\"jabber:server\"/>"
                 "<message xmlns=\"jabber:client\"><body/></message></forwarded></message>\n"
                 "stanza <result xmlns=\"jabber:server:dialback\" from=\"x\" to=\"y\">"
                 "key</result>\n");
    rec_free(r);
}

PL_TEST(server_stanza_tree)
{
    rec *r = rec_new(PL_NS_SERVER, 0);
    CHECK_EQ(feed(r, SHDR "<message><body>hi</body><x xmlns='urn:x'><y/></x></message>"), 0);
    pl_node *m = pl_stanza_root(r->last);
    CHECK_STR(m->ns, PL_NS_CLIENT);
    CHECK_STR(pl_node_child(m, "body", NULL)->ns, PL_NS_CLIENT);
    pl_node *x = pl_node_child(m, "x", NULL);
    CHECK_STR(x->ns, "urn:x");
    CHECK_STR(pl_node_first_element(x)->ns, "urn:x");
    pl_buf b = PL_BUF_INIT;
    pl_xml_serialize(m, &b, PL_NS_SERVER);
    CHECK_STR(b.data, "<message><body>hi</body><x xmlns=\"urn:x\"><y/></x></message>");
    pl_buf_free(&b);
    rec_free(r);
}

PL_TEST(client_stanza_on_server_stream_keeps_ns)
{
    rec *r = rec_new(PL_NS_SERVER, 0);
    CHECK_EQ(feed(r, SHDR "<message xmlns='jabber:client'/>"), 0);
    CHECK_STR(pl_stanza_root(r->last)->ns, PL_NS_CLIENT);
    rec_free(r);
    r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<message xmlns='jabber:server'><body/></message>"), 0);
    CHECK_STR(pl_stanza_root(r->last)->ns, PL_NS_SERVER);
    check_log(r, HDR_LOG "stanza <message xmlns=\"jabber:server\"><body/></message>\n");
    rec_free(r);
}

PL_TEST(nested_namespaces_and_prefixes)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<iq type='set'><p:pubsub xmlns:p='urn:ps'><p:publish node='n'>"
                     "<item><entry xmlns='urn:atom' xmlns:q='urn:q' q:attr='v' xml:lang='de'>"
                     "<title>t</title></entry></item></p:publish></p:pubsub></iq>"), 0);
    pl_node *iq = pl_stanza_root(r->last);
    pl_node *ps = pl_node_child(iq, "pubsub", "urn:ps");
    CHECK(ps != NULL);
    pl_node *pub = pl_node_child(ps, "publish", "urn:ps");
    CHECK(pub != NULL);
    CHECK(pub->ns == ps->ns);   /* shared with the parent */
    pl_node *item = pl_node_child(pub, "item", NULL);
    CHECK_STR(item->ns, PL_NS_CLIENT);
    pl_node *entry = pl_node_child(item, "entry", "urn:atom");
    CHECK_STR(pl_node_attr(entry, "urn:q attr"), "v");
    CHECK_STR(pl_node_attr(entry, "xml:lang"), "de");
    CHECK_STR(pl_node_child(entry, "title", "urn:atom")->name, "title");
    check_log(r, HDR_LOG "stanza <iq type=\"set\"><pubsub xmlns=\"urn:ps\"><publish node=\"n\">"
                         "<item xmlns=\"jabber:client\"><entry xmlns=\"urn:atom\" "
                         "xmlns:ns0=\"urn:q\" ns0:attr=\"v\" xml:lang=\"de\"><title>t</title>"
                         "</entry></item></publish></pubsub></iq>\n");
    rec_free(r);
}

PL_TEST(round_trip)
{
    const char *stanzas[] = {
        "<message to=\"romeo@example.net/orchard\" from=\"juliet@example.com/balcony\" "
        "type=\"chat\" xml:lang=\"en\" id=\"ktx72v49\"><body>Art thou not Romeo, and a "
        "Montague?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread></message>",
        "<iq type=\"error\" id=\"x\"><error type=\"cancel\"><item-not-found "
        "xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/><text xmlns=\"urn:ietf:params:xml:"
        "ns:xmpp-stanzas\">a &amp; b &lt;c&gt;</text></error></iq>",
        "<presence><show>away</show><status>multi\nline\n\ttext</status>"
        "<c xmlns=\"http://jabber.org/protocol/caps\" hash=\"sha-1\" node=\"n\" "
        "ver=\"q&apos;&quot;&#9;&#10;&#13;\"/></presence>",
        "<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>",
    };
    for (size_t i = 0; i < sizeof(stanzas) / sizeof(stanzas[0]); i++) {
        rec *r = rec_new(PL_NS_CLIENT, 0);
        CHECK_EQ(feed(r, HDR), 0);
        CHECK_EQ(feed(r, stanzas[i]), 0);
        char *s = pl_stanza_to_string(r->last);
        CHECK_STR(s, stanzas[i]);
        pl_free(s);
        rec_free(r);
    }
}

PL_TEST(utf8_preserved)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    const char *text = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89";
    pl_buf in = PL_BUF_INIT;
    pl_buf_printf(&in, HDR "<message to='\xc3\xa9@x'><body>%s</body></message>", text);
    CHECK_EQ(feed_pieces(r, in.data, 1), 0);
    pl_node *body = pl_node_child(pl_stanza_root(r->last), "body", NULL);
    CHECK_STR(pl_node_text(r->last, body), text);
    CHECK_STR(pl_node_attr(pl_stanza_root(r->last), "to"), "\xc3\xa9@x");
    pl_buf_free(&in);
    rec_free(r);
}

PL_TEST(entities_unescaped)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<message a='&lt;&amp;&gt;&quot;&apos;&#x41;'>"
                     "<body>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;\xc3\xa9</body></message>"), 0);
    pl_node *m = pl_stanza_root(r->last);
    pl_node *body = pl_node_first_element(m);
    CHECK(body->first == body->last);   /* one merged text node */
    CHECK_STR(body->first->text, "&<>\"'AB\xc3\xa9");
    CHECK_EQ(body->first->text_len, 9);
    CHECK_STR(pl_node_attr(m, "a"), "<&>\"'A");
    rec_free(r);
}

PL_TEST(multiline_text_merged)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<body>line1\nline2\r\nline3\n</body>"), 0);
    pl_node *b = pl_stanza_root(r->last);
    CHECK(b->first && b->first == b->last);
    CHECK_STR(b->first->text, "line1\nline2\nline3\n");
    rec_free(r);
}

PL_TEST(cdata_becomes_text)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<body>a<![CDATA[<b>&x]]> tail</body>"), 0);
    pl_node *b = pl_stanza_root(r->last);
    CHECK(b->first && b->first == b->last);
    CHECK_STR(b->first->text, "a<b>&x tail");
    check_log(r, HDR_LOG "stanza <body>a&lt;b&gt;&amp;x tail</body>\n");
    rec_free(r);
}

PL_TEST(deep_nesting)
{
    enum { DEPTH = 20000 };
    pl_buf in = PL_BUF_INIT;
    pl_buf_puts(&in, HDR);
    for (int i = 0; i < DEPTH; i++)
        pl_buf_puts(&in, "<a>");
    for (int i = 0; i < DEPTH; i++)
        pl_buf_puts(&in, "</a>");
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(pl_xml_stream_feed(r->xs, in.data, in.len), 0);
    char *s = pl_stanza_to_string(r->last);
    CHECK_EQ(strlen(s), 7 * (size_t)DEPTH - 3);
    pl_free(s);
    pl_buf_free(&in);
    rec_free(r);
}

/* ==== errors ==== */

static void check_error(const char *prefix, const char *input, const char *expected_log)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    if (prefix)
        CHECK_EQ(feed(r, prefix), 0);
    CHECK_EQ(feed(r, input), -1);
    check_log(r, expected_log);
    /* the stream is dead: no more callbacks */
    CHECK_EQ(feed(r, "<presence/>"), -1);
    check_log(r, expected_log);
    rec_free(r);
}

PL_TEST(restricted_comment)
{
    check_error(HDR, "<message><!-- hi --></message>",
                HDR_LOG "error restricted-xml: comments are not allowed\n");
    check_error(HDR, "<presence/><!-- between -->",
                HDR_LOG "stanza <presence/>\nerror restricted-xml: comments are not allowed\n");
    check_error(NULL, "<?xml version='1.0'?><!-- before --><stream:stream>",
                "error restricted-xml: comments are not allowed\n");
}

PL_TEST(restricted_pi)
{
    check_error(HDR, "<message><?php echo 1; ?></message>",
                HDR_LOG "error restricted-xml: processing instructions are not allowed\n");
    check_error(NULL, "<?xml version='1.0'?><?xml-stylesheet href='a'?>",
                "error restricted-xml: processing instructions are not allowed\n");
}

PL_TEST(restricted_doctype)
{
    check_error(NULL, "<?xml version='1.0'?><!DOCTYPE stream SYSTEM 'x.dtd'><stream/>",
                "error restricted-xml: DTDs are not allowed\n");
}

PL_TEST(restricted_entity_decl)
{
    check_error(NULL, "<!DOCTYPE s [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]>"
                      "<stream:stream xmlns:stream='" STREAM_NS "'><m>&b;</m>",
                "error restricted-xml: DTDs are not allowed\n");
}

PL_TEST(xml_decl_only_at_start)
{
    check_error(HDR, "<?xml version='1.0'?>",
                HDR_LOG "error not-well-formed: XML or text declaration not at start of entity\n");
}

PL_TEST(not_well_formed_mismatched)
{
    check_error(HDR, "<message><body></message>",
                HDR_LOG "error not-well-formed: mismatched tag\n");
}

PL_TEST(not_well_formed_bad_char)
{
    check_error(HDR, "<message><body>a\x01</body></message>",
                HDR_LOG "error not-well-formed: not well-formed (invalid token)\n");
    check_error(HDR, "<message>\xff\xfe</message>",
                HDR_LOG "error not-well-formed: not well-formed (invalid token)\n");
}

PL_TEST(not_well_formed_undefined_entity)
{
    check_error(HDR, "<message><body>&xxe;</body></message>",
                HDR_LOG "error not-well-formed: undefined entity\n");
}

PL_TEST(not_well_formed_unbound_prefix)
{
    check_error(HDR, "<foo:message/>", HDR_LOG "error not-well-formed: unbound prefix\n");
}

PL_TEST(bad_format_text_at_stream_level)
{
    check_error(HDR, "<presence/>hello",
                HDR_LOG "stanza <presence/>\nerror bad-format: text outside stanzas\n");
}

PL_TEST(restart_from_error_callback)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    r->restart_on_error = 1;
    CHECK_EQ(feed(r, HDR "<a></b><c/>"), -1);
    CHECK_EQ(feed(r, HDR "<d/>"), 0);
    check_log(r, HDR_LOG "error not-well-formed: mismatched tag\n" HDR_LOG "stanza <d/>\n");
    rec_free(r);
}

/* ==== size limits ==== */

#define SIZED "<message to='a@b'><body>0123456789</body></message>"

PL_TEST(limit_exact_passes)
{
    rec *r = rec_new(PL_NS_CLIENT, strlen(SIZED));
    CHECK_EQ(feed(r, HDR SIZED "\n" SIZED), 0);
    CHECK_EQ(feed_pieces(r, SIZED SIZED, 1), 0);
    CHECK_EQ(feed_pieces(r, SIZED SIZED, 7), 0);
    const char *line = "stanza <message to=\"a@b\"><body>0123456789</body></message>\n";
    pl_buf expected = PL_BUF_INIT;
    pl_buf_puts(&expected, HDR_LOG);
    for (int i = 0; i < 6; i++)
        pl_buf_puts(&expected, line);
    check_log(r, expected.data);
    pl_buf_free(&expected);
    rec_free(r);
}

PL_TEST(limit_one_over_fails)
{
    const char *err = HDR_LOG "error policy-violation: stanza too large\n";
    size_t sizes[] = { 0, 1, 3, 1000 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rec *r = rec_new(PL_NS_CLIENT, strlen(SIZED) - 1);
        CHECK_EQ(feed(r, HDR), 0);
        int rc = sizes[i] ? feed_pieces(r, SIZED, sizes[i]) : feed(r, SIZED);
        CHECK_EQ(rc, -1);
        check_log(r, err);
        rec_free(r);
    }
}

PL_TEST(limit_start_tag_alone)
{
    rec *r = rec_new(PL_NS_CLIENT, 20);
    CHECK_EQ(feed(r, HDR "<message to='01234567'/>"), -1);   /* 24 bytes */
    check_log(r, HDR_LOG "error policy-violation: stanza too large\n");
    rec_free(r);
}

PL_TEST(limit_huge_text_fails_early)
{
    const size_t limit = 256 * 1024, total = 10 * 1024 * 1024;
    char *big = pl_malloc(total);
    memset(big, 'x', total);
    memcpy(big, HDR "<message><body>", strlen(HDR "<message><body>"));
    rec *r = rec_new(PL_NS_CLIENT, limit);
    r->heap_base = heap_in_use();
    CHECK_EQ(pl_xml_stream_feed(r->xs, big, total), -1);
    check_log(r, HDR_LOG "error policy-violation: stanza too large\n");
    CHECK(r->heap_growth < 4 * limit);   /* the partial stanza and expat's buffer */
    rec_free(r);

    /* the same arriving in network-sized reads stops right after the limit */
    r = rec_new(PL_NS_CLIENT, limit);
    size_t fed = 0;
    int rc = 0;
    while (fed < total && rc == 0) {
        rc = pl_xml_stream_feed(r->xs, big + fed, 4096);
        fed += 4096;
    }
    CHECK_EQ(rc, -1);
    CHECK(fed <= limit + strlen(HDR) + 4096);
    CHECK(fed >= limit);
    rec_free(r);
    pl_free(big);
}

PL_TEST(limit_huge_attribute_fails_early)
{
    const size_t limit = 64 * 1024, total = 4 * 1024 * 1024;
    char *big = pl_malloc(total);
    memset(big, 'y', total);
    memcpy(big, HDR "<message to='", strlen(HDR "<message to='"));
    rec *r = rec_new(PL_NS_CLIENT, limit);
    r->heap_base = heap_in_use();
    CHECK_EQ(pl_xml_stream_feed(r->xs, big, total), -1);
    check_log(r, HDR_LOG "error policy-violation: stanza too large\n");
    CHECK(r->heap_growth < 4 * limit);
    rec_free(r);
    pl_free(big);
}

PL_TEST(limit_header)
{
    rec *r = rec_new(PL_NS_CLIENT, 100);
    CHECK_EQ(feed(r, HDR), 0);   /* the header may exceed a small stanza limit */
    rec_free(r);

    pl_buf in = PL_BUF_INIT;
    pl_buf_puts(&in, "<stream:stream xmlns:stream='" STREAM_NS "' to='");
    for (int i = 0; i < 5000; i++)
        pl_buf_putc(&in, 'a');
    r = rec_new(PL_NS_CLIENT, 100);
    CHECK_EQ(pl_xml_stream_feed(r->xs, in.data, in.len), -1);
    check_log(r, "error policy-violation: stream header too large\n");
    rec_free(r);
    pl_buf_puts(&in, "'>");
    r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(pl_xml_stream_feed(r->xs, in.data, in.len), 0);
    rec_free(r);
    pl_buf_free(&in);
}

PL_TEST(set_limit)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR SIZED), 0);
    pl_xml_stream_set_limit(r->xs, 10);
    CHECK_EQ(feed(r, SIZED), -1);
    check_log(r, HDR_LOG "stanza <message to=\"a@b\"><body>0123456789</body></message>\n"
                         "error policy-violation: stanza too large\n");
    rec_free(r);
}

/* ==== restarts ==== */

#define TLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define TLS_LOG "stanza <starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>\n"

PL_TEST(restart_discard)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    r->restart_name = "starttls";
    r->discard = 1;
    CHECK_EQ(feed(r, HDR TLS "<presence/>garbage<<<"), 0);
    check_log(r, HDR_LOG TLS_LOG);
    r->restart_name = NULL;
    CHECK_EQ(feed(r, HDR "<presence/>"), 0);
    check_log(r, HDR_LOG TLS_LOG HDR_LOG "stanza <presence/>\n");
    rec_free(r);
}

PL_TEST(restart_keep_rest)
{
    rec *r = rec_new(PL_NS_CLIENT, 100);
    r->restart_name = "success";
    CHECK_EQ(feed(r, HDR "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj0=</success>"
                     HDR "<presence/>"), 0);
    check_log(r, HDR_LOG "stanza <success xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\">dj0="
                         "</success>\n" HDR_LOG "stanza <presence/>\n");
    rec_free(r);
}

PL_TEST(restart_keep_rest_empty_element)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    r->restart_name = "starttls";
    CHECK_EQ(feed(r, HDR TLS "<stream:stream xmlns:stream='" STREAM_NS "'><a/>"), 0);
    check_log(r, HDR_LOG TLS_LOG "open " STREAM_NS " stream content=(none)\n"
                 "stanza <a xmlns=\"\"/>\n");
    rec_free(r);
}

PL_TEST(restart_split_feeds)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    r->restart_name = "starttls";
    CHECK_EQ(feed(r, HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'"), 0);
    CHECK_EQ(feed(r, "/><stream:str"), 0);
    CHECK_EQ(feed(r, "eam xmlns:stream='" STREAM_NS "'>"), 0);
    check_log(r, HDR_LOG TLS_LOG "open " STREAM_NS " stream content=(none)\n");
    rec_free(r);
}

PL_TEST(restart_outside_callback)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<message><bo"), 0);
    pl_xml_stream_restart(r->xs, 0);
    CHECK_EQ(feed(r, HDR "<presence/>"), 0);
    check_log(r, HDR_LOG HDR_LOG "stanza <presence/>\n");
    rec_free(r);
}

PL_TEST(trim_between_stanzas)
{
    rec *r = rec_new(PL_NS_SERVER, 64 * 1024);
    CHECK_EQ(feed(r, SHDR), 0);
    pl_buf big = PL_BUF_INIT;
    for (int i = 0; i < 300; i++)
        pl_buf_puts(&big, "<message><body>some text to make expat's buffer grow</body></message>");
    CHECK_EQ(pl_xml_stream_feed(r->xs, big.data, big.len), 0);
    pl_buf_free(&big);
    /* the parser's memory is its own mappings: trimming unmaps them all */
    CHECK(pl_xml_stream_mapped() >= 8 * 1024);
    size_t held = pl_xml_stream_mapped();
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(pl_xml_stream_mapped(), 0);
    /* the chunks are kept for the next parser until a quiet second passes */
    CHECK_EQ(pl_xml_stream_cached(), held);
    pl_xml_stream_shrink_cache();
    pl_xml_stream_shrink_cache();
    CHECK_EQ(pl_xml_stream_cached(), 0);
    pl_buf_reset(&r->log);
    CHECK_EQ(feed(r, "<db:result from='x' to='y'>k</db:result> "), 0);
    pl_xml_stream_trim(r->xs);
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(feed(r, "<message><body>a</body></message><presence/>"), 0);
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(feed(r, "</stream:stream>"), 0);
    check_log(r, "stanza <result xmlns=\"jabber:server:dialback\" from=\"x\" to=\"y\">k</result>\n"
                 "stanza <message><body>a</body></message>\nstanza <presence/>\nclose\n");
    rec_free(r);
}

PL_TEST(trim_with_partial_token_keeps_parser)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<presence/><mess"), 0);
    pl_xml_stream_trim(r->xs);   /* a partial token is buffered: kept */
    CHECK_EQ(feed(r, "age/>"), 0);
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(feed(r, "<iq/>"), 0);
    check_log(r, HDR_LOG "stanza <presence/>\nstanza <message/>\nstanza <iq/>\n");
    rec_free(r);
}

PL_TEST(trim_before_header)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(feed(r, HDR "<a/>"), 0);
    check_log(r, HDR_LOG "stanza <a/>\n");
    rec_free(r);
}

PL_TEST(trim_and_restart_after_close)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<a/>"), 0);
    pl_xml_stream_trim(r->xs);   /* idle between stanzas: parsing goes on */
    CHECK_EQ(feed(r, "<b/></stream:stream>"), 0);
    pl_xml_stream_trim(r->xs);   /* closed: the expat parser is released */
    CHECK_EQ(feed(r, "<c/>"), 0);
    pl_xml_stream_restart(r->xs, 1);
    CHECK_EQ(feed(r, HDR "<d/>"), 0);
    check_log(r, HDR_LOG "stanza <a/>\nstanza <b/>\nclose\n" HDR_LOG "stanza <d/>\n");
    rec_free(r);
}

PL_TEST(trim_canonical_header_keeps_no_copy)
{
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, HDR "<a/>"), 0);
    CHECK_EQ(pl_xml_stream_header_kept(r->xs), 0);
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(feed(r, "<message><body>x</body></message>"), 0);
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(feed(r, "</stream:stream>"), 0);
    check_log(r, HDR_LOG "stanza <a/>\nstanza <message><body>x</body></message>\nclose\n");
    rec_free(r);
}

PL_TEST(trim_other_prefix_keeps_copy)
{
    /* the streams namespace under another prefix: the end tag must match it */
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, "<s:stream xmlns='jabber:client' xmlns:s='" STREAM_NS "'><a/>"), 0);
    CHECK(pl_xml_stream_header_kept(r->xs) > 0);
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(feed(r, "<b/></s:stream>"), 0);
    check_log(r, "open " STREAM_NS " stream content=jabber:client\nstanza <a/>\n"
                 "stanza <b/>\nclose\n");
    rec_free(r);
}

PL_TEST(trim_extra_declaration_keeps_copy)
{
    /* a prefix declared on the header and used by a later stanza */
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, "<stream:stream xmlns='jabber:client' xmlns:stream='" STREAM_NS "' "
                     "xmlns:x='urn:x'><a/>"), 0);
    CHECK(pl_xml_stream_header_kept(r->xs) > 0);
    pl_xml_stream_trim(r->xs);
    CHECK_EQ(feed(r, "<x:b/></stream:stream>"), 0);
    check_log(r, "open " STREAM_NS " stream content=jabber:client\nstanza <a/>\n"
                 "stanza <b xmlns=\"urn:x\"/>\nclose\n");
    rec_free(r);
}

PL_TEST(trim_other_default_namespace_keeps_copy)
{
    /* a client stream declaring jabber:server is not the constant header */
    rec *r = rec_new(PL_NS_CLIENT, 0);
    CHECK_EQ(feed(r, "<stream:stream xmlns='jabber:server' xmlns:stream='" STREAM_NS "'>"),
             0);
    CHECK(pl_xml_stream_header_kept(r->xs) > 0);
    rec_free(r);
    /* nor is a server stream declaring what a client header does */
    r = rec_new(PL_NS_SERVER, 0);
    CHECK_EQ(feed(r, "<stream:stream xmlns='jabber:client' xmlns:stream='" STREAM_NS "'>"),
             0);
    CHECK(pl_xml_stream_header_kept(r->xs) > 0);
    rec_free(r);
}
