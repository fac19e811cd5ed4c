/* net/listener.h: listening sockets from the config's `listen` lines.
 * Accepted connections go to the handler registered for the listener's
 * role (the core registers c2s; a federation module registers s2s). */
#ifndef PL_NET_LISTENER_H
#define PL_NET_LISTENER_H

#include "core/config.h"

/* fd is connected and non-blocking; peer is "ip:port". */
typedef void (*pl__accept_fn)(int fd, const char *peer, int role);

void pl__listener_set_handler(int role, pl__accept_fn fn);

/* Opens every listener of the config; 0, or -1 with err. */
int pl__listeners_open(const pl_config *c, char *err, size_t errlen);
/* Stops accepting and closes the sockets. */
void pl__listeners_close(void);

#endif
