/* xmpp/jid_test.c: unit tests for jid.c: parsing, preparation (ASCII fast
 * path and stringprep), length limits, domains, the part functions,
 * make/dup/to_bare/eq, and SASLprep with the examples of RFC 4013. */
#include <stdint.h>
#include <parley/base.h>
#include <parley/jid.h>
#include "../../tests/unit/test.h"

/* ==== helpers ==== */

/* A string of n copies of c, malloced. */
static char *repeat(const char *c, size_t n)
{
    size_t cl = strlen(c);
    char *s = pl_malloc(cl * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * cl, c, cl);
    s[cl * n] = '\0';
    return s;
}

/* Parses in and checks the prepared full JID. */
static void expect_full(const char *in, const char *full)
{
    pl_jid *j = pl_jid_parse(in);
    if (!j)
        fprintf(stderr, "parse failed: %s\n", in);
    CHECK(j != NULL);
    CHECK_STR(j->full, full);
    pl_jid_free(j);
}

static void expect_invalid(const char *in)
{
    pl_jid *j = pl_jid_parse(in);
    if (j)
        fprintf(stderr, "unexpectedly valid: %s -> %s\n", in, j->full);
    CHECK_NULL(j);
}

/* Parses in and checks each part (NULL for absent). */
static void expect_parts(const char *in, const char *node, const char *domain,
                         const char *resource)
{
    pl_jid *j = pl_jid_parse(in);
    CHECK(j != NULL);
    if (node)
        CHECK_STR(j->node, node);
    else
        CHECK_NULL(j->node);
    CHECK_STR(j->domain, domain);
    if (resource)
        CHECK_STR(j->resource, resource);
    else
        CHECK_NULL(j->resource);
    pl_jid_free(j);
}

/* Checks that every string of j lies inside one block after the struct. */
static void expect_one_block(const pl_jid *j)
{
    const char *start = (const char *)(j + 1);
    size_t span = 2 * (strlen(j->full) + 1) + strlen(j->full) + 8;
    const char *strs[] = { j->node, j->domain, j->resource, j->full, j->bare };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (!strs[i])
            continue;
        CHECK((uintptr_t)strs[i] >= (uintptr_t)start);
        CHECK((uintptr_t)strs[i] + strlen(strs[i]) < (uintptr_t)start + span);
    }
}

/* ==== parsing and splitting ==== */

PL_TEST(parse_domain_only)
{
    pl_jid *j = pl_jid_parse("example.com");
    CHECK(j != NULL);
    CHECK_NULL(j->node);
    CHECK_STR(j->domain, "example.com");
    CHECK_NULL(j->resource);
    CHECK_STR(j->full, "example.com");
    CHECK(j->bare == j->full);
    pl_jid_free(j);
}

PL_TEST(parse_bare)
{
    pl_jid *j = pl_jid_parse("juliet@example.com");
    CHECK(j != NULL);
    CHECK_STR(j->node, "juliet");
    CHECK_STR(j->domain, "example.com");
    CHECK_NULL(j->resource);
    CHECK_STR(j->full, "juliet@example.com");
    CHECK_STR(j->bare, "juliet@example.com");
    CHECK(j->bare == j->full);
    expect_one_block(j);
    pl_jid_free(j);
}

PL_TEST(parse_full)
{
    pl_jid *j = pl_jid_parse("juliet@example.com/balcony");
    CHECK(j != NULL);
    CHECK_STR(j->node, "juliet");
    CHECK_STR(j->domain, "example.com");
    CHECK_STR(j->resource, "balcony");
    CHECK_STR(j->full, "juliet@example.com/balcony");
    CHECK_STR(j->bare, "juliet@example.com");
    CHECK(j->bare != j->full);
    expect_one_block(j);
    pl_jid_free(j);
}

PL_TEST(parse_split_rules)
{
    expect_parts("example.com/res", NULL, "example.com", "res");
    expect_parts("a@b/c@d/e", "a", "b", "c@d/e");
    expect_parts("a/b@c", NULL, "a", "b@c");
    expect_parts("example.com/a/b", NULL, "example.com", "a/b");
    expect_parts("a@b//", "a", "b", "/");
    expect_parts("a@b/@", "a", "b", "@");
    expect_invalid("a@b@c");
    expect_invalid("a@b@c/r");
}

PL_TEST(parse_empty_parts)
{
    expect_invalid("");
    expect_invalid("@example.com");
    expect_invalid("@example.com/r");
    expect_invalid("a@");
    expect_invalid("a@/r");
    expect_invalid("a@b/");
    expect_invalid("/r");
    expect_invalid("@");
    expect_invalid("@/");
    CHECK_NULL(pl_jid_parse(NULL));
}

/* ==== case folding and Unicode ==== */

PL_TEST(parse_case_folding)
{
    expect_full("Juliet@Example.COM/Balcony", "juliet@example.com/Balcony");
    expect_parts("ROMEO@EXAMPLE.NET/Orchard OF Verona", "romeo", "example.net",
                 "Orchard OF Verona");
    expect_full("EXAMPLE.COM", "example.com");
}

PL_TEST(parse_unicode_node)
{
    /* U+216B ROMAN NUMERAL TWELVE: NFKC "XII", then case folded. */
    expect_parts("\xE2\x85\xAB@example.com", "xii", "example.com", NULL);
    /* U+00DF LATIN SMALL LETTER SHARP S folds to "ss". */
    expect_full("\xC3\x9Ftest@EXAMPLE.com", "sstest@example.com");
    /* Non-ASCII upper case folds to lower case. */
    expect_full("M\xC3\x9C" "LLER@example.com", "m\xC3\xBCller@example.com");
    /* U+03A3 GREEK CAPITAL SIGMA folds to U+03C3. */
    expect_parts("\xCE\xA3\xCE\x91@x", "\xCF\x83\xCE\xB1", "x", NULL);
    /* U+00AD SOFT HYPHEN is mapped to nothing. */
    expect_parts("a\xC2\xAD" "b@x", "ab", "x", NULL);
}

PL_TEST(parse_fullwidth)
{
    /* FULLWIDTH "USER" @ FULLWIDTH "EXAMPLE" FULLWIDTH FULL STOP "com" /
     * FULLWIDTH "RES": NFKC to ASCII, case folded except the resource. */
    expect_full("\xEF\xBC\xB5\xEF\xBC\xB3\xEF\xBC\xA5\xEF\xBC\xB2@"
                "\xEF\xBC\xA5\xEF\xBC\xB8\xEF\xBC\xA1\xEF\xBC\xAD\xEF\xBC\xB0"
                "\xEF\xBC\xAC\xEF\xBC\xA5\xEF\xBC\x8E" "com/"
                "\xEF\xBC\xB2\xEF\xBC\xA5\xEF\xBC\xB3",
                "user@example.com/RES");
}

PL_TEST(parse_unicode_domain)
{
    expect_parts("user@B\xC3\x9C" "CHER.de", "user", "b\xC3\xBC" "cher.de", NULL);
    /* U+3002 IDEOGRAPHIC FULL STOP separates labels. */
    expect_parts("user@a\xE3\x80\x82" "b", "user", "a.b", NULL);
    /* U+FF61 HALFWIDTH IDEOGRAPHIC FULL STOP too. */
    expect_parts("user@a\xEF\xBD\xA1" "b", "user", "a.b", NULL);
    /* A trailing ideographic full stop is stripped like a dot. */
    expect_parts("user@example.com\xE3\x80\x82", "user", "example.com", NULL);
    /* FULLWIDTH LOW LINE becomes '_', which host names refuse. */
    expect_invalid("user@x\xEF\xBC\xBFy");
    /* U+00A0 NO-BREAK SPACE becomes SPACE under NFKC: not a host name. */
    expect_invalid("user@a\xC2\xA0" "b");
}

PL_TEST(parse_resource_keeps_case_and_spaces)
{
    expect_parts("a@b/ Hello World ", "a", "b", " Hello World ");
    expect_parts("a@b/MiXeD", "a", "b", "MiXeD");
    /* Resourceprep applies NFKC but no case folding. */
    expect_parts("a@b/\xE2\x85\xAB", "a", "b", "XII");
    expect_parts("a@b/\xC3\x9F", "a", "b", "\xC3\x9F");
    expect_parts("a@b/x\xC2\xADy", "a", "b", "xy");
    /* Every printable ASCII character is kept. */
    expect_parts("a@b/!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "a", "b",
                 "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
}

/* ==== prohibited characters ==== */

PL_TEST(node_prohibited)
{
    const char *bad[] = { "a b@x", "a\"b@x", "a&b@x", "a'b@x", "a:b@x", "a<b@x",
                          "a>b@x", "a\tb@x", "a\x7f" "b@x", "a\x01" "b@x",
                          "\"@x", "&@x", "'@x", ":@x", "<@x", ">@x", " @x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid(bad[i]);
    /* FULLWIDTH COMMERCIAL AT becomes '@' under NFKC: prohibited. */
    expect_invalid("a\xEF\xBC\xA0" "b@x");
    /* NO-BREAK SPACE becomes SPACE under NFKC, prohibited in nodes. */
    expect_invalid("a\xC2\xA0" "b@x");
    /* Only a soft hyphen: empty after mapping. */
    expect_invalid("\xC2\xAD@x");
    /* Characters allowed in nodes. */
    expect_full("a.b-c_d+e=f!g#h$i%j*k~l@x", "a.b-c_d+e=f!g#h$i%j*k~l@x");
}

PL_TEST(resource_prohibited)
{
    expect_invalid("a@b/x\x01");
    expect_invalid("a@b/x\x7f");
    expect_invalid("a@b/x\ty");
    expect_invalid("a@b/x\ny");
    expect_invalid("a@b/x\xE2\x80\xA8y");   /* U+2028 LINE SEPARATOR */
    expect_invalid("a@b/x\xE2\x80\x8Ey");   /* U+200E LEFT-TO-RIGHT MARK */
    /* NO-BREAK SPACE becomes SPACE under NFKC, which is allowed here. */
    expect_parts("a@b/x\xC2\xA0y", "a", "b", "x y");
    expect_invalid("a@b/x\xEF\xBF\xBEy");   /* U+FFFE non-character */
}

PL_TEST(invalid_utf8)
{
    expect_invalid("a\xff@x");
    expect_invalid("a\xC3@x");
    expect_invalid("a\xC0\x80@x");          /* overlong NUL */
    expect_invalid("a\xED\xA0\x80@x");      /* surrogate */
    expect_invalid("x@a\xff" "b");
    expect_invalid("x@b/a\xff");
}

PL_TEST(bidi)
{
    /* RandALCat first and a digit last (RFC 3454 section 6). */
    expect_invalid("\xD8\xA7" "1@x");
    /* RandALCat mixed with LCat. */
    expect_invalid("\xD8\xA7" "a\xD8\xA7@x");
    /* RandALCat at both ends is fine. */
    expect_parts("\xD8\xA7" "1\xD8\xA7@x", "\xD8\xA7" "1\xD8\xA7", "x", NULL);
}

/* ==== lengths ==== */

PL_TEST(node_length)
{
    char *n = repeat("a", 1023);
    char in[2048];
    snprintf(in, sizeof in, "%s@x", n);
    pl_jid *j = pl_jid_parse(in);
    CHECK(j != NULL);
    CHECK_EQ(strlen(j->node), 1023);
    pl_jid_free(j);
    snprintf(in, sizeof in, "%sa@x", n);
    expect_invalid(in);
    pl_free(n);
}

PL_TEST(node_length_after_prep)
{
    /* 511 sharp s (1022 bytes) and "a": 1023 bytes, prepared to 1023. */
    char *s = repeat("\xC3\x9F", 511);
    char in[4096], want[4096];
    char *ss = repeat("ss", 511);
    snprintf(in, sizeof in, "%sa@x", s);
    snprintf(want, sizeof want, "%sa@x", ss);
    expect_full(in, want);
    /* 512 sharp s are 1024 bytes and prepare to 1024 bytes. */
    snprintf(in, sizeof in, "%s\xC3\x9F@x", s);
    expect_invalid(in);
    /* 511 sharp s and "aa": 1024 bytes raw becomes 1024 prepared. */
    snprintf(in, sizeof in, "%saa@x", s);
    expect_invalid(in);
    pl_free(s);
    pl_free(ss);
}

PL_TEST(resource_length)
{
    char *r = repeat("R", 1023);
    char in[2048];
    snprintf(in, sizeof in, "a@b/%s", r);
    pl_jid *j = pl_jid_parse(in);
    CHECK(j != NULL);
    CHECK_STR(j->resource, r);
    pl_jid_free(j);
    snprintf(in, sizeof in, "a@b/%sR", r);
    expect_invalid(in);
    pl_free(r);
}

PL_TEST(domain_length)
{
    /* 16 labels of 63 bytes and 15 dots: 1023 bytes. */
    char dom[2048] = "";
    char *label = repeat("d", 63);
    for (int i = 0; i < 16; i++) {
        if (i)
            strcat(dom, ".");
        strcat(dom, label);
    }
    CHECK_EQ(strlen(dom), 1023);
    pl_jid *j = pl_jid_parse(dom);
    CHECK(j != NULL);
    CHECK_STR(j->domain, dom);
    pl_jid_free(j);
    /* With a trailing dot it is still 1023 after stripping. */
    char in[2100];
    snprintf(in, sizeof in, "u@%s.", dom);
    j = pl_jid_parse(in);
    CHECK(j != NULL);
    CHECK_STR(j->domain, dom);
    pl_jid_free(j);
    /* One more byte in the first label: 1024 and a 64-byte label. */
    snprintf(in, sizeof in, "d%s", dom);
    expect_invalid(in);
    /* 16 labels of 60 bytes, 16 dots and a last label of 47 bytes: 1023;
     * one more byte in the last label: 1024, every label short enough. */
    char *l60 = repeat("e", 60), *l48 = repeat("f", 48);
    dom[0] = '\0';
    for (int i = 0; i < 16; i++) {
        strcat(dom, l60);
        strcat(dom, ".");
    }
    strcat(dom, l48 + 1);
    CHECK_EQ(strlen(dom), 1023);
    j = pl_jid_parse(dom);
    CHECK(j != NULL);
    CHECK_STR(j->full, dom);
    pl_jid_free(j);
    strcat(dom, "f");
    CHECK_EQ(strlen(dom), 1024);
    expect_invalid(dom);
    pl_free(l60);
    pl_free(l48);
    pl_free(label);
}

PL_TEST(label_length)
{
    char *l63 = repeat("L", 63), *l64 = repeat("L", 64);
    char in[256], want[256];
    snprintf(in, sizeof in, "u@%s.com", l63);
    char *lower = repeat("l", 63);
    snprintf(want, sizeof want, "u@%s.com", lower);
    expect_full(in, want);
    snprintf(in, sizeof in, "u@%s.com", l64);
    expect_invalid(in);
    snprintf(in, sizeof in, "u@a.%s", l64);
    expect_invalid(in);
    pl_free(l63);
    pl_free(l64);
    pl_free(lower);
}

/* ==== domains ==== */

PL_TEST(domain_trailing_dot)
{
    expect_parts("user@example.com.", "user", "example.com", NULL);
    expect_parts("example.com./r", NULL, "example.com", "r");
    expect_invalid("user@example.com..");
    expect_invalid("user@.");
    expect_invalid(".");
}

PL_TEST(domain_bad_labels_and_chars)
{
    const char *bad[] = { "a@.example.com", "a@ex..com", "a@exa mple.com",
                          "a@exam_ple.com", "a@ex!ample.com", "a@ex:5222",
                          "a@ex%ample", "a@ex\\ample", "a@ex*ample",
                          "example.com:5222", "a@[::1", "a@[zz]", "a@[1.2.3.4]",
                          "a@[]", "a@[::1]x", "a@x]", "a@x[", "a@\x01", "a@ex\tample" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid(bad[i]);
    expect_full("a@x-y.example-1.com", "a@x-y.example-1.com");
    expect_full("a@123.example", "a@123.example");
}

PL_TEST(domain_ip_literals)
{
    expect_parts("user@[::1]", "user", "[::1]", NULL);
    expect_parts("user@[2001:DB8::1]/r", "user", "[2001:db8::1]", "r");
    expect_parts("[::ffff:127.0.0.1]", NULL, "[::ffff:127.0.0.1]", NULL);
    expect_parts("user@127.0.0.1", "user", "127.0.0.1", NULL);
    expect_parts("127.0.0.1/x", NULL, "127.0.0.1", "x");
}

/* ==== part functions ==== */

PL_TEST(part_functions)
{
    char out[1100];
    CHECK_EQ(pl_jid_nodeprep("JuLiEt", out, sizeof out), 0);
    CHECK_STR(out, "juliet");
    CHECK_EQ(pl_jid_nodeprep("\xE2\x85\xAB", out, sizeof out), 0);
    CHECK_STR(out, "xii");
    CHECK_EQ(pl_jid_nodeprep("a@b", out, sizeof out), -1);
    CHECK_EQ(pl_jid_nodeprep("", out, sizeof out), -1);
    CHECK_EQ(pl_jid_nameprep("Example.COM.", out, sizeof out), 0);
    CHECK_STR(out, "example.com");
    CHECK_EQ(pl_jid_nameprep("[::1]", out, sizeof out), 0);
    CHECK_STR(out, "[::1]");
    CHECK_EQ(pl_jid_nameprep("a b", out, sizeof out), -1);
    CHECK_EQ(pl_jid_nameprep("", out, sizeof out), -1);
    CHECK_EQ(pl_jid_resourceprep("Ab C", out, sizeof out), 0);
    CHECK_STR(out, "Ab C");
    CHECK_EQ(pl_jid_resourceprep("\xE2\x85\xAB", out, sizeof out), 0);
    CHECK_STR(out, "XII");
    CHECK_EQ(pl_jid_resourceprep("a\x01", out, sizeof out), -1);
    CHECK_EQ(pl_jid_resourceprep("", out, sizeof out), -1);
}

PL_TEST(part_functions_outsz)
{
    char out[8];
    memset(out, 'Z', sizeof out);
    CHECK_EQ(pl_jid_nodeprep("ABC", out, 4), 0);
    CHECK_STR(out, "abc");
    CHECK_EQ(pl_jid_nodeprep("ABCD", out, 4), -1);
    CHECK_EQ(pl_jid_nameprep("abcd", out, 4), -1);
    CHECK_EQ(pl_jid_resourceprep("abcd", out, 4), -1);
    /* Prepared length counts, not input length: U+216B is 3 bytes. */
    CHECK_EQ(pl_jid_resourceprep("\xE2\x85\xAB", out, 4), 0);
    CHECK_STR(out, "XII");
    CHECK_EQ(pl_jid_nodeprep("\xC3\x9F\xC3\x9F", out, 4), -1);
    CHECK_EQ(pl_jid_nodeprep("\xC3\x9F\xC3\x9F", out, 5), 0);
    CHECK_STR(out, "ssss");
    CHECK_EQ(pl_jid_nodeprep("a", out, 0), -1);
    char *big = repeat("a", 1024);
    char large[2048];
    CHECK_EQ(pl_jid_nodeprep(big, large, sizeof large), -1);
    big[1023] = '\0';
    CHECK_EQ(pl_jid_nodeprep(big, large, sizeof large), 0);
    CHECK_EQ(strlen(large), 1023);
    pl_free(big);
}

/* ==== make, dup, to_bare, eq ==== */

PL_TEST(make)
{
    pl_jid *j = pl_jid_make("Juliet", "Example.COM", "Balcony");
    CHECK(j != NULL);
    CHECK_STR(j->node, "juliet");
    CHECK_STR(j->domain, "example.com");
    CHECK_STR(j->resource, "Balcony");
    CHECK_STR(j->full, "juliet@example.com/Balcony");
    CHECK_STR(j->bare, "juliet@example.com");
    expect_one_block(j);
    pl_jid_free(j);

    j = pl_jid_make(NULL, "example.com.", NULL);
    CHECK(j != NULL);
    CHECK_NULL(j->node);
    CHECK_NULL(j->resource);
    CHECK_STR(j->full, "example.com");
    CHECK(j->bare == j->full);
    pl_jid_free(j);

    /* make takes the parts literally: '@' or '/' inside is no separator. */
    j = pl_jid_make(NULL, "example.com", "a/b@c");
    CHECK(j != NULL);
    CHECK_STR(j->full, "example.com/a/b@c");
    pl_jid_free(j);

    CHECK_NULL(pl_jid_make("", "example.com", NULL));
    CHECK_NULL(pl_jid_make("a", "example.com", ""));
    CHECK_NULL(pl_jid_make("a", "", NULL));
    CHECK_NULL(pl_jid_make("a", NULL, NULL));
    CHECK_NULL(pl_jid_make("a@b", "example.com", NULL));
    CHECK_NULL(pl_jid_make("a", "exa/mple.com", NULL));
    CHECK_NULL(pl_jid_make("a", "example.com", "x\x01"));
}

PL_TEST(dup_and_to_bare)
{
    pl_jid *j = pl_jid_parse("Romeo@Example.NET/Orchard");
    CHECK(j != NULL);
    pl_jid *d = pl_jid_dup(j);
    CHECK(d != NULL && d != j);
    CHECK_STR(d->node, "romeo");
    CHECK_STR(d->domain, "example.net");
    CHECK_STR(d->resource, "Orchard");
    CHECK_STR(d->full, "romeo@example.net/Orchard");
    CHECK_STR(d->bare, "romeo@example.net");
    expect_one_block(d);

    pl_jid *b = pl_jid_to_bare(j);
    CHECK(b != NULL);
    CHECK_STR(b->node, "romeo");
    CHECK_NULL(b->resource);
    CHECK_STR(b->full, "romeo@example.net");
    CHECK(b->bare == b->full);
    expect_one_block(b);

    pl_jid_free(j);
    /* The copies stand alone once the original is gone. */
    CHECK_STR(d->full, "romeo@example.net/Orchard");
    CHECK_STR(b->full, "romeo@example.net");

    pl_jid *dom = pl_jid_parse("example.net/x");
    pl_jid *domb = pl_jid_to_bare(dom);
    CHECK_NULL(domb->node);
    CHECK_STR(domb->full, "example.net");
    pl_jid *dd = pl_jid_dup(domb);
    CHECK_STR(dd->full, "example.net");
    CHECK(dd->bare == dd->full);
    pl_jid_free(dom);
    pl_jid_free(domb);
    pl_jid_free(dd);
    pl_jid_free(d);
    pl_jid_free(b);
    pl_jid_free(NULL);
}

PL_TEST(eq)
{
    pl_jid *a = pl_jid_parse("A@B/r");
    pl_jid *b = pl_jid_parse("a@b/r");
    pl_jid *c = pl_jid_parse("a@b/R");
    pl_jid *d = pl_jid_parse("a@b");
    pl_jid *e = pl_jid_parse("b");
    pl_jid *f = pl_jid_parse("\xE2\x85\xAB@b");
    pl_jid *g = pl_jid_parse("XII@B.");
    CHECK(a && b && c && d && e && f && g);
    CHECK_EQ(pl_jid_eq(a, b), 1);
    CHECK_EQ(pl_jid_eq(a, c), 0);
    CHECK_EQ(pl_jid_eq(a, d), 0);
    CHECK_EQ(pl_jid_bare_eq(a, c), 1);
    CHECK_EQ(pl_jid_bare_eq(a, d), 1);
    CHECK_EQ(pl_jid_bare_eq(d, e), 0);
    CHECK_EQ(pl_jid_eq(f, g), 1);
    CHECK_EQ(pl_jid_bare_eq(f, g), 1);
    CHECK_EQ(pl_jid_eq(d, d), 1);
    pl_jid_free(a);
    pl_jid_free(b);
    pl_jid_free(c);
    pl_jid_free(d);
    pl_jid_free(e);
    pl_jid_free(f);
    pl_jid_free(g);
}

/* The ASCII fast path must agree with stringprep: the same characters
 * given once as plain ASCII and once next to a non-ASCII letter (which
 * forces libidn) must be accepted or refused alike. */
PL_TEST(fast_path_matches_stringprep)
{
    for (int c = 1; c < 128; c++) {
        char ascii[16], mixed[16];
        pl_jid *ja, *jm;
        /* node */
        snprintf(ascii, sizeof ascii, "x%cy@d", c);
        snprintf(mixed, sizeof mixed, "x%cy\xC3\xA9@d", c);
        if (c == '@' || c == '/')
            continue;
        ja = pl_jid_parse(ascii);
        jm = pl_jid_parse(mixed);
        CHECK_EQ(ja != NULL, jm != NULL);
        if (ja) {
            CHECK_EQ(ja->node[1], jm->node[1]);
            CHECK(c < 'A' || c > 'Z' || ja->node[1] == c - 'A' + 'a');
        }
        pl_jid_free(ja);
        pl_jid_free(jm);
        /* domain */
        snprintf(ascii, sizeof ascii, "d%ce", c);
        snprintf(mixed, sizeof mixed, "d%ce\xC3\xA9", c);
        ja = pl_jid_parse(ascii);
        jm = pl_jid_parse(mixed);
        CHECK_EQ(ja != NULL, jm != NULL);
        if (ja)
            CHECK_EQ(ja->domain[1], jm->domain[1]);
        pl_jid_free(ja);
        pl_jid_free(jm);
        /* resource */
        snprintf(ascii, sizeof ascii, "d/x%cy", c);
        snprintf(mixed, sizeof mixed, "d/x%cy\xC3\xA9", c);
        ja = pl_jid_parse(ascii);
        jm = pl_jid_parse(mixed);
        CHECK_EQ(ja != NULL, jm != NULL);
        if (ja)
            CHECK_EQ(ja->resource[1], c);
        if (jm)
            CHECK_EQ(jm->resource[1], c);
        pl_jid_free(ja);
        pl_jid_free(jm);
    }
    /* Spot checks of the expected verdicts. */
    expect_invalid("x y@d");
    expect_full("d/x y", "d/x y");
    expect_invalid("d e");
}

/* ==== SASLprep (RFC 4013 section 3) ==== */

static void expect_saslprep(const char *in, const char *want)
{
    char *out = (char *)"sentinel";
    CHECK_EQ(pl_saslprep(in, &out), 0);
    CHECK_STR(out, want);
    pl_free(out);
}

static void expect_saslprep_fails(const char *in)
{
    char *out = (char *)"sentinel";
    CHECK_EQ(pl_saslprep(in, &out), -1);
    CHECK_NULL(out);
}

PL_TEST(saslprep_rfc4013)
{
    expect_saslprep("I\xC2\xADX", "IX");        /* SOFT HYPHEN mapped to nothing */
    expect_saslprep("user", "user");
    expect_saslprep("USER", "USER");            /* case is kept */
    expect_saslprep("\xC2\xAA", "a");           /* FEMININE ORDINAL INDICATOR */
    expect_saslprep("\xE2\x85\xA8", "IX");      /* ROMAN NUMERAL NINE */
    expect_saslprep_fails("\x07");              /* prohibited */
    expect_saslprep_fails("\xD8\xA7" "1");      /* bidi check */
}

PL_TEST(saslprep_more)
{
    expect_saslprep("a\xC2\xA0" "b", "a b");    /* non-ASCII space to SPACE */
    expect_saslprep("pencil", "pencil");
    expect_saslprep("p a s s", "p a s s");
    expect_saslprep("", "");
    expect_saslprep_fails("\xC8\xA1");          /* U+0221: unassigned in 3.2 */
    expect_saslprep_fails("a\xff");             /* not UTF-8 */
    expect_saslprep_fails("a\x7f");
    expect_saslprep_fails(NULL);
}
