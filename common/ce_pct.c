/* Percent-encoding of attribute values in HTTP and NATS headers (HTTP
 * binding 3.1.3.2): space, '"', '%' and every byte outside U+0021..U+007E
 * become %XX (upper-case hex); decoding accepts either case, decodes
 * exactly once, and rejects bad % sequences and invalid UTF-8. */
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

static const char HEX[] = "0123456789ABCDEF";

/* 0 for bytes sent as they are, 2 for the extra bytes of %XX */
static const unsigned char extra[256] = {
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 0, 2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static inline bool keep(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '"' && c != '%';
}

size_t ce__pct_encoded_len(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t n = len, i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, u + i, 8);
        /* a byte < 0x21, >= 0x7f, '"' or '%' sends this word to the table */
        uint64_t q = w ^ (ones * '"'), p = w ^ (ones * '%');
        uint64_t odd = (w | ((w + ones) & highs)) & highs; /* >= 0x80, or 0x7f */
        odd |= (w - ones * 0x21) & ~w & highs;             /* < 0x21 */
        odd |= ((q - ones) & ~q & highs) | ((p - ones) & ~p & highs);
        if (odd)
            for (size_t k = 0; k < 8; k++)
                n += extra[u[i + k]];
    }
    for (; i < len; i++)
        n += extra[u[i]];
    return n;
}

void ce__pct_encode_into(const char *s, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (keep(c)) {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = HEX[c >> 4];
            *out++ = HEX[c & 15];
        }
    }
}

int ofe_ce_pct_encode(const char *s, size_t len, struct ofe_buf *out)
{
    size_t n = ce__pct_encoded_len(s, len);
    if (ofe_buf_reserve(out, n))
        return OFE_ENOMEM;
    ce__pct_encode_into(s, len, out->data + out->len);
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

static int hexv(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int ce__pct_decode_into(const char *s, size_t len, char *out, size_t *out_len, char *why,
                        size_t why_size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '%') {
            out[o++] = (char)c;
            continue;
        }
        int h = len - i >= 3 ? hexv((unsigned char)s[i + 1]) : -1;
        int l = len - i >= 3 ? hexv((unsigned char)s[i + 2]) : -1;
        if (h < 0 || l < 0)
            return ofe_err(why, why_size, OFE_EINVAL,
                           "bad percent-encoding at position %zu ('%%' must be followed by two "
                           "hex digits)",
                           i + 1);
        out[o++] = (char)(h << 4 | l);
        i += 2;
    }
    if (!ce__utf8_valid(out, o)) {
        size_t at = 0;
        while (at < o) {
            size_t k = ce__utf8_seq((const unsigned char *)out + at, o - at);
            if (!k)
                break;
            at += k;
        }
        return ofe_err(why, why_size, OFE_EINVAL, "decodes to invalid UTF-8 (at decoded byte %zu)",
                       at + 1);
    }
    *out_len = o;
    return 0;
}

int ofe_ce_pct_decode(const char *s, size_t len, struct ofe_buf *out, char *errstr,
                      size_t errstr_size)
{
    if (ofe_buf_reserve(out, len))
        return OFE_ENOMEM;
    size_t n;
    int rc = ce__pct_decode_into(s, len, out->data + out->len, &n, errstr, errstr_size);
    if (rc) {
        out->data[out->len] = '\0';
        return rc;
    }
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}
