/* parley/buf.h: a growable byte buffer, used for serialized XML and
 * protocol text. */
#ifndef PARLEY_BUF_H
#define PARLEY_BUF_H

#include <stddef.h>
#include <parley/base.h>

typedef struct pl_buf {
    char *data;   /* always NUL terminated when cap > 0 */
    size_t len;
    size_t cap;
} pl_buf;

#define PL_BUF_INIT { NULL, 0, 0 }

void pl_buf_reserve(pl_buf *b, size_t extra);
void pl_buf_append(pl_buf *b, const void *data, size_t len);
void pl_buf_puts(pl_buf *b, const char *s);
void pl_buf_putc(pl_buf *b, char c);
void pl_buf_printf(pl_buf *b, const char *fmt, ...) PL_PRINTF(2, 3);
/* Drops the first n bytes. */
void pl_buf_consume(pl_buf *b, size_t n);
void pl_buf_reset(pl_buf *b);   /* len = 0, keeps memory */
void pl_buf_free(pl_buf *b);    /* releases memory, back to PL_BUF_INIT */
/* Hands the data to the caller (NUL terminated, never NULL); b is emptied. */
char *pl_buf_steal(pl_buf *b);

#endif
