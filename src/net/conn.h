/* net/conn.h: one non-blocking stream connection, plain or TLS. Output is
 * appended to a buffer and written once per loop iteration (all the
 * stanzas queued for a connection in one iteration go out in one write).
 * Input is read into a shared buffer and handed to the owner at once, so
 * an idle connection holds no read buffer. Closing is asynchronous: the
 * owner's `closed` callback runs later from the loop, after which the
 * connection is gone. */
#ifndef PL_NET_CONN_H
#define PL_NET_CONN_H

#include <stddef.h>
#include <parley/buf.h>
#include "net/tls.h"

typedef struct pl__conn pl__conn;

typedef struct pl__conn_handler {
    /* Plaintext bytes arrived (decrypted if TLS). */
    void (*data)(void *ud, const char *buf, size_t len);
    /* A TLS handshake finished (after pl__conn_starttls/pl__conn_tls_accept). */
    void (*tls_ready)(void *ud);
    /* The connection is closed and about to be freed: release ud. */
    void (*closed)(void *ud);
    /* An outgoing connection (pl__conn_connect) was established (err 0)
     * or could not be (err is an errno value; `closed` follows). Runs at
     * most once, never for accepted connections. May be NULL. */
    void (*connected)(void *ud, int err);
} pl__conn_handler;

/* Takes ownership of the connected non-blocking fd. peer is "ip:port". */
pl__conn *pl__conn_new(int fd, const char *peer, const pl__conn_handler *h, void *ud);

/* Starts a non-blocking TCP connection to ip (numeric IPv4 or IPv6) and
 * port. Output written before it is established is kept and sent once it
 * is; h->connected reports the outcome. Returns NULL with errno set if the
 * attempt fails at once (then no callback runs). */
pl__conn *pl__conn_connect(const char *ip, int port, const pl__conn_handler *h, void *ud);

/* The output buffer: append to it, then call pl__conn_queued(). */
pl_buf *pl__conn_out(pl__conn *c);
void pl__conn_queued(pl__conn *c);
/* Appends and queues in one call. */
void pl__conn_write(pl__conn *c, const char *data, size_t len);

/* After what is queued has been written in plaintext, starts a server TLS
 * handshake (STARTTLS). Reading pauses until then. */
void pl__conn_starttls(pl__conn *c, pl_tls_creds *def, pl_tls_sni_fn sni, void *ud);

/* Starts a server TLS handshake right away (direct TLS). */
void pl__conn_tls_accept(pl__conn *c, pl_tls_creds *def, pl_tls_sni_fn sni, void *ud);

/* After what is queued has been written in plaintext (and, for an
 * outgoing connection, once it is established), starts a client TLS
 * handshake sending server_name as SNI and offering creds (may be NULL)
 * as client certificate. Reading pauses until then; tls_ready follows.
 * The peer is not verified here: see pl_tls_verify_peer. */
void pl__conn_tls_connect(pl__conn *c, const char *server_name, pl_tls_creds *creds);

/* Asks the peer for a client certificate in the next server handshake
 * (call before pl__conn_starttls or pl__conn_tls_accept). */
void pl__conn_request_client_cert(pl__conn *c);

/* Writes what is queued (up to a 5 s grace period), then closes. No data
 * callbacks run after this call. */
void pl__conn_close(pl__conn *c);

/* Releases the output buffer and the write event if nothing is queued
 * (idle connections). */
void pl__conn_trim(pl__conn *c);

/* Stops reading for ms milliseconds (input rate limiting). */
void pl__conn_pause(pl__conn *c, unsigned ms);

int pl__conn_is_tls(const pl__conn *c);
pl_tls *pl__conn_tls(pl__conn *c);
const char *pl__conn_peer(const pl__conn *c);
/* The peer's address without the port, for per-address limits. */
const char *pl__conn_peer_addr(const pl__conn *c);

/* Writes every connection's queued output and completes pending closes.
 * Called by the loop once per iteration. */
void pl__conn_flush_all(void);

/* Number of open connections. */
int pl__conn_count_all(void);

#endif
