/* CloudEvents v1.0.2 type system: checks of canonical string forms.
 *
 * Boolean "true"/"false"; Integer per RFC 7159 int with an optional minus,
 * signed 32-bit; String without C0/C1 controls, surrogates or
 * noncharacters; Binary as RFC 4648 base64; URI (absolute, with a scheme)
 * and URI-reference per RFC 3986; Timestamp per RFC 3339; media types per
 * RFC 2046 / RFC 7231. Every failure says what is wrong and where. */
#include <stdio.h>
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

/* Decodes one UTF-8 sequence at s[0..n); returns its length and the code
 * point, or 0 when the sequence is invalid (RFC 3629). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xc2)
        return 0;
    if (c < 0xe0) {
        if (n < 2 || (s[1] & 0xc0) != 0x80)
            return 0;
        *cp = ((uint32_t)(c & 0x1f) << 6) | (s[1] & 0x3f);
        return 2;
    }
    if (c < 0xf0) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        uint32_t v = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        if (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))
            return 0;
        *cp = v;
        return 3;
    }
    if (c < 0xf5) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        uint32_t v = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
                     ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        if (v < 0x10000 || v > 0x10ffff)
            return 0;
        *cp = v;
        return 4;
    }
    return 0;
}

size_t ce__utf8_seq(const unsigned char *s, size_t n)
{
    uint32_t cp;
    return utf8_next(s, n, &cp);
}

bool ce__utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* eight ASCII bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_next(s + i, n - i, &cp);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

const char *ce__quote(char *out, size_t out_size, const char *v, size_t len)
{
    size_t o = 0;
    if (out_size < 8) {
        if (out_size)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        char tmp[8];
        size_t n = 1;
        uint32_t cp = 0;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            n = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            tmp[0] = (char)c;
        } else if (c >= 0x80 && (n = utf8_next((const unsigned char *)v + i, len - i, &cp)) &&
                   cp >= 0xa0) {
            /* a whole, valid, printable multi-byte character is shown as is */
            memcpy(tmp, v + i, n);
            i += n - 1;
        } else {
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02X", c);
        }
        if (o + n + 5 > out_size) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

int ce__check_string(const char *name, size_t nlen, const char *v, size_t len, char *errstr,
                     size_t errstr_size)
{
    const unsigned char *s = (const unsigned char *)v;
    size_t i = 0;
    while (i < len) {
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            /* any byte >= 0x80, < 0x20 or == 0x7f stops the fast path */
            uint64_t hi = w & 0x8080808080808080ull;
            uint64_t lo = (w - 0x2020202020202020ull) & ~w & 0x8080808080808080ull;
            uint64_t del = ((w ^ 0x7f7f7f7f7f7f7f7full) - 0x0101010101010101ull) &
                           ~(w ^ 0x7f7f7f7f7f7f7f7full) & 0x8080808080808080ull;
            if (hi | lo | del)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        uint32_t cp;
        size_t k = utf8_next(s + i, len - i, &cp);
        if (!k)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute '%.*s': invalid UTF-8 at byte %zu", (int)nlen, name, i + 1);
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute '%.*s': control character U+%04X at byte %zu is not "
                           "allowed",
                           (int)nlen, name, (unsigned)cp, i + 1);
        if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute '%.*s': noncharacter U+%04X at byte %zu is not allowed",
                           (int)nlen, name, (unsigned)cp, i + 1);
        i += k;
    }
    return 0;
}

/* ---- Integer, Boolean -------------------------------------------------- */

static int check_integer(const char *name, size_t nlen, const char *v, size_t len, int32_t *out,
                         char *errstr, size_t errstr_size)
{
    char q[96];
    size_t i = 0;
    bool neg = false;
    if (len && v[0] == '+')
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "attribute '%.*s': %s is not a canonical Integer (no '+' sign allowed)",
                       (int)nlen, name, ce__quote(q, sizeof(q), v, len));
    if (len && v[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute '%.*s': %s is not an Integer",
                       (int)nlen, name, ce__quote(q, sizeof(q), v, len));
    for (size_t j = i; j < len; j++)
        if (v[j] < '0' || v[j] > '9')
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute '%.*s': %s is not an Integer (a whole number in decimal "
                           "digits)",
                           (int)nlen, name, ce__quote(q, sizeof(q), v, len));
    if (v[i] == '0' && len - i > 1)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "attribute '%.*s': %s is not a canonical Integer (no leading zeros "
                       "allowed)",
                       (int)nlen, name, ce__quote(q, sizeof(q), v, len));
    int64_t x = 0;
    for (size_t j = i; j < len; j++) {
        x = x * 10 + (v[j] - '0');
        if (x > 2147483648ll)
            break;
    }
    if (neg)
        x = -x;
    if (x > INT32_MAX || x < INT32_MIN)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "attribute '%.*s': %s is out of the Integer range (-2147483648 to "
                       "2147483647)",
                       (int)nlen, name, ce__quote(q, sizeof(q), v, len));
    *out = (int32_t)x;
    return 0;
}

/* ---- URI, URI-reference (RFC 3986) ------------------------------------- */

static bool is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* RFC 3986 characters outside %HH: 1 unreserved or sub-delims, 2 gen-delims */
static const unsigned char uri_chars[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,  ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,  ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,  ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,  ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,  ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,  ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1,  ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,  ['-'] = 1, ['.'] = 1,
    ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
    ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, [':'] = 2,  ['/'] = 2, ['?'] = 2,
    ['#'] = 2, ['['] = 2, [']'] = 2, ['@'] = 2,
};

/* Returns NULL when s is a valid URI (absolute) / URI-reference, else why. */
static const char *uri_problem(const char *s, size_t n, bool absolute, size_t *at)
{
    /* every character must be unreserved, reserved or part of %HH */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        *at = i + 1;
        if (c == '%') {
            if (i + 2 >= n || !is_hex((unsigned char)s[i + 1]) || !is_hex((unsigned char)s[i + 2]))
                return "'%' not followed by two hex digits";
            i += 2;
            continue;
        }
        if (!uri_chars[c])
            return "character not allowed in a URI (use %HH)";
    }
    size_t i = 0, k = 0;
    while (k < n && s[k] != ':' && s[k] != '/' && s[k] != '?' && s[k] != '#')
        k++;
    if (k < n && s[k] == ':') {
        *at = 1;
        if (k == 0)
            return absolute ? "empty scheme"
                            : "empty scheme (a relative reference cannot start "
                              "with ':')";
        if (!is_alpha((unsigned char)s[0]))
            return absolute ? "scheme does not start with a letter"
                            : "relative reference with ':' in its first segment (or a scheme "
                              "not starting with a letter)";
        for (size_t j = 1; j < k; j++) {
            unsigned char c = (unsigned char)s[j];
            if (!(is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.')) {
                *at = j + 1;
                return absolute ? "character not allowed in a scheme"
                                : "relative reference with ':' in its first segment (or a bad "
                                  "scheme)";
            }
        }
        i = k + 1;
    } else if (absolute) {
        *at = 1;
        return "no scheme (an absolute URI starts with scheme:)";
    }
    if (i + 1 < n && s[i] == '/' && s[i + 1] == '/') {
        size_t a = i + 2, e = a;
        while (e < n && s[e] != '/' && s[e] != '?' && s[e] != '#')
            e++;
        /* authority = [userinfo "@"] host [":" port] */
        size_t h = a;
        for (size_t j = a; j < e; j++)
            if (s[j] == '@')
                h = j + 1;
        for (size_t j = a; h > a && j < h - 1; j++) {
            if (s[j] == '@' || s[j] == '[' || s[j] == ']') {
                *at = j + 1;
                return "character not allowed in the user information";
            }
        }
        size_t p = h;
        if (h < e && s[h] == '[') {
            while (p < e && s[p] != ']')
                p++;
            if (p == e) {
                *at = h + 1;
                return "'[' without ']' in the host";
            }
            p++;
        } else {
            while (p < e && s[p] != ':') {
                if (s[p] == '[' || s[p] == ']' || s[p] == '@') {
                    *at = p + 1;
                    return "character not allowed in the host";
                }
                p++;
            }
        }
        if (p < e) {
            if (s[p] != ':') {
                *at = p + 1;
                return "unexpected character after the host";
            }
            for (size_t j = p + 1; j < e; j++) {
                if (!is_digit((unsigned char)s[j])) {
                    *at = j + 1;
                    return "port is not a number";
                }
            }
        }
        i = e;
    }
    bool frag = false;
    for (size_t j = i; j < n; j++) {
        char c = s[j];
        if (c == '[' || c == ']') {
            *at = j + 1;
            return "'[' or ']' outside the host";
        }
        if (c == '#') {
            if (frag) {
                *at = j + 1;
                return "second '#'";
            }
            frag = true;
        }
    }
    return NULL;
}

/* ---- Timestamp (RFC 3339) ---------------------------------------------- */

static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static const char *time_problem(const char *s, size_t n)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 19)
        return "too short for YYYY-MM-DDTHH:MM:SS and a zone";
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 0 || s[4] != '-' || mo < 0 || s[7] != '-' || d < 0)
        return "the date is not YYYY-MM-DD";
    if (mo < 1 || mo > 12)
        return "month out of range";
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > mdays[mo - 1] + (mo == 2 && leap))
        return "day out of range for the month";
    if (s[10] != 'T' && s[10] != 't')
        return "no 'T' between date and time";
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (h < 0 || s[13] != ':' || mi < 0 || s[16] != ':' || se < 0)
        return "the time is not HH:MM:SS";
    if (h > 23)
        return "hour out of range";
    if (mi > 59)
        return "minute out of range";
    if (se > 60)
        return "second out of range";
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && is_digit((unsigned char)s[i]))
            i++;
        if (i == f)
            return "no digits after the decimal point";
    }
    if (i == n)
        return "no time zone offset (Z or +HH:MM)";
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (n - i != 6)
            return "zone offset is not +HH:MM or -HH:MM";
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || s[i + 3] != ':' || om < 0)
            return "zone offset is not +HH:MM or -HH:MM";
        if (oh > 23 || om > 59)
            return "zone offset out of range";
        i += 6;
    } else {
        return "bad time zone offset (expected Z or +HH:MM)";
    }
    if (i != n)
        return "unexpected characters after the time zone";
    return NULL;
}

/* ---- media types (RFC 2046, RFC 7231 3.1.1.1) ---------------------------- */

/* RFC 2045 token characters: CHAR except SPACE, CTLs and tspecials */
static const unsigned char tchar[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
};

static inline bool is_tchar(unsigned char c)
{
    return tchar[c];
}

static size_t token_len(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    return i;
}

int ce__check_media_type(const char *v, size_t len, char *why, size_t why_size)
{
    size_t i = token_len(v, len);
    if (i == 0)
        return ofe_err(why, why_size, OFE_EINVAL, "expected type/subtype, no type at position 1");
    if (i == len || v[i] != '/')
        return ofe_err(why, why_size, OFE_EINVAL, "expected '/' after the type at position %zu",
                       i + 1);
    i++;
    size_t t = token_len(v + i, len - i);
    if (t == 0)
        return ofe_err(why, why_size, OFE_EINVAL, "no subtype at position %zu", i + 1);
    i += t;
    for (;;) {
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i == len)
            break;
        if (v[i] != ';')
            return ofe_err(why, why_size, OFE_EINVAL,
                           "unexpected character at position %zu (expected ';' before a "
                           "parameter)",
                           i + 1);
        i++;
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t a = token_len(v + i, len - i);
        if (a == 0)
            return ofe_err(why, why_size, OFE_EINVAL, "no parameter name at position %zu", i + 1);
        i += a;
        if (i == len || v[i] != '=')
            return ofe_err(why, why_size, OFE_EINVAL,
                           "expected '=' after the parameter name at position %zu", i + 1);
        i++;
        if (i < len && v[i] == '"') {
            size_t q = i++;
            for (;;) {
                if (i == len)
                    return ofe_err(why, why_size, OFE_EINVAL,
                                   "unterminated quoted string at position %zu", q + 1);
                unsigned char c = (unsigned char)v[i];
                if (c == '"') {
                    i++;
                    break;
                }
                if (c == '\\') {
                    if (i + 1 == len || (unsigned char)v[i + 1] < 0x20 ||
                        (unsigned char)v[i + 1] >= 0x7f) {
                        if (i + 1 < len && v[i + 1] == '\t') {
                            i += 2;
                            continue;
                        }
                        return ofe_err(why, why_size, OFE_EINVAL,
                                       "bad escape in quoted string at position %zu", i + 1);
                    }
                    i += 2;
                    continue;
                }
                if (c != '\t' && (c < 0x20 || c >= 0x7f))
                    return ofe_err(why, why_size, OFE_EINVAL,
                                   "character not allowed in quoted string at position %zu", i + 1);
                i++;
            }
        } else {
            size_t b = token_len(v + i, len - i);
            if (b == 0)
                return ofe_err(why, why_size, OFE_EINVAL, "no parameter value at position %zu",
                               i + 1);
            i += b;
        }
    }
    return 0;
}

static bool eq_ci(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != lit[i])
            return false;
    return true;
}

static bool ends_ci(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n >= m && eq_ci(s + n - m, m, lit);
}

bool ce__has_prefix_ci(const char *s, size_t len, const char *prefix)
{
    size_t m = strlen(prefix);
    if (len < m)
        return false;
    for (size_t i = 0; i < m; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)prefix[i];
        if (a >= 'A' && a <= 'Z')
            a |= 0x20;
        if (a != b)
            return false;
    }
    return true;
}

/* Splits "type/subtype; params" into its parts (whitespace trimmed). */
static bool split_media(const char *ct, size_t len, const char **type, size_t *tlen,
                        const char **sub, size_t *slen, const char **params, size_t *plen)
{
    size_t i = 0;
    while (i < len && (ct[i] == ' ' || ct[i] == '\t'))
        i++;
    size_t e = i;
    while (e < len && ct[e] != ';')
        e++;
    size_t s = e;
    while (s > i && (ct[s - 1] == ' ' || ct[s - 1] == '\t'))
        s--;
    const char *slash = memchr(ct + i, '/', s - i);
    if (!slash)
        return false;
    *type = ct + i;
    *tlen = (size_t)(slash - (ct + i));
    *sub = slash + 1;
    *slen = (size_t)(ct + s - (slash + 1));
    *params = ct + e;
    *plen = len - e;
    return true;
}

bool ce__media_is_json(const char *ct, size_t len)
{
    const char *t, *s, *p;
    size_t tl, sl, pl;
    if (!split_media(ct, len, &t, &tl, &s, &sl, &p, &pl))
        return false;
    return eq_ci(s, sl, "json") || ends_ci(s, sl, "+json");
}

bool ofe_ce_media_is_json(const char *content_type, size_t len)
{
    return ce__media_is_json(content_type, len);
}

bool ce__media_is_text(const char *ct, size_t len)
{
    const char *t, *s, *p;
    size_t tl, sl, pl;
    if (!split_media(ct, len, &t, &tl, &s, &sl, &p, &pl))
        return false;
    if (eq_ci(t, tl, "text") || eq_ci(s, sl, "xml") || ends_ci(s, sl, "+xml") ||
        eq_ci(s, sl, "yaml") || eq_ci(s, sl, "x-yaml") || ends_ci(s, sl, "+yaml") ||
        eq_ci(s, sl, "javascript") || eq_ci(s, sl, "x-www-form-urlencoded"))
        return true;
    for (size_t i = 0; i + 8 <= pl; i++)
        if (eq_ci(p + i, 8, "charset="))
            return true;
    return false;
}

/* ---- dispatcher -------------------------------------------------------- */

int ce__check_value(const char *name, size_t nlen, enum ofe_ce_type t, const char *v, size_t len,
                    int32_t *ival, char *errstr, size_t errstr_size)
{
    char q[96], why[96];
    const char *p;
    size_t at = 0;
    *ival = 0;
    switch (t) {
    case OFE_CE_T_BOOLEAN:
        if (len == 4 && memcmp(v, "true", 4) == 0) {
            *ival = 1;
            return 0;
        }
        if (len == 5 && memcmp(v, "false", 5) == 0)
            return 0;
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "attribute '%.*s': %s is not a Boolean (expected true or false)", (int)nlen,
                       name, ce__quote(q, sizeof(q), v, len));
    case OFE_CE_T_INTEGER:
        return check_integer(name, nlen, v, len, ival, errstr, errstr_size);
    case OFE_CE_T_STRING:
        return ce__check_string(name, nlen, v, len, errstr, errstr_size);
    case OFE_CE_T_BINARY: {
        /* check only: decode in 3-byte steps into a scratch buffer */
        unsigned char scratch[3];
        if (len % 4)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute '%.*s': %s is not Base64 (RFC 4648): length is not a "
                           "multiple of 4",
                           (int)nlen, name, ce__quote(q, sizeof(q), v, len));
        for (size_t i = 0; i < len; i += 4) {
            size_t got;
            /* padding is only legal in the last quantum */
            if (i + 4 < len && memchr(v + i, '=', 4))
                return ofe_err(errstr, errstr_size, OFE_EINVAL,
                               "attribute '%.*s': %s is not Base64 (RFC 4648): '=' before the "
                               "end",
                               (int)nlen, name, ce__quote(q, sizeof(q), v, len));
            if (ce__b64_decode(v + i, 4, scratch, &got, why, sizeof(why)))
                return ofe_err(errstr, errstr_size, OFE_EINVAL,
                               "attribute '%.*s': %s is not Base64 (RFC 4648): %s", (int)nlen, name,
                               ce__quote(q, sizeof(q), v, len), why);
        }
        return 0;
    }
    case OFE_CE_T_URI:
    case OFE_CE_T_URIREF:
        p = uri_problem(v, len, t == OFE_CE_T_URI, &at);
        if (p)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute '%.*s': %s is not %s: %s at position %zu", (int)nlen, name,
                           ce__quote(q, sizeof(q), v, len),
                           t == OFE_CE_T_URI ? "an absolute URI" : "a URI-reference", p, at);
        return 0;
    case OFE_CE_T_TIMESTAMP:
        p = time_problem(v, len);
        if (p)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute '%.*s': %s is not an RFC 3339 timestamp: %s", (int)nlen, name,
                           ce__quote(q, sizeof(q), v, len), p);
        return 0;
    case OFE_CE_T_NONE:
        break;
    }
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute '%.*s': no type", (int)nlen, name);
}
