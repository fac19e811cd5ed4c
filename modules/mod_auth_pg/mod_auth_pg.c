/* modules/mod_auth_pg/mod_auth_pg.c: the PostgreSQL authentication
 * provider. Looks up an account's stored SCRAM credentials (written by
 * `parleyctl user add`) in the users table with asynchronous queries.
 * A failed query means the storage is unavailable (PL_EUNAVAIL); no row
 * means no such account (PL_ENOENT). */
#include <errno.h>
#include <stdlib.h>
#include <parley/module.h>

#define SQL_CREDS \
    "SELECT iterations, salt, sha1_stored_key, sha1_server_key, " \
    "sha256_stored_key, sha256_server_key FROM users " \
    "WHERE host = $1 AND username = $2"
#define SQL_EXISTS "SELECT 1 FROM users WHERE host = $1 AND username = $2"

/* ==== instances ==== */

/* A loaded instance: the provider callbacks receive a host, and the
 * database API wants the module handle of that host's instance. A global
 * instance (host NULL) serves hosts without their own. */
typedef struct query_ctx query_ctx;
typedef struct instance {
    struct instance *next;
    pl_module *m;
    pl_host *host;
    query_ctx *pending;   /* queries whose callback has not run yet */
} instance;

static instance *instances;

static instance *instance_of(pl_host *h)
{
    instance *global = NULL;
    for (instance *i = instances; i; i = i->next) {
        if (i->host == h)
            return i;
        if (!i->host)
            global = i;
    }
    return global;
}

/* ==== queries ==== */

/* One query in flight: the core's callback and its data, carried to the
 * database callback. */
struct query_ctx {
    query_ctx *prev, *next;
    instance *inst;
    pl_auth_creds_cb creds_cb;
    pl_auth_status_cb status_cb;
    void *ud;
};

static query_ctx *ctx_new(instance *inst)
{
    query_ctx *q = pl_calloc(1, sizeof *q);
    q->inst = inst;
    q->next = inst->pending;
    if (q->next)
        q->next->prev = q;
    inst->pending = q;
    return q;
}

static void ctx_free(query_ctx *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        q->inst->pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
    pl_free(q);
}

/* Parses a positive iteration count; 0 if the stored text is not one. */
static unsigned parse_iterations(const char *s)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > 0xFFFFFFFFUL || *s == '-')
        return 0;
    return (unsigned)v;
}

static void creds_done(const pl_db_result *r, void *ud)
{
    query_ctx *q = ud;
    pl_auth_creds_cb cb = q->creds_cb;
    void *cb_ud = q->ud;
    pl_module *m = q->inst->m;
    ctx_free(q);

    if (!pl_db_ok(r)) {
        pl_mlog(m, PL_LOG_WARN, "credentials query failed: %s", pl_db_error(r));
        cb(PL_EUNAVAIL, NULL, cb_ud);
        return;
    }
    if (pl_db_rows(r) < 1) {
        cb(PL_ENOENT, NULL, cb_ud);
        return;
    }
    pl_auth_creds creds = {
        .iterations = parse_iterations(pl_db_value(r, 0, 0)),
        .salt_b64 = pl_db_value(r, 0, 1),
        .sha1_stored_key = pl_db_value(r, 0, 2),
        .sha1_server_key = pl_db_value(r, 0, 3),
        .sha256_stored_key = pl_db_value(r, 0, 4),
        .sha256_server_key = pl_db_value(r, 0, 5),
    };
    if (creds.iterations == 0 || !*creds.salt_b64) {
        pl_mlog(m, PL_LOG_ERROR, "stored credentials are malformed (iterations or salt)");
        cb(PL_EUNAVAIL, NULL, cb_ud);
        return;
    }
    cb(PL_OK, &creds, cb_ud);
}

static void exists_done(const pl_db_result *r, void *ud)
{
    query_ctx *q = ud;
    pl_auth_status_cb cb = q->status_cb;
    void *cb_ud = q->ud;
    pl_module *m = q->inst->m;
    ctx_free(q);

    if (!pl_db_ok(r)) {
        pl_mlog(m, PL_LOG_WARN, "account query failed: %s", pl_db_error(r));
        cb(PL_EUNAVAIL, cb_ud);
        return;
    }
    cb(pl_db_rows(r) > 0 ? PL_OK : PL_ENOENT, cb_ud);
}

/* Starts one query for the host's instance; on a synchronous failure the
 * context is freed and no callback will run. */
static int start_query(pl_host *h, const char *sql, const char *username,
                       pl_auth_creds_cb creds_cb, pl_auth_status_cb status_cb, void *ud)
{
    instance *inst = instance_of(h);
    if (!inst || !h || !username)
        return PL_EINVAL;
    query_ctx *q = ctx_new(inst);
    q->creds_cb = creds_cb;
    q->status_cb = status_cb;
    q->ud = ud;
    const char *params[2] = { pl_host_name(h), username };
    int rc = pl_db_query(inst->m, sql, 2, params, creds_cb ? creds_done : exists_done, q);
    if (rc != PL_OK) {
        ctx_free(q);
        return rc < 0 ? rc : PL_EUNAVAIL;
    }
    return PL_OK;
}

static int get_creds(pl_host *h, const char *username, pl_auth_creds_cb cb, void *ud)
{
    if (!cb)
        return PL_EINVAL;
    return start_query(h, SQL_CREDS, username, cb, NULL, ud);
}

static int user_exists(pl_host *h, const char *username, pl_auth_status_cb cb, void *ud)
{
    if (!cb)
        return PL_EINVAL;
    return start_query(h, SQL_EXISTS, username, NULL, cb, ud);
}

static const pl_auth_provider provider = {
    .name = "pg",
    .get_creds = get_creds,
    .user_exists = user_exists,
};

/* ==== lifecycle ==== */

static void auth_pg_unload(pl_module *m)
{
    instance **pp = &instances;
    while (*pp && (*pp)->m != m)
        pp = &(*pp)->next;
    instance *inst = *pp;
    if (!inst)
        return;
    *pp = inst->next;
    /* The core cancels our pending queries; their requesters still wait
     * for an answer, so they hear that the storage went away. */
    while (inst->pending) {
        query_ctx *q = inst->pending;
        pl_auth_creds_cb creds_cb = q->creds_cb;
        pl_auth_status_cb status_cb = q->status_cb;
        void *ud = q->ud;
        ctx_free(q);
        if (creds_cb)
            creds_cb(PL_EUNAVAIL, NULL, ud);
        else
            status_cb(PL_EUNAVAIL, ud);
    }
    pl_free(inst);
}

static int auth_pg_load(pl_module *m)
{
    instance *inst = pl_calloc(1, sizeof *inst);
    inst->m = m;
    inst->host = pl_module_host(m);
    inst->next = instances;
    instances = inst;
    int rc = pl_provide_auth(m, &provider);
    if (rc < 0)
        auth_pg_unload(m);
    return rc;
}

static const pl_option auth_pg_options[] = { { .name = NULL } };

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "auth_pg",
    .description = "Authentication against SCRAM credentials stored in PostgreSQL",
    .options = auth_pg_options,
    .load = auth_pg_load,
    .unload = auth_pg_unload,
};
