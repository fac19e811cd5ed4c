/* c2s/sasl.c: SASL for client streams (RFC 6120 section 6): SCRAM-SHA-1
 * and SCRAM-SHA-256 with their -PLUS variants, and PLAIN inside TLS. The
 * credentials come asynchronously from the host's authentication provider;
 * failures are counted per source address (throttle.c). */
#include <stdint.h>
#include <string.h>
#include "c2s/c2s.h"
#include "c2s/throttle.h"
#include "core/host.h"
#include "core/server.h"
#include "sasl/scram.h"

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"

_Static_assert(sizeof(void *) >= sizeof(uint64_t), "session ids travel in pointers");

enum mech { M_PLAIN, M_SCRAM };
enum step { WAIT_CREDS, WAIT_RESPONSE };

typedef struct pl__sasl {
    int mech;
    int step;
    pl_scram_hash hash;
    pl_scram_server *scram;
    int unknown_user;      /* SCRAM goes on with made-up data, then fails */
    char *password;        /* PLAIN, until checked */
} pl__sasl;

static const char *const cb_types[] = { "tls-exporter", "tls-server-end-point", "tls-unique" };

void pl__sasl_free(pl_session *s)
{
    pl__sasl *x = s->sasl;
    if (!x)
        return;
    if (x->scram)
        pl_scram_server_free(x->scram);
    if (x->password) {
        memset(x->password, 0, strlen(x->password));
        pl_free(x->password);
    }
    pl_free(x);
    s->sasl = NULL;
}

/* Channel bindings this connection can provide; returns how many. */
static int channel_bindings(pl_session *s, const char **types, unsigned char data[][64],
                            size_t *lens)
{
    pl_tls *t = pl__conn_tls(s->conn);
    int n = 0;
    for (size_t i = 0; t && i < sizeof cb_types / sizeof cb_types[0]; i++) {
        lens[n] = 64;
        if (pl_tls_channel_binding(t, cb_types[i], data[n], &lens[n]) == 0)
            types[n++] = cb_types[i];
    }
    return n;
}

void pl__c2s_features_auth(pl_session *s, pl_stanza *st, pl_node *features)
{
    const char *types[3];
    unsigned char data[3][64];
    size_t lens[3];
    int ncb = channel_bindings(s, types, data, lens);
    pl_node *m = pl_node_add(st, features, "mechanisms", NS_SASL);
    static const char *const plus[] = { "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS" };
    static const char *const base[] = { "SCRAM-SHA-256", "SCRAM-SHA-1" };
    for (int i = 0; ncb && i < 2; i++) {
        pl_node *e = pl_node_add(st, m, "mechanism", NULL);
        pl_node_add_text(st, e, plus[i], strlen(plus[i]));
    }
    for (int i = 0; i < 2; i++) {
        pl_node *e = pl_node_add(st, m, "mechanism", NULL);
        pl_node_add_text(st, e, base[i], strlen(base[i]));
    }
    if (s->secure) {
        pl_node *e = pl_node_add(st, m, "mechanism", NULL);
        pl_node_add_text(st, e, "PLAIN", 5);
    }
    if (ncb) {
        /* XEP-0440: which channel-binding types we support */
        pl_node *cb = pl_node_add(st, features, "sasl-channel-binding", "urn:xmpp:sasl-cb:0");
        for (int i = 0; i < ncb; i++) {
            pl_node *c = pl_node_add(st, cb, "channel-binding", NULL);
            pl_node_set_attr(st, c, "type", types[i]);
        }
    }
}

/* Sends a SASL failure. Only a wrong password or unknown account
 * (credentials) counts toward the per-address throttle: a mechanism or
 * channel-binding mismatch is a client negotiating, not guessing. */
static void fail(pl_session *s, const char *condition, const char *text, int credentials)
{
    pl_buf *out = pl__conn_out(s->conn);
    pl_buf_printf(out, "<failure xmlns='" NS_SASL "'><%s/>", condition);
    if (text) {
        pl_buf_puts(out, "<text xml:lang='en'>");
        pl_xml_escape(out, text, strlen(text), 0);
        pl_buf_puts(out, "</text>");
    }
    pl_buf_puts(out, "</failure>");
    pl__conn_queued(s->conn);
    if (credentials)
        pl__throttle_fail(pl__conn_peer_addr(s->conn));
    pl_log(PL_LOG_INFO, "c2s %s: authentication failed: %s", pl__conn_peer(s->conn), condition);
    pl__sasl_free(s);
    if (s->state == PL__C2S_SASL_WAIT)
        s->state = PL__C2S_AUTH;
}

static void failure(pl_session *s, const char *condition, const char *text)
{
    fail(s, condition, text, 0);
}

static void success(pl_session *s, const char *username, const char *final)
{
    pl_buf *out = pl__conn_out(s->conn);
    if (final) {
        char *b64 = pl_base64_encode((const unsigned char *)final, strlen(final));
        pl_buf_printf(out, "<success xmlns='" NS_SASL "'>%s</success>", b64);
        pl_free(b64);
    } else {
        pl_buf_puts(out, "<success xmlns='" NS_SASL "'/>");
    }
    pl__conn_queued(s->conn);
    pl__throttle_clear(pl__conn_peer_addr(s->conn));
    s->authenticated = 1;
    s->username = pl_strdup(username);
    pl_log(PL_LOG_INFO, "c2s %s: authenticated as %s@%s", pl__conn_peer(s->conn), username,
           s->host->name);
    pl__sasl_free(s);
    pl__c2s_restart_stream(s);
}

static void challenge(pl_session *s, const char *msg)
{
    char *b64 = pl_base64_encode((const unsigned char *)msg, strlen(msg));
    pl_buf_printf(pl__conn_out(s->conn), "<challenge xmlns='" NS_SASL "'>%s</challenge>", b64);
    pl__conn_queued(s->conn);
    pl_free(b64);
}

/* authzid, if given, must be the account's own bare JID. */
static int authzid_ok(pl_session *s, const char *user, const char *authzid)
{
    if (!authzid || !*authzid)
        return 1;
    pl_jid *j = pl_jid_parse(authzid);
    int ok = j && !j->resource && j->node && strcmp(j->node, user) == 0
          && strcmp(j->domain, s->host->name) == 0;
    pl_jid_free(j);
    return ok;
}

static int decode_b64(const pl_auth_creds *c, const char *stored, const char *server,
                      unsigned char *salt, size_t *salt_len, unsigned char *sk,
                      unsigned char *svk, size_t hlen)
{
    unsigned char *a = NULL, *b = NULL, *d = NULL;
    size_t la, lb, ld;
    int ok = pl_base64_decode(c->salt_b64, strlen(c->salt_b64), &a, &la) == 0
          && pl_base64_decode(stored, strlen(stored), &b, &lb) == 0
          && pl_base64_decode(server, strlen(server), &d, &ld) == 0
          && la <= 64 && lb == hlen && ld == hlen;
    if (ok) {
        memcpy(salt, a, la);
        *salt_len = la;
        memcpy(sk, b, hlen);
        memcpy(svk, d, hlen);
    }
    pl_free(a);
    pl_free(b);
    pl_free(d);
    return ok ? 0 : -1;
}

static void creds_cb(int status, const pl_auth_creds *c, void *ud)
{
    pl_session *s = pl_session_by_id((uint64_t)(uintptr_t)ud);
    if (!s || s->state != PL__C2S_SASL_WAIT || !s->sasl)
        return;
    pl__sasl *x = s->sasl;
    s->state = PL__C2S_AUTH;
    if (status == PL_EUNAVAIL || (status != PL_OK && status != PL_ENOENT)) {
        failure(s, "temporary-auth-failure", NULL);
        return;
    }
    const char *user = s->username;   /* held there during the exchange */
    if (x->mech == M_PLAIN) {
        int ok = status == PL_OK
              && pl_scram_check_password(PL_SCRAM_SHA256, x->password, c->salt_b64,
                                         c->iterations, c->sha256_stored_key) == 1;
        if (!ok) {
            pl_free(s->username);
            s->username = NULL;
            fail(s, "not-authorized", NULL, 1);
            return;
        }
        char *u = s->username;
        s->username = NULL;
        success(s, u, NULL);
        pl_free(u);
        return;
    }
    size_t hlen = pl_scram_hash_len(x->hash);
    unsigned char salt[64], sk[PL_SCRAM_MAX_HASH], svk[PL_SCRAM_MAX_HASH];
    size_t salt_len = 16;
    unsigned iterations = 4096;
    if (status == PL_OK) {
        const char *stored = x->hash == PL_SCRAM_SHA1 ? c->sha1_stored_key : c->sha256_stored_key;
        const char *server = x->hash == PL_SCRAM_SHA1 ? c->sha1_server_key : c->sha256_server_key;
        if (decode_b64(c, stored, server, salt, &salt_len, sk, svk, hlen) != 0) {
            pl_log(PL_LOG_ERROR, "c2s: stored credentials of %s@%s are malformed", user,
                   s->host->name);
            failure(s, "temporary-auth-failure", NULL);
            return;
        }
        iterations = c->iterations;
    } else {
        /* No such account: answer like for a real one, then fail. */
        x->unknown_user = 1;
        pl_random(salt, salt_len);
        pl_random(sk, hlen);
        pl_random(svk, hlen);
        iterations = (unsigned)pl__server.config->scram_iterations;
    }
    char *first = NULL;
    if (pl_scram_server_first(x->scram, salt, salt_len, iterations, sk, svk, NULL, &first) != 0) {
        failure(s, "temporary-auth-failure", NULL);
        return;
    }
    x->step = WAIT_RESPONSE;
    challenge(s, first);
    pl_free(first);
}

static void lookup(pl_session *s, const char *user)
{
    pl_host *h = s->host;
    pl_free(s->username);
    s->username = pl_strdup(user);
    if (!h->auth) {
        failure(s, "temporary-auth-failure", "no authentication provider");
        pl_free(s->username);
        s->username = NULL;
        return;
    }
    s->state = PL__C2S_SASL_WAIT;
    s->sasl->step = WAIT_CREDS;
    if (h->auth->get_creds(h, user, creds_cb, (void *)(uintptr_t)s->id) != PL_OK) {
        s->state = PL__C2S_AUTH;
        pl_free(s->username);
        s->username = NULL;
        failure(s, "temporary-auth-failure", NULL);
    }
}

/* Prepares an authentication identity as an account name. */
static int prep_user(const char *in, char *out, size_t outsz)
{
    char *sp = NULL;
    if (pl_saslprep(in, &sp) != 0)
        return -1;
    int rc = pl_jid_nodeprep(sp, out, outsz);
    pl_free(sp);
    return rc;
}

static void start_plain(pl_session *s, const char *msg, size_t len)
{
    const char *authzid = msg;
    const char *p1 = memchr(msg, '\0', len);
    const char *p2 = p1 ? memchr(p1 + 1, '\0', len - (size_t)(p1 + 1 - msg)) : NULL;
    if (!p1 || !p2 || memchr(p2 + 1, '\0', len - (size_t)(p2 + 1 - msg))) {
        failure(s, "malformed-request", NULL);
        return;
    }
    char user[1024];
    char *pass = NULL;
    if (prep_user(p1 + 1, user, sizeof user) != 0 || pl_saslprep(p2 + 1, &pass) != 0) {
        failure(s, "not-authorized", NULL);
        return;
    }
    if (!authzid_ok(s, user, authzid)) {
        pl_free(pass);
        failure(s, "invalid-authzid", NULL);
        return;
    }
    s->sasl->password = pass;
    lookup(s, user);
}

static void start_scram(pl_session *s, const char *msg, size_t len, int plus)
{
    const char *types[3];
    unsigned char data[3][64];
    size_t lens[3];
    int ncb = channel_bindings(s, types, data, lens);
    const unsigned char *ptrs[3] = { data[0], data[1], data[2] };
    pl__sasl *x = s->sasl;
    x->scram = pl_scram_server_new(x->hash, plus, ncb > 0, types, ptrs, lens, ncb);
    const char *username = NULL, *authzid = NULL, *err = NULL;
    if (pl_scram_server_client_first(x->scram, msg, len, &username, &authzid, &err) != 0) {
        pl_debug("c2s %s: SCRAM client-first rejected: %s", pl__conn_peer(s->conn), err ? err : "?");
        int sasl_cond = err && (!strcmp(err, "malformed-request") || !strcmp(err, "invalid-authzid"));
        failure(s, sasl_cond ? err : "not-authorized", sasl_cond ? NULL : err);
        return;
    }
    char user[1024];
    if (pl_jid_nodeprep(username, user, sizeof user) != 0) {
        failure(s, "not-authorized", NULL);
        return;
    }
    if (!authzid_ok(s, user, authzid)) {
        failure(s, "invalid-authzid", NULL);
        return;
    }
    lookup(s, user);
}

static int decode_payload(pl_stanza *st, char **out, size_t *len)
{
    const char *text = pl_node_text(st, pl_stanza_root(st));
    if (!*text || strcmp(text, "=") == 0) {
        *out = pl_strdup("");
        *len = 0;
        return 0;
    }
    unsigned char *d = NULL;
    if (pl_base64_decode(text, strlen(text), &d, len) != 0)
        return -1;
    *out = pl_realloc(d, *len + 1);
    (*out)[*len] = '\0';
    return 0;
}

static void handle_auth(pl_session *s, pl_stanza *st)
{
    if (s->authenticated || s->state != PL__C2S_AUTH || s->sasl) {
        failure(s, "malformed-request", "an exchange is already in progress or done");
        return;
    }
    const char *mech = pl_node_attr(pl_stanza_root(st), "mechanism");
    if (!mech) {
        failure(s, "invalid-mechanism", NULL);
        return;
    }
    if (!s->secure && pl__server.config->c2s_require_tls) {
        failure(s, "encryption-required", NULL);
        return;
    }
    int plus = 0;
    pl__sasl x = { 0 };
    if (strcmp(mech, "PLAIN") == 0 && s->secure) {
        x.mech = M_PLAIN;
    } else if (!strcmp(mech, "SCRAM-SHA-1") || !strcmp(mech, "SCRAM-SHA-256")
               || ((!strcmp(mech, "SCRAM-SHA-1-PLUS") || !strcmp(mech, "SCRAM-SHA-256-PLUS"))
                   && pl__conn_tls(s->conn))) {
        x.mech = M_SCRAM;
        x.hash = mech[10] == '1' ? PL_SCRAM_SHA1 : PL_SCRAM_SHA256;
        plus = strstr(mech, "-PLUS") != NULL;
    } else if (strcmp(mech, "PLAIN") == 0) {
        failure(s, "encryption-required", NULL);
        return;
    } else {
        failure(s, "invalid-mechanism", NULL);
        return;
    }
    if (pl__throttle_blocked(pl__conn_peer_addr(s->conn))) {
        pl_buf_puts(pl__conn_out(s->conn), "<failure xmlns='" NS_SASL "'><not-authorized/>"
                    "<text xml:lang='en'>too many failed attempts; try again later</text></failure>");
        pl__conn_queued(s->conn);
        return;
    }
    char *msg;
    size_t len;
    if (decode_payload(st, &msg, &len) != 0) {
        failure(s, "incorrect-encoding", NULL);
        return;
    }
    s->sasl = pl_calloc(1, sizeof *s->sasl);
    *s->sasl = x;
    if (x.mech == M_PLAIN)
        start_plain(s, msg, len);
    else
        start_scram(s, msg, len, plus);
    memset(msg, 0, len);
    pl_free(msg);
}

static void handle_response(pl_session *s, pl_stanza *st)
{
    pl__sasl *x = s->sasl;
    if (!x || x->mech != M_SCRAM || x->step != WAIT_RESPONSE || s->state != PL__C2S_AUTH) {
        failure(s, "malformed-request", "no challenge is outstanding");
        return;
    }
    char *msg, *final = NULL;
    size_t len;
    const char *err = NULL;
    if (decode_payload(st, &msg, &len) != 0) {
        failure(s, "incorrect-encoding", NULL);
        return;
    }
    int rc = pl_scram_server_client_final(x->scram, msg, len, &final, &err);
    pl_free(msg);
    if (rc != 0 || x->unknown_user) {
        int guess = x->unknown_user || (err && strcmp(err, "invalid-proof") == 0);
        pl_free(final);
        pl_free(s->username);
        s->username = NULL;
        fail(s, "not-authorized", guess ? NULL : err, guess);
        return;
    }
    char *u = s->username;
    s->username = NULL;
    success(s, u, final);
    pl_free(u);
    pl_free(final);
}

void pl__sasl_handle(pl_session *s, pl_stanza *st)
{
    const char *name = pl_stanza_root(st)->name;
    if (strcmp(name, "auth") == 0) {
        handle_auth(s, st);
    } else if (strcmp(name, "response") == 0) {
        handle_response(s, st);
    } else if (strcmp(name, "abort") == 0) {
        pl_free(s->username);
        s->username = NULL;
        failure(s, "aborted", NULL);
    } else {
        pl__c2s_close(s, "unsupported-stanza-type", NULL);
    }
}
