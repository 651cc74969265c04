/* ofe-eventbus RESP2 request parser and reply writers: incremental parsing
 * gives the same commands however the bytes are split, Redis's limits and
 * error texts, inline quoting, oversize arguments, Redis's integer rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resp.h"

/* Parses buf fed in pieces of `step` bytes (0 = all at once); renders each
 * command as "arg|arg|...\n" (or "!oversize\n", "ERR:<text>\n"). */
static char *parse_all(const char *in, size_t len, size_t step, size_t max_arg)
{
    struct resp_parser p;
    resp_parser_init(&p, 1000, max_arg);
    char *buf = malloc(len + 1);
    size_t have = 0;
    struct ofe_buf out = OFE_BUF_INIT;
    size_t fed = 0;
    for (;;) {
        size_t n = step ? step : len;
        if (n > len - fed)
            n = len - fed;
        memcpy(buf + have, in + fed, n);
        have += n;
        fed += n;
        for (;;) {
            const char *err = NULL;
            int r = resp_parse(&p, buf, have, &err);
            if (r == RESP_MORE)
                break;
            if (r == RESP_ERR) {
                ofe_buf_printf(&out, "ERR:%s\n", err);
                goto done;
            }
            if (p.oversize) {
                ofe_buf_printf(&out, "!oversize %zu\n", p.oversize_len);
            } else {
                for (size_t i = 0; i < p.argc; i++)
                    ofe_buf_printf(&out, "%s%.*s", i ? "|" : "", (int)p.argv[i].len,
                                   buf + p.argv[i].off);
                ofe_buf_puts(&out, "\n");
            }
        }
        /* Drop what the parser no longer needs, as the server does. */
        size_t keep = resp_keep_from(&p);
        memmove(buf, buf + keep, have - keep);
        have -= keep;
        resp_shift(&p, keep);
        if (fed == len)
            break;
    }
done:
    free(buf);
    resp_parser_fini(&p);
    char *s = ofe_buf_detach(&out, NULL);
    return s;
}

static const char session[] = "*1\r\n$4\r\nPING\r\n"
                              "*3\r\n$4\r\nXADD\r\n$1\r\ns\r\n$0\r\n\r\n"
                              "PING\r\n"
                              "ECHO \"a b\\x41\\n\" 'it\\'s' plain\r\n"
                              "\r\n"
                              "*0\r\n*-1\r\n"
                              "*2\r\n$4\r\nECHO\r\n$12\r\nbin\r\n\x00"
                              "ary\xff..\r\n"
                              "  SPACED   args  \n";

static void test_split_anywhere(void **state)
{
    (void)state;
    size_t len = sizeof(session) - 1;
    char *whole = parse_all(session, len, 0, 1 << 20);
    assert_string_equal(whole, "PING\n"
                               "XADD|s|\n"
                               "PING\n"
                               "ECHO|a bA\n|it's|plain\n"
                               "ECHO|bin\r\n\n"
                               "SPACED|args\n");
    for (size_t step = 1; step < len; step++) {
        char *s = parse_all(session, len, step, 1 << 20);
        assert_string_equal(s, whole);
        free(s);
    }
    free(whole);
}

static void check_error(const char *in, const char *want)
{
    char *s = parse_all(in, strlen(in), 0, 1 << 20);
    char exp[256];
    snprintf(exp, sizeof(exp), "ERR:%s\n", want);
    if (!strstr(s, exp))
        fail_msg("input %s: got '%s', want '%s'", in, s, exp);
    free(s);
}

static void test_protocol_errors(void **state)
{
    (void)state;
    check_error("*abc\r\n", "Protocol error: invalid multibulk length");
    check_error("*3000000000\r\n", "Protocol error: invalid multibulk length");
    check_error("*2000\r\n", "Protocol error: invalid multibulk length"); /* over max_args */
    check_error("*1\r\n:1\r\n", "Protocol error: expected '$', got ':'");
    check_error("*1\r\n$-1\r\n", "Protocol error: invalid bulk length");
    check_error("*1\r\n$abc\r\n", "Protocol error: invalid bulk length");
    check_error("*1\r\n$01\r\n", "Protocol error: invalid bulk length");
    check_error("*1\r\n$600000000\r\n", "Protocol error: invalid bulk length");
    check_error("ECHO \"open\r\n", "Protocol error: unbalanced quotes in request");
    check_error("ECHO \"a\"b\r\n", "Protocol error: unbalanced quotes in request");
    /* Lines without an end are bounded. */
    char *big = malloc(70000);
    memset(big, 'a', 69999);
    big[69999] = '\0';
    check_error(big, "Protocol error: too big inline request");
    big[0] = '*';
    check_error(big, "Protocol error: too big mbulk count string");
    memcpy(big, "*1\r\n$", 5);
    check_error(big, "Protocol error: too big bulk count string");
    free(big);
}

static void test_unauthenticated_limits(void **state)
{
    (void)state;
    struct resp_parser p;
    resp_parser_init(&p, 1000, 1 << 20);
    p.unauthenticated = true;
    char a[] = "*11\r\n";
    const char *err = NULL;
    assert_int_equal(resp_parse(&p, a, strlen(a), &err), RESP_ERR);
    assert_string_equal(err, "Protocol error: unauthenticated multibulk length");
    resp_parser_fini(&p);
    resp_parser_init(&p, 1000, 1 << 20);
    p.unauthenticated = true;
    char b[] = "*2\r\n$4\r\nAUTH\r\n$16385\r\n";
    assert_int_equal(resp_parse(&p, b, strlen(b), &err), RESP_ERR);
    assert_string_equal(err, "Protocol error: unauthenticated bulk length");
    resp_parser_fini(&p);
}

static void test_oversize_is_discarded(void **state)
{
    (void)state;
    /* An argument over max_arg_len is skipped without being kept; the
     * command is flagged and the next one parses normally. */
    struct ofe_buf in = OFE_BUF_INIT;
    ofe_buf_puts(&in, "*3\r\n$4\r\nXADD\r\n$1\r\ns\r\n$5000\r\n");
    for (int i = 0; i < 5000; i++)
        ofe_buf_putc(&in, 'z');
    ofe_buf_puts(&in, "\r\n*1\r\n$4\r\nPING\r\n");
    for (size_t step = 0; step < 3000; step += 997) {
        char *s = parse_all(in.data, in.len, step, 4096);
        assert_string_equal(s, "!oversize 5000\nPING\n");
        free(s);
    }
    ofe_buf_fini(&in);
}

static void test_integers(void **state)
{
    (void)state;
    long long v;
    assert_true(resp_str2ll("0", 1, &v) && v == 0);
    assert_true(resp_str2ll("-9223372036854775808", 20, &v) && v == (-9223372036854775807LL - 1));
    assert_true(resp_str2ll("9223372036854775807", 19, &v));
    assert_false(resp_str2ll("9223372036854775808", 19, &v));
    assert_false(resp_str2ll("-0", 2, &v));
    assert_false(resp_str2ll("01", 2, &v));
    assert_false(resp_str2ll("+1", 2, &v));
    assert_false(resp_str2ll(" 1", 2, &v));
    assert_false(resp_str2ll("", 0, &v));
    assert_false(resp_str2ll("-", 1, &v));
    unsigned long long u;
    /* Redis's string2ull falls back to strtoull: these parse there. */
    assert_true(resp_str2ull("18446744073709551615", 20, &u) && u == 18446744073709551615ULL);
    assert_true(resp_str2ull("01", 2, &u) && u == 1);
    assert_true(resp_str2ull("+5", 2, &u) && u == 5);
    assert_false(resp_str2ull("-1", 2, &u));
    assert_false(resp_str2ull("18446744073709551616", 20, &u));
    assert_false(resp_str2ull("1x", 2, &u));
    char b[24];
    b[resp_u64toa(b, 18446744073709551615ULL)] = '\0';
    assert_string_equal(b, "18446744073709551615");
    b[resp_i64toa(b, -42)] = '\0';
    assert_string_equal(b, "-42");
}

static void test_replies(void **state)
{
    (void)state;
    struct ofe_buf o = OFE_BUF_INIT;
    resp_add_simple(&o, "OK");
    resp_add_error(&o, "bad\r\nthing");
    resp_add_error(&o, "-NOGROUP no group");
    resp_add_int(&o, -7);
    resp_add_bulk(&o, "a\0b", 3);
    resp_add_null(&o);
    resp_add_null_array(&o);
    resp_add_array(&o, 2);
    resp_add_bulk_ll(&o, 12);
    assert_int_equal(o.len, strlen("+OK\r\n-ERR bad  thing\r\n-NOGROUP no group\r\n:-7\r\n") + 9 +
                                strlen("$-1\r\n*-1\r\n*2\r\n$2\r\n12\r\n"));
    assert_memory_equal(o.data,
                        "+OK\r\n-ERR bad  thing\r\n-NOGROUP no group\r\n:-7\r\n$3\r\na\0b\r\n"
                        "$-1\r\n*-1\r\n*2\r\n$2\r\n12\r\n",
                        o.len);
    ofe_buf_fini(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_unauthenticated_limits),
        cmocka_unit_test(test_oversize_is_discarded),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
