/* mod_s2s/s2s_auth.c: who may federate and how. Parses the `routes` and
 * `policies` options, answers the per-domain questions (blocked? must it
 * present a valid certificate? may it use dialback?), and holds the small
 * SASL EXTERNAL helpers (XEP-0178: the authorization identity is the
 * base64 of the sending domain, or "=" for the stream's 'from'). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <nettle/base64.h>
#include "s2s.h"

/* ==== parsing ==== */

/* Splits text on white space; calls fn on each word. */
static int each_word(const char *text, int (*fn)(const char *w, size_t n, void *ud), void *ud)
{
    const char *p = text ? text : "";
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != ',')
            p++;
        if (p > start && fn(start, (size_t)(p - start), ud) != 0)
            return -1;
    }
    return 0;
}

typedef struct parse_ctx {
    void *list;
    char *err;
    size_t errlen;
} parse_ctx;

/* "domain=value": the prepared domain in dom, the value in val. */
static int split_entry(const char *w, size_t n, char *dom, size_t domsz, char *val,
                       size_t valsz, parse_ctx *pc)
{
    const char *eq = memchr(w, '=', n);
    if (!eq || eq == w || (size_t)(eq - w) >= 1024 || n - (size_t)(eq - w) - 1 >= valsz ||
        eq + 1 == w + n) {
        snprintf(pc->err, pc->errlen, "invalid entry \"%.*s\" (expected DOMAIN=VALUE)",
                 (int)(n > 200 ? 200 : n), w);
        return -1;
    }
    char raw[1024];
    memcpy(raw, w, (size_t)(eq - w));
    raw[eq - w] = '\0';
    if (pl_jid_nameprep(raw, dom, domsz) != 0) {
        snprintf(pc->err, pc->errlen, "invalid domain \"%.200s\"", raw);
        return -1;
    }
    memcpy(val, eq + 1, n - (size_t)(eq - w) - 1);
    val[n - (size_t)(eq - w) - 1] = '\0';
    return 0;
}

static int parse_port(const char *s, int *port)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address, with
 * an optional "/tls" suffix. */
static int parse_target(char *val, s2s_route *r)
{
    size_t len = strlen(val);
    if (len > 4 && strcmp(val + len - 4, "/tls") == 0) {
        r->direct_tls = 1;
        val[len - 4] = '\0';
    }
    r->port = S2S_PORT;
    unsigned char a6[16];
    if (val[0] == '[') {
        char *close = strchr(val, ']');
        if (!close)
            return -1;
        *close = '\0';
        if (inet_pton(AF_INET6, val + 1, a6) != 1)
            return -1;
        if (close[1] == ':' && parse_port(close + 2, &r->port) != 0)
            return -1;
        if (close[1] && close[1] != ':')
            return -1;
        r->host = pl_strdup(val + 1);
        return 0;
    }
    if (inet_pton(AF_INET6, val, a6) == 1) {
        r->host = pl_strdup(val);
        return 0;
    }
    char *colon = strchr(val, ':');
    if (colon) {
        *colon = '\0';
        if (parse_port(colon + 1, &r->port) != 0)
            return -1;
    }
    if (!*val)
        return -1;
    r->host = pl_strdup(val);
    return 0;
}

static int route_word(const char *w, size_t n, void *ud)
{
    parse_ctx *pc = ud;
    char dom[1024], val[1024];
    if (split_entry(w, n, dom, sizeof dom, val, sizeof val, pc) != 0)
        return -1;
    s2s_route *r = pl_calloc(1, sizeof *r);
    char orig[1024];
    memcpy(orig, val, sizeof orig);
    if (parse_target(val, r) != 0) {
        snprintf(pc->err, pc->errlen,
                 "invalid route target \"%.200s\" for %s (expected HOST[:PORT][/tls])",
                 orig, dom);
        pl_free(r->host);
        pl_free(r);
        return -1;
    }
    r->domain = pl_strdup(dom);
    s2s_route **tail = (s2s_route **)&pc->list;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    return 0;
}

static int rule_word(const char *w, size_t n, void *ud)
{
    parse_ctx *pc = ud;
    char dom[1024], val[64];
    if (split_entry(w, n, dom, sizeof dom, val, sizeof val, pc) != 0)
        return -1;
    int policy;
    if (strcmp(val, "require-cert") == 0)
        policy = POLICY_REQUIRE_CERT;
    else if (strcmp(val, "dialback") == 0)
        policy = POLICY_DIALBACK;
    else if (strcmp(val, "block") == 0)
        policy = POLICY_BLOCK;
    else {
        snprintf(pc->err, pc->errlen,
                 "unknown policy \"%s\" for %s (expected require-cert, dialback or block)",
                 val, dom);
        return -1;
    }
    s2s_rule *r = pl_calloc(1, sizeof *r);
    r->domain = pl_strdup(dom);
    r->policy = policy;
    s2s_rule **tail = (s2s_rule **)&pc->list;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    return 0;
}

/* Parses the `routes` option into a list (NULL when empty). */
int pl__s2s_parse_routes(const char *text, s2s_route **out, char *err, size_t errlen)
{
    parse_ctx pc = { NULL, err, errlen };
    if (each_word(text, route_word, &pc) != 0) {
        pl__s2s_free_routes(pc.list);
        return -1;
    }
    *out = pc.list;
    return 0;
}

/* Parses the `policies` option into a list (NULL when empty). */
int pl__s2s_parse_rules(const char *text, s2s_rule **out, char *err, size_t errlen)
{
    parse_ctx pc = { NULL, err, errlen };
    if (each_word(text, rule_word, &pc) != 0) {
        pl__s2s_free_rules(pc.list);
        return -1;
    }
    *out = pc.list;
    return 0;
}

/* Frees a route list. */
void pl__s2s_free_routes(s2s_route *r)
{
    while (r) {
        s2s_route *next = r->next;
        pl_free(r->domain);
        pl_free(r->host);
        pl_free(r);
        r = next;
    }
}

/* Frees a policy list. */
void pl__s2s_free_rules(s2s_rule *r)
{
    while (r) {
        s2s_rule *next = r->next;
        pl_free(r->domain);
        pl_free(r);
        r = next;
    }
}

/* ==== decisions ==== */

/* The policy a `policies` entry gives domain, else POLICY_DEFAULT. */
int pl__s2s_policy(const char *domain)
{
    for (const s2s_rule *r = pl__s2s.rules; r; r = r->next)
        if (strcmp(r->domain, domain) == 0)
            return r->policy;
    return POLICY_DEFAULT;
}

/* True if federation with domain is disabled. */
int pl__s2s_blocked(const char *domain)
{
    return pl__s2s_policy(domain) == POLICY_BLOCK;
}

/* True if domain authenticates only with a valid certificate. */
int pl__s2s_cert_required(const char *domain)
{
    int p = pl__s2s_policy(domain);
    return p == POLICY_REQUIRE_CERT || (p == POLICY_DEFAULT && pl__s2s.require_valid_cert);
}

/* True if domain may authenticate with Server Dialback. */
int pl__s2s_dialback_allowed(const char *domain)
{
    int p = pl__s2s_policy(domain);
    if (p == POLICY_DIALBACK)
        return 1;
    if (p != POLICY_DEFAULT)
        return 0;
    return pl__s2s.dialback && !pl__s2s.require_valid_cert;
}

/* The route override for domain, or NULL (then DNS decides). */
const s2s_route *pl__s2s_route_for(const char *domain)
{
    for (const s2s_route *r = pl__s2s.routes; r; r = r->next)
        if (strcmp(r->domain, domain) == 0)
            return r;
    return NULL;
}

/* ==== SASL EXTERNAL ==== */

/* Base64 of s (the authorization identity we send); caller frees. */
char *pl__s2s_b64(const char *s)
{
    size_t n = strlen(s);
    char *out = pl_malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
    base64_encode_raw(out, n, (const uint8_t *)s);
    out[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
    return out;
}

/* Decodes the identity of a SASL EXTERNAL <auth/>; caller frees. */
char *pl__s2s_external_identity(const char *b64, const char *stream_from)
{
    if (!b64 || !*b64 || strcmp(b64, "=") == 0)
        return stream_from ? pl_strdup(stream_from) : NULL;
    size_t n = strlen(b64);
    uint8_t *dst = pl_malloc(BASE64_DECODE_LENGTH(n) + 1);
    size_t dlen = BASE64_DECODE_LENGTH(n);
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &dlen, dst, n, b64) || !base64_decode_final(&ctx) ||
        memchr(dst, '\0', dlen)) {
        pl_free(dst);
        return NULL;
    }
    dst[dlen] = '\0';
    return (char *)dst;
}
