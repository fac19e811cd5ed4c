/* core/log.c: leveled logging to stderr, one line per message with a UTC
 * timestamp. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/time.h>
#include <parley/base.h>

static int threshold = PL_LOG_INFO;
static const char *const names[] = { "debug", "info", "notice", "warn", "error" };

int pl_log_set_level(int level)
{
    int old = threshold;
    threshold = level;
    return old;
}

int pl_log_enabled(int level)
{
    return level >= threshold;
}

int pl_log_level_parse(const char *name)
{
    for (int i = 0; i < 5; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return PL_LOG_WARN;
    return -1;
}

void pl_logv(int level, const char *fmt, va_list ap)
{
    if (level < threshold)
        return;
    if (level < PL_LOG_DEBUG || level > PL_LOG_ERROR)
        level = PL_LOG_ERROR;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-6s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), names[level]);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

void pl_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pl_logv(level, fmt, ap);
    va_end(ap);
}
