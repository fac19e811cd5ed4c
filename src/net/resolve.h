/* net/resolve.h: asynchronous DNS with c-ares on the libevent loop. The
 * resolver's sockets are watched by libevent and its retransmissions are
 * driven by an evtimer, so nothing blocks. Besides plain address lookups
 * it answers the question a federating server asks first: which hosts and
 * ports serve a domain, from its SRV records (RFC 2782 order, RFC 6120
 * 3.2, XEP-0368 direct TLS) or, without any, the domain itself.
 *
 * Callbacks never run from inside the call that starts a query: they run
 * from the loop, once per query, unless the query is cancelled first. */
#ifndef PL_NET_RESOLVE_H
#define PL_NET_RESOLVE_H

#include <event2/event.h>

typedef struct pl_resolver pl_resolver;
typedef struct pl_resolve_query pl_resolve_query;

/* One place to connect to: a host name (or address) and port, and whether
 * TLS starts at once (an _xmpps-* record) rather than with STARTTLS. */
typedef struct pl_resolve_target {
    const char *host;
    int port;
    int priority;
    int weight;
    int direct_tls;
} pl_resolve_target;

/* Query results. status: PL_OK; PL_ENOENT (the name does not exist, has no
 * such records, or its SRV record says the service is not offered);
 * PL_EUNAVAIL (timeout, server failure or refusal: try later). The arrays
 * are valid only during the call. */
typedef void (*pl_resolve_srv_cb)(int status, const pl_resolve_target *targets, int n,
                                  void *ud);
typedef void (*pl_resolve_addr_cb)(int status, const char *const *addrs, int n, void *ud);

/* Decides whether a callback may still run (for resolvers owned by a
 * module that may have been unloaded); NULL: always. */
typedef int (*pl__resolve_guard_fn)(void *guard_ud);

/* A resolver on base. servers is a comma-separated list of "ip",
 * "ip:port" or "[ipv6]:port" (NULL or "": the system's resolv.conf);
 * timeout_ms is the wait before a retry (0: 2000) and each query is tried
 * `tries` times per server (0: 2). NULL on error, with the reason in err. */
pl_resolver *pl__resolver_new(struct event_base *base, const char *servers,
                              unsigned timeout_ms, int tries, pl__resolve_guard_fn guard,
                              void *guard_ud, char *err, size_t errlen);

/* Frees the resolver; pending queries are cancelled (no callbacks). Must
 * not be called from inside one of its callbacks. */
void pl_resolver_free(pl_resolver *r);

/* Looks up the SRV records of the service on domain:
 * "_<service>._tcp.<domain>", and also "_<tls_service>._tcp.<domain>"
 * when tls_service is not NULL (marked direct_tls). The union is ordered
 * by priority, then by RFC 2782 weighted random selection within each
 * priority. Without any record (or when both lookups fail) the result is
 * the single target (domain, default_port) with status PL_OK; a lone "."
 * target means the service is not offered: PL_ENOENT. Returns the query,
 * or NULL if it cannot be started (no callback then). */
pl_resolve_query *pl_resolve_srv(pl_resolver *r, const char *domain, const char *service,
                                 const char *tls_service, int default_port,
                                 pl_resolve_srv_cb cb, void *ud);

/* Looks up the IPv6 and IPv4 addresses of host (a numeric address is
 * returned as is). The addresses are numeric strings, in the order
 * c-ares sorts them (RFC 6724). */
pl_resolve_query *pl_resolve_addrs(pl_resolver *r, const char *host, pl_resolve_addr_cb cb,
                                   void *ud);

/* Cancels a query whose callback has not run; its callback never runs. */
void pl_resolve_cancel(pl_resolve_query *q);

/* Orders n SRV targets in place: by priority, and within a priority by
 * RFC 2782 weighted selection, drawing with rnd(bound, ud), which returns
 * a number from 0 to bound inclusive. Exposed for tests. */
void pl__srv_order(pl_resolve_target *t, int n, unsigned (*rnd)(unsigned bound, void *ud),
                   void *ud);

#endif
