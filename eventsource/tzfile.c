/* Time zones for the cron source (cron.h): TZif files (RFC 8536) and POSIX
 * TZ strings, read into an immutable table, so schedules in several zones
 * run side by side without touching the process-wide TZ. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "ofe/err.h"

#define TZ_MAX_FILE  (1024 * 1024)
#define TZ_MAX_TRANS 100000
#define TZ_MAX_TYPES 256
#define TZ_NAME_MAX  255
#define SECS_PER_DAY 86400

/* A POSIX TZ rule: standard offset, and optionally a DST offset with the
 * dates it starts and ends. */
struct posix_date {
    char kind; /* 'J' (1..365, no Feb 29), 'N' (0..365), 'M' (month.week.day) */
    int a, b, c;
    int32_t time; /* seconds after local midnight, may be negative or > 24 h */
};

struct posix_rule {
    int32_t std_off; /* seconds east of UTC */
    int32_t dst_off;
    bool has_dst;
    struct posix_date start, end;
};

struct es_tz {
    char *name;
    int64_t *trans; /* transition instants, ascending */
    uint8_t *idx;   /* type index per transition */
    size_t ntrans;
    int32_t *types; /* utoff per type */
    size_t ntypes;
    bool has_rule; /* footer (TZif v2+) or a POSIX string */
    struct posix_rule rule;
};

const char *es_tz_name(const struct es_tz *z)
{
    return z->name;
}

void es_tz_free(struct es_tz *z)
{
    if (!z)
        return;
    free(z->name);
    free(z->trans);
    free(z->idx);
    free(z->types);
    free(z);
}

/* ---- civil calendar (Howard Hinnant's algorithms) ------------------------ */

int64_t es_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void es_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- POSIX TZ strings ----------------------------------------------------- */

struct pcur {
    const char *s;
    size_t i;
    char *err;
    size_t errsz;
};

static int perr(struct pcur *p, const char *what)
{
    return ofe_err(p->err, p->errsz, OFE_EINVAL, "POSIX TZ string \"%.80s\": %s at offset %zu",
                   p->s, what, p->i);
}

/* A zone abbreviation: 3+ letters, or <...> of letters, digits, + and -. */
static int p_name(struct pcur *p)
{
    const char *s = p->s;
    size_t start = p->i;
    if (s[p->i] == '<') {
        p->i++;
        while (s[p->i] && s[p->i] != '>') {
            char c = s[p->i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '-'))
                return perr(p, "bad character in a <quoted> zone name");
            p->i++;
        }
        if (s[p->i] != '>')
            return perr(p, "unterminated <quoted> zone name");
        if (p->i - start - 1 < 3)
            return perr(p, "zone name shorter than 3 characters");
        p->i++;
        return 0;
    }
    while ((s[p->i] >= 'A' && s[p->i] <= 'Z') || (s[p->i] >= 'a' && s[p->i] <= 'z'))
        p->i++;
    if (p->i - start < 3)
        return perr(p, "expected a zone name of at least 3 letters");
    return 0;
}

/* [+-]hh[:mm[:ss]] with hh <= max_h. */
static int p_hms(struct pcur *p, int max_h, int32_t *out)
{
    const char *s = p->s;
    int sign = 1;
    if (s[p->i] == '+' || s[p->i] == '-') {
        sign = s[p->i] == '-' ? -1 : 1;
        p->i++;
    }
    int32_t v[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        if (k > 0) {
            if (s[p->i] != ':')
                break;
            p->i++;
        }
        if (s[p->i] < '0' || s[p->i] > '9')
            return perr(p, "expected a number");
        int n = 0, digits = 0;
        while (s[p->i] >= '0' && s[p->i] <= '9' && digits < 3) {
            n = n * 10 + (s[p->i] - '0');
            p->i++;
            digits++;
        }
        if (s[p->i] >= '0' && s[p->i] <= '9')
            return perr(p, "number too long");
        if ((k == 0 && n > max_h) || (k > 0 && n > 59))
            return perr(p, "value out of range");
        v[k] = n;
    }
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    return 0;
}

static int p_num(struct pcur *p, int lo, int hi, int *out)
{
    const char *s = p->s;
    if (s[p->i] < '0' || s[p->i] > '9')
        return perr(p, "expected a number");
    int n = 0;
    while (s[p->i] >= '0' && s[p->i] <= '9') {
        n = n * 10 + (s[p->i] - '0');
        p->i++;
        if (n > hi)
            return perr(p, "value out of range");
    }
    if (n < lo)
        return perr(p, "value out of range");
    *out = n;
    return 0;
}

static int p_date(struct pcur *p, struct posix_date *d)
{
    const char *s = p->s;
    int rc;
    if (s[p->i] == 'J') {
        p->i++;
        d->kind = 'J';
        rc = p_num(p, 1, 365, &d->a);
    } else if (s[p->i] == 'M') {
        p->i++;
        d->kind = 'M';
        rc = p_num(p, 1, 12, &d->a);
        if (!rc && s[p->i++] != '.')
            return perr(p, "expected '.' in Mm.w.d");
        if (!rc)
            rc = p_num(p, 1, 5, &d->b);
        if (!rc && s[p->i++] != '.')
            return perr(p, "expected '.' in Mm.w.d");
        if (!rc)
            rc = p_num(p, 0, 6, &d->c);
    } else {
        d->kind = 'N';
        rc = p_num(p, 0, 365, &d->a);
    }
    if (rc)
        return rc;
    d->time = 2 * 3600;
    if (s[p->i] == '/') {
        p->i++;
        rc = p_hms(p, 167, &d->time);
    }
    return rc;
}

static int parse_rule(const char *s, struct posix_rule *r, char *errstr, size_t errstr_size)
{
    struct pcur p = {s, 0, errstr, errstr_size};
    memset(r, 0, sizeof(*r));
    int32_t off;
    int rc = p_name(&p);
    if (!rc)
        rc = p_hms(&p, 24, &off);
    if (rc)
        return rc;
    r->std_off = -off; /* POSIX offsets are west of UTC */
    if (!s[p.i])
        return 0;
    if ((rc = p_name(&p)))
        return rc;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (s[p.i] && s[p.i] != ',') {
        if ((rc = p_hms(&p, 24, &off)))
            return rc;
        r->dst_off = -off;
    }
    if (!s[p.i]) {
        /* No rule: the US rules POSIX implementations default to. */
        r->start = (struct posix_date){'M', 3, 2, 0, 7200};
        r->end = (struct posix_date){'M', 11, 1, 0, 7200};
        return 0;
    }
    if (s[p.i] != ',')
        return perr(&p, "expected ',' before the DST start rule");
    p.i++;
    if ((rc = p_date(&p, &r->start)))
        return rc;
    if (s[p.i] != ',')
        return perr(&p, "expected ',' before the DST end rule");
    p.i++;
    if ((rc = p_date(&p, &r->end)))
        return rc;
    if (s[p.i])
        return perr(&p, "unexpected text after the rule");
    return 0;
}

/* Day number (days since the epoch) of a rule date in year y. */
static int64_t rule_day(const struct posix_date *d, int64_t y)
{
    int64_t jan1 = es_days_from_civil(y, 1, 1);
    switch (d->kind) {
    case 'J': {
        int64_t n = d->a - 1; /* 0-based, Feb 29 never counted */
        if (is_leap(y) && d->a >= 60)
            n++;
        return jan1 + n;
    }
    case 'N':
        return jan1 + d->a;
    default: {
        /* Day d->c (0 = Sunday) of week d->b (5 = last) of month d->a. */
        int64_t first = es_days_from_civil(y, (unsigned)d->a, 1);
        int wd = (int)((first % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
        int64_t day = first + (d->c - wd + 7) % 7 + (int64_t)(d->b - 1) * 7;
        static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        unsigned dim = mdays[d->a - 1] + (d->a == 2 && is_leap(y));
        while (day >= first + dim)
            day -= 7;
        return day;
    }
    }
}

static int32_t rule_offset(const struct posix_rule *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    int64_t y;
    unsigned m, d;
    es_civil_from_days(floor_div(t + r->std_off, SECS_PER_DAY), &y, &m, &d);
    /* Transitions are given in the local time in effect before them. */
    int64_t start = rule_day(&r->start, y) * SECS_PER_DAY + r->start.time - r->std_off;
    int64_t end = rule_day(&r->end, y) * SECS_PER_DAY + r->end.time - r->dst_off;
    bool dst;
    if (start < end)
        dst = t >= start && t < end;
    else
        dst = !(t >= end && t < start);
    return dst ? r->dst_off : r->std_off;
}

static struct es_tz *tz_new(const char *name)
{
    struct es_tz *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    z->name = strdup(name ? name : "");
    if (!z->name) {
        free(z);
        return NULL;
    }
    return z;
}

int es_tz_parse_posix(const char *s, const char *name, struct es_tz **out, char *errstr,
                      size_t errstr_size)
{
    struct posix_rule r;
    int rc = parse_rule(s, &r, errstr, errstr_size);
    if (rc)
        return rc;
    struct es_tz *z = tz_new(name ? name : s);
    if (!z)
        return OFE_ENOMEM;
    z->has_rule = true;
    z->rule = r;
    *out = z;
    return 0;
}

/* ---- TZif ---------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_hdr {
    char version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static int read_hdr(const unsigned char *b, size_t len, struct tzif_hdr *h, const char *name,
                    char *errstr, size_t errstr_size)
{
    if (len < 44 || memcmp(b, "TZif", 4) != 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: not a TZif file", name);
    h->version = (char)b[4];
    h->isutcnt = be32(b + 20);
    h->isstdcnt = be32(b + 24);
    h->leapcnt = be32(b + 28);
    h->timecnt = be32(b + 32);
    h->typecnt = be32(b + 36);
    h->charcnt = be32(b + 40);
    if (h->typecnt == 0 || h->typecnt > TZ_MAX_TYPES || h->timecnt > TZ_MAX_TRANS ||
        h->leapcnt > TZ_MAX_TRANS || h->charcnt > 65536 ||
        (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: corrupt TZif header", name);
    return 0;
}

static size_t block_size(const struct tzif_hdr *h, size_t tsize)
{
    return (size_t)h->timecnt * tsize + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
           (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

int es_tz_parse_tzif(const void *buf, size_t len, const char *name, struct es_tz **out,
                     char *errstr, size_t errstr_size)
{
    const unsigned char *b = buf;
    if (!name)
        name = "TZif";
    struct tzif_hdr h;
    int rc = read_hdr(b, len, &h, name, errstr, errstr_size);
    if (rc)
        return rc;
    size_t tsize = 4;
    size_t pos = 44;
    size_t bs = block_size(&h, 4);
    if (bs > len - pos)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: truncated TZif data", name);
    if (h.version >= '2') {
        /* Skip the 32-bit block: the 64-bit one follows with its header. */
        pos += bs;
        if ((rc = read_hdr(b + pos, len - pos, &h, name, errstr, errstr_size)))
            return rc;
        pos += 44;
        tsize = 8;
        bs = block_size(&h, 8);
        if (bs > len - pos)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: truncated TZif data", name);
    }
    struct es_tz *z = tz_new(name);
    if (!z)
        return OFE_ENOMEM;
    z->ntrans = h.timecnt;
    z->ntypes = h.typecnt;
    z->trans = malloc((h.timecnt ? h.timecnt : 1) * sizeof(*z->trans));
    z->idx = malloc(h.timecnt ? h.timecnt : 1);
    z->types = malloc(h.typecnt * sizeof(*z->types));
    if (!z->trans || !z->idx || !z->types) {
        es_tz_free(z);
        return OFE_ENOMEM;
    }
    const unsigned char *p = b + pos;
    for (size_t i = 0; i < h.timecnt; i++) {
        z->trans[i] = tsize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
        p += tsize;
        if (i > 0 && z->trans[i] <= z->trans[i - 1]) {
            es_tz_free(z);
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "%s: transition times are not ascending", name);
        }
    }
    for (size_t i = 0; i < h.timecnt; i++) {
        z->idx[i] = *p++;
        if (z->idx[i] >= h.typecnt) {
            es_tz_free(z);
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: bad local time type index", name);
        }
    }
    for (size_t i = 0; i < h.typecnt; i++) {
        int32_t off = (int32_t)be32(p);
        if (off < -25 * 3600 || off > 26 * 3600) {
            es_tz_free(z);
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: UT offset out of range", name);
        }
        z->types[i] = off;
        p += 6;
    }
    pos += bs;
    if (tsize == 8) {
        /* Footer: "\n" POSIX-TZ "\n" (may be empty). */
        if (pos >= len || b[pos] != '\n') {
            es_tz_free(z);
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: missing TZif footer", name);
        }
        const unsigned char *nl = memchr(b + pos + 1, '\n', len - pos - 1);
        if (!nl) {
            es_tz_free(z);
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: unterminated TZif footer", name);
        }
        size_t flen = (size_t)(nl - (b + pos + 1));
        if (flen > 0) {
            char footer[256];
            if (flen >= sizeof(footer) || memchr(b + pos + 1, '\0', flen)) {
                es_tz_free(z);
                return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: bad TZif footer", name);
            }
            memcpy(footer, b + pos + 1, flen);
            footer[flen] = '\0';
            if ((rc = parse_rule(footer, &z->rule, errstr, errstr_size))) {
                es_tz_free(z);
                return rc;
            }
            z->has_rule = true;
        }
    }
    *out = z;
    return 0;
}

int32_t es_tz_offset(const struct es_tz *z, int64_t t)
{
    if (!z)
        return 0;
    if (z->ntrans == 0 || t < z->trans[0]) {
        if (z->ntrans == 0 && z->has_rule)
            return rule_offset(&z->rule, t);
        return z->ntypes ? z->types[0] : 0;
    }
    if (t >= z->trans[z->ntrans - 1] && z->has_rule)
        return rule_offset(&z->rule, t);
    size_t lo = 0, hi = z->ntrans; /* last transition <= t is in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->types[z->idx[lo]];
}

/* ---- loading ------------------------------------------------------------- */

static bool name_ok(const char *n)
{
    if (!*n || *n == '/' || strlen(n) > TZ_NAME_MAX)
        return false;
    for (const char *c = n; *c; c++) {
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '/' || *c == '_' || *c == '-' || *c == '+' || *c == '.'))
            return false;
        if (*c == '.' && (c == n || c[-1] == '/') && c[1] == '.')
            return false; /* no ".." path components */
    }
    return true;
}

static int load_file(const char *path, const char *name, struct es_tz **out, char *errstr,
                     size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ofe_err(errstr, errstr_size, errno == ENOENT ? OFE_ENOENT : OFE_EIO,
                       "unknown time zone \"%s\" (%s: %s)", name, path, strerror(errno));
    unsigned char *buf = malloc(TZ_MAX_FILE);
    if (!buf) {
        fclose(f);
        return OFE_ENOMEM;
    }
    size_t n = fread(buf, 1, TZ_MAX_FILE, f);
    fclose(f);
    int rc = es_tz_parse_tzif(buf, n, name, out, errstr, errstr_size);
    free(buf);
    return rc;
}

int es_tz_load(const char *name, struct es_tz **out, char *errstr, size_t errstr_size)
{
    if (!name || !*name || !strcmp(name, "Local")) {
        const char *tz = getenv("TZ");
        if (tz && *tz) {
            const char *n = tz[0] == ':' ? tz + 1 : tz;
            if (name_ok(n)) {
                char dummy[8];
                if (es_tz_load(n, out, dummy, sizeof(dummy)) == 0) {
                    free((*out)->name);
                    (*out)->name = strdup("Local");
                    return (*out)->name ? 0 : OFE_ENOMEM;
                }
                es_tz_free(*out);
                *out = NULL;
            }
            if (tz[0] != ':' && es_tz_parse_posix(tz, "Local", out, NULL, 0) == 0)
                return 0;
        }
        if (load_file("/etc/localtime", "Local", out, errstr, errstr_size) == 0)
            return 0;
        struct es_tz *z = tz_new("Local");
        if (!z)
            return OFE_ENOMEM;
        z->has_rule = true; /* UTC */
        *out = z;
        return 0;
    }
    if (!strcmp(name, "UTC") || !strcmp(name, "Etc/UTC") || !strcmp(name, "Z")) {
        struct es_tz *z = tz_new(name);
        if (!z)
            return OFE_ENOMEM;
        z->has_rule = true;
        *out = z;
        return 0;
    }
    if (!name_ok(name))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "\"%s\" is not a time zone name (expected an IANA name like "
                       "Europe/Berlin)",
                       name);
    const char *dir = getenv("TZDIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    return load_file(path, name, out, errstr, errstr_size);
}
