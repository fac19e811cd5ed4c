/* core/modmgr.h: the module manager. Loads shared objects with dlopen
 * (RTLD_NOW, ABI check), instantiates modules per host, and records what
 * each instance registers so that unloading removes all of it. */
#ifndef PL_CORE_MODMGR_H
#define PL_CORE_MODMGR_H

#include <event2/event.h>
#include <parley/module.h>

struct pl_timer {
    struct event *ev;
    pl_module *module;
    pl_timer_fn fn;
    void *ud;
    pl_timer *next, *prev;   /* in the module's list */
    unsigned repeat : 1, firing : 1, cancelled : 1;
};

typedef struct pl__dbq pl__dbq;   /* a tracked database query (dbapi.c) */
typedef struct pl__dso pl__dso;   /* a loaded shared object */

struct pl_module {
    const pl_module_def *def;
    pl__dso *dso;
    pl_host *host;            /* NULL for global modules */
    void *data;
    char **opt_str;           /* resolved option values, by option index */
    long long *opt_num;
    int nopts;
    pl_timer *timers;
    pl__dbq *queries;
    pl_module *next;          /* in the host's (or the global) list */
};

/* Loads module name on host h (NULL: global), dependencies first. 0, or
 * -1 with a message in err. Loading one that is loaded is a no-op. */
int pl__modmgr_load(pl_host *h, const char *name, char *err, size_t errlen);
/* Unloads module name from h, with the modules that depend on it. */
int pl__modmgr_unload(pl_host *h, const char *name, char *err, size_t errlen);
/* save -> unload -> load -> restore, then the dependents likewise. */
int pl__modmgr_reload(pl_host *h, const char *name, char *err, size_t errlen);
/* The instance of name on h, or NULL. */
pl_module *pl__modmgr_find(pl_host *h, const char *name);
/* Unloads everything (shutdown). */
void pl__modmgr_unload_all(void);
/* Re-resolves every instance's option values from the current config. */
int pl__modmgr_refresh_options(char *err, size_t errlen);

/* Bookkeeping used by loop.c and dbapi.c. */
void pl__module_track_timer(pl_module *m, pl_timer *t);
void pl__module_untrack_timer(pl_module *m, pl_timer *t);

/* The global module list. */
extern pl_module *pl__global_modules;

#endif
