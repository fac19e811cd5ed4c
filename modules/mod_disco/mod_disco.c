/* modules/mod_disco/mod_disco.c: Service Discovery (XEP-0030). Answers
 * disco#info and disco#items queries to the server from what the core
 * and the host's modules registered (identities, features, items), and
 * disco#info queries to an account's bare JID with the account's
 * identity. Features and identities are sorted and de-duplicated so that
 * answers (and capability hashes computed from them) are stable. */
#include <stdlib.h>
#include <string.h>
#include <parley/module.h>

#define NS_INFO  "http://jabber.org/protocol/disco#info"
#define NS_ITEMS "http://jabber.org/protocol/disco#items"

/* ==== collecting ==== */

typedef struct identity {
    const char *category, *type, *name;
} identity;

typedef struct collected {
    const char **features;
    int nfeatures, capfeatures;
    identity *ids;
    int nids, capids;
} collected;

static void collect_feature(const char *var, void *ud)
{
    collected *c = ud;
    if (!var)
        return;
    if (c->nfeatures == c->capfeatures) {
        c->capfeatures = c->capfeatures ? 2 * c->capfeatures : 16;
        c->features = pl_realloc(c->features, (size_t)c->capfeatures * sizeof *c->features);
    }
    c->features[c->nfeatures++] = var;
}

static void collect_identity(const char *category, const char *type,
                             const char *name, void *ud)
{
    collected *c = ud;
    if (!category || !type)
        return;
    if (c->nids == c->capids) {
        c->capids = c->capids ? 2 * c->capids : 4;
        c->ids = pl_realloc(c->ids, (size_t)c->capids * sizeof *c->ids);
    }
    c->ids[c->nids++] = (identity){ category, type, name };
}

static void collected_free(collected *c)
{
    pl_free(c->features);
    pl_free(c->ids);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* NULL sorts before any name. */
static int cmp_opt(const char *a, const char *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

static int cmp_identity(const void *a, const void *b)
{
    const identity *x = a, *y = b;
    int d = strcmp(x->category, y->category);
    if (d == 0)
        d = strcmp(x->type, y->type);
    if (d == 0)
        d = cmp_opt(x->name, y->name);
    return d;
}

/* ==== answering ==== */

static void send_reply(pl_event *ev, pl_stanza *reply)
{
    if (ev->origin)
        pl_send(ev->origin, reply);
    else
        pl_route(reply);
    pl_stanza_unref(reply);
}

static void add_identity(pl_stanza *st, pl_node *q, const identity *id)
{
    pl_node *n = pl_node_add(st, q, "identity", NULL);
    pl_node_set_attr(st, n, "category", id->category);
    pl_node_set_attr(st, n, "type", id->type);
    if (id->name)
        pl_node_set_attr(st, n, "name", id->name);
}

static void add_feature(pl_stanza *st, pl_node *q, const char *var)
{
    pl_node *n = pl_node_add(st, q, "feature", NULL);
    pl_node_set_attr(st, n, "var", var);
}

/* Writes the identities and features of c into q, sorted, each once. */
static void write_info(pl_stanza *st, pl_node *q, collected *c)
{
    if (c->nids > 1)
        qsort(c->ids, (size_t)c->nids, sizeof *c->ids, cmp_identity);
    for (int i = 0; i < c->nids; i++)
        if (i == 0 || cmp_identity(&c->ids[i - 1], &c->ids[i]) != 0)
            add_identity(st, q, &c->ids[i]);
    if (c->nfeatures > 1)
        qsort(c->features, (size_t)c->nfeatures, sizeof *c->features, cmp_str);
    for (int i = 0; i < c->nfeatures; i++)
        if (i == 0 || strcmp(c->features[i - 1], c->features[i]) != 0)
            add_feature(st, q, c->features[i]);
}

/* This module knows no nodes: a query naming one gets item-not-found. */
static int has_node(pl_event *ev, const char *ns)
{
    pl_node *q = pl_node_child(pl_stanza_root(ev->stanza), "query", ns);
    return q && pl_node_attr(q, "node") != NULL;
}

static int item_not_found(pl_event *ev)
{
    ev->error.type = "cancel";
    ev->error.condition = "item-not-found";
    ev->error.text = NULL;
    return PL_ERROR;
}

static int on_host_info(pl_event *ev, void *ud)
{
    if (has_node(ev, NS_INFO))
        return item_not_found(ev);
    collected c = { 0 };
    pl_host_identities(ev->host, collect_identity, &c);
    pl_host_features(ev->host, collect_feature, &c);
    pl_stanza *reply = pl_stanza_reply(ev->stanza);
    pl_node *q = pl_node_add(reply, pl_stanza_root(reply), "query", NS_INFO);
    write_info(reply, q, &c);
    collected_free(&c);
    send_reply(ev, reply);
    return PL_HANDLED;
}

typedef struct items_ctx {
    pl_stanza *st;
    pl_node *q;
} items_ctx;

static void write_item(const char *jid, const char *name, void *ud)
{
    items_ctx *ic = ud;
    if (!jid)
        return;
    pl_node *n = pl_node_add(ic->st, ic->q, "item", NULL);
    pl_node_set_attr(ic->st, n, "jid", jid);
    if (name)
        pl_node_set_attr(ic->st, n, "name", name);
}

static int on_host_items(pl_event *ev, void *ud)
{
    if (has_node(ev, NS_ITEMS))
        return item_not_found(ev);
    pl_stanza *reply = pl_stanza_reply(ev->stanza);
    items_ctx ic = { reply, pl_node_add(reply, pl_stanza_root(reply), "query", NS_ITEMS) };
    pl_host_items(ev->host, write_item, &ic);
    send_reply(ev, reply);
    return PL_HANDLED;
}

/* An account's bare JID: the server answers on its behalf. */
static int on_account_info(pl_event *ev, void *ud)
{
    if (has_node(ev, NS_INFO))
        return item_not_found(ev);
    pl_stanza *reply = pl_stanza_reply(ev->stanza);
    pl_node *q = pl_node_add(reply, pl_stanza_root(reply), "query", NS_INFO);
    add_identity(reply, q, &(identity){ "account", "registered", NULL });
    add_feature(reply, q, NS_INFO);
    send_reply(ev, reply);
    return PL_HANDLED;
}

static int disco_load(pl_module *m)
{
    int rc = pl_add_feature(m, NS_INFO);
    if (rc == 0)
        rc = pl_add_feature(m, NS_ITEMS);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET, PL_TO_HOST, NS_INFO, "query", on_host_info, NULL);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET, PL_TO_HOST, NS_ITEMS, "query", on_host_items, NULL);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET, PL_TO_SELF | PL_TO_BARE, NS_INFO, "query",
                          on_account_info, NULL);
    return rc;
}

static const pl_option disco_options[] = { { .name = NULL } };

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "disco",
    .description = "Service Discovery (XEP-0030): the server's identities, features and items",
    .options = disco_options,
    .load = disco_load,
};
