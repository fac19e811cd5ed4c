/* bench/bench_stats.h: the clock and a latency histogram for pl-bench.
 * Times are CLOCK_MONOTONIC nanoseconds, the same clock in every process
 * on the machine, so separate pl-bench processes can be compared. */
#ifndef PL_BENCH_STATS_H
#define PL_BENCH_STATS_H

#include <stdint.h>
#include <stdio.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t pl_bench_now(void);

/* A log-linear histogram: 64 sub-buckets per power of two, so a recorded
 * value is reported within 1/64 (1.6%) of itself. Values are in
 * nanoseconds, up to about 10^18. */
#define PL_HIST_SUB 64
#define PL_HIST_BUCKETS (64 * PL_HIST_SUB)

typedef struct pl_hist {
    uint64_t count;
    uint64_t min, max;
    long double sum;
    uint64_t *bins;     /* PL_HIST_BUCKETS counters, allocated on first use */
} pl_hist;

void pl_hist_record(pl_hist *h, uint64_t v);

/* The value at quantile q (0..1), the midpoint of its bucket; 0 when the
 * histogram is empty. */
uint64_t pl_hist_quantile(const pl_hist *h, double q);

/* Writes the non-empty buckets as a JSON array of [index, count] pairs, so
 * that histograms from several processes can be merged exactly. */
void pl_hist_write_json(const pl_hist *h, FILE *f);

/* The representative value of bucket index i (what quantiles report). */
uint64_t pl_hist_bucket_value(int i);

void pl_hist_free(pl_hist *h);

#endif
