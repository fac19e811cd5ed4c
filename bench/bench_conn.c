/* bench/bench_conn.c: the client connections of pl-bench. A small state
 * machine per connection drives connect, STARTTLS, SASL and binding on
 * libevent; expat splits what the server sends into top-level elements. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <gnutls/crypto.h>
#include <parley/base.h>
#include <parley/buf.h>
#include "net/tls.h"
#include "bench_conn.h"
#include "bench_scram.h"
#include "bench_stats.h"

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define READ_SIZE 16384
#define TLS_CHUNK 16384
#define READS_PER_EVENT 8

/* Expat 2.6 (and backports) may hold back an incomplete token until much
 * more data arrives; a latency probe must not wait for that. */
#pragma weak XML_SetReparseDeferralEnabled
XML_Bool XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled);

enum action { ACT_NONE, ACT_STARTTLS, ACT_RESTART, ACT_FAIL };

static void fail(pl_bench_conn *c, const char *fmt, ...) PL_PRINTF(2, 3);
static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

/* ==== set-up ==== */

/* Process-wide TLS set-up: the default priorities, no verification of
 * the server (every server here uses the same self-signed certificate). */
int pl_bench_tls_init(void)
{
    char err[256];
    if (pl_tls_global_init(NULL, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "pl-bench: TLS: %s\n", err);
        return -1;
    }
    return 0;
}

/* Fills in a connection that is not connected yet. */
void pl_bench_conn_init(pl_bench_conn *c, const pl_bench_cfg *cfg, const pl_bench_conn_cb *cb,
                        const char *user, int index, void *ud)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->cb = cb;
    c->fd = -1;
    c->index = index;
    c->ud = ud;
    snprintf(c->user, sizeof c->user, "%s", user);
}

/* ==== the XML side ==== */

static const char *local_name(const char *name)
{
    const char *colon = strrchr(name, ':');
    return colon ? colon + 1 : name;
}

static void copy_attr(char *dst, size_t size, const char **atts, const char *want)
{
    dst[0] = '\0';
    for (int i = 0; atts[i]; i += 2)
        if (strcmp(atts[i], want) == 0) {
            snprintf(dst, size, "%s", atts[i + 1]);
            return;
        }
}

static void on_start(void *ud, const char *name, const char **atts)
{
    pl_bench_conn *c = ud;
    c->depth++;
    const char *ln = local_name(name);
    if (c->depth == 2) {
        snprintf(c->el_name, sizeof c->el_name, "%s", ln);
        copy_attr(c->el_type, sizeof c->el_type, atts, "type");
        copy_attr(c->el_id, sizeof c->el_id, atts, "id");
        copy_attr(c->el_from, sizeof c->el_from, atts, "from");
        c->el_child[0] = '\0';
        c->el_body = c->el_items = c->el_both = 0;
        pl_buf_reset(&c->text);
        c->cap_depth = 2;
        return;
    }
    if (c->depth == 3 && !c->el_child[0])
        snprintf(c->el_child, sizeof c->el_child, "%s", ln);
    if (c->depth == 3 && strcmp(ln, "body") == 0 && !c->el_body) {
        c->el_body = 1;
        pl_buf_reset(&c->text);
        c->cap_depth = 3;
    } else if (c->depth == 4 && strcmp(ln, "jid") == 0) {
        pl_buf_reset(&c->text);
        c->cap_depth = 4;
    } else if (c->depth == 4 && strcmp(ln, "item") == 0) {
        char sub[16];
        c->el_items++;
        copy_attr(sub, sizeof sub, atts, "subscription");
        if (strcmp(sub, "both") == 0)
            c->el_both++;
    }
}

static void on_text(void *ud, const char *s, int len)
{
    pl_bench_conn *c = ud;
    if (c->depth == c->cap_depth && c->text.len < 65536)
        pl_buf_append(&c->text, s, (size_t)len);
}

static void stop_parser(pl_bench_conn *c, int action)
{
    c->action = action;
    XML_StopParser(c->xp, XML_FALSE);
}

static void handle_element(pl_bench_conn *c, const pl_bench_el *el);

static void on_end(void *ud, const char *name)
{
    pl_bench_conn *c = ud;
    if (c->depth == 3 && c->cap_depth == 3)
        c->cap_depth = -1;          /* the body is complete */
    else if (c->depth == 4 && c->cap_depth == 4)
        c->cap_depth = -1;
    if (c->depth == 2) {
        pl_buf_reserve(&c->text, 1);
        c->text.data[c->text.len] = '\0';
        pl_bench_el el = {
            .name = c->el_name, .type = c->el_type, .id = c->el_id, .from = c->el_from,
            .text = c->text.data, .text_len = c->text.len, .child = c->el_child,
            .has_body = c->el_body, .items = c->el_items, .items_both = c->el_both,
        };
        handle_element(c, &el);
    }
    c->depth--;
    if (c->depth == 0 && c->action == ACT_NONE) {
        snprintf(c->why, sizeof c->why, "the server closed the stream");
        stop_parser(c, ACT_FAIL);
    }
}

static void new_parser(pl_bench_conn *c)
{
    if (c->xp)
        XML_ParserReset(c->xp, "UTF-8");
    else
        c->xp = XML_ParserCreate("UTF-8");
    /* a salt of our own spares expat a getrandom call per parser */
    unsigned long salt;
    gnutls_rnd(GNUTLS_RND_NONCE, &salt, sizeof salt);
    XML_SetHashSalt(c->xp, salt | 1);
    XML_SetUserData(c->xp, c);
    XML_SetElementHandler(c->xp, on_start, on_end);
    XML_SetCharacterDataHandler(c->xp, on_text);
    if (XML_SetReparseDeferralEnabled)
        XML_SetReparseDeferralEnabled(c->xp, XML_FALSE);
    c->depth = 0;
    c->cap_depth = -1;
    c->action = ACT_NONE;
}

/* ==== output ==== */

static void schedule_write(pl_bench_conn *c)
{
    if (c->w_scheduled || c->state == PL_BC_CLOSED)
        return;
    c->w_scheduled = 1;
    event_active(c->wev, EV_WRITE, 0);
}

/* Queues bytes for the next write. */
void pl_bench_conn_send(pl_bench_conn *c, const char *data, size_t len)
{
    if (c->state == PL_BC_CLOSED)
        return;
    pl_buf_append(&c->out, data, len);
    schedule_write(c);
}

/* Queues a string. */
void pl_bench_conn_sendstr(pl_bench_conn *c, const char *s)
{
    pl_bench_conn_send(c, s, strlen(s));
}

/* Writes what is queued; waits for writability if the socket is full.
 * Returns -1 if the connection failed. */
static int flush(pl_bench_conn *c)
{
    for (int guard = 0; c->out.len > 0 && guard < 1024; guard++) {
        ssize_t n;
        if (c->tls) {
            size_t len = c->tls_wlen ? c->tls_wlen
                                     : (c->out.len < TLS_CHUNK ? c->out.len : TLS_CHUNK);
            n = pl_tls_write(c->tls, c->out.data, len);
            if (n == PL_TLS_WANT) {
                c->tls_wlen = len;
                break;
            }
            c->tls_wlen = 0;
        } else {
            n = write(c->fd, c->out.data, c->out.len);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
        }
        if (n <= 0) {
            fail(c, "write: %s", c->tls ? pl_tls_error(c->tls) : strerror(errno));
            return -1;
        }
        pl_buf_consume(&c->out, (size_t)n);
    }
    if (c->out.len > 0) {
        c->w_scheduled = 1;
        event_add(c->wev, NULL);
    }
    return 0;
}

/* ==== the XMPP steps ==== */

static void send_header(pl_bench_conn *c)
{
    char hdr[512];
    snprintf(hdr, sizeof hdr,
             "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0' "
             "xml:lang='en'>", c->cfg->domain);
    pl_bench_conn_sendstr(c, hdr);
}

static void start_auth(pl_bench_conn *c)
{
    pl_buf b = PL_BUF_INIT;
    char *payload;
    if (c->cfg->scram) {
        c->scram = pl_bench_scram_new(c->user);
        payload = pl_bench_scram_first_b64(c->scram);
    } else {
        size_t ul = strlen(c->user), pl = strlen(c->cfg->password);
        char *msg = pl_malloc(ul + pl + 2);
        msg[0] = '\0';
        memcpy(msg + 1, c->user, ul);
        msg[1 + ul] = '\0';
        memcpy(msg + 2 + ul, c->cfg->password, pl);
        payload = pl_bench_b64(msg, ul + pl + 2);
        pl_free(msg);
    }
    pl_buf_printf(&b, "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>",
                  c->cfg->scram ? "SCRAM-SHA-1" : "PLAIN", payload);
    pl_bench_conn_send(c, b.data, b.len);
    pl_buf_free(&b);
    pl_free(payload);
    c->state = PL_BC_AUTH;
}

static void on_auth_element(pl_bench_conn *c, const pl_bench_el *el)
{
    if (strcmp(el->name, "challenge") == 0 && c->scram) {
        char *resp = pl_bench_scram_final_b64(c->scram, c->cfg->password, el->text,
                                              el->text_len);
        if (!resp) {
            fail(c, "malformed SCRAM challenge");
            return;
        }
        pl_buf b = PL_BUF_INIT;
        pl_buf_printf(&b, "<response xmlns='" NS_SASL "'>%s</response>", resp);
        pl_bench_conn_send(c, b.data, b.len);
        pl_buf_free(&b);
        pl_free(resp);
        return;
    }
    if (strcmp(el->name, "success") == 0) {
        if (c->scram && !pl_bench_scram_verify_b64(c->scram, el->text, el->text_len)) {
            fail(c, "the server's SCRAM signature does not verify");
            return;
        }
        pl_bench_scram_free(c->scram);
        c->scram = NULL;
        c->state = PL_BC_AUTH_FEATURES;
        stop_parser(c, ACT_RESTART);
        return;
    }
    fail(c, "authentication failed: <%s><%s/>", el->name, el->child);
}

static void answer_iq(pl_bench_conn *c, const pl_bench_el *el)
{
    pl_buf b = PL_BUF_INIT;
    pl_buf_printf(&b, "<iq type='result' id='%s'", el->id);
    if (el->from[0])
        pl_buf_printf(&b, " to='%s'", el->from);
    pl_buf_puts(&b, "/>");
    pl_bench_conn_send(c, b.data, b.len);
    pl_buf_free(&b);
}

/* Requests resource binding, followed at once by bind_extra (pipelined
 * initial presence) if the scenario set one. */
static void send_bind(pl_bench_conn *c)
{
    pl_bench_conn_sendstr(c, "<iq type='set' id='bind_1'><bind "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                          "<resource>bench</resource></bind></iq>");
    if (c->bind_extra)
        pl_bench_conn_sendstr(c, c->bind_extra);
    c->state = PL_BC_BIND;
}

static void handle_element(pl_bench_conn *c, const pl_bench_el *el)
{
    if (c->action != ACT_NONE)
        return;
    /* pipelining: the request after the header went out before the
     * features arrived; they need no answer */
    if (c->skip_features && strcmp(el->name, "features") == 0) {
        c->skip_features = 0;
        return;
    }
    if (strcmp(el->name, "error") == 0 && c->state != PL_BC_ONLINE) {
        fail(c, "stream error <%s/> in state %d", el->child, (int)c->state);
        return;
    }
    switch (c->state) {
    case PL_BC_FEATURES:
        if (c->cfg->tls) {
            pl_bench_conn_sendstr(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
            c->state = PL_BC_PROCEED;
        } else {
            start_auth(c);
        }
        return;
    case PL_BC_PROCEED:
        if (strcmp(el->name, "proceed") != 0) {
            fail(c, "STARTTLS refused: <%s/>", el->name);
            return;
        }
        stop_parser(c, ACT_STARTTLS);
        return;
    case PL_BC_TLS_FEATURES:
        start_auth(c);
        return;
    case PL_BC_AUTH:
        on_auth_element(c, el);
        return;
    case PL_BC_AUTH_FEATURES:
        send_bind(c);
        return;
    case PL_BC_BIND:
        if (strcmp(el->name, "iq") != 0 || strcmp(el->id, "bind_1") != 0)
            return;
        if (strcmp(el->type, "result") != 0) {
            fail(c, "bind failed: <%s/>", el->child);
            return;
        }
        c->state = PL_BC_ONLINE;
        c->t_online = pl_bench_now();
        c->cb->online(c);
        return;
    case PL_BC_ONLINE:
        if (strcmp(el->name, "iq") == 0
            && (strcmp(el->type, "get") == 0 || strcmp(el->type, "set") == 0))
            answer_iq(c, el);
        c->cb->stanza(c, el);
        return;
    default:
        return;
    }
}

/* ==== TLS ==== */

static void drive_handshake(pl_bench_conn *c)
{
    int rc = pl_tls_handshake(c->tls);
    if (rc < 0) {
        fail(c, "TLS handshake: %s", pl_tls_error(c->tls));
        return;
    }
    if (rc == PL_AGAIN) {
        if (pl_tls_want_write(c->tls))
            event_add(c->wev, NULL);
        return;
    }
    new_parser(c);
    c->state = PL_BC_TLS_FEATURES;
    send_header(c);
    if (c->cfg->pipeline) {
        c->skip_features = 1;
        start_auth(c);
    }
}

static void start_tls(pl_bench_conn *c)
{
    c->tls = pl_tls_client_new(c->fd, c->cfg->domain, NULL);
    if (!c->tls) {
        fail(c, "cannot create a TLS session");
        return;
    }
    c->state = PL_BC_HANDSHAKE;
    drive_handshake(c);
}

/* ==== input ==== */

static void after_parse(pl_bench_conn *c)
{
    int action = c->action;
    c->action = ACT_NONE;
    if (action == ACT_STARTTLS) {
        start_tls(c);
    } else if (action == ACT_RESTART) {
        new_parser(c);
        send_header(c);
        if (c->cfg->pipeline) {
            c->skip_features = 1;
            send_bind(c);
        }
    } else if (action == ACT_FAIL) {
        char why[sizeof c->why];
        snprintf(why, sizeof why, "%s", c->why);
        pl_bench_conn_close(c);
        c->failed = 1;
        c->cb->failed(c, why);
    }
}

static void feed(pl_bench_conn *c, const char *buf, size_t n)
{
    c->in_parse = 1;
    enum XML_Status rc = XML_Parse(c->xp, buf, (int)n, 0);
    c->in_parse = 0;
    if (rc == XML_STATUS_ERROR) {
        if (XML_GetErrorCode(c->xp) != XML_ERROR_ABORTED) {
            snprintf(c->why, sizeof c->why, "XML error: %s",
                     XML_ErrorString(XML_GetErrorCode(c->xp)));
            c->action = ACT_FAIL;
        }
        after_parse(c);
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    pl_bench_conn *c = arg;
    if (c->state == PL_BC_HANDSHAKE) {
        drive_handshake(c);
        return;
    }
    static char buf[READ_SIZE];
    for (int i = 0; i < READS_PER_EVENT && c->state != PL_BC_CLOSED; i++) {
        ssize_t n;
        if (c->tls) {
            n = pl_tls_read(c->tls, buf, sizeof buf);
            if (n == PL_TLS_WANT)
                return;
        } else {
            n = read(c->fd, buf, sizeof buf);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        }
        if (n == 0) {
            fail(c, "the server closed the connection");
            return;
        }
        if (n < 0) {
            fail(c, "read: %s", c->tls ? pl_tls_error(c->tls) : strerror(errno));
            return;
        }
        feed(c, buf, (size_t)n);
        if (c->state == PL_BC_HANDSHAKE)
            return;
        if (!c->tls && (size_t)n < sizeof buf)
            return;
    }
}

/* ==== connecting ==== */

static void connected(pl_bench_conn *c)
{
    event_add(c->rev, NULL);
    new_parser(c);
    if (c->cfg->raw) {
        char hello[32];
        snprintf(hello, sizeof hello, "PAIR %d\n", c->pair_id);
        pl_bench_conn_sendstr(c, hello);
        feed(c, "<stream>", 8);
        c->state = PL_BC_ONLINE;
        c->t_online = pl_bench_now();
        c->cb->online(c);
        return;
    }
    c->state = PL_BC_FEATURES;
    send_header(c);
    if (c->cfg->pipeline && !c->cfg->tls) {
        c->skip_features = 1;
        start_auth(c);
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    pl_bench_conn *c = arg;
    if (c->state == PL_BC_HANDSHAKE) {
        drive_handshake(c);
        return;
    }
    c->w_scheduled = 0;
    if (c->state != PL_BC_CLOSED)
        flush(c);
}

static int open_socket(pl_bench_conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pl_bench_cfg *cfg = (pl_bench_cfg *)c->cfg;
    if (cfg->n_src > 0) {
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(cfg->src_addrs[cfg->src_next++ % (unsigned)cfg->n_src]);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0)
            return -1;
    }
    if (connect(c->fd, (const struct sockaddr *)&cfg->server, sizeof cfg->server) != 0
        && errno != EINPROGRESS)
        return -1;
    return 0;
}

/* Creates the socket, binds it to the next source address and starts
 * the non-blocking connect. */
int pl_bench_conn_start(pl_bench_conn *c)
{
    c->t_start = pl_bench_now();
    c->state = PL_BC_CONNECTING;
    if (open_socket(c) != 0) {
        int e = errno;
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->state = PL_BC_CLOSED;
        c->failed = 1;
        char why[96];
        snprintf(why, sizeof why, "socket: %s", strerror(e));
        c->cb->failed(c, why);
        return -1;
    }
    c->rev = event_new(c->cfg->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(c->cfg->base, c->fd, EV_WRITE, on_write, c);
    /* Loopback connects complete at once, so the first bytes are queued
     * now; a write that finds the connect still in progress waits for
     * writability (flush), and a failed connect fails that write. */
    connected(c);
    return 0;
}

/* ==== closing ==== */

/* Closes everything; the struct keeps its timestamps and user. */
void pl_bench_conn_close(pl_bench_conn *c)
{
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    c->rev = c->wev = NULL;
    if (c->tls)
        pl_tls_free(c->tls);
    c->tls = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->xp)
        XML_ParserFree(c->xp);
    c->xp = NULL;
    pl_bench_scram_free(c->scram);
    c->scram = NULL;
    pl_buf_free(&c->text);
    pl_buf_free(&c->out);
    c->state = PL_BC_CLOSED;
}

/* Records why and closes: at once outside the parser, after XML_Parse
 * returns inside it. */
static void fail(pl_bench_conn *c, const char *fmt, ...)
{
    if (c->state == PL_BC_CLOSED)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    if (c->in_parse) {
        stop_parser(c, ACT_FAIL);
        return;
    }
    c->action = ACT_FAIL;
    after_parse(c);
}
