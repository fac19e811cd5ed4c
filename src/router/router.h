/* router/router.h: stanza routing (RFC 6120 section 10, RFC 6121 section
 * 8). Stanzas from clients are checked and stamped, classified by target
 * (host, own account, another bare JID, full JID, remote domain) and
 * handed to the event chains; the core's fallback handlers at priority -1
 * do the standard delivery and error replies. */
#ifndef PL_ROUTER_ROUTER_H
#define PL_ROUTER_ROUTER_H

#include <parley/module.h>

/* Registers the core's fallback handlers and IQ handlers on a new host. */
void pl__router_host_init(pl_host *h);

/* A stanza from a bound client session (borrowed). */
void pl__router_from_client(pl_session *s, pl_stanza *st);

/* Delivers to one session (the final hop). */
void pl__router_deliver(pl_session *s, pl_stanza *st);

#endif
