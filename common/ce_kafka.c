/* Kafka protocol binding (CloudEvents v1.0.2): `ce_<name>` headers (UTF-8,
 * not percent-encoded), `content-type` = datacontenttype, record value =
 * data (no value when there is no data), record key from the
 * `partitionkey` extension (the key mapper of the partitioning
 * extension). Structured mode: content-type application/cloudevents+json. */
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

static const char *const kafka_names[OFE_CE_NSPEC] = {
    [OFE_CE_ID] = "ce_id",
    [OFE_CE_SOURCE] = "ce_source",
    [OFE_CE_SPECVERSION] = "ce_specversion",
    [OFE_CE_TYPE] = "ce_type",
    [OFE_CE_DATACONTENTTYPE] = "ce_datacontenttype",
    [OFE_CE_DATASCHEMA] = "ce_dataschema",
    [OFE_CE_SUBJECT] = "ce_subject",
    [OFE_CE_TIME] = "ce_time",
};

static const struct ce_wire kafka_wire = {
    .spec_names = kafka_names, .prefix = "ce_", .plen = 3, .pct = false, .with_ct = false};

static const struct ce_wire_dec kafka_dec = {.prefix = "ce_", .plen = 3};

#define CT "content-type"

int ofe_ce_kafka_encode(const struct ofe_ce *ev, enum ofe_ce_mode mode, unsigned flags,
                        struct ofe_hdrs *hdrs, struct ofe_buf *value_buf, const void **value,
                        size_t *value_len, const void **key, size_t *key_len, char *errstr,
                        size_t errstr_size)
{
    int rc = ofe_ce_validate(ev, errstr, errstr_size);
    if (rc)
        return rc;
    const struct ofe_ce_attr *pk = ofe_ce_get(ev, "partitionkey", 12);
    if (mode == OFE_CE_BINARY) {
        size_t ctlen;
        const char *ct = ce__binary_content_type(ev, &ctlen);
        if ((rc = ce__wire_encode(ev, &kafka_wire, flags, hdrs)) ||
            (ct && (rc = ofe_hdrs_add_ref(hdrs, CT, sizeof(CT) - 1, ct, ctlen))))
            return rc;
        *value = ev->has_data ? ev->data : NULL;
        *value_len = ev->has_data ? ev->data_len : 0;
    } else if (mode == OFE_CE_STRUCTURED) {
        size_t len0 = value_buf->len;
        if ((rc = ofe_ce_json_encode(ev, value_buf, errstr, errstr_size)) ||
            (rc = ofe_hdrs_add_ref(hdrs, CT, sizeof(CT) - 1, OFE_CE_JSON_MEDIA,
                                   sizeof(OFE_CE_JSON_MEDIA) - 1)))
            return rc;
        if (flags & OFE_CE_BIND_TYPEHINTS) {
            struct ofe_buf b = OFE_BUF_INIT;
            rc = ce__typehints_build(ev, &b);
            if (!rc && b.len)
                rc = ofe_hdrs_add_copy(hdrs, OFE_CE_TYPEHINTS_HEADER,
                                       strlen(OFE_CE_TYPEHINTS_HEADER), b.data, b.len);
            ofe_buf_fini(&b);
            if (rc)
                return rc;
        }
        *value = value_buf->data + len0;
        *value_len = value_buf->len - len0;
    } else {
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "the Kafka binding has no batch mode: one event per record");
    }
    *key = pk ? pk->value : NULL;
    *key_len = pk ? pk->value_len : 0;
    return 0;
}

int ofe_ce_kafka_decode(const struct ofe_hdrs *hdrs, const void *key, size_t key_len,
                        const void *value, size_t value_len, unsigned flags, struct ofe_ce **out,
                        char *errstr, size_t errstr_size)
{
    const struct ofe_hdr *cth = ofe_hdrs_get(hdrs, CT);
    struct ce_hints hints;
    int rc = ce__typehints_find(hdrs, flags, &hints, errstr, errstr_size);
    if (rc)
        return rc;
    if (cth && ce__has_prefix_ci(cth->value, cth->value_len, "application/cloudevents")) {
        if (ce__has_prefix_ci(cth->value, cth->value_len, "application/cloudevents-batch"))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "the Kafka binding has no batch mode: one event per record");
        if ((rc = ce__check_format(cth->value, cth->value_len, false, errstr, errstr_size)))
            return rc;
        return ce__structured_decode(value, value_len, &hints, out, errstr, errstr_size);
    }
    struct ofe_ce *ev = ce__new(ce__wire_size(hdrs, value_len + key_len));
    if (!ev)
        return OFE_ENOMEM;
    if ((rc = ce__wire_decode(ev, hdrs, &kafka_dec, &hints, errstr, errstr_size)) ||
        (cth && (rc = ce__set_content_type(ev, cth->value, cth->value_len, "header content-type",
                                           errstr, errstr_size))))
        goto fail;
    /* A key becomes partitionkey when no header gave one and it is a
     * valid String; a binary key is the producer's business, not an
     * attribute. */
    if (key && key_len && !ofe_ce_get(ev, "partitionkey", 12) &&
        ce__check_string("partitionkey", 12, key, key_len, NULL, 0) == 0) {
        if ((rc = ofe_ce_set(ev, "partitionkey", 12, OFE_CE_T_STRING, key, key_len, errstr,
                             errstr_size)))
            goto fail;
    }
    if (value) {
        char *d = ce__alloc(ev, value_len + 1);
        if (!d) {
            rc = OFE_ENOMEM;
            goto fail;
        }
        if (value_len)
            memcpy(d, value, value_len);
        d[value_len] = '\0';
        ce__set_data_arena(ev, d, value_len, false);
    }
    if ((rc = ofe_ce_validate(ev, errstr, errstr_size)))
        goto fail;
    *out = ev;
    return 0;
fail:
    ofe_ce_unref(ev);
    return rc;
}
