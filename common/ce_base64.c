/* Base64 (RFC 4648 section 4, standard alphabet, with padding) for the
 * Binary attribute type and JSON `data_base64`. Decoding is strict: the
 * canonical encoding is the only one accepted. */
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63, or 0xff for a byte outside the alphabet */
static const unsigned char rev[256] = {
#define X   0xff
#define R16 X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X
    R16, R16, X,  X,  X,  X,  X,  X,  X,   X,   X,   X,   X,   62,  X,   X,   X,  63,
    52,  53,  54, 55, 56, 57, 58, 59, 60,  61,  X,   X,   X,   X,   X,   X,   X,  0,
    1,   2,   3,  4,  5,  6,  7,  8,  9,   10,  11,  12,  13,  14,  15,  16,  17, 18,
    19,  20,  21, 22, 23, 24, 25, X,  X,   X,   X,   X,   X,   26,  27,  28,  29, 30,
    31,  32,  33, 34, 35, 36, 37, 38, 39,  40,  41,  42,  43,  44,  45,  46,  47, 48,
    49,  50,  51, X,  X,  X,  X,  X,  R16, R16, R16, R16, R16, R16, R16, R16,
#undef R16
#undef X
};

void ce__b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
}

int ce__b64_decode(const char *in, size_t len, unsigned char *out, size_t *out_len, char *why,
                   size_t why_size)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    if (len % 4)
        return ofe_err(why, why_size, OFE_EINVAL, "length is not a multiple of 4");
    for (size_t i = 0; i < len; i += 4) {
        unsigned char a = rev[s[i]], b = rev[s[i + 1]], c = rev[s[i + 2]], d = rev[s[i + 3]];
        if ((a | b | c | d) != 0xff) {
            uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
            out[o++] = (unsigned char)(v >> 16);
            out[o++] = (unsigned char)(v >> 8);
            out[o++] = (unsigned char)v;
            continue;
        }
        /* a bad character, or padding: only "xx==" / "xxx=" at the very end */
        bool last = i + 4 == len;
        for (size_t j = 0; j < 4; j++) {
            if (rev[s[i + j]] != 0xff)
                continue;
            if (s[i + j] != '=')
                return ofe_err(why, why_size, OFE_EINVAL,
                               "character at position %zu is not in the Base64 alphabet",
                               i + j + 1);
            if (!last || j < 2 || (j == 2 && s[i + 3] != '='))
                return ofe_err(why, why_size, OFE_EINVAL, "misplaced '=' at position %zu",
                               i + j + 1);
            break;
        }
        if (s[i + 2] == '=') {
            if (b & 0x0f)
                return ofe_err(why, why_size, OFE_EINVAL, "non-zero bits before the padding");
            out[o++] = (unsigned char)(a << 2 | b >> 4);
        } else {
            if (c & 0x03)
                return ofe_err(why, why_size, OFE_EINVAL, "non-zero bits before the padding");
            out[o++] = (unsigned char)(a << 2 | b >> 4);
            out[o++] = (unsigned char)(b << 4 | c >> 2);
        }
    }
    *out_len = o;
    return 0;
}
