/* modules/mod_roster/mod_roster.c: rosters (RFC 6121 section 2) with
 * roster versioning (RFC 6121 2.6, XEP-0237).
 *
 * Answers jabber:iq:roster gets and sets from an account's own resources,
 * keeps the roster of every account with a bound session in memory
 * (loaded when the session binds, dropped when the last one goes), and
 * publishes the roster service of mod_roster.h for other modules (the
 * presence module applies subscription changes through it).
 *
 * All changes to one account's roster go through a queue of operations
 * that runs one at a time: an operation reads the cached roster, writes
 * its change to the database (row and version in one statement), and only
 * when the write is confirmed updates the cache, answers its requester and
 * sends the roster push. Rosters of accounts without a session are loaded
 * the same way for the duration of their operations. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <parley/module.h>
#include "mod_roster.h"

#define NS_ROSTER "jabber:iq:roster"
#define NS_ROSTERVER "urn:xmpp:features:rosterver"

/* Operations one account may have waiting; beyond this they are refused. */
#define MAX_QUEUED 10000

/* Group names travel to and from the database joined by U+0001, which
 * XML 1.0 text cannot contain. */
#define GROUP_SEP '\x01'

/* ==== SQL ==== */

#define SQL_LOAD \
    "SELECT r.contact, r.name, r.subscription, r.ask, r.pending_in, r.pending_stanza, " \
    "r.in_roster, array_to_string(r.groups, chr(1)), COALESCE(v.version, 0) " \
    "FROM users u " \
    "LEFT JOIN roster r ON r.host = u.host AND r.username = u.username " \
    "LEFT JOIN roster_version v ON v.host = u.host AND v.username = u.username " \
    "WHERE u.host = $1 AND u.username = $2"

#define SQL_ROW \
    "INSERT INTO roster (host, username, contact, name, subscription, ask, pending_in, " \
    "pending_stanza, in_roster, groups) VALUES ($1, $2, $3, $4, $5, $6::boolean, " \
    "$7::boolean, $8, $9::boolean, string_to_array($10, chr(1))) " \
    "ON CONFLICT (host, username, contact) DO UPDATE SET name = EXCLUDED.name, " \
    "subscription = EXCLUDED.subscription, ask = EXCLUDED.ask, " \
    "pending_in = EXCLUDED.pending_in, pending_stanza = EXCLUDED.pending_stanza, " \
    "in_roster = EXCLUDED.in_roster, groups = EXCLUDED.groups"

#define SQL_BUMP \
    "INSERT INTO roster_version (host, username, version) VALUES ($1, $2, 1) " \
    "ON CONFLICT (host, username) DO UPDATE SET version = roster_version.version + 1 " \
    "RETURNING version"

#define SQL_DEL "DELETE FROM roster WHERE host = $1 AND username = $2 AND contact = $3"

#define SQL_UPSERT SQL_ROW
#define SQL_UPSERT_BUMP "WITH v AS (" SQL_BUMP "), w AS (" SQL_ROW ") SELECT version FROM v"
#define SQL_DELETE SQL_DEL
#define SQL_DELETE_BUMP "WITH v AS (" SQL_BUMP "), d AS (" SQL_DEL ") SELECT version FROM v"

/* ==== state ==== */

typedef struct instance instance;
typedef struct ruser ruser;
typedef struct op op;

/* A cached record; the strings of `it` are owned by it. */
typedef struct ritem {
    pl_hnode link;               /* in ruser.items, keyed by it.jid */
    struct ritem *prev, *next;   /* roster order */
    pl_roster_item it;
} ritem;

enum { U_LOADING, U_READY, U_NOUSER, U_FAILED };

/* The cached roster of one account. */
struct ruser {
    pl_hnode link;         /* in instance.users, keyed by node */
    instance *in;
    char *node;
    long long version;
    pl_htab items;         /* contact -> ritem */
    ritem *first, *last;
    op *head, *tail;       /* operations waiting to run */
    op *inflight;          /* the operation whose write is in flight */
    int state;
    int nitems;            /* records that are roster items */
    int npending;          /* pending-in records that are not */
    int nqueued;
    int pumping;           /* pump() is running */
    int hold;              /* each() is iterating */
};

/* What a session told us: it requested the roster (and with a version). */
typedef struct rsess {
    struct rsess *prev, *next;
    instance *in;          /* NULL once the instance is gone */
    uint64_t id;
    int interested;
    int versioned;
} rsess;

struct instance {
    instance *next;
    pl_module *m;
    pl_host *host;
    pl_htab users;         /* node -> ruser */
    rsess *sessions;
    int max_items;
    int max_name;
    int max_group;
    unsigned long pushes;
    char errtext[160];
};

static instance *instances;

enum { OP_GET, OP_SET, OP_REMOVE, OP_UPDATE, OP_READY };

struct op {
    op *next;
    int kind;
    ruser *u;
    uint64_t sid;           /* requesting session (IQs, when_loaded) */
    pl_stanza *st;          /* the IQ (a reference) */
    char *ver;              /* OP_GET: the client's version, NULL without */
    char *contact;
    char *name;             /* OP_SET */
    char **groups;
    int ngroups;
    pl_module *owner;       /* OP_UPDATE, OP_READY */
    pl_roster_change_fn change;
    pl_roster_done_fn done;
    pl_roster_ready_fn ready;
    void *ud;
    int cancelled;
    ritem *before;          /* while writing: the record before */
    ritem *after;           /* ... and after (NULL: deleted) */
    int bump;               /* ... and whether clients see a change */
};

static instance *instance_of(pl_host *h)
{
    for (instance *i = instances; i; i = i->next)
        if (i->host == h)
            return i;
    return NULL;
}

/* ==== records ==== */

static const char *sub_name(int sub)
{
    static const char *const names[] = { "none", "to", "from", "both" };
    return names[sub & 3];
}

static int sub_parse(const char *s)
{
    if (strcmp(s, "to") == 0)
        return PL_SUB_TO;
    if (strcmp(s, "from") == 0)
        return PL_SUB_FROM;
    if (strcmp(s, "both") == 0)
        return PL_SUB_BOTH;
    return PL_SUB_NONE;
}

static int str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static int visible(const pl_roster_item *it)
{
    return it && it->in_roster;
}

/* Whether clients would see the same thing for a and b. */
static int visible_eq(const pl_roster_item *a, const pl_roster_item *b)
{
    if (visible(a) != visible(b))
        return 0;
    if (!visible(a))
        return 1;
    if (!str_eq(a->name, b->name) || a->subscription != b->subscription || a->ask != b->ask
        || a->ngroups != b->ngroups)
        return 0;
    for (int i = 0; i < a->ngroups; i++)
        if (strcmp(a->groups[i], b->groups[i]) != 0)
            return 0;
    return 1;
}

static int record_eq(const pl_roster_item *a, const pl_roster_item *b)
{
    if (!a || !b)
        return a == b;
    return visible_eq(a, b) && a->in_roster == b->in_roster && a->pending_in == b->pending_in
        && str_eq(a->pending_stanza, b->pending_stanza);
}

static ritem *item_dup(const pl_roster_item *src)
{
    ritem *ri = pl_calloc(1, sizeof *ri);
    ri->it = *src;
    ri->it.jid = pl_strdup(src->jid);
    ri->it.name = src->name ? pl_strdup(src->name) : NULL;
    ri->it.pending_stanza = src->pending_stanza ? pl_strdup(src->pending_stanza) : NULL;
    char **g = pl_calloc((size_t)src->ngroups + 1, sizeof *g);
    for (int i = 0; i < src->ngroups; i++)
        g[i] = pl_strdup(src->groups[i]);
    ri->it.groups = (const char *const *)g;
    return ri;
}

static void item_free_fields(pl_roster_item *it)
{
    pl_free((char *)it->name);
    pl_free((char *)it->pending_stanza);
    for (int i = 0; i < it->ngroups; i++)
        pl_free((char *)it->groups[i]);
    pl_free((void *)it->groups);
}

static void item_free(ritem *ri)
{
    if (!ri)
        return;
    item_free_fields(&ri->it);
    pl_free((char *)ri->it.jid);
    pl_free(ri);
}

/* Makes a record consistent: a subscription or an ask makes it a roster
 * item, and a stored request only exists while one is pending. Returns
 * 0 when nothing is left of it (the record is to be deleted). */
static int normalize(pl_roster_item *it)
{
    if (it->subscription != PL_SUB_NONE || it->ask)
        it->in_roster = 1;
    if (!it->pending_in)
        it->pending_stanza = NULL;
    return it->in_roster || it->pending_in;
}

/* Splits the database's joined group names into a new array. */
static char **split_groups(const char *s, int *n)
{
    int count = *s ? 1 : 0;
    for (const char *p = s; *p; p++)
        count += *p == GROUP_SEP;
    char **g = pl_calloc((size_t)count + 1, sizeof *g);
    *n = 0;
    while (*s) {
        const char *e = strchr(s, GROUP_SEP);
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len)
            g[(*n)++] = pl_strndup(s, len);
        s += len + (e ? 1 : 0);
    }
    return g;
}

/* ==== the cache of one account ==== */

static const char *item_key(const pl_hnode *n)
{
    return PL_HTAB_ENTRY(n, ritem, link)->it.jid;
}

static ritem *lookup(ruser *u, const char *contact)
{
    return PL_HTAB_ENTRY(pl_htab_find_str(&u->items, contact, item_key), ritem, link);
}

static void count_item(ruser *u, const pl_roster_item *it, int d)
{
    if (it->in_roster)
        u->nitems += d;
    else
        u->npending += d;
}

static void link_item(ruser *u, ritem *ri)
{
    ri->prev = u->last;
    ri->next = NULL;
    if (u->last)
        u->last->next = ri;
    else
        u->first = ri;
    u->last = ri;
    pl_htab_insert(&u->items, &ri->link, pl_strhash(ri->it.jid));
    count_item(u, &ri->it, 1);
}

static void unlink_item(ruser *u, ritem *ri)
{
    if (ri->prev)
        ri->prev->next = ri->next;
    else
        u->first = ri->next;
    if (ri->next)
        ri->next->prev = ri->prev;
    else
        u->last = ri->prev;
    pl_htab_remove(&u->items, &ri->link);
    count_item(u, &ri->it, -1);
}

/* Replaces the cached record of contact with after (taken; NULL deletes
 * it). An existing record keeps its place in the roster order. */
static void apply(ruser *u, const char *contact, ritem *after)
{
    ritem *old = lookup(u, contact);
    if (!after) {
        if (old) {
            unlink_item(u, old);
            item_free(old);
        }
        return;
    }
    if (!old) {
        link_item(u, after);
        return;
    }
    count_item(u, &old->it, -1);
    item_free_fields(&old->it);
    const char *jid = old->it.jid;
    old->it = after->it;
    old->it.jid = jid;
    count_item(u, &old->it, 1);
    pl_free((char *)after->it.jid);
    pl_free(after);
}

static void ruser_free(ruser *u)
{
    while (u->first) {
        ritem *ri = u->first;
        u->first = ri->next;
        item_free(ri);
    }
    pl_htab_clear(&u->items);
    pl_free(u->node);
    pl_free(u);
}

/* The bound sessions of an account, in a buffer that grows as needed. */
typedef struct slist {
    pl_session *buf[16];
    pl_session **s;
    int n;
} slist;

static void sessions_of(instance *in, const char *node, slist *l)
{
    l->s = l->buf;
    l->n = pl_user_sessions(in->host, node, l->buf, 16);
    if (l->n > 16) {
        l->s = pl_malloc(sizeof *l->s * (size_t)l->n);
        int n = pl_user_sessions(in->host, node, l->s, l->n);
        l->n = n < l->n ? n : l->n;
    }
}

static void slist_free(slist *l)
{
    if (l->s != l->buf)
        pl_free(l->s);
}

/* Frees u if nothing needs it: no operation, not loading, and (when it
 * loaded) no bound session left; closing counts a session that is on its
 * way out. */
static void maybe_drop(ruser *u, int closing)
{
    if (u->state == U_LOADING || u->head || u->inflight || u->pumping || u->hold)
        return;
    if (u->state == U_READY && pl_user_sessions(u->in->host, u->node, NULL, 0) - closing > 0)
        return;
    pl_htab_remove(&u->in->users, &u->link);
    ruser_free(u);
}

/* ==== sessions ==== */

static void rsess_free(void *p)
{
    rsess *r = p;
    if (r->in) {
        if (r->prev)
            r->prev->next = r->next;
        else
            r->in->sessions = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
    pl_free(r);
}

static rsess *rsess_of(instance *in, pl_session *s, int create)
{
    rsess *r = pl_session_data(s, in->m);
    if (r || !create)
        return r;
    r = pl_calloc(1, sizeof *r);
    r->in = in;
    r->id = pl_session_id(s);
    r->next = in->sessions;
    if (r->next)
        r->next->prev = r;
    in->sessions = r;
    pl_session_set_data(s, in->m, r, rsess_free);
    return r;
}

/* ==== building stanzas ==== */

static void add_item_node(pl_stanza *st, pl_node *query, const pl_roster_item *it)
{
    pl_node *n = pl_node_add(st, query, "item", NULL);
    pl_node_set_attr(st, n, "jid", it->jid);
    if (it->name)
        pl_node_set_attr(st, n, "name", it->name);
    pl_node_set_attr(st, n, "subscription", sub_name(it->subscription));
    if (it->ask)
        pl_node_set_attr(st, n, "ask", "subscribe");
    for (int i = 0; i < it->ngroups; i++) {
        pl_node *g = pl_node_add(st, n, "group", NULL);
        pl_node_add_text(st, g, it->groups[i], strlen(it->groups[i]));
    }
}

static void version_str(const ruser *u, char *buf, size_t n)
{
    snprintf(buf, n, "%lld", u->version);
}

/* Sends the roster push for contact's record (removed when it is no
 * longer a roster item) to every interested resource of u's account. */
static void push(ruser *u, const char *contact)
{
    instance *in = u->in;
    ritem *ri = lookup(u, contact);
    char ver[32];
    version_str(u, ver, sizeof ver);
    slist l;
    sessions_of(in, u->node, &l);
    for (int i = 0; i < l.n; i++) {
        rsess *r = rsess_of(in, l.s[i], 0);
        if (!r || !r->interested)
            continue;
        char id[32];
        snprintf(id, sizeof id, "push%lx", ++in->pushes);
        pl_stanza *st = pl_stanza_new("iq", NULL);
        pl_node *root = pl_stanza_root(st);
        pl_node_set_attr(st, root, "type", "set");
        pl_node_set_attr(st, root, "id", id);
        pl_node_set_attr(st, root, "to", pl_session_jid(l.s[i])->full);
        pl_node *q = pl_node_add(st, root, "query", NS_ROSTER);
        if (r->versioned)
            pl_node_set_attr(st, q, "ver", ver);
        if (visible(ri ? &ri->it : NULL)) {
            add_item_node(st, q, &ri->it);
        } else {
            pl_node *n = pl_node_add(st, q, "item", NULL);
            pl_node_set_attr(st, n, "jid", contact);
            pl_node_set_attr(st, n, "subscription", "remove");
        }
        pl_send(l.s[i], st);
        pl_stanza_unref(st);
    }
    slist_free(&l);
}

/* Routes <presence type=type/> from `from` to `to`. */
static void send_presence(const char *from, const char *to, const char *type)
{
    pl_stanza *st = pl_stanza_new("presence", NULL);
    pl_node *root = pl_stanza_root(st);
    pl_node_set_attr(st, root, "from", from);
    pl_node_set_attr(st, root, "to", to);
    pl_node_set_attr(st, root, "type", type);
    pl_route(st);
    pl_stanza_unref(st);
}

/* RFC 6121 2.5.2: removing an item cancels the subscriptions both ways
 * (and a pending request either way); a contact that received the
 * account's presence first hears it become unavailable (3.2.2). */
static void announce_removal(ruser *u, const pl_roster_item *b)
{
    instance *in = u->in;
    char bare[3072];
    snprintf(bare, sizeof bare, "%s@%s", u->node, pl_host_name(in->host));
    if (b->subscription & PL_SUB_FROM) {
        slist l;
        sessions_of(in, u->node, &l);
        for (int i = 0; i < l.n; i++)
            if (pl_session_available(l.s[i]))
                send_presence(pl_session_jid(l.s[i])->full, b->jid, "unavailable");
        slist_free(&l);
    }
    if ((b->subscription & PL_SUB_FROM) || b->pending_in)
        send_presence(bare, b->jid, "unsubscribed");
    if ((b->subscription & PL_SUB_TO) || b->ask)
        send_presence(bare, b->jid, "unsubscribe");
}

/* ==== operations ==== */

static void op_free(op *o)
{
    pl_stanza_unref(o->st);
    pl_free(o->ver);
    pl_free(o->contact);
    pl_free(o->name);
    for (int i = 0; i < o->ngroups; i++)
        pl_free(o->groups[i]);
    pl_free(o->groups);
    item_free(o->before);
    item_free(o->after);
    pl_free(o);
}

static void iq_error(op *o, const char *type, const char *cond, const char *text)
{
    pl_session *s = pl_session_by_id(o->sid);
    if (!s)
        return;
    pl_stanza *e = pl_stanza_error_reply(o->st, type, cond, text);
    pl_send(s, e);
    pl_stanza_unref(e);
}

static void iq_result(op *o)
{
    pl_session *s = pl_session_by_id(o->sid);
    if (!s)
        return;
    pl_stanza *r = pl_stanza_reply(o->st);
    pl_send(s, r);
    pl_stanza_unref(r);
}

/* Tells the requester of o how it ended. b and a are the record before
 * and after (for OP_UPDATE). */
static void report(op *o, int status, const pl_roster_item *b, const pl_roster_item *a)
{
    instance *in = o->u->in;
    switch (o->kind) {
    case OP_SET:
    case OP_REMOVE:
        if (status == PL_OK) {
            iq_result(o);
        } else if (status == PL_ELIMIT) {
            snprintf(in->errtext, sizeof in->errtext,
                     "the roster is limited to %d items", in->max_items);
            iq_error(o, "cancel", "not-allowed", in->errtext);
        } else if (status == PL_ENOENT && o->kind == OP_REMOVE) {
            iq_error(o, "cancel", "item-not-found", NULL);
        } else {
            iq_error(o, "wait", "internal-server-error", "the roster storage is unavailable");
        }
        break;
    case OP_GET:
        iq_error(o, "wait", "internal-server-error", "the roster storage is unavailable");
        break;
    case OP_UPDATE:
        if (!o->cancelled)
            o->done(status, b, a, o->ud);
        break;
    case OP_READY:
        if (!o->cancelled)
            o->ready(pl_session_by_id(o->sid), status, o->ud);
        break;
    }
}

static op *pop_op(ruser *u)
{
    op *o = u->head;
    u->head = o->next;
    if (!u->head)
        u->tail = NULL;
    o->next = NULL;
    u->nqueued--;
    return o;
}

/* Fails every waiting operation of u (the roster could not be loaded). */
static void fail_all(ruser *u, int status)
{
    while (u->head) {
        op *o = pop_op(u);
        const pl_roster_item *cur = NULL;
        report(o, status, cur, cur);
        op_free(o);
    }
}

static void do_get(op *o)
{
    ruser *u = o->u;
    pl_session *s = pl_session_by_id(o->sid);
    if (!s)
        return;
    rsess *r = rsess_of(u->in, s, 1);
    r->interested = 1;
    if (o->ver)
        r->versioned = 1;
    char ver[32];
    version_str(u, ver, sizeof ver);
    pl_stanza *res = pl_stanza_reply(o->st);
    /* XEP-0237: an up-to-date client gets an empty result, then pushes */
    if (!o->ver || strcmp(o->ver, ver) != 0) {
        pl_node *q = pl_node_add(res, pl_stanza_root(res), "query", NS_ROSTER);
        if (o->ver)
            pl_node_set_attr(res, q, "ver", ver);
        for (ritem *ri = u->first; ri; ri = ri->next)
            if (ri->it.in_roster)
                add_item_node(res, q, &ri->it);
    }
    pl_send(s, res);
    pl_stanza_unref(res);
}

static void write_done(const pl_db_result *r, void *ud);

/* Starts writing o's change (cur -> next, next NULL for a deletion).
 * Returns 0, or PL_EUNAVAIL when the write could not start. */
static int start_write(op *o, const pl_roster_item *cur, const pl_roster_item *next)
{
    ruser *u = o->u;
    instance *in = u->in;
    o->before = cur ? item_dup(cur) : NULL;
    o->after = next ? item_dup(next) : NULL;
    o->bump = !visible_eq(cur, next);
    const char *host = pl_host_name(in->host);
    int rc;
    u->inflight = o;
    if (!next) {
        const char *p[3] = { host, u->node, o->contact };
        rc = pl_db_query(in->m, o->bump ? SQL_DELETE_BUMP : SQL_DELETE, 3, p, write_done, o);
    } else {
        pl_buf groups = PL_BUF_INIT;
        for (int i = 0; i < next->ngroups; i++) {
            if (i)
                pl_buf_putc(&groups, GROUP_SEP);
            pl_buf_puts(&groups, next->groups[i]);
        }
        const char *p[10] = {
            host, u->node, o->contact, next->name, sub_name(next->subscription),
            next->ask ? "t" : "f", next->pending_in ? "t" : "f", next->pending_stanza,
            next->in_roster ? "t" : "f", groups.data ? groups.data : "",
        };
        rc = pl_db_query(in->m, o->bump ? SQL_UPSERT_BUMP : SQL_UPSERT, 10, p, write_done, o);
        pl_buf_free(&groups);
    }
    if (rc == PL_OK)
        return 0;
    u->inflight = NULL;
    return PL_EUNAVAIL;
}

static void pump(ruser *u);

static void write_done(const pl_db_result *r, void *ud)
{
    op *o = ud;
    ruser *u = o->u;
    if (!pl_db_ok(r)) {
        pl_mlog(u->in->m, PL_LOG_WARN, "while writing the roster of %s: %s", u->node,
                pl_db_error(r));
        report(o, PL_EUNAVAIL, o->before ? &o->before->it : NULL,
               o->before ? &o->before->it : NULL);
        u->inflight = NULL;
        op_free(o);
        pump(u);
        return;
    }
    if (o->bump && pl_db_rows(r) > 0)
        u->version = strtoll(pl_db_value(r, 0, 0), NULL, 10);
    ritem *after = o->after;
    o->after = NULL;
    apply(u, o->contact, after);
    ritem *now = lookup(u, o->contact);
    /* u->inflight stays set while we report and push, so changes that
     * the requester makes from its callback queue up behind this one */
    report(o, PL_OK, o->before ? &o->before->it : NULL, now ? &now->it : NULL);
    if (o->bump)
        push(u, o->contact);
    if (o->kind == OP_REMOVE && o->before)
        announce_removal(u, &o->before->it);
    u->inflight = NULL;
    op_free(o);
    pump(u);
}

/* An empty record for contact. */
static pl_roster_item empty_item(const char *contact)
{
    pl_roster_item it = { 0 };
    it.jid = contact;
    it.groups = NULL;
    return it;
}

/* Runs a change operation against the cache; 1 if it is now writing. */
static int run_change(op *o)
{
    ruser *u = o->u;
    instance *in = u->in;
    ritem *ri = lookup(u, o->contact);
    const pl_roster_item *cur = ri ? &ri->it : NULL;
    pl_roster_item next = cur ? *cur : empty_item(o->contact);
    int keep = 1;
    switch (o->kind) {
    case OP_REMOVE:
        if (!visible(cur)) {
            report(o, PL_ENOENT, cur, cur);
            return 0;
        }
        keep = 0;
        break;
    case OP_SET:
        next.name = o->name;
        next.groups = (const char *const *)o->groups;
        next.ngroups = o->ngroups;
        next.in_roster = 1;
        break;
    case OP_UPDATE: {
        if (o->cancelled || !o->change || !o->change(cur, &next, o->ud)) {
            report(o, PL_OK, cur, cur);
            return 0;
        }
        pl_roster_item base = cur ? *cur : empty_item(o->contact);
        next.jid = base.jid;
        next.name = base.name;
        next.groups = base.groups;
        next.ngroups = base.ngroups;
        keep = normalize(&next);
        break;
    }
    }
    const pl_roster_item *after = keep ? &next : NULL;
    if (record_eq(cur, after)) {
        report(o, PL_OK, cur, cur);
        return 0;
    }
    if ((visible(after) && !visible(cur) && u->nitems >= in->max_items)
        || (after && !visible(after) && !cur && u->npending >= in->max_items)) {
        report(o, PL_ELIMIT, cur, cur);
        return 0;
    }
    if (start_write(o, cur, after) != 0) {
        report(o, PL_EUNAVAIL, cur, cur);
        return 0;
    }
    return 1;
}

/* Runs u's waiting operations in order until one starts a write. */
static void pump(ruser *u)
{
    if (u->pumping)
        return;
    u->pumping = 1;
    if (u->state == U_NOUSER)
        fail_all(u, PL_ENOENT);
    else if (u->state == U_FAILED)
        fail_all(u, PL_EUNAVAIL);
    while (u->state == U_READY && !u->inflight && u->head) {
        op *o = pop_op(u);
        int writing = 0;
        switch (o->kind) {
        case OP_GET:
            do_get(o);
            break;
        case OP_READY:
            report(o, PL_OK, NULL, NULL);
            break;
        default:
            writing = run_change(o);
            break;
        }
        if (!writing)
            op_free(o);
    }
    u->pumping = 0;
    maybe_drop(u, 0);
}

/* ==== loading ==== */

static void load_done(const pl_db_result *r, void *ud)
{
    ruser *u = ud;
    if (!pl_db_ok(r)) {
        pl_mlog(u->in->m, PL_LOG_WARN, "while loading the roster of %s: %s", u->node,
                pl_db_error(r));
        u->state = U_FAILED;
        pump(u);
        return;
    }
    if (pl_db_rows(r) == 0) {
        u->state = U_NOUSER;
        pump(u);
        return;
    }
    u->version = strtoll(pl_db_value(r, 0, 8), NULL, 10);
    for (int i = 0; i < pl_db_rows(r); i++) {
        if (pl_db_isnull(r, i, 0))
            continue;
        ritem *ri = pl_calloc(1, sizeof *ri);
        ri->it.jid = pl_strdup(pl_db_value(r, i, 0));
        ri->it.name = pl_db_isnull(r, i, 1) ? NULL : pl_strdup(pl_db_value(r, i, 1));
        ri->it.subscription = sub_parse(pl_db_value(r, i, 2));
        ri->it.ask = pl_db_value(r, i, 3)[0] == 't';
        ri->it.pending_in = pl_db_value(r, i, 4)[0] == 't';
        ri->it.pending_stanza = pl_db_isnull(r, i, 5) ? NULL : pl_strdup(pl_db_value(r, i, 5));
        ri->it.in_roster = pl_db_value(r, i, 6)[0] == 't';
        int n;
        char **g = split_groups(pl_db_value(r, i, 7), &n);
        ri->it.groups = (const char *const *)g;
        ri->it.ngroups = n;
        if (lookup(u, ri->it.jid))
            item_free(ri);
        else
            link_item(u, ri);
    }
    u->state = U_READY;
    pump(u);
}

/* The cache entry of node; with create, a missing one is made and starts
 * loading. NULL if there is none, or the load could not start. */
static const char *ruser_key(const pl_hnode *n)
{
    return PL_HTAB_ENTRY(n, ruser, link)->node;
}

static ruser *ruser_get(instance *in, const char *node, int create)
{
    ruser *u = PL_HTAB_ENTRY(pl_htab_find_str(&in->users, node, ruser_key), ruser, link);
    if (u || !create)
        return u;
    u = pl_calloc(1, sizeof *u);
    u->in = in;
    u->node = pl_strdup(node);
    u->state = U_LOADING;
    const char *p[2] = { pl_host_name(in->host), node };
    if (pl_db_query(in->m, SQL_LOAD, 2, p, load_done, u) != PL_OK) {
        ruser_free(u);
        return NULL;
    }
    pl_htab_insert(&in->users, &u->link, pl_strhash(u->node));
    return u;
}

/* Queues o on u and runs what can run. PL_ELIMIT (o is not taken) if
 * too many operations wait. */
static int enqueue(ruser *u, op *o)
{
    if (u->nqueued >= MAX_QUEUED) {
        pl_mlog(u->in->m, PL_LOG_WARN, "too many roster operations waiting for %s", u->node);
        return PL_ELIMIT;
    }
    u->nqueued++;
    o->u = u;
    o->next = NULL;
    if (u->tail)
        u->tail->next = o;
    else
        u->head = o;
    u->tail = o;
    pump(u);
    return PL_OK;
}

/* ==== the IQ handler ==== */

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int fail(pl_event *ev, const char *type, const char *cond, const char *text)
{
    ev->error.type = type;
    ev->error.condition = cond;
    ev->error.text = text;
    return PL_ERROR;
}

/* Checks a roster set (RFC 6121 2.3.3, 2.5.3) and fills o; returns PL_OK
 * or PL_ERROR with ev->error set. */
static int parse_set(instance *in, pl_event *ev, pl_node *query, op *o)
{
    pl_node *item = pl_node_child(query, "item", NS_ROSTER);
    if (!item || pl_node_next(item, "item", NS_ROSTER))
        return fail(ev, "modify", "bad-request", "a roster set carries exactly one item");
    const char *jid = pl_node_attr(item, "jid");
    if (!jid)
        return fail(ev, "modify", "bad-request", "the item has no 'jid'");
    pl_jid *j = pl_jid_parse(jid);
    if (!j || j->resource) {
        pl_jid_free(j);
        return fail(ev, "modify", "jid-malformed", "the item's 'jid' is not a valid bare JID");
    }
    int self = pl_jid_bare_eq(j, pl_session_jid(ev->origin));
    o->contact = pl_strdup(j->bare);
    pl_jid_free(j);
    if (self)
        return fail(ev, "cancel", "not-allowed", "an account is not an item of its own roster");
    const char *sub = pl_node_attr(item, "subscription");
    if (sub && strcmp(sub, "remove") == 0) {
        o->kind = OP_REMOVE;
        return PL_OK;
    }
    o->kind = OP_SET;
    const char *name = pl_node_attr(item, "name");
    if (name && utf8_chars(name) > (size_t)in->max_name) {
        snprintf(in->errtext, sizeof in->errtext, "the name is longer than %d characters",
                 in->max_name);
        return fail(ev, "modify", "not-acceptable", in->errtext);
    }
    o->name = name && *name ? pl_strdup(name) : NULL;
    int n = 0;
    for (pl_node *g = pl_node_child(item, "group", NS_ROSTER); g;
         g = pl_node_next(g, "group", NS_ROSTER))
        n++;
    o->groups = pl_calloc((size_t)n + 1, sizeof *o->groups);
    for (pl_node *g = pl_node_child(item, "group", NS_ROSTER); g;
         g = pl_node_next(g, "group", NS_ROSTER)) {
        const char *text = pl_node_text(ev->stanza, g);
        if (!*text)
            return fail(ev, "modify", "not-acceptable", "a group name is empty");
        if (utf8_chars(text) > (size_t)in->max_group) {
            snprintf(in->errtext, sizeof in->errtext,
                     "a group name is longer than %d characters", in->max_group);
            return fail(ev, "modify", "not-acceptable", in->errtext);
        }
        for (int i = 0; i < o->ngroups; i++)
            if (strcmp(o->groups[i], text) == 0)
                return fail(ev, "modify", "bad-request", "the item lists a group twice");
        o->groups[o->ngroups++] = pl_strdup(text);
    }
    return PL_OK;
}

static int on_roster_iq(pl_event *ev, void *ud)
{
    instance *in = ud;
    if (ev->target != PL_TO_SELF || !ev->origin)
        return fail(ev, "auth", "forbidden", "only the account's own resources use its roster");
    pl_node *query = pl_node_first_element(pl_stanza_root(ev->stanza));
    const char *type = pl_node_attr(pl_stanza_root(ev->stanza), "type");
    op *o = pl_calloc(1, sizeof *o);
    o->sid = pl_session_id(ev->origin);
    if (strcmp(type, "get") == 0) {
        o->kind = OP_GET;
        const char *ver = pl_node_attr(query, "ver");
        o->ver = ver ? pl_strdup(ver) : NULL;
    } else if (parse_set(in, ev, query, o) != PL_OK) {
        op_free(o);
        return PL_ERROR;
    }
    ruser *u = ruser_get(in, pl_session_jid(ev->origin)->node, 1);
    if (!u) {
        op_free(o);
        return fail(ev, "wait", "internal-server-error", "the roster storage is unavailable");
    }
    o->st = pl_stanza_ref(ev->stanza);
    if (enqueue(u, o) != PL_OK) {
        op_free(o);
        return fail(ev, "wait", "resource-constraint", "too many roster requests are waiting");
    }
    return PL_HANDLED;
}

/* ==== hooks ==== */

static int on_bound(pl_event *ev, void *ud)
{
    instance *in = ud;
    const pl_jid *j = pl_session_jid(ev->origin);
    if (j)
        ruser_get(in, j->node, 1);
    return PL_PASS;
}

static int on_closed(pl_event *ev, void *ud)
{
    instance *in = ud;
    const pl_jid *j = pl_session_jid(ev->origin);
    ruser *u = j ? ruser_get(in, j->node, 0) : NULL;
    if (u)
        maybe_drop(u, 1);
    return PL_PASS;
}

static void stream_feature(pl_session *s, pl_stanza *st, pl_node *features, void *ud)
{
    pl_node_add(st, features, "ver", NS_ROSTERVER);
}

/* ==== the service for other modules ==== */

static ruser *ready_user(pl_host *h, const char *node)
{
    instance *in = instance_of(h);
    ruser *u = in && node ? ruser_get(in, node, 0) : NULL;
    return u && u->state == U_READY ? u : NULL;
}

static const pl_roster_item *api_item(pl_host *h, const char *node, const char *contact)
{
    ruser *u = ready_user(h, node);
    ritem *ri = u && contact ? lookup(u, contact) : NULL;
    return ri ? &ri->it : NULL;
}

static int api_cached(pl_host *h, const char *node)
{
    return ready_user(h, node) != NULL;
}

static int api_each(pl_host *h, const char *node, pl_roster_each_fn fn, void *ud)
{
    ruser *u = ready_user(h, node);
    if (!u || !fn)
        return PL_ENOENT;
    int n = 0;
    u->hold++;
    for (ritem *ri = u->first; ri; ri = ri->next, n++)
        fn(&ri->it, ud);
    u->hold--;
    maybe_drop(u, 0);
    return n;
}

static int api_update(pl_module *owner, pl_host *h, const char *node, const char *contact,
                      pl_roster_change_fn change, pl_roster_done_fn done, void *ud)
{
    instance *in = instance_of(h);
    if (!in || !node || !contact || !done)
        return PL_EINVAL;
    ruser *u = ruser_get(in, node, 1);
    if (!u)
        return PL_EUNAVAIL;
    op *o = pl_calloc(1, sizeof *o);
    o->kind = OP_UPDATE;
    o->owner = owner;
    o->contact = pl_strdup(contact);
    o->change = change;
    o->done = done;
    o->ud = ud;
    int rc = enqueue(u, o);
    if (rc != PL_OK)
        op_free(o);
    return rc;
}

static int api_loaded(const pl_session *s)
{
    const pl_jid *j = pl_session_jid(s);
    return j && ready_user(pl_session_host(s), j->node) != NULL;
}

static int api_when_loaded(pl_module *owner, pl_session *s, pl_roster_ready_fn fn, void *ud)
{
    instance *in = s ? instance_of(pl_session_host(s)) : NULL;
    const pl_jid *j = s ? pl_session_jid(s) : NULL;
    if (!in || !j || !fn)
        return PL_EINVAL;
    ruser *u = ruser_get(in, j->node, 1);
    if (!u)
        return PL_EUNAVAIL;
    if (u->state == U_READY && !u->head && !u->inflight) {
        fn(s, PL_OK, ud);
        return PL_OK;
    }
    op *o = pl_calloc(1, sizeof *o);
    o->kind = OP_READY;
    o->owner = owner;
    o->sid = pl_session_id(s);
    o->ready = fn;
    o->ud = ud;
    if (enqueue(u, o) != PL_OK) {
        op_free(o);
        return PL_ELIMIT;
    }
    return PL_AGAIN;
}

static int api_interested(const pl_session *s)
{
    instance *in = instance_of(pl_session_host(s));
    rsess *r = in ? pl_session_data(s, in->m) : NULL;
    return r && r->interested;
}

/* Drops owner's queued operations from every cached roster of in.
 * Nothing here runs a callback, so the only change to the table while it
 * is iterated is maybe_drop() removing the current account. */
static void cancel_in(instance *in, pl_module *owner)
{
    pl_htab_iter iter;
    for (pl_hnode *hn = pl_htab_first(&in->users, &iter); hn; hn = pl_htab_next(&iter)) {
        ruser *u = PL_HTAB_ENTRY(hn, ruser, link);
        if (u->inflight && u->inflight->owner == owner)
            u->inflight->cancelled = 1;
        op **pp = &u->head;
        u->tail = NULL;
        while (*pp) {
            op *o = *pp;
            if ((o->kind == OP_UPDATE || o->kind == OP_READY) && o->owner == owner) {
                *pp = o->next;
                u->nqueued--;
                op_free(o);
            } else {
                u->tail = o;
                pp = &o->next;
            }
        }
        maybe_drop(u, 0);
    }
}

static void api_cancel(pl_module *owner)
{
    for (instance *in = instances; in; in = in->next)
        cancel_in(in, owner);
}

static const pl_roster_api roster_api = {
    .item = api_item,
    .cached = api_cached,
    .each = api_each,
    .update = api_update,
    .loaded = api_loaded,
    .when_loaded = api_when_loaded,
    .interested = api_interested,
    .cancel = api_cancel,
};

/* ==== lifecycle ==== */

/* What survives a reload: which sessions asked for the roster, and whose
 * rosters were cached (they are loaded again right away). */
typedef struct saved {
    int nsess;
    struct {
        uint64_t id;
        int interested, versioned;
    } *sess;
    int nusers;
    char **users;
} saved;

static void *roster_save(pl_module *m)
{
    instance *in = pl_module_data(m);
    saved *sv = pl_calloc(1, sizeof *sv);
    if (!in)
        return sv;
    int n = 0;
    for (rsess *r = in->sessions; r; r = r->next)
        n++;
    sv->sess = pl_calloc((size_t)n + 1, sizeof *sv->sess);
    for (rsess *r = in->sessions; r; r = r->next) {
        sv->sess[sv->nsess].id = r->id;
        sv->sess[sv->nsess].interested = r->interested;
        sv->sess[sv->nsess].versioned = r->versioned;
        sv->nsess++;
    }
    sv->users = pl_calloc(pl_htab_count(&in->users) + 1, sizeof *sv->users);
    pl_htab_iter iter;
    for (pl_hnode *hn = pl_htab_first(&in->users, &iter); hn; hn = pl_htab_next(&iter)) {
        ruser *u = PL_HTAB_ENTRY(hn, ruser, link);
        if (u->state == U_READY)
            sv->users[sv->nusers++] = pl_strdup(u->node);
    }
    return sv;
}

static void roster_restore(pl_module *m, void *state)
{
    instance *in = pl_module_data(m);
    saved *sv = state;
    if (!sv)
        return;
    for (int i = 0; in && i < sv->nsess; i++) {
        pl_session *s = pl_session_by_id(sv->sess[i].id);
        if (!s || !pl_session_jid(s) || pl_session_host(s) != in->host)
            continue;
        rsess *r = rsess_of(in, s, 1);
        r->interested = sv->sess[i].interested;
        r->versioned = sv->sess[i].versioned;
    }
    for (int i = 0; i < sv->nusers; i++) {
        if (in && pl_user_sessions(in->host, sv->users[i], NULL, 0) > 0)
            ruser_get(in, sv->users[i], 1);
        pl_free(sv->users[i]);
    }
    pl_free(sv->users);
    pl_free(sv->sess);
    pl_free(sv);
}

static void roster_unload(pl_module *m)
{
    instance *in = pl_module_data(m);
    if (!in)
        return;
    for (instance **pp = &instances; *pp; pp = &(*pp)->next)
        if (*pp == in) {
            *pp = in->next;
            break;
        }
    /* Everyone still waiting hears that the roster went away. Their
     * callbacks may run anything, so the accounts leave the instance's
     * table before the first one runs. Queries in flight are cancelled by
     * the core after this returns. */
    pl_htab users = in->users;
    pl_htab_init(&in->users);
    pl_htab_iter iter;
    for (pl_hnode *hn = pl_htab_first(&users, &iter); hn; hn = pl_htab_next(&iter)) {
        ruser *u = PL_HTAB_ENTRY(hn, ruser, link);
        u->pumping = 1;
        if (u->inflight) {
            op *o = u->inflight;
            u->inflight = NULL;
            report(o, PL_EUNAVAIL, NULL, NULL);
            op_free(o);
        }
        fail_all(u, PL_EUNAVAIL);
        ruser_free(u);
    }
    pl_htab_clear(&users);
    pl_htab_clear(&in->users);
    for (rsess *r = in->sessions; r; r = r->next)
        r->in = NULL;
    pl_free(in);
    pl_module_set_data(m, NULL);
}

static int roster_load(pl_module *m)
{
    instance *in = pl_calloc(1, sizeof *in);
    in->m = m;
    in->host = pl_module_host(m);
    in->max_items = (int)pl_option_int(m, "max_items");
    in->max_name = (int)pl_option_int(m, "max_name_length");
    in->max_group = (int)pl_option_int(m, "max_group_length");
    in->next = instances;
    instances = in;
    pl_module_set_data(m, in);
    int rc = pl_iq_handle(m, PL_IQ_GET | PL_IQ_SET, PL_TO_SELF | PL_TO_BARE, NS_ROSTER, "query",
                          on_roster_iq, in);
    if (rc == PL_OK)
        rc = pl_hook(m, "session/bound", on_bound, in, 0);
    /* after every module that may still want the roster of a closing
     * session (they hook at higher priorities) */
    if (rc == PL_OK)
        rc = pl_hook(m, "session/closed", on_closed, in, -10);
    if (rc == PL_OK)
        rc = pl_add_stream_feature(m, stream_feature, in);
    if (rc == PL_OK)
        rc = pl_provide_api(m, PL_ROSTER_API, &roster_api);
    if (rc != PL_OK)
        roster_unload(m);
    return rc;
}

static const pl_option roster_options[] = {
    { .name = "max_items", .type = PL_OPT_INT, .def = "1000", .min = 1, .max = 1000000,
      .help = "most items a roster may hold (and most pending requests kept from non-items)" },
    { .name = "max_name_length", .type = PL_OPT_INT, .def = "1023", .min = 1, .max = 65535,
      .help = "longest item name, in characters" },
    { .name = "max_group_length", .type = PL_OPT_INT, .def = "1023", .min = 1, .max = 65535,
      .help = "longest group name, in characters" },
    { .name = NULL },
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "roster",
    .description = "Rosters (RFC 6121 section 2) with roster versioning (XEP-0237)",
    .options = roster_options,
    .load = roster_load,
    .unload = roster_unload,
    .save = roster_save,
    .restore = roster_restore,
};
