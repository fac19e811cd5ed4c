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
#include "core/modmgr.h"
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
static char linktarget[512];     /* the server's socket */
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
    const char *lvl = getenv("PL_TEST_LOG");   /* e.g. "debug" to watch */
    pl_log_set_level(lvl && pl_log_level_parse(lvl) >= 0 ? pl_log_level_parse(lvl)
                                                          : PL_LOG_ERROR);
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

#define P1(a) ((const char *const[]){ a })
#define P3(a, b, c) ((const char *const[]){ a, b, c })

/* ==== tests ==== */

PL_TEST(pg_init_rejects_bad_conninfo)
{
    pl_log_set_level(PL_LOG_ERROR + 1);
    base = event_base_new();
    CHECK_EQ(pl_pg_init(base, "host='unterminated", 1), -1);
    CHECK_EQ(pl_pg_init(base, "nonsense", 1), -1);
    CHECK_EQ(pl_pg_available(), 0);
    CHECK_NULL(pl_pg_query("SELECT 1", 0, NULL, rec_cb, NULL));
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.pool_size, 0);
    /* A valid one starts; a second init is refused until shutdown. */
    CHECK_EQ(pl_pg_init(base, "host=/nonexistent-pl-dir dbname=x", 3), 0);
    CHECK_EQ(pl_pg_init(base, "host=/nonexistent-pl-dir dbname=x", 3), -1);
    pl_pg_get_stats(&st);
    CHECK_EQ(st.pool_size, 3);
    CHECK_EQ(st.connections_up, 0);
    pl_pg_shutdown();
    pl_pg_shutdown();
    event_base_free(base);
    base = NULL;
}

PL_TEST(pg_schema_list)
{
    /* Versions run 1, 2, ... with no gap; the last is the latest. */
    int n = 0;
    for (const pl_migration *m = pl_schema_migrations; m->sql; m++) {
        CHECK_EQ(m->version, n + 1);
        n++;
    }
    CHECK(n >= 1);
    CHECK_EQ(pl_schema_latest(), n);
    CHECK_EQ(pl_schema_migrations[n].version, 0);
    CHECK(strstr(pl_schema_migrations[0].sql, "CREATE TABLE users (") != NULL);
}

PL_TEST(pg_unavailable_until_connected)
{
    setup();
    rec a = { 0 };
    CHECK_EQ(pl_pg_init(base, conninfo, 2), 0);
    CHECK_EQ(pl_pg_available(), 0);
    CHECK_NULL(query("SELECT 1", 0, NULL, &a));
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.pool_size, 2);
    CHECK_EQ(st.connections_up, 0);
    CHECK_EQ(st.queued, 0);
    pl_pg_on_state(state_cb, NULL);
    run_until(cond_available, 10000);
    CHECK(query("SELECT 1", 0, NULL, &a) != NULL);
    CHECK_EQ(a.called, 0);   /* never from inside pl_pg_query */
    wait_rec(&a, 5000);
    CHECK(a.ok);
    CHECK_STR(a.text, "1");
    CHECK_STR(a.err, "");
    run_for(50);
    CHECK_STR(states, "1");
    pl_pg_shutdown();
    CHECK_EQ(pl_pg_available(), 0);
    CHECK_STR(states, "1");   /* shutdown does not call the listener */
    cleanup();
}

PL_TEST(pg_migrations_applied_once)
{
    setup();
    start_pool(2);
    char want[16];
    snprintf(want, sizeof want, "%d", pl_schema_latest());
    CHECK_STR(admin_value("SELECT version FROM parley_schema WHERE component = 'core'"), want);
    CHECK_STR(admin_value("SELECT count(*) FROM parley_schema"), "1");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ',' "
             "ORDER BY ordinal_position) FROM information_schema.columns "
             "WHERE table_schema = '%s' AND table_name = 'users'", schema);
    CHECK_STR(admin_value(sql),
              "host:text:NO,username:text:NO,iterations:integer:NO,salt:text:NO,"
              "sha1_stored_key:text:NO,sha1_server_key:text:NO,sha256_stored_key:text:NO,"
              "sha256_server_key:text:NO,created_at:timestamp with time zone:NO");
    snprintf(sql, sizeof sql,
             "SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_index i "
             "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
             "WHERE i.indrelid = '%s.users'::regclass AND i.indisprimary", schema);
    CHECK_STR(admin_value(sql), "host,username");

    rec a = { 0 };
    const char *const p[] = { "example.org", "alice", "4096", "c2FsdA==", "k1", "s1", "k2", "s2" };
    CHECK(query("INSERT INTO users (host, username, iterations, salt, sha1_stored_key, "
                "sha1_server_key, sha256_stored_key, sha256_server_key) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", 8, p, &a));
    wait_rec(&a, 5000);
    CHECK_STR(a.err, "");
    CHECK_EQ(a.affected, 1);
    pl_pg_shutdown();

    /* A second start finds the schema current and changes nothing. */
    CHECK_EQ(pl_pg_init(base, conninfo, 1), 0);
    run_until(cond_available, 10000);
    CHECK_STR(admin_value("SELECT version FROM parley_schema WHERE component = 'core'"), want);
    CHECK_STR(admin_value("SELECT count(*) FROM parley_schema"), "1");
    CHECK_STR(admin_value("SELECT username || '@' || host || ':' || iterations FROM users"),
              "alice@example.org:4096");
    rec b = { 0 };
    CHECK(query("SELECT count(*) FROM users", 0, NULL, &b));
    wait_rec(&b, 5000);
    CHECK_STR(b.text, "1");
    pl_pg_shutdown();
    cleanup();
}

PL_TEST(pg_migrate_sync)
{
    setup();
    char err[256] = "x", latest[16], sql[128], want[128];
    snprintf(latest, sizeof latest, "%d", pl_schema_latest());
    CHECK_EQ(pl_schema_migrate_sync(admin, err, sizeof err), 0);
    CHECK_STR(err, "");
    CHECK_STR(admin_value("SELECT version FROM parley_schema WHERE component = 'core'"), latest);
    CHECK_STR(admin_value("SELECT to_regclass('users') IS NOT NULL"), "t");
    CHECK_EQ(pl_schema_migrate_sync(admin, err, sizeof err), 0);
    CHECK_STR(admin_value("SELECT count(*) FROM parley_schema"), "1");

    /* A database newer than this build is refused, by both runners. */
    snprintf(sql, sizeof sql, "UPDATE parley_schema SET version = %d", pl_schema_latest() + 1);
    admin_cmd(sql);
    CHECK_EQ(pl_schema_migrate_sync(admin, err, sizeof err), -1);
    snprintf(want, sizeof want, "database schema version %d is newer than this build (%d)",
             pl_schema_latest() + 1, pl_schema_latest());
    CHECK_STR(err, want);
    pl_log_set_level(PL_LOG_ERROR + 1);
    CHECK_EQ(pl_pg_init(base, conninfo, 1), 0);
    run_for(700);
    CHECK_EQ(pl_pg_available(), 0);
    pl_pg_shutdown();
    /* The lock was released: a blocking migrator is not stuck. */
    snprintf(sql, sizeof sql, "UPDATE parley_schema SET version = %d", pl_schema_latest());
    admin_cmd(sql);
    CHECK_EQ(pl_schema_migrate_sync(admin, err, sizeof err), 0);
    CHECK_STR(err, "");

    /* A failing migration rolls back and reports why. */
    admin_cmd("DROP TABLE users CASCADE");
    admin_cmd("UPDATE parley_schema SET version = 0 WHERE component = 'core'");
    admin_cmd("CREATE VIEW users AS SELECT 1 AS x");
    CHECK_EQ(pl_schema_migrate_sync(admin, err, sizeof err), -1);
    CHECK_STR(err, "migrating the schema from version 0: ERROR: relation \"users\" already exists");
    CHECK_STR(admin_value("SELECT version FROM parley_schema WHERE component = 'core'"), "0");
    CHECK_STR(admin_value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND pid = pg_backend_pid()"), "0");
    CHECK_STR(admin_value("SELECT to_regclass('users') IS NOT NULL"), "t");  /* the view */

    PGconn *bad = PQconnectStart("host=/nonexistent-pl-dir");
    CHECK_EQ(pl_schema_migrate_sync(bad, err, sizeof err), -1);
    CHECK(strncmp(err, "no database connection", 22) == 0);
    PQfinish(bad);
    cleanup();
}

/* The daemon's migration takes the same advisory lock as parleyctl's. */
PL_TEST(pg_migration_waits_for_lock)
{
    setup();
    admin_cmd("SELECT pg_advisory_lock(7099003282150010)");
    pl_pg_on_state(state_cb, NULL);
    CHECK_EQ(pl_pg_init(base, conninfo, 2), 0);
    run_for(500);
    CHECK_EQ(pl_pg_available(), 0);
    CHECK_STR(admin_value("SELECT to_regclass('parley_schema') IS NULL"), "t");
    admin_cmd("SELECT pg_advisory_unlock(7099003282150010)");
    run_until(cond_available, 5000);
    char want[16];
    snprintf(want, sizeof want, "%d", pl_schema_latest());
    CHECK_STR(admin_value("SELECT version FROM parley_schema WHERE component = 'core'"), want);
    want_up = 2;
    run_until(cond_conns_up, 5000);
    run_for(20);
    CHECK_STR(states, "1");
    pl_pg_shutdown();
    cleanup();
}

PL_TEST(pg_params_rows_nulls)
{
    setup();
    admin_cmd("CREATE TABLE items (id int PRIMARY KEY, name text, note text)");
    pool_up(1);
    const char *ins = "INSERT INTO items VALUES ($1, $2, $3)";
    rec r[8] = { { 0 } };
    CHECK(query(ins, 3, P3("1", "alice", NULL), &r[0]));
    CHECK(query(ins, 3, P3("2", "bob", "hi"), &r[1]));
    CHECK(query(ins, 3, P3("3", "o'brien'); DROP TABLE items; --", NULL), &r[2]));
    r[3].cols = 3;
    CHECK(query("SELECT id, name, note FROM items WHERE id >= $1 ORDER BY id", 1, P1("1"),
                &r[3]));
    CHECK(query("UPDATE items SET note = $1 WHERE note IS NULL", 1, P1("x"), &r[4]));
    r[5].cols = 2;
    CHECK(query("SELECT count(*), min(note) FROM items WHERE note = $1", 1, P1("x"), &r[5]));
    CHECK(query("DELETE FROM items WHERE id = $1", 1, P1("99"), &r[6]));
    r[7].cols = 3;
    CHECK(query("SELECT NULL::text, ''::text, 'é'", 0, NULL, &r[7]));
    wait_calls(8, 5000);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(r[i].order, i + 1);
        CHECK_STR(r[i].err, "");
        CHECK(r[i].ok);
    }
    CHECK_EQ(r[0].affected, 1);
    CHECK_EQ(r[0].rows, 0);
    CHECK_EQ(r[3].rows, 3);
    CHECK_STR(r[3].text, "1|alice|\\N;2|bob|hi;3|o'brien'); DROP TABLE items; --|\\N");
    CHECK_EQ(r[4].affected, 2);
    CHECK_STR(r[5].text, "2|x");
    CHECK_EQ(r[6].affected, 0);
    CHECK_STR(r[7].text, "\\N||é");
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.completed, 8);
    CHECK_EQ(st.failed, 0);
    CHECK_EQ(st.in_flight, 0);
    pl_pg_shutdown();
    cleanup();
}

PL_TEST(pg_array_literal_round_trip)
{
    /* every element comes back from PostgreSQL exactly as given, in order */
    static const char *const items[] = { "plain", "", "NULL", "a,b", "{x}", "say \"hi\"",
                                         "back\\slash\\", " spaced ", "é<m a='1'/>" };
    enum { N = sizeof items / sizeof *items };
    setup();
    pool_up(1);
    pl_buf lit = PL_BUF_INIT;
    pl_buf_putc(&lit, '{');
    for (int i = 0; i < N; i++)
        pl_db_array_add(&lit, items[i]);
    pl_buf_putc(&lit, '}');
    rec r = { 0 };
    r.cols = 3;
    CHECK(query("SELECT n, v IS NULL, v FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) "
                "ORDER BY n", 1, P1(lit.data), &r));
    wait_rec(&r, 5000);
    CHECK(r.ok);
    CHECK_EQ(r.rows, N);
    pl_buf want = PL_BUF_INIT;
    for (int i = 0; i < N; i++)
        pl_buf_printf(&want, "%s%d|f|%s", i ? ";" : "", i + 1, items[i]);
    CHECK_STR(r.text, want.data);
    /* an empty literal is an empty array */
    rec e = { 0 };
    CHECK(query("SELECT cardinality($1::text[])", 1, P1("{}"), &e));
    wait_rec(&e, 5000);
    CHECK_STR(e.text, "0");
    pl_buf_free(&want);
    pl_buf_free(&lit);
    pl_pg_shutdown();
    cleanup();
}

static int acc_checked;
static void accessor_cb(const pl_db_result *r, void *ud)
{
    CHECK(pl_db_ok(r));
    CHECK_EQ(pl_db_rows(r), 1);
    CHECK_EQ(pl_db_isnull(r, 0, 0), 1);
    CHECK_STR(pl_db_value(r, 0, 0), "");
    CHECK_EQ(pl_db_isnull(r, 0, 1), 0);
    CHECK_STR(pl_db_value(r, 0, 1), "v");
    CHECK_EQ(pl_db_isnull(r, 0, 2), 1);     /* out of range */
    CHECK_STR(pl_db_value(r, 0, 2), "");
    CHECK_STR(pl_db_value(r, 1, 0), "");
    CHECK_STR(pl_db_value(r, -1, 0), "");
    CHECK_STR(pl_db_value(r, 0, -1), "");
    CHECK_EQ(pl_db_affected(r), 1);   /* "SELECT 1" */
    acc_checked = 1;
}

PL_TEST(pg_result_accessors)
{
    setup();
    pool_up(1);
    CHECK(pl_pg_query("SELECT NULL, 'v'", 0, NULL, accessor_cb, NULL));
    wait_flag = &acc_checked;
    run_until(cond_flag, 5000);
    CHECK_EQ(pl_db_ok(NULL), 0);
    CHECK_EQ(pl_db_rows(NULL), 0);
    CHECK_STR(pl_db_value(NULL, 0, 0), "");
    CHECK_EQ(pl_db_isnull(NULL, 0, 0), 1);
    CHECK_EQ(pl_db_affected(NULL), 0);
    pl_pg_shutdown();
    cleanup();
}

PL_TEST(pg_many_queries_in_order)
{
    setup();
    pool_up(1);
    static rec r[200];
    char arg[200][16];
    for (int i = 0; i < 200; i++) {
        snprintf(arg[i], sizeof arg[i], "%d", i);
        const char *sql = i % 2 ? "SELECT $1::text || '-x'" : "SELECT $1::int * 2";
        CHECK(query(sql, 1, P1(arg[i]), &r[i]));
    }
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.queued, 200);
    CHECK_EQ(st.in_flight, 0);
    wait_calls(200, 10000);
    for (int i = 0; i < 200; i++) {
        char want[32];
        if (i % 2)
            snprintf(want, sizeof want, "%d-x", i);
        else
            snprintf(want, sizeof want, "%d", i * 2);
        CHECK_EQ(r[i].order, i + 1);
        CHECK(r[i].ok);
        CHECK_STR(r[i].text, want);
    }
    /* Two texts were prepared once each on the one connection. */
    rec p = { 0 };
    p.cols = 2;
    CHECK(query("SELECT count(*), string_agg(name || '=' || left(statement, 9), ',' ORDER BY name) "
                "FROM pg_prepared_statements", 0, NULL, &p));
    wait_rec(&p, 5000);
    CHECK_STR(p.text, "3|s1=SELECT $1,s2=SELECT $1,s3=SELECT co");
    pl_pg_get_stats(&st);
    CHECK_EQ(st.completed, 201);
    CHECK_EQ(st.failed, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.in_flight, 0);
    pl_pg_shutdown();
    cleanup();
}

PL_TEST(pg_statement_cache_bounded)
{
    setup();
    pool_up(1);
    static rec r[300];
    char sql[64];
    for (int i = 0; i < 300; i++) {
        snprintf(sql, sizeof sql, "SELECT %d", i);
        CHECK(query(sql, 0, NULL, &r[i]));
    }
    wait_calls(300, 10000);
    for (int i = 0; i < 300; i++) {
        snprintf(sql, sizeof sql, "%d", i);
        CHECK_STR(r[i].text, sql);
    }
    /* 256 are kept prepared; the rest ran unnamed. */
    rec p = { 0 };
    CHECK(query("SELECT count(*) FROM pg_prepared_statements", 0, NULL, &p));
    wait_rec(&p, 5000);
    CHECK_STR(p.text, "256");
    pl_pg_shutdown();
    cleanup();
}

/* Parameters far larger than the socket buffer: libpq's output must be
 * flushed on write readiness. */
PL_TEST(pg_large_parameters)
{
    setup();
    pool_up(1);
    size_t len = 2u << 20;
    char *big = pl_malloc(len + 1);
    memset(big, 'a', len);
    big[len] = '\0';
    static rec r[8];
    for (int i = 0; i < 8; i++) {
        big[i] = 'b';
        r[i].cols = 2;
        CHECK(query("SELECT length($1), length($1) - length(replace($1, 'b', ''))", 1,
                    P1(big), &r[i]));
    }
    pl_free(big);
    wait_calls(8, 10000);
    for (int i = 0; i < 8; i++) {
        char want[32];
        snprintf(want, sizeof want, "2097152|%d", i + 1);
        CHECK_STR(r[i].text, want);
    }
    pl_pg_shutdown();
    cleanup();
}

static void pool_run(int size)
{
    ncalled = 0;
    order_seq = 0;
    pool_up(size);
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.connections_up, size);
    CHECK_EQ(st.pool_size, size);
    static rec r[200];
    static char arg[200][16];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 200; i++) {
        snprintf(arg[i], sizeof arg[i], "%d", i);
        r[i].cols = 2;
        CHECK(query("SELECT pg_backend_pid(), $1::int", 1, P1(arg[i]), &r[i]));
    }
    wait_calls(200, 10000);
    char pids[8][32];
    int npids = 0;
    for (int i = 0; i < 200; i++) {
        CHECK(r[i].ok);
        char *bar = strchr(r[i].text, '|');
        CHECK(bar != NULL);
        CHECK_EQ(atoi(bar + 1), i);
        *bar = '\0';
        int seen = 0;
        for (int j = 0; j < npids; j++)
            seen |= !strcmp(pids[j], r[i].text);
        if (!seen && npids < 8)
            snprintf(pids[npids++], sizeof pids[0], "%.31s", r[i].text);
    }
    CHECK_EQ(npids, size);
    /* The first queries went one to each idle connection. */
    for (int i = 0; i < size; i++)
        for (int j = 0; j < i; j++)
            CHECK(strcmp(r[i].text, r[j].text) != 0);
    pl_pg_get_stats(&st);
    CHECK_EQ(st.completed, 200);
    CHECK_EQ(st.in_flight, 0);
    pl_pg_shutdown();
}

PL_TEST(pg_pool_sizes)
{
    setup();
    pool_run(1);
    pool_run(4);
    cleanup();
}

PL_TEST(pg_errors_fail_one_query)
{
    setup();
    admin_cmd("CREATE TABLE u (k text PRIMARY KEY)");
    pool_up(1);
    const char *ins = "INSERT INTO u VALUES ($1)";
    const char *syntax = "syntax error at or near \"SELEC\" (SQLSTATE 42601)";
    rec r[11] = { { 0 } };
    CHECK(query("SELEC 1", 0, NULL, &r[0]));
    CHECK(query("SELEC 1", 0, NULL, &r[1]));
    CHECK(query("SELECT 1", 0, NULL, &r[2]));
    CHECK(query(ins, 1, P1("a"), &r[3]));
    CHECK(query(ins, 1, P1("a"), &r[4]));
    CHECK(query(ins, 1, P1("b"), &r[5]));
    CHECK(query("SELECT 10 / $1::int", 1, P1("0"), &r[6]));
    CHECK(query("SELECT 10 / $1::int", 1, P1("5"), &r[7]));
    CHECK(query("SELECT $1::int", 1, P1("notanumber"), &r[8]));
    CHECK(query("SELECT count(*) FROM u", 0, NULL, &r[9]));
    CHECK(query("SELECT count(*) FROM nosuchtable", 0, NULL, &r[10]));
    wait_calls(11, 5000);
    for (int i = 0; i < 11; i++)
        CHECK_EQ(r[i].order, i + 1);
    CHECK(!r[0].ok);
    CHECK_STR(r[0].err, syntax);
    CHECK_EQ(r[0].rows, 0);
    CHECK(!r[1].ok);
    CHECK_STR(r[1].err, syntax);
    CHECK_STR(r[2].text, "1");
    CHECK_EQ(r[3].affected, 1);
    CHECK(!r[4].ok);
    CHECK_STR(r[4].err, "duplicate key value violates unique constraint \"u_pkey\" "
                        "(SQLSTATE 23505)");
    CHECK_EQ(r[4].affected, 0);
    CHECK(r[5].ok);
    CHECK_STR(r[6].err, "division by zero (SQLSTATE 22012)");
    CHECK(r[7].ok);
    CHECK_STR(r[7].text, "2");
    CHECK_STR(r[8].err, "invalid input syntax for type integer: \"notanumber\" (SQLSTATE 22P02)");
    CHECK_STR(r[9].text, "2");
    CHECK_STR(r[10].err, "relation \"nosuchtable\" does not exist (SQLSTATE 42P01)");

    /* A text whose prepare failed is prepared again: it now works. */
    admin_cmd("CREATE TABLE nosuchtable (x int)");
    rec again = { 0 }, bad = { 0 };
    CHECK(query("SELECT count(*) FROM nosuchtable", 0, NULL, &again));
    CHECK(query("SELEC 1", 0, NULL, &bad));
    wait_calls(13, 5000);
    CHECK_STR(again.err, "");
    CHECK_STR(again.text, "0");
    CHECK_STR(bad.err, syntax);
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.failed, 7);
    CHECK_EQ(st.completed, 6);
    pl_pg_shutdown();
    cleanup();
}

static struct pl_pg_query *to_cancel;
static void cancel_other_cb(const pl_db_result *r, void *ud)
{
    rec_cb(r, ud);
    pl_pg_cancel(to_cancel);
}

static void cancel_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.in_flight, 2);
    pl_pg_cancel(arg);
}

PL_TEST(pg_cancel_suppresses_callback)
{
    setup();
    pool_up(1);
    rec a = { 0 }, b = { 0 }, c = { 0 };
    CHECK(query("SELECT 1", 0, NULL, &a));
    struct pl_pg_query *qb = query("SELECT 2", 0, NULL, &b);
    CHECK(qb);
    CHECK(query("SELECT 3", 0, NULL, &c));
    pl_pg_cancel(qb);   /* still queued */
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.queued, 2);
    wait_rec(&c, 5000);
    CHECK(a.called);
    CHECK_EQ(b.called, 0);
    CHECK_STR(c.text, "3");

    /* In flight: the query runs, the callback does not. */
    rec d = { 0 }, e = { 0 };
    struct pl_pg_query *qd = query("SELECT 4 FROM pg_sleep(0.3)", 0, NULL, &d);
    CHECK(query("SELECT 5", 0, NULL, &e));
    struct event *t = evtimer_new(base, cancel_timer_cb, qd);
    struct timeval tv = { 0, 100000 };
    evtimer_add(t, &tv);
    wait_rec(&e, 5000);
    event_free(t);
    CHECK_EQ(d.called, 0);
    CHECK_STR(e.text, "5");

    /* Cancelled from another query's callback, finished or not. */
    rec f = { 0 }, g = { 0 }, h = { 0 };
    in_query = 1;
    CHECK(pl_pg_query("SELECT 6", 0, NULL, cancel_other_cb, &f));
    in_query = 0;
    to_cancel = query("SELECT 7", 0, NULL, &g);
    CHECK(query("SELECT 8 FROM pg_sleep(0.05)", 0, NULL, &h));
    wait_rec(&h, 5000);
    CHECK(f.called);
    CHECK_EQ(g.called, 0);
    pl_pg_get_stats(&st);
    CHECK_EQ(st.in_flight, 0);
    CHECK_EQ(st.queued, 0);
    pl_pg_cancel(NULL);
    pl_pg_shutdown();
    cleanup();
}

static int terminated;
static void terminate_cb(evutil_socket_t fd, short what, void *arg)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE application_name = '%s'", schema);
    terminated = atoi(admin_value(sql));
    if (arg)
        unlink(linkpath);
}

static int cond_states_101(void)
{
    return strcmp(states, "1,0,1") == 0;
}

static int cond_states_10101(void)
{
    return strcmp(states, "1,0,1,0,1") == 0;
}

PL_TEST(pg_reconnects_after_kill)
{
    setup();
    pool_up(2);
    rec a = { 0 }, b = { 0 };
    CHECK(query("SELECT pg_sleep(10)", 0, NULL, &a));
    CHECK(query("SELECT pg_sleep(10)", 0, NULL, &b));
    struct event *t = evtimer_new(base, terminate_cb, NULL);
    struct timeval tv = { 0, 300000 };
    evtimer_add(t, &tv);
    wait_calls(2, 5000);
    event_free(t);
    CHECK_EQ(terminated, 2);
    CHECK(!a.ok);
    CHECK(!b.ok);
    CHECK(strstr(a.err, "terminating connection due to administrator command") != NULL);
    CHECK(strstr(b.err, "terminating connection due to administrator command") != NULL);
    run_until(cond_states_101, 10000);
    rec c = { 0 };
    CHECK(query("SELECT 7", 0, NULL, &c));
    wait_rec(&c, 5000);
    CHECK_STR(c.text, "7");
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.failed, 2);
    CHECK_EQ(st.completed, 1);
    want_up = 2;
    run_until(cond_conns_up, 10000);

    /* Killed while idle: noticed from the socket alone. */
    terminate_cb(-1, 0, NULL);
    CHECK_EQ(terminated, 2);
    run_until(cond_states_10101, 10000);
    rec d = { 0 };
    CHECK(query("SELECT 8", 0, NULL, &d));
    wait_rec(&d, 5000);
    CHECK_STR(d.text, "8");
    pl_pg_shutdown();
    cleanup();
}

/* The pool connects through a socket directory of our own holding a
 * symlink to the server's socket; removing the link makes the server
 * unreachable for the pool only. */
static void make_link_dir(void)
{
    const char *env = getenv("PL_TEST_PG");
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(env, &err);
    CHECK(opts != NULL);
    char host[256] = "", port[16] = "5432";
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val && !strcmp(o->keyword, "host"))
            snprintf(host, sizeof host, "%s", o->val);
        if (o->val && o->val[0] && !strcmp(o->keyword, "port"))
            snprintf(port, sizeof port, "%s", o->val);
    }
    PQconninfoFree(opts);
    if (host[0] != '/')
        fprintf(stderr, "this test needs PL_TEST_PG to name a UNIX socket directory "
                        "as host (got \"%s\")\n", host);
    CHECK(host[0] == '/');
    snprintf(linkdir, sizeof linkdir, "/tmp/pgtest-link.XXXXXX");
    CHECK(mkdtemp(linkdir) != NULL);
    snprintf(linkpath, sizeof linkpath, "%s/.s.PGSQL.%s", linkdir, port);
    snprintf(linktarget, sizeof linktarget, "%s/.s.PGSQL.%s", host, port);
    build_conninfo(linkdir);
}

static void relink(void)
{
    CHECK_EQ(symlink(linktarget, linkpath), 0);
}

static int cond_unavailable(void)
{
    return !pl_pg_available() && strcmp(states, "1,0") == 0;
}

PL_TEST(pg_outage_fails_queued_after_5s)
{
    setup();
    make_link_dir();
    /* No server yet: unavailable, queries refused. */
    pl_pg_on_state(state_cb, NULL);
    CHECK_EQ(pl_pg_init(base, conninfo, 1), 0);
    run_for(400);
    CHECK_EQ(pl_pg_available(), 0);
    CHECK_NULL(query("SELECT 1", 0, NULL, NULL));
    relink();
    run_until(cond_available, 5000);
    run_for(20);
    CHECK_STR(states, "1");

    /* Fill the pipeline so that one more query stays queued. */
    static rec r[32];
    rec x = { 0 };
    for (int i = 0; i < 32; i++)
        CHECK(query("SELECT pg_sleep(30)", 0, NULL, &r[i]));
    long long t0 = mono_ms();
    CHECK(query("SELECT 1", 0, NULL, &x));
    run_for(200);
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.in_flight, 32);
    CHECK_EQ(st.queued, 1);

    /* The server goes away for the pool. */
    terminate_cb(-1, 0, linkpath);
    CHECK_EQ(terminated, 1);
    wait_calls(32, 5000);
    for (int i = 0; i < 32; i++)
        CHECK(!r[i].ok);
    run_until(cond_unavailable, 2000);
    if (x.called)
        fprintf(stderr, "x: %s\n", x.err);
    CHECK_EQ(x.called, 0);
    rec y = { 0 };
    CHECK_NULL(query("SELECT 1", 0, NULL, &y));
    wait_rec(&x, 7000);
    long long waited = mono_ms() - t0;
    CHECK(!x.ok);
    CHECK_STR(x.err, "database unavailable");
    CHECK(waited >= 4900 && waited < 6500);

    /* It comes back. */
    relink();
    run_until(cond_available, 8000);
    rec z = { 0 };
    CHECK(query("SELECT 9", 0, NULL, &z));
    wait_rec(&z, 5000);
    CHECK_STR(z.text, "9");
    run_for(20);
    CHECK_STR(states, "1,0,1");
    pl_pg_shutdown();
    cleanup();
}

static int shutdown_nested;
static void shutdown_cb(const pl_db_result *r, void *ud)
{
    rec_cb(r, ud);
    pl_pg_shutdown();
    shutdown_nested = 1;
}

PL_TEST(pg_shutdown_fails_pending)
{
    setup();
    pool_up(1);
    rec a = { 0 };
    CHECK(query("SELECT pg_sleep(5)", 0, NULL, &a));
    run_for(200);
    static rec r[40];
    for (int i = 0; i < 40; i++)
        CHECK(query("SELECT 1", 0, NULL, &r[i]));
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.in_flight, 1);
    CHECK_EQ(st.queued, 40);
    pl_pg_shutdown();
    CHECK_EQ(ncalled, 41);
    CHECK_EQ(a.order, 1);
    CHECK_STR(a.err, "shutting down");
    for (int i = 0; i < 40; i++) {
        CHECK_EQ(r[i].order, i + 2);
        CHECK_STR(r[i].err, "shutting down");
    }
    CHECK_EQ(pl_pg_available(), 0);
    CHECK_NULL(query("SELECT 1", 0, NULL, &a));
    pl_pg_get_stats(&st);
    CHECK_EQ(st.pool_size, 0);

    /* Shutting down from inside a callback. */
    pool_up(1);
    rec b = { 0 }, c = { 0 };
    in_query = 1;
    CHECK(pl_pg_query("SELECT 1 FROM pg_sleep(0.1)", 0, NULL, shutdown_cb, &b));
    in_query = 0;
    CHECK(query("SELECT pg_sleep(5)", 0, NULL, &c));
    wait_flag = &shutdown_nested;
    run_until(cond_flag, 5000);
    CHECK(b.called);
    CHECK(c.called);
    CHECK_STR(c.err, "shutting down");
    CHECK_EQ(pl_pg_available(), 0);
    run_for(50);
    cleanup();
}

/* ==== notifications ==== */

void pl__module_cancel_queries(pl_module *m);   /* dbapi.c, for the module manager */

static char chan_name[80];   /* the channel a test listens on */

/* What a subscriber heard: payloads separated by ';', a NULL as "!". */
typedef struct heard {
    int calls;
    size_t last_len;                 /* of the last payload */
    int null_while_listening;        /* a NULL came with the LISTEN in effect */
    char log[1024];
    struct pl_pg_listen *unsub[2];   /* ended from inside the callback */
} heard;

static void heard_cb(const char *payload, void *ud)
{
    heard *h = ud;
    CHECK(!in_query);
    h->calls++;
    h->last_len = payload ? strlen(payload) : 0;
    if (!payload && pl_pg_listening(chan_name))
        h->null_while_listening = 1;
    size_t n = strlen(h->log);
    snprintf(h->log + n, sizeof h->log - n, "%s%s", n ? ";" : "", payload ? payload : "!");
    for (int i = 0; i < 2; i++) {
        pl_pg_unlisten(h->unsub[i]);
        h->unsub[i] = NULL;
    }
}

static struct pl_pg_listen *listen_on(const char *channel, heard *h)
{
    in_query = 1;
    struct pl_pg_listen *l = pl_pg_listen(channel, heard_cb, h);
    in_query = 0;
    return l;
}

static int cond_listening(void)
{
    return pl_pg_listening(chan_name);
}

static int cond_not_listening(void)
{
    return !pl_pg_listening(chan_name);
}

static heard *wait_heard;
static int wait_heard_calls;
static int cond_heard(void)
{
    return wait_heard->calls >= wait_heard_calls;
}

/* Runs the loop until h was called n times in all. */
static void wait_notes(heard *h, int n, int ms)
{
    wait_heard = h;
    wait_heard_calls = n;
    run_until(cond_heard, ms);
}

/* NOTIFY from the admin connection: another session, as any writer. */
static void notify(const char *channel, const char *payload)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT pg_notify('%s', '%s')", channel, payload);
    admin_cmd(sql);
}

/* The pids of the pool's backends that LISTEN on chan_name. */
static int listener_backends(char *pids, size_t n)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ':' || coalesce(string_agg(pid::text, ','), '') "
             "FROM pg_stat_activity WHERE application_name = '%s' "
             "AND query = 'LISTEN %s'", schema, chan_name);
    const char *v = admin_value(sql);
    const char *colon = strchr(v, ':');
    snprintf(pids, n, "%s", colon ? colon + 1 : "");
    return atoi(v);
}

PL_TEST(pg_listen_checks_channel)
{
    heard h = { 0 };
    CHECK_NULL(pl_pg_listen("", heard_cb, &h));
    CHECK_NULL(pl_pg_listen(NULL, heard_cb, &h));
    CHECK_NULL(pl_pg_listen("Upper", heard_cb, &h));
    CHECK_NULL(pl_pg_listen("1abc", heard_cb, &h));
    CHECK_NULL(pl_pg_listen("a b", heard_cb, &h));
    CHECK_NULL(pl_pg_listen("a;drop", heard_cb, &h));
    CHECK_NULL(pl_pg_listen("x\"y", heard_cb, &h));
    CHECK_NULL(pl_pg_listen("ok", NULL, &h));
    char longname[80];
    memset(longname, 'a', 64);
    longname[64] = '\0';
    CHECK_NULL(pl_pg_listen(longname, heard_cb, &h));
    longname[63] = '\0';
    struct pl_pg_listen *l = pl_pg_listen(longname, heard_cb, &h);
    CHECK(l != NULL);
    pl_pg_unlisten(l);
    pl_pg_unlisten(NULL);
    l = pl_pg_listen("_x9", heard_cb, &h);
    CHECK(l != NULL);
    CHECK_EQ(pl_pg_listening("_x9"), 0);   /* no pool */
    pl_pg_unlisten(l);
    CHECK_EQ(pl_db_listen(NULL, "Bad", heard_cb, &h), PL_EINVAL);
    CHECK_EQ(h.calls, 0);
}

PL_TEST(pg_notify_delivered)
{
    setup();
    snprintf(chan_name, sizeof chan_name, "t_%s", schema);
    heard a = { 0 }, b = { 0 }, other = { 0 };
    /* Subscribed before the pool starts: LISTEN once a connection is up. */
    struct pl_pg_listen *la = listen_on(chan_name, &a);
    CHECK(la != NULL);
    pool_up(2);
    run_until(cond_listening, 5000);
    struct pl_pg_listen *lb = listen_on(chan_name, &b);
    struct pl_pg_listen *lo = listen_on("t_other", &other);
    CHECK(lb && lo);
    CHECK_EQ(pl_pg_listening("t_other"), 0);
    CHECK_EQ(pl_pg_listening("t_nobody"), 0);
    run_until(cond_listening, 5000);
    char pids[64];
    CHECK_EQ(listener_backends(pids, sizeof pids), 1);   /* one connection listens */

    /* The pool is idle: the notification is read from the socket alone. */
    notify(chan_name, "example.org/alice");
    wait_notes(&a, 1, 5000);
    wait_notes(&b, 1, 5000);
    CHECK_STR(a.log, "example.org/alice");
    CHECK_STR(b.log, "example.org/alice");

    /* Several, in order; empty and unusual payloads arrive as sent. */
    notify(chan_name, "");
    notify(chan_name, "x/y z;''quoted''");
    notify("t_other", "elsewhere");
    char big[400];
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    notify(chan_name, big);
    wait_notes(&a, 4, 5000);
    wait_notes(&b, 4, 5000);
    wait_notes(&other, 1, 5000);
    char want[sizeof a.log];
    snprintf(want, sizeof want, "example.org/alice;;x/y z;'quoted';%s", big);
    CHECK_STR(a.log, want);
    CHECK_STR(b.log, want);
    CHECK_EQ(a.last_len, 399);
    CHECK_EQ(a.calls, 4);
    CHECK_STR(other.log, "elsewhere");

    /* A notification sent in a transaction arrives at commit, once. */
    admin_cmd("BEGIN");
    notify(chan_name, "tx");
    notify(chan_name, "tx");
    run_for(200);
    CHECK_EQ(a.calls, 4);
    admin_cmd("COMMIT");
    wait_notes(&a, 5, 5000);
    run_for(100);
    CHECK_EQ(a.calls, 5);
    CHECK_STR(a.log + strlen(a.log) - 3, ";tx");

    /* Unsubscribed: no more calls; the others go on. */
    pl_pg_unlisten(lb);
    notify(chan_name, "after");
    wait_notes(&a, 6, 5000);
    run_for(100);
    CHECK_EQ(b.calls, 5);
    CHECK_STR(a.log + strlen(a.log) - 6, ";after");

    /* None of this is a query. */
    pl_pg_stats st;
    pl_pg_get_stats(&st);
    CHECK_EQ(st.completed, 0);
    CHECK_EQ(st.failed, 0);
    /* Queries still flow on the listening connection. */
    static rec r[40];
    for (int i = 0; i < 40; i++)
        CHECK(query("SELECT 1", 0, NULL, &r[i]));
    notify(chan_name, "among queries");
    wait_calls(40, 5000);
    wait_notes(&a, 7, 5000);
    CHECK_STR(a.log + strlen(a.log) - 14, ";among queries");
    pl_pg_unlisten(la);
    pl_pg_unlisten(lo);
    pl_pg_shutdown();
    cleanup();
}

PL_TEST(pg_notify_after_reconnect)
{
    setup();
    snprintf(chan_name, sizeof chan_name, "t_%s", schema);
    heard a = { 0 };
    pool_up(2);
    struct pl_pg_listen *la = listen_on(chan_name, &a);
    run_until(cond_listening, 5000);
    notify(chan_name, "one");
    wait_notes(&a, 1, 5000);
    CHECK_STR(a.log, "one");

    /* The listening backend is killed: the subscriber hears NULL, and a
     * LISTEN is in effect again soon after, on some connection. */
    char pids[64], sql[256];
    CHECK_EQ(listener_backends(pids, sizeof pids), 1);
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", pids);
    CHECK_STR(admin_value(sql), "t");
    run_until(cond_not_listening, 5000);
    wait_notes(&a, 2, 5000);
    CHECK_STR(a.log, "one;!");
    run_until(cond_listening, 5000);
    /* one backend listens, not the killed one (which may take a moment
     * to leave pg_stat_activity) */
    char killed[64], now[64] = "";
    snprintf(killed, sizeof killed, "%s", pids);
    int n = 0;
    for (int i = 0; i < 100; i++) {
        n = listener_backends(now, sizeof now);
        if (n == 1 && strcmp(now, killed) != 0)
            break;
        run_for(20);
    }
    CHECK_EQ(n, 1);
    CHECK(strcmp(now, killed) != 0);
    notify(chan_name, "two");
    wait_notes(&a, 3, 5000);
    CHECK_STR(a.log, "one;!;two");

    /* Every connection killed: the same, after the reconnect. */
    want_up = 2;
    run_until(cond_conns_up, 5000);
    terminate_cb(-1, 0, NULL);
    CHECK_EQ(terminated, 2);
    wait_notes(&a, 4, 5000);
    CHECK_STR(a.log, "one;!;two;!");
    run_until(cond_listening, 10000);
    notify(chan_name, "three");
    wait_notes(&a, 5, 5000);
    run_for(100);
    CHECK_STR(a.log, "one;!;two;!;three");

    /* Shutdown and a new start: subscriptions stay, and hear NULL. */
    pl_pg_shutdown();
    CHECK_EQ(pl_pg_listening(chan_name), 0);
    CHECK_EQ(pl_pg_init(base, conninfo, 1), 0);
    run_until(cond_listening, 10000);
    wait_notes(&a, 6, 5000);
    notify(chan_name, "four");
    wait_notes(&a, 7, 5000);
    CHECK_STR(a.log, "one;!;two;!;three;!;four");
    CHECK_EQ(a.null_while_listening, 0);
    pl_pg_unlisten(la);
    pl_pg_shutdown();
    cleanup();
}

PL_TEST(pg_notify_unsubscribe_in_callback)
{
    setup();
    snprintf(chan_name, sizeof chan_name, "t_%s", schema);
    heard a = { 0 }, b = { 0 }, c = { 0 };
    pool_up(1);
    /* Subscribers are called newest first: c, b, a. c ends b's and its
     * own subscription from its callback; b is not called. */
    struct pl_pg_listen *la = listen_on(chan_name, &a);
    struct pl_pg_listen *lb = listen_on(chan_name, &b);
    struct pl_pg_listen *lc = listen_on(chan_name, &c);
    c.unsub[0] = lb;
    c.unsub[1] = lc;
    run_until(cond_listening, 5000);
    notify(chan_name, "x");
    wait_notes(&a, 1, 5000);
    CHECK_EQ(c.calls, 1);
    CHECK_EQ(b.calls, 0);
    notify(chan_name, "y");
    wait_notes(&a, 2, 5000);
    run_for(100);
    CHECK_STR(a.log, "x;y");
    CHECK_STR(c.log, "x");
    CHECK_EQ(b.calls, 0);

    /* Through the module API: the subscription ends with the module. */
    heard d = { 0 };
    pl_module *m = pl_calloc(1, sizeof *m);
    CHECK_EQ(pl_db_listen(m, chan_name, heard_cb, &d), PL_OK);
    CHECK_EQ(pl_db_listening(chan_name), 1);
    notify(chan_name, "z");
    wait_notes(&d, 1, 5000);
    CHECK_STR(d.log, "z");
    pl__module_cancel_queries(m);
    pl_free(m);
    notify(chan_name, "w");
    wait_notes(&a, 4, 5000);
    run_for(100);
    CHECK_STR(d.log, "z");
    CHECK_STR(a.log, "x;y;z;w");

    /* The last subscriber gone, the channel is forgotten. */
    pl_pg_unlisten(la);
    CHECK_EQ(pl_pg_listening(chan_name), 0);
    pl_pg_shutdown();
    cleanup();
}

/* The users table announces each changed account (schema version 3). */
PL_TEST(pg_users_trigger_notifies)
{
    setup();
    snprintf(chan_name, sizeof chan_name, "parley_users");
    heard a = { 0 };
    pool_up(1);
    struct pl_pg_listen *la = listen_on("parley_users", &a);
    run_until(cond_listening, 5000);
    const char *cols = "INSERT INTO users (host, username, iterations, salt, sha1_stored_key, "
                       "sha1_server_key, sha256_stored_key, sha256_server_key) VALUES ";
    char sql[512];
    snprintf(sql, sizeof sql, "%s ('example.org', 'alice', 1, 's', 'a', 'b', 'c', 'd'), "
             "('example.org', 'bob', 1, 's', 'a', 'b', 'c', 'd')", cols);
    admin_cmd(sql);
    wait_notes(&a, 2, 5000);
    CHECK_STR(a.log, "example.org/alice;example.org/bob");
    admin_cmd("UPDATE users SET salt = 't' WHERE username = 'alice'");
    wait_notes(&a, 3, 5000);
    admin_cmd("UPDATE users SET username = 'carol' WHERE username = 'bob'");
    wait_notes(&a, 5, 5000);
    admin_cmd("DELETE FROM users WHERE username = 'alice'");
    wait_notes(&a, 6, 5000);
    admin_cmd("UPDATE users SET salt = 'u' WHERE username = 'nobody'");
    admin_cmd("TRUNCATE users CASCADE");
    wait_notes(&a, 7, 5000);
    run_for(100);
    CHECK_STR(a.log, "example.org/alice;example.org/bob;example.org/alice;"
                     "example.org/bob;example.org/carol;example.org/alice;");
    /* A rolled back change says nothing. */
    admin_cmd("BEGIN");
    snprintf(sql, sizeof sql, "%s ('example.org', 'dave', 1, 's', 'a', 'b', 'c', 'd')", cols);
    admin_cmd(sql);
    admin_cmd("ROLLBACK");
    run_for(200);
    CHECK_EQ(a.calls, 7);
    pl_pg_unlisten(la);
    pl_pg_shutdown();
    cleanup();
}
