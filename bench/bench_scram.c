/* bench/bench_scram.c: SCRAM-SHA-1 client exchanges for pl-bench, with
 * PBKDF2 results cached by (password, salt, iterations). Cryptography,
 * base64 and random numbers come from nettle and GnuTLS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/pbkdf2.h>
#include <nettle/sha1.h>
#include <parley/base.h>
#include "bench_scram.h"

#define HLEN SHA1_DIGEST_SIZE
#define CACHE_SLOTS 16

struct pl_bench_scram {
    char nonce[33];
    char *first_bare;
    unsigned char server_sig[HLEN];
    int have_sig;
};

struct cache_slot {
    char *password;
    char *salt_b64;
    unsigned iterations;
    unsigned char salted[HLEN];
};

static struct cache_slot cache[CACHE_SLOTS];
static unsigned cache_next;

/* Base64 of data (malloced, NUL terminated). */
char *pl_bench_b64(const void *data, size_t len)
{
    char *out = pl_malloc(BASE64_ENCODE_RAW_LENGTH(len) + 1);
    base64_encode_raw(out, len, data);
    out[BASE64_ENCODE_RAW_LENGTH(len)] = '\0';
    return out;
}

/* Decodes base64 (whitespace is not expected here). */
char *pl_bench_unb64(const char *b64, size_t len, size_t *outlen)
{
    struct base64_decode_ctx ctx;
    char *out = pl_malloc(BASE64_DECODE_LENGTH(len) + 1);
    size_t n = BASE64_DECODE_LENGTH(len);
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &n, (uint8_t *)out, len, b64)
        || !base64_decode_final(&ctx)) {
        pl_free(out);
        return NULL;
    }
    out[n] = '\0';
    if (outlen)
        *outlen = n;
    return out;
}

/* A new exchange with a 24-character random nonce. */
pl_bench_scram *pl_bench_scram_new(const char *user)
{
    unsigned char raw[18];
    gnutls_rnd(GNUTLS_RND_NONCE, raw, sizeof raw);
    char *n = pl_bench_b64(raw, sizeof raw);
    pl_bench_scram *s = pl_bench_scram_new_nonce(user, n);
    pl_free(n);
    return s;
}

/* A new exchange with the given nonce (at most 32 characters). */
pl_bench_scram *pl_bench_scram_new_nonce(const char *user, const char *nonce)
{
    pl_bench_scram *s = pl_calloc(1, sizeof *s);
    snprintf(s->nonce, sizeof s->nonce, "%s", nonce);
    size_t len = strlen(user) + strlen(s->nonce) + 8;
    s->first_bare = pl_malloc(len);
    snprintf(s->first_bare, len, "n=%s,r=%s", user, s->nonce);
    return s;
}

/* Frees an exchange; NULL is ignored. */
void pl_bench_scram_free(pl_bench_scram *s)
{
    if (!s)
        return;
    pl_free(s->first_bare);
    pl_free(s);
}

/* "n,," + client-first-message-bare, base64. */
char *pl_bench_scram_first_b64(pl_bench_scram *s)
{
    size_t len = strlen(s->first_bare) + 4;
    char *msg = pl_malloc(len);
    snprintf(msg, len, "n,,%s", s->first_bare);
    char *out = pl_bench_b64(msg, strlen(msg));
    pl_free(msg);
    return out;
}

static const unsigned char *salted_password(const char *password, const char *salt_b64,
                                            unsigned iterations)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct cache_slot *c = &cache[i];
        if (c->password && c->iterations == iterations && strcmp(c->password, password) == 0
            && strcmp(c->salt_b64, salt_b64) == 0)
            return c->salted;
    }
    size_t salt_len;
    char *salt = pl_bench_unb64(salt_b64, strlen(salt_b64), &salt_len);
    if (!salt)
        return NULL;
    struct cache_slot *c = &cache[cache_next++ % CACHE_SLOTS];
    pl_free(c->password);
    pl_free(c->salt_b64);
    c->password = pl_strdup(password);
    c->salt_b64 = pl_strdup(salt_b64);
    c->iterations = iterations;
    pbkdf2_hmac_sha1(strlen(password), (const uint8_t *)password, iterations, salt_len,
                     (const uint8_t *)salt, HLEN, c->salted);
    pl_free(salt);
    return c->salted;
}

static void hmac(const unsigned char *key, const void *data, size_t len, unsigned char *out)
{
    struct hmac_sha1_ctx ctx;
    hmac_sha1_set_key(&ctx, HLEN, key);
    hmac_sha1_update(&ctx, len, data);
    hmac_sha1_digest(&ctx, HLEN, out);
}

static void digest(const unsigned char *in, unsigned char *out)
{
    struct sha1_ctx ctx;
    sha1_init(&ctx);
    sha1_update(&ctx, HLEN, in);
    sha1_digest(&ctx, HLEN, out);
}

/* Finds "k=" at the start of a comma-separated attribute; returns the
 * value (NUL terminated in place) or NULL. */
static char *attr(char *msg, char key)
{
    char *save = NULL;
    for (char *p = strtok_r(msg, ",", &save); p; p = strtok_r(NULL, ",", &save))
        if (p[0] == key && p[1] == '=')
            return p + 2;
    return NULL;
}

/* Computes the proof from server-first-message (RFC 5802 section 3). */
char *pl_bench_scram_final_b64(pl_bench_scram *s, const char *password,
                               const char *challenge_b64, size_t len)
{
    char *sf = pl_bench_unb64(challenge_b64, len, NULL);
    if (!sf)
        return NULL;
    char *c1 = pl_strdup(sf), *c2 = pl_strdup(sf), *c3 = pl_strdup(sf);
    const char *nonce = attr(c1, 'r'), *salt = attr(c2, 's'), *iter = attr(c3, 'i');
    char *out = NULL;
    unsigned iterations = iter ? (unsigned)strtoul(iter, NULL, 10) : 0;
    const unsigned char *salted = NULL;
    if (nonce && salt && iterations > 0 && strncmp(nonce, s->nonce, strlen(s->nonce)) == 0)
        salted = salted_password(password, salt, iterations);
    if (salted) {
        unsigned char client_key[HLEN], stored_key[HLEN], sig[HLEN], proof[HLEN], server_key[HLEN];
        hmac(salted, "Client Key", 10, client_key);
        digest(client_key, stored_key);
        size_t wlen = strlen(nonce) + 16;
        char *without = pl_malloc(wlen);
        snprintf(without, wlen, "c=biws,r=%s", nonce);
        size_t alen = strlen(s->first_bare) + strlen(sf) + strlen(without) + 3;
        char *auth = pl_malloc(alen);
        snprintf(auth, alen, "%s,%s,%s", s->first_bare, sf, without);
        hmac(stored_key, auth, strlen(auth), sig);
        for (int i = 0; i < HLEN; i++)
            proof[i] = client_key[i] ^ sig[i];
        hmac(salted, "Server Key", 10, server_key);
        hmac(server_key, auth, strlen(auth), s->server_sig);
        s->have_sig = 1;
        char *p64 = pl_bench_b64(proof, HLEN);
        size_t flen = strlen(without) + strlen(p64) + 4;
        char *final = pl_malloc(flen);
        snprintf(final, flen, "%s,p=%s", without, p64);
        out = pl_bench_b64(final, strlen(final));
        pl_free(final);
        pl_free(p64);
        pl_free(auth);
        pl_free(without);
    }
    pl_free(c1);
    pl_free(c2);
    pl_free(c3);
    pl_free(sf);
    return out;
}

/* Compares "v=<base64 ServerSignature>" with what we computed. */
int pl_bench_scram_verify_b64(pl_bench_scram *s, const char *success_b64, size_t len)
{
    if (!s->have_sig)
        return 0;
    char *sf = pl_bench_unb64(success_b64, len, NULL);
    if (!sf)
        return 0;
    char *want = pl_bench_b64(s->server_sig, HLEN);
    int ok = strncmp(sf, "v=", 2) == 0 && strcmp(sf + 2, want) == 0;
    pl_free(want);
    pl_free(sf);
    return ok;
}
