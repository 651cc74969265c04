/* HTTP protocol binding (CloudEvents v1.0.2): binary, structured and
 * batched content modes as a pure codec over a header list and a body.
 * No network code: the HTTP server and client call these. */
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

static const char *const http_names[OFE_CE_NSPEC] = {
    [OFE_CE_ID] = "ce-id",
    [OFE_CE_SOURCE] = "ce-source",
    [OFE_CE_SPECVERSION] = "ce-specversion",
    [OFE_CE_TYPE] = "ce-type",
    [OFE_CE_DATACONTENTTYPE] = "ce-datacontenttype",
    [OFE_CE_DATASCHEMA] = "ce-dataschema",
    [OFE_CE_SUBJECT] = "ce-subject",
    [OFE_CE_TIME] = "ce-time",
};

static const struct ce_wire http_wire = {
    .spec_names = http_names, .prefix = "ce-", .plen = 3, .pct = true, .with_ct = false};

static const struct ce_wire_dec http_dec = {
    .prefix = "ce-", .plen = 3, .pct = true, .quoted = true, .trim = true};

#define CT "Content-Type"

enum ofe_ce_mode ofe_ce_http_mode(const char *content_type, size_t len)
{
    if (!content_type)
        return OFE_CE_BINARY;
    while (len && (*content_type == ' ' || *content_type == '\t')) {
        content_type++;
        len--;
    }
    if (ce__has_prefix_ci(content_type, len, "application/cloudevents-batch"))
        return OFE_CE_BATCH;
    if (ce__has_prefix_ci(content_type, len, "application/cloudevents"))
        return OFE_CE_STRUCTURED;
    return OFE_CE_BINARY;
}

static int add_hints(const struct ofe_ce *ev, unsigned flags, struct ofe_hdrs *hdrs)
{
    if (!(flags & OFE_CE_BIND_TYPEHINTS))
        return 0;
    struct ofe_buf b = OFE_BUF_INIT;
    int rc = ce__typehints_build(ev, &b);
    if (!rc && b.len)
        rc = ofe_hdrs_add_copy(hdrs, OFE_CE_TYPEHINTS_HEADER, strlen(OFE_CE_TYPEHINTS_HEADER),
                               b.data, b.len);
    ofe_buf_fini(&b);
    return rc;
}

int ofe_ce_http_encode(const struct ofe_ce *ev, enum ofe_ce_mode mode, unsigned flags,
                       struct ofe_hdrs *hdrs, struct ofe_buf *body_buf, const void **body,
                       size_t *body_len, char *errstr, size_t errstr_size)
{
    int rc = ofe_ce_validate(ev, errstr, errstr_size);
    if (rc)
        return rc;
    if (mode == OFE_CE_BINARY) {
        size_t ctlen;
        const char *ct = ce__binary_content_type(ev, &ctlen);
        if ((rc = ce__wire_encode(ev, &http_wire, flags, hdrs)))
            return rc;
        if (ct && (rc = ofe_hdrs_add_ref(hdrs, CT, sizeof(CT) - 1, ct, ctlen)))
            return rc;
        *body = ev->has_data ? ev->data : NULL;
        *body_len = ev->has_data ? ev->data_len : 0;
        return 0;
    }
    if (mode != OFE_CE_STRUCTURED)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "batch mode carries several events: use ofe_ce_http_encode_batch");
    size_t len0 = body_buf->len;
    if ((rc = ofe_ce_json_encode(ev, body_buf, errstr, errstr_size)))
        return rc;
    if ((rc = ofe_hdrs_add_ref(hdrs, CT, sizeof(CT) - 1, OFE_CE_JSON_MEDIA,
                               sizeof(OFE_CE_JSON_MEDIA) - 1)) ||
        (rc = add_hints(ev, flags, hdrs)))
        return rc;
    *body = body_buf->data + len0;
    *body_len = body_buf->len - len0;
    return 0;
}

int ofe_ce_http_encode_batch(struct ofe_ce *const *evs, size_t n, struct ofe_hdrs *hdrs,
                             struct ofe_buf *body_buf, char *errstr, size_t errstr_size)
{
    int rc = ofe_ce_json_encode_batch(evs, n, body_buf, errstr, errstr_size);
    if (rc)
        return rc;
    return ofe_hdrs_add_ref(hdrs, CT, sizeof(CT) - 1, OFE_CE_BATCH_MEDIA,
                            sizeof(OFE_CE_BATCH_MEDIA) - 1);
}

int ofe_ce_http_decode(const struct ofe_hdrs *hdrs, const void *body, size_t body_len,
                       unsigned flags, struct ofe_ce_list *out, char *errstr, size_t errstr_size)
{
    const struct ofe_hdr *cth = ofe_hdrs_get(hdrs, CT);
    enum ofe_ce_mode mode = cth ? ofe_ce_http_mode(cth->value, cth->value_len) : OFE_CE_BINARY;
    struct ce_hints hints;
    int rc;
    if (mode == OFE_CE_BATCH) {
        if ((rc = ce__check_format(cth->value, cth->value_len, true, errstr, errstr_size)))
            return rc;
        return ofe_ce_json_decode_batch(body, body_len, out, errstr, errstr_size);
    }
    if ((rc = ce__typehints_find(hdrs, flags, &hints, errstr, errstr_size)))
        return rc;
    struct ofe_ce *ev = NULL;
    if (mode == OFE_CE_STRUCTURED) {
        if ((rc = ce__check_format(cth->value, cth->value_len, false, errstr, errstr_size)) ||
            (rc = ce__structured_decode(body, body_len, &hints, &ev, errstr, errstr_size)))
            return rc;
    } else {
        ev = ce__new(ce__wire_size(hdrs, body_len));
        if (!ev)
            return OFE_ENOMEM;
        if ((rc = ce__wire_decode(ev, hdrs, &http_dec, &hints, errstr, errstr_size)) ||
            (cth && (rc = ce__set_content_type(ev, cth->value, cth->value_len,
                                               "header Content-Type", errstr, errstr_size))))
            goto fail;
        if (body_len) {
            char *d = ce__alloc(ev, body_len + 1);
            if (!d) {
                rc = OFE_ENOMEM;
                goto fail;
            }
            memcpy(d, body, body_len);
            d[body_len] = '\0';
            ce__set_data_arena(ev, d, body_len, false);
        }
        if ((rc = ofe_ce_validate(ev, errstr, errstr_size)))
            goto fail;
    }
    if ((rc = ofe_ce_list_push(out, ev)))
        goto fail;
    return 0;
fail:
    ofe_ce_unref(ev);
    return rc;
}
