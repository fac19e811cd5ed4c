/* router/router.c: routing of stanzas (RFC 6120 section 10, RFC 6121
 * section 8). Classifies each stanza by target and fires the matching
 * event; the core's fallbacks (priority -1) deliver to sessions and send
 * the standard errors. doc/routing.md is the one-page table of the rules. */
#include <stdlib.h>
#include <string.h>
#include "c2s/c2s.h"
#include "core/host.h"
#include "core/hooks.h"
#include "router/router.h"
#include "router/sessions.h"

static int EV_IQ_HOST = -1, EV_IQ_BARE, EV_IQ_SELF;

static const char *type_of(const pl_stanza *st)
{
    const char *t = pl_node_attr(pl_stanza_root(st), "type");
    return t ? t : "";
}

static int is_type(const pl_stanza *st, const char *t)
{
    return strcmp(type_of(st), t) == 0;
}

void pl__router_deliver(pl_session *s, pl_stanza *st)
{
    pl__c2s_send(s, st);
}

/* ==== message fallbacks ==== */

/* Available resources of the account with non-negative priority; with
 * best_only, only those sharing the highest priority. */
static int pick(pl_host *h, const char *node, int best_only, pl_session **out, int max)
{
    pl__user *u = pl__sessions_user(h, node);
    if (!u)
        return 0;
    int best = -1;
    for (pl_session *s = u->sessions; s; s = s->next_res)
        if (s->available && !s->closing && s->priority >= 0 && s->priority > best)
            best = s->priority;
    int n = 0;
    for (pl_session *s = u->sessions; s && n < max; s = s->next_res)
        if (s->available && !s->closing && s->priority >= 0 && (!best_only || s->priority == best))
            out[n++] = s;
    return n;
}

static int message_bare(pl_event *ev, void *ud)
{
    pl_stanza *st = ev->stanza;
    const char *type = type_of(st);
    if (strcmp(type, "error") == 0)
        return PL_HANDLED;
    if (strcmp(type, "groupchat") == 0) {
        pl_reply_error(ev, "cancel", "service-unavailable", NULL);
        return PL_HANDLED;
    }
    pl_session *to[64];
    int headline = strcmp(type, "headline") == 0;
    int n = pick(ev->host, ev->to->node, !headline, to, 64);
    for (int i = 0; i < n; i++)
        pl__router_deliver(to[i], st);
    if (n || headline)
        return PL_HANDLED;
    ev->name = "message/offline";
    int rc = pl__hooks_fire(&ev->host->hooks, PL__EV_MESSAGE_OFFLINE, ev);
    if (rc == PL_PASS)
        pl_reply_error(ev, "cancel", "service-unavailable", NULL);
    else if (rc == PL_ERROR)
        pl_reply_error(ev, ev->error.type, ev->error.condition, ev->error.text);
    return PL_HANDLED;
}

static int message_full(pl_event *ev, void *ud)
{
    pl_session *s = pl_session_find(ev->host, ev->to->node, ev->to->resource);
    if (s && !s->closing) {
        pl__router_deliver(s, ev->stanza);
        return PL_HANDLED;
    }
    /* RFC 6121 8.5.3.2.1: no such resource */
    const char *type = type_of(ev->stanza);
    if (strcmp(type, "error") == 0 || strcmp(type, "headline") == 0)
        return PL_HANDLED;
    if (strcmp(type, "groupchat") == 0) {
        pl_reply_error(ev, "cancel", "service-unavailable", NULL);
        return PL_HANDLED;
    }
    ev->name = "message/bare";
    int rc = pl__hooks_fire(&ev->host->hooks, PL__EV_MESSAGE_BARE, ev);
    if (rc == PL_ERROR)
        pl_reply_error(ev, ev->error.type, ev->error.condition, ev->error.text);
    return PL_HANDLED;
}

static int message_host(pl_event *ev, void *ud)
{
    if (!is_type(ev->stanza, "error"))
        pl_reply_error(ev, "cancel", "service-unavailable", NULL);
    return PL_HANDLED;
}

/* ==== presence fallbacks ==== */

static int is_subscription(const char *type)
{
    return strcmp(type, "subscribe") == 0 || strcmp(type, "subscribed") == 0
        || strcmp(type, "unsubscribe") == 0 || strcmp(type, "unsubscribed") == 0;
}

static int presence_bare(pl_event *ev, void *ud)
{
    const char *type = type_of(ev->stanza);
    /* directed available/unavailable presence, and presence errors (a
     * bounced subscription, say), go to every available resource;
     * subscriptions and probes belong to the presence module */
    if (*type && strcmp(type, "unavailable") != 0 && strcmp(type, "error") != 0)
        return PL_HANDLED;
    pl__user *u = pl__sessions_user(ev->host, ev->to->node);
    for (pl_session *s = u ? u->sessions : NULL; s; s = s->next_res)
        if (s->available && !s->closing)
            pl__router_deliver(s, ev->stanza);
    return PL_HANDLED;
}

static int presence_full(pl_event *ev, void *ud)
{
    pl_session *s = pl_session_find(ev->host, ev->to->node, ev->to->resource);
    if (s && !s->closing) {
        pl__router_deliver(s, ev->stanza);
        return PL_HANDLED;
    }
    if (is_subscription(type_of(ev->stanza))) {
        ev->name = "presence/bare";
        pl__hooks_fire(&ev->host->hooks, PL__EV_PRESENCE_BARE, ev);
    }
    return PL_HANDLED;
}

static int drop(pl_event *ev, void *ud)
{
    return PL_HANDLED;
}

/* ==== IQ ==== */

static int iq_full(pl_event *ev, void *ud)
{
    pl_session *s = pl_session_find(ev->host, ev->to->node, ev->to->resource);
    if (s && !s->closing) {
        pl__router_deliver(s, ev->stanza);
        return PL_HANDLED;
    }
    if (is_type(ev->stanza, "get") || is_type(ev->stanza, "set"))
        pl_reply_error(ev, "cancel", "service-unavailable", NULL);
    return PL_HANDLED;
}

/* An IQ the server handles (to the host, the sender's account or another
 * account's bare JID): the event chain first, then the IQ table. */
static void iq_local(pl_event *ev)
{
    pl_stanza *st = ev->stanza;
    int get = is_type(st, "get"), set = is_type(st, "set");
    if (!get && !set)
        return;   /* results and errors to the server: nothing waits for them */
    int id = ev->target == PL_TO_HOST ? EV_IQ_HOST : ev->target == PL_TO_SELF ? EV_IQ_SELF : EV_IQ_BARE;
    ev->name = pl__event_name(id);
    int rc = pl__hooks_fire(&ev->host->hooks, id, ev);
    if (rc == PL_PASS) {
        pl_node *payload = pl_node_first_element(pl_stanza_root(st));
        pl__iqh *q = payload ? pl__host_iq(ev->host, get ? PL_IQ_GET : PL_IQ_SET, ev->target, payload) : NULL;
        if (!q) {
            pl_reply_error(ev, "cancel", "service-unavailable", NULL);
            return;
        }
        ev->name = q->name;
        rc = q->fn(ev, q->ud);
        if (rc == PL_PASS) {
            pl_reply_error(ev, "cancel", "service-unavailable", NULL);
            return;
        }
    }
    if (rc == PL_ERROR)
        pl_reply_error(ev, ev->error.type ? ev->error.type : pl_error_type_of(ev->error.condition),
                       ev->error.condition ? ev->error.condition : "undefined-condition",
                       ev->error.text);
}

/* ==== classification ==== */

/* Sets the target and host of ev from its 'to'; returns 0 for a local
 * destination, 1 for a remote one. */
static int classify(pl_event *ev, pl_session *origin)
{
    const pl_jid *to = ev->to, *from = ev->from;
    if (!to) {
        ev->host = origin ? origin->host : pl_host_find(from->domain);
        ev->target = PL_TO_SELF;
        return 0;
    }
    ev->host = pl_host_find(to->domain);
    if (!ev->host)
        return 1;
    if (!to->node)
        ev->target = PL_TO_HOST;
    else if (to->resource)
        ev->target = PL_TO_FULL;
    else if (from && from->node && pl_jid_bare_eq(from, to))
        ev->target = PL_TO_SELF;
    else
        ev->target = PL_TO_BARE;
    return 0;
}

static void route(pl_stanza *st, pl_session *origin, const pl_jid *from, const pl_jid *to)
{
    pl_event ev = { 0 };
    ev.stanza = st;
    ev.origin = origin;
    ev.from = from;
    ev.to = to;
    const char *name = pl_stanza_root(st)->name;
    int remote = classify(&ev, origin);
    if (origin) {
        /* outbound filters run on the sender's host */
        pl_host *dest = ev.host;
        ev.host = origin->host;
        int pre = name[0] == 'm' ? PL__EV_PRE_MESSAGE : name[0] == 'p' ? PL__EV_PRE_PRESENCE : PL__EV_PRE_IQ;
        ev.name = pl__event_name(pre);
        int rc = pl__hooks_fire(&origin->host->hooks, pre, &ev);
        if (rc == PL_ERROR)
            pl_reply_error(&ev, ev.error.type, ev.error.condition ? ev.error.condition
                                                                  : "undefined-condition",
                           ev.error.text);
        if (rc != PL_PASS)
            return;
        ev.host = dest;
    }
    if (remote) {
        ev.name = "route/remote";
        if (pl__hooks_fire(&pl__global_hooks, PL__EV_ROUTE_REMOTE, &ev) == PL_PASS)
            pl_reply_error(&ev, "cancel", "remote-server-not-found", NULL);
        return;
    }
    if (!ev.host)
        return;
    pl__hooks *t = &ev.host->hooks;
    int id;
    switch (name[0]) {
    case 'm':
        id = ev.target == PL_TO_FULL ? PL__EV_MESSAGE_FULL
           : ev.target == PL_TO_HOST ? PL__EV_MESSAGE_HOST : PL__EV_MESSAGE_BARE;
        break;
    case 'p':
        id = ev.target == PL_TO_FULL ? PL__EV_PRESENCE_FULL
           : ev.target == PL_TO_HOST ? PL__EV_PRESENCE_HOST
           : !to ? PL__EV_PRESENCE_SELF : PL__EV_PRESENCE_BARE;
        break;
    default:
        if (ev.target != PL_TO_FULL) {
            iq_local(&ev);
            return;
        }
        id = PL__EV_IQ_FULL;
        break;
    }
    ev.name = pl__event_name(id);
    int rc = pl__hooks_fire(t, id, &ev);
    if (rc == PL_ERROR)
        pl_reply_error(&ev, ev.error.type, ev.error.condition ? ev.error.condition
                                                              : "undefined-condition",
                       ev.error.text);
}

void pl_route(pl_stanza *st)
{
    pl_node *r = pl_stanza_root(st);
    const char *f = pl_node_attr(r, "from"), *t = pl_node_attr(r, "to");
    pl_jid *from = f ? pl_jid_parse(f) : NULL;
    pl_jid *to = t ? pl_jid_parse(t) : NULL;
    if (!from || !to) {
        pl_log(PL_LOG_WARN, "router: dropping a stanza with a missing or invalid from/to");
    } else {
        pl_stanza_ref(st);
        route(st, NULL, from, to);
        pl_stanza_unref(st);
    }
    pl_jid_free(from);
    pl_jid_free(to);
}

/* ==== stanzas from clients ==== */

static void bad_request(pl_session *s, pl_stanza *st, const char *cond, const char *text)
{
    pl_event ev = { .stanza = st, .origin = s, .host = s->host, .from = s->jid };
    pl_reply_error(&ev, NULL, cond, text);
}

/* Records initial, updated and unavailable presence on the session. */
static void track_presence(pl_session *s, pl_stanza *st)
{
    const char *type = type_of(st);
    if (!*type) {
        int prio = 0;
        pl_node *p = pl_node_child(pl_stanza_root(st), "priority", PL_NS_CLIENT);
        if (p) {
            char *end;
            long v = strtol(pl_node_text(st, p), &end, 10);
            if (*end == '\0' && v >= -128 && v <= 127)
                prio = (int)v;
        }
        int first = !s->available;
        s->available = 1;
        s->priority = prio;
        pl_stanza_unref(s->presence);
        /* kept for the session's lifetime: a copy sized to its content */
        s->presence = pl_stanza_copy(st);
        if (first) {
            pl_event ev = { .name = "session/available", .stanza = st, .origin = s,
                            .host = s->host, .from = s->jid };
            pl__hooks_fire(&s->host->hooks, PL__EV_SESSION_AVAILABLE, &ev);
        }
    } else if (strcmp(type, "unavailable") == 0) {
        s->available = 0;
        s->priority = 0;
        pl_stanza_unref(s->presence);
        s->presence = NULL;
    }
}

void pl__router_from_client(pl_session *s, pl_stanza *st)
{
    pl_node *r = pl_stanza_root(st);
    /* RFC 6120 8.1.2.1: the server adds 'from', or overrides what the
     * client put there, with the session's full JID */
    pl_node_set_attr(st, r, "from", s->jid->full);
    const char *type = pl_node_attr(r, "type");
    if (r->name[0] == 'i') {
        int getset = type && (!strcmp(type, "get") || !strcmp(type, "set"));
        if (!type || (!getset && strcmp(type, "result") != 0 && strcmp(type, "error") != 0)) {
            bad_request(s, st, "bad-request", "invalid or missing IQ type");
            return;
        }
        if (!pl_node_attr(r, "id")) {
            bad_request(s, st, "bad-request", "missing IQ id");
            return;
        }
        if (getset && pl_node_count_elements(r) != 1) {
            bad_request(s, st, "bad-request", "an IQ get or set has exactly one payload");
            return;
        }
    }
    const char *to_s = pl_node_attr(r, "to");
    pl_jid *to = NULL;
    if (to_s) {
        to = pl_jid_parse(to_s);
        if (!to) {
            bad_request(s, st, "jid-malformed", NULL);
            return;
        }
    } else if (r->name[0] == 'm') {
        /* RFC 6120 10.3.1: a message with no 'to' is for the account */
        pl_node_set_attr(st, r, "to", s->jid->bare);
        to = pl_jid_to_bare(s->jid);
    }
    if (r->name[0] == 'p' && !to)
        track_presence(s, st);
    route(st, s, s->jid, to);
    pl_jid_free(to);
}

void pl__router_host_init(pl_host *h)
{
    if (EV_IQ_HOST < 0) {
        EV_IQ_HOST = pl__event_id("iq/host");
        EV_IQ_BARE = pl__event_id("iq/bare");
        EV_IQ_SELF = pl__event_id("iq/self");
    }
    pl__hooks_add(&h->hooks, PL__EV_MESSAGE_FULL, message_full, NULL, -1, NULL);
    pl__hooks_add(&h->hooks, PL__EV_MESSAGE_BARE, message_bare, NULL, -1, NULL);
    pl__hooks_add(&h->hooks, PL__EV_MESSAGE_HOST, message_host, NULL, -1, NULL);
    pl__hooks_add(&h->hooks, PL__EV_PRESENCE_FULL, presence_full, NULL, -1, NULL);
    pl__hooks_add(&h->hooks, PL__EV_PRESENCE_BARE, presence_bare, NULL, -1, NULL);
    pl__hooks_add(&h->hooks, PL__EV_PRESENCE_HOST, drop, NULL, -1, NULL);
    pl__hooks_add(&h->hooks, PL__EV_PRESENCE_SELF, drop, NULL, -1, NULL);
    pl__hooks_add(&h->hooks, PL__EV_IQ_FULL, iq_full, NULL, -1, NULL);
}

void pl_send(pl_session *s, pl_stanza *st)
{
    pl__c2s_send(s, st);
}
