/* modules/mod_roster/mod_roster.h: the roster service that mod_roster
 * publishes for other modules (pl_get_api(h, PL_ROSTER_API)). A module
 * that uses it lists "roster" in its depends, so it is loaded after
 * mod_roster and unloaded (and reloaded) with it.
 *
 * A roster is the list of records an account keeps about other entities:
 * roster items (in_roster set) and inbound subscription requests from
 * entities that are not roster items (in_roster clear, pending_in set).
 * The roster of an account with a bound session is cached in memory;
 * reads come from the cache, changes are written to the database first
 * and applied to the cache (with a new roster version and a roster push
 * to the account's interested resources) once the write is confirmed.
 * Changes to one account's roster are applied one at a time, in the
 * order they were requested. */
#ifndef PARLEY_MOD_ROSTER_H
#define PARLEY_MOD_ROSTER_H

#include <parley/module.h>

#define PL_ROSTER_API "roster"

/* Subscription states (RFC 6121 2.1.2.5), as bits: TO means the account
 * receives the contact's presence, FROM that the contact receives the
 * account's presence. */
enum { PL_SUB_NONE = 0, PL_SUB_TO = 1, PL_SUB_FROM = 2, PL_SUB_BOTH = 3 };

/* One record of a roster. Strings are NUL terminated; name and
 * pending_stanza are NULL when absent. */
typedef struct pl_roster_item {
    const char *jid;             /* the contact's prepared bare JID */
    const char *name;            /* the item's name, set by the user */
    int subscription;            /* PL_SUB_* */
    int ask;                     /* the account asked to subscribe (pending out) */
    int pending_in;              /* the contact asked to subscribe, not yet answered */
    const char *pending_stanza;  /* that request, serialized, for redelivery */
    int in_roster;               /* a roster item (else only a pending-in record) */
    int ngroups;
    const char *const *groups;   /* group names, in the order the user gave */
} pl_roster_item;

/* Decides a change of one record. cur is the record as it stands (NULL
 * when there is none); next starts as a copy of it (or, without one, as
 * an empty record for the contact: subscription none, nothing pending,
 * in_roster clear). The function may change next's subscription, ask,
 * pending_in, pending_stanza (a string that must stay valid until the
 * function returns; it is copied) and in_roster; its other fields are
 * ignored. Returning 0 leaves the record as it is; returning 1 writes
 * next. A record with a subscription or ask is always a roster item; a
 * record that is neither a roster item nor pending in is deleted. */
typedef int (*pl_roster_change_fn)(const pl_roster_item *cur, pl_roster_item *next, void *ud);

/* Reports the outcome of an update. status is PL_OK, PL_ENOENT (no such
 * account), PL_EUNAVAIL (the database failed or is down) or PL_ELIMIT
 * (the change would exceed the configured roster size). before and after
 * are the record before and after the change (NULL when there is none;
 * equal contents when nothing changed, and both describe the record as it
 * stands when status is not PL_OK); they are valid during the call only.
 * The roster push of a change follows the call. */
typedef void (*pl_roster_done_fn)(int status, const pl_roster_item *before,
                                  const pl_roster_item *after, void *ud);

typedef void (*pl_roster_each_fn)(const pl_roster_item *item, void *ud);

/* Called once the roster of a session's account is loaded; s is NULL if
 * the session went away meanwhile. status is PL_OK, PL_ENOENT or
 * PL_EUNAVAIL (the roster could not be loaded). */
typedef void (*pl_roster_ready_fn)(pl_session *s, int status, void *ud);

typedef struct pl_roster_api {
    /* The record for contact (a prepared bare JID) in the cached roster
     * of node@h, or NULL if there is none or the roster is not cached.
     * The pointer stays valid until control returns to the event loop. */
    const pl_roster_item *(*item)(pl_host *h, const char *node, const char *contact);

    /* Whether the roster of node@h is cached (item() and each() answer
     * from it). */
    int (*cached)(pl_host *h, const char *node);

    /* Calls fn for every record of node@h's cached roster, pending-in
     * records included (check in_roster). Returns the number of records,
     * or PL_ENOENT if the roster is not cached. */
    int (*each)(pl_host *h, const char *node, pl_roster_each_fn fn, void *ud);

    /* Changes node@h's record for contact, for any account of the host,
     * online or not: once the roster is loaded and earlier changes of the
     * account are done, runs change (if it is not NULL) on the current
     * record; a change is written to the database, then applied to the
     * cache with a new version, then done runs, then the change is pushed
     * to the account's interested resources. owner is the calling module
     * (see cancel). Returns PL_OK (done will run, possibly before update
     * returns), or PL_EINVAL, PL_EUNAVAIL or PL_ELIMIT (too many changes
     * of the account are waiting), and then done will not run. */
    int (*update)(pl_module *owner, pl_host *h, const char *node, const char *contact,
                  pl_roster_change_fn change, pl_roster_done_fn done, void *ud);

    /* Whether the roster of s's account is loaded. */
    int (*loaded)(const pl_session *s);

    /* Calls fn when the roster of s's account is loaded: right away
     * (returns PL_OK) or later (returns PL_AGAIN). Returns PL_EINVAL,
     * PL_EUNAVAIL or PL_ELIMIT when fn will not run. */
    int (*when_loaded)(pl_module *owner, pl_session *s, pl_roster_ready_fn fn, void *ud);

    /* Whether s requested the roster (and so receives roster pushes). */
    int (*interested)(const pl_session *s);

    /* Forgets every pending update and when_loaded of owner: their
     * callbacks never run. A module calls it from its unload function. */
    void (*cancel)(pl_module *owner);
} pl_roster_api;

#endif
