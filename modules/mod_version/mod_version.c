/* modules/mod_version/mod_version.c: Software Version (XEP-0092). Answers
 * jabber:iq:version queries to the server with the software name, its
 * version and, unless the hide_os option is set, the operating system
 * (read once with uname(2) when the module loads). */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <parley/module.h>

#define NS_VERSION "jabber:iq:version"

/* The module instance's data: the operating system text, or NULL when it
 * is hidden. */
typedef struct version_state {
    char *os;
} version_state;

static void add_text_child(pl_stanza *st, pl_node *parent, const char *name,
                           const char *text)
{
    pl_node *n = pl_node_add(st, parent, name, NULL);
    pl_node_add_text(st, n, text, strlen(text));
}

static int on_version(pl_event *ev, void *ud)
{
    const version_state *vs = ud;
    pl_stanza *reply = pl_stanza_reply(ev->stanza);
    pl_node *q = pl_node_add(reply, pl_stanza_root(reply), "query", NS_VERSION);
    add_text_child(reply, q, "name", "Parley");
    add_text_child(reply, q, "version", pl_server_version());
    if (vs->os)
        add_text_child(reply, q, "os", vs->os);
    if (ev->origin)
        pl_send(ev->origin, reply);
    else
        pl_route(reply);
    pl_stanza_unref(reply);
    return PL_HANDLED;
}

/* "Linux 6.1.0-13-amd64", or NULL if uname fails. */
static char *read_os(void)
{
    struct utsname u;
    if (uname(&u) != 0)
        return NULL;
    size_t n = strlen(u.sysname) + strlen(u.release) + 2;
    char *os = pl_malloc(n);
    snprintf(os, n, "%s %s", u.sysname, u.release);
    return os;
}

static void version_unload(pl_module *m)
{
    version_state *vs = pl_module_data(m);
    if (!vs)
        return;
    pl_free(vs->os);
    pl_free(vs);
    pl_module_set_data(m, NULL);
}

static int version_load(pl_module *m)
{
    version_state *vs = pl_calloc(1, sizeof *vs);
    if (!pl_option_bool(m, "hide_os"))
        vs->os = read_os();
    pl_module_set_data(m, vs);
    int rc = pl_add_feature(m, NS_VERSION);
    if (rc == 0)
        rc = pl_iq_handle(m, PL_IQ_GET, PL_TO_HOST, NS_VERSION, "query", on_version, vs);
    if (rc < 0)
        version_unload(m);
    return rc;
}

static const pl_option version_options[] = {
    { .name = "hide_os", .type = PL_OPT_BOOL, .def = "no",
      .help = "leave the operating system out of version answers" },
    { .name = NULL }
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "version",
    .description = "Software Version (XEP-0092): the server's name, version and OS",
    .options = version_options,
    .load = version_load,
    .unload = version_unload,
};
