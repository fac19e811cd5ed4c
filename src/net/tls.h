/* net/tls.h: TLS with GnuTLS for client and server connections:
 * credentials per virtual host, SNI, TLS 1.2 or later, and the channel
 * binding data SCRAM-PLUS needs. The transport is a non-blocking socket;
 * every call returns PL_AGAIN-style results instead of blocking. */
#ifndef PL_NET_TLS_H
#define PL_NET_TLS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct pl_tls_creds pl_tls_creds;  /* certificate + key */
typedef struct pl_tls pl_tls;              /* one TLS session */

/* Global initialisation; priority is a GnuTLS priority string (NULL:
 * "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"), ca_file the trust store
 * for verifying peers (NULL: the system store). 0 or -1. */
int pl_tls_global_init(const char *priority, const char *ca_file, char *err, size_t errlen);
void pl_tls_global_deinit(void);

/* Loads a PEM certificate chain and key. NULL on error (message in err). */
pl_tls_creds *pl_tls_creds_load(const char *cert_file, const char *key_file,
                                char *err, size_t errlen);
void pl_tls_creds_free(pl_tls_creds *c);

/* Chooses credentials for an SNI name (NULL if none matches: the
 * session's default credentials are used). */
typedef pl_tls_creds *(*pl_tls_sni_fn)(const char *server_name, void *ud);

/* A server-side session on fd with default credentials def. */
pl_tls *pl_tls_server_new(int fd, pl_tls_creds *def, pl_tls_sni_fn sni, void *ud);

/* A client-side session on fd for server_name (sent as SNI and checked
 * against the certificate by pl_tls_verify_peer). creds may be NULL or
 * the local host's credentials (offered as a client certificate). */
pl_tls *pl_tls_client_new(int fd, const char *server_name, pl_tls_creds *creds);

void pl_tls_free(pl_tls *t);

/* Drives the handshake. Returns 0 when done, PL_AGAIN (1) when it needs
 * more I/O (see pl_tls_want_write), or -1 on failure (pl_tls_error says
 * why). Once it is done, what only another handshake would read is
 * released: sessions are never renegotiated. */
int pl_tls_handshake(pl_tls *t);

/* 1 if the last PL_AGAIN was waiting to write rather than read. */
int pl_tls_want_write(const pl_tls *t);

/* Reads decrypted bytes: >0 bytes, 0 on orderly close, PL_AGAIN-style -2
 * when no data is ready (wait for readability), -1 on error. */
#define PL_TLS_WANT (-2)
ssize_t pl_tls_read(pl_tls *t, void *buf, size_t len);

/* Writes: >0 bytes written, PL_TLS_WANT if the socket is full (retry
 * later with the same data), -1 on error. */
ssize_t pl_tls_write(pl_tls *t, const void *buf, size_t len);

/* Decrypted bytes already buffered inside GnuTLS. */
size_t pl_tls_pending(pl_tls *t);

/* Sends close_notify (best effort, never blocks). */
void pl_tls_bye(pl_tls *t);

const char *pl_tls_error(const pl_tls *t);

/* "TLS1.3", "TLS1.2". */
const char *pl_tls_version(const pl_tls *t);
/* The cipher suite name. */
const char *pl_tls_cipher(const pl_tls *t);

/* The SNI name the client sent (server side), or NULL. */
const char *pl_tls_sni(const pl_tls *t);

/* Channel binding data of type "tls-exporter" (TLS 1.3 only, RFC 9266),
 * "tls-server-end-point" (RFC 5929, hash of our certificate) or
 * "tls-unique" (TLS 1.2 only). Writes up to *len bytes into out and sets
 * *len. Returns 0, or -1 if the type is unavailable on this session. */
int pl_tls_channel_binding(pl_tls *t, const char *type, unsigned char *out, size_t *len);

/* Verifies the peer's certificate against the trust store for name
 * (RFC 6125 matching of DNS-ID / SRV-ID / CN fallback). 1 valid, 0 not
 * (reason in pl_tls_error), -1 no certificate presented. */
int pl_tls_verify_peer(pl_tls *t, const char *name);

/* Asks the client for a certificate on server sessions (for SASL
 * EXTERNAL between servers); call before the handshake. */
void pl_tls_request_client_cert(pl_tls *t);

#endif
