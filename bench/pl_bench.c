/* bench/pl_bench.c: pl-bench, the XMPP load generator. One process,
 * one libevent loop, many client connections; a scenario (login, idle,
 * msg, roster-setup, roster, offline) drives them and prints its result,
 * as one JSON line with --json. Against bench/relay, --raw skips the
 * XMPP handshake so the msg scenario measures machine and generator
 * alone. bench/README.md describes every option and figure. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <event2/event.h>
#include <parley/base.h>
#include <parley/buf.h>
#include "net/tls.h"
#include "bench_conn.h"
#include "bench_stats.h"

/* ==== options ==== */

static struct options {
    const char *host;
    int port;
    const char *domain;
    const char *prefix;
    int first;
    const char *password;
    int count;
    const char *source_addrs;
    int tls;
    int scram;
    const char *scenario;
    double duration;
    double warmup;
    double rate;
    int window;
    int login_window;
    int json;
    int raw;
    int pipeline;        /* login without waiting for features (XEP-0305) */
    int online;          /* roster: contacts online */
    int messages;        /* offline: messages stored */
    int store_gate;      /* offline: the store phase ends at a line on stdin */
    double timeout;
    const char *server_pids;
    const char *run_id;
    int body_size;
    int verbose;
} o = {
    .host = "127.0.0.1", .port = 5222, .domain = "localhost", .prefix = "u", .first = 1,
    .password = "bench", .count = 100, .scenario = "login", .duration = 10, .warmup = 3,
    .window = 10, .login_window = 50, .online = 500, .messages = 10000, .timeout = 300,
    .run_id = "r", .body_size = 64,
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: pl-bench [options]\n"
        "  --host ADDR            server address (127.0.0.1)\n"
        "  --port N               c2s port (5222)\n"
        "  --domain D             XMPP domain (localhost)\n"
        "  --users PREFIX         accounts are PREFIX<n> (u)\n"
        "  --first N              number of the first account (1)\n"
        "  --password P           every account's password (bench)\n"
        "  --count N              connections (login, idle, msg), contacts (roster-setup)\n"
        "                         or offline recipients (offline) (100)\n"
        "  --source-addrs A-B     bind connections to 127.x.y.A..B round robin\n"
        "  --tls                  STARTTLS before authenticating\n"
        "  --mech plain|scram     SASL PLAIN or SCRAM-SHA-1 (plain; scram with --tls)\n"
        "  --scenario S           login, idle, msg, roster-setup, roster, offline (login)\n"
        "  --duration S           measured seconds (msg) / holding time (idle) (10)\n"
        "  --warmup S             msg: seconds before measuring (3)\n"
        "  --rate R               msg: messages per second in total; 0 = saturate (0)\n"
        "  --window W             msg: messages in flight per sender; offline: batch (10)\n"
        "  --login-window W       logins in progress at once (50)\n"
        "  --online N             roster: contacts online (500)\n"
        "  --messages M           offline: messages sent (10000)\n"
        "  --store-gate           offline: after the last batch is answered, print\n"
        "                         'pl-bench: stored?' to stderr and end the store\n"
        "                         phase when a line arrives on stdin (for a server\n"
        "                         that answers before its store has committed)\n"
        "  --timeout S            give up after S seconds (300)\n"
        "  --server-pid P[,P]     report these processes' CPU time\n"
        "  --run-id ID            tag put in every message body (r)\n"
        "  --body-size N          message body length in bytes (64)\n"
        "  --raw                  no XMPP handshake (against bench/relay)\n"
        "  --pipeline             send SASL with the header, and binding and\n"
        "                         presence with the restarted header\n"
        "  --verbose              trace every stanza received to stderr\n"
        "  --json                 print the result as one JSON line\n");
}

static int parse_range(const char *spec, uint32_t **out)
{
    char a[64], b[64];
    const char *dash = strchr(spec, '-');
    if (!dash || (size_t)(dash - spec) >= sizeof a || strlen(dash + 1) >= sizeof b)
        return -1;
    memcpy(a, spec, (size_t)(dash - spec));
    a[dash - spec] = '\0';
    snprintf(b, sizeof b, "%s", dash + 1);
    struct in_addr lo, hi;
    if (inet_pton(AF_INET, a, &lo) != 1)
        return -1;
    if (inet_pton(AF_INET, b, &hi) != 1) {
        /* "127.0.1.1-50": the last octet only */
        char *end;
        long last = strtol(b, &end, 10);
        if (*end || last < 0 || last > 255)
            return -1;
        hi.s_addr = htonl((ntohl(lo.s_addr) & 0xffffff00u) | (uint32_t)last);
    }
    uint32_t l = ntohl(lo.s_addr), h = ntohl(hi.s_addr);
    if (h < l || h - l > 65535 || (l >> 24) != 127 || (h >> 24) != 127)
        return -1;
    int n = (int)(h - l + 1);
    *out = pl_calloc((size_t)n, sizeof **out);
    for (int i = 0; i < n; i++)
        (*out)[i] = l + (uint32_t)i;
    return n;
}

static int parse_options(int argc, char **argv)
{
    enum { O_HOST = 256, O_PORT, O_DOMAIN, O_USERS, O_FIRST, O_PASSWORD, O_COUNT, O_SRC,
           O_TLS, O_MECH, O_SCENARIO, O_DURATION, O_WARMUP, O_RATE, O_WINDOW, O_LWINDOW,
           O_JSON, O_RAW, O_ONLINE, O_MESSAGES, O_TIMEOUT, O_PIDS, O_RUNID, O_BODY, O_VERBOSE, O_PIPELINE, O_GATE, O_HELP };
    static const struct option longopts[] = {
        { "host", 1, 0, O_HOST }, { "port", 1, 0, O_PORT }, { "domain", 1, 0, O_DOMAIN },
        { "users", 1, 0, O_USERS }, { "first", 1, 0, O_FIRST },
        { "password", 1, 0, O_PASSWORD }, { "count", 1, 0, O_COUNT },
        { "source-addrs", 1, 0, O_SRC }, { "tls", 0, 0, O_TLS }, { "mech", 1, 0, O_MECH },
        { "scenario", 1, 0, O_SCENARIO }, { "duration", 1, 0, O_DURATION },
        { "warmup", 1, 0, O_WARMUP }, { "rate", 1, 0, O_RATE }, { "window", 1, 0, O_WINDOW },
        { "login-window", 1, 0, O_LWINDOW }, { "json", 0, 0, O_JSON }, { "raw", 0, 0, O_RAW },
        { "pipeline", 0, 0, O_PIPELINE }, { "store-gate", 0, 0, O_GATE },
        { "online", 1, 0, O_ONLINE }, { "messages", 1, 0, O_MESSAGES },
        { "timeout", 1, 0, O_TIMEOUT }, { "server-pid", 1, 0, O_PIDS },
        { "run-id", 1, 0, O_RUNID }, { "body-size", 1, 0, O_BODY }, { "verbose", 0, 0, O_VERBOSE },
        { "help", 0, 0, O_HELP },
        { 0, 0, 0, 0 }
    };
    int mech_set = 0;
    for (int guard = 0; guard < 1000; guard++) {
        int ch = getopt_long(argc, argv, "", longopts, NULL);
        if (ch == -1)
            break;
        switch (ch) {
        case O_HOST: o.host = optarg; break;
        case O_PORT: o.port = atoi(optarg); break;
        case O_DOMAIN: o.domain = optarg; break;
        case O_USERS: o.prefix = optarg; break;
        case O_FIRST: o.first = atoi(optarg); break;
        case O_PASSWORD: o.password = optarg; break;
        case O_COUNT: o.count = atoi(optarg); break;
        case O_SRC: o.source_addrs = optarg; break;
        case O_TLS: o.tls = 1; break;
        case O_MECH:
            mech_set = 1;
            if (strcmp(optarg, "plain") == 0 || strcmp(optarg, "PLAIN") == 0)
                o.scram = 0;
            else if (strcmp(optarg, "scram") == 0 || strcmp(optarg, "SCRAM-SHA-1") == 0)
                o.scram = 1;
            else
                return -1;
            break;
        case O_SCENARIO: o.scenario = optarg; break;
        case O_DURATION: o.duration = atof(optarg); break;
        case O_WARMUP: o.warmup = atof(optarg); break;
        case O_RATE: o.rate = atof(optarg); break;
        case O_WINDOW: o.window = atoi(optarg); break;
        case O_LWINDOW: o.login_window = atoi(optarg); break;
        case O_JSON: o.json = 1; break;
        case O_RAW: o.raw = 1; break;
        case O_PIPELINE: o.pipeline = 1; break;
        case O_GATE: o.store_gate = 1; break;
        case O_ONLINE: o.online = atoi(optarg); break;
        case O_MESSAGES: o.messages = atoi(optarg); break;
        case O_TIMEOUT: o.timeout = atof(optarg); break;
        case O_PIDS: o.server_pids = optarg; break;
        case O_RUNID: o.run_id = optarg; break;
        case O_BODY: o.body_size = atoi(optarg); break;
        case O_VERBOSE: o.verbose = 1; break;
        case O_HELP: usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (!mech_set)
        o.scram = o.tls;
    if (optind != argc || o.count < 1 || o.count > 1000000 || o.port <= 0 || o.window < 1
        || o.login_window < 1 || o.duration < 0 || o.warmup < 0 || o.rate < 0
        || o.timeout <= 0 || o.body_size < 24 || o.body_size > 60000 || o.messages < 1)
        return -1;
    return 0;
}

/* ==== shared state ==== */

static pl_bench_cfg cfg;
static struct event_base *base;
static pl_bench_conn *conns;
static int nconns;
static int exit_code;
static char error_text[256];
static int finished;
static struct event *timeout_ev;

static void finish(int ok);

static void fatal(const char *fmt, ...) PL_PRINTF(1, 2);
static void fatal(const char *fmt, ...)
{
    if (error_text[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(error_text, sizeof error_text, fmt, ap);
        va_end(ap);
    }
    finish(0);
}

/* utime+stime of the --server-pid processes, in seconds (-1 if unknown). */
static double server_cpu(void)
{
    if (!o.server_pids)
        return -1;
    double total = 0;
    char pids[256];
    snprintf(pids, sizeof pids, "%s", o.server_pids);
    char *save = NULL;
    for (char *p = strtok_r(pids, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char path[64], line[2048];
        snprintf(path, sizeof path, "/proc/%s/stat", p);
        FILE *f = fopen(path, "r");
        if (!f)
            return -1;
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = '\0';
        char *rp = strrchr(line, ')');
        if (!rp)
            return -1;
        unsigned long long ut = 0, st = 0;
        /* fields after "(comm)": state(3) ... utime(14) stime(15) */
        if (sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
            return -1;
        total += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    return total;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

#define MAX_TIMERS 256
static struct event *timers[MAX_TIMERS];
static int ntimers;

/* A one-shot (or persistent) timer; freed at exit. */
static struct event *timer_new(event_callback_fn fn, double seconds, int persist)
{
    struct event *ev = event_new(base, -1, persist ? EV_PERSIST : 0, fn, NULL);
    if (ntimers < MAX_TIMERS)
        timers[ntimers++] = ev;
    struct timeval tv = { (time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6) };
    event_add(ev, &tv);
    return ev;
}

static const char *user_of(int i, char *buf, size_t size)
{
    snprintf(buf, size, "%s%d", o.prefix, o.first + i);
    return buf;
}

/* ==== the JSON result ==== */

static pl_buf result = PL_BUF_INIT;
static uint64_t t_begin;

static void res_num(const char *key, double v)
{
    pl_buf_printf(&result, ",\"%s\":%.6g", key, v);
}

static void res_int(const char *key, long long v)
{
    pl_buf_printf(&result, ",\"%s\":%lld", key, v);
}

static void res_hist(const char *prefix, const pl_hist *h)
{
    char key[64];
    static const struct { const char *name; double q; } qs[] = {
        { "p50", 0.5 }, { "p99", 0.99 }, { "p999", 0.999 }
    };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        snprintf(key, sizeof key, "%s_%s_ms", prefix, qs[i].name);
        res_num(key, ms(pl_hist_quantile(h, qs[i].q)));
    }
    snprintf(key, sizeof key, "%s_max_ms", prefix);
    res_num(key, ms(h->max));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    pl_hist_write_json(h, f);
    fclose(f);
    pl_buf_printf(&result, ",\"%s_hist\":%s", prefix, text);
    free(text);
}

static int printed;

static void print_result(int ok)
{
    printed = 1;
    pl_buf line = PL_BUF_INIT;
    pl_buf_printf(&line, "{\"scenario\":\"%s\",\"ok\":%s,\"count\":%d,\"tls\":%d,\"mech\":\"%s\","
                  "\"raw\":%d", o.scenario, ok ? "true" : "false", o.count, o.tls,
                  o.scram ? "SCRAM-SHA-1" : "PLAIN", o.raw);
    if (result.len)
        pl_buf_append(&line, result.data, result.len);
    if (error_text[0]) {
        pl_buf_puts(&line, ",\"error\":\"");
        for (const char *p = error_text; *p; p++)
            if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
                pl_buf_putc(&line, *p);
        pl_buf_puts(&line, "\"");
    }
    pl_buf_puts(&line, "}\n");
    if (o.json) {
        fputs(line.data, stdout);
    } else {
        /* the same figures, one per line */
        fprintf(stdout, "%s: %s\n", o.scenario, ok ? "ok" : "FAILED");
        if (error_text[0])
            fprintf(stdout, "  error: %s\n", error_text);
        fputs(line.data, stdout);
    }
    fflush(stdout);
    pl_buf_free(&line);
}

static void finish(int ok)
{
    if (finished)
        return;
    finished = 1;
    exit_code = ok ? 0 : 1;
    event_base_loopexit(base, NULL);
}

/* ==== logging in a batch of connections ==== */

static struct login_batch {
    int lo, hi, next;
    int inflight, ok, failed;
    int presence;                 /* send <presence/> once bound */
    int started;
    void (*done)(void);
    pl_hist hist;
    uint64_t t0, t1;
    double cpu0;
    int busy;
    char first_error[160];
} lb;

static void (*scenario_online)(pl_bench_conn *c);
static void (*scenario_stanza)(pl_bench_conn *c, const pl_bench_el *el);

static void login_check_done(void)
{
    if (lb.next < lb.hi || lb.inflight > 0 || !lb.done)
        return;
    void (*done)(void) = lb.done;
    lb.done = NULL;
    lb.t1 = pl_bench_now();
    done();
}

static void login_more(void)
{
    if (lb.busy)
        return;
    lb.busy = 1;
    for (int guard = 0; guard < 10000000 && lb.inflight < o.login_window && lb.next < lb.hi;
         guard++) {
        pl_bench_conn *c = &conns[lb.next++];
        c->bind_extra = o.pipeline && lb.presence && !o.raw ? "<presence/>" : NULL;
        lb.inflight++;
        pl_bench_conn_start(c);
    }
    lb.busy = 0;
    login_check_done();
}

/* Logs in conns[lo..hi) with --login-window in flight; done runs when
 * every one is bound or failed. */
static void login_batch(int lo, int hi, int presence, void (*done)(void))
{
    pl_hist_free(&lb.hist);
    lb = (struct login_batch){ .lo = lo, .hi = hi, .next = lo, .presence = presence,
                               .done = done, .started = 1 };
    lb.t0 = pl_bench_now();
    lb.cpu0 = server_cpu();
    login_more();
}

static int in_batch(const pl_bench_conn *c)
{
    int i = (int)(c - conns);
    return lb.started && i >= lb.lo && i < lb.next;
}

static void on_online(pl_bench_conn *c)
{
    if (in_batch(c)) {
        lb.inflight--;
        lb.ok++;
        pl_hist_record(&lb.hist, c->t_online - c->t_start);
    }
    if (lb.presence && !o.raw && !c->bind_extra)
        pl_bench_conn_sendstr(c, "<presence/>");
    if (scenario_online)
        scenario_online(c);
    login_more();
}

static void on_stanza(pl_bench_conn *c, const pl_bench_el *el)
{
    if (o.verbose)
        fprintf(stderr, "%s <- <%s type='%s' id='%s' from='%s'> <%s/> %d items: %.*s\n",
                c->user, el->name, el->type, el->id, el->from, el->child, el->items,
                (int)(el->text_len > 80 ? 80 : el->text_len), el->text);
    if (scenario_stanza)
        scenario_stanza(c, el);
}

static void on_failed(pl_bench_conn *c, const char *why)
{
    if (c->t_online == 0 && in_batch(c)) {
        lb.inflight--;
        lb.failed++;
        if (!lb.first_error[0])
            snprintf(lb.first_error, sizeof lb.first_error, "%s: %s", c->user, why);
        if (!lb.busy)
            login_more();
        return;
    }
    if (!finished)
        fatal("%s: %s", c->user, why);
}

static const pl_bench_conn_cb conn_cb = { on_online, on_stanza, on_failed };

static void report_login(void)
{
    uint64_t el = lb.t1 - lb.t0;
    res_int("logged_in", lb.ok);
    res_int("failed", lb.failed);
    res_num("elapsed_s", secs(el));
    res_num("logins_per_s", el ? (double)lb.ok / secs(el) : 0);
    res_num("t0", secs(lb.t0));
    res_num("t1", secs(lb.t1));
    double cpu = server_cpu();
    if (cpu >= 0 && lb.cpu0 >= 0)
        res_num("server_cpu_s", cpu - lb.cpu0);
    res_hist("login", &lb.hist);
    if (lb.first_error[0])
        snprintf(error_text, sizeof error_text, "%d failed; first: %s", lb.failed,
                 lb.first_error);
}

/* ==== login and idle ==== */

static void login_done(void)
{
    report_login();
    finish(lb.failed == 0);
}

static struct event *hold_ev;

static void hold_over(evutil_socket_t fd, short what, void *arg)
{
    finish(1);
}

static void idle_ready(void)
{
    report_login();
    /* the figures are known now: print them at once for the script,
     * which measures the server while the connections are held */
    print_result(lb.failed == 0);
    pl_buf_reset(&result);
    if (lb.failed) {
        exit_code = 1;
    }
    event_del(timeout_ev);    /* holding is bounded by --duration */
    hold_ev = timer_new(hold_over, o.duration, 0);
}

/* ==== msg ==== */

static struct msg_state {
    int *inflight;
    uint64_t t_start, t_measure, t_end;
    uint64_t sent, delivered, delivered_window, sent_window, skipped;
    uint64_t bad;
    double cpu0, cpu1;
    pl_hist lat;
    int phase;            /* 0 login, 1 warm-up, 2 measuring, 3 done */
    struct event *tick;
    int rr;
    pl_buf msg;
    double credit;
    uint64_t last_tick;
} ms_;

static int peer_of(int i)
{
    return i ^ 1;
}

static void send_msg(int i)
{
    pl_bench_conn *c = &conns[i];
    char to[96];
    user_of(peer_of(i), to, sizeof to);
    pl_buf *b = &ms_.msg;
    pl_buf_reset(b);
    uint64_t now = pl_bench_now();
    pl_buf_printf(b, "<message to='%s@%s' type='chat'><body>%s %llu ", to, o.domain, o.run_id,
                  (unsigned long long)now);
    int pad = o.body_size - (int)(strlen(o.run_id) + 22);
    for (int k = 0; k < pad; k++)
        pl_buf_putc(b, (char)('a' + k % 26));
    pl_buf_puts(b, "</body></message>");
    pl_bench_conn_send(c, b->data, b->len);
    ms_.inflight[i]++;
    ms_.sent++;
    if (ms_.phase == 2)
        ms_.sent_window++;
}

/* Parses "<run-id> <ns> ..." from a body; 0 if it is not ours. */
static uint64_t body_time(const pl_bench_el *el)
{
    size_t rl = strlen(o.run_id);
    if (!el->has_body || el->text_len < rl + 2 || memcmp(el->text, o.run_id, rl) != 0
        || el->text[rl] != ' ')
        return 0;
    return strtoull(el->text + rl + 1, NULL, 10);
}

static void msg_stanza(pl_bench_conn *c, const pl_bench_el *el)
{
    if (strcmp(el->name, "message") != 0)
        return;
    uint64_t ts = body_time(el);
    if (!ts) {
        ms_.bad++;
        return;
    }
    int i = (int)(c - conns);
    int sender = peer_of(i);
    if (ms_.inflight[sender] > 0)
        ms_.inflight[sender]--;
    ms_.delivered++;
    uint64_t now = pl_bench_now();
    if (ms_.phase == 2) {
        ms_.delivered_window++;
        if (ts >= ms_.t_measure)
            pl_hist_record(&ms_.lat, now - ts);
    }
    if (o.rate == 0 && ms_.phase >= 1 && ms_.phase <= 2)
        send_msg(sender);
}

static void msg_end(evutil_socket_t fd, short what, void *arg)
{
    ms_.phase = 3;
    ms_.t_end = pl_bench_now();
    ms_.cpu1 = server_cpu();
    fprintf(stderr, "pl-bench: measured\n");
    fflush(stderr);
    double d = secs(ms_.t_end - ms_.t_measure);
    res_int("pairs", nconns / 2);
    res_int("window", o.window);
    res_num("rate_target", o.rate);
    res_num("measured_s", d);
    res_int("sent_window", (long long)ms_.sent_window);
    res_int("delivered_window", (long long)ms_.delivered_window);
    res_num("delivered_per_s", d > 0 ? (double)ms_.delivered_window / d : 0);
    res_int("skipped", (long long)ms_.skipped);
    res_int("unexpected", (long long)ms_.bad);
    if (ms_.cpu0 >= 0 && ms_.cpu1 >= 0) {
        res_num("server_cpu_s", ms_.cpu1 - ms_.cpu0);
        if (ms_.delivered_window)
            res_num("cpu_s_per_1000", (ms_.cpu1 - ms_.cpu0) * 1000.0
                    / (double)ms_.delivered_window);
    }
    res_hist("lat", &ms_.lat);
    finish(ms_.delivered_window > 0);
}

static void msg_measure(evutil_socket_t fd, short what, void *arg)
{
    ms_.phase = 2;
    ms_.t_measure = pl_bench_now();
    ms_.cpu0 = server_cpu();
    /* for a profiler started by the calling script */
    fprintf(stderr, "pl-bench: measuring\n");
    fflush(stderr);
    timer_new(msg_end, o.duration, 0);
}

/* Fixed rate: every millisecond, send what the rate owes since the last
 * tick, round robin over senders with room in their window. A sender
 * whose window is full is skipped; the owed message goes to the next. */
static void msg_tick(evutil_socket_t fd, short what, void *arg)
{
    uint64_t now = pl_bench_now();
    ms_.credit += o.rate * secs(now - ms_.last_tick);
    ms_.last_tick = now;
    if (ms_.credit > o.rate * 0.05 + 1)
        ms_.credit = o.rate * 0.05 + 1;   /* no burst after a stall */
    for (int guard = 0; ms_.credit >= 1 && guard < 1000000; guard++) {
        int tried = 0;
        while (tried < nconns && ms_.inflight[ms_.rr] >= o.window) {
            ms_.rr = (ms_.rr + 1) % nconns;
            tried++;
        }
        if (tried == nconns) {
            ms_.skipped += (uint64_t)ms_.credit;
            ms_.credit = 0;
            break;
        }
        send_msg(ms_.rr);
        ms_.rr = (ms_.rr + 1) % nconns;
        ms_.credit -= 1;
    }
}

static void msg_go(evutil_socket_t fd, short what, void *arg)
{
    ms_.phase = 1;
    ms_.t_start = pl_bench_now();
    if (o.rate == 0) {
        for (int w = 0; w < o.window; w++)
            for (int i = 0; i < nconns; i++)
                send_msg(i);
    } else {
        ms_.last_tick = ms_.t_start;
        ms_.tick = timer_new(msg_tick, 0.001, 1);
    }
    timer_new(msg_measure, o.warmup, 0);
}

static void msg_online(void)
{
    if (lb.failed) {
        report_login();
        fatal("%d of %d connections failed to log in: %s", lb.failed, nconns, lb.first_error);
        return;
    }
    res_num("logins_per_s", (double)lb.ok / secs(lb.t1 - lb.t0));
    /* let the servers finish processing the initial presences */
    timer_new(msg_go, 0.5, 0);
}

static int msg_setup(void)
{
    if (nconns % 2) {
        fprintf(stderr, "pl-bench: msg needs an even --count\n");
        return -1;
    }
    ms_.inflight = pl_calloc((size_t)nconns, sizeof *ms_.inflight);
    scenario_stanza = msg_stanza;
    for (int i = 0; i < nconns; i++)
        conns[i].pair_id = o.first + (i & ~1);
    login_batch(0, nconns, 1, msg_online);
    return 0;
}

/* ==== roster-setup: make conns[0] and every other account contacts ====
 * Every connection fetches its roster first (an "interested resource",
 * RFC 6121 section 2.1.6, as real clients are), then sends presence.
 * The owner and each contact send each other <subscribe/> and approve
 * whatever <subscribe/> arrives; the owner's roster is polled until it
 * holds every contact with subscription "both". Nothing is sent if it
 * already does, so the set-up can run again. */

static struct roster_state {
    int polls;
    int sent_subscribes;
    uint64_t t0, t_presence, t_roster, t_roster_done, t_done;
    int items, items_both;
    int presences;
    unsigned char *seen;
    double cpu0;
} rs;

static int contact_index(const char *from)
{
    size_t pl = strlen(o.prefix);
    if (strncmp(from, o.prefix, pl) != 0)
        return -1;
    char *end;
    long n = strtol(from + pl, &end, 10);
    if (end == from + pl || (*end != '@' && *end != '\0'))
        return -1;
    long i = n - o.first;
    return i > 0 && i < nconns ? (int)i : -1;
}

static void bare_of(const char *jid, char *out, size_t size)
{
    snprintf(out, size, "%s", jid);
    char *slash = strchr(out, '/');
    if (slash)
        *slash = '\0';
}

static void send_roster_get(pl_bench_conn *c, const char *id)
{
    char buf[128];
    snprintf(buf, sizeof buf, "<iq type='get' id='%s'><query xmlns='jabber:iq:roster'/></iq>",
             id);
    pl_bench_conn_sendstr(c, buf);
}

static void setup_poll(evutil_socket_t fd, short what, void *arg)
{
    send_roster_get(&conns[0], "roster_poll");
}

static void send_subscribes(void)
{
    char main_jid[96], buf[256], u[64];
    snprintf(main_jid, sizeof main_jid, "%s@%s", user_of(0, u, sizeof u), o.domain);
    for (int i = 1; i < nconns; i++) {
        snprintf(buf, sizeof buf, "<presence to='%s@%s' type='subscribe'/>",
                 user_of(i, u, sizeof u), o.domain);
        pl_bench_conn_sendstr(&conns[0], buf);
        snprintf(buf, sizeof buf, "<presence to='%s' type='subscribe'/>", main_jid);
        pl_bench_conn_sendstr(&conns[i], buf);
    }
    rs.sent_subscribes = 1;
}

static void setup_result(int ok)
{
    res_int("contacts", nconns - 1);
    res_int("roster_items", rs.items);
    res_int("roster_both", rs.items_both);
    res_int("subscribes_sent", rs.sent_subscribes);
    res_num("setup_s", secs(pl_bench_now() - rs.t0));
    if (!ok)
        snprintf(error_text, sizeof error_text, "roster has %d items with subscription "
                 "both, expected %d", rs.items_both, nconns - 1);
    finish(ok);
}

static void setup_stanza(pl_bench_conn *c, const pl_bench_el *el)
{
    if (strcmp(el->name, "presence") == 0 && strcmp(el->type, "subscribe") == 0) {
        char bare[192], buf[256];
        bare_of(el->from, bare, sizeof bare);
        snprintf(buf, sizeof buf, "<presence to='%s' type='subscribed'/>", bare);
        pl_bench_conn_sendstr(c, buf);
        return;
    }
    if (c != &conns[0] || strcmp(el->name, "iq") != 0)
        return;
    if (strcmp(el->id, "roster_check") == 0) {
        rs.items = el->items;
        rs.items_both = el->items_both;
        if (rs.items_both == nconns - 1) {
            setup_result(1);
            return;
        }
        send_subscribes();
        timer_new(setup_poll, 0.5, 0);
        return;
    }
    if (strcmp(el->id, "roster_poll") == 0) {
        rs.items = el->items;
        rs.items_both = el->items_both;
        if (rs.items_both == nconns - 1 || ++rs.polls >= 120) {
            setup_result(rs.items_both == nconns - 1);
            return;
        }
        timer_new(setup_poll, 0.5, 0);
    }
}

static void setup_conn_online(pl_bench_conn *c)
{
    send_roster_get(c, "roster_login");
    pl_bench_conn_sendstr(c, "<presence/>");
}

static void setup_online(void)
{
    if (lb.failed) {
        fatal("%d of %d connections failed to log in: %s", lb.failed, nconns, lb.first_error);
        return;
    }
    rs.t0 = pl_bench_now();
    send_roster_get(&conns[0], "roster_check");
}

static int roster_setup_setup(void)
{
    nconns = o.count + 1;
    rs.seen = pl_calloc((size_t)nconns, 1);
    scenario_stanza = setup_stanza;
    scenario_online = setup_conn_online;
    login_batch(0, nconns, 0, setup_online);
    return 0;
}

/* ==== roster: conns[0] logs in while --online contacts are online ==== */

static void roster_stanza(pl_bench_conn *c, const pl_bench_el *el)
{
    if (c != &conns[0])
        return;
    if (strcmp(el->name, "iq") == 0 && strcmp(el->id, "roster_1") == 0 && !rs.t_roster_done) {
        rs.t_roster_done = pl_bench_now();
        rs.items = el->items;
        rs.items_both = el->items_both;
        rs.t_presence = pl_bench_now();
        rs.cpu0 = server_cpu();
        pl_bench_conn_sendstr(c, "<presence/>");
        return;
    }
    if (strcmp(el->name, "presence") != 0 || el->type[0] != '\0' || !rs.t_presence)
        return;
    int k = contact_index(el->from);
    if (k <= 0 || rs.seen[k])
        return;
    rs.seen[k] = 1;
    if (++rs.presences < nconns - 1)
        return;
    uint64_t t = pl_bench_now();
    res_int("contacts_online", nconns - 1);
    res_int("roster_items", rs.items);
    res_int("roster_both", rs.items_both);
    res_num("roster_get_ms", ms(rs.t_roster_done - rs.t_roster));
    res_num("presence_ms", ms(t - rs.t_presence));
    res_num("login_ms", ms(conns[0].t_online - conns[0].t_start));
    double cpu = server_cpu();
    if (cpu >= 0 && rs.cpu0 >= 0)
        res_num("server_cpu_s", cpu - rs.cpu0);
    finish(1);
}

static void roster_main_online(pl_bench_conn *c)
{
    if (c != &conns[0])
        return;
    rs.t_roster = pl_bench_now();
    send_roster_get(c, "roster_1");
}

static void roster_main_done(void)
{
    if (lb.failed)
        fatal("the roster owner failed to log in: %s", lb.first_error);
}

static void roster_go(evutil_socket_t fd, short what, void *arg)
{
    scenario_online = roster_main_online;
    login_batch(0, 1, 0, roster_main_done);
}

static void roster_contacts_online(void)
{
    if (lb.failed) {
        fatal("%d contacts failed to log in: %s", lb.failed, lb.first_error);
        return;
    }
    timer_new(roster_go, 1.0, 0);
}

static int roster_setup(void)
{
    nconns = o.online + 1;
    rs.seen = pl_calloc((size_t)nconns, 1);
    scenario_stanza = roster_stanza;
    login_batch(1, nconns, 1, roster_contacts_online);
    return 0;
}

/* ==== offline: conns[0] sends to conns[1..count] while they are away ==== */

static struct offline_state {
    int sent, batch_no;
    uint64_t t_s0, t_s1, t_d0, t_d1;
    int received, foreign;
    double cpu0, cpu1, cpu2;
    struct event *gate;    /* --store-gate: waiting for the line on stdin */
} os_;

static void offline_send_batch(void)
{
    pl_bench_conn *c = &conns[0];
    pl_buf b = PL_BUF_INIT;
    char to[64];
    int recipients = nconns - 1;
    for (int k = 0; k < o.window && os_.sent < o.messages; k++, os_.sent++) {
        user_of(1 + os_.sent % recipients, to, sizeof to);
        pl_buf_printf(&b, "<message to='%s@%s' type='chat'><body>%s %d offline message "
                      "body</body></message>", to, o.domain, o.run_id, os_.sent);
    }
    pl_buf_printf(&b, "<iq type='get' id='ping_%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
                  ++os_.batch_no, o.domain);
    pl_bench_conn_send(c, b.data, b.len);
    pl_buf_free(&b);
}

static void offline_delivered(void)
{
    os_.t_d1 = pl_bench_now();
    os_.cpu2 = server_cpu();
    res_int("messages", o.messages);
    res_int("recipients", nconns - 1);
    res_num("store_s", secs(os_.t_s1 - os_.t_s0));
    res_num("stored_per_s", (double)o.messages / secs(os_.t_s1 - os_.t_s0));
    res_num("deliver_s", secs(os_.t_d1 - os_.t_d0));
    res_num("delivered_per_s", (double)os_.received / secs(os_.t_d1 - os_.t_d0));
    res_int("received", os_.received);
    res_int("foreign", os_.foreign);
    if (os_.cpu0 >= 0 && os_.cpu2 >= 0) {
        res_num("server_cpu_store_s", os_.cpu1 - os_.cpu0);
        res_num("server_cpu_deliver_s", os_.cpu2 - os_.cpu1);
    }
    finish(os_.received == o.messages);
}

static void offline_recipients_online(void)
{
    if (lb.failed)
        fatal("%d recipients failed to log in: %s", lb.failed, lb.first_error);
}

/* The store phase is over: the recipients come online, all at once. */
static void offline_stored(void)
{
    os_.t_s1 = pl_bench_now();
    os_.cpu1 = server_cpu();
    o.login_window = nconns;
    os_.t_d0 = pl_bench_now();
    login_batch(1, nconns, 1, offline_recipients_online);
}

/* --store-gate: whoever runs pl-bench has seen the store committed. */
static void offline_gate_open(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    char line[64];
    ssize_t n = read(fd, line, sizeof line);
    if (n <= 0) {
        fatal("--store-gate: stdin closed before the store was confirmed");
        return;
    }
    event_free(os_.gate);
    os_.gate = NULL;
    offline_stored();
}

static void offline_stanza(pl_bench_conn *c, const pl_bench_el *el)
{
    if (c == &conns[0]) {
        if (strcmp(el->name, "iq") != 0 || strncmp(el->id, "ping_", 5) != 0)
            return;
        if (os_.sent < o.messages) {
            offline_send_batch();
            return;
        }
        if (atoi(el->id + 5) != os_.batch_no || os_.t_s1 || os_.gate)
            return;
        if (o.store_gate) {
            fprintf(stderr, "pl-bench: stored?\n");
            os_.gate = event_new(base, STDIN_FILENO, EV_READ, offline_gate_open, NULL);
            event_add(os_.gate, NULL);
            return;
        }
        offline_stored();
        return;
    }
    if (strcmp(el->name, "message") != 0 || !el->has_body)
        return;
    size_t rl = strlen(o.run_id);
    if (el->text_len > rl && memcmp(el->text, o.run_id, rl) == 0 && el->text[rl] == ' ')
        os_.received++;
    else
        os_.foreign++;
    if (os_.received == o.messages)
        offline_delivered();
}

static void offline_sender_online(void)
{
    if (lb.failed) {
        fatal("the sender failed to log in: %s", lb.first_error);
        return;
    }
    os_.t_s0 = pl_bench_now();
    os_.cpu0 = server_cpu();
    offline_send_batch();
}

static int offline_setup(void)
{
    nconns = o.count + 1;
    scenario_stanza = offline_stanza;
    login_batch(0, 1, 1, offline_sender_online);
    return 0;
}

/* ==== main ==== */

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    if (lb.started && lb.done)
        report_login();
    fatal("timed out after %.0f s", o.timeout);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (strcmp(o.scenario, "idle") == 0 && hold_ev) {
        finish(exit_code == 0);
        return;
    }
    fatal("interrupted by signal %d", (int)sig);
}

static int setup_scenario(void)
{
    const char *s = o.scenario;
    if (strcmp(s, "login") == 0) {
        login_batch(0, nconns, 1, login_done);
        return 0;
    }
    if (strcmp(s, "idle") == 0) {
        login_batch(0, nconns, 1, idle_ready);
        return 0;
    }
    if (strcmp(s, "msg") == 0)
        return msg_setup();
    if (strcmp(s, "roster-setup") == 0)
        return roster_setup_setup();
    if (strcmp(s, "roster") == 0)
        return roster_setup();
    if (strcmp(s, "offline") == 0)
        return offline_setup();
    fprintf(stderr, "pl-bench: unknown scenario %s\n", s);
    return -1;
}

static int conn_total(void)
{
    if (strcmp(o.scenario, "roster-setup") == 0 || strcmp(o.scenario, "offline") == 0)
        return o.count + 1;
    if (strcmp(o.scenario, "roster") == 0)
        return o.online + 1;
    return o.count;
}

static void check_fd_limit(int n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)n + 16 > rl.rlim_cur)
        fprintf(stderr, "pl-bench: %d connections need more than the open-file limit %llu; "
                "run several pl-bench processes\n", n, (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    if (parse_options(argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    pl_log_set_level(PL_LOG_ERROR);
    if (o.tls && pl_bench_tls_init() != 0)
        return 2;
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    base = event_base_new_with_config(ec);
    event_config_free(ec);
    cfg.base = base;
    cfg.server.sin_family = AF_INET;
    cfg.server.sin_port = htons((uint16_t)o.port);
    if (inet_pton(AF_INET, o.host, &cfg.server.sin_addr) != 1) {
        fprintf(stderr, "pl-bench: --host must be an IPv4 address\n");
        return 2;
    }
    if (o.source_addrs && (cfg.n_src = parse_range(o.source_addrs, &cfg.src_addrs)) < 0) {
        fprintf(stderr, "pl-bench: bad --source-addrs (want 127.a.b.c-127.a.b.d)\n");
        return 2;
    }
    cfg.domain = o.domain;
    cfg.password = o.password;
    cfg.tls = o.tls;
    cfg.scram = o.scram;
    cfg.raw = o.raw;
    cfg.pipeline = o.pipeline;
    nconns = conn_total();
    check_fd_limit(nconns);
    conns = pl_calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        char u[64];
        pl_bench_conn_init(&conns[i], &cfg, &conn_cb, user_of(i, u, sizeof u), i, NULL);
    }
    t_begin = pl_bench_now();
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, NULL);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    timeout_ev = timer_new(on_timeout, o.timeout, 0);
    if (setup_scenario() != 0)
        return 2;
    if (!finished)
        event_base_dispatch(base);
    if (!printed)
        print_result(exit_code == 0);
    for (int i = 0; i < nconns; i++)
        pl_bench_conn_close(&conns[i]);
    pl_free(conns);
    for (int i = 0; i < ntimers; i++)
        event_free(timers[i]);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    pl_buf_free(&result);
    pl_buf_free(&ms_.msg);
    pl_hist_free(&lb.hist);
    pl_hist_free(&ms_.lat);
    pl_free(ms_.inflight);
    pl_free(rs.seen);
    pl_free(cfg.src_addrs);
    if (o.tls)
        pl_tls_global_deinit();
    return exit_code;
}
