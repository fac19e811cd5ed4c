/* modules/mod_blocking/mod_blocking.c: Blocking Command (XEP-0191). Each
 * account keeps a list of blocked JIDs (table blocklist); the module holds
 * the lists of its host in memory, loaded when it loads and changed only
 * after the database accepted a change. Clients get, extend and shrink
 * their list with urn:xmpp:blocking IQs; resources that asked for the
 * list get pushes. Stanzas from a blocked JID to the account are not
 * delivered (messages and IQ requests bounce with service-unavailable,
 * the rest are dropped), stanzas the account's clients send to a blocked
 * JID bounce with not-acceptable and <blocked/>, and presence broadcasts
 * of the account never reach a blocked JID. */
#include <stdint.h>
#include <string.h>
#include <parley/module.h>

#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"

/* Longest delay before loading the lists again after a failure. */
#define RELOAD_MS 5000
/* Requests queued while the lists load; beyond this they are refused. */
#define MAX_QUEUED 1000

#define SQL_LOAD "SELECT username, jid FROM blocklist WHERE host = $1 ORDER BY username, jid"
#define SQL_BLOCK \
    "INSERT INTO blocklist (host, username, jid) SELECT $1, $2, unnest($3::text[]) " \
    "ON CONFLICT DO NOTHING"
#define SQL_UNBLOCK \
    "DELETE FROM blocklist WHERE host = $1 AND username = $2 AND jid = ANY ($3::text[])"
#define SQL_UNBLOCK_ALL "DELETE FROM blocklist WHERE host = $1 AND username = $2"
/* Contacts that receive the account's presence (RFC 6121 section 4). */
#define SQL_CONTACTS \
    "SELECT contact FROM roster WHERE host = $1 AND username = $2 AND in_roster " \
    "AND subscription IN ('from', 'both')"

/* ==== the block lists ==== */

/* One account's list: prepared JIDs in the order they were added. */
typedef struct blist {
    struct blist *next;     /* hash chain */
    char *user;
    char **jids;
    int n, cap;
} blist;

typedef struct op op;
typedef struct instance {
    struct instance *next;
    pl_module *m;
    pl_host *h;
    const char *host;
    long long max_items;
    int loaded;
    int retry_ms;           /* current back-off of the initial load */
    blist **buckets;
    size_t nbuckets, nusers;
    op *ops, *ops_tail;     /* requests, handled one at a time in order */
    int nops;
} instance;

static instance *instances;
/* Set while the module itself sends presence that its own filter would
 * stop (the unavailable presence that announces a block). */
static int bypass;
/* Session data marking a resource that requested the list. */
static int interested_marker;

static size_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static blist *find(const instance *inst, const char *user)
{
    if (!inst->nbuckets)
        return NULL;
    for (blist *b = inst->buckets[hash_of(user) % inst->nbuckets]; b; b = b->next)
        if (strcmp(b->user, user) == 0)
            return b;
    return NULL;
}

static void rehash(instance *inst, size_t n)
{
    blist **nb = pl_calloc(n, sizeof *nb);
    for (size_t i = 0; i < inst->nbuckets; i++)
        for (blist *b = inst->buckets[i], *next; b; b = next) {
            next = b->next;
            size_t k = hash_of(b->user) % n;
            b->next = nb[k];
            nb[k] = b;
        }
    pl_free(inst->buckets);
    inst->buckets = nb;
    inst->nbuckets = n;
}

static blist *find_or_add(instance *inst, const char *user)
{
    blist *b = find(inst, user);
    if (b)
        return b;
    if (inst->nusers >= inst->nbuckets)
        rehash(inst, inst->nbuckets ? inst->nbuckets * 2 : 256);
    b = pl_calloc(1, sizeof *b);
    b->user = pl_strdup(user);
    size_t k = hash_of(user) % inst->nbuckets;
    b->next = inst->buckets[k];
    inst->buckets[k] = b;
    inst->nusers++;
    return b;
}

static void free_jids(char **jids, int n)
{
    for (int i = 0; i < n; i++)
        pl_free(jids[i]);
    pl_free(jids);
}

/* Unlinks and frees user's list (it became empty). */
static void drop_list(instance *inst, blist *b)
{
    blist **pp = &inst->buckets[hash_of(b->user) % inst->nbuckets];
    while (*pp != b)
        pp = &(*pp)->next;
    *pp = b->next;
    inst->nusers--;
    free_jids(b->jids, b->n);
    pl_free(b->user);
    pl_free(b);
}

static void drop_all(instance *inst)
{
    for (size_t i = 0; i < inst->nbuckets; i++)
        while (inst->buckets[i])
            drop_list(inst, inst->buckets[i]);
    pl_free(inst->buckets);
    inst->buckets = NULL;
    inst->nbuckets = 0;
}

static int list_has(const blist *b, const char *jid)
{
    for (int i = 0; b && i < b->n; i++)
        if (strcmp(b->jids[i], jid) == 0)
            return 1;
    return 0;
}

static void list_add(blist *b, const char *jid)
{
    if (list_has(b, jid))
        return;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 8;
        b->jids = pl_realloc(b->jids, (size_t)b->cap * sizeof *b->jids);
    }
    b->jids[b->n++] = pl_strdup(jid);
}

static void list_remove(blist *b, const char *jid)
{
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->jids[i], jid) == 0) {
            pl_free(b->jids[i]);
            memmove(b->jids + i, b->jids + i + 1, (size_t)(b->n - i - 1) * sizeof *b->jids);
            b->n--;
            return;
        }
}

/* Whether the list blocks j (XEP-0191 section 3, with the JID matching of
 * XEP-0016 section 2.1): an item equal to j's full JID, its bare JID or
 * its domain. */
static int list_matches(const blist *b, const pl_jid *j)
{
    for (int i = 0; b && i < b->n; i++) {
        const char *x = b->jids[i];
        if (strcmp(x, j->full) == 0 || strcmp(x, j->bare) == 0 || strcmp(x, j->domain) == 0)
            return 1;
    }
    return 0;
}

static instance *instance_of_domain(const char *domain)
{
    for (instance *i = instances; i; i = i->next)
        if (strcmp(i->host, domain) == 0)
            return i;
    return NULL;
}

/* Whether local account from (of any host this module serves) blocks to. */
static int user_blocks(const pl_jid *from, const pl_jid *to)
{
    instance *inst = from && from->node ? instance_of_domain(from->domain) : NULL;
    return inst && inst->loaded && to && list_matches(find(inst, from->node), to);
}

/* ==== helpers ==== */

/* The bound sessions of user (caller frees the array). */
static pl_session **sessions_of(instance *inst, const char *user, int *n)
{
    *n = pl_user_sessions(inst->h, user, NULL, 0);
    if (*n <= 0)
        return NULL;
    pl_session **ss = pl_malloc((size_t)*n * sizeof *ss);
    int got = pl_user_sessions(inst->h, user, ss, *n);
    if (got < *n)
        *n = got;
    return ss;
}

static int type_is(const pl_stanza *st, const char *type)
{
    const char *t = pl_node_attr(pl_stanza_root(st), "type");
    return t && strcmp(t, type) == 0;
}

/* Errors and IQ results are never answered. */
static int is_answer(const pl_stanza *st)
{
    return type_is(st, "error") || (strcmp(pl_stanza_root(st)->name, "iq") == 0
                                    && type_is(st, "result"));
}

/* Appends a PostgreSQL array literal of the strings. */
static void pg_array(pl_buf *b, char *const *items, int n)
{
    pl_buf_putc(b, '{');
    for (int i = 0; i < n; i++)
        pl_db_array_add(b, items[i]);
    pl_buf_putc(b, '}');
}

/* ==== enforcement ==== */

/* Stanzas to an account from a JID it blocks. */
static int blocked_inbound(instance *inst, const pl_event *ev)
{
    if (!inst->loaded || !ev->to || !ev->to->node || !ev->from)
        return 0;
    return list_matches(find(inst, ev->to->node), ev->from);
}

/* XEP-0191 3.5: messages bounce with service-unavailable. */
static int on_message_in(pl_event *ev, void *ud)
{
    if (!blocked_inbound(ud, ev))
        return PL_PASS;
    pl_reply_error(ev, "cancel", "service-unavailable", NULL);
    return PL_HANDLED;
}

/* IQ requests bounce with service-unavailable, answers are dropped. */
static int on_iq_in(pl_event *ev, void *ud)
{
    if (!blocked_inbound(ud, ev))
        return PL_PASS;
    pl_reply_error(ev, "cancel", "service-unavailable", NULL);
    return PL_HANDLED;
}

/* A presence broadcast the server sends for an account (no client
 * origin): never to a JID the account blocks. */
static int blocked_broadcast(const pl_event *ev)
{
    if (bypass || ev->origin || strcmp(pl_stanza_root(ev->stanza)->name, "presence") != 0)
        return 0;
    const char *type = pl_node_attr(pl_stanza_root(ev->stanza), "type");
    if (type && strcmp(type, "unavailable") != 0)
        return 0;
    return user_blocks(ev->from, ev->to);
}

/* Inbound presence from a blocked JID is dropped silently. */
static int on_presence_in(pl_event *ev, void *ud)
{
    if (blocked_inbound(ud, ev) || blocked_broadcast(ev))
        return PL_HANDLED;
    return PL_PASS;
}

/* Broadcasts to remote JIDs pass the global route/remote event. */
static int on_remote(pl_event *ev, void *ud)
{
    instance *inst = ud;
    if (!ev->from || strcmp(ev->from->domain, inst->host) != 0)
        return PL_PASS;
    return blocked_broadcast(ev) ? PL_HANDLED : PL_PASS;
}

/* XEP-0191 3.6: a client sending to a JID its account blocks gets
 * not-acceptable with <blocked/>. */
static int on_outbound(pl_event *ev, void *ud)
{
    instance *inst = ud;
    const pl_jid *me = ev->origin ? pl_session_jid(ev->origin) : NULL;
    if (!inst->loaded || !me || !ev->to || !list_matches(find(inst, me->node), ev->to))
        return PL_PASS;
    if (is_answer(ev->stanza))
        return PL_HANDLED;
    pl_stanza *err = pl_stanza_error_reply(ev->stanza, "cancel", "not-acceptable", NULL);
    pl_node *e = pl_node_child(pl_stanza_root(err), "error", NULL);
    pl_node_add(err, e, "blocked", NS_BLOCKING_ERRORS);
    pl_send(ev->origin, err);
    pl_stanza_unref(err);
    return PL_HANDLED;
}

/* ==== loading ==== */

static void load_start(void *ud);
static void op_run(instance *inst);

/* Tries again later, backing off from 100 ms to RELOAD_MS (the database
 * is usually still connecting when the module loads with the server). */
static void load_later(instance *inst, const char *why)
{
    inst->retry_ms = inst->retry_ms ? inst->retry_ms * 2 : 100;
    if (inst->retry_ms >= RELOAD_MS) {
        inst->retry_ms = RELOAD_MS;
        pl_mlog(inst->m, PL_LOG_WARN, "cannot load block lists (retrying in %d s): %s",
                RELOAD_MS / 1000, why);
    }
    pl_timer_add(inst->m, (unsigned)inst->retry_ms, 0, load_start, inst);
}

static void load_done(const pl_db_result *res, void *ud)
{
    instance *inst = ud;
    if (!pl_db_ok(res)) {
        load_later(inst, pl_db_error(res));
        return;
    }
    int n = pl_db_rows(res);
    for (int i = 0; i < n; i++)
        list_add(find_or_add(inst, pl_db_value(res, i, 0)), pl_db_value(res, i, 1));
    inst->loaded = 1;
    pl_mlog(inst->m, PL_LOG_INFO, "loaded %d blocked JIDs of %zu accounts", n, inst->nusers);
    op_run(inst);
}

static void load_start(void *ud)
{
    instance *inst = ud;
    const char *params[1] = { inst->host };
    if (pl_db_query(inst->m, SQL_LOAD, 1, params, load_done, inst) != PL_OK)
        load_later(inst, "database unavailable");
}

/* ==== changes ==== */

/* A blocklist request. Requests are handled one at a time, in order, so
 * that the lists in memory follow the database in the same order and a
 * get answers after the changes sent before it; they wait while the lists
 * load. */
struct op {
    op *next;
    instance *inst;
    uint64_t sid;
    pl_stanza *iq;
    char *user;
    int get;            /* a blocklist get */
    int block;          /* block, else unblock */
    int all;            /* unblock with no items: everything */
    char **jids;        /* the items, prepared; for "all", what was removed */
    int n;
    int running;
};

static void op_free(op *o)
{
    pl_stanza_unref(o->iq);
    pl_free(o->user);
    free_jids(o->jids, o->n);
    pl_free(o);
}

static void answer(op *o, pl_stanza *reply)
{
    pl_session *s = pl_session_by_id(o->sid);
    if (s)
        pl_send(s, reply);
    pl_stanza_unref(reply);
}

static void answer_error(op *o, const char *type, const char *condition, const char *text)
{
    answer(o, pl_stanza_error_reply(o->iq, type, condition, text));
}

/* Removes and frees the head request. */
static void op_pop(instance *inst)
{
    op *o = inst->ops;
    inst->ops = o->next;
    if (!inst->ops)
        inst->ops_tail = NULL;
    inst->nops--;
    op_free(o);
}

/* The head request is done: on to the next one. */
static void op_finish(instance *inst)
{
    op_pop(inst);
    op_run(inst);
}

/* Answers a get with the list, and marks the session as interested in
 * pushes (XEP-0191 section 3.2). */
static void answer_list(instance *inst, pl_session *s, const pl_stanza *iq, const char *user)
{
    const blist *b = find(inst, user);
    pl_stanza *reply = pl_stanza_reply(iq);
    pl_node *l = pl_node_add(reply, pl_stanza_root(reply), "blocklist", NS_BLOCKING);
    for (int i = 0; b && i < b->n; i++) {
        pl_node *item = pl_node_add(reply, l, "item", NULL);
        pl_node_set_attr(reply, item, "jid", b->jids[i]);
    }
    pl_session_set_data(s, inst->m, &interested_marker, NULL);
    pl_send(s, reply);
    pl_stanza_unref(reply);
}

/* Sends the IQ push of a change to the user's interested resources. */
static void push(op *o)
{
    int n;
    pl_session **ss = sessions_of(o->inst, o->user, &n);
    for (int i = 0; i < n; i++) {
        if (pl_session_data(ss[i], o->inst->m) != &interested_marker)
            continue;
        pl_stanza *st = pl_stanza_new("iq", NULL);
        pl_node *root = pl_stanza_root(st);
        pl_node_set_attr(st, root, "type", "set");
        pl_node_set_attr(st, root, "id", o->block ? "block-push" : "unblock-push");
        pl_node_set_attr(st, root, "to", pl_session_jid(ss[i])->full);
        pl_node *c = pl_node_add(st, root, o->block ? "block" : "unblock", NS_BLOCKING);
        for (int k = 0; !o->all && k < o->n; k++) {
            pl_node *item = pl_node_add(st, c, "item", NULL);
            pl_node_set_attr(st, item, "jid", o->jids[k]);
        }
        pl_send(ss[i], st);
        pl_stanza_unref(st);
    }
    pl_free(ss);
}

/* Updates the list in memory after the database accepted the change. */
static void apply(op *o)
{
    instance *inst = o->inst;
    blist *b = find(inst, o->user);
    if (o->block) {
        b = find_or_add(inst, o->user);
        for (int i = 0; i < o->n; i++)
            list_add(b, o->jids[i]);
        return;
    }
    if (!b)
        return;
    if (o->all) {
        /* keep what was removed: its contacts get our presence again */
        o->jids = b->jids;
        o->n = b->n;
        b->jids = NULL;
        b->n = 0;
    }
    for (int i = 0; !o->all && i < o->n; i++)
        list_remove(b, o->jids[i]);
    if (b->n == 0)
        drop_list(inst, b);
}

/* The JID a changed item concerns for a contact (a bare JID from the
 * roster): the item itself if it is the contact's full JID, the contact if
 * the item is its bare JID or its domain, else NULL. */
static const char *target_for(const char *item, const pl_jid *contact)
{
    pl_jid *ij = pl_jid_parse(item);
    const char *t = NULL;
    if (!ij)
        return NULL;
    if (ij->node && ij->resource && strcmp(ij->bare, contact->bare) == 0)
        t = item;
    else if (ij->node && !ij->resource && strcmp(ij->bare, contact->bare) == 0)
        t = contact->bare;
    else if (!ij->node && !ij->resource && strcmp(ij->domain, contact->domain) == 0)
        t = contact->bare;
    pl_jid_free(ij);
    return t;
}

/* XEP-0191 3.3 and 3.4: a newly blocked contact gets unavailable
 * presence from each available resource; an unblocked one gets their
 * current presence. */
static void presence_to(op *o, pl_session **ss, int n, const char *target)
{
    pl_jid *tj = pl_jid_parse(target);
    if (!tj)
        return;
    int still_blocked = !o->block && list_matches(find(o->inst, o->user), tj);
    pl_jid_free(tj);
    if (still_blocked)
        return;
    for (int i = 0; i < n; i++) {
        pl_stanza *p = pl_session_available(ss[i]) ? pl_session_presence(ss[i]) : NULL;
        if (!p)
            continue;
        pl_stanza *st;
        if (o->block) {
            st = pl_stanza_new("presence", NULL);
            pl_node_set_attr(st, pl_stanza_root(st), "type", "unavailable");
        } else {
            st = pl_stanza_copy(p);
            pl_node_set_attr(st, pl_stanza_root(st), "id", NULL);
        }
        pl_node_set_attr(st, pl_stanza_root(st), "from", pl_session_jid(ss[i])->full);
        pl_node_set_attr(st, pl_stanza_root(st), "to", target);
        bypass = o->block;
        pl_route(st);
        bypass = 0;
        pl_stanza_unref(st);
    }
}

static void contacts_done(const pl_db_result *res, void *ud)
{
    op *o = ud;
    instance *inst = o->inst;
    if (!pl_db_ok(res)) {
        pl_mlog(inst->m, PL_LOG_WARN, "reading the roster of %s failed: %s", o->user,
                pl_db_error(res));
        op_finish(inst);
        return;
    }
    int n;
    pl_session **ss = sessions_of(inst, o->user, &n);
    for (int r = 0; r < pl_db_rows(res); r++) {
        pl_jid *cj = pl_jid_parse(pl_db_value(res, r, 0));
        for (int k = 0; cj && k < o->n; k++) {
            const char *t = target_for(o->jids[k], cj);
            if (t)
                presence_to(o, ss, n, t);
        }
        pl_jid_free(cj);
    }
    pl_free(ss);
    op_finish(inst);
}

/* After the change: presence to the contacts concerned, if any resource
 * of the account is available. Returns 1 if a query is under way. */
static int notify_contacts(op *o)
{
    int n, any = 0;
    pl_session **ss = sessions_of(o->inst, o->user, &n);
    for (int i = 0; i < n; i++)
        any |= pl_session_available(ss[i]);
    pl_free(ss);
    if (!any || o->n == 0)
        return 0;
    const char *params[2] = { o->inst->host, o->user };
    return pl_db_query(o->inst->m, SQL_CONTACTS, 2, params, contacts_done, o) == PL_OK;
}

static void write_done(const pl_db_result *res, void *ud)
{
    op *o = ud;
    instance *inst = o->inst;
    if (!pl_db_ok(res)) {
        pl_mlog(inst->m, PL_LOG_WARN, "changing the block list of %s failed: %s", o->user,
                pl_db_error(res));
        answer_error(o, NULL, "internal-server-error", NULL);
        op_finish(inst);
        return;
    }
    apply(o);
    answer(o, pl_stanza_reply(o->iq));
    push(o);
    if (!notify_contacts(o))
        op_finish(inst);
}

/* How many of the op's items are not on the list yet. */
static int new_items(const op *o)
{
    const blist *b = find(o->inst, o->user);
    int k = 0;
    for (int i = 0; i < o->n; i++)
        k += !list_has(b, o->jids[i]);
    return k;
}

/* Handles queued requests in order until one waits for the database
 * (or the lists are not loaded yet); those that cannot start are
 * answered and skipped. */
static void op_run(instance *inst)
{
    for (op *o = inst->ops; inst->loaded && o && !o->running; o = inst->ops) {
        const blist *b = find(inst, o->user);
        if (o->get) {
            pl_session *s = pl_session_by_id(o->sid);
            if (s)
                answer_list(inst, s, o->iq, o->user);
            op_pop(inst);
            continue;
        }
        if (o->block && (b ? b->n : 0) + new_items(o) > inst->max_items) {
            answer_error(o, NULL, "policy-violation", "the block list is full");
            op_pop(inst);
            continue;
        }
        pl_buf arr = PL_BUF_INIT;
        pg_array(&arr, o->jids, o->n);
        const char *params[3] = { inst->host, o->user, arr.data };
        const char *sql = o->block ? SQL_BLOCK : o->all ? SQL_UNBLOCK_ALL : SQL_UNBLOCK;
        int rc = pl_db_query(inst->m, sql, o->all ? 2 : 3, params, write_done, o);
        pl_buf_free(&arr);
        if (rc == PL_OK) {
            o->running = 1;
            return;
        }
        pl_mlog(inst->m, PL_LOG_WARN, "cannot change the block list of %s: "
                "database unavailable", o->user);
        answer_error(o, "wait", "internal-server-error", NULL);
        op_pop(inst);
    }
}

/* ==== IQ handlers ==== */

static int refuse(pl_event *ev, const char *type, const char *condition, const char *text)
{
    ev->error.type = type;
    ev->error.condition = condition;
    ev->error.text = text;
    return PL_ERROR;
}

/* Queues a request; refused while too many wait for the lists to load. */
static int enqueue(instance *inst, pl_event *ev, op *o)
{
    if (inst->nops >= MAX_QUEUED) {
        op_free(o);
        return refuse(ev, "wait", "internal-server-error", "the block lists are not loaded yet");
    }
    o->inst = inst;
    o->sid = pl_session_id(ev->origin);
    o->iq = pl_stanza_ref(ev->stanza);
    o->user = pl_strdup(ev->from->node);
    if (inst->ops_tail)
        inst->ops_tail->next = o;
    else
        inst->ops = o;
    inst->ops_tail = o;
    inst->nops++;
    op_run(inst);
    return PL_HANDLED;
}

static int on_get(pl_event *ev, void *ud)
{
    instance *inst = ud;
    if (!ev->origin || !ev->from->node)
        return refuse(ev, NULL, "forbidden", NULL);
    if (inst->loaded && !inst->ops) {
        answer_list(inst, ev->origin, ev->stanza, ev->from->node);
        return PL_HANDLED;
    }
    op *o = pl_calloc(1, sizeof *o);
    o->get = 1;
    return enqueue(inst, ev, o);
}

/* Collects the prepared JIDs of the <item/>s of c into o (no duplicates).
 * Returns 0, or -1 if one is missing or malformed. */
static int collect_items(op *o, const pl_node *c)
{
    for (const pl_node *it = pl_node_child(c, "item", NS_BLOCKING); it;
         it = pl_node_next(it, "item", NS_BLOCKING)) {
        const char *s = pl_node_attr(it, "jid");
        pl_jid *j = s ? pl_jid_parse(s) : NULL;
        if (!j)
            return -1;
        int dup = 0;
        for (int i = 0; i < o->n && !dup; i++)
            dup = strcmp(o->jids[i], j->full) == 0;
        if (!dup) {
            o->jids = pl_realloc(o->jids, (size_t)(o->n + 1) * sizeof *o->jids);
            o->jids[o->n++] = pl_strdup(j->full);
        }
        pl_jid_free(j);
    }
    return 0;
}

static int on_change(pl_event *ev, instance *inst, int block)
{
    if (!ev->origin || !ev->from->node)
        return refuse(ev, NULL, "forbidden", NULL);
    const pl_node *c = pl_node_first_element(pl_stanza_root(ev->stanza));
    op *o = pl_calloc(1, sizeof *o);
    o->block = block;
    if (collect_items(o, c) < 0) {
        op_free(o);
        return refuse(ev, NULL, "jid-malformed", NULL);
    }
    if (block && o->n == 0) {
        op_free(o);
        return refuse(ev, NULL, "bad-request", "a block request needs at least one item");
    }
    o->all = !block && o->n == 0;
    return enqueue(inst, ev, o);
}

static int on_block(pl_event *ev, void *ud)
{
    return on_change(ev, ud, 1);
}

static int on_unblock(pl_event *ev, void *ud)
{
    return on_change(ev, ud, 0);
}

/* ==== lifecycle ==== */

static void blocking_unload(pl_module *m)
{
    instance *inst = pl_module_data(m);
    if (!inst)
        return;
    for (instance **pp = &instances; *pp; pp = &(*pp)->next)
        if (*pp == inst) {
            *pp = inst->next;
            break;
        }
    /* the core cancels our queries after this; waiting requesters still
     * get an answer */
    while (inst->ops) {
        answer_error(inst->ops, "wait", "internal-server-error", NULL);
        op_pop(inst);
    }
    drop_all(inst);
    pl_free(inst);
    pl_module_set_data(m, NULL);
}

static const struct {
    const char *event;
    pl_hook_fn fn;
} hooks[] = {
    { "message/bare", on_message_in },  { "message/full", on_message_in },
    { "message/offline", on_message_in },
    { "presence/bare", on_presence_in }, { "presence/full", on_presence_in },
    { "iq/bare", on_iq_in },            { "iq/full", on_iq_in },
    { "pre-message", on_outbound },     { "pre-presence", on_outbound },
    { "pre-iq", on_outbound },
};

static int register_all(pl_module *m, instance *inst)
{
    int rc = pl_add_feature(m, NS_BLOCKING);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET, PL_TO_SELF, NS_BLOCKING, "blocklist", on_get, inst);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_SET, PL_TO_SELF, NS_BLOCKING, "block", on_block, inst);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_SET, PL_TO_SELF, NS_BLOCKING, "unblock", on_unblock, inst);
    for (size_t i = 0; rc == 0 && i < sizeof hooks / sizeof hooks[0]; i++)
        rc = pl_hook(m, hooks[i].event, hooks[i].fn, inst, 100);
    if (rc == 0)
        rc = pl_hook_global(m, "route/remote", on_remote, inst, 100);
    return rc;
}

static int blocking_load(pl_module *m)
{
    instance *inst = pl_calloc(1, sizeof *inst);
    inst->m = m;
    inst->h = pl_module_host(m);
    inst->host = pl_host_name(inst->h);
    inst->max_items = pl_option_int(m, "max_items");
    inst->next = instances;
    instances = inst;
    pl_module_set_data(m, inst);
    int rc = register_all(m, inst);
    if (rc < 0) {
        blocking_unload(m);
        return rc;
    }
    load_start(inst);
    return PL_OK;
}

static const pl_option blocking_options[] = {
    { .name = "max_items", .type = PL_OPT_INT, .def = "1000", .min = 1, .max = 100000,
      .help = "JIDs one account may block" },
    { .name = NULL }
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "blocking",
    .description = "Blocking Command (XEP-0191): per-account block lists",
    .options = blocking_options,
    .load = blocking_load,
    .unload = blocking_unload,
};
