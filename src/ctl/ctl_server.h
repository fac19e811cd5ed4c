/* ctl/ctl_server.h: the daemon side of the control socket. parleyctl
 * connects to a UNIX stream socket, sends one command line, and reads
 * reply lines ended by "OK" or "ERR <message>". See doc/operations.md. */
#ifndef PL_CTL_SERVER_H
#define PL_CTL_SERVER_H

#include <event2/event.h>

/* Listens on path (an existing stale socket file is replaced; mode 0600).
 * 0, or -1 with a logged error. */
int pl__ctl_start(struct event_base *base, const char *path);

/* Closes the socket and every control connection, and removes the file. */
void pl__ctl_stop(void);

#endif
