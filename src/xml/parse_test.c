/* xml/parse_test.c: unit tests of pl_stanza_parse (parse.c), whose stream
 * stays open between calls: every text that could leave it in a bad state
 * must fail alone and leave the next call unaffected. */
#include <stdio.h>
#include <string.h>
#include <parley/base.h>
#include <parley/stanza.h>
#include "xml/parse.h"
#include "xml/stream.h"
#include "../../tests/unit/test.h"

static void check_string(const pl_stanza *st, const char *expected)
{
    char *s = pl_stanza_to_string(st);
    CHECK_STR(s, expected);
    pl_free(s);
}

/* Parses text and checks the serialized result. */
static void check_parse(const char *text, const char *expected)
{
    pl_stanza *st = pl_stanza_parse(text, strlen(text));
    CHECK(st != NULL);
    check_string(st, expected);
    pl_stanza_unref(st);
}

static void check_fails(const char *text)
{
    CHECK_NULL(pl_stanza_parse(text, strlen(text)));
}

/* A good stanza parses in full after whatever the previous call did. */
static void check_good(void)
{
    check_parse("<message to='a@b' id='ok'><body>still &amp; fine</body></message>",
                "<message to=\"a@b\" id=\"ok\"><body>still &amp; fine</body></message>");
}

PL_TEST(many_in_a_row)
{
    for (int i = 0; i < 3000; i++) {
        char text[512], expected[512];
        snprintf(text, sizeof text,
                 "<message from='a@b/r' to='c@d' type='chat' id='m%d'>"
                 "<body>n&#xfc;mber %d &lt;&gt;</body>"
                 "<x:tag xmlns:x='urn:example:%d' x:attr='v%d'><x:in/></x:tag>"
                 "<active xmlns='http://jabber.org/protocol/chatstates'/></message>", i, i,
                 i % 7, i);
        snprintf(expected, sizeof expected,
                 "<message from=\"a@b/r\" to=\"c@d\" type=\"chat\" id=\"m%d\">"
                 "<body>n\xc3\xbcmber %d &lt;&gt;</body>"
                 "<tag xmlns=\"urn:example:%d\" xmlns:ns0=\"urn:example:%d\" ns0:attr=\"v%d\">"
                 "<in/></tag>"
                 "<active xmlns=\"http://jabber.org/protocol/chatstates\"/></message>",
                 i, i, i % 7, i % 7, i);
        pl_stanza *st = pl_stanza_parse(text, strlen(text));
        CHECK(st != NULL);
        const pl_node *root = pl_stanza_root(st);
        CHECK_STR(root->ns, PL_NS_CLIENT);
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        CHECK_STR(pl_node_attr(root, "id"), id);
        pl_stanza_unref(st);
        check_parse(text, expected);
    }
}

PL_TEST(malformed_then_good)
{
    check_good();
    check_fails("<message><body>x</message>");
    check_good();
    check_fails("<message to='a@b' to='c@d'/>");
    check_good();
    check_fails("<message>&undefined;</message>");
    check_good();
    check_fails("<message><!-- no comments --></message>");
    check_good();
    check_fails("<?pi data?><message/>");
    check_good();
    check_fails("<message><x:a/></message>");
    check_good();
    check_fails("just text");
    check_good();
    check_fails("");
    check_good();
}

PL_TEST(two_stanzas)
{
    check_fails("<message/><presence/>");
    check_good();
    check_fails("<message><body>a</body></message>\n<message><body>b</body></message>");
    check_good();
}

PL_TEST(unclosed_element)
{
    check_fails("<message><body>hi</body>");
    check_good();
    check_fails("<message/><presence>");
    check_good();
    check_fails("<message");
    check_good();
    check_fails("<message/><");
    check_good();
}

PL_TEST(stream_close_in_text)
{
    check_fails("</stream:stream>");
    check_good();
    check_fails("<message/></stream:stream>");
    check_good();
    check_fails("<message/></stream:stream><message/>");
    check_good();
}

/* What one stanza declares does not carry over to the next. */
PL_TEST(no_state_between_calls)
{
    check_parse("<message xmlns:x='urn:x'><x:a/></message>",
                "<message><a xmlns=\"urn:x\"/></message>");
    check_fails("<message><x:a/></message>");
    pl_stanza *st = pl_stanza_parse("<iq xmlns='jabber:server' type='get'/>", 38);
    CHECK(st != NULL);
    CHECK_STR(pl_stanza_root(st)->ns, "jabber:server");
    pl_stanza_unref(st);
    st = pl_stanza_parse("<message xmlns='urn:other'/>", 28);
    CHECK(st != NULL);
    CHECK_STR(pl_stanza_root(st)->ns, "urn:other");
    pl_stanza_unref(st);
    st = pl_stanza_parse("<message/>", 10);
    CHECK(st != NULL);
    CHECK_STR(pl_stanza_root(st)->ns, PL_NS_CLIENT);
    pl_stanza_unref(st);
}

/* Text a whole stream would accept, though the stream cannot stay open
 * after it (expat holds a trailing carriage return back). */
PL_TEST(trailing_space)
{
    check_parse("<message/>\n", "<message/>");
    check_parse("  <message/>\r", "<message/>");
    check_good();
}

/* The kept parser is released after a trim with no call since the
 * previous one. */
PL_TEST(trim_releases_the_parser)
{
    CHECK_EQ(pl_xml_stream_mapped(), 0);
    check_good();
    CHECK(pl_xml_stream_mapped() > 0);
    pl__stanza_parse_trim();
    CHECK(pl_xml_stream_mapped() > 0);
    pl__stanza_parse_trim();
    CHECK_EQ(pl_xml_stream_mapped(), 0);
    check_good();
    CHECK(pl_xml_stream_mapped() > 0);
    pl__stanza_parse_trim();
    pl__stanza_parse_trim();
    CHECK_EQ(pl_xml_stream_mapped(), 0);
}
