/* db/pg_test.c: tests of the storage service and the schema against a
 * real PostgreSQL server, named by the libpq conninfo in PL_TEST_PG. Each
 * test works in its own PostgreSQL schema (pgtest_<pid>, dropped at the
 * end) and tags its pool connections with that name as application_name,
 * so that it can terminate exactly its own backends. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <parley/base.h>
#include <parley/module.h>
#include "db/pg.h"
#include "db/schema.h"
#include "../../tests/unit/test.h"

/* ==== fixture ==== */

static struct event_base *base;
static PGconn *admin;            /* blocking connection for setup and checks */
static char schema[64];          /* also the pool's application_name */
static char conninfo[4096];      /* the pool's conninfo */
static char linkdir[256];        /* socket directory made by the outage test */
static char linkpath[512];
static int timed_out;

static void cleanup(void)
{
    pl_pg_shutdown();
    if (linkpath[0])
        unlink(linkpath);
    if (linkdir[0])
        rmdir(linkdir);
    linkpath[0] = linkdir[0] = '\0';
    if (admin) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
        PQclear(PQexec(admin, sql));
        PQfinish(admin);
        admin = NULL;
    }
    if (base)
        event_base_free(base);
    base = NULL;
}

static PGresult *admin_exec(const char *sql)
{
    PGresult *r = PQexec(admin, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "admin query failed: %s: %s", sql, PQerrorMessage(admin));
        exit(1);
    }
    return r;
}

static void admin_cmd(const char *sql)
{
    PQclear(admin_exec(sql));
}

/* The first value of a one-row query, in a static buffer. */
static const char *admin_value(const char *sql)
{
    static char out[256];
    PGresult *r = admin_exec(sql);
    snprintf(out, sizeof out, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "(no rows)");
    PQclear(r);
    return out;
}

static void append_kv(char *out, size_t n, const char *key, const char *val)
{
    size_t len = strlen(out);
    len += (size_t)snprintf(out + len, n - len, "%s='", key);
    for (; *val && len + 3 < n; val++) {
        if (*val == '\'' || *val == '\\')
            out[len++] = '\\';
        out[len++] = *val;
    }
    snprintf(out + len, n - len, "' ");
}

/* PL_TEST_PG with our application_name and search_path, and optionally
 * another host (socket directory). */
static void build_conninfo(const char *host)
{
    const char *env = getenv("PL_TEST_PG");
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(env, &err);
    CHECK(opts != NULL);
    conninfo[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !strcmp(o->keyword, "options") ||
            !strcmp(o->keyword, "application_name") ||
            (host && (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr"))))
            continue;
        append_kv(conninfo, sizeof conninfo, o->keyword, o->val);
    }
    PQconninfoFree(opts);
    if (host)
        append_kv(conninfo, sizeof conninfo, "host", host);
    append_kv(conninfo, sizeof conninfo, "application_name", schema);
    char opt[128];
    snprintf(opt, sizeof opt, "-c search_path=%s", schema);
    append_kv(conninfo, sizeof conninfo, "options", opt);
}

static void setup(void)
{
    const char *env = getenv("PL_TEST_PG");
    if (!env || !*env)
        fprintf(stderr, "PL_TEST_PG is not set: these tests need a PostgreSQL server; "
                        "set PL_TEST_PG to its libpq conninfo\n");
    CHECK(env && *env);
    pl_log_set_level(PL_LOG_ERROR);
    admin = PQconnectdb(env);
    if (PQstatus(admin) != CONNECTION_OK)
        fprintf(stderr, "cannot connect to PL_TEST_PG: %s", PQerrorMessage(admin));
    CHECK(PQstatus(admin) == CONNECTION_OK);
    atexit(cleanup);
    snprintf(schema, sizeof schema, "pgtest_%d", (int)getpid());
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    PQclear(PQexec(admin, "SET client_min_messages = warning"));
    admin_cmd(sql);
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    admin_cmd(sql);
    snprintf(sql, sizeof sql, "SET search_path = %s", schema);
    admin_cmd(sql);
    build_conninfo(NULL);
    base = event_base_new();
    CHECK(base != NULL);
}

/* ==== running the loop ==== */

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    timed_out = 1;
    event_base_loopbreak(base);
}

/* Runs the loop until cond() holds, failing the test after ms. */
static void run_until(int (*cond)(void), int ms)
{
    struct event *t = evtimer_new(base, timeout_cb, NULL);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(t, &tv);
    timed_out = 0;
    for (int i = 0; i < 1000000 && !cond() && !timed_out; i++)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    if (timed_out)
        fprintf(stderr, "timed out after %d ms waiting\n", ms);
    CHECK(!timed_out);
}

static int never(void)
{
    return 0;
}

/* Runs the loop for ms. */
static void run_for(int ms)
{
    struct event *t = evtimer_new(base, timeout_cb, NULL);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(t, &tv);
    timed_out = 0;
    for (int i = 0; i < 1000000 && !timed_out; i++)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    (void)never;
}

static int cond_available(void)
{
    return pl_pg_available();
}

static int want_up;
static int cond_conns_up(void)
{
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    return pl_pg_available() && st.connections_up == want_up;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==== recording results ==== */

typedef struct rec {
    int called;
    int order;
    int ok;
    int rows;
    long affected;
    int cols;          /* columns to record (set by the test; 0 = 1) */
    char err[512];
    char text[2048];   /* rows as "a|b;c|d", NULL as \N */
} rec;

static int in_query;     /* set while pl_pg_query runs */
static int order_seq;
static int ncalled;

static void rec_cb(const pl_db_result *r, void *ud)
{
    rec *x = ud;
    CHECK(!in_query);
    CHECK_EQ(x->called, 0);
    x->called = 1;
    x->order = ++order_seq;
    ncalled++;
    x->ok = pl_db_ok(r);
    x->rows = pl_db_rows(r);
    x->affected = pl_db_affected(r);
    snprintf(x->err, sizeof x->err, "%s", pl_db_error(r));
    size_t n = 0;
    int cols = x->cols ? x->cols : 1;
    for (int i = 0; i < x->rows && n + 256 < sizeof x->text; i++) {
        for (int j = 0; j < cols; j++) {
            const char *v = pl_db_isnull(r, i, j) ? "\\N" : pl_db_value(r, i, j);
            n += (size_t)snprintf(x->text + n, sizeof x->text - n, "%s%.200s",
                                  j ? "|" : (i ? ";" : ""), v);
        }
    }
    x->text[n] = '\0';
}

static struct pl_pg_query *query(const char *sql, int n, const char *const *params, rec *x)
{
    in_query = 1;
    struct pl_pg_query *q = pl_pg_query(sql, n, params, rec_cb, x);
    in_query = 0;
    return q;
}

static int *wait_flag;
static int cond_flag(void)
{
    return *wait_flag;
}

/* Runs the loop until x's callback ran. */
static void wait_rec(rec *x, int ms)
{
    wait_flag = &x->called;
    run_until(cond_flag, ms);
}

static int wait_count;
static int cond_count(void)
{
    return ncalled >= wait_count;
}

static void wait_calls(int n, int ms)
{
    wait_count = n;
    run_until(cond_count, ms);
}

static char states[64];
static void state_cb(int up, void *ud)
{
    size_t n = strlen(states);
    if (n + 3 < sizeof states)
        snprintf(states + n, sizeof states - n, "%s%d", n ? "," : "", up);
}

static void start_pool(int size)
{
    pl_pg_on_state(state_cb, NULL);
    CHECK_EQ(pl_pg_init(base, conninfo, size), 0);
    run_until(cond_available, 10000);
}

static void pool_up(int size)
{
    start_pool(size);
    want_up = size;
    run_until(cond_conns_up, 10000);
}
