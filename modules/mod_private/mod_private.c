/* modules/mod_private/mod_private.c: Private XML Storage (XEP-0049). An
 * account stores one XML element per namespace with
 * <query xmlns='jabber:iq:private'/> sets and reads it back with gets;
 * nobody else can read or write it. Elements are kept serialized in the
 * table private_xml, keyed by the element's namespace. */
#include <string.h>
#include <parley/module.h>

#define NS_PRIVATE "jabber:iq:private"

#define SQL_GET \
    "SELECT element FROM private_xml WHERE host = $1 AND username = $2 AND namespace = $3"
#define SQL_SET \
    "INSERT INTO private_xml (host, username, namespace, element) VALUES ($1, $2, $3, $4) " \
    "ON CONFLICT (host, username, namespace) DO UPDATE SET element = EXCLUDED.element"

typedef struct instance instance;

/* A request waiting for the database. */
typedef struct req {
    struct req *prev, *next;
    instance *inst;
    uint64_t sid;       /* the requesting session */
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

/* Sends reply to the requesting session, if it is still there. */
static void answer(req *r, pl_stanza *reply)
{
    pl_session *s = r->sid ? pl_session_by_id(r->sid) : NULL;
    if (s)
        pl_send(s, reply);
    else if (!r->sid && pl_node_attr(pl_stanza_root(reply), "to"))
        pl_route(reply);
    pl_stanza_unref(reply);
}

/* The one element inside the request's <query/>. */
static const pl_node *payload_of(const pl_stanza *iq)
{
    const pl_node *q = pl_node_first_element(pl_stanza_root(iq));
    return pl_node_first_element(q);
}

static void get_done(const pl_db_result *res, void *ud)
{
    req *r = ud;
    if (!pl_db_ok(res)) {
        pl_mlog(r->inst->m, PL_LOG_WARN, "reading private XML failed: %s", pl_db_error(res));
        answer(r, pl_stanza_error_reply(r->iq, NULL, "internal-server-error", NULL));
        req_free(r);
        return;
    }
    pl_stanza *stored = NULL;
    if (pl_db_rows(res) > 0) {
        const char *xml = pl_db_value(res, 0, 0);
        stored = pl_stanza_parse(xml, strlen(xml));
        if (!stored)
            pl_mlog(r->inst->m, PL_LOG_ERROR, "stored private XML is not well-formed; "
                    "answering as if nothing were stored");
    }
    pl_stanza *reply = pl_stanza_reply(r->iq);
    pl_node *q = pl_node_add(reply, pl_stanza_root(reply), "query", NS_PRIVATE);
    pl_node_add_copy(reply, q, stored ? pl_stanza_root(stored) : payload_of(r->iq));
    pl_stanza_unref(stored);
    answer(r, reply);
    req_free(r);
}

static void set_done(const pl_db_result *res, void *ud)
{
    req *r = ud;
    if (pl_db_ok(res)) {
        answer(r, pl_stanza_reply(r->iq));
    } else {
        pl_mlog(r->inst->m, PL_LOG_WARN, "storing private XML failed: %s", pl_db_error(res));
        answer(r, pl_stanza_error_reply(r->iq, NULL, "internal-server-error", NULL));
    }
    req_free(r);
}

/* ==== handlers ==== */

static int fail(pl_event *ev, const char *condition, const char *text)
{
    ev->error.type = NULL;
    ev->error.condition = condition;
    ev->error.text = text;
    return PL_ERROR;
}

/* Namespaces that cannot be a storage key: the stanza's own and this
 * protocol's (a child with no xmlns of its own inherits the latter). */
static int reserved(const char *ns)
{
    return strcmp(ns, PL_NS_CLIENT) == 0 || strcmp(ns, PL_NS_SERVER) == 0
        || strcmp(ns, NS_PRIVATE) == 0;
}

static int on_private(pl_event *ev, void *ud)
{
    instance *inst = ud;
    const pl_node *q = pl_node_first_element(pl_stanza_root(ev->stanza));
    if (!ev->from->node)
        return fail(ev, "forbidden", NULL);
    if (pl_node_count_elements(q) != 1)
        return fail(ev, "bad-request", "the query must hold exactly one element");
    const pl_node *el = pl_node_first_element(q);
    if (reserved(el->ns))
        return fail(ev, "not-acceptable", "the element needs a namespace of its own");
    int get = strcmp(pl_node_attr(pl_stanza_root(ev->stanza), "type"), "get") == 0;
    pl_buf b = PL_BUF_INIT;
    if (!get) {
        pl_xml_serialize(el, &b, PL_NS_CLIENT);
        if ((long long)b.len > inst->max_size) {
            pl_buf_free(&b);
            return fail(ev, "not-acceptable", "the element is too large");
        }
    }
    const char *params[4] = { inst->host, ev->from->node, el->ns, b.data };
    req *r = req_new(inst, ev);
    int rc = get ? pl_db_query(inst->m, SQL_GET, 3, params, get_done, r)
                 : pl_db_query(inst->m, SQL_SET, 4, params, set_done, r);
    pl_buf_free(&b);
    if (rc == PL_OK)
        return PL_HANDLED;
    req_free(r);
    pl_mlog(inst->m, PL_LOG_WARN, "private XML request failed: database unavailable");
    fail(ev, "internal-server-error", NULL);
    ev->error.type = "wait";
    return PL_ERROR;
}

/* XEP-0049 section 2.3: another account's data is forbidden. */
static int on_other(pl_event *ev, void *ud)
{
    return fail(ev, "forbidden", NULL);
}

/* ==== lifecycle ==== */

static void private_unload(pl_module *m)
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

static int private_load(pl_module *m)
{
    instance *inst = pl_calloc(1, sizeof *inst);
    inst->m = m;
    inst->host = pl_host_name(pl_module_host(m));
    inst->max_size = pl_option_int(m, "max_size");
    pl_module_set_data(m, inst);
    int rc = pl_iq_handle(m, PL_IQ_GET | PL_IQ_SET, PL_TO_SELF, NS_PRIVATE, "query",
                          on_private, inst);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET | PL_IQ_SET, PL_TO_BARE, NS_PRIVATE, "query",
                          on_other, inst);
    if (rc < 0)
        private_unload(m);
    return rc;
}

static const pl_option private_options[] = {
    { .name = "max_size", .type = PL_OPT_SIZE, .def = "64k", .min = 256, .max = 16777216,
      .help = "largest element stored (serialized bytes)" },
    { .name = NULL }
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "private",
    .description = "Private XML Storage (XEP-0049): per-account XML by namespace",
    .options = private_options,
    .load = private_load,
    .unload = private_unload,
};
