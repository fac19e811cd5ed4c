/* core/loop.h: the event loop. One libevent base; after every iteration
 * the loop flushes queued output (like Redis's beforesleep), so callbacks
 * only append and the writes are batched. */
#ifndef PL_CORE_LOOP_H
#define PL_CORE_LOOP_H

#include <event2/event.h>

struct event_base *pl__loop_init(void);
/* Runs until pl__loop_stop(). */
void pl__loop_run(void);
/* Makes pl__loop_run return after the current iteration. */
void pl__loop_stop(void);
struct event_base *pl__loop_base(void);

#endif
