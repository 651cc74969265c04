/* RESP2 request parser and reply writers (see resp.h). The limits and the
 * error texts follow Redis 7.0's networking.c so clients see the same
 * protocol errors. */
#include "resp.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"

void resp_parser_init(struct resp_parser *p, size_t max_args, size_t max_arg_len)
{
    memset(p, 0, sizeof(*p));
    p->max_args = max_args;
    p->max_arg_len = max_arg_len;
    p->bulk = -1;
}

void resp_parser_fini(struct resp_parser *p)
{
    free(p->argv);
    p->argv = NULL;
    p->argc = p->argcap = 0;
}

size_t resp_keep_from(const struct resp_parser *p)
{
    /* An oversize command is answered with an error only: none of its bytes
     * are needed, so discarded data never accumulates. */
    if (p->in_mb && p->oversize)
        return p->pos;
    return p->in_mb ? p->cmd_start : p->pos;
}

void resp_shift(struct resp_parser *p, size_t n)
{
    p->pos -= n;
    p->cmd_start = p->cmd_start >= n ? p->cmd_start - n : 0;
    for (size_t i = 0; i < p->argc; i++)
        if (p->argv[i].off != SIZE_MAX)
            p->argv[i].off = p->argv[i].off >= n ? p->argv[i].off - n : SIZE_MAX;
}

bool resp_str2ll(const char *s, size_t slen, long long *value)
{
    const char *p = s;
    size_t plen = 0;
    int negative = 0;
    unsigned long long v;

    if (slen == 0 || slen >= 21)
        return false;
    if (slen == 1 && p[0] == '0') {
        *value = 0;
        return true;
    }
    if (p[0] == '-') {
        negative = 1;
        p++;
        plen++;
        if (plen == slen)
            return false;
    }
    if (p[0] >= '1' && p[0] <= '9') {
        v = (unsigned long long)(p[0] - '0');
        p++;
        plen++;
    } else {
        return false;
    }
    while (plen < slen && p[0] >= '0' && p[0] <= '9') {
        if (v > (ULLONG_MAX / 10))
            return false;
        v *= 10;
        if (v > (ULLONG_MAX - (unsigned long long)(p[0] - '0')))
            return false;
        v += (unsigned long long)(p[0] - '0');
        p++;
        plen++;
    }
    if (plen < slen)
        return false;
    if (negative) {
        if (v > ((unsigned long long)(-(LLONG_MIN + 1)) + 1))
            return false;
        *value = (long long)(0 - v);
    } else {
        if (v > LLONG_MAX)
            return false;
        *value = (long long)v;
    }
    return true;
}

bool resp_str2ull(const char *s, size_t len, unsigned long long *out)
{
    long long ll;
    if (resp_str2ll(s, len, &ll)) {
        if (ll < 0)
            return false;
        *out = (unsigned long long)ll;
        return true;
    }
    /* Redis falls back to strtoull on the C string: keep its (lenient)
     * behaviour so ids parse exactly as they do there. */
    char tmp[128];
    size_t n = strnlen(s, len);
    if (n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(tmp, &end, 10);
    if (errno == EINVAL || errno == ERANGE || !(tmp[0] != '\0' && *end == '\0'))
        return false;
    *out = v;
    return true;
}

size_t resp_u64toa(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

size_t resp_i64toa(char *buf, int64_t v)
{
    if (v < 0) {
        buf[0] = '-';
        return 1 + resp_u64toa(buf + 1, (uint64_t)0 - (uint64_t)v);
    }
    return resp_u64toa(buf, (uint64_t)v);
}

static int push_arg(struct resp_parser *p, size_t off, size_t len)
{
    if (p->argc == p->argcap) {
        size_t ncap = p->argcap ? p->argcap * 2 : 16;
        struct resp_arg *nv = realloc(p->argv, ncap * sizeof(*nv));
        if (!nv)
            return -1;
        p->argv = nv;
        p->argcap = ncap;
    }
    p->argv[p->argc].off = off;
    p->argv[p->argc].len = len;
    p->argc++;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Splits an inline line [s, e) into arguments the way Redis's sdssplitargs
 * does, writing unquoted bytes back into the buffer. Returns 0, or -1 on
 * unbalanced quotes, -2 on allocation failure. */
static int split_inline(struct resp_parser *p, char *buf, size_t s, size_t e)
{
#define AT(i) ((i) < e ? buf[i] : '\0')
    size_t i = s;
    for (;;) {
        while (AT(i) && isspace((unsigned char)AT(i)))
            i++;
        if (!AT(i))
            return 0;
        size_t w = i, start = i;
        int inq = 0, insq = 0, done = 0;
        while (!done) {
            char c = AT(i);
            if (inq) {
                if (c == '\\' && AT(i + 1) == 'x' && hexval((unsigned char)AT(i + 2)) >= 0 &&
                    hexval((unsigned char)AT(i + 3)) >= 0) {
                    buf[w++] = (char)(hexval((unsigned char)AT(i + 2)) * 16 +
                                      hexval((unsigned char)AT(i + 3)));
                    i += 3;
                } else if (c == '\\' && AT(i + 1)) {
                    i++;
                    char d = AT(i);
                    switch (d) {
                    case 'n':
                        d = '\n';
                        break;
                    case 'r':
                        d = '\r';
                        break;
                    case 't':
                        d = '\t';
                        break;
                    case 'b':
                        d = '\b';
                        break;
                    case 'a':
                        d = '\a';
                        break;
                    default:
                        break;
                    }
                    buf[w++] = d;
                } else if (c == '"') {
                    if (AT(i + 1) && !isspace((unsigned char)AT(i + 1)))
                        return -1;
                    done = 1;
                } else if (!c) {
                    return -1;
                } else {
                    buf[w++] = c;
                }
            } else if (insq) {
                if (c == '\\' && AT(i + 1) == '\'') {
                    i++;
                    buf[w++] = '\'';
                } else if (c == '\'') {
                    if (AT(i + 1) && !isspace((unsigned char)AT(i + 1)))
                        return -1;
                    done = 1;
                } else if (!c) {
                    return -1;
                } else {
                    buf[w++] = c;
                }
            } else {
                switch (c) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                case '\0':
                    done = 1;
                    break;
                case '"':
                    inq = 1;
                    break;
                case '\'':
                    insq = 1;
                    break;
                default:
                    buf[w++] = c;
                    break;
                }
            }
            if (AT(i))
                i++;
        }
        if (p->argc >= p->max_args)
            return -1;
        if (push_arg(p, start, w - start) != 0)
            return -2;
    }
#undef AT
}

/* Finds "\r\n" (multibulk) starting at from; returns the offset of '\r'
 * or SIZE_MAX. */
static size_t find_crlf(const char *buf, size_t from, size_t len)
{
    const char *q = memchr(buf + from, '\r', len - from);
    while (q) {
        size_t at = (size_t)(q - buf);
        if (at + 1 >= len)
            return SIZE_MAX; /* need the '\n' */
        if (q[1] == '\n')
            return at;
        q = memchr(q + 1, '\r', len - at - 1);
    }
    return SIZE_MAX;
}

int resp_parse(struct resp_parser *p, char *buf, size_t len, const char **err)
{
    static char errbuf[64];

    if (!p->in_mb) {
        p->argc = 0;
        p->oversize = false;
        p->oversize_len = 0;
        for (;;) {
            if (p->pos >= len)
                return RESP_MORE;
            p->cmd_start = p->pos;
            if (buf[p->pos] != '*') {
                /* Inline command: one line. */
                char *nl = memchr(buf + p->pos, '\n', len - p->pos);
                if (!nl) {
                    if (len - p->pos > RESP_INLINE_MAX) {
                        *err = "Protocol error: too big inline request";
                        return RESP_ERR;
                    }
                    return RESP_MORE;
                }
                size_t e = (size_t)(nl - buf);
                size_t next = e + 1;
                if (e > p->pos && buf[e - 1] == '\r')
                    e--;
                p->argc = 0;
                int r = split_inline(p, buf, p->pos, e);
                if (r == -1) {
                    *err = "Protocol error: unbalanced quotes in request";
                    return RESP_ERR;
                }
                if (r == -2) {
                    *err = "Protocol error: out of memory";
                    return RESP_ERR;
                }
                p->pos = next;
                if (p->argc == 0)
                    continue; /* empty line */
                for (size_t i = 0; i < p->argc; i++)
                    if (p->argv[i].len > p->max_arg_len) {
                        p->oversize = true;
                        p->oversize_len = p->argv[i].len;
                    }
                return RESP_CMD;
            }
            size_t cr = find_crlf(buf, p->pos, len);
            if (cr == SIZE_MAX) {
                if (len - p->pos > RESP_INLINE_MAX) {
                    *err = "Protocol error: too big mbulk count string";
                    return RESP_ERR;
                }
                return RESP_MORE;
            }
            long long n;
            if (!resp_str2ll(buf + p->pos + 1, cr - p->pos - 1, &n) || n > INT_MAX) {
                *err = "Protocol error: invalid multibulk length";
                return RESP_ERR;
            }
            if (p->unauthenticated && n > 10) {
                *err = "Protocol error: unauthenticated multibulk length";
                return RESP_ERR;
            }
            p->pos = cr + 2;
            if (n <= 0)
                continue; /* "*0" or "*-1": nothing to run */
            if ((size_t)n > p->max_args) {
                *err = "Protocol error: invalid multibulk length";
                return RESP_ERR;
            }
            p->mb_left = n;
            p->bulk = -1;
            p->skip = 0;
            p->in_mb = true;
            break;
        }
    }

    while (p->mb_left > 0) {
        if (p->skip) {
            size_t avail = len - p->pos;
            size_t take = avail < p->skip ? avail : p->skip;
            p->pos += take;
            p->skip -= take;
            if (p->skip)
                return RESP_MORE;
            p->mb_left--;
            p->bulk = -1;
            continue;
        }
        if (p->bulk < 0) {
            if (p->pos >= len)
                return RESP_MORE;
            if (buf[p->pos] != '$') {
                snprintf(errbuf, sizeof(errbuf), "Protocol error: expected '$', got '%c'",
                         buf[p->pos]);
                *err = errbuf;
                return RESP_ERR;
            }
            size_t cr = find_crlf(buf, p->pos, len);
            if (cr == SIZE_MAX) {
                if (len - p->pos > RESP_INLINE_MAX) {
                    *err = "Protocol error: too big bulk count string";
                    return RESP_ERR;
                }
                return RESP_MORE;
            }
            long long n;
            if (!resp_str2ll(buf + p->pos + 1, cr - p->pos - 1, &n) || n < 0 ||
                (unsigned long long)n > RESP_HARD_MAX_BULK) {
                *err = "Protocol error: invalid bulk length";
                return RESP_ERR;
            }
            if (p->unauthenticated && n > 16384) {
                *err = "Protocol error: unauthenticated bulk length";
                return RESP_ERR;
            }
            p->pos = cr + 2;
            if ((size_t)n > p->max_arg_len) {
                /* Too big to keep: discard the bytes as they arrive and
                 * answer the command with an error. */
                p->oversize = true;
                if ((size_t)n > p->oversize_len)
                    p->oversize_len = (size_t)n;
                if (push_arg(p, SIZE_MAX, (size_t)n) != 0) {
                    *err = "Protocol error: out of memory";
                    return RESP_ERR;
                }
                p->skip = (size_t)n + 2;
                continue;
            }
            p->bulk = n;
        }
        if (len - p->pos < (size_t)p->bulk + 2)
            return RESP_MORE;
        if (push_arg(p, p->pos, (size_t)p->bulk) != 0) {
            *err = "Protocol error: out of memory";
            return RESP_ERR;
        }
        p->pos += (size_t)p->bulk + 2;
        p->bulk = -1;
        p->mb_left--;
    }
    p->in_mb = false;
    return RESP_CMD;
}

/* ---- replies ---------------------------------------------------------- */

static int add_prefixed_num(struct ofe_buf *o, char t, long long v)
{
    char tmp[32];
    tmp[0] = t;
    size_t n = 1 + resp_i64toa(tmp + 1, v);
    tmp[n++] = '\r';
    tmp[n++] = '\n';
    return ofe_buf_append(o, tmp, n);
}

int resp_add_simple(struct ofe_buf *o, const char *s)
{
    size_t n = strlen(s);
    if (ofe_buf_reserve(o, n + 3) != 0)
        return OFE_ENOMEM;
    o->data[o->len++] = '+';
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len++] = '\r';
    o->data[o->len++] = '\n';
    o->data[o->len] = '\0';
    return 0;
}

int resp_add_error(struct ofe_buf *o, const char *msg)
{
    size_t start = o->len;
    int r = 0;
    if (msg[0] != '-')
        r |= ofe_buf_puts(o, "-ERR ");
    r |= ofe_buf_puts(o, msg);
    if (r)
        return OFE_ENOMEM;
    for (size_t i = start; i < o->len; i++)
        if (o->data[i] == '\r' || o->data[i] == '\n')
            o->data[i] = ' ';
    return ofe_buf_append(o, "\r\n", 2);
}

int resp_add_errorf(struct ofe_buf *o, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    return resp_add_error(o, tmp);
}

int resp_add_int(struct ofe_buf *o, long long v)
{
    return add_prefixed_num(o, ':', v);
}

int resp_add_bulk(struct ofe_buf *o, const void *p, size_t n)
{
    if (ofe_buf_reserve(o, n + 32) != 0)
        return OFE_ENOMEM;
    char *d = o->data + o->len;
    *d++ = '$';
    d += resp_u64toa(d, n);
    *d++ = '\r';
    *d++ = '\n';
    if (n)
        memcpy(d, p, n);
    d += n;
    *d++ = '\r';
    *d++ = '\n';
    o->len = (size_t)(d - o->data);
    o->data[o->len] = '\0';
    return 0;
}

int resp_add_bulk_str(struct ofe_buf *o, const char *s)
{
    return resp_add_bulk(o, s, strlen(s));
}

int resp_add_bulk_ll(struct ofe_buf *o, long long v)
{
    char tmp[24];
    size_t n = resp_i64toa(tmp, v);
    return resp_add_bulk(o, tmp, n);
}

int resp_add_null(struct ofe_buf *o)
{
    return ofe_buf_append(o, "$-1\r\n", 5);
}

int resp_add_null_array(struct ofe_buf *o)
{
    return ofe_buf_append(o, "*-1\r\n", 5);
}

int resp_add_array(struct ofe_buf *o, long long n)
{
    return add_prefixed_num(o, '*', n);
}
