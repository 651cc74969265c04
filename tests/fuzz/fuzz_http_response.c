/* libFuzzer harness for the HTTP client's response parser (common/
 * http_parse.c). The input is what a server sent on one connection, after
 * an options byte: bit 0 = the request was HEAD, bits 1-2 = the body limit
 * (16 bytes to 64 KiB), bits 3-7 seed the piece sizes.
 *
 * The bytes are parsed twice: in one piece, and in pieces of 1 to 64 bytes
 * (as recv might hand them over). Responses follow one another as on a
 * kept-alive connection, and the server's close ends the stream. Both runs
 * must see the same responses (status, headers, body, truncation, framing)
 * and the same error; any difference, a body over the limit or an error
 * without a message aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client_int.h"
#include "ofe/err.h"

#define MAX_RESPONSES 64

struct seen {
    int rc;
    int status;
    bool keep_alive, truncated;
    int64_t retry_after_ms;
    size_t nhdrs;
    uint64_t hdr_sum, body_sum;
    size_t body_len;
};

struct run {
    struct seen v[MAX_RESPONSES];
    size_t n;
    int end_rc; /* of the stream's end: DONE, OFE_EIO (an error) or OFE_ECONN */
};

static uint64_t sum(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static void record(struct http__resp *r, int rc, struct run *out)
{
    if (rc == OFE_EIO || rc == OFE_ECONN) {
        if (!r->err[0])
            abort(); /* an error says what */
    }
    if (out->n == MAX_RESPONSES)
        return;
    struct seen *s = &out->v[out->n++];
    s->rc = rc;
    if (rc != HTTP__DONE)
        return;
    if (r->body.len > r->max_body)
        abort();
    if (r->status < 200 || r->status > 999)
        abort();
    s->status = r->status;
    s->keep_alive = r->keep_alive;
    s->truncated = r->truncated;
    s->retry_after_ms = r->retry_after_ms;
    s->nhdrs = r->hdrs.n;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < r->hdrs.n; i++) {
        h = sum(r->hdrs.v[i].name, r->hdrs.v[i].name_len, h);
        h = sum(":", 1, h);
        h = sum(r->hdrs.v[i].value, r->hdrs.v[i].value_len, h);
    }
    s->hdr_sum = h;
    s->body_len = r->body.len;
    s->body_sum = sum(r->body.data ? r->body.data : "", r->body.len, 14695981039346656037ull);
}

static void parse(const uint8_t *data, size_t size, uint8_t opts, bool pieces, struct run *out)
{
    static const size_t limits[] = {16, 300, 4096, 65536};
    size_t max_body = limits[(opts >> 1) & 3];
    bool head = opts & 1;
    uint32_t x = (uint32_t)(opts >> 3) * 2654435761u + 1;
    struct http__resp r;
    http__resp_init(&r);
    http__resp_start(&r, max_body, head);
    memset(out, 0, sizeof(*out));
    size_t off = 0;
    int rc = HTTP__MORE;
    while (off < size) {
        size_t n = size - off;
        if (pieces) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t k = 1 + x % 64;
            if (k < n)
                n = k;
        }
        /* a piece may hold the end of one response and the start of the next */
        size_t pos = 0;
        while (pos < n) {
            size_t used = 0;
            rc = http__resp_feed(&r, (const char *)data + off + pos, n - pos, &used);
            if (rc == HTTP__MORE)
                break;
            record(&r, rc, out);
            if (rc != HTTP__DONE)
                goto end;
            if (used > n - pos)
                abort();
            pos += used;
            http__resp_start(&r, max_body, head);
            rc = HTTP__MORE;
        }
        off += n;
    }
    /* the server closes the connection */
    rc = http__resp_eof(&r);
    record(&r, rc, out);
end:
    out->end_rc = rc;
    http__resp_fini(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static struct run whole, split;
    parse(data + 1, size - 1, data[0], false, &whole);
    parse(data + 1, size - 1, data[0], true, &split);
    bool same = whole.end_rc == split.end_rc && whole.n == split.n;
    for (size_t i = 0; same && i < whole.n; i++) {
        const struct seen *a = &whole.v[i], *b = &split.v[i];
        same = a->rc == b->rc && a->status == b->status && a->keep_alive == b->keep_alive &&
               a->truncated == b->truncated && a->retry_after_ms == b->retry_after_ms &&
               a->nhdrs == b->nhdrs && a->hdr_sum == b->hdr_sum && a->body_len == b->body_len &&
               a->body_sum == b->body_sum;
    }
    if (!same) {
        fprintf(stderr, "whole and split parses differ (%zu vs %zu responses, end %d vs %d)\n",
                whole.n, split.n, whole.end_rc, split.end_rc);
        abort();
    }
    return 0;
}
