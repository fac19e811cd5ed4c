/* mod_s2s/s2s_out.c: outgoing server-to-server streams (RFC 6120), one per
 * (local domain, remote domain) pair. A stream finds the remote's servers
 * (route override, else SRV _xmpp-server/_xmpps-server with RFC 2782
 * order, else the domain on 5269), tries each address of each target in
 * turn, negotiates STARTTLS (or starts with TLS for an _xmpps record),
 * checks the remote's certificate, and authenticates its pair with SASL
 * EXTERNAL when offered, else with Server Dialback. Stanzas wait in a
 * bounded queue until then and are bounced if the stream fails. The same
 * stream carries <db:verify/> requests when this server verifies a key
 * the remote domain sent on an incoming stream. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "s2s.h"

enum out_state {
    OUT_RESOLVE,      /* SRV or address lookup in progress */
    OUT_CONNECTING,   /* TCP connect in progress */
    OUT_TLS,          /* TLS handshake (direct, or after <proceed/>) */
    OUT_STREAM,       /* our header is out; waiting for header and features */
    OUT_STARTTLS,     /* <starttls/> sent */
    OUT_SASL,         /* <auth mechanism='EXTERNAL'/> sent */
    OUT_DIALBACK,     /* <db:result/> sent */
    OUT_READY,        /* authenticated: stanzas flow */
    OUT_FAILED,       /* failed before connecting; finished by the sweep */
    OUT_CLOSING       /* going away; freed when the connection is closed */
};

static const char *const state_names[] = {
    "resolving", "connecting", "tls", "stream", "starttls", "sasl", "dialback", "ready",
    "failed", "closing",
};

#define NBUCKETS 1024

struct s2s_out {
    s2s_out *next, *prev;      /* every stream, for sweeps and listing */
    s2s_out *hnext;            /* hash chain while it serves its pair */
    uint64_t id;
    char *local, *remote;
    pl_host *host;
    int state;
    pl_conn *conn;
    pl_xml_stream *xs;
    pl_resolve_query *q;
    pl_resolve_target targets[16];
    int ntargets, ti;
    char *addrs[16];
    int naddrs, ai;
    char peer[96];
    char *stream_id;           /* the remote's id for the current stream */
    int auth;                  /* AUTH_* once authenticated */
    unsigned in_table : 1;
    unsigned tls : 1;
    unsigned direct_tls : 1;   /* the current target wants TLS at once */
    unsigned cert_valid : 1;
    unsigned features_done : 1;
    unsigned sasl_failed : 1;
    unsigned fatal : 1;        /* no other address is worth trying */
    unsigned saw_timeout : 1;
    char *fail_cond;
    char fail_text[256];
    char tls_info[96];
    pl_stanza **queue;
    int qlen, qcap;
    long long setup_deadline;  /* authenticated by then, or it fails */
    long long try_deadline;    /* the current TCP connect */
    long long last_active;
};

static s2s_out *all;
static s2s_out *table[NBUCKETS];

static void on_srv(int status, const pl_resolve_target *t, int n, void *ud);
static void on_addrs(int status, const char *const *addrs, int n, void *ud);
static void next_target(s2s_out *o);
static void next_addr(s2s_out *o);
static void fail(s2s_out *o, const char *cond, const char *text);

/* ==== table ==== */

static unsigned bucket(const char *local, const char *remote)
{
    unsigned h = 2166136261u;
    for (const char *p = local; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ ' ') * 16777619u;
    for (const char *p = remote; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % NBUCKETS;
}

static void table_remove(s2s_out *o)
{
    if (!o->in_table)
        return;
    for (s2s_out **pp = &table[bucket(o->local, o->remote)]; *pp; pp = &(*pp)->hnext)
        if (*pp == o) {
            *pp = o->hnext;
            break;
        }
    o->in_table = 0;
}

/* The stream serving (local, remote), or NULL. */
s2s_out *pl__s2s_out_find(const char *local, const char *remote)
{
    for (s2s_out *o = table[bucket(local, remote)]; o; o = o->hnext)
        if (strcmp(o->local, local) == 0 && strcmp(o->remote, remote) == 0)
            return o;
    return NULL;
}

/* The stream's id, by which dialback requests refer to it. */
uint64_t pl__s2s_out_id(const s2s_out *o)
{
    return o->id;
}

/* ==== life cycle ==== */

static void drop_queue(s2s_out *o)
{
    for (int i = 0; i < o->qlen; i++)
        pl_stanza_unref(o->queue[i]);
    pl_free(o->queue);
    o->queue = NULL;
    o->qlen = o->qcap = 0;
}

static void clear_attempt(s2s_out *o)
{
    for (int i = 0; i < o->naddrs; i++)
        pl_free(o->addrs[i]);
    o->naddrs = 0;
    o->ai = -1;
}

static void destroy(s2s_out *o)
{
    table_remove(o);
    if (o->prev)
        o->prev->next = o->next;
    else if (all == o)
        all = o->next;
    if (o->next)
        o->next->prev = o->prev;
    if (o->q)
        pl_resolve_cancel(o->q);
    pl_xml_stream_free(o->xs);
    drop_queue(o);
    clear_attempt(o);
    for (int i = 0; i < o->ntargets; i++)
        pl_free((char *)o->targets[i].host);
    pl_free(o->stream_id);
    pl_free(o->fail_cond);
    pl_free(o->local);
    pl_free(o->remote);
    pl_free(o);
}

static void write_raw(s2s_out *o, const char *s)
{
    if (o->conn)
        pl_conn_write(o->conn, s, strlen(s));
}

/* Ends the stream: a stream error if cond, then </stream:stream>; the
 * stream is freed once the connection is closed. */
static void close_stream(s2s_out *o, const char *cond, const char *text)
{
    table_remove(o);
    o->state = OUT_CLOSING;
    pl__s2s_db_out_failed(o->id, o->local, o->remote, "remote-server-timeout");
    if (!o->conn) {
        destroy(o);
        return;
    }
    pl_buf *out = pl_conn_out(o->conn);
    if (cond)
        pl__s2s_stream_error(out, cond, text);
    pl_buf_puts(out, "</stream:stream>");
    pl_conn_queued(o->conn);
    pl_conn_close(o->conn);
}

/* Gives up: the queue is bounced with cond, waiting verification requests
 * fail, and the stream leaves the table so the next stanza starts over. */
static void fail(s2s_out *o, const char *cond, const char *text)
{
    if (o->state == OUT_CLOSING)
        return;
    pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s out %s -> %s: failed (%s%s%s)", o->local, o->remote,
            cond, text ? ": " : "", text ? text : "");
    table_remove(o);
    int was_ready = o->state == OUT_READY;
    o->state = OUT_CLOSING;
    pl_stanza **q = o->queue;
    int n = o->qlen;
    o->queue = NULL;
    o->qlen = o->qcap = 0;
    for (int i = 0; i < n; i++) {
        pl__s2s_bounce(q[i], cond, text);
        pl_stanza_unref(q[i]);
    }
    pl_free(q);
    const char *db_cond = strcmp(cond, "remote-server-timeout") == 0 ? "remote-server-timeout"
                        : was_ready ? "remote-server-timeout" : "remote-connection-failed";
    pl__s2s_db_out_failed(o->id, o->local, o->remote, db_cond);
    if (o->conn) {
        write_raw(o, "</stream:stream>");
        pl_conn_close(o->conn);
    } else {
        destroy(o);
    }
}

/* Marks a failure to be finished by the next sweep (never synchronously
 * from the call that created the stream). */
static void fail_later(s2s_out *o, const char *cond, const char *text)
{
    o->state = OUT_FAILED;
    pl_free(o->fail_cond);
    o->fail_cond = pl_strdup(cond);
    snprintf(o->fail_text, sizeof o->fail_text, "%s", text ? text : "");
}

/* A failure during the stream: no other address is tried. */
static void fatal(s2s_out *o, const char *cond, const char *text, const char *stream_error)
{
    o->fatal = 1;
    pl_free(o->fail_cond);
    o->fail_cond = pl_strdup(cond);
    snprintf(o->fail_text, sizeof o->fail_text, "%s", text ? text : "");
    if (o->conn && o->state != OUT_CLOSING) {
        pl_buf *out = pl_conn_out(o->conn);
        if (stream_error)
            pl__s2s_stream_error(out, stream_error, NULL);
        pl_buf_puts(out, "</stream:stream>");
        pl_conn_queued(o->conn);
        pl_conn_close(o->conn);
    }
}

static void start(s2s_out *o)
{
    const s2s_route *r = pl__s2s_route_for(o->remote);
    if (r) {
        o->targets[0].host = pl_strdup(r->host);
        o->targets[0].port = r->port;
        o->targets[0].direct_tls = r->direct_tls;
        o->ntargets = 1;
        o->ti = -1;
        next_target(o);
        return;
    }
    o->q = pl_resolve_srv(pl__s2s.resolver, o->remote, "xmpp-server", "xmpps-server",
                          S2S_PORT, on_srv, o);
    if (!o->q)
        fail_later(o, "remote-server-not-found", "cannot start a DNS lookup");
}

/* The stream serving (local, remote), started now if there is none. */
s2s_out *pl__s2s_out_get(const char *local, const char *remote)
{
    s2s_out *o = pl__s2s_out_find(local, remote);
    if (o)
        return o;
    o = pl_calloc(1, sizeof *o);
    o->id = ++pl__s2s.next_id;
    o->local = pl_strdup(local);
    o->remote = pl_strdup(remote);
    o->host = pl_host_find(local);
    o->state = OUT_RESOLVE;
    o->ai = -1;
    pl_net_settings ns;
    pl_net_settings_get(&ns);
    long long now = pl_now_ms();
    o->setup_deadline = now + ns.unauth_timeout * 1000;
    o->last_active = now;
    unsigned b = bucket(local, remote);
    o->hnext = table[b];
    table[b] = o;
    o->in_table = 1;
    o->next = all;
    if (all)
        all->prev = o;
    all = o;
    pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s out %s -> %s: starting", local, remote);
    start(o);
    return o;
}

/* ==== finding and connecting ==== */

static void on_srv(int status, const pl_resolve_target *t, int n, void *ud)
{
    s2s_out *o = ud;
    o->q = NULL;
    if (status != PL_OK || n == 0) {
        fail(o, "remote-server-not-found",
             status == PL_EUNAVAIL ? "DNS lookup failed" : "the domain offers no XMPP service");
        return;
    }
    for (int i = 0; i < n && i < 16; i++) {
        o->targets[i] = t[i];
        o->targets[i].host = pl_strdup(t[i].host);
    }
    o->ntargets = n < 16 ? n : 16;
    o->ti = -1;
    next_target(o);
}

static void next_target(s2s_out *o)
{
    clear_attempt(o);
    o->ti++;
    if (o->ti >= o->ntargets) {
        if (o->saw_timeout)
            fail(o, "remote-server-timeout", "no server answered in time");
        else
            fail(o, "remote-server-not-found", "no server of the domain could be reached");
        return;
    }
    o->state = OUT_RESOLVE;
    o->direct_tls = o->targets[o->ti].direct_tls;
    o->q = pl_resolve_addrs(pl__s2s.resolver, o->targets[o->ti].host, on_addrs, o);
    if (!o->q)
        fail_later(o, "remote-server-not-found", "cannot start a DNS lookup");
}

static void on_addrs(int status, const char *const *addrs, int n, void *ud)
{
    s2s_out *o = ud;
    o->q = NULL;
    if (status != PL_OK || n == 0) {
        if (status == PL_EUNAVAIL)
            o->saw_timeout = 1;
        pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s out %s -> %s: no address for %s", o->local,
                o->remote, o->targets[o->ti].host);
        next_target(o);
        return;
    }
    for (int i = 0; i < n && i < 16; i++)
        o->addrs[i] = pl_strdup(addrs[i]);
    o->naddrs = n < 16 ? n : 16;
    o->ai = -1;
    next_addr(o);
}

static void on_data(void *ud, const char *buf, size_t len);
static void on_tls_ready(void *ud);
static void on_closed(void *ud);
static void on_connected(void *ud, int err);
static const pl_conn_handler conn_handler = { on_data, on_tls_ready, on_closed, on_connected };

static void xml_open(void *ud, const char *ns, const char *name, const char *content_ns,
                     const pl_attr *attrs);
static void xml_stanza(void *ud, pl_stanza *st);
static void xml_close(void *ud);
static void xml_error(void *ud, const char *condition, const char *text);
static const pl_xml_stream_cb xml_cb = { xml_open, xml_stanza, xml_close, xml_error };

static void next_addr(s2s_out *o)
{
    for (int guard = 0; guard < 32; guard++) {
        o->ai++;
        if (o->ai >= o->naddrs) {
            next_target(o);
            return;
        }
        const char *addr = o->addrs[o->ai];
        int port = o->targets[o->ti].port;
        o->conn = pl_conn_connect(pl__s2s.m, addr, port, &conn_handler, o);
        if (!o->conn) {
            pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s out %s -> %s: cannot connect to %s port %d: %s",
                    o->local, o->remote, addr, port, strerror(errno));
            continue;
        }
        snprintf(o->peer, sizeof o->peer, "%s%s%s:%d", strchr(addr, ':') ? "[" : "", addr,
                 strchr(addr, ':') ? "]" : "", port);
        o->state = OUT_CONNECTING;
        o->tls = 0;
        o->features_done = 0;
        o->tls_info[0] = '\0';
        o->try_deadline = pl_now_ms() + pl__s2s.connect_timeout_ms;
        pl_net_settings ns;
        pl_net_settings_get(&ns);
        pl_xml_stream_free(o->xs);
        o->xs = pl_xml_stream_new(&xml_cb, o, PL_NS_SERVER, (size_t)ns.max_stanza_size);
        pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s out %s -> %s: connecting to %s%s", o->local,
                o->remote, o->peer, o->direct_tls ? " (direct TLS)" : "");
        return;
    }
    next_target(o);
}

/* ==== the stream ==== */

static void send_header(s2s_out *o)
{
    pl_buf *out = pl_conn_out(o->conn);
    pl_buf_puts(out, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                     "xmlns:stream='http://etherx.jabber.org/streams' "
                     "xmlns:db='jabber:server:dialback' from='");
    pl_xml_escape(out, o->local, strlen(o->local), 1);
    pl_buf_puts(out, "' to='");
    pl_xml_escape(out, o->remote, strlen(o->remote), 1);
    pl_buf_puts(out, "' version='1.0'>");
    pl_conn_queued(o->conn);
    o->state = OUT_STREAM;
}

static void on_connected(void *ud, int err)
{
    s2s_out *o = ud;
    if (err) {
        if (err == ETIMEDOUT)
            o->saw_timeout = 1;
        pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s out %s -> %s: connect to %s failed: %s",
                o->local, o->remote, o->peer, strerror(err));
        return;   /* closed follows: the next address is tried there */
    }
    o->try_deadline = 0;
    if (o->direct_tls) {
        o->state = OUT_TLS;
        pl_conn_tls_connect(o->conn, o->remote, o->host);
        return;
    }
    send_header(o);
}

static void on_tls_ready(void *ud)
{
    s2s_out *o = ud;
    pl_tls *t = pl_conn_tls(o->conn);
    o->tls = 1;
    snprintf(o->tls_info, sizeof o->tls_info, "%s/%s", pl_tls_version(t), pl_tls_cipher(t));
    int v = pl_tls_verify_peer(t, o->remote);
    o->cert_valid = v == 1;
    if (!o->cert_valid) {
        char why[200];
        snprintf(why, sizeof why, "certificate of %s not valid: %s", o->remote,
                 v < 0 ? "none presented" : pl_tls_error(t));
        if (pl__s2s_cert_required(o->remote)) {
            fatal(o, "remote-server-not-found", why, NULL);
            return;
        }
        pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s out %s -> %s: %s; dialback will be needed",
                o->local, o->remote, why);
    }
    send_header(o);
}

static void on_data(void *ud, const char *buf, size_t len)
{
    s2s_out *o = ud;
    if (o->state == OUT_CLOSING || !o->xs)
        return;
    o->last_active = pl_now_ms();
    pl_xml_stream_feed(o->xs, buf, len);
}

/* A stream that ended before it was authenticated tries the next address
 * unless the failure was one no other server would fix. */
static void on_closed(void *ud)
{
    s2s_out *o = ud;
    o->conn = NULL;
    if (o->state == OUT_CLOSING) {
        destroy(o);
        return;
    }
    if (o->state == OUT_READY) {
        pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s out %s -> %s: connection closed", o->local,
                o->remote);
        fail(o, "remote-server-timeout", "the connection was closed");
        return;
    }
    if (o->fatal) {
        fail(o, o->fail_cond ? o->fail_cond : "remote-server-not-found", o->fail_text);
        return;
    }
    if (o->features_done) {
        fail(o, "remote-server-not-found", "the connection was closed during authentication");
        return;
    }
    pl_xml_stream_free(o->xs);
    o->xs = NULL;
    pl_free(o->stream_id);
    o->stream_id = NULL;
    o->auth = AUTH_NONE;
    o->sasl_failed = 0;
    next_addr(o);
}

/* ==== stream events ==== */

static const char *attr_of(const pl_attr *a, const char *name)
{
    for (; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->value;
    return NULL;
}

static void ready(s2s_out *o);
static void start_auth(s2s_out *o, const pl_node *features);

static void xml_open(void *ud, const char *ns, const char *name, const char *content_ns,
                     const pl_attr *attrs)
{
    s2s_out *o = ud;
    if (o->state == OUT_CLOSING || o->fatal)
        return;
    if (strcmp(ns, PL_NS_STREAM) != 0 || strcmp(name, "stream") != 0 || !content_ns ||
        strcmp(content_ns, PL_NS_SERVER) != 0) {
        fatal(o, "remote-server-not-found", "the remote server sent an invalid stream header",
              "invalid-namespace");
        return;
    }
    const char *id = attr_of(attrs, "id");
    pl_free(o->stream_id);
    o->stream_id = pl_strdup(id ? id : "");
    const char *version = attr_of(attrs, "version");
    if (!version || strncmp(version, "1.", 2) != 0) {
        /* a pre-RFC 3920 server sends no features: dialback right away */
        pl_net_settings ns_;
        pl_net_settings_get(&ns_);
        if (!o->tls && ns_.s2s_require_tls) {
            fatal(o, "remote-server-not-found", "the remote server does not support TLS",
                  "unsupported-version");
            return;
        }
        start_auth(o, NULL);
    }
}

static void send_pending_verifies(s2s_out *o)
{
    if (!o->conn)
        return;
    pl_buf *out = pl_conn_out(o->conn);
    size_t before = out->len;
    pl__s2s_db_send_pending(o->id, o->local, o->remote, out);
    if (out->len != before)
        pl_conn_queued(o->conn);
}

static void start_dialback(s2s_out *o)
{
    char key[65];
    pl__s2s_db_key(pl__s2s.secret, o->remote, o->local, o->stream_id ? o->stream_id : "", key);
    pl_buf *out = pl_conn_out(o->conn);
    pl__s2s_db_write(out, "result", o->local, o->remote, NULL, NULL, key, NULL);
    pl_conn_queued(o->conn);
    o->state = OUT_DIALBACK;
    send_pending_verifies(o);
}

static int offers_external(const pl_node *features)
{
    const pl_node *mechs = features ? pl_node_child(features, "mechanisms", NS_SASL) : NULL;
    for (const pl_node *m = mechs ? pl_node_child(mechs, "mechanism", NS_SASL) : NULL; m;
         m = pl_node_next(m, "mechanism", NS_SASL)) {
        const pl_node *t = m->first;
        if (t && !t->name && strcmp(t->text, "EXTERNAL") == 0)
            return 1;
    }
    return 0;
}

/* Features after TLS (or where TLS is not required): SASL EXTERNAL if the
 * remote offers it, else dialback if policy allows. */
static void start_auth(s2s_out *o, const pl_node *features)
{
    o->features_done = 1;
    if (o->tls && !o->sasl_failed && offers_external(features)) {
        char *b64 = pl__s2s_b64(o->local);
        pl_buf *out = pl_conn_out(o->conn);
        pl_buf_printf(out, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>%s</auth>", b64);
        pl_conn_queued(o->conn);
        pl_free(b64);
        o->state = OUT_SASL;
        return;
    }
    if (pl__s2s_dialback_allowed(o->remote)) {
        start_dialback(o);
        return;
    }
    fatal(o, "remote-server-not-found",
          o->cert_valid ? "the remote server did not offer SASL EXTERNAL"
                        : "no acceptable authentication (a valid certificate is required)",
          NULL);
}

static void on_features(s2s_out *o, pl_stanza *st)
{
    pl_node *f = pl_stanza_root(st);
    if (o->state != OUT_STREAM)
        return;
    if (o->auth == AUTH_SASL) {
        /* the stream restarted after SASL success */
        o->features_done = 1;
        ready(o);
        return;
    }
    if (!o->tls) {
        if (pl_node_child(f, "starttls", NS_TLS)) {
            write_raw(o, "<starttls xmlns='" NS_TLS "'/>");
            o->state = OUT_STARTTLS;
            return;
        }
        pl_net_settings ns;
        pl_net_settings_get(&ns);
        if (ns.s2s_require_tls) {
            fatal(o, "remote-server-not-found", "the remote server does not offer TLS",
                  "policy-violation");
            return;
        }
    }
    start_auth(o, f);
}

static void ready(s2s_out *o)
{
    o->state = OUT_READY;
    o->setup_deadline = 0;
    o->last_active = pl_now_ms();
    pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s out %s -> %s: authenticated (%s) via %s%s%s",
            o->local, o->remote, o->auth == AUTH_SASL ? "sasl-external" : "dialback", o->peer,
            o->tls ? ", " : "", o->tls ? o->tls_info : ", no TLS");
    pl_buf *out = pl_conn_out(o->conn);
    for (int i = 0; i < o->qlen; i++) {
        pl_xml_serialize(pl_stanza_root(o->queue[i]), out, PL_NS_SERVER);
        pl_stanza_unref(o->queue[i]);
    }
    o->qlen = 0;
    pl_free(o->queue);
    o->queue = NULL;
    o->qcap = 0;
    pl_conn_queued(o->conn);
    send_pending_verifies(o);
}

static void on_db_result(s2s_out *o, pl_node *r)
{
    const char *from = pl_node_attr(r, "from"), *to = pl_node_attr(r, "to");
    const char *type = pl_node_attr(r, "type");
    if (o->state != OUT_DIALBACK || !from || !to || !type || strcmp(from, o->remote) != 0 ||
        strcmp(to, o->local) != 0) {
        pl_mlog(pl__s2s.m, PL_LOG_WARN, "s2s out %s -> %s: ignoring an unsolicited db:result",
                o->local, o->remote);
        return;
    }
    if (strcmp(type, "valid") == 0) {
        o->auth = AUTH_DIALBACK;
        ready(o);
    } else if (strcmp(type, "invalid") == 0) {
        fatal(o, "internal-server-error", "the remote server refused our dialback key", NULL);
    } else {
        const pl_node *e = pl_node_child(r, "error", NULL);
        const pl_node *c = e ? pl_node_first_element(e) : NULL;
        char why[160];
        snprintf(why, sizeof why, "dialback error%s%s", c ? ": " : "", c ? c->name : "");
        fatal(o, "remote-server-timeout", why, NULL);
    }
}

static void on_stream_error(s2s_out *o, pl_node *e)
{
    const pl_node *c = pl_node_first_element(e);
    const char *cond = c ? c->name : "undefined-condition";
    pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s out %s -> %s: stream error <%s/> from %s", o->local,
            o->remote, cond, o->peer);
    if (strcmp(cond, "host-unknown") == 0 || strcmp(cond, "host-gone") == 0 ||
        strcmp(cond, "not-authorized") == 0 || strcmp(cond, "policy-violation") == 0 ||
        o->features_done) {
        char why[160];
        snprintf(why, sizeof why, "stream error <%s/>", cond);
        fatal(o, "remote-server-not-found", why, NULL);
        return;
    }
    if (o->conn)
        pl_conn_close(o->conn);
}

static void xml_stanza(void *ud, pl_stanza *st)
{
    s2s_out *o = ud;
    pl_node *r = pl_stanza_root(st);
    if (o->state == OUT_CLOSING || o->fatal || !o->conn) {
        pl_stanza_unref(st);
        return;
    }
    o->last_active = pl_now_ms();
    if (pl_node_is(r, "features", PL_NS_STREAM)) {
        on_features(o, st);
    } else if (pl_node_is(r, "error", PL_NS_STREAM)) {
        on_stream_error(o, r);
    } else if (pl_node_is(r, "proceed", NS_TLS) && o->state == OUT_STARTTLS) {
        pl_xml_stream_restart(o->xs, 1);
        o->state = OUT_TLS;
        pl_conn_tls_connect(o->conn, o->remote, o->host);
    } else if (pl_node_is(r, "failure", NS_TLS)) {
        fatal(o, "remote-server-not-found", "the remote server refused STARTTLS", NULL);
    } else if (pl_node_is(r, "success", NS_SASL) && o->state == OUT_SASL) {
        o->auth = AUTH_SASL;
        pl_xml_stream_restart(o->xs, 0);
        send_header(o);
    } else if (pl_node_is(r, "failure", NS_SASL) && o->state == OUT_SASL) {
        pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s out %s -> %s: SASL EXTERNAL refused", o->local,
                o->remote);
        o->sasl_failed = 1;
        if (pl__s2s_dialback_allowed(o->remote))
            start_dialback(o);
        else
            fatal(o, "remote-server-not-found", "SASL EXTERNAL was refused", NULL);
    } else if (pl_node_is(r, "result", NS_DB)) {
        on_db_result(o, r);
    } else if (pl_node_is(r, "verify", NS_DB)) {
        if (pl__s2s_db_answer(o->id, pl_node_attr(r, "from"), pl_node_attr(r, "to"),
                              pl_node_attr(r, "id"), pl_node_attr(r, "type")) != 0)
            pl_mlog(pl__s2s.m, PL_LOG_WARN,
                    "s2s out %s -> %s: ignoring an unsolicited db:verify", o->local, o->remote);
    } else {
        pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s out %s -> %s: ignoring <%s/> on an outgoing stream",
                o->local, o->remote, r->name);
    }
    pl_stanza_unref(st);
}

static void xml_close(void *ud)
{
    s2s_out *o = ud;
    if (o->state == OUT_CLOSING)
        return;
    if (o->state == OUT_READY) {
        pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "s2s out %s -> %s: closed by the remote server",
                o->local, o->remote);
        close_stream(o, NULL, NULL);
        return;
    }
    fatal(o, "remote-server-not-found", "the remote server closed the stream", NULL);
}

static void xml_error(void *ud, const char *condition, const char *text)
{
    s2s_out *o = ud;
    if (o->state == OUT_CLOSING)
        return;
    if (o->state == OUT_READY) {
        close_stream(o, condition, text);
        return;
    }
    fatal(o, "remote-server-not-found", text ? text : condition, condition);
}

/* ==== sending ==== */

/* Writes st on an authenticated stream or queues it (bounded). */
void pl__s2s_out_send(s2s_out *o, pl_stanza *st)
{
    o->last_active = pl_now_ms();
    if (o->state == OUT_READY && o->conn) {
        pl_xml_serialize(pl_stanza_root(st), pl_conn_out(o->conn), PL_NS_SERVER);
        pl_conn_queued(o->conn);
        return;
    }
    if (o->qlen >= pl__s2s.queue_max) {
        pl__s2s_bounce(st, "resource-constraint", "too many stanzas waiting for this domain");
        return;
    }
    if (o->qlen == o->qcap) {
        o->qcap = o->qcap ? o->qcap * 2 : 8;
        o->queue = pl_realloc(o->queue, sizeof *o->queue * (size_t)o->qcap);
    }
    o->queue[o->qlen++] = pl_stanza_ref(st);
}

/* Writes waiting verification requests if the stream can carry them. */
void pl__s2s_out_kick(s2s_out *o)
{
    if (o->state == OUT_DIALBACK || o->state == OUT_READY)
        send_pending_verifies(o);
}

/* ==== time ==== */

static void sweep_one(s2s_out *o, long long now, long long idle_ms)
{
    if (o->state == OUT_FAILED) {
        fail(o, o->fail_cond ? o->fail_cond : "remote-server-not-found", o->fail_text);
        return;
    }
    if (o->state == OUT_CLOSING)
        return;
    if (o->state == OUT_CONNECTING && o->try_deadline && now >= o->try_deadline && o->conn) {
        pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s out %s -> %s: connecting to %s timed out",
                o->local, o->remote, o->peer);
        o->saw_timeout = 1;
        o->try_deadline = 0;
        pl_conn_close(o->conn);
        return;
    }
    if (o->state != OUT_READY && o->setup_deadline && now >= o->setup_deadline) {
        fail(o, "remote-server-timeout", "the connection could not be set up in time");
        return;
    }
    if (o->state == OUT_READY && idle_ms > 0 && now - o->last_active >= idle_ms) {
        pl_mlog(pl__s2s.m, PL_LOG_INFO, "s2s out %s -> %s: closing idle stream", o->local,
                o->remote);
        close_stream(o, NULL, NULL);
    }
}

/* Runs the time-outs: finishes deferred failures, gives up slow
 * connects and negotiations, closes idle streams. */
void pl__s2s_out_sweep(long long now)
{
    pl_net_settings ns;
    pl_net_settings_get(&ns);
    s2s_out *o = all;
    while (o) {
        s2s_out *next = o->next;
        sweep_one(o, now, ns.s2s_idle_timeout * 1000);
        o = next;
    }
}

/* Server shutdown: each stream ends with </stream:stream>; queued
 * stanzas are dropped with it. */
void pl__s2s_out_stop_all(void)
{
    s2s_out *o = all;
    while (o) {
        s2s_out *next = o->next;
        if (o->state != OUT_CLOSING)
            close_stream(o, NULL, NULL);
        o = next;
    }
}

/* Module unload: connections are dropped without callbacks; queued
 * stanzas are released unanswered. */
void pl__s2s_out_close_all(void)
{
    while (all) {
        s2s_out *o = all;
        if (o->conn) {
            if (o->state == OUT_READY || o->state == OUT_DIALBACK || o->state == OUT_SASL)
                write_raw(o, "</stream:stream>");
            pl_conn_discard(o->conn);
            o->conn = NULL;
        }
        destroy(o);
    }
}

/* One `parleyctl s2s` line per outgoing stream. */
void pl__s2s_out_list(pl_buf *out)
{
    long long now = pl_now_ms();
    for (s2s_out *o = all; o; o = o->next) {
        const char *auth = o->auth == AUTH_SASL ? "sasl-external"
                         : o->auth == AUTH_DIALBACK ? "dialback" : "none";
        pl_buf_printf(out, "out %s %s %s %s %s %s idle=%llds queued=%d\n", o->local, o->remote,
                      auth, o->tls_info[0] ? o->tls_info : "plain",
                      o->peer[0] ? o->peer : "-", state_names[o->state],
                      (now - o->last_active) / 1000, o->qlen);
    }
}
