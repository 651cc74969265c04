/* NATS protocol binding: binary mode over NATS 2.2 headers (`ce-<name>`
 * for every attribute including ce-datacontenttype, percent-encoded as in
 * HTTP, plus Content-Type), structured mode when Content-Type starts with
 * application/cloudevents. */
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

static const char *const nats_names[OFE_CE_NSPEC] = {
    [OFE_CE_ID] = "ce-id",
    [OFE_CE_SOURCE] = "ce-source",
    [OFE_CE_SPECVERSION] = "ce-specversion",
    [OFE_CE_TYPE] = "ce-type",
    [OFE_CE_DATACONTENTTYPE] = "ce-datacontenttype",
    [OFE_CE_DATASCHEMA] = "ce-dataschema",
    [OFE_CE_SUBJECT] = "ce-subject",
    [OFE_CE_TIME] = "ce-time",
};

static const struct ce_wire nats_wire = {
    .spec_names = nats_names, .prefix = "ce-", .plen = 3, .pct = true, .with_ct = true};

static const struct ce_wire_dec nats_dec = {.prefix = "ce-", .plen = 3, .pct = true, .trim = true};

#define CT "Content-Type"

int ofe_ce_nats_encode(const struct ofe_ce *ev, enum ofe_ce_mode mode, unsigned flags,
                       struct ofe_hdrs *hdrs, struct ofe_buf *body_buf, const void **body,
                       size_t *body_len, char *errstr, size_t errstr_size)
{
    int rc = ofe_ce_validate(ev, errstr, errstr_size);
    if (rc)
        return rc;
    if (mode == OFE_CE_BINARY) {
        size_t ctlen;
        const char *ct = ce__binary_content_type(ev, &ctlen);
        if ((rc = ce__wire_encode(ev, &nats_wire, flags, hdrs)) ||
            (ct && (rc = ofe_hdrs_add_ref(hdrs, CT, sizeof(CT) - 1, ct, ctlen))))
            return rc;
        *body = ev->has_data ? ev->data : NULL;
        *body_len = ev->has_data ? ev->data_len : 0;
        return 0;
    }
    if (mode != OFE_CE_STRUCTURED)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "the NATS binding has no batch mode: one event per message");
    size_t len0 = body_buf->len;
    if ((rc = ofe_ce_json_encode(ev, body_buf, errstr, errstr_size)) ||
        (rc = ofe_hdrs_add_ref(hdrs, CT, sizeof(CT) - 1, OFE_CE_JSON_MEDIA,
                               sizeof(OFE_CE_JSON_MEDIA) - 1)))
        return rc;
    if (flags & OFE_CE_BIND_TYPEHINTS) {
        struct ofe_buf b = OFE_BUF_INIT;
        rc = ce__typehints_build(ev, &b);
        if (!rc && b.len)
            rc = ofe_hdrs_add_copy(hdrs, OFE_CE_TYPEHINTS_HEADER, strlen(OFE_CE_TYPEHINTS_HEADER),
                                   b.data, b.len);
        ofe_buf_fini(&b);
        if (rc)
            return rc;
    }
    *body = body_buf->data + len0;
    *body_len = body_buf->len - len0;
    return 0;
}

int ofe_ce_nats_decode(const struct ofe_hdrs *hdrs, const void *body, size_t body_len,
                       unsigned flags, struct ofe_ce **out, char *errstr, size_t errstr_size)
{
    const struct ofe_hdr *cth = ofe_hdrs_get(hdrs, CT);
    struct ce_hints hints;
    int rc = ce__typehints_find(hdrs, flags, &hints, errstr, errstr_size);
    if (rc)
        return rc;
    if (cth && ce__has_prefix_ci(cth->value, cth->value_len, "application/cloudevents")) {
        if (ce__has_prefix_ci(cth->value, cth->value_len, "application/cloudevents-batch"))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "the NATS binding has no batch mode: one event per message");
        if ((rc = ce__check_format(cth->value, cth->value_len, false, errstr, errstr_size)))
            return rc;
        return ce__structured_decode(body, body_len, &hints, out, errstr, errstr_size);
    }
    struct ofe_ce *ev = ce__new(ce__wire_size(hdrs, body_len));
    if (!ev)
        return OFE_ENOMEM;
    if ((rc = ce__wire_decode(ev, hdrs, &nats_dec, &hints, errstr, errstr_size)))
        goto fail;
    /* ce-datacontenttype is the attribute; Content-Type stands in for it
     * when a sender gave only that. */
    if (cth && !ev->spec[OFE_CE_DATACONTENTTYPE].value &&
        (rc = ce__set_content_type(ev, cth->value, cth->value_len, "header Content-Type", errstr,
                                   errstr_size)))
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
    *out = ev;
    return 0;
fail:
    ofe_ce_unref(ev);
    return rc;
}
