/* xmpp/jid.c: JID parsing and preparation (RFC 7622, with the stringprep
 * profiles of RFC 6122: nodeprep, nameprep, resourceprep) and SASLprep
 * (RFC 4013), all through libidn. Every routed stanza parses JIDs, so pure
 * ASCII parts take a fast path that gives the same result as stringprep;
 * any part with a non-ASCII byte goes through libidn. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>
#include <parley/base.h>
#include <parley/jid.h>

/* The longest part after preparation, in bytes (RFC 7622 section 3). */
#define JID_PART_MAX 1023
/* Raw non-ASCII input longer than this is refused before stringprep runs,
 * so a hostile string cannot make preparation arbitrarily expensive. */
#define JID_RAW_MAX 8192
#define DNS_LABEL_MAX 63

enum part_kind { PART_NODE, PART_DOMAIN, PART_RESOURCE };

/* ==== character classes for the ASCII fast path ==== */

static int is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] & 0x80)
            return 0;
    return 1;
}

/* ASCII characters nodeprep prohibits: controls and space (C.1.1, C.2.1)
 * and the table of RFC 6122 appendix A.5. */
static int node_prohibited_ascii(unsigned char c)
{
    if (c <= 0x20 || c == 0x7f)
        return 1;
    return strchr("\"&'/:<>@", c) != NULL;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ==== preparing one part ==== */

static const Stringprep_profile *part_profile(enum part_kind kind)
{
    switch (kind) {
    case PART_NODE:
        return stringprep_xmpp_nodeprep;
    case PART_DOMAIN:
        return stringprep_nameprep;
    default:
        return stringprep_xmpp_resourceprep;
    }
}

/* The ASCII fast path: the mapping stringprep would do (case folding for
 * node and domain, nothing for the resource) and its prohibited ASCII
 * characters. The domain's host name rules are checked later for both
 * paths. */
static int prep_ascii(enum part_kind kind, const char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (kind == PART_NODE && node_prohibited_ascii(c))
            return -1;
        if (kind == PART_RESOURCE && (c < 0x20 || c == 0x7f))
            return -1;
        out[i] = kind == PART_RESOURCE ? (char)c : ascii_lower((char)c);
    }
    out[len] = '\0';
    return 0;
}

static int prep_stringprep(enum part_kind kind, const char *in, size_t len, char *out)
{
    char tmp[JID_RAW_MAX + 1];
    if (len > JID_RAW_MAX)
        return -1;
    memcpy(tmp, in, len);
    tmp[len] = '\0';
    if (stringprep(tmp, sizeof tmp, 0, part_profile(kind)) != STRINGPREP_OK)
        return -1;
    size_t n = strlen(tmp);
    if (n > JID_PART_MAX)
        return -1;
    memcpy(out, tmp, n + 1);
    return 0;
}

/* Prepares len bytes of in into out (at least JID_PART_MAX + 1 bytes),
 * refusing an empty or over-long result. */
static int prep_part(enum part_kind kind, const char *in, size_t len, char *out)
{
    int rc;
    if (is_ascii(in, len)) {
        if (len > JID_PART_MAX)
            return -1;
        rc = prep_ascii(kind, in, len, out);
    } else {
        rc = prep_stringprep(kind, in, len, out);
    }
    if (rc < 0 || out[0] == '\0')
        return -1;
    return 0;
}

/* ==== domains ==== */

/* IDNA (RFC 3490 section 3.1) treats U+3002 IDEOGRAPHIC FULL STOP as a
 * label separator; nameprep leaves it alone (and has already turned the
 * fullwidth and halfwidth stops into '.' or U+3002), so map it here. */
static void map_ideographic_stops(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if ((unsigned char)r[0] == 0xe3 && (unsigned char)r[1] == 0x80 &&
            (unsigned char)r[2] == 0x82) {
            *w++ = '.';
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* Host name rules on a prepared domain: labels of 1 to 63 bytes made of
 * ASCII letters, digits, hyphens and non-ASCII characters. Dotted IPv4
 * literals satisfy these rules as they are. */
static int check_hostname(const char *d)
{
    size_t label = 0;
    for (const char *p = d; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
            continue;
        }
        if (!(c & 0x80) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            !(c >= '0' && c <= '9') && c != '-')
            return -1;
        if (++label > DNS_LABEL_MAX)
            return -1;
    }
    return label == 0 ? -1 : 0;
}

/* "[" IPv6 "]": checked with inet_pton and kept, hex digits lowercased. */
static int prep_ipv6_literal(const char *in, size_t len, char *out)
{
    char addr[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    if (len < 3 || in[len - 1] != ']' || len - 2 > INET6_ADDRSTRLEN)
        return -1;
    memcpy(addr, in + 1, len - 2);
    addr[len - 2] = '\0';
    if (inet_pton(AF_INET6, addr, bin) != 1)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = ascii_lower(in[i]);
    out[len] = '\0';
    return 0;
}

/* Prepares a domainpart: one trailing label separator is stripped, then
 * it is either an IPv6 literal or a host name prepared with nameprep. */
static int prep_domain(const char *in, size_t len, char *out)
{
    int stripped = len > 0 && in[len - 1] == '.';
    if (stripped)
        len--;
    if (len == 0)
        return -1;
    if (in[0] == '[')
        return prep_ipv6_literal(in, len, out);
    if (prep_part(PART_DOMAIN, in, len, out) < 0)
        return -1;
    map_ideographic_stops(out);
    size_t n = strlen(out);
    if (!stripped && n > 0 && out[n - 1] == '.')
        out[n - 1] = '\0';
    return check_hostname(out);
}

/* ==== building JIDs ==== */

/* Allocates the single block holding the struct and every string. The
 * parts are already prepared; node and resource may be NULL. */
static pl_jid *jid_build(const char *node, const char *domain, const char *resource)
{
    size_t nl = node ? strlen(node) : 0;
    size_t dl = strlen(domain);
    size_t rl = resource ? strlen(resource) : 0;
    size_t bare_len = (node ? nl + 1 : 0) + dl;
    size_t full_len = bare_len + (resource ? rl + 1 : 0);
    size_t size = sizeof(pl_jid) + (node ? nl + 1 : 0) + dl + 1 +
                  (resource ? rl + 1 : 0) + full_len + 1 +
                  (resource ? bare_len + 1 : 0);
    pl_jid *j = pl_malloc(size);
    char *p = (char *)(j + 1);

    j->node = NULL;
    if (node) {
        j->node = memcpy(p, node, nl + 1);
        p += nl + 1;
    }
    j->domain = memcpy(p, domain, dl + 1);
    p += dl + 1;
    j->resource = NULL;
    if (resource) {
        j->resource = memcpy(p, resource, rl + 1);
        p += rl + 1;
    }

    char *full = p;
    if (node) {
        memcpy(p, node, nl);
        p += nl;
        *p++ = '@';
    }
    memcpy(p, domain, dl);
    p += dl;
    if (resource) {
        *p++ = '/';
        memcpy(p, resource, rl);
        p += rl;
    }
    *p++ = '\0';
    j->full = full;
    j->bare = full;
    if (resource) {
        memcpy(p, full, bare_len);
        p[bare_len] = '\0';
        j->bare = p;
    }
    return j;
}

/* Parses and prepares a JID string. The first '/' starts the resource
 * (which may itself hold '@' and '/'); a '@' before it ends the node.
 * Returns NULL if any part is empty or invalid. */
pl_jid *pl_jid_parse(const char *s)
{
    char node[JID_PART_MAX + 1], domain[JID_PART_MAX + 1], res[JID_PART_MAX + 1];
    if (!s)
        return NULL;
    const char *slash = strchr(s, '/');
    size_t head_len = slash ? (size_t)(slash - s) : strlen(s);
    const char *at = memchr(s, '@', head_len);
    const char *dom = at ? at + 1 : s;
    size_t dom_len = head_len - (size_t)(dom - s);

    if (at && prep_part(PART_NODE, s, (size_t)(at - s), node) < 0)
        return NULL;
    if (prep_domain(dom, dom_len, domain) < 0)
        return NULL;
    if (slash && prep_part(PART_RESOURCE, slash + 1, strlen(slash + 1), res) < 0)
        return NULL;
    return jid_build(at ? node : NULL, domain, slash ? res : NULL);
}

/* Builds a prepared JID from separate parts; node and resource may be
 * NULL for absent, but an empty string is an invalid part. */
pl_jid *pl_jid_make(const char *node, const char *domain, const char *resource)
{
    char n[JID_PART_MAX + 1], d[JID_PART_MAX + 1], r[JID_PART_MAX + 1];
    if (!domain)
        return NULL;
    if (node && prep_part(PART_NODE, node, strlen(node), n) < 0)
        return NULL;
    if (prep_domain(domain, strlen(domain), d) < 0)
        return NULL;
    if (resource && prep_part(PART_RESOURCE, resource, strlen(resource), r) < 0)
        return NULL;
    return jid_build(node ? n : NULL, d, resource ? r : NULL);
}

/* Returns a new JID with j's node and domain and no resource. */
pl_jid *pl_jid_to_bare(const pl_jid *j)
{
    return jid_build(j->node, j->domain, NULL);
}

/* Returns a new copy of j; the parts are already prepared. */
pl_jid *pl_jid_dup(const pl_jid *j)
{
    return jid_build(j->node, j->domain, j->resource);
}

/* Frees a JID from any of the functions above; NULL is allowed. */
void pl_jid_free(pl_jid *j)
{
    pl_free(j);
}

/* True (1) if a and b are the same full JID. Both are prepared, so a
 * byte comparison of the full strings is exact. */
int pl_jid_eq(const pl_jid *a, const pl_jid *b)
{
    return strcmp(a->full, b->full) == 0;
}

/* True (1) if a and b have the same node and domain. */
int pl_jid_bare_eq(const pl_jid *a, const pl_jid *b)
{
    return strcmp(a->bare, b->bare) == 0;
}

/* ==== single parts ==== */

static int prep_into(enum part_kind kind, const char *in, char *out, size_t outsz)
{
    char tmp[JID_PART_MAX + 1];
    int rc;
    if (!in || !out || outsz == 0)
        return -1;
    if (kind == PART_DOMAIN)
        rc = prep_domain(in, strlen(in), tmp);
    else
        rc = prep_part(kind, in, strlen(in), tmp);
    size_t n = rc < 0 ? 0 : strlen(tmp);
    if (rc < 0 || n >= outsz)
        return -1;
    memcpy(out, tmp, n + 1);
    return 0;
}

/* Applies nodeprep to one localpart into out (outsz bytes, NUL
 * terminated). Returns 0, or -1 if the part is empty, prohibited,
 * longer than 1023 bytes or does not fit. */
int pl_jid_nodeprep(const char *in, char *out, size_t outsz)
{
    return prep_into(PART_NODE, in, out, outsz);
}

/* Prepares a domainpart into out: nameprep, one trailing dot stripped,
 * host name or IP literal rules. Returns 0 or -1. */
int pl_jid_nameprep(const char *in, char *out, size_t outsz)
{
    return prep_into(PART_DOMAIN, in, out, outsz);
}

/* Applies resourceprep to one resourcepart into out. Returns 0 or -1. */
int pl_jid_resourceprep(const char *in, char *out, size_t outsz)
{
    return prep_into(PART_RESOURCE, in, out, outsz);
}

/* Resourceprep for a resource being bound: a stored string, so
 * unassigned code points are refused too (RFC 3454 section 7). Routing
 * accepts them in JIDs it only compares (pl_jid_resourceprep). */
int pl_jid_resourceprep_stored(const char *in, char *out, size_t outsz)
{
    if (pl_jid_resourceprep(in, out, outsz) != 0)
        return -1;
    size_t len = strlen(in);
    if (is_ascii(in, len))
        return 0;
    char tmp[JID_RAW_MAX + 1];
    if (len > JID_RAW_MAX)
        return -1;
    memcpy(tmp, in, len + 1);
    if (stringprep(tmp, sizeof tmp, STRINGPREP_NO_UNASSIGNED, stringprep_xmpp_resourceprep)
        != STRINGPREP_OK)
        return -1;
    return 0;
}

/* SASLprep (RFC 4013) with unassigned code points refused, as for stored
 * strings. On success *out is a malloced string (free with pl_free) and
 * 0 is returned; otherwise -1 and *out is NULL. */
int pl_saslprep(const char *in, char **out)
{
    char *prepped = NULL;
    *out = NULL;
    if (!in)
        return -1;
    if (stringprep_profile(in, &prepped, "SASLprep", STRINGPREP_NO_UNASSIGNED) !=
        STRINGPREP_OK) {
        free(prepped);
        return -1;
    }
    *out = pl_strdup(prepped);
    free(prepped);
    return 0;
}
