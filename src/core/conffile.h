/* core/conffile.h: the configuration file syntax. A file is a list of
 * directives, each a name with arguments ended by ';' or followed by a
 * { block } of directives:
 *
 *     log_level info;
 *     vhost example.org {
 *         certificate "/etc/parley/example.org.pem";
 *     }
 *
 * Arguments are bare words or "double-quoted strings" (with \" \\ \n \t
 * escapes); '#' starts a comment to the end of the line. `include PATH;`
 * (relative to the including file) splices another file in place. */
#ifndef PL_CORE_CONFFILE_H
#define PL_CORE_CONFFILE_H

#include <stddef.h>

typedef struct pl_conf_node {
    char *name;
    char **args;             /* nargs strings */
    int nargs;
    int has_block;           /* followed by { ... } (possibly empty) */
    struct pl_conf_node *children;  /* the block's directives, in order */
    struct pl_conf_node *next;      /* next sibling */
    const char *file;        /* file it came from (shared string) */
    int line;                /* line of the directive's name */
} pl_conf_node;

/* Parses a file. On error returns NULL and writes "FILE:LINE: problem"
 * into err. The result (a list of top-level nodes, possibly NULL for an
 * empty file: then *ok is set to 1) is freed with pl_conf_free. */
pl_conf_node *pl_conf_parse_file(const char *path, int *ok, char *err, size_t errlen);

/* Parses text held in memory; name is used in messages. */
pl_conf_node *pl_conf_parse_string(const char *name, const char *text, int *ok,
                                   char *err, size_t errlen);

void pl_conf_free(pl_conf_node *list);

/* Value parsers shared by the config and module options. Each returns 0
 * on success, -1 if the text is not a valid value of the type. */
int pl_conf_parse_int(const char *s, long long *out);
int pl_conf_parse_size(const char *s, long long *out);      /* 10, 10k, 4m, 1g */
int pl_conf_parse_duration(const char *s, long long *out);  /* seconds: 30, 30s, 5m, 2h, 1d */
int pl_conf_parse_bool(const char *s, int *out);            /* yes/no on/off true/false 1/0 */

#endif
