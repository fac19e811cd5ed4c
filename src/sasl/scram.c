/* sasl/scram.c: SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) with
 * channel binding: credential derivation, the server side of the
 * exchange with the full message grammar of RFC 5802 section 7, and a
 * client side for tests and the benchmark. Hashes, HMAC, PBKDF2, base64
 * and constant-time comparison come from nettle, random bytes from
 * GnuTLS. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/pbkdf2.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>
#include <nettle/version.h>
#include <parley/base.h>
#include <parley/jid.h>
#include "sasl/scram.h"

/* COMPAT: nettle 3.10 dropped the length argument of digest functions. */
#if NETTLE_VERSION_MAJOR > 3 || (NETTLE_VERSION_MAJOR == 3 && NETTLE_VERSION_MINOR >= 10)
#define DIGEST(fn, ctx, len, out) fn(ctx, out)
#else
#define DIGEST(fn, ctx, len, out) fn(ctx, len, out)
#endif

#define SALT_LEN 16
#define NONCE_BYTES 24
/* The client refuses iteration counts above this from a server, so a
 * hostile server cannot make it spin. */
#define CLIENT_MAX_ITERATIONS 10000000u

/* ==== hashes ==== */

/* 20 for SHA-1, 32 for SHA-256. */
size_t pl_scram_hash_len(pl_scram_hash h)
{
    return h == PL_SCRAM_SHA256 ? SHA256_DIGEST_SIZE : SHA1_DIGEST_SIZE;
}

/* The mechanism name as offered in <mechanisms/>; a static string. */
const char *pl_scram_mech_name(pl_scram_hash h, int plus)
{
    if (h == PL_SCRAM_SHA256)
        return plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
    return plus ? "SCRAM-SHA-1-PLUS" : "SCRAM-SHA-1";
}

static void hash_once(pl_scram_hash h, const unsigned char *data, size_t len,
                      unsigned char *out)
{
    if (h == PL_SCRAM_SHA256) {
        struct sha256_ctx ctx;
        sha256_init(&ctx);
        sha256_update(&ctx, len, data);
        DIGEST(sha256_digest, &ctx, SHA256_DIGEST_SIZE, out);
    } else {
        struct sha1_ctx ctx;
        sha1_init(&ctx);
        sha1_update(&ctx, len, data);
        DIGEST(sha1_digest, &ctx, SHA1_DIGEST_SIZE, out);
    }
}

static void hmac_once(pl_scram_hash h, const unsigned char *key, size_t key_len,
                      const void *msg, size_t len, unsigned char *out)
{
    if (h == PL_SCRAM_SHA256) {
        struct hmac_sha256_ctx ctx;
        hmac_sha256_set_key(&ctx, key_len, key);
        hmac_sha256_update(&ctx, len, msg);
        DIGEST(hmac_sha256_digest, &ctx, SHA256_DIGEST_SIZE, out);
    } else {
        struct hmac_sha1_ctx ctx;
        hmac_sha1_set_key(&ctx, key_len, key);
        hmac_sha1_update(&ctx, len, msg);
        DIGEST(hmac_sha1_digest, &ctx, SHA1_DIGEST_SIZE, out);
    }
}

/* SaltedPassword := Hi(password, salt, i), with the client key and the
 * server key derived from it (RFC 5802 section 3). */
static void derive_keys(pl_scram_hash h, const char *password, const unsigned char *salt,
                        size_t salt_len, unsigned iterations, unsigned char *client_key,
                        unsigned char *server_key)
{
    unsigned char salted[PL_SCRAM_MAX_HASH];
    size_t hl = pl_scram_hash_len(h);
    const uint8_t *pw = (const uint8_t *)password;
    if (h == PL_SCRAM_SHA256)
        pbkdf2_hmac_sha256(strlen(password), pw, iterations, salt_len, salt, hl, salted);
    else
        pbkdf2_hmac_sha1(strlen(password), pw, iterations, salt_len, salt, hl, salted);
    hmac_once(h, salted, hl, "Client Key", 10, client_key);
    hmac_once(h, salted, hl, "Server Key", 10, server_key);
    gnutls_memset(salted, 0, sizeof salted);
}

/* Computes StoredKey := H(ClientKey) and ServerKey for a password that is
 * already SASLprepped. Both outputs are pl_scram_hash_len(h) bytes. */
void pl_scram_derive(pl_scram_hash h, const char *password, const unsigned char *salt,
                     size_t salt_len, unsigned iterations, unsigned char *stored_key,
                     unsigned char *server_key)
{
    unsigned char client_key[PL_SCRAM_MAX_HASH];
    derive_keys(h, password, salt, salt_len, iterations, client_key, server_key);
    hash_once(h, client_key, pl_scram_hash_len(h), stored_key);
    gnutls_memset(client_key, 0, sizeof client_key);
}

/* ==== base64 and random ==== */

/* Malloced NUL-terminated base64 (with padding) of len bytes of data. */
char *pl_base64_encode(const unsigned char *data, size_t len)
{
    size_t n = BASE64_ENCODE_RAW_LENGTH(len);
    char *out = pl_malloc(n + 1);
    base64_encode_raw(out, len, data);
    out[n] = '\0';
    return out;
}

static int b64_alphabet(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Only canonical padded base64 is accepted: nettle's decoder would skip
 * white space, which SCRAM attributes never contain. */
static int b64_well_formed(const char *s, size_t n)
{
    size_t pad = 0;
    if (n % 4 != 0)
        return 0;
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64_alphabet((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Decodes b64len bytes of strict base64 into a malloced buffer (*out,
 * *outlen bytes). Returns 0, or -1 on bad input with *out NULL. */
int pl_base64_decode(const char *b64, size_t b64len, unsigned char **out, size_t *outlen)
{
    struct base64_decode_ctx ctx;
    *out = NULL;
    *outlen = 0;
    if (!b64 || !b64_well_formed(b64, b64len))
        return -1;
    unsigned char *buf = pl_malloc(BASE64_DECODE_LENGTH(b64len) + 1);
    size_t n = BASE64_DECODE_LENGTH(b64len) + 1;
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &n, buf, b64len, b64) || !base64_decode_final(&ctx)) {
        pl_free(buf);
        return -1;
    }
    *out = buf;
    *outlen = n;
    return 0;
}

/* Fills buf with len unpredictable bytes. A failing random generator
 * leaves no safe way on, so the process aborts. */
void pl_random(void *buf, size_t len)
{
    if (gnutls_rnd(GNUTLS_RND_NONCE, buf, len) != 0) {
        pl_log(PL_LOG_ERROR, "gnutls_rnd failed: no random numbers");
        abort();
    }
}

static char *random_nonce(void)
{
    unsigned char raw[NONCE_BYTES];
    pl_random(raw, sizeof raw);
    return pl_base64_encode(raw, sizeof raw);
}

/* ==== small string helpers ==== */

static char *PL_PRINTF(1, 2) strfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *s = pl_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* printable = %x21-2B / %x2D-7E: the characters of a nonce. */
static int nonce_valid(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e || c == ',')
            return 0;
    }
    return 1;
}

/* Decodes a saslname (RFC 5802 section 7): "=2C" is ',' and "=3D" is '=';
 * any other '=' is an error. Returns a malloced string or NULL. */
static char *saslname_decode(const char *p, size_t n)
{
    if (n == 0)
        return NULL;
    char *out = pl_malloc(n + 1), *w = out;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '=') {
            *w++ = p[i];
        } else if (n - i >= 3 && p[i + 1] == '2' && p[i + 2] == 'C') {
            *w++ = ',';
            i += 2;
        } else if (n - i >= 3 && p[i + 1] == '3' && p[i + 2] == 'D') {
            *w++ = '=';
            i += 2;
        } else {
            pl_free(out);
            return NULL;
        }
    }
    *w = '\0';
    return out;
}

/* The reverse: ',' to "=2C" and '=' to "=3D". */
static char *saslname_encode(const char *s)
{
    char *out = pl_malloc(3 * strlen(s) + 1), *w = out;
    for (; *s; s++) {
        if (*s == ',' || *s == '=') {
            memcpy(w, *s == ',' ? "=2C" : "=3D", 3);
            w += 3;
        } else {
            *w++ = *s;
        }
    }
    *w = '\0';
    return out;
}

/* extensions = attr-val *("," attr-val), attr-val = ALPHA "=" 1*value-char.
 * p is the text after the comma that starts the extensions. */
static int extensions_valid(const char *p)
{
    for (;;) {
        unsigned char a = (unsigned char)p[0];
        if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) || p[1] != '=')
            return 0;
        size_t n = strcspn(p + 2, ",");
        if (n == 0)
            return 0;
        p += 2 + n;
        if (*p == '\0')
            return 1;
        p++;
    }
}

/* ==== credentials ==== */

/* Derives StoredKey and ServerKey and writes them, with the salt, as
 * malloced base64. A 16-byte random salt is made when *salt_b64 is NULL
 * (and returned in *salt_b64); otherwise *salt_b64 is decoded and left
 * as it is. Returns 0, or -1 on a bad salt or zero iterations. */
int pl_scram_make_creds(pl_scram_hash h, const char *password, unsigned iterations,
                        char **salt_b64, char **stored_key_b64, char **server_key_b64)
{
    unsigned char stored[PL_SCRAM_MAX_HASH], server[PL_SCRAM_MAX_HASH];
    unsigned char *salt = NULL;
    size_t salt_len = 0;
    *stored_key_b64 = NULL;
    *server_key_b64 = NULL;
    if (!password || iterations == 0)
        return -1;
    if (*salt_b64) {
        if (pl_base64_decode(*salt_b64, strlen(*salt_b64), &salt, &salt_len) < 0 ||
            salt_len == 0) {
            pl_free(salt);
            return -1;
        }
    } else {
        salt_len = SALT_LEN;
        salt = pl_malloc(salt_len);
        if (gnutls_rnd(GNUTLS_RND_RANDOM, salt, salt_len) != 0) {
            pl_log(PL_LOG_ERROR, "gnutls_rnd failed: no random numbers");
            abort();
        }
        *salt_b64 = pl_base64_encode(salt, salt_len);
    }
    pl_scram_derive(h, password, salt, salt_len, iterations, stored, server);
    *stored_key_b64 = pl_base64_encode(stored, pl_scram_hash_len(h));
    *server_key_b64 = pl_base64_encode(server, pl_scram_hash_len(h));
    pl_free(salt);
    return 0;
}

/* Checks a plaintext password (already SASLprepped) against stored
 * credentials in constant time: 1 on a match, 0 if not, -1 if the stored
 * data is malformed. */
int pl_scram_check_password(pl_scram_hash h, const char *password, const char *salt_b64,
                            unsigned iterations, const char *stored_key_b64)
{
    unsigned char *salt = NULL, *want = NULL;
    size_t salt_len = 0, want_len = 0;
    unsigned char stored[PL_SCRAM_MAX_HASH], server[PL_SCRAM_MAX_HASH];
    int rc = -1;
    if (!password || !salt_b64 || !stored_key_b64 || iterations == 0)
        return -1;
    if (pl_base64_decode(salt_b64, strlen(salt_b64), &salt, &salt_len) < 0 || salt_len == 0)
        goto out;
    if (pl_base64_decode(stored_key_b64, strlen(stored_key_b64), &want, &want_len) < 0 ||
        want_len != pl_scram_hash_len(h))
        goto out;
    pl_scram_derive(h, password, salt, salt_len, iterations, stored, server);
    rc = memeql_sec(stored, want, want_len) ? 1 : 0;
out:
    pl_free(salt);
    pl_free(want);
    return rc;
}

/* ==== server side ==== */

enum server_state { SRV_START, SRV_FIRST_PARSED, SRV_FIRST_SENT, SRV_DONE };

struct pl_scram_server {
    pl_scram_hash h;
    int plus;
    int server_plus;
    int cb_count;
    char **cb_types;
    unsigned char **cb_data;
    size_t *cb_len;
    int cb_index;              /* binding named by the client's "p=", or -1 */
    enum server_state state;
    char *gs2_header;          /* through the comma after the authzid */
    char *client_first_bare;
    char *client_nonce;
    char *username;
    char *authzid;
    char *server_first;
    char *nonce;               /* client nonce followed by server nonce */
    unsigned char stored_key[PL_SCRAM_MAX_HASH];
    unsigned char server_key[PL_SCRAM_MAX_HASH];
};

/* Creates the server side of one exchange. The channel binding types and
 * data are copied; cb_count may be 0 with NULL arrays. */
pl_scram_server *pl_scram_server_new(pl_scram_hash h, int plus, int server_plus,
                                     const char *const *cb_types,
                                     const unsigned char *const *cb_data,
                                     const size_t *cb_len, int cb_count)
{
    pl_scram_server *s = pl_calloc(1, sizeof *s);
    s->h = h;
    s->plus = plus;
    s->server_plus = server_plus;
    s->cb_index = -1;
    s->state = SRV_START;
    if (cb_count < 0)
        cb_count = 0;
    s->cb_count = cb_count;
    if (cb_count > 0) {
        s->cb_types = pl_calloc((size_t)cb_count, sizeof *s->cb_types);
        s->cb_data = pl_calloc((size_t)cb_count, sizeof *s->cb_data);
        s->cb_len = pl_calloc((size_t)cb_count, sizeof *s->cb_len);
    }
    for (int i = 0; i < cb_count; i++) {
        s->cb_types[i] = pl_strdup(cb_types[i]);
        s->cb_len[i] = cb_len[i];
        s->cb_data[i] = pl_malloc(cb_len[i]);
        if (cb_len[i])
            memcpy(s->cb_data[i], cb_data[i], cb_len[i]);
    }
    return s;
}

/* Frees the server state, wiping the keys; NULL is allowed. */
void pl_scram_server_free(pl_scram_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->cb_count; i++) {
        pl_free(s->cb_types[i]);
        pl_free(s->cb_data[i]);
    }
    pl_free(s->cb_types);
    pl_free(s->cb_data);
    pl_free(s->cb_len);
    pl_free(s->gs2_header);
    pl_free(s->client_first_bare);
    pl_free(s->client_nonce);
    pl_free(s->username);
    pl_free(s->authzid);
    pl_free(s->server_first);
    pl_free(s->nonce);
    gnutls_memset(s->stored_key, 0, sizeof s->stored_key);
    gnutls_memset(s->server_key, 0, sizeof s->server_key);
    pl_free(s);
}

static int fail(const char **err, const char *value)
{
    *err = value;
    return -1;
}

static int find_cb_type(const pl_scram_server *s, const char *name, size_t n)
{
    for (int i = 0; i < s->cb_count; i++)
        if (strlen(s->cb_types[i]) == n && memcmp(s->cb_types[i], name, n) == 0)
            return i;
    return -1;
}

/* gs2-cbind-flag ",": "n", "y" or "p=" cb-name, judged against the
 * mechanism chosen and what the server offered. */
static int parse_cbind_flag(pl_scram_server *s, const char **pp, const char **err)
{
    const char *p = *pp;
    if ((p[0] == 'n' || p[0] == 'y') && p[1] == ',') {
        if (s->plus)
            return fail(err, "channel-bindings-dont-match");
        if (p[0] == 'y' && s->server_plus)
            return fail(err, "server-does-support-channel-binding");
        *pp = p + 2;
        return 0;
    }
    if (p[0] != 'p' || p[1] != '=')
        return fail(err, "malformed-request");
    const char *name = p + 2;
    size_t n = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                            "0123456789.-");
    if (n == 0 || name[n] != ',')
        return fail(err, "malformed-request");
    if (!s->plus)
        return fail(err, "channel-bindings-dont-match");
    s->cb_index = find_cb_type(s, name, n);
    if (s->cb_index < 0)
        return fail(err, "unsupported-channel-binding-type");
    *pp = name + n + 1;
    return 0;
}

/* [ "a=" saslname ] ",": the optional authorization identity. */
static int parse_authzid(pl_scram_server *s, const char **pp, const char **err)
{
    const char *p = *pp;
    if (p[0] == ',') {
        *pp = p + 1;
        return 0;
    }
    if (p[0] != 'a' || p[1] != '=')
        return fail(err, "malformed-request");
    size_t n = strcspn(p + 2, ",");
    if (p[2 + n] != ',')
        return fail(err, "malformed-request");
    s->authzid = saslname_decode(p + 2, n);
    if (!s->authzid)
        return fail(err, "invalid-authzid");
    *pp = p + 2 + n + 1;
    return 0;
}

/* "n=" saslname ",": decoded, then SASLprepped. */
static int parse_username(pl_scram_server *s, const char **pp, const char **err)
{
    const char *p = *pp;
    if (p[0] != 'n' || p[1] != '=')
        return fail(err, "malformed-request");
    size_t n = strcspn(p + 2, ",");
    if (n == 0 || p[2 + n] != ',')
        return fail(err, "malformed-request");
    char *decoded = saslname_decode(p + 2, n);
    if (!decoded)
        return fail(err, "invalid-username-encoding");
    int rc = pl_saslprep(decoded, &s->username);
    pl_free(decoded);
    if (rc < 0 || s->username[0] == '\0')
        return fail(err, "invalid-username-encoding");
    *pp = p + 2 + n + 1;
    return 0;
}

/* client-first-message-bare = [reserved-mext ","] username "," nonce
 * ["," extensions]. */
static int parse_first_bare(pl_scram_server *s, const char *p, const char **err)
{
    s->client_first_bare = pl_strdup(p);
    if (p[0] == 'm' && p[1] == '=')
        return fail(err, "extensions-not-supported");
    if (parse_username(s, &p, err) < 0)
        return -1;
    if (p[0] != 'r' || p[1] != '=')
        return fail(err, "malformed-request");
    p += 2;
    size_t n = strcspn(p, ",");
    if (!nonce_valid(p, n))
        return fail(err, "malformed-request");
    s->client_nonce = pl_strndup(p, n);
    p += n;
    if (*p == ',' && !extensions_valid(p + 1))
        return fail(err, "malformed-request");
    return 0;
}

static int parse_client_first(pl_scram_server *s, const char *m, const char **err)
{
    const char *p = m;
    if (parse_cbind_flag(s, &p, err) < 0 || parse_authzid(s, &p, err) < 0)
        return -1;
    s->gs2_header = pl_strndup(m, (size_t)(p - m));
    return parse_first_bare(s, p, err);
}

/* Parses client-first-message (len bytes, no NUL inside). On success the
 * user name and authzid (NULL if none) stay owned by s; on failure *err
 * names the reason and the exchange is over. */
int pl_scram_server_client_first(pl_scram_server *s, const char *msg, size_t len,
                                 const char **username, const char **authzid,
                                 const char **err)
{
    *username = NULL;
    *authzid = NULL;
    *err = NULL;
    if (s->state != SRV_START || !msg || memchr(msg, '\0', len)) {
        s->state = SRV_DONE;
        return fail(err, "malformed-request");
    }
    char *m = pl_strndup(msg, len);
    int rc = parse_client_first(s, m, err);
    pl_free(m);
    if (rc < 0) {
        s->state = SRV_DONE;
        return -1;
    }
    s->state = SRV_FIRST_PARSED;
    *username = s->username;
    *authzid = s->authzid;
    return 0;
}

/* Builds server-first-message "r=<nonce>,s=<salt>,i=<count>" and keeps
 * the keys for the final step. The server nonce part is 24 random bytes
 * in base64 unless nonce is given. Returns 0 with *out malloced, or -1
 * if called out of order or with unusable arguments. */
int pl_scram_server_first(pl_scram_server *s, const unsigned char *salt, size_t salt_len,
                          unsigned iterations, const unsigned char *stored_key,
                          const unsigned char *server_key, const char *nonce, char **out)
{
    *out = NULL;
    if (s->state != SRV_FIRST_PARSED || !salt || salt_len == 0 || iterations == 0 ||
        !stored_key || !server_key)
        return -1;
    if (nonce && !nonce_valid(nonce, strlen(nonce)))
        return -1;
    char *snonce = nonce ? pl_strdup(nonce) : random_nonce();
    char *salt_b64 = pl_base64_encode(salt, salt_len);
    s->nonce = strfmt("%s%s", s->client_nonce, snonce);
    s->server_first = strfmt("r=%s,s=%s,i=%u", s->nonce, salt_b64, iterations);
    pl_free(snonce);
    pl_free(salt_b64);
    memcpy(s->stored_key, stored_key, pl_scram_hash_len(s->h));
    memcpy(s->server_key, server_key, pl_scram_hash_len(s->h));
    s->state = SRV_FIRST_SENT;
    *out = pl_strdup(s->server_first);
    return 0;
}

/* The pieces of client-final-message, pointing into the message. */
struct client_final {
    const char *cb;
    size_t cb_len;
    const char *nonce;
    size_t nonce_len;
    const char *proof;
    size_t proof_len;
    size_t without_proof_len;
};

/* channel-binding "," nonce ["," extensions] "," proof. */
static int split_client_final(const char *m, struct client_final *f)
{
    if (strncmp(m, "c=", 2) != 0)
        return -1;
    f->cb = m + 2;
    f->cb_len = strcspn(f->cb, ",");
    const char *p = f->cb + f->cb_len;
    if (strncmp(p, ",r=", 3) != 0)
        return -1;
    f->nonce = p + 3;
    f->nonce_len = strcspn(f->nonce, ",");
    p = f->nonce + f->nonce_len;
    while (*p == ',') {
        const char *attr = p + 1;
        size_t n = strcspn(attr, ",");
        if (attr[0] == 'p' && attr[1] == '=' && attr[n] == '\0') {
            f->proof = attr + 2;
            f->proof_len = n - 2;
            f->without_proof_len = (size_t)(p - m);
            return 0;
        }
        unsigned char a = (unsigned char)attr[0];
        if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) || attr[1] != '=' || n < 3)
            return -1;
        p = attr + n;
    }
    return -1;
}

/* c= must decode to exactly gs2-header followed by the channel binding
 * data the client asked for with "p=". */
static int check_channel_binding(const pl_scram_server *s, const struct client_final *f,
                                 const char **err)
{
    unsigned char *got = NULL;
    size_t got_len = 0;
    if (pl_base64_decode(f->cb, f->cb_len, &got, &got_len) < 0)
        return fail(err, "invalid-encoding");
    size_t gs2_len = strlen(s->gs2_header);
    size_t data_len = s->cb_index >= 0 ? s->cb_len[s->cb_index] : 0;
    unsigned char *want = pl_malloc(gs2_len + data_len);
    memcpy(want, s->gs2_header, gs2_len);
    if (data_len)
        memcpy(want + gs2_len, s->cb_data[s->cb_index], data_len);
    int ok = got_len == gs2_len + data_len && memeql_sec(got, want, got_len);
    pl_free(got);
    pl_free(want);
    return ok ? 0 : fail(err, "channel-bindings-dont-match");
}

/* ClientKey := ClientProof XOR HMAC(StoredKey, AuthMessage); the proof is
 * good when H(ClientKey) equals StoredKey. */
static int check_proof(const pl_scram_server *s, const struct client_final *f,
                       const char *auth, size_t auth_len, const char **err)
{
    size_t hl = pl_scram_hash_len(s->h);
    unsigned char *proof = NULL;
    size_t proof_len = 0;
    unsigned char sig[PL_SCRAM_MAX_HASH], key[PL_SCRAM_MAX_HASH], stored[PL_SCRAM_MAX_HASH];
    if (pl_base64_decode(f->proof, f->proof_len, &proof, &proof_len) < 0)
        return fail(err, "invalid-encoding");
    if (proof_len != hl) {
        pl_free(proof);
        return fail(err, "invalid-proof");
    }
    hmac_once(s->h, s->stored_key, hl, auth, auth_len, sig);
    for (size_t i = 0; i < hl; i++)
        key[i] = proof[i] ^ sig[i];
    hash_once(s->h, key, hl, stored);
    pl_free(proof);
    gnutls_memset(key, 0, sizeof key);
    return memeql_sec(stored, s->stored_key, hl) ? 0 : fail(err, "invalid-proof");
}

static int verify_client_final(pl_scram_server *s, const char *m, char **out,
                               const char **err)
{
    struct client_final f;
    if (split_client_final(m, &f) < 0)
        return fail(err, "invalid-encoding");
    if (check_channel_binding(s, &f, err) < 0)
        return -1;
    if (f.nonce_len != strlen(s->nonce) || memcmp(f.nonce, s->nonce, f.nonce_len) != 0)
        return fail(err, "other-error");
    char *auth = strfmt("%s,%s,%.*s", s->client_first_bare, s->server_first,
                        (int)f.without_proof_len, m);
    size_t auth_len = strlen(auth);
    int rc = check_proof(s, &f, auth, auth_len, err);
    if (rc == 0) {
        unsigned char sig[PL_SCRAM_MAX_HASH];
        hmac_once(s->h, s->server_key, pl_scram_hash_len(s->h), auth, auth_len, sig);
        char *b64 = pl_base64_encode(sig, pl_scram_hash_len(s->h));
        *out = strfmt("v=%s", b64);
        pl_free(b64);
    }
    pl_free(auth);
    return rc;
}

/* Verifies client-final-message: channel binding, nonce, then proof.
 * Returns 0 with *out = "v=<ServerSignature>" (malloced), or -1 with *err
 * set and *out NULL. There is one attempt per exchange. */
int pl_scram_server_client_final(pl_scram_server *s, const char *msg, size_t len,
                                 char **out, const char **err)
{
    *out = NULL;
    *err = NULL;
    if (s->state != SRV_FIRST_SENT) {
        s->state = SRV_DONE;
        return fail(err, "other-error");
    }
    s->state = SRV_DONE;
    if (!msg || memchr(msg, '\0', len))
        return fail(err, "invalid-encoding");
    char *m = pl_strndup(msg, len);
    int rc = verify_client_final(s, m, out, err);
    pl_free(m);
    return rc;
}

/* ==== client side ==== */

struct pl_scram_client {
    pl_scram_hash h;
    char *user;                /* SASLprepped and saslname-encoded */
    char *password;            /* SASLprepped */
    char *nonce;
    char *client_first_bare;
    unsigned char server_sig[PL_SCRAM_MAX_HASH];
    int have_sig;
};

/* Creates a client for user and password (both SASLprepped here); the
 * nonce is random when NULL. Returns NULL if either fails SASLprep or the
 * nonce has characters a nonce may not hold. */
pl_scram_client *pl_scram_client_new(pl_scram_hash h, const char *user,
                                     const char *password, const char *nonce)
{
    char *u = NULL, *pw = NULL;
    if (!user || !password || (nonce && !nonce_valid(nonce, strlen(nonce))))
        return NULL;
    if (pl_saslprep(user, &u) < 0 || u[0] == '\0' || pl_saslprep(password, &pw) < 0) {
        pl_free(u);
        return NULL;
    }
    pl_scram_client *c = pl_calloc(1, sizeof *c);
    c->h = h;
    c->user = saslname_encode(u);
    c->password = pw;
    c->nonce = nonce ? pl_strdup(nonce) : random_nonce();
    pl_free(u);
    return c;
}

/* Returns client-first-message "n,,n=<user>,r=<nonce>" (malloced). */
char *pl_scram_client_first(pl_scram_client *c)
{
    pl_free(c->client_first_bare);
    c->client_first_bare = strfmt("n=%s,r=%s", c->user, c->nonce);
    return strfmt("n,,%s", c->client_first_bare);
}

/* The fields of server-first-message the client needs. */
struct server_first {
    const char *nonce;
    size_t nonce_len;
    unsigned char *salt;
    size_t salt_len;
    unsigned iterations;
};

static int parse_server_first(const pl_scram_client *c, const char *sf,
                              struct server_first *f)
{
    const char *p = sf;
    if (strncmp(p, "r=", 2) != 0)
        return -1;
    f->nonce = p + 2;
    f->nonce_len = strcspn(f->nonce, ",");
    size_t cl = strlen(c->nonce);
    if (!nonce_valid(f->nonce, f->nonce_len) || f->nonce_len <= cl ||
        memcmp(f->nonce, c->nonce, cl) != 0)
        return -1;
    p = f->nonce + f->nonce_len;
    if (strncmp(p, ",s=", 3) != 0)
        return -1;
    p += 3;
    size_t n = strcspn(p, ",");
    if (pl_base64_decode(p, n, &f->salt, &f->salt_len) < 0 || f->salt_len == 0)
        return -1;
    p += n;
    if (strncmp(p, ",i=", 3) != 0 || p[3] < '1' || p[3] > '9')
        return -1;
    char *end = NULL;
    unsigned long it = strtoul(p + 3, &end, 10);
    if (it == 0 || it > CLIENT_MAX_ITERATIONS || (*end != '\0' && *end != ','))
        return -1;
    if (*end == ',' && !extensions_valid(end + 1))
        return -1;
    f->iterations = (unsigned)it;
    return 0;
}

/* Computes client-final-message for server_first (malloced), keeping the
 * expected server signature for pl_scram_client_verify. Returns NULL if
 * server_first is malformed, asks for an extension, or does not extend
 * the client's nonce. */
char *pl_scram_client_final(pl_scram_client *c, const char *server_first)
{
    struct server_first f = { 0 };
    size_t hl = pl_scram_hash_len(c->h);
    unsigned char client_key[PL_SCRAM_MAX_HASH], server_key[PL_SCRAM_MAX_HASH];
    unsigned char stored[PL_SCRAM_MAX_HASH], sig[PL_SCRAM_MAX_HASH];
    if (!c->client_first_bare || !server_first || parse_server_first(c, server_first, &f) < 0) {
        pl_free(f.salt);
        return NULL;
    }
    derive_keys(c->h, c->password, f.salt, f.salt_len, f.iterations, client_key, server_key);
    pl_free(f.salt);
    hash_once(c->h, client_key, hl, stored);

    char *cb = pl_base64_encode((const unsigned char *)"n,,", 3);
    char *without_proof = strfmt("c=%s,r=%.*s", cb, (int)f.nonce_len, f.nonce);
    char *auth = strfmt("%s,%s,%s", c->client_first_bare, server_first, without_proof);
    hmac_once(c->h, stored, hl, auth, strlen(auth), sig);
    for (size_t i = 0; i < hl; i++)
        client_key[i] ^= sig[i];
    hmac_once(c->h, server_key, hl, auth, strlen(auth), c->server_sig);
    c->have_sig = 1;

    char *proof = pl_base64_encode(client_key, hl);
    char *msg = strfmt("%s,p=%s", without_proof, proof);
    gnutls_memset(client_key, 0, sizeof client_key);
    gnutls_memset(server_key, 0, sizeof server_key);
    pl_free(cb);
    pl_free(without_proof);
    pl_free(auth);
    pl_free(proof);
    return msg;
}

/* 1 if server_final is "v=" with the expected server signature (extra
 * extensions after it are allowed), 0 for anything else, "e=" included. */
int pl_scram_client_verify(pl_scram_client *c, const char *server_final)
{
    unsigned char *v = NULL;
    size_t vlen = 0;
    if (!c->have_sig || !server_final || strncmp(server_final, "v=", 2) != 0)
        return 0;
    const char *p = server_final + 2;
    size_t n = strcspn(p, ",");
    if (p[n] == ',' && !extensions_valid(p + n + 1))
        return 0;
    if (pl_base64_decode(p, n, &v, &vlen) < 0)
        return 0;
    size_t hl = pl_scram_hash_len(c->h);
    int ok = vlen == hl && memeql_sec(v, c->server_sig, hl);
    pl_free(v);
    return ok;
}

/* Frees the client, wiping the password; NULL is allowed. */
void pl_scram_client_free(pl_scram_client *c)
{
    if (!c)
        return;
    pl_free(c->user);
    if (c->password) {
        gnutls_memset(c->password, 0, strlen(c->password));
        pl_free(c->password);
    }
    pl_free(c->nonce);
    pl_free(c->client_first_bare);
    gnutls_memset(c->server_sig, 0, sizeof c->server_sig);
    pl_free(c);
}
