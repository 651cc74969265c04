/* CloudEvents event model: attributes, the type system's canonical string
 * forms and every error message path, data, copies and comparison. */
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

/* Sets name (NUL-terminated) with type and expects success. */
static void ok_set(struct ofe_ce *ev, const char *name, enum ofe_ce_type t, const char *v)
{
    err[0] = '\0';
    int rc = ofe_ce_set_str(ev, name, t, v, err, sizeof(err));
    if (rc)
        fail_msg("set %s=\"%s\": %s", name, v, err);
}

/* Expects OFE_EINVAL with `want` inside the message; the event keeps its
 * previous value. */
static void bad_set_len(struct ofe_ce *ev, const char *name, enum ofe_ce_type t, const char *v,
                        size_t vlen, const char *want)
{
    const struct ofe_ce_attr *before = ofe_ce_get(ev, name, strlen(name));
    const char *old = before ? before->value : NULL;
    err[0] = '\0';
    int rc = ofe_ce_set(ev, name, strlen(name), t, v, vlen, err, sizeof(err));
    if (rc != OFE_EINVAL)
        fail_msg("set %s=\"%.*s\": expected OFE_EINVAL, got %d", name, (int)vlen, v, rc);
    if (!strstr(err, want))
        fail_msg("set %s=\"%.*s\": message \"%s\" lacks \"%s\"", name, (int)vlen, v, err, want);
    const struct ofe_ce_attr *after = ofe_ce_get(ev, name, strlen(name));
    assert_ptr_equal(after ? after->value : NULL, old);
}

static void bad_set(struct ofe_ce *ev, const char *name, enum ofe_ce_type t, const char *v,
                    const char *want)
{
    bad_set_len(ev, name, t, v, strlen(v), want);
}

static struct ofe_ce *minimal(void)
{
    struct ofe_ce *ev = ofe_ce_new();
    assert_non_null(ev);
    ok_set(ev, "specversion", OFE_CE_T_NONE, "1.0");
    ok_set(ev, "id", OFE_CE_T_NONE, "1");
    ok_set(ev, "source", OFE_CE_T_NONE, "/src");
    ok_set(ev, "type", OFE_CE_T_NONE, "com.example.t");
    return ev;
}

static void test_spec_slots(void **state)
{
    static const struct {
        const char *name;
        int slot;
        enum ofe_ce_type type;
    } t[] = {
        {"id", OFE_CE_ID, OFE_CE_T_STRING},
        {"source", OFE_CE_SOURCE, OFE_CE_T_URIREF},
        {"specversion", OFE_CE_SPECVERSION, OFE_CE_T_STRING},
        {"type", OFE_CE_TYPE, OFE_CE_T_STRING},
        {"datacontenttype", OFE_CE_DATACONTENTTYPE, OFE_CE_T_STRING},
        {"dataschema", OFE_CE_DATASCHEMA, OFE_CE_T_URI},
        {"subject", OFE_CE_SUBJECT, OFE_CE_T_STRING},
        {"time", OFE_CE_TIME, OFE_CE_T_TIMESTAMP},
        {"tipe", -1, OFE_CE_T_NONE},
        {"ids", -1, OFE_CE_T_NONE},
        {"partitionkey", -1, OFE_CE_T_NONE},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_int_equal(ofe_ce_spec_slot(t[i].name, strlen(t[i].name)), t[i].slot);
        assert_int_equal(ofe_ce_spec_type(t[i].name, strlen(t[i].name)), t[i].type);
    }
    assert_string_equal(ofe_ce_type_name(OFE_CE_T_URIREF), "URI-reference");
    assert_string_equal(ofe_ce_type_name(OFE_CE_T_TIMESTAMP), "Timestamp");
    assert_string_equal(ofe_ce_type_name(OFE_CE_T_BOOLEAN), "Boolean");
}

static void test_names(void **state)
{
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'b', 65);
    n65[65] = '\0';
    assert_int_equal(ofe_ce_check_name("abc123", 6, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_check_name(n64, 64, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_check_name(n65, 65, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "longer than 64 characters"));
    assert_int_equal(ofe_ce_check_name("", 0, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "attribute name is empty");
    assert_int_equal(ofe_ce_check_name("myExt", 5, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "attribute name \"myExt\": character \"E\" at position 3 is not "
                             "allowed (names use a-z and 0-9 only)");
    assert_int_equal(ofe_ce_check_name("my-ext", 6, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "character \"-\" at position 3"));
    assert_int_equal(ofe_ce_check_name("data_base64", 11, err, sizeof(err)), OFE_EINVAL);
    assert_int_equal(ofe_ce_check_name("data", 4, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "reserved"));

    struct ofe_ce *ev = minimal();
    bad_set(ev, "Upper", OFE_CE_T_NONE, "x", "attribute name \"Upper\"");
    bad_set(ev, "data", OFE_CE_T_NONE, "x", "reserved");
    ok_set(ev, n64, OFE_CE_T_NONE, "long name ok");
    ofe_ce_unref(ev);
}

static void test_set_get_iterate(void **state)
{
    struct ofe_ce *ev = minimal();
    ok_set(ev, "zeta", OFE_CE_T_NONE, "z");
    ok_set(ev, "time", OFE_CE_T_NONE, "2018-04-05T17:31:00Z");
    ok_set(ev, "alpha", OFE_CE_T_NONE, "a");
    assert_string_equal(ofe_ce_get_str(ev, "id"), "1");
    assert_string_equal(ofe_ce_get_str(ev, "zeta"), "z");
    assert_null(ofe_ce_get_str(ev, "subject"));
    assert_null(ofe_ce_get_str(ev, "nope"));
    const struct ofe_ce_attr *a = ofe_ce_get(ev, "time", 4);
    assert_non_null(a);
    assert_int_equal(a->type, OFE_CE_T_TIMESTAMP);
    assert_int_equal(a->value_len, 20);
    /* spec attributes first, in slot order, then extensions as inserted */
    const char *want[] = {"id", "source", "specversion", "type", "time", "zeta", "alpha"};
    size_t i = 0;
    for (; (a = ofe_ce_attr_at(ev, i)); i++) {
        assert_true(i < 7);
        assert_string_equal(a->name, want[i]);
    }
    assert_int_equal(i, 7);
    /* replacing keeps the position and changes the value */
    ok_set(ev, "zeta", OFE_CE_T_NONE, "zz");
    assert_string_equal(ofe_ce_attr_at(ev, 5)->value, "zz");
    assert_int_equal(ev->next, 2);
    /* an extension may change type on replacement */
    assert_int_equal(ofe_ce_set_int(ev, "zeta", 7, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_get(ev, "zeta", 4)->type, OFE_CE_T_INTEGER);
    ofe_ce_unref(ev);
}

static void test_unset(void **state)
{
    struct ofe_ce *ev = minimal();
    ok_set(ev, "a", OFE_CE_T_NONE, "1");
    ok_set(ev, "b", OFE_CE_T_NONE, "2");
    ok_set(ev, "c", OFE_CE_T_NONE, "3");
    ok_set(ev, "subject", OFE_CE_T_NONE, "s");
    assert_int_equal(ofe_ce_unset(ev, "b", 1), 0);
    assert_int_equal(ofe_ce_unset(ev, "b", 1), OFE_ENOENT);
    assert_int_equal(ofe_ce_unset(ev, "subject", 7), 0);
    assert_int_equal(ofe_ce_unset(ev, "subject", 7), OFE_ENOENT);
    assert_int_equal(ofe_ce_unset(ev, "dataschema", 10), OFE_ENOENT);
    assert_null(ofe_ce_get(ev, "b", 1));
    assert_null(ofe_ce_get(ev, "subject", 7));
    assert_int_equal(ev->next, 2);
    assert_string_equal(ev->ext[0].name, "a");
    assert_string_equal(ev->ext[1].name, "c");
    ofe_ce_unref(ev);
}

static void test_boolean(void **state)
{
    struct ofe_ce *ev = minimal();
    ok_set(ev, "flag", OFE_CE_T_BOOLEAN, "true");
    assert_int_equal(ofe_ce_get(ev, "flag", 4)->ival, 1);
    ok_set(ev, "flag", OFE_CE_T_BOOLEAN, "false");
    assert_int_equal(ofe_ce_get(ev, "flag", 4)->ival, 0);
    bad_set(ev, "flag", OFE_CE_T_BOOLEAN, "True",
            "attribute 'flag': \"True\" is not a Boolean (expected true or false)");
    bad_set(ev, "flag", OFE_CE_T_BOOLEAN, "1", "is not a Boolean");
    bad_set(ev, "flag", OFE_CE_T_BOOLEAN, "", "is not a Boolean");
    assert_int_equal(ofe_ce_set_bool(ev, "on", true, err, sizeof(err)), 0);
    assert_string_equal(ofe_ce_get_str(ev, "on"), "true");
    assert_int_equal(ofe_ce_get(ev, "on", 2)->type, OFE_CE_T_BOOLEAN);
    /* spec attributes are never Boolean */
    assert_int_equal(ofe_ce_set_bool(ev, "subject", true, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "attribute 'subject' has type String, not Boolean");
    ofe_ce_unref(ev);
}

static void test_integer(void **state)
{
    struct ofe_ce *ev = minimal();
    ok_set(ev, "n", OFE_CE_T_INTEGER, "0");
    ok_set(ev, "n", OFE_CE_T_INTEGER, "2147483647");
    assert_int_equal(ofe_ce_get(ev, "n", 1)->ival, INT32_MAX);
    ok_set(ev, "n", OFE_CE_T_INTEGER, "-2147483648");
    assert_int_equal(ofe_ce_get(ev, "n", 1)->ival, INT32_MIN);
    ok_set(ev, "n", OFE_CE_T_INTEGER, "-0");
    assert_string_equal(ofe_ce_get_str(ev, "n"), "0"); /* canonical */
    ok_set(ev, "n", OFE_CE_T_INTEGER, "-17");
    assert_int_equal(ofe_ce_get(ev, "n", 1)->ival, -17);
    bad_set(ev, "n", OFE_CE_T_INTEGER, "+5",
            "attribute 'n': \"+5\" is not a canonical Integer (no '+' sign allowed)");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "007",
            "attribute 'n': \"007\" is not a canonical Integer (no leading zeros allowed)");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "-01", "no leading zeros");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "2147483648",
            "attribute 'n': \"2147483648\" is out of the Integer range (-2147483648 to "
            "2147483647)");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "-2147483649", "out of the Integer range");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "99999999999999999999999", "out of the Integer range");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "1.0", "\"1.0\" is not an Integer");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "1e3", "is not an Integer");
    bad_set(ev, "n", OFE_CE_T_INTEGER, " 1", "is not an Integer");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "", "\"\" is not an Integer");
    bad_set(ev, "n", OFE_CE_T_INTEGER, "-", "is not an Integer");
    assert_int_equal(ofe_ce_set_int(ev, "m", -5, err, sizeof(err)), 0);
    assert_string_equal(ofe_ce_get_str(ev, "m"), "-5");
    assert_int_equal(ofe_ce_get(ev, "m", 1)->ival, -5);
    assert_int_equal(ofe_ce_set_int(ev, "id", 5, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "attribute 'id' has type String, not Integer");
    ofe_ce_unref(ev);
}

static void test_string(void **state)
{
    struct ofe_ce *ev = minimal();
    ok_set(ev, "s", OFE_CE_T_NONE, "Euro \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_int_equal(ofe_ce_get(ev, "s", 1)->type, OFE_CE_T_STRING);
    ok_set(ev, "s", OFE_CE_T_STRING, ""); /* an extension String may be empty */
    ok_set(ev, "s", OFE_CE_T_STRING, "\xc2\xa0 non-breaking space is fine");
    bad_set(ev, "s", OFE_CE_T_STRING, "a\nb",
            "attribute 's': control character U+000A at byte 2 is not allowed");
    bad_set(ev, "s", OFE_CE_T_STRING, "tab\there", "control character U+0009 at byte 4");
    bad_set(ev, "s", OFE_CE_T_STRING, "del\x7f", "control character U+007F at byte 4");
    bad_set(ev, "s", OFE_CE_T_STRING, "c1 \xc2\x85", "control character U+0085 at byte 4");
    bad_set(ev, "s", OFE_CE_T_STRING, "c1 \xc2\x9f", "control character U+009F");
    bad_set_len(ev, "s", OFE_CE_T_STRING, "nul\0x", 5, "control character U+0000 at byte 4");
    bad_set(ev, "s", OFE_CE_T_STRING, "x\xef\xbf\xbe", "noncharacter U+FFFE at byte 2");
    bad_set(ev, "s", OFE_CE_T_STRING, "x\xef\xb7\x90", "noncharacter U+FDD0");
    bad_set(ev, "s", OFE_CE_T_STRING, "x\xf4\x8f\xbf\xbf", "noncharacter U+10FFFF");
    bad_set(ev, "s", OFE_CE_T_STRING, "x\xc0\xa0", "attribute 's': invalid UTF-8 at byte 2");
    bad_set(ev, "s", OFE_CE_T_STRING, "x\xed\xa0\x80", "invalid UTF-8 at byte 2"); /* surrogate */
    bad_set(ev, "s", OFE_CE_T_STRING, "x\xe2\x82", "invalid UTF-8 at byte 2");     /* truncated */
    bad_set(ev, "s", OFE_CE_T_STRING, "abcdefghij\xff", "invalid UTF-8 at byte 11");
    bad_set(ev, "s", OFE_CE_T_STRING, "x\xf4\x90\x80\x80", "invalid UTF-8"); /* > U+10FFFF */
    /* the same rules hold for the String-typed spec attributes */
    bad_set(ev, "id", OFE_CE_T_NONE, "a\rb", "attribute 'id': control character U+000D");
    bad_set(ev, "type", OFE_CE_T_NONE, "\xff", "attribute 'type': invalid UTF-8");
    ofe_ce_unref(ev);
}

static void test_binary(void **state)
{
    struct ofe_ce *ev = minimal();
    ok_set(ev, "b", OFE_CE_T_BINARY, "");
    ok_set(ev, "b", OFE_CE_T_BINARY, "QQ==");
    ok_set(ev, "b", OFE_CE_T_BINARY, "QUI=");
    ok_set(ev, "b", OFE_CE_T_BINARY, "QUJD");
    ok_set(ev, "b", OFE_CE_T_BINARY, "+/+/AAAA");
    assert_int_equal(ofe_ce_get(ev, "b", 1)->type, OFE_CE_T_BINARY);
    bad_set(ev, "b", OFE_CE_T_BINARY, "QQ=",
            "attribute 'b': \"QQ=\" is not Base64 (RFC 4648): length is not a multiple of 4");
    bad_set(ev, "b", OFE_CE_T_BINARY, "QR==", "non-zero bits before the padding");
    bad_set(ev, "b", OFE_CE_T_BINARY, "QUJ=", "non-zero bits before the padding");
    bad_set(ev, "b", OFE_CE_T_BINARY, "Q===", "misplaced '='");
    bad_set(ev, "b", OFE_CE_T_BINARY, "QQ==QUJD", "'=' before the end");
    bad_set(ev, "b", OFE_CE_T_BINARY, "QU!D",
            "character at position 3 is not in the Base64 alphabet");
    bad_set(ev, "b", OFE_CE_T_BINARY, "-_-_", "not in the Base64 alphabet"); /* base64url */
    bad_set(ev, "b", OFE_CE_T_BINARY, "QU JD", "length is not a multiple of 4");
    ofe_ce_unref(ev);
}

static void test_uri(void **state)
{
    struct ofe_ce *ev = minimal();
    static const char *good[] = {
        "https://example.com/schema.json",
        "http://[::1]:8080/a/b?x=1&y=%20#frag",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "mailto:cncf-wg-serverless@lists.cncf.io",
        "kafka://broker:9092/topic",
        "a:",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok_set(ev, "dataschema", OFE_CE_T_NONE, good[i]);
        ok_set(ev, "u", OFE_CE_T_URI, good[i]);
        ok_set(ev, "r", OFE_CE_T_URIREF, good[i]);
    }
    assert_int_equal(ofe_ce_get(ev, "dataschema", 10)->type, OFE_CE_T_URI);
    bad_set(ev, "dataschema", OFE_CE_T_NONE, "/schemas/a",
            "attribute 'dataschema': \"/schemas/a\" is not an absolute URI: no scheme (an "
            "absolute URI starts with scheme:) at position 1");
    bad_set(ev, "dataschema", OFE_CE_T_NONE, "", "attribute 'dataschema' must not be empty");
    bad_set(ev, "u", OFE_CE_T_URI, "1http://x", "scheme does not start with a letter");
    bad_set(ev, "u", OFE_CE_T_URI, "ht_tp://x", "character not allowed in a scheme");
    bad_set(ev, "u", OFE_CE_T_URI, "http://exa mple.com",
            "character not allowed in a URI (use %HH) at position 11");
    bad_set(ev, "u", OFE_CE_T_URI, "http://x/%zz", "'%' not followed by two hex digits");
    bad_set(ev, "u", OFE_CE_T_URI, "http://x/%4", "'%' not followed by two hex digits");
    bad_set(ev, "u", OFE_CE_T_URI, "http://[::1/x", "'[' without ']' in the host");
    bad_set(ev, "u", OFE_CE_T_URI, "http://x:80a/", "port is not a number");
    bad_set(ev, "u", OFE_CE_T_URI, "http://x/a#b#c", "second '#'");
    bad_set(ev, "u", OFE_CE_T_URI, "http://x/[a]", "'[' or ']' outside the host");
    bad_set(ev, "u", OFE_CE_T_URI, "http://x/\xc3\xa9", "character not allowed in a URI");
    bad_set(ev, "u", OFE_CE_T_URI, "http://a@b@c/", "character not allowed in the user");
    ofe_ce_unref(ev);
}

static void test_uri_reference(void **state)
{
    struct ofe_ce *ev = minimal();
    static const char *good[] = {
        "/cloudevents/spec/pull/123",
        "/sensors/tn-1234567/alerts",
        "1-555-123-4567",
        "https://github.com/cloudevents",
        "mailto:cncf-wg-serverless@lists.cncf.io",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "//authority/only",
        "relative/path?q#f",
        "./a:b",
        "?query",
        "#frag",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok_set(ev, "source", OFE_CE_T_NONE, good[i]);
        assert_int_equal(ofe_ce_get(ev, "source", 6)->type, OFE_CE_T_URIREF);
    }
    ok_set(ev, "r", OFE_CE_T_URIREF, ""); /* an empty reference is one */
    bad_set(ev, "source", OFE_CE_T_NONE, "", "attribute 'source' must not be empty");
    bad_set(ev, "source", OFE_CE_T_NONE, "my source",
            "attribute 'source': \"my source\" is not a URI-reference: character not allowed "
            "in a URI (use %HH) at position 3");
    bad_set(ev, "source", OFE_CE_T_NONE, "1a:b", "relative reference with ':' in its first");
    bad_set(ev, "source", OFE_CE_T_NONE, ":x", "empty scheme");
    bad_set(ev, "source", OFE_CE_T_NONE, "a\"b", "character not allowed in a URI");
    ofe_ce_unref(ev);
}

static void test_timestamp(void **state)
{
    struct ofe_ce *ev = minimal();
    static const char *good[] = {
        "2018-04-05T17:31:00Z",      "2018-04-05t17:31:00z",      "2018-04-05T17:31:00.123456789Z",
        "2018-04-05T17:31:00+05:30", "2018-04-05T17:31:00-00:00", "2020-02-29T00:00:00Z",
        "2000-02-29T23:59:59Z",      "2016-12-31T23:59:60Z",      "0001-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok_set(ev, "time", OFE_CE_T_NONE, good[i]);
        assert_string_equal(ofe_ce_get_str(ev, "time"), good[i]); /* kept as given */
    }
    static const struct {
        const char *v, *why;
    } bad[] = {
        {"yesterday", "too short"},
        {"2018-04-05 17:31:00Z", "no 'T' between date and time"},
        {"2018-13-05T17:31:00Z", "month out of range"},
        {"2018-00-05T17:31:00Z", "month out of range"},
        {"2018-04-31T17:31:00Z", "day out of range for the month"},
        {"1900-02-29T00:00:00Z", "day out of range for the month"},
        {"2018-04-05T24:00:00Z", "hour out of range"},
        {"2018-04-05T23:60:00Z", "minute out of range"},
        {"2018-04-05T23:59:61Z", "second out of range"},
        {"2018-04-05T17:31:00", "no time zone offset"},
        {"2018-04-05T17:31:00.Z", "no digits after the decimal point"},
        {"2018-04-05T17:31:00+0530", "zone offset is not +HH:MM"},
        {"2018-04-05T17:31:00+24:00", "zone offset out of range"},
        {"2018-04-05T17:31:00ZZ", "unexpected characters after the time zone"},
        {"2018-04-05T17:31:00UTC", "bad time zone offset"},
        {"2018/04/05T17:31:00Z", "the date is not YYYY-MM-DD"},
        {"2018-04-05T17-31-00Z", "the time is not HH:MM:SS"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        bad_set(ev, "time", OFE_CE_T_NONE, bad[i].v, bad[i].why);
    bad_set(ev, "time", OFE_CE_T_NONE, "2018-13-05T17:31:00Z",
            "attribute 'time': \"2018-13-05T17:31:00Z\" is not an RFC 3339 timestamp: month out "
            "of range");
    ok_set(ev, "expiry", OFE_CE_T_TIMESTAMP, "2030-01-01T00:00:00Z");
    bad_set(ev, "expiry", OFE_CE_T_TIMESTAMP, "soon", "not an RFC 3339 timestamp");
    ofe_ce_unref(ev);
}

static void test_datacontenttype(void **state)
{
    struct ofe_ce *ev = minimal();
    static const char *good[] = {
        "application/json",
        "text/plain; charset=utf-8",
        "text/plain;charset=utf-8",
        "application/cloudevents+json; charset=\"utf-8\"",
        "multipart/form-data; boundary=xyz ; a=b",
        "application/vnd.apache.thrift.binary",
        "text/plain; x=\"a \\\" b\"",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ok_set(ev, "datacontenttype", OFE_CE_T_NONE, good[i]);
    static const struct {
        const char *v, *why;
    } bad[] = {
        {"json", "expected '/' after the type at position 5"},
        {"/json", "expected type/subtype, no type at position 1"},
        {"text/", "no subtype at position 6"},
        {"text plain", "expected '/' after the type at position 5"},
        {"text/plain;", "no parameter name at position 12"},
        {"text/plain; charset", "expected '=' after the parameter name"},
        {"text/plain; charset=", "no parameter value"},
        {"text/plain; a=\"open", "unterminated quoted string"},
        {"text/plain extra", "expected ';' before a parameter"},
        {"text/pl@in", "expected ';' before a parameter"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        bad_set(ev, "datacontenttype", OFE_CE_T_NONE, bad[i].v, bad[i].why);
    bad_set(ev, "datacontenttype", OFE_CE_T_NONE, "json",
            "attribute 'datacontenttype': \"json\" is not a media type (RFC 2046): expected '/' "
            "after the type at position 5");
    bad_set(ev, "datacontenttype", OFE_CE_T_NONE, "", "must not be empty");

    assert_true(ofe_ce_media_is_json("application/json", 16));
    assert_true(ofe_ce_media_is_json("text/json", 9));
    assert_true(ofe_ce_media_is_json("APPLICATION/JSON; charset=utf-8", 31));
    assert_true(ofe_ce_media_is_json("application/cloudevents+json", 28));
    assert_true(ofe_ce_media_is_json("application/vnd.foo+JSON", 24));
    assert_false(ofe_ce_media_is_json("application/jsonx", 17));
    assert_false(ofe_ce_media_is_json("application/json-seq", 20));
    assert_false(ofe_ce_media_is_json("text/plain", 10));
    assert_false(ofe_ce_media_is_json("json", 4));
    ofe_ce_unref(ev);
}

static void test_type_mismatch_and_empty(void **state)
{
    struct ofe_ce *ev = minimal();
    bad_set(ev, "time", OFE_CE_T_INTEGER, "5", "attribute 'time' has type Timestamp, not Integer");
    bad_set(ev, "source", OFE_CE_T_URI, "http://x", "has type URI-reference, not URI");
    ok_set(ev, "source", OFE_CE_T_URIREF, "http://x");
    bad_set(ev, "id", OFE_CE_T_NONE, "", "attribute 'id' must not be empty");
    bad_set(ev, "type", OFE_CE_T_NONE, "", "attribute 'type' must not be empty");
    bad_set(ev, "subject", OFE_CE_T_NONE, "", "attribute 'subject' must not be empty");
    bad_set(ev, "specversion", OFE_CE_T_NONE, "", "attribute 'specversion' must not be empty");
    /* the failed sets left the old values */
    assert_string_equal(ofe_ce_get_str(ev, "id"), "1");
    assert_string_equal(ofe_ce_get_str(ev, "type"), "com.example.t");
    ofe_ce_unref(ev);
}

static void test_validate(void **state)
{
    struct ofe_ce *ev = ofe_ce_new();
    assert_int_equal(ofe_ce_validate(ev, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "missing required attribute 'specversion'");
    ok_set(ev, "specversion", OFE_CE_T_NONE, "1.0");
    assert_int_equal(ofe_ce_validate(ev, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "missing required attribute 'id'");
    ok_set(ev, "id", OFE_CE_T_NONE, "x");
    assert_int_equal(ofe_ce_validate(ev, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "missing required attribute 'source'");
    ok_set(ev, "source", OFE_CE_T_NONE, "/s");
    assert_int_equal(ofe_ce_validate(ev, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "missing required attribute 'type'");
    ok_set(ev, "type", OFE_CE_T_NONE, "t");
    assert_int_equal(ofe_ce_validate(ev, err, sizeof(err)), 0);
    ok_set(ev, "specversion", OFE_CE_T_NONE, "0.3");
    assert_int_equal(ofe_ce_validate(ev, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "attribute 'specversion': \"0.3\" is not supported (this "
                             "implementation speaks CloudEvents \"1.0\")");
    ofe_ce_unref(ev);
}

static void test_data(void **state)
{
    struct ofe_ce *ev = minimal();
    assert_false(ev->has_data);
    assert_null(ev->data);
    assert_int_equal(ofe_ce_set_data(ev, "\x00\xff\x80", 3), 0);
    assert_true(ev->has_data);
    assert_false(ev->data_is_json);
    assert_int_equal(ev->data_len, 3);
    assert_memory_equal(ev->data, "\x00\xff\x80", 3);
    /* big data goes to its own allocation */
    size_t big = 200000;
    char *b = malloc(big);
    for (size_t i = 0; i < big; i++)
        b[i] = (char)(i * 7);
    assert_int_equal(ofe_ce_set_data(ev, b, big), 0);
    assert_int_equal(ev->data_len, big);
    assert_memory_equal(ev->data, b, big);
    /* set_data from the event's own data */
    assert_int_equal(ofe_ce_set_data(ev, ev->data + 10, 100), 0);
    assert_memory_equal(ev->data, b + 10, 100);
    assert_int_equal(ofe_ce_set_data(ev, "", 0), 0);
    assert_true(ev->has_data);
    assert_int_equal(ev->data_len, 0);
    ofe_ce_clear_data(ev);
    assert_false(ev->has_data);
    assert_null(ev->data);
    assert_int_equal(ofe_ce_take_data(ev, b, big), 0); /* the event frees it */
    assert_ptr_equal(ev->data, b);
    ofe_ce_unref(ev);
}

static void test_dup_equal_ref(void **state)
{
    struct ofe_ce *a = minimal();
    ok_set(a, "time", OFE_CE_T_NONE, "2018-04-05T17:31:00Z");
    ok_set(a, "x", OFE_CE_T_NONE, "1");
    assert_int_equal(ofe_ce_set_int(a, "n", 42, err, sizeof(err)), 0);
    ok_set(a, "u", OFE_CE_T_URI, "http://x");
    assert_int_equal(ofe_ce_set_data(a, "\x01\x02", 2), 0);
    struct ofe_ce *b = ofe_ce_dup(a);
    assert_non_null(b);
    assert_int_equal(b->refcnt, 1);
    assert_true(ofe_ce_equal(a, b));
    assert_ptr_not_equal(b->spec[OFE_CE_ID].value, a->spec[OFE_CE_ID].value);
    assert_ptr_not_equal(b->data, a->data);
    /* changes to the copy leave the original */
    ok_set(b, "x", OFE_CE_T_NONE, "2");
    assert_false(ofe_ce_equal(a, b));
    assert_string_equal(ofe_ce_get_str(a, "x"), "1");
    ok_set(b, "x", OFE_CE_T_NONE, "1");
    assert_true(ofe_ce_equal(a, b));
    /* same value, other type */
    ok_set(b, "u", OFE_CE_T_URIREF, "http://x");
    assert_false(ofe_ce_equal(a, b));
    ok_set(b, "u", OFE_CE_T_URI, "http://x");
    /* extension order does not matter */
    struct ofe_ce *c = minimal();
    ok_set(c, "time", OFE_CE_T_NONE, "2018-04-05T17:31:00Z");
    ok_set(c, "u", OFE_CE_T_URI, "http://x");
    assert_int_equal(ofe_ce_set_int(c, "n", 42, err, sizeof(err)), 0);
    ok_set(c, "x", OFE_CE_T_NONE, "1");
    assert_false(ofe_ce_equal(a, c)); /* no data yet */
    assert_int_equal(ofe_ce_set_data(c, "\x01\x02", 2), 0);
    assert_true(ofe_ce_equal(a, c));
    assert_int_equal(ofe_ce_set_data(c, "\x01\x03", 2), 0);
    assert_false(ofe_ce_equal(a, c));
    assert_int_equal(ofe_ce_set_data(c, "", 0), 0);
    assert_false(ofe_ce_equal(a, c));
    /* references */
    assert_ptr_equal(ofe_ce_ref(a), a);
    assert_int_equal(a->refcnt, 2);
    ofe_ce_unref(a);
    assert_int_equal(a->refcnt, 1);
    ofe_ce_unref(NULL);
    ofe_ce_unref(a);
    ofe_ce_unref(b);
    ofe_ce_unref(c);
}

static void test_many_attributes(void **state)
{
    /* the arena grows in chunks; everything stays readable */
    struct ofe_ce *ev = minimal();
    char name[16], val[300];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "ext%d", i);
        memset(val, 'a' + i % 26, sizeof(val) - 1);
        val[sizeof(val) - 1 - (size_t)i % 200] = '\0';
        ok_set(ev, name, OFE_CE_T_NONE, val);
    }
    assert_int_equal(ev->next, 300);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "ext%d", i);
        const struct ofe_ce_attr *a = ofe_ce_get(ev, name, strlen(name));
        assert_non_null(a);
        assert_int_equal(a->value_len, sizeof(val) - 1 - (size_t)i % 200);
        assert_int_equal(a->value[0], 'a' + i % 26);
    }
    struct ofe_ce *d = ofe_ce_dup(ev);
    assert_true(ofe_ce_equal(ev, d));
    ofe_ce_unref(d);
    ofe_ce_unref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_slots),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_set_get_iterate),
        cmocka_unit_test(test_unset),
        cmocka_unit_test(test_boolean),
        cmocka_unit_test(test_integer),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_uri),
        cmocka_unit_test(test_uri_reference),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_datacontenttype),
        cmocka_unit_test(test_type_mismatch_and_empty),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_dup_equal_ref),
        cmocka_unit_test(test_many_attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
