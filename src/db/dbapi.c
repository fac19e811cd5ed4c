/* db/dbapi.c: the module API's database calls. Each query a module makes
 * is tracked on the module so that unloading it cancels the query (its
 * callback, code in the module being closed, never runs); notification
 * subscriptions are tracked likewise and end with the module. */
#include <string.h>
#include "core/modmgr.h"
#include "db/pg.h"

struct pl__dbq {
    pl__dbq *next, *prev;
    pl_module *m;
    struct pl_pg_query *q;
    pl_db_cb cb;
    void *ud;
};

/* A module's subscription to a notification channel. */
typedef struct tracked_listen {
    struct tracked_listen *next;
    pl_module *m;
    struct pl_pg_listen *l;
} tracked_listen;

static tracked_listen *listens;

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

/* Ends m's subscriptions. */
static void drop_listens(pl_module *m)
{
    tracked_listen **pp = &listens;
    while (*pp) {
        tracked_listen *t = *pp;
        if (t->m != m) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        pl_pg_unlisten(t->l);
        pl_free(t);
    }
}

/* Called by the module manager when m unloads: cancels m's pending
 * queries (their callbacks never run) and ends its notification
 * subscriptions. */
void pl__module_cancel_queries(pl_module *m)
{
    while (m->queries) {
        pl__dbq *t = m->queries;
        m->queries = t->next;
        pl_pg_cancel(t->q);
        pl_free(t);
    }
    drop_listens(m);
}

/* Subscribes cb to a notification channel for module m (see module.h);
 * the subscription ends when m unloads. */
int pl_db_listen(pl_module *m, const char *channel, pl_db_notify_cb cb, void *ud)
{
    struct pl_pg_listen *l = pl_pg_listen(channel, cb, ud);
    if (!l)
        return PL_EINVAL;
    tracked_listen *t = pl_calloc(1, sizeof *t);
    t->m = m;
    t->l = l;
    t->next = listens;
    listens = t;
    return PL_OK;
}

/* 1 when the LISTEN on channel is in effect (see module.h). */
int pl_db_listening(const char *channel)
{
    return pl_pg_listening(channel);
}

int pl_db_available(void)
{
    return pl_pg_available();
}

void pl_db_array_add(pl_buf *b, const char *s)
{
    if (b->len && b->data[b->len - 1] != '{')
        pl_buf_putc(b, ',');
    pl_buf_putc(b, '"');
    for (;;) {
        size_t n = strcspn(s, "\"\\");
        pl_buf_append(b, s, n);
        s += n;
        if (!*s)
            break;
        pl_buf_putc(b, '\\');
        pl_buf_putc(b, *s++);
    }
    pl_buf_putc(b, '"');
}
