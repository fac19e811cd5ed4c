/* modules/mod_offline/mod_offline.c: offline messages (XEP-0160, RFC 6121
 * 8.5.2.1.1 and 8.5.2.2). A chat or normal message for an account with no
 * available resource is stored in the table offline, stamped with a
 * <delay/> (XEP-0203); it counts as accepted only once the insert has
 * committed, and every other outcome (no such account, quota reached,
 * database down or failing) answers the sender with service-unavailable.
 * One store statement runs at a time and takes, as one batch, the messages
 * that arrived while the previous one ran.
 * When a session of the account becomes available with a non-negative
 * priority, the stored messages are sent to it in order and then exactly
 * those are deleted.
 *
 * Most logins find nothing stored, so the module keeps the set of
 * accounts that may have stored messages and skips the query for the
 * others. The set is read from the table when needed and kept current by
 * the trigger on it (schema version 4), which announces every account
 * given a message on the channel parley_offline, whoever inserted it; an
 * account leaves the set when a delivery has handed over everything. The
 * set is trusted only while that LISTEN is in effect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <parley/module.h>

#define NS_DELAY      "urn:xmpp:delay"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_HINTS      "urn:xmpp:hints"

/* Messages fetched per round trip when a session comes online. */
#define FETCH_BATCH 500
#define FETCH_BATCH_S "500"

/* Most messages, and about the most bytes of stored text, one store
 * statement takes. */
#define STORE_BATCH 256
#define STORE_BATCH_BYTES (1024 * 1024)

/* One statement stores a batch: $2 and $3 are arrays of the usernames and
 * stored stanzas, in arrival order. A row is kept if its account exists
 * and the account's stored messages plus the row's rank among the batch's
 * rows of that account stay within the quota $4; the kept rows are
 * inserted in arrival order, so ids rise in that order. The answer has one
 * row per message, in order: whether the account exists, whether the
 * message was stored, its rank in the batch for its account and the
 * account's count before the statement. Only one runs at a time (deletes
 * only lower the counts), so the quota is exact. */
#define SQL_STORE \
    "WITH batch AS (" \
    "  SELECT b.ord, b.username, b.stanza," \
    "         row_number() OVER (PARTITION BY b.username ORDER BY b.ord) AS rank" \
    "  FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS b (username, stanza, ord)), " \
    "held AS (" \
    "  SELECT username, count(*) AS n FROM offline" \
    "  WHERE host = $1 AND username = ANY ($2::text[]) GROUP BY username), " \
    "checked AS (" \
    "  SELECT batch.ord, batch.username, batch.stanza, batch.rank," \
    "         coalesce(held.n, 0) AS held," \
    "         u.username IS NOT NULL AS known," \
    "         u.username IS NOT NULL AND coalesce(held.n, 0) + batch.rank <= $4::bigint AS keep" \
    "  FROM batch" \
    "  LEFT JOIN users u ON u.host = $1 AND u.username = batch.username" \
    "  LEFT JOIN held ON held.username = batch.username), " \
    "ins AS (" \
    "  INSERT INTO offline (host, username, stanza)" \
    "  SELECT $1, username, stanza FROM checked WHERE keep ORDER BY ord) " \
    "SELECT ord, known, keep, rank, held FROM checked ORDER BY ord"
#define SQL_FETCH \
    "SELECT id, stanza FROM offline WHERE host = $1 AND username = $2 " \
    "ORDER BY id LIMIT " FETCH_BATCH_S
#define SQL_DELETE \
    "DELETE FROM offline WHERE host = $1 AND username = $2 AND id = ANY ($3::bigint[])"
#define SQL_HOLDERS "SELECT DISTINCT username FROM offline WHERE host = $1"

#define CHANNEL "parley_offline"   /* the offline table's trigger (schema.c) */

typedef struct instance instance;

/* A message waiting for its insert: queued, then in the batch of the
 * statement in flight. */
typedef struct store_req {
    struct store_req *next;
    char *user;
    uint64_t origin;    /* the sender's session id, 0 if not a local client */
    pl_stanza *msg;     /* the message as received (referenced) */
    char *xml;          /* what is stored: the message with its <delay/> */
    size_t xml_len;
} store_req;

/* A delivery in progress to one session: fetch, send, delete, repeat
 * while batches come back full. At most one per account. */
typedef struct fetch_req {
    struct fetch_req *prev, *next;
    instance *inst;
    char *user;
    uint64_t sid;
    int again;          /* a message was stored meanwhile: fetch once more */
    int full;           /* the last batch was full */
    uint64_t since;     /* the instance's marks when the last fetch was sent */
} fetch_req;

/* An account that may have stored messages. */
typedef struct holder {
    pl_hnode link;
    uint64_t mark;      /* the instance's marks when it was last marked */
    char name[];
} holder;

/* What the set of holders says: nothing (read it first), nothing yet (it
 * is being read), or which accounts may have stored messages. */
enum { HOLDERS_UNKNOWN, HOLDERS_LOADING, HOLDERS_KNOWN };

struct instance {
    pl_module *m;
    const char *host;
    long long quota;
    char quota_text[24];       /* quota as the statement's parameter */
    store_req *queue;          /* waiting for a statement, oldest first */
    store_req **queue_tail;    /* the last next pointer of queue */
    store_req *batch;          /* in the statement in flight, in order */
    int batch_n;
    fetch_req *fetches;
    pl_htab holders;           /* holder by name */
    int holders_state;
    uint32_t epoch;            /* bumped whenever notifications were missed */
    uint32_t load_epoch;       /* epoch when the holders query was sent */
    uint64_t marks;            /* count of holder marks so far */
};

/* The per-session marker: present while the session is available with a
 * non-negative priority and has been offered its stored messages. */
static int eligible_marker;

/* ==== accounts that may have stored messages ==== */

static const char *holder_name(const pl_hnode *n)
{
    return PL_HTAB_ENTRY(n, holder, link)->name;
}

static holder *holder_find(const instance *inst, const char *user)
{
    return PL_HTAB_ENTRY(pl_htab_find_str(&inst->holders, user, holder_name), holder, link);
}

/* Notes that user may have stored messages (from now on). */
static void holder_mark(instance *inst, const char *user)
{
    holder *h = holder_find(inst, user);
    if (!h) {
        size_t len = strlen(user) + 1;
        h = pl_malloc(sizeof *h + len);
        memcpy(h->name, user, len);
        pl_htab_insert(&inst->holders, &h->link, pl_strhash(user));
    }
    h->mark = ++inst->marks;
}

/* Everything user had stored up to marks `since` was handed over: the
 * account leaves the set unless it was marked after that. */
static void holder_done(instance *inst, const char *user, uint64_t since)
{
    holder *h = holder_find(inst, user);
    if (h && h->mark <= since) {
        pl_htab_remove(&inst->holders, &h->link);
        pl_free(h);
    }
}

static void holders_free(instance *inst)
{
    pl_htab_iter it;
    for (pl_hnode *n = pl_htab_first(&inst->holders, &it); n; n = pl_htab_next(&it))
        pl_free(PL_HTAB_ENTRY(n, holder, link));
    pl_htab_clear(&inst->holders);
}

static void holders_loaded(const pl_db_result *res, void *ud)
{
    instance *inst = ud;
    if (!pl_db_ok(res) || inst->load_epoch != inst->epoch) {
        if (!pl_db_ok(res))
            pl_mlog(inst->m, PL_LOG_WARN, "cannot read which accounts have offline "
                    "messages: %s", pl_db_error(res));
        inst->holders_state = HOLDERS_UNKNOWN;
        return;
    }
    for (int i = 0, n = pl_db_rows(res); i < n; i++)
        holder_mark(inst, pl_db_value(res, i, 0));
    inst->holders_state = HOLDERS_KNOWN;
    pl_mlog(inst->m, PL_LOG_DEBUG, "%zu account%s with offline messages",
            pl_htab_count(&inst->holders), pl_htab_count(&inst->holders) == 1 ? "" : "s");
}

/* Whether user may have stored messages. Until the set is known it says
 * yes, and starts reading the set if notifications are flowing (marks
 * made while it is read stay). */
static int may_hold(instance *inst, const char *user)
{
    if (!pl_db_listening(CHANNEL))
        return 1;
    if (inst->holders_state == HOLDERS_KNOWN)
        return holder_find(inst, user) != NULL;
    if (inst->holders_state == HOLDERS_UNKNOWN) {
        const char *params[1] = { inst->host };
        inst->load_epoch = inst->epoch;
        if (pl_db_query(inst->m, SQL_HOLDERS, 1, params, holders_loaded, inst) == PL_OK)
            inst->holders_state = HOLDERS_LOADING;
    }
    return 1;
}

static void kick_delivery(instance *inst, const char *user);

/* A notification from the trigger: "host/username" was given a message.
 * NULL: some may have been missed, so the set is read again when next
 * needed. */
static void offline_changed(const char *payload, void *ud)
{
    instance *inst = ud;
    if (!payload) {
        inst->epoch++;
        holders_free(inst);
        if (inst->holders_state == HOLDERS_KNOWN)
            inst->holders_state = HOLDERS_UNKNOWN;
        return;
    }
    const char *slash = strchr(payload, '/');
    size_t hlen = strlen(inst->host);
    if (!slash || (size_t)(slash - payload) != hlen || memcmp(payload, inst->host, hlen) != 0)
        return;
    holder_mark(inst, slash + 1);
    kick_delivery(inst, slash + 1);
}

/* ==== storing ==== */

static void store_free(store_req *r)
{
    pl_stanza_unref(r->msg);
    pl_free(r->user);
    pl_free(r->xml);
    pl_free(r);
}

/* Answers the sender with service-unavailable (RFC 6121 8.5.2.2.1). */
static void bounce(const store_req *r, const char *text)
{
    pl_stanza *err = pl_stanza_error_reply(r->msg, "cancel", "service-unavailable", text);
    pl_session *s = r->origin ? pl_session_by_id(r->origin) : NULL;
    if (s)
        pl_send(s, err);
    else if (pl_node_attr(pl_stanza_root(err), "to"))
        pl_route(err);
    pl_stanza_unref(err);
}

/* Frees a list of requests, bouncing each first if answer is set. */
static void store_free_list(store_req *list, int answer)
{
    while (list) {
        store_req *next = list->next;
        if (answer)
            bounce(list, NULL);
        store_free(list);
        list = next;
    }
}

/* Takes the oldest queued requests off the queue, as many as one
 * statement takes (at least one); returns them as a list. */
static store_req *take_batch(instance *inst, int *n)
{
    store_req *head = inst->queue, *last = head, *r = head->next;
    size_t bytes = head->xml_len;
    int k = 1;
    while (r && k < STORE_BATCH && bytes + r->xml_len <= STORE_BATCH_BYTES) {
        bytes += r->xml_len;
        k++;
        last = r;
        r = r->next;
    }
    last->next = NULL;
    inst->queue = r;
    if (!r)
        inst->queue_tail = &inst->queue;
    *n = k;
    return head;
}

static void store_done(const pl_db_result *res, void *ud);

/* Unless a statement is in flight, sends the oldest queued requests as
 * one. While the database is unavailable, every queued request is
 * bounced. */
static void store_send(instance *inst)
{
    while (!inst->batch && inst->queue) {
        int n;
        store_req *batch = take_batch(inst, &n);
        pl_buf users = PL_BUF_INIT, stanzas = PL_BUF_INIT;
        pl_buf_putc(&users, '{');
        pl_buf_putc(&stanzas, '{');
        for (store_req *r = batch; r; r = r->next) {
            pl_db_array_add(&users, r->user);
            pl_db_array_add(&stanzas, r->xml);
        }
        pl_buf_putc(&users, '}');
        pl_buf_putc(&stanzas, '}');
        const char *params[4] = { inst->host, users.data, stanzas.data, inst->quota_text };
        int rc = pl_db_query(inst->m, SQL_STORE, 4, params, store_done, inst);
        pl_buf_free(&users);
        pl_buf_free(&stanzas);
        if (rc == PL_OK) {
            inst->batch = batch;
            inst->batch_n = n;
            return;
        }
        pl_mlog(inst->m, PL_LOG_WARN, "cannot store %d offline message%s: "
                "database unavailable", n, n == 1 ? "" : "s");
        store_free_list(batch, 1);
    }
}

/* True if the answer has one row per message of the batch, in order. */
static int answer_matches(const pl_db_result *res, int n)
{
    if (pl_db_rows(res) != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (strtoll(pl_db_value(res, i, 0), NULL, 10) != i + 1)
            return 0;
    return 1;
}

/* Answers the senders of a stored batch: a stored message is accepted,
 * the others are bounced. Each account with a message stored is offered
 * its messages once. */
static void batch_answer(instance *inst, store_req *batch, const pl_db_result *res)
{
    int i = 0, stored = 0;
    for (const store_req *r = batch; r; r = r->next, i++) {
        if (strcmp(pl_db_value(res, i, 2), "t") == 0) {
            stored++;
            continue;
        }
        if (strcmp(pl_db_value(res, i, 1), "t") != 0) {
            bounce(r, NULL);
            continue;
        }
        /* refused for the quota: log at the account's first refused row */
        long long rank = strtoll(pl_db_value(res, i, 3), NULL, 10);
        long long held = strtoll(pl_db_value(res, i, 4), NULL, 10);
        long long first = held < inst->quota ? inst->quota - held + 1 : 1;
        if (rank == first)
            pl_mlog(inst->m, PL_LOG_INFO, "offline storage of %s is full (%lld messages)",
                    r->user, inst->quota);
        bounce(r, "offline storage is full");
    }
    pl_mlog(inst->m, PL_LOG_DEBUG, "stored %d of %d offline message%s", stored, i,
            i == 1 ? "" : "s");
    /* the first row of an account is stored if any of its rows is */
    i = 0;
    for (const store_req *r = batch; r; r = r->next, i++)
        if (strcmp(pl_db_value(res, i, 2), "t") == 0 && strcmp(pl_db_value(res, i, 3), "1") == 0) {
            holder_mark(inst, r->user);
            kick_delivery(inst, r->user);
        }
}

static void store_done(const pl_db_result *res, void *ud)
{
    instance *inst = ud;
    store_req *batch = inst->batch;
    int n = inst->batch_n;
    inst->batch = NULL;
    inst->batch_n = 0;
    if (!pl_db_ok(res) || !answer_matches(res, n)) {
        pl_mlog(inst->m, PL_LOG_WARN, "storing %d offline message%s failed: %s", n,
                n == 1 ? "" : "s", pl_db_ok(res) ? "unexpected answer" : pl_db_error(res));
        store_send(inst);
        store_free_list(batch, 1);
        return;
    }
    /* the next batch goes to the database while this one is answered */
    store_send(inst);
    batch_answer(inst, batch, res);
    store_free_list(batch, 0);
}

/* XEP-0082 UTC date-time of now. */
static void utc_stamp(char *out, size_t n)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The stored form of msg: a copy with <delay from=host stamp=now/>. */
static char *serialize_delayed(const instance *inst, const pl_stanza *msg)
{
    char stamp[32];
    utc_stamp(stamp, sizeof stamp);
    pl_stanza *copy = pl_stanza_copy(msg);
    pl_node *d = pl_node_add(copy, pl_stanza_root(copy), "delay", NS_DELAY);
    pl_node_set_attr(copy, d, "from", inst->host);
    pl_node_set_attr(copy, d, "stamp", stamp);
    pl_buf b = PL_BUF_INIT;
    pl_xml_serialize(pl_stanza_root(copy), &b, PL_NS_CLIENT);
    pl_stanza_unref(copy);
    return pl_buf_steal(&b);
}

/* Messages not worth keeping: a <no-store/> hint (XEP-0334) or nothing
 * but chat states (XEP-0085). */
static int not_for_storage(const pl_node *root)
{
    if (pl_node_child(root, "no-store", NS_HINTS))
        return 1;
    int states = 0;
    for (const pl_node *c = pl_node_first_element(root); c; c = pl_node_next(c, NULL, NULL)) {
        if (strcmp(c->ns, NS_CHATSTATES) != 0)
            return 0;
        states = 1;
    }
    return states;
}

static int on_offline(pl_event *ev, void *ud)
{
    instance *inst = ud;
    const pl_node *root = pl_stanza_root(ev->stanza);
    const char *type = pl_node_attr(root, "type");
    if (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0)
        return PL_PASS;
    if (!ev->to || !ev->to->node)
        return PL_PASS;
    if (not_for_storage(root))
        return PL_HANDLED;
    store_req *r = pl_calloc(1, sizeof *r);
    r->user = pl_strdup(ev->to->node);
    r->origin = ev->origin ? pl_session_id(ev->origin) : 0;
    r->msg = pl_stanza_ref(ev->stanza);
    r->xml = serialize_delayed(inst, ev->stanza);
    r->xml_len = strlen(r->xml);
    *inst->queue_tail = r;
    inst->queue_tail = &r->next;
    store_send(inst);
    return PL_HANDLED;
}

/* ==== delivering ==== */

static int is_eligible(instance *inst, pl_session *s)
{
    return pl_session_data(s, inst->m) == &eligible_marker && pl_session_available(s)
        && pl_session_priority(s) >= 0;
}

static fetch_req *fetch_of(instance *inst, const char *user)
{
    for (fetch_req *f = inst->fetches; f; f = f->next)
        if (strcmp(f->user, user) == 0)
            return f;
    return NULL;
}

static void fetch_free(fetch_req *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        f->inst->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    pl_free(f->user);
    pl_free(f);
}

static void fetch_done(const pl_db_result *res, void *ud);

static int fetch_query(fetch_req *f)
{
    f->again = 0;
    f->full = 0;
    f->since = f->inst->marks;
    const char *params[2] = { f->inst->host, f->user };
    return pl_db_query(f->inst->m, SQL_FETCH, 2, params, fetch_done, f);
}

/* Starts delivering user's stored messages to s, unless a delivery to the
 * account is under way already (it is then told to look again) or the
 * account is known to have none. */
static void fetch_start(instance *inst, pl_session *s, const char *user)
{
    fetch_req *f = fetch_of(inst, user);
    if (f) {
        f->again = 1;
        return;
    }
    if (!may_hold(inst, user)) {
        pl_mlog(inst->m, PL_LOG_DEBUG, "%s has no offline messages", user);
        return;
    }
    f = pl_calloc(1, sizeof *f);
    f->inst = inst;
    f->user = pl_strdup(user);
    f->sid = pl_session_id(s);
    f->next = inst->fetches;
    if (f->next)
        f->next->prev = f;
    inst->fetches = f;
    if (fetch_query(f) != PL_OK) {
        pl_mlog(inst->m, PL_LOG_WARN, "cannot fetch offline messages of %s: "
                "database unavailable", user);
        fetch_free(f);
    }
}

/* Offers the account's stored messages to one of its eligible sessions,
 * if it has one (a message may have been stored just as it came online). */
static void kick_delivery(instance *inst, const char *user)
{
    pl_host *h = pl_module_host(inst->m);
    pl_session *ss[64];
    int n = pl_user_sessions(h, user, ss, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (is_eligible(inst, ss[i])) {
            fetch_start(inst, ss[i], user);
            return;
        }
}

/* After the batch was deleted: fetch again while there may be more. */
static void delete_done(const pl_db_result *res, void *ud)
{
    fetch_req *f = ud;
    instance *inst = f->inst;
    if (!pl_db_ok(res)) {
        pl_mlog(inst->m, PL_LOG_ERROR, "deleting delivered offline messages of %s failed "
                "(they will be delivered again): %s", f->user, pl_db_error(res));
        fetch_free(f);
        return;
    }
    pl_session *s = pl_session_by_id(f->sid);
    if ((f->full || f->again) && s && is_eligible(inst, s)) {
        if (fetch_query(f) == PL_OK)
            return;
    }
    char *user = pl_strdup(f->user);
    int retry = f->again && !(s && is_eligible(inst, s));
    if (!f->full && !f->again)
        holder_done(inst, user, f->since);
    fetch_free(f);
    if (retry)
        kick_delivery(inst, user);
    pl_free(user);
}

/* Sends each stored message to the session, in order, and collects the
 * ids handed over as a PostgreSQL array literal. Returns the count. */
static int deliver_rows(instance *inst, pl_session *s, const pl_db_result *res, pl_buf *ids)
{
    int n = pl_db_rows(res);
    pl_buf_putc(ids, '{');
    for (int i = 0; i < n; i++) {
        const char *id = pl_db_value(res, i, 0), *xml = pl_db_value(res, i, 1);
        pl_stanza *st = pl_stanza_parse(xml, strlen(xml));
        if (st) {
            pl_send(s, st);
            pl_stanza_unref(st);
        } else {
            pl_mlog(inst->m, PL_LOG_ERROR, "offline message %s is not well-formed XML; "
                    "dropping it", id);
        }
        if (i)
            pl_buf_putc(ids, ',');
        pl_buf_puts(ids, id);
    }
    pl_buf_putc(ids, '}');
    return n;
}

static void fetch_done(const pl_db_result *res, void *ud)
{
    fetch_req *f = ud;
    instance *inst = f->inst;
    if (!pl_db_ok(res)) {
        pl_mlog(inst->m, PL_LOG_WARN, "fetching offline messages of %s failed: %s",
                f->user, pl_db_error(res));
        fetch_free(f);
        return;
    }
    pl_session *s = pl_session_by_id(f->sid);
    if (!s || !is_eligible(inst, s) || pl_db_rows(res) == 0) {
        /* nothing handed over, so nothing is deleted */
        char *user = pl_strdup(f->user);
        int retry = f->again || (pl_db_rows(res) > 0);
        if (!retry)
            holder_done(inst, user, f->since);
        fetch_free(f);
        if (retry)
            kick_delivery(inst, user);
        pl_free(user);
        return;
    }
    pl_buf ids = PL_BUF_INIT;
    int n = deliver_rows(inst, s, res, &ids);
    f->full = n >= FETCH_BATCH;
    pl_mlog(inst->m, PL_LOG_DEBUG, "delivered %d offline message%s to %s", n,
            n == 1 ? "" : "s", pl_session_jid(s)->full);
    const char *params[3] = { inst->host, f->user, ids.data };
    int rc = pl_db_query(inst->m, SQL_DELETE, 3, params, delete_done, f);
    pl_buf_free(&ids);
    if (rc != PL_OK) {
        pl_mlog(inst->m, PL_LOG_ERROR, "cannot delete delivered offline messages of %s "
                "(they will be delivered again): database unavailable", f->user);
        fetch_free(f);
    }
}

/* The session reached a non-negative priority: mark it and deliver. */
static void became_eligible(instance *inst, pl_session *s)
{
    const pl_jid *j = pl_session_jid(s);
    if (!j || pl_session_data(s, inst->m) == &eligible_marker)
        return;
    pl_session_set_data(s, inst->m, &eligible_marker, NULL);
    fetch_start(inst, s, j->node);
}

static int on_available(pl_event *ev, void *ud)
{
    if (ev->origin && pl_session_priority(ev->origin) >= 0)
        became_eligible(ud, ev->origin);
    return PL_PASS;
}

/* Presence broadcasts of the session: a change to a non-negative
 * priority makes it eligible; a negative one or unavailable ends that. */
static int on_self_presence(pl_event *ev, void *ud)
{
    instance *inst = ud;
    pl_session *s = ev->origin;
    if (!s)
        return PL_PASS;
    const char *type = pl_node_attr(pl_stanza_root(ev->stanza), "type");
    if (type && strcmp(type, "unavailable") != 0)
        return PL_PASS;
    if (!type && pl_session_available(s) && pl_session_priority(s) >= 0)
        became_eligible(inst, s);
    else
        pl_session_set_data(s, inst->m, NULL, NULL);
    return PL_PASS;
}

/* ==== lifecycle ==== */

static void offline_unload(pl_module *m)
{
    instance *inst = pl_module_data(m);
    if (!inst)
        return;
    /* The core cancels our queries after this: their callbacks will not
     * run. A message whose insert never started is known not to be
     * stored, so its sender hears it; those in flight may have been. */
    store_free_list(inst->queue, 1);
    store_free_list(inst->batch, 0);
    while (inst->fetches)
        fetch_free(inst->fetches);
    holders_free(inst);
    pl_free(inst);
    pl_module_set_data(m, NULL);
}

static int offline_load(pl_module *m)
{
    instance *inst = pl_calloc(1, sizeof *inst);
    inst->m = m;
    inst->host = pl_host_name(pl_module_host(m));
    inst->quota = pl_option_int(m, "quota");
    snprintf(inst->quota_text, sizeof inst->quota_text, "%lld", inst->quota);
    inst->queue_tail = &inst->queue;
    pl_htab_init(&inst->holders);
    pl_module_set_data(m, inst);
    int rc = pl_add_feature(m, "msgoffline");
    if (rc == 0)
        rc = pl_hook(m, "message/offline", on_offline, inst, 0);
    if (rc == 0)
        rc = pl_hook(m, "session/available", on_available, inst, 0);
    if (rc == 0)
        rc = pl_hook(m, "presence/self", on_self_presence, inst, 5);
    if (rc == 0)
        rc = pl_db_listen(m, CHANNEL, offline_changed, inst);
    if (rc < 0)
        offline_unload(m);
    return rc;
}

static const pl_option offline_options[] = {
    { .name = "quota", .type = PL_OPT_INT, .def = "1000", .min = 1, .max = 1000000,
      .help = "messages stored per account; further ones are refused" },
    { .name = NULL }
};

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "offline",
    .description = "Offline messages (XEP-0160): stores messages for unavailable accounts",
    .options = offline_options,
    .load = offline_load,
    .unload = offline_unload,
};
