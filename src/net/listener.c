/* net/listener.c: listening TCP sockets and the accept loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <parley/base.h>
#include "core/loop.h"
#include "net/listener.h"

typedef struct listener {
    struct listener *next;
    int fd;
    int role;
    struct event *ev;
    struct event *retry;   /* resumes accepting after EMFILE */
} listener;

static listener *listeners;
static pl__accept_fn handlers[4];
static const char *const role_names[] = { "c2s", "c2s_tls", "s2s", "s2s_tls" };

void pl__listener_set_handler(int role, pl__accept_fn fn)
{
    if (role >= 0 && role < 4)
        handlers[role] = fn;
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t outsz)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, outsz, "%s:%d", ip, port);
}

static void resume(evutil_socket_t fd, short what, void *arg)
{
    listener *l = arg;
    event_add(l->ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    listener *l = arg;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                pl_log(PL_LOG_WARN, "listener %s: out of file descriptors; pausing accept",
                       role_names[l->role]);
                event_del(l->ev);
                struct timeval tv = { 0, 100000 };
                evtimer_add(l->retry, &tv);
            }
            return;
        }
        char peer[80];
        peer_name(&ss, peer, sizeof peer);
        if (!handlers[l->role]) {
            pl_log(PL_LOG_WARN, "listener %s: no module handles this role; closing %s",
                   role_names[l->role], peer);
            close(fd);
            continue;
        }
        handlers[l->role](fd, peer, l->role);
    }
}

static int open_one(const pl_listen_conf *lc, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    int port = atoi(lc->port);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (strcmp(lc->host, "*") == 0 || strchr(lc->host, ':')) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (strcmp(lc->host, "*") == 0)
            a6->sin6_addr = in6addr_any;
        else if (inet_pton(AF_INET6, lc->host, &a6->sin6_addr) != 1)
            goto bad_addr;
        len = sizeof *a6;
    } else {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, lc->host, &a4->sin_addr) != 1)
            goto bad_addr;
        len = sizeof *a4;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s:%d: socket: %s", lc->file, lc->line, strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* accepted connections inherit it from the listening socket (Linux) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (ss.ss_family == AF_INET6 && strcmp(lc->host, "*") == 0)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "%s:%d: cannot listen on %s port %s: %s", lc->file, lc->line,
                 lc->host, lc->port, strerror(errno));
        close(fd);
        return -1;
    }
    listener *l = pl_calloc(1, sizeof *l);
    l->fd = fd;
    l->role = lc->role;
    l->ev = event_new(pl__loop_base(), fd, EV_READ | EV_PERSIST, on_accept, l);
    l->retry = evtimer_new(pl__loop_base(), resume, l);
    event_add(l->ev, NULL);
    l->next = listeners;
    listeners = l;
    pl_log(PL_LOG_NOTICE, "listening for %s on %s port %s", role_names[lc->role], lc->host,
           lc->port);
    return 0;
bad_addr:
    snprintf(err, errlen, "%s:%d: invalid address %s", lc->file, lc->line, lc->host);
    return -1;
}

int pl__listeners_open(const pl_config *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->nlistens; i++)
        if (open_one(&c->listens[i], err, errlen) != 0)
            return -1;
    return 0;
}

void pl__listeners_close(void)
{
    while (listeners) {
        listener *l = listeners;
        listeners = l->next;
        event_free(l->ev);
        event_free(l->retry);
        close(l->fd);
        pl_free(l);
    }
}
