/* net/tls.c: TLS sessions over non-blocking sockets with GnuTLS. Holds
 * the process-wide priority cache and trust store, per-host credentials
 * (chosen by SNI on the server side), explicit peer verification with
 * RFC 6125 name matching (plus the XMPP SRV-ID and xmppAddr identities),
 * and the channel binding data SCRAM-PLUS needs. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <gnutls/x509-ext.h>
#include <parley/base.h>
#include "net/tls.h"

/* NORMAL's order keeps AES-GCM ahead of ChaCha20-Poly1305. ChaCha20 would
 * save 2 x 344 bytes of cipher state per session, but with AES-NI
 * nettle's ChaCha20 runs at about a sixteenth of AES-GCM's speed, and the
 * server's CPU time per 300-byte message over TLS grows by two thirds. */
#define DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Appended to every priority string: whatever the admin writes, nothing
 * older than TLS 1.2 is ever negotiated. */
#define MIN_VERSION_SUFFIX ":-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"

#define OID_XMPPADDR "1.3.6.1.5.5.7.8.5"   /* RFC 6120 id-on-xmppAddr */
#define OID_SRVNAME "1.3.6.1.5.5.7.8.7"    /* RFC 4985 id-on-dnsSRV */

/* Non-fatal GnuTLS results (warning alerts, ignored renegotiation
 * requests) retried in a row before the peer is considered abusive. */
#define MAX_NONFATAL 8

/* TLS extensions whose per-session GnuTLS state only a handshake reads:
 * the server name (pl_tls keeps its own copy), the peer's
 * signature_algorithms list (a 516-byte table) and the renegotiation_info
 * state of RFC 5746 (184 bytes). */
static const unsigned handshake_only_exts[] = { 0, 13, 0xff01 };

struct pl_tls_creds {
    gnutls_certificate_credentials_t cred;  /* chain, key and trust list */
    gnutls_datum_t leaf;                    /* DER, owned by cred */
    gnutls_digest_algorithm_t leaf_hash;    /* tls-server-end-point hash */
};

struct pl_tls {
    gnutls_session_t s;
    pl_tls_creds *creds;       /* server: the credentials in use */
    pl_tls_sni_fn sni;
    void *sni_ud;
    char *sni_name;            /* server: the name the client sent */
    char *err;                 /* last error, allocated only on failure */
    unsigned server : 1;
    unsigned done : 1;         /* handshake complete */
};

static struct {
    int inited;
    gnutls_priority_t prio;
    char *ca_file;                            /* NULL: the system store */
    gnutls_certificate_credentials_t client;  /* trust only */
} g;

/* ==== errors ==== */

static void PL_PRINTF(3, 4) errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void PL_PRINTF(2, 3) tls_err(pl_tls *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *msg = pl_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    pl_free(t->err);
    t->err = msg;
}

/* Records why a GnuTLS call failed, naming the alert if the peer sent one. */
static void gnutls_fail(pl_tls *t, const char *what, int rc)
{
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED || rc == GNUTLS_E_WARNING_ALERT_RECEIVED)
        tls_err(t, "%s: %s (%s)", what, gnutls_strerror(rc),
                gnutls_alert_get_name(gnutls_alert_get(t->s)));
    else
        tls_err(t, "%s: %s", what, gnutls_strerror(rc));
}

/* ==== global state ==== */

static int load_trust(gnutls_certificate_credentials_t cred, const char *ca_file,
                      char *err, size_t errlen)
{
    if (ca_file) {
        int n = gnutls_certificate_set_x509_trust_file(cred, ca_file, GNUTLS_X509_FMT_PEM);
        if (n < 0) {
            errf(err, errlen, "cannot load CA file %s: %s", ca_file, gnutls_strerror(n));
            return -1;
        }
        if (n == 0) {
            errf(err, errlen, "CA file %s holds no certificates", ca_file);
            return -1;
        }
        return n;
    }
    int n = gnutls_certificate_set_x509_system_trust(cred);
    if (n < 0) {
        errf(err, errlen, "cannot load the system trust store: %s", gnutls_strerror(n));
        return -1;
    }
    return n;
}

static int has_tls12_or_later(gnutls_priority_t prio)
{
    const unsigned *list = NULL;
    int count = gnutls_priority_protocol_list(prio, &list);
    for (int i = 0; i < count; i++)
        if (list[i] == GNUTLS_TLS1_2 || list[i] == GNUTLS_TLS1_3)
            return 1;
    return 0;
}

/* Parses the admin's priority string with the minimum version appended,
 * and checks that some TLS version 1.2 or later is left. */
static int make_priority(const char *priority, gnutls_priority_t *out, char *err, size_t errlen)
{
    size_t n = strlen(priority) + sizeof MIN_VERSION_SUFFIX;
    char *full = pl_malloc(n);
    snprintf(full, n, "%s%s", priority, MIN_VERSION_SUFFIX);
    const char *pos = NULL;
    int rc = gnutls_priority_init(out, full, &pos);
    size_t at = pos ? (size_t)(pos - full) : 0;
    pl_free(full);
    if (rc >= 0 && has_tls12_or_later(*out))
        return 0;
    if (rc >= 0)
        gnutls_priority_deinit(*out);
    *out = NULL;
    if (rc >= 0 || rc == GNUTLS_E_NO_PRIORITIES_WERE_SET)
        errf(err, errlen, "TLS priority string \"%s\" enables no TLS version 1.2 or later",
             priority);
    else if (at < strlen(priority))
        errf(err, errlen, "invalid TLS priority string \"%s\" at \"%s\": %s", priority,
             priority + at, gnutls_strerror(rc));
    else
        errf(err, errlen, "invalid TLS priority string \"%s\": %s", priority,
             gnutls_strerror(rc));
    return -1;
}

static void global_clear(void)
{
    if (g.prio)
        gnutls_priority_deinit(g.prio);
    if (g.client)
        gnutls_certificate_free_credentials(g.client);
    pl_free(g.ca_file);
    g.prio = NULL;
    g.client = NULL;
    g.ca_file = NULL;
}

/* Initialises GnuTLS, the priority cache every session uses and the trust
 * store clients verify servers against (ca_file, or the system store).
 * Call once, before any other pl_tls function; 0 or -1 with a message. */
int pl_tls_global_init(const char *priority, const char *ca_file, char *err, size_t errlen)
{
    if (g.inited) {
        errf(err, errlen, "TLS is already initialised");
        return -1;
    }
    int rc = gnutls_global_init();
    if (rc < 0) {
        errf(err, errlen, "gnutls_global_init: %s", gnutls_strerror(rc));
        return -1;
    }
    if (make_priority(priority ? priority : DEFAULT_PRIORITY, &g.prio, err, errlen) < 0)
        goto fail;
    rc = gnutls_certificate_allocate_credentials(&g.client);
    if (rc < 0) {
        errf(err, errlen, "cannot allocate credentials: %s", gnutls_strerror(rc));
        goto fail;
    }
    int n = load_trust(g.client, ca_file, err, errlen);
    if (n < 0)
        goto fail;
    if (n == 0)
        pl_log(PL_LOG_WARN, "the system trust store is empty: no peer certificate will verify");
    g.ca_file = ca_file ? pl_strdup(ca_file) : NULL;
    g.inited = 1;
    return 0;
fail:
    global_clear();
    gnutls_global_deinit();
    return -1;
}

/* Releases what pl_tls_global_init set up. Every session and credentials
 * object must have been freed before. */
void pl_tls_global_deinit(void)
{
    if (!g.inited)
        return;
    global_clear();
    gnutls_global_deinit();
    g.inited = 0;
}

/* ==== credentials ==== */

/* RFC 5929 section 4.1: the certificate's signature hash, with MD5 and
 * SHA-1 replaced by SHA-256; GNUTLS_DIG_UNKNOWN (binding undefined) if the
 * signature has no single hash, as with EdDSA. */
static gnutls_digest_algorithm_t end_point_hash(gnutls_x509_crt_t crt)
{
    int sig = gnutls_x509_crt_get_signature_algorithm(crt);
    if (sig < 0 || sig == GNUTLS_SIGN_EDDSA_ED25519 || sig == GNUTLS_SIGN_EDDSA_ED448)
        return GNUTLS_DIG_UNKNOWN;
    gnutls_digest_algorithm_t h = gnutls_sign_get_hash_algorithm((gnutls_sign_algorithm_t)sig);
    if (h == GNUTLS_DIG_MD5 || h == GNUTLS_DIG_SHA1)
        return GNUTLS_DIG_SHA256;
    return h;
}

static gnutls_digest_algorithm_t der_end_point_hash(const gnutls_datum_t *der)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return GNUTLS_DIG_UNKNOWN;
    gnutls_digest_algorithm_t h = GNUTLS_DIG_UNKNOWN;
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) >= 0)
        h = end_point_hash(crt);
    gnutls_x509_crt_deinit(crt);
    return h;
}

/* Loads a PEM certificate chain (leaf first) and its private key, plus
 * the trust store given to pl_tls_global_init for verifying client
 * certificates on sessions using these credentials. The caller owns the
 * result and frees it with pl_tls_creds_free after every session using it. */
pl_tls_creds *pl_tls_creds_load(const char *cert_file, const char *key_file,
                                char *err, size_t errlen)
{
    if (!g.inited) {
        errf(err, errlen, "TLS is not initialised");
        return NULL;
    }
    pl_tls_creds *c = pl_calloc(1, sizeof *c);
    int rc = gnutls_certificate_allocate_credentials(&c->cred);
    if (rc < 0) {
        errf(err, errlen, "cannot allocate credentials: %s", gnutls_strerror(rc));
        pl_free(c);
        return NULL;
    }
    rc = gnutls_certificate_set_x509_key_file2(c->cred, cert_file, key_file,
                                               GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        errf(err, errlen, "cannot load certificate %s with key %s: %s", cert_file, key_file,
             gnutls_strerror(rc));
        goto fail;
    }
    rc = gnutls_certificate_get_crt_raw(c->cred, 0, 0, &c->leaf);
    if (rc < 0) {
        errf(err, errlen, "no certificate in %s: %s", cert_file, gnutls_strerror(rc));
        goto fail;
    }
    c->leaf_hash = der_end_point_hash(&c->leaf);
    if (load_trust(c->cred, g.ca_file, err, errlen) < 0)
        goto fail;
    return c;
fail:
    gnutls_certificate_free_credentials(c->cred);
    pl_free(c);
    return NULL;
}

/* Frees credentials; NULL is ignored. */
void pl_tls_creds_free(pl_tls_creds *c)
{
    if (!c)
        return;
    gnutls_certificate_free_credentials(c->cred);
    pl_free(c);
}

/* ==== sessions ==== */

static pl_tls *session_new(int fd, unsigned flags)
{
    if (!g.inited)
        return NULL;
    pl_tls *t = pl_calloc(1, sizeof *t);
    int rc = gnutls_init(&t->s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (rc < 0) {
        pl_log(PL_LOG_ERROR, "gnutls_init: %s", gnutls_strerror(rc));
        pl_free(t);
        return NULL;
    }
    gnutls_session_set_ptr(t->s, t);
    rc = gnutls_priority_set(t->s, g.prio);
    if (rc < 0) {
        pl_log(PL_LOG_ERROR, "gnutls_priority_set: %s", gnutls_strerror(rc));
        gnutls_deinit(t->s);
        pl_free(t);
        return NULL;
    }
    gnutls_transport_set_int(t->s, fd);
    return t;
}

static int use_creds(pl_tls *t, pl_tls_creds *c)
{
    int rc = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, c->cred);
    if (rc < 0)
        return rc;
    t->creds = c;
    return 0;
}

/* Runs after the ClientHello is parsed: the SNI name picks the
 * credentials. Without a name or a match the default ones stay. */
static int post_client_hello(gnutls_session_t s)
{
    pl_tls *t = gnutls_session_get_ptr(s);
    char name[256];
    size_t len = sizeof name;
    unsigned type = 0;
    if (gnutls_server_name_get(s, name, &len, &type, 0) < 0 || type != GNUTLS_NAME_DNS)
        return 0;
    pl_free(t->sni_name);
    t->sni_name = pl_strdup(name);
    pl_tls_creds *c = t->sni ? t->sni(name, t->sni_ud) : NULL;
    if (c && use_creds(t, c) < 0)
        return GNUTLS_E_CERTIFICATE_ERROR;
    return 0;
}

/* Creates a server session on fd (not owned: pl_tls_free leaves it open)
 * presenting def unless sni returns other credentials for the name the
 * client asks for. NULL if def is NULL, TLS is not initialised or GnuTLS
 * fails. */
pl_tls *pl_tls_server_new(int fd, pl_tls_creds *def, pl_tls_sni_fn sni, void *ud)
{
    if (!def)
        return NULL;
    pl_tls *t = session_new(fd, GNUTLS_SERVER);
    if (!t)
        return NULL;
    t->server = 1;
    t->sni = sni;
    t->sni_ud = ud;
    if (use_creds(t, def) < 0) {
        pl_tls_free(t);
        return NULL;
    }
    gnutls_handshake_set_post_client_hello_function(t->s, post_client_hello);
    return t;
}

/* RFC 6066 section 3: SNI carries host names, never addresses. */
static int is_ip_literal(const char *name)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* Creates a client session on fd (not owned) that sends server_name as
 * SNI (unless it is an IP address) and offers creds as client certificate if the server asks. The
 * peer is not verified until pl_tls_verify_peer is called. Resumption
 * tickets are refused since a client session is never resumed. */
pl_tls *pl_tls_client_new(int fd, const char *server_name, pl_tls_creds *creds)
{
    pl_tls *t = session_new(fd, GNUTLS_CLIENT | GNUTLS_NO_TICKETS);
    if (!t)
        return NULL;
    int rc = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE,
                                    creds ? creds->cred : g.client);
    if (rc >= 0 && server_name && !is_ip_literal(server_name))
        rc = gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, server_name, strlen(server_name));
    if (rc < 0) {
        pl_log(PL_LOG_ERROR, "cannot set up TLS client session: %s", gnutls_strerror(rc));
        pl_tls_free(t);
        return NULL;
    }
    return t;
}

/* Frees the session without sending anything; the fd stays open. NULL is
 * ignored. */
void pl_tls_free(pl_tls *t)
{
    if (!t)
        return;
    gnutls_deinit(t->s);
    pl_free(t->sni_name);
    pl_free(t->err);
    pl_free(t);
}

/* Asks the client for a certificate without naming acceptable CAs (a
 * peer server's certificate may come from any of them). */
void pl_tls_request_client_cert(pl_tls *t)
{
    if (!t->server)
        return;
    gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUEST);
    gnutls_certificate_send_x509_rdn_sequence(t->s, 1);
}

/* ==== I/O ==== */

static int is_again(int rc)
{
    return rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED;
}

/* Frees the extension state GnuTLS keeps for the session's life although
 * only a handshake reads it. No second handshake ever runs: a TLS 1.2
 * renegotiation request ends the session with an error (pl_tls_read), TLS
 * 1.3 post-handshake authentication is never asked for, and sessions are
 * not stored for resumption, which would pack this state. GnuTLS frees
 * the old data and leaves NULL, which its own cleanup accepts. */
static void release_handshake_state(pl_tls *t)
{
    for (size_t i = 0; i < sizeof handshake_only_exts / sizeof handshake_only_exts[0]; i++)
        gnutls_ext_set_data(t->s, handshake_only_exts[i], NULL);
}

/* Drives the handshake: 0 when complete, PL_AGAIN when the socket must
 * become readable or writable (pl_tls_want_write), -1 on failure. */
int pl_tls_handshake(pl_tls *t)
{
    /* driving a finished one again would start a renegotiation */
    if (t->done)
        return 0;
    for (int i = 0; i < MAX_NONFATAL; i++) {
        int rc = gnutls_handshake(t->s);
        if (rc == GNUTLS_E_SUCCESS) {
            t->done = 1;
            release_handshake_state(t);
            return 0;
        }
        if (is_again(rc))
            return PL_AGAIN;
        if (gnutls_error_is_fatal(rc)) {
            gnutls_fail(t, "TLS handshake failed", rc);
            gnutls_alert_send_appropriate(t->s, rc);   /* best effort */
            return -1;
        }
    }
    tls_err(t, "TLS handshake failed: too many warning alerts");
    return -1;
}

/* 1 if the last call that could not finish was waiting to write. */
int pl_tls_want_write(const pl_tls *t)
{
    return gnutls_record_get_direction(t->s) == 1;
}

/* Reads decrypted data. Warning alerts and (TLS 1.2) renegotiation
 * requests are ignored; renegotiation is never performed. A zero len is
 * an error rather than a result that would read as end of stream. */
ssize_t pl_tls_read(pl_tls *t, void *buf, size_t len)
{
    if (len == 0) {
        tls_err(t, "TLS read into an empty buffer");
        return -1;
    }
    for (int i = 0; i < MAX_NONFATAL; i++) {
        ssize_t n = gnutls_record_recv(t->s, buf, len);
        if (n >= 0)
            return n;
        if (is_again((int)n))
            return PL_TLS_WANT;
        if (n == GNUTLS_E_PREMATURE_TERMINATION) {
            tls_err(t, "TLS peer closed the connection without close_notify");
            return -1;
        }
        if (gnutls_error_is_fatal((int)n)) {
            gnutls_fail(t, "TLS read failed", (int)n);
            return -1;
        }
    }
    tls_err(t, "TLS read failed: too many warning alerts or renegotiation requests");
    return -1;
}

/* Encrypts and sends at most one record (16 KiB). After PL_TLS_WANT the
 * record is half sent inside GnuTLS, so the next call must pass the same
 * buf and len. */
ssize_t pl_tls_write(pl_tls *t, const void *buf, size_t len)
{
    if (len == 0)
        return 0;
    ssize_t n = gnutls_record_send(t->s, buf, len);
    if (n >= 0)
        return n;
    if (is_again((int)n))
        return PL_TLS_WANT;
    gnutls_fail(t, "TLS write failed", (int)n);
    return -1;
}

/* Decrypted bytes GnuTLS holds that a read returns without waiting for
 * the socket. */
size_t pl_tls_pending(pl_tls *t)
{
    return gnutls_record_check_pending(t->s);
}

/* Sends close_notify without waiting for the peer's. If the socket is
 * full the alert may stay unsent: the caller is closing anyway. */
void pl_tls_bye(pl_tls *t)
{
    gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

/* The last error message; "no error" if none. */
const char *pl_tls_error(const pl_tls *t)
{
    return t->err ? t->err : "no error";
}

/* ==== session information ==== */

/* The negotiated protocol version, e.g. "TLS1.3". */
const char *pl_tls_version(const pl_tls *t)
{
    const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(t->s));
    return v ? v : "unknown";
}

/* The negotiated cipher suite, e.g. "TLS_AES_256_GCM_SHA384". */
const char *pl_tls_cipher(const pl_tls *t)
{
#if GNUTLS_VERSION_NUMBER >= 0x030703
    const char *c = gnutls_ciphersuite_get(t->s);
#else
    /* COMPAT: GnuTLS before 3.7.3 only names the bulk cipher. */
    const char *c = gnutls_cipher_get_name(gnutls_cipher_get(t->s));
#endif
    return c ? c : "unknown";
}

/* The DNS name the client sent as SNI (server side), or NULL. */
const char *pl_tls_sni(const pl_tls *t)
{
    return t->sni_name;
}

/* ==== channel binding ==== */

static int gnutls_binding(pl_tls *t, gnutls_channel_binding_t type, unsigned char *out,
                          size_t *len)
{
    gnutls_datum_t cb = { NULL, 0 };
    if (gnutls_session_channel_binding(t->s, type, &cb) < 0)
        return -1;
    int ok = cb.size <= *len;
    if (ok) {
        memcpy(out, cb.data, cb.size);
        *len = cb.size;
    }
    gnutls_free(cb.data);
    return ok ? 0 : -1;
}

/* RFC 5929 tls-server-end-point: the hash of the server's certificate,
 * ours on the server side, the peer's on the client side. */
static int end_point(pl_tls *t, unsigned char *out, size_t *len)
{
    gnutls_datum_t der;
    gnutls_digest_algorithm_t h;
    if (t->server) {
        der = t->creds->leaf;
        h = t->creds->leaf_hash;
    } else {
        unsigned n = 0;
        const gnutls_datum_t *peers = gnutls_certificate_get_peers(t->s, &n);
        if (!peers || n == 0)
            return -1;
        der = peers[0];
        h = der_end_point_hash(&der);
    }
    if (h == GNUTLS_DIG_UNKNOWN || gnutls_hash_get_len(h) > *len)
        return -1;
    if (gnutls_hash_fast(h, der.data, der.size, out) < 0)
        return -1;
    *len = gnutls_hash_get_len(h);
    return 0;
}

/* Fills out with channel binding data of the given type after the
 * handshake. -1 if the type is unknown, unavailable with the negotiated
 * version (tls-exporter needs TLS 1.3; tls-unique TLS 1.2 with the
 * extended master secret) or if *len is too small. */
int pl_tls_channel_binding(pl_tls *t, const char *type, unsigned char *out, size_t *len)
{
    if (!t->done)
        return -1;
    gnutls_protocol_t v = gnutls_protocol_get_version(t->s);
    if (strcmp(type, "tls-server-end-point") == 0)
        return end_point(t, out, len);
    if (strcmp(type, "tls-unique") == 0) {
        if (v != GNUTLS_TLS1_2 || !gnutls_session_ext_master_secret_status(t->s))
            return -1;
        return gnutls_binding(t, GNUTLS_CB_TLS_UNIQUE, out, len);
    }
#if GNUTLS_VERSION_NUMBER >= 0x030702
    if (strcmp(type, "tls-exporter") == 0) {
        if (v != GNUTLS_TLS1_3)
            return -1;
        return gnutls_binding(t, GNUTLS_CB_TLS_EXPORTER, out, len);
    }
#endif
    return -1;
}

/* ==== verification ==== */

/* The text of a DER IA5String or UTF8String (short or one-byte long
 * length form, enough for a domain name). */
static int der_string(const gnutls_datum_t *d, const unsigned char **s, size_t *len)
{
    if (d->size < 2 || (d->data[0] != 0x16 && d->data[0] != 0x0c))
        return -1;
    size_t hdr = 2, n = d->data[1];
    if (n == 0x81 && d->size >= 3) {
        n = d->data[2];
        hdr = 3;
    } else if (n & 0x80) {
        return -1;
    }
    if (hdr + n != d->size)
        return -1;
    *s = d->data + hdr;
    *len = n;
    return 0;
}

static int same_name(const unsigned char *s, size_t len, const char *prefix, const char *name)
{
    size_t plen = strlen(prefix), nlen = strlen(name);
    return len == plen + nlen && strncasecmp((const char *)s, prefix, plen) == 0 &&
           strncasecmp((const char *)s + plen, name, nlen) == 0;
}

/* RFC 6120 section 13.7.1.2: an SRV-ID for the xmpp-server or xmpp-client
 * service, or an xmppAddr naming the domain itself. */
static int othername_matches(const char *oid, const gnutls_datum_t *val, const char *name)
{
    const unsigned char *s;
    size_t len;
    if (der_string(val, &s, &len) < 0)
        return 0;
    if (strcmp(oid, OID_SRVNAME) == 0)
        return same_name(s, len, "_xmpp-server.", name) ||
               same_name(s, len, "_xmpp-client.", name);
    if (strcmp(oid, OID_XMPPADDR) == 0)
        return same_name(s, len, "", name);
    return 0;
}

static int xmpp_id_matches(const gnutls_datum_t *der, const char *name)
{
    gnutls_x509_crt_t crt;
    gnutls_subject_alt_names_t sans;
    gnutls_datum_t ext = { NULL, 0 };
    unsigned critical = 0;
    int found = 0;
    if (gnutls_x509_crt_init(&crt) < 0)
        return 0;
    if (gnutls_subject_alt_names_init(&sans) < 0) {
        gnutls_x509_crt_deinit(crt);
        return 0;
    }
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0 ||
        gnutls_x509_crt_get_extension_by_oid2(crt, "2.5.29.17", 0, &ext, &critical) < 0 ||
        gnutls_x509_ext_import_subject_alt_names(&ext, sans, 0) < 0)
        goto out;
    for (unsigned i = 0; i < 256 && !found; i++) {
        unsigned type = 0;
        gnutls_datum_t val, oid;
        if (gnutls_subject_alt_names_get(sans, i, &type, &val, &oid) < 0)
            break;
        if (type == GNUTLS_SAN_OTHERNAME && oid.data)
            found = othername_matches((const char *)oid.data, &val, name);
    }
out:
    gnutls_free(ext.data);
    gnutls_subject_alt_names_deinit(sans);
    gnutls_x509_crt_deinit(crt);
    return found;
}

/* Checks the peer's certificate chain against the trust store and name.
 * GnuTLS matches DNS-IDs (and the CN when there are none) per RFC 6125;
 * a chain that is valid but names another host is accepted if an XMPP
 * SRV-ID or xmppAddr names it. */
int pl_tls_verify_peer(pl_tls *t, const char *name)
{
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(t->s, &n);
    if (!peers || n == 0) {
        tls_err(t, "the peer presented no certificate");
        return -1;
    }
    unsigned status = 0;
    int rc = gnutls_certificate_verify_peers3(t->s, name, &status);
    if (rc < 0) {
        gnutls_fail(t, "certificate verification failed", rc);
        return 0;
    }
    if (status == 0)
        return 1;
    if (name && status == (GNUTLS_CERT_INVALID | GNUTLS_CERT_UNEXPECTED_OWNER) &&
        xmpp_id_matches(&peers[0], name))
        return 1;
    gnutls_datum_t why = { NULL, 0 };
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) < 0) {
        tls_err(t, "certificate for %s is not valid", name ? name : "peer");
        return 0;
    }
    tls_err(t, "certificate for %s is not valid: %s", name ? name : "peer", (char *)why.data);
    gnutls_free(why.data);
    return 0;
}
