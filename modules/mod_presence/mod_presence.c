/* modules/mod_presence/mod_presence.c: presence subscriptions and presence
 * broadcast (RFC 6121 sections 3 and 4, Appendix A).
 *
 * Subscription stanzas a client sends (subscribe, subscribed, unsubscribe,
 * unsubscribed) are taken out of routing: the sender's roster record is
 * changed per the outbound tables of Appendix A.2 through the roster
 * service of mod_roster, and the stanza, stamped with the sender's bare
 * JID, is routed once the change is stored. Subscription stanzas and
 * probes addressed to a local account are processed against that
 * account's roster per Appendix A.3 (the cached roster when the account
 * is online, the database otherwise) and delivered to its resources; a
 * request that cannot be delivered now is kept and delivered after the
 * account's next initial presence.
 *
 * A client's broadcast presence goes to its contacts with a "from"
 * subscription and to the account's available resources; initial
 * presence also probes the contacts it is subscribed to. Unavailable
 * presence, sent or implied by a session ending, also goes to every
 * entity the session sent directed presence to. Pre-approval (RFC 6121
 * 3.4) is not offered. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <parley/module.h>
#include "../mod_roster/mod_roster.h"

enum { T_NONE, T_SUBSCRIBE, T_SUBSCRIBED, T_UNSUBSCRIBE, T_UNSUBSCRIBED, T_PROBE };

typedef struct psess psess;
typedef struct pctx pctx;

typedef struct instance {
    struct instance *next;
    pl_module *m;
    pl_host *host;
    const pl_roster_api *roster;
    psess *sessions;
    pctx *pending;        /* contexts of roster updates in progress */
    int max_directed;
} instance;

static instance *instances;

/* What the module keeps per session. */
struct psess {
    psess *prev, *next;
    instance *in;         /* NULL once the instance is gone */
    uint64_t id;
    int initial;          /* initial presence waits for the roster */
    int waiting;          /* a when_loaded call is pending */
    int announced;        /* available presence went to the contacts */
    char **directed;      /* JIDs sent directed presence, as addressed */
    int ndirected;
    int capdirected;
};

/* One subscription stanza or probe on its way through the roster. */
struct pctx {
    pctx *prev, *next;
    instance *in;
    int type;             /* T_* */
    uint64_t sid;         /* outbound: the sending session */
    char *node;           /* the account whose roster is consulted */
    char *contact;        /* the other party's bare JID */
    char *reply_to;       /* probe: where the answer goes */
    pl_stanza *orig;      /* outbound: the client's stanza, for errors */
    pl_stanza *st;        /* the stanza to route or deliver */
    char *serialized;     /* inbound subscribe: st as stored text */
    int route;            /* decided by the change function ... */
    int deliver;
    int autoreply;
    int unavailable;
    int presence;
};

static int type_of(const char *t)
{
    if (!t)
        return T_NONE;
    if (strcmp(t, "subscribe") == 0)
        return T_SUBSCRIBE;
    if (strcmp(t, "subscribed") == 0)
        return T_SUBSCRIBED;
    if (strcmp(t, "unsubscribe") == 0)
        return T_UNSUBSCRIBE;
    if (strcmp(t, "unsubscribed") == 0)
        return T_UNSUBSCRIBED;
    if (strcmp(t, "probe") == 0)
        return T_PROBE;
    return T_NONE;
}

/* ==== the subscription state machine (RFC 6121 Appendix A) ==== */

/* A.2: the account sends a subscription stanza of type c->type to the
 * contact; cur/next as for pl_roster_change_fn. Sets c->route when the stanza is
 * to be routed, c->unavailable when the contact is to receive unavailable
 * presence first (3.2.2), c->presence when it is to receive the account's
 * current presence afterwards (3.1.5). Returns 1 if the record changes. */
static int outbound_change(const pl_roster_item *cur, pl_roster_item *next, void *ud)
{
    pctx *c = ud;
    int sub = next->subscription;
    switch (c->type) {
    case T_SUBSCRIBE:
        /* always routed, so a lost subscription can be resynchronized */
        c->route = 1;
        if ((sub & PL_SUB_TO) || next->ask)
            return 0;
        next->ask = 1;
        return 1;
    case T_UNSUBSCRIBE:
        c->route = 1;
        if (!(sub & PL_SUB_TO) && !next->ask)
            return 0;
        next->subscription = sub & ~PL_SUB_TO;
        next->ask = 0;
        return 1;
    case T_SUBSCRIBED:
        /* only an approval of a pending request changes (and is routed) */
        if (!next->pending_in)
            return 0;
        next->subscription = sub | PL_SUB_FROM;
        next->pending_in = 0;
        c->route = c->presence = 1;
        return 1;
    case T_UNSUBSCRIBED:
        if (sub & PL_SUB_FROM) {
            next->subscription = sub & ~PL_SUB_FROM;
            next->pending_in = 0;
            c->route = c->unavailable = 1;
            return 1;
        }
        if (!next->pending_in)
            return 0;
        next->pending_in = 0;
        c->route = 1;
        return 1;
    }
    return 0;
}

static void deliver(instance *in, const char *node, pl_stanza *st, int interested);

/* A.3: the account receives a subscription stanza of type c->type from
 * the contact. Sets c->deliver when the account's resources get the stanza,
 * c->autoreply when the server approves on the account's behalf (the
 * contact is already subscribed, 3.1.3), c->unavailable when the contact
 * is to receive unavailable presence (3.3.3). Returns 1 if the record
 * changes. */
static int inbound_decide(pl_roster_item *next, pctx *c)
{
    int sub = next->subscription;
    switch (c->type) {
    case T_SUBSCRIBE:
        if (sub & PL_SUB_FROM) {
            c->autoreply = 1;
            return 0;
        }
        if (next->pending_in)
            return 0;     /* one request is kept and delivered, not more */
        next->pending_in = 1;
        next->pending_stanza = c->serialized;
        c->deliver = 1;
        return 1;
    case T_SUBSCRIBED:
        if (!next->ask || (sub & PL_SUB_TO))
            return 0;
        next->subscription = sub | PL_SUB_TO;
        next->ask = 0;
        c->deliver = 1;
        return 1;
    case T_UNSUBSCRIBE:
        if (sub & PL_SUB_FROM) {
            next->subscription = sub & ~PL_SUB_FROM;
            next->pending_in = 0;
            c->deliver = c->unavailable = 1;
            return 1;
        }
        if (!next->pending_in)
            return 0;
        /* a request that was never answered is simply forgotten */
        next->pending_in = 0;
        c->deliver = 1;
        return 1;
    case T_UNSUBSCRIBED:
        if (!(sub & PL_SUB_TO) && !next->ask)
            return 0;
        next->subscription = sub & ~PL_SUB_TO;
        next->ask = 0;
        c->deliver = 1;
        return 1;
    }
    return 0;
}

/* The change function of inbound stanzas. An answer to the account's
 * own request or a cancellation is delivered right away (3.1.6, 3.2.3,
 * 3.3.3: deliver, then push), ahead of the presence the contact sends
 * after it; a request is delivered once it is stored. */
static int inbound_change(const pl_roster_item *cur, pl_roster_item *next, void *ud)
{
    pctx *c = ud;
    int changed = inbound_decide(next, c);
    if (c->deliver && c->type != T_SUBSCRIBE) {
        deliver(c->in, c->node, c->st, 1);
        c->deliver = 0;
    }
    return changed;
}

/* ==== contexts ==== */

static pctx *ctx_new(instance *in, int type, const char *node, const char *contact)
{
    pctx *c = pl_calloc(1, sizeof *c);
    c->in = in;
    c->type = type;
    c->node = pl_strdup(node);
    c->contact = pl_strdup(contact);
    c->next = in->pending;
    if (c->next)
        c->next->prev = c;
    in->pending = c;
    return c;
}

static void ctx_free(pctx *c)
{
    if (c->in) {
        if (c->prev)
            c->prev->next = c->next;
        else
            c->in->pending = c->next;
        if (c->next)
            c->next->prev = c->prev;
    }
    pl_free(c->node);
    pl_free(c->contact);
    pl_free(c->reply_to);
    pl_stanza_unref(c->orig);
    pl_stanza_unref(c->st);
    pl_free(c->serialized);
    pl_free(c);
}

/* ==== sessions ==== */

static void psess_clear_directed(psess *p)
{
    for (int i = 0; i < p->ndirected; i++)
        pl_free(p->directed[i]);
    p->ndirected = 0;
}

static void psess_free(void *v)
{
    psess *p = v;
    if (p->in) {
        if (p->prev)
            p->prev->next = p->next;
        else
            p->in->sessions = p->next;
        if (p->next)
            p->next->prev = p->prev;
    }
    psess_clear_directed(p);
    pl_free(p->directed);
    pl_free(p);
}

static psess *psess_of(instance *in, pl_session *s, int create)
{
    psess *p = pl_session_data(s, in->m);
    if (p || !create)
        return p;
    p = pl_calloc(1, sizeof *p);
    p->in = in;
    p->id = pl_session_id(s);
    p->next = in->sessions;
    if (p->next)
        p->next->prev = p;
    in->sessions = p;
    pl_session_set_data(s, in->m, p, psess_free);
    return p;
}

/* The bound sessions of an account. */
typedef struct slist {
    pl_session *buf[16];
    pl_session **s;
    int n;
} slist;

static void sessions_of(pl_host *h, const char *node, slist *l)
{
    l->s = l->buf;
    l->n = pl_user_sessions(h, node, l->buf, 16);
    if (l->n > 16) {
        l->s = pl_malloc(sizeof *l->s * (size_t)l->n);
        int n = pl_user_sessions(h, node, l->s, l->n);
        l->n = n < l->n ? n : l->n;
    }
}

static void slist_free(slist *l)
{
    if (l->s != l->buf)
        pl_free(l->s);
}

/* ==== sending ==== */

/* st with one reference held by the caller, safe to change: a copy if
 * anyone else kept a reference to it. */
static pl_stanza *own(pl_stanza *st)
{
    if (pl_stanza_refs(st) <= 1)
        return st;
    pl_stanza *c = pl_stanza_copy(st);
    pl_stanza_unref(st);
    return c;
}

static void set_attr(pl_stanza **st, const char *name, const char *value)
{
    *st = own(*st);
    pl_node_set_attr(*st, pl_stanza_root(*st), name, value);
}

static pl_stanza *presence_new(const char *from, const char *to, const char *type)
{
    pl_stanza *st = pl_stanza_new("presence", NULL);
    pl_node *r = pl_stanza_root(st);
    pl_node_set_attr(st, r, "from", from);
    if (to)
        pl_node_set_attr(st, r, "to", to);
    if (type)
        pl_node_set_attr(st, r, "type", type);
    return st;
}

static void route_presence(const char *from, const char *to, const char *type)
{
    pl_stanza *st = presence_new(from, to, type);
    pl_route(st);
    pl_stanza_unref(st);
}

static void account_bare(instance *in, const char *node, char *buf, size_t n)
{
    snprintf(buf, n, "%s@%s", node, pl_host_name(in->host));
}

/* Routes the current presence of each available resource of node to
 * `to`; returns how many were sent. */
static int send_current(instance *in, const char *node, const char *to)
{
    slist l;
    sessions_of(in->host, node, &l);
    int n = 0;
    for (int i = 0; i < l.n; i++) {
        pl_stanza *p = pl_session_available(l.s[i]) ? pl_session_presence(l.s[i]) : NULL;
        if (!p)
            continue;
        pl_stanza *c = pl_stanza_copy(p);
        pl_node_set_attr(c, pl_stanza_root(c), "from", pl_session_jid(l.s[i])->full);
        pl_node_set_attr(c, pl_stanza_root(c), "to", to);
        pl_route(c);
        pl_stanza_unref(c);
        n++;
    }
    slist_free(&l);
    return n;
}

/* Routes unavailable presence from each available resource of node to
 * `to`. */
static void send_unavailable_all(instance *in, const char *node, const char *to)
{
    slist l;
    sessions_of(in->host, node, &l);
    for (int i = 0; i < l.n; i++)
        if (pl_session_available(l.s[i]))
            route_presence(pl_session_jid(l.s[i])->full, to, "unavailable");
    slist_free(&l);
}

/* Delivers st to the account's available resources, or (interested) to
 * those that requested the roster. */
static void deliver(instance *in, const char *node, pl_stanza *st, int interested)
{
    slist l;
    sessions_of(in->host, node, &l);
    for (int i = 0; i < l.n; i++) {
        int ok = interested ? in->roster->interested(l.s[i]) : pl_session_available(l.s[i]);
        if (ok)
            pl_send(l.s[i], st);
    }
    slist_free(&l);
}

static void bounce(pctx *c, const char *type, const char *cond, const char *text)
{
    pl_session *s = pl_session_by_id(c->sid);
    if (!s)
        return;
    pl_stanza *e = pl_stanza_error_reply(c->orig, type, cond, text);
    pl_send(s, e);
    pl_stanza_unref(e);
}

/* ==== subscriptions ==== */

static void outbound_done(int status, const pl_roster_item *before, const pl_roster_item *after,
                          void *ud)
{
    pctx *c = ud;
    instance *in = c->in;
    if (status == PL_ELIMIT) {
        bounce(c, "cancel", "not-allowed", "the roster is full");
    } else if (status != PL_OK) {
        pl_mlog(in->m, PL_LOG_WARN, "subscription stanza from %s dropped: roster unavailable",
                c->node);
        bounce(c, "wait", "internal-server-error", "the roster storage is unavailable");
    } else {
        /* 3.2.2: unavailable while the contact is still subscribed */
        if (c->unavailable)
            send_unavailable_all(in, c->node, c->contact);
        if (c->route)
            pl_route(c->st);
        if (c->presence)
            send_current(in, c->node, c->contact);
    }
    ctx_free(c);
}

/* A subscription stanza from a client: 3.1.2, 3.1.5, 3.2.2, 3.3.2. */
static void handle_outbound(instance *in, pl_event *ev, int type)
{
    const pl_jid *me = pl_session_jid(ev->origin);
    if (pl_jid_bare_eq(me, ev->to))
        return;   /* no subscriptions to oneself */
    char bare[3072];
    account_bare(in, me->node, bare, sizeof bare);
    pctx *c = ctx_new(in, type, me->node, ev->to->bare);
    c->sid = pl_session_id(ev->origin);
    c->orig = pl_stanza_ref(ev->stanza);
    c->st = pl_stanza_copy(ev->stanza);
    pl_node_set_attr(c->st, pl_stanza_root(c->st), "from", bare);
    pl_node_set_attr(c->st, pl_stanza_root(c->st), "to", ev->to->bare);
    if (in->roster->update(in->m, in->host, me->node, c->contact, outbound_change,
                           outbound_done, c) != PL_OK) {
        bounce(c, "wait", "internal-server-error", "the roster storage is unavailable");
        ctx_free(c);
    }
}

static void inbound_done(int status, const pl_roster_item *before, const pl_roster_item *after,
                         void *ud)
{
    pctx *c = ud;
    instance *in = c->in;
    if (status != PL_OK) {
        /* no such account (RFC 6121 8.5.1: ignored), or no storage */
        if (status != PL_ENOENT)
            pl_mlog(in->m, PL_LOG_WARN, "inbound subscription stanza for %s from %s dropped "
                    "(status %d)", c->node, c->contact, status);
        ctx_free(c);
        return;
    }
    char bare[3072];
    account_bare(in, c->node, bare, sizeof bare);
    if (c->autoreply) {
        route_presence(bare, c->contact, "subscribed");
        send_current(in, c->node, c->contact);
    }
    if (c->deliver)
        deliver(in, c->node, c->st, 0);
    if (c->unavailable)
        send_unavailable_all(in, c->node, c->contact);
    ctx_free(c);
}

/* A subscription stanza to a local account: 3.1.3, 3.1.6, 3.2.3, 3.3.3. */
static void handle_inbound(instance *in, pl_event *ev, int type)
{
    pctx *c = ctx_new(in, type, ev->to->node, ev->from->bare);
    c->st = pl_stanza_copy(ev->stanza);
    pl_node_set_attr(c->st, pl_stanza_root(c->st), "from", ev->from->bare);
    pl_node_set_attr(c->st, pl_stanza_root(c->st), "to", ev->to->bare);
    if (type == T_SUBSCRIBE) {
        pl_buf b = PL_BUF_INIT;
        pl_xml_serialize(pl_stanza_root(c->st), &b, PL_NS_CLIENT);
        c->serialized = pl_buf_steal(&b);
    }
    if (in->roster->update(in->m, in->host, c->node, c->contact, inbound_change, inbound_done,
                           c) != PL_OK) {
        pl_mlog(in->m, PL_LOG_WARN, "inbound subscription stanza for %s dropped: roster "
                "unavailable", c->node);
        ctx_free(c);
    }
}

/* ==== probes (RFC 6121 4.3) ==== */

/* Answers a probe of node's presence by `prober` (a bare JID), sent from
 * reply_to, given node's record for the prober. */
static void answer_probe(instance *in, const char *node, const char *prober,
                         const char *reply_to, const pl_roster_item *it)
{
    char bare[3072];
    account_bare(in, node, bare, sizeof bare);
    if (!it || !(it->subscription & PL_SUB_FROM)) {
        route_presence(bare, prober, "unsubscribed");
        return;
    }
    if (send_current(in, node, reply_to) == 0)
        route_presence(bare, reply_to, "unavailable");
}

static void probe_done(int status, const pl_roster_item *before, const pl_roster_item *after,
                       void *ud)
{
    pctx *c = ud;
    if (status == PL_OK)
        answer_probe(c->in, c->node, c->contact, c->reply_to, after);
    ctx_free(c);
}

static void handle_probe(instance *in, pl_event *ev)
{
    const char *node = ev->to->node;
    if (in->roster->cached(in->host, node)) {
        answer_probe(in, node, ev->from->bare, ev->from->full,
                     in->roster->item(in->host, node, ev->from->bare));
        return;
    }
    pctx *c = ctx_new(in, T_PROBE, node, ev->from->bare);
    c->reply_to = pl_strdup(ev->from->full);
    if (in->roster->update(in->m, in->host, node, c->contact, NULL, probe_done, c) != PL_OK)
        ctx_free(c);
}

/* ==== broadcast (RFC 6121 4.2, 4.4, 4.5, 4.6) ==== */

typedef struct bcast {
    instance *in;
    pl_session *s;
    pl_stanza *st;        /* the presence being sent, 'to' set per contact */
    const char *bare;     /* the account's bare JID */
} bcast;

static void to_subscribers(const pl_roster_item *it, void *ud)
{
    bcast *b = ud;
    if (!it->in_roster || !(it->subscription & PL_SUB_FROM))
        return;
    set_attr(&b->st, "to", it->jid);
    pl_route(b->st);
}

/* Splits a prepared bare JID into node (possibly empty) and domain. */
static int split_bare(const char *jid, char *node, size_t nn, const char **domain)
{
    const char *at = strchr(jid, '@');
    if (!at) {
        node[0] = '\0';
        *domain = jid;
        return 0;
    }
    if ((size_t)(at - jid) >= nn)
        return -1;
    memcpy(node, jid, (size_t)(at - jid));
    node[at - jid] = '\0';
    *domain = at + 1;
    return 0;
}

/* Initial presence probes the contacts the account is subscribed to. A
 * local contact with no session cannot be available: it is answered
 * with unavailable presence right here, without a database lookup. */
static void probe_contacts(const pl_roster_item *it, void *ud)
{
    bcast *b = ud;
    if (!it->in_roster || !(it->subscription & PL_SUB_TO))
        return;
    char node[1024];
    const char *domain;
    pl_host *h = NULL;
    if (split_bare(it->jid, node, sizeof node, &domain) == 0 && node[0])
        h = pl_host_find(domain);
    if (h && pl_user_sessions(h, node, NULL, 0) == 0) {
        pl_stanza *u = presence_new(it->jid, pl_session_jid(b->s)->full, "unavailable");
        pl_send(b->s, u);
        pl_stanza_unref(u);
        return;
    }
    set_attr(&b->st, "to", it->jid);
    pl_route(b->st);
}

/* Delivers the stored subscription requests to a newly available
 * resource (3.1.3). */
static void redeliver_requests(const pl_roster_item *it, void *ud)
{
    bcast *b = ud;
    if (!it->pending_in)
        return;
    pl_stanza *st = it->pending_stanza
        ? pl_stanza_parse(it->pending_stanza, strlen(it->pending_stanza)) : NULL;
    if (!st)
        st = presence_new(it->jid, b->bare, "subscribe");
    pl_send(b->s, st);
    pl_stanza_unref(st);
}

/* Sends pres (from s) to each available resource of the account,
 * reflecting it to s too unless s is going away. */
static void to_own_resources(instance *in, pl_session *s, pl_stanza *pres, int reflect)
{
    const pl_jid *me = pl_session_jid(s);
    pl_stanza *st = pl_stanza_copy(pres);
    slist l;
    sessions_of(in->host, me->node, &l);
    for (int i = 0; i < l.n; i++) {
        if (l.s[i] == s ? !reflect : !pl_session_available(l.s[i]))
            continue;
        set_attr(&st, "to", pl_session_jid(l.s[i])->full);
        pl_send(l.s[i], st);
    }
    slist_free(&l);
    pl_stanza_unref(st);
}

/* The presence of the account's other available resources, to s. */
static void others_to(instance *in, pl_session *s)
{
    const pl_jid *me = pl_session_jid(s);
    slist l;
    sessions_of(in->host, me->node, &l);
    for (int i = 0; i < l.n; i++) {
        pl_stanza *p = l.s[i] != s && pl_session_available(l.s[i])
            ? pl_session_presence(l.s[i]) : NULL;
        if (!p)
            continue;
        pl_stanza *c = pl_stanza_copy(p);
        pl_node_set_attr(c, pl_stanza_root(c), "from", pl_session_jid(l.s[i])->full);
        pl_node_set_attr(c, pl_stanza_root(c), "to", me->full);
        pl_send(s, c);
        pl_stanza_unref(c);
    }
    slist_free(&l);
}

/* Broadcasts s's available presence pres (4.2.2, 4.4.2); initial
 * presence also probes, shows s its other resources and redelivers
 * pending requests. The roster is loaded. */
static void do_available(instance *in, pl_session *s, psess *p, pl_stanza *pres, int initial)
{
    const pl_jid *me = pl_session_jid(s);
    char bare[3072];
    account_bare(in, me->node, bare, sizeof bare);
    bcast b = { in, s, pl_stanza_copy(pres), bare };
    set_attr(&b.st, "from", me->full);
    in->roster->each(in->host, me->node, to_subscribers, &b);
    to_own_resources(in, s, b.st, 1);
    pl_stanza_unref(b.st);
    p->announced = 1;
    if (!initial)
        return;
    b.st = presence_new(bare, NULL, "probe");
    in->roster->each(in->host, me->node, probe_contacts, &b);
    pl_stanza_unref(b.st);
    b.st = NULL;
    others_to(in, s);
    in->roster->each(in->host, me->node, redeliver_requests, &b);
}

static int is_subscriber(instance *in, const char *node, const char *jid)
{
    pl_jid *j = pl_jid_parse(jid);
    const pl_roster_item *it = j ? in->roster->item(in->host, node, j->bare) : NULL;
    pl_jid_free(j);
    return it && it->in_roster && (it->subscription & PL_SUB_FROM);
}

static void unavailable_done(int status, const pl_roster_item *before,
                             const pl_roster_item *after, void *ud)
{
    pctx *c = ud;
    if (status == PL_OK) {
        bcast b = { c->in, NULL, c->st, NULL };
        c->in->roster->each(c->in->host, c->node, to_subscribers, &b);
        c->st = b.st;
    }
    ctx_free(c);
}

/* Sends st to the subscribers of node once its roster is loaded (it is
 * not cached right after mod_roster was reloaded). */
static void unavailable_later(instance *in, const char *node, const char *bare, pl_stanza *st)
{
    pctx *c = ctx_new(in, T_NONE, node, bare);
    c->st = pl_stanza_copy(st);
    if (in->roster->update(in->m, in->host, node, bare, NULL, unavailable_done, c) != PL_OK)
        ctx_free(c);
}

/* Broadcasts s's unavailable presence (4.5.2, 4.6.3): unav, or one made
 * up when the session ends without it. */
static void do_unavailable(instance *in, pl_session *s, psess *p, pl_stanza *unav, int closing)
{
    const pl_jid *me = pl_session_jid(s);
    bcast b = { in, s, NULL, NULL };
    b.st = unav ? pl_stanza_copy(unav) : presence_new(me->full, NULL, "unavailable");
    set_attr(&b.st, "from", me->full);
    int cached = in->roster->cached(in->host, me->node);
    if (!p || p->announced) {
        if (cached) {
            in->roster->each(in->host, me->node, to_subscribers, &b);
        } else {
            char bare[3072];
            account_bare(in, me->node, bare, sizeof bare);
            unavailable_later(in, me->node, bare, b.st);
        }
    }
    for (int i = 0; p && i < p->ndirected; i++) {
        if (cached && is_subscriber(in, me->node, p->directed[i]))
            continue;   /* the broadcast covered it */
        set_attr(&b.st, "to", p->directed[i]);
        pl_route(b.st);
    }
    set_attr(&b.st, "to", NULL);
    to_own_resources(in, s, b.st, !closing);
    pl_stanza_unref(b.st);
    if (p) {
        psess_clear_directed(p);
        p->announced = 0;
        p->initial = 0;
    }
}

/* Catches up with s's presence once its roster is there. */
static void sync_session(instance *in, pl_session *s, psess *p)
{
    pl_stanza *pres = pl_session_presence(s);
    if (pl_session_available(s) && pres) {
        int initial = p->initial;
        p->initial = 0;
        do_available(in, s, p, pres, initial);
    } else if (p->announced) {
        do_unavailable(in, s, p, NULL, 0);
    }
}

static void roster_ready(pl_session *s, int status, void *ud)
{
    instance *in = ud;
    psess *p = s ? psess_of(in, s, 0) : NULL;
    if (!p)
        return;
    p->waiting = 0;
    if (status != PL_OK) {
        pl_mlog(in->m, PL_LOG_WARN, "no roster for %s: its presence is not broadcast",
                pl_session_jid(s)->full);
        return;
    }
    sync_session(in, s, p);
}

/* ==== directed presence (RFC 6121 4.6) ==== */

static void track_directed(instance *in, pl_session *s, const char *to, int available)
{
    psess *p = psess_of(in, s, available);
    if (!p)
        return;
    int i = 0;
    while (i < p->ndirected && strcmp(p->directed[i], to) != 0)
        i++;
    if (!available) {
        if (i < p->ndirected) {
            pl_free(p->directed[i]);
            p->directed[i] = p->directed[--p->ndirected];
        }
        return;
    }
    if (i < p->ndirected || p->ndirected >= in->max_directed)
        return;
    if (p->ndirected == p->capdirected) {
        p->capdirected = p->capdirected ? p->capdirected * 2 : 4;
        p->directed = pl_realloc(p->directed, sizeof *p->directed * (size_t)p->capdirected);
    }
    p->directed[p->ndirected++] = pl_strdup(to);
}

/* ==== hooks ==== */

static const char *stanza_type(const pl_stanza *st)
{
    return pl_node_attr(pl_stanza_root(st), "type");
}

/* Outbound presence from a local client. */
static int on_pre_presence(pl_event *ev, void *ud)
{
    instance *in = ud;
    if (!ev->origin || !ev->to || !pl_session_jid(ev->origin))
        return PL_PASS;
    const char *t = stanza_type(ev->stanza);
    int type = type_of(t);
    if (type != T_NONE && type != T_PROBE) {
        handle_outbound(in, ev, type);
        return PL_HANDLED;
    }
    if (ev->target != PL_TO_SELF && (!t || strcmp(t, "unavailable") == 0))
        track_directed(in, ev->origin, ev->to->full, !t);
    return PL_PASS;
}

/* Subscription stanzas and probes to a local account. */
static int on_inbound(pl_event *ev, void *ud)
{
    instance *in = ud;
    int type = type_of(stanza_type(ev->stanza));
    if (type == T_NONE)
        return PL_PASS;
    if (!ev->from || !ev->to || !ev->to->node || pl_jid_bare_eq(ev->from, ev->to))
        return PL_HANDLED;
    if (type == T_PROBE)
        handle_probe(in, ev);
    else
        handle_inbound(in, ev, type);
    return PL_HANDLED;
}

/* A client's broadcast presence (no 'to'). */
static int on_self(pl_event *ev, void *ud)
{
    instance *in = ud;
    pl_session *s = ev->origin;
    if (!s || !pl_session_jid(s))
        return PL_PASS;
    const char *t = stanza_type(ev->stanza);
    if (!t) {
        psess *p = psess_of(in, s, 1);
        if (in->roster->loaded(s)) {
            int initial = p->initial;
            p->initial = 0;
            do_available(in, s, p, ev->stanza, initial);
        } else if (!p->waiting) {
            p->waiting = 1;
            if (in->roster->when_loaded(in->m, s, roster_ready, in) < 0)
                p->waiting = 0;
        }
    } else if (strcmp(t, "unavailable") == 0) {
        do_unavailable(in, s, psess_of(in, s, 0), ev->stanza, 0);
    }
    return PL_PASS;
}

static int on_available(pl_event *ev, void *ud)
{
    instance *in = ud;
    if (ev->origin && pl_session_jid(ev->origin))
        psess_of(in, ev->origin, 1)->initial = 1;
    return PL_PASS;
}

/* A session going away is a logout: unavailable as if it sent it. */
static int on_closed(pl_event *ev, void *ud)
{
    instance *in = ud;
    pl_session *s = ev->origin;
    if (!s || !pl_session_jid(s))
        return PL_PASS;
    psess *p = psess_of(in, s, 0);
    if (pl_session_available(s) || (p && (p->announced || p->ndirected)))
        do_unavailable(in, s, p, NULL, 1);
    return PL_PASS;
}

/* ==== lifecycle ==== */

/* What survives a reload: per session, whether its presence was
 * broadcast and where it sent directed presence. */
typedef struct saved_sess {
    uint64_t id;
    int announced;
    int ndirected;
    char **directed;
} saved_sess;

typedef struct saved {
    int n;
    saved_sess s[];
} saved;

static void *presence_save(pl_module *m)
{
    instance *in = pl_module_data(m);
    int n = 0;
    for (psess *p = in ? in->sessions : NULL; p; p = p->next)
        n++;
    saved *sv = pl_calloc(1, sizeof *sv + sizeof sv->s[0] * (size_t)n);
    for (psess *p = in ? in->sessions : NULL; p; p = p->next) {
        saved_sess *x = &sv->s[sv->n++];
        x->id = p->id;
        x->announced = p->announced;
        x->ndirected = p->ndirected;
        x->directed = p->directed;
        p->directed = NULL;
        p->ndirected = p->capdirected = 0;
    }
    return sv;
}

static void presence_restore(pl_module *m, void *state)
{
    instance *in = pl_module_data(m);
    saved *sv = state;
    for (int i = 0; sv && i < sv->n; i++) {
        saved_sess *x = &sv->s[i];
        pl_session *s = in ? pl_session_by_id(x->id) : NULL;
        if (s && pl_session_jid(s) && pl_session_host(s) == in->host) {
            psess *p = psess_of(in, s, 1);
            p->announced = x->announced;
            for (int k = 0; k < x->ndirected; k++)
                track_directed(in, s, x->directed[k], 1);
        }
        for (int k = 0; k < x->ndirected; k++)
            pl_free(x->directed[k]);
        pl_free(x->directed);
    }
    pl_free(sv);
}

static void presence_unload(pl_module *m)
{
    instance *in = pl_module_data(m);
    if (!in)
        return;
    for (instance **pp = &instances; *pp; pp = &(*pp)->next)
        if (*pp == in) {
            *pp = in->next;
            break;
        }
    in->roster->cancel(m);
    while (in->pending)
        ctx_free(in->pending);
    for (psess *p = in->sessions; p; p = p->next)
        p->in = NULL;
    pl_free(in);
    pl_module_set_data(m, NULL);
}

static int presence_load(pl_module *m)
{
    const pl_roster_api *roster = pl_get_api(pl_module_host(m), PL_ROSTER_API);
    if (!roster) {
        pl_mlog(m, PL_LOG_ERROR, "the roster module is not loaded on this host");
        return PL_ENOENT;
    }
    instance *in = pl_calloc(1, sizeof *in);
    in->m = m;
    in->host = pl_module_host(m);
    in->roster = roster;
    in->max_directed = (int)pl_option_int(m, "max_directed");
    in->next = instances;
    instances = in;
    pl_module_set_data(m, in);
    int rc = pl_hook(m, "pre-presence", on_pre_presence, in, 0);
    if (rc == PL_OK)
        rc = pl_hook(m, "presence/bare", on_inbound, in, 0);
    if (rc == PL_OK)
        rc = pl_hook(m, "presence/full", on_inbound, in, 0);
    if (rc == PL_OK)
        rc = pl_hook(m, "presence/self", on_self, in, 0);
    if (rc == PL_OK)
        rc = pl_hook(m, "session/available", on_available, in, 0);
    /* before mod_roster (priority -10) lets go of the closing account */
    if (rc == PL_OK)
        rc = pl_hook(m, "session/closed", on_closed, in, 10);
    if (rc != PL_OK)
        presence_unload(m);
    return rc;
}

static const pl_option presence_options[] = {
    { .name = "max_directed", .type = PL_OPT_INT, .def = "1000", .min = 1, .max = 100000,
      .help = "most entities a session's directed presence is tracked for" },
    { .name = NULL },
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "presence",
    .description = "Presence subscriptions and broadcast (RFC 6121 sections 3 and 4)",
    .depends = (const char *const[]){ "roster", NULL },
    .options = presence_options,
    .load = presence_load,
    .unload = presence_unload,
    .save = presence_save,
    .restore = presence_restore,
};
