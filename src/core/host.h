/* core/host.h: virtual hosts. Each host has its certificate, its hook
 * table and IQ handlers, its disco features, stream feature providers,
 * authentication provider, the sessions of its accounts, and the module
 * instances loaded on it. */
#ifndef PL_CORE_HOST_H
#define PL_CORE_HOST_H

#include <parley/module.h>
#include "core/config.h"
#include "core/hooks.h"
#include "core/strmap.h"
#include "net/tls.h"

enum { PL__DISCO_FEATURE, PL__DISCO_IDENTITY, PL__DISCO_ITEM };

typedef struct pl__disco {
    struct pl__disco *next;
    pl_module *owner;          /* NULL: the core */
    int kind;
    char *a, *b, *c;           /* var | category,type,name | jid,name */
} pl__disco;

typedef struct pl__sfeature {
    struct pl__sfeature *next;
    pl_module *owner;
    pl_stream_feature_fn fn;
    void *ud;
} pl__sfeature;

typedef struct pl__iqh {
    struct pl__iqh *next;
    pl_module *owner;
    int types, targets;
    char *xmlns, *name;
    pl_hook_fn fn;
    void *ud;
} pl__iqh;

typedef struct pl__api {
    struct pl__api *next;
    pl_module *owner;
    char *name;
    const void *api;
} pl__api;

struct pl_host {
    char *name;
    pl_tls_creds *creds;
    pl_tls_creds **retired;    /* replaced by reloads; sessions in a
                                  handshake may still use them */
    int nretired;
    pl__hooks hooks;
    pl__iqh *iqs;
    pl__disco *disco;
    pl__sfeature *sfeatures;
    const pl_auth_provider *auth;
    pl_module *auth_owner;
    pl__api *apis;
    pl__strmap users;          /* node -> pl__user (bound sessions) */
    pl_module *modules;        /* instances loaded here */
    pl_host *next;
};

extern pl_host *pl__hosts;

/* Creates the hosts of the config (loading certificates) and registers
 * the core's fallback handlers. 0 or -1 with err. */
int pl__hosts_init(const pl_config *c, char *err, size_t errlen);
/* Applies a new config: new hosts are added, certificates reloaded;
 * removed hosts are refused (a restart removes hosts). */
int pl__hosts_reconfigure(const pl_config *c, char *err, size_t errlen);
void pl__hosts_free(void);

/* Removes everything owned by m on h (IQ handlers, disco entries, stream
 * features, auth provider, hooks). */
void pl__host_remove_owner(pl_host *h, pl_module *m);

/* The handler for an IQ get/set, or NULL. */
pl__iqh *pl__host_iq(pl_host *h, int type, int target, const pl_node *payload);

/* Runs the stream feature providers for a session. */
void pl__host_stream_features(pl_host *h, pl_session *s, pl_stanza *st, pl_node *features);

/* SNI lookup over all hosts (for pl_tls_server_new). */
pl_tls_creds *pl__host_sni(const char *server_name, void *ud);

#endif
