/* Cron schedules of the cron source (eventsource/cron.h): the expression
 * syntax and its errors, next ticks in UTC and in zones with daylight
 * saving (gaps skipped, repeated hours once unless the hour is `*`), far
 * future dates from the TZif footer rule, and the zone reader checked
 * against glibc's localtime for many instants of many zones; corrupt
 * TZif data and POSIX strings are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cron.h"
#include "es.h"
#include "ofe/err.h"
#include "testutil.h"

static int64_t ms(const char *s)
{
    struct tm tm = {0};
    int frac = 0;
    int n = sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec, &frac);
    assert_true(n >= 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + frac;
}

/* next tick after `after` as RFC 3339, "never" for -1 */
static const char *next_in(const char *spec, const char *zone, const char *after)
{
    static char out[64];
    struct es_cron *c = NULL;
    char err[256];
    int rc = es_cron_parse(spec, zone, &c, NULL, err, sizeof(err));
    if (rc)
        fail_msg("parse \"%s\": %s", spec, err);
    int64_t t = es_cron_next(c, ms(after));
    es_cron_free(c);
    if (t < 0)
        return "never";
    es_time_format(t, out, sizeof(out));
    return out;
}

#define NEXT(spec, after, want)        assert_string_equal(next_in(spec, "UTC", after), want)
#define NEXTZ(spec, zone, after, want) assert_string_equal(next_in(spec, zone, after), want)

static void test_fields(void **state)
{
    NEXT("*/15 * * * *", "2024-01-01T00:00:00.000Z", "2024-01-01T00:15:00.000Z");
    NEXT("0 0 * * *", "2024-01-01T00:00:00.500Z", "2024-01-02T00:00:00.000Z");
    NEXT("30 * * * * *", "2024-01-01T00:00:10Z", "2024-01-01T00:00:30.000Z");
    NEXT("* * * * * *", "2024-01-01T00:00:10.999Z", "2024-01-01T00:00:11.000Z");
    NEXT("0 0 12 * * MON-FRI", "2024-01-06T00:00:00Z", "2024-01-08T12:00:00.000Z");
    NEXT("0 0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00.000Z");
    NEXT("0 0 13 * 5", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00.000Z"); /* dom OR dow */
    NEXT("0 0 13 * *", "2024-01-01T00:00:00Z", "2024-01-13T00:00:00.000Z");
    NEXT("0 0 13 * ?", "2024-01-01T00:00:00Z", "2024-01-13T00:00:00.000Z");
    NEXT("0 0 * * 7", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00.000Z");
    NEXT("0 0 * * sun", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00.000Z");
    NEXT("0 0 * * 5-7", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00.000Z");
    NEXT("0 0 * * SAT-SUN", "2024-01-01T00:00:00Z", "2024-01-06T00:00:00.000Z");
    NEXT("0 0 1 jan,jul *", "2024-02-01T00:00:00Z", "2024-07-01T00:00:00.000Z");
    NEXT("5/15 * * * *", "2024-01-01T00:21:00Z", "2024-01-01T00:35:00.000Z");
    NEXT("0-10/5 * * * *", "2024-01-01T00:06:00Z", "2024-01-01T00:10:00.000Z");
    NEXT("0-10/5 * * * *", "2024-01-01T00:10:00Z", "2024-01-01T01:00:00.000Z");
    NEXT("0 0 9-17/4 * * *", "2024-01-01T10:00:00Z", "2024-01-01T13:00:00.000Z");
    NEXT("0 0 31 * *", "2024-04-01T00:00:00Z", "2024-05-31T00:00:00.000Z");
    NEXT("0 0 30 2 *", "2024-01-01T00:00:00Z", "never");
    NEXT("@hourly", "2024-01-01T10:30:00Z", "2024-01-01T11:00:00.000Z");
    NEXT("@daily", "2024-01-01T10:30:00Z", "2024-01-02T00:00:00.000Z");
    NEXT("@midnight", "2024-01-01T10:30:00Z", "2024-01-02T00:00:00.000Z");
    NEXT("@weekly", "2024-01-01T10:30:00Z", "2024-01-07T00:00:00.000Z");
    NEXT("@monthly", "2024-01-01T10:30:00Z", "2024-02-01T00:00:00.000Z");
    NEXT("@yearly", "2024-01-01T10:30:00Z", "2025-01-01T00:00:00.000Z");
    NEXT("@annually", "2024-12-31T23:59:59Z", "2025-01-01T00:00:00.000Z");
    NEXT("@every 1m30s", "2024-01-01T10:30:00.250Z", "2024-01-01T10:31:30.250Z");
    NEXT("@every PT0.5S", "2024-01-01T10:30:00Z", "2024-01-01T10:30:00.500Z");
    NEXT("  0  0  *  *  *  ", "2024-01-01T10:30:00Z", "2024-01-02T00:00:00.000Z");
    NEXT("CRON_TZ=UTC 0 0 * * *", "2024-01-01T10:30:00Z", "2024-01-02T00:00:00.000Z");
}

static void expect_error(const char *spec, size_t want_off, const char *needle)
{
    struct es_cron *c = NULL;
    char err[256] = "";
    size_t off = 9999;
    int rc = es_cron_parse_in(spec, NULL, &c, &off, err, sizeof(err));
    if (rc != OFE_EINVAL)
        fail_msg("\"%s\" parsed (rc %d)", spec, rc);
    if (off != want_off)
        fail_msg("\"%s\": offset %zu, expected %zu (%s)", spec, off, want_off, err);
    if (!strstr(err, needle))
        fail_msg("\"%s\": \"%s\" lacks \"%s\"", spec, err, needle);
}

static void test_errors(void **state)
{
    expect_error("", 0, "empty schedule");
    expect_error("* * * *", 0, "expected 5 fields");
    expect_error("* * * * * * *", 0, "found more than 6");
    expect_error("60 * * * *", 0, "value out of range in the minute field (allowed 0-59)");
    expect_error("* * 32 * *", 4, "day of month");
    expect_error("* * * * 8", 8, "day of week");
    expect_error("*/0 * * * *", 2, "step 0");
    expect_error("a * * * *", 0, "unknown value in the minute field");
    expect_error("* * * FOO *", 6, "JAN..DEC");
    expect_error("? * * * *", 0, "'?' is allowed only in the day fields");
    expect_error("5-1 * * * *", 0, "range end before its start");
    expect_error("1,,2 * * * *", 2, "empty list item");
    expect_error("@never", 0, "unknown descriptor");
    expect_error("@every", 6, "@every needs a duration");
    expect_error("@every 5ms", 7, "at least 10ms");
    expect_error("@every 1x", 8, "");
    expect_error("@every 5s extra", 9, "unexpected text");
    expect_error("@daily now", 6, "unexpected text after @daily");
    expect_error("CRON_TZ=", 8, "expected \"CRON_TZ=Zone <schedule>\"");
    expect_error("0 0 * * 1/x", 10, "bad step");
    /* zones */
    struct es_cron *c = NULL;
    char err[256];
    assert_int_equal(
        es_cron_parse("CRON_TZ=Mars/Olympus 0 0 * * *", NULL, &c, NULL, err, sizeof(err)),
        OFE_ENOENT);
    assert_non_null(strstr(err, "unknown time zone \"Mars/Olympus\""));
    assert_int_equal(es_cron_parse("0 0 * * *", "../etc/passwd", &c, NULL, err, sizeof(err)),
                     OFE_EINVAL);
    assert_int_equal(
        es_cron_parse("CRON_TZ=Asia/Tokyo 0 0 * * *", "Europe/Berlin", &c, NULL, err, sizeof(err)),
        OFE_EINVAL);
    assert_non_null(strstr(err, "give one"));
}

static void test_zones(void **state)
{
    /* Berlin, spring forward 2024-03-31 02:00 CET -> 03:00 CEST: 02:30 does
     * not exist that day and is skipped */
    NEXTZ("30 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00Z", "2024-04-01T00:30:00.000Z");
    NEXTZ("0 * * * *", "Europe/Berlin", "2024-03-31T00:30:00Z", "2024-03-31T01:00:00.000Z");
    NEXTZ("0 9 * * *", "Europe/Berlin", "2024-03-31T00:00:00Z", "2024-03-31T07:00:00.000Z");
    /* fall back 2024-10-27 03:00 CEST -> 02:00 CET: 02:30 twice, fires
     * once (first occurrence) unless the hour field is `*` */
    NEXTZ("30 2 * * *", "Europe/Berlin", "2024-10-26T12:00:00Z", "2024-10-27T00:30:00.000Z");
    NEXTZ("30 2 * * *", "Europe/Berlin", "2024-10-27T00:30:00Z", "2024-10-28T01:30:00.000Z");
    NEXTZ("30 * * * *", "Europe/Berlin", "2024-10-27T00:30:00Z", "2024-10-27T01:30:00.000Z");
    NEXTZ("TZ=America/New_York 0 9 * * *", NULL, "2024-07-01T00:00:00Z",
          "2024-07-01T13:00:00.000Z");
    NEXTZ("0 9 * * *", "America/New_York", "2024-01-01T00:00:00Z", "2024-01-01T14:00:00.000Z");
    NEXTZ("0 9 * * *", "Asia/Kolkata", "2024-01-01T00:00:00Z", "2024-01-01T03:30:00.000Z");
    NEXTZ("CRON_TZ=Asia/Tokyo 0 30 9 * * MON-FRI", "Asia/Tokyo", "2024-01-06T00:00:00Z",
          "2024-01-08T00:30:00.000Z");
    /* beyond the file's transitions: the POSIX rule of its footer */
    NEXTZ("0 12 1 7 *", "Europe/Berlin", "2090-01-01T00:00:00Z", "2090-07-01T10:00:00.000Z");
    NEXTZ("0 12 1 1 *", "Europe/Berlin", "2090-01-02T00:00:00Z", "2091-01-01T11:00:00.000Z");
    NEXTZ("0 12 1 1 *", "Australia/Sydney", "2060-06-01T00:00:00Z", "2061-01-01T01:00:00.000Z");
    NEXTZ("0 12 1 7 *", "Australia/Sydney", "2060-01-01T00:00:00Z", "2060-07-01T02:00:00.000Z");
    /* Lord Howe: 30 minute daylight saving */
    NEXTZ("0 12 1 1 *", "Australia/Lord_Howe", "2024-06-01T00:00:00Z", "2025-01-01T01:00:00.000Z");
}

/* es_tz_offset against glibc for many instants of many zones. */
static void test_offsets_vs_libc(void **state)
{
    const char *zones[] = {"Europe/Berlin",       "America/New_York",  "Australia/Sydney",
                           "Asia/Kolkata",        "America/Sao_Paulo", "Pacific/Chatham",
                           "Australia/Lord_Howe", "Africa/Casablanca", "America/St_Johns",
                           "Europe/London",       "Pacific/Apia",      "UTC"};
    size_t checked = 0;
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        struct es_tz *tz = NULL;
        char err[256];
        int rc = es_tz_load(zones[z], &tz, err, sizeof(err));
        if (rc)
            fail_msg("%s: %s", zones[z], err);
        setenv("TZ", zones[z], 1);
        tzset();
        /* 1902 .. 2100, irregular steps, plus the hours around each
         * instant (transitions) */
        uint64_t x = 88172645463325252ull;
        for (int64_t t = -2145916800LL; t < 4102444800LL;) {
            for (int64_t d = -7200; d <= 7200; d += 1800) {
                time_t tt = (time_t)(t + d);
                struct tm tm;
                localtime_r(&tt, &tm);
                int32_t mine = es_tz_offset(tz, t + d);
                if (mine != tm.tm_gmtoff)
                    fail_msg("%s at %lld: offset %d, glibc %ld", zones[z], (long long)(t + d), mine,
                             (long)tm.tm_gmtoff);
                checked++;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 86400 * 3 + (int64_t)(x % (86400 * 40));
        }
        es_tz_free(tz);
    }
    unsetenv("TZ");
    tzset();
    assert_true(checked > 100000);
}

static void test_tzif_corrupt(void **state)
{
    size_t len = 0;
    char *buf = tu_read_file("/usr/share/zoneinfo/Europe/Berlin", &len);
    assert_non_null(buf);
    struct es_tz *z = NULL;
    char err[256];
    assert_int_equal(es_tz_parse_tzif(buf, len, "Berlin", &z, err, sizeof(err)), 0);
    es_tz_free(z);
    /* every truncation is refused or parsed, never read past the end */
    size_t refused = 0;
    for (size_t n = 0; n < len; n += (n < 100 ? 1 : 7)) {
        char *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        z = NULL;
        if (es_tz_parse_tzif(cut, n, "cut", &z, err, sizeof(err)) != 0)
            refused++;
        es_tz_free(z);
        free(cut);
    }
    assert_true(refused > 0);
    /* bad magic, a type index out of range */
    char *bad = malloc(len);
    memcpy(bad, buf, len);
    bad[0] = 'X';
    assert_int_equal(es_tz_parse_tzif(bad, len, "bad", &z, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "not a TZif file"));
    free(bad);
    free(buf);
    /* POSIX strings */
    const char *good[] = {"UTC0",    "CET-1CEST,M3.5.0,M10.5.0/3",       "<+0530>-5:30",
                          "EST5EDT", "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", "AAA3BBB,J60/2,300/25",
                          NULL};
    for (size_t i = 0; good[i]; i++) {
        z = NULL;
        if (es_tz_parse_posix(good[i], NULL, &z, err, sizeof(err)) != 0)
            fail_msg("\"%s\": %s", good[i], err);
        es_tz_free(z);
    }
    const char *badp[] = {
        "",    "U",     "UTC",    "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
        "XX0", "<AB>0", "CET-25", "CET-1CEST,J0,J1",  "CET-1CEST,M3.5.0,M10.5.0/3junk",
        NULL};
    for (size_t i = 0; badp[i]; i++) {
        z = NULL;
        if (es_tz_parse_posix(badp[i], NULL, &z, err, sizeof(err)) == 0)
            fail_msg("\"%s\" parsed", badp[i]);
    }
    /* EST5EDT with its default (US) rules */
    z = NULL;
    assert_int_equal(es_tz_parse_posix("EST5EDT", NULL, &z, err, sizeof(err)), 0);
    assert_int_equal(es_tz_offset(z, ms("2024-07-01T00:00:00Z") / 1000), -4 * 3600);
    assert_int_equal(es_tz_offset(z, ms("2024-01-01T00:00:00Z") / 1000), -5 * 3600);
    es_tz_free(z);
}

static void test_civil(void **state)
{
    for (int64_t d = -800000; d < 800000; d += 37) {
        int64_t y;
        unsigned m, dd;
        es_civil_from_days(d, &y, &m, &dd);
        assert_int_equal(es_days_from_civil(y, m, dd), d);
    }
    assert_int_equal(es_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(es_days_from_civil(2000, 3, 1), 11017);
    char b[40];
    assert_string_equal(es_time_format(0, b, sizeof(b)), "1970-01-01T00:00:00.000Z");
    assert_string_equal(es_time_format(-1, b, sizeof(b)), "1969-12-31T23:59:59.999Z");
    assert_string_equal(es_time_format(1700000000123, b, sizeof(b)), "2023-11-14T22:13:20.123Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),       cmocka_unit_test(test_errors),
        cmocka_unit_test(test_zones),        cmocka_unit_test(test_offsets_vs_libc),
        cmocka_unit_test(test_tzif_corrupt), cmocka_unit_test(test_civil),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
