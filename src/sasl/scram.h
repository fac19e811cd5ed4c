/* sasl/scram.h: SCRAM (RFC 5802, RFC 7677) for SHA-1 and SHA-256, with
 * channel binding (RFC 5929, RFC 9266): key derivation for stored
 * credentials and the server side of the exchange. All cryptography,
 * random numbers and base64 come from nettle and GnuTLS. */
#ifndef PL_SASL_SCRAM_H
#define PL_SASL_SCRAM_H

#include <stddef.h>

typedef enum pl_scram_hash { PL_SCRAM_SHA1 = 0, PL_SCRAM_SHA256 = 1 } pl_scram_hash;

#define PL_SCRAM_MAX_HASH 32

/* 20 for SHA-1, 32 for SHA-256. */
size_t pl_scram_hash_len(pl_scram_hash h);
/* "SCRAM-SHA-1", "SCRAM-SHA-256" (plus "-PLUS" if plus). */
const char *pl_scram_mech_name(pl_scram_hash h, int plus);

/* StoredKey and ServerKey for a password (already SASLprepped) with
 * PBKDF2-HMAC (RFC 5802 section 3). Outputs are hash_len bytes. */
void pl_scram_derive(pl_scram_hash h, const char *password,
                     const unsigned char *salt, size_t salt_len,
                     unsigned iterations, unsigned char *stored_key,
                     unsigned char *server_key);

/* The same, written as base64 strings (malloced) for storage. salt is
 * generated randomly (16 bytes) when *salt_b64 is NULL on entry; otherwise
 * the given base64 salt is used. Returns 0 or -1. */
int pl_scram_make_creds(pl_scram_hash h, const char *password, unsigned iterations,
                        char **salt_b64, char **stored_key_b64, char **server_key_b64);

/* Checks a plaintext password against stored credentials (for SASL
 * PLAIN): 1 if it matches, 0 if not, -1 on malformed stored data. */
int pl_scram_check_password(pl_scram_hash h, const char *password,
                            const char *salt_b64, unsigned iterations,
                            const char *stored_key_b64);

/* ==== server side of the exchange ==== */

typedef struct pl_scram_server pl_scram_server;

/* plus: the mechanism is the -PLUS variant. server_plus: the server
 * offered -PLUS variants (so a client's "y" flag means a downgrade).
 * cb_types/cb_data: channel bindings the server can provide on this
 * connection (e.g. "tls-exporter", "tls-server-end-point"); cb_count
 * entries, each cb_len[i] bytes. Data is copied. */
pl_scram_server *pl_scram_server_new(pl_scram_hash h, int plus, int server_plus,
                                     const char *const *cb_types,
                                     const unsigned char *const *cb_data,
                                     const size_t *cb_len, int cb_count);
void pl_scram_server_free(pl_scram_server *s);

/* Parses client-first-message. On success returns 0 and sets *username to
 * the SASLprepped, "=2C"/"=3D"-decoded user name (owned by s). On failure
 * returns -1 and sets *err to a SCRAM error value ("invalid-encoding",
 * "channel-bindings-dont-match", "server-does-support-channel-binding",
 * "unsupported-channel-binding-type", "extensions-not-supported",
 * "invalid-username-encoding") or a SASL condition ("malformed-request",
 * "invalid-authzid"). An authzid other than the user's own bare JID is
 * for the caller to judge: *authzid (owned by s, may be NULL). */
int pl_scram_server_client_first(pl_scram_server *s, const char *msg, size_t len,
                                 const char **username, const char **authzid,
                                 const char **err);

/* Builds server-first-message from stored credentials (binary keys of
 * hash_len bytes, raw salt). A random nonce part is generated, unless
 * nonce (test vectors) is given. *out is malloced, NUL terminated. */
int pl_scram_server_first(pl_scram_server *s, const unsigned char *salt,
                          size_t salt_len, unsigned iterations,
                          const unsigned char *stored_key,
                          const unsigned char *server_key,
                          const char *nonce, char **out);

/* Verifies client-final-message (nonce, channel binding, proof). Returns
 * 0 with *out = server-final-message ("v=..."), or -1 with *err set to
 * "invalid-proof", "channel-bindings-dont-match", "invalid-encoding" or
 * "other-error". *out is malloced. */
int pl_scram_server_client_final(pl_scram_server *s, const char *msg, size_t len,
                                 char **out, const char **err);

/* ==== client side (tests and the benchmark) ==== */

typedef struct pl_scram_client pl_scram_client;
pl_scram_client *pl_scram_client_new(pl_scram_hash h, const char *user,
                                     const char *password, const char *nonce);
char *pl_scram_client_first(pl_scram_client *c);
/* Returns client-final-message or NULL if server-first is malformed. */
char *pl_scram_client_final(pl_scram_client *c, const char *server_first);
/* 1 if server-final proves the server, 0 otherwise. */
int pl_scram_client_verify(pl_scram_client *c, const char *server_final);
void pl_scram_client_free(pl_scram_client *c);

/* ==== base64 and random (nettle / GnuTLS) ==== */

/* Malloced NUL-terminated base64 of data. */
char *pl_base64_encode(const unsigned char *data, size_t len);
/* Decodes into a malloced buffer; returns -1 on bad input. */
int pl_base64_decode(const char *b64, size_t b64len, unsigned char **out, size_t *outlen);
/* Cryptographically random bytes (gnutls_rnd, nonce level). */
void pl_random(void *buf, size_t len);

#endif
