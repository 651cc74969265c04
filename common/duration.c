/* Duration parsing: ISO 8601 and Go notation, in one function (duration.h). */
#include <stdio.h>
#include <string.h>

#include "ofe/duration.h"
#include "ofe/err.h"

typedef unsigned __int128 u128;

#define NS_PER_US 1000ULL
#define NS_PER_MS 1000000ULL
#define NS_PER_S  1000000000ULL
#define MAX_NS    ((u128)INT64_MAX * NS_PER_US)

static int fail(size_t *err_off, size_t off, char *errstr, size_t errstr_size, const char *fmt,
                const char *arg)
{
    if (err_off)
        *err_off = off;
    if (errstr && errstr_size)
        snprintf(errstr, errstr_size, fmt, arg ? arg : "");
    return OFE_EINVAL;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number: digits with an optional fraction. Parsed into the integer part and
 * the fraction as digits/10^fdigits. Returns the bytes consumed (0: none). */
struct number {
    u128 ipart;
    u128 fpart;
    u128 fscale; /* 10^(fraction digits kept) */
    int idigits, fdigits, has_point;
};

static size_t scan_number(const char *s, int allow_comma, struct number *n, int *too_long)
{
    size_t i = 0;
    memset(n, 0, sizeof(*n));
    n->fscale = 1;
    *too_long = 0;
    while (is_digit(s[i])) {
        if (n->idigits >= 20)
            *too_long = 1;
        else
            n->ipart = n->ipart * 10 + (u128)(s[i] - '0');
        n->idigits++;
        i++;
    }
    if (s[i] == '.' || (allow_comma && s[i] == ',')) {
        n->has_point = 1;
        i++;
        while (is_digit(s[i])) {
            if (n->fdigits < 18) { /* finer digits are below a nanosecond */
                n->fpart = n->fpart * 10 + (u128)(s[i] - '0');
                n->fscale *= 10;
            }
            n->fdigits++;
            i++;
        }
    }
    return i;
}

/* Adds n * unit_ns to *total. Returns 0, or -1 on overflow. */
static int accumulate(u128 *total, const struct number *n, u128 unit_ns)
{
    if (n->ipart > MAX_NS / unit_ns + 1)
        return -1;
    u128 v = n->ipart * unit_ns + n->fpart * unit_ns / n->fscale;
    *total += v;
    return *total > MAX_NS ? -1 : 0;
}

static int finish(u128 total, int64_t *us, size_t *err_off, size_t len, char *errstr,
                  size_t errstr_size, const char *s)
{
    if (total % NS_PER_US != 0)
        return fail(err_off, 0, errstr, errstr_size,
                    "duration '%s' is finer than the microsecond resolution", s);
    *us = (int64_t)(total / NS_PER_US);
    (void)len;
    return 0;
}

static const struct {
    const char *name;
    u128 ns;
} go_units[] = {
    {"ns", 1},
    {"us", NS_PER_US},
    {"\xc2\xb5s", NS_PER_US}, /* U+00B5 micro sign */
    {"\xce\xbcs", NS_PER_US}, /* U+03BC Greek mu */
    {"ms", NS_PER_MS},
    {"s", NS_PER_S},
    {"m", 60 * (u128)NS_PER_S},
    {"h", 3600 * (u128)NS_PER_S},
};

static int parse_go(const char *s, int64_t *us, size_t *err_off, char *errstr, size_t errstr_size)
{
    u128 total = 0;
    size_t i = 0;
    while (s[i]) {
        struct number n;
        int too_long;
        size_t start = i;
        size_t k = scan_number(s + i, 0, &n, &too_long);
        if (k == 0 || (n.idigits == 0 && n.fdigits == 0)) {
            char got[8];
            snprintf(got, sizeof(got), "%.*s", s[i] == '\0' ? 0 : 1, s + i);
            return fail(err_off, i, errstr, errstr_size,
                        "expected a number at '%s' (a duration is like 250ms, 1m30s or PT15S)",
                        got);
        }
        if (too_long)
            return fail(err_off, start, errstr, errstr_size, "number too large in duration '%s'",
                        s);
        i += k;
        size_t ustart = i;
        while (s[i] && !is_digit(s[i]) && s[i] != '.')
            i++;
        if (i == ustart) {
            if (s[i] == '\0' && start == 0)
                return fail(err_off, i, errstr, errstr_size,
                            "duration '%s' has no unit (write e.g. 15s, 250ms or PT15S)", s);
            return fail(err_off, i, errstr, errstr_size,
                        "missing unit after a number in '%s' (units: ns, us, ms, s, m, h)", s);
        }
        u128 unit = 0;
        for (size_t u = 0; u < sizeof(go_units) / sizeof(go_units[0]); u++)
            if (strlen(go_units[u].name) == i - ustart &&
                !memcmp(go_units[u].name, s + ustart, i - ustart))
                unit = go_units[u].ns;
        if (!unit) {
            char name[16];
            snprintf(name, sizeof(name), "%.*s", (int)(i - ustart < 15 ? i - ustart : 15),
                     s + ustart);
            if (!strcmp(name, "d") || !strcmp(name, "D"))
                return fail(err_off, ustart, errstr, errstr_size,
                            "unknown unit '%s' (Go style has no days: write 24h or P1D)", name);
            return fail(err_off, ustart, errstr, errstr_size,
                        "unknown unit '%s' (expected ns, us, ms, s, m or h)", name);
        }
        if (accumulate(&total, &n, unit) < 0)
            return fail(err_off, start, errstr, errstr_size, "duration '%s' is too large", s);
    }
    return finish(total, us, err_off, i, errstr, errstr_size, s);
}

static int upper(char c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

static int parse_iso(const char *s, int64_t *us, size_t *err_off, char *errstr, size_t errstr_size)
{
    /* Designators in the order they may appear; rank only grows. */
    static const struct {
        char c;
        int time_part;
        u128 ns;
    } des[] = {
        {'W', 0, 7 * 86400 * (u128)NS_PER_S},
        {'D', 0, 86400 * (u128)NS_PER_S},
        {'H', 1, 3600 * (u128)NS_PER_S},
        {'M', 1, 60 * (u128)NS_PER_S},
        {'S', 1, NS_PER_S},
    };
    u128 total = 0;
    size_t i = 1; /* past P */
    int in_time = 0, rank = -1, components = 0, fraction_seen = 0;
    while (s[i]) {
        if (upper(s[i]) == 'T') {
            if (in_time)
                return fail(err_off, i, errstr, errstr_size, "second 'T' in duration '%s'", s);
            in_time = 1;
            i++;
            if (!is_digit(s[i]) && s[i] != '.' && s[i] != ',')
                return fail(err_off, i, errstr, errstr_size,
                            "expected a number after 'T' in duration '%s' (e.g. PT15S)", s);
            continue;
        }
        struct number n;
        int too_long;
        size_t start = i;
        size_t k = scan_number(s + i, 1, &n, &too_long);
        if (k == 0 || (n.idigits == 0 && n.fdigits == 0))
            return fail(err_off, i, errstr, errstr_size,
                        "expected a number in ISO 8601 duration '%s' (e.g. PT0.2S, PT1M30S, P1D)",
                        s);
        if (too_long)
            return fail(err_off, start, errstr, errstr_size, "number too large in duration '%s'",
                        s);
        if (fraction_seen)
            return fail(err_off, start, errstr, errstr_size,
                        "only the last component of ISO 8601 duration '%s' may have a fraction", s);
        i += k;
        char d = (char)upper(s[i]);
        if (d == '\0')
            return fail(err_off, i, errstr, errstr_size,
                        "missing designator at the end of '%s' (expected W, D, H, M or S)", s);
        if (!in_time && d == 'Y')
            return fail(err_off, i, errstr, errstr_size,
                        "years have no fixed length in '%s': write days (P365D)", s);
        if (!in_time && d == 'M')
            return fail(err_off, i, errstr, errstr_size,
                        "months have no fixed length in '%s': write days (P30D), or PT..M "
                        "for minutes",
                        s);
        int found = -1;
        for (int u = 0; u < (int)(sizeof(des) / sizeof(des[0])); u++)
            if (des[u].c == d && des[u].time_part == in_time)
                found = u;
        if (found < 0) {
            char c[2] = {s[i], 0};
            return fail(err_off, i, errstr, errstr_size,
                        in_time ? "unexpected '%s' in the time part (expected H, M or S)"
                                : "unexpected '%s' in the date part (expected W, D or T)",
                        c);
        }
        if (found <= rank) {
            char c[2] = {d, 0};
            return fail(err_off, i, errstr, errstr_size,
                        "designator '%s' repeated or out of order (order: W D T H M S)", c);
        }
        rank = found;
        if (n.has_point)
            fraction_seen = 1;
        if (accumulate(&total, &n, des[found].ns) < 0)
            return fail(err_off, start, errstr, errstr_size, "duration '%s' is too large", s);
        components++;
        i++;
    }
    if (components == 0)
        return fail(err_off, i, errstr, errstr_size,
                    "ISO 8601 duration '%s' has no component (e.g. PT15S, P1D)", s);
    return finish(total, us, err_off, i, errstr, errstr_size, s);
}

int ofe_duration_parse(const char *s, int64_t *us, size_t *err_off, char *errstr,
                       size_t errstr_size)
{
    if (!s || !*s)
        return fail(err_off, 0, errstr, errstr_size,
                    "empty duration (expected e.g. 250ms, 1m30s or PT15S)%s", NULL);
    if (s[0] == '-' || s[0] == '+')
        return fail(err_off, 0, errstr, errstr_size,
                    "duration '%s' has a sign; durations are never negative", s);
    for (size_t i = 0; s[i]; i++)
        if (s[i] == ' ' || s[i] == '\t')
            return fail(err_off, i, errstr, errstr_size,
                        "unexpected space in duration '%s' (write 1m30s, not 1m 30s)", s);
    if (!strcmp(s, "0")) {
        *us = 0;
        return 0;
    }
    if (s[0] == 'P' || s[0] == 'p')
        return parse_iso(s, us, err_off, errstr, errstr_size);
    return parse_go(s, us, err_off, errstr, errstr_size);
}

char *ofe_duration_format(int64_t us, char *buf, size_t size)
{
    if (!buf || !size)
        return buf;
    if (us < 0)
        us = 0;
    if (us == 0) {
        snprintf(buf, size, "0s");
    } else if (us % 1000 != 0 && us < OFE_USEC_PER_SEC) {
        snprintf(buf, size, "%lldus", (long long)us);
    } else if (us < OFE_USEC_PER_SEC) {
        snprintf(buf, size, "%lldms", (long long)(us / 1000));
    } else {
        long long h = us / (3600 * OFE_USEC_PER_SEC);
        long long m = us / (60 * OFE_USEC_PER_SEC) % 60;
        long long sec = us / OFE_USEC_PER_SEC % 60;
        long long frac = us % OFE_USEC_PER_SEC;
        char sbuf[40];
        if (frac) {
            int digits = 6;
            while (frac % 10 == 0) {
                frac /= 10;
                digits--;
            }
            snprintf(sbuf, sizeof(sbuf), "%lld.%0*llds", sec, digits, frac);
        } else if (sec) {
            snprintf(sbuf, sizeof(sbuf), "%llds", sec);
        } else {
            sbuf[0] = '\0';
        }
        if (h)
            snprintf(buf, size, "%lldh%lldm%s", h, m, sbuf[0] ? sbuf : "");
        else if (m)
            snprintf(buf, size, "%lldm%s", m, sbuf);
        else
            snprintf(buf, size, "%s", sbuf);
        /* "1h0m" reads oddly: drop a trailing zero-minute component. */
        size_t n = strlen(buf);
        if (h && m == 0 && !sbuf[0] && n >= 2 && !strcmp(buf + n - 2, "0m"))
            buf[n - 2] = '\0';
    }
    return buf;
}
