/* HTTP/1.x response parser for the HTTP client's own engine.
 *
 * Bytes arrive in pieces of any size. The head (status line and header
 * lines) is collected until its blank line and then parsed as a whole;
 * the body is decoded as it streams: Content-Length, chunked (extensions
 * skipped, trailers read and dropped) or delimited by the close. 1xx
 * responses are skipped. Lines may end in CRLF or a bare LF; folded
 * header lines (obs-fold) are joined with one space. Everything else that
 * does not follow RFC 9112 is an error with a sentence saying what. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_client_int.h"
#include "ofe/err.h"

enum {
    S_HEAD,
    S_BODY,       /* Content-Length or close-delimited */
    S_CHUNK_SIZE, /* hex digits */
    S_CHUNK_EXT,  /* after the size: extensions, up to LF */
    S_CHUNK_DATA, /* left bytes of chunk data */
    S_CHUNK_CR,   /* CRLF after the data */
    S_CHUNK_LF,
    S_TRAILER, /* trailer lines up to an empty one */
    S_DONE,
    S_FAILED,
};

enum { K_NONE, K_LENGTH, K_CHUNKED, K_CLOSE };

#define MAX_CHUNK_LINE 4096

void http__resp_init(struct http__resp *r)
{
    memset(r, 0, sizeof(*r));
    ofe_hdrs_init(&r->hdrs);
    r->retry_after_ms = -1;
}

void http__resp_fini(struct http__resp *r)
{
    ofe_hdrs_fini(&r->hdrs);
    ofe_buf_fini(&r->body);
    ofe_buf_fini(&r->head);
    ofe_buf_fini(&r->fold);
}

void http__resp_start(struct http__resp *r, size_t max_body, bool no_body)
{
    ofe_hdrs_reset(&r->hdrs);
    /* a large body or head seen once is not kept for every later response */
    if (r->body.cap > 16384)
        ofe_buf_fini(&r->body);
    if (r->head.cap > 16384)
        ofe_buf_fini(&r->head);
    ofe_buf_reset(&r->body);
    ofe_buf_reset(&r->head);
    r->status = 0;
    r->keep_alive = false;
    r->truncated = false;
    r->retry_after_ms = -1;
    r->nread = 0;
    r->err[0] = '\0';
    r->max_body = max_body;
    r->no_body = no_body;
    r->state = S_HEAD;
    r->kind = K_NONE;
    r->line_start = r->scan = 0;
    r->informational = 0;
    r->left = 0;
    r->line_len = r->trailer_len = 0;
    r->digits = 0;
}

static int fail(struct http__resp *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct http__resp *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(r->err, sizeof(r->err), "malformed HTTP response: ");
    vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
    va_end(ap);
    r->state = S_FAILED;
    return OFE_EIO;
}

/* A printable excerpt of server bytes for an error message. */
static const char *excerpt(char *out, size_t size, const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size; i++) {
        unsigned char ch = (unsigned char)p[i];
        out[k++] = ch >= 0x20 && ch < 0x7f && ch != '"' ? (char)ch : '?';
    }
    if (n && k + 4 >= size) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
    return out;
}

static void keep(struct http__resp *r, const char *p, size_t n)
{
    if (r->truncated || !n)
        return;
    size_t room = r->max_body - r->body.len;
    if (n > room) {
        n = room;
        r->truncated = true;
    }
    if (n && ofe_buf_append(&r->body, p, n))
        r->truncated = true; /* out of memory: what we have is not all */
}

/* ---- the head ---------------------------------------------------------- */

static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Does the comma-separated list v contain the token tok (any case)? */
static bool has_token(const char *v, size_t vl, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < vl) {
        while (i < vl && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < vl && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e - s == tl && !strncasecmp(v + s, tok, tl))
            return true;
    }
    return false;
}

/* Is the last transfer coding of the list "chunked"? */
static bool last_is_chunked(const char *v, size_t vl)
{
    size_t e = vl;
    while (e && (is_ows(v[e - 1]) || v[e - 1] == ','))
        e--;
    size_t s = e;
    while (s && v[s - 1] != ',')
        s--;
    while (s < e && is_ows(v[s]))
        s++;
    return e - s == 7 && !strncasecmp(v + s, "chunked", 7);
}

/* Content-Length: digits, or a list of identical values. */
static int content_length(struct http__resp *r, const char *v, size_t vl, bool *have, uint64_t *len)
{
    char x[48];
    size_t i = 0;
    for (;;) {
        while (i < vl && is_ows(v[i]))
            i++;
        if (i == vl || v[i] < '0' || v[i] > '9')
            return fail(r, "invalid Content-Length \"%s\"", excerpt(x, sizeof(x), v, vl));
        uint64_t n = 0;
        while (i < vl && v[i] >= '0' && v[i] <= '9') {
            if (n > (UINT64_MAX - 9) / 10 || n * 10 + (uint64_t)(v[i] - '0') > (uint64_t)INT64_MAX)
                return fail(r, "Content-Length too large");
            n = n * 10 + (uint64_t)(v[i] - '0');
            i++;
        }
        while (i < vl && is_ows(v[i]))
            i++;
        if (*have && n != *len)
            return fail(r, "conflicting Content-Length values");
        *have = true;
        *len = n;
        if (i == vl)
            return 0;
        if (v[i] != ',')
            return fail(r, "invalid Content-Length \"%s\"", excerpt(x, sizeof(x), v, vl));
        i++;
    }
}

/* Length of the line content at h[s..] ending before the LF at e (a CR
 * before the LF is not content). */
static size_t line_len(const char *h, size_t s, size_t e)
{
    return e > s && h[e - 1] == '\r' ? e - 1 - s : e - s;
}

/* Parses the complete head h[0..len) (ending in its blank line). */
static int parse_head(struct http__resp *r, const char *h, size_t len)
{
    char x[64];
    /* status line */
    const char *nl = memchr(h, '\n', len);
    size_t sl = line_len(h, 0, (size_t)(nl - h));
    if (sl < 12 || memcmp(h, "HTTP/", 5) || h[6] != '.' || h[5] < '0' || h[5] > '9' || h[7] < '0' ||
        h[7] > '9' || h[8] != ' ')
        return fail(r, "bad status line \"%s\"", excerpt(x, sizeof(x), h, sl));
    if (h[5] != '1')
        return fail(r, "unsupported version HTTP/%c.%c", h[5], h[7]);
    bool http10 = h[7] == '0';
    if (h[9] < '1' || h[9] > '9' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9' ||
        (sl > 12 && h[12] != ' '))
        return fail(r, "bad status code in \"%s\"", excerpt(x, sizeof(x), h, sl));
    for (size_t i = 12; i < sl; i++)
        if ((unsigned char)h[i] < 0x20 && h[i] != '\t')
            return fail(r, "control character in the status line");
    int status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');

    ofe_hdrs_reset(&r->hdrs);
    r->retry_after_ms = -1;
    bool have_len = false, chunked = false, te = false, close = false, ka = false;
    uint64_t clen = 0;
    size_t pos = (size_t)(nl - h) + 1;
    while (pos < len) {
        nl = memchr(h + pos, '\n', len - pos);
        size_t e = (size_t)(nl - h);
        size_t ll = line_len(h, pos, e);
        if (ll == 0)
            break; /* the blank line */
        const char *line = h + pos;
        if (is_ows(line[0]))
            return fail(r, "folded line without a header before it");
        size_t nlen = 0;
        while (nlen < ll && is_tchar((unsigned char)line[nlen]))
            nlen++;
        if (nlen == 0 || nlen == ll || line[nlen] != ':')
            return fail(r, "bad header line \"%s\"", excerpt(x, sizeof(x), line, ll));
        const char *v = line + nlen + 1;
        size_t vl = ll - nlen - 1;
        pos = e + 1;
        /* obs-fold: continuation lines start with SP or HT */
        bool folded = false;
        while (pos < len && is_ows(h[pos])) {
            if (!folded) {
                ofe_buf_reset(&r->fold);
                if (ofe_buf_append(&r->fold, v, vl))
                    return fail(r, "out of memory");
                folded = true;
            }
            nl = memchr(h + pos, '\n', len - pos);
            e = (size_t)(nl - h);
            size_t s = pos, cl = line_len(h, pos, e);
            while (cl && is_ows(h[s])) {
                s++;
                cl--;
            }
            while (r->fold.len && is_ows(r->fold.data[r->fold.len - 1]))
                r->fold.len--;
            if (ofe_buf_putc(&r->fold, ' ') || ofe_buf_append(&r->fold, h + s, cl))
                return fail(r, "out of memory");
            pos = e + 1;
        }
        if (folded) {
            v = r->fold.data;
            vl = r->fold.len;
        }
        while (vl && is_ows(*v)) {
            v++;
            vl--;
        }
        while (vl && is_ows(v[vl - 1]))
            vl--;
        for (size_t i = 0; i < vl; i++)
            if (v[i] == '\0' || v[i] == '\r' || v[i] == '\n')
                return fail(r, "control character in header %s", excerpt(x, sizeof(x), line, nlen));
        if (ofe_hdrs_add_copy(&r->hdrs, line, nlen, v, vl))
            return fail(r, "out of memory");
        if (nlen == 14 && !strncasecmp(line, "Content-Length", 14)) {
            if (content_length(r, v, vl, &have_len, &clen))
                return OFE_EIO;
        } else if (nlen == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
            te = true;
            chunked = last_is_chunked(v, vl); /* the last header's last coding decides */
        } else if (nlen == 10 && !strncasecmp(line, "Connection", 10)) {
            close = close || has_token(v, vl, "close");
            ka = ka || has_token(v, vl, "keep-alive");
        } else if (nlen == 11 && !strncasecmp(line, "Retry-After", 11)) {
            r->retry_after_ms = http__retry_after(v, vl);
        }
    }

    r->status = status;
    if (status < 200)
        return 0; /* 1xx: the caller skips it */
    r->keep_alive = !close && (!http10 || ka);
    if (r->no_body || status == 204 || status == 304) {
        r->kind = K_NONE;
    } else if (te) {
        /* Transfer-Encoding overrides Content-Length (RFC 9112 6.3); a
         * message with both is suspect: do not reuse the connection. */
        if (have_len)
            r->keep_alive = false;
        if (chunked) {
            r->kind = K_CHUNKED;
        } else {
            r->kind = K_CLOSE;
            r->keep_alive = false;
        }
    } else if (have_len) {
        r->kind = K_LENGTH;
        r->left = clen;
    } else {
        r->kind = K_CLOSE;
        r->keep_alive = false;
    }
    return 0;
}

/* Collects head bytes. Returns MORE (all consumed), DONE (*used consumed,
 * the head of the final response parsed) or OFE_EIO. */
static int feed_head(struct http__resp *r, const char *p, size_t n, size_t *used)
{
    size_t off = 0;
    while (off < n) {
        /* leading empty lines before a status line are ignored */
        if (r->head.len == 0) {
            while (off < n && (p[off] == '\r' || p[off] == '\n'))
                off++;
            if (off == n)
                break;
        }
        size_t room = HTTP__MAX_HEAD - r->head.len;
        size_t take = n - off < room ? n - off : room;
        size_t old = r->head.len;
        if (ofe_buf_append(&r->head, p + off, take))
            return fail(r, "out of memory");
        /* find the blank line: scan each new line start */
        const char *h = r->head.data;
        size_t end = 0;
        while (r->scan < r->head.len) {
            const char *nl = memchr(h + r->scan, '\n', r->head.len - r->scan);
            if (!nl) {
                r->scan = r->head.len;
                break;
            }
            size_t e = (size_t)(nl - h);
            if (line_len(h, r->line_start, e) == 0 && r->line_start > 0) {
                end = e + 1;
                break;
            }
            r->line_start = r->scan = e + 1;
        }
        if (!end) {
            if (r->head.len >= HTTP__MAX_HEAD)
                return fail(r, "response head larger than %d bytes", HTTP__MAX_HEAD);
            off += take;
            continue;
        }
        /* bytes after the blank line are not part of the head */
        off += end - old;
        int rc = parse_head(r, h, end);
        if (rc)
            return rc;
        ofe_buf_reset(&r->head);
        r->line_start = r->scan = 0;
        if (r->status >= 200) {
            *used = off;
            return HTTP__DONE;
        }
        if (r->status == 101)
            return fail(r, "unexpected 101 Switching Protocols");
        if (++r->informational > HTTP__MAX_INFORMATIONAL)
            return fail(r, "more than %d informational (1xx) responses", HTTP__MAX_INFORMATIONAL);
        r->status = 0;
        ofe_hdrs_reset(&r->hdrs);
        r->retry_after_ms = -1;
    }
    return HTTP__MORE;
}

/* ---- the body ---------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes chunked bytes; returns MORE, DONE (*used) or OFE_EIO. */
static int feed_chunked(struct http__resp *r, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    while (i < n) {
        char ch = p[i];
        switch (r->state) {
        case S_CHUNK_SIZE: {
            int d = hexval(ch);
            if (d >= 0) {
                if (r->left > (UINT64_MAX >> 4) || ++r->digits > 16)
                    return fail(r, "chunk size too large");
                r->left = (r->left << 4) | (uint64_t)d;
                i++;
                break;
            }
            if (!r->digits)
                return fail(r, "bad chunk size (0x%02x)", (unsigned char)ch);
            if (ch == ';' || is_ows(ch) || ch == '\r' || ch == '\n') {
                r->state = S_CHUNK_EXT;
                r->line_len = 0;
                break; /* the same byte again in S_CHUNK_EXT */
            }
            return fail(r, "bad chunk size (0x%02x)", (unsigned char)ch);
        }
        case S_CHUNK_EXT:
            i++;
            if (ch == '\n') {
                r->digits = 0;
                if (r->left == 0) {
                    r->state = S_TRAILER;
                    r->line_len = 0;
                    r->trailer_len = 0;
                } else {
                    r->state = S_CHUNK_DATA;
                }
            } else if (++r->line_len > MAX_CHUNK_LINE) {
                return fail(r, "chunk extension longer than %d bytes", MAX_CHUNK_LINE);
            } else if (ch == '\0') {
                return fail(r, "NUL in a chunk extension");
            }
            break;
        case S_CHUNK_DATA: {
            size_t k = n - i;
            if ((uint64_t)k > r->left)
                k = (size_t)r->left;
            keep(r, p + i, k);
            r->left -= k;
            i += k;
            if (r->left == 0)
                r->state = S_CHUNK_CR;
            break;
        }
        case S_CHUNK_CR:
            i++;
            if (ch == '\r')
                r->state = S_CHUNK_LF;
            else if (ch == '\n')
                r->state = S_CHUNK_SIZE;
            else
                return fail(r, "no line end after chunk data");
            break;
        case S_CHUNK_LF:
            i++;
            if (ch != '\n')
                return fail(r, "no line end after chunk data");
            r->state = S_CHUNK_SIZE;
            break;
        case S_TRAILER:
            i++;
            if (++r->trailer_len > HTTP__MAX_HEAD)
                return fail(r, "trailer larger than %d bytes", HTTP__MAX_HEAD);
            if (ch == '\n') {
                if (r->line_len == 0) {
                    r->state = S_DONE;
                    *used = i;
                    return HTTP__DONE;
                }
                r->line_len = 0;
            } else if (ch == '\0') {
                return fail(r, "NUL in the trailer");
            } else if (ch != '\r') {
                r->line_len++;
            }
            break;
        default:
            return fail(r, "internal state %d", r->state);
        }
    }
    return HTTP__MORE;
}

int http__resp_feed(struct http__resp *r, const char *p, size_t n, size_t *used)
{
    *used = 0;
    if (r->state == S_DONE || r->state == S_FAILED)
        return fail(r, "bytes after the end of the response");
    r->nread += n;
    size_t off = 0;
    if (r->state == S_HEAD) {
        size_t u = 0;
        int rc = feed_head(r, p, n, &u);
        if (rc != HTTP__DONE)
            return rc;
        off = u;
        switch (r->kind) {
        case K_NONE:
            r->state = S_DONE;
            *used = off;
            return HTTP__DONE;
        case K_LENGTH:
            r->state = S_BODY;
            if (r->left == 0) {
                r->state = S_DONE;
                *used = off;
                return HTTP__DONE;
            }
            break;
        case K_CHUNKED:
            r->state = S_CHUNK_SIZE;
            r->left = 0;
            r->digits = 0;
            break;
        default:
            r->state = S_BODY;
            break;
        }
    }
    if (r->state == S_BODY) {
        size_t k = n - off;
        if (r->kind == K_LENGTH && (uint64_t)k > r->left)
            k = (size_t)r->left;
        keep(r, p + off, k);
        off += k;
        if (r->kind == K_LENGTH) {
            r->left -= k;
            if (r->left == 0) {
                r->state = S_DONE;
                *used = off;
                return HTTP__DONE;
            }
        }
        *used = off;
        return HTTP__MORE;
    }
    size_t u = 0;
    int rc = feed_chunked(r, p + off, n - off, &u);
    *used = off + (rc == HTTP__DONE ? u : n - off);
    return rc;
}

int http__resp_eof(struct http__resp *r)
{
    switch (r->state) {
    case S_DONE:
        return HTTP__DONE;
    case S_HEAD:
        if (r->nread == 0)
            snprintf(r->err, sizeof(r->err), "Empty reply from server");
        else
            snprintf(r->err, sizeof(r->err),
                     "connection closed by the server within the response head");
        break;
    case S_BODY:
        if (r->kind == K_CLOSE) {
            r->state = S_DONE;
            return HTTP__DONE;
        }
        snprintf(r->err, sizeof(r->err), "transfer closed with %llu bytes remaining to read",
                 (unsigned long long)r->left);
        break;
    case S_FAILED:
        return OFE_ECONN; /* r->err says why it failed before */
    default:
        snprintf(r->err, sizeof(r->err),
                 "transfer closed with outstanding read data remaining (chunked body)");
        break;
    }
    r->state = S_FAILED;
    return OFE_ECONN;
}

int64_t http__retry_after(const char *v, size_t len)
{
    char tmp[128];
    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    char *end;
    long long secs = strtoll(tmp, &end, 10);
    if (end != tmp && *end == '\0' && secs >= 0)
        return secs > 86400 ? 86400000 : secs * 1000;
    time_t when = curl_getdate(tmp, NULL);
    if (when < 0)
        return -1;
    time_t now = time(NULL);
    return when > now ? (int64_t)(when - now) * 1000 : 0;
}
