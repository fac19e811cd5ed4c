/* c2s/c2s.h: client-to-server streams (RFC 6120): the stream state
 * machine from the stream header through STARTTLS, SASL and resource
 * binding to an active session whose stanzas go to the router. */
#ifndef PL_C2S_C2S_H
#define PL_C2S_C2S_H

#include <stdint.h>
#include <time.h>
#include <parley/module.h>
#include "net/conn.h"
#include "xml/stream.h"

enum pl__c2s_state {
    PL__C2S_HEADER,     /* waiting for a stream header */
    PL__C2S_TLS,        /* STARTTLS handshake in progress */
    PL__C2S_AUTH,       /* features sent, SASL expected */
    PL__C2S_SASL_WAIT,  /* waiting for the credentials lookup */
    PL__C2S_BIND,       /* authenticated, resource binding expected */
    PL__C2S_ACTIVE,     /* bound: stanzas are routed */
    PL__C2S_CLOSED      /* closing; input ignored */
};

typedef struct pl__sdata {
    struct pl__sdata *next;
    pl_module *m;
    void *data;
    void (*free_fn)(void *);
} pl__sdata;

struct pl__sasl;
struct pl__user;

struct pl_session {
    uint64_t id;
    pl__conn *conn;
    pl_xml_stream *xs;
    pl_host *host;
    pl_jid *jid;               /* full JID once bound */
    char *username;            /* prepared node once authenticated */
    struct pl__user *user;     /* account entry while bound */
    pl_session *next_res;      /* next resource of the same account */
    pl_stanza *presence;       /* last available presence */
    struct pl__sasl *sasl;     /* SASL exchange in progress */
    struct event *timer;       /* unauthenticated / idle timeout */
    pl__sdata *data;
    long long rate_tokens;     /* input rate limit bucket */
    long long rate_stamp;      /* ms of the last refill */
    long long last_input;      /* ms of the last read */
    time_t connected_at;
    int priority;
    unsigned state : 3;
    unsigned secure : 1;
    unsigned direct_tls : 1;
    unsigned authenticated : 1;
    unsigned available : 1;
    unsigned header_sent : 1;
    unsigned closing : 1;
    unsigned legacy_session : 1;
    unsigned trimmed : 1;      /* parser and buffers released while idle */
    char stream_id[17];
};

/* Starts a client stream on a new connection (direct_tls: XEP-0368). */
void pl__c2s_accept(int fd, const char *peer, int direct_tls);

/* Closes a session with a stream error (condition NULL: a clean
 * </stream:stream>). */
void pl__c2s_close(pl_session *s, const char *condition, const char *text);

/* Starts the sweeper that releases the parser and buffers of sessions
 * idle for a few seconds. */
void pl__c2s_init(void);

/* Closes every client stream with <system-shutdown/>. */
void pl__c2s_shutdown_all(void);

/* Writes a stanza to the session's stream. */
void pl__c2s_send(pl_session *s, pl_stanza *st);

/* Used by sasl.c and bind.c. */
void pl__c2s_send_raw(pl_session *s, const char *xml);
void pl__c2s_restart_stream(pl_session *s);
/* Called by bind.c once s is bound: timers, state, session/bound. */
void pl__c2s_bound(pl_session *s);
void pl__sasl_handle(pl_session *s, pl_stanza *st);
void pl__sasl_free(pl_session *s);
int pl__bind_handle(pl_session *s, pl_stanza *st);
void pl__c2s_features_auth(pl_session *s, pl_stanza *st, pl_node *features);

#endif
