/* router/sessions.c: session registry by id and bound sessions by account,
 * plus the module API's session accessors. */
#include <stdio.h>
#include <string.h>
#include "core/host.h"
#include "core/modmgr.h"
#include "core/server.h"
#include "router/sessions.h"

static pl_session **slots;
static uint32_t nslots, capslots;
static uint32_t *free_slots;
static uint32_t nfree;
static uint32_t seq;
static int nbound;

void pl__sessions_register(pl_session *s)
{
    uint32_t slot;
    if (nfree) {
        slot = free_slots[--nfree];
    } else {
        if (nslots == capslots) {
            capslots = capslots ? capslots * 2 : 256;
            slots = pl_realloc(slots, sizeof *slots * capslots);
            free_slots = pl_realloc(free_slots, sizeof *free_slots * capslots);
        }
        slot = nslots++;
    }
    slots[slot] = s;
    s->id = ((uint64_t)++seq << 32) | slot;
}

void pl__sessions_unregister(pl_session *s)
{
    uint32_t slot = (uint32_t)(s->id & 0xffffffffu);
    if (slot < nslots && slots[slot] == s) {
        slots[slot] = NULL;
        free_slots[nfree++] = slot;
    }
}

pl_session *pl_session_by_id(uint64_t id)
{
    uint32_t slot = (uint32_t)(id & 0xffffffffu);
    if (slot >= nslots || !slots[slot] || slots[slot]->id != id)
        return NULL;
    return slots[slot];
}

void pl__sessions_each_raw(void (*cb)(pl_session *s, void *ud), void *ud)
{
    for (uint32_t i = 0; i < nslots; i++)
        if (slots[i])
            cb(slots[i], ud);
}

uint32_t pl__sessions_each_from(uint32_t from, uint32_t n,
                                 void (*cb)(pl_session *s, void *ud), void *ud)
{
    uint32_t i = from;
    for (; i < nslots && i - from < n; i++)
        if (slots[i])
            cb(slots[i], ud);
    return i < nslots ? i : 0;
}

uint32_t pl__sessions_slot_count(void)
{
    return nslots;
}

int pl__sessions_bound_count(void)
{
    return nbound;
}

pl__user *pl__sessions_user(pl_host *h, const char *node)
{
    return pl__strmap_get(&h->users, node);
}

void pl__sessions_bind(pl_session *s)
{
    pl_host *h = s->host;
    pl__user *u = pl__strmap_get(&h->users, s->jid->node);
    if (!u) {
        u = pl_calloc(1, sizeof *u);
        u->node = pl_strdup(s->jid->node);
        pl__strmap_set(&h->users, u->node, u);
    }
    /* append: resources keep their binding order */
    pl_session **pp = &u->sessions;
    while (*pp)
        pp = &(*pp)->next_res;
    *pp = s;
    s->next_res = NULL;
    s->user = u;
    u->count++;
    nbound++;
}

void pl__sessions_unbind(pl_session *s)
{
    pl__user *u = s->user;
    if (!u)
        return;
    for (pl_session **pp = &u->sessions; *pp; pp = &(*pp)->next_res)
        if (*pp == s) {
            *pp = s->next_res;
            break;
        }
    s->user = NULL;
    s->next_res = NULL;
    u->count--;
    nbound--;
    if (!u->sessions) {
        pl__strmap_del(&s->host->users, u->node);
        pl_free(u->node);
        pl_free(u);
    }
}

/* ==== module data ==== */

void pl_session_set_data(pl_session *s, pl_module *m, void *data, void (*free_fn)(void *))
{
    for (pl__sdata **pp = &s->data; *pp; pp = &(*pp)->next)
        if ((*pp)->m == m) {
            pl__sdata *d = *pp;
            if (d->free_fn && d->data && d->data != data)
                d->free_fn(d->data);
            if (!data) {
                *pp = d->next;
                pl_free(d);
            } else {
                d->data = data;
                d->free_fn = free_fn;
            }
            return;
        }
    if (!data)
        return;
    pl__sdata *d = pl_calloc(1, sizeof *d);
    d->m = m;
    d->data = data;
    d->free_fn = free_fn;
    d->next = s->data;
    s->data = d;
}

void *pl_session_data(const pl_session *s, pl_module *m)
{
    for (pl__sdata *d = s->data; d; d = d->next)
        if (d->m == m)
            return d->data;
    return NULL;
}

void pl__sessions_free_data(pl_session *s)
{
    while (s->data) {
        pl__sdata *d = s->data;
        s->data = d->next;
        if (d->free_fn)
            d->free_fn(d->data);
        pl_free(d);
    }
}

static void drop_one(pl_session *s, void *ud)
{
    pl_session_set_data(s, ud, NULL, NULL);
}

void pl__sessions_drop_module(pl_module *m)
{
    pl__sessions_each_raw(drop_one, m);
}

/* ==== module API accessors ==== */

const pl_jid *pl_session_jid(const pl_session *s)
{
    return s->user ? s->jid : NULL;
}

pl_host *pl_session_host(const pl_session *s)
{
    return s->host;
}

uint64_t pl_session_id(const pl_session *s)
{
    return s->id;
}

int pl_session_available(const pl_session *s)
{
    return s->available;
}

int pl_session_priority(const pl_session *s)
{
    return s->priority;
}

pl_stanza *pl_session_presence(const pl_session *s)
{
    return s->presence;
}

void pl_session_close(pl_session *s, const char *condition, const char *text)
{
    pl__c2s_close(s, condition, text);
}

int pl_user_sessions(pl_host *h, const char *node, pl_session **out, int max)
{
    pl__user *u = pl__strmap_get(&h->users, node);
    if (!u)
        return 0;
    int n = 0;
    for (pl_session *s = u->sessions; s; s = s->next_res, n++)
        if (n < max)
            out[n] = s;
    return n;
}

pl_session *pl_session_find(pl_host *h, const char *node, const char *resource)
{
    pl__user *u = pl__strmap_get(&h->users, node);
    if (!u)
        return NULL;
    for (pl_session *s = u->sessions; s; s = s->next_res)
        if (strcmp(s->jid->resource, resource) == 0)
            return s;
    return NULL;
}

/* ==== for the control socket ==== */

struct each_ctx {
    void (*cb)(const pl__session_info *, void *);
    void *ud;
};

static void info_one(pl_session *s, void *arg)
{
    struct each_ctx *ctx = arg;
    char tls[128];
    pl_tls *t = s->conn ? pl__conn_tls(s->conn) : NULL;
    if (t)
        snprintf(tls, sizeof tls, "%s/%s", pl_tls_version(t), pl_tls_cipher(t));
    else
        snprintf(tls, sizeof tls, "plain");
    pl__session_info info = {
        .id = s->id,
        .jid = s->user ? s->jid->full : "(unbound)",
        .address = s->conn ? pl__conn_peer(s->conn) : "-",
        .tls = tls,
        .available = s->available,
        .priority = s->priority,
        .connected_for = (long long)(time(NULL) - s->connected_at),
    };
    ctx->cb(&info, ctx->ud);
}

void pl__sessions_each(void (*cb)(const pl__session_info *info, void *ud), void *ud)
{
    struct each_ctx ctx = { cb, ud };
    pl__sessions_each_raw(info_one, &ctx);
}

int pl__session_kick(const char *full_jid)
{
    pl_jid *j = pl_jid_parse(full_jid);
    if (!j)
        return -1;
    pl_session *s = NULL;
    pl_host *h = pl_host_find(j->domain);
    if (h && j->node && j->resource)
        s = pl_session_find(h, j->node, j->resource);
    pl_jid_free(j);
    if (!s)
        return -1;
    pl__c2s_close(s, "policy-violation", "kicked by administrator");
    return 0;
}

int pl__conn_count(void)
{
    return pl__conn_count_all();
}

int pl__session_count(void)
{
    return nbound;
}
