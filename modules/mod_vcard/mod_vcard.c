/* modules/mod_vcard/mod_vcard.c: vcard-temp (XEP-0054). An account sets
 * and gets its own vCard (an IQ with no 'to' or to its bare JID); anyone
 * gets another account's vCard from its bare JID. vCards are stored as
 * serialized XML in the table vcard, one per account, bounded by the
 * max_size option. */
#include <string.h>
#include <parley/module.h>

#define NS_VCARD "vcard-temp"

#define SQL_GET_OWN "SELECT vcard FROM vcard WHERE host = $1 AND username = $2"
/* No row: no such account; a NULL vcard: an account without one. */
#define SQL_GET_OTHER \
    "SELECT v.vcard FROM users u LEFT JOIN vcard v " \
    "ON v.host = u.host AND v.username = u.username " \
    "WHERE u.host = $1 AND u.username = $2"
#define SQL_SET \
    "INSERT INTO vcard (host, username, vcard) VALUES ($1, $2, $3) " \
    "ON CONFLICT (host, username) DO UPDATE SET vcard = EXCLUDED.vcard"

typedef struct instance instance;

/* A request waiting for the database. */
typedef struct req {
    struct req *prev, *next;
    instance *inst;
    uint64_t sid;       /* the requesting session, 0 if not a local client */
    pl_stanza *iq;      /* the request (referenced) */
} req;

struct instance {
    pl_module *m;
    const char *host;
    long long max_size;
    req *pending;
};

/* ==== requests ==== */

static req *req_new(instance *inst, pl_event *ev)
{
    req *r = pl_calloc(1, sizeof *r);
    r->inst = inst;
    r->sid = ev->origin ? pl_session_id(ev->origin) : 0;
    r->iq = pl_stanza_ref(ev->stanza);
    r->next = inst->pending;
    if (r->next)
        r->next->prev = r;
    inst->pending = r;
    return r;
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
    pl_free(r);
}

/* Sends reply to the requester: its session if it was a local client
 * (which may have gone meanwhile), else by routing. */
static void answer(req *r, pl_stanza *reply)
{
    if (r->sid) {
        pl_session *s = pl_session_by_id(r->sid);
        if (s)
            pl_send(s, reply);
    } else if (pl_node_attr(pl_stanza_root(reply), "to")) {
        pl_route(reply);
    }
    pl_stanza_unref(reply);
}

static void answer_error(req *r, const char *condition, const char *text)
{
    answer(r, pl_stanza_error_reply(r->iq, NULL, condition, text));
}

/* Answers with the stored vCard, or an empty one when xml is NULL. */
static void answer_vcard(req *r, const char *xml)
{
    pl_stanza *reply = pl_stanza_reply(r->iq);
    pl_node *root = pl_stanza_root(reply);
    pl_stanza *card = xml ? pl_stanza_parse(xml, strlen(xml)) : NULL;
    if (xml && !card) {
        pl_mlog(r->inst->m, PL_LOG_ERROR, "a stored vCard is not well-formed XML");
        pl_stanza_unref(reply);
        answer_error(r, "internal-server-error", NULL);
        return;
    }
    if (card)
        pl_node_add_copy(reply, root, pl_stanza_root(card));
    else
        pl_node_add(reply, root, "vCard", NS_VCARD);
    pl_stanza_unref(card);
    answer(r, reply);
}

static int start(instance *inst, pl_event *ev, const char *sql, int nparams,
                 const char *const *params, pl_db_cb cb)
{
    req *r = req_new(inst, ev);
    if (pl_db_query(inst->m, sql, nparams, params, cb, r) == PL_OK)
        return PL_HANDLED;
    req_free(r);
    pl_mlog(inst->m, PL_LOG_WARN, "vCard request failed: database unavailable");
    ev->error.type = "wait";
    ev->error.condition = "internal-server-error";
    return PL_ERROR;
}

/* ==== own vCard ==== */

static void get_own_done(const pl_db_result *res, void *ud)
{
    req *r = ud;
    if (!pl_db_ok(res)) {
        pl_mlog(r->inst->m, PL_LOG_WARN, "reading a vCard failed: %s", pl_db_error(res));
        answer_error(r, "internal-server-error", NULL);
    } else {
        answer_vcard(r, pl_db_rows(res) > 0 ? pl_db_value(res, 0, 0) : NULL);
    }
    req_free(r);
}

static void set_done(const pl_db_result *res, void *ud)
{
    req *r = ud;
    if (!pl_db_ok(res)) {
        pl_mlog(r->inst->m, PL_LOG_WARN, "storing a vCard failed: %s", pl_db_error(res));
        answer_error(r, "internal-server-error", NULL);
    } else {
        answer(r, pl_stanza_reply(r->iq));
    }
    req_free(r);
}

static int on_own(pl_event *ev, void *ud)
{
    instance *inst = ud;
    const pl_node *root = pl_stanza_root(ev->stanza);
    if (!ev->from->node) {
        ev->error.condition = "forbidden";
        return PL_ERROR;
    }
    const char *params[3] = { inst->host, ev->from->node, NULL };
    if (strcmp(pl_node_attr(root, "type"), "get") == 0)
        return start(inst, ev, SQL_GET_OWN, 2, params, get_own_done);
    const pl_node *card = pl_node_child(root, "vCard", NS_VCARD);
    pl_buf b = PL_BUF_INIT;
    pl_xml_serialize(card, &b, PL_NS_CLIENT);
    if ((long long)b.len > inst->max_size) {
        pl_buf_free(&b);
        ev->error.type = "modify";
        ev->error.condition = "not-acceptable";
        ev->error.text = "the vCard is too large";
        return PL_ERROR;
    }
    params[2] = b.data;
    int rc = start(inst, ev, SQL_SET, 3, params, set_done);
    pl_buf_free(&b);
    return rc;
}

/* ==== other accounts ==== */

static void get_other_done(const pl_db_result *res, void *ud)
{
    req *r = ud;
    if (!pl_db_ok(res)) {
        pl_mlog(r->inst->m, PL_LOG_WARN, "reading a vCard failed: %s", pl_db_error(res));
        answer_error(r, "internal-server-error", NULL);
    } else if (pl_db_rows(res) == 0) {
        answer_error(r, "service-unavailable", NULL);
    } else if (pl_db_isnull(res, 0, 0)) {
        answer_error(r, "item-not-found", NULL);
    } else {
        answer_vcard(r, pl_db_value(res, 0, 0));
    }
    req_free(r);
}

static int on_other(pl_event *ev, void *ud)
{
    instance *inst = ud;
    if (strcmp(pl_node_attr(pl_stanza_root(ev->stanza), "type"), "get") != 0) {
        ev->error.type = "auth";
        ev->error.condition = "forbidden";
        return PL_ERROR;
    }
    const char *params[2] = { inst->host, ev->to->node };
    return start(inst, ev, SQL_GET_OTHER, 2, params, get_other_done);
}

/* ==== lifecycle ==== */

static void vcard_unload(pl_module *m)
{
    instance *inst = pl_module_data(m);
    if (!inst)
        return;
    /* the core cancels our queries after this; their requesters still
     * get an answer */
    while (inst->pending) {
        answer(inst->pending, pl_stanza_error_reply(inst->pending->iq, "wait",
                                                    "internal-server-error", NULL));
        req_free(inst->pending);
    }
    pl_free(inst);
    pl_module_set_data(m, NULL);
}

static int vcard_load(pl_module *m)
{
    instance *inst = pl_calloc(1, sizeof *inst);
    inst->m = m;
    inst->host = pl_host_name(pl_module_host(m));
    inst->max_size = pl_option_int(m, "max_size");
    pl_module_set_data(m, inst);
    int rc = pl_add_feature(m, NS_VCARD);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET | PL_IQ_SET, PL_TO_SELF, NS_VCARD, "vCard", on_own, inst);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET | PL_IQ_SET, PL_TO_BARE, NS_VCARD, "vCard", on_other,
                          inst);
    if (rc < 0)
        vcard_unload(m);
    return rc;
}

static const pl_option vcard_options[] = {
    { .name = "max_size", .type = PL_OPT_SIZE, .def = "64k", .min = 256, .max = 16777216,
      .help = "largest vCard accepted (serialized bytes)" },
    { .name = NULL }
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "vcard",
    .description = "vcard-temp (XEP-0054): stores and serves account vCards",
    .options = vcard_options,
    .load = vcard_load,
    .unload = vcard_unload,
};
