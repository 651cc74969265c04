/* libFuzzer harness: JSON event format. Decodes the input as one event and
 * as a batch; whatever decodes must encode, and the encoding must decode to
 * an equal event and re-encode to the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/ce.h"
#include "ofe/err.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ce_json: check failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void one(const uint8_t *data, size_t size)
{
    char err[512];
    struct ofe_ce *ev = NULL;
    int rc = ofe_ce_json_decode(data, size, &ev, err, sizeof(err));
    CHECK(rc == 0 || rc == OFE_EINVAL || rc == OFE_EPARSE);
    if (rc) {
        CHECK(ev == NULL && err[0]);
        return;
    }
    CHECK(ofe_ce_validate(ev, err, sizeof(err)) == 0);
    struct ofe_buf j1 = OFE_BUF_INIT, j2 = OFE_BUF_INIT;
    CHECK(ofe_ce_json_encode(ev, &j1, err, sizeof(err)) == 0);
    struct ofe_ce *back = NULL;
    rc = ofe_ce_json_decode(j1.data, j1.len, &back, err, sizeof(err));
    if (rc)
        fprintf(stderr, "re-decode failed: %s\n%s\n", err, j1.data);
    CHECK(rc == 0);
    CHECK(ofe_ce_equal(ev, back));
    CHECK(ofe_ce_json_encode(back, &j2, err, sizeof(err)) == 0);
    CHECK(j1.len == j2.len && memcmp(j1.data, j2.data, j1.len) == 0);
    struct ofe_ce *d = ofe_ce_dup(ev);
    CHECK(d && ofe_ce_equal(ev, d));
    ofe_ce_unref(d);
    ofe_ce_unref(back);
    ofe_ce_unref(ev);
    ofe_buf_fini(&j1);
    ofe_buf_fini(&j2);
}

static void batch(const uint8_t *data, size_t size)
{
    char err[512];
    struct ofe_ce_list l = {0};
    int rc = ofe_ce_json_decode_batch(data, size, &l, err, sizeof(err));
    CHECK(rc == 0 || rc == OFE_EINVAL || rc == OFE_EPARSE);
    if (rc) {
        CHECK(l.n == 0);
        ofe_ce_list_fini(&l);
        return;
    }
    struct ofe_buf b = OFE_BUF_INIT;
    CHECK(ofe_ce_json_encode_batch(l.v, l.n, &b, err, sizeof(err)) == 0);
    struct ofe_ce_list l2 = {0};
    CHECK(ofe_ce_json_decode_batch(b.data, b.len, &l2, err, sizeof(err)) == 0);
    CHECK(l2.n == l.n);
    for (size_t i = 0; i < l.n; i++)
        CHECK(ofe_ce_equal(l.v[i], l2.v[i]));
    ofe_ce_list_fini(&l2);
    ofe_ce_list_fini(&l);
    ofe_buf_fini(&b);
}

static size_t nbad;

static void count_bad(void *arg, size_t index, int e, const char *msg)
{
    CHECK(e == OFE_EINVAL && msg && msg[0]);
    nbad++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    batch(data, size);
    char err[512];
    struct ofe_ce_list l = {0};
    nbad = 0;
    int rc = ofe_ce_json_decode_batch_each(data, size, &l, count_bad, NULL, err, sizeof(err));
    CHECK(rc != 0 || nbad == 0);
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    if (i < size && data[i] == '[') /* an array: every bad event was reported */
        CHECK(rc != OFE_EINVAL || nbad > 0);
    ofe_ce_list_fini(&l);
    return 0;
}
