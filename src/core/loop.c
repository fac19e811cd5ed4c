/* core/loop.c: the event loop with a flush step after each iteration,
 * and the module timers of parley/module.h. */
#include <time.h>
#include <parley/module.h>
#include "core/loop.h"
#include "core/modmgr.h"
#include "net/conn.h"

static struct event_base *base;
static int stopping;

struct event_base *pl__loop_init(void)
{
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

struct event_base *pl__loop_base(void)
{
    return base;
}

void pl__loop_run(void)
{
    stopping = 0;
    while (!stopping) {
        if (event_base_loop(base, EVLOOP_ONCE) < 0)
            break;
        pl__conn_flush_all();
    }
    pl__conn_flush_all();
}

void pl__loop_stop(void)
{
    stopping = 1;
    event_base_loopbreak(base);
}

long long pl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==== module timers ==== */

static void timer_free(pl_timer *t)
{
    pl__module_untrack_timer(t->module, t);
    event_free(t->ev);
    pl_free(t);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    pl_timer *t = arg;
    t->firing = 1;
    t->fn(t->ud);
    t->firing = 0;
    if (t->cancelled || !t->repeat)
        timer_free(t);
}

pl_timer *pl_timer_add(pl_module *m, unsigned ms, int repeat, pl_timer_fn fn, void *ud)
{
    pl_timer *t = pl_calloc(1, sizeof *t);
    t->module = m;
    t->fn = fn;
    t->ud = ud;
    t->repeat = repeat;
    t->ev = event_new(base, -1, repeat ? EV_PERSIST : 0, timer_cb, t);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    event_add(t->ev, &tv);
    pl__module_track_timer(m, t);
    return t;
}

void pl_timer_cancel(pl_timer *t)
{
    if (!t || t->cancelled)
        return;
    if (t->firing) {
        /* freed by timer_cb when the callback returns */
        t->cancelled = 1;
        event_del(t->ev);
        return;
    }
    timer_free(t);
}
