/* xml/stanza_test.c: unit tests of the stanza tree and the serializer
 * (stanza.c, serialize.c, arena.c). */
#include <string.h>
#include <parley/base.h>
#include <parley/buf.h>
#include <parley/stanza.h>
#include "../../tests/unit/test.h"

/* Serializes n for a stream with content namespace content_ns and checks
 * the exact bytes. */
static void check_xml(const pl_node *n, const char *content_ns, const char *expected)
{
    pl_buf b = PL_BUF_INIT;
    pl_xml_serialize(n, &b, content_ns);
    CHECK_STR(b.data, expected);
    pl_buf_free(&b);
}

static void check_string(const pl_stanza *st, const char *expected)
{
    char *s = pl_stanza_to_string(st);
    CHECK_STR(s, expected);
    pl_free(s);
}

PL_TEST(build_and_serialize)
{
    pl_stanza *st = pl_stanza_new("message", NULL);
    pl_node *root = pl_stanza_root(st);
    CHECK_STR(root->name, "message");
    CHECK_STR(root->ns, PL_NS_CLIENT);
    pl_node_set_attr(st, root, "to", "juliet@example.com");
    pl_node_set_attr(st, root, "type", "chat");
    pl_node *body = pl_node_add(st, root, "body", NULL);
    CHECK_STR(body->ns, PL_NS_CLIENT);
    CHECK(body->parent == root);
    pl_node_add_text(st, body, "Hello", 5);
    pl_node_add(st, root, "active", "http://jabber.org/protocol/chatstates");
    check_string(st, "<message to=\"juliet@example.com\" type=\"chat\"><body>Hello</body>"
                     "<active xmlns=\"http://jabber.org/protocol/chatstates\"/></message>");
    pl_stanza_unref(st);
}

PL_TEST(empty_root)
{
    pl_stanza *st = pl_stanza_new("presence", PL_NS_CLIENT);
    check_string(st, "<presence/>");
    pl_stanza_unref(st);
}

PL_TEST(text_escaping)
{
    pl_stanza *st = pl_stanza_new("body", NULL);
    const char *t = "a<b>&c\"d'e]]>f\rg\th\ni";
    pl_node_add_text(st, NULL, t, strlen(t));
    check_string(st, "<body>a&lt;b&gt;&amp;c\"d'e]]&gt;f&#13;g\th\ni</body>");
    pl_stanza_unref(st);
}

PL_TEST(attr_escaping)
{
    pl_stanza *st = pl_stanza_new("x", "urn:x");
    pl_node_set_attr(st, pl_stanza_root(st), "v", "<&>\"'\t\n\r.");
    check_string(st, "<x xmlns=\"urn:x\" v=\"&lt;&amp;&gt;&quot;&apos;&#9;&#10;&#13;.\"/>");
    pl_stanza_unref(st);
}

PL_TEST(escape_function)
{
    pl_buf b = PL_BUF_INIT;
    pl_xml_escape(&b, "x&y<z>'\"", 8, 0);
    CHECK_STR(b.data, "x&amp;y&lt;z&gt;'\"");
    pl_buf_reset(&b);
    pl_xml_escape(&b, "x&y<z>'\"", 8, 1);
    CHECK_STR(b.data, "x&amp;y&lt;z&gt;&apos;&quot;");
    pl_buf_reset(&b);
    /* only len bytes are used; characters XML cannot carry are dropped */
    pl_xml_escape(&b, "ab\x01" "c\0d", 4, 0);
    CHECK_STR(b.data, "abc");
    CHECK_EQ(b.len, 3);
    pl_buf_reset(&b);
    pl_xml_escape(&b, "plain text", 10, 1);
    CHECK_STR(b.data, "plain text");
    pl_buf_free(&b);
}

PL_TEST(nested_namespaces)
{
    pl_stanza *st = pl_stanza_new("iq", NULL);
    pl_node *root = pl_stanza_root(st);
    pl_node_set_attr(st, root, "type", "result");
    pl_node *q = pl_node_add(st, root, "query", "jabber:iq:roster");
    pl_node *item = pl_node_add(st, q, "item", NULL);
    CHECK_STR(item->ns, "jabber:iq:roster");
    CHECK(item->ns == q->ns);
    pl_node_set_attr(st, item, "jid", "romeo@example.net");
    pl_node_add(st, item, "group", "jabber:iq:roster");
    pl_node_add(st, q, "x", "urn:other");
    check_string(st, "<iq type=\"result\"><query xmlns=\"jabber:iq:roster\">"
                     "<item jid=\"romeo@example.net\"><group/></item>"
                     "<x xmlns=\"urn:other\"/></query></iq>");
    pl_stanza_unref(st);
}

PL_TEST(client_ns_nested_in_other_ns)
{
    pl_stanza *st = pl_stanza_new("message", NULL);
    pl_node *fwd = pl_node_add(st, NULL, "forwarded", "urn:xmpp:forward:0");
    pl_node *m = pl_node_add(st, fwd, "message", PL_NS_CLIENT);
    pl_node_add_text(st, pl_node_add(st, m, "body", NULL), "hi", 2);
    const char *expected = "<message><forwarded xmlns=\"urn:xmpp:forward:0\">"
                           "<message xmlns=\"jabber:client\"><body>hi</body></message>"
                           "</forwarded></message>";
    check_xml(pl_stanza_root(st), PL_NS_CLIENT, expected);
    /* on a server stream the inner message still needs its namespace */
    check_xml(pl_stanza_root(st), PL_NS_SERVER, expected);
    pl_stanza_unref(st);
}

PL_TEST(content_ns_server)
{
    pl_stanza *st = pl_stanza_new("message", NULL);
    pl_node_add(st, NULL, "body", NULL);
    check_xml(pl_stanza_root(st), PL_NS_SERVER, "<message><body/></message>");
    pl_stanza_unref(st);

    st = pl_stanza_new("message", PL_NS_SERVER);
    pl_node_add(st, NULL, "body", NULL);
    check_xml(pl_stanza_root(st), PL_NS_SERVER, "<message><body/></message>");
    check_xml(pl_stanza_root(st), PL_NS_CLIENT,
              "<message xmlns=\"jabber:server\"><body/></message>");
    pl_stanza_unref(st);

    st = pl_stanza_new("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
    check_xml(pl_stanza_root(st), PL_NS_SERVER,
              "<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>");
    pl_stanza_unref(st);
}

PL_TEST(stream_ns_prefix)
{
    pl_stanza *st = pl_stanza_new("features", PL_NS_STREAM);
    pl_node_add(st, NULL, "starttls", "urn:ietf:params:xml:ns:xmpp-tls");
    pl_node_add(st, NULL, "ver", "urn:xmpp:features:rosterver");
    check_string(st, "<stream:features><starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>"
                     "<ver xmlns=\"urn:xmpp:features:rosterver\"/></stream:features>");
    pl_stanza_unref(st);

    st = pl_stanza_new("error", PL_NS_STREAM);
    pl_node_add(st, NULL, "host-unknown", PL_NS_STREAMS);
    pl_node *c = pl_node_add(st, NULL, "extra", PL_NS_CLIENT);
    pl_node_add(st, c, "deep", PL_NS_STREAM);
    check_string(st, "<stream:error><host-unknown xmlns=\"" PL_NS_STREAMS "\"/><extra>"
                     "<stream:deep xmlns:stream=\"" PL_NS_STREAM "\"/></extra></stream:error>");
    pl_stanza_unref(st);
}

PL_TEST(empty_namespace)
{
    pl_stanza *st = pl_stanza_new("x", "urn:a");
    pl_node *y = pl_node_add(st, NULL, "y", "");
    pl_node_add(st, y, "z", NULL);
    check_string(st, "<x xmlns=\"urn:a\"><y xmlns=\"\"><z/></y></x>");
    pl_stanza_unref(st);
}

PL_TEST(namespaced_attributes)
{
    pl_stanza *st = pl_stanza_new("body", NULL);
    pl_node *r = pl_stanza_root(st);
    pl_node_set_attr(st, r, "xml:lang", "en");
    pl_node_set_attr(st, r, "urn:x a", "1");
    pl_node_set_attr(st, r, "urn:y b", "2");
    pl_node_set_attr(st, r, "urn:x c", "3");
    pl_node_set_attr(st, r, PL_NS_XML " space", "preserve");
    check_string(st, "<body xml:lang=\"en\" xmlns:ns0=\"urn:x\" ns0:a=\"1\" xmlns:ns1=\"urn:y\" "
                     "ns1:b=\"2\" ns0:c=\"3\" xml:space=\"preserve\"/>");
    pl_stanza_unref(st);
}

PL_TEST(set_and_remove_attr)
{
    pl_stanza *st = pl_stanza_new("iq", NULL);
    pl_node *r = pl_stanza_root(st);
    pl_node_set_attr(st, r, "a", "1");
    pl_node_set_attr(st, r, "b", "2");
    pl_node_set_attr(st, r, "c", "3");
    CHECK_STR(pl_node_attr(r, "b"), "2");
    CHECK_NULL(pl_node_attr(r, "d"));
    pl_node_set_attr(st, r, "b", "two");
    CHECK_STR(pl_node_attr(r, "b"), "two");
    check_string(st, "<iq a=\"1\" b=\"two\" c=\"3\"/>");
    pl_node_set_attr(st, r, "b", NULL);
    CHECK_NULL(pl_node_attr(r, "b"));
    check_string(st, "<iq a=\"1\" c=\"3\"/>");
    pl_node_set_attr(st, r, "a", NULL);
    pl_node_set_attr(st, r, "zz", NULL);
    check_string(st, "<iq c=\"3\"/>");
    pl_node_set_attr(st, r, "c", NULL);
    CHECK_NULL(r->attrs);
    pl_node_set_attr(st, r, "d", "4");
    check_string(st, "<iq d=\"4\"/>");
    pl_stanza_unref(st);
}

PL_TEST(child_lookup)
{
    pl_stanza *st = pl_stanza_new("message", NULL);
    pl_node *r = pl_stanza_root(st);
    pl_node_add_text(st, r, "  ", 2);
    pl_node *body = pl_node_add(st, r, "body", NULL);
    pl_node *x1 = pl_node_add(st, r, "x", "urn:one");
    pl_node_add_text(st, r, "\n", 1);
    pl_node *x2 = pl_node_add(st, r, "x", "urn:two");
    pl_node *b2 = pl_node_add(st, r, "body", NULL);
    CHECK(pl_node_child(r, "body", NULL) == body);
    CHECK(pl_node_child(r, "body", PL_NS_CLIENT) == body);
    CHECK_NULL(pl_node_child(r, "body", "urn:one"));
    CHECK(pl_node_child(r, "x", NULL) == x1);
    CHECK(pl_node_child(r, "x", "urn:two") == x2);
    CHECK(pl_node_child(r, NULL, "urn:two") == x2);
    CHECK(pl_node_child(r, NULL, NULL) == body);
    CHECK_NULL(pl_node_child(r, "nope", NULL));
    CHECK(pl_node_next(body, "body", NULL) == b2);
    CHECK(pl_node_next(x1, NULL, NULL) == x2);
    CHECK(pl_node_next(x1, "x", NULL) == x2);
    CHECK_NULL(pl_node_next(b2, NULL, NULL));
    CHECK(pl_node_first_element(r) == body);
    CHECK_NULL(pl_node_first_element(body));
    CHECK_EQ(pl_node_count_elements(r), 4);
    CHECK_EQ(pl_node_count_elements(body), 0);
    CHECK(pl_node_is(r, "message", PL_NS_CLIENT));
    CHECK(pl_node_is(r, "message", NULL));
    CHECK(!pl_node_is(r, "message", PL_NS_SERVER));
    CHECK(!pl_node_is(r, "iq", NULL));
    CHECK(!pl_node_is(r->first, NULL, NULL));   /* a text node */
    CHECK(!pl_node_is(NULL, "message", NULL));
    pl_stanza_unref(st);
}

PL_TEST(node_text)
{
    pl_stanza *st = pl_stanza_new("body", NULL);
    pl_node *r = pl_stanza_root(st);
    CHECK_STR(pl_node_text(st, r), "");
    pl_node_add_text(st, r, "one", 3);
    CHECK(pl_node_text(st, r) == r->first->text);
    pl_node_add_text(st, r, " two", 4);
    CHECK(r->first == r->last);   /* merged */
    CHECK_EQ(r->first->text_len, 7);
    CHECK_STR(pl_node_text(st, r), "one two");
    pl_node *sep = pl_node_add(st, r, "b", NULL);
    pl_node_add_text(st, sep, "inner", 5);
    pl_node_add_text(st, r, " three", 6);
    CHECK_STR(pl_node_text(st, r), "one two three");
    pl_node_remove(sep);
    CHECK_STR(pl_node_text(st, r), "one two three");
    CHECK_STR(pl_node_text(NULL, r), "one two");
    pl_stanza_unref(st);
}

PL_TEST(text_with_nul)
{
    pl_stanza *st = pl_stanza_new("body", NULL);
    pl_node *t = pl_node_add_text(st, NULL, "a\0b", 3);
    CHECK_EQ(t->text_len, 3);
    CHECK(memcmp(t->text, "a\0b", 4) == 0);
    pl_stanza_unref(st);
}

PL_TEST(remove_and_clear)
{
    pl_stanza *st = pl_stanza_new("r", NULL);
    pl_node *r = pl_stanza_root(st);
    pl_node *a = pl_node_add(st, r, "a", NULL);
    pl_node *b = pl_node_add(st, r, "b", NULL);
    pl_node *c = pl_node_add(st, r, "c", NULL);
    pl_node_remove(b);
    CHECK_NULL(b->parent);
    check_string(st, "<r><a/><c/></r>");
    pl_node_remove(c);
    CHECK(r->last == a);
    check_string(st, "<r><a/></r>");
    pl_node_add(st, r, "d", NULL);
    check_string(st, "<r><a/><d/></r>");
    pl_node_remove(a);
    check_string(st, "<r><d/></r>");
    pl_node_remove(a);   /* already unlinked: nothing happens */
    pl_node_add_text(st, r, "t", 1);
    pl_node_clear(r);
    CHECK_NULL(r->first);
    CHECK_NULL(r->last);
    check_string(st, "<r/>");
    pl_stanza_unref(st);
}

PL_TEST(copy_is_deep)
{
    pl_stanza *st = pl_stanza_new("iq", NULL);
    pl_node *r = pl_stanza_root(st);
    pl_node_set_attr(st, r, "id", "1");
    pl_node *q = pl_node_add(st, r, "query", "urn:q");
    pl_node_add_text(st, pl_node_add(st, q, "item", NULL), "x&y", 3);
    pl_node_add(st, q, "other", "urn:o");
    pl_stanza *c = pl_stanza_copy(st);
    CHECK_EQ(pl_stanza_refs(c), 1);
    const char *expected = "<iq id=\"1\"><query xmlns=\"urn:q\"><item>x&amp;y</item>"
                           "<other xmlns=\"urn:o\"/></query></iq>";
    check_string(c, expected);
    pl_node *cq = pl_node_child(pl_stanza_root(c), "query", "urn:q");
    CHECK(cq != q);
    CHECK(cq->ns != q->ns);
    CHECK(pl_node_child(cq, "item", NULL)->ns == cq->ns);
    pl_node_set_attr(c, pl_stanza_root(c), "id", "2");
    pl_node_clear(cq);
    check_string(st, expected);
    pl_stanza_unref(st);
    check_string(c, "<iq id=\"2\"><query xmlns=\"urn:q\"/></iq>");
    pl_stanza_unref(c);
}

PL_TEST(copy_large)
{
    pl_stanza *st = pl_stanza_new("message", NULL);
    pl_node *r = pl_stanza_root(st);
    char buf[100];
    for (int i = 0; i < 500; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        pl_node *n = pl_node_add(st, r, "n", NULL);
        pl_node_set_attr(st, n, "i", buf);
        pl_node_add_text(st, n, buf, strlen(buf));
    }
    CHECK(pl_stanza_mem(st) > 500 * sizeof(pl_node));
    pl_stanza *c = pl_stanza_copy(st);
    char *a = pl_stanza_to_string(st), *b = pl_stanza_to_string(c);
    CHECK_STR(a, b);
    const char *head = "<message><n i=\"0\">0</n><n i=\"1\">1</n>";
    CHECK(strncmp(a, head, strlen(head)) == 0);
    CHECK_EQ(pl_node_count_elements(pl_stanza_root(c)), 500);
    pl_free(a);
    pl_free(b);
    pl_stanza_unref(c);
    pl_stanza_unref(st);
}

PL_TEST(add_copy_between_stanzas)
{
    pl_stanza *src = pl_stanza_new("message", NULL);
    pl_node *x = pl_node_add(src, NULL, "x", "urn:x");
    pl_node_set_attr(src, x, "a", "b");
    pl_node_add_text(src, pl_node_add(src, x, "y", NULL), "text", 4);
    pl_stanza *dst = pl_stanza_new("result", "urn:r");
    pl_node *copy = pl_node_add_copy(dst, NULL, x);
    CHECK(copy->parent == pl_stanza_root(dst));
    pl_node_add_copy(dst, NULL, pl_stanza_root(src));
    pl_stanza_unref(src);
    check_string(dst, "<result xmlns=\"urn:r\"><x xmlns=\"urn:x\" a=\"b\"><y>text</y></x>"
                      "<message xmlns=\"jabber:client\"><x xmlns=\"urn:x\" a=\"b\"><y>text</y></x>"
                      "</message></result>");
    pl_stanza_unref(dst);
}

PL_TEST(refcount)
{
    pl_stanza *st = pl_stanza_new("presence", NULL);
    CHECK_EQ(pl_stanza_refs(st), 1);
    CHECK(pl_stanza_ref(st) == st);
    CHECK_EQ(pl_stanza_refs(st), 2);
    pl_stanza_unref(st);
    CHECK_EQ(pl_stanza_refs(st), 1);
    pl_stanza_unref(st);
    pl_stanza_unref(NULL);
}

PL_TEST(strdup_and_mem)
{
    pl_stanza *st = pl_stanza_new("x", NULL);
    size_t before = pl_stanza_mem(st);
    CHECK(before > 0);
    char *s = pl_stanza_strdup(st, "hello");
    CHECK_STR(s, "hello");
    char *t = pl_stanza_strndup(st, "world!", 5);
    CHECK_STR(t, "world");
    CHECK_EQ(pl_stanza_mem(st), before);   /* fits in the first block */
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char *u = pl_stanza_strdup(st, big);
    CHECK_STR(u, big);
    CHECK(pl_stanza_mem(st) >= before + sizeof(big));
    CHECK_STR(s, "hello");
    pl_stanza_unref(st);
}

PL_TEST(long_text_grows)
{
    pl_stanza *st = pl_stanza_new("body", NULL);
    pl_node *r = pl_stanza_root(st);
    pl_node_add(st, r, "x", NULL);
    for (int i = 0; i < 20000; i++)
        pl_node_add_text(st, r, "0123456789", 10);
    CHECK_EQ(r->last->text_len, 200000);
    CHECK_EQ(strlen(r->last->text), 200000);
    CHECK(memcmp(r->last->text + 199990, "0123456789", 10) == 0);
    CHECK(pl_stanza_mem(st) < 1000000);
    pl_stanza_unref(st);
}

PL_TEST(deep_tree)
{
    enum { DEPTH = 200000 };
    pl_stanza *st = pl_stanza_new("a", NULL);
    pl_node *n = pl_stanza_root(st);
    for (int i = 0; i < DEPTH; i++)
        n = pl_node_add(st, n, "a", NULL);
    pl_stanza *c = pl_stanza_copy(st);
    char *s = pl_stanza_to_string(c);
    CHECK_EQ(strlen(s), 3 * (size_t)DEPTH + 4 * (size_t)DEPTH + 4);
    CHECK(strncmp(s, "<a><a><a>", 9) == 0);
    CHECK(strncmp(s + 3 * (size_t)DEPTH - 3, "<a><a/></a></a>", 15) == 0);
    CHECK_STR(s + strlen(s) - 8, "</a></a>");
    pl_free(s);
    pl_stanza_unref(c);
    pl_stanza_unref(st);
}

PL_TEST(serialize_subtree_and_text)
{
    pl_stanza *st = pl_stanza_new("message", NULL);
    pl_node *body = pl_node_add(st, NULL, "body", NULL);
    pl_node *t = pl_node_add_text(st, body, "a<b", 3);
    check_xml(body, PL_NS_CLIENT, "<body>a&lt;b</body>");
    check_xml(t, PL_NS_CLIENT, "a&lt;b");
    pl_node *q = pl_node_add(st, NULL, "q", "urn:q");
    pl_node *i = pl_node_add(st, q, "i", NULL);
    check_xml(i, PL_NS_CLIENT, "<i xmlns=\"urn:q\"/>");
    pl_buf b = PL_BUF_INIT;
    pl_buf_puts(&b, "prefix:");
    pl_xml_serialize(q, &b, PL_NS_CLIENT);
    CHECK_STR(b.data, "prefix:<q xmlns=\"urn:q\"><i/></q>");
    pl_buf_free(&b);
    pl_stanza_unref(st);
}
