/* net/conn.c: non-blocking stream connections with optional TLS, batched
 * output and asynchronous close (see conn.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <parley/base.h>
#include "core/loop.h"
#include "net/conn.h"

enum { TLS_NONE, TLS_PENDING, TLS_HANDSHAKE, TLS_ON };

struct pl__conn {
    int fd;
    struct event *rev;
    struct event *wev;
    struct event *pev;             /* resume after a pause, lazily made */
    pl_tls *tls;
    pl_buf out;
    size_t tls_retry;              /* length of a pending TLS write retry */
    const pl__conn_handler *h;
    void *ud;
    pl_tls_creds *tls_creds;       /* STARTTLS waiting for output to drain */
    pl_tls_sni_fn tls_sni;
    void *tls_sni_ud;
    pl__conn *next_flush;
    char *peer;
    unsigned tls_state : 2;
    unsigned queued : 1;           /* on the flush list */
    unsigned closing : 1;
    unsigned dead : 1;             /* to be finalised by the flush step */
    unsigned want_write : 1;       /* waiting for writability */
    unsigned paused : 1;
    unsigned connecting : 1;       /* outgoing, not yet established */
    unsigned tls_client : 1;       /* the pending handshake is a client's */
    unsigned want_cert : 1;        /* request a client certificate */
    char *tls_name;                /* client: the server name for SNI */
};

static pl__conn *flush_head;
static int nconns;
static char rbuf[16384];

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

static void schedule(pl__conn *c)
{
    if (c->queued)
        return;
    c->queued = 1;
    c->next_flush = flush_head;
    flush_head = c;
}

pl__conn *pl__conn_new(int fd, const char *peer, const pl__conn_handler *h, void *ud)
{
    pl__conn *c = pl_calloc(1, sizeof *c);
    c->fd = fd;
    c->h = h;
    c->ud = ud;
    c->peer = pl_strdup(peer);
    struct event_base *base = pl__loop_base();
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_add(c->rev, NULL);
    nconns++;
    return c;
}

pl_buf *pl__conn_out(pl__conn *c)
{
    return &c->out;
}

void pl__conn_queued(pl__conn *c)
{
    if (!c->dead && c->out.len)
        schedule(c);
}

void pl__conn_write(pl__conn *c, const char *data, size_t len)
{
    if (c->closing || c->dead)
        return;
    pl_buf_append(&c->out, data, len);
    schedule(c);
}

int pl__conn_is_tls(const pl__conn *c)
{
    return c->tls_state == TLS_ON;
}

pl_tls *pl__conn_tls(pl__conn *c)
{
    return c->tls_state == TLS_ON ? c->tls : NULL;
}

const char *pl__conn_peer(const pl__conn *c)
{
    return c->peer;
}

const char *pl__conn_peer_addr(const pl__conn *c)
{
    static char addr[64];
    const char *p = c->peer;
    size_t n = strlen(p);
    const char *colon = strrchr(p, ':');
    if (colon)
        n = (size_t)(colon - p);
    if (n >= sizeof addr)
        n = sizeof addr - 1;
    memcpy(addr, p, n);
    addr[n] = '\0';
    return addr;
}

int pl__conn_count_all(void)
{
    return nconns;
}

/* Waits for writability (tv: a time limit, or NULL). The write event is
 * made on first use: most connections never fill their socket, and an
 * idle one should not keep an event it does not need. */
static void wait_writable(pl__conn *c, const struct timeval *tv)
{
    if (!c->wev)
        c->wev = event_new(pl__loop_base(), c->fd, EV_WRITE, on_write, c);
    event_add(c->wev, tv);
}

static void stop_waiting_writable(pl__conn *c)
{
    if (c->wev)
        event_del(c->wev);
}

/* Marks the connection dead; the flush step frees it and tells the owner. */
static void kill_conn(pl__conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    c->closing = 1;
    event_del(c->rev);
    stop_waiting_writable(c);
    schedule(c);
}

static void start_handshake(pl__conn *c);

static void drive_handshake(pl__conn *c)
{
    int rc = pl_tls_handshake(c->tls);
    if (rc == 0) {
        c->tls_state = TLS_ON;
        stop_waiting_writable(c);
        c->want_write = 0;
        if (c->h->tls_ready)
            c->h->tls_ready(c->ud);
        /* GnuTLS may already hold application data */
        if (!c->dead && pl_tls_pending(c->tls))
            event_active(c->rev, EV_READ, 0);
        return;
    }
    if (rc == PL_AGAIN) {
        if (pl_tls_want_write(c->tls)) {
            c->want_write = 1;
            struct timeval tv = { 30, 0 };
            wait_writable(c, &tv);
        }
        return;
    }
    pl_log(PL_LOG_INFO, "conn %s: TLS handshake failed: %s", c->peer, pl_tls_error(c->tls));
    kill_conn(c);
}

static void start_handshake(pl__conn *c)
{
    if (c->tls_client) {
        c->tls = pl_tls_client_new(c->fd, c->tls_name, c->tls_creds);
    } else {
        c->tls = pl_tls_server_new(c->fd, c->tls_creds, c->tls_sni, c->tls_sni_ud);
        if (c->tls && c->want_cert)
            pl_tls_request_client_cert(c->tls);
    }
    c->tls_creds = NULL;
    if (!c->tls) {
        kill_conn(c);
        return;
    }
    c->tls_state = TLS_HANDSHAKE;
    event_add(c->rev, NULL);
    drive_handshake(c);
}

void pl__conn_starttls(pl__conn *c, pl_tls_creds *def, pl_tls_sni_fn sni, void *ud)
{
    c->tls_creds = def;
    c->tls_sni = sni;
    c->tls_sni_ud = ud;
    c->tls_state = TLS_PENDING;
    event_del(c->rev);   /* the next bytes are the TLS client hello */
    schedule(c);
}

void pl__conn_tls_accept(pl__conn *c, pl_tls_creds *def, pl_tls_sni_fn sni, void *ud)
{
    c->tls_creds = def;
    c->tls_sni = sni;
    c->tls_sni_ud = ud;
    start_handshake(c);
}

/* Queues a client handshake like pl__conn_starttls does a server one; an
 * outgoing connection still being established starts it once it is. */
void pl__conn_tls_connect(pl__conn *c, const char *server_name, pl_tls_creds *creds)
{
    c->tls_client = 1;
    pl_free(c->tls_name);
    c->tls_name = server_name ? pl_strdup(server_name) : NULL;
    c->tls_creds = creds;
    c->tls_state = TLS_PENDING;
    event_del(c->rev);
    schedule(c);
}

/* Makes the next server handshake ask for a client certificate. */
void pl__conn_request_client_cert(pl__conn *c)
{
    c->want_cert = 1;
}

/* Parses a numeric address into ss; 0 or -1. */
static int make_addr(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (port <= 0 || port > 65535)
        return -1;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

/* Opens a non-blocking socket, starts connecting, and waits for
 * writability to learn the outcome (reported by on_write). */
pl__conn *pl__conn_connect(const char *ip, int port, const pl__conn_handler *h, void *ud)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (make_addr(ip, port, &ss, &len) != 0) {
        errno = EINVAL;
        return NULL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    char peer[80];
    snprintf(peer, sizeof peer, "%s:%d", ip, port);
    pl__conn *c = pl__conn_new(fd, peer, h, ud);
    event_del(c->rev);   /* reading starts once connected */
    c->connecting = 1;
    c->want_write = 1;
    wait_writable(c, NULL);
    return c;
}

/* The outcome of a connection attempt: tells the owner, then reads and
 * flushes what was queued meanwhile (or dies). */
static void connect_done(pl__conn *c)
{
    int err = 0;
    socklen_t elen = sizeof err;
    c->connecting = 0;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        err = errno;
    if (err) {
        pl_debug("conn %s: connect failed: %s", c->peer, strerror(err));
        if (c->h->connected)
            c->h->connected(c->ud, err);
        kill_conn(c);
        return;
    }
    if (c->tls_state != TLS_PENDING && !c->closing)
        event_add(c->rev, NULL);
    if (c->h->connected)
        c->h->connected(c->ud, 0);
    if (!c->dead)
        schedule(c);
}

void pl__conn_close(pl__conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    event_del(c->rev);
    schedule(c);
}

void pl__conn_trim(pl__conn *c)
{
    if (!c->out.len && !c->queued)
        pl_buf_free(&c->out);
    if (c->wev && !c->want_write) {
        event_free(c->wev);
        c->wev = NULL;
    }
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    pl__conn *c = arg;
    c->paused = 0;
    if (c->closing)
        return;
    event_add(c->rev, NULL);
    /* bytes GnuTLS already decrypted raise no readiness on the socket */
    if (c->tls_state == TLS_ON && pl_tls_pending(c->tls))
        event_active(c->rev, EV_READ, 0);
}

void pl__conn_pause(pl__conn *c, unsigned ms)
{
    if (c->paused || c->closing)
        return;
    c->paused = 1;
    event_del(c->rev);
    if (!c->pev)
        c->pev = evtimer_new(pl__loop_base(), resume_cb, c);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(c->pev, &tv);
}

/* ==== input ==== */

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    pl__conn *c = arg;
    if (c->tls_state == TLS_HANDSHAKE) {
        drive_handshake(c);
        return;
    }
    /* Bounded: at most a few buffers per wake-up keeps one busy peer from
     * starving the others. */
    for (int rounds = 0; rounds < 4 && !c->closing && !c->paused; rounds++) {
        ssize_t n;
        if (c->tls_state == TLS_ON) {
            n = pl_tls_read(c->tls, rbuf, sizeof rbuf);
            if (n == PL_TLS_WANT)
                return;
        } else {
            n = read(c->fd, rbuf, sizeof rbuf);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
        }
        if (n <= 0) {
            if (n < 0)
                pl_debug("conn %s: read error: %s", c->peer,
                         c->tls_state == TLS_ON ? pl_tls_error(c->tls) : strerror(errno));
            kill_conn(c);
            return;
        }
        c->h->data(c->ud, rbuf, (size_t)n);
        if (c->tls_state != TLS_ON && (size_t)n < sizeof rbuf)
            return;
        if (c->tls_state == TLS_ON && !pl_tls_pending(c->tls) && (size_t)n < sizeof rbuf)
            return;
    }
    /* More may be waiting: come back on the next iteration. */
    if (!c->closing && !c->paused && !c->dead)
        event_active(c->rev, EV_READ, 0);
}

/* ==== output ==== */

/* Writes as much as possible. Returns 1 when the buffer is drained, 0 when
 * the socket is full, -1 on error. */
static int write_out(pl__conn *c)
{
    size_t off = 0;
    int rc = 1;
    while (off < c->out.len) {
        ssize_t n;
        if (c->tls_state == TLS_ON) {
            size_t len = c->tls_retry ? c->tls_retry : c->out.len - off;
            if (len > 16384)
                len = 16384;
            n = pl_tls_write(c->tls, c->out.data + off, len);
            if (n == PL_TLS_WANT) {
                c->tls_retry = len;
                rc = 0;
                break;
            }
            c->tls_retry = 0;
        } else {
            n = write(c->fd, c->out.data + off, c->out.len - off);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                rc = 0;
                break;
            }
        }
        if (n < 0) {
            rc = -1;
            break;
        }
        off += (size_t)n;
    }
    pl_buf_consume(&c->out, off);
    if (rc == 1 && c->out.cap > 4096)
        pl_buf_free(&c->out);
    return rc;
}

static void finalize(pl__conn *c)
{
    if (c->tls) {
        if (c->tls_state == TLS_ON && !c->dead)
            pl_tls_bye(c->tls);
        pl_tls_free(c->tls);
    }
    event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->pev)
        event_free(c->pev);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    pl_buf_free(&c->out);
    nconns--;
    if (c->h->closed)
        c->h->closed(c->ud);
    pl_free(c->tls_name);
    pl_free(c->peer);
    pl_free(c);
}

/* Flushes one connection; returns 1 if it was finalised. */
static int flush_one(pl__conn *c)
{
    if (c->dead) {
        finalize(c);
        return 1;
    }
    if (c->connecting) {
        /* nothing can be written yet; a close gives up the attempt */
        if (!c->closing)
            return 0;
        finalize(c);
        return 1;
    }
    if (c->tls_state == TLS_HANDSHAKE) {
        if (!c->closing)
            return 0;
        finalize(c);
        return 1;
    }
    if (c->out.len && !c->want_write) {
        int rc = write_out(c);
        if (rc < 0) {
            finalize(c);
            return 1;
        }
        if (rc == 0) {
            c->want_write = 1;
            struct timeval tv = { c->closing ? 5 : 60, 0 };
            wait_writable(c, &tv);
            return 0;
        }
    }
    if (c->out.len)
        return 0;
    if (c->tls_state == TLS_PENDING && !c->closing) {
        start_handshake(c);
        return 0;
    }
    if (c->closing) {
        finalize(c);
        return 1;
    }
    return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    pl__conn *c = arg;
    c->want_write = 0;
    if (what & EV_TIMEOUT) {
        pl_log(PL_LOG_INFO, "conn %s: write timed out", c->peer);
        kill_conn(c);
        return;
    }
    if (c->connecting) {
        connect_done(c);
        return;
    }
    if (c->tls_state == TLS_HANDSHAKE) {
        drive_handshake(c);
        return;
    }
    schedule(c);
}

void pl__conn_flush_all(void)
{
    /* Finalising a connection can queue output on others (an unavailable
     * presence, say): loop until the list stays empty, boundedly. */
    for (int round = 0; round < 16 && flush_head; round++) {
        pl__conn *list = flush_head;
        flush_head = NULL;
        while (list) {
            pl__conn *c = list;
            list = c->next_flush;
            c->queued = 0;
            flush_one(c);
        }
    }
}
