/* net/conn.c: non-blocking stream connections with optional TLS, batched
 * output and asynchronous close (see conn.h). */
#include <errno.h>
#include <string.h>
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
    c->wev = event_new(base, fd, EV_WRITE, on_write, c);
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

/* Marks the connection dead; the flush step frees it and tells the owner. */
static void kill_conn(pl__conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    c->closing = 1;
    event_del(c->rev);
    event_del(c->wev);
    schedule(c);
}

static void start_handshake(pl__conn *c);

static void drive_handshake(pl__conn *c)
{
    int rc = pl_tls_handshake(c->tls);
    if (rc == 0) {
        c->tls_state = TLS_ON;
        event_del(c->wev);
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
            event_add(c->wev, &tv);
        }
        return;
    }
    pl_log(PL_LOG_INFO, "conn %s: TLS handshake failed: %s", c->peer, pl_tls_error(c->tls));
    kill_conn(c);
}

static void start_handshake(pl__conn *c)
{
    c->tls = pl_tls_server_new(c->fd, c->tls_creds, c->tls_sni, c->tls_sni_ud);
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
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    pl__conn *c = arg;
    c->paused = 0;
    if (!c->closing)
        event_add(c->rev, NULL);
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
    event_free(c->wev);
    if (c->pev)
        event_free(c->pev);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    pl_buf_free(&c->out);
    nconns--;
    if (c->h->closed)
        c->h->closed(c->ud);
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
            event_add(c->wev, &tv);
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
