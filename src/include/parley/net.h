/* parley/net.h: network services for modules that run their own streams
 * (federation, components). A second public header next to module.h:
 * connections (accepted or outgoing) with STARTTLS, direct TLS and client
 * certificates; read access to their TLS sessions and RFC 6125 peer
 * verification; the incremental XMPP stream parser; the listeners of the
 * server-to-server roles; asynchronous DNS (SRV and addresses); and the
 * server settings streams obey. Everything runs on the server's event
 * loop and never blocks.
 *
 * Objects made here belong to the module that made them. It releases them
 * in its unload (pl_conn_discard, pl_resolver_free, pl_xml_stream_free);
 * if it does not, none of their callbacks runs once the module is
 * unloaded, and the core closes such a connection on its next event.
 * Listeners are removed when their module unloads. */
#ifndef PARLEY_NET_H
#define PARLEY_NET_H

#include <stddef.h>
#include <sys/types.h>
#include <parley/module.h>

/* ==== TLS sessions ==== */

typedef struct pl_tls pl_tls;

/* "TLS1.3", "TLS1.2". */
const char *pl_tls_version(const pl_tls *t);
/* The cipher suite name. */
const char *pl_tls_cipher(const pl_tls *t);
/* The SNI name the client sent (server side), or NULL. */
const char *pl_tls_sni(const pl_tls *t);
const char *pl_tls_error(const pl_tls *t);
/* Verifies the peer's certificate chain against the trust store (the
 * configured tls.ca_file or the system store) and name (RFC 6125: DNS-ID,
 * SRV-ID _xmpp-server./_xmpp-client., xmppAddr, CN fallback). 1 valid,
 * 0 not (reason in pl_tls_error), -1 no certificate presented. */
int pl_tls_verify_peer(pl_tls *t, const char *name);

/* ==== connections ==== */

typedef struct pl_conn pl_conn;

typedef struct pl_conn_handler {
    /* Plaintext bytes arrived (decrypted if TLS). */
    void (*data)(void *ud, const char *buf, size_t len);
    /* A TLS handshake finished. */
    void (*tls_ready)(void *ud);
    /* The connection is gone (peer closed, error, or after pl_conn_close);
     * the pl_conn is freed after this returns. Runs exactly once. */
    void (*closed)(void *ud);
    /* pl_conn_connect: established (err 0) or failed (err is an errno
     * value; `closed` follows). May be NULL. */
    void (*connected)(void *ud, int err);
} pl_conn_handler;

/* Takes over an accepted, connected non-blocking fd (from a pl_accept_fn);
 * peer is "ip:port". h must stay valid for the connection's life. */
pl_conn *pl_conn_new(pl_module *m, int fd, const char *peer, const pl_conn_handler *h,
                     void *ud);

/* Starts connecting to ip (numeric IPv4 or IPv6) and port. Output written
 * meanwhile is sent once connected. NULL with errno set if the attempt
 * fails at once (no callback runs then). */
pl_conn *pl_conn_connect(pl_module *m, const char *ip, int port, const pl_conn_handler *h,
                         void *ud);

/* Output: append to the buffer then call pl_conn_queued, or pl_conn_write.
 * Everything queued in one loop iteration goes out in one write. */
pl_buf *pl_conn_out(pl_conn *c);
void pl_conn_queued(pl_conn *c);
void pl_conn_write(pl_conn *c, const char *data, size_t len);

/* Server TLS after what is queued has been written (STARTTLS, after
 * <proceed/>), presenting the certificate of host (NULL: the first host),
 * or of the host named by the client's SNI. With request_client_cert the
 * peer is asked for a certificate (SASL EXTERNAL between servers). */
void pl_conn_starttls(pl_conn *c, pl_host *host, int request_client_cert);
/* The same at once, for a direct TLS listener (XEP-0368). */
void pl_conn_tls_accept(pl_conn *c, pl_host *host, int request_client_cert);
/* Client TLS once queued output is written (and the connection is
 * established): SNI server_name, local's certificate offered as client
 * certificate (local may be NULL). Verify the peer in tls_ready with
 * pl_tls_verify_peer. */
void pl_conn_tls_connect(pl_conn *c, const char *server_name, pl_host *local);

/* Writes what is queued, then closes; `closed` runs later. No data
 * callbacks run after this call. */
void pl_conn_close(pl_conn *c);
/* As pl_conn_close, but no callback at all runs any more (not even
 * `closed`): for a module's unload, or an owner that has already let go
 * of its state. */
void pl_conn_discard(pl_conn *c);

int pl_conn_is_tls(const pl_conn *c);
/* The TLS session once the handshake is done, else NULL. */
pl_tls *pl_conn_tls(pl_conn *c);
/* "ip:port" of the peer. */
const char *pl_conn_peer(const pl_conn *c);

/* ==== listeners ==== */

enum { PL_NET_S2S = 2, PL_NET_S2S_TLS = 3 };  /* `listen s2s` / `listen s2s_tls` */

/* fd is accepted, connected and non-blocking: pass it to pl_conn_new (or
 * close it). role is PL_NET_S2S or PL_NET_S2S_TLS. */
typedef void (*pl_accept_fn)(void *ud, int fd, const char *peer, int role);

/* Makes fn the handler of the config's listeners of role. PL_EEXIST if
 * another loaded module has the role, PL_EINVAL for a role modules cannot
 * take. Removed by pl_unlisten or when the module unloads. */
int pl_listen(pl_module *m, int role, pl_accept_fn fn, void *ud);
void pl_unlisten(pl_module *m, int role);
/* Number of `listen` lines of role in the config in force. */
int pl_listen_count(int role);

/* ==== XML streams (see xml/stream.h) ==== */

typedef struct pl_xml_stream pl_xml_stream;

#ifndef PL_XML_STREAM_H
typedef struct pl_xml_stream_cb {
    /* The stream header: ns and name of the element, the default
     * namespace declared on it (NULL if none), and its attributes. */
    void (*stream_open)(void *ud, const char *ns, const char *name,
                        const char *content_ns, const pl_attr *attrs);
    /* A complete top-level element; the callee owns the reference. */
    void (*stanza)(void *ud, pl_stanza *st);
    /* </stream:stream> */
    void (*stream_close)(void *ud);
    /* A stream-level error (condition of RFC 6120 4.9.3); no callbacks
     * follow. */
    void (*error)(void *ud, const char *condition, const char *text);
} pl_xml_stream_cb;
#endif

/* A parser; content_ns PL_NS_SERVER stores jabber:server stanzas as
 * PL_NS_CLIENT, as the router expects. max_stanza 0: no limit. */
pl_xml_stream *pl_xml_stream_new(const pl_xml_stream_cb *cb, void *ud,
                                 const char *content_ns, size_t max_stanza);
/* Not from inside one of its callbacks. */
void pl_xml_stream_free(pl_xml_stream *xs);
int pl_xml_stream_feed(pl_xml_stream *xs, const char *data, size_t len);
/* A stream restart (after STARTTLS or SASL); discard_rest drops what
 * follows in the current feed (STARTTLS). */
void pl_xml_stream_restart(pl_xml_stream *xs, int discard_rest);
void pl_xml_stream_trim(pl_xml_stream *xs);

/* ==== DNS ==== */

typedef struct pl_resolver pl_resolver;
typedef struct pl_resolve_query pl_resolve_query;

#ifndef PL_NET_RESOLVE_H
typedef struct pl_resolve_target {
    const char *host;
    int port;
    int priority;
    int weight;
    int direct_tls;   /* from an _xmpps-* record: TLS from the first byte */
} pl_resolve_target;
#endif

/* status: PL_OK, PL_ENOENT (no such name / records, or the service is
 * decidedly not offered), PL_EUNAVAIL (timeout, server failure). */
typedef void (*pl_resolve_srv_cb)(int status, const pl_resolve_target *targets, int n,
                                  void *ud);
typedef void (*pl_resolve_addr_cb)(int status, const char *const *addrs, int n, void *ud);

/* A resolver for module m. servers: "ip[:port],[ipv6]:port,..." (NULL or
 * "": /etc/resolv.conf); timeout_ms before each retry (0: 2000). NULL on
 * error with err set. */
pl_resolver *pl_resolver_new(pl_module *m, const char *servers, unsigned timeout_ms,
                             char *err, size_t errlen);
/* Cancels pending queries (no callbacks). Not from inside a callback. */
void pl_resolver_free(pl_resolver *r);
/* SRV lookup of _<service>._tcp.<domain> (and _<tls_service>._tcp, marked
 * direct_tls), ordered by priority and RFC 2782 weight; without records,
 * the single target (domain, default_port). */
pl_resolve_query *pl_resolve_srv(pl_resolver *r, const char *domain, const char *service,
                                 const char *tls_service, int default_port,
                                 pl_resolve_srv_cb cb, void *ud);
/* IPv6 and IPv4 addresses of host, as numeric strings. */
pl_resolve_query *pl_resolve_addrs(pl_resolver *r, const char *host, pl_resolve_addr_cb cb,
                                   void *ud);
/* Its callback never runs. */
void pl_resolve_cancel(pl_resolve_query *q);

/* ==== server settings ==== */

typedef struct pl_net_settings {
    int s2s_require_tls;          /* tls { s2s_require } */
    long long max_stanza_size;    /* limits { max_stanza_size } */
    long long unauth_timeout;     /* seconds; limits { unauth_timeout } */
    long long s2s_idle_timeout;   /* seconds; limits { s2s_idle_timeout } */
} pl_net_settings;

/* The values of the config in force (they change on reload). */
void pl_net_settings_get(pl_net_settings *out);

/* Fills buf with len cryptographically random bytes. */
void pl_net_random(void *buf, size_t len);

#endif
