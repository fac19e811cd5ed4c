/* net/netapi.c: the network services of parley/net.h for modules, as thin
 * wrappers over net/conn.c, net/listener.c and net/resolve.c (the TLS and
 * XML stream functions are the core's own, exported as they are).
 *
 * Each object a module makes here records an owner token. The token is
 * tied to a marker hook registered through the module, which the module
 * manager removes when the module unloads; before any callback into the
 * module, the wrapper checks that the marker is still there. So a module
 * that is gone is never called, and its leftover connections are closed
 * on their next event. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include "core/hooks.h"
#include "core/host.h"
#include "core/loop.h"
#include "core/server.h"
#include "net/conn.h"
#include "net/listener.h"
#include "net/resolve.h"
#include "xml/stream.h"
#include <parley/net.h>

_Static_assert((int)PL_NET_S2S == (int)PL_LISTEN_S2S, "listen role numbers");
_Static_assert((int)PL_NET_S2S_TLS == (int)PL_LISTEN_S2S_TLS, "listen role numbers");

#define OWNER_EVENT "net/owner"

/* ==== owners ==== */

/* One per module instance that made network objects. Never freed while
 * the process runs: objects of an unloaded module may still point to it. */
typedef struct owner {
    struct owner *next;
    pl_module *m;
    int dead;
} owner;

static owner *owners;

static int marker(pl_event *ev, void *ud)
{
    return PL_PASS;
}

/* True while o's module is loaded: its marker hook is still registered. */
static int alive(owner *o)
{
    if (!o || o->dead)
        return 0;
    int id = pl__event_lookup(OWNER_EVENT);
    if (id >= 0 && id < pl__global_hooks.nchains) {
        const pl__chain *c = &pl__global_hooks.chains[id];
        for (int i = 0; i < c->n; i++)
            if (c->h[i].fn == marker && c->h[i].ud == o)
                return 1;
    }
    o->dead = 1;
    return 0;
}

static owner *owner_of(pl_module *m)
{
    for (owner *o = owners; o; o = o->next)
        if (o->m == m && alive(o))
            return o;
    owner *o = pl_calloc(1, sizeof *o);
    o->m = m;
    o->next = owners;
    owners = o;
    pl_hook_global(m, OWNER_EVENT, marker, o, -1000);
    return o;
}

/* ==== connections ==== */

struct pl_conn {
    pl__conn *c;
    const pl_conn_handler *h;
    void *ud;
    owner *o;
    unsigned discarded : 1;
};

/* Whether the owner may be called; a connection whose module is gone is
 * discarded on the spot. */
static int may_call(pl_conn *nc)
{
    if (nc->discarded)
        return 0;
    if (alive(nc->o))
        return 1;
    pl_log(PL_LOG_INFO, "conn %s: closing, its module was unloaded", pl__conn_peer(nc->c));
    pl_conn_discard(nc);
    return 0;
}

static void t_data(void *ud, const char *buf, size_t len)
{
    pl_conn *nc = ud;
    if (may_call(nc) && nc->h->data)
        nc->h->data(nc->ud, buf, len);
}

static void t_tls_ready(void *ud)
{
    pl_conn *nc = ud;
    if (may_call(nc) && nc->h->tls_ready)
        nc->h->tls_ready(nc->ud);
}

static void t_connected(void *ud, int err)
{
    pl_conn *nc = ud;
    if (may_call(nc) && nc->h->connected)
        nc->h->connected(nc->ud, err);
}

static void t_closed(void *ud)
{
    pl_conn *nc = ud;
    if (!nc->discarded && alive(nc->o) && nc->h->closed)
        nc->h->closed(nc->ud);
    pl_free(nc);
}

static const pl__conn_handler trampolines = { t_data, t_tls_ready, t_closed, t_connected };

/* Wraps an accepted fd (owned from now on). */
pl_conn *pl_conn_new(pl_module *m, int fd, const char *peer, const pl_conn_handler *h, void *ud)
{
    pl_conn *nc = pl_calloc(1, sizeof *nc);
    nc->h = h;
    nc->ud = ud;
    nc->o = owner_of(m);
    nc->c = pl__conn_new(fd, peer, &trampolines, nc);
    return nc;
}

/* Starts an outgoing connection; NULL (errno set, no callbacks) if it
 * fails at once. */
pl_conn *pl_conn_connect(pl_module *m, const char *ip, int port, const pl_conn_handler *h,
                         void *ud)
{
    pl_conn *nc = pl_calloc(1, sizeof *nc);
    nc->h = h;
    nc->ud = ud;
    nc->o = owner_of(m);
    nc->c = pl__conn_connect(ip, port, &trampolines, nc);
    if (!nc->c) {
        int e = errno;
        pl_free(nc);
        errno = e;
        return NULL;
    }
    return nc;
}

/* The output buffer; call pl_conn_queued after appending. */
pl_buf *pl_conn_out(pl_conn *c)
{
    return pl__conn_out(c->c);
}

/* Schedules what was appended for the next flush. */
void pl_conn_queued(pl_conn *c)
{
    pl__conn_queued(c->c);
}

/* Appends and schedules. */
void pl_conn_write(pl_conn *c, const char *data, size_t len)
{
    pl__conn_write(c->c, data, len);
}

static pl_tls_creds *creds_of(pl_host *h)
{
    if (h && h->creds)
        return h->creds;
    return pl__hosts ? pl__hosts->creds : NULL;
}

/* STARTTLS on the server side, with SNI over every host. */
void pl_conn_starttls(pl_conn *c, pl_host *host, int request_client_cert)
{
    if (request_client_cert)
        pl__conn_request_client_cert(c->c);
    pl__conn_starttls(c->c, creds_of(host), pl__host_sni, NULL);
}

/* Direct TLS on the server side. */
void pl_conn_tls_accept(pl_conn *c, pl_host *host, int request_client_cert)
{
    if (request_client_cert)
        pl__conn_request_client_cert(c->c);
    pl__conn_tls_accept(c->c, creds_of(host), pl__host_sni, NULL);
}

/* Client TLS offering the local host's certificate. */
void pl_conn_tls_connect(pl_conn *c, const char *server_name, pl_host *local)
{
    pl__conn_tls_connect(c->c, server_name, local ? local->creds : NULL);
}

/* Writes what is queued, then closes; `closed` follows. */
void pl_conn_close(pl_conn *c)
{
    pl__conn_close(c->c);
}

/* Closes without any further callback; the wrapper is freed by the
 * connection's own close step. */
void pl_conn_discard(pl_conn *c)
{
    c->discarded = 1;
    pl__conn_close(c->c);
}

/* True once TLS is established. */
int pl_conn_is_tls(const pl_conn *c)
{
    return pl__conn_is_tls(c->c);
}

/* The TLS session once established, else NULL. */
pl_tls *pl_conn_tls(pl_conn *c)
{
    return pl__conn_tls(c->c);
}

/* "ip:port" of the peer. */
const char *pl_conn_peer(const pl_conn *c)
{
    return pl__conn_peer(c->c);
}

/* ==== listeners ==== */

static struct {
    owner *o;
    pl_accept_fn fn;
    void *ud;
} roles[4];

static int module_role(int role)
{
    return role == PL_LISTEN_S2S || role == PL_LISTEN_S2S_TLS;
}

static void accept_tramp(int fd, const char *peer, int role)
{
    if (!module_role(role) || !roles[role].fn || !alive(roles[role].o)) {
        if (module_role(role))
            roles[role].fn = NULL;
        pl_log(PL_LOG_WARN, "listener: no module handles this role; closing %s", peer);
        close(fd);
        return;
    }
    roles[role].fn(roles[role].ud, fd, peer, role);
}

/* Takes the role's listeners for m. */
int pl_listen(pl_module *m, int role, pl_accept_fn fn, void *ud)
{
    if (!m || !fn || !module_role(role))
        return PL_EINVAL;
    if (roles[role].fn && alive(roles[role].o) && roles[role].o->m != m)
        return PL_EEXIST;
    roles[role].o = owner_of(m);
    roles[role].fn = fn;
    roles[role].ud = ud;
    pl__listener_set_handler(role, accept_tramp);
    return PL_OK;
}

/* Gives the role back; accepted connections are closed from now on. */
void pl_unlisten(pl_module *m, int role)
{
    if (!module_role(role) || !roles[role].o || roles[role].o->m != m)
        return;
    roles[role].fn = NULL;
    roles[role].ud = NULL;
    roles[role].o = NULL;
}

/* How many `listen` lines of role the config in force has. */
int pl_listen_count(int role)
{
    const pl_config *c = pl__server.config;
    int n = 0;
    for (int i = 0; c && i < c->nlistens; i++)
        n += c->listens[i].role == role;
    return n;
}

/* ==== DNS ==== */

static int resolver_guard(void *ud)
{
    return alive(ud);
}

/* A resolver on the server's loop whose callbacks stop with its module. */
pl_resolver *pl_resolver_new(pl_module *m, const char *servers, unsigned timeout_ms,
                             char *err, size_t errlen)
{
    return pl__resolver_new(pl__loop_base(), servers, timeout_ms, 2, resolver_guard,
                            owner_of(m), err, errlen);
}

/* ==== settings ==== */

/* Copies the s2s-related settings of the config in force. */
void pl_net_settings_get(pl_net_settings *out)
{
    const pl_config *c = pl__server.config;
    out->s2s_require_tls = c->s2s_require_tls;
    out->max_stanza_size = c->limits.max_stanza_size;
    out->unauth_timeout = c->limits.unauth_timeout;
    out->s2s_idle_timeout = c->limits.s2s_idle_timeout;
}

/* Random bytes from GnuTLS; aborts if the generator fails. */
void pl_net_random(void *buf, size_t len)
{
    if (gnutls_rnd(GNUTLS_RND_RANDOM, buf, len) != 0) {
        pl_log(PL_LOG_ERROR, "gnutls_rnd failed");
        abort();
    }
}
