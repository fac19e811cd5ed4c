/* bench/bench_test.c: unit tests of pl-bench's pieces that compute
 * figures or speak SASL: the latency histogram (bench_stats.c) and the
 * SCRAM-SHA-1 client (bench_scram.c, RFC 5802 section 5 example). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <parley/base.h>
#include "../tests/unit/test.h"
#include "bench_scram.h"
#include "bench_stats.h"

PL_TEST(hist_small_values_are_exact)
{
    pl_hist h = { 0 };
    for (uint64_t v = 1; v <= 50; v++)
        pl_hist_record(&h, v);
    CHECK_EQ(h.count, 50);
    CHECK_EQ(h.min, 1);
    CHECK_EQ(h.max, 50);
    CHECK_EQ(pl_hist_quantile(&h, 0.5), 25);
    CHECK_EQ(pl_hist_quantile(&h, 0.99), 50);
    CHECK_EQ(pl_hist_quantile(&h, 0.0), 1);
    pl_hist_free(&h);
    CHECK_EQ(h.count, 0);
}

PL_TEST(hist_buckets_are_within_two_percent)
{
    static const uint64_t values[] = { 64, 127, 128, 1000, 123456, 1000000, 987654321,
                                       60000000000ull };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        pl_hist h = { 0 };
        pl_hist_record(&h, values[i]);
        uint64_t q = pl_hist_quantile(&h, 0.5);
        double err = ((double)q - (double)values[i]) / (double)values[i];
        if (err < 0)
            err = -err;
        CHECK(err < 1.0 / 64);
        pl_hist_free(&h);
    }
}

PL_TEST(hist_quantiles_of_a_skewed_sample)
{
    pl_hist h = { 0 };
    for (int i = 0; i < 990; i++)
        pl_hist_record(&h, 40);
    for (int i = 0; i < 10; i++)
        pl_hist_record(&h, 5000000);
    CHECK_EQ(pl_hist_quantile(&h, 0.5), 40);
    CHECK_EQ(pl_hist_quantile(&h, 0.99), 40);
    uint64_t p999 = pl_hist_quantile(&h, 0.999);
    CHECK(p999 > 4900000 && p999 < 5100000);
    pl_hist_free(&h);
}

PL_TEST(hist_json_lists_nonempty_buckets)
{
    pl_hist h = { 0 };
    pl_hist_record(&h, 3);
    pl_hist_record(&h, 3);
    pl_hist_record(&h, 70);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    pl_hist_write_json(&h, f);
    fclose(f);
    CHECK_STR(text, "[[3,2],[70,1]]");
    free(text);
    CHECK_EQ(pl_hist_bucket_value(70), 70);
    pl_hist_free(&h);
}

PL_TEST(scram_rfc5802_example)
{
    pl_bench_scram *s = pl_bench_scram_new_nonce("user", "fyko+d2lbbFgONRv9qkxdawL");
    char *first = pl_bench_scram_first_b64(s);
    char *plain = pl_bench_unb64(first, strlen(first), NULL);
    CHECK_STR(plain, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    const char *sf = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    char *sf64 = pl_bench_b64(sf, strlen(sf));
    char *final = pl_bench_scram_final_b64(s, "pencil", sf64, strlen(sf64));
    CHECK(final != NULL);
    char *fplain = pl_bench_unb64(final, strlen(final), NULL);
    CHECK_STR(fplain, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
              "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    const char *good = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";
    char *good64 = pl_bench_b64(good, strlen(good));
    CHECK_EQ(pl_bench_scram_verify_b64(s, good64, strlen(good64)), 1);
    const char *bad = "v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    char *bad64 = pl_bench_b64(bad, strlen(bad));
    CHECK_EQ(pl_bench_scram_verify_b64(s, bad64, strlen(bad64)), 0);
    pl_free(first);
    pl_free(plain);
    pl_free(sf64);
    pl_free(final);
    pl_free(fplain);
    pl_free(good64);
    pl_free(bad64);
    pl_bench_scram_free(s);
}

PL_TEST(scram_cached_second_login_gives_same_proof)
{
    const char *sf = "r=abcNONCE,s=QSXCR+Q6sek8bf92,i=4096";
    char *sf64 = pl_bench_b64(sf, strlen(sf));
    char *finals[2];
    for (int i = 0; i < 2; i++) {
        pl_bench_scram *s = pl_bench_scram_new_nonce("user", "abc");
        finals[i] = pl_bench_scram_final_b64(s, "pencil", sf64, strlen(sf64));
        CHECK(finals[i] != NULL);
        pl_bench_scram_free(s);
    }
    CHECK_STR(finals[0], finals[1]);
    pl_free(finals[0]);
    pl_free(finals[1]);
    pl_free(sf64);
}

PL_TEST(scram_rejects_a_foreign_nonce)
{
    pl_bench_scram *s = pl_bench_scram_new_nonce("user", "mynonce");
    const char *sf = "r=othernonce123,s=QSXCR+Q6sek8bf92,i=4096";
    char *sf64 = pl_bench_b64(sf, strlen(sf));
    CHECK(pl_bench_scram_final_b64(s, "pencil", sf64, strlen(sf64)) == NULL);
    CHECK(pl_bench_scram_final_b64(s, "pencil", "!!!", 3) == NULL);
    pl_free(sf64);
    pl_bench_scram_free(s);
}
