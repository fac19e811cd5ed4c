/* xmpp/errors.c: reply and error-reply stanzas (RFC 6120 section 8.3) and
 * the default error type of each defined condition. */
#include <string.h>
#include <parley/module.h>
#include "c2s/c2s.h"

static const struct { const char *cond, *type; } defaults[] = {
    { "bad-request", "modify" },
    { "conflict", "cancel" },
    { "feature-not-implemented", "cancel" },
    { "forbidden", "auth" },
    { "gone", "cancel" },
    { "internal-server-error", "cancel" },
    { "item-not-found", "cancel" },
    { "jid-malformed", "modify" },
    { "not-acceptable", "modify" },
    { "not-allowed", "cancel" },
    { "not-authorized", "auth" },
    { "policy-violation", "modify" },
    { "recipient-unavailable", "wait" },
    { "redirect", "modify" },
    { "registration-required", "auth" },
    { "remote-server-not-found", "cancel" },
    { "remote-server-timeout", "wait" },
    { "resource-constraint", "wait" },
    { "service-unavailable", "cancel" },
    { "subscription-required", "auth" },
    { "undefined-condition", "cancel" },
    { "unexpected-request", "wait" },
};

const char *pl_error_type_of(const char *condition)
{
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (strcmp(defaults[i].cond, condition) == 0)
            return defaults[i].type;
    return "cancel";
}

pl_stanza *pl_stanza_reply(const pl_stanza *orig)
{
    const pl_node *r = pl_stanza_root(orig);
    pl_stanza *st = pl_stanza_new(r->name, r->ns);
    pl_node *n = pl_stanza_root(st);
    const char *v;
    if ((v = pl_node_attr(r, "id")))
        pl_node_set_attr(st, n, "id", v);
    if ((v = pl_node_attr(r, "from")))
        pl_node_set_attr(st, n, "to", v);
    if ((v = pl_node_attr(r, "to")))
        pl_node_set_attr(st, n, "from", v);
    if (strcmp(r->name, "iq") == 0)
        pl_node_set_attr(st, n, "type", "result");
    else if ((v = pl_node_attr(r, "type")))
        pl_node_set_attr(st, n, "type", v);
    return st;
}

pl_stanza *pl_stanza_error_reply(const pl_stanza *orig, const char *type,
                                 const char *condition, const char *text)
{
    pl_stanza *st = pl_stanza_reply(orig);
    pl_node *n = pl_stanza_root(st);
    pl_node_set_attr(st, n, "type", "error");
    pl_node *e = pl_node_add(st, n, "error", NULL);
    pl_node_set_attr(st, e, "type", type ? type : pl_error_type_of(condition));
    pl_node_add(st, e, condition, PL_NS_STANZAS);
    if (text && *text) {
        pl_node *t = pl_node_add(st, e, "text", PL_NS_STANZAS);
        pl_node_add_text(st, t, text, strlen(text));
    }
    return st;
}

void pl_reply_error(pl_event *ev, const char *type, const char *condition, const char *text)
{
    const pl_node *r = pl_stanza_root(ev->stanza);
    const char *t = pl_node_attr(r, "type");
    /* Never answer an error with an error, nor an IQ result. */
    if (t && (strcmp(t, "error") == 0 || (strcmp(r->name, "iq") == 0 && strcmp(t, "result") == 0)))
        return;
    pl_stanza *reply = pl_stanza_error_reply(ev->stanza, type, condition, text);
    if (ev->origin)
        pl__c2s_send(ev->origin, reply);
    else if (pl_node_attr(pl_stanza_root(reply), "to"))
        pl_route(reply);
    pl_stanza_unref(reply);
}
