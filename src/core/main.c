/* core/main.c: parleyd. Reads the config, sets up hosts, modules, the
 * storage service, listeners and the control socket, runs the loop, and
 * handles SIGTERM/SIGINT (clean shutdown) and SIGHUP (config reload). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "c2s/c2s.h"
#include "c2s/throttle.h"
#include "core/host.h"
#include "core/loop.h"
#include "core/modmgr.h"
#include "core/server.h"
#include "ctl/ctl_server.h"
#include "db/pg.h"
#include "net/listener.h"
#include "router/sessions.h"

pl__server_t pl__server;

const char *pl_server_name(void)
{
    return "Parley";
}

const char *pl_server_version(void)
{
    return PACKAGE_VERSION;
}

long long pl_server_uptime(void)
{
    return (long long)(time(NULL) - pl__server.started);
}

/* ==== module management across hosts ==== */

/* Runs op on host (or on every host that should have the module). */
static int each_host(const char *host, const char *name, int loading,
                     int (*op)(pl_host *, const char *, char *, size_t), char *err, size_t errlen)
{
    if (host) {
        pl_host *h = pl_host_find(host);
        if (!h) {
            snprintf(err, errlen, "no such host %s", host);
            return -1;
        }
        return op(h, name, err, errlen);
    }
    int done = 0;
    for (pl_host *h = pl__hosts; h; h = h->next) {
        if (!loading && !pl__modmgr_find(h, name))
            continue;
        if (op(h, name, err, errlen) != 0)
            return -1;
        done++;
    }
    if (!done && !loading && pl__modmgr_find(NULL, name))
        return op(NULL, name, err, errlen);
    if (!done && !loading) {
        snprintf(err, errlen, "module %s is not loaded", name);
        return -1;
    }
    return 0;
}

int pl__module_load(const char *host, const char *name, char *err, size_t errlen)
{
    return each_host(host, name, 1, pl__modmgr_load, err, errlen);
}

int pl__module_unload(const char *host, const char *name, char *err, size_t errlen)
{
    return each_host(host, name, 0, pl__modmgr_unload, err, errlen);
}

int pl__module_reload(const char *host, const char *name, char *err, size_t errlen)
{
    return each_host(host, name, 0, pl__modmgr_reload, err, errlen);
}

void pl__modules_each(const char *host, void (*cb)(const char *, const char *, void *), void *ud)
{
    for (pl_host *h = pl__hosts; h; h = h->next) {
        if (host && strcmp(host, h->name) != 0)
            continue;
        for (pl_module *m = h->modules; m; m = m->next)
            cb(h->name, m->def->name, ud);
    }
    for (pl_module *m = pl__global_modules; m; m = m->next)
        cb(NULL, m->def->name, ud);
}

/* Loads the modules a host's config lists and unloads the ones it no
 * longer lists. */
static int sync_modules(pl_host *h, const pl_vhost_conf *vc, char *err, size_t errlen)
{
    for (int i = 0; i < vc->nmodules; i++)
        if (pl__modmgr_load(h, vc->modules[i], err, errlen) != 0)
            return -1;
    int again = 1;
    for (int rounds = 0; again && rounds < 64; rounds++) {
        again = 0;
        for (pl_module *m = h->modules; m; m = m->next) {
            int listed = 0;
            for (int i = 0; i < vc->nmodules && !listed; i++)
                listed = strcmp(vc->modules[i], m->def->name) == 0;
            /* dependencies pulled in by a listed module stay */
            for (pl_module *o = h->modules; o && !listed; o = o->next)
                for (const char *const *d = o->def->depends; d && *d && !listed; d++)
                    listed = strcmp(*d, m->def->name) == 0;
            if (!listed) {
                pl__modmgr_unload(h, m->def->name, err, errlen);
                again = 1;
                break;
            }
        }
    }
    return 0;
}

int pl__server_reload(char *err, size_t errlen)
{
    pl_config *nc = pl_config_load(pl__server.config_path, err, errlen);
    if (!nc)
        return -1;
    pl_config *old = pl__server.config;
    pl__server.config = nc;
    if (pl__hosts_reconfigure(nc, err, errlen) != 0 || pl__modmgr_refresh_options(err, errlen) != 0) {
        pl__server.config = old;
        pl__modmgr_refresh_options(err, errlen);
        pl_config_free(nc);
        return -1;
    }
    pl_log_set_level(nc->log_level);
    int rc = 0;
    for (pl_host *h = pl__hosts; h; h = h->next)
        if (sync_modules(h, pl_config_vhost(nc, h->name), err, errlen) != 0)
            rc = -1;
    pl_config_free(old);
    pl_log(PL_LOG_NOTICE, "configuration reloaded from %s", pl__server.config_path);
    return rc;
}

static int shutting_down;

void pl__server_stop(void)
{
    if (shutting_down)
        return;
    shutting_down = 1;
    pl_log(PL_LOG_NOTICE, "shutting down");
    pl__listeners_close();
    pl__ctl_stop();
    pl__c2s_shutdown_all();
    /* modules with streams of their own (federation) close them now */
    pl_event ev = { .name = "server/stopping" };
    pl_fire(NULL, "server/stopping", &ev);
    pl__loop_stop();
}

/* ==== signals ==== */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (sig == SIGHUP) {
        char err[1024];
        if (pl__server_reload(err, sizeof err) != 0)
            pl_log(PL_LOG_ERROR, "reload failed, keeping the old configuration: %s", err);
        return;
    }
    pl__server_stop();
}

static void on_db_state(int up, void *ud)
{
    pl_log(up ? PL_LOG_NOTICE : PL_LOG_WARN, "database %s", up ? "available" : "unavailable");
}

static void accept_c2s(int fd, const char *peer, int role)
{
    pl__c2s_accept(fd, peer, role == PL_LISTEN_C2S_TLS);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: parleyd [--config FILE] [--check] [--version]\n"
               "  -c, --config FILE  configuration file (default %s/parley/parley.conf)\n"
               "  -t, --check        check the configuration and exit\n"
               "  -V, --version      print the version and exit\n", PL_SYSCONFDIR);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 't' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = PL_SYSCONFDIR "/parley/parley.conf";
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 't': check = 1; break;
        case 'V': printf("parleyd %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[2048];
    pl_config *cfg = pl_config_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "parleyd: %s\n", err);
        return 1;
    }
    if (check) {
        printf("%s: configuration OK\n", path);
        pl_config_free(cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    pl_log_set_level(cfg->log_level);
    pl__server.config = cfg;
    pl__server.config_path = path;
    pl__server.started = time(NULL);
    pl__server.base = pl__loop_init();
    pl__events_init();
    int rc = 1;
    if (pl_tls_global_init(cfg->tls_priority, cfg->ca_file, err, sizeof err) != 0
        || pl__hosts_init(cfg, err, sizeof err) != 0) {
        pl_log(PL_LOG_ERROR, "%s", err);
        goto out;
    }
    pl_pg_on_state(on_db_state, NULL);
    if (pl_pg_init(pl__server.base, cfg->db_conninfo, (int)cfg->db_pool) != 0) {
        pl_log(PL_LOG_ERROR, "%s: database: invalid conninfo", path);
        goto out;
    }
    for (pl_host *h = pl__hosts; h; h = h->next)
        if (sync_modules(h, pl_config_vhost(cfg, h->name), err, sizeof err) != 0) {
            pl_log(PL_LOG_ERROR, "%s", err);
            goto out;
        }
    pl__c2s_init();
    pl__listener_set_handler(PL_LISTEN_C2S, accept_c2s);
    pl__listener_set_handler(PL_LISTEN_C2S_TLS, accept_c2s);
    if (pl__listeners_open(cfg, err, sizeof err) != 0) {
        pl_log(PL_LOG_ERROR, "%s", err);
        goto out;
    }
    if (cfg->control_socket && pl__ctl_start(pl__server.base, cfg->control_socket) != 0)
        goto out;
    struct event *sigs[3];
    int signums[3] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(pl__server.base, signums[i], on_signal, NULL);
        event_add(sigs[i], NULL);
    }
    pl_log(PL_LOG_NOTICE, "parleyd %s started", PACKAGE_VERSION);
    pl__loop_run();
    /* let the closing streams drain (bounded by the 5 s close grace) */
    for (int i = 0; i < 1000 && pl__conn_count() > 0; i++) {
        event_base_loop(pl__server.base, EVLOOP_ONCE);
        pl__conn_flush_all();
    }
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    rc = 0;
out:
    pl__listeners_close();
    pl__ctl_stop();
    pl__c2s_shutdown_all();
    pl__conn_flush_all();
    pl__modmgr_unload_all();
    pl__conn_flush_all();   /* connections closed while modules unloaded */
    pl_pg_shutdown();
    pl__hosts_free();
    pl__throttle_free();
    pl__hooks_free(&pl__global_hooks);
    pl__events_free();
    pl_tls_global_deinit();
    event_base_free(pl__server.base);
    pl_config_free(pl__server.config);
    if (rc == 0)
        pl_log(PL_LOG_NOTICE, "stopped");
    return rc;
}
