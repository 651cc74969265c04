/* Growable byte buffer. Always NUL-terminated after data[len] so text can be
 * used as a C string; the NUL is not counted in len. */
#ifndef OFE_BUF_H
#define OFE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct ofe_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

#define OFE_BUF_INIT {NULL, 0, 0}

void ofe_buf_init(struct ofe_buf *b);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void ofe_buf_fini(struct ofe_buf *b);
/* Empties the buffer, keeping its storage. */
static inline void ofe_buf_reset(struct ofe_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}
/* Each returns 0, or OFE_ENOMEM (the buffer is unchanged then). */
int ofe_buf_reserve(struct ofe_buf *b, size_t extra);
int ofe_buf_append(struct ofe_buf *b, const void *p, size_t n);
int ofe_buf_puts(struct ofe_buf *b, const char *s);
int ofe_buf_putc(struct ofe_buf *b, char c);
int ofe_buf_printf(struct ofe_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ofe_buf_vprintf(struct ofe_buf *b, const char *fmt, va_list ap);
/* Moves the storage out (caller frees it with free()); the buffer is empty
 * afterwards. Returns an empty malloc'd string for an empty buffer, or NULL
 * on allocation failure. */
char *ofe_buf_detach(struct ofe_buf *b, size_t *len);

#endif
