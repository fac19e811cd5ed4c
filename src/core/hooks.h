/* core/hooks.h: event chains. Event names are interned to small integers
 * when hooked, so firing an event is an array index, not a string lookup.
 * Each host has a table of chains; so does the server (global events). */
#ifndef PL_CORE_HOOKS_H
#define PL_CORE_HOOKS_H

#include <parley/module.h>

typedef struct pl__handler {
    pl_hook_fn fn;         /* NULL once removed (compacted later) */
    void *ud;
    int prio;
    pl_module *owner;      /* NULL for the core's own handlers */
} pl__handler;

typedef struct pl__chain {
    pl__handler *h;
    int n, cap;
    int firing;            /* nesting depth of fires over this chain */
    int dirty;             /* has removed entries to compact */
} pl__chain;

typedef struct pl__hooks {
    pl__chain *chains;     /* indexed by event id */
    int nchains;
} pl__hooks;

/* The id of an event name, interning it. */
int pl__event_id(const char *name);
/* The id, or -1 if the name was never interned. */
int pl__event_lookup(const char *name);
const char *pl__event_name(int id);

/* Inserts a handler: higher prio first, equal prio in insertion order. */
void pl__hooks_add(pl__hooks *t, int id, pl_hook_fn fn, void *ud, int prio, pl_module *owner);
/* Removes every handler owned by owner. */
void pl__hooks_remove_owner(pl__hooks *t, pl_module *owner);
/* Runs the chain; returns PL_PASS or the stopping handler's result. */
int pl__hooks_fire(pl__hooks *t, int id, pl_event *ev);
/* Number of live handlers on the chain. */
int pl__hooks_count(const pl__hooks *t, int id);
void pl__hooks_free(pl__hooks *t);
void pl__events_free(void);

/* The server-wide table (route/remote, host/added ...). */
extern pl__hooks pl__global_hooks;

/* Ids of the events the router fires, set by pl__events_init(). */
extern int PL__EV_MESSAGE_FULL, PL__EV_MESSAGE_BARE, PL__EV_MESSAGE_HOST;
extern int PL__EV_PRESENCE_FULL, PL__EV_PRESENCE_BARE, PL__EV_PRESENCE_HOST, PL__EV_PRESENCE_SELF;
extern int PL__EV_IQ_FULL, PL__EV_MESSAGE_OFFLINE, PL__EV_ROUTE_REMOTE;
extern int PL__EV_SESSION_BOUND, PL__EV_SESSION_AVAILABLE, PL__EV_SESSION_CLOSED;
extern int PL__EV_PRE_MESSAGE, PL__EV_PRE_PRESENCE, PL__EV_PRE_IQ;
void pl__events_init(void);

#endif
