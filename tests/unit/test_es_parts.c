/* Parts of ofe-eventsource: webhook signature and token checks (GitHub,
 * GitLab, bearer, generic HMAC; malformed headers), the Kafka offset
 * window (only the acked prefix is committed), content type guessing and
 * UTF-8 checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/hmac.h>

#include "es.h"
#include "ofe/err.h"
#include "webhook.h"

static void hexsig(const EVP_MD *md, const char *key, const char *body, const char *prefix,
                   char *out)
{
    unsigned char d[64];
    unsigned int n = 0;
    HMAC(md, key, (int)strlen(key), (const unsigned char *)body, strlen(body), d, &n);
    size_t k = (size_t)sprintf(out, "%s", prefix);
    for (unsigned i = 0; i < n; i++)
        k += (size_t)sprintf(out + k, "%02X", d[i]); /* upper case is accepted */
}

static int verify(const struct ofe_config_webhook_auth *a, const char *hname, const char *hval,
                  const char *body, char *why)
{
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    if (hname)
        ofe_hdrs_add_copy(&h, hname, strlen(hname), hval, strlen(hval));
    int rc = es_wh_verify(a, &h, body, strlen(body), why, 256);
    ofe_hdrs_fini(&h);
    return rc;
}

static void test_auth(void **state)
{
    char why[256], sig[300];
    struct ofe_config_webhook_auth a;
    memset(&a, 0, sizeof(a));
    assert_int_equal(verify(&a, NULL, NULL, "x", why), 0); /* no auth block */
    a.node.present = true;
    a.github.node.present = true;
    a.github.secret = "It's a Secret to Everybody";
    /* GitHub's documented example: sha256 of "Hello, World!" */
    assert_int_equal(
        verify(&a, "x-hub-signature-256",
               "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
               "Hello, World!", why),
        0);
    hexsig(EVP_sha256(), a.github.secret, "body", "sha256=", sig);
    assert_int_equal(verify(&a, "X-Hub-Signature-256", sig, "body", why), 0);
    assert_int_equal(verify(&a, "X-Hub-Signature-256", sig, "bodY", why), OFE_EAUTH);
    assert_non_null(strstr(why, "does not match"));
    assert_int_equal(verify(&a, NULL, NULL, "body", why), OFE_EAUTH);
    assert_non_null(strstr(why, "missing X-Hub-Signature-256"));
    assert_int_equal(verify(&a, "X-Hub-Signature-256", "sha1=abc", "body", why), OFE_EAUTH);
    assert_non_null(strstr(why, "malformed"));
    a.github.node.present = false;

    a.gitlab.node.present = true;
    a.gitlab.token = "tok";
    assert_int_equal(verify(&a, "X-Gitlab-Token", "tok", "", why), 0);
    assert_int_equal(verify(&a, "X-Gitlab-Token", "tok2", "", why), OFE_EAUTH);
    assert_int_equal(verify(&a, "X-Gitlab-Token", "to", "", why), OFE_EAUTH);
    assert_int_equal(verify(&a, "X-Gitlab-Token", "", "", why), OFE_EAUTH);
    a.gitlab.node.present = false;

    a.bearer.node.present = true;
    a.bearer.token = "abc.def";
    assert_int_equal(verify(&a, "Authorization", "Bearer abc.def", "", why), 0);
    assert_int_equal(verify(&a, "Authorization", "bearer   abc.def  ", "", why), 0);
    assert_int_equal(verify(&a, "Authorization", "Basic abc.def", "", why), OFE_EAUTH);
    assert_int_equal(verify(&a, "Authorization", "Bearer", "", why), OFE_EAUTH);
    assert_int_equal(verify(&a, "Authorization", "Bearer abc.deF", "", why), OFE_EAUTH);
    a.bearer.node.present = false;

    a.hmac.node.present = true;
    a.hmac.header = "X-Sig";
    a.hmac.secret = "k";
    a.hmac.algorithm = OFE_CONFIG_HMAC_SHA512;
    hexsig(EVP_sha512(), "k", "data", "", sig);
    assert_int_equal(verify(&a, "x-sig", sig, "data", why), 0);
    a.hmac.prefix = "v1=";
    assert_int_equal(verify(&a, "x-sig", sig, "data", why), OFE_EAUTH);
    hexsig(EVP_sha512(), "k", "data", "V1=", sig);
    assert_int_equal(verify(&a, "x-sig", sig, "data", why), 0);
    a.hmac.algorithm = OFE_CONFIG_HMAC_SHA1;
    assert_int_equal(verify(&a, "x-sig", sig, "data", why), OFE_EAUTH); /* wrong length */
}

static void test_parsers(void **state)
{
    unsigned char d[64];
    char why[128];
    assert_int_equal(es_wh_parse_hexsig(" sha256=00ff ", 13, "sha256=", 2, d, why, sizeof(why)), 0);
    assert_int_equal(d[0], 0);
    assert_int_equal(d[1], 0xff);
    assert_int_equal(es_wh_parse_hexsig("sha256=00f", 10, "sha256=", 2, d, why, sizeof(why)),
                     OFE_EINVAL);
    assert_int_equal(es_wh_parse_hexsig("sha256=00fg", 11, "sha256=", 2, d, why, sizeof(why)),
                     OFE_EINVAL);
    assert_int_equal(es_wh_parse_hexsig("", 0, NULL, 2, d, why, sizeof(why)), OFE_EINVAL);
    assert_int_equal(es_wh_parse_hexsig("00ff", 4, NULL, 65, d, why, sizeof(why)), OFE_EINVAL);
    const char *tok;
    size_t tl;
    assert_int_equal(es_wh_parse_bearer("Bearer\tx", 8, &tok, &tl), 0);
    assert_int_equal(tl, 1);
    assert_int_equal(es_wh_parse_bearer("Bearerx", 7, &tok, &tl), OFE_EINVAL);
    assert_true(es_wh_secret_equal("a", 1, "a", 1));
    assert_false(es_wh_secret_equal("a", 1, "ab", 2));
}

static void test_track(void **state)
{
    struct ofe_offset_track t;
    ofe_offset_track_init(&t);
    uint64_t s[300];
    /* offsets with gaps (compaction) */
    for (int i = 0; i < 300; i++)
        assert_int_equal(ofe_offset_track_push(&t, 10 + 2 * i, &s[i]), 0);
    assert_int_equal(t.point, -1);
    /* acked above an unacked one: nothing to commit */
    assert_int_equal(ofe_offset_track_ack(&t, s[1]), 0);
    assert_int_equal(ofe_offset_track_ack(&t, s[2]), 0);
    assert_int_equal(t.point, -1);
    /* the gap closes: the point moves over the acked prefix */
    assert_int_equal(ofe_offset_track_ack(&t, s[0]), 3);
    assert_int_equal(t.point, 10 + 2 * 2 + 1);
    /* repeated and unknown acks change nothing */
    assert_int_equal(ofe_offset_track_ack(&t, s[0]), 0);
    assert_int_equal(ofe_offset_track_ack(&t, 99999), 0);
    for (int i = 299; i >= 3; i--)
        ofe_offset_track_ack(&t, s[i]);
    assert_int_equal(t.point, 10 + 2 * 299 + 1);
    assert_int_equal(t.n, 0);
    ofe_offset_track_fini(&t);
}

static void test_content(void **state)
{
    assert_string_equal(es_guess_content_type("{\"a\":1}", 7), "application/json");
    assert_string_equal(es_guess_content_type(" [1, 2]\n", 8), "application/json");
    assert_string_equal(es_guess_content_type("{not json", 9), "text/plain; charset=utf-8");
    assert_string_equal(es_guess_content_type("h\xc3\xa9llo", 6), "text/plain; charset=utf-8");
    assert_string_equal(es_guess_content_type("a\0b", 3), "application/octet-stream");
    assert_string_equal(es_guess_content_type("\xff\xfe", 2), "application/octet-stream");
    assert_false(es_utf8_valid("\xc3", 1));
    assert_false(es_utf8_valid("\xed\xa0\x80", 3)); /* a surrogate */
    assert_false(es_utf8_valid("\xc0\xaf", 2));     /* overlong */
    assert_true(es_utf8_valid("\xf0\x9f\x98\x80", 4));
    char u[40];
    es_uuid(u, sizeof(u));
    assert_int_equal(strlen(u), 36);
    assert_int_equal(u[14], '4');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_track),
        cmocka_unit_test(test_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
