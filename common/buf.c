/* Growable byte buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/buf.h"
#include "ofe/err.h"

void ofe_buf_init(struct ofe_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void ofe_buf_fini(struct ofe_buf *b)
{
    free(b->data);
    ofe_buf_init(b);
}

int ofe_buf_reserve(struct ofe_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return OFE_ENOMEM;
    size_t need = b->len + extra + 1; /* room for the NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return OFE_ENOMEM;
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0';
    return 0;
}

int ofe_buf_append(struct ofe_buf *b, const void *p, size_t n)
{
    if (ofe_buf_reserve(b, n))
        return OFE_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ofe_buf_puts(struct ofe_buf *b, const char *s)
{
    return ofe_buf_append(b, s, strlen(s));
}

int ofe_buf_putc(struct ofe_buf *b, char c)
{
    return ofe_buf_append(b, &c, 1);
}

int ofe_buf_vprintf(struct ofe_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, cp);
    va_end(cp);
    if (n < 0)
        return OFE_EINVAL;
    if ((size_t)n < sizeof(small))
        return ofe_buf_append(b, small, (size_t)n);
    if (ofe_buf_reserve(b, (size_t)n))
        return OFE_ENOMEM;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int ofe_buf_printf(struct ofe_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ofe_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *ofe_buf_detach(struct ofe_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p)
        p = calloc(1, 1);
    ofe_buf_init(b);
    return p;
}
