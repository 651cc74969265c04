/* libFuzzer harness: webhook authentication headers
 * (eventsource/webhook_auth.c). The input is a header value checked as a
 * GitHub signature, a generic HMAC with and without prefix, a bearer
 * token and a GitLab token; a value that parses into a digest must
 * format back to the same hex (case-insensitive); nothing may verify
 * without the right secret. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ofe/err.h"
#include "webhook.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_webhook_sig: check failed: %s (line %d)\n", #cond, __LINE__);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    unsigned char d[ES_WH_MAX_DIGEST];
    char why[256];
    size_t lens[] = {20, 32, 64};
    const char *prefixes[] = {"sha256=", "sha1=", NULL};
    for (size_t p = 0; p < 3; p++)
        for (size_t l = 0; l < 3; l++) {
            if (es_wh_parse_hexsig(v, size, prefixes[p], lens[l], d, why, sizeof(why)) != 0) {
                CHECK(why[0]);
                continue;
            }
            /* the digest formats back to the hex in the input */
            char hex[2 * ES_WH_MAX_DIGEST + 1];
            for (size_t i = 0; i < lens[l]; i++)
                sprintf(hex + 2 * i, "%02x", d[i]);
            CHECK(memmem(data, size, "", 0) != NULL);
            size_t s = 0;
            while (s < size && (v[s] == ' ' || v[s] == '\t'))
                s++;
            s += prefixes[p] ? strlen(prefixes[p]) : 0;
            CHECK(s + 2 * lens[l] <= size);
            CHECK(!strncasecmp(v + s, hex, 2 * lens[l]));
        }
    const char *tok;
    size_t tl;
    if (es_wh_parse_bearer(v, size, &tok, &tl) == 0) {
        CHECK(tl > 0);
        CHECK(tok >= v && tok + tl <= v + size);
    }
    struct ofe_config_webhook_auth a;
    memset(&a, 0, sizeof(a));
    a.node.present = true;
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    ofe_hdrs_add_ref(&h, "X-Hub-Signature-256", 19, v, size);
    ofe_hdrs_add_ref(&h, "X-Gitlab-Token", 14, v, size);
    ofe_hdrs_add_ref(&h, "Authorization", 13, v, size);
    a.github.node.present = true;
    a.github.secret = "fuzz-secret-not-in-corpus-7f3a";
    CHECK(es_wh_verify(&a, &h, "body", 4, why, sizeof(why)) == OFE_EAUTH);
    a.github.node.present = false;
    a.gitlab.node.present = true;
    a.gitlab.token = "fuzz-token-not-in-corpus-91c2";
    CHECK(es_wh_verify(&a, &h, "", 0, why, sizeof(why)) == OFE_EAUTH);
    a.gitlab.node.present = false;
    a.bearer.node.present = true;
    a.bearer.token = "fuzz-bearer-not-in-corpus-55e0";
    CHECK(es_wh_verify(&a, &h, "", 0, why, sizeof(why)) == OFE_EAUTH);
    ofe_hdrs_fini(&h);
    return 0;
}
