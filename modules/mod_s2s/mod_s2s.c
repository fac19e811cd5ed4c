/* modules/mod_s2s/mod_s2s.c: federation (RFC 6120 server-to-server, XEP-0220
 * Server Dialback with XEP-0185 keys, XEP-0178 SASL EXTERNAL, XEP-0368
 * direct TLS), as one server-wide module. It takes stanzas the router
 * sends to remote domains ("route/remote") and queues them on the
 * outgoing stream of their (local, remote) domain pair; it takes the s2s
 * listeners for incoming streams, whose validated stanzas go back to the
 * router through pl_route; and it answers `parleyctl s2s` ("ctl/s2s").
 * Streams are in s2s_out.c and s2s_in.c, dialback in dialback.c, policy
 * in s2s_auth.c. */
#include <stdio.h>
#include <string.h>
#include "s2s.h"

s2s_globals pl__s2s;

static char *routes_text, *policies_text;   /* as last parsed */

/* ==== helpers shared by the module's files ==== */

/* 32 random hex digits for a stream header we send. */
void pl__s2s_stream_id(char out[33])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char rnd[16];
    pl_net_random(rnd, sizeof rnd);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[rnd[i] >> 4];
        out[2 * i + 1] = digits[rnd[i] & 15];
    }
    out[32] = '\0';
}

/* Routes an error reply for st to its sender; pl_reply_error skips
 * errors and IQ results. */
void pl__s2s_bounce(pl_stanza *st, const char *condition, const char *text)
{
    pl_event ev;
    memset(&ev, 0, sizeof ev);
    ev.stanza = st;
    pl_reply_error(&ev, NULL, condition, text);
}

/* Appends a stream error (RFC 6120 4.9) with optional text. */
void pl__s2s_stream_error(pl_buf *out, const char *condition, const char *text)
{
    pl_buf_printf(out, "<stream:error><%s xmlns='" PL_NS_STREAMS "'/>", condition);
    if (text && *text) {
        pl_buf_puts(out, "<text xmlns='" PL_NS_STREAMS "'>");
        pl_xml_escape(out, text, strlen(text), 0);
        pl_buf_puts(out, "</text>");
    }
    pl_buf_puts(out, "</stream:error>");
}

/* ==== options ==== */

static const pl_option s2s_options[] = {
    { "connect_timeout", PL_OPT_DURATION, "10s", 1, 300,
      "time allowed for one TCP connection attempt to a remote server" },
    { "queue_max", PL_OPT_INT, "1000", 1, 1000000,
      "stanzas queued per domain pair while its stream is being set up" },
    { "dialback", PL_OPT_BOOL, "yes", 0, 0,
      "allow Server Dialback (XEP-0220) when a peer has no valid certificate" },
    { "require_valid_cert", PL_OPT_BOOL, "no", 0, 0,
      "require a valid certificate from every peer (no dialback)" },
    { "routes", PL_OPT_STRING, "", 0, 0,
      "DOMAIN=HOST[:PORT][/tls] entries that bypass DNS for those domains" },
    { "policies", PL_OPT_STRING, "", 0, 0,
      "DOMAIN=require-cert|dialback|block entries overriding the defaults" },
    { "dns_servers", PL_OPT_STRING, "", 0, 0,
      "DNS servers to ask (IP[:PORT],...) instead of /etc/resolv.conf" },
    { .name = NULL },
};

/* Reads the options into pl__s2s; the lists are parsed again only when
 * their text changed (a config reload). 0, or -1 with err set (the old
 * values then stay). */
static int read_options(pl_module *m, char *err, size_t errlen)
{
    const char *rt = pl_option_str(m, "routes"), *pt = pl_option_str(m, "policies");
    if (!routes_text || strcmp(rt, routes_text) != 0) {
        s2s_route *r;
        if (pl__s2s_parse_routes(rt, &r, err, errlen) != 0)
            return -1;
        pl__s2s_free_routes(pl__s2s.routes);
        pl__s2s.routes = r;
        pl_free(routes_text);
        routes_text = pl_strdup(rt);
    }
    if (!policies_text || strcmp(pt, policies_text) != 0) {
        s2s_rule *r;
        if (pl__s2s_parse_rules(pt, &r, err, errlen) != 0)
            return -1;
        pl__s2s_free_rules(pl__s2s.rules);
        pl__s2s.rules = r;
        pl_free(policies_text);
        policies_text = pl_strdup(pt);
    }
    pl__s2s.connect_timeout_ms = pl_option_int(m, "connect_timeout") * 1000;
    pl__s2s.queue_max = pl_option_int(m, "queue_max");
    pl__s2s.dialback = pl_option_bool(m, "dialback");
    pl__s2s.require_valid_cert = pl_option_bool(m, "require_valid_cert");
    return 0;
}

/* ==== events ==== */

/* route/remote: a stanza for a domain not served here. Only stanzas from
 * a local domain leave; they go to their pair's outgoing stream. */
static int on_route_remote(pl_event *ev, void *ud)
{
    pl_stanza *st = ev->stanza;
    if (!ev->from || !ev->to || !pl_host_find(ev->from->domain)) {
        pl_mlog(pl__s2s.m, PL_LOG_DEBUG, "dropping a stanza to %s: its sender is not local",
                ev->to ? ev->to->domain : "?");
        return PL_HANDLED;
    }
    if (pl__s2s_blocked(ev->to->domain)) {
        pl__s2s_bounce(st, "remote-server-not-found", "federation with this domain is disabled");
        return PL_HANDLED;
    }
    pl__s2s_out_send(pl__s2s_out_get(ev->from->domain, ev->to->domain), st);
    return PL_HANDLED;
}

/* ctl/s2s: ev->data is the pl_buf of the reply; one line per stream (per
 * domain pair on incoming streams). */
static int on_ctl(pl_event *ev, void *ud)
{
    pl_buf *out = ev->data;
    if (!out)
        return PL_PASS;
    pl__s2s_out_list(out);
    pl__s2s_in_list(out);
    return PL_HANDLED;
}

/* server/stopping: the server is shutting down; streams close now so the
 * final flush writes their ends. */
static int on_stopping(pl_event *ev, void *ud)
{
    pl_unlisten(pl__s2s.m, PL_NET_S2S);
    pl_unlisten(pl__s2s.m, PL_NET_S2S_TLS);
    pl__s2s_out_stop_all();
    pl__s2s_in_stop_all();
    return PL_PASS;
}

static void sweep(void *ud)
{
    static char last_err[256];
    char err[256];
    if (read_options(pl__s2s.m, err, sizeof err) != 0) {
        /* once per bad value, not every sweep */
        if (strcmp(err, last_err) != 0)
            pl_mlog(pl__s2s.m, PL_LOG_ERROR, "keeping the previous options: %s", err);
        snprintf(last_err, sizeof last_err, "%s", err);
    } else {
        last_err[0] = '\0';
    }
    long long now = pl_now_ms();
    pl__s2s_out_sweep(now);
    pl__s2s_in_sweep(now);
}

/* ==== life cycle ==== */

static void make_secret(void)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char rnd[32];
    pl_net_random(rnd, sizeof rnd);
    for (int i = 0; i < 32; i++) {
        pl__s2s.secret[2 * i] = digits[rnd[i] >> 4];
        pl__s2s.secret[2 * i + 1] = digits[rnd[i] & 15];
    }
    pl__s2s.secret[64] = '\0';
}

static void release_config(void)
{
    pl__s2s_free_routes(pl__s2s.routes);
    pl__s2s_free_rules(pl__s2s.rules);
    pl__s2s.routes = NULL;
    pl__s2s.rules = NULL;
    pl_free(routes_text);
    pl_free(policies_text);
    routes_text = policies_text = NULL;
}

static int s2s_load(pl_module *m)
{
    char err[512];
    memset(&pl__s2s, 0, sizeof pl__s2s);
    pl__s2s.m = m;
    make_secret();
    if (read_options(m, err, sizeof err) != 0) {
        pl_mlog(m, PL_LOG_ERROR, "%s", err);
        release_config();
        return PL_EINVAL;
    }
    const char *dns = pl_option_str(m, "dns_servers");
    pl__s2s.resolver = pl_resolver_new(m, dns, 3000, err, sizeof err);
    if (!pl__s2s.resolver) {
        pl_mlog(m, PL_LOG_ERROR, "%s", err);
        release_config();
        return PL_EINVAL;
    }
    int rc = pl_listen(m, PL_NET_S2S, pl__s2s_in_accept, NULL);
    if (rc == PL_OK)
        rc = pl_listen(m, PL_NET_S2S_TLS, pl__s2s_in_accept, NULL);
    if (rc != PL_OK) {
        pl_mlog(m, PL_LOG_ERROR, "cannot take the s2s listeners (error %d)", rc);
        pl_unlisten(m, PL_NET_S2S);
        pl_resolver_free(pl__s2s.resolver);
        release_config();
        return rc;
    }
    if (pl_listen_count(PL_NET_S2S) + pl_listen_count(PL_NET_S2S_TLS) == 0)
        pl_mlog(m, PL_LOG_NOTICE, "no `listen s2s` line: other servers cannot connect here");
    pl_hook_global(m, "route/remote", on_route_remote, NULL, 0);
    pl_hook_global(m, "ctl/s2s", on_ctl, NULL, 0);
    pl_hook_global(m, "server/stopping", on_stopping, NULL, 0);
    pl_timer_add(m, 500, 1, sweep, NULL);
    return PL_OK;
}

static void s2s_unload(pl_module *m)
{
    pl_unlisten(m, PL_NET_S2S);
    pl_unlisten(m, PL_NET_S2S_TLS);
    pl__s2s_out_close_all();
    pl__s2s_in_close_all();
    pl__s2s_db_free_all();
    pl_resolver_free(pl__s2s.resolver);
    pl__s2s.resolver = NULL;
    release_config();
}

/* The dialback secret survives a reload, so keys handed out before it
 * still verify. */
static void *s2s_save(pl_module *m)
{
    return pl_strdup(pl__s2s.secret);
}

static void s2s_restore(pl_module *m, void *state)
{
    char *secret = state;
    if (secret && strlen(secret) == 64)
        memcpy(pl__s2s.secret, secret, 65);
    pl_free(secret);
}

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "s2s",
    .description = "federation: server-to-server streams with TLS, SASL EXTERNAL and "
                   "Server Dialback",
    .flags = PL_MODULE_GLOBAL,
    .options = s2s_options,
    .load = s2s_load,
    .unload = s2s_unload,
    .save = s2s_save,
    .restore = s2s_restore,
};
