/* parley/base.h: return codes, allocation wrappers and logging shared by
 * the core and every module. */
#ifndef PARLEY_BASE_H
#define PARLEY_BASE_H

#include <stdarg.h>
#include <stddef.h>

/* Return codes: 0 for success, PL_AGAIN for "pending, a callback follows",
 * negative for failure. */
#define PL_OK       0
#define PL_AGAIN    1
#define PL_ERR     (-1)   /* generic failure */
#define PL_EINVAL  (-2)   /* bad argument or malformed input */
#define PL_ENOENT  (-3)   /* no such thing */
#define PL_EEXIST  (-4)   /* already there */
#define PL_EUNAVAIL (-5)  /* a service (database, peer) is unavailable */
#define PL_ELIMIT  (-6)   /* a configured limit was reached */
#define PL_EAUTH   (-7)   /* authentication failed */

#if defined(__GNUC__)
#define PL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PL_NORETURN __attribute__((noreturn))
#else
#define PL_PRINTF(f, a)
#define PL_NORETURN
#endif

/* Allocation wrappers: they never return NULL; on out-of-memory they log
 * and abort the process. */
void *pl_malloc(size_t n);
void *pl_calloc(size_t count, size_t n);
void *pl_realloc(void *p, size_t n);
char *pl_strdup(const char *s);
char *pl_strndup(const char *s, size_t n);
void pl_free(void *p);

/* Log levels, lowest first. */
enum pl_log_level {
    PL_LOG_DEBUG = 0,
    PL_LOG_INFO = 1,
    PL_LOG_NOTICE = 2,
    PL_LOG_WARN = 3,
    PL_LOG_ERROR = 4
};

/* Writes one line to stderr as "<time> <level> <message>" when level is at
 * or above the configured threshold. */
void pl_log(int level, const char *fmt, ...) PL_PRINTF(2, 3);
void pl_logv(int level, const char *fmt, va_list ap);

/* Sets the threshold; returns the previous one. */
int pl_log_set_level(int level);

/* True when a message at this level would be written (to skip building
 * expensive log arguments). */
int pl_log_enabled(int level);

/* Parses "debug", "info", "notice", "warn" or "error"; -1 if unknown. */
int pl_log_level_parse(const char *name);

#define pl_debug(...) \
    do { if (pl_log_enabled(PL_LOG_DEBUG)) pl_log(PL_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
