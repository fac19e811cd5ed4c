/* core/config.c: the meaning of the configuration file. Walks the tree
 * parsed by conffile.c with one table of directives per block, checks
 * arguments, values and bounds, resolves relative paths against the
 * directory of the file that names them, and fills pl_config. Module
 * options are kept as nodes and validated later by the module loader. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <gnutls/gnutls.h>
#include <parley/base.h>
#include <parley/buf.h>
#include <parley/jid.h>
#include "core/config.h"

#ifdef PL_MODULES_DIR
#define DEFAULT_MODULES_DIR PL_MODULES_DIR
#else
#define DEFAULT_MODULES_DIR "/usr/local/lib/parley/modules"
#endif

#define DEFAULT_TLS_PRIORITY "NORMAL"
#define MAX_MODULE_NAME 64
#define KB 1024LL
#define MB (1024LL * 1024)
#define GB (1024LL * 1024 * 1024)
#define DAY 86400LL

/* ==== the loader and its helpers ==== */

typedef struct loader {
    pl_config *c;
    char *err;
    size_t errlen;
    const pl_conf_node *database;   /* the database block, once seen */
} loader;

typedef int (*directive_fn)(loader *L, const pl_conf_node *n, void *ctx);

enum { NO_BLOCK = 0, BLOCK = 1 };

/* One directive allowed in a block: its argument count, whether it takes
 * a { block }, whether it may repeat, and its handler. */
typedef struct directive {
    const char *name;
    int nargs;
    int block;
    int repeat;
    directive_fn fn;
} directive;

#define MAX_DIRECTIVES 16

static int fail(loader *L, const pl_conf_node *n, const char *fmt, ...) PL_PRINTF(3, 4);

/* Writes "FILE:LINE: message" for node n into the caller's buffer. */
static int fail(loader *L, const pl_conf_node *n, const char *fmt, ...)
{
    if (!L->err || L->errlen == 0)
        return -1;
    int k = snprintf(L->err, L->errlen, "%s:%d: ", n->file, n->line);
    if (k < 0 || (size_t)k >= L->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err + k, L->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_shape(loader *L, const pl_conf_node *n, const directive *d)
{
    if (n->nargs != d->nargs) {
        if (d->nargs == 0)
            return fail(L, n, "'%s' takes no arguments", n->name);
        return fail(L, n, "'%s' takes %d argument%s", n->name, d->nargs,
                    d->nargs == 1 ? "" : "s");
    }
    if (d->block && !n->has_block)
        return fail(L, n, "'%s' needs a { } block", n->name);
    if (!d->block && n->has_block)
        return fail(L, n, "'%s' takes no { } block", n->name);
    return 0;
}

/* Runs the handler of every directive in list, found in tab. where names
 * the enclosing block for messages (NULL at the top level). */
static int walk(loader *L, const pl_conf_node *list, const directive *tab,
                const char *where, void *ctx)
{
    const pl_conf_node *seen[MAX_DIRECTIVES] = { NULL };
    for (const pl_conf_node *n = list; n; n = n->next) {
        int i = 0;
        while (tab[i].name && strcmp(tab[i].name, n->name) != 0)
            i++;
        if (!tab[i].name) {
            if (where)
                return fail(L, n, "unknown directive '%s' in '%s' block", n->name, where);
            return fail(L, n, "unknown directive '%s'", n->name);
        }
        if (check_shape(L, n, &tab[i]) < 0)
            return -1;
        if (!tab[i].repeat && seen[i])
            return fail(L, n, "duplicate '%s' (first at %s:%d)", n->name, seen[i]->file,
                        seen[i]->line);
        seen[i] = n;
        if (tab[i].fn(L, n, ctx) < 0)
            return -1;
    }
    return 0;
}

enum num_kind { NUM_INT, NUM_SIZE, NUM_DURATION };

/* Parses the node's single argument as a number of the given kind within
 * [min, max]. */
static int get_number(loader *L, const pl_conf_node *n, enum num_kind kind,
                      long long min, long long max, long long *out)
{
    static const char *const expect[] = {
        "an integer", "a size (e.g. 4096, 64k, 1m)", "a duration (e.g. 30, 30s, 5m, 2h, 1d)"
    };
    const char *s = n->args[0];
    long long v = 0;
    int rc = kind == NUM_SIZE ? pl_conf_parse_size(s, &v)
           : kind == NUM_DURATION ? pl_conf_parse_duration(s, &v)
           : pl_conf_parse_int(s, &v);
    if (rc < 0)
        return fail(L, n, "'%s' expects %s, got \"%s\"", n->name, expect[kind], s);
    if (v < min || v > max)
        return fail(L, n, "'%s' must be between %lld and %lld, got \"%s\"", n->name, min, max,
                    s);
    *out = v;
    return 0;
}

static int get_bool(loader *L, const pl_conf_node *n, int *out)
{
    if (pl_conf_parse_bool(n->args[0], out) < 0)
        return fail(L, n, "'%s' expects yes or no, got \"%s\"", n->name, n->args[0]);
    return 0;
}

/* A path from the node's argument: absolute as written, otherwise taken
 * relative to the directory of the file holding the directive (made
 * absolute against the working directory if that file name is relative). */
static int get_path(loader *L, const pl_conf_node *n, char **out)
{
    const char *p = n->args[0];
    if (!p[0])
        return fail(L, n, "'%s' needs a non-empty path", n->name);
    pl_buf b = PL_BUF_INIT;
    if (p[0] != '/') {
        char cwd[PATH_MAX];
        if (n->file[0] != '/' && getcwd(cwd, sizeof cwd)) {
            pl_buf_puts(&b, cwd);
            if (b.len == 0 || b.data[b.len - 1] != '/')
                pl_buf_putc(&b, '/');
        }
        const char *slash = strrchr(n->file, '/');
        if (slash)
            pl_buf_append(&b, n->file, (size_t)(slash - n->file) + 1);
    }
    pl_buf_puts(&b, p);
    pl_free(*out);
    *out = pl_buf_steal(&b);
    return 0;
}

/* Fails unless path names a regular file this process can open. */
static int check_readable(loader *L, const pl_conf_node *n, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return fail(L, n, "cannot read %s \"%s\": %s", n->name, path, strerror(e));
    }
    struct stat st;
    int bad = fstat(fd, &st) < 0 || !S_ISREG(st.st_mode);
    close(fd);
    if (bad)
        return fail(L, n, "cannot read %s \"%s\": not a regular file", n->name, path);
    return 0;
}

static int set_string(loader *L, const pl_conf_node *n, char **out)
{
    pl_free(*out);
    *out = pl_strdup(n->args[0]);
    return 0;
}

/* ==== module names ==== */

static int valid_module_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > MAX_MODULE_NAME)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static int check_module_name(loader *L, const pl_conf_node *n, const char *name)
{
    if (!valid_module_name(name))
        return fail(L, n, "invalid module name \"%s\" (expected lowercase letters, digits "
                    "and '_')", name);
    return 0;
}

/* An empty NULL-terminated list: a block that was present, even if empty,
 * is told apart from an absent one by a non-NULL array. */
static char **name_list_new(void)
{
    return pl_calloc(1, sizeof(char *));
}

static int add_module(loader *L, const pl_conf_node *n, const char *name, char ***list,
                      int *count)
{
    if (check_module_name(L, n, name) < 0)
        return -1;
    for (int i = 0; i < *count; i++)
        if (strcmp((*list)[i], name) == 0)
            return fail(L, n, "module '%s' is listed twice", name);
    *list = pl_realloc(*list, sizeof(char *) * (size_t)(*count + 2));
    (*list)[(*count)++] = pl_strdup(name);
    (*list)[*count] = NULL;
    return 0;
}

/* A `modules { NAME; NAME NAME; }` block: every word is a module name. */
static int parse_module_list(loader *L, const pl_conf_node *n, char ***list, int *count)
{
    *list = name_list_new();
    *count = 0;
    for (const pl_conf_node *k = n->children; k; k = k->next) {
        if (k->has_block)
            return fail(L, k, "module '%s' in 'modules' takes no { } block "
                        "(options go in 'module %s { }')", k->name, k->name);
        if (add_module(L, k, k->name, list, count) < 0)
            return -1;
        for (int i = 0; i < k->nargs; i++)
            if (add_module(L, k, k->args[i], list, count) < 0)
                return -1;
    }
    return 0;
}

/* A `module NAME { option value; }` block within list: the name must be
 * valid and not have another block in the same list, and each option
 * needs a value and may appear once. The values themselves are checked
 * by the module loader against the module's option table. */
static int check_module_block(loader *L, const pl_conf_node *n, const pl_conf_node *list)
{
    const char *mod = n->args[0];
    if (check_module_name(L, n, mod) < 0)
        return -1;
    for (const pl_conf_node *o = list; o && o != n; o = o->next)
        if (o->has_block && strcmp(o->name, "module") == 0 && o->nargs == 1 &&
            strcmp(o->args[0], mod) == 0)
            return fail(L, n, "duplicate 'module %s' block (first at %s:%d)", mod, o->file,
                        o->line);
    for (const pl_conf_node *k = n->children; k; k = k->next) {
        if (k->nargs < 1)
            return fail(L, k, "option '%s' of module '%s' needs a value", k->name, mod);
        if (k->has_block)
            return fail(L, k, "option '%s' of module '%s' takes no { } block", k->name, mod);
        for (const pl_conf_node *o = n->children; o != k; o = o->next)
            if (strcmp(o->name, k->name) == 0)
                return fail(L, k, "duplicate option '%s' for module '%s' (first at %s:%d)",
                            k->name, mod, o->file, o->line);
    }
    return 0;
}

/* ==== database, auth, tls, limits ==== */

static int db_conninfo(loader *L, const pl_conf_node *n, void *ctx)
{
    return set_string(L, n, &L->c->db_conninfo);
}

static int db_pool_size(loader *L, const pl_conf_node *n, void *ctx)
{
    return get_number(L, n, NUM_INT, 1, 64, &L->c->db_pool);
}

static const directive database_tab[] = {
    { "conninfo", 1, NO_BLOCK, 0, db_conninfo },
    { "pool_size", 1, NO_BLOCK, 0, db_pool_size },
    { NULL, 0, 0, 0, NULL }
};

static int top_database(loader *L, const pl_conf_node *n, void *ctx)
{
    L->database = n;
    if (walk(L, n->children, database_tab, "database", NULL) < 0)
        return -1;
    if (!L->c->db_conninfo)
        return fail(L, n, "'database' block has no 'conninfo'");
    return 0;
}

static int auth_scram_iterations(loader *L, const pl_conf_node *n, void *ctx)
{
    return get_number(L, n, NUM_INT, 4096, 10000000, &L->c->scram_iterations);
}

static const directive auth_tab[] = {
    { "scram_iterations", 1, NO_BLOCK, 0, auth_scram_iterations },
    { NULL, 0, 0, 0, NULL }
};

static int top_auth(loader *L, const pl_conf_node *n, void *ctx)
{
    return walk(L, n->children, auth_tab, "auth", NULL);
}

static int tls_priority(loader *L, const pl_conf_node *n, void *ctx)
{
    gnutls_priority_t prio;
    const char *errpos = NULL;
    if (gnutls_priority_init(&prio, n->args[0], &errpos) < 0)
        return fail(L, n, "invalid TLS priority string \"%s\" (error at \"%s\")", n->args[0],
                    errpos ? errpos : "");
    gnutls_priority_deinit(prio);
    return set_string(L, n, &L->c->tls_priority);
}

static int tls_ca_file(loader *L, const pl_conf_node *n, void *ctx)
{
    if (get_path(L, n, &L->c->ca_file) < 0)
        return -1;
    return check_readable(L, n, L->c->ca_file);
}

static int tls_c2s_require(loader *L, const pl_conf_node *n, void *ctx)
{
    return get_bool(L, n, &L->c->c2s_require_tls);
}

static int tls_s2s_require(loader *L, const pl_conf_node *n, void *ctx)
{
    return get_bool(L, n, &L->c->s2s_require_tls);
}

static const directive tls_tab[] = {
    { "priority", 1, NO_BLOCK, 0, tls_priority },
    { "ca_file", 1, NO_BLOCK, 0, tls_ca_file },
    { "c2s_require", 1, NO_BLOCK, 0, tls_c2s_require },
    { "s2s_require", 1, NO_BLOCK, 0, tls_s2s_require },
    { NULL, 0, 0, 0, NULL }
};

static int top_tls(loader *L, const pl_conf_node *n, void *ctx)
{
    return walk(L, n->children, tls_tab, "tls", NULL);
}

/* Kind and bounds of every limit; the defaults are set in config_new. */
typedef struct limit_def {
    const char *name;
    enum num_kind kind;
    long long min, max;
    size_t offset;      /* in pl_limits */
} limit_def;

static const limit_def limit_defs[] = {
    { "max_stanza_size", NUM_SIZE, 4096, 64 * MB, offsetof(pl_limits, max_stanza_size) },
    { "unauth_timeout", NUM_DURATION, 1, 3600, offsetof(pl_limits, unauth_timeout) },
    { "c2s_rate", NUM_SIZE, 0, GB, offsetof(pl_limits, c2s_rate) },
    { "c2s_burst", NUM_SIZE, KB, GB, offsetof(pl_limits, c2s_burst) },
    { "auth_failures", NUM_INT, 1, 1000000, offsetof(pl_limits, auth_failures) },
    { "auth_window", NUM_DURATION, 1, DAY, offsetof(pl_limits, auth_window) },
    { "max_resources", NUM_INT, 1, 1000, offsetof(pl_limits, max_resources) },
    { "c2s_idle_timeout", NUM_DURATION, 0, 30 * DAY, offsetof(pl_limits, c2s_idle_timeout) },
    { "s2s_idle_timeout", NUM_DURATION, 1, 30 * DAY, offsetof(pl_limits, s2s_idle_timeout) },
    { NULL, NUM_INT, 0, 0, 0 }
};

static int limit_value(loader *L, const pl_conf_node *n, void *ctx)
{
    const limit_def *d = limit_defs;
    while (strcmp(d->name, n->name) != 0)
        d++;
    long long *field = (long long *)(void *)((char *)&L->c->limits + d->offset);
    return get_number(L, n, d->kind, d->min, d->max, field);
}

static const directive limits_tab[] = {
    { "max_stanza_size", 1, NO_BLOCK, 0, limit_value },
    { "unauth_timeout", 1, NO_BLOCK, 0, limit_value },
    { "c2s_rate", 1, NO_BLOCK, 0, limit_value },
    { "c2s_burst", 1, NO_BLOCK, 0, limit_value },
    { "auth_failures", 1, NO_BLOCK, 0, limit_value },
    { "auth_window", 1, NO_BLOCK, 0, limit_value },
    { "max_resources", 1, NO_BLOCK, 0, limit_value },
    { "c2s_idle_timeout", 1, NO_BLOCK, 0, limit_value },
    { "s2s_idle_timeout", 1, NO_BLOCK, 0, limit_value },
    { NULL, 0, 0, 0, NULL }
};

static int top_limits(loader *L, const pl_conf_node *n, void *ctx)
{
    return walk(L, n->children, limits_tab, "limits", NULL);
}

/* ==== listen ==== */

static const char *const role_names[] = { "c2s", "c2s_tls", "s2s", "s2s_tls" };

/* An address in comparable form: family 0 for "*". */
typedef struct addr_key {
    int family;
    unsigned char bytes[16];
} addr_key;

static addr_key host_key(const char *host)
{
    addr_key k;
    memset(&k, 0, sizeof k);
    if (strcmp(host, "*") == 0)
        return k;
    k.family = strchr(host, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(k.family, host, k.bytes) != 1)
        k.family = -1;
    return k;
}

/* Splits "IPV4:PORT", "[IPV6]:PORT" or "*:PORT"; host without brackets.
 * Returns 0, -1 for a bad address or -2 for a bad port. */
static int split_address(const char *a, char **host, char **port)
{
    const char *p;
    unsigned char bin[16];
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (!close || close[1] != ':')
            return -1;
        *host = pl_strndup(a + 1, (size_t)(close - a - 1));
        p = close + 2;
        if (inet_pton(AF_INET6, *host, bin) != 1)
            return -1;
    } else {
        const char *colon = strrchr(a, ':');
        if (!colon)
            return -1;
        *host = pl_strndup(a, (size_t)(colon - a));
        p = colon + 1;
        if (strcmp(*host, "*") != 0 && inet_pton(AF_INET, *host, bin) != 1)
            return -1;
    }
    long long v;
    if (strspn(p, "0123456789") != strlen(p) || strlen(p) > 5 ||
        pl_conf_parse_int(p, &v) < 0 || v < 1 || v > 65535)
        return -2;
    char num[8];
    snprintf(num, sizeof num, "%lld", v);
    *port = pl_strdup(num);
    return 0;
}

static int top_listen(loader *L, const pl_conf_node *n, void *ctx)
{
    int role = 0;
    while (role < 4 && strcmp(role_names[role], n->args[0]) != 0)
        role++;
    if (role == 4)
        return fail(L, n, "unknown listen role \"%s\" (expected c2s, c2s_tls, s2s or s2s_tls)",
                    n->args[0]);
    char *host = NULL, *port = NULL;
    int rc = split_address(n->args[1], &host, &port);
    if (rc < 0) {
        pl_free(host);
        pl_free(port);
        if (rc == -2)
            return fail(L, n, "invalid listen port in \"%s\" (expected 1..65535)", n->args[1]);
        return fail(L, n, "invalid listen address \"%s\" (expected IPV4:PORT, [IPV6]:PORT or "
                    "*:PORT)", n->args[1]);
    }
    pl_config *c = L->c;
    addr_key key = host_key(host);
    for (int i = 0; i < c->nlistens; i++) {
        addr_key other = host_key(c->listens[i].host);
        if (strcmp(c->listens[i].port, port) == 0 && memcmp(&key, &other, sizeof key) == 0) {
            fail(L, n, "duplicate listen address \"%s\" (first at %s:%d)", n->args[1],
                 c->listens[i].file, c->listens[i].line);
            pl_free(host);
            pl_free(port);
            return -1;
        }
    }
    c->listens = pl_realloc(c->listens, sizeof *c->listens * (size_t)(c->nlistens + 1));
    pl_listen_conf *l = &c->listens[c->nlistens++];
    l->role = role;
    l->host = host;
    l->port = port;
    l->file = n->file;
    l->line = n->line;
    return 0;
}

/* ==== vhost ==== */

static int vhost_certificate(loader *L, const pl_conf_node *n, void *ctx)
{
    pl_vhost_conf *v = ctx;
    if (get_path(L, n, &v->certificate) < 0)
        return -1;
    return check_readable(L, n, v->certificate);
}

static int vhost_key(loader *L, const pl_conf_node *n, void *ctx)
{
    pl_vhost_conf *v = ctx;
    if (get_path(L, n, &v->key) < 0)
        return -1;
    return check_readable(L, n, v->key);
}

static int vhost_modules(loader *L, const pl_conf_node *n, void *ctx)
{
    pl_vhost_conf *v = ctx;
    return parse_module_list(L, n, &v->modules, &v->nmodules);
}

static int vhost_module(loader *L, const pl_conf_node *n, void *ctx)
{
    pl_vhost_conf *v = ctx;
    return check_module_block(L, n, v->block->children);
}

static const directive vhost_tab[] = {
    { "certificate", 1, NO_BLOCK, 0, vhost_certificate },
    { "key", 1, NO_BLOCK, 0, vhost_key },
    { "modules", 0, BLOCK, 0, vhost_modules },
    { "module", 1, BLOCK, 1, vhost_module },
    { NULL, 0, 0, 0, NULL }
};

static int top_vhost(loader *L, const pl_conf_node *n, void *ctx)
{
    pl_config *c = L->c;
    char domain[1024];
    if (pl_jid_nameprep(n->args[0], domain, sizeof domain) < 0 || !domain[0])
        return fail(L, n, "invalid vhost domain \"%s\"", n->args[0]);
    for (int i = 0; i < c->nvhosts; i++)
        if (strcmp(c->vhosts[i].name, domain) == 0)
            return fail(L, n, "duplicate vhost '%s' (first at %s:%d)", domain,
                        c->vhosts[i].file, c->vhosts[i].line);
    c->vhosts = pl_realloc(c->vhosts, sizeof *c->vhosts * (size_t)(c->nvhosts + 1));
    pl_vhost_conf *v = &c->vhosts[c->nvhosts++];
    memset(v, 0, sizeof *v);
    v->name = pl_strdup(domain);
    v->block = n;
    v->file = n->file;
    v->line = n->line;
    if (walk(L, n->children, vhost_tab, "vhost", v) < 0)
        return -1;
    if (!v->certificate)
        return fail(L, n, "vhost '%s' has no 'certificate'", domain);
    if (!v->key)
        return fail(L, n, "vhost '%s' has no 'key'", domain);
    return 0;
}

/* ==== top level ==== */

static int top_log_level(loader *L, const pl_conf_node *n, void *ctx)
{
    int level = pl_log_level_parse(n->args[0]);
    if (level < 0)
        return fail(L, n, "invalid log_level \"%s\" (expected debug, info, notice, warn or "
                    "error)", n->args[0]);
    L->c->log_level = level;
    return 0;
}

static int top_modules_dir(loader *L, const pl_conf_node *n, void *ctx)
{
    return get_path(L, n, &L->c->modules_dir);
}

static int top_control_socket(loader *L, const pl_conf_node *n, void *ctx)
{
    return get_path(L, n, &L->c->control_socket);
}

static int top_modules(loader *L, const pl_conf_node *n, void *ctx)
{
    pl_free(L->c->modules);      /* the empty default list */
    return parse_module_list(L, n, &L->c->modules, &L->c->nmodules);
}

static int top_module(loader *L, const pl_conf_node *n, void *ctx)
{
    return check_module_block(L, n, L->c->tree);
}

static const directive top_tab[] = {
    { "log_level", 1, NO_BLOCK, 0, top_log_level },
    { "modules_dir", 1, NO_BLOCK, 0, top_modules_dir },
    { "control_socket", 1, NO_BLOCK, 0, top_control_socket },
    { "database", 0, BLOCK, 0, top_database },
    { "auth", 0, BLOCK, 0, top_auth },
    { "tls", 0, BLOCK, 0, top_tls },
    { "listen", 2, NO_BLOCK, 1, top_listen },
    { "limits", 0, BLOCK, 0, top_limits },
    { "modules", 0, BLOCK, 0, top_modules },
    { "module", 1, BLOCK, 1, top_module },
    { "vhost", 1, BLOCK, 1, top_vhost },
    { NULL, 0, 0, 0, NULL }
};

static pl_config *config_new(const char *path)
{
    pl_config *c = pl_calloc(1, sizeof *c);
    c->path = pl_strdup(path);
    c->log_level = PL_LOG_INFO;
    c->modules_dir = pl_strdup(DEFAULT_MODULES_DIR);
    c->db_pool = 4;
    c->scram_iterations = 4096;
    c->c2s_require_tls = 1;
    c->s2s_require_tls = 1;
    c->tls_priority = pl_strdup(DEFAULT_TLS_PRIORITY);
    c->modules = name_list_new();
    c->limits = (pl_limits){
        .max_stanza_size = 262144,
        .unauth_timeout = 30,
        .c2s_rate = 0,
        .c2s_burst = 65536,
        .auth_failures = 5,
        .auth_window = 60,
        .max_resources = 16,
        .c2s_idle_timeout = 0,
        .s2s_idle_timeout = 600,
    };
    return c;
}

static char **copy_names(char **names, int n)
{
    char **r = pl_calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++)
        r[i] = pl_strdup(names[i]);
    return r;
}

/* Checks what the whole file must have, then gives every vhost without
 * its own modules block a copy of the global list. */
static int finish(loader *L)
{
    pl_config *c = L->c;
    if (!L->database) {
        snprintf(L->err, L->errlen, "%s: no 'database' block (one is required)", c->path);
        return -1;
    }
    if (c->nvhosts == 0) {
        snprintf(L->err, L->errlen, "%s: no 'vhost' block (at least one is required)",
                 c->path);
        return -1;
    }
    for (int i = 0; i < c->nvhosts; i++) {
        pl_vhost_conf *v = &c->vhosts[i];
        if (v->modules)
            continue;
        v->modules = copy_names(c->modules, c->nmodules);
        v->nmodules = c->nmodules;
    }
    return 0;
}

/* Reads, parses and checks the configuration at path. Returns a config
 * the caller frees with pl_config_free, or NULL with "FILE:LINE: problem"
 * (or "FILE: problem" for what the whole file lacks) in err. */
pl_config *pl_config_load(const char *path, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    int ok = 0;
    pl_conf_node *tree = pl_conf_parse_file(path, &ok, err, errlen);
    if (!ok)
        return NULL;
    pl_config *c = config_new(path);
    c->tree = tree;
    loader L = { c, err, errlen, NULL };
    if (walk(&L, tree, top_tab, NULL, NULL) < 0 || finish(&L) < 0) {
        pl_config_free(c);
        return NULL;
    }
    return c;
}

static void free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        pl_free(names[i]);
    pl_free(names);
}

/* Frees the config, its tree and every string it holds. */
void pl_config_free(pl_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nlistens; i++) {
        pl_free(c->listens[i].host);
        pl_free(c->listens[i].port);
    }
    pl_free(c->listens);
    for (int i = 0; i < c->nvhosts; i++) {
        pl_vhost_conf *v = &c->vhosts[i];
        pl_free(v->name);
        pl_free(v->certificate);
        pl_free(v->key);
        free_names(v->modules, v->nmodules);
    }
    pl_free(c->vhosts);
    free_names(c->modules, c->nmodules);
    pl_free(c->path);
    pl_free(c->modules_dir);
    pl_free(c->control_socket);
    pl_free(c->db_conninfo);
    pl_free(c->tls_priority);
    pl_free(c->ca_file);
    pl_conf_free(c->tree);
    pl_free(c);
}

/* ==== lookups ==== */

/* The vhost named name (compared after nameprep), or NULL. */
const pl_vhost_conf *pl_config_vhost(const pl_config *c, const char *name)
{
    for (int i = 0; i < c->nvhosts; i++)
        if (strcmp(c->vhosts[i].name, name) == 0)
            return &c->vhosts[i];
    char domain[1024];
    if (pl_jid_nameprep(name, domain, sizeof domain) < 0 || strcmp(domain, name) == 0)
        return NULL;
    for (int i = 0; i < c->nvhosts; i++)
        if (strcmp(c->vhosts[i].name, domain) == 0)
            return &c->vhosts[i];
    return NULL;
}

static const pl_conf_node *find_option(const pl_conf_node *list, const char *module,
                                       const char *name)
{
    for (const pl_conf_node *n = list; n; n = n->next) {
        if (!n->has_block || strcmp(n->name, "module") != 0 || n->nargs != 1 ||
            strcmp(n->args[0], module) != 0)
            continue;
        for (const pl_conf_node *o = n->children; o; o = o->next)
            if (strcmp(o->name, name) == 0)
                return o;
    }
    return NULL;
}

/* The node setting option name of module on vhost: the vhost's own
 * `module NAME { }` block first, then the top-level one. NULL if unset
 * in both (or, with vhost NULL, in the top-level block). */
const pl_conf_node *pl_config_module_option(const pl_config *c, const char *vhost,
                                            const char *module, const char *name)
{
    const pl_vhost_conf *v = vhost ? pl_config_vhost(c, vhost) : NULL;
    if (v) {
        const pl_conf_node *o = find_option(v->block->children, module, name);
        if (o)
            return o;
    }
    return find_option(c->tree, module, name);
}
