/* core/host.c: virtual hosts and what modules register on them: IQ
 * handlers, disco features/identities/items, stream features and the
 * authentication provider. */
#include <string.h>
#include "core/host.h"
#include "core/modmgr.h"
#include "core/server.h"
#include "router/router.h"

pl_host *pl__hosts;
static pl__strmap by_name = PL__STRMAP_INIT;

pl_host *pl_host_find(const char *domain)
{
    return pl__strmap_get(&by_name, domain);
}

const char *pl_host_name(const pl_host *h)
{
    return h->name;
}

static pl_host *host_new(const pl_vhost_conf *vc, char *err, size_t errlen)
{
    pl_tls_creds *creds = pl_tls_creds_load(vc->certificate, vc->key, err, errlen);
    if (!creds)
        return NULL;
    pl_host *h = pl_calloc(1, sizeof *h);
    h->name = pl_strdup(vc->name);
    h->creds = creds;
    pl__router_host_init(h);
    h->next = pl__hosts;
    pl__hosts = h;
    pl__strmap_set(&by_name, h->name, h);
    pl_log(PL_LOG_INFO, "host %s: added", h->name);
    return h;
}

int pl__hosts_init(const pl_config *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->nvhosts; i++)
        if (!host_new(&c->vhosts[i], err, errlen))
            return -1;
    return 0;
}

int pl__hosts_reconfigure(const pl_config *c, char *err, size_t errlen)
{
    for (pl_host *h = pl__hosts; h; h = h->next)
        if (!pl_config_vhost(c, h->name)) {
            snprintf(err, errlen, "host %s was removed from the config: "
                     "removing a host needs a restart", h->name);
            return -1;
        }
    for (int i = 0; i < c->nvhosts; i++) {
        const pl_vhost_conf *vc = &c->vhosts[i];
        pl_host *h = pl_host_find(vc->name);
        if (!h) {
            if (!host_new(vc, err, errlen))
                return -1;
            continue;
        }
        pl_tls_creds *creds = pl_tls_creds_load(vc->certificate, vc->key, err, errlen);
        if (!creds)
            return -1;
        /* Sessions in a handshake hold the old credentials: keep them
         * until shutdown (reloads are rare). */
        h->retired = pl_realloc(h->retired, sizeof *h->retired * (size_t)(h->nretired + 1));
        h->retired[h->nretired++] = h->creds;
        h->creds = creds;
    }
    return 0;
}

static void free_disco(pl__disco *d)
{
    pl_free(d->a);
    pl_free(d->b);
    pl_free(d->c);
    pl_free(d);
}

void pl__hosts_free(void)
{
    pl_host *h = pl__hosts, *next;
    for (; h; h = next) {
        next = h->next;
        pl__host_remove_owner(h, NULL);
        pl__hooks_free(&h->hooks);
        pl__strmap_clear(&h->users);
        pl_tls_creds_free(h->creds);
        for (int i = 0; i < h->nretired; i++)
            pl_tls_creds_free(h->retired[i]);
        pl_free(h->retired);
        pl_free(h->name);
        pl_free(h);
    }
    pl__hosts = NULL;
    pl__strmap_clear(&by_name);
}

void pl__host_remove_owner(pl_host *h, pl_module *m)
{
    /* m == NULL removes everything (shutdown) */
    for (pl__iqh **pp = &h->iqs; *pp;) {
        pl__iqh *q = *pp;
        if (!m || q->owner == m) {
            *pp = q->next;
            pl_free(q->xmlns);
            pl_free(q->name);
            pl_free(q);
        } else {
            pp = &q->next;
        }
    }
    for (pl__disco **pp = &h->disco; *pp;) {
        pl__disco *d = *pp;
        if (!m || d->owner == m) {
            *pp = d->next;
            free_disco(d);
        } else {
            pp = &d->next;
        }
    }
    for (pl__sfeature **pp = &h->sfeatures; *pp;) {
        pl__sfeature *f = *pp;
        if (!m || f->owner == m) {
            *pp = f->next;
            pl_free(f);
        } else {
            pp = &f->next;
        }
    }
    for (pl__api **pp = &h->apis; *pp;) {
        pl__api *a = *pp;
        if (!m || a->owner == m) {
            *pp = a->next;
            pl_free(a->name);
            pl_free(a);
        } else {
            pp = &a->next;
        }
    }
    if (!m || h->auth_owner == m) {
        h->auth = NULL;
        h->auth_owner = NULL;
    }
    if (m)
        pl__hooks_remove_owner(&h->hooks, m);
}

/* ==== IQ handlers ==== */

int pl_iq_handle(pl_module *m, int types, int targets, const char *xmlns,
                 const char *name, pl_hook_fn fn, void *ud)
{
    pl_host *h = m->host;
    if (!h || !xmlns || !name || !fn || !types || !targets)
        return PL_EINVAL;
    for (pl__iqh *q = h->iqs; q; q = q->next)
        if ((q->types & types) && (q->targets & targets) && strcmp(q->xmlns, xmlns) == 0
            && strcmp(q->name, name) == 0) {
            pl_mlog(m, PL_LOG_ERROR, "IQ handler for %s %s is already taken by %s", xmlns,
                    name, q->owner ? pl_module_name(q->owner) : "the core");
            return PL_EEXIST;
        }
    pl__iqh *q = pl_calloc(1, sizeof *q);
    q->owner = m;
    q->types = types;
    q->targets = targets;
    q->xmlns = pl_strdup(xmlns);
    q->name = pl_strdup(name);
    q->fn = fn;
    q->ud = ud;
    q->next = h->iqs;
    h->iqs = q;
    return PL_OK;
}

pl__iqh *pl__host_iq(pl_host *h, int type, int target, const pl_node *payload)
{
    for (pl__iqh *q = h->iqs; q; q = q->next)
        if ((q->types & type) && (q->targets & target) && strcmp(q->name, payload->name) == 0
            && strcmp(q->xmlns, payload->ns) == 0)
            return q;
    return NULL;
}

/* ==== disco ==== */

static int add_disco(pl_module *m, int kind, const char *a, const char *b, const char *c)
{
    pl_host *h = m->host;
    if (!h || !a)
        return PL_EINVAL;
    pl__disco *d = pl_calloc(1, sizeof *d);
    d->owner = m;
    d->kind = kind;
    d->a = pl_strdup(a);
    d->b = b ? pl_strdup(b) : NULL;
    d->c = c ? pl_strdup(c) : NULL;
    /* append, so output follows registration order */
    pl__disco **pp = &h->disco;
    while (*pp)
        pp = &(*pp)->next;
    *pp = d;
    return PL_OK;
}

int pl_add_feature(pl_module *m, const char *var)
{
    return add_disco(m, PL__DISCO_FEATURE, var, NULL, NULL);
}

int pl_add_identity(pl_module *m, const char *category, const char *type, const char *name)
{
    if (!type)
        return PL_EINVAL;
    return add_disco(m, PL__DISCO_IDENTITY, category, type, name);
}

int pl_add_item(pl_module *m, const char *jid, const char *name)
{
    return add_disco(m, PL__DISCO_ITEM, jid, name, NULL);
}

void pl_host_features(pl_host *h, pl_feature_cb cb, void *ud)
{
    for (pl__disco *d = h->disco; d; d = d->next)
        if (d->kind == PL__DISCO_FEATURE)
            cb(d->a, ud);
}

void pl_host_identities(pl_host *h, pl_identity_cb cb, void *ud)
{
    /* The server's own identity always comes first. */
    cb("server", "im", pl_server_name(), ud);
    for (pl__disco *d = h->disco; d; d = d->next)
        if (d->kind == PL__DISCO_IDENTITY)
            cb(d->a, d->b, d->c, ud);
}

void pl_host_items(pl_host *h, pl_item_cb cb, void *ud)
{
    for (pl__disco *d = h->disco; d; d = d->next)
        if (d->kind == PL__DISCO_ITEM)
            cb(d->a, d->b, ud);
}

/* ==== stream features and auth ==== */

int pl_add_stream_feature(pl_module *m, pl_stream_feature_fn fn, void *ud)
{
    pl_host *h = m->host;
    if (!h || !fn)
        return PL_EINVAL;
    pl__sfeature *f = pl_calloc(1, sizeof *f);
    f->owner = m;
    f->fn = fn;
    f->ud = ud;
    pl__sfeature **pp = &h->sfeatures;
    while (*pp)
        pp = &(*pp)->next;
    *pp = f;
    return PL_OK;
}

void pl__host_stream_features(pl_host *h, pl_session *s, pl_stanza *st, pl_node *features)
{
    for (pl__sfeature *f = h->sfeatures; f; f = f->next)
        f->fn(s, st, features, f->ud);
}

int pl_provide_auth(pl_module *m, const pl_auth_provider *p)
{
    pl_host *h = m->host;
    if (!h || !p)
        return PL_EINVAL;
    if (h->auth && h->auth_owner != m) {
        pl_mlog(m, PL_LOG_ERROR, "host already has the authentication provider %s",
                h->auth->name);
        return PL_EEXIST;
    }
    h->auth = p;
    h->auth_owner = m;
    return PL_OK;
}

pl_tls_creds *pl__host_sni(const char *server_name, void *ud)
{
    if (!server_name)
        return NULL;
    char name[1024];
    if (pl_jid_nameprep(server_name, name, sizeof name) != 0)
        return NULL;
    pl_host *h = pl_host_find(name);
    return h ? h->creds : NULL;
}

/* ==== services between modules ==== */

int pl_provide_api(pl_module *m, const char *name, const void *api)
{
    pl_host *h = m->host;
    if (!h || !name || !api)
        return PL_EINVAL;
    if (pl_get_api(h, name))
        return PL_EEXIST;
    pl__api *a = pl_calloc(1, sizeof *a);
    a->owner = m;
    a->name = pl_strdup(name);
    a->api = api;
    a->next = h->apis;
    h->apis = a;
    return PL_OK;
}

const void *pl_get_api(pl_host *h, const char *name)
{
    for (pl__api *a = h ? h->apis : NULL; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->api;
    return NULL;
}
