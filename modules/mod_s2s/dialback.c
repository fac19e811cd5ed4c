/* mod_s2s/dialback.c: Server Dialback (XEP-0220) keys and verification
 * requests. Keys follow XEP-0185: HMAC-SHA256 keyed with the hex SHA-256
 * of a secret made at start, over "Receiving Originating StreamID", in
 * hex; so the Authoritative Server checks a key without remembering it.
 * When a key arrives on an incoming stream, a request records which
 * incoming stream waits and which outgoing stream carries <db:verify/>;
 * answers are accepted only for requests sent on that same stream (the
 * unsolicited-dialback attacks of XEP-0220 section 5.1). */
#include <string.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>
#include "s2s.h"

/* ==== keys ==== */

static void to_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Computes the XEP-0185 key of (receiving, originating, stream id) under
 * secret, as 64 lowercase hex digits in out. */
void pl__s2s_db_key(const char *secret, const char *receiving, const char *originating,
                    const char *stream_id, char out[65])
{
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hexkey[2 * SHA256_DIGEST_SIZE + 1];
    struct sha256_ctx sc;
    sha256_init(&sc);
    sha256_update(&sc, strlen(secret), (const uint8_t *)secret);
    sha256_digest(&sc, sizeof digest, digest);
    to_hex(digest, sizeof digest, hexkey);
    struct hmac_sha256_ctx hc;
    hmac_sha256_set_key(&hc, strlen(hexkey), (const uint8_t *)hexkey);
    hmac_sha256_update(&hc, strlen(receiving), (const uint8_t *)receiving);
    hmac_sha256_update(&hc, 1, (const uint8_t *)" ");
    hmac_sha256_update(&hc, strlen(originating), (const uint8_t *)originating);
    hmac_sha256_update(&hc, 1, (const uint8_t *)" ");
    hmac_sha256_update(&hc, strlen(stream_id), (const uint8_t *)stream_id);
    hmac_sha256_digest(&hc, sizeof digest, digest);
    to_hex(digest, sizeof digest, out);
}

/* The key may come with white space around it (pretty printers). */
int pl__s2s_db_check(const char *secret, const char *receiving, const char *originating,
                     const char *stream_id, const char *key)
{
    char want[65];
    pl__s2s_db_key(secret, receiving, originating, stream_id, want);
    while (*key == ' ' || *key == '\t' || *key == '\n' || *key == '\r')
        key++;
    size_t n = strlen(key);
    while (n && (key[n - 1] == ' ' || key[n - 1] == '\t' || key[n - 1] == '\n' ||
                 key[n - 1] == '\r'))
        n--;
    if (n != 64)
        return 0;
    unsigned diff = 0;
    for (size_t i = 0; i < 64; i++)
        diff |= (unsigned)(want[i] ^ key[i]);
    return diff == 0;
}

static void put_attr(pl_buf *out, const char *name, const char *value)
{
    if (!value)
        return;
    pl_buf_printf(out, " %s='", name);
    pl_xml_escape(out, value, strlen(value), 1);
    pl_buf_putc(out, '\'');
}

/* Appends one dialback element with the db: prefix our stream headers
 * declare (some servers accept no other prefix). */
void pl__s2s_db_write(pl_buf *out, const char *name, const char *from, const char *to,
                      const char *id, const char *type, const char *key,
                      const char *error_cond)
{
    pl_buf_printf(out, "<db:%s", name);
    put_attr(out, "from", from);
    put_attr(out, "to", to);
    put_attr(out, "id", id);
    put_attr(out, "type", error_cond ? "error" : type);
    if (!key && !error_cond) {
        pl_buf_puts(out, "/>");
        return;
    }
    pl_buf_putc(out, '>');
    if (error_cond)
        pl_buf_printf(out, "<error type='cancel'><%s xmlns='" PL_NS_STANZAS "'/></error>",
                      error_cond);
    else
        pl_xml_escape(out, key, strlen(key), 0);
    pl_buf_printf(out, "</db:%s>", name);
}

/* ==== verification requests ==== */

typedef struct db_req {
    struct db_req *next;
    uint64_t in_id;      /* the incoming stream waiting for the answer */
    uint64_t out_id;     /* the outgoing stream carrying <db:verify/> */
    char *local, *remote, *stream_id, *key;
    int sent;
} db_req;

static db_req *reqs;

static void req_free(db_req *r)
{
    pl_free(r->local);
    pl_free(r->remote);
    pl_free(r->stream_id);
    pl_free(r->key);
    pl_free(r);
}

static void unlink_req(db_req *r)
{
    for (db_req **pp = &reqs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            return;
        }
}

/* Records a key to verify and makes sure the outgoing stream to the
 * sender domain exists; it writes <db:verify/> once it can. */
void pl__s2s_db_request(uint64_t in_id, const char *local, const char *remote,
                        const char *stream_id, const char *key)
{
    s2s_out *o = pl__s2s_out_get(local, remote);
    db_req *r = pl_calloc(1, sizeof *r);
    r->in_id = in_id;
    r->out_id = pl__s2s_out_id(o);
    r->local = pl_strdup(local);
    r->remote = pl_strdup(remote);
    r->stream_id = pl_strdup(stream_id);
    r->key = pl_strdup(key);
    r->next = reqs;
    reqs = r;
    pl__s2s_out_kick(o);
}

/* Writes the requests of outgoing stream out_id that are not sent yet. */
void pl__s2s_db_send_pending(uint64_t out_id, const char *local, const char *remote,
                             pl_buf *out)
{
    for (db_req *r = reqs; r; r = r->next) {
        if (r->out_id != out_id || r->sent)
            continue;
        pl__s2s_db_write(out, "verify", r->local, r->remote, r->stream_id, NULL, r->key, NULL);
        r->sent = 1;
    }
}

/* Hands the outcome to the waiting incoming stream, if it is still there. */
static void finish(db_req *r, const char *result)
{
    unlink_req(r);
    s2s_in *s = pl__s2s_in_by_id(r->in_id);
    if (s)
        pl__s2s_in_db_result(s, r->local, r->remote, result);
    req_free(r);
}

/* Matches an answer to a request sent on the same stream (same from, to
 * and id), and hands the result to the waiting incoming stream. */
int pl__s2s_db_answer(uint64_t out_id, const char *from, const char *to, const char *id,
                      const char *type)
{
    if (!from || !to || !id || !type)
        return -1;
    for (db_req *r = reqs; r; r = r->next) {
        if (r->out_id != out_id || !r->sent || strcmp(r->remote, from) != 0 ||
            strcmp(r->local, to) != 0 || strcmp(r->stream_id, id) != 0)
            continue;
        if (strcmp(type, "valid") == 0)
            finish(r, "valid");
        else if (strcmp(type, "invalid") == 0)
            finish(r, "invalid");
        else
            finish(r, "remote-server-not-found");
        return 0;
    }
    return -1;
}

/* Ends every request of a failed outgoing stream with error_cond. */
void pl__s2s_db_out_failed(uint64_t out_id, const char *local, const char *remote,
                           const char *error_cond)
{
    /* finishing can close incoming streams, which edits the list: rescan */
    for (int guard = 0; guard < 100000; guard++) {
        db_req *r = reqs;
        while (r && r->out_id != out_id)
            r = r->next;
        if (!r)
            return;
        finish(r, error_cond);
    }
}

/* Forgets the requests of an incoming stream that went away. */
void pl__s2s_db_in_gone(uint64_t in_id)
{
    db_req **pp = &reqs;
    while (*pp) {
        db_req *r = *pp;
        if (r->in_id == in_id) {
            *pp = r->next;
            req_free(r);
        } else {
            pp = &r->next;
        }
    }
}

/* Frees every request (module unload). */
void pl__s2s_db_free_all(void)
{
    while (reqs) {
        db_req *r = reqs;
        reqs = r->next;
        req_free(r);
    }
}
