/* mod_motd: sends a message of the day to each session when it first
 * becomes available. The worked example of doc/module-guide.md. */
#include <string.h>
#include <parley/module.h>

static int on_available(pl_event *ev, void *ud)
{
    pl_module *m = ud;
    const char *text = pl_option_str(m, "text");
    if (!*text)
        return PL_PASS;
    pl_stanza *st = pl_stanza_new("message", NULL);
    pl_node *root = pl_stanza_root(st);
    pl_node_set_attr(st, root, "from", pl_host_name(ev->host));
    pl_node_set_attr(st, root, "to", pl_session_jid(ev->origin)->full);
    pl_node_set_attr(st, root, "type", "normal");
    pl_node *body = pl_node_add(st, root, "body", NULL);
    pl_node_add_text(st, body, text, strlen(text));
    pl_send(ev->origin, st);
    pl_stanza_unref(st);
    return PL_PASS;   /* others may want this event too */
}

static int motd_load(pl_module *m)
{
    return pl_hook(m, "session/available", on_available, m, 0);
}

static const pl_option motd_options[] = {
    { "text", PL_OPT_STRING, "", 0, 0, "the message sent to every user at login" },
    { NULL, 0, NULL, 0, 0, NULL },
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "motd",
    .description = "message of the day at login",
    .options = motd_options,
    .load = motd_load,
};
