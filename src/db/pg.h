/* db/pg.h: the storage service. A small pool of PostgreSQL connections in
 * libpq's non-blocking mode, driven by the event loop: connecting,
 * queries (each distinct SQL text prepared once per connection), pipeline
 * mode, and reconnection with back-off when the server goes away. Nothing
 * here ever blocks the loop. */
#ifndef PL_DB_PG_H
#define PL_DB_PG_H

#include <stddef.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <parley/module.h>

/* A pending query. The handle is a struct tag, not a typedef: a typedef
 * named pl_pg_query would clash with the function of that name. */
struct pl_pg_query;

/* Starts the pool: pool_size connections to conninfo (which should name
 * a UNIX socket directory or a numeric hostaddr, so that libpq does no DNS
 * lookup). Connections are made in the background; the schema is brought
 * up to date on the first one (see schema.h) before the service reports
 * available. Returns 0, or -1 if conninfo does not parse. */
int pl_pg_init(struct event_base *base, const char *conninfo, int pool_size);

/* Closes every connection; pending queries' callbacks run with an error
 * ("shutting down"). */
void pl_pg_shutdown(void);

/* 1 when at least one connection is up and the schema is current. */
int pl_pg_available(void);

/* Called whenever availability changes (up = 1 or 0). One listener. */
void pl_pg_on_state(void (*cb)(int up, void *ud), void *ud);

/* Queues a query. Returns a handle, or NULL (cb never runs) when the
 * service is unavailable. cb runs exactly once from the loop, unless the
 * query is cancelled first. If a connection fails while the query is in
 * flight, cb runs with an error result. */
struct pl_pg_query *pl_pg_query(const char *sql, int nparams,
                                const char *const *params, pl_db_cb cb, void *ud);

/* Cancels a pending query: its callback will not run. */
void pl_pg_cancel(struct pl_pg_query *q);

/* Statistics for the control socket. */
typedef struct pl_pg_stats {
    int connections_up;
    int pool_size;
    long queued;
    long in_flight;
    unsigned long long completed;
    unsigned long long failed;
} pl_pg_stats;
void pl_pg_get_stats(pl_pg_stats *st);

#endif
