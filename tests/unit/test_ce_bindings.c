/* Protocol bindings as codecs: percent-encoding, HTTP (binary, structured,
 * batch), Kafka, MQTT 5 / 3.1.1, NATS, Redis Streams, the type hints, and
 * round trips of a rich event through every one of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ofe/ce.h"
#include "ofe/err.h"

static char err[512];

#define EURO     "Euro \xe2\x82\xac \xf0\x9f\x98\x80"
#define EURO_PCT "Euro%20%E2%82%AC%20%F0%9F%98%80"

static void set(struct ofe_ce *ev, const char *name, enum ofe_ce_type t, const char *v)
{
    if (ofe_ce_set_str(ev, name, t, v, err, sizeof(err)))
        fail_msg("set %s: %s", name, err);
}

/* Every attribute type, every spec attribute, binary data that is not
 * UTF-8 (NUL, 0xff, a lone continuation byte). */
static struct ofe_ce *rich_event(void)
{
    struct ofe_ce *ev = ofe_ce_new();
    set(ev, "specversion", OFE_CE_T_NONE, "1.0");
    set(ev, "id", OFE_CE_T_NONE, "id with spaces \"quoted\" 100%");
    set(ev, "source", OFE_CE_T_NONE, "https://example.com/src?a=1&b=%20");
    set(ev, "type", OFE_CE_T_NONE, "com.example.rich");
    set(ev, "datacontenttype", OFE_CE_T_NONE, "application/octet-stream");
    set(ev, "dataschema", OFE_CE_T_NONE, "https://example.com/schema");
    set(ev, "subject", OFE_CE_T_NONE, EURO);
    set(ev, "time", OFE_CE_T_NONE, "2018-04-05T17:31:00.5+02:00");
    set(ev, "flag", OFE_CE_T_BOOLEAN, "true");
    set(ev, "count", OFE_CE_T_INTEGER, "-42");
    set(ev, "text", OFE_CE_T_STRING, "plain, text; with=chars");
    set(ev, "blob", OFE_CE_T_BINARY, "AP+A");
    set(ev, "link", OFE_CE_T_URI, "urn:x:y");
    set(ev, "ref", OFE_CE_T_URIREF, "/relative/ref");
    set(ev, "when", OFE_CE_T_TIMESTAMP, "2030-01-01T00:00:00Z");
    set(ev, "partitionkey", OFE_CE_T_STRING, "key-1");
    static const unsigned char data[] = {0x00, 0xff, 0x80, 'a', '\r', '\n', 0xc3, 0x28, 0x00};
    assert_int_equal(ofe_ce_set_data(ev, data, sizeof(data)), 0);
    return ev;
}

/* Same attributes and data; extensions compared by value only when the
 * binding cannot carry their types (they come back as String). */
static void assert_same(const struct ofe_ce *want, const struct ofe_ce *got, bool types)
{
    if (types) {
        if (!ofe_ce_equal(want, got))
            fail_msg("events differ");
        return;
    }
    for (size_t i = 0; ofe_ce_attr_at(want, i); i++) {
        const struct ofe_ce_attr *a = ofe_ce_attr_at(want, i);
        const struct ofe_ce_attr *b = ofe_ce_get(got, a->name, a->name_len);
        if (!b)
            fail_msg("attribute %s lost", a->name);
        assert_int_equal(a->value_len, b->value_len);
        assert_memory_equal(a->value, b->value, a->value_len);
        bool ext = ofe_ce_spec_slot(a->name, a->name_len) < 0;
        assert_int_equal(b->type, ext ? OFE_CE_T_STRING : a->type);
    }
    assert_int_equal(want->next, got->next);
    assert_int_equal(want->has_data, got->has_data);
    assert_int_equal(want->data_len, got->data_len);
    if (want->data_len)
        assert_memory_equal(want->data, got->data, want->data_len);
}

static const char *hval(const struct ofe_hdrs *h, const char *name)
{
    static char buf[1024];
    const struct ofe_hdr *e = ofe_hdrs_get(h, name);
    if (!e)
        return NULL;
    snprintf(buf, sizeof(buf), "%.*s", (int)e->value_len, e->value);
    return buf;
}

/* ---- percent-encoding --------------------------------------------------- */

static void test_pct(void **state)
{
    struct ofe_buf b = OFE_BUF_INIT;
    assert_int_equal(ofe_ce_pct_encode(EURO, strlen(EURO), &b), 0);
    assert_string_equal(b.data, EURO_PCT);
    ofe_buf_reset(&b);
    assert_int_equal(ofe_ce_pct_decode(EURO_PCT, strlen(EURO_PCT), &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, EURO);
    ofe_buf_reset(&b);
    /* lower-case hex decodes too */
    assert_int_equal(ofe_ce_pct_decode("euro%e2%82%ac", 13, &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, "euro\xe2\x82\xac");
    ofe_buf_reset(&b);
    /* exactly once: %25 gives '%', not a second round */
    assert_int_equal(ofe_ce_pct_decode("%2541%41", 8, &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, "%41A");
    ofe_buf_reset(&b);
    /* what must be encoded, and what must not */
    assert_int_equal(ofe_ce_pct_encode("a b\"c%d", 7, &b), 0);
    assert_string_equal(b.data, "a%20b%22c%25d");
    ofe_buf_reset(&b);
    char printable[128];
    size_t n = 0;
    for (int c = 0x21; c <= 0x7e; c++)
        if (c != '"' && c != '%')
            printable[n++] = (char)c;
    assert_int_equal(ofe_ce_pct_encode(printable, n, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, printable, n);
    ofe_buf_reset(&b);
    assert_int_equal(ofe_ce_pct_encode("\x7f\x01\t", 3, &b), 0);
    assert_string_equal(b.data, "%7F%01%09");
    ofe_buf_reset(&b);
    /* rejects */
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"%C0%A0", "decodes to invalid UTF-8 (at decoded byte 1)"}, /* overlong space */
        {"ok%FF", "invalid UTF-8 (at decoded byte 3)"},
        {"%ED%A0%80", "invalid UTF-8"}, /* surrogate */
        {"%E2%82", "invalid UTF-8"},    /* truncated */
        {"%zz", "bad percent-encoding at position 1"},
        {"ab%4", "bad percent-encoding at position 3"},
        {"abc%", "bad percent-encoding at position 4"},
        {"%%41", "bad percent-encoding at position 1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ofe_buf_puts(&b, "keep");
        assert_int_equal(ofe_ce_pct_decode(bad[i].in, strlen(bad[i].in), &b, err, sizeof(err)),
                         OFE_EINVAL);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].in, err, bad[i].why);
        assert_string_equal(b.data, "keep");
        ofe_buf_reset(&b);
    }
    ofe_buf_fini(&b);
}

/* ---- header lists ------------------------------------------------------- */

static void test_hdrs(void **state)
{
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    assert_null(ofe_hdrs_get(&h, "x"));
    char name[32], val[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "Name-%d", i);
        snprintf(val, sizeof(val), "value %d", i);
        assert_int_equal(ofe_hdrs_add_copy(&h, name, strlen(name), val, strlen(val)), 0);
    }
    assert_int_equal(ofe_hdrs_add_ref(&h, "Ref", 3, "abc", 2), 0);
    assert_int_equal(h.n, 1001);
    /* copies never move: the first one is intact after all the growth */
    assert_string_equal(h.v[0].name, "Name-0");
    assert_string_equal(h.v[0].value, "value 0");
    assert_string_equal(hval(&h, "name-999"), "value 999");
    assert_string_equal(hval(&h, "NAME-500"), "value 500");
    assert_string_equal(hval(&h, "ref"), "ab");
    ofe_hdrs_reset(&h);
    assert_int_equal(h.n, 0);
    assert_null(ofe_hdrs_get(&h, "name-1"));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(name, sizeof(name), "n%d", i);
            assert_int_equal(ofe_hdrs_add_copy(&h, name, strlen(name), "v", 1), 0);
        }
        assert_string_equal(hval(&h, "n0"), "v");
        ofe_hdrs_reset(&h);
    }
    ofe_hdrs_fini(&h);
    ofe_hdrs_fini(&h); /* fini leaves an empty, reusable list */
}

/* ---- HTTP --------------------------------------------------------------- */

static void test_http_mode(void **state)
{
    static const struct {
        const char *ct;
        enum ofe_ce_mode mode;
    } t[] = {
        {"application/cloudevents+json", OFE_CE_STRUCTURED},
        {"Application/CloudEvents+JSON; charset=UTF-8", OFE_CE_STRUCTURED},
        {"  application/cloudevents+json", OFE_CE_STRUCTURED},
        {"application/cloudevents", OFE_CE_STRUCTURED},
        {"application/cloudevents-batch+json", OFE_CE_BATCH},
        {"APPLICATION/CLOUDEVENTS-BATCH+JSON; charset=utf-8", OFE_CE_BATCH},
        {"application/json", OFE_CE_BINARY},
        {"text/plain", OFE_CE_BINARY},
        {"application/cloudevent", OFE_CE_BINARY},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        assert_int_equal(ofe_ce_http_mode(t[i].ct, strlen(t[i].ct)), t[i].mode);
    assert_int_equal(ofe_ce_http_mode(NULL, 0), OFE_CE_BINARY);
}

static void test_http_binary_encode(void **state)
{
    struct ofe_ce *ev = rich_event();
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf body = OFE_BUF_INIT;
    const void *b;
    size_t blen;
    assert_int_equal(
        ofe_ce_http_encode(ev, OFE_CE_BINARY, 0, &h, &body, &b, &blen, err, sizeof(err)), 0);
    static const char *want[][2] = {
        {"ce-specversion", "1.0"},
        {"ce-id", "id%20with%20spaces%20%22quoted%22%20100%25"},
        {"ce-source", "https://example.com/src?a=1&b=%2520"},
        {"ce-type", "com.example.rich"},
        {"ce-dataschema", "https://example.com/schema"},
        {"ce-subject", EURO_PCT},
        {"ce-time", "2018-04-05T17:31:00.5+02:00"},
        {"ce-flag", "true"},
        {"ce-count", "-42"},
        {"ce-text", "plain,%20text;%20with=chars"},
        {"ce-blob", "AP+A"},
        {"ce-link", "urn:x:y"},
        {"ce-ref", "/relative/ref"},
        {"ce-when", "2030-01-01T00:00:00Z"},
        {"ce-partitionkey", "key-1"},
        {"Content-Type", "application/octet-stream"},
    };
    assert_int_equal(h.n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < h.n; i++) {
        assert_int_equal(h.v[i].name_len, strlen(want[i][0]));
        assert_memory_equal(h.v[i].name, want[i][0], h.v[i].name_len);
        if (h.v[i].value_len != strlen(want[i][1]) ||
            memcmp(h.v[i].value, want[i][1], h.v[i].value_len))
            fail_msg("%s: %.*s, want %s", want[i][0], (int)h.v[i].value_len, h.v[i].value,
                     want[i][1]);
    }
    assert_null(ofe_hdrs_get(&h, "ce-datacontenttype"));
    assert_null(ofe_hdrs_get(&h, OFE_CE_TYPEHINTS_HEADER)); /* not asked for */
    /* the body is the event's data, not a copy */
    assert_ptr_equal(b, ev->data);
    assert_int_equal(blen, ev->data_len);
    assert_int_equal(body.len, 0);

    /* with type hints: one more header naming the non-String extensions */
    ofe_hdrs_reset(&h);
    assert_int_equal(ofe_ce_http_encode(ev, OFE_CE_BINARY, OFE_CE_BIND_TYPEHINTS, &h, &body, &b,
                                        &blen, err, sizeof(err)),
                     0);
    assert_string_equal(hval(&h, OFE_CE_TYPEHINTS_HEADER),
                        "flag=boolean,count=integer,blob=binary,link=uri,ref=urireference,"
                        "when=timestamp");

    /* an invalid event is refused */
    struct ofe_ce *bad = ofe_ce_new();
    assert_int_equal(
        ofe_ce_http_encode(bad, OFE_CE_BINARY, 0, &h, &body, &b, &blen, err, sizeof(err)),
        OFE_EINVAL);
    assert_string_equal(err, "missing required attribute 'specversion'");
    ofe_ce_unref(bad);
    assert_int_equal(
        ofe_ce_http_encode(ev, OFE_CE_BATCH, 0, &h, &body, &b, &blen, err, sizeof(err)),
        OFE_EINVAL);
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&body);
    ofe_ce_unref(ev);
}

static int http_decode1(struct ofe_hdrs *h, const char *body, unsigned flags, struct ofe_ce **out)
{
    struct ofe_ce_list l = {0};
    int rc = ofe_ce_http_decode(h, body, body ? strlen(body) : 0, flags, &l, err, sizeof(err));
    if (!rc) {
        assert_int_equal(l.n, 1);
        *out = ofe_ce_ref(l.v[0]);
    }
    ofe_ce_list_fini(&l);
    return rc;
}

static void add(struct ofe_hdrs *h, const char *n, const char *v)
{
    assert_int_equal(ofe_hdrs_add_copy(h, n, strlen(n), v, strlen(v)), 0);
}

static void test_http_binary_decode(void **state)
{
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    add(&h, "Host", "example.com");
    add(&h, "CE-SpecVersion", "1.0");
    add(&h, "ce-id", " 1234 ");                       /* OWS trimmed */
    add(&h, "Ce-Source", "/my%2fcontext");            /* decoded once, lower-case hex */
    add(&h, "ce-type", "\"com.example.\\\"quoted\""); /* RFC 7230 quoted-string */
    add(&h, "ce-subject", EURO_PCT);
    add(&h, "ce-myint", "5");
    add(&h, "Content-Type", "application/json; charset=utf-8");
    add(&h, "X-Other", "ignored");
    struct ofe_ce *ev = NULL;
    assert_int_equal(http_decode1(&h, "{\"a\":1}", 0, &ev), 0);
    assert_string_equal(ofe_ce_get_str(ev, "id"), "1234");
    assert_string_equal(ofe_ce_get_str(ev, "source"), "/my/context");
    assert_string_equal(ofe_ce_get_str(ev, "type"), "com.example.\"quoted");
    assert_string_equal(ofe_ce_get_str(ev, "subject"), EURO);
    assert_string_equal(ofe_ce_get_str(ev, "datacontenttype"), "application/json; charset=utf-8");
    /* binary mode carries no types: extensions are Strings */
    assert_int_equal(ofe_ce_get(ev, "myint", 5)->type, OFE_CE_T_STRING);
    assert_null(ofe_ce_get(ev, "other", 5));
    assert_int_equal(ev->data_len, 7);
    assert_memory_equal(ev->data, "{\"a\":1}", 7);
    ofe_ce_unref(ev);
    /* with hints (and the flag) the type comes back */
    add(&h, "ofe-cetypes", "myint=integer");
    assert_int_equal(http_decode1(&h, NULL, OFE_CE_BIND_TYPEHINTS, &ev), 0);
    assert_int_equal(ofe_ce_get(ev, "myint", 5)->type, OFE_CE_T_INTEGER);
    assert_false(ev->has_data); /* an empty body is no data */
    ofe_ce_unref(ev);
    assert_int_equal(http_decode1(&h, NULL, 0, &ev), 0); /* without the flag: ignored */
    assert_int_equal(ofe_ce_get(ev, "myint", 5)->type, OFE_CE_T_STRING);
    ofe_ce_unref(ev);
    ofe_hdrs_fini(&h);
}

struct hdr_case {
    const char *name, *value;
    const char *why;
};

static void test_http_binary_errors(void **state)
{
    static const struct hdr_case cases[] = {
        {"ce-subject", "%FF", "header \"ce-subject\": decodes to invalid UTF-8"},
        {"ce-subject", "%C0%A0", "header \"ce-subject\": decodes to invalid UTF-8"},
        {"ce-subject", "50%", "header \"ce-subject\": bad percent-encoding at position 3"},
        {"ce-subject", "a%0Ab",
         "header \"ce-subject\": attribute 'subject': control character "
         "U+000A"},
        {"ce-subject", "\"open", "header \"ce-subject\": unterminated quoted string"},
        {"ce-time", "now", "header \"ce-time\": attribute 'time': \"now\" is not an RFC 3339"},
        {"ce-id", "2", "header \"ce-id\": attribute given twice"},
        {"CE-ID", "2", "header \"CE-ID\": attribute given twice"},
        {"ce-my_ext", "x", "header \"ce-my_ext\": attribute name \"my_ext\": character \"_\""},
        {"ce-", "x", "header \"ce-\": attribute name is empty"},
        {"ce-data", "x", "attribute name \"data\" is reserved"},
        {"Content-Type", "nonsense",
         "header Content-Type: attribute 'datacontenttype': "
         "\"nonsense\" is not a media type"},
        {"ofe-cetypes", "x=float", "header ofe-cetypes: unknown type 'float'"},
        {"ofe-cetypes", "id=integer", "'id' is not an extension attribute name"},
        {"ofe-cetypes", "x", "expected name=type"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ofe_hdrs h;
        ofe_hdrs_init(&h);
        add(&h, "ce-specversion", "1.0");
        add(&h, "ce-id", "1");
        add(&h, "ce-source", "/s");
        add(&h, "ce-type", "t");
        add(&h, cases[i].name, cases[i].value);
        struct ofe_ce_list l = {0};
        int rc = ofe_ce_http_decode(&h, "", 0, OFE_CE_BIND_TYPEHINTS, &l, err, sizeof(err));
        if (rc != OFE_EINVAL || !strstr(err, cases[i].why))
            fail_msg("%s: %s -> %d \"%s\", want \"%s\"", cases[i].name, cases[i].value, rc, err,
                     cases[i].why);
        assert_int_equal(l.n, 0);
        ofe_hdrs_fini(&h);
    }
    /* missing required attributes */
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    add(&h, "Content-Type", "text/plain");
    struct ofe_ce *ev;
    assert_int_equal(http_decode1(&h, "hello", 0, &ev), OFE_EINVAL);
    assert_string_equal(err, "missing required attribute 'specversion'");
    add(&h, "ce-specversion", "0.3");
    assert_int_equal(http_decode1(&h, "hello", 0, &ev), OFE_EINVAL);
    assert_non_null(strstr(err, "\"0.3\" is not supported"));
    ofe_hdrs_fini(&h);
}

static void test_http_structured_and_batch(void **state)
{
    struct ofe_ce *ev = rich_event();
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf body = OFE_BUF_INIT;
    ofe_buf_puts(&body, "prefix"); /* the JSON is appended */
    const void *b;
    size_t blen;
    assert_int_equal(
        ofe_ce_http_encode(ev, OFE_CE_STRUCTURED, 0, &h, &body, &b, &blen, err, sizeof(err)), 0);
    assert_ptr_equal(b, body.data + 6);
    assert_int_equal(blen, body.len - 6);
    assert_int_equal(h.n, 1);
    assert_string_equal(hval(&h, "content-type"), OFE_CE_JSON_MEDIA);
    struct ofe_ce_list l = {0};
    assert_int_equal(ofe_ce_http_decode(&h, b, blen, 0, &l, err, sizeof(err)), 0);
    /* JSON keeps Integer and Boolean; other extension types become String */
    const struct ofe_ce *got = l.v[0];
    assert_int_equal(ofe_ce_get(got, "count", 5)->type, OFE_CE_T_INTEGER);
    assert_int_equal(ofe_ce_get(got, "flag", 4)->type, OFE_CE_T_BOOLEAN);
    assert_int_equal(ofe_ce_get(got, "when", 4)->type, OFE_CE_T_STRING);
    assert_int_equal(got->data_len, ev->data_len);
    assert_memory_equal(got->data, ev->data, ev->data_len);
    ofe_ce_list_fini(&l);

    /* unsupported formats are named */
    struct ofe_hdrs h2;
    ofe_hdrs_init(&h2);
    add(&h2, "Content-Type", "application/cloudevents+avro");
    assert_int_equal(ofe_ce_http_decode(&h2, "x", 1, 0, &l, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "unsupported event format \"application/cloudevents+avro\" (only "
                             "the JSON format, application/cloudevents+json, is supported)");
    ofe_hdrs_reset(&h2);
    add(&h2, "Content-Type", "application/cloudevents+json");
    assert_int_equal(ofe_ce_http_decode(&h2, "{\"specversion\":", 15, 0, &l, err, sizeof(err)),
                     OFE_EPARSE);
    assert_non_null(strstr(err, "invalid JSON at line 1, column 16"));

    /* batch */
    struct ofe_ce *evs[2] = {ev, ev};
    ofe_hdrs_reset(&h);
    ofe_buf_reset(&body);
    assert_int_equal(ofe_ce_http_encode_batch(evs, 2, &h, &body, err, sizeof(err)), 0);
    assert_string_equal(hval(&h, "Content-Type"), OFE_CE_BATCH_MEDIA);
    assert_int_equal(ofe_ce_http_decode(&h, body.data, body.len, 0, &l, err, sizeof(err)), 0);
    assert_int_equal(l.n, 2);
    assert_true(ofe_ce_equal(l.v[0], l.v[1]));
    ofe_ce_list_fini(&l);
    ofe_hdrs_reset(&h2);
    add(&h2, "Content-Type", "application/cloudevents-batch+json; charset=utf-8");
    assert_int_equal(ofe_ce_http_decode(&h2, "[]", 2, 0, &l, err, sizeof(err)), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(ofe_ce_http_decode(&h2, "[{}]", 4, 0, &l, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "event [0]: missing required attribute 'specversion'");
    ofe_hdrs_reset(&h2);
    add(&h2, "Content-Type", "application/cloudevents-batch+xml");
    assert_int_equal(ofe_ce_http_decode(&h2, "[]", 2, 0, &l, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "unsupported event format"));
    ofe_hdrs_fini(&h2);
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&body);
    ofe_ce_unref(ev);
}

static void test_http_spec_example_euro(void **state)
{
    struct ofe_ce *ev = ofe_ce_new();
    set(ev, "specversion", OFE_CE_T_NONE, "1.0");
    set(ev, "id", OFE_CE_T_NONE, "1");
    set(ev, "source", OFE_CE_T_NONE, "/s");
    set(ev, "type", OFE_CE_T_NONE, "t");
    set(ev, "subject", OFE_CE_T_NONE, EURO);
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf body = OFE_BUF_INIT;
    const void *b;
    size_t blen;
    assert_int_equal(
        ofe_ce_http_encode(ev, OFE_CE_BINARY, 0, &h, &body, &b, &blen, err, sizeof(err)), 0);
    assert_string_equal(hval(&h, "ce-subject"), EURO_PCT);
    struct ofe_ce *back = NULL;
    assert_int_equal(http_decode1(&h, NULL, 0, &back), 0);
    assert_string_equal(ofe_ce_get_str(back, "subject"), EURO);
    assert_true(ofe_ce_equal(ev, back));
    ofe_ce_unref(back);
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&body);
    ofe_ce_unref(ev);
}

static void test_http_json_data_content_type(void **state)
{
    /* a JSON event without datacontenttype says application/json in binary
     * mode (JSON format 3.1.2) */
    const char *j = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                    "\"data\":\"I'm just a string\"}";
    struct ofe_ce *ev;
    assert_int_equal(ofe_ce_json_decode(j, strlen(j), &ev, err, sizeof(err)), 0);
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf body = OFE_BUF_INIT;
    const void *b;
    size_t blen;
    assert_int_equal(
        ofe_ce_http_encode(ev, OFE_CE_BINARY, 0, &h, &body, &b, &blen, err, sizeof(err)), 0);
    assert_string_equal(hval(&h, "Content-Type"), "application/json");
    assert_int_equal(blen, 19);
    assert_memory_equal(b, "\"I'm just a string\"", 19);
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&body);
    ofe_ce_unref(ev);
}

/* ---- round trips through every binding ---------------------------------- */

enum binding { HTTP, KAFKA, MQTT, NATS, REDIS };

/* Encodes and decodes ev; returns the decoded event. */
static struct ofe_ce *through(const struct ofe_ce *ev, enum binding bnd, enum ofe_ce_mode mode,
                              unsigned flags)
{
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf buf = OFE_BUF_INIT;
    const void *body = NULL, *key = NULL;
    size_t blen = 0, klen = 0;
    const char *ct = NULL;
    struct ofe_ce *out = NULL;
    int rc = 0;
    switch (bnd) {
    case HTTP:
        rc = ofe_ce_http_encode(ev, mode, flags, &h, &buf, &body, &blen, err, sizeof(err));
        if (!rc) {
            struct ofe_ce_list l = {0};
            rc = ofe_ce_http_decode(&h, body, blen, flags, &l, err, sizeof(err));
            if (!rc)
                out = ofe_ce_ref(l.v[0]);
            ofe_ce_list_fini(&l);
        }
        break;
    case KAFKA:
        rc = ofe_ce_kafka_encode(ev, mode, flags, &h, &buf, &body, &blen, &key, &klen, err,
                                 sizeof(err));
        if (!rc) {
            const struct ofe_ce_attr *pk = ofe_ce_get(ev, "partitionkey", 12);
            if (pk) { /* partitionkey is the record key */
                assert_int_equal(klen, pk->value_len);
                assert_memory_equal(key, pk->value, klen);
                if (mode == OFE_CE_BINARY) /* and stays an attribute */
                    assert_non_null(ofe_hdrs_get(&h, "ce_partitionkey"));
            } else {
                assert_null(key);
            }
            rc = ofe_ce_kafka_decode(&h, key, klen, body, blen, flags, &out, err, sizeof(err));
        }
        break;
    case MQTT:
        rc = ofe_ce_mqtt_encode(ev, mode, flags, &h, &ct, &buf, &body, &blen, err, sizeof(err));
        if (!rc)
            rc = ofe_ce_mqtt_decode(&h, ct, body, blen, flags, &out, err, sizeof(err));
        break;
    case NATS:
        rc = ofe_ce_nats_encode(ev, mode, flags, &h, &buf, &body, &blen, err, sizeof(err));
        if (!rc)
            rc = ofe_ce_nats_decode(&h, body, blen, flags, &out, err, sizeof(err));
        break;
    case REDIS:
        rc = ofe_ce_redis_encode(ev, flags, &h, err, sizeof(err));
        if (!rc)
            rc = ofe_ce_redis_decode(&h, flags, &out, err, sizeof(err));
        break;
    }
    if (rc)
        fail_msg("binding %d mode %d flags %u: %d %s", bnd, mode, flags, rc, err);
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&buf);
    return out;
}

static void test_roundtrip_every_binding(void **state)
{
    struct ofe_ce *ev = rich_event();
    static const struct {
        enum binding b;
        enum ofe_ce_mode mode;
    } combos[] = {
        {HTTP, OFE_CE_BINARY},      {HTTP, OFE_CE_STRUCTURED}, {KAFKA, OFE_CE_BINARY},
        {KAFKA, OFE_CE_STRUCTURED}, {MQTT, OFE_CE_BINARY},     {MQTT, OFE_CE_STRUCTURED},
        {NATS, OFE_CE_BINARY},      {NATS, OFE_CE_STRUCTURED},
    };
    for (size_t i = 0; i < sizeof(combos) / sizeof(combos[0]); i++) {
        /* with type hints: the very same event (types included) */
        struct ofe_ce *got = through(ev, combos[i].b, combos[i].mode, OFE_CE_BIND_TYPEHINTS);
        if (combos[i].b == MQTT && combos[i].mode == OFE_CE_STRUCTURED) {
            /* MQTT 3.1.1 has nowhere to put hints: JSON types only */
            assert_int_equal(ofe_ce_get(got, "count", 5)->type, OFE_CE_T_INTEGER);
            assert_int_equal(ofe_ce_get(got, "when", 4)->type, OFE_CE_T_STRING);
        } else if (!ofe_ce_equal(ev, got)) {
            fail_msg("binding %d mode %d with hints: events differ", combos[i].b, combos[i].mode);
        }
        ofe_ce_unref(got);
        /* without: values and data exact, extensions String in binary mode */
        got = through(ev, combos[i].b, combos[i].mode, 0);
        if (combos[i].mode == OFE_CE_BINARY)
            assert_same(ev, got, false);
        else
            assert_int_equal(ofe_ce_get(got, "flag", 4)->type, OFE_CE_T_BOOLEAN);
        assert_int_equal(got->data_len, ev->data_len);
        assert_memory_equal(got->data, ev->data, ev->data_len);
        ofe_ce_unref(got);
    }
    /* Redis keeps types always */
    struct ofe_ce *got = through(ev, REDIS, OFE_CE_BINARY, 0);
    assert_true(ofe_ce_equal(ev, got));
    ofe_ce_unref(got);

    /* no data, empty data, text data, JSON data from a JSON event */
    struct ofe_ce *nodata = ofe_ce_dup(ev);
    ofe_ce_clear_data(nodata);
    for (int b = HTTP; b <= REDIS; b++) {
        got = through(nodata, (enum binding)b, OFE_CE_BINARY, OFE_CE_BIND_TYPEHINTS);
        assert_true(ofe_ce_equal(nodata, got));
        ofe_ce_unref(got);
    }
    /* Kafka and Redis tell empty data from none; the others cannot */
    assert_int_equal(ofe_ce_set_data(nodata, "", 0), 0);
    got = through(nodata, KAFKA, OFE_CE_BINARY, OFE_CE_BIND_TYPEHINTS);
    assert_true(ofe_ce_equal(nodata, got));
    ofe_ce_unref(got);
    got = through(nodata, REDIS, OFE_CE_BINARY, 0);
    assert_true(ofe_ce_equal(nodata, got));
    ofe_ce_unref(got);
    got = through(nodata, HTTP, OFE_CE_STRUCTURED, OFE_CE_BIND_TYPEHINTS);
    assert_true(ofe_ce_equal(nodata, got));
    ofe_ce_unref(got);
    ofe_ce_unref(nodata);
    ofe_ce_unref(ev);

    /* a JSON event's data keeps its bytes, and binary modes say
     * application/json for it */
    const char *j = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                    "\"data\":{\"k\": [1, 2.5, \"\\u00e9\"]}}";
    struct ofe_ce *je;
    assert_int_equal(ofe_ce_json_decode(j, strlen(j), &je, err, sizeof(err)), 0);
    for (int b = HTTP; b <= NATS; b++) {
        got = through(je, (enum binding)b, OFE_CE_BINARY, 0);
        assert_string_equal(ofe_ce_get_str(got, "datacontenttype"), "application/json");
        assert_int_equal(got->data_len, je->data_len);
        assert_memory_equal(got->data, je->data, je->data_len);
        ofe_ce_unref(got);
        got = through(je, (enum binding)b, OFE_CE_STRUCTURED, 0);
        assert_true(ofe_ce_equal(je, got));
        ofe_ce_unref(got);
    }
    got = through(je, REDIS, OFE_CE_BINARY, 0);
    assert_true(ofe_ce_equal(je, got)); /* Redis keeps the event as it is */
    ofe_ce_unref(got);
    ofe_ce_unref(je);
}

static void test_typehints_conflicts(void **state)
{
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    add(&h, "ce-specversion", "1.0");
    add(&h, "ce-id", "1");
    add(&h, "ce-source", "/s");
    add(&h, "ce-type", "t");
    add(&h, "ce-n", "abc");
    add(&h, "ofe-cetypes", "n=integer, missing=boolean");
    struct ofe_ce *ev;
    assert_int_equal(http_decode1(&h, NULL, OFE_CE_BIND_TYPEHINTS, &ev), OFE_EINVAL);
    assert_non_null(strstr(err, "header \"ce-n\": attribute 'n': \"abc\" is not an Integer"));
    ofe_hdrs_fini(&h);

    /* structured: a hint that contradicts a JSON type */
    ofe_hdrs_init(&h);
    add(&h, "Content-Type", "application/cloudevents+json");
    add(&h, "ofe-cetypes", "n=boolean");
    const char *j =
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"n\":1}";
    struct ofe_ce_list l = {0};
    assert_int_equal(
        ofe_ce_http_decode(&h, j, strlen(j), OFE_CE_BIND_TYPEHINTS, &l, err, sizeof(err)),
        OFE_EINVAL);
    assert_string_equal(err, "attribute 'n' is Integer but header ofe-cetypes says Boolean");
    ofe_hdrs_fini(&h);
}

/* ---- Kafka specifics ----------------------------------------------------- */

static void test_kafka(void **state)
{
    struct ofe_ce *ev = rich_event();
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf buf = OFE_BUF_INIT;
    const void *v, *k;
    size_t vlen, klen;
    assert_int_equal(
        ofe_ce_kafka_encode(ev, OFE_CE_BINARY, 0, &h, &buf, &v, &vlen, &k, &klen, err, sizeof(err)),
        0);
    /* UTF-8 values, not percent-encoded; content-type, no ce_datacontenttype */
    assert_string_equal(hval(&h, "ce_subject"), EURO);
    assert_string_equal(hval(&h, "ce_id"), "id with spaces \"quoted\" 100%");
    assert_string_equal(hval(&h, "content-type"), "application/octet-stream");
    assert_null(ofe_hdrs_get(&h, "ce_datacontenttype"));
    assert_string_equal(h.v[0].name, "ce_specversion");
    ofe_hdrs_fini(&h);

    /* no data: a tombstone (no value) */
    ofe_ce_clear_data(ev);
    ofe_hdrs_init(&h);
    assert_int_equal(
        ofe_ce_kafka_encode(ev, OFE_CE_BINARY, 0, &h, &buf, &v, &vlen, &k, &klen, err, sizeof(err)),
        0);
    assert_null(v);
    struct ofe_ce *got;
    assert_int_equal(ofe_ce_kafka_decode(&h, k, klen, NULL, 0, 0, &got, err, sizeof(err)), 0);
    assert_false(got->has_data);
    ofe_ce_unref(got);
    ofe_hdrs_fini(&h);

    /* the record key becomes partitionkey when no header gives one */
    ofe_hdrs_init(&h);
    add(&h, "ce_specversion", "1.0");
    add(&h, "ce_id", "1");
    add(&h, "ce_source", "/s");
    add(&h, "ce_type", "t");
    assert_int_equal(ofe_ce_kafka_decode(&h, "user-7", 6, "v", 1, 0, &got, err, sizeof(err)), 0);
    assert_string_equal(ofe_ce_get_str(got, "partitionkey"), "user-7");
    assert_null(ofe_ce_get(got, "datacontenttype", 15));
    ofe_ce_unref(got);
    /* ... but a binary key is not an attribute */
    assert_int_equal(ofe_ce_kafka_decode(&h, "\xff\x00", 2, "v", 1, 0, &got, err, sizeof(err)), 0);
    assert_null(ofe_ce_get(got, "partitionkey", 12));
    ofe_ce_unref(got);
    add(&h, "ce_partitionkey", "from-header");
    assert_int_equal(ofe_ce_kafka_decode(&h, "user-7", 6, "v", 1, 0, &got, err, sizeof(err)), 0);
    assert_string_equal(ofe_ce_get_str(got, "partitionkey"), "from-header");
    ofe_ce_unref(got);
    /* Kafka values are not percent-decoded; invalid UTF-8 is refused */
    add(&h, "ce_x", "100%25");
    add(&h, "ce_bad", "\xff");
    assert_int_equal(ofe_ce_kafka_decode(&h, NULL, 0, NULL, 0, 0, &got, err, sizeof(err)),
                     OFE_EINVAL);
    assert_string_equal(err, "header \"ce_bad\": attribute 'bad': invalid UTF-8 at byte 1");
    ofe_hdrs_fini(&h);
    /* structured with a batch type is refused */
    ofe_hdrs_init(&h);
    add(&h, "content-type", "application/cloudevents-batch+json");
    assert_int_equal(ofe_ce_kafka_decode(&h, NULL, 0, "[]", 2, 0, &got, err, sizeof(err)),
                     OFE_EINVAL);
    assert_non_null(strstr(err, "no batch mode"));
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&buf);
    ofe_ce_unref(ev);
}

/* ---- MQTT specifics ------------------------------------------------------ */

static void test_mqtt(void **state)
{
    struct ofe_ce *ev = rich_event();
    struct ofe_hdrs p;
    ofe_hdrs_init(&p);
    struct ofe_buf buf = OFE_BUF_INIT;
    const void *pl;
    size_t plen;
    const char *ct;
    assert_int_equal(
        ofe_ce_mqtt_encode(ev, OFE_CE_BINARY, 0, &p, &ct, &buf, &pl, &plen, err, sizeof(err)), 0);
    assert_string_equal(ct, "application/octet-stream");
    assert_string_equal(p.v[0].name, "specversion"); /* bare names */
    assert_string_equal(hval(&p, "subject"), EURO);
    assert_null(ofe_hdrs_get(&p, "datacontenttype"));
    /* user properties that are not attributes belong to the application */
    add(&p, "X-Trace", "abc");
    struct ofe_ce *got;
    assert_int_equal(ofe_ce_mqtt_decode(&p, ct, pl, plen, 0, &got, err, sizeof(err)), 0);
    assert_same(ev, got, false);
    ofe_ce_unref(got);
    ofe_hdrs_fini(&p);

    /* MQTT 3.1.1: no properties, no content type, JSON payload */
    ofe_hdrs_init(&p);
    ofe_buf_reset(&buf);
    assert_int_equal(
        ofe_ce_mqtt_encode(ev, OFE_CE_STRUCTURED, 0, &p, &ct, &buf, &pl, &plen, err, sizeof(err)),
        0);
    assert_int_equal(p.n, 0);
    assert_string_equal(ct, OFE_CE_JSON_MEDIA);
    assert_int_equal(ofe_ce_mqtt_decode(NULL, NULL, pl, plen, 0, &got, err, sizeof(err)), 0);
    assert_int_equal(got->data_len, ev->data_len);
    ofe_ce_unref(got);
    assert_int_equal(ofe_ce_mqtt_decode(NULL, NULL, "not json", 8, 0, &got, err, sizeof(err)),
                     OFE_EPARSE);
    assert_non_null(strstr(err, "invalid JSON at line 1, column 1"));
    ofe_hdrs_fini(&p);
    ofe_buf_fini(&buf);
    ofe_ce_unref(ev);
}

/* ---- NATS specifics ------------------------------------------------------ */

static void test_nats(void **state)
{
    struct ofe_ce *ev = rich_event();
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    struct ofe_buf buf = OFE_BUF_INIT;
    const void *b;
    size_t blen;
    assert_int_equal(
        ofe_ce_nats_encode(ev, OFE_CE_BINARY, 0, &h, &buf, &b, &blen, err, sizeof(err)), 0);
    assert_string_equal(hval(&h, "ce-datacontenttype"), "application/octet-stream");
    assert_string_equal(hval(&h, "Content-Type"), "application/octet-stream");
    assert_string_equal(hval(&h, "ce-subject"), EURO_PCT);
    ofe_hdrs_fini(&h);
    /* a sender that gives only Content-Type */
    ofe_hdrs_init(&h);
    add(&h, "ce-specversion", "1.0");
    add(&h, "ce-id", "1");
    add(&h, "ce-source", "/s");
    add(&h, "ce-type", "t");
    add(&h, "Content-Type", "text/plain");
    struct ofe_ce *got;
    assert_int_equal(ofe_ce_nats_decode(&h, "hi", 2, 0, &got, err, sizeof(err)), 0);
    assert_string_equal(ofe_ce_get_str(got, "datacontenttype"), "text/plain");
    ofe_ce_unref(got);
    /* ce-datacontenttype wins over Content-Type */
    add(&h, "ce-datacontenttype", "text/csv");
    assert_int_equal(ofe_ce_nats_decode(&h, "hi", 2, 0, &got, err, sizeof(err)), 0);
    assert_string_equal(ofe_ce_get_str(got, "datacontenttype"), "text/csv");
    ofe_ce_unref(got);
    add(&h, "ce-subject", "%E2%82");
    assert_int_equal(ofe_ce_nats_decode(&h, "hi", 2, 0, &got, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "header \"ce-subject\": decodes to invalid UTF-8"));
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&buf);
    ofe_ce_unref(ev);
}

/* ---- Redis specifics ----------------------------------------------------- */

static void test_redis(void **state)
{
    struct ofe_ce *ev = rich_event();
    struct ofe_hdrs f;
    ofe_hdrs_init(&f);
    assert_int_equal(ofe_ce_redis_encode(ev, 0, &f, err, sizeof(err)), 0);
    /* the documented layout (docs/bindings.md), field by field */
    static const char *want[][2] = {
        {"ofe-ce", "1"},
        {"specversion", "1.0"},
        {"id", "id with spaces \"quoted\" 100%"},
        {"source", "https://example.com/src?a=1&b=%20"},
        {"type", "com.example.rich"},
        {"datacontenttype", "application/octet-stream"},
        {"dataschema", "https://example.com/schema"},
        {"subject", EURO},
        {"time", "2018-04-05T17:31:00.5+02:00"},
        {"flag", "true"},
        {"count", "-42"},
        {"text", "plain, text; with=chars"},
        {"blob", "AP+A"},
        {"link", "urn:x:y"},
        {"ref", "/relative/ref"},
        {"when", "2030-01-01T00:00:00Z"},
        {"partitionkey", "key-1"},
        {"ofe-cetypes",
         "flag=boolean,count=integer,blob=binary,link=uri,ref=urireference,when=timestamp"},
    };
    size_t nw = sizeof(want) / sizeof(want[0]);
    assert_int_equal(f.n, nw + 1);
    for (size_t i = 0; i < nw; i++) {
        assert_int_equal(f.v[i].name_len, strlen(want[i][0]));
        assert_memory_equal(f.v[i].name, want[i][0], f.v[i].name_len);
        assert_int_equal(f.v[i].value_len, strlen(want[i][1]));
        assert_memory_equal(f.v[i].value, want[i][1], f.v[i].value_len);
    }
    assert_int_equal(f.v[nw].name_len, 4);
    assert_memory_equal(f.v[nw].name, "data", 4);
    assert_int_equal(f.v[nw].value_len, ev->data_len);
    assert_memory_equal(f.v[nw].value, ev->data, ev->data_len);
    ofe_hdrs_fini(&f);

    struct ofe_ce *got;
    /* errors */
    ofe_hdrs_init(&f);
    add(&f, "foo", "bar");
    assert_int_equal(ofe_ce_redis_decode(&f, 0, &got, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "not a CloudEvents stream entry: no 'ofe-ce' field and no JSON "
                             "'data' field");
    ofe_hdrs_reset(&f);
    add(&f, "ofe-ce", "2");
    assert_int_equal(ofe_ce_redis_decode(&f, 0, &got, err, sizeof(err)), OFE_EUNSUPP);
    assert_string_equal(err, "unsupported Redis binding version \"2\" (this build reads version "
                             "1)");
    ofe_hdrs_reset(&f);
    add(&f, "ofe-ce", "1");
    add(&f, "specversion", "1.0");
    add(&f, "id", "1");
    add(&f, "source", "/s");
    add(&f, "type", "t");
    add(&f, "n", "7");
    add(&f, "Other", "ignored");
    add(&f, "ofe-cetypes", "n=integer");
    assert_int_equal(ofe_ce_redis_decode(&f, 0, &got, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_get(got, "n", 1)->ival, 7);
    assert_null(ofe_ce_get(got, "other", 5));
    assert_false(got->has_data);
    ofe_ce_unref(got);
    add(&f, "id", "2");
    assert_int_equal(ofe_ce_redis_decode(&f, 0, &got, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "header \"id\": attribute given twice");
    ofe_hdrs_fini(&f);
    /* Dapr's pubsub.redis entries: one "data" field with a JSON CloudEvent */
    ofe_hdrs_init(&f);
    add(&f, "data",
        "{\"specversion\":\"1.0\",\"id\":\"d\",\"source\":\"dapr\",\"type\":\"t\","
        "\"data\":{\"x\":1}}");
    assert_int_equal(ofe_ce_redis_decode(&f, 0, &got, err, sizeof(err)), 0);
    assert_string_equal(ofe_ce_get_str(got, "id"), "d");
    assert_memory_equal(got->data, "{\"x\":1}", 7);
    ofe_ce_unref(got);
    ofe_hdrs_fini(&f);
    ofe_ce_unref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pct),
        cmocka_unit_test(test_hdrs),
        cmocka_unit_test(test_http_mode),
        cmocka_unit_test(test_http_binary_encode),
        cmocka_unit_test(test_http_binary_decode),
        cmocka_unit_test(test_http_binary_errors),
        cmocka_unit_test(test_http_structured_and_batch),
        cmocka_unit_test(test_http_spec_example_euro),
        cmocka_unit_test(test_http_json_data_content_type),
        cmocka_unit_test(test_roundtrip_every_binding),
        cmocka_unit_test(test_typehints_conflicts),
        cmocka_unit_test(test_kafka),
        cmocka_unit_test(test_mqtt),
        cmocka_unit_test(test_nats),
        cmocka_unit_test(test_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
