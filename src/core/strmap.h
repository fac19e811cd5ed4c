/* core/strmap.h: a string-keyed map for the core's tables: event names,
 * sessions by account, throttling by address, loaded shared objects.
 * Built on the intrusive table of parley/htab.h; keys are copied into an
 * entry of the map's own, values are borrowed. */
#ifndef PL_CORE_STRMAP_H
#define PL_CORE_STRMAP_H

#include <stddef.h>
#include <parley/htab.h>

typedef struct pl__strmap_entry {
    pl_hnode link;
    void *value;
    char key[];
} pl__strmap_entry;

typedef struct pl__strmap {
    pl_htab tab;   /* of pl__strmap_entry */
} pl__strmap;

#define PL__STRMAP_INIT { PL_HTAB_INIT }

void *pl__strmap_get(const pl__strmap *m, const char *key);
/* Sets key to value; returns the previous value or NULL. */
void *pl__strmap_set(pl__strmap *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *pl__strmap_del(pl__strmap *m, const char *key);
/* The number of keys. */
size_t pl__strmap_count(const pl__strmap *m);
/* Calls fn for every entry; fn must not modify the map. */
void pl__strmap_each(const pl__strmap *m, void (*fn)(const char *key, void *value, void *ud), void *ud);
/* Frees the map's memory (not the values). */
void pl__strmap_clear(pl__strmap *m);

#endif
