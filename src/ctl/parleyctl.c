/* ctl/parleyctl.c: the administration tool. Manages accounts directly in
 * PostgreSQL (with the same SCRAM storage format the server reads) and
 * passes control commands to a running parleyd over its control socket.
 * Exit status: 0 success, 1 failure, 2 usage error. See
 * doc/operations.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>
#include <libpq-fe.h>
#include <parley/base.h>
#include <parley/buf.h>
#include <parley/jid.h>
#include "core/config.h"
#include "db/schema.h"
#include "sasl/scram.h"

#ifndef PL_SYSCONFDIR
#define PL_SYSCONFDIR "/usr/local/etc"
#endif
#define DEFAULT_CONFIG PL_SYSCONFDIR "/parley/parley.conf"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define PASSWORD_MAX 1024
#define REPLY_MAX (16 * 1024 * 1024)
#define CTL_TIMEOUT 60   /* seconds to wait for the daemon's reply */

static const char usage_text[] =
    "usage: parleyctl [-c FILE | --config FILE] COMMAND [ARGS...]\n"
    "\n"
    "Accounts (changed directly in the database):\n"
    "  user add JID [PASSWORD]      create an account (password read from\n"
    "                               standard input when not given)\n"
    "  user passwd JID [PASSWORD]   set an account's password\n"
    "  user delete JID              delete an account\n"
    "  user list [DOMAIN]           list accounts, one bare JID a line\n"
    "\n"
    "Server control (through the control socket of a running parleyd):\n"
    "  status                       version, uptime, counters, modules\n"
    "  module list [HOST]           loaded modules, \"HOST NAME\" a line\n"
    "  module load NAME [HOST]      load a module (on every host if none)\n"
    "  module unload NAME [HOST]    unload a module\n"
    "  module reload NAME [HOST]    reload a module\n"
    "  reload                       re-read the configuration file\n"
    "  sessions                     list client sessions\n"
    "  kick FULLJID                 close a client session\n"
    "  s2s                          list server-to-server streams\n"
    "  stop                         shut the server down\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE  configuration file (default " DEFAULT_CONFIG ")\n"
    "  -h, --help         show this text\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

static PL_NORETURN void usage_error(const char *fmt, ...) PL_PRINTF(1, 2);

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("parleyctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nRun 'parleyctl --help' for the commands and options.\n", stderr);
    va_end(ap);
    exit(EXIT_USAGE);
}

static int fail(const char *fmt, ...) PL_PRINTF(1, 2);

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("parleyctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

/* ==== passwords ==== */

/* Reads one line from standard input into buf (without the line end),
 * with the terminal's echo turned off when it is a terminal. Returns 0,
 * or -1 if there is no line or it is too long. */
static int read_password(char *buf, size_t size)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fputs("Password: ", stderr);
        fflush(stderr);
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(buf, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!got)
        return -1;
    size_t len = strlen(buf);
    if (len == size - 1 && buf[len - 1] != '\n')
        return -1;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return 0;
}

/* The SASLprepped password, from arg or standard input (malloced; the
 * caller wipes and frees it), or NULL after reporting why. */
static char *get_password(const char *arg)
{
    char line[PASSWORD_MAX];
    const char *raw = arg;
    if (!raw) {
        if (read_password(line, sizeof line) != 0) {
            explicit_bzero(line, sizeof line);
            fail("no password on standard input (or longer than %d bytes)",
                 PASSWORD_MAX - 2);
            return NULL;
        }
        raw = line;
    }
    char *prepped = NULL;
    int rc = *raw ? pl_saslprep(raw, &prepped) : -1;
    explicit_bzero(line, sizeof line);
    if (rc != 0 || !prepped || !*prepped) {
        if (prepped) {
            explicit_bzero(prepped, strlen(prepped));
            free(prepped);
        }
        fail("the password is empty or contains characters SASLprep prohibits");
        return NULL;
    }
    return prepped;
}

static void wipe_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* ==== accounts ==== */

/* Both hashes' credentials, sharing one salt (base64 strings). */
typedef struct creds {
    char *salt;
    char *sha1_stored, *sha1_server;
    char *sha256_stored, *sha256_server;
} creds;

static void creds_free(creds *c)
{
    wipe_free(c->salt);
    wipe_free(c->sha1_stored);
    wipe_free(c->sha1_server);
    wipe_free(c->sha256_stored);
    wipe_free(c->sha256_server);
}

static int make_creds(const char *password, unsigned iterations, creds *c)
{
    memset(c, 0, sizeof *c);
    if (pl_scram_make_creds(PL_SCRAM_SHA1, password, iterations, &c->salt,
                            &c->sha1_stored, &c->sha1_server) != 0 ||
        pl_scram_make_creds(PL_SCRAM_SHA256, password, iterations, &c->salt,
                            &c->sha256_stored, &c->sha256_server) != 0) {
        creds_free(c);
        return fail("cannot derive SCRAM credentials");
    }
    return 0;
}

/* Parses an account JID (node@domain, no resource) whose domain is a
 * configured vhost. */
static pl_jid *account_jid(const pl_config *cfg, const char *s)
{
    pl_jid *j = pl_jid_parse(s);
    if (!j) {
        fail("'%s' is not a valid JID", s);
        return NULL;
    }
    if (!j->node || j->resource) {
        fail("'%s' is not an account JID (expected user@domain)", s);
        pl_jid_free(j);
        return NULL;
    }
    if (!pl_config_vhost(cfg, j->domain)) {
        fail("'%s' is not a virtual host of %s", j->domain, cfg->path);
        pl_jid_free(j);
        return NULL;
    }
    return j;
}

/* The server's notices ("relation ... already exists, skipping") are
 * not for the administrator. */
static void quiet_notice(void *arg, const char *message)
{
}

/* Connects to the database and brings its schema up to date. */
static PGconn *db_open(const pl_config *cfg)
{
    PGconn *conn = PQconnectdb(cfg->db_conninfo ? cfg->db_conninfo : "");
    if (PQstatus(conn) != CONNECTION_OK) {
        fail("cannot connect to the database: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    char err[512] = "";
    if (pl_schema_migrate_sync(conn, err, sizeof err) != 0) {
        fail("cannot update the database schema: %s", err);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Runs one parameterised statement; returns rows affected (or returned),
 * or -1 after reporting the error. *res receives the result if wanted. */
static long exec_sql(PGconn *conn, const char *sql, int n, const char *const *params,
                     PGresult **res)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail("database error: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    long count = st == PGRES_TUPLES_OK ? PQntuples(r) : atol(PQcmdTuples(r));
    if (res)
        *res = r;
    else
        PQclear(r);
    return count;
}

static const char SQL_ADD[] =
    "INSERT INTO users (host, username, iterations, salt, sha1_stored_key, "
    "sha1_server_key, sha256_stored_key, sha256_server_key) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";
static const char SQL_PASSWD[] =
    "UPDATE users SET iterations = $3, salt = $4, sha1_stored_key = $5, "
    "sha1_server_key = $6, sha256_stored_key = $7, sha256_server_key = $8 "
    "WHERE host = $1 AND username = $2";

/* user add / user passwd: derive credentials and write them. */
static int user_set(const pl_config *cfg, int adding, const char *jid_s, const char *pw_arg)
{
    if (cfg->scram_iterations < 1 || cfg->scram_iterations > 0x7fffffff)
        return fail("scram_iterations in %s is out of range", cfg->path);
    pl_jid *j = account_jid(cfg, jid_s);
    if (!j)
        return EXIT_FAIL;
    PGconn *conn = db_open(cfg);
    if (!conn) {
        pl_jid_free(j);
        return EXIT_FAIL;
    }
    int rc = EXIT_FAIL;
    char *password = get_password(pw_arg);
    creds c;
    if (password && make_creds(password, (unsigned)cfg->scram_iterations, &c) == 0) {
        char iters[24];
        snprintf(iters, sizeof iters, "%lld", cfg->scram_iterations);
        const char *params[8] = { j->domain, j->node, iters, c.salt, c.sha1_stored,
                                  c.sha1_server, c.sha256_stored, c.sha256_server };
        long n = exec_sql(conn, adding ? SQL_ADD : SQL_PASSWD, 8, params, NULL);
        if (n == 0)
            fail(adding ? "user %s already exists" : "no such user %s", j->bare);
        else if (n > 0)
            rc = 0;
        creds_free(&c);
    }
    wipe_free(password);
    PQfinish(conn);
    pl_jid_free(j);
    return rc;
}

static int user_delete(const pl_config *cfg, const char *jid_s)
{
    pl_jid *j = account_jid(cfg, jid_s);
    if (!j)
        return EXIT_FAIL;
    PGconn *conn = db_open(cfg);
    int rc = EXIT_FAIL;
    if (conn) {
        const char *params[2] = { j->domain, j->node };
        long n = exec_sql(conn, "DELETE FROM users WHERE host = $1 AND username = $2", 2,
                          params, NULL);
        if (n == 0)
            fail("no such user %s", j->bare);
        else if (n > 0)
            rc = 0;
        PQfinish(conn);
    }
    pl_jid_free(j);
    return rc;
}

static int user_list(const pl_config *cfg, const char *domain_s)
{
    pl_jid *d = NULL;
    if (domain_s) {
        d = pl_jid_parse(domain_s);
        if (!d || d->node || d->resource) {
            pl_jid_free(d);
            return fail("'%s' is not a valid domain", domain_s);
        }
    }
    PGconn *conn = db_open(cfg);
    if (!conn) {
        pl_jid_free(d);
        return EXIT_FAIL;
    }
    PGresult *res = NULL;
    long n;
    if (d) {
        const char *params[1] = { d->domain };
        n = exec_sql(conn, "SELECT username, host FROM users WHERE host = $1 "
                     "ORDER BY (username || '@' || host) COLLATE \"C\"", 1, params, &res);
    } else {
        n = exec_sql(conn, "SELECT username, host FROM users "
                     "ORDER BY (username || '@' || host) COLLATE \"C\"", 0, NULL, &res);
    }
    for (long i = 0; i < n; i++)
        printf("%s@%s\n", PQgetvalue(res, (int)i, 0), PQgetvalue(res, (int)i, 1));
    if (res)
        PQclear(res);
    PQfinish(conn);
    pl_jid_free(d);
    return n < 0 ? EXIT_FAIL : 0;
}

/* Checks a user command's shape before anything is read or opened. */
static void check_user(int argc, char **argv)
{
    if (argc < 2)
        usage_error("'user' needs a subcommand: add, passwd, delete or list");
    const char *sub = argv[1];
    if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0) {
        if (argc < 3 || argc > 4)
            usage_error("usage: user %s JID [PASSWORD]", sub);
    } else if (strcmp(sub, "delete") == 0) {
        if (argc != 3)
            usage_error("usage: user delete JID");
    } else if (strcmp(sub, "list") == 0) {
        if (argc > 3)
            usage_error("usage: user list [DOMAIN]");
    } else {
        usage_error("unknown user subcommand '%s'", sub);
    }
}

static int cmd_user(const pl_config *cfg, int argc, char **argv)
{
    const char *sub = argv[1];
    if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0)
        return user_set(cfg, sub[0] == 'a', argv[2], argc == 4 ? argv[3] : NULL);
    if (strcmp(sub, "delete") == 0)
        return user_delete(cfg, argv[2]);
    return user_list(cfg, argc == 3 ? argv[2] : NULL);
}

/* ==== control commands ==== */

/* Checks a control command's shape so that mistakes are usage errors
 * here rather than round trips to the daemon. */
static void check_control(int argc, char **argv)
{
    const char *cmd = argv[0];
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 ||
        strcmp(cmd, "sessions") == 0 || strcmp(cmd, "stop") == 0 ||
        strcmp(cmd, "s2s") == 0) {
        if (argc != 1)
            usage_error("'%s' takes no arguments", cmd);
    } else if (strcmp(cmd, "kick") == 0) {
        if (argc != 2)
            usage_error("usage: kick FULLJID");
    } else if (strcmp(cmd, "module") == 0) {
        if (argc >= 2 && strcmp(argv[1], "list") == 0) {
            if (argc > 3)
                usage_error("usage: module list [HOST]");
        } else if (argc < 3 || argc > 4 ||
                   (strcmp(argv[1], "load") != 0 && strcmp(argv[1], "unload") != 0 &&
                    strcmp(argv[1], "reload") != 0)) {
            usage_error("usage: module list [HOST] | module load|unload|reload NAME [HOST]");
        }
    } else {
        usage_error("unknown command '%s'", cmd);
    }
    for (int i = 0; i < argc; i++)
        if (!*argv[i] || strpbrk(argv[i], " \t\r\n"))
            usage_error("argument '%s' is empty or contains white space", argv[i]);
}

static int ctl_connect(const char *path)
{
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path) {
        fail("control socket path %s is too long", path);
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail("socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = { CTL_TIMEOUT, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fail("cannot connect to the control socket %s: %s (is parleyd running?)", path,
             strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *data, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Reads until the daemon closes the connection. */
static int recv_all(int fd, pl_buf *reply)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("reading the reply: %s", strerror(errno == EAGAIN ? ETIMEDOUT : errno));
        if (n == 0)
            return 0;
        if (reply->len + (size_t)n > REPLY_MAX)
            return fail("the reply is too long");
        pl_buf_append(reply, chunk, (size_t)n);
    }
}

/* Prints the reply's lines before the final one; the final "OK" gives
 * exit status 0, "ERR message" prints the message and gives 1. */
static int print_reply(pl_buf *reply)
{
    if (reply->len == 0 || reply->data[reply->len - 1] != '\n')
        return fail("the server closed the connection without a complete reply");
    reply->data[--reply->len] = '\0';
    char *last = strrchr(reply->data, '\n');
    last = last ? last + 1 : reply->data;
    fwrite(reply->data, 1, (size_t)(last - reply->data), stdout);
    if (strcmp(last, "OK") == 0)
        return 0;
    if (strncmp(last, "ERR", 3) == 0)
        return fail("%s", last[3] == ' ' ? last + 4 : "failed");
    return fail("unexpected reply from the server: %s", last);
}

static int cmd_control(const pl_config *cfg, int argc, char **argv)
{
    if (!cfg->control_socket)
        return fail("no control_socket in %s", cfg->path);
    pl_buf line = PL_BUF_INIT;
    for (int i = 0; i < argc; i++)
        pl_buf_printf(&line, "%s%s", i ? " " : "", argv[i]);
    pl_buf_putc(&line, '\n');
    int fd = ctl_connect(cfg->control_socket);
    int rc = EXIT_FAIL;
    pl_buf reply = PL_BUF_INIT;
    if (fd >= 0) {
        if (send_all(fd, line.data, line.len) != 0)
            fail("sending the command: %s", strerror(errno));
        else if (recv_all(fd, &reply) == 0)
            rc = print_reply(&reply);
        close(fd);
    }
    pl_buf_free(&line);
    pl_buf_free(&reply);
    return rc;
}

/* ==== main ==== */

/* Parses the options, checks the command's shape (usage errors exit 2
 * before anything is read), loads the configuration and runs the
 * command; the exit status is the command's. */
int main(int argc, char **argv)
{
    const char *config_path = DEFAULT_CONFIG;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (++i >= argc)
                usage_error("%s needs a file name", a);
            config_path = argv[i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config_path = a + 9;
        } else {
            usage_error("unknown option '%s'", a);
        }
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    int is_user = strcmp(argv[i], "user") == 0;
    if (is_user)
        check_user(argc - i, argv + i);
    else
        check_control(argc - i, argv + i);

    char err[1024] = "";
    pl_config *cfg = pl_config_load(config_path, err, sizeof err);
    if (!cfg)
        return fail("%s", *err ? err : "cannot read the configuration");
    pl_log_set_level(cfg->log_level > PL_LOG_WARN ? cfg->log_level : PL_LOG_WARN);

    int rc = is_user ? cmd_user(cfg, argc - i, argv + i) : cmd_control(cfg, argc - i, argv + i);
    pl_config_free(cfg);
    return rc;
}
