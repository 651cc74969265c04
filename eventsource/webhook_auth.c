/* Webhook request authentication (webhook.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ofe/err.h"
#include "webhook.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int es_wh_parse_hexsig(const char *v, size_t len, const char *prefix, size_t expect_len,
                       unsigned char *out, char *why, size_t why_size)
{
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    size_t pl = prefix ? strlen(prefix) : 0;
    if (len < pl || (pl && strncasecmp(v, prefix, pl) != 0) || len - pl != expect_len * 2 ||
        expect_len > ES_WH_MAX_DIGEST)
        return ofe_err(why, why_size, OFE_EINVAL, "expected %s<%zu hex digits>", pl ? prefix : "",
                       expect_len * 2);
    v += pl;
    for (size_t i = 0; i < expect_len; i++) {
        int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ofe_err(why, why_size, OFE_EINVAL, "expected %s<%zu hex digits>",
                           pl ? prefix : "", expect_len * 2);
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int es_wh_parse_bearer(const char *v, size_t len, const char **tok, size_t *tok_len)
{
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    if (len < 7 || strncasecmp(v, "bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return OFE_EINVAL;
    v += 6;
    len -= 6;
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (!len)
        return OFE_EINVAL;
    *tok = v;
    *tok_len = len;
    return 0;
}

bool es_wh_secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char da[32], db[32];
    unsigned int n = 0;
    EVP_Digest(a, alen, da, &n, EVP_sha256(), NULL);
    EVP_Digest(b, blen, db, &n, EVP_sha256(), NULL);
    return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

static int hmac_check(const EVP_MD *md, const char *secret, const char *hname, const char *prefix,
                      const struct ofe_hdrs *hdrs, const void *body, size_t body_len, char *why,
                      size_t why_size)
{
    const struct ofe_hdr *h = ofe_hdrs_get(hdrs, hname);
    if (!h)
        return ofe_err(why, why_size, OFE_EAUTH, "missing %s header", hname);
    size_t dlen = (size_t)EVP_MD_size(md);
    unsigned char want[ES_WH_MAX_DIGEST], got[ES_WH_MAX_DIGEST];
    char perr[128];
    if (es_wh_parse_hexsig(h->value, h->value_len, prefix, dlen, got, perr, sizeof(perr)) != 0)
        return ofe_err(why, why_size, OFE_EAUTH, "malformed %s header: %s", hname, perr);
    unsigned int wlen = 0;
    if (!HMAC(md, secret, (int)strlen(secret), body, body_len, want, &wlen) || wlen != dlen)
        return ofe_err(why, why_size, OFE_EAUTH, "cannot compute the HMAC");
    if (CRYPTO_memcmp(want, got, dlen) != 0)
        return ofe_err(why, why_size, OFE_EAUTH, "%s does not match the body", hname);
    return 0;
}

static int token_check(const char *token, const char *hname, const struct ofe_hdrs *hdrs, char *why,
                       size_t why_size)
{
    const struct ofe_hdr *h = ofe_hdrs_get(hdrs, hname);
    if (!h)
        return ofe_err(why, why_size, OFE_EAUTH, "missing %s header", hname);
    if (!es_wh_secret_equal(h->value, h->value_len, token, strlen(token)))
        return ofe_err(why, why_size, OFE_EAUTH, "wrong %s", hname);
    return 0;
}

int es_wh_verify(const struct ofe_config_webhook_auth *auth, const struct ofe_hdrs *hdrs,
                 const void *body, size_t body_len, char *why, size_t why_size)
{
    if (!auth || !auth->node.present)
        return 0;
    if (auth->github.node.present)
        return hmac_check(EVP_sha256(), auth->github.secret ? auth->github.secret : "",
                          "X-Hub-Signature-256", "sha256=", hdrs, body, body_len, why, why_size);
    if (auth->gitlab.node.present)
        return token_check(auth->gitlab.token ? auth->gitlab.token : "", "X-Gitlab-Token", hdrs,
                           why, why_size);
    if (auth->bearer.node.present) {
        const struct ofe_hdr *h = ofe_hdrs_get(hdrs, "Authorization");
        if (!h)
            return ofe_err(why, why_size, OFE_EAUTH, "missing Authorization header");
        const char *tok;
        size_t tl;
        if (es_wh_parse_bearer(h->value, h->value_len, &tok, &tl) != 0)
            return ofe_err(why, why_size, OFE_EAUTH,
                           "Authorization header is not \"Bearer <token>\"");
        const char *want = auth->bearer.token ? auth->bearer.token : "";
        if (!es_wh_secret_equal(tok, tl, want, strlen(want)))
            return ofe_err(why, why_size, OFE_EAUTH, "wrong bearer token");
        return 0;
    }
    if (auth->hmac.node.present) {
        const EVP_MD *md = auth->hmac.algorithm == OFE_CONFIG_HMAC_SHA1     ? EVP_sha1()
                           : auth->hmac.algorithm == OFE_CONFIG_HMAC_SHA512 ? EVP_sha512()
                                                                            : EVP_sha256();
        return hmac_check(md, auth->hmac.secret ? auth->hmac.secret : "",
                          auth->hmac.header ? auth->hmac.header : "X-Signature", auth->hmac.prefix,
                          hdrs, body, body_len, why, why_size);
    }
    return 0;
}
