/* parley/module.h: the module API. The only header a module includes.
 *
 * A module is a shared object in the modules directory, named
 * mod_<name>.so, that exports one descriptor declared with PL_MODULE. The
 * core loads it once per virtual host that lists it (or once in all, for
 * PL_MODULE_GLOBAL), calls load(), and records everything the module
 * registers through its pl_module handle: hooks, IQ handlers, features,
 * timers and database queries. Unloading removes all of it, so modules
 * write no clean-up code for those. */
#ifndef PARLEY_MODULE_H
#define PARLEY_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <parley/base.h>
#include <parley/buf.h>
#include <parley/htab.h>
#include <parley/stanza.h>
#include <parley/jid.h>

#define PL_MODULE_ABI_MAJOR 1
#define PL_MODULE_ABI_MINOR 3   /* 1: pl_db_listen, pl_db_listening, pl_now_ms;
                                 * 2: pl_db_array_add;
                                 * 3: pl_htab_* and pl_strhash (parley/htab.h) */
/* Built into every module and checked by the loader. */
#define PL_BUILD_SIGNATURE "parley-abi1/" PL__STR(__SIZEOF_POINTER__) "/" PL__STR(__SIZEOF_LONG__)
#define PL__STR2(x) #x
#define PL__STR(x) PL__STR2(x)

typedef struct pl_host pl_host;         /* a virtual host */
typedef struct pl_session pl_session;   /* a client session */
typedef struct pl_module pl_module;     /* a loaded module instance */
typedef struct pl_timer pl_timer;

/* ==== events and hooks ==== */

/* What a hook handler returns. */
enum {
    PL_PASS = 0,     /* not mine: the next handler runs */
    PL_HANDLED = 1,  /* done: the chain stops */
    PL_ERROR = 2     /* the chain stops and the core answers the stanza with
                        ev->error (type, condition, text) */
};

/* Where a stanza is addressed, relative to the server and its sender. */
enum pl_target {
    PL_TO_HOST = 1,   /* the server's domain */
    PL_TO_SELF = 2,   /* no 'to', or the sender's own bare JID */
    PL_TO_BARE = 4,   /* another account's bare JID */
    PL_TO_FULL = 8    /* a full JID */
};

typedef struct pl_event {
    const char *name;      /* the event's name */
    pl_stanza *stanza;     /* borrowed for the call; pl_stanza_ref to keep */
    pl_session *origin;    /* local session that sent it, NULL otherwise */
    pl_host *host;         /* virtual host that handles it */
    const pl_jid *from;    /* prepared 'from' (stamped by the server) */
    const pl_jid *to;      /* prepared 'to'; NULL if absent */
    int target;            /* one of enum pl_target */
    struct {
        const char *type;       /* "cancel", "modify", "auth", "wait" */
        const char *condition;  /* e.g. "item-not-found" */
        const char *text;       /* optional human-readable text */
    } error;               /* set by a handler that returns PL_ERROR */
    void *data;            /* event-specific data (documented per event) */
} pl_event;

typedef int (*pl_hook_fn)(pl_event *ev, void *ud);

/* Hooks fn on the module's host for the named event. Higher priority runs
 * first; the default is 0 and the core's fallbacks run below 0. Names:
 *   message/full message/bare message/host   a message to such a target
 *   presence/full presence/bare presence/host presence/self
 *   iq/full                                  an IQ to a full JID
 *   message/offline   a chat/normal message for an account with no
 *                     available resource (fallback: service-unavailable)
 *   session/bound     ev->origin bound a resource
 *   session/available ev->origin sent initial presence
 *   session/closed    ev->origin is going away (after unavailable)
 *   pre-message pre-presence pre-iq
 *                     a stanza from a local client, after validation and
 *                     before routing (ev->target and ev->to are set;
 *                     ev->host is the sender's host): PL_HANDLED drops it,
 *                     PL_ERROR bounces it to the sender
 * Returns PL_OK or PL_EINVAL. */
int pl_hook(pl_module *m, const char *event, pl_hook_fn fn, void *ud, int priority);

/* As pl_hook, but on the server-wide table, for events without a host:
 *   route/remote     a stanza to a domain not served here
 *   server/stopping  shutdown began: close the streams the module owns
 *   ctl/s2s          `parleyctl s2s`: append lines to the pl_buf in
 *                    ev->data (no handler: federation is not enabled) */
int pl_hook_global(pl_module *m, const char *event, pl_hook_fn fn, void *ud, int priority);

/* Runs the chain of an event on host h (NULL: the global table). Returns
 * PL_PASS when no handler took it, or what the stopping handler returned. */
int pl_fire(pl_host *h, const char *event, pl_event *ev);

/* ==== IQ handlers ==== */

enum { PL_IQ_GET = 1, PL_IQ_SET = 2 };

/* Registers fn for IQs of the given types (PL_IQ_GET|PL_IQ_SET) sent to the
 * given targets (PL_TO_HOST|PL_TO_SELF|PL_TO_BARE) whose payload is
 * <name xmlns=xmlns>. One handler per (type, target, payload) on a host:
 * PL_EEXIST if taken. A request nobody handles gets service-unavailable. */
int pl_iq_handle(pl_module *m, int types, int targets, const char *xmlns,
                 const char *name, pl_hook_fn fn, void *ud);

/* ==== service discovery and stream features ==== */

int pl_add_feature(pl_module *m, const char *var);
int pl_add_identity(pl_module *m, const char *category, const char *type,
                    const char *name);
/* A disco#items entry of the server (jid, optional name). */
int pl_add_item(pl_module *m, const char *jid, const char *name);

typedef void (*pl_feature_cb)(const char *var, void *ud);
typedef void (*pl_identity_cb)(const char *category, const char *type,
                               const char *name, void *ud);
typedef void (*pl_item_cb)(const char *jid, const char *name, void *ud);
void pl_host_features(pl_host *h, pl_feature_cb cb, void *ud);
void pl_host_identities(pl_host *h, pl_identity_cb cb, void *ud);
void pl_host_items(pl_host *h, pl_item_cb cb, void *ud);

/* A stream feature provider: called while the core builds
 * <stream:features/> for a session; appends children to `features`. */
typedef void (*pl_stream_feature_fn)(pl_session *s, pl_stanza *st,
                                     pl_node *features, void *ud);
int pl_add_stream_feature(pl_module *m, pl_stream_feature_fn fn, void *ud);

/* ==== sending and routing ==== */

/* Queues st for s's stream (takes its own reference; the caller keeps
 * its own). A closed session ignores it. */
void pl_send(pl_session *s, pl_stanza *st);

/* Routes st as the server would route a stanza with its 'from' and 'to'
 * (both must be set): to a local session, a local account, the host, or a
 * remote domain. Takes its own reference. */
void pl_route(pl_stanza *st);

/* A reply skeleton: same element name and id, 'from' and 'to' swapped,
 * type "result" for an IQ. No children. */
pl_stanza *pl_stanza_reply(const pl_stanza *st);

/* An error reply per RFC 6120 8.3: same element name and id, 'from' and
 * 'to' swapped, type="error", and one child
 * <error type=...><condition/><text/></error> (text optional; type NULL
 * takes the condition's default type). The original payload is not
 * echoed. */
pl_stanza *pl_stanza_error_reply(const pl_stanza *st, const char *type,
                                 const char *condition, const char *text);

/* Sends an error reply for the event's stanza to its sender, unless the
 * stanza is itself an error (or an IQ result). */
void pl_reply_error(pl_event *ev, const char *type, const char *condition,
                    const char *text);

/* The default error type of a defined condition (RFC 6120 8.3.3). */
const char *pl_error_type_of(const char *condition);

/* ==== sessions ==== */

const pl_jid *pl_session_jid(const pl_session *s);  /* NULL before bind */
pl_host *pl_session_host(const pl_session *s);
uint64_t pl_session_id(const pl_session *s);
pl_session *pl_session_by_id(uint64_t id);         /* NULL once gone */
int pl_session_available(const pl_session *s);     /* sent initial presence */
int pl_session_priority(const pl_session *s);
/* The session's last available presence (borrowed; NULL if none). */
pl_stanza *pl_session_presence(const pl_session *s);
/* Closes s with a stream error condition (NULL: a clean close). */
void pl_session_close(pl_session *s, const char *condition, const char *text);

/* The bound sessions of account node@h, up to max; returns how many exist. */
int pl_user_sessions(pl_host *h, const char *node, pl_session **out, int max);
pl_session *pl_session_find(pl_host *h, const char *node, const char *resource);

/* Per-session data for a module, freed by free_fn when the session ends or
 * the module unloads. */
void pl_session_set_data(pl_session *s, pl_module *m, void *data,
                         void (*free_fn)(void *));
void *pl_session_data(const pl_session *s, pl_module *m);

/* ==== services between modules ==== */

/* Publishes a table of functions under name on the module's host, for
 * modules that depend on this one (modules cannot link to each other).
 * Withdrawn when the module unloads; dependents are unloaded and
 * reloaded with it, so a pointer obtained in load() stays valid. */
int pl_provide_api(pl_module *m, const char *name, const void *api);
/* The table published under name on h, or NULL. */
const void *pl_get_api(pl_host *h, const char *name);

/* ==== hosts ==== */

const char *pl_host_name(const pl_host *h);
pl_host *pl_host_find(const char *domain);  /* a local virtual host or NULL */

/* ==== authentication providers ==== */

/* Stored SCRAM credentials of an account (base64 strings). */
typedef struct pl_auth_creds {
    unsigned iterations;
    const char *salt_b64;
    const char *sha1_stored_key;
    const char *sha1_server_key;
    const char *sha256_stored_key;
    const char *sha256_server_key;
} pl_auth_creds;

/* status: PL_OK (creds valid for the call), PL_ENOENT (no such account),
 * PL_EUNAVAIL (storage unavailable). */
typedef void (*pl_auth_creds_cb)(int status, const pl_auth_creds *creds, void *ud);
typedef void (*pl_auth_status_cb)(int status, void *ud);

typedef struct pl_auth_provider {
    const char *name;
    /* Looks up username's credentials; calls cb later. Returns PL_OK (the
     * callback will run) or an error (it will not). */
    int (*get_creds)(pl_host *h, const char *username, pl_auth_creds_cb cb, void *ud);
    /* Whether the account exists (cb status PL_OK or PL_ENOENT). */
    int (*user_exists)(pl_host *h, const char *username, pl_auth_status_cb cb, void *ud);
} pl_auth_provider;

/* Makes p the authentication provider of the module's host. */
int pl_provide_auth(pl_module *m, const pl_auth_provider *p);

/* ==== database (PostgreSQL, asynchronous) ==== */

typedef struct pl_db_result pl_db_result;
/* Called once per query with its result; r is valid only during the call.
 * On failure pl_db_ok(r) is 0 and pl_db_error(r) says why. */
typedef void (*pl_db_cb)(const pl_db_result *r, void *ud);

/* Runs one parameterised statement (prepared once per connection and
 * reused). Parameters are text (NULL for SQL NULL). Returns PL_OK (cb will
 * run) or PL_EUNAVAIL (no database connection; cb will not run). Pending
 * queries of a module are cancelled when it unloads: cb does not run. */
int pl_db_query(pl_module *m, const char *sql, int nparams,
                const char *const *params, pl_db_cb cb, void *ud);

int pl_db_ok(const pl_db_result *r);
const char *pl_db_error(const pl_db_result *r);
int pl_db_rows(const pl_db_result *r);
const char *pl_db_value(const pl_db_result *r, int row, int col); /* "" for NULL */
int pl_db_isnull(const pl_db_result *r, int row, int col);
long pl_db_affected(const pl_db_result *r);   /* rows changed by INSERT/UPDATE/DELETE */
int pl_db_available(void);

/* Appends s to b as one element of a PostgreSQL array literal (quoted,
 * with '"' and '\\' escaped), after a comma unless b ends in '{'. The
 * caller opens the literal with '{' and closes it with '}'; the result
 * is passed as a text parameter and cast in SQL ($1::text[]). */
void pl_db_array_add(pl_buf *b, const char *s);

/* Called with the payload of each notification on a channel ("" if it
 * had none), and with payload NULL when notifications may have been
 * missed (the connection that listened was lost, or the database went
 * away): forget whatever the notifications keep current. Runs from the
 * loop, never inside pl_db_listen. */
typedef void (*pl_db_notify_cb)(const char *payload, void *ud);

/* Subscribes cb to a PostgreSQL notification channel (NOTIFY channel,
 * payload or pg_notify(channel, payload)). The channel name is a
 * lower-case letter or '_', then lower-case letters, digits or '_', at
 * most 63 bytes. The server LISTENs on one pool connection whenever one
 * is up and again after every reconnect. The subscription ends when the
 * module unloads. Returns PL_OK or PL_EINVAL (bad name, cb NULL). */
int pl_db_listen(pl_module *m, const char *channel, pl_db_notify_cb cb, void *ud);

/* 1 when the LISTEN on channel is in effect: every notification sent
 * from now on will reach the subscribers. 0 while it is being
 * (re)established, so state kept current by notifications cannot be
 * trusted. */
int pl_db_listening(const char *channel);

/* ==== options ==== */

typedef enum pl_opt_type {
    PL_OPT_INT,       /* integer within [min, max] */
    PL_OPT_SIZE,      /* byte count, accepts k/m/g suffixes */
    PL_OPT_DURATION,  /* seconds, accepts s/m/h/d suffixes */
    PL_OPT_BOOL,      /* yes/no, on/off, true/false */
    PL_OPT_STRING
} pl_opt_type;

typedef struct pl_option {
    const char *name;
    pl_opt_type type;
    const char *def;      /* default, as it would be written in the config */
    long long min, max;   /* bounds for numeric types */
    const char *help;     /* one line for the docs */
} pl_option;

/* Values of the module's options on its host (validated at load). */
long long pl_option_int(pl_module *m, const char *name);
int pl_option_bool(pl_module *m, const char *name);
const char *pl_option_str(pl_module *m, const char *name);

/* ==== timers ==== */

typedef void (*pl_timer_fn)(void *ud);
/* Runs fn after ms milliseconds (and every ms if repeat). Cancelled
 * automatically when the module unloads. */
pl_timer *pl_timer_add(pl_module *m, unsigned ms, int repeat, pl_timer_fn fn, void *ud);
void pl_timer_cancel(pl_timer *t);
/* Monotonic milliseconds, for deadlines, ages and idle times. */
long long pl_now_ms(void);

/* ==== the module itself ==== */

enum { PL_MODULE_GLOBAL = 1 };  /* one instance for the server, host NULL */

typedef struct pl_module_def {
    unsigned abi_major;
    unsigned abi_minor;
    size_t size;              /* sizeof(pl_module_def) */
    const char *signature;    /* PL_BUILD_SIGNATURE */
    const char *name;         /* "ping" for mod_ping.so */
    const char *description;
    unsigned flags;
    const char *const *depends;  /* names loaded first, NULL terminated */
    const pl_option *options;    /* terminated by an entry with name NULL */
    int (*load)(pl_module *m);   /* PL_OK or an error (then unloaded) */
    void (*unload)(pl_module *m);
    void *(*save)(pl_module *m);             /* before a reload */
    void (*restore)(pl_module *m, void *state);  /* after it */
} pl_module_def;

#define PL_MODULE_DEF_HEADER \
    .abi_major = PL_MODULE_ABI_MAJOR, .abi_minor = PL_MODULE_ABI_MINOR, \
    .size = sizeof(pl_module_def), .signature = PL_BUILD_SIGNATURE

/* Declares the module's descriptor:
 *   PL_MODULE = { PL_MODULE_DEF_HEADER, .name = "ping", .load = ping_load };
 */
#define PL_MODULE const pl_module_def pl_module_descriptor

pl_host *pl_module_host(const pl_module *m);   /* NULL for global modules */
const char *pl_module_name(const pl_module *m);
void pl_module_set_data(pl_module *m, void *data);
void *pl_module_data(const pl_module *m);

/* Logs with the module's name and host as context. */
void pl_mlog(const pl_module *m, int level, const char *fmt, ...) PL_PRINTF(3, 4);

/* Server facts for version/uptime answers. */
const char *pl_server_name(void);
const char *pl_server_version(void);
/* Seconds since the server started. */
long long pl_server_uptime(void);

#endif
