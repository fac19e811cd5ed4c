/* c2s/throttle.h: per-address accounting of failed authentications.
 * After `auth_failures` failures within `auth_window` seconds an address
 * is refused further attempts until the window has passed. */
#ifndef PL_C2S_THROTTLE_H
#define PL_C2S_THROTTLE_H

/* 1 if addr is currently refused. */
int pl__throttle_blocked(const char *addr);
/* Records a failure for addr. */
void pl__throttle_fail(const char *addr);
/* Forgets addr's failures (after a success). */
void pl__throttle_clear(const char *addr);
void pl__throttle_free(void);

#endif
