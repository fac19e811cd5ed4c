/* modules/mod_last/mod_last.c: Last Activity (XEP-0012). Answers
 * jabber:iq:last queries to the server (its uptime), to the sender's own
 * account (0: it is online) and to another account's bare JID: forbidden
 * unless the requester may see the account's presence (a roster
 * subscription 'from' or 'both'), 0 if the account has an available
 * resource, else the seconds since it went offline with the status of its
 * last unavailable presence. The moment and status are recorded in the
 * table last_activity when the account's last available resource goes
 * unavailable or away. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <parley/module.h>

#define NS_LAST "jabber:iq:last"

#define SQL_QUERY \
    "SELECT EXISTS (SELECT 1 FROM users WHERE host = $1 AND username = $2), " \
    "EXISTS (SELECT 1 FROM roster WHERE host = $1 AND username = $2 AND contact = $3 " \
    "AND in_roster AND subscription IN ('from', 'both')), " \
    "(SELECT greatest(0, floor(extract(epoch FROM now() - logout_at)))::bigint " \
    "FROM last_activity WHERE host = $1 AND username = $2), " \
    "(SELECT status FROM last_activity WHERE host = $1 AND username = $2)"
#define SQL_RECORD \
    "INSERT INTO last_activity (host, username, logout_at, status) " \
    "VALUES ($1, $2, now(), $3) ON CONFLICT (host, username) " \
    "DO UPDATE SET logout_at = EXCLUDED.logout_at, status = EXCLUDED.status"

typedef struct instance instance;

/* A query about another account waiting for the database. */
typedef struct req {
    struct req *prev, *next;
    instance *inst;
    uint64_t sid;       /* the requesting session, 0 if not a local client */
    pl_stanza *iq;      /* the request (referenced) */
    char *user;         /* the account asked about */
} req;

struct instance {
    pl_module *m;
    const char *host;
    req *pending;
};

/* Per-session state: whether the session is in a presence session, and
 * the status text of its last unavailable presence. */
typedef struct sess {
    int available;
    char *status;
} sess;

/* ==== answers ==== */

static void send_to(pl_session *s, pl_stanza *reply)
{
    if (s)
        pl_send(s, reply);
    else if (pl_node_attr(pl_stanza_root(reply), "to"))
        pl_route(reply);
    pl_stanza_unref(reply);
}

/* A result <query seconds=N>status</query> for iq. */
static pl_stanza *last_reply(const pl_stanza *iq, long long seconds, const char *status)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", seconds < 0 ? 0 : seconds);
    pl_stanza *reply = pl_stanza_reply(iq);
    pl_node *q = pl_node_add(reply, pl_stanza_root(reply), "query", NS_LAST);
    pl_node_set_attr(reply, q, "seconds", num);
    if (status && *status)
        pl_node_add_text(reply, q, status, strlen(status));
    return reply;
}

static int on_host(pl_event *ev, void *ud)
{
    send_to(ev->origin, last_reply(ev->stanza, pl_server_uptime(), NULL));
    return PL_HANDLED;
}

/* The sender asks about its own account, which is online. */
static int on_self(pl_event *ev, void *ud)
{
    send_to(ev->origin, last_reply(ev->stanza, 0, NULL));
    return PL_HANDLED;
}

/* ==== other accounts ==== */

static int has_available(instance *inst, const char *user, const pl_session *except)
{
    pl_session *ss[64];
    int n = pl_user_sessions(pl_module_host(inst->m), user, ss, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (ss[i] != except && pl_session_available(ss[i]))
            return 1;
    return 0;
}

static void req_free(req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->inst->pending = r->next;
    if (r->next)
        r->next->prev = r->prev;
    pl_stanza_unref(r->iq);
    pl_free(r->user);
    pl_free(r);
}

static void query_done(const pl_db_result *res, void *ud)
{
    req *r = ud;
    pl_session *s = r->sid ? pl_session_by_id(r->sid) : NULL;
    pl_stanza *reply;
    if (!pl_db_ok(res) || pl_db_rows(res) != 1) {
        pl_mlog(r->inst->m, PL_LOG_WARN, "last activity query failed: %s",
                pl_db_ok(res) ? "no row" : pl_db_error(res));
        reply = pl_stanza_error_reply(r->iq, NULL, "internal-server-error", NULL);
    } else if (strcmp(pl_db_value(res, 0, 0), "t") != 0) {
        reply = pl_stanza_error_reply(r->iq, NULL, "service-unavailable", NULL);
    } else if (strcmp(pl_db_value(res, 0, 1), "t") != 0) {
        reply = pl_stanza_error_reply(r->iq, NULL, "forbidden", NULL);
    } else if (has_available(r->inst, r->user, NULL)) {
        reply = last_reply(r->iq, 0, NULL);
    } else if (pl_db_isnull(res, 0, 2)) {
        reply = pl_stanza_error_reply(r->iq, NULL, "item-not-found", NULL);
    } else {
        reply = last_reply(r->iq, strtoll(pl_db_value(res, 0, 2), NULL, 10),
                           pl_db_value(res, 0, 3));
    }
    if (!r->sid || s)
        send_to(s, reply);
    else
        pl_stanza_unref(reply);
    req_free(r);
}

static int on_other(pl_event *ev, void *ud)
{
    instance *inst = ud;
    req *r = pl_calloc(1, sizeof *r);
    r->inst = inst;
    r->sid = ev->origin ? pl_session_id(ev->origin) : 0;
    r->iq = pl_stanza_ref(ev->stanza);
    r->user = pl_strdup(ev->to->node);
    r->next = inst->pending;
    if (r->next)
        r->next->prev = r;
    inst->pending = r;
    const char *params[3] = { inst->host, ev->to->node, ev->from->bare };
    if (pl_db_query(inst->m, SQL_QUERY, 3, params, query_done, r) == PL_OK)
        return PL_HANDLED;
    req_free(r);
    pl_mlog(inst->m, PL_LOG_WARN, "last activity query failed: database unavailable");
    ev->error.type = "wait";
    ev->error.condition = "internal-server-error";
    return PL_ERROR;
}

/* ==== recording ==== */

static void record_done(const pl_db_result *res, void *ud)
{
    instance *inst = ud;
    if (!pl_db_ok(res))
        pl_mlog(inst->m, PL_LOG_WARN, "recording last activity failed: %s", pl_db_error(res));
}

/* The account's last available resource went away now, saying status. */
static void record(instance *inst, const char *user, const char *status)
{
    const char *params[3] = { inst->host, user, status };
    if (pl_db_query(inst->m, SQL_RECORD, 3, params, record_done, inst) != PL_OK)
        pl_mlog(inst->m, PL_LOG_WARN, "cannot record last activity of %s: "
                "database unavailable", user);
}

static void sess_free(void *p)
{
    sess *d = p;
    pl_free(d->status);
    pl_free(d);
}

static sess *sess_of(instance *inst, pl_session *s)
{
    sess *d = pl_session_data(s, inst->m);
    if (!d) {
        d = pl_calloc(1, sizeof *d);
        pl_session_set_data(s, inst->m, d, sess_free);
    }
    return d;
}

static int on_available(pl_event *ev, void *ud)
{
    if (ev->origin) {
        sess *d = sess_of(ud, ev->origin);
        d->available = 1;
        pl_free(d->status);
        d->status = NULL;
    }
    return PL_PASS;
}

static int on_self_presence(pl_event *ev, void *ud)
{
    instance *inst = ud;
    pl_session *s = ev->origin;
    const pl_jid *j = s ? pl_session_jid(s) : NULL;
    const pl_node *root = pl_stanza_root(ev->stanza);
    const char *type = pl_node_attr(root, "type");
    if (!j || !type || strcmp(type, "unavailable") != 0)
        return PL_PASS;
    sess *d = sess_of(inst, s);
    const pl_node *st = pl_node_child(root, "status", PL_NS_CLIENT);
    pl_free(d->status);
    d->status = st ? pl_strdup(pl_node_text(ev->stanza, st)) : NULL;
    if (d->available && !has_available(inst, j->node, s))
        record(inst, j->node, d->status);
    d->available = 0;
    return PL_PASS;
}

/* A session that ends while available takes the account offline if it
 * was its last available resource; it left no status. */
static int on_closed(pl_event *ev, void *ud)
{
    instance *inst = ud;
    pl_session *s = ev->origin;
    const pl_jid *j = s ? pl_session_jid(s) : NULL;
    if (j && pl_session_available(s) && !has_available(inst, j->node, s))
        record(inst, j->node, NULL);
    return PL_PASS;
}

/* ==== lifecycle ==== */

static void last_unload(pl_module *m)
{
    instance *inst = pl_module_data(m);
    if (!inst)
        return;
    /* the core cancels our queries after this; their requesters still
     * get an answer */
    while (inst->pending) {
        req *r = inst->pending;
        pl_session *s = r->sid ? pl_session_by_id(r->sid) : NULL;
        pl_stanza *err = pl_stanza_error_reply(r->iq, "wait", "internal-server-error", NULL);
        if (!r->sid || s)
            send_to(s, err);
        else
            pl_stanza_unref(err);
        req_free(r);
    }
    pl_free(inst);
    pl_module_set_data(m, NULL);
}

static int last_load(pl_module *m)
{
    instance *inst = pl_calloc(1, sizeof *inst);
    inst->m = m;
    inst->host = pl_host_name(pl_module_host(m));
    pl_module_set_data(m, inst);
    int rc = pl_add_feature(m, NS_LAST);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET, PL_TO_HOST, NS_LAST, "query", on_host, inst);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET, PL_TO_SELF, NS_LAST, "query", on_self, inst);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET, PL_TO_BARE, NS_LAST, "query", on_other, inst);
    if (rc == 0)
        rc = pl_hook(m, "session/available", on_available, inst, 0);
    if (rc == 0)
        rc = pl_hook(m, "presence/self", on_self_presence, inst, 5);
    if (rc == 0)
        rc = pl_hook(m, "session/closed", on_closed, inst, 0);
    if (rc < 0)
        last_unload(m);
    return rc;
}

static const pl_option last_options[] = { { .name = NULL } };

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "last",
    .description = "Last Activity (XEP-0012): server uptime and accounts' last logout",
    .options = last_options,
    .load = last_load,
    .unload = last_unload,
};
