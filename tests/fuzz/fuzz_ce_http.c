/* libFuzzer harness: protocol binding decoders. The input is an HTTP-like
 * message: "Name: value" lines, an empty line, then the body. It goes
 * through the HTTP decoder (with and without type hints) and, as the same
 * header list, through the Kafka, NATS, MQTT and Redis decoders. An event
 * the HTTP decoder accepts must survive a binary-mode round trip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/ce.h"
#include "ofe/err.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ce_http: check failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Splits the input into headers and body. */
static void parse(const char *p, size_t n, struct ofe_hdrs *h, const char **body, size_t *body_len)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        size_t line_end = end > i && p[end - 1] == '\r' ? end - 1 : end;
        if (line_end == i) { /* empty line: the body follows */
            i = nl ? end + 1 : n;
            break;
        }
        const char *colon = memchr(p + i, ':', line_end - i);
        if (colon) {
            size_t nlen = (size_t)(colon - (p + i));
            size_t v = (size_t)(colon - p) + 1;
            while (v < line_end && p[v] == ' ')
                v++;
            ofe_hdrs_add_ref(h, p + i, nlen, p + v, line_end - v);
        }
        i = nl ? end + 1 : n;
    }
    *body = p + i;
    *body_len = n - i;
}

static void http_roundtrip(const struct ofe_ce *ev)
{
    char err[512];
    /* JSON data with no datacontenttype gains application/json */
    if (ev->data_is_json && !ofe_ce_get(ev, "datacontenttype", 15))
        return;
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf bb = OFE_BUF_INIT;
    const void *body;
    size_t blen;
    CHECK(ofe_ce_http_encode(ev, OFE_CE_BINARY, OFE_CE_BIND_TYPEHINTS, &h, &bb, &body, &blen, err,
                             sizeof(err)) == 0);
    struct ofe_ce_list l = {0};
    int rc = ofe_ce_http_decode(&h, body, blen, OFE_CE_BIND_TYPEHINTS, &l, err, sizeof(err));
    if (rc)
        fprintf(stderr, "round trip decode failed: %s\n", err);
    CHECK(rc == 0 && l.n == 1);
    /* an empty body reads as no data */
    if (ev->has_data && ev->data_len == 0)
        CHECK(!l.v[0]->has_data);
    else
        CHECK(ofe_ce_equal(ev, l.v[0]));
    ofe_ce_list_fini(&l);
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&bb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    const char *body;
    size_t blen;
    parse((const char *)data, size, &h, &body, &blen);

    static const unsigned flags[] = {0, OFE_CE_BIND_TYPEHINTS};
    for (int f = 0; f < 2; f++) {
        struct ofe_ce_list l = {0};
        int rc = ofe_ce_http_decode(&h, body, blen, flags[f], &l, err, sizeof(err));
        CHECK(rc == 0 || rc == OFE_EINVAL || rc == OFE_EPARSE);
        CHECK(rc == 0 || (l.n == 0 && err[0]));
        if (rc == 0 && flags[f])
            for (size_t i = 0; i < l.n; i++)
                http_roundtrip(l.v[i]);
        ofe_ce_list_fini(&l);

        struct ofe_ce *ev = NULL;
        rc = ofe_ce_kafka_decode(&h, body, blen > 8 ? 8 : blen, body, blen, flags[f], &ev, err,
                                 sizeof(err));
        CHECK((rc == 0) == (ev != NULL));
        ofe_ce_unref(ev);
        ev = NULL;
        rc = ofe_ce_nats_decode(&h, body, blen, flags[f], &ev, err, sizeof(err));
        CHECK((rc == 0) == (ev != NULL));
        ofe_ce_unref(ev);
        ev = NULL;
        const struct ofe_hdr *ct = ofe_hdrs_get(&h, "content-type");
        char ctbuf[256];
        const char *cts = NULL;
        if (ct && ct->value_len < sizeof(ctbuf) && !memchr(ct->value, 0, ct->value_len)) {
            memcpy(ctbuf, ct->value, ct->value_len);
            ctbuf[ct->value_len] = '\0';
            cts = ctbuf;
        }
        rc = ofe_ce_mqtt_decode(&h, cts, body, blen, flags[f], &ev, err, sizeof(err));
        CHECK((rc == 0) == (ev != NULL));
        ofe_ce_unref(ev);
        ev = NULL;
        rc = ofe_ce_redis_decode(&h, flags[f], &ev, err, sizeof(err));
        CHECK((rc == 0) == (ev != NULL));
        ofe_ce_unref(ev);
    }
    /* the percent decoder on its own, on the whole input */
    struct ofe_buf b = OFE_BUF_INIT;
    if (ofe_ce_pct_decode((const char *)data, size, &b, err, sizeof(err)) == 0) {
        struct ofe_buf e = OFE_BUF_INIT, d = OFE_BUF_INIT;
        CHECK(ofe_ce_pct_encode(b.data, b.len, &e) == 0);
        CHECK(ofe_ce_pct_decode(e.data, e.len, &d, err, sizeof(err)) == 0);
        CHECK(d.len == b.len && memcmp(d.data, b.data, b.len) == 0);
        ofe_buf_fini(&e);
        ofe_buf_fini(&d);
    }
    ofe_buf_fini(&b);
    ofe_hdrs_fini(&h);
    return 0;
}
