/* db/schema.h: the versioned database schema. Each migration is a SQL
 * script applied in one transaction; the table parley_schema records the
 * version reached. Both parleyd (asynchronously, at start and after a
 * reconnect) and parleyctl (synchronously) apply missing migrations,
 * serialised with an advisory lock. */
#ifndef PL_DB_SCHEMA_H
#define PL_DB_SCHEMA_H

#include <libpq-fe.h>

typedef struct pl_migration {
    int version;
    const char *sql;
} pl_migration;

/* The migrations, in order; terminated by { 0, NULL }. */
extern const pl_migration pl_schema_migrations[];

/* The newest version. */
int pl_schema_latest(void);

/* Applies missing migrations over a blocking connection (parleyctl).
 * Returns 0 or -1 with a message in err. */
int pl_schema_migrate_sync(PGconn *conn, char *err, size_t errlen);

#endif
