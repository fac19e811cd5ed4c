/* net/resolve_test.c: tests of net/resolve.c against a real DNS server,
 * dnsmasq (Debian package dnsmasq-base), started by each test on a free
 * loopback port with the records below; plus the RFC 2782 ordering with
 * a scripted random source. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <event2/event.h>
#include <parley/base.h>
#include "net/resolve.h"
#include "../../tests/unit/test.h"

/* ==== the DNS server ==== */

static pid_t dns_pid;

static void stop_dns(void)
{
    if (dns_pid > 0) {
        kill(dns_pid, SIGTERM);
        waitpid(dns_pid, NULL, 0);
        dns_pid = 0;
    }
}

/* A UDP port on 127.0.0.1 nobody uses right now. */
static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* True once something is bound to the UDP port. */
static int port_taken(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int taken = bind(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

static const char *const records[] = {
    /* example.test: two plain SRV records and one direct-TLS record */
    "--srv-host=_xmpp-server._tcp.example.test,late.example.test,5269,20,0",
    "--srv-host=_xmpp-server._tcp.example.test,first.example.test,5270,10,5",
    "--srv-host=_xmpps-server._tcp.example.test,tls.example.test,5271,15,0",
    /* dot.test: the service is decidedly not offered */
    "--srv-host=_xmpp-server._tcp.dot.test",
    /* mixed.test: "." for STARTTLS, a record for direct TLS */
    "--srv-host=_xmpp-server._tcp.mixed.test",
    "--srv-host=_xmpps-server._tcp.mixed.test,tls.mixed.test,5223,0,0",
    "--host-record=first.example.test,127.0.0.5,::5",
    "--host-record=fallback.test,127.0.0.6",
    "--host-record=v6only.test,::6",
};

/* Starts dnsmasq answering only from the records above (NXDOMAIN for any
 * other name under .test) and returns its port. */
static int start_dns(void)
{
    int port = free_udp_port();
    char portarg[32];
    snprintf(portarg, sizeof portarg, "--port=%d", port);
    const char *argv[32] = { "dnsmasq", "--no-daemon", portarg, "--listen-address=127.0.0.1",
                             "--bind-interfaces", "--no-resolv", "--no-hosts",
                             "--conf-file=/dev/null", "--local=/test/", "--pid-file=" };
    int argc = 10;
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++)
        argv[argc++] = records[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        freopen("/dev/null", "w", stderr);
        execvp("dnsmasq", (char *const *)argv);
        execv("/usr/sbin/dnsmasq", (char *const *)argv);
        _exit(127);
    }
    dns_pid = pid;
    atexit(stop_dns);
    for (int i = 0; i < 250 && !port_taken(port); i++) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        int status;
        CHECK(waitpid(pid, &status, WNOHANG) == 0);   /* dnsmasq must not have exited */
    }
    CHECK(port_taken(port));
    return port;
}

/* ==== driving a resolver ==== */

/* Wait for one answer from dnsmasq: generous, since a loaded machine may
 * be slow to schedule it; two tries still fit in the tests' 5 s. */
#define DNS_TRY_MS 2000

static struct event_base *base;

static pl_resolver *resolver_at(int port, unsigned timeout_ms, int tries)
{
    char servers[64], err[256] = "";
    snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
    base = event_base_new();
    pl_resolver *r = pl__resolver_new(base, servers, timeout_ms, tries, NULL, NULL, err,
                                      sizeof err);
    if (!r)
        fprintf(stderr, "resolver: %s\n", err);
    CHECK(r != NULL);
    return r;
}

typedef struct result {
    int calls;
    int status;
    char items[16][128];
    int n;
} result;

static void on_srv(int status, const pl_resolve_target *t, int n, void *ud)
{
    result *res = ud;
    res->calls++;
    res->status = status;
    res->n = n;
    for (int i = 0; i < n && i < 16; i++)
        snprintf(res->items[i], sizeof res->items[i], "%s:%d%s", t[i].host, t[i].port,
                 t[i].direct_tls ? " tls" : "");
}

static void on_addrs(int status, const char *const *addrs, int n, void *ud)
{
    result *res = ud;
    res->calls++;
    res->status = status;
    res->n = n;
    for (int i = 0; i < n && i < 16; i++)
        snprintf(res->items[i], sizeof res->items[i], "%s", addrs[i]);
}

/* Runs the loop until res has its callback (or ms pass). */
static void run_until(result *res, int ms)
{
    struct timeval tv = { 0, 10 * 1000 };
    for (int i = 0; i < ms / 10 && res->calls == 0; i++) {
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void finish(pl_resolver *r)
{
    pl_resolver_free(r);
    event_base_free(base);
    stop_dns();
}

static int has_item(const result *res, const char *s)
{
    for (int i = 0; i < res->n; i++)
        if (strcmp(res->items[i], s) == 0)
            return 1;
    return 0;
}

/* ==== SRV ==== */

PL_TEST(srv_records_in_priority_order)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_srv(r, "example.test", "xmpp-server", "xmpps-server", 5269, on_srv, &res));
    CHECK_EQ(res.calls, 0);   /* never from inside the call */
    run_until(&res, 5000);
    CHECK_EQ(res.calls, 1);
    CHECK_EQ(res.status, PL_OK);
    CHECK_EQ(res.n, 3);
    CHECK_STR(res.items[0], "first.example.test:5270");
    CHECK_STR(res.items[1], "tls.example.test:5271 tls");
    CHECK_STR(res.items[2], "late.example.test:5269");
    finish(r);
}

PL_TEST(srv_without_tls_service)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_srv(r, "example.test", "xmpp-server", NULL, 5269, on_srv, &res));
    run_until(&res, 5000);
    CHECK_EQ(res.status, PL_OK);
    CHECK_EQ(res.n, 2);
    CHECK_STR(res.items[0], "first.example.test:5270");
    CHECK_STR(res.items[1], "late.example.test:5269");
    finish(r);
}

PL_TEST(srv_missing_falls_back_to_domain)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_srv(r, "fallback.test", "xmpp-server", "xmpps-server", 5269, on_srv,
                         &res));
    run_until(&res, 5000);
    CHECK_EQ(res.calls, 1);
    CHECK_EQ(res.status, PL_OK);
    CHECK_EQ(res.n, 1);
    CHECK_STR(res.items[0], "fallback.test:5269");
    finish(r);
}

PL_TEST(srv_dot_means_not_offered)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_srv(r, "dot.test", "xmpp-server", "xmpps-server", 5269, on_srv, &res));
    run_until(&res, 5000);
    CHECK_EQ(res.calls, 1);
    CHECK_EQ(res.status, PL_ENOENT);
    CHECK_EQ(res.n, 0);
    finish(r);
}

PL_TEST(srv_dot_with_other_service_record)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_srv(r, "mixed.test", "xmpp-server", "xmpps-server", 5269, on_srv, &res));
    run_until(&res, 5000);
    CHECK_EQ(res.status, PL_OK);
    CHECK_EQ(res.n, 1);
    CHECK_STR(res.items[0], "tls.mixed.test:5223 tls");
    finish(r);
}

/* ==== addresses ==== */

PL_TEST(addrs_ipv6_and_ipv4)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_addrs(r, "first.example.test", on_addrs, &res));
    run_until(&res, 5000);
    CHECK_EQ(res.calls, 1);
    CHECK_EQ(res.status, PL_OK);
    CHECK_EQ(res.n, 2);
    CHECK(has_item(&res, "127.0.0.5"));
    CHECK(has_item(&res, "::5"));
    finish(r);
}

PL_TEST(addrs_ipv6_only)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_addrs(r, "v6only.test", on_addrs, &res));
    run_until(&res, 5000);
    CHECK_EQ(res.status, PL_OK);
    CHECK_EQ(res.n, 1);
    CHECK_STR(res.items[0], "::6");
    finish(r);
}

PL_TEST(addrs_nxdomain)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_addrs(r, "missing.test", on_addrs, &res));
    run_until(&res, 5000);
    CHECK_EQ(res.calls, 1);
    CHECK_EQ(res.status, PL_ENOENT);
    CHECK_EQ(res.n, 0);
    finish(r);
}

PL_TEST(addrs_numeric_is_deferred)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_addrs(r, "127.0.0.9", on_addrs, &res));
    CHECK_EQ(res.calls, 0);
    run_until(&res, 2000);
    CHECK_EQ(res.calls, 1);
    CHECK_EQ(res.status, PL_OK);
    CHECK_EQ(res.n, 1);
    CHECK_STR(res.items[0], "127.0.0.9");
    finish(r);
}

/* ==== failures ==== */

/* A UDP socket that never answers: every query times out. */
PL_TEST(timeout_is_unavailable)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    pl_resolver *r = resolver_at(ntohs(a.sin_port), 200, 1);
    result res = { 0 }, res2 = { 0 };
    CHECK(pl_resolve_addrs(r, "slow.test", on_addrs, &res));
    CHECK(pl_resolve_srv(r, "slow.test", "xmpp-server", NULL, 5269, on_srv, &res2));
    run_until(&res, 5000);
    run_until(&res2, 5000);
    CHECK_EQ(res.calls, 1);
    CHECK_EQ(res.status, PL_EUNAVAIL);
    /* a failed SRV lookup still falls back to the domain */
    CHECK_EQ(res2.calls, 1);
    CHECK_EQ(res2.status, PL_OK);
    CHECK_EQ(res2.n, 1);
    CHECK_STR(res2.items[0], "slow.test:5269");
    pl_resolver_free(r);
    event_base_free(base);
    close(fd);
}

PL_TEST(cancelled_query_never_calls_back)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 }, other = { 0 };
    pl_resolve_query *q = pl_resolve_addrs(r, "first.example.test", on_addrs, &res);
    CHECK(q != NULL);
    CHECK(pl_resolve_srv(r, "example.test", "xmpp-server", NULL, 5269, on_srv, &other));
    pl_resolve_cancel(q);
    run_until(&other, 5000);
    CHECK_EQ(other.calls, 1);
    run_until(&res, 300);
    CHECK_EQ(res.calls, 0);
    finish(r);
}

PL_TEST(free_with_pending_queries)
{
    pl_resolver *r = resolver_at(start_dns(), DNS_TRY_MS, 2);
    result res = { 0 };
    CHECK(pl_resolve_srv(r, "example.test", "xmpp-server", "xmpps-server", 5269, on_srv, &res));
    CHECK(pl_resolve_addrs(r, "127.0.0.1", on_addrs, &res));
    finish(r);
    CHECK_EQ(res.calls, 0);
}

PL_TEST(invalid_server_list)
{
    char err[256] = "";
    struct event_base *b = event_base_new();
    pl_resolver *r = pl__resolver_new(b, "not an address", 0, 0, NULL, NULL, err, sizeof err);
    CHECK_NULL(r);
    CHECK(strstr(err, "invalid DNS server list") != NULL);
    event_base_free(b);
}

static int guard_says;
static int guard(void *ud)
{
    return guard_says;
}

PL_TEST(guard_suppresses_callbacks)
{
    int port = start_dns();
    char servers[64], err[256];
    snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
    base = event_base_new();
    pl_resolver *r = pl__resolver_new(base, servers, 1000, 2, guard, NULL, err, sizeof err);
    CHECK(r != NULL);
    result res = { 0 };
    guard_says = 0;
    CHECK(pl_resolve_addrs(r, "127.0.0.1", on_addrs, &res));
    run_until(&res, 300);
    CHECK_EQ(res.calls, 0);
    guard_says = 1;
    CHECK(pl_resolve_addrs(r, "127.0.0.1", on_addrs, &res));
    run_until(&res, 2000);
    CHECK_EQ(res.calls, 1);
    finish(r);
}

/* ==== RFC 2782 ordering ==== */

typedef struct script {
    unsigned draws[8];
    unsigned bounds[8];
    int next;
} script;

static unsigned scripted(unsigned bound, void *ud)
{
    script *s = ud;
    s->bounds[s->next] = bound;
    return s->draws[s->next++];
}

static pl_resolve_target tgt(const char *host, int prio, int weight)
{
    pl_resolve_target t = { host, 5269, prio, weight, 0 };
    return t;
}

PL_TEST(order_by_priority_then_weight)
{
    pl_resolve_target t[5] = { tgt("c", 20, 0), tgt("a1", 10, 10), tgt("a2", 10, 30),
                               tgt("a0", 10, 0), tgt("d", 30, 1) };
    /* priority 10: list a0(0) a1(10) a2(30), sum 40; draw 25 -> running
     * sums 0, 10, 40 -> a2; then a0(0) a1(10), sum 10, draw 0 -> a0;
     * then the last one needs no draw */
    script s = { { 25, 0 }, { 0 }, 0 };
    pl__srv_order(t, 5, scripted, &s);
    CHECK_EQ(s.next, 2);
    CHECK_EQ(s.bounds[0], 40);
    CHECK_EQ(s.bounds[1], 10);
    CHECK_STR(t[0].host, "a2");
    CHECK_STR(t[1].host, "a0");
    CHECK_STR(t[2].host, "a1");
    CHECK_STR(t[3].host, "c");
    CHECK_STR(t[4].host, "d");
}

PL_TEST(order_weight_draw_boundaries)
{
    pl_resolve_target t[3] = { tgt("x", 5, 1), tgt("y", 5, 1), tgt("z", 5, 2) };
    /* sum 4: a draw of 1 stops at x (running 1), then sum 3: 2 -> z */
    script s = { { 1, 2 }, { 0 }, 0 };
    pl__srv_order(t, 3, scripted, &s);
    CHECK_STR(t[0].host, "x");
    CHECK_STR(t[1].host, "z");
    CHECK_STR(t[2].host, "y");
}

PL_TEST(order_default_random_keeps_every_record)
{
    for (int round = 0; round < 50; round++) {
        pl_resolve_target t[4] = { tgt("p", 1, 5), tgt("q", 1, 5), tgt("r", 0, 0),
                                   tgt("s", 2, 0) };
        pl__srv_order(t, 4, NULL, NULL);
        CHECK_STR(t[0].host, "r");
        CHECK(strcmp(t[1].host, "p") == 0 || strcmp(t[1].host, "q") == 0);
        CHECK(strcmp(t[2].host, t[1].host) != 0);
        CHECK(strcmp(t[2].host, "p") == 0 || strcmp(t[2].host, "q") == 0);
        CHECK_STR(t[3].host, "s");
    }
}
