/* modules/mod_time/mod_time.c: Entity Time (XEP-0202). Answers
 * <time xmlns='urn:xmpp:time'/> IQ gets sent to the server with the
 * offset of the server's local time zone and the current UTC time. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <parley/module.h>

#define NS_TIME "urn:xmpp:time"

static void add_text_child(pl_stanza *st, pl_node *parent, const char *name,
                           const char *text)
{
    pl_node *n = pl_node_add(st, parent, name, NULL);
    pl_node_add_text(st, n, text, strlen(text));
}

/* Writes the zone offset ("+02:00", "-05:30", "+00:00") and the UTC time
 * with milliseconds ("2024-05-01T12:00:00.123Z") of the moment ts. */
static void format_time(const struct timespec *ts, char *tzo, size_t tzolen,
                        char *utc, size_t utclen)
{
    struct tm local, gmt;
    localtime_r(&ts->tv_sec, &local);
    gmtime_r(&ts->tv_sec, &gmt);
    long off = local.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    snprintf(tzo, tzolen, "%c%02ld:%02ld", sign, off / 3600, (off % 3600) / 60);
    snprintf(utc, utclen, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             gmt.tm_year + 1900, gmt.tm_mon + 1, gmt.tm_mday, gmt.tm_hour,
             gmt.tm_min, gmt.tm_sec, ts->tv_nsec / 1000000L);
}

static int on_time(pl_event *ev, void *ud)
{
    struct timespec ts;
    char tzo[32], utc[96];
    clock_gettime(CLOCK_REALTIME, &ts);
    format_time(&ts, tzo, sizeof tzo, utc, sizeof utc);

    pl_stanza *reply = pl_stanza_reply(ev->stanza);
    pl_node *t = pl_node_add(reply, pl_stanza_root(reply), "time", NS_TIME);
    add_text_child(reply, t, "tzo", tzo);
    add_text_child(reply, t, "utc", utc);
    if (ev->origin)
        pl_send(ev->origin, reply);
    else
        pl_route(reply);
    pl_stanza_unref(reply);
    return PL_HANDLED;
}

static int time_load(pl_module *m)
{
    int rc = pl_add_feature(m, NS_TIME);
    if (rc < 0)
        return rc;
    return pl_iq_handle(m, PL_IQ_GET, PL_TO_HOST, NS_TIME, "time", on_time, NULL);
}

static const pl_option time_options[] = { { .name = NULL } };

PL_MODULE = {
    PL_MODULE_DEF_HEADER,
    .name = "time",
    .description = "Entity Time (XEP-0202): the server's time and time zone offset",
    .options = time_options,
    .load = time_load,
};
