/* modules/mod_auth_pg/mod_auth_pg.c: the PostgreSQL authentication
 * provider. Looks up an account's stored SCRAM credentials (written by
 * `parleyctl user add`) in the users table with asynchronous queries.
 * A failed query means the storage is unavailable (PL_EUNAVAIL); no row
 * means no such account (PL_ENOENT).
 *
 * Found credentials are cached in memory, per host and username, so that
 * a login usually costs no query. The cache stays correct through
 * PostgreSQL notifications: a trigger on the users table (schema version
 * 3) announces every changed or deleted account on the channel
 * parley_users, whoever changed it, and the entry goes. The cache answers
 * only while that LISTEN is in effect; when the listening connection is
 * lost everything is dropped, and lookups query the database until the
 * LISTEN is back. Only existing accounts are cached, so an account
 * created after a failed login works at once. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <parley/module.h>

#define SQL_CREDS \
    "SELECT iterations, salt, sha1_stored_key, sha1_server_key, " \
    "sha256_stored_key, sha256_server_key FROM users " \
    "WHERE host = $1 AND username = $2"
#define SQL_EXISTS "SELECT 1 FROM users WHERE host = $1 AND username = $2"

#define CHANNEL "parley_users"   /* the users table's trigger (schema.c) */
#define KEY_MAX 2048             /* "host/username" */
#define TEXT_MAX 4096            /* key and credentials of one entry */
#define NFIELDS 5                /* salt and the four keys */
#define INVAL_BUCKETS 256

/* ==== the credentials cache ==== */

/* Credentials in one block: the strings one after another, each ending
 * in NUL, at the offsets in off[] (the key first, at 0). */
typedef struct blob {
    uint32_t iterations;
    uint16_t off[NFIELDS];
    uint16_t len;
    char text[];
} blob;

/* A cached account: its place in the hash table (link, with the key's
 * hash) and the LRU list (most recently used first), when it was
 * fetched, and a private copy of the credentials. */
typedef struct entry {
    pl_hnode link;
    struct entry *prev, *next;
    long long stored_ms;
    blob *b;
} entry;

typedef struct cache {
    pl_htab table;            /* key -> entry */
    size_t max;               /* 0: caching is off */
    entry *head, *tail;       /* LRU order */
    long long ttl_ms;
    /* Whether a query's answer may still be cached when it arrives: the
     * epoch changes when everything is dropped, and a key's bucket
     * counter when a notification names a key hashing there. */
    uint32_t epoch;
    uint32_t inval[INVAL_BUCKETS];
} cache;

/* "host/username" into out; 0 if it does not fit. A nodeprepped
 * username and a domain cannot contain '/', so the key is unambiguous;
 * it is the payload the trigger sends. */
static int make_key(char *out, size_t n, const char *host, const char *username)
{
    size_t hl = strlen(host), ul = strlen(username);
    if (hl + ul + 2 > n)
        return 0;
    memcpy(out, host, hl);
    out[hl] = '/';
    memcpy(out + hl + 1, username, ul + 1);
    return 1;
}

static const char *blob_str(const blob *b, int i)
{
    return b->text + b->off[i];
}

/* Copies key and creds into one block; NULL if too large to cache. */
static blob *blob_new(const char *key, const pl_auth_creds *c)
{
    const char *parts[1 + NFIELDS] = { key, c->salt_b64, c->sha1_stored_key,
                                       c->sha1_server_key, c->sha256_stored_key,
                                       c->sha256_server_key };
    size_t lens[1 + NFIELDS], total = 0;
    for (int i = 0; i <= NFIELDS; i++) {
        lens[i] = strlen(parts[i]) + 1;
        total += lens[i];
    }
    if (total > TEXT_MAX)
        return NULL;
    blob *b = pl_malloc(sizeof *b + total);
    b->iterations = c->iterations;
    b->len = (uint16_t)total;
    size_t o = 0;
    for (int i = 0; i <= NFIELDS; i++) {
        if (i > 0)
            b->off[i - 1] = (uint16_t)o;
        memcpy(b->text + o, parts[i], lens[i]);
        o += lens[i];
    }
    return b;
}

static blob *blob_copy(const blob *b)
{
    blob *d = pl_malloc(sizeof *d + b->len);
    memcpy(d, b, sizeof *d + b->len);
    return d;
}

static pl_auth_creds blob_creds(const blob *b)
{
    pl_auth_creds c = {
        .iterations = b->iterations,
        .salt_b64 = blob_str(b, 0),
        .sha1_stored_key = blob_str(b, 1),
        .sha1_server_key = blob_str(b, 2),
        .sha256_stored_key = blob_str(b, 3),
        .sha256_server_key = blob_str(b, 4),
    };
    return c;
}

static void lru_unlink(cache *c, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(cache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    else
        c->tail = e;
    c->head = e;
}

static void cache_remove(cache *c, entry *e)
{
    pl_htab_remove(&c->table, &e->link);
    lru_unlink(c, e);
    pl_free(e->b);
    pl_free(e);
}

/* Whether a table node is the entry of key (the blob's first string). */
static int entry_has_key(const pl_hnode *n, const void *key)
{
    return strcmp(PL_HTAB_ENTRY(n, entry, link)->b->text, key) == 0;
}

static entry *cache_find(cache *c, const char *key, uint32_t h)
{
    return PL_HTAB_ENTRY(pl_htab_find(&c->table, h, key, entry_has_key), entry, link);
}

/* Drops every entry; the table keeps its size. */
static void cache_clear(cache *c)
{
    while (c->head)
        cache_remove(c, c->head);
}

static void cache_free(cache *c)
{
    cache_clear(c);
    pl_htab_clear(&c->table);
}

/* Stores (or replaces) key's credentials, evicting the least recently
 * used entry when the cache is full. */
static void cache_put(cache *c, const char *key, uint32_t h, const pl_auth_creds *creds)
{
    blob *b = blob_new(key, creds);
    if (!b)
        return;
    entry *old = cache_find(c, key, h);
    if (old)
        cache_remove(c, old);
    while (pl_htab_count(&c->table) >= c->max && c->tail)
        cache_remove(c, c->tail);
    entry *e = pl_calloc(1, sizeof *e);
    e->b = b;
    e->stored_ms = pl_now_ms();
    pl_htab_insert(&c->table, &e->link, h);
    lru_push_front(c, e);
}

/* The entry for key if it is fresh (an expired one is dropped), moved
 * to the front of the LRU list. */
static entry *cache_get(cache *c, const char *key, uint32_t h)
{
    entry *e = cache_find(c, key, h);
    if (!e)
        return NULL;
    if (pl_now_ms() - e->stored_ms >= c->ttl_ms) {
        cache_remove(c, e);
        return NULL;
    }
    lru_unlink(c, e);
    lru_push_front(c, e);
    return e;
}

/* ==== instances ==== */

/* An answer from the cache, waiting to be given: the provider contract
 * says callbacks run later, never inside get_creds. */
typedef struct hit {
    struct hit *next;
    pl_auth_creds_cb cb;
    void *ud;
    blob *b;
} hit;

/* A loaded instance: the provider callbacks receive a host, and the
 * database API wants the module handle of that host's instance. A global
 * instance (host NULL) serves hosts without their own. */
typedef struct query_ctx query_ctx;
typedef struct instance {
    struct instance *next;
    pl_module *m;
    pl_host *host;
    query_ctx *pending;   /* queries whose callback has not run yet */
    cache cache;
    hit *hits, **hits_tail;
    pl_timer *hits_timer; /* gives the waiting hits their answers */
} instance;

static instance *instances;

static instance *instance_of(pl_host *h)
{
    instance *global = NULL;
    for (instance *i = instances; i; i = i->next) {
        if (i->host == h)
            return i;
        if (!i->host)
            global = i;
    }
    return global;
}

/* A notification from the users table: payload names the account that
 * changed ("" for all of them), NULL means some may have been missed. */
static void users_changed(const char *payload, void *ud)
{
    instance *inst = ud;
    cache *c = &inst->cache;
    if (!payload || !*payload) {
        c->epoch++;
        cache_clear(c);
        return;
    }
    uint32_t h = pl_strhash(payload);
    c->inval[h % INVAL_BUCKETS]++;
    entry *e = cache_find(c, payload, h);
    if (e)
        cache_remove(c, e);
}

/* Answers the waiting hits. New hits that their callbacks cause wait
 * for a timer of their own. */
static void hits_fire(void *ud)
{
    instance *inst = ud;
    hit *list = inst->hits;
    inst->hits = NULL;
    inst->hits_tail = &inst->hits;
    inst->hits_timer = NULL;
    while (list) {
        hit *x = list;
        list = x->next;
        pl_auth_creds creds = blob_creds(x->b);
        x->cb(PL_OK, &creds, x->ud);
        pl_free(x->b);
        pl_free(x);
    }
}

static void hit_queue(instance *inst, const entry *e, pl_auth_creds_cb cb, void *ud)
{
    hit *x = pl_calloc(1, sizeof *x);
    x->cb = cb;
    x->ud = ud;
    x->b = blob_copy(e->b);
    *inst->hits_tail = x;
    inst->hits_tail = &x->next;
    if (!inst->hits_timer)
        inst->hits_timer = pl_timer_add(inst->m, 0, 0, hits_fire, inst);
}

/* ==== queries ==== */

/* One query in flight: the core's callback and its data, carried to the
 * database callback. A credentials query that may fill the cache also
 * carries the key and the cache's counters when it started. */
struct query_ctx {
    query_ctx *prev, *next;
    instance *inst;
    pl_auth_creds_cb creds_cb;
    pl_auth_status_cb status_cb;
    void *ud;
    char *key;            /* NULL: do not cache the answer */
    uint32_t hash, epoch, inval;
};

static query_ctx *ctx_new(instance *inst)
{
    query_ctx *q = pl_calloc(1, sizeof *q);
    q->inst = inst;
    q->next = inst->pending;
    if (q->next)
        q->next->prev = q;
    inst->pending = q;
    return q;
}

static void ctx_free(query_ctx *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        q->inst->pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
    pl_free(q->key);
    pl_free(q);
}

/* Parses a positive iteration count; 0 if the stored text is not one. */
static unsigned parse_iterations(const char *s)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > 0xFFFFFFFFUL || *s == '-')
        return 0;
    return (unsigned)v;
}

/* Remembers what q needs to cache its answer: only while the LISTEN is
 * in effect, since a change committed before it may have gone unheard. */
static void ctx_cacheable(query_ctx *q, const char *key, uint32_t h)
{
    cache *c = &q->inst->cache;
    if (!key || !pl_db_listening(CHANNEL))
        return;
    q->key = pl_strdup(key);
    q->hash = h;
    q->epoch = c->epoch;
    q->inval = c->inval[h % INVAL_BUCKETS];
}

/* Caches q's answer unless the account may have changed since the query
 * started: a notification for a key in the same bucket, everything
 * dropped, or the LISTEN lost. */
static void ctx_store(query_ctx *q, const pl_auth_creds *creds)
{
    cache *c = &q->inst->cache;
    if (!q->key || c->max == 0 || !pl_db_listening(CHANNEL) || q->epoch != c->epoch ||
        q->inval != c->inval[q->hash % INVAL_BUCKETS])
        return;
    cache_put(c, q->key, q->hash, creds);
}

static void creds_done(const pl_db_result *r, void *ud)
{
    query_ctx *q = ud;
    pl_auth_creds_cb cb = q->creds_cb;
    void *cb_ud = q->ud;
    pl_module *m = q->inst->m;

    if (!pl_db_ok(r)) {
        ctx_free(q);
        pl_mlog(m, PL_LOG_WARN, "credentials query failed: %s", pl_db_error(r));
        cb(PL_EUNAVAIL, NULL, cb_ud);
        return;
    }
    if (pl_db_rows(r) < 1) {
        ctx_free(q);
        cb(PL_ENOENT, NULL, cb_ud);
        return;
    }
    pl_auth_creds creds = {
        .iterations = parse_iterations(pl_db_value(r, 0, 0)),
        .salt_b64 = pl_db_value(r, 0, 1),
        .sha1_stored_key = pl_db_value(r, 0, 2),
        .sha1_server_key = pl_db_value(r, 0, 3),
        .sha256_stored_key = pl_db_value(r, 0, 4),
        .sha256_server_key = pl_db_value(r, 0, 5),
    };
    if (creds.iterations == 0 || !*creds.salt_b64) {
        ctx_free(q);
        pl_mlog(m, PL_LOG_ERROR, "stored credentials are malformed (iterations or salt)");
        cb(PL_EUNAVAIL, NULL, cb_ud);
        return;
    }
    ctx_store(q, &creds);
    ctx_free(q);
    cb(PL_OK, &creds, cb_ud);
}

static void exists_done(const pl_db_result *r, void *ud)
{
    query_ctx *q = ud;
    pl_auth_status_cb cb = q->status_cb;
    void *cb_ud = q->ud;
    pl_module *m = q->inst->m;
    ctx_free(q);

    if (!pl_db_ok(r)) {
        pl_mlog(m, PL_LOG_WARN, "account query failed: %s", pl_db_error(r));
        cb(PL_EUNAVAIL, cb_ud);
        return;
    }
    cb(pl_db_rows(r) > 0 ? PL_OK : PL_ENOENT, cb_ud);
}

/* Starts one query for the host's instance; on a synchronous failure the
 * context is freed and no callback will run. key (NULL: none) is the
 * cache key a credentials answer may be stored under. */
static int start_query(instance *inst, pl_host *h, const char *sql, const char *username,
                       const char *key, uint32_t hash, pl_auth_creds_cb creds_cb,
                       pl_auth_status_cb status_cb, void *ud)
{
    query_ctx *q = ctx_new(inst);
    q->creds_cb = creds_cb;
    q->status_cb = status_cb;
    q->ud = ud;
    ctx_cacheable(q, key, hash);
    const char *params[2] = { pl_host_name(h), username };
    int rc = pl_db_query(inst->m, sql, 2, params, creds_cb ? creds_done : exists_done, q);
    if (rc != PL_OK) {
        ctx_free(q);
        return rc < 0 ? rc : PL_EUNAVAIL;
    }
    return PL_OK;
}

static int get_creds(pl_host *h, const char *username, pl_auth_creds_cb cb, void *ud)
{
    instance *inst = instance_of(h);
    if (!cb || !inst || !h || !username)
        return PL_EINVAL;
    char key[KEY_MAX];
    if (inst->cache.max == 0 || !make_key(key, sizeof key, pl_host_name(h), username))
        return start_query(inst, h, SQL_CREDS, username, NULL, 0, cb, NULL, ud);
    uint32_t hash = pl_strhash(key);
    entry *e = pl_db_listening(CHANNEL) ? cache_get(&inst->cache, key, hash) : NULL;
    if (e) {
        hit_queue(inst, e, cb, ud);
        return PL_OK;
    }
    return start_query(inst, h, SQL_CREDS, username, key, hash, cb, NULL, ud);
}

static int user_exists(pl_host *h, const char *username, pl_auth_status_cb cb, void *ud)
{
    instance *inst = instance_of(h);
    if (!cb || !inst || !h || !username)
        return PL_EINVAL;
    return start_query(inst, h, SQL_EXISTS, username, NULL, 0, NULL, cb, ud);
}

static const pl_auth_provider provider = {
    .name = "pg",
    .get_creds = get_creds,
    .user_exists = user_exists,
};

/* ==== lifecycle ==== */

static void auth_pg_unload(pl_module *m)
{
    instance **pp = &instances;
    while (*pp && (*pp)->m != m)
        pp = &(*pp)->next;
    instance *inst = *pp;
    if (!inst)
        return;
    *pp = inst->next;
    /* Answers already taken from the cache are given; the timer that
     * would have given them goes. */
    pl_timer_cancel(inst->hits_timer);
    inst->hits_timer = NULL;
    while (inst->hits) {
        hit *x = inst->hits;
        inst->hits = x->next;
        pl_auth_creds creds = blob_creds(x->b);
        x->cb(PL_OK, &creds, x->ud);
        pl_free(x->b);
        pl_free(x);
    }
    /* The core cancels our pending queries; their requesters still wait
     * for an answer, so they hear that the storage went away. */
    while (inst->pending) {
        query_ctx *q = inst->pending;
        pl_auth_creds_cb creds_cb = q->creds_cb;
        pl_auth_status_cb status_cb = q->status_cb;
        void *ud = q->ud;
        ctx_free(q);
        if (creds_cb)
            creds_cb(PL_EUNAVAIL, NULL, ud);
        else
            status_cb(PL_EUNAVAIL, ud);
    }
    cache_free(&inst->cache);
    pl_free(inst);
}

static int auth_pg_load(pl_module *m)
{
    instance *inst = pl_calloc(1, sizeof *inst);
    inst->m = m;
    inst->host = pl_module_host(m);
    inst->hits_tail = &inst->hits;
    inst->cache.max = (size_t)pl_option_int(m, "cache_size");
    inst->cache.ttl_ms = pl_option_int(m, "cache_ttl") * 1000;
    inst->next = instances;
    instances = inst;
    int rc = pl_provide_auth(m, &provider);
    if (rc == PL_OK && inst->cache.max > 0)
        rc = pl_db_listen(m, CHANNEL, users_changed, inst);
    if (rc < 0)
        auth_pg_unload(m);
    return rc;
}

static const pl_option auth_pg_options[] = {
    { .name = "cache_size", .type = PL_OPT_INT, .def = "100000", .min = 0, .max = 10000000,
      .help = "accounts whose credentials are kept in memory (0: no cache)" },
    { .name = "cache_ttl", .type = PL_OPT_DURATION, .def = "1h", .min = 1, .max = 2592000,
      .help = "how long cached credentials are used before they are fetched again" },
    { .name = NULL }
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "auth_pg",
    .description = "Authentication against SCRAM credentials stored in PostgreSQL",
    .options = auth_pg_options,
    .load = auth_pg_load,
    .unload = auth_pg_unload,
};
