/* bench/relay.c: the byte relay, the ceiling that the msg scenario of
 * pl-bench is compared against. It accepts TCP connections, pairs them by
 * the one line each sends first ("PAIR <id>\n"), and from then on copies
 * bytes from each connection to its peer without looking at them: what an
 * XMPP server does for a chat message, minus parsing, routing and
 * serialising. pl-bench --raw runs the msg scenario against it.
 * Usage: relay [--addr 127.0.0.1] --port N */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#define HELLO_MAX 64
#define HIGH_WATER (1024 * 1024)
#define TABLE_SIZE 65536

struct side {
    struct bufferevent *bev;
    struct side *peer;
    long id;
    int paired;
    struct side *next_waiting;   /* in the table while unpaired */
    struct side *prev, *next;    /* every open side, for shutdown */
};

static struct side *waiting[TABLE_SIZE];
static struct side *all_sides;

static void side_free(struct side *s);

static void unlink_waiting(struct side *s)
{
    struct side **pp = &waiting[(unsigned long)s->id % TABLE_SIZE];
    for (int guard = 0; *pp && guard < 1000000; guard++, pp = &(*pp)->next_waiting)
        if (*pp == s) {
            *pp = s->next_waiting;
            return;
        }
}

/* Frees a side and, if paired, its peer: one closing ends the pair. */
static void side_free(struct side *s)
{
    struct side *peer = s->peer;
    if (!s->paired && s->id >= 0)
        unlink_waiting(s);
    bufferevent_free(s->bev);
    if (s->prev)
        s->prev->next = s->next;
    else
        all_sides = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    if (peer) {
        peer->peer = NULL;
        side_free(peer);
    }
}

/* Copies what arrived to the peer; stops reading while the peer is
 * HIGH_WATER behind. */
static void forward(struct bufferevent *bev, void *arg)
{
    struct side *s = arg;
    struct evbuffer *out = bufferevent_get_output(s->peer->bev);
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) >= HIGH_WATER)
        bufferevent_disable(bev, EV_READ);
}

/* The peer's output drained below the watermark: read again. */
static void drained(struct bufferevent *bev, void *arg)
{
    struct side *s = arg;
    if (s->peer)
        bufferevent_enable(s->peer->bev, EV_READ);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        side_free(arg);
}

static void pair_up(struct side *a, struct side *b)
{
    a->peer = b;
    b->peer = a;
    a->paired = b->paired = 1;
    bufferevent_setcb(a->bev, forward, drained, on_event, a);
    bufferevent_setcb(b->bev, forward, drained, on_event, b);
    bufferevent_setwatermark(a->bev, EV_WRITE, HIGH_WATER / 2, 0);
    bufferevent_setwatermark(b->bev, EV_WRITE, HIGH_WATER / 2, 0);
    /* bytes that came with the hello line */
    if (evbuffer_get_length(bufferevent_get_input(a->bev)))
        forward(a->bev, a);
    if (evbuffer_get_length(bufferevent_get_input(b->bev)))
        forward(b->bev, b);
}

/* Reads the hello line, then waits for (or finds) the peer with the same
 * id. */
static void on_hello(struct bufferevent *bev, void *arg)
{
    struct side *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = 0;
    char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
    if (!line) {
        if (evbuffer_get_length(in) > HELLO_MAX)
            side_free(s);
        return;
    }
    char *end;
    long id = strncmp(line, "PAIR ", 5) == 0 ? strtol(line + 5, &end, 10) : -1;
    int bad = id < 0 || end == line + 5 || *end != '\0';
    free(line);
    if (bad) {
        side_free(s);
        return;
    }
    s->id = id;
    struct side **pp = &waiting[(unsigned long)id % TABLE_SIZE];
    for (int guard = 0; *pp && guard < 1000000; guard++, pp = &(*pp)->next_waiting) {
        if ((*pp)->id == id) {
            struct side *peer = *pp;
            *pp = peer->next_waiting;
            pair_up(peer, s);
            return;
        }
    }
    s->next_waiting = waiting[(unsigned long)id % TABLE_SIZE];
    waiting[(unsigned long)id % TABLE_SIZE] = s;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct side *s = calloc(1, sizeof *s);
    if (!s) {
        evutil_closesocket(fd);
        return;
    }
    s->id = -1;
    s->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(s->bev, on_hello, NULL, on_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    s->next = all_sides;
    if (all_sides)
        all_sides->prev = s;
    all_sides = s;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0;
    static const struct option longopts[] = {
        { "addr", 1, 0, 'a' }, { "port", 1, 0, 'p' }, { 0, 0, 0, 0 }
    };
    for (int guard = 0; guard < 100; guard++) {
        int ch = getopt_long(argc, argv, "", longopts, NULL);
        if (ch == -1)
            break;
        if (ch == 'a')
            addr = optarg;
        else if (ch == 'p')
            port = atoi(optarg);
        else
            return 2;
    }
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        fprintf(stderr, "usage: relay [--addr 127.0.0.1] --port N\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evconnlistener *l = evconnlistener_new_bind(
        base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
        (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        fprintf(stderr, "relay: cannot listen on %s:%d: %s\n", addr, port, strerror(errno));
        return 1;
    }
    struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, base);
    event_add(term, NULL);
    event_add(intr, NULL);
    fprintf(stderr, "relay: listening on %s:%d\n", addr, port);
    event_base_dispatch(base);
    for (long guard = 0; all_sides && guard < 10000000; guard++)
        side_free(all_sides);
    evconnlistener_free(l);
    event_free(term);
    event_free(intr);
    event_base_free(base);
    return 0;
}
