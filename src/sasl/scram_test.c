/* sasl/scram_test.c: unit tests for scram.c: the exchanges of RFC 5802
 * section 5 and RFC 7677 section 3 through the server and the client
 * API, credentials, proofs, nonces, channel binding (including a -PLUS
 * exchange built by hand), malformed messages and base64. */
#include <nettle/hmac.h>
#include <nettle/pbkdf2.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>
#include <nettle/version.h>
#include <parley/base.h>
#include "sasl/scram.h"
#include "../../tests/unit/test.h"

#if NETTLE_VERSION_MAJOR > 3 || (NETTLE_VERSION_MAJOR == 3 && NETTLE_VERSION_MINOR >= 10)
#define DIGEST(fn, ctx, len, out) fn(ctx, out)
#else
#define DIGEST(fn, ctx, len, out) fn(ctx, len, out)
#endif

/* ==== the published exchanges ==== */

#define V1_CLIENT_FIRST "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
#define V1_SNONCE "3rfcNHYJY1ZVvWVs7j"
#define V1_SALT "QSXCR+Q6sek8bf92"
#define V1_SERVER_FIRST \
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
#define V1_CLIENT_FINAL \
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
#define V1_SERVER_FINAL "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

#define V256_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define V256_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define V256_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define V256_SERVER_FIRST \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==," \
    "i=4096"
#define V256_CLIENT_FINAL \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define V256_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* ==== helpers ==== */

/* A server for user "user" with password "pencil", salt and 4096
 * iterations, that has parsed client_first and answered with snonce
 * (random if NULL). *server_first is the answer, malloced. */
static pl_scram_server *server_at_final(pl_scram_hash h, int plus, int server_plus,
                                        const char *const *types,
                                        const unsigned char *const *data,
                                        const size_t *lens, int count,
                                        const char *client_first, const char *salt_b64,
                                        const char *snonce, char **server_first)
{
    unsigned char stored[PL_SCRAM_MAX_HASH], server[PL_SCRAM_MAX_HASH];
    unsigned char *salt = NULL;
    size_t salt_len = 0;
    const char *user = NULL, *authzid = NULL, *err = NULL;
    CHECK_EQ(pl_base64_decode(salt_b64, strlen(salt_b64), &salt, &salt_len), 0);
    pl_scram_derive(h, "pencil", salt, salt_len, 4096, stored, server);
    pl_scram_server *s = pl_scram_server_new(h, plus, server_plus, types, data, lens, count);
    int rc = pl_scram_server_client_first(s, client_first, strlen(client_first), &user,
                                          &authzid, &err);
    if (rc != 0)
        fprintf(stderr, "client-first refused: %s\n", err);
    CHECK_EQ(rc, 0);
    CHECK_NULL(err);
    CHECK_EQ(pl_scram_server_first(s, salt, salt_len, 4096, stored, server, snonce,
                                   server_first), 0);
    pl_free(salt);
    return s;
}

/* Runs client-first through a fresh server and returns the error. */
static const char *first_error(pl_scram_hash h, int plus, int server_plus,
                               const char *const *types, const unsigned char *const *data,
                               const size_t *lens, int count, const char *msg, size_t len)
{
    const char *user = (const char *)1, *authzid = (const char *)1, *err = NULL;
    pl_scram_server *s = pl_scram_server_new(h, plus, server_plus, types, data, lens, count);
    int rc = pl_scram_server_client_first(s, msg, len, &user, &authzid, &err);
    if (rc == 0)
        fprintf(stderr, "accepted: %.*s\n", (int)len, msg);
    CHECK_EQ(rc, -1);
    CHECK_NULL(user);
    CHECK_NULL(authzid);
    CHECK(err != NULL);
    pl_scram_server_free(s);
    return err;
}

static const char *plain_first_error(const char *msg)
{
    return first_error(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0, msg, strlen(msg));
}

/* Parses msg as client-first with a non-PLUS SHA-1 server and returns the
 * user name and authzid (copied into the given buffers). */
static void first_ok(const char *msg, char *user_out, char *authzid_out)
{
    const char *user = NULL, *authzid = NULL, *err = NULL;
    pl_scram_server *s = pl_scram_server_new(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0);
    int rc = pl_scram_server_client_first(s, msg, strlen(msg), &user, &authzid, &err);
    if (rc != 0)
        fprintf(stderr, "refused (%s): %s\n", err, msg);
    CHECK_EQ(rc, 0);
    strcpy(user_out, user);
    strcpy(authzid_out, authzid ? authzid : "(none)");
    pl_scram_server_free(s);
}

/* Builds client-final-message by hand for password "pencil": c= is the
 * base64 of gs2 followed by cb_data, nonce as given, and a proof over
 * the resulting AuthMessage. Also returns the server-final expected. */
static char *hand_final(pl_scram_hash h, const char *client_first_bare,
                        const char *server_first, const char *gs2,
                        const unsigned char *cb_data, size_t cb_len, const char *nonce,
                        char **expected_server_final)
{
    size_t hl = pl_scram_hash_len(h);
    unsigned char salted[32], ckey[32], skey[32], stored[32], csig[32], ssig[32];
    unsigned char *salt = NULL;
    size_t salt_len = 0;
    const char *s = strstr(server_first, ",s=");
    CHECK(s != NULL);
    s += 3;
    size_t sn = strcspn(s, ",");
    CHECK_EQ(pl_base64_decode(s, sn, &salt, &salt_len), 0);
    if (h == PL_SCRAM_SHA256)
        pbkdf2_hmac_sha256(6, (const uint8_t *)"pencil", 4096, salt_len, salt, hl, salted);
    else
        pbkdf2_hmac_sha1(6, (const uint8_t *)"pencil", 4096, salt_len, salt, hl, salted);
    pl_free(salt);

    size_t gl = strlen(gs2);
    unsigned char *cbin = pl_malloc(gl + cb_len + 1);
    memcpy(cbin, gs2, gl);
    if (cb_len)
        memcpy(cbin + gl, cb_data, cb_len);
    char *c = pl_base64_encode(cbin, gl + cb_len);
    pl_free(cbin);

    char without[4096], auth[8192];
    snprintf(without, sizeof without, "c=%s,r=%s", c, nonce);
    snprintf(auth, sizeof auth, "%s,%s,%s", client_first_bare, server_first, without);
    pl_free(c);

    if (h == PL_SCRAM_SHA256) {
        struct hmac_sha256_ctx m;
        struct sha256_ctx d;
        hmac_sha256_set_key(&m, hl, salted);
        hmac_sha256_update(&m, 10, (const uint8_t *)"Client Key");
        DIGEST(hmac_sha256_digest, &m, hl, ckey);
        hmac_sha256_set_key(&m, hl, salted);
        hmac_sha256_update(&m, 10, (const uint8_t *)"Server Key");
        DIGEST(hmac_sha256_digest, &m, hl, skey);
        sha256_init(&d);
        sha256_update(&d, hl, ckey);
        DIGEST(sha256_digest, &d, hl, stored);
        hmac_sha256_set_key(&m, hl, stored);
        hmac_sha256_update(&m, strlen(auth), (const uint8_t *)auth);
        DIGEST(hmac_sha256_digest, &m, hl, csig);
        hmac_sha256_set_key(&m, hl, skey);
        hmac_sha256_update(&m, strlen(auth), (const uint8_t *)auth);
        DIGEST(hmac_sha256_digest, &m, hl, ssig);
    } else {
        struct hmac_sha1_ctx m;
        struct sha1_ctx d;
        hmac_sha1_set_key(&m, hl, salted);
        hmac_sha1_update(&m, 10, (const uint8_t *)"Client Key");
        DIGEST(hmac_sha1_digest, &m, hl, ckey);
        hmac_sha1_set_key(&m, hl, salted);
        hmac_sha1_update(&m, 10, (const uint8_t *)"Server Key");
        DIGEST(hmac_sha1_digest, &m, hl, skey);
        sha1_init(&d);
        sha1_update(&d, hl, ckey);
        DIGEST(sha1_digest, &d, hl, stored);
        hmac_sha1_set_key(&m, hl, stored);
        hmac_sha1_update(&m, strlen(auth), (const uint8_t *)auth);
        DIGEST(hmac_sha1_digest, &m, hl, csig);
        hmac_sha1_set_key(&m, hl, skey);
        hmac_sha1_update(&m, strlen(auth), (const uint8_t *)auth);
        DIGEST(hmac_sha1_digest, &m, hl, ssig);
    }
    for (size_t i = 0; i < hl; i++)
        ckey[i] ^= csig[i];
    char *proof = pl_base64_encode(ckey, hl);
    char *sig = pl_base64_encode(ssig, hl);
    size_t n = strlen(without) + strlen(proof) + 4;
    char *msg = pl_malloc(n);
    snprintf(msg, n, "%s,p=%s", without, proof);
    if (expected_server_final) {
        *expected_server_final = pl_malloc(strlen(sig) + 3);
        sprintf(*expected_server_final, "v=%s", sig);
    }
    pl_free(proof);
    pl_free(sig);
    return msg;
}

/* The nonce of a server-first-message, copied into out. */
static void nonce_of(const char *server_first, char *out, size_t outsz)
{
    CHECK(strncmp(server_first, "r=", 2) == 0);
    size_t n = strcspn(server_first + 2, ",");
    CHECK(n < outsz);
    memcpy(out, server_first + 2, n);
    out[n] = '\0';
}

/* Sends a client-final and checks the outcome: NULL want_err for
 * success (then *server_final, if given, receives the answer). */
static void expect_final(pl_scram_server *s, const char *msg, const char *want_err,
                         char **server_final)
{
    char *out = (char *)1;
    const char *err = (const char *)1;
    int rc = pl_scram_server_client_final(s, msg, strlen(msg), &out, &err);
    if (!want_err) {
        if (rc != 0)
            fprintf(stderr, "client-final refused: %s\n", err);
        CHECK_EQ(rc, 0);
        CHECK_NULL(err);
        CHECK(out != NULL);
        if (server_final)
            *server_final = out;
        else
            pl_free(out);
        return;
    }
    CHECK_EQ(rc, -1);
    CHECK_NULL(out);
    CHECK_STR(err, want_err);
}

/* ==== RFC 5802 section 5 and RFC 7677 section 3 ==== */

PL_TEST(rfc5802_server)
{
    char *sf = NULL, *fin = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                         V1_CLIENT_FIRST, V1_SALT, V1_SNONCE, &sf);
    CHECK_STR(sf, V1_SERVER_FIRST);
    expect_final(s, V1_CLIENT_FINAL, NULL, &fin);
    CHECK_STR(fin, V1_SERVER_FINAL);
    pl_free(sf);
    pl_free(fin);
    pl_scram_server_free(s);
}

PL_TEST(rfc5802_server_username)
{
    const char *user = NULL, *authzid = (const char *)1, *err = (const char *)1;
    pl_scram_server *s = pl_scram_server_new(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0);
    CHECK_EQ(pl_scram_server_client_first(s, V1_CLIENT_FIRST, strlen(V1_CLIENT_FIRST),
                                          &user, &authzid, &err), 0);
    CHECK_STR(user, "user");
    CHECK_NULL(authzid);
    CHECK_NULL(err);
    pl_scram_server_free(s);
}

PL_TEST(rfc5802_client)
{
    pl_scram_client *c = pl_scram_client_new(PL_SCRAM_SHA1, "user", "pencil",
                                             "fyko+d2lbbFgONRv9qkxdawL");
    CHECK(c != NULL);
    char *first = pl_scram_client_first(c);
    CHECK_STR(first, V1_CLIENT_FIRST);
    char *fin = pl_scram_client_final(c, V1_SERVER_FIRST);
    CHECK_STR(fin, V1_CLIENT_FINAL);
    CHECK_EQ(pl_scram_client_verify(c, V1_SERVER_FINAL), 1);
    CHECK_EQ(pl_scram_client_verify(c, "v=rmF9pqV8S7suAoZWja4dJRkFsKA="), 0);
    CHECK_EQ(pl_scram_client_verify(c, "e=invalid-proof"), 0);
    CHECK_EQ(pl_scram_client_verify(c, "v=biws"), 0);
    CHECK_EQ(pl_scram_client_verify(c, "v=!!!!"), 0);
    CHECK_EQ(pl_scram_client_verify(c, ""), 0);
    pl_free(first);
    pl_free(fin);
    pl_scram_client_free(c);
}

PL_TEST(rfc7677_server)
{
    char *sf = NULL, *fin = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA256, 0, 0, NULL, NULL, NULL, 0,
                                         V256_CLIENT_FIRST, V256_SALT, V256_SNONCE, &sf);
    CHECK_STR(sf, V256_SERVER_FIRST);
    expect_final(s, V256_CLIENT_FINAL, NULL, &fin);
    CHECK_STR(fin, V256_SERVER_FINAL);
    pl_free(sf);
    pl_free(fin);
    pl_scram_server_free(s);
}

PL_TEST(rfc7677_client)
{
    pl_scram_client *c = pl_scram_client_new(PL_SCRAM_SHA256, "user", "pencil",
                                             "rOprNGfwEbeRWgbNEkqO");
    CHECK(c != NULL);
    char *first = pl_scram_client_first(c);
    CHECK_STR(first, V256_CLIENT_FIRST);
    char *fin = pl_scram_client_final(c, V256_SERVER_FIRST);
    CHECK_STR(fin, V256_CLIENT_FINAL);
    CHECK_EQ(pl_scram_client_verify(c, V256_SERVER_FINAL), 1);
    CHECK_EQ(pl_scram_client_verify(c, V1_SERVER_FINAL), 0);
    pl_free(first);
    pl_free(fin);
    pl_scram_client_free(c);
}

/* The hand-built messages used by the channel binding tests agree with
 * the published exchange. */
PL_TEST(hand_final_matches_rfc)
{
    char *expect = NULL;
    char *fin = hand_final(PL_SCRAM_SHA256, "n=user,r=rOprNGfwEbeRWgbNEkqO",
                           V256_SERVER_FIRST, "n,,", NULL, 0,
                           "rOprNGfwEbeRWgbNEkqO" V256_SNONCE, &expect);
    CHECK_STR(fin, V256_CLIENT_FINAL);
    CHECK_STR(expect, V256_SERVER_FINAL);
    pl_free(fin);
    pl_free(expect);
}

/* ==== names, keys and credentials ==== */

PL_TEST(mech_names)
{
    CHECK_EQ(pl_scram_hash_len(PL_SCRAM_SHA1), 20);
    CHECK_EQ(pl_scram_hash_len(PL_SCRAM_SHA256), 32);
    CHECK_STR(pl_scram_mech_name(PL_SCRAM_SHA1, 0), "SCRAM-SHA-1");
    CHECK_STR(pl_scram_mech_name(PL_SCRAM_SHA1, 1), "SCRAM-SHA-1-PLUS");
    CHECK_STR(pl_scram_mech_name(PL_SCRAM_SHA256, 0), "SCRAM-SHA-256");
    CHECK_STR(pl_scram_mech_name(PL_SCRAM_SHA256, 1), "SCRAM-SHA-256-PLUS");
}

PL_TEST(derive_known_keys)
{
    /* The keys behind the RFC 5802 exchange ("pencil", QSXCR+Q6sek8bf92). */
    unsigned char *salt = NULL;
    size_t salt_len = 0;
    unsigned char stored[PL_SCRAM_MAX_HASH], server[PL_SCRAM_MAX_HASH];
    CHECK_EQ(pl_base64_decode(V1_SALT, strlen(V1_SALT), &salt, &salt_len), 0);
    pl_scram_derive(PL_SCRAM_SHA1, "pencil", salt, salt_len, 4096, stored, server);
    char *st = pl_base64_encode(stored, 20), *sv = pl_base64_encode(server, 20);
    CHECK_STR(st, "6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
    CHECK_STR(sv, "D+CSWLOshSulAsxiupA+qs2/fTE=");
    pl_free(st);
    pl_free(sv);
    pl_free(salt);
}

PL_TEST(make_creds_with_salt)
{
    for (int h = PL_SCRAM_SHA1; h <= PL_SCRAM_SHA256; h++) {
        const char *salt_in = h == PL_SCRAM_SHA1 ? V1_SALT : V256_SALT;
        char *salt = (char *)salt_in, *stored = NULL, *server = NULL;
        CHECK_EQ(pl_scram_make_creds(h, "pencil", 4096, &salt, &stored, &server), 0);
        CHECK(salt == salt_in);
        /* The same keys as pl_scram_derive, in base64. */
        unsigned char *raw = NULL;
        size_t raw_len = 0;
        unsigned char st[PL_SCRAM_MAX_HASH], sv[PL_SCRAM_MAX_HASH];
        CHECK_EQ(pl_base64_decode(salt_in, strlen(salt_in), &raw, &raw_len), 0);
        pl_scram_derive(h, "pencil", raw, raw_len, 4096, st, sv);
        char *st64 = pl_base64_encode(st, pl_scram_hash_len(h));
        char *sv64 = pl_base64_encode(sv, pl_scram_hash_len(h));
        CHECK_STR(stored, st64);
        CHECK_STR(server, sv64);
        if (h == PL_SCRAM_SHA1)
            CHECK_STR(stored, "6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
        CHECK_EQ(pl_scram_check_password(h, "pencil", salt_in, 4096, stored), 1);
        CHECK_EQ(pl_scram_check_password(h, "pencil ", salt_in, 4096, stored), 0);
        CHECK_EQ(pl_scram_check_password(h, "Pencil", salt_in, 4096, stored), 0);
        CHECK_EQ(pl_scram_check_password(h, "pencil", salt_in, 4095, stored), 0);
        pl_free(st64);
        pl_free(sv64);
        pl_free(raw);
        pl_free(stored);
        pl_free(server);
    }
}

PL_TEST(make_creds_random_salt)
{
    char *salt1 = NULL, *stored1 = NULL, *server1 = NULL;
    char *salt2 = NULL, *stored2 = NULL, *server2 = NULL;
    CHECK_EQ(pl_scram_make_creds(PL_SCRAM_SHA256, "secret", 1000, &salt1, &stored1,
                                 &server1), 0);
    CHECK_EQ(pl_scram_make_creds(PL_SCRAM_SHA256, "secret", 1000, &salt2, &stored2,
                                 &server2), 0);
    CHECK(salt1 && stored1 && server1);
    CHECK(strcmp(salt1, salt2) != 0);
    CHECK(strcmp(stored1, stored2) != 0);
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    CHECK_EQ(pl_base64_decode(salt1, strlen(salt1), &raw, &raw_len), 0);
    CHECK_EQ(raw_len, 16);
    pl_free(raw);
    CHECK_EQ(pl_base64_decode(stored1, strlen(stored1), &raw, &raw_len), 0);
    CHECK_EQ(raw_len, 32);
    pl_free(raw);
    CHECK_EQ(strlen(server1), 44);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA256, "secret", salt1, 1000, stored1), 1);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA256, "secret", salt2, 1000, stored2), 1);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA256, "secret", salt1, 1000, stored2), 0);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA256, "Secret", salt1, 1000, stored1), 0);
    /* A SHA-256 key is not a SHA-1 key. */
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA1, "secret", salt1, 1000, stored1), -1);
    pl_free(salt1);
    pl_free(stored1);
    pl_free(server1);
    pl_free(salt2);
    pl_free(stored2);
    pl_free(server2);
}

PL_TEST(creds_malformed)
{
    char *salt = (char *)"not base64!", *stored = (char *)1, *server = (char *)1;
    CHECK_EQ(pl_scram_make_creds(PL_SCRAM_SHA1, "pw", 4096, &salt, &stored, &server), -1);
    CHECK_NULL(stored);
    CHECK_NULL(server);
    salt = (char *)"";
    CHECK_EQ(pl_scram_make_creds(PL_SCRAM_SHA1, "pw", 4096, &salt, &stored, &server), -1);
    salt = (char *)V1_SALT;
    CHECK_EQ(pl_scram_make_creds(PL_SCRAM_SHA1, "pw", 0, &salt, &stored, &server), -1);

    const char *good = "6dlGYMOdZcOPutkcNY8U2g7vK9Y=";
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA1, "pencil", V1_SALT, 4096, good), 1);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf9", 4096,
                                     good), -1);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA1, "pencil", "", 4096, good), -1);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA1, "pencil", V1_SALT, 4096,
                                     "6dlGYMOdZcOPutkcNY8U2g7vK9Y"), -1);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA1, "pencil", V1_SALT, 4096, "biws"), -1);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA1, "pencil", V1_SALT, 0, good), -1);
    CHECK_EQ(pl_scram_check_password(PL_SCRAM_SHA1, "pencil", NULL, 4096, good), -1);
}

/* ==== full exchanges ==== */

static void roundtrip(pl_scram_hash h, const char *user, const char *want_user)
{
    pl_scram_client *c = pl_scram_client_new(h, user, "pencil", NULL);
    CHECK(c != NULL);
    char *first = pl_scram_client_first(c);
    const char *u = NULL, *authzid = NULL, *err = NULL;
    unsigned char salt[16], stored[PL_SCRAM_MAX_HASH], server[PL_SCRAM_MAX_HASH];
    pl_random(salt, sizeof salt);
    pl_scram_derive(h, "pencil", salt, sizeof salt, 4096, stored, server);
    pl_scram_server *s = pl_scram_server_new(h, 0, 0, NULL, NULL, NULL, 0);
    CHECK_EQ(pl_scram_server_client_first(s, first, strlen(first), &u, &authzid, &err), 0);
    CHECK_STR(u, want_user);
    char *sf = NULL;
    CHECK_EQ(pl_scram_server_first(s, salt, sizeof salt, 4096, stored, server, NULL, &sf), 0);
    char *fin = pl_scram_client_final(c, sf);
    CHECK(fin != NULL);
    char *sfin = NULL;
    expect_final(s, fin, NULL, &sfin);
    CHECK_EQ(pl_scram_client_verify(c, sfin), 1);
    pl_free(first);
    pl_free(sf);
    pl_free(fin);
    pl_free(sfin);
    pl_scram_server_free(s);
    pl_scram_client_free(c);
}

PL_TEST(roundtrip_both_hashes)
{
    roundtrip(PL_SCRAM_SHA1, "user", "user");
    roundtrip(PL_SCRAM_SHA256, "user", "user");
    /* ',' and '=' travel as =2C and =3D; SASLprep maps U+2168 to "IX". */
    roundtrip(PL_SCRAM_SHA256, "a,b=c", "a,b=c");
    roundtrip(PL_SCRAM_SHA1, "\xE2\x85\xA8", "IX");
}

PL_TEST(random_server_nonce)
{
    char *sf1 = NULL, *sf2 = NULL;
    pl_scram_server *s1 = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                          V1_CLIENT_FIRST, V1_SALT, NULL, &sf1);
    pl_scram_server *s2 = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                          V1_CLIENT_FIRST, V1_SALT, NULL, &sf2);
    char n1[128], n2[128];
    nonce_of(sf1, n1, sizeof n1);
    nonce_of(sf2, n2, sizeof n2);
    /* Client nonce followed by 24 random bytes in base64 (32 characters). */
    CHECK_EQ(strlen(n1), strlen("fyko+d2lbbFgONRv9qkxdawL") + 32);
    CHECK(strncmp(n1, "fyko+d2lbbFgONRv9qkxdawL", 24) == 0);
    CHECK(strcmp(n1, n2) != 0);
    CHECK(strchr(n1, ',') == NULL);
    CHECK_STR(sf1 + 2 + strlen(n1), ",s=QSXCR+Q6sek8bf92,i=4096");
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    CHECK_EQ(pl_base64_decode(n1 + 24, 32, &raw, &raw_len), 0);
    CHECK_EQ(raw_len, 24);
    pl_free(raw);
    pl_free(sf1);
    pl_free(sf2);
    pl_scram_server_free(s1);
    pl_scram_server_free(s2);
}

PL_TEST(wrong_password)
{
    char *sf = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA256, 0, 0, NULL, NULL, NULL, 0,
                                         V256_CLIENT_FIRST, V256_SALT, V256_SNONCE, &sf);
    pl_scram_client *c = pl_scram_client_new(PL_SCRAM_SHA256, "user", "pencil2",
                                             "rOprNGfwEbeRWgbNEkqO");
    char *first = pl_scram_client_first(c);
    char *fin = pl_scram_client_final(c, sf);
    CHECK(fin != NULL);
    expect_final(s, fin, "invalid-proof", NULL);
    pl_free(first);
    pl_free(fin);
    pl_free(sf);
    pl_scram_client_free(c);
    pl_scram_server_free(s);
}

PL_TEST(tampered_proof)
{
    char *sf = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                         V1_CLIENT_FIRST, V1_SALT, V1_SNONCE, &sf);
    /* Last proof character changed: valid base64, wrong proof. */
    expect_final(s, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                    "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tg=", "invalid-proof", NULL);
    /* One attempt per exchange: the correct message is refused now. */
    expect_final(s, V1_CLIENT_FINAL, "other-error", NULL);
    pl_free(sf);
    pl_scram_server_free(s);
}

PL_TEST(tampered_nonce)
{
    const char *prefixes[] = {
        /* server part changed */
        "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7k",
        /* truncated, and extended */
        "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7",
        "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7jX",
        /* client part only */
        "fyko+d2lbbFgONRv9qkxdawL",
    };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char *sf = NULL;
        pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                             V1_CLIENT_FIRST, V1_SALT, V1_SNONCE, &sf);
        /* A correct proof over the tampered message: the nonce check
         * must catch it. */
        char *fin = hand_final(PL_SCRAM_SHA1, "n=user,r=fyko+d2lbbFgONRv9qkxdawL", sf,
                               "n,,", NULL, 0, prefixes[i], NULL);
        expect_final(s, fin, "other-error", NULL);
        pl_free(fin);
        pl_free(sf);
        pl_scram_server_free(s);
    }
}

/* ==== channel binding ==== */

static const char *const CB_TYPES[] = { "tls-server-end-point", "tls-exporter" };
static const unsigned char CB_EP[] = { 0x01, 0x02, 0x03, 0x04 };
static const unsigned char CB_EXP[32] = {
    0x00, 0xff, 0x10, 0x2c, 0x3d, 0x2c, 0x00, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    0x09, 0x0a
};
static const unsigned char *const CB_DATA[] = { CB_EP, CB_EXP };
static const size_t CB_LEN[] = { sizeof CB_EP, sizeof CB_EXP };

PL_TEST(cb_p_with_non_plus)
{
    const char *m = "p=tls-exporter,,n=user,r=abc";
    CHECK_STR(first_error(PL_SCRAM_SHA256, 0, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m, strlen(m)),
              "channel-bindings-dont-match");
    CHECK_STR(first_error(PL_SCRAM_SHA256, 0, 0, NULL, NULL, NULL, 0, m, strlen(m)),
              "channel-bindings-dont-match");
}

PL_TEST(cb_plus_requires_p)
{
    const char *n = "n,,n=user,r=abc", *y = "y,,n=user,r=abc";
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, n, strlen(n)),
              "channel-bindings-dont-match");
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, y, strlen(y)),
              "channel-bindings-dont-match");
}

PL_TEST(cb_unsupported_type)
{
    const char *m = "p=tls-unique,,n=user,r=abc";
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m, strlen(m)),
              "unsupported-channel-binding-type");
    /* Names compare exactly: no prefix or case-insensitive match. */
    const char *m2 = "p=tls-export,,n=user,r=abc", *m3 = "p=TLS-EXPORTER,,n=user,r=abc";
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m2, strlen(m2)),
              "unsupported-channel-binding-type");
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m3, strlen(m3)),
              "unsupported-channel-binding-type");
    /* A PLUS server with no binding on this connection. */
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, NULL, NULL, NULL, 0,
                          "p=tls-exporter,,n=user,r=abc", 28),
              "unsupported-channel-binding-type");
}

PL_TEST(cb_bad_name)
{
    const char *m1 = "p=,,n=user,r=abc", *m2 = "p=tls_exporter,,n=user,r=abc";
    const char *m3 = "p=tls-exporter", *m4 = "p=tls exporter,,n=user,r=abc";
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m1, strlen(m1)),
              "malformed-request");
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m2, strlen(m2)),
              "malformed-request");
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m3, strlen(m3)),
              "malformed-request");
    CHECK_STR(first_error(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m4, strlen(m4)),
              "malformed-request");
}

PL_TEST(cb_y_downgrade)
{
    const char *m = "y,,n=user,r=abc";
    CHECK_STR(first_error(PL_SCRAM_SHA256, 0, 1, CB_TYPES, CB_DATA, CB_LEN, 2, m, strlen(m)),
              "server-does-support-channel-binding");
}

/* "y" is fine when the server offered no -PLUS mechanism, and c= must
 * then carry "y,,". */
PL_TEST(cb_y_without_server_plus)
{
    char *sf = NULL, *expect = NULL, *got = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                         "y,,n=user,r=abc", V1_SALT, "xyz", &sf);
    CHECK_STR(sf, "r=abcxyz,s=" V1_SALT ",i=4096");
    char *fin = hand_final(PL_SCRAM_SHA1, "n=user,r=abc", sf, "y,,", NULL, 0, "abcxyz",
                           &expect);
    CHECK(strncmp(fin, "c=eSws,", 7) == 0);
    expect_final(s, fin, NULL, &got);
    CHECK_STR(got, expect);
    pl_free(fin);
    pl_free(expect);
    pl_free(got);
    pl_free(sf);
    pl_scram_server_free(s);

    /* "biws" (n,,) instead of "eSws" (y,,) does not match. */
    s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0, "y,,n=user,r=abc",
                        V1_SALT, "xyz", &sf);
    fin = hand_final(PL_SCRAM_SHA1, "n=user,r=abc", sf, "n,,", NULL, 0, "abcxyz", NULL);
    expect_final(s, fin, "channel-bindings-dont-match", NULL);
    pl_free(fin);
    pl_free(sf);
    pl_scram_server_free(s);
}

PL_TEST(cb_plus_success)
{
    const char *first = "p=tls-exporter,,n=user,r=clientnonce";
    char *sf = NULL, *expect = NULL, *got = NULL;
    const char *user = NULL, *authzid = NULL, *err = NULL;
    unsigned char *salt = NULL, stored[32], server[32];
    size_t salt_len = 0;
    CHECK_EQ(pl_base64_decode(V256_SALT, strlen(V256_SALT), &salt, &salt_len), 0);
    pl_scram_derive(PL_SCRAM_SHA256, "pencil", salt, salt_len, 4096, stored, server);
    pl_scram_server *s = pl_scram_server_new(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA,
                                             CB_LEN, 2);
    CHECK_STR(pl_scram_mech_name(PL_SCRAM_SHA256, 1), "SCRAM-SHA-256-PLUS");
    CHECK_EQ(pl_scram_server_client_first(s, first, strlen(first), &user, &authzid, &err), 0);
    CHECK_STR(user, "user");
    CHECK_NULL(authzid);
    CHECK_EQ(pl_scram_server_first(s, salt, salt_len, 4096, stored, server, "servernonce",
                                   &sf), 0);
    CHECK_STR(sf, "r=clientnonceservernonce,s=" V256_SALT ",i=4096");
    char *fin = hand_final(PL_SCRAM_SHA256, "n=user,r=clientnonce", sf, "p=tls-exporter,,",
                           CB_EXP, sizeof CB_EXP, "clientnonceservernonce", &expect);
    /* c= is the base64 of "p=tls-exporter,," followed by the 32 bytes. */
    CHECK(strncmp(fin, "c=cD10bHMtZXhwb3J0ZXIsLAD/ECw9LACAESIzRFVmd4iZqrvM3e4BAgMEBQYHCAkK,",
                  strlen("c=cD10bHMtZXhwb3J0ZXIsLAD/ECw9LACAESIzRFVmd4iZqrvM3e4BAgMEBQYHCAkK,"))
          == 0);
    expect_final(s, fin, NULL, &got);
    CHECK_STR(got, expect);
    CHECK(strncmp(got, "v=", 2) == 0);
    CHECK_EQ(strlen(got), 2 + 44);
    pl_free(fin);
    pl_free(expect);
    pl_free(got);
    pl_free(sf);
    pl_free(salt);
    pl_scram_server_free(s);
}

/* A -PLUS exchange whose c= carries the wrong binding data. */
static void plus_with_cb(const char *gs2, const unsigned char *data, size_t len,
                         const char *want_err)
{
    char first[128];
    char *sf = NULL;
    snprintf(first, sizeof first, "%sn=user,r=cn", "p=tls-exporter,,");
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA256, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2,
                                         first, V256_SALT, "sn", &sf);
    char *fin = hand_final(PL_SCRAM_SHA256, "n=user,r=cn", sf, gs2, data, len, "cnsn", NULL);
    expect_final(s, fin, want_err, NULL);
    pl_free(fin);
    pl_free(sf);
    pl_scram_server_free(s);
}

PL_TEST(cb_plus_wrong_data)
{
    unsigned char flipped[sizeof CB_EXP];
    memcpy(flipped, CB_EXP, sizeof flipped);
    flipped[31] ^= 1;
    plus_with_cb("p=tls-exporter,,", CB_EXP, sizeof CB_EXP, NULL);
    /* The other binding type's data. */
    plus_with_cb("p=tls-exporter,,", CB_EP, sizeof CB_EP, "channel-bindings-dont-match");
    /* One bit off, truncated, missing, extra byte. */
    plus_with_cb("p=tls-exporter,,", flipped, sizeof flipped, "channel-bindings-dont-match");
    plus_with_cb("p=tls-exporter,,", CB_EXP, sizeof CB_EXP - 1, "channel-bindings-dont-match");
    plus_with_cb("p=tls-exporter,,", NULL, 0, "channel-bindings-dont-match");
    /* Right data behind a different gs2 header. */
    plus_with_cb("n,,", CB_EXP, sizeof CB_EXP, "channel-bindings-dont-match");
    plus_with_cb("p=tls-server-end-point,,", CB_EXP, sizeof CB_EXP,
                 "channel-bindings-dont-match");
}

PL_TEST(cb_plus_other_type)
{
    /* The client may pick any offered type; its data must follow. */
    char *sf = NULL, *expect = NULL, *got = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 1, 1, CB_TYPES, CB_DATA, CB_LEN, 2,
                                         "p=tls-server-end-point,,n=user,r=cn", V1_SALT,
                                         "sn", &sf);
    char *fin = hand_final(PL_SCRAM_SHA1, "n=user,r=cn", sf, "p=tls-server-end-point,,",
                           CB_EP, sizeof CB_EP, "cnsn", &expect);
    expect_final(s, fin, NULL, &got);
    CHECK_STR(got, expect);
    pl_free(fin);
    pl_free(expect);
    pl_free(got);
    pl_free(sf);
    pl_scram_server_free(s);
}

PL_TEST(bad_c_attribute)
{
    const char *bad[] = {
        /* c= of "y,," for an "n,," client */
        "c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        /* c= of "n,a=user,": the gs2 header must match as sent */
        "c=bixhPXVzZXIs,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    };
    for (size_t i = 0; i < 2; i++) {
        char *sf = NULL;
        pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                             V1_CLIENT_FIRST, V1_SALT, V1_SNONCE, &sf);
        expect_final(s, bad[i], "channel-bindings-dont-match", NULL);
        pl_free(sf);
        pl_scram_server_free(s);
    }
    const char *enc[] = {
        "c=biw,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "c=b!ws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "c=,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    };
    for (size_t i = 0; i < 3; i++) {
        char *sf = NULL;
        pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                             V1_CLIENT_FIRST, V1_SALT, V1_SNONCE, &sf);
        const char *want = i == 2 ? "channel-bindings-dont-match" : "invalid-encoding";
        expect_final(s, enc[i], want, NULL);
        pl_free(sf);
        pl_scram_server_free(s);
    }
}

/* ==== authzid and user names ==== */

PL_TEST(authzid)
{
    char user[256], authzid[256];
    first_ok("n,a=juliet@example.com,n=juliet,r=abc", user, authzid);
    CHECK_STR(user, "juliet");
    CHECK_STR(authzid, "juliet@example.com");
    first_ok("n,a=a=2Cb=3Dc,n=u,r=abc", user, authzid);
    CHECK_STR(authzid, "a,b=c");
    CHECK_STR(plain_first_error("n,a=bad=41,n=u,r=abc"), "invalid-authzid");
    CHECK_STR(plain_first_error("n,a=bad=2,n=u,r=abc"), "invalid-authzid");
    CHECK_STR(plain_first_error("n,a=bad=,n=u,r=abc"), "invalid-authzid");
    CHECK_STR(plain_first_error("n,a=,n=u,r=abc"), "invalid-authzid");
    CHECK_STR(plain_first_error("n,a=x"), "malformed-request");
    CHECK_STR(plain_first_error("n,b=x,n=u,r=abc"), "malformed-request");
}

PL_TEST(authzid_in_channel_binding)
{
    /* The gs2 header with the authzid is what c= must carry. */
    char *sf = NULL, *expect = NULL, *got = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA256, 0, 0, NULL, NULL, NULL, 0,
                                         "n,a=admin=2Cx,n=user,r=cn", V256_SALT, "sn", &sf);
    char *fin = hand_final(PL_SCRAM_SHA256, "n=user,r=cn", sf, "n,a=admin=2Cx,", NULL, 0,
                           "cnsn", &expect);
    expect_final(s, fin, NULL, &got);
    CHECK_STR(got, expect);
    pl_free(fin);
    pl_free(expect);
    pl_free(got);
    pl_free(sf);
    pl_scram_server_free(s);
}

PL_TEST(username_encoding)
{
    char user[256], authzid[256];
    first_ok("n,,n=us=2Cer=3D,r=abc", user, authzid);
    CHECK_STR(user, "us,er=");
    CHECK_STR(authzid, "(none)");
    first_ok("n,,n==3D=3D,r=abc", user, authzid);
    CHECK_STR(user, "==");
    /* SASLprep: SOFT HYPHEN removed, ROMAN NUMERAL NINE to "IX",
     * NO-BREAK SPACE to SPACE, case kept. */
    first_ok("n,,n=I\xC2\xADX,r=abc", user, authzid);
    CHECK_STR(user, "IX");
    first_ok("n,,n=\xE2\x85\xA8,r=abc", user, authzid);
    CHECK_STR(user, "IX");
    first_ok("n,,n=Jo\xC2\xA0Smith,r=abc", user, authzid);
    CHECK_STR(user, "Jo Smith");

    CHECK_STR(plain_first_error("n,,n=us=41er,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=us=2c,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=us=3,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=us=3Xer,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=us=X2er,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=us=2Der,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=a=,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=a\x07,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=\xD8\xA7" "1,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=\xC2\xAD,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=a\xff,r=abc"), "invalid-username-encoding");
    CHECK_STR(plain_first_error("n,,n=\xC8\xA1,r=abc"), "invalid-username-encoding");
}

PL_TEST(mext_refused)
{
    CHECK_STR(plain_first_error("n,,m=foo,n=user,r=abc"), "extensions-not-supported");
    CHECK_STR(plain_first_error("n,,m=,n=user,r=abc"), "extensions-not-supported");
}

PL_TEST(client_first_malformed)
{
    const char *bad[] = {
        "", "n", "n,", "n,,", "x,,n=user,r=abc", "N,,n=user,r=abc", ",,n=user,r=abc",
        "n,,n=user", "n,,n=user,", "n,,n=,r=abc", "n,,r=abc", "n,,n=user,r=",
        "n,,n=user,r=ab c", "n,,n=user,r=abc,", "n,,n=user,r=abc,1=x", "n,,n=user,r=abc,x=",
        "n,,n=user,r=abc,x", "n,,n=user,x=1,r=abc", "n,,user,r=abc", "n,,n=user,s=abc",
        "n,x,n=user,r=abc", "n,,n=user,r=ab\x7f", "n,,n=user,r=ab\xc3\xa9",
        "n ,,n=user,r=abc", "nn,,n=user,r=abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_STR(plain_first_error(bad[i]), "malformed-request");
    /* A NUL inside the message. */
    CHECK_STR(first_error(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                          "n,,n=us\0er,r=abc", 16), "malformed-request");
    /* len is honoured: the message ends before ",r=". */
    CHECK_STR(first_error(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                          "n,,n=user,r=abc", 9), "malformed-request");
}

PL_TEST(client_first_extensions_ignored)
{
    char user[256], authzid[256];
    first_ok("n,,n=user,r=abc,x=1,Y=two,z=a=b", user, authzid);
    CHECK_STR(user, "user");
}

PL_TEST(client_first_length_not_nul)
{
    /* The message is len bytes long, not NUL terminated. */
    char buf[64];
    memcpy(buf, V1_CLIENT_FIRST "XXXX", sizeof V1_CLIENT_FIRST + 4);
    const char *user = NULL, *authzid = NULL, *err = NULL;
    pl_scram_server *s = pl_scram_server_new(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0);
    CHECK_EQ(pl_scram_server_client_first(s, buf, strlen(V1_CLIENT_FIRST), &user, &authzid,
                                          &err), 0);
    CHECK_STR(user, "user");
    unsigned char *salt = NULL, st[20], sv[20];
    size_t salt_len = 0;
    CHECK_EQ(pl_base64_decode(V1_SALT, strlen(V1_SALT), &salt, &salt_len), 0);
    pl_scram_derive(PL_SCRAM_SHA1, "pencil", salt, salt_len, 4096, st, sv);
    char *sf = NULL;
    CHECK_EQ(pl_scram_server_first(s, salt, salt_len, 4096, st, sv, V1_SNONCE, &sf), 0);
    CHECK_STR(sf, V1_SERVER_FIRST);
    pl_free(sf);
    pl_free(salt);
    pl_scram_server_free(s);
}

/* ==== client-final grammar and state ==== */

PL_TEST(client_final_malformed)
{
    struct { const char *msg; const char *err; } cases[] = {
        { "", "invalid-encoding" },
        { "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
          "invalid-encoding" },
        { "c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "invalid-encoding" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j", "invalid-encoding" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,", "invalid-encoding" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,"
          "x=1", "invalid-encoding" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts",
          "invalid-encoding" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJ*yF0X+HI4Ts=",
          "invalid-encoding" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=", "invalid-proof" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI",
          "invalid-proof" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,1=x,"
          "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "invalid-encoding" },
        { "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
          "invalid-encoding" },
        { "c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
          "invalid-encoding" },
        { " c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
          "invalid-encoding" },
        { "c=biws,r=,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "other-error" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *sf = NULL;
        pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                             V1_CLIENT_FIRST, V1_SALT, V1_SNONCE, &sf);
        expect_final(s, cases[i].msg, cases[i].err, NULL);
        pl_free(sf);
        pl_scram_server_free(s);
    }
}

PL_TEST(client_final_nul_and_len)
{
    char *sf = NULL, *out = (char *)1;
    const char *err = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                         V1_CLIENT_FIRST, V1_SALT, V1_SNONCE, &sf);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", V1_CLIENT_FINAL);
    msg[3] = '\0';
    CHECK_EQ(pl_scram_server_client_final(s, msg, strlen(V1_CLIENT_FINAL), &out, &err), -1);
    CHECK_NULL(out);
    CHECK_STR(err, "invalid-encoding");
    pl_free(sf);
    pl_scram_server_free(s);

    /* Extra bytes past len are not part of the message. */
    s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0, V1_CLIENT_FIRST, V1_SALT,
                        V1_SNONCE, &sf);
    snprintf(msg, sizeof msg, "%s,x=junk", V1_CLIENT_FINAL);
    CHECK_EQ(pl_scram_server_client_final(s, msg, strlen(V1_CLIENT_FINAL), &out, &err), 0);
    CHECK_STR(out, V1_SERVER_FINAL);
    pl_free(out);
    pl_free(sf);
    pl_scram_server_free(s);
}

PL_TEST(client_final_extensions)
{
    /* An extension between nonce and proof is allowed and covered by the
     * proof. */
    char *sf = NULL, *got = NULL, *expect = NULL;
    pl_scram_server *s = server_at_final(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0,
                                         "n,,n=user,r=cn", V1_SALT, "sn", &sf);
    char *fin = hand_final(PL_SCRAM_SHA1, "n=user,r=cn", sf, "n,,", NULL, 0, "cnsn,x=ext",
                           &expect);
    expect_final(s, fin, NULL, &got);
    CHECK_STR(got, expect);
    pl_free(fin);
    pl_free(got);
    pl_free(expect);
    pl_free(sf);
    pl_scram_server_free(s);
}

PL_TEST(server_state_order)
{
    unsigned char salt[4] = { 1, 2, 3, 4 }, key[32] = { 0 };
    char *out = (char *)1;
    const char *err = NULL, *user = NULL, *authzid = NULL;
    pl_scram_server *s = pl_scram_server_new(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0);
    /* server-first and client-final before client-first */
    CHECK_EQ(pl_scram_server_first(s, salt, 4, 4096, key, key, NULL, &out), -1);
    CHECK_NULL(out);
    CHECK_EQ(pl_scram_server_client_final(s, V1_CLIENT_FINAL, strlen(V1_CLIENT_FINAL),
                                          &out, &err), -1);
    CHECK_STR(err, "other-error");
    pl_scram_server_free(s);

    s = pl_scram_server_new(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0);
    CHECK_EQ(pl_scram_server_client_first(s, V1_CLIENT_FIRST, strlen(V1_CLIENT_FIRST), &user,
                                          &authzid, &err), 0);
    /* client-first twice */
    CHECK_EQ(pl_scram_server_client_first(s, V1_CLIENT_FIRST, strlen(V1_CLIENT_FIRST), &user,
                                          &authzid, &err), -1);
    CHECK_STR(err, "malformed-request");
    pl_scram_server_free(s);

    s = pl_scram_server_new(PL_SCRAM_SHA1, 0, 0, NULL, NULL, NULL, 0);
    CHECK_EQ(pl_scram_server_client_first(s, V1_CLIENT_FIRST, strlen(V1_CLIENT_FIRST), &user,
                                          &authzid, &err), 0);
    /* unusable server-first arguments, then a bad given nonce */
    CHECK_EQ(pl_scram_server_first(s, salt, 0, 4096, key, key, NULL, &out), -1);
    CHECK_EQ(pl_scram_server_first(s, salt, 4, 0, key, key, NULL, &out), -1);
    CHECK_EQ(pl_scram_server_first(s, salt, 4, 4096, key, key, "a,b", &out), -1);
    CHECK_EQ(pl_scram_server_first(s, salt, 4, 4096, key, key, "", &out), -1);
    CHECK_EQ(pl_scram_server_first(s, salt, 4, 4096, key, key, "ok", &out), 0);
    CHECK_STR(out, "r=fyko+d2lbbFgONRv9qkxdawLok,s=AQIDBA==,i=4096");
    pl_free(out);
    /* server-first twice */
    CHECK_EQ(pl_scram_server_first(s, salt, 4, 4096, key, key, "ok", &out), -1);
    pl_scram_server_free(s);
    pl_scram_server_free(NULL);
}

/* ==== client side ==== */

PL_TEST(client_bad_server_first)
{
    const char *bad[] = {
        "",
        "m=x,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR!Q6sek8bf92,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=0",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=-1",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=40x",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=99999999999",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,",
        /* nonce not extending the client's */
        "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",
        "r=Xyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",
        "r=fyko,s=QSXCR+Q6sek8bf92,i=4096",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pl_scram_client *c = pl_scram_client_new(PL_SCRAM_SHA1, "user", "pencil",
                                                 "fyko+d2lbbFgONRv9qkxdawL");
        char *first = pl_scram_client_first(c);
        char *fin = pl_scram_client_final(c, bad[i]);
        if (fin)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK_NULL(fin);
        CHECK_EQ(pl_scram_client_verify(c, V1_SERVER_FINAL), 0);
        pl_free(first);
        pl_scram_client_free(c);
    }
    /* An extension after the iteration count is ignored. */
    pl_scram_client *c = pl_scram_client_new(PL_SCRAM_SHA1, "user", "pencil",
                                             "fyko+d2lbbFgONRv9qkxdawL");
    char *first = pl_scram_client_first(c);
    char *fin = pl_scram_client_final(c, V1_SERVER_FIRST ",x=1");
    CHECK(fin != NULL);
    pl_free(fin);
    pl_free(first);
    pl_scram_client_free(c);
}

PL_TEST(client_needs_first)
{
    pl_scram_client *c = pl_scram_client_new(PL_SCRAM_SHA1, "user", "pencil", "abc");
    CHECK_NULL(pl_scram_client_final(c, "r=abcdef,s=QSXCR+Q6sek8bf92,i=1"));
    pl_scram_client_free(c);
    pl_scram_client_free(NULL);
}

PL_TEST(client_new_rejects)
{
    CHECK_NULL(pl_scram_client_new(PL_SCRAM_SHA1, "", "pencil", NULL));
    CHECK_NULL(pl_scram_client_new(PL_SCRAM_SHA1, "a\x07", "pencil", NULL));
    CHECK_NULL(pl_scram_client_new(PL_SCRAM_SHA1, "user", "pen\x07", NULL));
    CHECK_NULL(pl_scram_client_new(PL_SCRAM_SHA1, "user", "pencil", "a,b"));
    CHECK_NULL(pl_scram_client_new(PL_SCRAM_SHA1, "user", "pencil", ""));
    /* A random client nonce: 32 base64 characters. */
    pl_scram_client *c = pl_scram_client_new(PL_SCRAM_SHA1, "a=b,c", "pencil", NULL);
    char *first = pl_scram_client_first(c);
    CHECK(strncmp(first, "n,,n=a=3Db=2Cc,r=", 17) == 0);
    CHECK_EQ(strlen(first), 17 + 32);
    pl_free(first);
    pl_scram_client_free(c);
}

/* ==== base64 and random ==== */

PL_TEST(base64_rfc4648)
{
    const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (size_t i = 0; i < 7; i++) {
        char *e = pl_base64_encode((const unsigned char *)plain[i], strlen(plain[i]));
        CHECK_STR(e, enc[i]);
        unsigned char *d = NULL;
        size_t dl = 99;
        CHECK_EQ(pl_base64_decode(enc[i], strlen(enc[i]), &d, &dl), 0);
        CHECK_EQ(dl, strlen(plain[i]));
        CHECK(memcmp(d, plain[i], dl) == 0);
        pl_free(d);
        pl_free(e);
    }
}

PL_TEST(base64_roundtrip_binary)
{
    unsigned char data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= sizeof data; len += 7) {
        char *e = pl_base64_encode(data, len);
        CHECK_EQ(strlen(e), (len + 2) / 3 * 4);
        unsigned char *d = NULL;
        size_t dl = 0;
        CHECK_EQ(pl_base64_decode(e, strlen(e), &d, &dl), 0);
        CHECK_EQ(dl, len);
        CHECK(len == 0 || memcmp(d, data, len) == 0);
        pl_free(d);
        pl_free(e);
    }
    char *e = pl_base64_encode((const unsigned char *)"\xfb\xff\xbf", 3);
    CHECK_STR(e, "+/+/");
    pl_free(e);
}

PL_TEST(base64_bad_input)
{
    const char *bad[] = { "Zg=", "Zg", "Z", "Z===", "====", "Zh==", "Zm9=", "Zm9v\n",
                          "Zm 9v", "Zm9*", "=Zm9", "Zg==Zg==", "Zm=v", "Zm9vY===",
                          "Zm9-", "Zm9_", " Zm9v", "Zm9v    YmFy",
                          "Zm9v\r\n\r\nYmFy" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *d = (unsigned char *)1;
        size_t dl = 99;
        if (pl_base64_decode(bad[i], strlen(bad[i]), &d, &dl) != -1)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CHECK_EQ(pl_base64_decode(bad[i], strlen(bad[i]), &d, &dl), -1);
        CHECK_NULL(d);
        CHECK_EQ(dl, 0);
    }
    /* A length shorter than the string decodes only that much. */
    unsigned char *d = NULL;
    size_t dl = 0;
    CHECK_EQ(pl_base64_decode("Zm9vYmFy", 4, &d, &dl), 0);
    CHECK_EQ(dl, 3);
    CHECK(memcmp(d, "foo", 3) == 0);
    pl_free(d);
    CHECK_EQ(pl_base64_decode("Zm9vYmFy", 5, &d, &dl), -1);
}

PL_TEST(random_bytes)
{
    unsigned char a[32], b[32], zero[32] = { 0 };
    pl_random(a, sizeof a);
    pl_random(b, sizeof b);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK(memcmp(a, zero, sizeof a) != 0);
}
