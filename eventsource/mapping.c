/* Building CloudEvents of native messages (es.h): the attributes every
 * kind sets, content type guessing, ids, timestamps. docs/sources.md
 * describes the result per kind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "cron.h"
#include "es.h"
#include "ofe/err.h"
#include "ofe/log.h"

int64_t es_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t es_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

char *es_time_format(int64_t ms, char *buf, size_t size)
{
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t rem = ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    es_civil_from_days(days, &y, &m, &d);
    snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y, m, d,
             (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
             (unsigned)rem);
    return buf;
}

char *es_uuid(char *buf, size_t size)
{
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n <= 0) {
            /* Cannot happen on Linux >= 3.17 without GRND_NONBLOCK; keep
             * unique anyway. */
            uint64_t t = es_mono_ms() ^ (uint64_t)(uintptr_t)buf;
            memcpy(r + got, &t, sizeof(r) - got < 8 ? sizeof(r) - got : 8);
            got += sizeof(r) - got < 8 ? sizeof(r) - got : 8;
            continue;
        }
        got += (size_t)n;
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(buf, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
    return buf;
}

void es_sha256_hex(const void *const *parts, const size_t *lens, size_t nparts, char *out,
                   size_t nhex)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; i < nparts; i++) {
        /* length-prefixed, so ("ab","c") and ("a","bc") differ */
        uint64_t l = lens[i];
        EVP_DigestUpdate(ctx, &l, sizeof(l));
        EVP_DigestUpdate(ctx, parts[i], lens[i]);
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    static const char hx[] = "0123456789abcdef";
    size_t k = 0;
    for (unsigned i = 0; i < mdlen && k + 2 <= nhex; i++) {
        out[k++] = hx[md[i] >> 4];
        out[k++] = hx[md[i] & 15];
    }
    out[k] = '\0';
}

bool es_utf8_valid(const void *data, size_t len)
{
    const unsigned char *s = data;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

const char *es_guess_content_type(const void *data, size_t len)
{
    const unsigned char *s = data;
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    if (i < len && (s[i] == '{' || s[i] == '[' || s[i] == '"')) {
        json_error_t e;
        json_t *j = json_loadb((const char *)data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (j) {
            json_decref(j);
            return "application/json";
        }
    }
    if (!es_utf8_valid(data, len))
        return "application/octet-stream";
    for (size_t k = 0; k < len; k++)
        if ((s[k] < 0x20 && s[k] != '\t' && s[k] != '\r' && s[k] != '\n') || s[k] == 0x7f)
            return "application/octet-stream";
    return "text/plain; charset=utf-8";
}

int es_ce_native(struct es_source *s, const char *type, const char *id, const char *subject,
                 int64_t time_ms, const char *content_type, const void *data, size_t len,
                 struct ofe_ce **out, char *errstr, size_t errstr_size)
{
    struct ofe_ce *ev = ofe_ce_new();
    if (!ev)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    char tbuf[40];
    es_time_format(time_ms >= 0 ? time_ms : es_now_ms(), tbuf, sizeof(tbuf));
    int rc;
    if ((rc = ofe_ce_set_str(ev, "specversion", OFE_CE_T_NONE, "1.0", errstr, errstr_size)) ||
        (rc = ofe_ce_set_str(ev, "id", OFE_CE_T_NONE, id, errstr, errstr_size)) ||
        (rc = ofe_ce_set_str(ev, "source", OFE_CE_T_NONE, s->ce_source, errstr, errstr_size)) ||
        (rc = ofe_ce_set_str(ev, "type", OFE_CE_T_NONE, type, errstr, errstr_size)) ||
        (rc = ofe_ce_set_str(ev, "time", OFE_CE_T_NONE, tbuf, errstr, errstr_size)))
        goto fail;
    if (subject && *subject &&
        (rc = ofe_ce_set_str(ev, "subject", OFE_CE_T_NONE, subject, errstr, errstr_size)))
        goto fail;
    if (data) {
        const char *ct =
            content_type && *content_type ? content_type : es_guess_content_type(data, len);
        if ((rc = ofe_ce_set_str(ev, "datacontenttype", OFE_CE_T_NONE, ct, errstr, errstr_size)) ||
            (rc = ofe_ce_set_data(ev, data, len)))
            goto fail;
    }
    *out = ev;
    return 0;
fail:
    ofe_ce_unref(ev);
    return rc;
}

bool es_looks_like_ce(const struct ofe_hdrs *h, const char *prefix, const char *ct, size_t ct_len)
{
    if (ct && ct_len >= 23 && !strncasecmp(ct, "application/cloudevents", 23))
        return true;
    if (!h)
        return false;
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < h->n; i++) {
        const struct ofe_hdr *x = &h->v[i];
        if (x->name_len == pl + 11 && !strncasecmp(x->name, prefix, pl) &&
            !strncasecmp(x->name + pl, "specversion", 11))
            return true;
    }
    return false;
}

void es_diag_error(struct es_diag *d, const struct ofe_config_node *node, const char *key,
                   const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const struct ofe_config_pos *pos = ofe_config_field_pos(node, key);
    char path[512];
    if (key && node->path && *node->path)
        snprintf(path, sizeof(path), "%s.%s", node->path, key);
    else if (key)
        snprintf(path, sizeof(path), "%s", key);
    else
        snprintf(path, sizeof(path), "%s", node->path ? node->path : "");
    if (pos && pos->file && pos->line > 0)
        OFE_ERROR(d->component ? d->component : ES_COMPONENT, "config", "%s:%d:%d: error: %s: %s",
                  pos->file, pos->line, pos->col, path, msg);
    else
        OFE_ERROR(d->component ? d->component : ES_COMPONENT, "config", "%s%serror: %s: %s",
                  pos && pos->file ? pos->file : "", pos && pos->file ? ": " : "", path, msg);
    d->nerrors++;
}

void es_diag_error_at(struct es_diag *d, const struct ofe_config_pos *pos, const char *path,
                      const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (pos && pos->file && pos->line > 0)
        OFE_ERROR(d->component ? d->component : ES_COMPONENT, "config", "%s:%d:%d: error: %s: %s",
                  pos->file, pos->line, pos->col, path, msg);
    else
        OFE_ERROR(d->component ? d->component : ES_COMPONENT, "config", "error: %s: %s", path, msg);
    d->nerrors++;
}
