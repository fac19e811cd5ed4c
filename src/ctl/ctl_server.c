/* ctl/ctl_server.c: the daemon side of the control socket. A UNIX stream
 * socket (mode 0600) driven by the event loop: each connection sends one
 * command line, gets reply lines ended by "OK" or "ERR <message>", and is
 * closed. Lines are bounded (4 KiB), so are the connections (16) and the
 * time a client may take to send its line. The protocol is described in
 * doc/operations.md. */
#include <malloc.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <parley/module.h>
#include "core/server.h"
#include "ctl/ctl_server.h"
#include "xml/stream.h"

#define CTL_LINE_MAX 4096
#define CTL_MAX_CONNS 16
#define CTL_MAX_ARGS 8
#define CTL_READ_TIMEOUT 10   /* seconds to send the command line */
#define CTL_WRITE_TIMEOUT 30  /* seconds to read the reply */
#define CTL_ACCEPT_BATCH 16   /* connections accepted per wake-up */

typedef struct ctl_conn {
    struct ctl_conn *prev, *next;
    int fd;
    struct event *rev, *wev;
    char line[CTL_LINE_MAX];
    size_t len;
    pl_buf out;
    size_t sent;
    int stop_after;   /* run pl__server_stop once the reply is written */
} ctl_conn;

static struct {
    struct event_base *base;
    int fd;
    struct event *ev;
    char *path;
    ctl_conn *conns;
    int nconns;
} ctl = { .fd = -1 };

/* ==== connections ==== */

static void conn_close(ctl_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        ctl.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctl.nconns--;
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    close(c->fd);
    pl_buf_free(&c->out);
    pl_free(c);
}

/* Closes c; a `stop` runs only now, after its OK was written, because
 * stopping closes this socket and every control connection. */
static void conn_finish(ctl_conn *c)
{
    int stop = c->stop_after;
    conn_close(c);
    if (stop)
        pl__server_stop();
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    ctl_conn *c = arg;
    if (what & EV_TIMEOUT) {
        conn_finish(c);
        return;
    }
    while (c->sent < c->out.len) {
        ssize_t n = send(fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct timeval tv = { CTL_WRITE_TIMEOUT, 0 };
            event_add(c->wev, &tv);
            return;
        }
        break;   /* the client went away */
    }
    conn_finish(c);
}

/* ==== commands ==== */

/* Appends one reply line, turning any line break inside it into a space
 * so a message can never end the reply early. */
static void put_line(pl_buf *out, const char *s)
{
    for (const char *p = s; *p; p++)
        pl_buf_putc(out, (*p == '\n' || *p == '\r') ? ' ' : *p);
    pl_buf_putc(out, '\n');
}

static int reply_err(pl_buf *out, const char *msg)
{
    pl_buf_puts(out, "ERR ");
    put_line(out, msg && *msg ? msg : "failed");
    return -1;
}

static void status_module(const char *host, const char *name, void *ud)
{
    pl_buf_printf(ud, " %s/%s", host ? host : "*", name);
}

static int cmd_status(int argc, char **argv, pl_buf *out)
{
    if (argc != 1)
        return reply_err(out, "usage: status");
    long long up = (long long)(time(NULL) - pl__server.started);
    pl_buf_printf(out, "version: %s\n", pl_server_version());
    pl_buf_printf(out, "uptime: %llds\n", up < 0 ? 0 : up);
    pl_buf_printf(out, "connections: %d\n", pl__conn_count());
    pl_buf_printf(out, "sessions: %d\n", pl__session_count());
    pl_buf_printf(out, "database: %s\n", pl_db_available() ? "up" : "down");
    struct mallinfo2 mi = mallinfo2();
    pl_buf_printf(out, "memory: %zu KiB allocated, %zu KiB held by the allocator, "
                  "%zu KiB of XML parsers (%zu KiB kept for reuse)\n", mi.uordblks / 1024,
                  (mi.arena + mi.hblkhd) / 1024, pl_xml_stream_mapped() / 1024,
                  pl_xml_stream_cached() / 1024);
    pl_buf_puts(out, "modules:");
    pl__modules_each(NULL, status_module, out);
    pl_buf_putc(out, '\n');
    return 0;
}

static void list_module(const char *host, const char *name, void *ud)
{
    pl_buf_printf(ud, "%s %s\n", host ? host : "*", name);
}

static int cmd_module(int argc, char **argv, pl_buf *out)
{
    char err[256] = "";
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        if (argc > 3)
            return reply_err(out, "usage: module list [HOST]");
        if (argc == 3 && !pl_config_vhost(pl__server.config, argv[2])) {
            char msg[300];
            snprintf(msg, sizeof msg, "no such host %.256s", argv[2]);
            return reply_err(out, msg);
        }
        pl__modules_each(argc == 3 ? argv[2] : NULL, list_module, out);
        return 0;
    }
    if (argc < 3 || argc > 4)
        return reply_err(out, "usage: module list [HOST] | module load|unload|reload NAME [HOST]");
    const char *name = argv[2];
    const char *host = argc == 4 ? argv[3] : NULL;
    int rc;
    if (strcmp(argv[1], "load") == 0)
        rc = pl__module_load(host, name, err, sizeof err);
    else if (strcmp(argv[1], "unload") == 0)
        rc = pl__module_unload(host, name, err, sizeof err);
    else if (strcmp(argv[1], "reload") == 0)
        rc = pl__module_reload(host, name, err, sizeof err);
    else
        return reply_err(out, "unknown module command (list, load, unload, reload)");
    return rc == 0 ? 0 : reply_err(out, err);
}

static int cmd_reload(int argc, char **argv, pl_buf *out)
{
    char err[512] = "";
    if (argc != 1)
        return reply_err(out, "usage: reload");
    if (pl__server_reload(err, sizeof err) != 0)
        return reply_err(out, err);
    return 0;
}

static void list_session(const pl__session_info *si, void *ud)
{
    pl_buf_printf(ud, "%s %s %s %s %d %lld\n", si->jid ? si->jid : "(unbound)",
                  si->address ? si->address : "-", si->tls ? si->tls : "plain",
                  si->available ? "available" : "unavailable", si->priority,
                  si->connected_for);
}

static int cmd_sessions(int argc, char **argv, pl_buf *out)
{
    if (argc != 1)
        return reply_err(out, "usage: sessions");
    pl__sessions_each(list_session, out);
    return 0;
}

static int cmd_kick(int argc, char **argv, pl_buf *out)
{
    if (argc != 2)
        return reply_err(out, "usage: kick FULLJID");
    pl_jid *j = pl_jid_parse(argv[1]);
    if (!j || !j->node || !j->resource) {
        pl_jid_free(j);
        return reply_err(out, "not a full JID (user@domain/resource)");
    }
    int rc = pl__session_kick(j->full);
    pl_jid_free(j);
    return rc == 0 ? 0 : reply_err(out, "no such session");
}

/* Server-to-server streams, listed by the federation module through the
 * global event "ctl/s2s" (ev.data is this reply buffer). */
static int cmd_s2s(int argc, char **argv, pl_buf *out)
{
    if (argc != 1)
        return reply_err(out, "usage: s2s");
    pl_event ev = { .name = "ctl/s2s", .data = out };
    if (pl_fire(NULL, "ctl/s2s", &ev) == PL_PASS)
        return reply_err(out, "federation is not enabled (module s2s is not loaded)");
    return 0;
}

static int cmd_stop(int argc, char **argv, pl_buf *out)
{
    if (argc != 1)
        return reply_err(out, "usage: stop");
    return 0;
}

/* Splits line in place on spaces and tabs; returns the word count or -1
 * if there are too many. */
static int split_words(char *line, char **argv, int max)
{
    int argc = 0;
    char *p = line;
    for (int guard = 0; guard < CTL_LINE_MAX && *p; guard++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (argc == max)
            return -1;
        argv[argc++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
    return argc;
}

/* Runs one command line and writes the whole reply into out. Sets
 * *stop when the daemon should stop after replying. */
static void run_command(char *line, pl_buf *out, int *stop)
{
    char *argv[CTL_MAX_ARGS];
    int argc = split_words(line, argv, CTL_MAX_ARGS);
    if (argc < 0) {
        reply_err(out, "too many arguments");
        return;
    }
    if (argc == 0) {
        reply_err(out, "empty command");
        return;
    }
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv, pl_buf *out);
    } cmds[] = {
        { "status", cmd_status },   { "module", cmd_module },
        { "reload", cmd_reload },   { "sessions", cmd_sessions },
        { "kick", cmd_kick },       { "stop", cmd_stop },
        { "s2s", cmd_s2s },
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[0], cmds[i].name) != 0)
            continue;
        if (cmds[i].fn(argc, argv, out) == 0) {
            pl_buf_puts(out, "OK\n");
            *stop = cmds[i].fn == cmd_stop;
        }
        return;
    }
    pl_buf_puts(out, "ERR unknown command '");
    for (const char *p = argv[0]; *p && p - argv[0] < 64; p++)
        pl_buf_putc(out, (*p >= 0x20 && *p < 0x7f) ? *p : '?');
    pl_buf_puts(out, "'\n");
}

/* The command line is complete (or the input ended, or overflowed):
 * stop reading, run it and start writing the reply. */
static void conn_respond(ctl_conn *c, int overflow)
{
    event_del(c->rev);
    if (overflow) {
        reply_err(&c->out, "line too long");
    } else {
        c->line[c->len] = '\0';
        char *cr = strchr(c->line, '\r');
        if (cr)
            *cr = '\0';
        pl_debug("control: %s", c->line);
        run_command(c->line, &c->out, &c->stop_after);
    }
    on_write(c->fd, EV_WRITE, c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    ctl_conn *c = arg;
    if (what & EV_TIMEOUT) {
        conn_close(c);
        return;
    }
    for (int i = 0; i < 64; i++) {
        size_t room = CTL_LINE_MAX - 1 - c->len;
        if (room == 0) {
            conn_respond(c, 1);
            return;
        }
        ssize_t n = recv(fd, c->line + c->len, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 || (n == 0 && c->len == 0)) {
            conn_close(c);
            return;
        }
        if (n == 0) {   /* input ended without a newline: run what came */
            conn_respond(c, 0);
            return;
        }
        char *nl = memchr(c->line + c->len, '\n', (size_t)n);
        c->len += (size_t)n;
        if (nl) {
            c->len = (size_t)(nl - c->line);
            conn_respond(c, 0);
            return;
        }
    }
}

/* ==== listening ==== */

/* Only the daemon's own user (or root) may use the socket; the file mode
 * already says so, this also holds if the directory is shared. */
static int peer_allowed(int fd)
{
#ifdef SO_PEERCRED
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return 0;
    return cred.uid == 0 || cred.uid == geteuid();
#else
    return 1;
#endif
}

static void refuse(int fd, const char *msg)
{
    ssize_t n = send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
    close(fd);
}

static void accept_one(int fd)
{
    if (!peer_allowed(fd)) {
        pl_log(PL_LOG_WARN, "control: refused a connection from another user");
        refuse(fd, "ERR permission denied\n");
        return;
    }
    if (ctl.nconns >= CTL_MAX_CONNS) {
        refuse(fd, "ERR too many control connections\n");
        return;
    }
    ctl_conn *c = pl_calloc(1, sizeof *c);
    c->fd = fd;
    c->rev = event_new(ctl.base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(ctl.base, fd, EV_WRITE, on_write, c);
    c->next = ctl.conns;
    if (c->next)
        c->next->prev = c;
    ctl.conns = c;
    ctl.nconns++;
    struct timeval tv = { CTL_READ_TIMEOUT, 0 };
    if (!c->rev || !c->wev || event_add(c->rev, &tv) != 0)
        conn_close(c);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    for (int i = 0; i < CTL_ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                pl_log(PL_LOG_WARN, "control: accept: %s", strerror(errno));
            return;
        }
        accept_one(fd);
    }
}

/* Whether a daemon is answering on the socket at path. */
static int socket_in_use(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int in_use = rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return in_use;
}

/* Removes a stale socket file at path; refuses anything else there. */
static int clear_path(const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(sa->sun_path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(st.st_mode)) {
        pl_log(PL_LOG_ERROR, "control socket %s: the file exists and is not a socket",
               sa->sun_path);
        return -1;
    }
    if (socket_in_use(sa)) {
        pl_log(PL_LOG_ERROR, "control socket %s: another process is listening on it",
               sa->sun_path);
        return -1;
    }
    if (unlink(sa->sun_path) != 0) {
        pl_log(PL_LOG_ERROR, "control socket %s: cannot remove the stale file: %s",
               sa->sun_path, strerror(errno));
        return -1;
    }
    return 0;
}

static int listen_on(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pl_log(PL_LOG_ERROR, "control socket: socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)sa, sizeof *sa);
    int bind_errno = errno;
    umask(old);
    if (rc != 0) {
        pl_log(PL_LOG_ERROR, "control socket %s: bind: %s", sa->sun_path,
               strerror(bind_errno));
        close(fd);
        return -1;
    }
    if (chmod(sa->sun_path, 0600) != 0 || listen(fd, CTL_MAX_CONNS) != 0) {
        pl_log(PL_LOG_ERROR, "control socket %s: %s", sa->sun_path, strerror(errno));
        unlink(sa->sun_path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Starts listening on path for control connections driven by base. A
 * stale socket file left by a previous run is replaced; any other file,
 * or a socket another daemon answers on, is an error. The file is created
 * with mode 0600. Returns 0, or -1 after logging why. */
int pl__ctl_start(struct event_base *base, const char *path)
{
    struct sockaddr_un sa;
    if (ctl.fd >= 0) {
        pl_log(PL_LOG_ERROR, "control socket: already listening on %s", ctl.path);
        return -1;
    }
    if (!path || !*path || strlen(path) >= sizeof sa.sun_path) {
        pl_log(PL_LOG_ERROR, "control socket: path is empty or longer than %zu bytes",
               sizeof sa.sun_path - 1);
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (clear_path(&sa) != 0)
        return -1;
    int fd = listen_on(&sa);
    if (fd < 0)
        return -1;
    struct event *ev = event_new(base, fd, EV_READ | EV_PERSIST, on_accept, NULL);
    if (!ev || event_add(ev, NULL) != 0) {
        pl_log(PL_LOG_ERROR, "control socket %s: cannot watch it", path);
        if (ev)
            event_free(ev);
        unlink(path);
        close(fd);
        return -1;
    }
    ctl.base = base;
    ctl.fd = fd;
    ctl.ev = ev;
    ctl.path = pl_strdup(path);
    pl_log(PL_LOG_INFO, "control socket listening on %s", path);
    return 0;
}

/* Closes the listening socket and every control connection (replies not
 * yet written are dropped) and removes the socket file. Safe to call
 * when the control socket was never started. */
void pl__ctl_stop(void)
{
    for (int guard = 0; ctl.conns && guard <= CTL_MAX_CONNS; guard++)
        conn_close(ctl.conns);
    if (ctl.ev)
        event_free(ctl.ev);
    if (ctl.fd >= 0)
        close(ctl.fd);
    if (ctl.path)
        unlink(ctl.path);
    pl_free(ctl.path);
    ctl.ev = NULL;
    ctl.fd = -1;
    ctl.path = NULL;
    ctl.base = NULL;
}
