/* modules/mod_offline/mod_offline.c: offline messages (XEP-0160, RFC 6121
 * 8.5.2.1.1 and 8.5.2.2). A chat or normal message for an account with no
 * available resource is stored in the table offline, stamped with a
 * <delay/> (XEP-0203); it counts as accepted only once the insert has
 * committed, and every other outcome (no such account, quota reached,
 * database down or failing) answers the sender with service-unavailable.
 * When a session of the account becomes available with a non-negative
 * priority, the stored messages are sent to it in order and then exactly
 * those are deleted. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <parley/module.h>

#define NS_DELAY      "urn:xmpp:delay"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_HINTS      "urn:xmpp:hints"

/* Messages fetched per round trip when a session comes online. */
#define FETCH_BATCH 500
#define FETCH_BATCH_S "500"

/* One statement: the insert happens only if the account exists and is
 * under its quota, and the answer tells which check failed. */
#define SQL_STORE \
    "WITH u AS (SELECT 1 FROM users WHERE host = $1 AND username = $2), " \
    "ins AS (INSERT INTO offline (host, username, stanza) " \
    "SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM u) " \
    "AND (SELECT count(*) FROM offline WHERE host = $1 AND username = $2) < $4::bigint " \
    "RETURNING id) " \
    "SELECT EXISTS (SELECT 1 FROM u), (SELECT id FROM ins)"
#define SQL_FETCH \
    "SELECT id, stanza FROM offline WHERE host = $1 AND username = $2 " \
    "ORDER BY id LIMIT " FETCH_BATCH_S
#define SQL_DELETE \
    "DELETE FROM offline WHERE host = $1 AND username = $2 AND id = ANY ($3::bigint[])"

typedef struct instance instance;

/* A message waiting for its insert. Requests of one account run one at a
 * time, in arrival order, so that concurrent inserts cannot both pass the
 * quota check. */
typedef struct store_req {
    struct store_req *prev, *next;
    instance *inst;
    char *user;
    uint64_t origin;    /* the sender's session id, 0 if not a local client */
    pl_stanza *msg;     /* the message as received (referenced) */
    char *xml;          /* what is stored: the message with its <delay/> */
    int running;
} store_req;

/* A delivery in progress to one session: fetch, send, delete, repeat
 * while batches come back full. At most one per account. */
typedef struct fetch_req {
    struct fetch_req *prev, *next;
    instance *inst;
    char *user;
    uint64_t sid;
    int again;          /* a message was stored meanwhile: fetch once more */
    int full;           /* the last batch was full */
} fetch_req;

struct instance {
    pl_module *m;
    const char *host;
    long long quota;
    store_req *stores, *stores_tail;
    fetch_req *fetches;
};

/* The per-session marker: present while the session is available with a
 * non-negative priority and has been offered its stored messages. */
static int eligible_marker;

/* ==== storing ==== */

static void store_unlink(store_req *r)
{
    instance *inst = r->inst;
    if (r->prev)
        r->prev->next = r->next;
    else
        inst->stores = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        inst->stores_tail = r->prev;
}

static void store_free(store_req *r)
{
    store_unlink(r);
    pl_stanza_unref(r->msg);
    pl_free(r->user);
    pl_free(r->xml);
    pl_free(r);
}

/* Answers the sender with service-unavailable (RFC 6121 8.5.2.2.1). */
static void bounce(store_req *r, const char *text)
{
    pl_stanza *err = pl_stanza_error_reply(r->msg, "cancel", "service-unavailable", text);
    pl_session *s = r->origin ? pl_session_by_id(r->origin) : NULL;
    if (s)
        pl_send(s, err);
    else if (pl_node_attr(pl_stanza_root(err), "to"))
        pl_route(err);
    pl_stanza_unref(err);
}

static void store_done(const pl_db_result *res, void *ud);

static int store_start(store_req *r)
{
    char quota[32];
    snprintf(quota, sizeof quota, "%lld", r->inst->quota);
    const char *params[4] = { r->inst->host, r->user, r->xml, quota };
    int rc = pl_db_query(r->inst->m, SQL_STORE, 4, params, store_done, r);
    if (rc == PL_OK)
        r->running = 1;
    return rc;
}

/* Starts the oldest waiting request of user, bouncing those that cannot
 * start. */
static void store_next(instance *inst, const char *user)
{
    store_req *r = inst->stores, *next;
    for (; r; r = next) {
        next = r->next;
        if (r->running || strcmp(r->user, user) != 0)
            continue;
        if (store_start(r) == PL_OK)
            return;
        pl_mlog(inst->m, PL_LOG_WARN, "cannot store an offline message for %s: "
                "database unavailable", user);
        bounce(r, NULL);
        store_free(r);
    }
}

static int has_earlier(const store_req *r)
{
    for (const store_req *o = r->prev; o; o = o->prev)
        if (strcmp(o->user, r->user) == 0)
            return 1;
    return 0;
}

static void kick_delivery(instance *inst, const char *user);

static void store_done(const pl_db_result *res, void *ud)
{
    store_req *r = ud;
    instance *inst = r->inst;
    int stored = 0;
    if (!pl_db_ok(res)) {
        pl_mlog(inst->m, PL_LOG_WARN, "storing an offline message for %s failed: %s",
                r->user, pl_db_error(res));
        bounce(r, NULL);
    } else if (pl_db_rows(res) != 1 || strcmp(pl_db_value(res, 0, 0), "t") != 0) {
        bounce(r, NULL);
    } else if (pl_db_isnull(res, 0, 1)) {
        pl_mlog(inst->m, PL_LOG_INFO, "offline storage of %s is full (%lld messages)",
                r->user, inst->quota);
        bounce(r, "offline storage is full");
    } else {
        stored = 1;
    }
    char *user = pl_strdup(r->user);
    store_free(r);
    if (stored)
        kick_delivery(inst, user);
    store_next(inst, user);
    pl_free(user);
}

/* XEP-0082 UTC date-time of now. */
static void utc_stamp(char *out, size_t n)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The stored form of msg: a copy with <delay from=host stamp=now/>. */
static char *serialize_delayed(const instance *inst, const pl_stanza *msg)
{
    char stamp[32];
    utc_stamp(stamp, sizeof stamp);
    pl_stanza *copy = pl_stanza_copy(msg);
    pl_node *d = pl_node_add(copy, pl_stanza_root(copy), "delay", NS_DELAY);
    pl_node_set_attr(copy, d, "from", inst->host);
    pl_node_set_attr(copy, d, "stamp", stamp);
    pl_buf b = PL_BUF_INIT;
    pl_xml_serialize(pl_stanza_root(copy), &b, PL_NS_CLIENT);
    pl_stanza_unref(copy);
    return pl_buf_steal(&b);
}

/* Messages not worth keeping: a <no-store/> hint (XEP-0334) or nothing
 * but chat states (XEP-0085). */
static int not_for_storage(const pl_node *root)
{
    if (pl_node_child(root, "no-store", NS_HINTS))
        return 1;
    int states = 0;
    for (const pl_node *c = pl_node_first_element(root); c; c = pl_node_next(c, NULL, NULL)) {
        if (strcmp(c->ns, NS_CHATSTATES) != 0)
            return 0;
        states = 1;
    }
    return states;
}

static int on_offline(pl_event *ev, void *ud)
{
    instance *inst = ud;
    const pl_node *root = pl_stanza_root(ev->stanza);
    const char *type = pl_node_attr(root, "type");
    if (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0)
        return PL_PASS;
    if (!ev->to || !ev->to->node)
        return PL_PASS;
    if (not_for_storage(root))
        return PL_HANDLED;
    store_req *r = pl_calloc(1, sizeof *r);
    r->inst = inst;
    r->user = pl_strdup(ev->to->node);
    r->origin = ev->origin ? pl_session_id(ev->origin) : 0;
    r->msg = pl_stanza_ref(ev->stanza);
    r->xml = serialize_delayed(inst, ev->stanza);
    r->prev = inst->stores_tail;
    if (r->prev)
        r->prev->next = r;
    else
        inst->stores = r;
    inst->stores_tail = r;
    if (!has_earlier(r) && store_start(r) != PL_OK) {
        pl_mlog(inst->m, PL_LOG_WARN, "cannot store an offline message for %s: "
                "database unavailable", r->user);
        bounce(r, NULL);
        store_free(r);
    }
    return PL_HANDLED;
}

/* ==== delivering ==== */

static int is_eligible(instance *inst, pl_session *s)
{
    return pl_session_data(s, inst->m) == &eligible_marker && pl_session_available(s)
        && pl_session_priority(s) >= 0;
}

static fetch_req *fetch_of(instance *inst, const char *user)
{
    for (fetch_req *f = inst->fetches; f; f = f->next)
        if (strcmp(f->user, user) == 0)
            return f;
    return NULL;
}

static void fetch_free(fetch_req *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        f->inst->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    pl_free(f->user);
    pl_free(f);
}

static void fetch_done(const pl_db_result *res, void *ud);

static int fetch_query(fetch_req *f)
{
    f->again = 0;
    f->full = 0;
    const char *params[2] = { f->inst->host, f->user };
    return pl_db_query(f->inst->m, SQL_FETCH, 2, params, fetch_done, f);
}

/* Starts delivering user's stored messages to s, unless a delivery to the
 * account is under way already (it is then told to look again). */
static void fetch_start(instance *inst, pl_session *s, const char *user)
{
    fetch_req *f = fetch_of(inst, user);
    if (f) {
        f->again = 1;
        return;
    }
    f = pl_calloc(1, sizeof *f);
    f->inst = inst;
    f->user = pl_strdup(user);
    f->sid = pl_session_id(s);
    f->next = inst->fetches;
    if (f->next)
        f->next->prev = f;
    inst->fetches = f;
    if (fetch_query(f) != PL_OK) {
        pl_mlog(inst->m, PL_LOG_WARN, "cannot fetch offline messages of %s: "
                "database unavailable", user);
        fetch_free(f);
    }
}

/* Offers the account's stored messages to one of its eligible sessions,
 * if it has one (a message may have been stored just as it came online). */
static void kick_delivery(instance *inst, const char *user)
{
    pl_host *h = pl_module_host(inst->m);
    pl_session *ss[64];
    int n = pl_user_sessions(h, user, ss, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (is_eligible(inst, ss[i])) {
            fetch_start(inst, ss[i], user);
            return;
        }
}

/* After the batch was deleted: fetch again while there may be more. */
static void delete_done(const pl_db_result *res, void *ud)
{
    fetch_req *f = ud;
    instance *inst = f->inst;
    if (!pl_db_ok(res)) {
        pl_mlog(inst->m, PL_LOG_ERROR, "deleting delivered offline messages of %s failed "
                "(they will be delivered again): %s", f->user, pl_db_error(res));
        fetch_free(f);
        return;
    }
    pl_session *s = pl_session_by_id(f->sid);
    if ((f->full || f->again) && s && is_eligible(inst, s)) {
        if (fetch_query(f) == PL_OK)
            return;
    }
    char *user = pl_strdup(f->user);
    int retry = f->again && !(s && is_eligible(inst, s));
    fetch_free(f);
    if (retry)
        kick_delivery(inst, user);
    pl_free(user);
}

/* Sends each stored message to the session, in order, and collects the
 * ids handed over as a PostgreSQL array literal. Returns the count. */
static int deliver_rows(instance *inst, pl_session *s, const pl_db_result *res, pl_buf *ids)
{
    int n = pl_db_rows(res);
    pl_buf_putc(ids, '{');
    for (int i = 0; i < n; i++) {
        const char *id = pl_db_value(res, i, 0), *xml = pl_db_value(res, i, 1);
        pl_stanza *st = pl_stanza_parse(xml, strlen(xml));
        if (st) {
            pl_send(s, st);
            pl_stanza_unref(st);
        } else {
            pl_mlog(inst->m, PL_LOG_ERROR, "offline message %s is not well-formed XML; "
                    "dropping it", id);
        }
        if (i)
            pl_buf_putc(ids, ',');
        pl_buf_puts(ids, id);
    }
    pl_buf_putc(ids, '}');
    return n;
}

static void fetch_done(const pl_db_result *res, void *ud)
{
    fetch_req *f = ud;
    instance *inst = f->inst;
    if (!pl_db_ok(res)) {
        pl_mlog(inst->m, PL_LOG_WARN, "fetching offline messages of %s failed: %s",
                f->user, pl_db_error(res));
        fetch_free(f);
        return;
    }
    pl_session *s = pl_session_by_id(f->sid);
    if (!s || !is_eligible(inst, s) || pl_db_rows(res) == 0) {
        /* nothing handed over, so nothing is deleted */
        char *user = pl_strdup(f->user);
        int retry = f->again || (pl_db_rows(res) > 0);
        fetch_free(f);
        if (retry)
            kick_delivery(inst, user);
        pl_free(user);
        return;
    }
    pl_buf ids = PL_BUF_INIT;
    int n = deliver_rows(inst, s, res, &ids);
    f->full = n >= FETCH_BATCH;
    pl_mlog(inst->m, PL_LOG_DEBUG, "delivered %d offline message%s to %s", n,
            n == 1 ? "" : "s", pl_session_jid(s)->full);
    const char *params[3] = { inst->host, f->user, ids.data };
    int rc = pl_db_query(inst->m, SQL_DELETE, 3, params, delete_done, f);
    pl_buf_free(&ids);
    if (rc != PL_OK) {
        pl_mlog(inst->m, PL_LOG_ERROR, "cannot delete delivered offline messages of %s "
                "(they will be delivered again): database unavailable", f->user);
        fetch_free(f);
    }
}

/* The session reached a non-negative priority: mark it and deliver. */
static void became_eligible(instance *inst, pl_session *s)
{
    const pl_jid *j = pl_session_jid(s);
    if (!j || pl_session_data(s, inst->m) == &eligible_marker)
        return;
    pl_session_set_data(s, inst->m, &eligible_marker, NULL);
    fetch_start(inst, s, j->node);
}

static int on_available(pl_event *ev, void *ud)
{
    if (ev->origin && pl_session_priority(ev->origin) >= 0)
        became_eligible(ud, ev->origin);
    return PL_PASS;
}

/* Presence broadcasts of the session: a change to a non-negative
 * priority makes it eligible; a negative one or unavailable ends that. */
static int on_self_presence(pl_event *ev, void *ud)
{
    instance *inst = ud;
    pl_session *s = ev->origin;
    if (!s)
        return PL_PASS;
    const char *type = pl_node_attr(pl_stanza_root(ev->stanza), "type");
    if (type && strcmp(type, "unavailable") != 0)
        return PL_PASS;
    if (!type && pl_session_available(s) && pl_session_priority(s) >= 0)
        became_eligible(inst, s);
    else
        pl_session_set_data(s, inst->m, NULL, NULL);
    return PL_PASS;
}

/* ==== lifecycle ==== */

static void offline_unload(pl_module *m)
{
    instance *inst = pl_module_data(m);
    if (!inst)
        return;
    /* The core cancels our queries after this: their callbacks will not
     * run. A message whose insert never started is known not to be
     * stored, so its sender hears it; one in flight may have been. */
    while (inst->stores) {
        if (!inst->stores->running)
            bounce(inst->stores, NULL);
        store_free(inst->stores);
    }
    while (inst->fetches)
        fetch_free(inst->fetches);
    pl_free(inst);
    pl_module_set_data(m, NULL);
}

static int offline_load(pl_module *m)
{
    instance *inst = pl_calloc(1, sizeof *inst);
    inst->m = m;
    inst->host = pl_host_name(pl_module_host(m));
    inst->quota = pl_option_int(m, "quota");
    pl_module_set_data(m, inst);
    int rc = pl_add_feature(m, "msgoffline");
    if (rc == 0)
        rc = pl_hook(m, "message/offline", on_offline, inst, 0);
    if (rc == 0)
        rc = pl_hook(m, "session/available", on_available, inst, 0);
    if (rc == 0)
        rc = pl_hook(m, "presence/self", on_self_presence, inst, 5);
    if (rc < 0)
        offline_unload(m);
    return rc;
}

static const pl_option offline_options[] = {
    { .name = "quota", .type = PL_OPT_INT, .def = "1000", .min = 1, .max = 1000000,
      .help = "messages stored per account; further ones are refused" },
    { .name = NULL }
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "offline",
    .description = "Offline messages (XEP-0160): stores messages for unavailable accounts",
    .options = offline_options,
    .load = offline_load,
    .unload = offline_unload,
};
