/* core/options.c: module options. A module declares a typed option table;
 * values come from `module NAME { ... }` blocks (the host's block first,
 * then the top-level one) or the table's defaults. Values are checked at
 * load time and an error names the file and line. */
#include <stdio.h>
#include <string.h>
#include "core/config.h"
#include "core/host.h"
#include "core/modmgr.h"
#include "core/server.h"

int pl__options_resolve(pl_module *m, char *err, size_t errlen);
void pl__options_free(pl_module *m);

static int count_options(const pl_option *o)
{
    int n = 0;
    while (o && o[n].name)
        n++;
    return n;
}

static const pl_option *find_option(const pl_module *m, const char *name, int *index)
{
    for (int i = 0; i < m->nopts; i++)
        if (strcmp(m->def->options[i].name, name) == 0) {
            *index = i;
            return &m->def->options[i];
        }
    return NULL;
}

/* Rejects options in a `module NAME { }` block that the module does not
 * declare. */
static int check_block(const pl_module *m, const pl_conf_node *list, char *err, size_t errlen)
{
    for (const pl_conf_node *n = list; n; n = n->next) {
        if (strcmp(n->name, "module") != 0 || n->nargs < 1
            || strcmp(n->args[0], m->def->name) != 0)
            continue;
        for (const pl_conf_node *o = n->children; o; o = o->next) {
            int idx;
            if (!find_option(m, o->name, &idx)) {
                snprintf(err, errlen, "%s:%d: module %s has no option '%s'", o->file, o->line,
                         m->def->name, o->name);
                return -1;
            }
            if (o->nargs != 1 || o->has_block) {
                snprintf(err, errlen, "%s:%d: option '%s' of module %s takes one value",
                         o->file, o->line, o->name, m->def->name);
                return -1;
            }
        }
    }
    return 0;
}

static int parse_value(const pl_option *o, const char *text, long long *num)
{
    int b;
    switch (o->type) {
    case PL_OPT_INT:
        return pl_conf_parse_int(text, num);
    case PL_OPT_SIZE:
        return pl_conf_parse_size(text, num);
    case PL_OPT_DURATION:
        return pl_conf_parse_duration(text, num);
    case PL_OPT_BOOL:
        if (pl_conf_parse_bool(text, &b) != 0)
            return -1;
        *num = b;
        return 0;
    case PL_OPT_STRING:
        *num = 0;
        return 0;
    }
    return -1;
}

int pl__options_resolve(pl_module *m, char *err, size_t errlen)
{
    const pl_config *c = pl__server.config;
    m->nopts = count_options(m->def->options);
    m->opt_str = pl_calloc((size_t)m->nopts + 1, sizeof *m->opt_str);
    m->opt_num = pl_calloc((size_t)m->nopts + 1, sizeof *m->opt_num);
    if (check_block(m, c->tree, err, errlen) != 0)
        return -1;
    if (m->host) {
        const pl_vhost_conf *vc = pl_config_vhost(c, m->host->name);
        if (vc && vc->block && check_block(m, vc->block->children, err, errlen) != 0)
            return -1;
    }
    for (int i = 0; i < m->nopts; i++) {
        const pl_option *o = &m->def->options[i];
        const pl_conf_node *n = pl_config_module_option(c, m->host ? m->host->name : NULL,
                                                        m->def->name, o->name);
        const char *text = n ? n->args[0] : o->def;
        if (!text)
            text = "";
        long long v = 0;
        if (parse_value(o, text, &v) != 0) {
            if (n)
                snprintf(err, errlen, "%s:%d: option '%s' of module %s: invalid value \"%s\"",
                         n->file, n->line, o->name, m->def->name, text);
            else
                snprintf(err, errlen, "module %s: invalid default for option '%s'",
                         m->def->name, o->name);
            return -1;
        }
        int numeric = o->type == PL_OPT_INT || o->type == PL_OPT_SIZE || o->type == PL_OPT_DURATION;
        if (numeric && (o->min || o->max) && (v < o->min || v > o->max)) {
            snprintf(err, errlen, "%s:%d: option '%s' of module %s must be between %lld and %lld",
                     n ? n->file : "(default)", n ? n->line : 0, o->name, m->def->name,
                     o->min, o->max);
            return -1;
        }
        m->opt_str[i] = pl_strdup(text);
        m->opt_num[i] = v;
    }
    return 0;
}

void pl__options_free(pl_module *m)
{
    for (int i = 0; m->opt_str && i < m->nopts; i++)
        pl_free(m->opt_str[i]);
    pl_free(m->opt_str);
    pl_free(m->opt_num);
    m->opt_str = NULL;
    m->opt_num = NULL;
    m->nopts = 0;
}

long long pl_option_int(pl_module *m, const char *name)
{
    int i;
    if (!find_option(m, name, &i)) {
        pl_mlog(m, PL_LOG_ERROR, "asked for undeclared option '%s'", name);
        return 0;
    }
    return m->opt_num[i];
}

int pl_option_bool(pl_module *m, const char *name)
{
    return pl_option_int(m, name) != 0;
}

const char *pl_option_str(pl_module *m, const char *name)
{
    int i;
    if (!find_option(m, name, &i)) {
        pl_mlog(m, PL_LOG_ERROR, "asked for undeclared option '%s'", name);
        return "";
    }
    return m->opt_str[i];
}
