/* core/modmgr.c: loading, unloading and reloading modules. A module's
 * shared object is opened once (RTLD_NOW, so a missing symbol fails at
 * load) and shared by its instances; each instance records what it
 * registers, and unloading removes all of it before the object is closed. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "core/host.h"
#include "core/modmgr.h"
#include "core/server.h"
#include "core/strmap.h"
#include "router/sessions.h"

struct pl__dso {
    char *name;
    void *handle;
    const pl_module_def *def;
    int refs;
};

pl_module *pl__global_modules;
static pl__strmap dsos = PL__STRMAP_INIT;

/* From options.c and dbapi.c. */
int pl__options_resolve(pl_module *m, char *err, size_t errlen);
void pl__options_free(pl_module *m);
void pl__module_cancel_queries(pl_module *m);

static int valid_name(const char *name)
{
    if (!*name || strlen(name) > 64)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

static const char *where(const pl_host *h)
{
    return h ? h->name : "*";
}

static pl__dso *dso_open(const char *name, char *err, size_t errlen)
{
    pl__dso *d = pl__strmap_get(&dsos, name);
    if (d) {
        d->refs++;
        return d;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/mod_%s.so", pl__server.config->modules_dir, name);
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(err, errlen, "cannot load module %s: %s", name, dlerror());
        return NULL;
    }
    const pl_module_def *def = dlsym(handle, "pl_module_descriptor");
    const char *bad = NULL;
    if (!def)
        bad = "it has no pl_module_descriptor";
    else if (def->abi_major != PL_MODULE_ABI_MAJOR)
        bad = "it was built for another module ABI major version";
    else if (def->abi_minor > PL_MODULE_ABI_MINOR)
        bad = "it needs a newer module ABI minor version";
    else if (def->size != sizeof(pl_module_def))
        bad = "its descriptor size does not match this server";
    else if (!def->signature || strcmp(def->signature, PL_BUILD_SIGNATURE) != 0)
        bad = "its build signature does not match this server";
    else if (!def->name || strcmp(def->name, name) != 0)
        bad = "its descriptor names another module";
    else if (!def->load)
        bad = "it has no load function";
    if (bad) {
        snprintf(err, errlen, "refusing module %s (%s): %s", name, path, bad);
        dlclose(handle);
        return NULL;
    }
    d = pl_calloc(1, sizeof *d);
    d->name = pl_strdup(name);
    d->handle = handle;
    d->def = def;
    d->refs = 1;
    pl__strmap_set(&dsos, name, d);
    return d;
}

static void dso_close(pl__dso *d)
{
    if (--d->refs > 0)
        return;
    pl__strmap_del(&dsos, d->name);
    dlclose(d->handle);
    pl_free(d->name);
    pl_free(d);
}

static pl_module **list_of(pl_host *h)
{
    return h ? &h->modules : &pl__global_modules;
}

pl_module *pl__modmgr_find(pl_host *h, const char *name)
{
    for (pl_module *m = *list_of(h); m; m = m->next)
        if (strcmp(m->def->name, name) == 0)
            return m;
    return NULL;
}

/* Removes everything m registered, then m itself. */
static void destroy(pl_module *m)
{
    while (m->timers)
        pl_timer_cancel(m->timers);
    pl__module_cancel_queries(m);
    pl__sessions_drop_module(m);
    pl__hooks_remove_owner(&pl__global_hooks, m);
    for (pl_host *h = pl__hosts; h; h = h->next)
        pl__host_remove_owner(h, m);
    for (pl_module **pp = list_of(m->host); *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    pl__options_free(m);
    pl__dso *d = m->dso;
    pl_free(m);
    dso_close(d);
}

static int depends_on(const pl_module *m, const char *name)
{
    if (!m->def->depends)
        return 0;
    for (const char *const *d = m->def->depends; *d; d++)
        if (strcmp(*d, name) == 0)
            return 1;
    return 0;
}

static int load_depth;

int pl__modmgr_load(pl_host *h, const char *name, char *err, size_t errlen)
{
    if (!valid_name(name)) {
        snprintf(err, errlen, "invalid module name '%s'", name);
        return -1;
    }
    pl__dso *d = dso_open(name, err, errlen);
    if (!d)
        return -1;
    if (d->def->flags & PL_MODULE_GLOBAL)
        h = NULL;
    if (pl__modmgr_find(h, name)) {
        dso_close(d);
        return 0;
    }
    if (load_depth > 16) {
        snprintf(err, errlen, "module %s: dependency chain too deep (a cycle?)", name);
        dso_close(d);
        return -1;
    }
    if (d->def->depends) {
        load_depth++;
        for (const char *const *dep = d->def->depends; *dep; dep++)
            if (pl__modmgr_load(h, *dep, err, errlen) != 0) {
                load_depth--;
                dso_close(d);
                return -1;
            }
        load_depth--;
    }
    pl_module *m = pl_calloc(1, sizeof *m);
    m->def = d->def;
    m->dso = d;
    m->host = h;
    if (pl__options_resolve(m, err, errlen) != 0) {
        pl__options_free(m);
        pl_free(m);
        dso_close(d);
        return -1;
    }
    m->next = *list_of(h);
    *list_of(h) = m;
    int rc = m->def->load(m);
    if (rc != PL_OK) {
        snprintf(err, errlen, "module %s failed to load on %s (error %d)", name, where(h), rc);
        destroy(m);
        return -1;
    }
    pl_log(PL_LOG_INFO, "module %s loaded on %s", name, where(h));
    return 0;
}

static void unload_one(pl_module *m)
{
    /* dependents first */
    pl_module *o;
    do {
        for (o = *list_of(m->host); o; o = o->next)
            if (o != m && depends_on(o, m->def->name))
                break;
        if (o) {
            pl_log(PL_LOG_INFO, "module %s is unloaded with %s", o->def->name, m->def->name);
            unload_one(o);
        }
    } while (o);
    if (m->def->unload)
        m->def->unload(m);
    pl_log(PL_LOG_INFO, "module %s unloaded from %s", m->def->name, where(m->host));
    destroy(m);
}

int pl__modmgr_unload(pl_host *h, const char *name, char *err, size_t errlen)
{
    pl_module *m = pl__modmgr_find(h, name);
    if (!m)
        m = pl__modmgr_find(NULL, name);
    if (!m) {
        snprintf(err, errlen, "module %s is not loaded on %s", name, where(h));
        return -1;
    }
    unload_one(m);
    return 0;
}

int pl__modmgr_reload(pl_host *h, const char *name, char *err, size_t errlen)
{
    pl_module *m = pl__modmgr_find(h, name);
    if (!m)
        m = pl__modmgr_find(h = NULL, name);
    if (!m) {
        snprintf(err, errlen, "module %s is not loaded on %s", name, where(h));
        return -1;
    }
    /* remember the dependents so they come back too */
    const char *deps[32];
    int ndeps = 0;
    for (pl_module *o = *list_of(h); o && ndeps < 32; o = o->next)
        if (o != m && depends_on(o, name))
            deps[ndeps++] = o->def->name;
    char *depnames[32];
    for (int i = 0; i < ndeps; i++)
        depnames[i] = pl_strdup(deps[i]);
    void *state = m->def->save ? m->def->save(m) : NULL;
    void (*restore)(pl_module *, void *) = m->def->restore;
    unload_one(m);
    int rc = pl__modmgr_load(h, name, err, errlen);
    if (rc == 0) {
        pl_module *n = pl__modmgr_find(h, name);
        if (n && n->def->restore)
            n->def->restore(n, state);
        else if (state && restore)
            pl_log(PL_LOG_WARN, "module %s: state from before the reload was dropped", name);
        for (int i = 0; i < ndeps && rc == 0; i++)
            rc = pl__modmgr_load(h, depnames[i], err, errlen);
    }
    for (int i = 0; i < ndeps; i++)
        pl_free(depnames[i]);
    if (rc == 0)
        pl_log(PL_LOG_INFO, "module %s reloaded on %s", name, where(h));
    return rc;
}

void pl__modmgr_unload_all(void)
{
    for (pl_host *h = pl__hosts; h; h = h->next)
        while (h->modules)
            unload_one(h->modules);
    while (pl__global_modules)
        unload_one(pl__global_modules);
}

int pl__modmgr_refresh_options(char *err, size_t errlen)
{
    for (pl_host *h = pl__hosts; h; h = h->next)
        for (pl_module *m = h->modules; m; m = m->next) {
            pl__options_free(m);
            if (pl__options_resolve(m, err, errlen) != 0)
                return -1;
        }
    for (pl_module *m = pl__global_modules; m; m = m->next) {
        pl__options_free(m);
        if (pl__options_resolve(m, err, errlen) != 0)
            return -1;
    }
    return 0;
}

void pl__module_track_timer(pl_module *m, pl_timer *t)
{
    if (!m)
        return;
    t->prev = NULL;
    t->next = m->timers;
    if (m->timers)
        m->timers->prev = t;
    m->timers = t;
}

void pl__module_untrack_timer(pl_module *m, pl_timer *t)
{
    if (!m)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else if (m->timers == t)
        m->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
}

/* ==== the module API's module accessors ==== */

pl_host *pl_module_host(const pl_module *m)
{
    return m->host;
}

const char *pl_module_name(const pl_module *m)
{
    return m->def->name;
}

void pl_module_set_data(pl_module *m, void *data)
{
    m->data = data;
}

void *pl_module_data(const pl_module *m)
{
    return m->data;
}

void pl_mlog(const pl_module *m, int level, const char *fmt, ...)
{
    if (!pl_log_enabled(level))
        return;
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pl_log(level, "mod_%s on %s: %s", m->def->name, where(m->host), msg);
}

int pl_hook(pl_module *m, const char *event, pl_hook_fn fn, void *ud, int priority)
{
    if (!m || !event || !fn)
        return PL_EINVAL;
    pl__hooks *t = m->host ? &m->host->hooks : &pl__global_hooks;
    pl__hooks_add(t, pl__event_id(event), fn, ud, priority, m);
    return PL_OK;
}

int pl_hook_global(pl_module *m, const char *event, pl_hook_fn fn, void *ud, int priority)
{
    if (!m || !event || !fn)
        return PL_EINVAL;
    pl__hooks_add(&pl__global_hooks, pl__event_id(event), fn, ud, priority, m);
    return PL_OK;
}

int pl_fire(pl_host *h, const char *event, pl_event *ev)
{
    int id = pl__event_lookup(event);
    if (id < 0)
        return PL_PASS;
    ev->name = event;
    return pl__hooks_fire(h ? &h->hooks : &pl__global_hooks, id, ev);
}
