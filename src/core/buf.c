/* core/buf.c: the growable byte buffer of parley/buf.h. */
#include <stdio.h>
#include <string.h>
#include <parley/buf.h>

void pl_buf_reserve(pl_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = pl_realloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = '\0';
}

void pl_buf_append(pl_buf *b, const void *data, size_t len)
{
    pl_buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void pl_buf_puts(pl_buf *b, const char *s)
{
    pl_buf_append(b, s, strlen(s));
}

void pl_buf_putc(pl_buf *b, char c)
{
    pl_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void pl_buf_printf(pl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    pl_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void pl_buf_consume(pl_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->cap)
        b->data[b->len] = '\0';
}

void pl_buf_reset(pl_buf *b)
{
    b->len = 0;
    if (b->cap)
        b->data[0] = '\0';
}

void pl_buf_free(pl_buf *b)
{
    pl_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *pl_buf_steal(pl_buf *b)
{
    if (!b->data)
        return pl_strdup("");
    char *d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
