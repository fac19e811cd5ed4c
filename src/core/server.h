/* core/server.h: the daemon's server-wide state and the internal
 * operations the control socket, signal handlers and main() use: config
 * reload, module management, session listing and kicking. */
#ifndef PL_CORE_SERVER_H
#define PL_CORE_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <event2/event.h>
#include "core/config.h"

typedef struct pl__server {
    struct event_base *base;
    pl_config *config;        /* the config in force */
    const char *config_path;
    time_t started;           /* wall clock at start */
} pl__server_t;

extern pl__server_t pl__server;

/* Re-reads the config file and applies what can change at runtime: log
 * level, limits, per-host module lists (loading and unloading modules),
 * module options, certificates. Listeners and the database connection
 * stay as they are. Returns 0, or -1 with a message in err (the old
 * config then stays in force). */
int pl__server_reload(char *err, size_t errlen);

/* Starts a clean shutdown: stops accepting, closes every stream with
 * <system-shutdown/>, flushes, exits the loop. */
void pl__server_stop(void);

/* ==== modules ==== */

/* Calls cb for each loaded module instance (host NULL for global ones),
 * restricted to host when host is not NULL. */
void pl__modules_each(const char *host,
                      void (*cb)(const char *host, const char *name, void *ud),
                      void *ud);

/* Load, unload or reload module name on host (NULL: every host whose
 * config lists the module for reload/unload, or every host for load).
 * Return 0, or -1 with a message in err. Connections stay up. */
int pl__module_load(const char *host, const char *name, char *err, size_t errlen);
int pl__module_unload(const char *host, const char *name, char *err, size_t errlen);
int pl__module_reload(const char *host, const char *name, char *err, size_t errlen);

/* ==== connections and sessions ==== */

typedef struct pl__session_info {
    uint64_t id;
    const char *jid;        /* full JID, or "(unbound)" */
    const char *address;    /* peer "ip:port" */
    const char *tls;        /* "TLS1.3 AES-256-GCM" or "plain" */
    int available;
    int priority;
    long long connected_for; /* seconds */
} pl__session_info;

void pl__sessions_each(void (*cb)(const pl__session_info *info, void *ud), void *ud);

/* Closes the session with this full JID (stream error <policy-violation/>
 * with text "kicked by administrator"). 0, or -1 if there is none. */
int pl__session_kick(const char *full_jid);

int pl__conn_count(void);     /* open client connections */
int pl__session_count(void);  /* bound sessions */

#endif
