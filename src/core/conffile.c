/* core/conffile.c: the configuration file syntax of conffile.h: a lexer
 * for words, quoted strings and punctuation, a recursive parser that
 * builds the directive tree, `include` splicing with a depth bound and
 * cycle check, and the shared value parsers (integers, sizes, durations,
 * booleans). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <parley/base.h>
#include <parley/buf.h>
#include "core/conffile.h"

#define MAX_INCLUDE_DEPTH 16         /* nested include levels */
#define MAX_BLOCK_DEPTH 64           /* nested { } levels in one file */
#define MAX_FILE_SIZE (16 * 1024 * 1024)
#define CONTEXT_MAX 60               /* directive text quoted in messages */

/* ==== shared file names ==== */

/* The name of a parsed file, shared by every node that came from it and
 * freed with the last of them. */
typedef struct conf_fname {
    int refs;
    char name[];
} conf_fname;

static conf_fname *fname_new(const char *name)
{
    size_t n = strlen(name) + 1;
    conf_fname *f = pl_malloc(sizeof *f + n);
    f->refs = 1;
    memcpy(f->name, name, n);
    return f;
}

static const char *fname_ref(conf_fname *f)
{
    f->refs++;
    return f->name;
}

static void fname_unref(conf_fname *f)
{
    if (f && --f->refs == 0)
        pl_free(f);
}

static conf_fname *fname_of(const char *name)
{
    return (conf_fname *)(void *)(uintptr_t)(name - offsetof(conf_fname, name));
}

/* ==== lexer ==== */

enum tok_type { T_EOF, T_WORD, T_STRING, T_SEMI, T_OPEN, T_CLOSE, T_ERROR };

typedef struct token {
    enum tok_type type;
    char *text;          /* T_WORD and T_STRING: owned */
    int line;
} token;

/* One file (or in-memory text) being parsed. */
typedef struct source {
    const char *text;
    size_t len;
    size_t pos;
    int line;
    conf_fname *fname;
} source;

/* State shared across one parse, including every included file. */
typedef struct parser {
    char *err;
    size_t errlen;
    int include_depth;
    char *chain[MAX_INCLUDE_DEPTH + 2];   /* real paths of the files being read */
    int nchain;
} parser;

static int perr(parser *p, const source *s, int line, const char *fmt, ...) PL_PRINTF(4, 5);

static int perr(parser *p, const source *s, int line, const char *fmt, ...)
{
    if (!p->err || p->errlen == 0)
        return -1;
    int n = snprintf(p->err, p->errlen, "%s:%d: ", s->fname->name, line);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int is_delim(int c)
{
    return is_space(c) || c == ';' || c == '{' || c == '}' || c == '"';
}

static int peekc(const source *s)
{
    return s->pos < s->len ? (unsigned char)s->text[s->pos] : -1;
}

/* Skips whitespace and comments; a '#' where a token could begin starts a
 * comment to the end of the line. */
static void skip_blank(source *s)
{
    for (;;) {
        int c = peekc(s);
        if (c == '\n') {
            s->line++;
            s->pos++;
        } else if (c >= 0 && is_space(c)) {
            s->pos++;
        } else if (c == '#') {
            while (s->pos < s->len && s->text[s->pos] != '\n')
                s->pos++;
        } else {
            return;
        }
    }
}

/* Reads the escape after a backslash in a quoted string into *out. */
static int lex_escape(parser *p, source *s, const token *t, char *out)
{
    int e = peekc(s);
    switch (e) {
    case '"': *out = '"'; break;
    case '\\': *out = '\\'; break;
    case 'n': *out = '\n'; break;
    case 't': *out = '\t'; break;
    default:
        if (e < 0 || e == '\n')
            return perr(p, s, t->line, "unterminated string");
        if (e < 0x20 || e >= 0x7f)
            return perr(p, s, s->line, "unknown escape in string");
        return perr(p, s, s->line, "unknown escape '\\%c' in string", e);
    }
    s->pos++;
    return 0;
}

/* A quoted string must end on its line and be followed by a delimiter,
 * so that `"a"b` is not silently read as two arguments. */
static int lex_string(parser *p, source *s, token *t)
{
    pl_buf b = PL_BUF_INIT;
    s->pos++;                                   /* opening quote */
    for (;;) {
        int c = peekc(s);
        if (c < 0 || c == '\n') {
            pl_buf_free(&b);
            return perr(p, s, t->line, "unterminated string");
        }
        s->pos++;
        if (c == '"')
            break;
        char out = (char)c;
        if (c == '\\' && lex_escape(p, s, t, &out) < 0) {
            pl_buf_free(&b);
            return -1;
        }
        pl_buf_putc(&b, out);
    }
    int c = peekc(s);
    if (c == '"' || (c >= 0 && !is_delim(c) && c != '#')) {
        pl_buf_free(&b);
        return perr(p, s, s->line, c == '"' ? "expected a space between quoted strings"
                                             : "expected a space or ';' after a quoted string");
    }
    t->type = T_STRING;
    t->text = pl_buf_steal(&b);
    return 0;
}

static int lex_word(parser *p, source *s, token *t)
{
    size_t start = s->pos;
    for (;;) {
        int c = peekc(s);
        if (c < 0 || is_delim(c))
            break;
        if (c < 0x20 || c == 0x7f)
            return perr(p, s, s->line, "unexpected control character 0x%02x", c);
        s->pos++;
    }
    if (peekc(s) == '"')
        return perr(p, s, s->line, "unexpected '\"' inside a word");
    t->type = T_WORD;
    t->text = pl_strndup(s->text + start, s->pos - start);
    return 0;
}

/* Reads the next token into t. Returns -1 with the error written. */
static int next_token(parser *p, source *s, token *t)
{
    skip_blank(s);
    t->text = NULL;
    t->line = s->line;
    int c = peekc(s);
    switch (c) {
    case -1:
        /* the line after a final newline is not a line of the file */
        if (s->len > 0 && s->text[s->len - 1] == '\n' && t->line > 1)
            t->line--;
        t->type = T_EOF;
        return 0;
    case ';': t->type = T_SEMI; s->pos++; return 0;
    case '{': t->type = T_OPEN; s->pos++; return 0;
    case '}': t->type = T_CLOSE; s->pos++; return 0;
    case '"': return lex_string(p, s, t);
    default:  return lex_word(p, s, t);
    }
}

/* ==== nodes ==== */

static void node_free(pl_conf_node *n)
{
    for (int i = 0; i < n->nargs; i++)
        pl_free(n->args[i]);
    pl_free(n->args);
    pl_free(n->name);
    pl_conf_free(n->children);
    if (n->file)
        fname_unref(fname_of(n->file));
    pl_free(n);
}

/* Frees a list of nodes, their blocks and the file names they share. */
void pl_conf_free(pl_conf_node *list)
{
    while (list) {
        pl_conf_node *next = list->next;
        node_free(list);
        list = next;
    }
}

static void node_add_arg(pl_conf_node *n, char *arg)
{
    if ((n->nargs & (n->nargs - 1)) == 0)  /* 0, 1, 2, 4...: grow */
        n->args = pl_realloc(n->args, sizeof(char *) * (size_t)(n->nargs ? n->nargs * 2 : 1));
    n->args[n->nargs++] = arg;
}

/* The directive as written, shortened, for "expected ';' after" errors. */
static void describe(const pl_conf_node *n, char *out, size_t outlen)
{
    pl_buf b = PL_BUF_INIT;
    pl_buf_puts(&b, n->name);
    for (int i = 0; i < n->nargs && b.len <= CONTEXT_MAX; i++) {
        pl_buf_putc(&b, ' ');
        pl_buf_puts(&b, n->args[i]);
    }
    if (b.len > CONTEXT_MAX)
        snprintf(out, outlen, "%.*s...", CONTEXT_MAX, b.data);
    else
        snprintf(out, outlen, "%s", b.data);
    pl_buf_free(&b);
}

/* A list being built: appending keeps order, includes splice in place. */
typedef struct node_list {
    pl_conf_node *head;
    pl_conf_node **tail;
} node_list;

static void list_append(node_list *l, pl_conf_node *n)
{
    *l->tail = n;
    while (n->next)
        n = n->next;
    l->tail = &n->next;
}

/* ==== parser ==== */

static int parse_text(parser *p, const char *name, const char *text, size_t len,
                      pl_conf_node **out);

static int parse_list(parser *p, source *s, int depth, int open_line, node_list *out);

/* Reads a whole regular file into memory. Returns 0, or an errno value. */
static int read_file(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat st;
    int e = 0;
    if (fstat(fd, &st) < 0)
        e = errno;
    else if (S_ISDIR(st.st_mode))
        e = EISDIR;
    else if (!S_ISREG(st.st_mode))
        e = EINVAL;
    else if (st.st_size > MAX_FILE_SIZE)
        e = EFBIG;
    if (e) {
        close(fd);
        return e;
    }
    pl_buf b = PL_BUF_INIT;
    char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || b.len + (size_t)r > MAX_FILE_SIZE) {
            e = r < 0 ? errno : EFBIG;
            close(fd);
            pl_buf_free(&b);
            return e;
        }
        if (r == 0)
            break;
        pl_buf_append(&b, chunk, (size_t)r);
    }
    close(fd);
    *len = b.len;
    *text = pl_buf_steal(&b);
    return 0;
}

/* The path of an include: absolute as written, else relative to the
 * directory of the including file. */
static char *include_path(const char *from, const char *arg)
{
    const char *slash = strrchr(from, '/');
    if (arg[0] == '/' || !slash)
        return pl_strdup(arg);
    size_t dlen = (size_t)(slash - from) + 1;
    char *r = pl_malloc(dlen + strlen(arg) + 1);
    memcpy(r, from, dlen);
    strcpy(r + dlen, arg);
    return r;
}

/* Parses the file named by an include directive and returns its nodes. */
static int do_include(parser *p, source *s, const pl_conf_node *inc, pl_conf_node **out)
{
    if (inc->nargs != 1)
        return perr(p, s, inc->line, "'include' takes exactly one argument");
    if (p->include_depth >= MAX_INCLUDE_DEPTH)
        return perr(p, s, inc->line, "includes nested too deeply (more than %d levels)",
                    MAX_INCLUDE_DEPTH);
    char *path = include_path(s->fname->name, inc->args[0]);
    char *real = realpath(path, NULL);
    for (int i = 0; real && i < p->nchain; i++) {
        if (strcmp(p->chain[i], real) == 0) {
            perr(p, s, inc->line, "include cycle: \"%s\" is already being read", path);
            free(real);
            pl_free(path);
            return -1;
        }
    }
    char *text = NULL;
    size_t len = 0;
    int e = read_file(path, &text, &len);
    if (e) {
        perr(p, s, inc->line, "cannot read \"%s\": %s", path, strerror(e));
        free(real);
        pl_free(path);
        return -1;
    }
    p->chain[p->nchain++] = real;
    p->include_depth++;
    int rc = parse_text(p, path, text, len, out);
    p->include_depth--;
    p->nchain--;
    free(real);
    pl_free(text);
    pl_free(path);
    return rc;
}

/* Reads a directive's arguments up to ';' or '{' (the latter parses the
 * block as well). */
static int parse_rest(parser *p, source *s, int depth, pl_conf_node *n)
{
    for (;;) {
        token t;
        if (next_token(p, s, &t) < 0)
            return -1;
        if (t.type == T_WORD || t.type == T_STRING) {
            node_add_arg(n, t.text);
            continue;
        }
        if (t.type == T_SEMI)
            return 0;
        if (t.type == T_OPEN) {
            if (strcmp(n->name, "include") == 0)
                return perr(p, s, t.line, "'include' takes no block");
            if (depth >= MAX_BLOCK_DEPTH)
                return perr(p, s, t.line, "blocks nested too deeply (more than %d levels)",
                            MAX_BLOCK_DEPTH);
            n->has_block = 1;
            node_list kids = { NULL, NULL };
            kids.tail = &kids.head;
            int rc = parse_list(p, s, depth + 1, t.line, &kids);
            n->children = kids.head;
            return rc;
        }
        char what[CONTEXT_MAX + 8];
        describe(n, what, sizeof what);
        return perr(p, s, n->line, "expected ';' or '{' after \"%s\"", what);
    }
}

/* Parses one directive whose name token is t, appending it (or, for an
 * include, the included nodes) to out. */
static int parse_directive(parser *p, source *s, int depth, token *t, node_list *out)
{
    pl_conf_node *n = pl_calloc(1, sizeof *n);
    n->name = t->text;
    n->line = t->line;
    n->file = fname_ref(s->fname);
    if (parse_rest(p, s, depth, n) < 0) {
        node_free(n);
        return -1;
    }
    if (strcmp(n->name, "include") != 0) {
        list_append(out, n);
        return 0;
    }
    pl_conf_node *inc = NULL;
    int rc = do_include(p, s, n, &inc);
    node_free(n);
    if (rc < 0)
        return -1;
    if (inc)
        list_append(out, inc);
    return 0;
}

/* Parses directives until the end of the text (depth 0) or the '}' that
 * closes the block opened at open_line. */
static int parse_list(parser *p, source *s, int depth, int open_line, node_list *out)
{
    for (;;) {
        token t;
        if (next_token(p, s, &t) < 0)
            return -1;
        switch (t.type) {
        case T_EOF:
            if (depth > 0)
                return perr(p, s, t.line, "missing '}' for block opened at line %d",
                            open_line);
            return 0;
        case T_CLOSE:
            if (depth == 0)
                return perr(p, s, t.line, "unexpected '}'");
            return 0;
        case T_SEMI:
            return perr(p, s, t.line, "unexpected ';'");
        case T_OPEN:
            return perr(p, s, t.line, "unexpected '{'");
        case T_STRING:
            perr(p, s, t.line, "expected a directive name, found a quoted string");
            pl_free(t.text);
            return -1;
        case T_WORD:
            if (parse_directive(p, s, depth, &t, out) < 0)
                return -1;
            break;
        default:
            return -1;
        }
    }
}

static int parse_text(parser *p, const char *name, const char *text, size_t len,
                      pl_conf_node **out)
{
    source s = { text, len, 0, 1, fname_new(name) };
    node_list l = { NULL, &l.head };
    int rc = -1;
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        for (const char *q = text; q < nul; q++)
            if (*q == '\n')
                s.line++;
        perr(p, &s, s.line, "unexpected NUL byte");
    } else {
        rc = parse_list(p, &s, 0, 0, &l);
    }
    fname_unref(s.fname);
    if (rc < 0) {
        pl_conf_free(l.head);
        return -1;
    }
    *out = l.head;
    return 0;
}

/* ==== entry points ==== */

/* Parses the file at path, following includes. Returns the node list
 * (NULL for an empty file) with *ok = 1, or NULL with *ok = 0 and the
 * error in err. */
pl_conf_node *pl_conf_parse_file(const char *path, int *ok, char *err, size_t errlen)
{
    if (ok)
        *ok = 0;
    char *text = NULL;
    size_t len = 0;
    int e = read_file(path, &text, &len);
    if (e) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
        return NULL;
    }
    parser p = { err, errlen, 0, { NULL }, 0 };
    char *real = realpath(path, NULL);
    if (real)
        p.chain[p.nchain++] = real;
    pl_conf_node *list = NULL;
    int rc = parse_text(&p, path, text, len, &list);
    free(real);
    pl_free(text);
    if (rc == 0 && ok)
        *ok = 1;
    return list;
}

/* Parses text held in memory; name appears in messages and is the base
 * for relative includes. Same results as pl_conf_parse_file. */
pl_conf_node *pl_conf_parse_string(const char *name, const char *text, int *ok,
                                   char *err, size_t errlen)
{
    if (ok)
        *ok = 0;
    parser p = { err, errlen, 0, { NULL }, 0 };
    pl_conf_node *list = NULL;
    if (parse_text(&p, name, text, strlen(text), &list) < 0)
        return NULL;
    if (ok)
        *ok = 1;
    return list;
}

/* ==== value parsers ==== */

/* Reads one or more decimal digits into *v, failing on overflow of
 * LLONG_MAX; *end is left after the digits. */
static int parse_digits(const char *s, const char **end, long long *v)
{
    long long x = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        int d = *s - '0';
        if (x > (LLONG_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *end = s;
    *v = x;
    return 0;
}

/* A decimal integer with an optional leading '-'. */
int pl_conf_parse_int(const char *s, long long *out)
{
    int neg = (*s == '-');
    const char *end;
    long long v;
    if (parse_digits(s + neg, &end, &v) < 0 || *end)
        return -1;
    *out = neg ? -v : v;
    return 0;
}

/* A non-negative count followed by an optional one-letter unit from
 * units (matched without case) with the multiplier at the same index. */
static int parse_scaled(const char *s, const char *units, const long long *mult,
                        long long *out)
{
    const char *end;
    long long v;
    if (parse_digits(s, &end, &v) < 0)
        return -1;
    long long m = 1;
    if (*end) {
        const char *u = strchr(units, tolower((unsigned char)*end));
        if (!u || end[1])
            return -1;
        m = mult[u - units];
    }
    if (v > LLONG_MAX / m)
        return -1;
    *out = v * m;
    return 0;
}

/* Bytes: 10, 10k, 4m, 1g (k, m and g are multiples of 1024). */
int pl_conf_parse_size(const char *s, long long *out)
{
    static const long long mult[] = { 1024LL, 1024LL * 1024, 1024LL * 1024 * 1024 };
    return parse_scaled(s, "kmg", mult, out);
}

/* Seconds: 30, 30s, 5m, 2h, 1d. */
int pl_conf_parse_duration(const char *s, long long *out)
{
    static const long long mult[] = { 1, 60, 3600, 86400 };
    return parse_scaled(s, "smhd", mult, out);
}

/* yes/no, on/off, true/false or 1/0, in any case. */
int pl_conf_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = { "yes", "on", "true", "1" };
    static const char *const no[] = { "no", "off", "false", "0" };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}
