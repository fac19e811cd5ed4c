/* modules/mod_ping/mod_ping.c: XMPP Ping (XEP-0199). Answers
 * <ping xmlns='urn:xmpp:ping'/> IQ gets sent to the server or to the
 * sender's own bare JID with an empty result, so clients can check that
 * their stream is alive. */
#include <parley/module.h>

#define NS_PING "urn:xmpp:ping"

static int on_ping(pl_event *ev, void *ud)
{
    pl_stanza *reply = pl_stanza_reply(ev->stanza);
    if (ev->origin)
        pl_send(ev->origin, reply);
    else
        pl_route(reply);
    pl_stanza_unref(reply);
    return PL_HANDLED;
}

static int ping_load(pl_module *m)
{
    int rc = pl_add_feature(m, NS_PING);
    if (rc < 0)
        return rc;
    return pl_iq_handle(m, PL_IQ_GET, PL_TO_HOST | PL_TO_SELF, NS_PING, "ping",
                        on_ping, NULL);
}

static const pl_option ping_options[] = { { .name = NULL } };

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "ping",
    .description = "XMPP Ping (XEP-0199): answers pings to the server",
    .options = ping_options,
    .load = ping_load,
};
