/* mod_s2s/s2s_in.c: incoming server-to-server streams (RFC 6120) on the
 * `listen s2s` (STARTTLS) and `listen s2s_tls` (direct TLS) sockets. The
 * peer proves each (sender domain, local domain) pair it wants to use:
 * with SASL EXTERNAL when its client certificate is valid for the domain
 * in its stream header (XEP-0178), or with Server Dialback (XEP-0220),
 * verified by connecting back to the sender domain's authoritative server
 * (or at once when the TLS certificate already proves the domain). The
 * stream also answers <db:verify/> for keys this server issued. A stanza
 * is routed only if its 'from' domain and 'to' domain form a validated
 * pair on this stream and its 'to' is served here. */
#include <stdio.h>
#include <string.h>
#include "s2s.h"

#define MAX_PENDING 16   /* dialback verifications in flight per stream */

enum in_state { IN_HEADER, IN_TLS, IN_OPEN, IN_CLOSING };
enum { PAIR_PENDING, PAIR_VALID };

typedef struct in_pair {
    struct in_pair *next;
    char *remote;     /* the sender domain */
    char *local;      /* the target domain, served here */
    int state;
    int method;       /* AUTH_SASL or AUTH_DIALBACK */
} in_pair;

struct s2s_in {
    s2s_in *next, *prev;
    uint64_t id;
    pl_conn *conn;
    pl_xml_stream *xs;
    int state;
    char stream_id[33];
    char *from;       /* the header's 'from', prepared, if any */
    char *to;         /* the header's 'to': a local host */
    pl_host *host;
    in_pair *pairs;
    int npending;
    unsigned tls : 1;
    unsigned sasl_done : 1;
    unsigned header_sent : 1;
    char peer[96];
    char tls_info[96];
    long long deadline;     /* a pair must be valid by then */
    long long last_active;
};

static s2s_in *all;

static void on_data(void *ud, const char *buf, size_t len);
static void on_tls_ready(void *ud);
static void on_closed(void *ud);
static const pl_conn_handler conn_handler = { on_data, on_tls_ready, on_closed, NULL };

static void xml_open(void *ud, const char *ns, const char *name, const char *content_ns,
                     const pl_attr *attrs);
static void xml_stanza(void *ud, pl_stanza *st);
static void xml_close(void *ud);
static void xml_error(void *ud, const char *condition, const char *text);
static const pl_xml_stream_cb xml_cb = { xml_open, xml_stanza, xml_close, xml_error };

/* ==== pairs ==== */

static in_pair *pair_find(s2s_in *s, const char *remote, const char *local)
{
    for (in_pair *p = s->pairs; p; p = p->next)
        if (strcmp(p->remote, remote) == 0 && strcmp(p->local, local) == 0)
            return p;
    return NULL;
}

static in_pair *pair_add(s2s_in *s, const char *remote, const char *local, int state,
                         int method)
{
    in_pair *p = pl_calloc(1, sizeof *p);
    p->remote = pl_strdup(remote);
    p->local = pl_strdup(local);
    p->state = state;
    p->method = method;
    p->next = s->pairs;
    s->pairs = p;
    if (state == PAIR_VALID)
        s->deadline = 0;
    return p;
}

static void pair_remove(s2s_in *s, in_pair *p)
{
    for (in_pair **pp = &s->pairs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    pl_free(p->remote);
    pl_free(p->local);
    pl_free(p);
}

static int any_valid(const s2s_in *s)
{
    for (const in_pair *p = s->pairs; p; p = p->next)
        if (p->state == PAIR_VALID)
            return 1;
    return 0;
}

/* ==== output ==== */

static void send_header(s2s_in *s, const char *from, const char *to, int version)
{
    pl_buf *out = pl_conn_out(s->conn);
    pl__s2s_stream_id(s->stream_id);
    pl_buf_puts(out, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                     "xmlns:stream='http://etherx.jabber.org/streams' "
                     "xmlns:db='jabber:server:dialback' id='");
    pl_buf_puts(out, s->stream_id);
    pl_buf_putc(out, '\'');
    if (from) {
        pl_buf_puts(out, " from='");
        pl_xml_escape(out, from, strlen(from), 1);
        pl_buf_putc(out, '\'');
    }
    if (to) {
        pl_buf_puts(out, " to='");
        pl_xml_escape(out, to, strlen(to), 1);
        pl_buf_putc(out, '\'');
    }
    pl_buf_puts(out, version ? " version='1.0'>" : ">");
    pl_conn_queued(s->conn);
    s->header_sent = 1;
}

static void write_raw(s2s_in *s, const char *xml)
{
    if (s->state != IN_CLOSING)
        pl_conn_write(s->conn, xml, strlen(xml));
}

/* Ends the stream with an optional stream error (RFC 6120 4.9). */
static void in_close(s2s_in *s, const char *cond, const char *text)
{
    if (s->state == IN_CLOSING)
        return;
    if (cond)
        pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s in %s (%s): stream error %s%s%s", s->peer,
                s->from ? s->from : "?", cond, text ? ": " : "", text ? text : "");
    if (s->state == IN_TLS) {
        /* mid-handshake: no stream to write to */
        s->state = IN_CLOSING;
        pl_conn_close(s->conn);
        return;
    }
    if (!s->header_sent)
        send_header(s, s->to, NULL, 1);
    pl_buf *out = pl_conn_out(s->conn);
    if (cond)
        pl__s2s_stream_error(out, cond, text);
    pl_buf_puts(out, "</stream:stream>");
    pl_conn_queued(s->conn);
    s->state = IN_CLOSING;
    pl_conn_close(s->conn);
}

/* ==== connection ==== */

/* Takes an accepted s2s connection: a new stream waiting for its
 * header, or for the TLS handshake on a direct TLS listener. */
void pl__s2s_in_accept(void *ud, int fd, const char *peer, int role)
{
    s2s_in *s = pl_calloc(1, sizeof *s);
    s->id = ++pl__s2s.next_id;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    pl_net_settings ns;
    pl_net_settings_get(&ns);
    long long now = pl_now_ms();
    s->deadline = now + ns.unauth_timeout * 1000;
    s->last_active = now;
    s->conn = pl_conn_new(pl__s2s.m, fd, peer, &conn_handler, s);
    s->xs = pl_xml_stream_new(&xml_cb, s, PL_NS_SERVER, (size_t)ns.max_stanza_size);
    s->next = all;
    if (all)
        all->prev = s;
    all = s;
    pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s in %s: connected%s", peer,
            role == PL_NET_S2S_TLS ? " (direct TLS)" : "");
    if (role == PL_NET_S2S_TLS) {
        s->state = IN_TLS;
        pl_conn_tls_accept(s->conn, NULL, 1);
    } else {
        s->state = IN_HEADER;
    }
}

/* The incoming stream with this id, if it is still open. */
s2s_in *pl__s2s_in_by_id(uint64_t id)
{
    for (s2s_in *s = all; s; s = s->next)
        if (s->id == id)
            return s->state == IN_CLOSING ? NULL : s;
    return NULL;
}

static void on_data(void *ud, const char *buf, size_t len)
{
    s2s_in *s = ud;
    if (s->state == IN_CLOSING)
        return;
    s->last_active = pl_now_ms();
    pl_xml_stream_feed(s->xs, buf, len);
}

static void on_tls_ready(void *ud)
{
    s2s_in *s = ud;
    pl_tls *t = pl_conn_tls(s->conn);
    s->tls = 1;
    s->state = IN_HEADER;
    s->header_sent = 0;
    snprintf(s->tls_info, sizeof s->tls_info, "%s/%s", pl_tls_version(t), pl_tls_cipher(t));
}

static void on_closed(void *ud)
{
    s2s_in *s = ud;
    if (s->prev)
        s->prev->next = s->next;
    else if (all == s)
        all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pl__s2s_db_in_gone(s->id);
    while (s->pairs)
        pair_remove(s, s->pairs);
    pl_xml_stream_free(s->xs);
    pl_free(s->from);
    pl_free(s->to);
    pl_free(s);
}

/* ==== header and features ==== */

static const char *attr_of(const pl_attr *a, const char *name)
{
    for (; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->value;
    return NULL;
}

static int require_tls(void)
{
    pl_net_settings ns;
    pl_net_settings_get(&ns);
    return ns.s2s_require_tls;
}

static int cert_valid_for(s2s_in *s, const char *domain)
{
    pl_tls *t = s->tls ? pl_conn_tls(s->conn) : NULL;
    return t && domain && pl_tls_verify_peer(t, domain) == 1;
}

static void send_features(s2s_in *s)
{
    pl_buf *out = pl_conn_out(s->conn);
    pl_buf_puts(out, "<stream:features>");
    if (!s->tls) {
        pl_buf_puts(out, "<starttls xmlns='" NS_TLS "'>");
        if (require_tls())
            pl_buf_puts(out, "<required/>");
        pl_buf_puts(out, "</starttls>");
    }
    if (s->tls || !require_tls()) {
        if (s->tls && !s->sasl_done && s->from && cert_valid_for(s, s->from))
            pl_buf_puts(out, "<mechanisms xmlns='" NS_SASL "'><mechanism>EXTERNAL</mechanism>"
                             "</mechanisms>");
        if (!s->from || pl__s2s_dialback_allowed(s->from) || cert_valid_for(s, s->from))
            pl_buf_puts(out, "<dialback xmlns='" NS_DB_FEATURE "'><errors/></dialback>");
    }
    pl_buf_puts(out, "</stream:features>");
    pl_conn_queued(s->conn);
}

static void xml_open(void *ud, const char *ns, const char *name, const char *content_ns,
                     const pl_attr *attrs)
{
    s2s_in *s = ud;
    if (s->state == IN_CLOSING)
        return;
    const char *to = attr_of(attrs, "to"), *from = attr_of(attrs, "from");
    const char *version = attr_of(attrs, "version");
    int v1 = version && strncmp(version, "1.", 2) == 0;
    char host[1024] = "", peer[1024] = "";
    if (to && pl_jid_nameprep(to, host, sizeof host) != 0)
        host[0] = '\0';
    if (from && pl_jid_nameprep(from, peer, sizeof peer) != 0)
        peer[0] = '\0';
    pl_host *h = host[0] ? pl_host_find(host) : NULL;
    send_header(s, h ? pl_host_name(h) : NULL, peer[0] ? peer : NULL, v1);
    if (strcmp(ns, PL_NS_STREAM) != 0 || strcmp(name, "stream") != 0 || !content_ns ||
        strcmp(content_ns, PL_NS_SERVER) != 0) {
        in_close(s, "invalid-namespace", "a server stream is in jabber:server");
        return;
    }
    if ((to && !h) || (s->host && h != s->host)) {
        in_close(s, "host-unknown", NULL);
        return;
    }
    if (from && !peer[0]) {
        in_close(s, "invalid-from", NULL);
        return;
    }
    if (peer[0] && pl__s2s_blocked(peer)) {
        in_close(s, "policy-violation", "federation with this domain is disabled");
        return;
    }
    if (!v1 && !s->tls && require_tls()) {
        in_close(s, "unsupported-version", "this server requires TLS (XMPP 1.0)");
        return;
    }
    s->host = h;
    if (h && !s->to)
        s->to = pl_strdup(pl_host_name(h));
    if (peer[0] && (!s->from || strcmp(s->from, peer) != 0)) {
        pl_free(s->from);
        s->from = pl_strdup(peer);
    }
    s->state = IN_OPEN;
    if (v1)
        send_features(s);
}

/* ==== STARTTLS and SASL EXTERNAL ==== */

static void starttls(s2s_in *s)
{
    if (s->tls) {
        write_raw(s, "<failure xmlns='" NS_TLS "'/>");
        in_close(s, NULL, NULL);
        return;
    }
    write_raw(s, "<proceed xmlns='" NS_TLS "'/>");
    pl_xml_stream_restart(s->xs, 1);
    s->state = IN_TLS;
    pl_conn_starttls(s->conn, s->host, 1);
}

static void sasl_failure(s2s_in *s, const char *cond)
{
    char buf[160];
    snprintf(buf, sizeof buf, "<failure xmlns='" NS_SASL "'><%s/></failure>", cond);
    write_raw(s, buf);
}

static void sasl_auth(s2s_in *s, pl_stanza *st)
{
    pl_node *r = pl_stanza_root(st);
    const char *mech = pl_node_attr(r, "mechanism");
    if (!s->tls || s->sasl_done || !mech || strcmp(mech, "EXTERNAL") != 0) {
        sasl_failure(s, "invalid-mechanism");
        return;
    }
    char *id = pl__s2s_external_identity(pl_node_text(st, r), s->from);
    char domain[1024] = "";
    if (!id || pl_jid_nameprep(id, domain, sizeof domain) != 0) {
        pl_free(id);
        sasl_failure(s, "incorrect-encoding");
        return;
    }
    pl_free(id);
    if ((s->from && strcmp(domain, s->from) != 0) || !s->to) {
        sasl_failure(s, "invalid-authzid");
        return;
    }
    if (pl__s2s_blocked(domain) || pl_host_find(domain) || !cert_valid_for(s, domain)) {
        pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s in %s: SASL EXTERNAL for %s refused", s->peer,
                domain);
        sasl_failure(s, "not-authorized");
        return;
    }
    pair_add(s, domain, s->to, PAIR_VALID, AUTH_SASL);
    pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s in %s: %s -> %s authenticated (sasl-external, %s)",
            s->peer, domain, s->to, s->tls_info);
    write_raw(s, "<success xmlns='" NS_SASL "'/>");
    s->sasl_done = 1;
    pl_xml_stream_restart(s->xs, 0);
    s->state = IN_HEADER;
    s->header_sent = 0;
}

/* ==== dialback ==== */

static void db_reply(s2s_in *s, const char *name, const char *from, const char *to,
                     const char *id, const char *type, const char *error_cond)
{
    if (s->state == IN_CLOSING)
        return;
    pl_buf *out = pl_conn_out(s->conn);
    pl__s2s_db_write(out, name, from, to, id, type, NULL, error_cond);
    pl_conn_queued(s->conn);
}

/* Prepares both domains of a dialback element; 0 or -1. */
static int db_domains(pl_node *r, char *from, char *to, size_t sz)
{
    const char *f = pl_node_attr(r, "from"), *t = pl_node_attr(r, "to");
    if (!f || !t || pl_jid_nameprep(f, from, sz) != 0 || pl_jid_nameprep(t, to, sz) != 0)
        return -1;
    return 0;
}

/* Step 1 of XEP-0220 on the Receiving Server: a key for (from -> to). */
static void db_result(s2s_in *s, pl_stanza *st)
{
    pl_node *r = pl_stanza_root(st);
    char from[1024], to[1024];
    if (db_domains(r, from, to, sizeof from) != 0) {
        in_close(s, "improper-addressing", "db:result needs valid 'from' and 'to'");
        return;
    }
    if (pl_node_attr(r, "type")) {
        pl_mlog(pl__s2s.m, PL_LOG_WARN, "s2s in %s: ignoring a db:result with a type", s->peer);
        return;
    }
    if (!pl_host_find(to)) {
        db_reply(s, "result", to, from, NULL, NULL, "item-not-found");
        return;
    }
    if (pl__s2s_blocked(from) || (!s->tls && require_tls())) {
        db_reply(s, "result", to, from, NULL, NULL, "policy-violation");
        return;
    }
    if (pl_host_find(from)) {
        /* a peer cannot speak for a domain served here */
        db_reply(s, "result", to, from, NULL, NULL, "not-authorized");
        return;
    }
    in_pair *p = pair_find(s, from, to);
    if (p) {
        if (p->state == PAIR_VALID)
            db_reply(s, "result", to, from, NULL, "valid", NULL);
        return;
    }
    if (cert_valid_for(s, from)) {
        /* the certificate already proves the domain (XEP-0344) */
        pair_add(s, from, to, PAIR_VALID, AUTH_DIALBACK);
        pl_mlog(pl__s2s.m, PL_LOG_INFO,
                "s2s in %s: %s -> %s authenticated (dialback with a valid certificate)",
                s->peer, from, to);
        db_reply(s, "result", to, from, NULL, "valid", NULL);
        return;
    }
    if (!pl__s2s_dialback_allowed(from)) {
        pl_mlog(pl__s2s.m, PL_LOG_INFO,
                "s2s in %s: dialback for %s refused: a valid certificate is required",
                s->peer, from);
        db_reply(s, "result", to, from, NULL, NULL, "not-authorized");
        return;
    }
    if (s->npending >= MAX_PENDING) {
        db_reply(s, "result", to, from, NULL, NULL, "resource-constraint");
        return;
    }
    pair_add(s, from, to, PAIR_PENDING, AUTH_DIALBACK);
    s->npending++;
    pl__s2s_db_request(s->id, to, from, s->stream_id, pl_node_text(st, r));
}

/* Reports a finished verification on the stream that got the key:
 * valid opens the pair, invalid ends the stream (XEP-0220 2.2.1), an
 * error is a dialback error that leaves the stream up. */
void pl__s2s_in_db_result(s2s_in *s, const char *local, const char *remote,
                          const char *result)
{
    in_pair *p = pair_find(s, remote, local);
    if (!p || p->state != PAIR_PENDING)
        return;
    s->npending--;
    if (strcmp(result, "valid") == 0) {
        p->state = PAIR_VALID;
        s->deadline = 0;
        pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s in %s: %s -> %s authenticated (dialback%s%s)",
                s->peer, remote, local, s->tls ? ", " : ", no TLS", s->tls ? s->tls_info : "");
        db_reply(s, "result", local, remote, NULL, "valid", NULL);
        return;
    }
    pair_remove(s, p);
    if (strcmp(result, "invalid") == 0) {
        pl_mlog(pl__s2s.m, PL_LOG_WARN,
                "s2s in %s: dialback key for %s -> %s is invalid (spoofing attempt?)", s->peer,
                remote, local);
        db_reply(s, "result", local, remote, NULL, "invalid", NULL);
        in_close(s, "not-authorized", "dialback authentication failed");
        return;
    }
    pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s in %s: cannot verify %s -> %s: %s", s->peer, remote,
            local, result);
    db_reply(s, "result", local, remote, NULL, NULL, result);
}

/* Step 3 on the Authoritative Server: is this key ours? */
static void db_verify(s2s_in *s, pl_stanza *st)
{
    pl_node *r = pl_stanza_root(st);
    char from[1024], to[1024];
    const char *id = pl_node_attr(r, "id");
    if (db_domains(r, from, to, sizeof from) != 0 || !id) {
        in_close(s, "improper-addressing", "db:verify needs 'from', 'to' and 'id'");
        return;
    }
    if (pl_node_attr(r, "type")) {
        pl_mlog(pl__s2s.m, PL_LOG_WARN, "s2s in %s: ignoring a db:verify with a type", s->peer);
        return;
    }
    if (!pl_host_find(to)) {
        db_reply(s, "verify", to, from, id, NULL, "item-not-found");
        return;
    }
    if (!s->tls && require_tls()) {
        db_reply(s, "verify", to, from, id, NULL, "policy-violation");
        return;
    }
    int ok = pl__s2s_db_check(pl__s2s.secret, from, to, id, pl_node_text(st, r));
    pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s in %s: db:verify %s -> %s id %s: %s", s->peer, from,
            to, id, ok ? "valid" : "invalid");
    db_reply(s, "verify", to, from, id, ok ? "valid" : "invalid", NULL);
}

/* ==== stanzas ==== */

static void bounce_malformed(s2s_in *s, pl_stanza *st, const char *local)
{
    pl_stanza *reply = pl_stanza_error_reply(st, NULL, "jid-malformed", NULL);
    pl_node_set_attr(reply, pl_stanza_root(reply), "from", local);
    pl_route(reply);
    pl_stanza_unref(reply);
}

static const char *valid_local_for(const s2s_in *s, const char *remote)
{
    for (const in_pair *p = s->pairs; p; p = p->next)
        if (p->state == PAIR_VALID && strcmp(p->remote, remote) == 0)
            return p->local;
    return NULL;
}

static void route_stanza(s2s_in *s, pl_stanza *st)
{
    pl_node *r = pl_stanza_root(st);
    if (!any_valid(s)) {
        in_close(s, "not-authorized", "no domain is authenticated on this stream");
        return;
    }
    const char *f = pl_node_attr(r, "from"), *t = pl_node_attr(r, "to");
    if (!f || !t) {
        in_close(s, "improper-addressing", "a stanza between servers needs 'from' and 'to'");
        return;
    }
    pl_jid *from = pl_jid_parse(f);
    const char *local = from ? valid_local_for(s, from->domain) : NULL;
    if (!local) {
        pl_jid_free(from);
        in_close(s, "invalid-from", NULL);
        return;
    }
    pl_jid *to = pl_jid_parse(t);
    if (!to) {
        pl_jid_free(from);
        bounce_malformed(s, st, local);
        return;
    }
    int ok_host = pl_host_find(to->domain) != NULL;
    int ok_pair = ok_host && pair_find(s, from->domain, to->domain) &&
                  pair_find(s, from->domain, to->domain)->state == PAIR_VALID;
    pl_jid_free(from);
    pl_jid_free(to);
    if (!ok_host) {
        in_close(s, "host-unknown", NULL);
        return;
    }
    if (!ok_pair) {
        in_close(s, "invalid-from", "this sender domain is not authenticated for that target");
        return;
    }
    pl_route(st);
}

static int is_stanza_name(const char *n)
{
    return !strcmp(n, "message") || !strcmp(n, "presence") || !strcmp(n, "iq");
}

static void xml_stanza(void *ud, pl_stanza *st)
{
    s2s_in *s = ud;
    pl_node *r = pl_stanza_root(st);
    if (s->state != IN_OPEN) {
        pl_stanza_unref(st);
        return;
    }
    if (pl_node_is(r, "starttls", NS_TLS))
        starttls(s);
    else if (pl_node_is(r, "auth", NS_SASL))
        sasl_auth(s, st);
    else if (pl_node_is(r, "abort", NS_SASL))
        sasl_failure(s, "aborted");
    else if (pl_node_is(r, "result", NS_DB))
        db_result(s, st);
    else if (pl_node_is(r, "verify", NS_DB))
        db_verify(s, st);
    else if (strcmp(r->ns, PL_NS_CLIENT) == 0 && is_stanza_name(r->name))
        route_stanza(s, st);
    else if (pl_node_is(r, "error", PL_NS_STREAM))
        in_close(s, NULL, NULL);
    else
        in_close(s, "unsupported-stanza-type", NULL);
    pl_stanza_unref(st);
}

static void xml_close(void *ud)
{
    in_close(ud, NULL, NULL);
}

static void xml_error(void *ud, const char *condition, const char *text)
{
    in_close(ud, condition, text);
}

/* ==== time, unload, listing ==== */

/* Closes streams that did not authenticate in time and idle ones. */
void pl__s2s_in_sweep(long long now)
{
    pl_net_settings ns;
    pl_net_settings_get(&ns);
    long long idle = ns.s2s_idle_timeout * 1000;
    s2s_in *s = all;
    while (s) {
        s2s_in *next = s->next;
        if (s->state != IN_CLOSING) {
            if (s->deadline && now >= s->deadline)
                in_close(s, "connection-timeout", "authentication took too long");
            else if (!s->deadline && idle > 0 && now - s->last_active >= idle)
                in_close(s, NULL, NULL);
        }
        s = next;
    }
}

/* Server shutdown: every incoming stream ends with <system-shutdown/>. */
void pl__s2s_in_stop_all(void)
{
    s2s_in *s = all;
    while (s) {
        s2s_in *next = s->next;
        in_close(s, "system-shutdown", NULL);
        s = next;
    }
}

/* Module unload: connections are dropped without callbacks. */
void pl__s2s_in_close_all(void)
{
    while (all) {
        s2s_in *s = all;
        if (s->state != IN_CLOSING && s->state != IN_TLS && s->header_sent)
            pl_conn_write(s->conn, "</stream:stream>", 16);
        pl_conn_discard(s->conn);
        s->conn = NULL;
        all = s->next;
        if (all)
            all->prev = NULL;
        s->next = s->prev = NULL;
        pl__s2s_db_in_gone(s->id);
        while (s->pairs)
            pair_remove(s, s->pairs);
        pl_xml_stream_free(s->xs);
        pl_free(s->from);
        pl_free(s->to);
        pl_free(s);
    }
}

/* One `parleyctl s2s` line per domain pair (or per stream without one). */
void pl__s2s_in_list(pl_buf *out)
{
    long long now = pl_now_ms();
    for (const s2s_in *s = all; s; s = s->next) {
        const char *tls = s->tls_info[0] ? s->tls_info : "plain";
        long long idle = (now - s->last_active) / 1000;
        if (!s->pairs)
            pl_buf_printf(out, "in %s %s none %s %s unauthenticated idle=%llds\n",
                          s->to ? s->to : "-", s->from ? s->from : "-", tls, s->peer, idle);
        for (const in_pair *p = s->pairs; p; p = p->next)
            pl_buf_printf(out, "in %s %s %s %s %s %s idle=%llds\n", p->local, p->remote,
                          p->state != PAIR_VALID ? "none"
                          : p->method == AUTH_SASL ? "sasl-external" : "dialback",
                          tls, s->peer, p->state == PAIR_VALID ? "ready" : "verifying", idle);
    }
}
