/* MQTT protocol binding (CloudEvents v1.0.2). MQTT 5 binary mode: the
 * PUBLISH Content Type property = datacontenttype, one User Property per
 * other attribute named by the bare attribute name, payload = data.
 * MQTT 3.1.1 (no properties): structured mode only, payload = JSON. */
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

static const char *const mqtt_names[OFE_CE_NSPEC] = {
    [OFE_CE_ID] = "id",
    [OFE_CE_SOURCE] = "source",
    [OFE_CE_SPECVERSION] = "specversion",
    [OFE_CE_TYPE] = "type",
    [OFE_CE_DATACONTENTTYPE] = "datacontenttype",
    [OFE_CE_DATASCHEMA] = "dataschema",
    [OFE_CE_SUBJECT] = "subject",
    [OFE_CE_TIME] = "time",
};

static const struct ce_wire mqtt_wire = {
    .spec_names = mqtt_names, .prefix = "", .plen = 0, .pct = false, .with_ct = false};

/* User properties that are not attribute names belong to the application:
 * they are left alone. */
static const struct ce_wire_dec mqtt_dec = {.prefix = "", .plen = 0, .skip_bad_names = true};

int ofe_ce_mqtt_encode(const struct ofe_ce *ev, enum ofe_ce_mode mode, unsigned flags,
                       struct ofe_hdrs *user_props, const char **content_type,
                       struct ofe_buf *payload_buf, const void **payload, size_t *payload_len,
                       char *errstr, size_t errstr_size)
{
    int rc = ofe_ce_validate(ev, errstr, errstr_size);
    if (rc)
        return rc;
    if (mode == OFE_CE_BINARY) {
        size_t ctlen;
        if ((rc = ce__wire_encode(ev, &mqtt_wire, flags, user_props)))
            return rc;
        *content_type = ce__binary_content_type(ev, &ctlen);
        *payload = ev->has_data ? ev->data : NULL;
        *payload_len = ev->has_data ? ev->data_len : 0;
        return 0;
    }
    if (mode != OFE_CE_STRUCTURED)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "the MQTT binding has no batch mode: one event per message");
    size_t len0 = payload_buf->len;
    if ((rc = ofe_ce_json_encode(ev, payload_buf, errstr, errstr_size)))
        return rc;
    *content_type = OFE_CE_JSON_MEDIA;
    *payload = payload_buf->data + len0;
    *payload_len = payload_buf->len - len0;
    return 0;
}

static bool has_attribute_props(const struct ofe_hdrs *p)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (ofe_ce_spec_slot(p->v[i].name, p->v[i].name_len) >= 0 ||
            ofe_ce_check_name(p->v[i].name, p->v[i].name_len, NULL, 0) == 0)
            return true;
    return false;
}

int ofe_ce_mqtt_decode(const struct ofe_hdrs *user_props, const char *content_type,
                       const void *payload, size_t payload_len, unsigned flags, struct ofe_ce **out,
                       char *errstr, size_t errstr_size)
{
    size_t ctlen = content_type ? strlen(content_type) : 0;
    struct ce_hints hints;
    int rc = ce__typehints_find(user_props, flags, &hints, errstr, errstr_size);
    if (rc)
        return rc;
    bool structured = content_type
                          ? ce__has_prefix_ci(content_type, ctlen, "application/cloudevents")
                          : !has_attribute_props(user_props); /* MQTT 3.1.1 */
    if (structured) {
        if (content_type && ce__has_prefix_ci(content_type, ctlen, "application/cloudevents-batch"))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "the MQTT binding has no batch mode: one event per message");
        if (content_type &&
            (rc = ce__check_format(content_type, ctlen, false, errstr, errstr_size)))
            return rc;
        return ce__structured_decode(payload, payload_len, &hints, out, errstr, errstr_size);
    }
    struct ofe_ce *ev = ce__new(ce__wire_size(user_props, payload_len + ctlen));
    if (!ev)
        return OFE_ENOMEM;
    if ((rc = ce__wire_decode(ev, user_props, &mqtt_dec, &hints, errstr, errstr_size)) ||
        (content_type &&
         (rc = ce__set_content_type(ev, content_type, ctlen, "Content Type", errstr, errstr_size))))
        goto fail;
    if (payload_len) {
        char *d = ce__alloc(ev, payload_len + 1);
        if (!d) {
            rc = OFE_ENOMEM;
            goto fail;
        }
        memcpy(d, payload, payload_len);
        d[payload_len] = '\0';
        ce__set_data_arena(ev, d, payload_len, false);
    }
    if ((rc = ofe_ce_validate(ev, errstr, errstr_size)))
        goto fail;
    *out = ev;
    return 0;
fail:
    ofe_ce_unref(ev);
    return rc;
}
