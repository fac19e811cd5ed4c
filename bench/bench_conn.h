/* bench/bench_conn.h: one client connection of pl-bench's load: TCP
 * connect (bound to a chosen source address), optional STARTTLS, SASL
 * PLAIN or SCRAM-SHA-1, resource binding, then whole top-level stanzas
 * handed to the scenario. In raw mode (against bench/relay) there is no
 * XMPP handshake at all. Stanzas are parsed with expat, without
 * namespace processing: the generator only needs names, a few attributes
 * and one text field. */
#ifndef PL_BENCH_CONN_H
#define PL_BENCH_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <expat.h>
#include <event2/event.h>
#include <parley/buf.h>

typedef struct pl_bench_conn pl_bench_conn;

/* What every connection of one process shares. */
typedef struct pl_bench_cfg {
    struct event_base *base;
    struct sockaddr_in server;
    uint32_t *src_addrs;       /* host order; NULL: let the kernel choose */
    int n_src;
    unsigned src_next;         /* round-robin position */
    const char *domain;
    const char *password;
    int tls;                   /* STARTTLS before authenticating */
    int scram;                 /* SCRAM-SHA-1 instead of PLAIN */
    int raw;                   /* no XMPP: "PAIR n\n" then bare stanzas */
    int pipeline;              /* send SASL after the header and binding after the
                                  restart without waiting for the features */
} pl_bench_cfg;

/* One top-level element received. Strings are never NULL ("" when the
 * attribute is absent) and live until the handler returns. */
typedef struct pl_bench_el {
    const char *name;          /* local name: message, presence, iq, ... */
    const char *type, *id, *from;
    const char *text;          /* <body/> of a message, <jid/> of a bind
                                * result, else the element's own text */
    size_t text_len;
    const char *child;         /* local name of the first child, or "" */
    int has_body;
    int items, items_both;     /* <item/>s of a roster result */
} pl_bench_el;

typedef struct pl_bench_conn_cb {
    void (*online)(pl_bench_conn *c);                        /* bound */
    void (*stanza)(pl_bench_conn *c, const pl_bench_el *el); /* once online */
    void (*failed)(pl_bench_conn *c, const char *why);       /* then closed */
} pl_bench_conn_cb;

enum pl_bench_state {
    PL_BC_NEW, PL_BC_CONNECTING, PL_BC_FEATURES, PL_BC_PROCEED, PL_BC_HANDSHAKE,
    PL_BC_TLS_FEATURES, PL_BC_AUTH, PL_BC_AUTH_FEATURES, PL_BC_BIND, PL_BC_ONLINE,
    PL_BC_CLOSED
};

struct pl_bench_conn {
    /* for the scenario */
    void *ud;
    int index;                 /* the scenario's own number */
    char user[64];             /* localpart */
    int pair_id;               /* raw mode: the relay pairs equal ids */
    uint64_t t_start, t_online;
    enum pl_bench_state state;
    int failed;
    /* private */
    const pl_bench_cfg *cfg;
    const pl_bench_conn_cb *cb;
    int fd;
    struct event *rev, *wev;
    int w_scheduled;
    struct pl_tls *tls;
    size_t tls_wlen;           /* length of a TLS write to retry, or 0 */
    XML_Parser xp;
    int depth, cap_depth;
    int in_parse;
    int action;                /* what to do once XML_Parse returns */
    int skip_features;         /* pipelining: the next <features/> needs no answer */
    const char *bind_extra;    /* sent right after the bind request, or NULL */
    char el_name[32], el_type[32], el_id[48], el_from[160], el_child[48];
    int el_body, el_items, el_both;
    pl_buf text;
    pl_buf out;
    struct pl_bench_scram *scram;
    char why[160];
};

/* Sets up a connection for user (localpart); nothing happens until
 * pl_bench_conn_start. cfg and cb must outlive it. */
void pl_bench_conn_init(pl_bench_conn *c, const pl_bench_cfg *cfg, const pl_bench_conn_cb *cb,
                        const char *user, int index, void *ud);

/* Starts connecting. Returns 0, or -1 if the socket could not even be
 * created (the failed callback has run then too). */
int pl_bench_conn_start(pl_bench_conn *c);

/* Queues bytes; they are written once the current callbacks return, so
 * what one event produces goes out in one write. */
void pl_bench_conn_send(pl_bench_conn *c, const char *data, size_t len);
void pl_bench_conn_sendstr(pl_bench_conn *c, const char *s);

/* Closes the socket and frees everything but the struct itself. */
void pl_bench_conn_close(pl_bench_conn *c);

/* Process-wide set-up of TLS (for --tls). 0 or -1. */
int pl_bench_tls_init(void);

#endif
