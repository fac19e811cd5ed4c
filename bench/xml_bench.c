/* bench/xml_bench.c: a micro-benchmark of the XML core. Parses N
 * <message> stanzas from one stream (fed in 16 KiB reads, as from a
 * socket), serializes each one as it arrives, and prints stanzas per
 * second of process CPU time for parsing alone and for parsing plus
 * serializing, best of five runs, for a minimal and a typical message.
 * Usage: xml_bench [N] (default 500000). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <parley/base.h>
#include <parley/buf.h>
#include <parley/stanza.h>
#include "xml/stream.h"

#define READ_SIZE 16384

struct bench {
    pl_buf out;
    long count;
    size_t bytes_out;
    int serialize;
};

static void on_stanza(void *ud, pl_stanza *st)
{
    struct bench *b = ud;
    b->count++;
    if (b->serialize) {
        pl_buf_reset(&b->out);
        pl_xml_serialize(pl_stanza_root(st), &b->out, PL_NS_CLIENT);
        b->bytes_out += b->out.len;
    }
    pl_stanza_unref(st);
}

static void on_error(void *ud, const char *cond, const char *text)
{
    fprintf(stderr, "xml_bench: %s: %s\n", cond, text);
    exit(1);
}

#define RUNS 5

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const small_msg = "<message to='a@b' type='chat'><body>hi</body></message>";
static const char *const typical_msg =
    "<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' type='chat' "
    "id='m%ld'><body>Art thou not Romeo, and a Montague? &lt;%ld&gt;</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n";

static void build_input(pl_buf *in, long n, const char *fmt)
{
    pl_buf_puts(in, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
                    "version='1.0' xml:lang='en'>");
    for (long i = 0; i < n; i++)
        pl_buf_printf(in, fmt, i, i);
    pl_buf_puts(in, "</stream:stream>");
}

static double run(const pl_buf *in, struct bench *b)
{
    static const pl_xml_stream_cb cb = { NULL, on_stanza, NULL, on_error };
    pl_xml_stream *xs = pl_xml_stream_new(&cb, b, PL_NS_CLIENT, 256 * 1024);
    double t0 = now();
    for (size_t off = 0; off < in->len; off += READ_SIZE) {
        size_t n = in->len - off < READ_SIZE ? in->len - off : READ_SIZE;
        if (pl_xml_stream_feed(xs, in->data + off, n) != 0)
            exit(1);
    }
    double t = now() - t0;
    pl_xml_stream_free(xs);
    return t;
}

/* The best rate of RUNS runs, in stanzas per second. */
static double best_rate(const pl_buf *in, long n, int serialize, size_t *bytes_out)
{
    double best = 0;
    for (int i = 0; i < RUNS; i++) {
        struct bench b = { PL_BUF_INIT, 0, 0, serialize };
        double t = run(in, &b);
        if (b.count != n) {
            fprintf(stderr, "xml_bench: parsed %ld of %ld stanzas\n", b.count, n);
            exit(1);
        }
        if ((double)n / t > best)
            best = (double)n / t;
        *bytes_out = b.bytes_out;
        pl_buf_free(&b.out);
    }
    return best;
}

static void measure(const char *label, const char *fmt, long n)
{
    pl_buf in = PL_BUF_INIT;
    build_input(&in, n, fmt);
    size_t out = 0;
    double parse = best_rate(&in, n, 0, &out);
    double both = best_rate(&in, n, 1, &out);
    printf("%s: %ld stanzas, %.1f MB in, %.1f MB out\n", label, n, (double)in.len / 1e6,
           (double)out / 1e6);
    printf("  parse:             %9.0f stanzas/s  (%.0f MB/s)\n", parse,
           parse * (double)in.len / (double)n / 1e6);
    printf("  parse + serialize: %9.0f stanzas/s\n", both);
    pl_buf_free(&in);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 500000;
    if (n <= 0)
        n = 1;
    measure("small message  ", small_msg, n);
    measure("typical message", typical_msg, n);
    return 0;
}
