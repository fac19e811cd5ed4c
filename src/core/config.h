/* core/config.h: the server configuration, read from the file syntax of
 * conffile.h and checked. Every error names the file, line and problem.
 * doc/configuration.md is the reference for each directive. */
#ifndef PL_CORE_CONFIG_H
#define PL_CORE_CONFIG_H

#include <stddef.h>
#include "core/conffile.h"

enum pl_listen_role {
    PL_LISTEN_C2S = 0,       /* client, STARTTLS */
    PL_LISTEN_C2S_TLS = 1,   /* client, direct TLS (XEP-0368) */
    PL_LISTEN_S2S = 2,       /* server, STARTTLS */
    PL_LISTEN_S2S_TLS = 3    /* server, direct TLS */
};

typedef struct pl_listen_conf {
    int role;
    char *host;       /* numeric address, e.g. "127.0.0.1", "::", "*" */
    char *port;       /* numeric port */
    const char *file;
    int line;
} pl_listen_conf;

typedef struct pl_vhost_conf {
    char *name;             /* prepared domain */
    char *certificate;      /* PEM chain */
    char *key;              /* PEM private key */
    char **modules;         /* module names (the host's own list, or the
                               global one if the host has none) */
    int nmodules;
    const pl_conf_node *block;  /* the vhost { } node, for module options */
    const char *file;
    int line;
} pl_vhost_conf;

typedef struct pl_limits {
    long long max_stanza_size;   /* bytes; default 262144 */
    long long unauth_timeout;    /* seconds before an unauthenticated
                                    connection is closed; default 30 */
    long long c2s_rate;          /* bytes/second read per client
                                    connection, 0 = unlimited; default 0 */
    long long c2s_burst;         /* bucket size for c2s_rate; default 64k */
    long long auth_failures;     /* failed SASL attempts per source address
                                    within auth_window before throttling;
                                    default 5 */
    long long auth_window;       /* seconds; default 60 */
    long long max_resources;     /* bound resources per account; default 16 */
    long long c2s_idle_timeout;  /* seconds without input on an
                                    authenticated client, 0 = never */
    long long s2s_idle_timeout;  /* seconds; default 600 */
} pl_limits;

typedef struct pl_config {
    char *path;
    pl_conf_node *tree;          /* kept for module options */
    int log_level;               /* PL_LOG_* */
    char *modules_dir;           /* where mod_<name>.so are found */
    char *control_socket;        /* UNIX socket path, NULL = none */
    char *db_conninfo;           /* libpq connection string */
    long long db_pool;           /* connections; default 4 */
    long long scram_iterations;  /* for new credentials; default 4096 */
    int c2s_require_tls;         /* default yes */
    int s2s_require_tls;         /* default yes */
    char *tls_priority;          /* GnuTLS priority string */
    char *ca_file;               /* CA bundle for peers, NULL = system */
    pl_listen_conf *listens;
    int nlistens;
    char **modules;              /* global module list */
    int nmodules;
    pl_vhost_conf *vhosts;
    int nvhosts;
    pl_limits limits;
} pl_config;

/* Reads and checks path. NULL on error with "FILE:LINE: problem" in err. */
pl_config *pl_config_load(const char *path, char *err, size_t errlen);
void pl_config_free(pl_config *c);

const pl_vhost_conf *pl_config_vhost(const pl_config *c, const char *name);

/* The value of option `name` of module `module` on vhost (NULL: global):
 * the `module NAME { name value; }` block inside the vhost wins over the
 * top-level one. Returns the directive node (first argument is the value)
 * or NULL if unset. */
const pl_conf_node *pl_config_module_option(const pl_config *c, const char *vhost,
                                            const char *module, const char *name);

#endif
