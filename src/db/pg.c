/* db/pg.c: the storage service. A pool of PostgreSQL connections in
 * libpq's non-blocking mode, driven by libevent.
 *
 * Each connection is a small state machine: DOWN (waiting to retry),
 * CONNECTING (PQconnectPoll), then either MIGRATING (the first connection
 * up brings the schema up to date with simple queries), WAITING (connected
 * while another connection migrates) or READY (pipeline mode, taking
 * queries). Queries wait in one FIFO queue and go to the least busy READY
 * connection, at most PIPELINE_MAX at a time on each. Every query is sent
 * as [prepare] execute sync, so an error aborts only its own pipeline
 * segment. The results come back in the order sent and are matched
 * against a ring of what each connection expects.
 *
 * User code never runs from inside a connection handler: finished queries
 * go to a "done" list and the state listener is told of changes from one
 * deferred event (tick), which also dispatches queued queries.
 *
 * Notifications (LISTEN/NOTIFY): subscriptions name a channel. One READY
 * connection, the listener, issues LISTEN for every subscribed channel
 * (each in its own pipeline segment; a channel counts as listened once
 * the segment's sync has committed it). Received notifications are queued
 * and handed to the subscribers from the tick. When the listener is lost
 * every subscriber is told that notifications may have been missed (a
 * NULL payload) and the role passes to another READY connection. Every
 * READY connection keeps its read event armed, so a notification that
 * arrives on an idle connection is read at once. */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <parley/base.h>
#include <parley/module.h>
#include "db/pg.h"
#include "db/schema.h"

#define PIPELINE_MAX 32          /* queries in flight per connection */
#define RING_SIZE (PIPELINE_MAX * 3)  /* prepare + execute + sync each */
#define STMT_BUCKETS 64
#define STMT_MAX 256             /* prepared statements per connection */
#define POOL_MAX 64
#define QUEUE_MAX 100000
#define QUEUE_WAIT_MS 5000       /* longest wait for a connection */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 10000
#define REASON_MAX 512
#define NOTES_MAX 65536          /* notifications waiting for the tick */
#define DRAIN_MAX (1L << 20)     /* notifications taken from libpq at once */
#define CHANNEL_MAX 63           /* PostgreSQL's identifier length */

/* The bookkeeping statements of the migration runner; schema.c uses the
 * same text and lock key for parleyctl. Keep the two in step. */
#define MIG_LOCK_SQL "SELECT pg_advisory_lock(7099003282150010)"
#define MIG_UNLOCK_SQL "SELECT pg_advisory_unlock(7099003282150010)"
#define MIG_CREATE_SQL \
    "CREATE TABLE IF NOT EXISTS parley_schema (" \
    "component text PRIMARY KEY, version integer NOT NULL)"
#define MIG_VERSION_SQL "SELECT version FROM parley_schema WHERE component = 'core'"
#define MIG_SET_VERSION_SQL \
    "INSERT INTO parley_schema (component, version) VALUES ('core', %d) " \
    "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version;\n"

/* ==== types ==== */

struct pl_db_result {
    PGresult *res;       /* NULL when the query failed before a result */
    const char *error;   /* NULL on success */
};

enum q_where { Q_QUEUED, Q_INFLIGHT, Q_DONE, Q_FINAL };

struct pl_pg_query {
    struct pl_pg_query *prev, *next;  /* in the queue or the done list */
    enum q_where where;
    int cancelled;
    char *sql;
    int nparams;
    char **params;
    pl_db_cb cb;
    void *ud;
    long long deadline_ms;   /* when a queued query gives up */
    PGresult *res;           /* the outcome, once done */
    char *error;
};
typedef struct pl_pg_query query;

typedef struct qlist {
    query *head, *tail;
    long n;
} qlist;

enum st_state { ST_NEW, ST_PENDING, ST_OK, ST_FAILED };

/* A statement prepared (or being prepared) on one connection. */
typedef struct stmt {
    struct stmt *next;
    char *sql;
    char name[16];
    enum st_state state;
    char *error;          /* why the last prepare failed */
} stmt;

enum x_kind { X_PREPARE, X_EXEC, X_SYNC, X_LISTEN };

/* One result the connection is waiting for, in pipeline order. */
typedef struct expect {
    enum x_kind kind;
    int got;          /* its result arrived; the terminating NULL is next */
    stmt *st;
    query *q;
    PGresult *res;
    unsigned chan_id; /* X_LISTEN and the sync after it: the channel */
} expect;

/* A channel with subscribers. Channels and subscriptions outlive the
 * pool (modules may subscribe before it starts and after it stops); a
 * channel goes with its last subscriber. */
enum ch_state {
    CH_OFF,      /* no LISTEN in effect */
    CH_SENT,     /* LISTEN sent on the listener */
    CH_ACKED,    /* LISTEN succeeded; its sync (commit) is pending */
    CH_ON,       /* in effect: every later notification will arrive */
    CH_FAILED    /* LISTEN failed on this listener; retried on the next */
};

typedef struct chan {
    struct chan *next;
    unsigned id;          /* never reused: names the channel in the ring */
    int refs;             /* subscriptions */
    enum ch_state state;
    char name[CHANNEL_MAX + 1];
} chan;

struct pl_pg_listen {
    struct pl_pg_listen *next;
    chan *ch;
    pl_db_notify_cb cb;
    void *ud;
    int forget;           /* owes the subscriber a NULL ("missed some") */
    int removed;          /* unsubscribed during a dispatch */
};
typedef struct pl_pg_listen sub;

/* A notification received, waiting for the tick. */
typedef struct note {
    struct note *next;
    char *payload;        /* points into the same allocation */
    char channel[];
} note;

static struct {
    chan *chans;
    sub *subs;
    unsigned chan_seq;
    int dispatching;      /* depth of subscriber calls in progress */
    int sweep;            /* subscriptions removed during a dispatch */
    int owed;             /* some subscription owes a NULL call */
} L;

enum c_state { C_DOWN, C_CONNECTING, C_WAITING, C_MIGRATING, C_READY };

enum mig_step { M_LOCK, M_CREATE, M_VERSION, M_APPLY, M_UNLOCK, M_DONE };

typedef struct conn {
    int id;
    enum c_state state;
    PGconn *pg;
    PostgresPollingStatusType poll;
    struct event *io;      /* connect-phase readiness, then persistent read */
    struct event *wr;      /* write readiness while output is pending */
    struct event *timer;   /* reconnect delay or connect timeout */
    int want_write;
    int backoff_ms;
    int failures;          /* consecutive failed attempts */
    char reason[REASON_MAX];  /* last FATAL message from the server */
    stmt *stmts[STMT_BUCKETS];
    int nstmts;
    unsigned stmt_seq;
    expect ring[RING_SIZE];
    int rhead, rcount;
    int inflight;
    enum mig_step mig;
    int mig_from;          /* version found in the database */
    char *mig_error;
} conn;

static struct {
    int running;
    unsigned gen;              /* bumped by init and shutdown */
    struct event_base *base;
    char *conninfo;
    int size;
    conn *conns;
    qlist queue, done;
    struct event *tick;
    struct event *qtimer;
    int schema_ok;
    conn *migrator;
    int ready;                 /* connections in C_READY */
    conn *listener;            /* the connection that LISTENs, or NULL */
    note *notes_head, *notes_tail;
    long nnotes;
    int reported;              /* availability last told to the listener */
    long inflight;
    unsigned long long completed, failed;
} P;

static void (*state_cb)(int up, void *ud);
static void *state_ud;

static void conn_fail(conn *c, const char *why);
static void conn_start(conn *c);
static void flush_out(conn *c);
static void process_results(conn *c);
static void conn_input(conn *c);

/* ==== small helpers ==== */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies msg into out as one line: newlines and tabs become single
 * spaces, and trailing blanks go. */
static void one_line(char *out, size_t n, const char *msg)
{
    size_t o = 0;
    if (n == 0)
        return;
    for (; msg && *msg && o + 1 < n; msg++) {
        char ch = *msg;
        if (ch == '\n' || ch == '\t' || ch == '\r')
            ch = ' ';
        if (ch == ' ' && (o == 0 || out[o - 1] == ' '))
            continue;
        out[o++] = ch;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/* The error of a failed result: the primary message with its SQLSTATE,
 * or libpq's own message when the server sent none. */
static void result_error(char *out, size_t n, const PGresult *r)
{
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (!primary) {
        one_line(out, n, PQresultErrorMessage(r));
        if (!out[0])
            snprintf(out, n, "query failed (%s)", PQresStatus(PQresultStatus(r)));
        return;
    }
    one_line(out, n, primary);
    size_t len = strlen(out);
    if (state && len < n)
        snprintf(out + len, n - len, " (SQLSTATE %.5s)", state);
}

static const char *conn_reason(conn *c, char *buf, size_t n)
{
    if (c->reason[0])
        return c->reason;
    one_line(buf, n, c->pg ? PQerrorMessage(c->pg) : "");
    return buf[0] ? buf : "unknown error";
}

static void kick(void)
{
    if (P.tick)
        event_active(P.tick, 0, 0);
}

/* ==== query lists ==== */

static void ql_push(qlist *l, query *q)
{
    q->next = NULL;
    q->prev = l->tail;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    l->n++;
}

static void ql_push_front(qlist *l, query *q)
{
    q->prev = NULL;
    q->next = l->head;
    if (l->head)
        l->head->prev = q;
    else
        l->tail = q;
    l->head = q;
    l->n++;
}

static void ql_unlink(qlist *l, query *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->prev = q->next = NULL;
    l->n--;
}

static query *ql_pop(qlist *l)
{
    query *q = l->head;
    if (q)
        ql_unlink(l, q);
    return q;
}

static void query_free(query *q)
{
    for (int i = 0; i < q->nparams; i++)
        pl_free(q->params[i]);
    pl_free(q->params);
    pl_free(q->sql);
    PQclear(q->res);
    pl_free(q->error);
    pl_free(q);
}

/* Records the outcome of q (taking res) and hands it to the done list,
 * or drops it if it was cancelled. */
static void complete(query *q, PGresult *res, const char *error)
{
    q->res = res;
    q->error = error ? pl_strdup(error) : NULL;
    if (error)
        P.failed++;
    else
        P.completed++;
    if (q->cancelled) {
        query_free(q);
        return;
    }
    q->where = Q_DONE;
    ql_push(&P.done, q);
    kick();
}

/* Runs q's callback with its outcome and frees it. */
static void deliver(query *q)
{
    q->where = Q_FINAL;
    if (!q->cancelled && q->cb) {
        struct pl_db_result r = { q->res, q->error };
        q->cb(&r, q->ud);
    }
    query_free(q);
}

/* ==== prepared statements ==== */

static unsigned hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The statement for sql on c, created (not yet prepared) if missing;
 * NULL once the connection holds STMT_MAX statements. */
static stmt *stmt_get(conn *c, const char *sql)
{
    unsigned b = hash_str(sql) % STMT_BUCKETS;
    for (stmt *s = c->stmts[b]; s; s = s->next)
        if (strcmp(s->sql, sql) == 0)
            return s;
    if (c->nstmts >= STMT_MAX)
        return NULL;
    stmt *s = pl_calloc(1, sizeof *s);
    s->sql = pl_strdup(sql);
    snprintf(s->name, sizeof s->name, "s%u", ++c->stmt_seq);
    s->state = ST_NEW;
    s->next = c->stmts[b];
    c->stmts[b] = s;
    c->nstmts++;
    return s;
}

static void stmts_clear(conn *c)
{
    for (int b = 0; b < STMT_BUCKETS; b++) {
        stmt *s = c->stmts[b];
        while (s) {
            stmt *next = s->next;
            pl_free(s->sql);
            pl_free(s->error);
            pl_free(s);
            s = next;
        }
        c->stmts[b] = NULL;
    }
    c->nstmts = 0;
    c->stmt_seq = 0;
}

/* ==== the expectation ring ==== */

static expect *ring_push(conn *c, enum x_kind kind, stmt *st, query *q)
{
    expect *e = &c->ring[(c->rhead + c->rcount) % RING_SIZE];
    e->kind = kind;
    e->got = 0;
    e->st = st;
    e->q = q;
    e->res = NULL;
    e->chan_id = 0;
    c->rcount++;
    return e;
}

static expect *ring_front(conn *c)
{
    return &c->ring[c->rhead];
}

static void ring_pop(conn *c)
{
    c->rhead = (c->rhead + 1) % RING_SIZE;
    c->rcount--;
}

/* Removes every expectation, handing each query in flight to fn. */
static void ring_drain(conn *c, void (*fn)(query *q, void *arg), void *arg)
{
    while (c->rcount > 0) {
        expect *e = ring_front(c);
        PQclear(e->res);
        e->res = NULL;
        if (e->kind == X_EXEC) {
            c->inflight--;
            P.inflight--;
            fn(e->q, arg);
        }
        ring_pop(c);
    }
}

static void fail_query(query *q, void *why)
{
    complete(q, NULL, why);
}

/* ==== availability ==== */

static void set_schema_ok(int ok)
{
    if (P.schema_ok == ok)
        return;
    P.schema_ok = ok;
    if (ok)
        pl_log(PL_LOG_NOTICE, "database available (schema version %d)",
               pl_schema_latest());
    else
        pl_log(PL_LOG_WARN, "database unavailable: no connection is up");
    kick();
}

/* Tells the listener when availability differs from what it last heard. */
static void notify_state(void)
{
    int now = pl_pg_available();
    if (now == P.reported)
        return;
    P.reported = now;
    if (state_cb)
        state_cb(now, state_ud);
}

/* ==== notifications ==== */

static chan *chan_find(const char *name)
{
    for (chan *ch = L.chans; ch; ch = ch->next)
        if (strcmp(ch->name, name) == 0)
            return ch;
    return NULL;
}

static chan *chan_by_id(unsigned id)
{
    for (chan *ch = L.chans; ch; ch = ch->next)
        if (ch->id == id)
            return ch;
    return NULL;
}

/* Marks every subscription (of ch, or all when ch is NULL) as owing a
 * NULL call: notifications may have been missed. */
static void owe_forget(const chan *ch)
{
    for (sub *s = L.subs; s; s = s->next)
        if (!ch || s->ch == ch)
            s->forget = 1;
    L.owed = 1;
    kick();
}

/* Queues one received notification for the tick; one for a channel
 * nobody subscribes to is dropped. When too many wait, it is dropped
 * too, and its subscribers hear that they missed some. */
static void note_add(const char *channel, const char *payload)
{
    chan *ch = chan_find(channel);
    if (!ch)
        return;
    if (P.nnotes >= NOTES_MAX) {
        if (P.nnotes == NOTES_MAX)
            pl_log(PL_LOG_WARN, "database: %d notifications waiting, dropping more",
                   NOTES_MAX);
        owe_forget(ch);
        return;
    }
    size_t cl = strlen(channel) + 1, pl = strlen(payload) + 1;
    note *n = pl_malloc(sizeof *n + cl + pl);
    n->next = NULL;
    memcpy(n->channel, channel, cl);
    n->payload = n->channel + cl;
    memcpy(n->payload, payload, pl);
    if (P.notes_tail)
        P.notes_tail->next = n;
    else
        P.notes_head = n;
    P.notes_tail = n;
    P.nnotes++;
    kick();
}

static void notes_free(void)
{
    while (P.notes_head) {
        note *n = P.notes_head;
        P.notes_head = n->next;
        pl_free(n);
    }
    P.notes_tail = NULL;
    P.nnotes = 0;
}

/* Takes the notifications libpq has parsed on c. */
static void drain_notifies(conn *c)
{
    PGnotify *n;
    for (long i = 0; i < DRAIN_MAX && c->pg && (n = PQnotifies(c->pg)) != NULL; i++) {
        note_add(n->relname, n->extra ? n->extra : "");
        PQfreemem(n);
    }
}

/* The listener is gone (or the pool stops): no channel is listened to
 * any more, and every subscriber will hear that it may have missed
 * notifications. */
static void listener_lost(void)
{
    P.listener = NULL;
    for (chan *ch = L.chans; ch; ch = ch->next)
        ch->state = CH_OFF;
    owe_forget(NULL);
}

/* Sends "LISTEN ch" then a sync on the listener c. Channel names are
 * checked at subscription (lower-case letters, digits, '_'), so the name
 * needs no quoting. */
static void listen_send(conn *c, chan *ch)
{
    char sql[16 + CHANNEL_MAX];
    snprintf(sql, sizeof sql, "LISTEN %s", ch->name);
    if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0)) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            conn_fail(c, NULL);
            return;
        }
        char msg[REASON_MAX];
        one_line(msg, sizeof msg, PQerrorMessage(c->pg));
        pl_log(PL_LOG_WARN, "database connection %d: cannot send LISTEN %s: %s", c->id,
               ch->name, msg);
        ch->state = CH_FAILED;
        return;
    }
    ring_push(c, X_LISTEN, NULL, NULL)->chan_id = ch->id;
    ch->state = CH_SENT;
    if (!PQpipelineSync(c->pg)) {
        conn_fail(c, NULL);
        return;
    }
    ring_push(c, X_SYNC, NULL, NULL)->chan_id = ch->id;
    c->want_write = 1;
}

/* Chooses a listener if there is none, and sends LISTEN there for each
 * channel not yet listened to. One connection listens rather than all:
 * each notification then arrives, and is dispatched, once. Losing the
 * listener is noticed like any connection failure; subscribers are told
 * to forget and the next tick moves the role to another READY
 * connection, so a failure costs the subscribers their cached state and
 * nothing else. */
static void listen_pump(void)
{
    if (!P.running || !P.schema_ok || !L.chans)
        return;
    if (!P.listener) {
        for (int i = 0; i < P.size && !P.listener; i++) {
            conn *c = &P.conns[i];
            if (c->state == C_READY && !c->reason[0])
                P.listener = c;
        }
        if (!P.listener)
            return;
        pl_debug("database connection %d listens for notifications", P.listener->id);
    }
    conn *c = P.listener;
    for (chan *ch = L.chans; ch && c->state == C_READY; ch = ch->next) {
        if (ch->state != CH_OFF)
            continue;
        if (c->rcount + 2 > RING_SIZE)
            break;   /* the ring frees up as results arrive; each kicks */
        listen_send(c, ch);
    }
}

/* The result of a LISTEN on c: the channel waits for the sync. */
static void finish_listen(conn *c, expect *e)
{
    PGresult *res = e->res;
    e->res = NULL;
    chan *ch = chan_by_id(e->chan_id);
    if (ch && c == P.listener && ch->state == CH_SENT) {
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            ch->state = CH_ACKED;
        } else {
            char msg[REASON_MAX];
            result_error(msg, sizeof msg, res);
            pl_log(PL_LOG_WARN, "database connection %d: LISTEN %s failed: %s", c->id,
                   ch->name, msg);
            ch->state = CH_FAILED;
        }
    }
    PQclear(res);
}

/* The sync after a LISTEN went through: the LISTEN has committed, so
 * every notification committed from now on will arrive. */
static void listen_synced(conn *c, unsigned chan_id)
{
    chan *ch = chan_by_id(chan_id);
    if (ch && c == P.listener && ch->state == CH_ACKED) {
        ch->state = CH_ON;
        pl_debug("database connection %d: listening on %s", c->id, ch->name);
    }
}

static void sub_free(sub *s)
{
    sub **pp = &L.subs;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    chan *ch = s->ch;
    pl_free(s);
    if (--ch->refs > 0)
        return;
    chan **cp = &L.chans;
    while (*cp && *cp != ch)
        cp = &(*cp)->next;
    if (*cp)
        *cp = ch->next;
    pl_free(ch);
}

/* Frees the subscriptions removed while subscribers were being called. */
static void sweep_subs(void)
{
    if (L.dispatching || !L.sweep)
        return;
    L.sweep = 0;
    sub *s = L.subs;
    while (s) {
        sub *next = s->next;
        if (s->removed)
            sub_free(s);
        s = next;
    }
}

/* Calls the subscribers of n's channel with its payload. Stops if a
 * callback shut the service down. */
static void deliver_note(const note *n, unsigned gen)
{
    for (sub *s = L.subs; s && P.running && P.gen == gen; s = s->next)
        if (!s->removed && strcmp(s->ch->name, n->channel) == 0)
            s->cb(n->payload, s->ud);
}

/* Hands the queued notifications to their subscribers, then the NULL
 * "forget" calls that are owed. Runs from the tick only. */
static void deliver_notes(unsigned gen)
{
    L.dispatching++;
    long budget = P.nnotes;
    while (budget-- > 0 && P.running && P.gen == gen && P.notes_head) {
        note *n = P.notes_head;
        P.notes_head = n->next;
        if (!P.notes_head)
            P.notes_tail = NULL;
        P.nnotes--;
        deliver_note(n, gen);
        pl_free(n);
    }
    if (L.owed && P.running && P.gen == gen) {
        L.owed = 0;
        for (sub *s = L.subs; s; s = s->next) {
            if (!s->forget || s->removed)
                continue;
            s->forget = 0;
            s->cb(NULL, s->ud);
            if (!P.running || P.gen != gen) {
                L.owed = 1;   /* the rest hear it if the pool starts again */
                break;
            }
        }
    }
    L.dispatching--;
    sweep_subs();
}

/* ==== sending queries ==== */

/* Sends q on c as [prepare] execute sync. If the connection turns out to
 * be broken before q went out, q goes back to the head of the queue and c
 * down; a query libpq refuses on its own fails alone. */
static void send_query(conn *c, query *q)
{
    const char *const *params = (const char *const *)q->params;
    stmt *st = stmt_get(c, q->sql);
    int ok;
    if (st && (st->state == ST_NEW || st->state == ST_FAILED)) {
        if (!PQsendPrepare(c->pg, st->name, q->sql, 0, NULL))
            goto failed;
        st->state = ST_PENDING;
        ring_push(c, X_PREPARE, st, NULL);
    }
    if (st)
        ok = PQsendQueryPrepared(c->pg, st->name, q->nparams, params, NULL, NULL, 0);
    else
        ok = PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, params, NULL, NULL, 0);
    if (!ok)
        goto failed;
    q->where = Q_INFLIGHT;
    ring_push(c, X_EXEC, st, q);
    c->inflight++;
    P.inflight++;
    if (!PQpipelineSync(c->pg)) {
        conn_fail(c, NULL);
        return;
    }
    ring_push(c, X_SYNC, NULL, NULL);
    return;

failed:
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        q->where = Q_QUEUED;
        ql_push_front(&P.queue, q);
        conn_fail(c, NULL);
        return;
    }
    char msg[REASON_MAX];
    one_line(msg, sizeof msg, PQerrorMessage(c->pg));
    complete(q, NULL, msg[0] ? msg : "could not send the query");
}

/* The READY connection with the fewest queries in flight and room for
 * one more, or NULL. A connection whose server said FATAL is closing:
 * it gets nothing more. */
static conn *pick_conn(void)
{
    conn *best = NULL;
    for (int i = 0; i < P.size; i++) {
        conn *c = &P.conns[i];
        if (c->state != C_READY || c->inflight >= PIPELINE_MAX ||
            c->rcount + 3 > RING_SIZE || c->reason[0])
            continue;
        if (!best || c->inflight < best->inflight)
            best = c;
    }
    return best;
}

/* Moves queued queries onto connections, then flushes what was sent. */
static void dispatch(void)
{
    if (!P.schema_ok)
        return;
    long budget = P.queue.n + P.size;
    while (P.queue.head && budget-- > 0) {
        conn *c = pick_conn();
        if (!c)
            break;
        query *q = ql_pop(&P.queue);
        c->want_write = 1;
        send_query(c, q);
    }
    for (int i = 0; i < P.size; i++) {
        conn *c = &P.conns[i];
        if (c->state == C_READY && c->want_write)
            flush_out(c);
        if (c->state == C_READY)
            process_results(c);
    }
}

/* Fails queued queries that waited too long, and re-arms the timer for
 * the next one. */
static void qtimer_cb(evutil_socket_t fd, short what, void *arg)
{
    long long now = now_ms();
    while (P.queue.head && P.queue.head->deadline_ms <= now) {
        query *q = ql_pop(&P.queue);
        complete(q, NULL, P.ready ? "database overloaded: no connection was free for 5 seconds"
                                  : "database unavailable");
    }
    if (P.queue.head) {
        long long ms = P.queue.head->deadline_ms - now;
        struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
        evtimer_add(P.qtimer, &tv);
    }
}

static void arm_qtimer(void)
{
    if (!P.queue.head || evtimer_pending(P.qtimer, NULL))
        return;
    long long ms = P.queue.head->deadline_ms - now_ms();
    if (ms < 0)
        ms = 0;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    evtimer_add(P.qtimer, &tv);
}

/* The deferred work: LISTEN where needed, dispatch, hand out
 * notifications, run finished callbacks, tell the state listener. Stops
 * if a callback shut the service down. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    unsigned gen = P.gen;
    listen_pump();
    dispatch();
    deliver_notes(gen);
    if (!P.running || P.gen != gen)
        return;
    long budget = P.done.n;
    while (budget-- > 0 && P.running && P.gen == gen) {
        query *q = ql_pop(&P.done);
        if (!q)
            break;
        deliver(q);
    }
    if (!P.running || P.gen != gen)
        return;
    if (P.done.head || P.notes_head)
        kick();
    notify_state();
}

/* ==== results ==== */

/* A finished execute: success, its own error, or aborted because its
 * prepare failed. */
static void finish_exec(conn *c, expect *e)
{
    query *q = e->q;
    PGresult *res = e->res;
    e->res = NULL;
    c->inflight--;
    P.inflight--;
    ExecStatusType s = PQresultStatus(res);
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK || s == PGRES_EMPTY_QUERY) {
        complete(q, res, NULL);
        return;
    }
    char msg[REASON_MAX];
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int unprepared = s == PGRES_PIPELINE_ABORTED || (state && strcmp(state, "26000") == 0);
    if (unprepared && e->st && e->st->state == ST_FAILED && e->st->error)
        snprintf(msg, sizeof msg, "%s", e->st->error);
    else if (s == PGRES_PIPELINE_ABORTED)
        snprintf(msg, sizeof msg, "query aborted by an earlier error in the pipeline");
    else
        result_error(msg, sizeof msg, res);
    PQclear(res);
    complete(q, NULL, msg);
}

/* Keeps the message of a FATAL error: the server is about to close the
 * connection and says why. */
static void keep_fatal(conn *c, const PGresult *r)
{
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (sev && msg && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        one_line(c->reason, sizeof c->reason, msg);
}

/* Takes one non-NULL result for the expectation at the front. Returns -1
 * if the connection cannot go on. */
static int take_result(conn *c, expect *e, PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    keep_fatal(c, r);
    if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH) {
        PQclear(r);
        conn_fail(c, "COPY is not supported");
        return -1;
    }
    if (e->kind == X_PREPARE) {
        if (s == PGRES_COMMAND_OK) {
            e->st->state = ST_OK;
        } else {
            char msg[REASON_MAX];
            result_error(msg, sizeof msg, r);
            e->st->state = ST_FAILED;
            pl_free(e->st->error);
            e->st->error = pl_strdup(msg);
        }
        PQclear(r);
    } else if (e->res) {
        PQclear(r);     /* one statement gives one result; keep the first */
    } else {
        e->res = r;
    }
    e->got = 1;
    return 0;
}

/* Reads every result that has arrived and matches it to the ring. */
static void process_results(conn *c)
{
    for (int guard = 0; c->rcount > 0 && guard < 4 * RING_SIZE + 4; guard++) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            conn_fail(c, NULL);
            return;
        }
        if (PQisBusy(c->pg))
            return;
        PGresult *r = PQgetResult(c->pg);
        expect *e = ring_front(c);
        if (e->kind == X_SYNC) {
            int ok = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
            if (r)
                keep_fatal(c, r);
            PQclear(r);
            if (!ok) {
                int bad = PQstatus(c->pg) == CONNECTION_BAD || c->reason[0];
                conn_fail(c, bad ? NULL : "unexpected result in the pipeline");
                return;
            }
            if (e->chan_id)
                listen_synced(c, e->chan_id);
            ring_pop(c);
        } else if (!r) {
            if (!e->got) {
                conn_fail(c, "unexpected end of results in the pipeline");
                return;
            }
            if (e->kind == X_EXEC)
                finish_exec(c, e);
            else if (e->kind == X_LISTEN)
                finish_listen(c, e);
            ring_pop(c);
        } else if (take_result(c, e, r) < 0) {
            return;
        }
    }
}

/* ==== schema migration ==== */

static void enter_ready(conn *c)
{
    if (!PQenterPipelineMode(c->pg)) {
        conn_fail(c, NULL);
        return;
    }
    c->state = C_READY;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->failures = 0;
    P.ready++;
    kick();
}

static char *mig_script(int from)
{
    size_t len = 64 + sizeof MIG_SET_VERSION_SQL + 16;
    for (const pl_migration *m = pl_schema_migrations; m->sql; m++)
        if (m->version > from)
            len += strlen(m->sql) + 2;
    char *s = pl_malloc(len);
    size_t n = (size_t)snprintf(s, len, "BEGIN;\n");
    for (const pl_migration *m = pl_schema_migrations; m->sql; m++)
        if (m->version > from)
            n += (size_t)snprintf(s + n, len - n, "%s;\n", m->sql);
    n += (size_t)snprintf(s + n, len - n, MIG_SET_VERSION_SQL, pl_schema_latest());
    snprintf(s + n, len - n, "COMMIT;\n");
    return s;
}

/* Sends the statement of the current step. */
static void mig_send(conn *c)
{
    char *script = NULL;
    const char *sql = NULL;
    switch (c->mig) {
    case M_LOCK: sql = MIG_LOCK_SQL; break;
    case M_CREATE: sql = MIG_CREATE_SQL; break;
    case M_VERSION: sql = MIG_VERSION_SQL; break;
    case M_APPLY: sql = script = mig_script(c->mig_from); break;
    case M_UNLOCK: sql = MIG_UNLOCK_SQL; break;
    case M_DONE: return;
    }
    int ok = PQsendQuery(c->pg, sql);
    pl_free(script);
    if (!ok) {
        conn_fail(c, NULL);
        return;
    }
    c->want_write = 1;
    flush_out(c);
}

static void mig_start(conn *c)
{
    c->state = C_MIGRATING;
    P.migrator = c;
    c->mig = M_LOCK;
    c->mig_from = 0;
    mig_send(c);
}

/* The migration is over on c: it and every waiting connection go READY. */
static void mig_finish(conn *c)
{
    int latest = pl_schema_latest();
    if (c->mig_from < latest)
        pl_log(PL_LOG_NOTICE, "database schema migrated from version %d to %d",
               c->mig_from, latest);
    P.migrator = NULL;
    enter_ready(c);
    if (c->state != C_READY)
        return;
    for (int i = 0; i < P.size; i++)
        if (P.conns[i].state == C_WAITING)
            enter_ready(&P.conns[i]);
    set_schema_ok(1);
}

/* A step's results are all in: move to the next step, or fail. */
static void mig_step_done(conn *c)
{
    if (c->mig_error) {
        char why[REASON_MAX + 64];
        snprintf(why, sizeof why, "schema migration failed: %s", c->mig_error);
        pl_log(PL_LOG_ERROR, "database connection %d: %s", c->id, why);
        conn_fail(c, why);
        return;
    }
    if (c->mig == M_VERSION && c->mig_from > pl_schema_latest()) {
        char why[128];
        snprintf(why, sizeof why, "database schema version %d is newer than this build (%d)",
                 c->mig_from, pl_schema_latest());
        pl_log(PL_LOG_ERROR, "database connection %d: %s", c->id, why);
        conn_fail(c, why);
        return;
    }
    c->mig++;
    if (c->mig == M_APPLY && c->mig_from == pl_schema_latest())
        c->mig++;
    if (c->mig == M_DONE)
        mig_finish(c);
    else
        mig_send(c);
}

/* Reads the results of the migration's simple queries. */
static void mig_process(conn *c)
{
    /* one result per statement of a step, plus the NULL that ends it */
    for (int guard = 0; c->state == C_MIGRATING && guard < 65536; guard++) {
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            conn_fail(c, NULL);
            return;
        }
        if (PQisBusy(c->pg))
            return;
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            mig_step_done(c);
            continue;
        }
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_TUPLES_OK && c->mig == M_VERSION && PQntuples(r) > 0)
            c->mig_from = atoi(PQgetvalue(r, 0, 0));
        else if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK && !c->mig_error) {
            char msg[REASON_MAX];
            result_error(msg, sizeof msg, r);
            c->mig_error = pl_strdup(msg);
        }
        PQclear(r);
    }
}

/* ==== connection I/O ==== */

static void flush_out(conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_fail(c, NULL);
        return;
    }
    c->want_write = r == 1;
    if (c->want_write)
        event_add(c->wr, NULL);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    if (!c->pg)
        return;
    flush_out(c);
    if (c->state != C_DOWN)
        conn_input(c);
    kick();
}

/* Handles whatever input libpq holds for c. Also needed after sending:
 * libpq reads from the socket itself when its output does not fit, and
 * that input would otherwise wait for the next read event. */
static void conn_input(conn *c)
{
    drain_notifies(c);
    if (c->state == C_MIGRATING)
        mig_process(c);
    else if (c->state == C_READY)
        process_results(c);
    else if (PQstatus(c->pg) == CONNECTION_BAD)
        conn_fail(c, NULL);
    /* notifications that followed the results just taken */
    if (c->state != C_DOWN)
        drain_notifies(c);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, NULL);
        return;
    }
    conn_input(c);
    if (c->state != C_DOWN && c->want_write)
        flush_out(c);
    if (c->state != C_DOWN)
        conn_input(c);
    kick();
}

/* Server messages outside any query: warnings are logged, a FATAL is
 * kept as the reason the connection is about to close. */
static void notice_cb(void *arg, const PGresult *res)
{
    conn *c = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    char line[REASON_MAX];
    one_line(line, sizeof line, msg ? msg : PQresultErrorMessage(res));
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) {
        memcpy(c->reason, line, sizeof c->reason);
        return;
    }
    if (sev && (strcmp(sev, "WARNING") == 0 || strcmp(sev, "ERROR") == 0))
        pl_log(PL_LOG_WARN, "database connection %d: %s", c->id, line);
    else
        pl_debug("database connection %d: %s", c->id, line);
}

static void free_events(conn *c)
{
    if (c->io)
        event_free(c->io);
    if (c->wr)
        event_free(c->wr);
    c->io = c->wr = NULL;
    c->want_write = 0;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    if (c->state == C_DOWN)
        conn_start(c);
    else if (c->state == C_CONNECTING)
        conn_fail(c, "timed out while connecting");
}

static void schedule_retry(conn *c)
{
    int ms = c->backoff_ms;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(c->timer, &tv);
    c->backoff_ms = ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

/* Takes c down: queries in flight fail, prepared statements are
 * forgotten, and a reconnect is scheduled. why NULL: libpq's message. */
static void conn_fail(conn *c, const char *why)
{
    char buf[REASON_MAX], msg[REASON_MAX + 32];
    if (!why)
        why = conn_reason(c, buf, sizeof buf);
    enum c_state was = c->state;
    if (was == C_READY || was == C_MIGRATING || was == C_WAITING)
        pl_log(PL_LOG_WARN, "database connection %d lost: %s", c->id, why);
    else
        pl_log(c->failures == 0 ? PL_LOG_WARN : PL_LOG_INFO,
               "database connection %d failed: %s (retrying in %d ms)", c->id, why,
               c->backoff_ms);
    c->failures++;
    snprintf(msg, sizeof msg, "database connection lost: %s", why);
    ring_drain(c, fail_query, msg);
    stmts_clear(c);
    free_events(c);
    evtimer_del(c->timer);
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    c->reason[0] = '\0';
    pl_free(c->mig_error);
    c->mig_error = NULL;
    c->state = C_DOWN;
    if (P.listener == c)
        listener_lost();
    if (was == C_READY && --P.ready == 0)
        set_schema_ok(0);
    if (P.migrator == c) {
        P.migrator = NULL;
        for (int i = 0; i < P.size; i++)
            if (P.conns[i].state == C_WAITING) {
                mig_start(&P.conns[i]);
                break;
            }
    }
    schedule_retry(c);
    kick();
}

/* The connection is established: go READY, migrate, or wait for the
 * migration running elsewhere. */
static void connected(conn *c)
{
    evtimer_del(c->timer);
    free_events(c);
    if (PQsetnonblocking(c->pg, 1) != 0) {
        conn_fail(c, NULL);
        return;
    }
    int fd = PQsocket(c->pg);
    c->io = event_new(P.base, fd, EV_READ | EV_PERSIST, read_cb, c);
    c->wr = event_new(P.base, fd, EV_WRITE, write_cb, c);
    event_add(c->io, NULL);
    pl_log(PL_LOG_NOTICE, "database connection %d up", c->id);
    if (P.schema_ok) {
        enter_ready(c);
    } else if (P.migrator) {
        c->state = C_WAITING;
    } else {
        mig_start(c);
    }
}

static void connect_cb(evutil_socket_t fd, short what, void *arg);

/* Waits for the socket readiness PQconnectPoll asked for; the socket may
 * change between polls, so the event is made anew each time. */
static void connect_wait(conn *c)
{
    int fd = PQsocket(c->pg);
    if (fd < 0) {
        conn_fail(c, NULL);
        return;
    }
    if (c->io)
        event_free(c->io);
    short ev = c->poll == PGRES_POLLING_READING ? EV_READ : EV_WRITE;
    c->io = event_new(P.base, fd, ev, connect_cb, c);
    event_add(c->io, NULL);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    c->poll = PQconnectPoll(c->pg);
    switch (c->poll) {
    case PGRES_POLLING_OK:
        connected(c);
        break;
    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        connect_wait(c);
        break;
    default:
        conn_fail(c, NULL);
        break;
    }
}

/* Starts a connection attempt. */
static void conn_start(conn *c)
{
    c->state = C_CONNECTING;
    c->reason[0] = '\0';
    c->pg = PQconnectStart(P.conninfo);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, c->pg ? NULL : "out of memory");
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_cb, c);
    struct timeval tv = { CONNECT_TIMEOUT_MS / 1000, 0 };
    evtimer_add(c->timer, &tv);
    c->poll = PGRES_POLLING_WRITING;
    connect_wait(c);
}

/* ==== the public interface ==== */

/* Warns when a host in the conninfo would make libpq resolve a name. */
static void check_hosts(PQconninfoOption *opts)
{
    const char *host = NULL, *hostaddr = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
    }
    if (!host || !host[0] || (hostaddr && hostaddr[0]) || host[0] == '/')
        return;
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        return;
    pl_log(PL_LOG_WARN,
           "database host \"%s\" is a name: resolving it blocks the server; "
           "use a socket directory or hostaddr", host);
}

/* Starts the pool (see pg.h). Every connection starts connecting at once;
 * nothing blocks except, for a host name, libpq's address lookup. */
int pl_pg_init(struct event_base *base, const char *conninfo, int pool_size)
{
    if (P.running) {
        pl_log(PL_LOG_ERROR, "database: pl_pg_init called twice");
        return -1;
    }
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &err);
    if (!opts) {
        char line[REASON_MAX];
        one_line(line, sizeof line, err ? err : "out of memory");
        pl_log(PL_LOG_ERROR, "database: invalid connection string: %s", line);
        PQfreemem(err);
        return -1;
    }
    check_hosts(opts);
    PQconninfoFree(opts);
    if (pool_size < 1)
        pool_size = 1;
    if (pool_size > POOL_MAX)
        pool_size = POOL_MAX;
    unsigned gen = P.gen;
    memset(&P, 0, sizeof P);
    P.gen = gen + 1;
    P.running = 1;
    P.base = base;
    P.conninfo = pl_strdup(conninfo);
    P.size = pool_size;
    P.conns = pl_calloc((size_t)pool_size, sizeof *P.conns);
    P.tick = event_new(base, -1, 0, tick_cb, NULL);
    P.qtimer = evtimer_new(base, qtimer_cb, NULL);
    for (int i = 0; i < pool_size; i++) {
        conn *c = &P.conns[i];
        c->id = i + 1;
        c->backoff_ms = BACKOFF_MIN_MS;
        c->timer = evtimer_new(base, retry_cb, c);
        conn_start(c);
    }
    return 0;
}

static void take_all(qlist *to, qlist *from, const char *error)
{
    query *q;
    while ((q = ql_pop(from)) != NULL) {
        if (error) {
            PQclear(q->res);
            q->res = NULL;
            pl_free(q->error);
            q->error = pl_strdup(error);
        }
        q->where = Q_FINAL;
        ql_push(to, q);
    }
}

static void collect_inflight(query *q, void *arg)
{
    qlist *l = arg;
    q->where = Q_FINAL;
    ql_push(l, q);
}

/* Closes every connection and frees the pool, then runs the callbacks of
 * everything pending: finished queries with their results, the rest with
 * the error "shutting down". Does not call the state listener; queued
 * notifications are dropped and subscribers, which stay subscribed, owe
 * a NULL call delivered if the pool starts again. */
void pl_pg_shutdown(void)
{
    if (!P.running)
        return;
    qlist pending = { NULL, NULL, 0 }, inflight = { NULL, NULL, 0 };
    take_all(&pending, &P.done, NULL);
    for (int i = 0; i < P.size; i++) {
        conn *c = &P.conns[i];
        ring_drain(c, collect_inflight, &inflight);
        stmts_clear(c);
        free_events(c);
        event_free(c->timer);
        if (c->pg)
            PQfinish(c->pg);
        pl_free(c->mig_error);
    }
    take_all(&pending, &inflight, "shutting down");
    take_all(&pending, &P.queue, "shutting down");
    notes_free();
    listener_lost();
    pl_free(P.conns);
    pl_free(P.conninfo);
    event_free(P.tick);
    event_free(P.qtimer);
    unsigned gen = P.gen;
    memset(&P, 0, sizeof P);
    P.gen = gen + 1;
    query *q;
    for (long guard = pending.n; guard-- > 0 && (q = ql_pop(&pending)) != NULL;)
        deliver(q);
}

/* 1 when a connection is READY and the schema is current. */
int pl_pg_available(void)
{
    return P.running && P.schema_ok && P.ready > 0;
}

/* Sets the one availability listener (NULL to remove it). */
void pl_pg_on_state(void (*cb)(int up, void *ud), void *ud)
{
    state_cb = cb;
    state_ud = ud;
}

/* A channel name we LISTEN on without quoting: a lower-case letter or
 * '_', then lower-case letters, digits and '_', at most 63 bytes. */
static int channel_ok(const char *name)
{
    if (!name || !name[0] || strlen(name) > CHANNEL_MAX)
        return 0;
    if (!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z')))
        return 0;
    for (const char *p = name; *p; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

/* Subscribes cb to the notification channel (see pg.h). The LISTEN is
 * sent from the tick, on the listener connection. */
struct pl_pg_listen *pl_pg_listen(const char *channel, pl_db_notify_cb cb, void *ud)
{
    if (!cb || !channel_ok(channel))
        return NULL;
    chan *ch = chan_find(channel);
    if (!ch) {
        ch = pl_calloc(1, sizeof *ch);
        ch->id = ++L.chan_seq;
        ch->state = CH_OFF;
        snprintf(ch->name, sizeof ch->name, "%s", channel);
        ch->next = L.chans;
        L.chans = ch;
    }
    ch->refs++;
    sub *s = pl_calloc(1, sizeof *s);
    s->ch = ch;
    s->cb = cb;
    s->ud = ud;
    s->next = L.subs;
    L.subs = s;
    kick();
    return s;
}

/* Ends a subscription: cb is not called again, even by a dispatch in
 * progress. */
void pl_pg_unlisten(struct pl_pg_listen *s)
{
    if (!s || s->removed)
        return;
    if (L.dispatching) {
        s->removed = 1;
        L.sweep = 1;
        return;
    }
    sub_free(s);
}

/* 1 when a LISTEN on channel is in effect (see pg.h). */
int pl_pg_listening(const char *channel)
{
    if (!P.running || !P.listener || !channel)
        return 0;
    chan *ch = chan_find(channel);
    return ch && ch->state == CH_ON;
}

/* Copies the query and queues it; the deferred tick sends it. Returns
 * NULL, and cb never runs, when unavailable, when the queue is full or
 * when the arguments are unusable. */
struct pl_pg_query *pl_pg_query(const char *sql, int nparams,
                                const char *const *params, pl_db_cb cb, void *ud)
{
    if (!pl_pg_available() || !sql || nparams < 0 || nparams > 65535 ||
        (nparams > 0 && !params))
        return NULL;
    if (P.queue.n >= QUEUE_MAX) {
        pl_log(PL_LOG_WARN, "database: %d queries queued, refusing more", QUEUE_MAX);
        return NULL;
    }
    query *q = pl_calloc(1, sizeof *q);
    q->sql = pl_strdup(sql);
    q->nparams = nparams;
    q->params = pl_calloc((size_t)(nparams ? nparams : 1), sizeof *q->params);
    for (int i = 0; i < nparams; i++)
        q->params[i] = params[i] ? pl_strdup(params[i]) : NULL;
    q->cb = cb;
    q->ud = ud;
    q->deadline_ms = now_ms() + QUEUE_WAIT_MS;
    q->where = Q_QUEUED;
    ql_push(&P.queue, q);
    arm_qtimer();
    kick();
    return q;
}

/* Cancels q: a queued or finished query is dropped at once; one in flight
 * still runs on the server, and is dropped when its result arrives. Must
 * not be called after q's callback has run. */
void pl_pg_cancel(struct pl_pg_query *q)
{
    if (!q)
        return;
    if (P.running && q->where == Q_QUEUED) {
        ql_unlink(&P.queue, q);
        query_free(q);
    } else if (P.running && q->where == Q_DONE && !q->cancelled) {
        ql_unlink(&P.done, q);
        query_free(q);
    } else {
        q->cancelled = 1;
    }
}

/* Fills st with the pool's current counters. */
void pl_pg_get_stats(pl_pg_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!P.running)
        return;
    st->connections_up = P.ready;
    st->pool_size = P.size;
    st->queued = P.queue.n;
    st->in_flight = P.inflight;
    st->completed = P.completed;
    st->failed = P.failed;
}

/* ==== results ==== */

/* 1 when the query succeeded. */
int pl_db_ok(const pl_db_result *r)
{
    return r && r->res && !r->error;
}

/* Why the query failed; "" when it did not. */
const char *pl_db_error(const pl_db_result *r)
{
    if (!r)
        return "no result";
    return r->error ? r->error : "";
}

/* Rows returned; 0 for a failed query. */
int pl_db_rows(const pl_db_result *r)
{
    return pl_db_ok(r) ? PQntuples(r->res) : 0;
}

static int in_range(const pl_db_result *r, int row, int col)
{
    return pl_db_ok(r) && row >= 0 && col >= 0 && row < PQntuples(r->res) &&
           col < PQnfields(r->res);
}

/* The text of a value, valid during the callback; "" for NULL or out of
 * range. */
const char *pl_db_value(const pl_db_result *r, int row, int col)
{
    return in_range(r, row, col) ? PQgetvalue(r->res, row, col) : "";
}

/* 1 for SQL NULL (and for a cell out of range). */
int pl_db_isnull(const pl_db_result *r, int row, int col)
{
    return in_range(r, row, col) ? PQgetisnull(r->res, row, col) : 1;
}

/* The row count of the command tag: rows changed by an INSERT, UPDATE or
 * DELETE (or returned by a SELECT); 0 for a failed query. */
long pl_db_affected(const pl_db_result *r)
{
    if (!pl_db_ok(r))
        return 0;
    return strtol(PQcmdTuples(r->res), NULL, 10);
}
