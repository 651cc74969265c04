/* JSON event format (application/cloudevents+json) and JSON batch format
 * (application/cloudevents-batch+json), CloudEvents v1.0.2.
 *
 * A hand-written scanner rather than a jansson tree: the envelope is read
 * once into a list of member spans, every byte is checked against RFC 8259
 * (strings must be valid UTF-8 with well-formed escapes and paired
 * surrogates), and `data`, when it is JSON, is kept as the exact bytes of
 * its span, never parsed into a tree. The writer emits the envelope by
 * hand, copying those bytes back verbatim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

#define JSON_MAX_DEPTH   1024
#define MEMBERS_ON_STACK 32

/* 1 for bytes a string may hold without escaping or UTF-8 checks */
static const unsigned char plain[256] = {
    ['\x20'] = 1,
    1,
    0 /* " */,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x20 */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x30 */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x40 */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    0 /* \ */,
    1,
    1,
    1, /* 0x50 */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x60 */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1, /* 0x70 */
};

struct jerr {
    const char *at;
    const char *msg;
};

static inline const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool hex4(const unsigned char *s, const unsigned char *end, unsigned *out)
{
    if (end - s < 4)
        return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0)
            return false;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return true;
}

/* p at the opening quote; returns the byte after the closing quote. */
static const char *scan_string(const char *p, const char *end, bool *esc, struct jerr *e)
{
    const unsigned char *s = (const unsigned char *)p + 1;
    const unsigned char *E = (const unsigned char *)end;
    bool has_esc = false;
    for (;;) {
        while (s + 4 <= E && plain[s[0]] && plain[s[1]] && plain[s[2]] && plain[s[3]])
            s += 4;
        while (s < E && plain[*s])
            s++;
        if (s >= E) {
            e->at = p;
            e->msg = "unterminated string";
            return NULL;
        }
        unsigned char c = *s;
        if (c == '"') {
            *esc = has_esc;
            return (const char *)s + 1;
        }
        if (c == '\\') {
            has_esc = true;
            if (s + 1 >= E) {
                e->at = p;
                e->msg = "unterminated string";
                return NULL;
            }
            switch (s[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                s += 2;
                continue;
            case 'u': {
                unsigned u, lo;
                if (!hex4(s + 2, E, &u)) {
                    e->at = (const char *)s;
                    e->msg = "bad \\u escape (expected four hex digits)";
                    return NULL;
                }
                if (u >= 0xdc00 && u <= 0xdfff) {
                    e->at = (const char *)s;
                    e->msg = "unpaired UTF-16 surrogate in a \\u escape";
                    return NULL;
                }
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (E - s >= 12 && s[6] == '\\' && s[7] == 'u' && hex4(s + 8, E, &lo) &&
                        lo >= 0xdc00 && lo <= 0xdfff) {
                        s += 12;
                        continue;
                    }
                    e->at = (const char *)s;
                    e->msg = "unpaired UTF-16 surrogate in a \\u escape";
                    return NULL;
                }
                s += 6;
                continue;
            }
            default:
                e->at = (const char *)s;
                e->msg = "invalid escape sequence in a string";
                return NULL;
            }
        }
        if (c < 0x20) {
            e->at = (const char *)s;
            e->msg = "control character in a string (it must be escaped)";
            return NULL;
        }
        size_t k = ce__utf8_seq(s, (size_t)(E - s));
        if (!k) {
            e->at = (const char *)s;
            e->msg = "invalid UTF-8 in a string";
            return NULL;
        }
        s += k;
    }
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *scan_number(const char *p, const char *end, struct jerr *e)
{
    const char *s = p;
    if (s < end && *s == '-')
        s++;
    if (s >= end || !is_digit(*s))
        goto bad;
    if (*s == '0') {
        s++;
        if (s < end && is_digit(*s)) {
            e->at = p;
            e->msg = "invalid number (leading zero)";
            return NULL;
        }
    } else {
        while (s < end && is_digit(*s))
            s++;
    }
    if (s < end && *s == '.') {
        s++;
        if (s >= end || !is_digit(*s))
            goto bad;
        while (s < end && is_digit(*s))
            s++;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < end && (*s == '+' || *s == '-'))
            s++;
        if (s >= end || !is_digit(*s))
            goto bad;
        while (s < end && is_digit(*s))
            s++;
    }
    return s;
bad:
    e->at = p;
    e->msg = "invalid number";
    return NULL;
}

static const char *scan_literal(const char *p, const char *end, const char *lit, size_t n,
                                struct jerr *e)
{
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0) {
        e->at = p;
        e->msg = "invalid literal (expected true, false, null, a number, a string, an object "
                 "or an array)";
        return NULL;
    }
    return p + n;
}

/* Scans one JSON value starting at p (whitespace before it allowed);
 * returns the byte after it. Iterative, depth-limited. */
static const char *scan_value(const char *p, const char *end, struct jerr *e)
{
    char stack[JSON_MAX_DEPTH];
    int depth = 0;
    bool esc;
    for (;;) {
        /* a value */
        p = skip_ws(p, end);
        if (p >= end) {
            e->at = p;
            e->msg = "unexpected end of input (expected a value)";
            return NULL;
        }
        switch (*p) {
        case '{':
        case '[': {
            char open = *p;
            if (depth == JSON_MAX_DEPTH) {
                e->at = p;
                e->msg = "nesting too deep";
                return NULL;
            }
            p = skip_ws(p + 1, end);
            if (p < end && *p == (open == '{' ? '}' : ']')) {
                p++;
                break; /* empty container: a complete value */
            }
            stack[depth++] = open;
            if (open == '{') {
                if (p >= end || *p != '"') {
                    e->at = p;
                    e->msg = "expected a string key or '}'";
                    return NULL;
                }
                if (!(p = scan_string(p, end, &esc, e)))
                    return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':') {
                    e->at = p;
                    e->msg = "expected ':' after an object key";
                    return NULL;
                }
                p++;
            }
            continue; /* the first member's value */
        }
        case '"':
            if (!(p = scan_string(p, end, &esc, e)))
                return NULL;
            break;
        case 't':
            if (!(p = scan_literal(p, end, "true", 4, e)))
                return NULL;
            break;
        case 'f':
            if (!(p = scan_literal(p, end, "false", 5, e)))
                return NULL;
            break;
        case 'n':
            if (!(p = scan_literal(p, end, "null", 4, e)))
                return NULL;
            break;
        default:
            if (*p == '-' || is_digit(*p)) {
                if (!(p = scan_number(p, end, e)))
                    return NULL;
                break;
            }
            e->at = p;
            e->msg = "unexpected character (expected a JSON value)";
            return NULL;
        }
        /* after a complete value: close containers or move to the next */
        for (;;) {
            if (depth == 0)
                return p;
            p = skip_ws(p, end);
            char top = stack[depth - 1];
            if (p >= end) {
                e->at = p;
                e->msg = top == '{' ? "unexpected end of input (expected ',' or '}')"
                                    : "unexpected end of input (expected ',' or ']')";
                return NULL;
            }
            if (*p == ',') {
                p = skip_ws(p + 1, end);
                if (top == '{') {
                    if (p >= end || *p != '"') {
                        e->at = p;
                        e->msg = "expected a string key after ','";
                        return NULL;
                    }
                    if (!(p = scan_string(p, end, &esc, e)))
                        return NULL;
                    p = skip_ws(p, end);
                    if (p >= end || *p != ':') {
                        e->at = p;
                        e->msg = "expected ':' after an object key";
                        return NULL;
                    }
                    p++;
                }
                break; /* next value */
            }
            if ((top == '{' && *p == '}') || (top == '[' && *p == ']')) {
                p++;
                depth--;
                continue;
            }
            e->at = p;
            e->msg = top == '{' ? "expected ',' or '}'" : "expected ',' or ']'";
            return NULL;
        }
    }
}

bool ce__json_valid(const char *s, size_t n)
{
    struct jerr e;
    const char *end = s + n;
    const char *p = scan_value(s, end, &e);
    return p && skip_ws(p, end) == end;
}

/* Decodes a validated string body (no quotes) into out; returns the length
 * (never more than n). */
static size_t unescape(const char *s, size_t n, char *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        const char *bs = memchr(s + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (s + i)) : n - i;
        memcpy(out + o, s + i, run);
        o += run;
        i += run;
        if (!bs)
            break;
        char c = s[i + 1];
        i += 2;
        switch (c) {
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u': {
            unsigned u, lo;
            const unsigned char *us = (const unsigned char *)s;
            hex4(us + i, us + n, &u);
            i += 4;
            uint32_t cp = u;
            if (u >= 0xd800 && u <= 0xdbff) {
                hex4(us + i + 2, us + n, &lo);
                i += 6;
                cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xc0 | cp >> 6);
                out[o++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                out[o++] = (char)(0xe0 | cp >> 12);
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            } else {
                out[o++] = (char)(0xf0 | cp >> 18);
                out[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default: /* " \ / */
            out[o++] = c;
            break;
        }
    }
    return o;
}

/* ---- envelope ---------------------------------------------------------- */

struct jmember {
    const char *k; /* key (raw between the quotes, or unescaped) */
    size_t klen;
    const char *v; /* string: between the quotes; other: the value text */
    size_t vlen;
    char kind; /* s n t f 0(null) o a */
    bool kesc, vesc;
};

struct mvec {
    struct jmember *v;
    size_t n, cap;
    struct jmember small[MEMBERS_ON_STACK];
};

static void mvec_init(struct mvec *m)
{
    m->v = m->small;
    m->n = 0;
    m->cap = MEMBERS_ON_STACK;
}

static void mvec_fini(struct mvec *m)
{
    if (m->v != m->small)
        free(m->v);
}

static struct jmember *mvec_push(struct mvec *m)
{
    if (m->n == m->cap) {
        size_t cap = m->cap * 2;
        struct jmember *v =
            m->v == m->small ? malloc(cap * sizeof(*v)) : realloc(m->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        if (m->v == m->small)
            memcpy(v, m->small, sizeof(m->small));
        m->v = v;
        m->cap = cap;
    }
    return &m->v[m->n++];
}

/* p at '{'. Fills m with the members; returns the byte after '}'. */
static const char *scan_object(const char *p, const char *end, struct mvec *m, struct jerr *e,
                               bool *nomem)
{
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        if (p >= end || *p != '"') {
            e->at = p;
            e->msg = m->n ? "expected a string key after ','" : "expected a string key or '}'";
            return NULL;
        }
        struct jmember *jm = mvec_push(m);
        if (!jm) {
            *nomem = true;
            return NULL;
        }
        const char *k = p;
        if (!(p = scan_string(p, end, &jm->kesc, e)))
            return NULL;
        jm->k = k + 1;
        jm->klen = (size_t)(p - k - 2);
        p = skip_ws(p, end);
        if (p >= end || *p != ':') {
            e->at = p;
            e->msg = "expected ':' after an object key";
            return NULL;
        }
        p = skip_ws(p + 1, end);
        const char *v = p;
        jm->vesc = false;
        if (p < end && *p == '"') {
            if (!(p = scan_string(p, end, &jm->vesc, e)))
                return NULL;
            jm->kind = 's';
            jm->v = v + 1;
            jm->vlen = (size_t)(p - v - 2);
        } else {
            if (!(p = scan_value(p, end, e)))
                return NULL;
            switch (*v) {
            case '{':
                jm->kind = 'o';
                break;
            case '[':
                jm->kind = 'a';
                break;
            case 't':
                jm->kind = 't';
                break;
            case 'f':
                jm->kind = 'f';
                break;
            case 'n':
                jm->kind = '0';
                break;
            default:
                jm->kind = 'n';
                break;
            }
            jm->v = v;
            jm->vlen = (size_t)(p - v);
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            return p + 1;
        e->at = p;
        e->msg = p < end ? "expected ',' or '}'" : "unexpected end of input (expected ',' or '}')";
        return NULL;
    }
}

static const char *kind_name(char kind)
{
    switch (kind) {
    case 's':
        return "a string";
    case 'n':
        return "a number";
    case 't':
    case 'f':
        return "a boolean";
    case '0':
        return "null";
    case 'o':
        return "an object";
    case 'a':
        return "an array";
    }
    return "a value";
}

static int parse_error(const char *doc, const struct jerr *e, char *errstr, size_t errstr_size)
{
    size_t line = 1, col = 1;
    for (const char *p = doc; p < e->at; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*p & 0xc0) != 0x80) {
            col++;
        }
    }
    return ofe_err(errstr, errstr_size, OFE_EPARSE, "invalid JSON at line %zu, column %zu: %s",
                   line, col, e->msg);
}

static bool key_is(const struct jmember *m, const char *lit, size_t n)
{
    return m->klen == n && memcmp(m->k, lit, n) == 0;
}

static int cmp_members(const void *a, const void *b)
{
    const struct jmember *x = *(struct jmember *const *)a, *y = *(struct jmember *const *)b;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return memcmp(x->k, y->k, x->klen);
}

static int duplicate_error(const struct jmember *m, char *errstr, size_t errstr_size)
{
    char q[96];
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "member %s appears twice",
                   ce__quote(q, sizeof(q), m->k, m->klen));
}

static int check_duplicates(struct jmember *v, size_t n, char *errstr, size_t errstr_size)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (v[i].klen == v[j].klen && memcmp(v[i].k, v[j].k, v[i].klen) == 0)
                    return duplicate_error(&v[i], errstr, errstr_size);
        return 0;
    }
    struct jmember **idx = malloc(n * sizeof(*idx));
    if (!idx)
        return OFE_ENOMEM;
    for (size_t i = 0; i < n; i++)
        idx[i] = &v[i];
    qsort(idx, n, sizeof(*idx), cmp_members);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (cmp_members(&idx[i - 1], &idx[i]) == 0)
            rc = duplicate_error(idx[i], errstr, errstr_size);
    free(idx);
    return rc;
}

/* Copies (unescaping) a string member into the event arena, NUL-terminated. */
static char *arena_string(struct ofe_ce *ev, const struct jmember *m, size_t *len)
{
    char *p = ce__alloc(ev, m->vlen + 1);
    if (!p)
        return NULL;
    if (m->vesc) {
        *len = unescape(m->v, m->vlen, p);
    } else {
        memcpy(p, m->v, m->vlen);
        *len = m->vlen;
    }
    p[*len] = '\0';
    return p;
}

static int set_member(struct ofe_ce *ev, const struct jmember *m, char *errstr, size_t errstr_size)
{
    int slot = ofe_ce_spec_slot(m->k, m->klen);
    if (slot < 0) {
        int rc = ofe_ce_check_name(m->k, m->klen, errstr, errstr_size);
        if (rc)
            return rc;
    }
    enum ofe_ce_type t;
    size_t len;
    char *v;
    switch (m->kind) {
    case 's':
        t = OFE_CE_T_NONE;
        v = arena_string(ev, m, &len);
        break;
    case 'n':
        if (slot >= 0)
            goto wrong_kind;
        if (memchr(m->v, '.', m->vlen) || memchr(m->v, 'e', m->vlen) ||
            memchr(m->v, 'E', m->vlen)) {
            char q[96];
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute '%.*s': %s is not an Integer (a whole number from "
                           "-2147483648 to 2147483647)",
                           (int)m->klen, m->k, ce__quote(q, sizeof(q), m->v, m->vlen));
        }
        t = OFE_CE_T_INTEGER;
        v = ce__alloc(ev, m->vlen + 1);
        if (v) {
            memcpy(v, m->v, m->vlen);
            v[m->vlen] = '\0';
        }
        len = m->vlen;
        break;
    case 't':
    case 'f':
        if (slot >= 0)
            goto wrong_kind;
        t = OFE_CE_T_BOOLEAN;
        v = (char *)(m->kind == 't' ? "true" : "false");
        len = m->kind == 't' ? 4 : 5;
        break;
    case '0':
        return 0; /* null: unset */
    default:
        if (slot >= 0)
            goto wrong_kind;
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "attribute '%.*s': %s is not a valid attribute value (extension values "
                       "are strings, integers or booleans)",
                       (int)m->klen, m->k, kind_name(m->kind));
    }
    if (!v)
        return OFE_ENOMEM;
    return ce__set_nocopy(ev, slot, m->k, m->klen, t, v, len, errstr, errstr_size);
wrong_kind:
    return ofe_err(errstr, errstr_size, OFE_EINVAL,
                   "attribute '%.*s' must be a JSON string, not %s", (int)m->klen, m->k,
                   kind_name(m->kind));
}

/* Builds a validated event from the members of one JSON object. */
static int build_event(size_t objlen, struct mvec *mv, struct ofe_ce **out, char *errstr,
                       size_t errstr_size)
{
    struct jmember *v = mv->v;
    size_t n = mv->n;
    struct ofe_ce *ev = ce__new(objlen + 64 + (n > 12 ? (n - 4) * sizeof(struct ofe_ce_attr) : 0));
    if (!ev)
        return OFE_ENOMEM;
    int rc = 0;
    const struct jmember *data = NULL, *data64 = NULL, *sv = NULL;
    for (size_t i = 0; i < n; i++) {
        if (v[i].kesc) {
            /* rare: a key with escapes; decode it into the arena */
            char *k = ce__alloc(ev, v[i].klen + 1);
            if (!k) {
                rc = OFE_ENOMEM;
                goto fail;
            }
            v[i].klen = unescape(v[i].k, v[i].klen, k);
            v[i].k = k;
            v[i].kesc = false;
        }
    }
    if ((rc = check_duplicates(v, n, errstr, errstr_size)))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (key_is(&v[i], "specversion", 11))
            sv = &v[i];
    /* specversion first: other rules depend on the version */
    if (sv && sv->kind != '0') {
        if ((rc = set_member(ev, sv, errstr, errstr_size)))
            goto fail;
        const struct ofe_ce_attr *a = &ev->spec[OFE_CE_SPECVERSION];
        if (!(a->value_len == 3 && memcmp(a->value, "1.0", 3) == 0)) {
            rc = ofe_ce_validate(ev, errstr, errstr_size); /* names the version */
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct jmember *m = &v[i];
        if (m == sv)
            continue;
        if (key_is(m, "data", 4)) {
            data = m;
            continue;
        }
        if (key_is(m, "data_base64", 11)) {
            if (m->kind == '0')
                continue;
            if (m->kind != 's') {
                rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                             "'data_base64' must be a JSON string, not %s", kind_name(m->kind));
                goto fail;
            }
            data64 = m;
            continue;
        }
        if ((rc = set_member(ev, m, errstr, errstr_size)))
            goto fail;
    }
    if (data && data64) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                     "'data' and 'data_base64' are exclusive: an event has one or the other");
        goto fail;
    }
    if (data64) {
        char *s = ce__alloc(ev, data64->vlen + 1);
        if (!s) {
            rc = OFE_ENOMEM;
            goto fail;
        }
        size_t slen = data64->vlen;
        if (data64->vesc)
            slen = unescape(data64->v, data64->vlen, s);
        else
            memcpy(s, data64->v, slen);
        /* decode in place: the output never overtakes the input */
        char why[96];
        size_t dlen;
        if (ce__b64_decode(s, slen, (unsigned char *)s, &dlen, why, sizeof(why))) {
            rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                         "'data_base64' is not Base64 (RFC 4648): %s", why);
            goto fail;
        }
        s[dlen] = '\0';
        ce__set_data_arena(ev, s, dlen, false);
    } else if (data) {
        const struct ofe_ce_attr *ct = &ev->spec[OFE_CE_DATACONTENTTYPE];
        bool json = !ct->value || ce__media_is_json(ct->value, ct->value_len);
        char *d;
        size_t dlen;
        if (!json && data->kind == 's') {
            d = arena_string(ev, data, &dlen); /* text: the string's bytes */
        } else {
            /* JSON: the exact bytes of the value, quotes included */
            const char *span = data->kind == 's' ? data->v - 1 : data->v;
            dlen = data->kind == 's' ? data->vlen + 2 : data->vlen;
            d = ce__alloc(ev, dlen + 1);
            if (d) {
                memcpy(d, span, dlen);
                d[dlen] = '\0';
            }
            json = true;
        }
        if (!d) {
            rc = OFE_ENOMEM;
            goto fail;
        }
        ce__set_data_arena(ev, d, dlen, json);
    }
    if ((rc = ofe_ce_validate(ev, errstr, errstr_size)))
        goto fail;
    *out = ev;
    return 0;
fail:
    ofe_ce_unref(ev);
    return rc;
}

static int not_object(const char *doc, const char *p, const char *end, const char *what,
                      char *errstr, size_t errstr_size)
{
    struct jerr e;
    const char *q = scan_value(p, end, &e);
    if (!q)
        return parse_error(doc, &e, errstr, errstr_size);
    char kind = *p == '['                ? 'a'
                : *p == '"'              ? 's'
                : *p == 't' || *p == 'f' ? 't'
                : *p == 'n'              ? '0'
                                         : 'n';
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "expected a JSON object (%s), found %s%s", what,
                   kind_name(kind), kind == 'a' ? " (a batch: use the batch format)" : "");
}

int ofe_ce_json_decode(const void *json, size_t len, struct ofe_ce **out, char *errstr,
                       size_t errstr_size)
{
    const char *doc = json, *end = doc + len;
    const char *p = skip_ws(doc, end);
    struct jerr e;
    if (p >= end) {
        e.at = p;
        e.msg = "empty input (expected a JSON object)";
        return parse_error(doc, &e, errstr, errstr_size);
    }
    if (*p != '{')
        return not_object(doc, p, end, "one CloudEvent", errstr, errstr_size);
    struct mvec mv;
    mvec_init(&mv);
    bool nomem = false;
    const char *obj = p;
    p = scan_object(p, end, &mv, &e, &nomem);
    int rc;
    if (!p) {
        rc = nomem ? OFE_ENOMEM : parse_error(doc, &e, errstr, errstr_size);
    } else if (skip_ws(p, end) != end) {
        e.at = skip_ws(p, end);
        e.msg = "unexpected data after the JSON object";
        rc = parse_error(doc, &e, errstr, errstr_size);
    } else {
        rc = build_event((size_t)(p - obj), &mv, out, errstr, errstr_size);
    }
    mvec_fini(&mv);
    return rc;
}

int ofe_ce_json_decode_batch_each(const void *json, size_t len, struct ofe_ce_list *out,
                                  void (*bad)(void *arg, size_t index, int err, const char *msg),
                                  void *arg, char *errstr, size_t errstr_size)
{
    const char *doc = json, *end = doc + len;
    const char *p = skip_ws(doc, end);
    struct jerr e;
    if (p >= end) {
        e.at = p;
        e.msg = "empty input (expected a JSON array)";
        return parse_error(doc, &e, errstr, errstr_size);
    }
    if (*p != '[') {
        const char *q = scan_value(p, end, &e);
        if (!q)
            return parse_error(doc, &e, errstr, errstr_size);
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "expected a JSON array (a batch of CloudEvents), found %s",
                       *p == '{' ? "an object (a single event)" : "another JSON value");
    }
    /* The whole array must be JSON before any event is taken. */
    const char *q = scan_value(p, end, &e);
    if (!q)
        return parse_error(doc, &e, errstr, errstr_size);
    if (skip_ws(q, end) != end) {
        e.at = skip_ws(q, end);
        e.msg = "unexpected data after the JSON array";
        return parse_error(doc, &e, errstr, errstr_size);
    }
    size_t start_n = out->n;
    int result = 0;
    char msg[512];
    p = skip_ws(p + 1, end);
    for (size_t idx = 0; *p != ']'; idx++) {
        const char *elem = p;
        const char *after;
        int rc;
        struct ofe_ce *ev = NULL;
        if (*p == '{') {
            struct mvec mv;
            mvec_init(&mv);
            bool nomem = false;
            after = scan_object(p, end, &mv, &e, &nomem);
            rc = nomem ? OFE_ENOMEM
                       : build_event((size_t)(after - elem), &mv, &ev, msg, sizeof(msg));
            mvec_fini(&mv);
        } else {
            after = scan_value(p, end, &e);
            char kind = *p == '['                ? 'a'
                        : *p == '"'              ? 's'
                        : *p == 't' || *p == 'f' ? 't'
                        : *p == 'n'              ? '0'
                                                 : 'n';
            rc = ofe_err(msg, sizeof(msg), OFE_EINVAL,
                         "expected a JSON object (a CloudEvent), "
                         "found %s",
                         kind_name(kind));
        }
        if (rc == OFE_ENOMEM) {
            result = rc;
            break;
        }
        if (rc) {
            if (!result)
                ofe_err(errstr, errstr_size, rc, "event [%zu]: %s", idx, msg);
            result = rc;
            if (!bad)
                break;
            bad(arg, idx, rc, msg);
        } else if ((rc = ofe_ce_list_push(out, ev))) {
            ofe_ce_unref(ev);
            result = rc;
            break;
        }
        p = skip_ws(after, end);
        if (*p == ',')
            p = skip_ws(p + 1, end);
    }
    if (result && !bad) {
        while (out->n > start_n)
            ofe_ce_unref(out->v[--out->n]);
    }
    return result;
}

int ofe_ce_json_decode_batch(const void *json, size_t len, struct ofe_ce_list *out, char *errstr,
                             size_t errstr_size)
{
    return ofe_ce_json_decode_batch_each(json, len, out, NULL, NULL, errstr, errstr_size);
}

void ofe_ce_list_fini(struct ofe_ce_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        ofe_ce_unref(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int ofe_ce_list_push(struct ofe_ce_list *l, struct ofe_ce *ev)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct ofe_ce **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return OFE_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ev;
    return 0;
}

/* ---- writer ------------------------------------------------------------ */

static const char hexdig[] = "0123456789abcdef";

int ce__json_put_string(struct ofe_buf *b, const char *s, size_t n)
{
    if (ofe_buf_reserve(b, n + 2))
        return OFE_ENOMEM;
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && (plain[(unsigned char)s[run]] || (unsigned char)s[run] >= 0x80))
            run++;
        if (run > i) {
            memcpy(o, s + i, run - i);
            o += run - i;
            i = run;
        }
        if (i == n)
            break;
        /* an escape: make room for it and the rest */
        b->len = (size_t)(o - b->data);
        if (ofe_buf_reserve(b, 6 + (n - i) + 1))
            return OFE_ENOMEM;
        o = b->data + b->len;
        unsigned char c = (unsigned char)s[i++];
        *o++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *o++ = (char)c;
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hexdig[c >> 4];
            *o++ = hexdig[c & 15];
            break;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

static int put_member_name(struct ofe_buf *b, bool *first, const char *name, size_t nlen)
{
    /* names are [a-z0-9]: never escaped */
    if (ofe_buf_reserve(b, nlen + 4))
        return OFE_ENOMEM;
    char *o = b->data + b->len;
    if (!*first)
        *o++ = ',';
    *first = false;
    *o++ = '"';
    memcpy(o, name, nlen);
    o += nlen;
    *o++ = '"';
    *o++ = ':';
    b->len = (size_t)(o - b->data);
    return 0;
}

static bool exact_json(const unsigned char *d, size_t n)
{
    /* JSON data goes to `data` only when decoding gives back the very same
     * bytes: a valid JSON value with no whitespace around it. */
    if (n == 0)
        return false;
    unsigned char a = d[0], z = d[n - 1];
    if (a == ' ' || a == '\t' || a == '\n' || a == '\r' || z == ' ' || z == '\t' || z == '\n' ||
        z == '\r')
        return false;
    return ce__json_valid((const char *)d, n);
}

static int put_data(const struct ofe_ce *ev, struct ofe_buf *b, bool *first)
{
    const struct ofe_ce_attr *ct = &ev->spec[OFE_CE_DATACONTENTTYPE];
    bool json_type = !ct->value || ce__media_is_json(ct->value, ct->value_len);
    int rc;
    if (ev->data_is_json || (json_type && exact_json(ev->data, ev->data_len))) {
        if ((rc = put_member_name(b, first, "data", 4)))
            return rc;
        return ofe_buf_append(b, ev->data, ev->data_len);
    }
    if (!json_type && ce__media_is_text(ct->value, ct->value_len) &&
        ce__utf8_valid((const char *)ev->data, ev->data_len)) {
        if ((rc = put_member_name(b, first, "data", 4)))
            return rc;
        return ce__json_put_string(b, (const char *)ev->data, ev->data_len);
    }
    if ((rc = put_member_name(b, first, "data_base64", 11)))
        return rc;
    size_t n = ce__b64_len(ev->data_len);
    if (ofe_buf_reserve(b, n + 2))
        return OFE_ENOMEM;
    b->data[b->len++] = '"';
    ce__b64_encode(ev->data, ev->data_len, b->data + b->len);
    b->len += n;
    b->data[b->len++] = '"';
    b->data[b->len] = '\0';
    return 0;
}

static int put_attr(struct ofe_buf *b, bool *first, const struct ofe_ce_attr *a)
{
    int rc = put_member_name(b, first, a->name, a->name_len);
    if (rc)
        return rc;
    if (a->type == OFE_CE_T_INTEGER || a->type == OFE_CE_T_BOOLEAN)
        return ofe_buf_append(b, a->value, a->value_len);
    return ce__json_put_string(b, a->value, a->value_len);
}

static int encode_one(const struct ofe_ce *ev, struct ofe_buf *out, char *errstr,
                      size_t errstr_size)
{
    static const int order[] = {
        OFE_CE_SPECVERSION,     OFE_CE_ID,         OFE_CE_SOURCE,  OFE_CE_TYPE,
        OFE_CE_DATACONTENTTYPE, OFE_CE_DATASCHEMA, OFE_CE_SUBJECT, OFE_CE_TIME};
    int rc = ofe_ce_validate(ev, errstr, errstr_size);
    if (rc)
        return rc;
    size_t need = 16 + (ev->has_data ? ev->data_len + ev->data_len / 3 + 16 : 0);
    for (int s = 0; s < OFE_CE_NSPEC; s++)
        need += ev->spec[s].value_len + 20;
    for (uint32_t i = 0; i < ev->next; i++)
        need += ev->ext[i].value_len + ev->ext[i].name_len + 6;
    if (ofe_buf_reserve(out, need))
        return OFE_ENOMEM;
    bool first = true;
    if ((rc = ofe_buf_putc(out, '{')))
        return rc;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const struct ofe_ce_attr *a = &ev->spec[order[i]];
        if (a->value && (rc = put_attr(out, &first, a)))
            return rc;
    }
    for (uint32_t i = 0; i < ev->next; i++)
        if ((rc = put_attr(out, &first, &ev->ext[i])))
            return rc;
    if (ev->has_data && (rc = put_data(ev, out, &first)))
        return rc;
    return ofe_buf_putc(out, '}');
}

int ofe_ce_json_encode(const struct ofe_ce *ev, struct ofe_buf *out, char *errstr,
                       size_t errstr_size)
{
    size_t len0 = out->len;
    int rc = encode_one(ev, out, errstr, errstr_size);
    if (rc) {
        out->len = len0;
        if (out->data)
            out->data[len0] = '\0';
    }
    return rc;
}

int ofe_ce_json_encode_batch(struct ofe_ce *const *evs, size_t n, struct ofe_buf *out, char *errstr,
                             size_t errstr_size)
{
    size_t len0 = out->len;
    int rc = ofe_buf_putc(out, '[');
    for (size_t i = 0; i < n && !rc; i++) {
        if (i && (rc = ofe_buf_putc(out, ',')))
            break;
        char msg[512];
        rc = encode_one(evs[i], out, msg, sizeof(msg));
        if (rc == OFE_EINVAL)
            ofe_err(errstr, errstr_size, rc, "event [%zu]: %s", i, msg);
    }
    if (!rc)
        rc = ofe_buf_putc(out, ']');
    if (rc) {
        out->len = len0;
        if (out->data)
            out->data[len0] = '\0';
    }
    return rc;
}
