/* CESQL functions: the built-ins (spec 3.5 plus the casting functions INT,
 * BOOL and STRING the TCK uses), the registry of custom functions, and the
 * UTF-8 helpers they share with LIKE.
 *
 * Strings are UTF-8 and lengths and positions count characters (code
 * points). Invalid UTF-8 is tolerated: each stray byte counts as one
 * character and is copied unchanged. LOWER and UPPER use the simple
 * (one-to-one) case mappings of Latin, Greek, Cyrillic, Armenian, Georgian
 * and fullwidth Latin letters; other characters are unchanged. TRIM strips
 * the characters with Unicode's White_Space property. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cesql_int.h"
#include "ofe/err.h"

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of the well-formed sequence at s[pos], or 0. */
static size_t seq_len(const unsigned char *s, size_t len, size_t pos)
{
    unsigned char c = s[pos];
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (len - pos < n)
        return 0;
    for (size_t k = 1; k < n; k++)
        if ((s[pos + k] & 0xC0) != 0x80)
            return 0;
    return n;
}

size_t cesql__utf8_next(const char *s, size_t len, size_t pos)
{
    size_t n = seq_len((const unsigned char *)s, len, pos);
    return pos + (n ? n : 1);
}

size_t cesql__utf8_prev(const char *s, size_t pos)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t p = pos - 1;
    /* Step back over at most three continuation bytes to a lead byte whose
     * sequence ends exactly at pos; otherwise the last byte stands alone. */
    for (size_t k = 0; k < 3 && p > 0 && (u[p] & 0xC0) == 0x80; k++)
        p--;
    if (p < pos - 1 && seq_len(u, pos, p) == pos - p)
        return p;
    return pos - 1;
}

size_t cesql__utf8_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t pos = 0; pos < len; n++) {
        unsigned char c = (unsigned char)s[pos];
        pos = c < 0x80 ? pos + 1 : cesql__utf8_next(s, len, pos);
    }
    return n;
}

/* Decodes the character at s[pos]; *cp gets its code point, or -1 for a
 * stray byte. Returns the position after it. */
static size_t decode(const char *s, size_t len, size_t pos, int32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = seq_len(u, len, pos);
    switch (n) {
    case 1:
        *cp = u[pos];
        return pos + 1;
    case 2:
        *cp = ((u[pos] & 0x1F) << 6) | (u[pos + 1] & 0x3F);
        return pos + 2;
    case 3:
        *cp = ((u[pos] & 0x0F) << 12) | ((u[pos + 1] & 0x3F) << 6) | (u[pos + 2] & 0x3F);
        return pos + 3;
    case 4:
        *cp = ((u[pos] & 0x07) << 18) | ((u[pos + 1] & 0x3F) << 12) | ((u[pos + 2] & 0x3F) << 6) |
              (u[pos + 3] & 0x3F);
        return pos + 4;
    default:
        *cp = -1;
        return pos + 1;
    }
}

static size_t encode(int32_t cp, char *d)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Byte offset of character number `chars` (0-based) from pos. */
static size_t skip_chars(const char *s, size_t len, size_t pos, size_t chars)
{
    while (chars-- > 0 && pos < len)
        pos = cesql__utf8_next(s, len, pos);
    return pos;
}

static bool in_pairs(int32_t c, int32_t lo, int32_t hi, int parity)
{
    return c >= lo && c <= hi && (c & 1) == parity;
}

/* Simple lower-case mapping; never longer in UTF-8 than the input. */
static int32_t to_lower(int32_t c)
{
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
        (c >= 0x410 && c <= 0x42F) || (c >= 0xFF21 && c <= 0xFF3A))
        return c + 32;
    if (in_pairs(c, 0x100, 0x12F, 0) || in_pairs(c, 0x132, 0x137, 0) ||
        in_pairs(c, 0x139, 0x148, 1) || in_pairs(c, 0x14A, 0x177, 0) ||
        in_pairs(c, 0x179, 0x17E, 1) || in_pairs(c, 0x200, 0x21F, 0) ||
        in_pairs(c, 0x222, 0x233, 0) || in_pairs(c, 0x460, 0x481, 0) ||
        in_pairs(c, 0x48A, 0x4BF, 0) || in_pairs(c, 0x4C1, 0x4CE, 1) ||
        in_pairs(c, 0x4D0, 0x52F, 0) || in_pairs(c, 0x1E00, 0x1E95, 0) ||
        in_pairs(c, 0x1EA0, 0x1EFF, 0))
        return c + 1;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    if (c >= 0x531 && c <= 0x556)
        return c + 48;
    if (c >= 0x10A0 && c <= 0x10C5)
        return c + 0x1C60;
    if (c >= 0x388 && c <= 0x38A)
        return c + 37;
    if (c >= 0x38E && c <= 0x38F)
        return c + 63;
    switch (c) {
    case 0x130:
        return 'i';
    case 0x178:
        return 0xFF;
    case 0x386:
        return 0x3AC;
    case 0x38C:
        return 0x3CC;
    case 0x4C0:
        return 0x4CF;
    }
    return c;
}

/* Simple upper-case mapping; never longer in UTF-8 than the input. */
static int32_t to_upper(int32_t c)
{
    if (c < 0x80)
        return c >= 'a' && c <= 'z' ? c - 32 : c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7) || (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) ||
        (c >= 0x430 && c <= 0x44F) || (c >= 0xFF41 && c <= 0xFF5A))
        return c - 32;
    if (in_pairs(c, 0x101, 0x12F, 1) || in_pairs(c, 0x133, 0x137, 1) ||
        in_pairs(c, 0x13A, 0x148, 0) || in_pairs(c, 0x14B, 0x177, 1) ||
        in_pairs(c, 0x17A, 0x17E, 0) || in_pairs(c, 0x201, 0x21F, 1) ||
        in_pairs(c, 0x223, 0x233, 1) || in_pairs(c, 0x461, 0x481, 1) ||
        in_pairs(c, 0x48B, 0x4BF, 1) || in_pairs(c, 0x4C2, 0x4CE, 0) ||
        in_pairs(c, 0x4D1, 0x52F, 1) || in_pairs(c, 0x1E01, 0x1E95, 1) ||
        in_pairs(c, 0x1EA1, 0x1EFF, 1))
        return c - 1;
    if (c >= 0x450 && c <= 0x45F)
        return c - 80;
    if (c >= 0x561 && c <= 0x586)
        return c - 48;
    if (c >= 0x2D00 && c <= 0x2D25)
        return c - 0x1C60;
    if (c >= 0x3AD && c <= 0x3AF)
        return c - 37;
    if (c >= 0x3CD && c <= 0x3CE)
        return c - 63;
    switch (c) {
    case 0xB5:
        return 0x39C;
    case 0xFF:
        return 0x178;
    case 0x131:
        return 'I';
    case 0x17F:
        return 'S';
    case 0x3AC:
        return 0x386;
    case 0x3C2:
        return 0x3A3;
    case 0x3CC:
        return 0x38C;
    case 0x4CF:
        return 0x4C0;
    }
    return c;
}

static bool is_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* ---- Built-ins --------------------------------------------------------- */

static struct cv func_error(struct cesql_st *st, struct cv v)
{
    cesql__raise(st, OFE_CESQL_EFUNC);
    v.err = 1;
    return v;
}

static struct cv fn_length(struct cesql_st *st, struct cv *a, unsigned n)
{
    size_t c = cesql__utf8_count(a[0].s, a[0].len);
    return cesql__int((int32_t)(c > INT32_MAX ? INT32_MAX : c));
}

static struct cv concat(struct cesql_st *st, const struct cv *sep, struct cv *a, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += a[i].len + (i && sep ? sep->len : 0);
    if (total == 0)
        return cesql__str("", 0);
    if (total > UINT32_MAX)
        return func_error(st, cesql__zero(OFE_CESQL_T_STRING));
    char *d = cesql__scratch(st, total);
    if (!d)
        return func_error(st, cesql__zero(OFE_CESQL_T_STRING));
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        if (i && sep && sep->len) {
            memcpy(d + off, sep->s, sep->len);
            off += sep->len;
        }
        if (a[i].len) {
            memcpy(d + off, a[i].s, a[i].len);
            off += a[i].len;
        }
    }
    return cesql__str(d, (uint32_t)total);
}

static struct cv fn_concat(struct cesql_st *st, struct cv *a, unsigned n)
{
    return concat(st, NULL, a, n);
}

static struct cv fn_concat_ws(struct cesql_st *st, struct cv *a, unsigned n)
{
    return concat(st, &a[0], a + 1, n - 1);
}

static struct cv change_case(struct cesql_st *st, struct cv x, bool upper)
{
    if (x.len == 0)
        return x;
    char *d = cesql__scratch(st, x.len);
    if (!d)
        return func_error(st, cesql__zero(OFE_CESQL_T_STRING));
    size_t out = 0;
    for (size_t pos = 0; pos < x.len;) {
        int32_t cp;
        size_t nx = decode(x.s, x.len, pos, &cp);
        if (cp < 0) {
            d[out++] = x.s[pos];
        } else {
            int32_t m = upper ? to_upper(cp) : to_lower(cp);
            if (m == cp) {
                memcpy(d + out, x.s + pos, nx - pos);
                out += nx - pos;
            } else {
                out += encode(m, d + out);
            }
        }
        pos = nx;
    }
    return cesql__str(d, (uint32_t)out);
}

static struct cv fn_lower(struct cesql_st *st, struct cv *a, unsigned n)
{
    return change_case(st, a[0], false);
}

static struct cv fn_upper(struct cesql_st *st, struct cv *a, unsigned n)
{
    return change_case(st, a[0], true);
}

static struct cv fn_trim(struct cesql_st *st, struct cv *a, unsigned n)
{
    const char *s = a[0].s;
    size_t b = 0, e = a[0].len;
    while (b < e) {
        int32_t cp;
        size_t nx = decode(s, e, b, &cp);
        if (!is_space(cp))
            break;
        b = nx;
    }
    while (e > b) {
        size_t p = cesql__utf8_prev(s, e);
        int32_t cp;
        decode(s, e, p, &cp);
        if (!is_space(cp))
            break;
        e = p;
    }
    return cesql__str(s + b, (uint32_t)(e - b));
}

static struct cv fn_left(struct cesql_st *st, struct cv *a, unsigned n)
{
    if (a[1].i < 0)
        return func_error(st, a[0]);
    size_t end = skip_chars(a[0].s, a[0].len, 0, (size_t)a[1].i);
    return cesql__str(a[0].s, (uint32_t)end);
}

static struct cv fn_right(struct cesql_st *st, struct cv *a, unsigned n)
{
    if (a[1].i < 0)
        return func_error(st, a[0]);
    size_t len = cesql__utf8_count(a[0].s, a[0].len);
    if ((size_t)a[1].i >= len)
        return a[0];
    size_t start = skip_chars(a[0].s, a[0].len, 0, len - (size_t)a[1].i);
    return cesql__str(a[0].s + start, (uint32_t)(a[0].len - start));
}

static struct cv fn_substring(struct cesql_st *st, struct cv *a, unsigned n)
{
    int64_t pos = a[1].i;
    if (n == 3 && a[2].i < 0)
        return func_error(st, cesql__zero(OFE_CESQL_T_STRING));
    if (pos == 0)
        return cesql__str("", 0);
    int64_t len = (int64_t)cesql__utf8_count(a[0].s, a[0].len);
    if (pos > len || pos < -len)
        return func_error(st, cesql__zero(OFE_CESQL_T_STRING));
    size_t first = (size_t)(pos > 0 ? pos - 1 : len + pos); /* 0-based character */
    size_t b = skip_chars(a[0].s, a[0].len, 0, first);
    size_t e = a[0].len;
    if (n == 3)
        e = skip_chars(a[0].s, a[0].len, b, (size_t)a[2].i);
    return cesql__str(a[0].s + b, (uint32_t)(e - b));
}

static struct cv fn_abs(struct cesql_st *st, struct cv *a, unsigned n)
{
    if (a[0].i == INT32_MIN) {
        /* Spec 3.5.2: the largest Integer plus a math error. */
        cesql__raise(st, OFE_CESQL_EMATH);
        struct cv v = cesql__int(INT32_MAX);
        v.err = 1;
        return v;
    }
    return cesql__int(a[0].i < 0 ? -a[0].i : a[0].i);
}

/* INT, BOOL and STRING: the implicit cast of the argument to the parameter
 * type does the work (and raises the cast error). */
static struct cv fn_identity(struct cesql_st *st, struct cv *a, unsigned n)
{
    return a[0];
}

#define B OFE_CESQL_T_BOOLEAN
#define I OFE_CESQL_T_INTEGER
#define S OFE_CESQL_T_STRING

static const struct cesql_fn builtins[] = {
    {.name = "LENGTH", .ret = I, .nparams = 1, .params = {S}, .pure = true, .builtin = fn_length},
    {.name = "CONCAT",
     .ret = S,
     .variadic = true,
     .vartype = S,
     .pure = true,
     .builtin = fn_concat},
    {.name = "CONCAT_WS",
     .ret = S,
     .nparams = 1,
     .params = {S},
     .variadic = true,
     .vartype = S,
     .pure = true,
     .builtin = fn_concat_ws},
    {.name = "LOWER", .ret = S, .nparams = 1, .params = {S}, .pure = true, .builtin = fn_lower},
    {.name = "UPPER", .ret = S, .nparams = 1, .params = {S}, .pure = true, .builtin = fn_upper},
    {.name = "TRIM", .ret = S, .nparams = 1, .params = {S}, .pure = true, .builtin = fn_trim},
    {.name = "LEFT", .ret = S, .nparams = 2, .params = {S, I}, .pure = true, .builtin = fn_left},
    {.name = "RIGHT", .ret = S, .nparams = 2, .params = {S, I}, .pure = true, .builtin = fn_right},
    {.name = "SUBSTRING",
     .ret = S,
     .nparams = 2,
     .params = {S, I},
     .pure = true,
     .builtin = fn_substring},
    {.name = "SUBSTRING",
     .ret = S,
     .nparams = 3,
     .params = {S, I, I},
     .pure = true,
     .builtin = fn_substring},
    {.name = "ABS", .ret = I, .nparams = 1, .params = {I}, .pure = true, .builtin = fn_abs},
    {.name = "INT", .ret = I, .nparams = 1, .params = {I}, .pure = true, .builtin = fn_identity},
    {.name = "BOOL", .ret = B, .nparams = 1, .params = {B}, .pure = true, .builtin = fn_identity},
    {.name = "STRING", .ret = S, .nparams = 1, .params = {S}, .pure = true, .builtin = fn_identity},
};

#undef B
#undef I
#undef S

#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

/* ---- Registry ---------------------------------------------------------- */

struct ofe_cesql_engine {
    struct cesql_fn *v;
    size_t n, cap;
};

static bool name_is(const struct cesql_fn *f, const char *name, size_t len)
{
    return strlen(f->name) == len && strncasecmp(f->name, name, len) == 0;
}

static bool callable(const struct cesql_fn *f, unsigned nargs)
{
    return f->variadic ? nargs >= f->nparams : nargs == f->nparams;
}

const struct cesql_fn *cesql__fn_lookup(const struct ofe_cesql_engine *eng, const char *name,
                                        size_t name_len, unsigned nargs)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (callable(&builtins[i], nargs) && name_is(&builtins[i], name, name_len))
            return &builtins[i];
    if (eng)
        for (size_t i = 0; i < eng->n; i++)
            if (callable(&eng->v[i], nargs) && name_is(&eng->v[i], name, name_len))
                return &eng->v[i];
    return NULL;
}

struct ofe_cesql_engine *ofe_cesql_engine_new(void)
{
    return calloc(1, sizeof(struct ofe_cesql_engine));
}

void ofe_cesql_engine_destroy(struct ofe_cesql_engine *eng)
{
    if (!eng)
        return;
    for (size_t i = 0; i < eng->n; i++)
        free((char *)eng->v[i].name);
    free(eng->v);
    free(eng);
}

static bool valid_type(enum ofe_cesql_type t)
{
    return t == OFE_CESQL_T_BOOLEAN || t == OFE_CESQL_T_INTEGER || t == OFE_CESQL_T_STRING;
}

static const char *arity_desc(const struct cesql_fn *f, char *buf, size_t size)
{
    if (f->variadic)
        snprintf(buf, size, "%s with %u or more arguments", f->name, f->nparams);
    else
        snprintf(buf, size, "%s with %u argument%s", f->name, f->nparams,
                 f->nparams == 1 ? "" : "s");
    return buf;
}

/* Checks the spec's overloading rules (3.5) of `nf` against `f`. */
static int clash(const struct cesql_fn *nf, const struct cesql_fn *f, char *errstr,
                 size_t errstr_size)
{
    char a[96], b[96];
    arity_desc(nf, a, sizeof(a));
    arity_desc(f, b, sizeof(b));
    if (nf->variadic && f->variadic)
        return ofe_err(errstr, errstr_size, OFE_EEXIST,
                       "%s: %s is already variadic (one variadic overload per name)", a, b);
    if (!nf->variadic && !f->variadic) {
        if (nf->nparams == f->nparams)
            return ofe_err(errstr, errstr_size, OFE_EEXIST, "%s: already defined", a);
        return 0;
    }
    const struct cesql_fn *var = nf->variadic ? nf : f, *fixed = nf->variadic ? f : nf;
    if (var->nparams <= fixed->nparams)
        return ofe_err(errstr, errstr_size, OFE_EEXIST,
                       "%s clashes with %s: a variadic overload needs more fixed "
                       "parameters than any other arity of the name",
                       a, b);
    return 0;
}

int ofe_cesql_engine_register(struct ofe_cesql_engine *eng, const struct ofe_cesql_fndef *def,
                              char *errstr, size_t errstr_size)
{
    const char *name = def->name;
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > 64)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "function name must have 1 to 64 characters");
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!letter && !(c == '_' && i > 0))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "function name '%s': letters and '_' only, starting with a letter",
                           name);
    }
    static const char *const keywords[] = {"AND", "OR",     "XOR",  "NOT",  "LIKE",
                                           "IN",  "EXISTS", "TRUE", "FALSE"};
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (strlen(keywords[i]) == len && strncasecmp(keywords[i], name, len) == 0)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "function name '%s' is a CESQL keyword",
                           name);
    if (!def->fn)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "function %s: no implementation", name);
    if (def->nparams > OFE_CESQL_MAX_PARAMS)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "function %s: more than %d parameters",
                       name, OFE_CESQL_MAX_PARAMS);
    if (!valid_type(def->ret) || (def->variadic && !valid_type(def->vartype)))
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "function %s: invalid type", name);
    for (unsigned i = 0; i < def->nparams; i++)
        if (!valid_type(def->params[i]))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "function %s: invalid type of parameter %u", name, i + 1);
    struct cesql_fn nf = {
        .name = name,
        .ret = (uint8_t)def->ret,
        .nparams = (uint8_t)def->nparams,
        .variadic = def->variadic,
        .vartype = (uint8_t)(def->variadic ? def->vartype : 0),
        .pure = def->pure,
        .custom = def->fn,
        .opaque = def->opaque,
    };
    for (unsigned i = 0; i < def->nparams; i++)
        nf.params[i] = (uint8_t)def->params[i];
    for (size_t i = 0; i < NBUILTINS; i++)
        if (name_is(&builtins[i], name, len)) {
            int rc = clash(&nf, &builtins[i], errstr, errstr_size);
            if (rc)
                return rc;
        }
    for (size_t i = 0; i < eng->n; i++)
        if (name_is(&eng->v[i], name, len)) {
            int rc = clash(&nf, &eng->v[i], errstr, errstr_size);
            if (rc)
                return rc;
        }
    if (eng->n == eng->cap) {
        size_t cap = eng->cap ? eng->cap * 2 : 8;
        struct cesql_fn *v = realloc(eng->v, cap * sizeof(*v));
        if (!v)
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        eng->v = v;
        eng->cap = cap;
    }
    char *upper = malloc(len + 1);
    if (!upper)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    for (size_t i = 0; i <= len; i++)
        upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    nf.name = upper;
    eng->v[eng->n++] = nf;
    return 0;
}
