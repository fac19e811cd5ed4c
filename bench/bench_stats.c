/* bench/bench_stats.c: the monotonic clock and the log-linear latency
 * histogram of pl-bench. */
#include <stdlib.h>
#include <time.h>
#include <parley/base.h>
#include "bench_stats.h"

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t pl_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Values below PL_HIST_SUB get a bucket each; above, the bucket is the
 * power of two (the top bit) and the next 6 bits. */
static int bucket_of(uint64_t v)
{
    if (v < PL_HIST_SUB)
        return (int)v;
    int top = 63 - __builtin_clzll(v);          /* >= 6 */
    int shift = top - 6;
    int sub = (int)((v >> shift) & (PL_HIST_SUB - 1));
    int i = (top - 5) * PL_HIST_SUB + sub;
    return i < PL_HIST_BUCKETS ? i : PL_HIST_BUCKETS - 1;
}

/* The midpoint of bucket i. */
uint64_t pl_hist_bucket_value(int i)
{
    if (i < PL_HIST_SUB)
        return (uint64_t)i;
    int top = i / PL_HIST_SUB + 5;
    int sub = i % PL_HIST_SUB;
    int shift = top - 6;
    uint64_t lo = ((uint64_t)(PL_HIST_SUB + sub)) << shift;
    return lo + (((uint64_t)1 << shift) >> 1);
}

/* Adds one value. */
void pl_hist_record(pl_hist *h, uint64_t v)
{
    if (!h->bins)
        h->bins = pl_calloc(PL_HIST_BUCKETS, sizeof *h->bins);
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += v;
    h->bins[bucket_of(v)]++;
}

/* The value at quantile q: the first bucket whose cumulative count
 * reaches ceil(q * count). */
uint64_t pl_hist_quantile(const pl_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < PL_HIST_BUCKETS; i++) {
        seen += h->bins[i];
        if (seen >= rank)
            return pl_hist_bucket_value(i);
    }
    return h->max;
}

/* [[index,count],...] of the non-empty buckets. */
void pl_hist_write_json(const pl_hist *h, FILE *f)
{
    fputc('[', f);
    int first = 1;
    for (int i = 0; h->bins && i < PL_HIST_BUCKETS; i++) {
        if (!h->bins[i])
            continue;
        fprintf(f, "%s[%d,%llu]", first ? "" : ",", i, (unsigned long long)h->bins[i]);
        first = 0;
    }
    fputc(']', f);
}

/* Releases the buckets; the histogram is empty again. */
void pl_hist_free(pl_hist *h)
{
    pl_free(h->bins);
    *h = (pl_hist){ 0 };
}
