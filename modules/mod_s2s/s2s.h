/* mod_s2s/s2s.h: the federation module's internal interfaces, shared by
 * its files: mod_s2s.c (the module, routing, per-pair queues, listing),
 * s2s_out.c (outgoing streams), s2s_in.c (incoming streams), dialback.c
 * (XEP-0220 / XEP-0185 keys and verification requests) and s2s_auth.c
 * (policies, route overrides, SASL EXTERNAL helpers). */
#ifndef MOD_S2S_H
#define MOD_S2S_H

#include <stdint.h>
#include <parley/module.h>
#include <parley/net.h>

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_DB "jabber:server:dialback"
#define NS_DB_FEATURE "urn:xmpp:features:dialback"

#define S2S_PORT 5269

/* ==== configuration (s2s_auth.c) ==== */

enum s2s_policy {
    POLICY_DEFAULT = 0,     /* as require_valid_cert / dialback say */
    POLICY_REQUIRE_CERT,    /* only a valid certificate authenticates */
    POLICY_DIALBACK,        /* dialback allowed even if certificates are required */
    POLICY_BLOCK            /* no federation at all */
};

typedef struct s2s_route {
    struct s2s_route *next;
    char *domain;
    char *host;             /* name or numeric address */
    int port;
    int direct_tls;
} s2s_route;

typedef struct s2s_rule {
    struct s2s_rule *next;
    char *domain;
    int policy;
} s2s_rule;

/* Parse "dom=host:port dom2=[v6]:port/tls ..." and "dom=require-cert
 * dom2=block ..."; 0, or -1 with a message naming the bad entry. */
int pl__s2s_parse_routes(const char *text, s2s_route **out, char *err, size_t errlen);
int pl__s2s_parse_rules(const char *text, s2s_rule **out, char *err, size_t errlen);
void pl__s2s_free_routes(s2s_route *r);
void pl__s2s_free_rules(s2s_rule *r);

/* How a remote domain may authenticate to us, and we to it. */
int pl__s2s_policy(const char *domain);           /* enum s2s_policy, resolved */
int pl__s2s_blocked(const char *domain);
int pl__s2s_cert_required(const char *domain);    /* a valid certificate is a must */
int pl__s2s_dialback_allowed(const char *domain);
const s2s_route *pl__s2s_route_for(const char *domain);

/* SASL EXTERNAL: base64 of a domain (caller frees), and the identity an
 * <auth/> asserts: "" / "=" means the stream's 'from'. NULL if the text
 * is not valid base64. */
char *pl__s2s_b64(const char *s);
char *pl__s2s_external_identity(const char *b64, const char *stream_from);

/* ==== dialback keys (dialback.c) ==== */

/* XEP-0185: hex HMAC-SHA256(hex SHA256(secret), "recv orig id"); out gets
 * 65 bytes. */
void pl__s2s_db_key(const char *secret, const char *receiving, const char *originating,
                    const char *stream_id, char out[65]);
/* Constant-time check of a received key against ours. */
int pl__s2s_db_check(const char *secret, const char *receiving, const char *originating,
                     const char *stream_id, const char *key);

/* Serializes <db:result/> or <db:verify/> (name "result" / "verify"):
 * type and id may be NULL, key is the text (may be NULL), error_cond adds
 * <error type='cancel'><cond/></error>. */
void pl__s2s_db_write(pl_buf *out, const char *name, const char *from, const char *to,
                      const char *id, const char *type, const char *key,
                      const char *error_cond);

/* Verification of a key received on an incoming stream, by the
 * Authoritative Server of the sender domain, over the outgoing stream for
 * (local, remote). The result goes to the incoming stream with in_id if it
 * still exists. */
void pl__s2s_db_request(uint64_t in_id, const char *local, const char *remote,
                        const char *stream_id, const char *key);
/* The outgoing stream out_id can send dialback elements now: writes its
 * verification requests that are not yet sent into out. */
void pl__s2s_db_send_pending(uint64_t out_id, const char *local, const char *remote,
                             pl_buf *out);
/* A <db:verify type=.../> arrived on outgoing stream out_id; 0 if it
 * answered one of its requests, -1 if unsolicited. */
int pl__s2s_db_answer(uint64_t out_id, const char *from, const char *to, const char *id,
                      const char *type);
/* The outgoing stream out_id failed: its requests end with error_cond. */
void pl__s2s_db_out_failed(uint64_t out_id, const char *local, const char *remote,
                           const char *error_cond);
/* The incoming stream in_id is gone: its requests are dropped. */
void pl__s2s_db_in_gone(uint64_t in_id);
void pl__s2s_db_free_all(void);

/* ==== streams ==== */

enum { AUTH_NONE = 0, AUTH_SASL, AUTH_DIALBACK };

typedef struct s2s_out s2s_out;
typedef struct s2s_in s2s_in;

/* Outgoing (s2s_out.c). One stream per (local, remote) domain pair. */
s2s_out *pl__s2s_out_find(const char *local, const char *remote);
s2s_out *pl__s2s_out_get(const char *local, const char *remote);  /* finds or starts */
/* Sends st (borrowed) now if authenticated, else queues a reference;
 * bounces it with resource-constraint when the queue is full. */
void pl__s2s_out_send(s2s_out *o, pl_stanza *st);
/* Something (a verification request) waits to be written. */
void pl__s2s_out_kick(s2s_out *o);
uint64_t pl__s2s_out_id(const s2s_out *o);
void pl__s2s_out_sweep(long long now);
void pl__s2s_out_close_all(void);
/* Server shutdown: every stream is closed cleanly. */
void pl__s2s_out_stop_all(void);
void pl__s2s_out_list(pl_buf *out);

/* Incoming (s2s_in.c). */
void pl__s2s_in_accept(void *ud, int fd, const char *peer, int role);
s2s_in *pl__s2s_in_by_id(uint64_t id);
/* The verification of (remote -> local) on s finished: "valid",
 * "invalid", or an error condition (type="error"). */
void pl__s2s_in_db_result(s2s_in *s, const char *local, const char *remote,
                          const char *result);
void pl__s2s_in_sweep(long long now);
void pl__s2s_in_close_all(void);
void pl__s2s_in_stop_all(void);
void pl__s2s_in_list(pl_buf *out);

/* ==== the module (mod_s2s.c) ==== */

typedef struct s2s_globals {
    pl_module *m;
    pl_resolver *resolver;
    char secret[65];
    long long connect_timeout_ms;
    long long queue_max;
    int dialback;
    int require_valid_cert;
    s2s_route *routes;
    s2s_rule *rules;
    uint64_t next_id;
} s2s_globals;

extern s2s_globals pl__s2s;

/* A fresh random stream id (hex, NUL terminated, 32 bytes). */
void pl__s2s_stream_id(char out[33]);
/* Answers st to its sender with a stanza error (never for errors and IQ
 * results). */
void pl__s2s_bounce(pl_stanza *st, const char *condition, const char *text);
/* Writes "<stream:error><cond/><text/></stream:error>". */
void pl__s2s_stream_error(pl_buf *out, const char *condition, const char *text);

#endif
