/* c2s/bind.c: resource binding (RFC 6120 section 7) and the legacy
 * session IQ (RFC 3921, kept optional by RFC 6121). A second login with a
 * resource in use replaces the old session, which gets <conflict/>. */
#include <stdio.h>
#include <string.h>
#include "c2s/c2s.h"
#include "core/host.h"
#include "core/server.h"
#include "router/sessions.h"
#include "sasl/scram.h"

#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"

static void reply_error(pl_session *s, pl_stanza *st, const char *type, const char *cond)
{
    pl_stanza *e = pl_stanza_error_reply(st, type, cond, NULL);
    pl_node_set_attr(e, pl_stanza_root(e), "from", NULL);
    pl__c2s_send(s, e);
    pl_stanza_unref(e);
}

static void bind_resource(pl_session *s, pl_stanza *st, pl_node *bind)
{
    pl_node *rn = pl_node_child(bind, "resource", NS_BIND);
    const char *want = rn ? pl_node_text(st, rn) : "";
    char res[1024];
    if (*want) {
        if (pl_jid_resourceprep_stored(want, res, sizeof res) != 0 || !res[0]) {
            reply_error(s, st, "modify", "jid-malformed");
            return;
        }
    } else {
        unsigned char rnd[6];
        pl_random(rnd, sizeof rnd);
        snprintf(res, sizeof res, "parley-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                 rnd[3], rnd[4], rnd[5]);
    }
    pl_jid *jid = pl_jid_make(s->username, s->host->name, res);
    if (!jid) {
        reply_error(s, st, "modify", "jid-malformed");
        return;
    }
    pl_session *old = pl_session_find(s->host, s->username, jid->resource);
    pl__user *u = pl__sessions_user(s->host, s->username);
    if (!old && u && u->count >= pl__server.config->limits.max_resources) {
        pl_jid_free(jid);
        reply_error(s, st, "wait", "resource-constraint");
        return;
    }
    if (old)
        pl__c2s_close(old, "conflict", "replaced by a new login with the same resource");
    s->jid = jid;
    pl__sessions_bind(s);
    pl_stanza *r = pl_stanza_reply(st);
    pl_node *root = pl_stanza_root(r);
    pl_node_set_attr(r, root, "from", NULL);
    pl_node_set_attr(r, root, "to", NULL);
    pl_node *b = pl_node_add(r, root, "bind", NS_BIND);
    pl_node *j = pl_node_add(r, b, "jid", NULL);
    pl_node_add_text(r, j, jid->full, strlen(jid->full));
    pl__c2s_send(s, r);
    pl_stanza_unref(r);
    pl_log(PL_LOG_INFO, "c2s %s: bound %s", pl__conn_peer(s->conn), jid->full);
    pl__c2s_bound(s);
}

int pl__bind_handle(pl_session *s, pl_stanza *st)
{
    pl_node *r = pl_stanza_root(st);
    if (strcmp(r->name, "iq") != 0)
        return 0;
    const char *type = pl_node_attr(r, "type");
    pl_node *payload = pl_node_first_element(r);
    if (!payload || !type || strcmp(type, "set") != 0)
        return 0;
    if (pl_node_is(payload, "bind", NS_BIND)) {
        if (s->state != PL__C2S_BIND) {
            reply_error(s, st, "cancel", "not-allowed");
            return 1;
        }
        if (!pl_node_attr(r, "id")) {
            reply_error(s, st, "modify", "bad-request");
            return 1;
        }
        bind_resource(s, st, payload);
        return 1;
    }
    if (pl_node_is(payload, "session", NS_SESSION)) {
        pl_stanza *reply = pl_stanza_reply(st);
        pl_node_set_attr(reply, pl_stanza_root(reply), "from", NULL);
        if (s->jid)
            pl_node_set_attr(reply, pl_stanza_root(reply), "to", s->jid->full);
        pl__c2s_send(s, reply);
        pl_stanza_unref(reply);
        s->legacy_session = 1;
        return 1;
    }
    return 0;
}
