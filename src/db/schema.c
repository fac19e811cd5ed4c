/* db/schema.c: the versioned core schema and the synchronous migration
 * runner used by parleyctl. The daemon applies the same migrations
 * asynchronously in pg.c, with the same bookkeeping statements.
 *
 * To change the schema, append a migration with the next version number;
 * never edit one that has shipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include <parley/base.h>
#include "db/schema.h"

const pl_migration pl_schema_migrations[] = {
    { 1,
      "CREATE TABLE users (\n"
      "    host text NOT NULL,\n"
      "    username text NOT NULL,\n"
      "    iterations integer NOT NULL,\n"
      "    salt text NOT NULL,\n"
      "    sha1_stored_key text NOT NULL,\n"
      "    sha1_server_key text NOT NULL,\n"
      "    sha256_stored_key text NOT NULL,\n"
      "    sha256_server_key text NOT NULL,\n"
      "    created_at timestamptz NOT NULL DEFAULT now(),\n"
      "    PRIMARY KEY (host, username)\n"
      ");\n" },
    /* instant messaging: roster, subscriptions, offline messages, vCard,
     * private XML, block lists, last activity (every row belongs to an
     * account and goes with it) */
    { 2,
      "CREATE TABLE roster (\n"
      "    host text NOT NULL,\n"
      "    username text NOT NULL,\n"
      "    contact text NOT NULL,\n"
      "    name text,\n"
      "    subscription text NOT NULL DEFAULT 'none'\n"
      "        CHECK (subscription IN ('none', 'to', 'from', 'both')),\n"
      "    ask boolean NOT NULL DEFAULT false,\n"
      "    pending_in boolean NOT NULL DEFAULT false,\n"
      "    pending_stanza text,\n"
      "    in_roster boolean NOT NULL DEFAULT true,\n"
      "    groups text[] NOT NULL DEFAULT '{}',\n"
      "    PRIMARY KEY (host, username, contact),\n"
      "    FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE\n"
      ");\n"
      "CREATE TABLE roster_version (\n"
      "    host text NOT NULL,\n"
      "    username text NOT NULL,\n"
      "    version bigint NOT NULL DEFAULT 0,\n"
      "    PRIMARY KEY (host, username),\n"
      "    FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE\n"
      ");\n"
      "CREATE TABLE offline (\n"
      "    id bigserial PRIMARY KEY,\n"
      "    host text NOT NULL,\n"
      "    username text NOT NULL,\n"
      "    stanza text NOT NULL,\n"
      "    stored_at timestamptz NOT NULL DEFAULT now(),\n"
      "    FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE\n"
      ");\n"
      "CREATE INDEX offline_user ON offline (host, username, id);\n"
      "CREATE TABLE vcard (\n"
      "    host text NOT NULL,\n"
      "    username text NOT NULL,\n"
      "    vcard text NOT NULL,\n"
      "    PRIMARY KEY (host, username),\n"
      "    FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE\n"
      ");\n"
      "CREATE TABLE private_xml (\n"
      "    host text NOT NULL,\n"
      "    username text NOT NULL,\n"
      "    namespace text NOT NULL,\n"
      "    element text NOT NULL,\n"
      "    PRIMARY KEY (host, username, namespace),\n"
      "    FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE\n"
      ");\n"
      "CREATE TABLE blocklist (\n"
      "    host text NOT NULL,\n"
      "    username text NOT NULL,\n"
      "    jid text NOT NULL,\n"
      "    PRIMARY KEY (host, username, jid),\n"
      "    FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE\n"
      ");\n"
      "CREATE TABLE last_activity (\n"
      "    host text NOT NULL,\n"
      "    username text NOT NULL,\n"
      "    logout_at timestamptz NOT NULL,\n"
      "    status text,\n"
      "    PRIMARY KEY (host, username),\n"
      "    FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE\n"
      ");\n" },
    /* every change to an account's row is announced on the channel
     * parley_users as "host/username" (at commit), and a TRUNCATE as ""
     * (every account), so that servers caching credentials drop their
     * copy whoever made the change */
    { 3,
      "CREATE OR REPLACE FUNCTION parley_users_notify() RETURNS trigger\n"
      "LANGUAGE plpgsql AS $$\n"
      "BEGIN\n"
      "    IF TG_OP = 'TRUNCATE' THEN\n"
      "        PERFORM pg_notify('parley_users', '');\n"
      "        RETURN NULL;\n"
      "    END IF;\n"
      "    IF TG_OP = 'INSERT' THEN\n"
      "        PERFORM pg_notify('parley_users', NEW.host || '/' || NEW.username);\n"
      "        RETURN NULL;\n"
      "    END IF;\n"
      "    PERFORM pg_notify('parley_users', OLD.host || '/' || OLD.username);\n"
      "    IF TG_OP = 'UPDATE' THEN\n"
      "        IF NEW.host <> OLD.host OR NEW.username <> OLD.username THEN\n"
      "            PERFORM pg_notify('parley_users', NEW.host || '/' || NEW.username);\n"
      "        END IF;\n"
      "    END IF;\n"
      "    RETURN NULL;\n"
      "END\n"
      "$$;\n"
      "CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users\n"
      "    FOR EACH ROW EXECUTE FUNCTION parley_users_notify();\n"
      "CREATE TRIGGER users_truncate_notify AFTER TRUNCATE ON users\n"
      "    FOR EACH STATEMENT EXECUTE FUNCTION parley_users_notify();\n" },
    /* every account given stored messages is announced on the channel
     * parley_offline as "host/username" (at commit, once per statement),
     * so that servers keeping the set of accounts with offline messages
     * learn of them whoever inserted the rows */
    { 4,
      "CREATE OR REPLACE FUNCTION parley_offline_notify() RETURNS trigger\n"
      "LANGUAGE plpgsql AS $$\n"
      "BEGIN\n"
      "    PERFORM pg_notify('parley_offline', d.host || '/' || d.username)\n"
      "    FROM (SELECT DISTINCT host, username FROM inserted) d;\n"
      "    RETURN NULL;\n"
      "END\n"
      "$$;\n"
      "CREATE TRIGGER offline_notify AFTER INSERT ON offline\n"
      "    REFERENCING NEW TABLE AS inserted\n"
      "    FOR EACH STATEMENT EXECUTE FUNCTION parley_offline_notify();\n" },
    { 0, NULL }
};

/* The bookkeeping statements. pg.c uses the same text (and lock key) for
 * the asynchronous runner; keep the two in step. */
#define LOCK_SQL "SELECT pg_advisory_lock(7099003282150010)"
#define UNLOCK_SQL "SELECT pg_advisory_unlock(7099003282150010)"
#define CREATE_SQL \
    "CREATE TABLE IF NOT EXISTS parley_schema (" \
    "component text PRIMARY KEY, version integer NOT NULL)"
#define VERSION_SQL "SELECT version FROM parley_schema WHERE component = 'core'"
#define SET_VERSION_SQL \
    "INSERT INTO parley_schema (component, version) VALUES ('core', %d) " \
    "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version;\n"

/* Returns the version of the last entry of pl_schema_migrations. */
int pl_schema_latest(void)
{
    int v = 0;
    for (const pl_migration *m = pl_schema_migrations; m->sql; m++)
        v = m->version;
    return v;
}

/* Copies libpq's message into err as one line. */
static void set_err(char *err, size_t errlen, const char *what, const char *msg)
{
    if (!err || errlen == 0)
        return;
    snprintf(err, errlen, "%s: %s", what, msg ? msg : "");
    size_t o = 0;
    for (size_t i = 0; err[i]; i++) {
        char ch = err[i];
        if (ch == '\n' || ch == '\t' || ch == '\r')
            ch = ' ';
        if (ch == ' ' && o > 0 && err[o - 1] == ' ')
            continue;
        err[o++] = ch;
    }
    while (o > 0 && err[o - 1] == ' ')
        o--;
    err[o] = '\0';
}

/* Runs one statement; on failure fills err and returns -1. */
static int exec_ok(PGconn *conn, const char *sql, const char *what, char *err,
                   size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        set_err(err, errlen, what, r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
    PQclear(r);
    return ok ? 0 : -1;
}

/* Reads the recorded version: 0 if none, -1 on error. */
static int read_version(PGconn *conn, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, VERSION_SQL);
    int v = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        set_err(err, errlen, "reading the schema version",
                r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
    else
        v = PQntuples(r) > 0 ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return v;
}

/* Builds "BEGIN; <each migration after from>; <record version>; COMMIT;". */
static char *build_script(int from)
{
    size_t len = 64 + sizeof SET_VERSION_SQL + 16;
    for (const pl_migration *m = pl_schema_migrations; m->sql; m++)
        if (m->version > from)
            len += strlen(m->sql) + 2;
    char *s = pl_malloc(len);
    size_t n = (size_t)snprintf(s, len, "BEGIN;\n");
    for (const pl_migration *m = pl_schema_migrations; m->sql; m++)
        if (m->version > from)
            n += (size_t)snprintf(s + n, len - n, "%s;\n", m->sql);
    n += (size_t)snprintf(s + n, len - n, SET_VERSION_SQL, pl_schema_latest());
    snprintf(s + n, len - n, "COMMIT;\n");
    return s;
}

/* Applies the migrations after version `from` in one transaction. */
static int apply(PGconn *conn, int from, char *err, size_t errlen)
{
    char *script = build_script(from);
    char what[64];
    snprintf(what, sizeof what, "migrating the schema from version %d", from);
    int rc = exec_ok(conn, script, what, err, errlen);
    pl_free(script);
    if (rc < 0) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        PQclear(r);
    }
    return rc;
}

/* Brings the schema up to date over a blocking connection: takes the
 * advisory lock that serialises migrators, creates parley_schema if it
 * is missing, applies the missing migrations in one transaction and
 * releases the lock. A database newer than this build is an error. */
int pl_schema_migrate_sync(PGconn *conn, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        set_err(err, errlen, "no database connection", conn ? PQerrorMessage(conn) : "");
        return -1;
    }
    if (exec_ok(conn, LOCK_SQL, "locking the schema", err, errlen) < 0)
        return -1;
    int rc = exec_ok(conn, CREATE_SQL, "creating parley_schema", err, errlen);
    int v = rc == 0 ? read_version(conn, err, errlen) : -1;
    int latest = pl_schema_latest();
    if (v < 0) {
        rc = -1;
    } else if (v > latest) {
        if (err && errlen)
            snprintf(err, errlen,
                     "database schema version %d is newer than this build (%d)", v, latest);
        rc = -1;
    } else if (v < latest) {
        rc = apply(conn, v, err, errlen);
    }
    PGresult *r = PQexec(conn, UNLOCK_SQL);
    PQclear(r);
    return rc;
}
