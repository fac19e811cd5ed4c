/* core/strmap.h: a string-keyed hash map (chained, power-of-two buckets)
 * for the core's tables: event names, sessions by account, throttling by
 * address, loaded shared objects. Keys are copied; values are borrowed. */
#ifndef PL_CORE_STRMAP_H
#define PL_CORE_STRMAP_H

#include <stddef.h>

typedef struct pl__strmap_entry {
    struct pl__strmap_entry *next;
    unsigned hash;
    void *value;
    char key[];
} pl__strmap_entry;

typedef struct pl__strmap {
    pl__strmap_entry **buckets;
    size_t nbuckets;   /* 0 or a power of two */
    size_t count;
} pl__strmap;

#define PL__STRMAP_INIT { NULL, 0, 0 }

unsigned pl__strhash(const char *s);
void *pl__strmap_get(const pl__strmap *m, const char *key);
/* Sets key to value; returns the previous value or NULL. */
void *pl__strmap_set(pl__strmap *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *pl__strmap_del(pl__strmap *m, const char *key);
/* Calls fn for every entry; fn must not modify the map. */
void pl__strmap_each(const pl__strmap *m, void (*fn)(const char *key, void *value, void *ud), void *ud);
/* Frees the map's memory (not the values). */
void pl__strmap_clear(pl__strmap *m);

#endif
