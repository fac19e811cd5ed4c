/* modules/mod_s2s/s2s_test.c: unit tests of the federation module's pure
 * parts: XEP-0185 dialback keys (the XEP's own example), the dialback
 * element writer, the verification request registry of dialback.c (with
 * the stream functions it calls replaced by recorders), and the parsing
 * and decisions of s2s_auth.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "s2s.h"
#include "../../tests/unit/test.h"

s2s_globals pl__s2s;

/* ==== recorders for the stream functions dialback.c calls ==== */

static struct {
    int kicks;
    uint64_t out_id;
    char got_local[64], got_remote[64], got_result[64];
    int results;
    int in_exists;
} rec;

struct s2s_out { int dummy; };
struct s2s_in { int dummy; };
static s2s_out the_out;
static s2s_in the_in;

s2s_out *pl__s2s_out_get(const char *local, const char *remote)
{
    return &the_out;
}

uint64_t pl__s2s_out_id(const s2s_out *o)
{
    return rec.out_id;
}

void pl__s2s_out_kick(s2s_out *o)
{
    rec.kicks++;
}

s2s_in *pl__s2s_in_by_id(uint64_t id)
{
    return rec.in_exists && id == 7 ? &the_in : NULL;
}

void pl__s2s_in_db_result(s2s_in *s, const char *local, const char *remote, const char *result)
{
    rec.results++;
    snprintf(rec.got_local, sizeof rec.got_local, "%s", local);
    snprintf(rec.got_remote, sizeof rec.got_remote, "%s", remote);
    snprintf(rec.got_result, sizeof rec.got_result, "%s", result);
}

/* ==== keys ==== */

PL_TEST(db_key_matches_xep0185_example)
{
    char key[65];
    pl__s2s_db_key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F", key);
    CHECK_STR(key, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
}

PL_TEST(db_key_matches_xep0220_example)
{
    char key[65];
    pl__s2s_db_key("s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F",
                   key);
    CHECK_STR(key, "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3");
}

PL_TEST(db_check)
{
    const char *k = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643";
    const char *s = "s3cr3tf0rd14lb4ck";
    CHECK(pl__s2s_db_check(s, "xmpp.example.com", "example.org", "D60000229F", k));
    char padded[100];
    snprintf(padded, sizeof padded, "\n   %s\n ", k);
    CHECK(pl__s2s_db_check(s, "xmpp.example.com", "example.org", "D60000229F", padded));
    /* any other input, stream id, secret or a truncated key fails */
    CHECK(!pl__s2s_db_check(s, "xmpp.example.com", "example.org", "D60000229G", k));
    CHECK(!pl__s2s_db_check(s, "example.org", "xmpp.example.com", "D60000229F", k));
    CHECK(!pl__s2s_db_check("other", "xmpp.example.com", "example.org", "D60000229F", k));
    CHECK(!pl__s2s_db_check(s, "xmpp.example.com", "example.org", "D60000229F", k + 1));
    CHECK(!pl__s2s_db_check(s, "xmpp.example.com", "example.org", "D60000229F", ""));
}

PL_TEST(db_write_elements)
{
    pl_buf b = PL_BUF_INIT;
    pl__s2s_db_write(&b, "result", "a.example", "b.example", NULL, NULL, "abc", NULL);
    CHECK_STR(b.data, "<db:result from='a.example' to='b.example'>abc</db:result>");
    pl_buf_reset(&b);
    pl__s2s_db_write(&b, "verify", "b.example", "a.example", "id'1", "valid", NULL, NULL);
    CHECK_STR(b.data, "<db:verify from='b.example' to='a.example' id='id&apos;1' type='valid'/>");
    pl_buf_reset(&b);
    pl__s2s_db_write(&b, "result", "b.example", "a.example", NULL, NULL, NULL, "item-not-found");
    CHECK_STR(b.data, "<db:result from='b.example' to='a.example' type='error'>"
                      "<error type='cancel'><item-not-found "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>");
    pl_buf_free(&b);
}

/* ==== verification requests ==== */

PL_TEST(db_request_sent_once_and_answered)
{
    memset(&rec, 0, sizeof rec);
    rec.out_id = 42;
    rec.in_exists = 1;
    pl__s2s_db_request(7, "local.example", "remote.example", "sid1", "KEY");
    CHECK_EQ(rec.kicks, 1);
    pl_buf b = PL_BUF_INIT;
    pl__s2s_db_send_pending(41, "local.example", "remote.example", &b);
    CHECK_EQ(b.len, 0);   /* another stream's */
    pl__s2s_db_send_pending(42, "local.example", "remote.example", &b);
    CHECK_STR(b.data, "<db:verify from='local.example' to='remote.example' id='sid1'>KEY"
                      "</db:verify>");
    pl_buf_reset(&b);
    pl__s2s_db_send_pending(42, "local.example", "remote.example", &b);
    CHECK_EQ(b.len, 0);   /* already sent */
    /* answers that do not match the request are unsolicited */
    CHECK_EQ(pl__s2s_db_answer(41, "remote.example", "local.example", "sid1", "valid"), -1);
    CHECK_EQ(pl__s2s_db_answer(42, "other.example", "local.example", "sid1", "valid"), -1);
    CHECK_EQ(pl__s2s_db_answer(42, "remote.example", "local.example", "sid2", "valid"), -1);
    CHECK_EQ(pl__s2s_db_answer(42, "local.example", "remote.example", "sid1", "valid"), -1);
    CHECK_EQ(rec.results, 0);
    CHECK_EQ(pl__s2s_db_answer(42, "remote.example", "local.example", "sid1", "valid"), 0);
    CHECK_EQ(rec.results, 1);
    CHECK_STR(rec.got_local, "local.example");
    CHECK_STR(rec.got_remote, "remote.example");
    CHECK_STR(rec.got_result, "valid");
    /* answered once: a replay is unsolicited */
    CHECK_EQ(pl__s2s_db_answer(42, "remote.example", "local.example", "sid1", "valid"), -1);
    pl_buf_free(&b);
    pl__s2s_db_free_all();
}

PL_TEST(db_request_not_answered_before_it_is_sent)
{
    memset(&rec, 0, sizeof rec);
    rec.out_id = 5;
    rec.in_exists = 1;
    pl__s2s_db_request(7, "l.example", "r.example", "s", "K");
    CHECK_EQ(pl__s2s_db_answer(5, "r.example", "l.example", "s", "valid"), -1);
    CHECK_EQ(rec.results, 0);
    pl__s2s_db_free_all();
}

PL_TEST(db_invalid_and_error_answers)
{
    memset(&rec, 0, sizeof rec);
    rec.out_id = 9;
    rec.in_exists = 1;
    pl_buf b = PL_BUF_INIT;
    pl__s2s_db_request(7, "l.example", "r.example", "s1", "K");
    pl__s2s_db_request(7, "l.example", "r.example", "s2", "K");
    pl__s2s_db_send_pending(9, "l.example", "r.example", &b);
    CHECK_EQ(pl__s2s_db_answer(9, "r.example", "l.example", "s1", "invalid"), 0);
    CHECK_STR(rec.got_result, "invalid");
    CHECK_EQ(pl__s2s_db_answer(9, "r.example", "l.example", "s2", "error"), 0);
    CHECK_STR(rec.got_result, "remote-server-not-found");
    CHECK_EQ(rec.results, 2);
    pl_buf_free(&b);
    pl__s2s_db_free_all();
}

PL_TEST(db_out_failed_and_in_gone)
{
    memset(&rec, 0, sizeof rec);
    rec.in_exists = 1;
    rec.out_id = 3;
    pl__s2s_db_request(7, "l.example", "r.example", "s1", "K");
    pl__s2s_db_request(7, "l.example", "r.example", "s2", "K");
    rec.out_id = 4;
    pl__s2s_db_request(7, "l.example", "x.example", "s3", "K");
    pl__s2s_db_out_failed(3, "l.example", "r.example", "remote-connection-failed");
    CHECK_EQ(rec.results, 2);
    CHECK_STR(rec.got_result, "remote-connection-failed");
    /* the incoming stream goes away: its last request is dropped silently */
    pl__s2s_db_in_gone(7);
    pl__s2s_db_out_failed(4, "l.example", "x.example", "remote-connection-failed");
    CHECK_EQ(rec.results, 2);
    /* a request whose incoming stream vanished finishes without a call */
    rec.in_exists = 0;
    rec.out_id = 6;
    pl__s2s_db_request(7, "l.example", "r.example", "s4", "K");
    pl__s2s_db_out_failed(6, "l.example", "r.example", "remote-connection-failed");
    CHECK_EQ(rec.results, 2);
    pl__s2s_db_free_all();
}

/* ==== routes and policies ==== */

PL_TEST(routes_parse)
{
    char err[256] = "";
    s2s_route *r = NULL;
    CHECK_EQ(pl__s2s_parse_routes("Example.ORG=127.0.0.2:5269  other.org=[::1]:5270/tls,"
                                  "third.org=xmpp.third.org v6.org=::2",
                                  &r, err, sizeof err), 0);
    CHECK(r != NULL);
    CHECK_STR(r->domain, "example.org");
    CHECK_STR(r->host, "127.0.0.2");
    CHECK_EQ(r->port, 5269);
    CHECK_EQ(r->direct_tls, 0);
    s2s_route *x = r->next;
    CHECK_STR(x->domain, "other.org");
    CHECK_STR(x->host, "::1");
    CHECK_EQ(x->port, 5270);
    CHECK_EQ(x->direct_tls, 1);
    x = x->next;
    CHECK_STR(x->host, "xmpp.third.org");
    CHECK_EQ(x->port, 5269);
    x = x->next;
    CHECK_STR(x->host, "::2");
    CHECK_EQ(x->port, 5269);
    CHECK_NULL(x->next);
    pl__s2s.routes = r;
    CHECK_STR(pl__s2s_route_for("other.org")->host, "::1");
    CHECK_NULL(pl__s2s_route_for("nowhere.org"));
    pl__s2s.routes = NULL;
    pl__s2s_free_routes(r);
    CHECK_EQ(pl__s2s_parse_routes("", &r, err, sizeof err), 0);
    CHECK_NULL(r);
}

PL_TEST(routes_parse_errors)
{
    char err[256] = "";
    s2s_route *r = (s2s_route *)1;
    CHECK_EQ(pl__s2s_parse_routes("good.org=1.2.3.4:1 bad.org", &r, err, sizeof err), -1);
    CHECK_STR(err, "invalid entry \"bad.org\" (expected DOMAIN=VALUE)");
    CHECK_EQ(pl__s2s_parse_routes("bad.org=host:99999", &r, err, sizeof err), -1);
    CHECK_STR(err, "invalid route target \"host:99999\" for bad.org (expected HOST[:PORT][/tls])");
    CHECK_EQ(pl__s2s_parse_routes("bad.org=[::1", &r, err, sizeof err), -1);
    CHECK_EQ(pl__s2s_parse_routes("bad.org=", &r, err, sizeof err), -1);
    CHECK_EQ(pl__s2s_parse_routes("=1.2.3.4", &r, err, sizeof err), -1);
    CHECK_EQ(pl__s2s_parse_routes("b@d.org=1.2.3.4", &r, err, sizeof err), -1);
    CHECK_STR(err, "invalid domain \"b@d.org\"");
}

PL_TEST(policies_and_decisions)
{
    char err[256] = "";
    s2s_rule *r = NULL;
    CHECK_EQ(pl__s2s_parse_rules("strict.org=require-cert loose.org=dialback evil.org=block",
                                 &r, err, sizeof err), 0);
    pl__s2s.rules = r;
    pl__s2s.dialback = 1;
    pl__s2s.require_valid_cert = 0;
    CHECK_EQ(pl__s2s_policy("strict.org"), POLICY_REQUIRE_CERT);
    CHECK_EQ(pl__s2s_policy("plain.org"), POLICY_DEFAULT);
    CHECK(pl__s2s_blocked("evil.org"));
    CHECK(!pl__s2s_blocked("plain.org"));
    CHECK(pl__s2s_cert_required("strict.org"));
    CHECK(!pl__s2s_cert_required("plain.org"));
    CHECK(!pl__s2s_dialback_allowed("strict.org"));
    CHECK(!pl__s2s_dialback_allowed("evil.org"));
    CHECK(pl__s2s_dialback_allowed("plain.org"));
    CHECK(pl__s2s_dialback_allowed("loose.org"));
    /* certificates required everywhere, except where a rule allows dialback */
    pl__s2s.require_valid_cert = 1;
    CHECK(pl__s2s_cert_required("plain.org"));
    CHECK(!pl__s2s_dialback_allowed("plain.org"));
    CHECK(!pl__s2s_cert_required("loose.org"));
    CHECK(pl__s2s_dialback_allowed("loose.org"));
    /* dialback off */
    pl__s2s.require_valid_cert = 0;
    pl__s2s.dialback = 0;
    CHECK(!pl__s2s_dialback_allowed("plain.org"));
    CHECK(pl__s2s_dialback_allowed("loose.org"));
    pl__s2s.rules = NULL;
    pl__s2s_free_rules(r);
    CHECK_EQ(pl__s2s_parse_rules("x.org=maybe", &r, err, sizeof err), -1);
    CHECK_STR(err, "unknown policy \"maybe\" for x.org (expected require-cert, dialback or block)");
}

/* ==== SASL EXTERNAL ==== */

PL_TEST(external_identity)
{
    char *b = pl__s2s_b64("example.org");
    CHECK_STR(b, "ZXhhbXBsZS5vcmc=");
    char *id = pl__s2s_external_identity(b, "stream.org");
    CHECK_STR(id, "example.org");
    pl_free(id);
    pl_free(b);
    id = pl__s2s_external_identity("=", "stream.org");
    CHECK_STR(id, "stream.org");
    pl_free(id);
    id = pl__s2s_external_identity("", "stream.org");
    CHECK_STR(id, "stream.org");
    pl_free(id);
    CHECK_NULL(pl__s2s_external_identity("", NULL));
    CHECK_NULL(pl__s2s_external_identity("not base64!", "x.org"));
    CHECK_NULL(pl__s2s_external_identity("AA==", "x.org"));   /* a NUL byte */
}
