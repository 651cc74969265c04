/* Trigger conditions (common/condition.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ofe/condition.h"
#include "ofe/err.h"

static const char *const names[] = {"a", "b", "c", "event-a", "in_2", "9x"};
#define NNAMES 6

static struct ofe_condition *compile(const char *expr)
{
    struct ofe_condition *c = NULL;
    char err[256] = "";
    int rc = ofe_condition_compile(expr, names, NNAMES, &c, NULL, err, sizeof(err));
    if (rc)
        print_error("'%s': %s\n", expr, err);
    assert_int_equal(rc, 0);
    return c;
}

static char *canon(const char *expr)
{
    static char out[512];
    struct ofe_condition *c = compile(expr);
    struct ofe_buf b = OFE_BUF_INIT;
    assert_int_equal(ofe_condition_format(c, names, &b), 0);
    snprintf(out, sizeof(out), "%s", b.data);
    ofe_buf_fini(&b);
    ofe_condition_destroy(c);
    return out;
}

static void test_precedence(void **state)
{
    (void)state;
    assert_string_equal(canon("a || b && c"), "(a || (b && c))");
    assert_string_equal(canon("a && b || c"), "((a && b) || c)");
    assert_string_equal(canon("!a && b"), "(!a && b)");
    assert_string_equal(canon("!(a && b)"), "!(a && b)");
    assert_string_equal(canon("a && b && c"), "((a && b) && c)");
    assert_string_equal(canon("a and b or not c"), "((a && b) || !c)");
    assert_string_equal(canon("a AND b OR NOT c"), "((a && b) || !c)");
    assert_string_equal(canon("event-a&&in_2"), "(event-a && in_2)");
    assert_string_equal(canon("  (((9x)))  "), "9x");
    assert_string_equal(canon("!!a"), "!!a");
    assert_string_equal(canon("a\n&& b"), "(a && b)");
}

static bool from_array(void *ctx, size_t i)
{
    return ((const bool *)ctx)[i];
}

static void test_eval(void **state)
{
    (void)state;
    struct ofe_condition *c = compile("a && (b || !c)");
    /* Every combination of a, b, c, through both evaluators. */
    for (int m = 0; m < 8; m++) {
        bool v[NNAMES] = {m & 1, (m >> 1) & 1, (m >> 2) & 1, 0, 0, 0};
        uint64_t bits = (uint64_t)m;
        bool want = v[0] && (v[1] || !v[2]);
        assert_int_equal(ofe_condition_eval(c, from_array, v), want);
        assert_int_equal(ofe_condition_eval_bits(c, &bits), want);
    }
    assert_true(ofe_condition_uses(c, 0));
    assert_true(ofe_condition_uses(c, 2));
    assert_false(ofe_condition_uses(c, 3));
    assert_false(ofe_condition_uses(c, 99));
    ofe_condition_destroy(c);
    ofe_condition_destroy(NULL);
}

static void test_many_inputs(void **state)
{
    (void)state;
    /* Inputs beyond the first 64-bit word. */
    char nm[100][8];
    const char *nv[100];
    for (int i = 0; i < 100; i++) {
        snprintf(nm[i], sizeof(nm[i]), "i%d", i);
        nv[i] = nm[i];
    }
    struct ofe_condition *c = NULL;
    assert_int_equal(ofe_condition_compile("i1 && i99", nv, 100, &c, NULL, NULL, 0), 0);
    uint64_t bits[2] = {0, 0};
    assert_false(ofe_condition_eval_bits(c, bits));
    bits[0] = 2;
    bits[1] = 1ULL << (99 - 64);
    assert_true(ofe_condition_eval_bits(c, bits));
    ofe_condition_destroy(c);
}

static void bad(const char *expr, int code, size_t off, const char *want)
{
    struct ofe_condition *c = NULL;
    size_t eo = 999;
    char err[256] = "";
    int rc = ofe_condition_compile(expr, names, NNAMES, &c, &eo, err, sizeof(err));
    if (rc != code || eo != off || !strstr(err, want))
        print_error("'%s': rc %d off %zu '%s'; want rc %d off %zu '%s'\n", expr, rc, eo, err, code,
                    off, want);
    assert_int_equal(rc, code);
    assert_null(c);
    assert_int_equal(eo, off);
    assert_non_null(strstr(err, want));
}

static void test_errors(void **state)
{
    (void)state;
    bad("", OFE_EPARSE, 0, "empty condition");
    bad("   ", OFE_EPARSE, 0, "empty condition");
    bad("a && d", OFE_ENOENT, 5,
        "at character 6: unknown input 'd' (inputs: a, b, c, event-a, in_2, 9x)");
    bad("a &&", OFE_EPARSE, 4, "found the end of the condition");
    bad("a & b", OFE_EPARSE, 2, "expected '&&'");
    bad("a | b", OFE_EPARSE, 2, "expected '||'");
    bad("a b", OFE_EPARSE, 2, "expected '&&', '||' or the end of the condition, found 'b'");
    bad("(a && b", OFE_EPARSE, 7, "expected ')' to close the '(' at character 1");
    bad("a)", OFE_EPARSE, 1, "unmatched ')'");
    bad("a - b", OFE_EPARSE, 2, "no minus operator");
    bad("a == b", OFE_EPARSE, 2, "unexpected character '='");
    bad("and", OFE_EPARSE, 0, "found 'and'");
    bad("a && || b", OFE_EPARSE, 5, "found '||'");
    bad("()", OFE_EPARSE, 1, "found ')'");
    bad("a && \xc3\xa9", OFE_EPARSE, 5, "unexpected byte 0xc3");
    char deep[300];
    memset(deep, '(', 100);
    deep[100] = 'a';
    memset(deep + 101, ')', 100);
    deep[201] = '\0';
    bad(deep, OFE_EPARSE, 64, "nested deeper than 64");
    char nots[200];
    memset(nots, '!', 150);
    strcpy(nots + 150, "a");
    bad(nots, OFE_EPARSE, 64, "nested deeper than 64");
    static char longexpr[OFE_CONDITION_MAX_LEN + 10];
    memset(longexpr, 'a', sizeof(longexpr) - 1);
    bad(longexpr, OFE_EPARSE, 0, "longer than 4096");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_many_inputs),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
