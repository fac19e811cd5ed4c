/* db/dbapi.c: the module API's database calls. Each query a module makes
 * is tracked on the module so that unloading it cancels the query (its
 * callback, code in the module being closed, never runs). */
#include "core/modmgr.h"
#include "db/pg.h"

struct pl__dbq {
    pl__dbq *next, *prev;
    pl_module *m;
    struct pl_pg_query *q;
    pl_db_cb cb;
    void *ud;
};

void pl__module_cancel_queries(pl_module *m);

static void unlink_q(pl__dbq *t)
{
    if (!t->m)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        t->m->queries = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void done(const pl_db_result *r, void *ud)
{
    pl__dbq *t = ud;
    pl_db_cb cb = t->cb;
    void *cb_ud = t->ud;
    unlink_q(t);
    pl_free(t);
    cb(r, cb_ud);
}

int pl_db_query(pl_module *m, const char *sql, int nparams, const char *const *params,
                pl_db_cb cb, void *ud)
{
    pl__dbq *t = pl_calloc(1, sizeof *t);
    t->m = m;
    t->cb = cb;
    t->ud = ud;
    t->q = pl_pg_query(sql, nparams, params, done, t);
    if (!t->q) {
        pl_free(t);
        return PL_EUNAVAIL;
    }
    if (m) {
        t->next = m->queries;
        if (m->queries)
            m->queries->prev = t;
        m->queries = t;
    }
    return PL_OK;
}

void pl__module_cancel_queries(pl_module *m)
{
    while (m->queries) {
        pl__dbq *t = m->queries;
        m->queries = t->next;
        pl_pg_cancel(t->q);
        pl_free(t);
    }
}

int pl_db_available(void)
{
    return pl_pg_available();
}
