/* libFuzzer harness for the CESQL parser and evaluator together: the input
 * is an expression; it is compiled (with a custom function registered) and
 * evaluated against fixed events in both modes, and the engine's promises
 * are checked:
 *   - a failed compile names a column;
 *   - the result has a valid type, the static type when one is known;
 *   - a String result is readable over its whole length;
 *   - ofe_cesql_match (fail-fast) agrees with ofe_cesql_eval (complete);
 *   - the error list is consistent (first kind, count, mask);
 *   - a constant expression gives the same result on every event. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/ce.h"
#include "ofe/cesql.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_cesql: check failed: %s (line %d)\n", #c, __LINE__);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct ofe_ce *events[3];
static struct ofe_cesql_engine *engine;

static enum ofe_cesql_err f_twice(struct ofe_cesql_fnctx *fc, void *opaque,
                                  const struct ofe_cesql_value *a, size_t n,
                                  struct ofe_cesql_value *ret)
{
    size_t len = a[0].len * 2;
    char *d = ofe_cesql_fn_alloc(fc, len);
    ret->type = OFE_CESQL_T_STRING;
    if (!d) {
        ret->s = "";
        ret->len = 0;
        return OFE_CESQL_EFUNC;
    }
    memcpy(d, a[0].s, a[0].len);
    memcpy(d + a[0].len, a[0].s, a[0].len);
    ret->s = d;
    ret->len = len;
    return OFE_CESQL_OK;
}

static enum ofe_cesql_err f_sum(struct ofe_cesql_fnctx *fc, void *opaque,
                                const struct ofe_cesql_value *a, size_t n,
                                struct ofe_cesql_value *ret)
{
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i].i;
    ret->type = OFE_CESQL_T_INTEGER;
    ret->i = (int32_t)(s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : s);
    return s > INT32_MAX || s < INT32_MIN ? OFE_CESQL_EMATH : OFE_CESQL_OK;
}

static void setup(void)
{
    static const char *const json[] = {
        "{\"specversion\":\"1.0\",\"id\":\"id-1\",\"source\":\"/orders/eu\","
        "\"type\":\"com.example.order\",\"subject\":\"Straße 5 日本\","
        "\"time\":\"2024-05-01T10:00:00Z\",\"datacontenttype\":\"application/json\","
        "\"myint\":2147483647,\"myneg\":-2147483648,\"mybool\":true,\"myzero\":0,"
        "\"mystr\":\"  Mixed Case %_\\\\ \",\"num\":\"42\",\"t\":\"TRUE\",\"e\":\"\"}",
        "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"urn:x\",\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"https://example.com/a?b=c\","
        "\"type\":\"com.example.other\",\"subject\":\" \",\"myint\":-7,\"mybool\":false,"
        "\"num\":\"-0012\",\"a\":\"a\",\"b\":\"b\"}",
    };
    for (int i = 0; i < 3; i++) {
        char err[256];
        if (ofe_ce_json_decode(json[i], strlen(json[i]), &events[i], err, sizeof(err))) {
            fprintf(stderr, "fuzz_cesql: event %d: %s\n", i, err);
            abort();
        }
    }
    engine = ofe_cesql_engine_new();
    CHECK(engine);
    struct ofe_cesql_fndef twice = {.name = "TWICE",
                                    .ret = OFE_CESQL_T_STRING,
                                    .nparams = 1,
                                    .params = {OFE_CESQL_T_STRING},
                                    .pure = true,
                                    .fn = f_twice};
    struct ofe_cesql_fndef sum = {.name = "SUM",
                                  .ret = OFE_CESQL_T_INTEGER,
                                  .nparams = 1,
                                  .params = {OFE_CESQL_T_INTEGER},
                                  .variadic = true,
                                  .vartype = OFE_CESQL_T_INTEGER,
                                  .fn = f_sum};
    CHECK(ofe_cesql_engine_register(engine, &twice, NULL, 0) == 0);
    CHECK(ofe_cesql_engine_register(engine, &sum, NULL, 0) == 0);
}

static void check_result(const struct ofe_cesql *expr, const struct ofe_cesql_result *r)
{
    CHECK(r->value.type == OFE_CESQL_T_BOOLEAN || r->value.type == OFE_CESQL_T_INTEGER ||
          r->value.type == OFE_CESQL_T_STRING);
    enum ofe_cesql_type st = ofe_cesql_result_type(expr);
    CHECK(st == OFE_CESQL_T_NONE || st == r->value.type);
    if (r->value.type == OFE_CESQL_T_BOOLEAN)
        CHECK(r->value.i == 0 || r->value.i == 1);
    if (r->value.type == OFE_CESQL_T_STRING) {
        CHECK(r->value.s != NULL);
        volatile unsigned sum = 0;
        for (size_t i = 0; i < r->value.len; i++)
            sum += (unsigned char)r->value.s[i];
        (void)sum;
    }
    CHECK((r->error == OFE_CESQL_OK) == (r->nerrors == 0));
    CHECK((r->error == OFE_CESQL_OK) == (r->errmask == 0));
    if (r->error) {
        CHECK(r->error > OFE_CESQL_EPARSE && r->error < OFE_CESQL_E__COUNT);
        CHECK(r->errmask & (1u << r->error));
        CHECK(ofe_cesql_errname(r->error) != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!engine)
        setup();
    if (size > 8192)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct ofe_cesql *expr = NULL;
    char err[256];
    int rc = ofe_cesql_compile(engine, text, &expr, err, sizeof(err));
    if (rc != 0) {
        CHECK(expr == NULL);
        CHECK(strncmp(err, "column ", 7) == 0 || strcmp(err, "out of memory") == 0);
        free(text);
        return 0;
    }
    CHECK(strcmp(ofe_cesql_text(expr), text) == 0);

    struct ofe_cesql_ctx ctx;
    ofe_cesql_ctx_init(&ctx);
    struct ofe_cesql_result first = {{0, 0, NULL, 0}, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        const struct ofe_ce *ev = i < 3 ? events[i] : NULL;
        struct ofe_cesql_result r;
        ofe_cesql_eval(expr, ev, &ctx, &r);
        check_result(expr, &r);

        enum ofe_cesql_err merr = OFE_CESQL_EPARSE;
        bool m = ofe_cesql_match(expr, ev, &merr);
        bool want = !r.error && r.value.type == OFE_CESQL_T_BOOLEAN && r.value.i;
        CHECK(m == want);
        if (r.error)
            CHECK(merr == r.error);
        else
            CHECK(merr ==
                  (r.value.type == OFE_CESQL_T_BOOLEAN ? OFE_CESQL_OK : OFE_CESQL_EGENERIC));

        if (ofe_cesql_is_constant(expr)) {
            if (i == 0) {
                first = r;
            } else {
                CHECK(r.value.type == first.value.type && r.error == first.error &&
                      r.nerrors == first.nerrors);
                if (r.value.type != OFE_CESQL_T_STRING)
                    CHECK(r.value.i == first.value.i);
                else /* constants live in the expression: still valid */
                    CHECK(r.value.len == first.value.len &&
                          memcmp(r.value.s, first.value.s, r.value.len) == 0);
            }
        }
    }
    ofe_cesql_ctx_fini(&ctx);
    ofe_cesql_destroy(expr);
    free(text);
    return 0;
}
