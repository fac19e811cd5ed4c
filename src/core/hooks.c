/* core/hooks.c: interned event names and prioritised handler chains. */
#include <stdint.h>
#include <string.h>
#include "core/hooks.h"
#include "core/strmap.h"

pl__hooks pl__global_hooks;

int PL__EV_MESSAGE_FULL, PL__EV_MESSAGE_BARE, PL__EV_MESSAGE_HOST;
int PL__EV_PRESENCE_FULL, PL__EV_PRESENCE_BARE, PL__EV_PRESENCE_HOST, PL__EV_PRESENCE_SELF;
int PL__EV_IQ_FULL, PL__EV_MESSAGE_OFFLINE, PL__EV_ROUTE_REMOTE;
int PL__EV_SESSION_BOUND, PL__EV_SESSION_AVAILABLE, PL__EV_SESSION_CLOSED;
int PL__EV_PRE_MESSAGE, PL__EV_PRE_PRESENCE, PL__EV_PRE_IQ;

static pl__strmap names = PL__STRMAP_INIT;
static char **by_id;
static int nids;

int pl__event_id(const char *name)
{
    void *v = pl__strmap_get(&names, name);
    if (v)
        return (int)(intptr_t)v - 1;
    by_id = pl_realloc(by_id, sizeof *by_id * (size_t)(nids + 1));
    by_id[nids] = pl_strdup(name);
    pl__strmap_set(&names, name, (void *)(intptr_t)(nids + 1));
    return nids++;
}

int pl__event_lookup(const char *name)
{
    void *v = pl__strmap_get(&names, name);
    return v ? (int)(intptr_t)v - 1 : -1;
}

const char *pl__event_name(int id)
{
    return id >= 0 && id < nids ? by_id[id] : "?";
}

void pl__events_init(void)
{
    PL__EV_MESSAGE_FULL = pl__event_id("message/full");
    PL__EV_MESSAGE_BARE = pl__event_id("message/bare");
    PL__EV_MESSAGE_HOST = pl__event_id("message/host");
    PL__EV_PRESENCE_FULL = pl__event_id("presence/full");
    PL__EV_PRESENCE_BARE = pl__event_id("presence/bare");
    PL__EV_PRESENCE_HOST = pl__event_id("presence/host");
    PL__EV_PRESENCE_SELF = pl__event_id("presence/self");
    PL__EV_IQ_FULL = pl__event_id("iq/full");
    PL__EV_MESSAGE_OFFLINE = pl__event_id("message/offline");
    PL__EV_ROUTE_REMOTE = pl__event_id("route/remote");
    PL__EV_SESSION_BOUND = pl__event_id("session/bound");
    PL__EV_SESSION_AVAILABLE = pl__event_id("session/available");
    PL__EV_SESSION_CLOSED = pl__event_id("session/closed");
    PL__EV_PRE_MESSAGE = pl__event_id("pre-message");
    PL__EV_PRE_PRESENCE = pl__event_id("pre-presence");
    PL__EV_PRE_IQ = pl__event_id("pre-iq");
}

void pl__events_free(void)
{
    for (int i = 0; i < nids; i++)
        pl_free(by_id[i]);
    pl_free(by_id);
    by_id = NULL;
    nids = 0;
    pl__strmap_clear(&names);
}

static pl__chain *chain_of(pl__hooks *t, int id)
{
    if (id >= t->nchains) {
        int n = id + 8;
        t->chains = pl_realloc(t->chains, sizeof *t->chains * (size_t)n);
        memset(t->chains + t->nchains, 0, sizeof *t->chains * (size_t)(n - t->nchains));
        t->nchains = n;
    }
    return &t->chains[id];
}

static void compact(pl__chain *c)
{
    int j = 0;
    for (int i = 0; i < c->n; i++)
        if (c->h[i].fn)
            c->h[j++] = c->h[i];
    c->n = j;
    c->dirty = 0;
}

void pl__hooks_add(pl__hooks *t, int id, pl_hook_fn fn, void *ud, int prio, pl_module *owner)
{
    pl__chain *c = chain_of(t, id);
    if (c->dirty && !c->firing)
        compact(c);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->h = pl_realloc(c->h, sizeof *c->h * (size_t)c->cap);
    }
    /* While the chain is firing, append (the new handler runs from the
     * next fire on, in order once compacted); otherwise insert sorted. */
    int pos = c->n;
    if (!c->firing)
        for (pos = 0; pos < c->n && c->h[pos].prio >= prio; pos++)
            ;
    memmove(c->h + pos + 1, c->h + pos, sizeof *c->h * (size_t)(c->n - pos));
    c->h[pos] = (pl__handler){ fn, ud, prio, owner };
    c->n++;
    if (c->firing)
        c->dirty = 1;
}

/* Stable insertion sort, higher priority first. */
static void sort_chain(pl__chain *c)
{
    for (int i = 1; i < c->n; i++) {
        pl__handler x = c->h[i];
        int j = i;
        for (; j > 0 && c->h[j - 1].prio < x.prio; j--)
            c->h[j] = c->h[j - 1];
        c->h[j] = x;
    }
}

void pl__hooks_remove_owner(pl__hooks *t, pl_module *owner)
{
    for (int i = 0; i < t->nchains; i++) {
        pl__chain *c = &t->chains[i];
        for (int k = 0; k < c->n; k++)
            if (c->h[k].fn && c->h[k].owner == owner) {
                c->h[k].fn = NULL;
                c->dirty = 1;
            }
        if (c->dirty && !c->firing)
            compact(c);
    }
}

int pl__hooks_fire(pl__hooks *t, int id, pl_event *ev)
{
    if (id < 0 || id >= t->nchains || t->chains[id].n == 0)
        return PL_PASS;
    int rc = PL_PASS;
    t->chains[id].firing++;
    for (int i = 0; i < t->chains[id].n; i++) {
        pl__handler h = t->chains[id].h[i];
        if (!h.fn)
            continue;
        rc = h.fn(ev, h.ud);
        if (rc != PL_PASS)
            break;
    }
    pl__chain *c = &t->chains[id];
    if (--c->firing == 0 && c->dirty) {
        compact(c);
        /* handlers appended while firing are put in priority order */
        sort_chain(c);
    }
    return rc;
}

int pl__hooks_count(const pl__hooks *t, int id)
{
    if (id < 0 || id >= t->nchains)
        return 0;
    int n = 0;
    for (int i = 0; i < t->chains[id].n; i++)
        n += t->chains[id].h[i].fn != NULL;
    return n;
}

void pl__hooks_free(pl__hooks *t)
{
    for (int i = 0; i < t->nchains; i++)
        pl_free(t->chains[i].h);
    pl_free(t->chains);
    t->chains = NULL;
    t->nchains = 0;
}
