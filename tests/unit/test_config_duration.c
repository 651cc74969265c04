/* Durations: ISO 8601 and Go notation (common/duration.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ofe/duration.h"
#include "ofe/err.h"

static int64_t ok(const char *s)
{
    int64_t us = -1;
    char err[256] = "";
    int rc = ofe_duration_parse(s, &us, NULL, err, sizeof(err));
    if (rc != 0)
        print_error("'%s': %s\n", s, err);
    assert_int_equal(rc, 0);
    return us;
}

/* Expects an error whose text contains want, at byte offset off. */
static void bad(const char *s, size_t off, const char *want)
{
    int64_t us = 12345;
    size_t eo = 999;
    char err[256] = "";
    assert_int_equal(ofe_duration_parse(s, &us, &eo, err, sizeof(err)), OFE_EINVAL);
    if (!strstr(err, want) || eo != off)
        print_error("'%s': got offset %zu '%s', want offset %zu '%s'\n", s, eo, err, off, want);
    assert_non_null(strstr(err, want));
    assert_int_equal(eo, off);
    assert_int_equal(us, 12345); /* untouched on error */
}

static void test_go(void **state)
{
    (void)state;
    assert_int_equal(ok("0"), 0);
    assert_int_equal(ok("0s"), 0);
    assert_int_equal(ok("250ms"), 250000);
    assert_int_equal(ok("15s"), 15000000);
    assert_int_equal(ok("1m30s"), 90000000);
    assert_int_equal(ok("1h"), 3600000000LL);
    assert_int_equal(ok("1.5h"), 5400000000LL);
    assert_int_equal(ok(".5s"), 500000);
    assert_int_equal(ok("1h2m3s4ms5us"), 3723004005LL);
    assert_int_equal(ok("10us"), 10);
    assert_int_equal(ok("10\xc2\xb5s"), 10);
    assert_int_equal(ok("10\xce\xbcs"), 10);
    assert_int_equal(ok("2000ns"), 2);
}

static void test_iso(void **state)
{
    (void)state;
    assert_int_equal(ok("PT0.2S"), 200000);
    assert_int_equal(ok("PT1M30S"), 90000000);
    assert_int_equal(ok("P1D"), 86400000000LL);
    assert_int_equal(ok("P1DT12H"), 129600000000LL);
    assert_int_equal(ok("P2W"), 1209600000000LL);
    assert_int_equal(ok("PT1,5S"), 1500000);
    assert_int_equal(ok("PT0.5H"), 1800000000LL);
    assert_int_equal(ok("pt10s"), 10000000);
}

static void test_errors(void **state)
{
    (void)state;
    bad("", 0, "empty duration");
    bad("15", 2, "has no unit");
    bad("15x", 2, "unknown unit 'x'");
    bad("1d", 1, "Go style has no days");
    bad("-5s", 0, "sign");
    bad("1m 30s", 2, "unexpected space");
    bad("1m30", 4, "missing unit");
    bad("s", 0, "expected a number");
    bad("P", 1, "has no component");
    bad("PT", 2, "expected a number after 'T'");
    bad("P1Y", 2, "years have no fixed length");
    bad("P1M", 2, "months have no fixed length");
    bad("PT1S1M", 5, "out of order");
    bad("PT1.5M30S", 6, "only the last component");
    bad("PT5", 3, "missing designator");
    bad("P1DT1D", 5, "unexpected 'D' in the time part");
    bad("PT1X", 3, "unexpected 'X'");
    bad("1ns", 0, "finer than the microsecond");
    bad("99999999999999999999999h", 0, "too large");
    bad("3000000000h", 0, "too large");
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    static const int64_t v[] = {
        0,          1,        999,          1000,         250000,       1000000,
        1500000,    90000000, 3600000000LL, 3690500000LL, 5400000000LL, 86400000000LL,
        123456789LL};
    char buf[64];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ofe_duration_format(v[i], buf, sizeof(buf));
        assert_int_equal(ok(buf), v[i]);
    }
    assert_string_equal(ofe_duration_format(0, buf, sizeof(buf)), "0s");
    assert_string_equal(ofe_duration_format(250000, buf, sizeof(buf)), "250ms");
    assert_string_equal(ofe_duration_format(90000000, buf, sizeof(buf)), "1m30s");
    assert_string_equal(ofe_duration_format(3600000000LL, buf, sizeof(buf)), "1h");
    assert_string_equal(ofe_duration_format(1500000, buf, sizeof(buf)), "1.5s");
    assert_string_equal(ofe_duration_format(10, buf, sizeof(buf)), "10us");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go),
        cmocka_unit_test(test_iso),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_format_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
