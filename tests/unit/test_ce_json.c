/* JSON event format and JSON batch format: the spec's examples, the data /
 * data_base64 rules, every decode error path, and round trips. */
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
#include "testutil.h"

static char err[512];

static char *fixture(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/ce/%s", tu_source_dir(), name);
    char *p = tu_read_file(path, len);
    if (!p)
        fail_msg("cannot read %s", path);
    return p;
}

static struct ofe_ce *decode_ok(const char *json)
{
    struct ofe_ce *ev = NULL;
    int rc = ofe_ce_json_decode(json, strlen(json), &ev, err, sizeof(err));
    if (rc)
        fail_msg("decode failed (%d): %s\n%s", rc, err, json);
    return ev;
}

static void decode_bad(const char *json, int want_rc, const char *want)
{
    struct ofe_ce *ev = NULL;
    err[0] = '\0';
    int rc = ofe_ce_json_decode(json, strlen(json), &ev, err, sizeof(err));
    if (rc != want_rc)
        fail_msg("decode of %s: expected %d, got %d (%s)", json, want_rc, rc, err);
    if (!strstr(err, want))
        fail_msg("decode of %s: message \"%s\" lacks \"%s\"", json, err, want);
    assert_null(ev);
}

static char *encode_ok(const struct ofe_ce *ev)
{
    struct ofe_buf b = OFE_BUF_INIT;
    int rc = ofe_ce_json_encode(ev, &b, err, sizeof(err));
    if (rc)
        fail_msg("encode failed: %s", err);
    return ofe_buf_detach(&b, NULL);
}

/* decode -> encode -> decode gives an equal event, and encoding that again
 * gives the same bytes. */
static void roundtrip(const struct ofe_ce *ev)
{
    char *j1 = encode_ok(ev);
    struct ofe_ce *ev2 = decode_ok(j1);
    assert_true(ofe_ce_equal(ev, ev2));
    char *j2 = encode_ok(ev2);
    assert_string_equal(j1, j2);
    free(j1);
    free(j2);
    ofe_ce_unref(ev2);
}

#define REQ "\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\""

static void test_spec_binary_example(void **state)
{
    size_t len;
    char *j = fixture("spec-binary-data.json", &len);
    struct ofe_ce *ev = NULL;
    assert_int_equal(ofe_ce_json_decode(j, len, &ev, err, sizeof(err)), 0);
    assert_string_equal(ofe_ce_get_str(ev, "id"), "A234-1234-1234");
    assert_string_equal(ofe_ce_get_str(ev, "source"), "/mycontext");
    assert_string_equal(ofe_ce_get_str(ev, "time"), "2018-04-05T17:31:00Z");
    const struct ofe_ce_attr *a = ofe_ce_get(ev, "comexampleothervalue", 20);
    assert_int_equal(a->type, OFE_CE_T_INTEGER);
    assert_int_equal(a->ival, 5);
    assert_int_equal(ofe_ce_get(ev, "comexampleextension1", 20)->type, OFE_CE_T_STRING);
    /* data_base64 decodes to the bytes */
    assert_true(ev->has_data);
    assert_false(ev->data_is_json);
    assert_int_equal(ev->data_len, 17);
    assert_memory_equal(ev->data, "\x80\x01\x00\x01\x00\x00\x00\x04ping\x00\x00\x00\x00\x00", 17);
    char *out = encode_ok(ev);
    assert_string_equal(out, "{\"specversion\":\"1.0\",\"id\":\"A234-1234-1234\",\"source\":"
                             "\"/mycontext\",\"type\":\"com.example.someevent\","
                             "\"datacontenttype\":\"application/vnd.apache.thrift.binary\","
                             "\"time\":\"2018-04-05T17:31:00Z\",\"comexampleextension1\":"
                             "\"value\",\"comexampleothervalue\":5,\"data_base64\":"
                             "\"gAEAAQAAAARwaW5nAAAAAAA=\"}");
    free(out);
    roundtrip(ev);
    ofe_ce_unref(ev);
    free(j);
}

static void test_spec_xml_example(void **state)
{
    size_t len;
    char *j = fixture("spec-xml-data.json", &len);
    struct ofe_ce *ev = NULL;
    assert_int_equal(ofe_ce_json_decode(j, len, &ev, err, sizeof(err)), 0);
    assert_null(ofe_ce_get(ev, "unsetextension", 14)); /* null means unset */
    /* a string with a non-JSON type is the string's bytes */
    assert_false(ev->data_is_json);
    assert_int_equal(ev->data_len, 17);
    assert_memory_equal(ev->data, "<much wow=\"xml\"/>", 17);
    char *out = encode_ok(ev);
    assert_non_null(strstr(out, ",\"data\":\"<much wow=\\\"xml\\\"/>\"}"));
    free(out);
    roundtrip(ev);
    ofe_ce_unref(ev);
    free(j);
}

static void test_spec_json_example(void **state)
{
    size_t len;
    char *j = fixture("spec-json-data.json", &len);
    struct ofe_ce *ev = NULL;
    assert_int_equal(ofe_ce_json_decode(j, len, &ev, err, sizeof(err)), 0);
    assert_null(ofe_ce_get(ev, "subject", 7));
    /* JSON data: the exact bytes of the value, never re-formatted */
    const char *want = "{\n        \"appinfoA\" : \"abc\",\n        \"appinfoB\" : 123,\n"
                       "        \"appinfoC\" : true\n    }";
    assert_true(ev->data_is_json);
    assert_int_equal(ev->data_len, strlen(want));
    assert_memory_equal(ev->data, want, strlen(want));
    char *out = encode_ok(ev);
    assert_non_null(strstr(out, "\"data\":{\n        \"appinfoA\""));
    free(out);
    roundtrip(ev);
    ofe_ce_unref(ev);
    free(j);
}

static void test_spec_string_example(void **state)
{
    size_t len;
    char *j = fixture("spec-string-data.json", &len);
    struct ofe_ce *ev = NULL;
    assert_int_equal(ofe_ce_json_decode(j, len, &ev, err, sizeof(err)), 0);
    assert_null(ofe_ce_get(ev, "datacontenttype", 15));
    /* no datacontenttype: JSON; the data is the JSON string, quotes included */
    assert_true(ev->data_is_json);
    assert_int_equal(ev->data_len, 19);
    assert_memory_equal(ev->data, "\"I'm just a string\"", 19);
    roundtrip(ev);
    ofe_ce_unref(ev);
    free(j);
}

static void test_strings_not_decoded_twice(void **state)
{
    /* non-JSON type: the string's bytes, which happen to look like JSON */
    struct ofe_ce *ev = decode_ok("{" REQ ",\"datacontenttype\":\"text/plain\","
                                  "\"data\":\"{\\\"a\\\":1}\"}");
    assert_false(ev->data_is_json);
    assert_int_equal(ev->data_len, 7);
    assert_memory_equal(ev->data, "{\"a\":1}", 7);
    roundtrip(ev);
    ofe_ce_unref(ev);
    /* JSON type: the value is a JSON string; it stays one, not an object */
    ev = decode_ok("{" REQ ",\"datacontenttype\":\"application/json\","
                   "\"data\":\"{\\\"a\\\":1}\"}");
    assert_true(ev->data_is_json);
    assert_int_equal(ev->data_len, 11);
    assert_memory_equal(ev->data, "\"{\\\"a\\\":1}\"", 11);
    roundtrip(ev);
    ofe_ce_unref(ev);
}

static void test_data_null_and_members(void **state)
{
    /* "data": null is an explicit JSON null payload */
    struct ofe_ce *ev = decode_ok("{" REQ ",\"data\":null}");
    assert_true(ev->has_data);
    assert_int_equal(ev->data_len, 4);
    assert_memory_equal(ev->data, "null", 4);
    ofe_ce_unref(ev);
    /* data_base64: null is unset, so data wins */
    ev = decode_ok("{" REQ ",\"data_base64\":null,\"data\":[1, 2]}");
    assert_memory_equal(ev->data, "[1, 2]", 6);
    ofe_ce_unref(ev);
    /* no data at all */
    ev = decode_ok("{" REQ "}");
    assert_false(ev->has_data);
    char *out = encode_ok(ev);
    assert_string_equal(out, "{" REQ "}");
    free(out);
    ofe_ce_unref(ev);
    /* empty base64 is empty data */
    ev = decode_ok("{" REQ ",\"data_base64\":\"\"}");
    assert_true(ev->has_data);
    assert_int_equal(ev->data_len, 0);
    ofe_ce_unref(ev);
    /* escaped keys and values are decoded */
    ev = decode_ok("{\"specversion\":\"1.0\",\"i\\u0064\":\"\\u00e9\\ud83d\\ude00\\/\","
                   "\"source\":\"/s\",\"type\":\"t\"}");
    assert_string_equal(ofe_ce_get_str(ev, "id"), "\xc3\xa9\xf0\x9f\x98\x80/");
    ofe_ce_unref(ev);
}

static void test_extension_types(void **state)
{
    struct ofe_ce *ev = decode_ok("{" REQ ",\"n\":-0,\"m\":-2147483648,\"b\":true,\"f\":false,"
                                  "\"s\":\"5\",\"e\":\"\"}");
    assert_int_equal(ofe_ce_get(ev, "n", 1)->type, OFE_CE_T_INTEGER);
    assert_string_equal(ofe_ce_get_str(ev, "n"), "0");
    assert_int_equal(ofe_ce_get(ev, "m", 1)->ival, INT32_MIN);
    assert_int_equal(ofe_ce_get(ev, "b", 1)->type, OFE_CE_T_BOOLEAN);
    assert_int_equal(ofe_ce_get(ev, "b", 1)->ival, 1);
    assert_int_equal(ofe_ce_get(ev, "f", 1)->ival, 0);
    assert_int_equal(ofe_ce_get(ev, "s", 1)->type, OFE_CE_T_STRING);
    assert_string_equal(ofe_ce_get_str(ev, "e"), "");
    char *out = encode_ok(ev);
    assert_string_equal(out, "{" REQ ",\"n\":0,\"m\":-2147483648,\"b\":true,\"f\":false,"
                             "\"s\":\"5\",\"e\":\"\"}");
    free(out);
    roundtrip(ev);
    /* types without a JSON type of their own are strings in JSON */
    assert_int_equal(ofe_ce_set_str(ev, "u", OFE_CE_T_URI, "http://x/?a=\"b\"", err, sizeof(err)),
                     OFE_EINVAL); /* '"' is not allowed in a URI */
    assert_int_equal(ofe_ce_set_str(ev, "u", OFE_CE_T_URI, "http://x/", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "bin", OFE_CE_T_BINARY, "AAE=", err, sizeof(err)), 0);
    out = encode_ok(ev);
    assert_non_null(strstr(out, ",\"u\":\"http://x/\",\"bin\":\"AAE=\"}"));
    free(out);
    ofe_ce_unref(ev);
}

struct data_case {
    const char *ct;   /* NULL: no datacontenttype */
    const char *data; /* bytes */
    size_t len;
    const char *member; /* what the encoder writes */
};

static void test_encode_data_rules(void **state)
{
    static const struct data_case cases[] = {
        {NULL, "{\"a\":1}", 7, ",\"data\":{\"a\":1}}"},
        {NULL, "not json", 8, ",\"data_base64\":\"bm90IGpzb24=\"}"},
        {"application/json", "[1,2]", 5, ",\"data\":[1,2]}"},
        {"application/json", "\"str\"", 5, ",\"data\":\"str\"}"},
        /* bytes with whitespace around would not come back the same */
        {"application/json", " {}\n", 4, ",\"data_base64\":\"IHt9Cg==\"}"},
        {"application/vnd.x+json", "true", 4, ",\"data\":true}"},
        {"text/plain", "h\xc3\xa9llo\n\t\"\\\x01", 11,
         ",\"data\":\"h\xc3\xa9llo\\n\\t\\\"\\\\\\u0001\"}"},
        {"text/plain", "bad \xff utf8", 10, ",\"data_base64\":\"YmFkIP8gdXRmOA==\"}"},
        {"application/xml", "<a/>", 4, ",\"data\":\"<a/>\"}"},
        {"application/octet-stream", "abc", 3, ",\"data_base64\":\"YWJj\"}"},
        {"image/png", "\x89PNG", 4, ",\"data_base64\":\"iVBORw==\"}"},
        {"application/x-www-form-urlencoded", "a=1&b=2", 7, ",\"data\":\"a=1&b=2\"}"},
        {"application/foo; charset=utf-8", "txt", 3, ",\"data\":\"txt\"}"},
        {"text/plain", "", 0, ",\"data\":\"\"}"},
        {"application/json", "", 0, ",\"data_base64\":\"\"}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ofe_ce *ev = decode_ok("{" REQ "}");
        if (cases[i].ct)
            assert_int_equal(
                ofe_ce_set_str(ev, "datacontenttype", OFE_CE_T_NONE, cases[i].ct, err, sizeof(err)),
                0);
        assert_int_equal(ofe_ce_set_data(ev, cases[i].data, cases[i].len), 0);
        char *out = encode_ok(ev);
        if (!strstr(out, cases[i].member))
            fail_msg("case %zu: %s lacks %s", i, out, cases[i].member);
        /* whatever the representation, the bytes come back exactly */
        struct ofe_ce *back = decode_ok(out);
        assert_int_equal(back->data_len, cases[i].len);
        assert_memory_equal(back->data, cases[i].data, cases[i].len);
        assert_true(ofe_ce_equal(ev, back));
        free(out);
        ofe_ce_unref(back);
        ofe_ce_unref(ev);
    }
}

static void test_parse_errors(void **state)
{
    decode_bad("", OFE_EPARSE, "invalid JSON at line 1, column 1: empty input");
    decode_bad("   \n ", OFE_EPARSE, "empty input");
    decode_bad("{", OFE_EPARSE, "expected a string key or '}'");
    decode_bad("{\"specversion\":\"1.0\",\n \"id\":\"1\"\n \"source\":\"/s\"}", OFE_EPARSE,
               "invalid JSON at line 3, column 2: expected ',' or '}'");
    decode_bad("{\"a\" 1}", OFE_EPARSE, "expected ':' after an object key");
    decode_bad("{\"a\":1,}", OFE_EPARSE, "expected a string key after ','");
    decode_bad("{" REQ "} x", OFE_EPARSE, "unexpected data after the JSON object");
    decode_bad("{" REQ ",\"x\":\"\xff\"}", OFE_EPARSE, "invalid UTF-8 in a string");
    decode_bad("{" REQ ",\"x\":\"a\nb\"}", OFE_EPARSE, "control character in a string");
    decode_bad("{" REQ ",\"x\":\"\\q\"}", OFE_EPARSE, "invalid escape sequence");
    decode_bad("{" REQ ",\"x\":\"\\u12\"}", OFE_EPARSE, "bad \\u escape");
    decode_bad("{" REQ ",\"x\":\"\\uDEAD\"}", OFE_EPARSE, "unpaired UTF-16 surrogate");
    decode_bad("{" REQ ",\"x\":\"\\uD83D\"}", OFE_EPARSE, "unpaired UTF-16 surrogate");
    decode_bad("{" REQ ",\"x\":\"open}", OFE_EPARSE, "unterminated string");
    decode_bad("{" REQ ",\"data\":01}", OFE_EPARSE, "invalid number (leading zero)");
    decode_bad("{" REQ ",\"data\":1.}", OFE_EPARSE, "invalid number");
    decode_bad("{" REQ ",\"data\":-}", OFE_EPARSE, "invalid number");
    decode_bad("{" REQ ",\"data\":tru}", OFE_EPARSE, "invalid literal");
    decode_bad("{" REQ ",\"data\":[1,]}", OFE_EPARSE, "unexpected character (expected a JSON");
    decode_bad("{" REQ ",\"data\":[1 2]}", OFE_EPARSE, "expected ',' or ']'");
    decode_bad("{" REQ ",\"data\":{\"a\":1", OFE_EPARSE, "unexpected end of input");
    decode_bad("\xef\xbb\xbf{" REQ "}", OFE_EPARSE, "unexpected character");
    /* nesting is bounded */
    size_t deep = 3000;
    char *j = malloc(deep * 2 + 64);
    size_t n = (size_t)sprintf(j, "{" REQ ",\"data\":");
    for (size_t i = 0; i < deep; i++)
        j[n++] = '[';
    for (size_t i = 0; i < deep; i++)
        j[n++] = ']';
    j[n++] = '}';
    j[n] = '\0';
    decode_bad(j, OFE_EPARSE, "nesting too deep");
    free(j);
}

static void test_event_errors(void **state)
{
    decode_bad("42", OFE_EINVAL, "expected a JSON object (one CloudEvent), found a number");
    decode_bad("\"x\"", OFE_EINVAL, "found a string");
    decode_bad("[{" REQ "}]", OFE_EINVAL, "found an array (a batch: use the batch format)");
    decode_bad("{}", OFE_EINVAL, "missing required attribute 'specversion'");
    decode_bad("{\"specversion\":\"0.3\",\"id\":\"1\"}", OFE_EINVAL,
               "attribute 'specversion': \"0.3\" is not supported");
    decode_bad("{\"specversion\":1.0}", OFE_EINVAL,
               "attribute 'specversion' must be a JSON string, not a number");
    decode_bad("{\"specversion\":\"1.0\",\"id\":5,\"source\":\"/s\",\"type\":\"t\"}", OFE_EINVAL,
               "attribute 'id' must be a JSON string, not a number");
    decode_bad("{\"specversion\":\"1.0\",\"id\":true,\"source\":\"/s\",\"type\":\"t\"}", OFE_EINVAL,
               "attribute 'id' must be a JSON string, not a boolean");
    decode_bad("{\"specversion\":\"1.0\",\"id\":null,\"source\":\"/s\",\"type\":\"t\"}", OFE_EINVAL,
               "missing required attribute 'id'");
    decode_bad("{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"/s\",\"type\":\"t\"}", OFE_EINVAL,
               "attribute 'id' must not be empty");
    decode_bad("{" REQ ",\"id\":\"2\"}", OFE_EINVAL, "member \"id\" appears twice");
    decode_bad("{" REQ ",\"data\":1,\"data\":2}", OFE_EINVAL, "member \"data\" appears twice");
    decode_bad("{" REQ ",\"MyExt\":\"x\"}", OFE_EINVAL,
               "attribute name \"MyExt\": character \"M\" at position 1 is not allowed");
    decode_bad("{" REQ ",\"my_ext\":\"x\"}", OFE_EINVAL, "character \"_\" at position 3");
    decode_bad("{" REQ ",\"\":\"x\"}", OFE_EINVAL, "attribute name is empty");
    decode_bad("{" REQ ",\"o\":{\"a\":1}}", OFE_EINVAL,
               "attribute 'o': an object is not a valid attribute value");
    decode_bad("{" REQ ",\"a\":[1]}", OFE_EINVAL, "attribute 'a': an array is not a valid");
    decode_bad("{" REQ ",\"n\":1.5}", OFE_EINVAL, "attribute 'n': \"1.5\" is not an Integer");
    decode_bad("{" REQ ",\"n\":1e2}", OFE_EINVAL, "is not an Integer");
    decode_bad("{" REQ ",\"n\":2147483648}", OFE_EINVAL, "out of the Integer range");
    decode_bad("{" REQ ",\"data\":{},\"data_base64\":\"AA==\"}", OFE_EINVAL,
               "'data' and 'data_base64' are exclusive");
    decode_bad("{" REQ ",\"data\":null,\"data_base64\":\"AA==\"}", OFE_EINVAL,
               "'data' and 'data_base64' are exclusive");
    decode_bad("{" REQ ",\"data_base64\":5}", OFE_EINVAL,
               "'data_base64' must be a JSON string, not a number");
    decode_bad("{" REQ ",\"data_base64\":\"AAA\"}", OFE_EINVAL,
               "'data_base64' is not Base64 (RFC 4648): length is not a multiple of 4");
    decode_bad("{" REQ ",\"data_base64\":\"A*==\"}", OFE_EINVAL, "not in the Base64 alphabet");
    decode_bad("{" REQ ",\"subject\":\"a\\nb\"}", OFE_EINVAL,
               "attribute 'subject': control character U+000A at byte 2");
    decode_bad("{" REQ ",\"x\":\"\\u0000\"}", OFE_EINVAL, "control character U+0000");
    decode_bad("{" REQ ",\"time\":\"2018-04-05\"}", OFE_EINVAL,
               "attribute 'time': \"2018-04-05\" is not an RFC 3339 timestamp");
    decode_bad("{" REQ ",\"dataschema\":\"rel/path\"}", OFE_EINVAL, "is not an absolute URI");
    decode_bad("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"a b\",\"type\":\"t\"}",
               OFE_EINVAL, "attribute 'source': \"a b\" is not a URI-reference");
    decode_bad("{" REQ ",\"datacontenttype\":\"json\"}", OFE_EINVAL,
               "attribute 'datacontenttype': \"json\" is not a media type");
    decode_bad("{" REQ ",\"datacontenttype\":7}", OFE_EINVAL,
               "attribute 'datacontenttype' must be a JSON string");
}

static void test_many_members(void **state)
{
    /* more members than the duplicate check does pairwise */
    struct ofe_buf b = OFE_BUF_INIT;
    ofe_buf_puts(&b, "{" REQ);
    for (int i = 0; i < 200; i++)
        ofe_buf_printf(&b, ",\"e%d\":%d", i, i);
    ofe_buf_puts(&b, "}");
    struct ofe_ce *ev = decode_ok(b.data);
    assert_int_equal(ev->next, 200);
    assert_int_equal(ofe_ce_get(ev, "e199", 4)->ival, 199);
    roundtrip(ev);
    ofe_ce_unref(ev);
    b.len--;
    ofe_buf_puts(&b, ",\"e77\":1}");
    decode_bad(b.data, OFE_EINVAL, "member \"e77\" appears twice");
    ofe_buf_fini(&b);
}

static void test_large_data(void **state)
{
    struct ofe_buf b = OFE_BUF_INIT;
    ofe_buf_puts(&b, "{" REQ ",\"data\":[");
    for (int i = 0; i < 20000; i++)
        ofe_buf_printf(&b, "%s{\"k\":\"v%d\",\"n\":%d.5e-3}", i ? "," : "", i, i);
    ofe_buf_puts(&b, "]}");
    struct ofe_ce *ev = decode_ok(b.data);
    assert_true(ev->data_is_json);
    assert_true(ev->data_len > 400000);
    roundtrip(ev);
    char *out = encode_ok(ev);
    assert_string_equal(out, b.data); /* compact input comes back byte for byte */
    free(out);
    ofe_ce_unref(ev);
    ofe_buf_fini(&b);

    /* large binary data through data_base64 */
    ev = decode_ok("{" REQ "}");
    size_t n = 100003;
    unsigned char *d = malloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = (unsigned char)(i * 31 + 7);
    assert_int_equal(ofe_ce_set_data(ev, d, n), 0);
    roundtrip(ev);
    free(d);
    ofe_ce_unref(ev);
}

static void test_encode_invalid(void **state)
{
    struct ofe_ce *ev = ofe_ce_new();
    struct ofe_buf b = OFE_BUF_INIT;
    ofe_buf_puts(&b, "keep");
    assert_int_equal(ofe_ce_json_encode(ev, &b, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "missing required attribute 'specversion'");
    assert_string_equal(b.data, "keep");
    assert_int_equal(b.len, 4);
    ofe_buf_fini(&b);
    ofe_ce_unref(ev);
}

static void test_batch(void **state)
{
    size_t len;
    char *j = fixture("spec-batch.json", &len);
    struct ofe_ce_list l = {0};
    assert_int_equal(ofe_ce_json_decode_batch(j, len, &l, err, sizeof(err)), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(ofe_ce_get_str(l.v[0], "source"), "/mycontext/4");
    assert_int_equal(l.v[0]->data_len, 17);
    assert_true(l.v[1]->data_is_json);
    struct ofe_buf b = OFE_BUF_INIT;
    assert_int_equal(ofe_ce_json_encode_batch(l.v, l.n, &b, err, sizeof(err)), 0);
    assert_true(b.data[0] == '[' && b.data[b.len - 1] == ']');
    struct ofe_ce_list l2 = {0};
    assert_int_equal(ofe_ce_json_decode_batch(b.data, b.len, &l2, err, sizeof(err)), 0);
    assert_int_equal(l2.n, 2);
    assert_true(ofe_ce_equal(l.v[0], l2.v[0]));
    assert_true(ofe_ce_equal(l.v[1], l2.v[1]));
    ofe_ce_list_fini(&l2);
    ofe_buf_fini(&b);
    free(j);

    /* the empty batch */
    assert_int_equal(ofe_ce_json_decode_batch(" [ ] ", 5, &l2, err, sizeof(err)), 0);
    assert_int_equal(l2.n, 0);
    assert_int_equal(ofe_ce_json_encode_batch(NULL, 0, &b, err, sizeof(err)), 0);
    assert_string_equal(b.data, "[]");
    ofe_buf_fini(&b);

    /* an error names the event and appends nothing (l keeps its 2) */
    const char *bad = "[{" REQ "},{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\"}]";
    assert_int_equal(ofe_ce_json_decode_batch(bad, strlen(bad), &l, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "event [1]: missing required attribute 'type'");
    assert_int_equal(l.n, 2);
    bad = "[{" REQ "}, 7]";
    assert_int_equal(ofe_ce_json_decode_batch(bad, strlen(bad), &l, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "event [1]: expected a JSON object (a CloudEvent), found a number");
    bad = "[{" REQ "},";
    assert_int_equal(ofe_ce_json_decode_batch(bad, strlen(bad), &l, err, sizeof(err)), OFE_EPARSE);
    assert_non_null(strstr(err, "invalid JSON at line 1"));
    assert_int_equal(
        ofe_ce_json_decode_batch("{" REQ "}", strlen("{" REQ "}"), &l, err, sizeof(err)),
        OFE_EINVAL);
    assert_string_equal(err, "expected a JSON array (a batch of CloudEvents), found an object (a "
                             "single event)");
    assert_int_equal(l.n, 2);

    /* encoding a batch with an invalid event leaves the buffer alone */
    struct ofe_ce *evs[3] = {l.v[0], ofe_ce_new(), l.v[1]};
    ofe_buf_puts(&b, "x");
    assert_int_equal(ofe_ce_json_encode_batch(evs, 3, &b, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "event [1]: missing required attribute 'specversion'");
    assert_string_equal(b.data, "x");
    ofe_ce_unref(evs[1]);
    ofe_buf_fini(&b);
    ofe_ce_list_fini(&l);
}

struct bad_seen {
    size_t idx[8];
    char msg[8][256];
    size_t n;
};

static void on_bad(void *arg, size_t index, int e, const char *msg)
{
    struct bad_seen *s = arg;
    assert_int_equal(e, OFE_EINVAL);
    if (s->n < 8) {
        s->idx[s->n] = index;
        snprintf(s->msg[s->n], sizeof(s->msg[0]), "%s", msg);
        s->n++;
    }
}

static void test_batch_each(void **state)
{
    size_t len;
    char *j = fixture("bad-batch.json", &len);
    struct ofe_ce_list l = {0};
    struct bad_seen seen = {0};
    assert_int_equal(ofe_ce_json_decode_batch_each(j, len, &l, on_bad, &seen, err, sizeof(err)),
                     OFE_EINVAL);
    assert_int_equal(l.n, 2); /* the good ones */
    assert_string_equal(ofe_ce_get_str(l.v[0], "id"), "1");
    assert_string_equal(ofe_ce_get_str(l.v[1], "id"), "3");
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.idx[0], 1);
    assert_int_equal(seen.idx[1], 3);
    assert_non_null(strstr(seen.msg[0], "attribute name \"Upper\""));
    assert_non_null(strstr(seen.msg[1], "attribute 'count': \"2147483648\" is out of the"));
    assert_non_null(strstr(err, "event [1]: attribute name \"Upper\""));
    ofe_ce_list_fini(&l);
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_binary_example),
        cmocka_unit_test(test_spec_xml_example),
        cmocka_unit_test(test_spec_json_example),
        cmocka_unit_test(test_spec_string_example),
        cmocka_unit_test(test_strings_not_decoded_twice),
        cmocka_unit_test(test_data_null_and_members),
        cmocka_unit_test(test_extension_types),
        cmocka_unit_test(test_encode_data_rules),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_event_errors),
        cmocka_unit_test(test_many_members),
        cmocka_unit_test(test_large_data),
        cmocka_unit_test(test_encode_invalid),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_batch_each),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
