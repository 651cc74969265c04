/* Unit tests of the CESQL engine beyond what the TCK covers: mixed
 * AND/OR/XOR, precedence, deep nesting and its limit, Unicode, 32-bit
 * overflow, error collection, the filter (fail-fast) form, LIKE corner
 * cases, custom functions, compile errors with their position, scratch
 * limits, allocation-free evaluation and concurrent use. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ofe/ce.h"
#include "ofe/cesql.h"
#include "ofe/err.h"

/* ---- Counting allocator (not under sanitizers, which own malloc) ------- */

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define SANITIZED 1
#endif
#endif

#ifndef SANITIZED
static __thread long allocs;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
    allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t m)
{
    allocs++;
    return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n)
{
    allocs++;
    return __libc_realloc(p, n);
}
void free(void *p)
{
    __libc_free(p);
}
#endif

/* ---- Helpers ------------------------------------------------------------ */

static struct ofe_ce *event_json(const char *json)
{
    struct ofe_ce *ev = NULL;
    char err[256];
    int rc = ofe_ce_json_decode(json, strlen(json), &ev, err, sizeof(err));
    if (rc)
        fail_msg("event: %s", err);
    return ev;
}

/* An event with typed extensions for the tests. */
static struct ofe_ce *test_event(void)
{
    return event_json("{\"specversion\":\"1.0\",\"id\":\"id-1\",\"source\":\"/orders/eu\","
                      "\"type\":\"com.example.order\",\"subject\":\"Straße 5\","
                      "\"time\":\"2024-05-01T10:00:00Z\",\"myint\":2147483647,"
                      "\"myneg\":-2147483648,\"mybool\":true,\"myzero\":0,"
                      "\"mystr\":\"日本語\",\"num\":\"42\"}");
}

static struct ofe_cesql_result run(const char *text, const struct ofe_ce *ev,
                                   const struct ofe_cesql_engine *eng)
{
    struct ofe_cesql *expr = NULL;
    char err[256];
    int rc = ofe_cesql_compile(eng, text, &expr, err, sizeof(err));
    if (rc)
        fail_msg("compile `%s`: %s", text, err);
    static struct ofe_cesql_ctx ctx; /* results stay readable after the call */
    static bool init;
    if (!init) {
        ofe_cesql_ctx_init(&ctx);
        init = true;
    }
    struct ofe_cesql_result res;
    ofe_cesql_eval(expr, ev, &ctx, &res);
    /* Keep strings valid: copy into a static buffer. */
    static char copy[1 << 16];
    if (res.value.type == OFE_CESQL_T_STRING && res.value.len < sizeof(copy)) {
        memcpy(copy, res.value.s, res.value.len);
        res.value.s = copy;
    }
    ofe_cesql_destroy(expr);
    return res;
}

#define ERR_NONE OFE_CESQL_OK

static void check_bool(const char *text, const struct ofe_ce *ev, bool want, enum ofe_cesql_err err)
{
    struct ofe_cesql_result r = run(text, ev, NULL);
    if (r.value.type != OFE_CESQL_T_BOOLEAN || (r.value.i != 0) != want || r.error != err)
        fail_msg("`%s`: want %s/%s, got type %s value %d error %s", text, want ? "true" : "false",
                 ofe_cesql_errname(err) ? ofe_cesql_errname(err) : "none",
                 ofe_cesql_typename(r.value.type), (int)r.value.i,
                 ofe_cesql_errname(r.error) ? ofe_cesql_errname(r.error) : "none");
}

static void check_int(const char *text, const struct ofe_ce *ev, int32_t want,
                      enum ofe_cesql_err err)
{
    struct ofe_cesql_result r = run(text, ev, NULL);
    if (r.value.type != OFE_CESQL_T_INTEGER || r.value.i != want || r.error != err)
        fail_msg("`%s`: want %d/%s, got type %s value %d error %s", text, (int)want,
                 ofe_cesql_errname(err) ? ofe_cesql_errname(err) : "none",
                 ofe_cesql_typename(r.value.type), (int)r.value.i,
                 ofe_cesql_errname(r.error) ? ofe_cesql_errname(r.error) : "none");
}

static void check_str(const char *text, const struct ofe_ce *ev, const char *want,
                      enum ofe_cesql_err err)
{
    struct ofe_cesql_result r = run(text, ev, NULL);
    if (r.value.type != OFE_CESQL_T_STRING || r.value.len != strlen(want) ||
        memcmp(r.value.s, want, r.value.len) != 0 || r.error != err)
        fail_msg("`%s`: want \"%s\"/%s, got type %s \"%.*s\" error %s", text, want,
                 ofe_cesql_errname(err) ? ofe_cesql_errname(err) : "none",
                 ofe_cesql_typename(r.value.type),
                 r.value.type == OFE_CESQL_T_STRING ? (int)r.value.len : 0,
                 r.value.type == OFE_CESQL_T_STRING ? r.value.s : "",
                 ofe_cesql_errname(r.error) ? ofe_cesql_errname(r.error) : "none");
}

/* Compiling must fail with a message containing `want`. */
static void check_parse_error(const char *text, const char *want)
{
    struct ofe_cesql *expr = NULL;
    char err[256] = "";
    int rc = ofe_cesql_compile(NULL, text, &expr, err, sizeof(err));
    if (rc != OFE_EPARSE || expr)
        fail_msg("`%.60s`: compiled (rc %d), want a parse error", text, rc);
    if (!strstr(err, want))
        fail_msg("`%.60s`: message \"%s\" lacks \"%s\"", text, err, want);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *mid,
                    const char *tail_unit, const char *tail)
{
    size_t len =
        strlen(head) + n * (strlen(unit) + strlen(tail_unit)) + strlen(mid) + strlen(tail) + 1;
    char *s = malloc(len);
    assert_non_null(s);
    char *p = s;
    p += sprintf(p, "%s", head);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s", unit);
    p += sprintf(p, "%s", mid);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s", tail_unit);
    sprintf(p, "%s", tail);
    return s;
}

/* ---- Tests -------------------------------------------------------------- */

static void test_logic_mixed(void **state)
{
    /* One precedence level, left to right: ((a op b) op c). */
    check_bool("TRUE OR FALSE AND FALSE", NULL, false, ERR_NONE);
    check_bool("FALSE AND FALSE OR TRUE", NULL, true, ERR_NONE);
    check_bool("TRUE OR TRUE XOR TRUE", NULL, false, ERR_NONE);
    check_bool("TRUE XOR TRUE OR TRUE", NULL, true, ERR_NONE);
    check_bool("FALSE XOR TRUE AND FALSE", NULL, false, ERR_NONE);
    check_bool("TRUE AND FALSE XOR TRUE", NULL, true, ERR_NONE);
    check_bool("true or false and false xor true", NULL, true, ERR_NONE);
    /* Short-circuits inside a chain skip the erroneous operand. */
    check_bool("FALSE AND (1 / 0 = 0) OR TRUE", NULL, true, ERR_NONE);
    check_bool("TRUE OR (1 / 0 = 0) AND FALSE", NULL, false, ERR_NONE);
    check_bool("TRUE OR (1 / 0 = 0) XOR TRUE", NULL, false, ERR_NONE);
    /* An error spoils the rest of the chain, even a later OR TRUE. */
    check_bool("missing OR TRUE", NULL, false, OFE_CESQL_EMISSINGATTR);
    check_bool("FALSE OR (1 / 0 = 0) OR TRUE", NULL, false, OFE_CESQL_EMATH);
    check_bool("TRUE AND missing XOR TRUE", NULL, false, OFE_CESQL_EMISSINGATTR);
    /* Comparisons bind tighter than the logic operators. */
    check_bool("1 = 1 AND 2 = 2 XOR 3 = 4", NULL, true, ERR_NONE);
    /* With attributes (no constant folding). */
    struct ofe_ce *ev = test_event();
    check_bool("mybool OR myzero = 1 AND myzero = 1", ev, false, ERR_NONE);
    check_bool("mybool AND myzero = 1 OR mybool", ev, true, ERR_NONE);
    check_bool("mybool XOR mybool OR myzero = 0 AND mybool", ev, true, ERR_NONE);
    check_bool("NOT mybool OR missing", ev, false, OFE_CESQL_EMISSINGATTR);
    check_bool("mybool OR missing", ev, true, ERR_NONE);
    check_bool("NOT mybool AND missing", ev, false, ERR_NONE);
    ofe_ce_unref(ev);
}

static void test_precedence(void **state)
{
    check_int("2 + 3 * 4", NULL, 14, ERR_NONE);
    check_int("10 - 4 - 3", NULL, 3, ERR_NONE);
    check_int("100 / 10 / 5", NULL, 2, ERR_NONE);
    check_int("7 % 4 * 2", NULL, 6, ERR_NONE);
    check_int("-7 / 2", NULL, -3, ERR_NONE); /* truncated */
    check_int("-7 % 2", NULL, -1, ERR_NONE); /* sign of the dividend */
    check_int("7 % -2", NULL, 1, ERR_NONE);
    check_int("4-1", NULL, 3, ERR_NONE);
    check_int("4 -1", NULL, 3, ERR_NONE);
    check_int("-4 - -1", NULL, -3, ERR_NONE);
    check_int("- 4", NULL, -4, ERR_NONE);
    check_int("+4 + +1", NULL, 5, ERR_NONE);
    check_int("--4", NULL, 4, ERR_NONE);
    check_bool("1 + 2 = 3", NULL, true, ERR_NONE);
    check_bool("2 * 3 > 5 AND 1 < 2", NULL, true, ERR_NONE);
    /* Unary before LIKE/IN before binary operators (spec 3.6). */
    check_bool("NOT TRUE = FALSE", NULL, true, ERR_NONE);
    check_bool("'a' LIKE 'a' = TRUE", NULL, true, ERR_NONE);
    check_bool("-1 IN (-1, 2)", NULL, true, ERR_NONE);
    check_bool("1 + 1 IN (1) = 2", NULL, true, ERR_NONE); /* 1 + (1 IN (1)) = 2 */
    check_bool("(1 = 1) = (2 = 2)", NULL, true, ERR_NONE);
    /* Case-insensitive keywords, identifiers and function names. */
    struct ofe_ce *ev = test_event();
    check_bool("exists ID and Id = 'id-1' aNd TYPE like 'com.%'", ev, true, ERR_NONE);
    check_str("lower('ABC')", ev, "abc", ERR_NONE);
    check_str("Concat_WS('-', 'a', 'b')", ev, "a-b", ERR_NONE);
    ofe_ce_unref(ev);
}

static void test_deep_nesting(void **state)
{
    char *s = repeat("", "(", OFE_CESQL_MAX_DEPTH - 2, "1", ")", "");
    check_int(s, NULL, 1, ERR_NONE);
    free(s);
    s = repeat("", "(", OFE_CESQL_MAX_DEPTH + 5, "1", ")", "");
    check_parse_error(s, "nested too deeply");
    free(s);
    /* Hostile depths fail cleanly instead of exhausting the stack. */
    s = repeat("", "(", 200000, "1", ")", "");
    check_parse_error(s, "nested too deeply");
    free(s);
    s = repeat("", "NOT ", 200000, "TRUE", "", "");
    check_parse_error(s, "nested too deeply");
    free(s);
    s = repeat("", "-", 200000, "1", "", "");
    check_parse_error(s, "nested too deeply");
    free(s);
    s = repeat("", "ABS(", 200000, "1", ")", "");
    check_parse_error(s, "nested too deeply");
    free(s);
    s = repeat("", "NOT ", 100, "TRUE", "", "");
    check_bool(s, NULL, true, ERR_NONE);
    free(s);
    /* A long chain of + nests to the left: bounded too, unless it is
     * constant (folded as it is parsed). */
    struct ofe_ce *ev = test_event();
    s = repeat("1", " + 1", 100000, "", "", "");
    check_int(s, NULL, 100001, ERR_NONE);
    free(s);
    s = repeat("myzero", " + 1", 100, "", "", "");
    check_int(s, ev, 100, ERR_NONE);
    free(s);
    s = repeat("myzero", " + 1", 100000, "", "", "");
    check_parse_error(s, "nested too deeply");
    free(s);
    /* AND/OR chains and IN sets of any length are one level. */
    s = repeat("myzero = 1", " OR myzero = 1", 20000, "", "", " OR mybool");
    check_bool(s, ev, true, ERR_NONE);
    free(s);
    s = repeat("myint IN (0", ", 1", 20000, "", "", ", 2147483647)");
    check_bool(s, ev, true, ERR_NONE);
    free(s);
    /* Calls and IN sets count one level each. */
    s = repeat("", "ABS(", OFE_CESQL_MAX_DEPTH - 8, "myzero", ")", "");
    check_int(s, ev, 0, ERR_NONE);
    free(s);
    s = repeat("", "myzero IN (", OFE_CESQL_MAX_DEPTH - 8, "0", ")", "");
    check_bool(s, ev, false, ERR_NONE); /* innermost is TRUE, cast to Integer 1 != 0 */
    free(s);
    /* Deep nesting inside one level of a chain still counts. */
    s = repeat("mybool AND ", "(", 150, "TRUE", ")", "");
    check_parse_error(s, "nested too deeply");
    free(s);
    ofe_ce_unref(ev);
}

static void test_unicode(void **state)
{
    struct ofe_ce *ev = test_event();
    check_int("LENGTH('héllo')", NULL, 5, ERR_NONE);
    check_int("LENGTH('日本語')", NULL, 3, ERR_NONE);
    check_int("LENGTH('😀a')", NULL, 2, ERR_NONE);
    check_int("LENGTH(mystr)", ev, 3, ERR_NONE);
    check_int("LENGTH(subject)", ev, 8, ERR_NONE);
    check_int("LENGTH('\xff\xfe')", NULL, 2, ERR_NONE); /* stray bytes count one each */
    check_bool("mystr LIKE '日_語'", ev, true, ERR_NONE);
    check_bool("mystr LIKE '___'", ev, true, ERR_NONE);
    check_bool("mystr LIKE '__'", ev, false, ERR_NONE);
    check_bool("mystr LIKE '____'", ev, false, ERR_NONE);
    check_bool("mystr LIKE '%語'", ev, true, ERR_NONE);
    check_bool("mystr LIKE '_本%'", ev, true, ERR_NONE);
    check_bool("mystr LIKE '%_'", ev, true, ERR_NONE);
    check_bool("'😀x' LIKE '_x'", NULL, true, ERR_NONE);
    check_bool("'x😀' LIKE 'x_'", NULL, true, ERR_NONE);
    check_bool("'aé日b' LIKE 'a_日_'", NULL, true, ERR_NONE);
    check_bool("'aé日b' LIKE 'a%_b'", NULL, true, ERR_NONE);
    check_bool("subject LIKE 'Stra_e%'", ev, true, ERR_NONE);
    check_str("LEFT(mystr, 2)", ev, "日本", ERR_NONE);
    check_str("RIGHT(mystr, 1)", ev, "語", ERR_NONE);
    check_str("SUBSTRING(mystr, -2)", ev, "本語", ERR_NONE);
    check_str("SUBSTRING(mystr, 2, 1)", ev, "本", ERR_NONE);
    check_str("SUBSTRING(mystr, 4)", ev, "", OFE_CESQL_EFUNC);
    check_str("UPPER(subject)", ev, "STRAßE 5", ERR_NONE);
    check_str("LOWER('ÀÉÎÕÜ ĀŁŽ ΑΒΓΣ ПРИВЕТ Ё ԱԲ ＡＢ İ')", NULL,
              "àéîõü āłž αβγσ привет ё աբ ａｂ i", ERR_NONE);
    check_str("UPPER('àéîõüÿ āłž αβγσς привет ё աբ ａｂ ı µ')", NULL,
              "ÀÉÎÕÜŸ ĀŁŽ ΑΒΓΣΣ ПРИВЕТ Ё ԱԲ ＡＢ I Μ", ERR_NONE);
    check_str("LOWER('x\xffY')", NULL, "x\xffy", ERR_NONE);
    check_str("TRIM('\t\n \xc2\xa0 a b \xe3\x80\x80\xe2\x80\x83')", NULL, "a b", ERR_NONE);
    check_str("TRIM('\xe2\x80\x8b"
              "a')",
              NULL,
              "\xe2\x80\x8b"
              "a",
              ERR_NONE); /* ZWSP is not White_Space */
    check_str("TRIM('   ')", NULL, "", ERR_NONE);
    ofe_ce_unref(ev);
}

static void test_overflow(void **state)
{
    struct ofe_ce *ev = test_event();
    check_int("-2147483648", NULL, INT32_MIN, ERR_NONE);
    check_int("2147483647", NULL, INT32_MAX, ERR_NONE);
    check_parse_error("2147483648", "column 1: integer literal 2147483648 is out of the 32-bit");
    check_parse_error("-2147483649", "out of the 32-bit range");
    check_parse_error("1 + 99999999999999999999", "column 5: integer literal");
    check_int("2147483646 + 1", NULL, INT32_MAX, ERR_NONE);
    check_int("2147483647 + 1", NULL, 0, OFE_CESQL_EMATH);
    check_int("-2147483648 - 1", NULL, 0, OFE_CESQL_EMATH);
    check_int("2147483647 * 2", NULL, 0, OFE_CESQL_EMATH);
    check_int("-2147483648 / -1", NULL, 0, OFE_CESQL_EMATH);
    check_int("-2147483648 % -1", NULL, 0, ERR_NONE);
    check_int("-(-2147483648)", NULL, 0, OFE_CESQL_EMATH);
    check_int("- -2147483648", NULL, 0, OFE_CESQL_EMATH);
    check_int("ABS(-2147483648)", NULL, INT32_MAX, OFE_CESQL_EMATH);
    check_int("ABS(-2147483647)", NULL, INT32_MAX, ERR_NONE);
    check_int("INT('2147483647')", NULL, INT32_MAX, ERR_NONE);
    check_int("INT('-2147483648')", NULL, INT32_MIN, ERR_NONE);
    check_int("INT('+17')", NULL, 17, ERR_NONE);
    check_int("INT('2147483648')", NULL, 0, OFE_CESQL_ECAST);
    check_int("INT('-2147483649')", NULL, 0, OFE_CESQL_ECAST);
    check_int("INT(' 1')", NULL, 0, OFE_CESQL_ECAST);
    check_int("INT('')", NULL, 0, OFE_CESQL_ECAST);
    /* The same at run time, on attributes. */
    check_int("myint + 1", ev, 0, OFE_CESQL_EMATH);
    check_int("myint + 0", ev, INT32_MAX, ERR_NONE);
    check_int("myneg - 1", ev, 0, OFE_CESQL_EMATH);
    check_int("myint * myint", ev, 0, OFE_CESQL_EMATH);
    check_int("myneg / -1", ev, 0, OFE_CESQL_EMATH);
    check_int("-myneg", ev, 0, OFE_CESQL_EMATH);
    check_int("-myint", ev, -INT32_MAX, ERR_NONE);
    check_int("ABS(myneg)", ev, INT32_MAX, OFE_CESQL_EMATH);
    check_int("myint / myzero", ev, 0, OFE_CESQL_EMATH);
    check_bool("myint + 1 > 0", ev, false, OFE_CESQL_EMATH);
    check_bool("myint = 2147483647 AND myneg = -2147483648", ev, true, ERR_NONE);
    ofe_ce_unref(ev);
}

static void test_casts_and_types(void **state)
{
    struct ofe_ce *ev = test_event();
    /* = != <>: the right operand's type decides. */
    check_bool("num = 42", ev, true, ERR_NONE);
    check_bool("42 = num", ev, true, ERR_NONE);
    check_bool("myint = '2147483647'", ev, true, ERR_NONE);
    check_bool("1 = 'abc'", NULL, false, ERR_NONE);
    check_bool("'abc' = 1", NULL, false, OFE_CESQL_ECAST);
    check_bool("TRUE = 'yes'", NULL, false, ERR_NONE);
    check_bool("'yes' = TRUE", NULL, false, OFE_CESQL_ECAST);
    check_bool("mybool = 'true'", ev, true, ERR_NONE);
    check_bool("mybool <> FALSE", ev, true, ERR_NONE);
    check_bool("'TRUE' = mybool", ev, true, ERR_NONE);
    /* < <= > >= are Integer only. */
    check_bool("'10' > '9'", NULL, true, ERR_NONE);
    check_bool("'a' < 1", NULL, false, OFE_CESQL_ECAST);
    check_bool("TRUE > FALSE", NULL, true, ERR_NONE);
    /* NOT casts to Boolean, including Integer -> Boolean (spec 3.7). */
    check_bool("NOT 10", NULL, false, ERR_NONE);
    check_bool("NOT 0", NULL, true, ERR_NONE);
    check_bool("NOT myzero", ev, true, ERR_NONE);
    check_bool("NOT 'maybe'", NULL, false, OFE_CESQL_ECAST);
    /* IN casts the set to the left operand's type. */
    check_bool("'1' IN (1, 2)", NULL, true, ERR_NONE);
    check_bool("1 IN ('a', 1)", NULL, false, OFE_CESQL_ECAST);
    check_bool("myint IN (num, 2147483647)", ev, true, ERR_NONE);
    check_bool("num IN (myint, 42)", ev, true, ERR_NONE);
    check_bool("num NOT IN (myint, 41)", ev, true, ERR_NONE);
    check_bool("mybool IN ('TRUE')", ev, true, ERR_NONE);
    check_bool("mybool IN ('x')", ev, false, OFE_CESQL_ECAST);
    check_bool("id IN (missing, 'id-1')", ev, false, OFE_CESQL_EMISSINGATTR);
    check_bool("missing IN (1)", ev, false, OFE_CESQL_EMISSINGATTR);
    /* Spec attributes of other types are Strings; typed extensions keep
     * their type. */
    check_str("time", ev, "2024-05-01T10:00:00Z", ERR_NONE);
    check_str("source", ev, "/orders/eu", ERR_NONE);
    check_int("myint", ev, INT32_MAX, ERR_NONE);
    check_bool("mybool", ev, true, ERR_NONE);
    check_str("STRING(myint)", ev, "2147483647", ERR_NONE);
    check_str("STRING(myneg)", ev, "-2147483648", ERR_NONE);
    check_str("STRING(mybool)", ev, "true", ERR_NONE);
    check_str("CONCAT(myint, mybool, myzero)", ev, "2147483647true0", ERR_NONE);
    check_bool("myint LIKE '2147%'", ev, true, ERR_NONE);
    check_bool("myneg LIKE '-2147483648'", ev, true, ERR_NONE);
    check_int("LENGTH(myint)", ev, 10, ERR_NONE);
    check_int("num * 2", ev, 84, ERR_NONE);
    check_int("INT(mybool) + 1", ev, 2, ERR_NONE);
    check_bool("BOOL('FaLsE')", NULL, false, ERR_NONE);
    check_bool("BOOL(num)", ev, false, OFE_CESQL_ECAST); /* String '42' is no Boolean */
    check_bool("BOOL(INT(num))", ev, true, ERR_NONE);
    /* EXISTS. */
    check_bool("EXISTS id AND EXISTS specversion", NULL, true, ERR_NONE); /* required: always */
    check_bool("EXISTS subject", NULL, false, ERR_NONE);
    check_bool("EXISTS subject AND EXISTS myint AND NOT EXISTS nope", ev, true, ERR_NONE);
    check_bool("EXISTS datacontenttype", ev, false, ERR_NONE);
    /* Strings. */
    check_str("'it\\'s'", NULL, "it's", ERR_NONE);
    check_str("\"say \\\"hi\\\"\"", NULL, "say \"hi\"", ERR_NONE);
    check_str("'a\\b'", NULL, "a\\b", ERR_NONE);
    check_str("'C:\\dir\\\\'", NULL, "C:\\dir\\", ERR_NONE); /* \\ is one backslash */
    check_bool("'it''s' = \"it's\" AND \"say \"\"hi\"\"\" = 'say \"hi\"'", NULL, true, ERR_NONE);
    check_str("'\\''", NULL, "'", ERR_NONE);
    check_str("'\\\\'", NULL, "\\", ERR_NONE);
    check_str("'a\"b'", NULL, "a\"b", ERR_NONE);
    check_str("'line\nbreak'", NULL, "line\nbreak", ERR_NONE);
    check_str("''", NULL, "", ERR_NONE);
    check_str("CONCAT_WS('-', 'a', 'b', '', 'c')", NULL, "a-b--c", ERR_NONE);
    check_str("CONCAT_WS('', 'a', 'b')", NULL, "ab", ERR_NONE);
    check_str("LEFT('abc', 0)", NULL, "", ERR_NONE);
    check_str("RIGHT('abc', 0)", NULL, "", ERR_NONE);
    check_str("SUBSTRING('abc', 3)", NULL, "c", ERR_NONE);
    check_str("SUBSTRING('abc', -3)", NULL, "abc", ERR_NONE);
    check_str("SUBSTRING('abc', 2, 0)", NULL, "", ERR_NONE);
    check_str("SUBSTRING('abc', 2, -1)", NULL, "", OFE_CESQL_EFUNC);
    check_str("SUBSTRING('', 1)", NULL, "", OFE_CESQL_EFUNC);
    check_str("LEFT(missing, 2)", NULL, "", OFE_CESQL_EMISSINGATTR);
    check_int("LENGTH(LEFT('abc', -1))", NULL, 0, OFE_CESQL_EFUNC);
    ofe_ce_unref(ev);
}

static void test_error_collection(void **state)
{
    struct ofe_ce *ev = test_event();
    struct ofe_cesql_result r = run("nope1 + nope2", ev, NULL);
    assert_int_equal(r.error, OFE_CESQL_EMISSINGATTR);
    assert_int_equal(r.nerrors, 2);
    assert_int_equal(r.value.type, OFE_CESQL_T_INTEGER);
    assert_int_equal(r.value.i, 0);
    r = run("INT('x') + nope + myint / myzero", ev, NULL);
    assert_int_equal(r.error, OFE_CESQL_ECAST);
    assert_int_equal(r.nerrors, 3);
    assert_int_equal(r.errmask, (1u << OFE_CESQL_ECAST) | (1u << OFE_CESQL_EMISSINGATTR) |
                                    (1u << OFE_CESQL_EMATH));
    r = run("NOFUNC(1) OR nope = 1", ev, NULL);
    assert_int_equal(r.error, OFE_CESQL_EMISSINGFN);
    assert_int_equal(r.nerrors, 2);
    /* Constant sub-expressions are folded once but still report their
     * error on every evaluation. */
    r = run("1 / 0 = 0 AND 1 / 0 = 0", NULL, NULL);
    assert_int_equal(r.error, OFE_CESQL_EMATH);
    assert_int_equal(r.value.i, 0);
    /* Unknown functions and arities are missingFunction at run time. */
    check_bool("NOFUNC(1)", NULL, false, OFE_CESQL_EMISSINGFN);
    check_bool("LENGTH('a', 'b')", NULL, false, OFE_CESQL_EMISSINGFN);
    check_bool("SUBSTRING('abc')", NULL, false, OFE_CESQL_EMISSINGFN);
    check_bool("ABS()", NULL, false, OFE_CESQL_EMISSINGFN);
    ofe_ce_unref(ev);
}

static void test_match(void **state)
{
    struct ofe_ce *ev = test_event();
    static const struct {
        const char *text;
        bool match;
        enum ofe_cesql_err err;
    } cases[] = {
        {"TRUE", true, ERR_NONE},
        {"FALSE", false, ERR_NONE},
        {"mybool", true, ERR_NONE},
        {"type = 'com.example.order' AND source LIKE '/orders/%' AND EXISTS subject", true,
         ERR_NONE},
        {"type = 'com.example.other'", false, ERR_NONE},
        {"1", false, OFE_CESQL_EGENERIC},      /* not a Boolean */
        {"'true'", false, OFE_CESQL_EGENERIC}, /* a String, even if it reads true */
        {"nope", false, OFE_CESQL_EMISSINGATTR},
        {"nope = 1 OR TRUE", false, OFE_CESQL_EMISSINGATTR},
        {"TRUE OR nope = 1", true, ERR_NONE}, /* short-circuit: never looked up */
        {"myint + 1 > 0", false, OFE_CESQL_EMATH},
        {"ABS(myneg) > 0", false, OFE_CESQL_EMATH}, /* a value with an error: no match */
        {"NOT 'x'", false, OFE_CESQL_ECAST},
        {"NOFUNC()", false, OFE_CESQL_EMISSINGFN},
        {"'x' = nope AND INT('y') = 1", false, OFE_CESQL_EMISSINGATTR}, /* the first error */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ofe_cesql *expr;
        char err[256];
        assert_int_equal(ofe_cesql_compile(NULL, cases[i].text, &expr, err, sizeof(err)), 0);
        enum ofe_cesql_err e = OFE_CESQL_EPARSE;
        bool m = ofe_cesql_match(expr, ev, &e);
        if (m != cases[i].match || e != cases[i].err)
            fail_msg("match `%s`: got %d/%s", cases[i].text, m,
                     ofe_cesql_errname(e) ? ofe_cesql_errname(e) : "none");
        /* The same through a caller's context, and with err NULL. */
        struct ofe_cesql_ctx ctx;
        ofe_cesql_ctx_init(&ctx);
        assert_int_equal(ofe_cesql_match_ctx(expr, ev, &ctx, NULL), cases[i].match);
        ofe_cesql_ctx_fini(&ctx);
        ofe_cesql_destroy(expr);
    }
    ofe_ce_unref(ev);
}

static void test_like(void **state)
{
    static const struct {
        const char *value, *pattern;
        bool match;
    } cases[] = {
        {"abc", "%", true},
        {"", "%", true},
        {"", "_", false},
        {"", "", true},
        {"a", "", false},
        {"abc", "%%c", true},
        {"abc", "a%%%", true},
        {"aXbXc", "%b%", true},
        {"abcabc", "%abc", true},
        {"abcab", "%abc", false},
        {"ab", "a%b%", true},
        {"aaab", "%a_b", true},
        {"ab", "%a_b", false},
        {"aab", "%a_b", true},
        {"mississippi", "%iss%ppi", true},
        {"mississippi", "m%ss%ss%", true},
        {"mississippi", "m%ss%ss%ss%", false},
        {"mississippi", "%s_s%", true},
        {"abcd", "_%_", true},
        {"a", "_%_", false},
        {"a%", "a\\%", true},
        {"ab", "a\\%", false},
        {"a_", "a\\_", true},
        {"ab", "a\\_", false},
        {"a\\b", "a\\\\b", true}, /* \\ in a pattern is one backslash */
        {"a\\b", "a\\b", true},   /* a backslash before another character is itself */
        {"a\\c\\", "a\\c%", true},
        {"a\\", "a\\\\", true}, /* '\\' in a literal is one backslash, a trailing one */
        {"/orders/eu", "/orders/%", true},
        {"/order/eu", "/orders/%", false},
        {"com.example.order", "com._xample.%der", true},
        {"ABC", "abc", false}, /* case sensitive */
    };
    struct ofe_cesql_ctx ctx;
    ofe_cesql_ctx_init(&ctx);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Value from an event attribute, so nothing is folded. */
        struct ofe_ce *ev = ofe_ce_new();
        char err[256], text[256];
        assert_non_null(ev);
        assert_int_equal(ofe_ce_set_str(ev, "x", OFE_CE_T_STRING, cases[i].value, err, sizeof(err)),
                         0);
        /* The pattern goes in a '...' literal: only ' would need escaping. */
        snprintf(text, sizeof(text), "x LIKE '%s'", cases[i].pattern);
        struct ofe_cesql *expr;
        assert_int_equal(ofe_cesql_compile(NULL, text, &expr, err, sizeof(err)), 0);
        struct ofe_cesql_result r;
        ofe_cesql_eval(expr, ev, &ctx, &r);
        if (r.value.type != OFE_CESQL_T_BOOLEAN || (r.value.i != 0) != cases[i].match || r.error)
            fail_msg("'%s' LIKE '%s': got %d", cases[i].value, cases[i].pattern, (int)r.value.i);
        ofe_cesql_destroy(expr);
        snprintf(text, sizeof(text), "x NOT LIKE '%s'", cases[i].pattern);
        assert_int_equal(ofe_cesql_compile(NULL, text, &expr, err, sizeof(err)), 0);
        ofe_cesql_eval(expr, ev, &ctx, &r);
        assert_int_equal(r.value.i != 0, !cases[i].match);
        ofe_cesql_destroy(expr);
        ofe_ce_unref(ev);
    }
    ofe_cesql_ctx_fini(&ctx);
    check_parse_error("x LIKE 123", "column 8: the pattern of LIKE must be a string literal");
    check_parse_error("x LIKE y", "must be a string literal");
    check_parse_error("x LIKE CONCAT('a', '%')", "must be a string literal");
}

static void test_compile_errors(void **state)
{
    check_parse_error("", "column 1: empty expression");
    check_parse_error("   ", "column 1: empty expression");
    check_parse_error("1 +", "column 4: expected a value");
    check_parse_error("TRUE AND (1 = 2", "column 16: expected ')' to close the '(' at column 10");
    check_parse_error("'abc", "column 1: unterminated string literal");
    check_parse_error("x = 'it\\'", "column 5: unterminated string literal");
    check_parse_error("1 # 2", "column 3: unexpected character '#'");
    check_parse_error("a b",
                      "column 3: unexpected 'b' after a complete expression (missing operator?)");
    check_parse_error("my_attr = 1", "column 1: 'my_attr' is not an attribute name");
    check_parse_error("x NOT = 1", "column 7: expected LIKE or IN after NOT");
    check_parse_error("NOT", "column 4: expected a value");
    check_parse_error("EXISTS 1", "column 8: EXISTS needs an attribute name");
    check_parse_error("x IN 1", "column 6: expected '(' after IN");
    check_parse_error("x IN ()", "column 7: expected a value");
    check_parse_error("x IN (1, 2", "column 11: expected ',' or ')' in the IN set");
    check_parse_error("ABS(1, )", "column 8: expected a value");
    check_parse_error("ABC(", "column 5:");
    check_parse_error("f1(2)", "column 1: 'f1' is not a function name");
    check_parse_error("1 ! 2", "column 3: '!' must be followed by '='");
    check_parse_error("x = \xc3\xa9", "column 5: unexpected byte 0xC3");
    check_parse_error("5abc = 1 AND -5abc = 1", "column 16: a number must not run into letters");
    check_parse_error("1 == 1", "column 4: expected a value");
    check_parse_error("lower('ABC') || ''", "column 14: unexpected character '|'");
    char longname[100];
    memset(longname, 'a', 80);
    strcpy(longname + 80, " = 1");
    check_parse_error(longname, "longer than 64 characters");
    /* A valid identifier that starts with a digit is an attribute name. */
    check_bool("1abc = 1", NULL, false, OFE_CESQL_EMISSINGATTR);
    /* The API contract of a failed compile. */
    struct ofe_cesql *expr = (struct ofe_cesql *)1;
    assert_int_equal(ofe_cesql_compile(NULL, "(", &expr, NULL, 0), OFE_EPARSE);
    assert_null(expr);
}

static void test_static_info(void **state)
{
    struct ofe_cesql *e;
    char err[128];
    assert_int_equal(ofe_cesql_compile(NULL, "1 + 2 * 3", &e, err, sizeof(err)), 0);
    assert_true(ofe_cesql_is_constant(e));
    assert_int_equal(ofe_cesql_result_type(e), OFE_CESQL_T_INTEGER);
    assert_string_equal(ofe_cesql_text(e), "1 + 2 * 3");
    ofe_cesql_destroy(e);
    assert_int_equal(ofe_cesql_compile(NULL, "id", &e, err, sizeof(err)), 0);
    assert_false(ofe_cesql_is_constant(e));
    assert_int_equal(ofe_cesql_result_type(e), OFE_CESQL_T_NONE);
    ofe_cesql_destroy(e);
    assert_int_equal(ofe_cesql_compile(NULL, "LOWER(id) IN ('a')", &e, err, sizeof(err)), 0);
    assert_int_equal(ofe_cesql_result_type(e), OFE_CESQL_T_BOOLEAN);
    ofe_cesql_destroy(e);
    assert_int_equal(ofe_cesql_compile(NULL, "CONCAT(id, 'x')", &e, err, sizeof(err)), 0);
    assert_int_equal(ofe_cesql_result_type(e), OFE_CESQL_T_STRING);
    ofe_cesql_destroy(e);
    assert_string_equal(ofe_cesql_errname(OFE_CESQL_EFUNC), "functionEvaluation");
    assert_string_equal(ofe_cesql_errname(OFE_CESQL_EMISSINGATTR), "missingAttribute");
    assert_null(ofe_cesql_errname(OFE_CESQL_OK));
    assert_null(ofe_cesql_errname((enum ofe_cesql_err)99));
    ofe_cesql_destroy(NULL);
    ofe_cesql_engine_destroy(NULL);
}

/* ---- Custom functions --------------------------------------------------- */

static int calls_double;

static enum ofe_cesql_err f_double(struct ofe_cesql_fnctx *fc, void *opaque,
                                   const struct ofe_cesql_value *a, size_t n,
                                   struct ofe_cesql_value *ret)
{
    calls_double++;
    ret->type = OFE_CESQL_T_INTEGER;
    int64_t v = (int64_t)a[0].i * 2;
    if (v > INT32_MAX || v < INT32_MIN) {
        ret->i = 0;
        return OFE_CESQL_EMATH;
    }
    ret->i = (int32_t)v;
    return OFE_CESQL_OK;
}

/* GREET(greeting, names...): "greeting a, b" with the opaque suffix. */
static enum ofe_cesql_err f_greet(struct ofe_cesql_fnctx *fc, void *opaque,
                                  const struct ofe_cesql_value *a, size_t n,
                                  struct ofe_cesql_value *ret)
{
    const char *suffix = opaque;
    size_t len = a[0].len + strlen(suffix);
    for (size_t i = 1; i < n; i++)
        len += 2 + a[i].len;
    char *d = ofe_cesql_fn_alloc(fc, len);
    ret->type = OFE_CESQL_T_STRING;
    if (!d) {
        ret->s = "";
        ret->len = 0;
        return OFE_CESQL_EFUNC;
    }
    size_t off = 0;
    memcpy(d, a[0].s, a[0].len);
    off += a[0].len;
    for (size_t i = 1; i < n; i++) {
        memcpy(d + off, i == 1 ? " " : ", ", i == 1 ? 1 : 2);
        off += i == 1 ? 1 : 2;
        memcpy(d + off, a[i].s, a[i].len);
        off += a[i].len;
    }
    memcpy(d + off, suffix, strlen(suffix));
    off += strlen(suffix);
    ret->s = d;
    ret->len = off;
    return OFE_CESQL_OK;
}

static enum ofe_cesql_err f_fails(struct ofe_cesql_fnctx *fc, void *opaque,
                                  const struct ofe_cesql_value *a, size_t n,
                                  struct ofe_cesql_value *ret)
{
    ret->type = OFE_CESQL_T_BOOLEAN;
    ret->i = 1;
    return OFE_CESQL_EFUNC;
}

static enum ofe_cesql_err f_badtype(struct ofe_cesql_fnctx *fc, void *opaque,
                                    const struct ofe_cesql_value *a, size_t n,
                                    struct ofe_cesql_value *ret)
{
    ret->type = OFE_CESQL_T_STRING; /* declared Integer */
    ret->s = "x";
    ret->len = 1;
    return OFE_CESQL_OK;
}

static void reg(struct ofe_cesql_engine *eng, const struct ofe_cesql_fndef *def, int want)
{
    char err[256] = "";
    int rc = ofe_cesql_engine_register(eng, def, err, sizeof(err));
    if (rc != want)
        fail_msg("register %s: rc %d (%s), want %d", def->name, rc, err, want);
    if (rc && !err[0])
        fail_msg("register %s: no message", def->name);
}

static struct ofe_cesql_result run_eng(const struct ofe_cesql_engine *eng, const char *text,
                                       const struct ofe_ce *ev)
{
    return run(text, ev, eng);
}

static void test_custom_functions(void **state)
{
    struct ofe_cesql_engine *eng = ofe_cesql_engine_new();
    assert_non_null(eng);
    const enum ofe_cesql_type I = OFE_CESQL_T_INTEGER, S = OFE_CESQL_T_STRING,
                              B = OFE_CESQL_T_BOOLEAN;
    struct ofe_cesql_fndef dbl = {
        .name = "double", .ret = I, .nparams = 1, .params = {I}, .pure = true, .fn = f_double};
    struct ofe_cesql_fndef dbl_impure = dbl;
    dbl_impure.name = "DOUBLE_NOW";
    dbl_impure.pure = false;
    struct ofe_cesql_fndef greet = {.name = "Greet",
                                    .ret = S,
                                    .nparams = 1,
                                    .params = {S},
                                    .variadic = true,
                                    .vartype = S,
                                    .fn = f_greet,
                                    .opaque = (void *)"!"};
    struct ofe_cesql_fndef fails = {.name = "FAILS", .ret = B, .fn = f_fails};
    struct ofe_cesql_fndef badtype = {.name = "BADTYPE", .ret = I, .fn = f_badtype};
    reg(eng, &dbl, 0);
    reg(eng, &dbl_impure, 0);
    reg(eng, &greet, 0);
    reg(eng, &fails, 0);
    reg(eng, &badtype, 0);

    /* Overloading rules (spec 3.5). */
    struct ofe_cesql_fndef d = dbl;
    reg(eng, &d, OFE_EEXIST); /* same name and arity */
    d.name = "length";
    reg(eng, &d, OFE_EEXIST); /* a built-in's name and arity */
    d.name = "SUBSTRING";
    d.nparams = 4;
    d.params[1] = d.params[2] = d.params[3] = I;
    reg(eng, &d, 0); /* a new arity of a built-in */
    d.name = "CONCAT";
    d.nparams = 1;
    reg(eng, &d, OFE_EEXIST); /* CONCAT(x...) already covers it */
    d.name = "GREET";
    d.nparams = 2;
    reg(eng, &d, OFE_EEXIST); /* a fixed arity the variadic GREET covers */
    d.nparams = 0;
    reg(eng, &d, 0); /* GREET() is fine: the variadic one needs 1+ */
    d.name = "DOUBLE";
    d.nparams = 0;
    d.variadic = true;
    d.vartype = I;
    reg(eng, &d, OFE_EEXIST); /* variadic with fewer fixed params than DOUBLE(x) */
    d.nparams = 2;
    d.params[0] = d.params[1] = I;
    reg(eng, &d, 0); /* DOUBLE(a, b, ...) is distinguishable */
    d.name = "GREET";
    d.nparams = 3;
    reg(eng, &d, OFE_EEXIST); /* second variadic overload */
    struct ofe_cesql_fndef bad = dbl;
    bad.name = "1abc";
    reg(eng, &bad, OFE_EINVAL);
    bad.name = "a-b";
    reg(eng, &bad, OFE_EINVAL);
    bad.name = "_x";
    reg(eng, &bad, OFE_EINVAL);
    bad.name = "Exists";
    reg(eng, &bad, OFE_EINVAL);
    bad.name = "NOFN";
    bad.fn = NULL;
    reg(eng, &bad, OFE_EINVAL);
    bad = dbl;
    bad.name = "BADT";
    bad.ret = (enum ofe_cesql_type)9;
    reg(eng, &bad, OFE_EINVAL);
    bad = dbl;
    bad.name = "MANY";
    bad.nparams = OFE_CESQL_MAX_PARAMS + 1;
    reg(eng, &bad, OFE_EINVAL);

    struct ofe_ce *ev = test_event();
    struct ofe_cesql_result r;
    r = run_eng(eng, "DOUBLE(21)", ev);
    assert_int_equal(r.value.type, I);
    assert_int_equal(r.value.i, 42);
    assert_int_equal(r.error, 0);
    r = run_eng(eng, "double(num) = 84 AND Double('5') = 10", ev); /* implicit casts of arguments */
    assert_int_equal(r.value.i, 1);
    assert_int_equal(r.error, 0);
    r = run_eng(eng, "DOUBLE(myint)", ev);
    assert_int_equal(r.value.i, 0);
    assert_int_equal(r.error, OFE_CESQL_EMATH);
    r = run_eng(eng, "DOUBLE('x')", ev);
    assert_int_equal(r.error, OFE_CESQL_ECAST);
    r = run_eng(eng, "GREET('hello', 'ann', subject, myint)", ev);
    assert_int_equal(r.value.type, S);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.value.len, strlen("hello ann, Straße 5, 2147483647!"));
    assert_memory_equal(r.value.s, "hello ann, Straße 5, 2147483647!", r.value.len);
    r = run_eng(eng, "GREET('hi')", ev);
    assert_int_equal(r.value.len, 3);
    assert_memory_equal(r.value.s, "hi!", 3);
    r = run_eng(eng, "FAILS()", ev); /* its own value with its error */
    assert_int_equal(r.value.type, B);
    assert_int_equal(r.value.i, 1);
    assert_int_equal(r.error, OFE_CESQL_EFUNC);
    r = run_eng(eng, "BADTYPE()", ev); /* zero value plus functionEvaluation */
    assert_int_equal(r.value.type, I);
    assert_int_equal(r.value.i, 0);
    assert_int_equal(r.error, OFE_CESQL_EFUNC);
    r = run_eng(eng, "DOUBLE()", ev);
    assert_int_equal(r.error, OFE_CESQL_EMISSINGFN);
    r = run_eng(eng, "DOUBLE(1, 2, 3, 4)", ev);
    assert_int_equal(r.error, 0);
    r = run_eng(eng, "SUBSTRING('12', 1, 2, 3)", ev); /* the new arity: DOUBLE's code */
    assert_int_equal(r.error, 0);
    assert_int_equal(r.value.i, 24);
    r = run_eng(eng, "SUBSTRING('abc', 2)", ev); /* the built-in arities still work */
    assert_int_equal(r.value.len, 2);
    /* Without the engine the custom names are missing functions. */
    r = run("DOUBLE(21)", ev, NULL);
    assert_int_equal(r.error, OFE_CESQL_EMISSINGFN);

    /* A pure function with constant arguments runs once, at compile time;
     * an impure one on every evaluation. */
    struct ofe_cesql *pure, *impure;
    char err[128];
    calls_double = 0;
    assert_int_equal(ofe_cesql_compile(eng, "DOUBLE(2) = 4", &pure, err, sizeof(err)), 0);
    assert_int_equal(ofe_cesql_compile(eng, "DOUBLE_NOW(2) = 4", &impure, err, sizeof(err)), 0);
    assert_int_equal(calls_double, 1);
    /* Expressions outlive the engine. */
    ofe_cesql_engine_destroy(eng);
    for (int i = 0; i < 3; i++) {
        assert_true(ofe_cesql_match(pure, ev, NULL));
        assert_true(ofe_cesql_match(impure, ev, NULL));
    }
    assert_int_equal(calls_double, 4);
    ofe_cesql_destroy(pure);
    ofe_cesql_destroy(impure);
    ofe_ce_unref(ev);
}

/* ---- Scratch, allocation, threads --------------------------------------- */

static void test_scratch_limit(void **state)
{
    size_t big = 300 * 1024;
    char *v = malloc(big + 1);
    assert_non_null(v);
    memset(v, 'x', big);
    v[big] = '\0';
    struct ofe_ce *ev = test_event();
    char err[128];
    assert_int_equal(ofe_ce_set_str(ev, "big", OFE_CE_T_STRING, v, err, sizeof(err)), 0);
    free(v);
    check_int("LENGTH(CONCAT(big, big, big))", ev, (int32_t)(3 * big), ERR_NONE);
    check_int("LENGTH(UPPER(big))", ev, (int32_t)big, ERR_NONE);
    /* Over OFE_CESQL_SCRATCH_MAX (1 MiB): a functionEvaluation error. */
    check_int("LENGTH(CONCAT(big, big, big, big))", ev, 0, OFE_CESQL_EFUNC);
    check_bool("CONCAT(big, big) = CONCAT(big, big) AND LENGTH(LOWER(CONCAT(big, big))) > 0", ev,
               false, OFE_CESQL_EFUNC);
    /* Many intermediate strings past the inline scratch. */
    char *s = repeat("LENGTH(", "CONCAT(", 40, "subject", ", subject)", ")");
    check_int(s, ev, 41 * 8, ERR_NONE);
    free(s);
    ofe_ce_unref(ev);
}

static void test_no_allocation(void **state)
{
#ifdef SANITIZED
    skip();
#else
    struct ofe_ce *ev = test_event();
    static const char *const texts[] = {
        "type = 'com.example.order' AND source LIKE '/orders/%' AND EXISTS subject",
        "myint > 5 AND myint IN (1, 2, 2147483647) AND NOT mybool = FALSE",
        "myint LIKE '21%' OR LENGTH(subject) = 8 AND TRIM(subject) <> ''",
        "LOWER(subject) IN ('a', 'b', 'c') OR LENGTH(CONCAT(type, source)) > 20",
        "SUBSTRING(id, 2) = 'd-1' AND UPPER(mystr) = mystr",
    };
    struct ofe_cesql_ctx ctx;
    ofe_cesql_ctx_init(&ctx);
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct ofe_cesql *expr;
        char err[128];
        assert_int_equal(ofe_cesql_compile(NULL, texts[i], &expr, err, sizeof(err)), 0);
        struct ofe_cesql_result r;
        ofe_cesql_eval(expr, ev, &ctx, &r); /* warm up */
        long before = allocs;
        for (int k = 0; k < 1000; k++) {
            ofe_cesql_eval(expr, ev, &ctx, &r);
            (void)ofe_cesql_match(expr, ev, NULL);
        }
        if (allocs != before)
            fail_msg("`%s`: %ld allocations in 2000 evaluations", texts[i], allocs - before);
        assert_int_equal(r.error, 0);
        ofe_cesql_destroy(expr);
    }
    ofe_cesql_ctx_fini(&ctx);
    ofe_ce_unref(ev);
#endif
}

struct thread_arg {
    const struct ofe_cesql *expr;
    const struct ofe_ce *ev;
    int matches;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 20000; i++)
        a->matches += ofe_cesql_match(a->expr, a->ev, NULL);
    return NULL;
}

static void test_threads(void **state)
{
    struct ofe_ce *ev = test_event();
    struct ofe_cesql *expr;
    char err[128];
    assert_int_equal(ofe_cesql_compile(NULL,
                                       "LOWER(CONCAT(type, ':', source)) LIKE '%order:/orders/%' "
                                       "AND LENGTH(UPPER(subject)) = 8",
                                       &expr, err, sizeof(err)),
                     0);
    pthread_t t[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){expr, ev, 0};
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].matches, 20000);
    }
    ofe_cesql_destroy(expr);
    ofe_ce_unref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logic_mixed),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_casts_and_types),
        cmocka_unit_test(test_error_collection),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_like),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_static_info),
        cmocka_unit_test(test_custom_functions),
        cmocka_unit_test(test_scratch_limit),
        cmocka_unit_test(test_no_allocation),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
