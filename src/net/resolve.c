/* net/resolve.c: the asynchronous resolver of net/resolve.h. A c-ares
 * channel whose sockets are registered with libevent through c-ares's
 * socket-state callback and whose time-outs run on an evtimer; SRV answers
 * are parsed by c-ares (ares_parse_srv_reply) and addresses come from
 * ares_getaddrinfo. Results are handed to the caller from a zero-delay
 * event, never from inside the call that asked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <ares.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <parley/base.h>
#include "net/resolve.h"

#define MAX_TARGETS 64     /* SRV records kept per lookup */
#define MAX_ADDRS 32       /* addresses kept per host */

enum { Q_SRV, Q_ADDR };

/* A socket c-ares asked us to watch. */
typedef struct watch {
    struct watch *next;
    ares_socket_t fd;
    struct event *ev;
    short what;
} watch;

/* One of the two SRV lookups of a query. */
typedef struct sub {
    pl_resolve_query *q;
    int direct_tls;
} sub;

struct pl_resolve_query {
    pl_resolver *r;
    pl_resolve_query *prev, *next;  /* in the resolver's list */
    int kind;
    pl_resolve_srv_cb srv_cb;
    pl_resolve_addr_cb addr_cb;
    void *ud;
    int pending;          /* c-ares lookups not yet answered */
    int cancelled;
    int status;
    struct event *deliver;
    /* SRV */
    char *domain;
    int default_port;
    sub subs[2];
    int saw_dot;          /* a "." target was returned */
    pl_resolve_target t[MAX_TARGETS];
    int n;
    /* addresses */
    char *addrs[MAX_ADDRS];
    int naddrs;
};

struct pl_resolver {
    struct event_base *base;
    ares_channel channel;
    struct event *tmr;
    watch *watches;
    pl_resolve_query *queries;
    pl__resolve_guard_fn guard;
    void *guard_ud;
    int destroying;
};

static int lib_refs;

/* ==== sockets and time-outs ==== */

static void rearm(pl_resolver *r)
{
    if (r->destroying)
        return;
    struct timeval tv;
    struct timeval *tvp = ares_timeout(r->channel, NULL, &tv);
    if (tvp)
        evtimer_add(r->tmr, tvp);
    else
        evtimer_del(r->tmr);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    pl_resolver *r = arg;
    ares_process_fd(r->channel, (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
    rearm(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    pl_resolver *r = arg;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(r);
}

static void unwatch(pl_resolver *r, ares_socket_t fd)
{
    for (watch **pp = &r->watches; *pp; pp = &(*pp)->next) {
        if ((*pp)->fd != fd)
            continue;
        watch *w = *pp;
        *pp = w->next;
        event_free(w->ev);
        pl_free(w);
        return;
    }
}

/* c-ares tells which of its sockets to watch for what; (0, 0) means the
 * socket is being closed. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    pl_resolver *r = data;
    short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    if (!what || r->destroying) {
        unwatch(r, fd);
        return;
    }
    watch *w = r->watches;
    while (w && w->fd != fd)
        w = w->next;
    if (w && w->what == what)
        return;
    if (w) {
        event_free(w->ev);
    } else {
        w = pl_calloc(1, sizeof *w);
        w->fd = fd;
        w->next = r->watches;
        r->watches = w;
    }
    w->what = what;
    w->ev = event_new(r->base, (evutil_socket_t)fd, what | EV_PERSIST, on_sock, r);
    event_add(w->ev, NULL);
}

/* ==== resolver ==== */

/* Creates a c-ares channel whose sockets and time-outs run on base. */
pl_resolver *pl__resolver_new(struct event_base *base, const char *servers,
                              unsigned timeout_ms, int tries, pl__resolve_guard_fn guard,
                              void *guard_ud, char *err, size_t errlen)
{
    if (lib_refs++ == 0 && ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        lib_refs--;
        snprintf(err, errlen, "cannot initialise c-ares");
        return NULL;
    }
    pl_resolver *r = pl_calloc(1, sizeof *r);
    r->base = base;
    r->guard = guard;
    r->guard_ud = guard_ud;
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = r;
    o.timeout = (int)(timeout_ms ? timeout_ms : 2000);
    o.tries = tries > 0 ? tries : 2;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    int rc = ares_init_options(&r->channel, &o, mask);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "cannot set up the DNS resolver: %s", ares_strerror(rc));
        goto fail;
    }
    if (servers && *servers) {
        rc = ares_set_servers_ports_csv(r->channel, servers);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "invalid DNS server list \"%s\": %s", servers,
                     ares_strerror(rc));
            ares_destroy(r->channel);
            goto fail;
        }
    }
    r->tmr = evtimer_new(base, on_timer, r);
    return r;
fail:
    pl_free(r);
    if (--lib_refs == 0)
        ares_library_cleanup();
    return NULL;
}

static void query_free(pl_resolve_query *q)
{
    pl_resolver *r = q->r;
    if (q->prev)
        q->prev->next = q->next;
    else if (r->queries == q)
        r->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
    if (q->deliver)
        event_free(q->deliver);
    for (int i = 0; i < q->n; i++)
        pl_free((char *)q->t[i].host);
    for (int i = 0; i < q->naddrs; i++)
        pl_free(q->addrs[i]);
    pl_free(q->domain);
    pl_free(q);
}

/* Tears down the channel (its callbacks see `destroying` and only count
 * down), then frees the queries still waiting for delivery. */
void pl_resolver_free(pl_resolver *r)
{
    if (!r)
        return;
    r->destroying = 1;
    for (pl_resolve_query *q = r->queries; q; q = q->next)
        q->cancelled = 1;
    ares_destroy(r->channel);
    while (r->queries)
        query_free(r->queries);
    while (r->watches)
        unwatch(r, r->watches->fd);
    event_free(r->tmr);
    pl_free(r);
    if (--lib_refs == 0)
        ares_library_cleanup();
}

/* ==== queries ==== */

static pl_resolve_query *query_new(pl_resolver *r, int kind, void *ud)
{
    pl_resolve_query *q = pl_calloc(1, sizeof *q);
    q->r = r;
    q->kind = kind;
    q->ud = ud;
    q->next = r->queries;
    if (q->next)
        q->next->prev = q;
    r->queries = q;
    return q;
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    pl_resolve_query *q = arg;
    pl_resolver *r = q->r;
    if (!q->cancelled && (!r->guard || r->guard(r->guard_ud))) {
        if (q->kind == Q_SRV)
            q->srv_cb(q->status, q->status == PL_OK ? q->t : NULL,
                      q->status == PL_OK ? q->n : 0, q->ud);
        else
            q->addr_cb(q->status, q->status == PL_OK ? (const char *const *)q->addrs : NULL,
                       q->status == PL_OK ? q->naddrs : 0, q->ud);
    }
    query_free(q);
}

/* One c-ares lookup of q finished: when it was the last, the result goes
 * out from the loop (or the query is dropped if it was cancelled). */
static void lookup_done(pl_resolve_query *q)
{
    if (--q->pending > 0)
        return;
    if (q->cancelled) {
        if (!q->r->destroying)
            query_free(q);
        return;
    }
    q->deliver = evtimer_new(q->r->base, deliver_cb, q);
    struct timeval zero = { 0, 0 };
    evtimer_add(q->deliver, &zero);
}

static int map_status(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS:
        return PL_OK;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_ENONAME:
        return PL_ENOENT;
    default:
        return PL_EUNAVAIL;
    }
}

/* ==== SRV ==== */

static unsigned default_rnd(unsigned bound, void *ud)
{
    unsigned v = 0;
    if (gnutls_rnd(GNUTLS_RND_NONCE, &v, sizeof v) != 0)
        v = (unsigned)rand();
    return bound == 0xffffffffu ? v : v % (bound + 1);
}

static int by_priority(const void *a, const void *b)
{
    const pl_resolve_target *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    /* weight 0 first: RFC 2782 puts them at the head of the selection list */
    if ((x->weight == 0) != (y->weight == 0))
        return x->weight == 0 ? -1 : 1;
    return 0;
}

/* RFC 2782: within one priority, repeatedly pick a record with
 * probability proportional to its weight (running sums over a list where
 * weight-0 records come first) until none is left. */
static void order_priority(pl_resolve_target *t, int n,
                           unsigned (*rnd)(unsigned, void *), void *ud)
{
    for (int done = 0; done < n - 1; done++) {
        unsigned sum = 0;
        for (int i = done; i < n; i++)
            sum += (unsigned)t[i].weight;
        unsigned pick = rnd(sum, ud);
        unsigned running = 0;
        int chosen = n - 1;
        for (int i = done; i < n; i++) {
            running += (unsigned)t[i].weight;
            if (running >= pick) {
                chosen = i;
                break;
            }
        }
        pl_resolve_target x = t[chosen];
        memmove(t + done + 1, t + done, sizeof *t * (size_t)(chosen - done));
        t[done] = x;
    }
}

/* Sorts by priority (weight-0 records first within one), then orders
 * each priority group by weighted random selection. */
void pl__srv_order(pl_resolve_target *t, int n, unsigned (*rnd)(unsigned bound, void *ud),
                   void *ud)
{
    if (n <= 1)
        return;
    if (!rnd)
        rnd = default_rnd;
    /* a stable sort keeps the record order within equal keys */
    for (int i = 1; i < n; i++) {
        pl_resolve_target x = t[i];
        int j = i;
        for (; j > 0 && by_priority(&t[j - 1], &x) > 0; j--)
            t[j] = t[j - 1];
        t[j] = x;
    }
    for (int start = 0; start < n;) {
        int end = start + 1;
        while (end < n && t[end].priority == t[start].priority)
            end++;
        order_priority(t + start, end - start, rnd, ud);
        start = end;
    }
}

static void add_target(pl_resolve_query *q, const char *host, int port, int prio, int weight,
                       int tls)
{
    if (q->n >= MAX_TARGETS)
        return;
    pl_resolve_target *t = &q->t[q->n++];
    t->host = pl_strdup(host);
    t->port = port;
    t->priority = prio;
    t->weight = weight;
    t->direct_tls = tls;
}

/* After both SRV lookups: no usable record means the domain itself on the
 * default port, unless a "." record said the service is not offered. */
static void srv_finish(pl_resolve_query *q)
{
    if (q->n > 0) {
        pl__srv_order(q->t, q->n, NULL, NULL);
        return;
    }
    if (q->saw_dot) {
        q->status = PL_ENOENT;
        return;
    }
    add_target(q, q->domain, q->default_port, 0, 0, 0);
}

static void srv_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    sub *s = arg;
    pl_resolve_query *q = s->q;
    struct ares_srv_reply *srv = NULL;
    if (!q->cancelled && status == ARES_SUCCESS &&
        ares_parse_srv_reply(abuf, alen, &srv) == ARES_SUCCESS) {
        for (struct ares_srv_reply *x = srv; x; x = x->next) {
            if (!x->host[0] || strcmp(x->host, ".") == 0)
                q->saw_dot = 1;
            else
                add_target(q, x->host, x->port, x->priority, x->weight, s->direct_tls);
        }
        ares_free_data(srv);
    }
    if (q->pending == 1 && !q->cancelled)
        srv_finish(q);
    lookup_done(q);
}

/* Starts both SRV lookups; the callback runs once both answered. */
pl_resolve_query *pl_resolve_srv(pl_resolver *r, const char *domain, const char *service,
                                 const char *tls_service, int default_port,
                                 pl_resolve_srv_cb cb, void *ud)
{
    if (!r || !domain || !*domain || !service || !cb || r->destroying)
        return NULL;
    pl_resolve_query *q = query_new(r, Q_SRV, ud);
    q->srv_cb = cb;
    q->domain = pl_strdup(domain);
    q->default_port = default_port;
    q->status = PL_OK;
    const char *names[2] = { service, tls_service };
    int count = tls_service ? 2 : 1;
    q->pending = count;
    for (int i = 0; i < count; i++) {
        char name[1100];
        snprintf(name, sizeof name, "_%s._tcp.%s", names[i], domain);
        q->subs[i].q = q;
        q->subs[i].direct_tls = i == 1;
        ares_query(r->channel, name, 1 /* C_IN */, 33 /* T_SRV */, srv_answer,
                   &q->subs[i]);
    }
    rearm(r);
    return q;
}

/* ==== addresses ==== */

static void add_addr(pl_resolve_query *q, const struct sockaddr *sa)
{
    char buf[INET6_ADDRSTRLEN];
    const void *src;
    if (sa->sa_family == AF_INET)
        src = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        src = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    else
        return;
    if (!inet_ntop(sa->sa_family, src, buf, sizeof buf) || q->naddrs >= MAX_ADDRS)
        return;
    for (int i = 0; i < q->naddrs; i++)
        if (strcmp(q->addrs[i], buf) == 0)
            return;
    q->addrs[q->naddrs++] = pl_strdup(buf);
}

static void addr_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    pl_resolve_query *q = arg;
    if (!q->cancelled) {
        q->status = map_status(status);
        if (status == ARES_SUCCESS && res)
            for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next)
                add_addr(q, n->ai_addr);
        if (q->status == PL_OK && q->naddrs == 0)
            q->status = PL_ENOENT;
    }
    if (res)
        ares_freeaddrinfo(res);
    lookup_done(q);
}

/* Starts an A/AAAA lookup with ares_getaddrinfo. */
pl_resolve_query *pl_resolve_addrs(pl_resolver *r, const char *host, pl_resolve_addr_cb cb,
                                   void *ud)
{
    if (!r || !host || !*host || !cb || r->destroying)
        return NULL;
    pl_resolve_query *q = query_new(r, Q_ADDR, ud);
    q->addr_cb = cb;
    q->pending = 1;
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(r->channel, host, NULL, &hints, addr_answer, q);
    rearm(r);
    return q;
}

/* Marks the query cancelled: a finished one waiting for delivery is freed
 * now, a running one when c-ares answers. */
void pl_resolve_cancel(pl_resolve_query *q)
{
    if (!q || q->cancelled)
        return;
    q->cancelled = 1;
    if (q->pending == 0)
        query_free(q);
}
