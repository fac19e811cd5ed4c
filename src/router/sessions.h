/* router/sessions.h: the tables of sessions: by id (for asynchronous
 * callbacks that must not touch a session that is gone), and per host by
 * account (the bound resources of each user). */
#ifndef PL_ROUTER_SESSIONS_H
#define PL_ROUTER_SESSIONS_H

#include <parley/module.h>
#include "c2s/c2s.h"

typedef struct pl__user {
    char *node;
    pl_session *sessions;   /* bound resources, linked by next_res */
    int count;
} pl__user;

/* Assigns s an id and registers it. */
void pl__sessions_register(pl_session *s);
void pl__sessions_unregister(pl_session *s);

/* Binds s as node@host/resource (s->jid set by the caller). */
void pl__sessions_bind(pl_session *s);
/* Removes a bound session from its account. */
void pl__sessions_unbind(pl_session *s);

pl__user *pl__sessions_user(pl_host *h, const char *node);

/* Drops module m's data from every session (m is unloading). */
void pl__sessions_drop_module(pl_module *m);

/* Frees all module data of s. */
void pl__sessions_free_data(pl_session *s);

/* Iterates every registered session (any state). */
void pl__sessions_each_raw(void (*cb)(pl_session *s, void *ud), void *ud);

/* Iterates the sessions in registry slots from .. from+n-1 and returns
 * the slot to continue from, 0 once the end was reached: a caller can
 * walk the registry in bounded steps. cb must not register sessions. */
uint32_t pl__sessions_each_from(uint32_t from, uint32_t n,
                                void (*cb)(pl_session *s, void *ud), void *ud);
uint32_t pl__sessions_slot_count(void);
int pl__sessions_bound_count(void);

#endif
