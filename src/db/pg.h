/* db/pg.h: the storage service. A small pool of PostgreSQL connections in
 * libpq's non-blocking mode, driven by the event loop: connecting,
 * queries (each distinct SQL text prepared once per connection), pipeline
 * mode, LISTEN/NOTIFY subscriptions, and reconnection with back-off when
 * the server goes away. Nothing here ever blocks the loop. */
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

/* A subscription to a notification channel. */
struct pl_pg_listen;

/* Subscribes cb to the PostgreSQL notification channel (a lower-case
 * letter or '_', then lower-case letters, digits or '_'; at most 63
 * bytes). cb runs from the loop, never inside a pool call, with each
 * notification's payload ("" if it had none), and with NULL when
 * notifications may have been missed (the listening connection was lost
 * or the pool stopped): the subscriber should then forget whatever the
 * notifications keep current. Subscriptions may be made at any time,
 * before pl_pg_init and after pl_pg_shutdown included; the LISTEN is
 * issued whenever a connection is up. Returns NULL (cb never runs) for a
 * bad channel name or a NULL cb. */
struct pl_pg_listen *pl_pg_listen(const char *channel, pl_db_notify_cb cb, void *ud);

/* Ends a subscription (NULL: nothing); cb does not run again. */
void pl_pg_unlisten(struct pl_pg_listen *l);

/* 1 when a LISTEN on channel has committed on the listening connection
 * and that connection is still up: every notification sent from now on
 * will be delivered. 0 otherwise (no subscriber, not yet listening, or
 * the connection was lost). */
int pl_pg_listening(const char *channel);

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
