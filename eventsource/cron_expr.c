/* Cron expressions: parsing and the next tick in a time zone (cron.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cron.h"
#include "ofe/duration.h"
#include "ofe/err.h"

#define MIN_EVERY_MS 10
#define SEARCH_YEARS 8
#define SECS_PER_DAY 86400
#define MAX_SPEC_LEN 1024

struct es_cron {
    uint64_t sec, min;  /* bit n: value n */
    uint32_t hour, dom; /* dom: bits 1..31 */
    uint16_t mon;       /* bits 1..12 */
    uint8_t dow;        /* bits 0..6, Sunday 0 */
    bool dom_star, dow_star, hour_star;
    int64_t every_ms; /* > 0 for @every */
    const struct es_tz *zone;
    struct es_tz *own_zone;
};

struct field_def {
    const char *name;
    int lo, hi;
    const char *const *names; /* names for lo.. (NULL when none) */
};

static const char *const MONTHS[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const DAYS[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const struct field_def F_SEC = {"second", 0, 59, NULL};
static const struct field_def F_MIN = {"minute", 0, 59, NULL};
static const struct field_def F_HOUR = {"hour", 0, 23, NULL};
static const struct field_def F_DOM = {"day of month", 1, 31, NULL};
static const struct field_def F_MON = {"month", 1, 12, MONTHS};
static const struct field_def F_DOW = {"day of week", 0, 7, DAYS};

struct pctx {
    const char *spec;
    size_t *err_off;
    char *errstr;
    size_t errsz;
};

static int fail(struct pctx *p, size_t off, const char *fmt, const char *a, const char *b)
{
    if (p->err_off)
        *p->err_off = off;
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, a, b);
    return ofe_err(p->errstr, p->errsz, OFE_EINVAL, "schedule \"%.120s\": %s (at character %zu)",
                   p->spec, msg, off + 1);
}

/* One value: a number or a name. s points into spec; *len is consumed. */
static int parse_value(struct pctx *p, const struct field_def *f, const char *s, size_t n, int *out)
{
    size_t off = (size_t)(s - p->spec);
    if (n == 0)
        return fail(p, off, "empty value in the %s field%s", f->name, "");
    if (isdigit((unsigned char)s[0])) {
        int v = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)s[i]))
                return fail(p, off, "bad number in the %s field%s", f->name, "");
            v = v * 10 + (s[i] - '0');
            if (v > 1000)
                break;
        }
        if (v < f->lo || v > f->hi) {
            char range[64];
            snprintf(range, sizeof(range), " (allowed %d-%d)", f->lo, f->hi);
            return fail(p, off, "value out of range in the %s field%s", f->name, range);
        }
        *out = v;
        return 0;
    }
    if (f->names && n == 3) {
        int count = f == &F_MON ? 12 : 7;
        for (int i = 0; i < count; i++)
            if (!strncasecmp(s, f->names[i], 3)) {
                *out = i + (f == &F_MON ? 1 : 0);
                return 0;
            }
    }
    return fail(p, off, "unknown value in the %s field%s", f->name,
                f->names ? (f == &F_MON ? " (numbers or JAN..DEC)" : " (numbers or SUN..SAT)")
                         : "");
}

/* One field: a comma list of `*`, `?`, values, ranges and steps. Sets the
 * bits in *bits and *star when the field is `*` or `?`. */
static int parse_field(struct pctx *p, const struct field_def *f, const char *s, size_t n,
                       uint64_t *bits, bool *star)
{
    *bits = 0;
    *star = false;
    size_t i = 0;
    if ((n == 1 && (s[0] == '*' || s[0] == '?'))) {
        if (s[0] == '?' && f != &F_DOM && f != &F_DOW)
            return fail(p, (size_t)(s - p->spec), "'?' is allowed only in the day fields%s%s", "",
                        "");
        *star = true;
    }
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        const char *item = s + i;
        size_t len = j - i;
        size_t off = (size_t)(item - p->spec);
        if (len == 0)
            return fail(p, off, "empty list item in the %s field%s", f->name, "");
        const char *slash = memchr(item, '/', len);
        size_t rlen = slash ? (size_t)(slash - item) : len;
        int lo, hi, step = 1;
        bool range_given = false;
        if (rlen == 1 && (item[0] == '*' || item[0] == '?')) {
            if (item[0] == '?' && f != &F_DOM && f != &F_DOW)
                return fail(p, off, "'?' is allowed only in the day fields%s%s", "", "");
            lo = f->lo;
            hi = f == &F_DOW ? 6 : f->hi;
            range_given = true;
        } else {
            const char *dash = memchr(item, '-', rlen);
            int rc = parse_value(p, f, item, dash ? (size_t)(dash - item) : rlen, &lo);
            if (rc)
                return rc;
            if (dash) {
                rc = parse_value(p, f, dash + 1, rlen - (size_t)(dash + 1 - item), &hi);
                if (rc)
                    return rc;
                range_given = true;
                if (hi < lo && !(f == &F_DOW && hi == 0))
                    return fail(p, off, "range end before its start in the %s field%s", f->name,
                                "");
                if (f == &F_DOW && hi == 0)
                    hi = 7;
            } else {
                hi = lo;
            }
        }
        if (slash) {
            const char *st = slash + 1;
            size_t sl = len - rlen - 1;
            if (sl == 0 || sl > 4)
                return fail(p, (size_t)(st - p->spec), "bad step in the %s field%s", f->name, "");
            step = 0;
            for (size_t k = 0; k < sl; k++) {
                if (!isdigit((unsigned char)st[k]))
                    return fail(p, (size_t)(st - p->spec), "bad step in the %s field%s", f->name,
                                "");
                step = step * 10 + (st[k] - '0');
            }
            if (step == 0)
                return fail(p, (size_t)(st - p->spec), "step 0 in the %s field%s", f->name, "");
            if (!range_given)
                hi = f == &F_DOW ? 6 : f->hi; /* "5/15" means 5-max/15 */
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << (f == &F_DOW && v == 7 ? 0 : v);
        i = j + 1;
    }
    return 0;
}

static const struct {
    const char *name;
    const char *expr;
} DESCRIPTORS[] = {
    {"@yearly", "0 0 0 1 1 *"}, {"@annually", "0 0 0 1 1 *"}, {"@monthly", "0 0 0 1 * *"},
    {"@weekly", "0 0 0 * * 0"}, {"@daily", "0 0 0 * * *"},    {"@midnight", "0 0 0 * * *"},
    {"@hourly", "0 0 * * * *"},
};

static int parse_fields(struct pctx *p, struct es_cron *c, const char *s)
{
    const char *start[7];
    size_t len[7];
    int nf = 0;
    const char *q = s;
    for (;;) {
        while (*q == ' ' || *q == '\t')
            q++;
        if (!*q)
            break;
        if (nf == 7)
            break;
        start[nf] = q;
        while (*q && *q != ' ' && *q != '\t')
            q++;
        len[nf] = (size_t)(q - start[nf]);
        nf++;
    }
    if (nf != 5 && nf != 6) {
        char cnt[32];
        snprintf(cnt, sizeof(cnt), "%s%d", nf == 7 ? "more than " : "", nf == 7 ? 6 : nf);
        return fail(p, (size_t)(s - p->spec),
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
                    "(second first), found %s%s",
                    cnt, "");
    }
    const struct field_def *defs6[] = {&F_SEC, &F_MIN, &F_HOUR, &F_DOM, &F_MON, &F_DOW};
    uint64_t bits[6];
    bool star[6];
    int k0 = nf == 5 ? 1 : 0;
    if (nf == 5) {
        bits[0] = 1; /* second 0 */
        star[0] = false;
    }
    for (int k = k0; k < 6; k++) {
        int rc = parse_field(p, defs6[k], start[k - k0], len[k - k0], &bits[k], &star[k]);
        if (rc)
            return rc;
    }
    c->sec = bits[0];
    c->min = bits[1];
    c->hour = (uint32_t)bits[2];
    c->dom = (uint32_t)bits[3];
    c->mon = (uint16_t)bits[4];
    c->dow = (uint8_t)bits[5];
    c->hour_star = star[2];
    c->dom_star = star[3];
    c->dow_star = star[5];
    return 0;
}

/* Splits an optional CRON_TZ=/TZ= prefix: *zone gets a malloc'd name (or
 * NULL), *rest the schedule after it. */
static int split_prefix(struct pctx *p, const char *s, char **zone, const char **rest)
{
    *zone = NULL;
    *rest = s;
    size_t plen = 0;
    if (!strncmp(s, "CRON_TZ=", 8))
        plen = 8;
    else if (!strncmp(s, "TZ=", 3))
        plen = 3;
    if (!plen)
        return 0;
    const char *z = s + plen;
    size_t n = strcspn(z, " \t");
    if (n == 0 || !z[n])
        return fail(p, (size_t)(z - p->spec), "expected \"%sZone <schedule>\"%s",
                    plen == 8 ? "CRON_TZ=" : "TZ=", "");
    *zone = strndup(z, n);
    if (!*zone)
        return OFE_ENOMEM;
    *rest = z + n;
    while (**rest == ' ' || **rest == '\t')
        (*rest)++;
    return 0;
}

static int parse_body(struct pctx *p, struct es_cron *c, const char *s)
{
    if (s[0] != '@')
        return parse_fields(p, c, s);
    if (!strncmp(s, "@every", 6) && (s[6] == ' ' || s[6] == '\t' || !s[6])) {
        const char *d = s + 6;
        while (*d == ' ' || *d == '\t')
            d++;
        char buf[128];
        size_t n = strcspn(d, " \t");
        if (n == 0 || n >= sizeof(buf))
            return fail(p, (size_t)(d - p->spec),
                        "@every needs a duration, e.g. \"@every 15s\"%s%s", "", "");
        if (d[n + strspn(d + n, " \t")])
            return fail(p, (size_t)(d + n - p->spec), "unexpected text after the duration%s%s", "",
                        "");
        memcpy(buf, d, n);
        buf[n] = '\0';
        int64_t us;
        size_t eo = 0;
        char why[200];
        if (ofe_duration_parse(buf, &us, &eo, why, sizeof(why)) != 0)
            return fail(p, (size_t)(d - p->spec) + eo, "%s%s", why, "");
        if (us < MIN_EVERY_MS * 1000)
            return fail(p, (size_t)(d - p->spec), "@every needs at least 10ms%s%s", "", "");
        c->every_ms = us / 1000;
        return 0;
    }
    size_t n = strcspn(s, " \t");
    for (size_t i = 0; i < sizeof(DESCRIPTORS) / sizeof(DESCRIPTORS[0]); i++) {
        if (strlen(DESCRIPTORS[i].name) == n && !strncasecmp(s, DESCRIPTORS[i].name, n)) {
            if (s[n + strspn(s + n, " \t")])
                return fail(p, (size_t)(n), "unexpected text after %s%s", DESCRIPTORS[i].name, "");
            struct pctx inner = {DESCRIPTORS[i].expr, NULL, NULL, 0};
            return parse_fields(&inner, c, DESCRIPTORS[i].expr);
        }
    }
    return fail(p, (size_t)(s - p->spec),
                "unknown descriptor (expected @yearly, @annually, @monthly, @weekly, @daily, "
                "@midnight, @hourly or @every <duration>)%s%s",
                "", "");
}

static int parse_common(const char *spec, struct es_cron *c, char **zone, size_t *err_off,
                        char *errstr, size_t errstr_size)
{
    struct pctx p = {spec, err_off, errstr, errstr_size};
    if (strlen(spec) > MAX_SPEC_LEN)
        return fail(&p, MAX_SPEC_LEN, "longer than 1024 characters%s%s", "", "");
    const char *s = spec;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return fail(&p, 0, "empty schedule%s%s", "", "");
    const char *rest;
    int rc = split_prefix(&p, s, zone, &rest);
    if (rc)
        return rc;
    rc = parse_body(&p, c, rest);
    if (rc) {
        free(*zone);
        *zone = NULL;
    }
    return rc;
}

int es_cron_parse_in(const char *spec, const struct es_tz *zone, struct es_cron **out,
                     size_t *err_off, char *errstr, size_t errstr_size)
{
    struct es_cron *c = calloc(1, sizeof(*c));
    if (!c)
        return OFE_ENOMEM;
    char *zname = NULL;
    int rc = parse_common(spec, c, &zname, err_off, errstr, errstr_size);
    free(zname);
    if (rc) {
        free(c);
        return rc;
    }
    c->zone = zone;
    *out = c;
    return 0;
}

int es_cron_parse(const char *spec, const char *tz_name, struct es_cron **out, size_t *err_off,
                  char *errstr, size_t errstr_size)
{
    struct es_cron *c = calloc(1, sizeof(*c));
    if (!c)
        return OFE_ENOMEM;
    char *zname = NULL;
    int rc = parse_common(spec, c, &zname, err_off, errstr, errstr_size);
    if (rc) {
        free(c);
        return rc;
    }
    if (zname && tz_name && strcmp(zname, tz_name) != 0) {
        if (err_off)
            *err_off = 0;
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                     "schedule \"%.120s\" names time zone %s, but timezone is %s: give one", spec,
                     zname, tz_name);
        free(zname);
        free(c);
        return rc;
    }
    const char *zn = zname ? zname : tz_name;
    rc = es_tz_load(zn, &c->own_zone, errstr, errstr_size);
    free(zname);
    if (rc) {
        if (err_off)
            *err_off = 0;
        free(c);
        return rc;
    }
    c->zone = c->own_zone;
    *out = c;
    return 0;
}

void es_cron_free(struct es_cron *c)
{
    if (!c)
        return;
    es_tz_free(c->own_zone);
    free(c);
}

bool es_cron_is_every(const struct es_cron *c)
{
    return c->every_ms > 0;
}

const struct es_tz *es_cron_zone(const struct es_cron *c)
{
    return c->zone;
}

/* ---- next tick ----------------------------------------------------------- */

struct civil {
    int64_t y;
    unsigned mo, d, h, mi, s;
};

static int64_t floor_div64(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void civil_from_secs(int64_t l, struct civil *c)
{
    int64_t days = floor_div64(l, SECS_PER_DAY);
    int64_t sod = l - days * SECS_PER_DAY;
    es_civil_from_days(days, &c->y, &c->mo, &c->d);
    c->h = (unsigned)(sod / 3600);
    c->mi = (unsigned)(sod / 60 % 60);
    c->s = (unsigned)(sod % 60);
}

static int64_t secs_from_civil(const struct civil *c)
{
    return es_days_from_civil(c->y, c->mo, c->d) * SECS_PER_DAY + c->h * 3600 + c->mi * 60 + c->s;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return md[m - 1] + (m == 2 && leap);
}

static bool day_matches(const struct es_cron *c, int64_t y, unsigned m, unsigned d)
{
    int64_t days = es_days_from_civil(y, m, d);
    unsigned wd = (unsigned)((days % 7 + 11) % 7);
    bool dom = (c->dom >> d) & 1, dow = (c->dow >> wd) & 1;
    if (c->dom_star || c->dow_star)
        return dom && dow;
    return dom || dow;
}

/* Lowest set bit at or above v, or -1. */
static int next_bit(uint64_t bits, unsigned v, unsigned limit)
{
    for (unsigned i = v; i < limit; i++)
        if ((bits >> i) & 1)
            return (int)i;
    return -1;
}

/* Smallest civil time >= *c matching the fields, in place. Returns false
 * when none before year limit. */
static bool civil_next_match(const struct es_cron *k, struct civil *c, int64_t limit_year)
{
    for (int guard = 0; guard < 100000; guard++) {
        if (c->y > limit_year)
            return false;
        int b = next_bit(k->mon, c->mo, 13);
        if (b < 0) {
            c->y++;
            c->mo = 1;
            c->d = 1;
            c->h = c->mi = c->s = 0;
            continue;
        }
        if ((unsigned)b != c->mo) {
            c->mo = (unsigned)b;
            c->d = 1;
            c->h = c->mi = c->s = 0;
        }
        if (c->d > days_in_month(c->y, c->mo) || !day_matches(k, c->y, c->mo, c->d)) {
            c->d++;
            c->h = c->mi = c->s = 0;
            if (c->d > days_in_month(c->y, c->mo)) {
                c->d = 1;
                if (++c->mo > 12) {
                    c->mo = 1;
                    c->y++;
                }
            }
            continue;
        }
        b = next_bit(k->hour, c->h, 24);
        if (b < 0) {
            c->h = 24; /* roll over to the next day */
            c->d++;
            c->h = c->mi = c->s = 0;
            if (c->d > days_in_month(c->y, c->mo)) {
                c->d = 1;
                if (++c->mo > 12) {
                    c->mo = 1;
                    c->y++;
                }
            }
            continue;
        }
        if ((unsigned)b != c->h) {
            c->h = (unsigned)b;
            c->mi = c->s = 0;
        }
        b = next_bit(k->min, c->mi, 60);
        if (b < 0) {
            c->mi = c->s = 0;
            if (++c->h == 24) {
                c->h = 0;
                c->d++;
                if (c->d > days_in_month(c->y, c->mo)) {
                    c->d = 1;
                    if (++c->mo > 12) {
                        c->mo = 1;
                        c->y++;
                    }
                }
            }
            continue;
        }
        if ((unsigned)b != c->mi) {
            c->mi = (unsigned)b;
            c->s = 0;
        }
        b = next_bit(k->sec, c->s, 60);
        if (b < 0) {
            c->s = 0;
            if (++c->mi == 60) {
                c->mi = 0;
                if (++c->h == 24) {
                    c->h = 0;
                    c->d++;
                    if (c->d > days_in_month(c->y, c->mo)) {
                        c->d = 1;
                        if (++c->mo > 12) {
                            c->mo = 1;
                            c->y++;
                        }
                    }
                }
            }
            continue;
        }
        c->s = (unsigned)b;
        return true;
    }
    return false;
}

/* The first tick strictly after Unix second `after` found by walking the
 * wall clock forward from the wall time at after + 1. Returns seconds or
 * -1. */
static int64_t next_from(const struct es_cron *c, int64_t after)
{
    int64_t t = after + 1;
    struct civil cur;
    civil_from_secs(t + es_tz_offset(c->zone, t), &cur);
    int64_t limit_year = cur.y + SEARCH_YEARS;
    for (int iter = 0; iter < 10000; iter++) {
        if (!civil_next_match(c, &cur, limit_year))
            return -1;
        int64_t l = secs_from_civil(&cur);
        int32_t ob = es_tz_offset(c->zone, l - SECS_PER_DAY);
        int32_t oa = es_tz_offset(c->zone, l + SECS_PER_DAY);
        int64_t u1 = l - ob, u2 = l - oa;
        bool v1 = es_tz_offset(c->zone, u1) == ob;
        bool v2 = ob != oa && es_tz_offset(c->zone, u2) == oa;
        if (v1 && v2) {
            /* Ambiguous: fires at the first occurrence; at the second one
             * too when the hour field is `*`. */
            int64_t first = u1 < u2 ? u1 : u2, second = u1 < u2 ? u2 : u1;
            if (first > after)
                return first;
            if (second > after && c->hour_star)
                return second;
        } else if (v1 || v2) {
            int64_t u = v1 ? u1 : u2;
            if (u > after)
                return u;
        }
        /* Not this one (past, gap, or the skipped second occurrence): the
         * next civil second. */
        l++;
        civil_from_secs(l, &cur);
    }
    return -1;
}

int64_t es_cron_next(const struct es_cron *c, int64_t after_ms)
{
    if (c->every_ms > 0)
        return after_ms > INT64_MAX - c->every_ms ? -1 : after_ms + c->every_ms;
    int64_t after = floor_div64(after_ms, 1000); /* whole seconds: ticks are on them */
    int64_t u = next_from(c, after);
    /* Walking the wall clock from inside the first occurrence of a
     * repeated hour skips the second one: when the clock goes back within
     * a day, walk again from the transition and take the earlier tick. */
    int32_t o1 = es_tz_offset(c->zone, after + 1);
    if (es_tz_offset(c->zone, after + 1 + SECS_PER_DAY) < o1) {
        int64_t lo = after + 1, hi = after + 1 + SECS_PER_DAY; /* offset(lo) = o1 > offset(hi) */
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (es_tz_offset(c->zone, mid) < o1)
                hi = mid;
            else
                lo = mid;
        }
        int64_t u2 = next_from(c, hi - 1);
        if (u2 > after && (u < 0 || u2 < u))
            u = u2;
    }
    return u < 0 ? -1 : u * 1000;
}
