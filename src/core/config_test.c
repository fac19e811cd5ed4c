/* core/config_test.c: tests of the configuration syntax (conffile.c), the
 * value parsers, and the checked configuration (config.c): exact values,
 * defaults, every error message, includes and module option lookup. Each
 * test writes its files under a fresh directory in /tmp and removes it. */
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <parley/base.h>
#include "core/conffile.h"
#include "core/config.h"
#include "../../tests/unit/test.h"

/* ==== fixture: a temporary directory ==== */

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void cleanup(void)
{
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}

/* A path under the test directory; up to 8 results stay valid at once. */
static const char *in_dir(const char *rel)
{
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", dir, rel);
    return b;
}

static void write_file(const char *rel, const char *text)
{
    FILE *f = fopen(in_dir(rel), "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
}

static void make_dir(const char *rel)
{
    CHECK(mkdir(in_dir(rel), 0700) == 0);
}

/* Creates the directory with a certificate and key the configs name. */
static void setup(void)
{
    strcpy(dir, "/tmp/pl_config_test_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    atexit(cleanup);
    write_file("cert.pem", "certificate\n");
    write_file("key.pem", "key\n");
}

/* The smallest valid configuration: two lines. */
#define BASE "database { conninfo \"dbname=parley\"; }\n" \
             "vhost localhost { certificate cert.pem; key key.pem; }\n"

static pl_config *load(const char *text, char *err, size_t errlen)
{
    write_file("parley.conf", text);
    return pl_config_load(in_dir("parley.conf"), err, errlen);
}

static void expect_load_error(const char *text, const char *expected)
{
    char err[512] = "";
    pl_config *c = load(text, err, sizeof err);
    if (c)
        fprintf(stderr, "loaded, but expected: %s\n", expected);
    CHECK_NULL(c);
    CHECK_STR(err, expected);
}

/* Loads text as parley.conf and expects "PATH:line: msg". */
static void expect_error(const char *text, int line, const char *msg)
{
    char expected[1024];
    snprintf(expected, sizeof expected, "%s:%d: %s", in_dir("parley.conf"), line, msg);
    expect_load_error(text, expected);
}

static void expect_parse_error(const char *text, const char *expected)
{
    char err[512] = "";
    int ok = 7;
    pl_conf_node *n = pl_conf_parse_string("t.conf", text, &ok, err, sizeof err);
    CHECK_NULL(n);
    CHECK_EQ(ok, 0);
    CHECK_STR(err, expected);
}

/* ==== value parsers ==== */

static long long int_of(const char *s)
{
    long long v = -12345;
    CHECK_EQ(pl_conf_parse_int(s, &v), 0);
    return v;
}

static long long size_of(const char *s)
{
    long long v = -12345;
    CHECK_EQ(pl_conf_parse_size(s, &v), 0);
    return v;
}

static long long duration_of(const char *s)
{
    long long v = -12345;
    CHECK_EQ(pl_conf_parse_duration(s, &v), 0);
    return v;
}

static int bool_of(const char *s)
{
    int v = -1;
    CHECK_EQ(pl_conf_parse_bool(s, &v), 0);
    return v;
}

PL_TEST(parse_int_values)
{
    CHECK_EQ(int_of("0"), 0);
    CHECK_EQ(int_of("42"), 42);
    CHECK_EQ(int_of("007"), 7);
    CHECK_EQ(int_of("-7"), -7);
    CHECK_EQ(int_of("9223372036854775807"), 9223372036854775807LL);
    long long v = 99;
    const char *bad[] = { "", "-", "+1", " 1", "1 ", "1k", "0x10", "1.5", "--1",
                          "9223372036854775808", "99999999999999999999", NULL };
    for (int i = 0; bad[i]; i++) {
        if (pl_conf_parse_int(bad[i], &v) != -1)
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        CHECK_EQ(pl_conf_parse_int(bad[i], &v), -1);
    }
    CHECK_EQ(v, 99);
}

PL_TEST(parse_size_values)
{
    CHECK_EQ(size_of("0"), 0);
    CHECK_EQ(size_of("10"), 10);
    CHECK_EQ(size_of("10k"), 10240);
    CHECK_EQ(size_of("2K"), 2048);
    CHECK_EQ(size_of("4m"), 4194304);
    CHECK_EQ(size_of("1g"), 1073741824);
    CHECK_EQ(size_of("3G"), 3221225472LL);
    CHECK_EQ(size_of("8589934591g"), 9223372035781033984LL);
    long long v = 99;
    const char *bad[] = { "", "-1", "-1k", "k", "1kb", "1t", "1 k", "1.5m", "+1",
                          "8589934592g", "9007199254740992k", "99999999999999999999",
                          NULL };
    for (int i = 0; bad[i]; i++) {
        if (pl_conf_parse_size(bad[i], &v) != -1)
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        CHECK_EQ(pl_conf_parse_size(bad[i], &v), -1);
    }
    CHECK_EQ(v, 99);
}

PL_TEST(parse_duration_values)
{
    CHECK_EQ(duration_of("0"), 0);
    CHECK_EQ(duration_of("30"), 30);
    CHECK_EQ(duration_of("30s"), 30);
    CHECK_EQ(duration_of("5m"), 300);
    CHECK_EQ(duration_of("2h"), 7200);
    CHECK_EQ(duration_of("1d"), 86400);
    CHECK_EQ(duration_of("106751991167300d"), 9223372036854720000LL);
    long long v = 99;
    const char *bad[] = { "", "-5", "-5s", "1w", "1.5h", "h", "1hm", "5 m",
                          "106751991167301d", "153722867280912931m", NULL };
    for (int i = 0; bad[i]; i++) {
        if (pl_conf_parse_duration(bad[i], &v) != -1)
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        CHECK_EQ(pl_conf_parse_duration(bad[i], &v), -1);
    }
    CHECK_EQ(v, 99);
}

PL_TEST(parse_bool_values)
{
    CHECK_EQ(bool_of("yes"), 1);
    CHECK_EQ(bool_of("on"), 1);
    CHECK_EQ(bool_of("true"), 1);
    CHECK_EQ(bool_of("1"), 1);
    CHECK_EQ(bool_of("YES"), 1);
    CHECK_EQ(bool_of("no"), 0);
    CHECK_EQ(bool_of("off"), 0);
    CHECK_EQ(bool_of("false"), 0);
    CHECK_EQ(bool_of("0"), 0);
    CHECK_EQ(bool_of("Off"), 0);
    int v = 7;
    const char *bad[] = { "", "y", "n", "2", "maybe", "yes ", "enabled", NULL };
    for (int i = 0; bad[i]; i++)
        CHECK_EQ(pl_conf_parse_bool(bad[i], &v), -1);
    CHECK_EQ(v, 7);
}

/* ==== syntax ==== */

PL_TEST(syntax_tree)
{
    const char *text =
        "# a comment line\n"
        "alpha 1 \"two words\" {\n"
        "    beta;   # trailing comment\n"
        "    gamma \"q\\\"b\\\\s\\nn\\tt\" x#y;\n"
        "    delta { }\n"
        "}\n"
        "epsilon\n"
        "  \"\"\n"
        "  ;\n"
        "zeta{}omega;";
    char err[256] = "";
    int ok = 0;
    pl_conf_node *list = pl_conf_parse_string("t.conf", text, &ok, err, sizeof err);
    CHECK_EQ(ok, 1);
    CHECK_STR(err, "");
    pl_conf_node *a = list;
    CHECK_STR(a->name, "alpha");
    CHECK_EQ(a->nargs, 2);
    CHECK_STR(a->args[0], "1");
    CHECK_STR(a->args[1], "two words");
    CHECK_EQ(a->has_block, 1);
    CHECK_STR(a->file, "t.conf");
    CHECK_EQ(a->line, 2);
    pl_conf_node *b = a->children;
    CHECK_STR(b->name, "beta");
    CHECK_EQ(b->nargs, 0);
    CHECK_EQ(b->has_block, 0);
    CHECK_NULL(b->children);
    CHECK_EQ(b->line, 3);
    pl_conf_node *g = b->next;
    CHECK_STR(g->name, "gamma");
    CHECK_EQ(g->nargs, 2);
    CHECK_STR(g->args[0], "q\"b\\s\nn\tt");
    CHECK_STR(g->args[1], "x#y");
    CHECK_EQ(g->line, 4);
    pl_conf_node *d = g->next;
    CHECK_STR(d->name, "delta");
    CHECK_EQ(d->has_block, 1);
    CHECK_NULL(d->children);
    CHECK_NULL(d->next);
    pl_conf_node *e = a->next;
    CHECK_STR(e->name, "epsilon");
    CHECK_EQ(e->nargs, 1);
    CHECK_STR(e->args[0], "");
    CHECK_EQ(e->line, 7);
    pl_conf_node *z = e->next;
    CHECK_STR(z->name, "zeta");
    CHECK_EQ(z->has_block, 1);
    CHECK_EQ(z->nargs, 0);
    CHECK_EQ(z->line, 10);
    CHECK_STR(z->next->name, "omega");
    CHECK_NULL(z->next->next);
    pl_conf_free(list);
}

PL_TEST(syntax_empty_files)
{
    char err[64] = "";
    int ok = 0;
    CHECK_NULL(pl_conf_parse_string("t.conf", "", &ok, err, sizeof err));
    CHECK_EQ(ok, 1);
    ok = 0;
    CHECK_NULL(pl_conf_parse_string("t.conf", "  # only a comment\n\n", &ok, err, sizeof err));
    CHECK_EQ(ok, 1);
    setup();
    write_file("empty.conf", "");
    ok = 0;
    CHECK_NULL(pl_conf_parse_file(in_dir("empty.conf"), &ok, err, sizeof err));
    CHECK_EQ(ok, 1);
    CHECK_STR(err, "");
    cleanup();
}

PL_TEST(syntax_errors)
{
    expect_parse_error("log_level info", "t.conf:1: expected ';' or '{' after \"log_level info\"");
    expect_parse_error("a;\n\nlog_level info\n",
                       "t.conf:3: expected ';' or '{' after \"log_level info\"");
    expect_parse_error("vhost x {\n    key \"k\"\n}\n",
                       "t.conf:2: expected ';' or '{' after \"key k\"");
    expect_parse_error("a {\n  b;\n", "t.conf:2: missing '}' for block opened at line 1");
    expect_parse_error("a {\n  b {\n  c;\n}", "t.conf:4: missing '}' for block opened at line 1");
    expect_parse_error("a {\n  b {\n  c;\n", "t.conf:3: missing '}' for block opened at line 2");
    expect_parse_error("a;\n}\n", "t.conf:2: unexpected '}'");
    expect_parse_error("a {}\n}", "t.conf:2: unexpected '}'");
    expect_parse_error("a \"abc\n\";", "t.conf:1: unterminated string");
    expect_parse_error("a;\nb \"abc", "t.conf:2: unterminated string");
    expect_parse_error("a \"abc\\", "t.conf:1: unterminated string");
    expect_parse_error("a \"x\\q\";", "t.conf:1: unknown escape '\\q' in string");
    expect_parse_error("a;;", "t.conf:1: unexpected ';'");
    expect_parse_error("\n{ }", "t.conf:2: unexpected '{'");
    expect_parse_error("\"a\" b;", "t.conf:1: expected a directive name, found a quoted string");
    expect_parse_error("a \"b\"c;", "t.conf:1: expected a space or ';' after a quoted string");
    expect_parse_error("a \"b\"\"c\";", "t.conf:1: expected a space between quoted strings");
    expect_parse_error("a b\"c\";", "t.conf:1: unexpected '\"' inside a word");
    expect_parse_error("a b\001;", "t.conf:1: unexpected control character 0x01");
    expect_parse_error("conninfo \"host=/very/long/socket/directory/for/postgresql "
                       "dbname=parley user=parley\" pool",
                       "t.conf:1: expected ';' or '{' after \"conninfo host=/very/long/"
                       "socket/directory/for/postgresql dbn...\"");
    expect_parse_error("include;", "t.conf:1: 'include' takes exactly one argument");
    expect_parse_error("include a b;", "t.conf:1: 'include' takes exactly one argument");
    expect_parse_error("include a { }", "t.conf:1: 'include' takes no block");
}

PL_TEST(syntax_nul_byte)
{
    setup();
    FILE *f = fopen(in_dir("nul.conf"), "w");
    CHECK(f != NULL);
    CHECK_EQ(fwrite("a;\nb c\0;\n", 1, 9, f), 9);
    CHECK(fclose(f) == 0);
    char err[512], expected[512];
    int ok = 1;
    CHECK_NULL(pl_conf_parse_file(in_dir("nul.conf"), &ok, err, sizeof err));
    CHECK_EQ(ok, 0);
    snprintf(expected, sizeof expected, "%s:2: unexpected NUL byte", in_dir("nul.conf"));
    CHECK_STR(err, expected);
    cleanup();
}

PL_TEST(syntax_missing_file)
{
    setup();
    char err[512], expected[512];
    int ok = 1;
    CHECK_NULL(pl_conf_parse_file(in_dir("none.conf"), &ok, err, sizeof err));
    CHECK_EQ(ok, 0);
    snprintf(expected, sizeof expected, "%s: cannot read: No such file or directory",
             in_dir("none.conf"));
    CHECK_STR(err, expected);
    CHECK_NULL(pl_config_load(in_dir("none.conf"), err, sizeof err));
    CHECK_STR(err, expected);
    cleanup();
}

/* ==== include ==== */

PL_TEST(include_splices_relative)
{
    setup();
    make_dir("sub");
    make_dir("sub/deeper");
    write_file("main.conf", "a;\ninclude sub/x.conf;\nb;\n");
    write_file("sub/x.conf", "c 1;\ninclude \"deeper/y.conf\";\nd { e; }\n");
    write_file("sub/deeper/y.conf", "\n\nf;\n");
    char err[512] = "";
    int ok = 0;
    pl_conf_node *list = pl_conf_parse_file(in_dir("main.conf"), &ok, err, sizeof err);
    CHECK_EQ(ok, 1);
    const char *names[] = { "a", "c", "f", "d", "b" };
    const char *files[] = { in_dir("main.conf"), in_dir("sub/x.conf"),
                            in_dir("sub/deeper/y.conf"), in_dir("sub/x.conf"),
                            in_dir("main.conf") };
    const int lines[] = { 1, 1, 3, 3, 3 };
    pl_conf_node *n = list;
    for (int i = 0; i < 5; i++, n = n->next) {
        CHECK(n != NULL);
        CHECK_STR(n->name, names[i]);
        CHECK_STR(n->file, files[i]);
        CHECK_EQ(n->line, lines[i]);
    }
    CHECK_NULL(n);
    pl_conf_free(list);
    cleanup();
}

PL_TEST(include_inside_block_and_paths)
{
    setup();
    make_dir("hosts");
    write_file("hosts/local.conf",
               "vhost localhost {\n    certificate ../cert.pem;\n    include keyline.conf;\n}\n");
    write_file("hosts/keyline.conf", "key ../key.pem;\n");
    pl_config *c = load("database { include db.conf; }\ninclude hosts/local.conf;\n", NULL, 0);
    CHECK_NULL(c);
    write_file("db.conf", "conninfo \"dbname=x\";\n");
    char err[512] = "";
    c = load("database { include db.conf; }\ninclude hosts/local.conf;\n", err, sizeof err);
    CHECK_STR(err, "");
    CHECK(c != NULL);
    CHECK_STR(c->db_conninfo, "dbname=x");
    CHECK_EQ(c->nvhosts, 1);
    CHECK_STR(c->vhosts[0].certificate, in_dir("hosts/../cert.pem"));
    CHECK_STR(c->vhosts[0].key, in_dir("hosts/../key.pem"));
    CHECK_STR(c->vhosts[0].file, in_dir("hosts/local.conf"));
    CHECK_EQ(c->vhosts[0].line, 1);
    pl_config_free(c);
    cleanup();
}

PL_TEST(include_cycle_rejected)
{
    setup();
    write_file("a.conf", "x;\ninclude b.conf;\n");
    write_file("b.conf", "y;\n\ninclude a.conf;\n");
    char err[512] = "", expected[512];
    int ok = 1;
    CHECK_NULL(pl_conf_parse_file(in_dir("a.conf"), &ok, err, sizeof err));
    CHECK_EQ(ok, 0);
    snprintf(expected, sizeof expected,
             "%s:3: include cycle: \"%s\" is already being read", in_dir("b.conf"),
             in_dir("a.conf"));
    CHECK_STR(err, expected);

    write_file("self.conf", "include ./self.conf;\n");
    CHECK_NULL(pl_conf_parse_file(in_dir("self.conf"), &ok, err, sizeof err));
    snprintf(expected, sizeof expected,
             "%s:1: include cycle: \"%s/./self.conf\" is already being read",
             in_dir("self.conf"), dir);
    CHECK_STR(err, expected);

    /* the same file twice in sequence is not a cycle */
    write_file("twice.conf", "include leaf.conf;\ninclude leaf.conf;\n");
    write_file("leaf.conf", "z;\n");
    pl_conf_node *list = pl_conf_parse_file(in_dir("twice.conf"), &ok, err, sizeof err);
    CHECK_EQ(ok, 1);
    CHECK_STR(list->name, "z");
    CHECK_STR(list->next->name, "z");
    CHECK_NULL(list->next->next);
    pl_conf_free(list);
    cleanup();
}

PL_TEST(include_depth_bounded)
{
    setup();
    char name[32], text[64];
    for (int i = 0; i <= 17; i++) {
        snprintf(name, sizeof name, "f%d.conf", i);
        snprintf(text, sizeof text, "n%d;\ninclude f%d.conf;\n", i, i + 1);
        write_file(name, text);
    }
    write_file("f18.conf", "last;\n");
    char err[512] = "", expected[512];
    int ok = 1;
    CHECK_NULL(pl_conf_parse_file(in_dir("f0.conf"), &ok, err, sizeof err));
    snprintf(expected, sizeof expected,
             "%s:2: includes nested too deeply (more than 16 levels)", in_dir("f16.conf"));
    CHECK_STR(err, expected);
    /* sixteen levels are fine */
    write_file("f16.conf", "n16;\n");
    pl_conf_node *list = pl_conf_parse_file(in_dir("f0.conf"), &ok, err, sizeof err);
    CHECK_EQ(ok, 1);
    int count = 0;
    for (pl_conf_node *n = list; n; n = n->next)
        count++;
    CHECK_EQ(count, 17);
    pl_conf_free(list);
    cleanup();
}

PL_TEST(include_errors)
{
    setup();
    char expected[512];
    snprintf(expected, sizeof expected, "cannot read \"%s\": No such file or directory",
             in_dir("nope.conf"));
    expect_error("include nope.conf;\n" BASE, 1, expected);
    make_dir("adir");
    snprintf(expected, sizeof expected, "cannot read \"%s\": Is a directory", in_dir("adir"));
    expect_error("\ninclude adir;\n" BASE, 2, expected);
    write_file("broken.conf", "a {\n");
    char full[512];
    snprintf(full, sizeof full, "%s:1: missing '}' for block opened at line 1",
             in_dir("broken.conf"));
    expect_load_error(BASE "include broken.conf;\n", full);
    cleanup();
}

/* ==== whole configurations ==== */

PL_TEST(config_full)
{
    setup();
    make_dir("certs");
    write_file("certs/local.pem", "c\n");
    write_file("certs/local.key", "k\n");
    write_file("ca.pem", "ca\n");
    char text[4096];
    snprintf(text, sizeof text,
             "# every directive\n"
             "log_level debug;\n"
             "modules_dir mods;\n"
             "control_socket /run/parley/ctl.sock;\n"
             "database {\n"
             "    conninfo \"host=/var/lib/parley/pg dbname=parley\";\n"
             "    pool_size 8;\n"
             "}\n"
             "auth { scram_iterations 10000; }\n"
             "tls {\n"
             "    priority \"NORMAL:-VERS-TLS1.0\";\n"
             "    ca_file ca.pem;\n"
             "    c2s_require no;\n"
             "    s2s_require off;\n"
             "}\n"
             "listen c2s 127.0.0.1:5222;\n"
             "listen c2s_tls [::1]:5223;\n"
             "listen s2s *:5269;\n"
             "listen s2s_tls 0.0.0.0:05270;\n"
             "limits {\n"
             "    max_stanza_size 128k;\n"
             "    unauth_timeout 1m;\n"
             "    c2s_rate 10k;\n"
             "    c2s_burst 1m;\n"
             "    auth_failures 3;\n"
             "    auth_window 2m;\n"
             "    max_resources 4;\n"
             "    c2s_idle_timeout 1h;\n"
             "    s2s_idle_timeout 1d;\n"
             "}\n"
             "modules { auth_pg; disco ping; version time; }\n"
             "module ping { interval 60; }\n"
             "vhost Example.ORG {\n"
             "    certificate cert.pem;\n"
             "    key \"%s\";\n"
             "}\n"
             "vhost localhost {\n"
             "    certificate certs/local.pem;\n"
             "    key certs/local.key;\n"
             "    modules { disco; }\n"
             "    module ping { interval 30; }\n"
             "}\n",
             in_dir("key.pem"));
    char err[512] = "";
    pl_config *c = load(text, err, sizeof err);
    CHECK_STR(err, "");
    CHECK(c != NULL);
    CHECK_STR(c->path, in_dir("parley.conf"));
    CHECK(c->tree != NULL);
    CHECK_EQ(c->log_level, PL_LOG_DEBUG);
    CHECK_STR(c->modules_dir, in_dir("mods"));
    CHECK_STR(c->control_socket, "/run/parley/ctl.sock");
    CHECK_STR(c->db_conninfo, "host=/var/lib/parley/pg dbname=parley");
    CHECK_EQ(c->db_pool, 8);
    CHECK_EQ(c->scram_iterations, 10000);
    CHECK_STR(c->tls_priority, "NORMAL:-VERS-TLS1.0");
    CHECK_STR(c->ca_file, in_dir("ca.pem"));
    CHECK_EQ(c->c2s_require_tls, 0);
    CHECK_EQ(c->s2s_require_tls, 0);

    CHECK_EQ(c->nlistens, 4);
    const int roles[] = { PL_LISTEN_C2S, PL_LISTEN_C2S_TLS, PL_LISTEN_S2S, PL_LISTEN_S2S_TLS };
    const char *hosts[] = { "127.0.0.1", "::1", "*", "0.0.0.0" };
    const char *ports[] = { "5222", "5223", "5269", "5270" };
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(c->listens[i].role, roles[i]);
        CHECK_STR(c->listens[i].host, hosts[i]);
        CHECK_STR(c->listens[i].port, ports[i]);
        CHECK_STR(c->listens[i].file, in_dir("parley.conf"));
        CHECK_EQ(c->listens[i].line, 16 + i);
    }

    CHECK_EQ(c->limits.max_stanza_size, 131072);
    CHECK_EQ(c->limits.unauth_timeout, 60);
    CHECK_EQ(c->limits.c2s_rate, 10240);
    CHECK_EQ(c->limits.c2s_burst, 1048576);
    CHECK_EQ(c->limits.auth_failures, 3);
    CHECK_EQ(c->limits.auth_window, 120);
    CHECK_EQ(c->limits.max_resources, 4);
    CHECK_EQ(c->limits.c2s_idle_timeout, 3600);
    CHECK_EQ(c->limits.s2s_idle_timeout, 86400);

    const char *mods[] = { "auth_pg", "disco", "ping", "version", "time" };
    CHECK_EQ(c->nmodules, 5);
    for (int i = 0; i < 5; i++)
        CHECK_STR(c->modules[i], mods[i]);
    CHECK_NULL(c->modules[5]);

    CHECK_EQ(c->nvhosts, 2);
    const pl_vhost_conf *v = &c->vhosts[0];
    CHECK_STR(v->name, "example.org");
    CHECK_STR(v->certificate, in_dir("cert.pem"));
    CHECK_STR(v->key, in_dir("key.pem"));
    CHECK_EQ(v->nmodules, 5);
    for (int i = 0; i < 5; i++) {
        CHECK_STR(v->modules[i], mods[i]);
        CHECK(v->modules[i] != c->modules[i]);
    }
    CHECK_NULL(v->modules[5]);
    CHECK_STR(v->block->name, "vhost");
    CHECK_STR(v->block->args[0], "Example.ORG");
    CHECK_STR(v->file, in_dir("parley.conf"));
    CHECK_EQ(v->line, 33);

    v = &c->vhosts[1];
    CHECK_STR(v->name, "localhost");
    CHECK_STR(v->certificate, in_dir("certs/local.pem"));
    CHECK_STR(v->key, in_dir("certs/local.key"));
    CHECK_EQ(v->nmodules, 1);
    CHECK_STR(v->modules[0], "disco");
    CHECK_NULL(v->modules[1]);
    CHECK_EQ(v->line, 37);

    CHECK(pl_config_vhost(c, "example.org") == &c->vhosts[0]);
    CHECK(pl_config_vhost(c, "EXAMPLE.org") == &c->vhosts[0]);
    CHECK(pl_config_vhost(c, "localhost") == &c->vhosts[1]);
    CHECK_NULL(pl_config_vhost(c, "example.net"));
    CHECK_NULL(pl_config_vhost(c, ""));
    pl_config_free(c);
    cleanup();
}

PL_TEST(config_defaults)
{
    setup();
    char err[512] = "";
    pl_config *c = load(BASE, err, sizeof err);
    CHECK_STR(err, "");
    CHECK(c != NULL);
    CHECK_EQ(c->log_level, PL_LOG_INFO);
#ifdef PL_MODULES_DIR
    CHECK_STR(c->modules_dir, PL_MODULES_DIR);
#else
    CHECK_STR(c->modules_dir, "/usr/local/lib/parley/modules");
#endif
    CHECK_NULL(c->control_socket);
    CHECK_STR(c->db_conninfo, "dbname=parley");
    CHECK_EQ(c->db_pool, 4);
    CHECK_EQ(c->scram_iterations, 4096);
    CHECK_EQ(c->c2s_require_tls, 1);
    CHECK_EQ(c->s2s_require_tls, 1);
    CHECK_STR(c->tls_priority, "NORMAL");
    CHECK_NULL(c->ca_file);
    CHECK_EQ(c->nlistens, 0);
    CHECK_EQ(c->nmodules, 0);
    CHECK(c->modules != NULL);
    CHECK_NULL(c->modules[0]);
    CHECK_EQ(c->limits.max_stanza_size, 262144);
    CHECK_EQ(c->limits.unauth_timeout, 30);
    CHECK_EQ(c->limits.c2s_rate, 0);
    CHECK_EQ(c->limits.c2s_burst, 65536);
    CHECK_EQ(c->limits.auth_failures, 5);
    CHECK_EQ(c->limits.auth_window, 60);
    CHECK_EQ(c->limits.max_resources, 16);
    CHECK_EQ(c->limits.c2s_idle_timeout, 0);
    CHECK_EQ(c->limits.s2s_idle_timeout, 600);
    CHECK_EQ(c->nvhosts, 1);
    CHECK_STR(c->vhosts[0].name, "localhost");
    CHECK_EQ(c->vhosts[0].nmodules, 0);
    CHECK(c->vhosts[0].modules != NULL);
    CHECK_NULL(c->vhosts[0].modules[0]);
    pl_config_free(c);
    cleanup();
}

PL_TEST(config_relative_to_cwd)
{
    setup();
    char cwd[PATH_MAX], expected[PATH_MAX + 32];
    CHECK(chdir(dir) == 0);
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    write_file("parley.conf", BASE "modules_dir ./mods;\n");
    char err[512] = "";
    pl_config *c = pl_config_load("parley.conf", err, sizeof err);
    CHECK_STR(err, "");
    CHECK(c != NULL);
    snprintf(expected, sizeof expected, "%s/cert.pem", cwd);
    CHECK_STR(c->vhosts[0].certificate, expected);
    snprintf(expected, sizeof expected, "%s/./mods", cwd);
    CHECK_STR(c->modules_dir, expected);
    pl_config_free(c);
    write_file("parley.conf", "log_level x;\n" BASE);
    CHECK_NULL(pl_config_load("parley.conf", err, sizeof err));
    CHECK_STR(err, "parley.conf:1: invalid log_level \"x\" (expected debug, info, notice, "
                   "warn or error)");
    CHECK(chdir("/") == 0);
    cleanup();
}

PL_TEST(config_limits_bounds)
{
    setup();
    char err[512] = "";
    pl_config *c = load("limits {\n max_stanza_size 4096;\n unauth_timeout 1h;\n"
                        " c2s_rate 0; c2s_burst 1k;\n auth_failures 1; auth_window 1d;\n"
                        " max_resources 1000; c2s_idle_timeout 30d; s2s_idle_timeout 1;\n}\n"
                        BASE, err, sizeof err);
    CHECK_STR(err, "");
    CHECK(c != NULL);
    CHECK_EQ(c->limits.max_stanza_size, 4096);
    CHECK_EQ(c->limits.unauth_timeout, 3600);
    CHECK_EQ(c->limits.c2s_rate, 0);
    CHECK_EQ(c->limits.c2s_burst, 1024);
    CHECK_EQ(c->limits.auth_failures, 1);
    CHECK_EQ(c->limits.auth_window, 86400);
    CHECK_EQ(c->limits.max_resources, 1000);
    CHECK_EQ(c->limits.c2s_idle_timeout, 2592000);
    CHECK_EQ(c->limits.s2s_idle_timeout, 1);
    pl_config_free(c);
    c = load("limits { max_stanza_size 64m; }\ndatabase { conninfo \"\"; pool_size 64; }\n"
             "auth { scram_iterations 10000000; }\n"
             "vhost localhost { certificate cert.pem; key key.pem; }\n", err, sizeof err);
    CHECK_STR(err, "");
    CHECK(c != NULL);
    CHECK_EQ(c->limits.max_stanza_size, 67108864);
    CHECK_STR(c->db_conninfo, "");
    CHECK_EQ(c->db_pool, 64);
    CHECK_EQ(c->scram_iterations, 10000000);
    pl_config_free(c);
    cleanup();
}

/* ==== semantic errors ==== */

PL_TEST(error_unknown_and_shape)
{
    setup();
    expect_error("foo bar;\n" BASE, 1, "unknown directive 'foo'");
    expect_error("\n\nvhost localhost { certificate cert.pem; key key.pem; foo; }\n"
                 "database { conninfo x; }\n", 3, "unknown directive 'foo' in 'vhost' block");
    expect_error("database {\n conninfo x;\n user y;\n}\n"
                 "vhost localhost { certificate cert.pem; key key.pem; }\n", 3,
                 "unknown directive 'user' in 'database' block");
    expect_error("limits { max_stanzas 1; }\n" BASE, 1,
                 "unknown directive 'max_stanzas' in 'limits' block");
    expect_error("log_level;\n" BASE, 1, "'log_level' takes 1 argument");
    expect_error("log_level info debug;\n" BASE, 1, "'log_level' takes 1 argument");
    expect_error("log_level info { }\n" BASE, 1, "'log_level' takes no { } block");
    expect_error("listen c2s;\n" BASE, 1, "'listen' takes 2 arguments");
    expect_error("database;\n" BASE, 1, "'database' needs a { } block");
    expect_error("database main { conninfo x; }\n" BASE, 1, "'database' takes no arguments");
    expect_error("vhost { }\n" BASE, 1, "'vhost' takes 1 argument");
    expect_error("module ping;\n" BASE, 1, "'module' needs a { } block");
    expect_error("auth { scram_iterations; }\n" BASE, 1, "'scram_iterations' takes 1 argument");
    cleanup();
}

PL_TEST(error_duplicates)
{
    setup();
    char msg[1024];
    snprintf(msg, sizeof msg, "duplicate 'log_level' (first at %s:1)", in_dir("parley.conf"));
    expect_error("log_level info;\nlog_level debug;\n" BASE, 2, msg);
    snprintf(msg, sizeof msg, "duplicate 'database' (first at %s:1)", in_dir("parley.conf"));
    expect_error("database { conninfo a; }\n" BASE, 2, msg);
    snprintf(msg, sizeof msg, "duplicate 'pool_size' (first at %s:1)", in_dir("parley.conf"));
    expect_error("database { pool_size 2;\n pool_size 3; conninfo x; }\n"
                 "vhost localhost { certificate cert.pem; key key.pem; }\n", 2, msg);
    snprintf(msg, sizeof msg, "duplicate 'certificate' (first at %s:2)", in_dir("parley.conf"));
    expect_error("database { conninfo x; }\nvhost localhost { certificate cert.pem;\n"
                 "certificate cert.pem; key key.pem; }\n", 3, msg);
    cleanup();
}

PL_TEST(error_values)
{
    setup();
    expect_error("log_level loud;\n" BASE, 1,
                 "invalid log_level \"loud\" (expected debug, info, notice, warn or error)");
    expect_error("limits { max_stanza_size 1k; }\n" BASE, 1,
                 "'max_stanza_size' must be between 4096 and 67108864, got \"1k\"");
    expect_error("limits { max_stanza_size 65m; }\n" BASE, 1,
                 "'max_stanza_size' must be between 4096 and 67108864, got \"65m\"");
    expect_error("limits {\n unauth_timeout soon;\n}\n" BASE, 2,
                 "'unauth_timeout' expects a duration (e.g. 30, 30s, 5m, 2h, 1d), got \"soon\"");
    expect_error("limits { unauth_timeout 0; }\n" BASE, 1,
                 "'unauth_timeout' must be between 1 and 3600, got \"0\"");
    expect_error("limits { c2s_burst 99999999999g; }\n" BASE, 1,
                 "'c2s_burst' expects a size (e.g. 4096, 64k, 1m), got \"99999999999g\"");
    expect_error("limits { c2s_rate -1; }\n" BASE, 1,
                 "'c2s_rate' expects a size (e.g. 4096, 64k, 1m), got \"-1\"");
    expect_error("limits { auth_failures many; }\n" BASE, 1,
                 "'auth_failures' expects an integer, got \"many\"");
    expect_error("limits { max_resources 0; }\n" BASE, 1,
                 "'max_resources' must be between 1 and 1000, got \"0\"");
    expect_error("limits { s2s_idle_timeout 31d; }\n" BASE, 1,
                 "'s2s_idle_timeout' must be between 1 and 2592000, got \"31d\"");
    expect_error("auth { scram_iterations 1000; }\n" BASE, 1,
                 "'scram_iterations' must be between 4096 and 10000000, got \"1000\"");
    expect_error("auth { scram_iterations 10000001; }\n" BASE, 1,
                 "'scram_iterations' must be between 4096 and 10000000, got \"10000001\"");
    expect_error("database { conninfo x; pool_size 0; }\n"
                 "vhost localhost { certificate cert.pem; key key.pem; }\n", 1,
                 "'pool_size' must be between 1 and 64, got \"0\"");
    expect_error("database { conninfo x; pool_size 65; }\n"
                 "vhost localhost { certificate cert.pem; key key.pem; }\n", 1,
                 "'pool_size' must be between 1 and 64, got \"65\"");
    expect_error("tls { c2s_require maybe; }\n" BASE, 1,
                 "'c2s_require' expects yes or no, got \"maybe\"");
    expect_error("control_socket \"\";\n" BASE, 1, "'control_socket' needs a non-empty path");
    char msg[1024];
    snprintf(msg, sizeof msg, "cannot read ca_file \"%s\": No such file or directory",
             in_dir("missing.pem"));
    expect_error("tls { ca_file missing.pem; }\n" BASE, 1, msg);

    char err[512] = "";
    pl_config *c = load("tls { priority \"NORMAL:+NO-SUCH-THING\"; }\n" BASE, err, sizeof err);
    CHECK_NULL(c);
    char prefix[1024];
    snprintf(prefix, sizeof prefix,
             "%s:1: invalid TLS priority string \"NORMAL:+NO-SUCH-THING\" (error at \"",
             in_dir("parley.conf"));
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fprintf(stderr, "got: %s\n", err);
    CHECK(strncmp(err, prefix, strlen(prefix)) == 0);
    cleanup();
}

PL_TEST(error_listen)
{
    setup();
    expect_error("listen web 127.0.0.1:80;\n" BASE, 1,
                 "unknown listen role \"web\" (expected c2s, c2s_tls, s2s or s2s_tls)");
    const char *bad_addr[] = { "localhost:5222", "127.0.0.1", "::1:5222", "[::1]5222",
                               "[zz]:5222", "[::1:5222", "[127.0.0.1]:5222", "1.2.3:5222",
                               "*", ":5222", "[]:5222", NULL };
    char text[512], msg[512];
    for (int i = 0; bad_addr[i]; i++) {
        snprintf(text, sizeof text, "listen c2s \"%s\";\n" BASE, bad_addr[i]);
        snprintf(msg, sizeof msg, "invalid listen address \"%s\" (expected IPV4:PORT, "
                 "[IPV6]:PORT or *:PORT)", bad_addr[i]);
        expect_error(text, 1, msg);
    }
    const char *bad_port[] = { "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "*:+5",
                               "[::1]:-1", "*:http", "*:000005222", "*:99999999999999999999",
                               NULL };
    for (int i = 0; bad_port[i]; i++) {
        snprintf(text, sizeof text, "listen s2s %s;\n" BASE, bad_port[i]);
        snprintf(msg, sizeof msg, "invalid listen port in \"%s\" (expected 1..65535)",
                 bad_port[i]);
        expect_error(text, 1, msg);
    }
    snprintf(msg, sizeof msg, "duplicate listen address \"127.0.0.1:5222\" (first at %s:1)",
             in_dir("parley.conf"));
    expect_error("listen c2s 127.0.0.1:5222;\nlisten c2s 127.0.0.1:5222;\n" BASE, 2, msg);
    snprintf(msg, sizeof msg, "duplicate listen address \"[0:0::1]:5222\" (first at %s:1)",
             in_dir("parley.conf"));
    expect_error("listen c2s [::1]:5222;\nlisten s2s [0:0::1]:5222;\n" BASE, 2, msg);
    snprintf(msg, sizeof msg, "duplicate listen address \"*:5269\" (first at %s:2)",
             in_dir("parley.conf"));
    expect_error("listen c2s *:5222;\nlisten s2s *:5269;\nlisten s2s_tls *:5269;\n" BASE, 3,
                 msg);
    /* the same port on different addresses is fine */
    char err[512] = "";
    pl_config *c = load("listen c2s 127.0.0.1:5222;\nlisten c2s [::1]:5222;\n"
                        "listen c2s 127.0.0.2:5222;\n" BASE, err, sizeof err);
    CHECK_STR(err, "");
    CHECK(c != NULL);
    CHECK_EQ(c->nlistens, 3);
    CHECK_STR(c->listens[1].host, "::1");
    pl_config_free(c);
    cleanup();
}

PL_TEST(error_required_blocks)
{
    setup();
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: no 'vhost' block (at least one is required)",
             in_dir("parley.conf"));
    expect_load_error("database { conninfo x; }\n", msg);
    snprintf(msg, sizeof msg, "%s: no 'database' block (one is required)",
             in_dir("parley.conf"));
    expect_load_error("vhost localhost { certificate cert.pem; key key.pem; }\n", msg);
    expect_load_error("", msg);
    expect_error("\ndatabase {\n pool_size 2;\n}\n"
                 "vhost localhost { certificate cert.pem; key key.pem; }\n", 2,
                 "'database' block has no 'conninfo'");
    cleanup();
}

PL_TEST(error_vhost)
{
    setup();
    char msg[1024];
    snprintf(msg, sizeof msg, "cannot read certificate \"%s\": No such file or directory",
             in_dir("nope.pem"));
    expect_error("database { conninfo x; }\nvhost localhost {\n    certificate nope.pem;\n"
                 "    key key.pem;\n}\n", 3, msg);
    snprintf(msg, sizeof msg, "cannot read key \"%s\": No such file or directory",
             in_dir("nokey.pem"));
    expect_error("database { conninfo x; }\nvhost localhost {\n    certificate cert.pem;\n"
                 "    key nokey.pem;\n}\n", 4, msg);
    make_dir("certdir");
    snprintf(msg, sizeof msg, "cannot read certificate \"%s\": not a regular file",
             in_dir("certdir"));
    expect_error("database { conninfo x; }\nvhost localhost { certificate certdir; "
                 "key key.pem; }\n", 2, msg);
    expect_error("database { conninfo x; }\nvhost localhost {\n key key.pem;\n}\n", 2,
                 "vhost 'localhost' has no 'certificate'");
    expect_error("database { conninfo x; }\nvhost LOCALHOST { certificate cert.pem; }\n", 2,
                 "vhost 'localhost' has no 'key'");
    snprintf(msg, sizeof msg, "duplicate vhost 'localhost' (first at %s:2)",
             in_dir("parley.conf"));
    expect_error(BASE "vhost LocalHost { certificate cert.pem; key key.pem; }\n", 3, msg);
    expect_error("vhost \"bad domain\" { certificate cert.pem; key key.pem; }\n" BASE, 1,
                 "invalid vhost domain \"bad domain\"");
    expect_error("vhost \"\" { certificate cert.pem; key key.pem; }\n" BASE, 1,
                 "invalid vhost domain \"\"");
    cleanup();
}

PL_TEST(error_modules)
{
    setup();
    expect_error("modules { disco;\n Disco; }\n" BASE, 2,
                 "invalid module name \"Disco\" (expected lowercase letters, digits and '_')");
    expect_error("modules { disco ping-pong; }\n" BASE, 1,
                 "invalid module name \"ping-pong\" (expected lowercase letters, digits and "
                 "'_')");
    expect_error("modules { disco ping;\n version disco; }\n" BASE, 2,
                 "module 'disco' is listed twice");
    expect_error("modules { ping { interval 5; } }\n" BASE, 1,
                 "module 'ping' in 'modules' takes no { } block (options go in "
                 "'module ping { }')");
    expect_error("modules disco;\n" BASE, 1, "'modules' takes no arguments");
    expect_error("module Ping { }\n" BASE, 1,
                 "invalid module name \"Ping\" (expected lowercase letters, digits and '_')");
    expect_error("module ping {\n interval;\n}\n" BASE, 2,
                 "option 'interval' of module 'ping' needs a value");
    expect_error("module ping { interval 5 { } }\n" BASE, 1,
                 "option 'interval' of module 'ping' takes no { } block");
    char msg[1024];
    snprintf(msg, sizeof msg, "duplicate option 'interval' for module 'ping' (first at %s:1)",
             in_dir("parley.conf"));
    expect_error("module ping { interval 5;\n interval 6; }\n" BASE, 2, msg);
    snprintf(msg, sizeof msg, "duplicate 'module ping' block (first at %s:1)",
             in_dir("parley.conf"));
    expect_error("module ping { a 1; }\nmodule disco { }\nmodule ping { b 2; }\n" BASE, 3, msg);
    snprintf(msg, sizeof msg, "duplicate 'module ping' block (first at %s:3)",
             in_dir("parley.conf"));
    expect_error("database { conninfo x; }\nvhost localhost { certificate cert.pem;\n"
                 "key key.pem; module ping { a 1; }\nmodule ping { } }\n", 4, msg);
    cleanup();
}

/* ==== module options ==== */

PL_TEST(module_option_precedence)
{
    setup();
    char err[512] = "";
    pl_config *c = load("database { conninfo x; }\n"
                        "module ping { interval 60; timeout 10 20; }\n"
                        "vhost a.example {\n"
                        "    certificate cert.pem; key key.pem;\n"
                        "    module ping { interval 30; }\n"
                        "    module disco { name \"A host\"; }\n"
                        "}\n"
                        "vhost b.example { certificate cert.pem; key key.pem; }\n"
                        "module version { os no; }\n",
                        err, sizeof err);
    CHECK_STR(err, "");
    CHECK(c != NULL);
    const pl_conf_node *o = pl_config_module_option(c, "a.example", "ping", "interval");
    CHECK(o != NULL);
    CHECK_STR(o->name, "interval");
    CHECK_STR(o->args[0], "30");
    CHECK_EQ(o->line, 5);
    o = pl_config_module_option(c, "a.example", "ping", "timeout");
    CHECK(o != NULL);
    CHECK_EQ(o->nargs, 2);
    CHECK_STR(o->args[0], "10");
    CHECK_STR(o->args[1], "20");
    CHECK_EQ(o->line, 2);
    o = pl_config_module_option(c, "A.Example", "ping", "interval");
    CHECK_STR(o->args[0], "30");
    o = pl_config_module_option(c, "b.example", "ping", "interval");
    CHECK_STR(o->args[0], "60");
    CHECK_EQ(o->line, 2);
    o = pl_config_module_option(c, NULL, "ping", "interval");
    CHECK_STR(o->args[0], "60");
    o = pl_config_module_option(c, "unknown.example", "ping", "interval");
    CHECK_STR(o->args[0], "60");
    o = pl_config_module_option(c, "a.example", "disco", "name");
    CHECK_STR(o->args[0], "A host");
    CHECK_NULL(pl_config_module_option(c, "b.example", "disco", "name"));
    CHECK_NULL(pl_config_module_option(c, NULL, "disco", "name"));
    o = pl_config_module_option(c, "b.example", "version", "os");
    CHECK_STR(o->args[0], "no");
    CHECK_EQ(o->line, 9);
    CHECK_NULL(pl_config_module_option(c, "a.example", "ping", "missing"));
    CHECK_NULL(pl_config_module_option(c, NULL, "time", "interval"));
    pl_config_free(c);
    cleanup();
}
