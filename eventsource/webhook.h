/* Webhook request authentication (webhook_auth.c): GitHub's
 * X-Hub-Signature-256, GitLab's X-Gitlab-Token, a bearer token, and a
 * generic hex HMAC of the body in a named header. Secrets are compared in
 * constant time (OpenSSL CRYPTO_memcmp over digests, so lengths do not
 * leak either). */
#ifndef OFE_ES_WEBHOOK_H
#define OFE_ES_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "ofe/ce.h"
#include "ofe/config.h"

#define ES_WH_MAX_DIGEST 64 /* SHA-512 */

/* Parses a signature header value "<prefix><hex>" (spaces around it
 * ignored, hex digits of either case, prefix compared case-insensitively)
 * into the raw digest. Returns 0, or OFE_EINVAL with why ("expected
 * sha256=<64 hex digits>", ...). expect_len is the digest size of the
 * algorithm. */
int es_wh_parse_hexsig(const char *v, size_t len, const char *prefix, size_t expect_len,
                       unsigned char *out, char *why, size_t why_size);

/* Finds the token of an "Authorization: Bearer <token>" value (scheme
 * case-insensitive, one or more spaces). Returns 0 or OFE_EINVAL. */
int es_wh_parse_bearer(const char *v, size_t len, const char **tok, size_t *tok_len);

/* Checks a request against the auth block (node.present false: no auth).
 * Returns 0, or OFE_EAUTH with why (for the 401 body; never contains a
 * secret). */
int es_wh_verify(const struct ofe_config_webhook_auth *auth, const struct ofe_hdrs *hdrs,
                 const void *body, size_t body_len, char *why, size_t why_size);

/* Constant-time equality of two byte strings of any lengths. */
bool es_wh_secret_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
