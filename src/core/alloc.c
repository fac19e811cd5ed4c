/* core/alloc.c: allocation wrappers that abort on out-of-memory, so no
 * caller has to handle a NULL it could do nothing useful with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <parley/base.h>

static void PL_NORETURN oom(size_t n)
{
    fprintf(stderr, "parley: out of memory allocating %zu bytes\n", n);
    abort();
}

void *pl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *pl_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *pl_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *pl_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = pl_malloc(n);
    memcpy(d, s, n);
    return d;
}

char *pl_strndup(const char *s, size_t n)
{
    char *d = pl_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void pl_free(void *p)
{
    free(p);
}
