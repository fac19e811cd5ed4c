/* c2s/c2s.c: client streams (RFC 6120): headers and features, STARTTLS,
 * the hand-off to SASL and binding, stream errors (section 4.9), time-outs
 * and input rate limits, and the end of a session. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include "c2s/c2s.h"
#include "c2s/throttle.h"
#include "core/host.h"
#include "core/hooks.h"
#include "core/loop.h"
#include "core/server.h"
#include "router/router.h"
#include "router/sessions.h"
#include "sasl/scram.h"
#include "xml/parse.h"

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"

static void on_data(void *ud, const char *buf, size_t len);
static void on_tls_ready(void *ud);
static void on_closed(void *ud);
static const pl__conn_handler conn_handler = {
    .data = on_data, .tls_ready = on_tls_ready, .closed = on_closed,
};

static void xml_open(void *ud, const char *ns, const char *name, const char *content_ns,
                     const pl_attr *attrs);
static void xml_stanza(void *ud, pl_stanza *st);
static void xml_close(void *ud);
static void xml_error(void *ud, const char *condition, const char *text);
static const pl_xml_stream_cb xml_cb = { xml_open, xml_stanza, xml_close, xml_error };

static const pl_limits *limits(void)
{
    return &pl__server.config->limits;
}

/* ==== output helpers ==== */

void pl__c2s_send_raw(pl_session *s, const char *xml)
{
    if (s->state == PL__C2S_CLOSED)
        return;
    pl__conn_write(s->conn, xml, strlen(xml));
}

void pl__c2s_send(pl_session *s, pl_stanza *st)
{
    if (s->state == PL__C2S_CLOSED || s->closing)
        return;
    pl_xml_serialize(pl_stanza_root(st), pl__conn_out(s->conn), PL_NS_CLIENT);
    pl__conn_queued(s->conn);
}

static void send_header(pl_session *s, const char *from, const char *to)
{
    pl_buf *out = pl__conn_out(s->conn);
    unsigned char rnd[8];
    pl_random(rnd, sizeof rnd);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        s->stream_id[2 * i] = hex[rnd[i] >> 4];
        s->stream_id[2 * i + 1] = hex[rnd[i] & 15];
    }
    s->stream_id[16] = '\0';
    pl_buf_puts(out, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' id='");
    pl_buf_puts(out, s->stream_id);
    if (from) {
        pl_buf_puts(out, "' from='");
        pl_xml_escape(out, from, strlen(from), 1);
    }
    if (to) {
        pl_buf_puts(out, "' to='");
        pl_xml_escape(out, to, strlen(to), 1);
    }
    pl_buf_puts(out, "' version='1.0' xml:lang='en'>");
    pl__conn_queued(s->conn);
    s->header_sent = 1;
}

/* ==== ending a session ==== */

static void end_session(pl_session *s)
{
    if (s->user) {
        s->closing = 1;
        pl_event ev = { .name = "session/closed", .origin = s, .host = s->host, .from = s->jid };
        pl__hooks_fire(&s->host->hooks, PL__EV_SESSION_CLOSED, &ev);
        pl__sessions_unbind(s);
    }
    s->available = 0;
    if (s->timer)
        event_del(s->timer);
    pl__sasl_free(s);
}

void pl__c2s_close(pl_session *s, const char *condition, const char *text)
{
    if (s->state == PL__C2S_CLOSED)
        return;
    if (s->state == PL__C2S_TLS) {
        /* mid-handshake: there is no stream to write to */
        end_session(s);
        s->state = PL__C2S_CLOSED;
        pl__conn_close(s->conn);
        return;
    }
    if (!s->header_sent)
        send_header(s, s->host ? s->host->name : NULL, NULL);
    pl_buf *out = pl__conn_out(s->conn);
    if (condition) {
        pl_log(PL_LOG_INFO, "c2s %s (%s): stream error %s%s%s", pl__conn_peer(s->conn),
               s->user ? s->jid->full : "unbound", condition, text ? ": " : "", text ? text : "");
        pl_buf_printf(out, "<stream:error><%s xmlns='" PL_NS_STREAMS "'/>", condition);
        if (text) {
            pl_buf_puts(out, "<text xmlns='" PL_NS_STREAMS "'>");
            pl_xml_escape(out, text, strlen(text), 0);
            pl_buf_puts(out, "</text>");
        }
        pl_buf_puts(out, "</stream:error>");
    }
    if (s->header_sent)
        pl_buf_puts(out, "</stream:stream>");
    pl__conn_queued(s->conn);
    end_session(s);
    s->state = PL__C2S_CLOSED;
    pl__conn_close(s->conn);
}

/* ==== idle trimming ==== */

#define IDLE_TRIM_MS 1000

struct trim_ctx {
    long long now;
    int trimmed;
};

static void trim_one(pl_session *s, void *ud)
{
    struct trim_ctx *t = ud;
    if (s->state == PL__C2S_CLOSED || s->state == PL__C2S_TLS || s->trimmed
        || t->now - s->last_input < IDLE_TRIM_MS)
        return;
    pl_xml_stream_trim(s->xs);
    pl__conn_trim(s->conn);
    s->trimmed = 1;
    t->trimmed++;
}

/* The registry is walked in SWEEP_STEPS steps per IDLE_TRIM_MS, so that
 * no step holds the loop for long however many sessions there are (a
 * step looks at a tenth of them and trims those that went quiet); the
 * once-a-second work runs on its own timer. */
#define SWEEP_STEPS 10

static struct event *sweeper, *second;
static uint32_t sweep_next;     /* registry slot the next step starts at */
static int trimmed_this_second;

static void sweep_step(evutil_socket_t fd, short what, void *arg)
{
    struct trim_ctx t = { pl_now_ms(), 0 };
    uint32_t n = pl__sessions_slot_count() / SWEEP_STEPS + 1;
    sweep_next = pl__sessions_each_from(sweep_next, n, trim_one, &t);
    trimmed_this_second += t.trimmed;
}

static void each_second(evutil_socket_t fd, short what, void *arg)
{
    if (trimmed_this_second)
        pl_debug("c2s: released the parsers of %d idle sessions", trimmed_this_second);
    pl__stanza_parse_trim();
    pl_xml_stream_shrink_cache();
    /* hand the pages freed by many idle sessions back to the system */
    if (trimmed_this_second >= 64)
        malloc_trim(0);
    trimmed_this_second = 0;
}

void pl__c2s_init(void)
{
    if (sweeper)
        return;
    sweeper = event_new(pl__loop_base(), -1, EV_PERSIST, sweep_step, NULL);
    struct timeval step = { 0, IDLE_TRIM_MS * 1000 / SWEEP_STEPS };
    event_add(sweeper, &step);
    second = event_new(pl__loop_base(), -1, EV_PERSIST, each_second, NULL);
    struct timeval tv = { IDLE_TRIM_MS / 1000, 0 };
    event_add(second, &tv);
}

static void close_each(pl_session *s, void *ud)
{
    pl__c2s_close(s, "system-shutdown", NULL);
}

void pl__c2s_shutdown_all(void)
{
    if (sweeper) {
        event_free(sweeper);
        event_free(second);
        sweeper = second = NULL;
    }
    pl__sessions_each_raw(close_each, NULL);
}

/* ==== connection events ==== */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    pl_session *s = arg;
    if (!s->user)
        pl__c2s_close(s, "connection-timeout", "authentication took too long");
    else
        pl__c2s_close(s, "connection-timeout", "idle for too long");
}

/* Arms the session's timeout, or frees the timer when there is none
 * (the default for bound sessions: no idle timeout), so an idle session
 * does not keep an event it will never use. */
static void arm_timer(pl_session *s, long long seconds)
{
    if (seconds <= 0) {
        if (s->timer)
            event_free(s->timer);
        s->timer = NULL;
        return;
    }
    if (!s->timer)
        s->timer = evtimer_new(pl__loop_base(), on_timer, s);
    struct timeval tv = { (time_t)seconds, 0 };
    event_add(s->timer, &tv);
}

void pl__c2s_accept(int fd, const char *peer, int direct_tls)
{
    pl_session *s = pl_calloc(1, sizeof *s);
    s->direct_tls = direct_tls ? 1 : 0;
    s->connected_at = time(NULL);
    s->state = PL__C2S_HEADER;
    pl__sessions_register(s);
    s->conn = pl__conn_new(fd, peer, &conn_handler, s);
    s->xs = pl_xml_stream_new(&xml_cb, s, PL_NS_CLIENT, (size_t)limits()->max_stanza_size);
    arm_timer(s, limits()->unauth_timeout);
    s->rate_tokens = limits()->c2s_burst;
    s->rate_stamp = s->last_input = pl_now_ms();
    pl_debug("c2s %s: connected%s", peer, direct_tls ? " (direct TLS)" : "");
    if (direct_tls) {
        s->state = PL__C2S_TLS;
        pl__conn_tls_accept(s->conn, pl__hosts ? pl__hosts->creds : NULL, pl__host_sni, NULL);
    }
}

/* Token bucket over the bytes read; pauses reading when it runs dry. */
static void rate_limit(pl_session *s, size_t len)
{
    long long rate = limits()->c2s_rate;
    if (rate <= 0)
        return;
    long long now = pl_now_ms();
    s->rate_tokens += (now - s->rate_stamp) * rate / 1000;
    s->rate_stamp = now;
    if (s->rate_tokens > limits()->c2s_burst)
        s->rate_tokens = limits()->c2s_burst;
    s->rate_tokens -= (long long)len;
    if (s->rate_tokens < 0)
        pl__conn_pause(s->conn, (unsigned)(-s->rate_tokens * 1000 / rate) + 1);
}

static void on_data(void *ud, const char *buf, size_t len)
{
    pl_session *s = ud;
    if (s->state == PL__C2S_CLOSED)
        return;
    rate_limit(s, len);
    s->last_input = pl_now_ms();
    s->trimmed = 0;
    if (s->user && limits()->c2s_idle_timeout > 0)
        arm_timer(s, limits()->c2s_idle_timeout);
    pl_xml_stream_feed(s->xs, buf, len);
}

static void on_tls_ready(void *ud)
{
    pl_session *s = ud;
    s->secure = 1;
    s->state = PL__C2S_HEADER;
    s->header_sent = 0;
    pl_debug("c2s %s: TLS established (%s)", pl__conn_peer(s->conn),
             pl_tls_version(pl__conn_tls(s->conn)));
}

static void on_closed(void *ud)
{
    pl_session *s = ud;
    if (s->state != PL__C2S_CLOSED) {
        pl_debug("c2s %s: connection lost", pl__conn_peer(s->conn));
        end_session(s);
        s->state = PL__C2S_CLOSED;
    }
    pl_xml_stream_free(s->xs);
    if (s->timer)
        event_free(s->timer);
    pl__sessions_free_data(s);
    pl__sessions_unregister(s);
    pl_stanza_unref(s->presence);
    pl_jid_free(s->jid);
    pl_free(s->username);
    pl_free(s);
}

/* ==== stream header and features ==== */

static void append_children(pl_buf *out, pl_node *parent)
{
    for (pl_node *c = parent->first; c; c = c->next)
        pl_xml_serialize(c, out, PL_NS_CLIENT);
}

static void send_features(pl_session *s)
{
    pl_stanza *st = pl_stanza_new("features", PL_NS_STREAM);
    pl_node *f = pl_stanza_root(st);
    if (!s->secure) {
        pl_node *tls = pl_node_add(st, f, "starttls", NS_TLS);
        if (pl__server.config->c2s_require_tls)
            pl_node_add(st, tls, "required", NULL);
        else
            pl__c2s_features_auth(s, st, f);
    } else if (!s->authenticated) {
        pl__c2s_features_auth(s, st, f);
    } else {
        pl_node_add(st, f, "bind", "urn:ietf:params:xml:ns:xmpp-bind");
        pl_node *sess = pl_node_add(st, f, "session", "urn:ietf:params:xml:ns:xmpp-session");
        pl_node_add(st, sess, "optional", NULL);
        pl__host_stream_features(s->host, s, st, f);
    }
    pl_buf *out = pl__conn_out(s->conn);
    pl_buf_puts(out, "<stream:features>");
    append_children(out, f);
    pl_buf_puts(out, "</stream:features>");
    pl__conn_queued(s->conn);
    pl_stanza_unref(st);
}

static const char *attr_of(const pl_attr *a, const char *name)
{
    for (; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->value;
    return NULL;
}

static void xml_open(void *ud, const char *ns, const char *name, const char *content_ns,
                     const pl_attr *attrs)
{
    pl_session *s = ud;
    const char *to = attr_of(attrs, "to");
    const char *version = attr_of(attrs, "version");
    const char *from = attr_of(attrs, "from");
    char host[1024] = "";
    if (to && pl_jid_nameprep(to, host, sizeof host) != 0)
        host[0] = '\0';
    pl_host *h = host[0] ? pl_host_find(host) : NULL;
    pl_jid *fj = from ? pl_jid_parse(from) : NULL;
    send_header(s, h ? h->name : NULL, fj ? fj->full : NULL);
    pl_jid_free(fj);
    if (strcmp(ns, PL_NS_STREAM) != 0 || strcmp(name, "stream") != 0) {
        pl__c2s_close(s, "invalid-namespace", NULL);
        return;
    }
    if (!content_ns || strcmp(content_ns, PL_NS_CLIENT) != 0) {
        pl__c2s_close(s, "invalid-namespace", "the content namespace must be jabber:client");
        return;
    }
    if (!version || version[0] != '1' || version[1] != '.') {
        pl__c2s_close(s, "unsupported-version", "this server speaks version 1.0");
        return;
    }
    if (!h || (s->host && s->host != h)) {
        pl__c2s_close(s, "host-unknown", NULL);
        return;
    }
    s->host = h;
    s->state = s->authenticated ? PL__C2S_BIND : PL__C2S_AUTH;
    send_features(s);
}

void pl__c2s_bound(pl_session *s)
{
    arm_timer(s, limits()->c2s_idle_timeout);
    s->state = PL__C2S_ACTIVE;
    pl_event ev = { .name = "session/bound", .origin = s, .host = s->host, .from = s->jid };
    pl__hooks_fire(&s->host->hooks, PL__EV_SESSION_BOUND, &ev);
}

void pl__c2s_restart_stream(pl_session *s)
{
    pl_xml_stream_restart(s->xs, 0);
    s->state = PL__C2S_HEADER;
    s->header_sent = 0;
}

/* ==== stanzas ==== */

static void starttls(pl_session *s)
{
    if (s->secure || s->state != PL__C2S_AUTH) {
        pl__c2s_send_raw(s, "<failure xmlns='" NS_TLS "'/>");
        pl__c2s_close(s, NULL, NULL);
        return;
    }
    pl__c2s_send_raw(s, "<proceed xmlns='" NS_TLS "'/>");
    pl_xml_stream_restart(s->xs, 1);
    s->state = PL__C2S_TLS;
    pl__conn_starttls(s->conn, s->host->creds, pl__host_sni, NULL);
}

static int is_stanza_name(const char *n)
{
    return !strcmp(n, "message") || !strcmp(n, "presence") || !strcmp(n, "iq");
}

static void xml_stanza(void *ud, pl_stanza *st)
{
    pl_session *s = ud;
    pl_node *r = pl_stanza_root(st);
    if (s->state == PL__C2S_CLOSED || s->state == PL__C2S_TLS) {
        pl_stanza_unref(st);
        return;
    }
    if (strcmp(r->ns, NS_TLS) == 0 && strcmp(r->name, "starttls") == 0) {
        starttls(s);
    } else if (strcmp(r->ns, NS_SASL) == 0) {
        pl__sasl_handle(s, st);
    } else if (strcmp(r->ns, PL_NS_CLIENT) == 0 && is_stanza_name(r->name)) {
        if (!s->authenticated || s->state == PL__C2S_SASL_WAIT)
            pl__c2s_close(s, "not-authorized", NULL);
        else if (pl__bind_handle(s, st))
            ;
        else if (s->state != PL__C2S_ACTIVE)
            pl__c2s_close(s, "not-authorized", "bind a resource first");
        else
            pl__router_from_client(s, st);
    } else {
        pl__c2s_close(s, "unsupported-stanza-type", NULL);
    }
    pl_stanza_unref(st);
}

static void xml_close(void *ud)
{
    pl_session *s = ud;
    pl__c2s_close(s, NULL, NULL);
}

static void xml_error(void *ud, const char *condition, const char *text)
{
    pl_session *s = ud;
    pl__c2s_close(s, condition, text);
}
