/* Redis Streams binding of our own (the CloudEvents spec has none), version
 * 1, written down byte by byte in docs/bindings.md. One stream entry per
 * event, fields in this order:
 *
 *   ofe-ce       "1"                  binding version marker, always first
 *   <attribute>  canonical string     one field per attribute: spec ones in
 *                                     the order specversion id source type
 *                                     datacontenttype dataschema subject time,
 *                                     then extensions in event order
 *   ofe-cetypes  name=type,...        only when an extension is not a String
 *   data         raw bytes            only when the event has data (may be "")
 *
 * Values are raw bytes (Redis is binary-safe): no percent-encoding, no
 * base64. Field names that are not attribute names cannot collide with
 * attributes ("data" is reserved by the spec, '-' is not allowed). */
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

#define VERSION_FIELD "ofe-ce"
#define VERSION       "1"
#define DATA_FIELD    "data"

static const char *const redis_names[OFE_CE_NSPEC] = {
    [OFE_CE_ID] = "id",
    [OFE_CE_SOURCE] = "source",
    [OFE_CE_SPECVERSION] = "specversion",
    [OFE_CE_TYPE] = "type",
    [OFE_CE_DATACONTENTTYPE] = "datacontenttype",
    [OFE_CE_DATASCHEMA] = "dataschema",
    [OFE_CE_SUBJECT] = "subject",
    [OFE_CE_TIME] = "time",
};

static const struct ce_wire redis_wire = {
    .spec_names = redis_names, .prefix = "", .plen = 0, .pct = false, .with_ct = true};

static const struct ce_wire_dec redis_dec = {.prefix = "", .plen = 0, .skip_bad_names = true};

int ofe_ce_redis_encode(const struct ofe_ce *ev, unsigned flags, struct ofe_hdrs *fields,
                        char *errstr, size_t errstr_size)
{
    int rc = ofe_ce_validate(ev, errstr, errstr_size);
    if (rc)
        return rc;
    /* types always travel: this binding is ours on both ends */
    if ((rc = ofe_hdrs_add_ref(fields, VERSION_FIELD, sizeof(VERSION_FIELD) - 1, VERSION,
                               sizeof(VERSION) - 1)) ||
        (rc = ce__wire_encode(ev, &redis_wire, flags | OFE_CE_BIND_TYPEHINTS, fields)))
        return rc;
    if (ev->has_data)
        return ofe_hdrs_add_ref(fields, DATA_FIELD, sizeof(DATA_FIELD) - 1,
                                ev->data ? (const char *)ev->data : "", ev->data_len);
    return 0;
}

/* Exact (case-sensitive) field lookup; *dup tells whether it repeats. */
static const struct ofe_hdr *field(const struct ofe_hdrs *f, const char *name, bool *dup)
{
    const struct ofe_hdr *found = NULL;
    size_t n = strlen(name);
    *dup = false;
    for (size_t i = 0; f && i < f->n; i++) {
        if (f->v[i].name_len == n && memcmp(f->v[i].name, name, n) == 0) {
            if (found)
                *dup = true;
            else
                found = &f->v[i];
        }
    }
    return found;
}

int ofe_ce_redis_decode(const struct ofe_hdrs *fields, unsigned flags, struct ofe_ce **out,
                        char *errstr, size_t errstr_size)
{
    bool dup;
    const struct ofe_hdr *ver = field(fields, VERSION_FIELD, &dup);
    const struct ofe_hdr *data;
    bool data_dup;
    data = field(fields, DATA_FIELD, &data_dup);
    if (!ver) {
        /* Dapr's pubsub.redis writes one field, "data", holding the
         * CloudEvent in JSON format: read that too. */
        if (data && !data_dup)
            return ofe_ce_json_decode(data->value, data->value_len, out, errstr, errstr_size);
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "not a CloudEvents stream entry: no '%s' field and no JSON 'data' field",
                       VERSION_FIELD);
    }
    if (dup || data_dup)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "field '%s' appears twice",
                       dup ? VERSION_FIELD : DATA_FIELD);
    if (ver->value_len != 1 || ver->value[0] != '1') {
        char q[64];
        return ofe_err(errstr, errstr_size, OFE_EUNSUPP,
                       "unsupported Redis binding version %s (this build reads version " VERSION
                       ")",
                       ce__quote(q, sizeof(q), ver->value, ver->value_len));
    }
    struct ce_hints hints = {NULL, 0};
    const struct ofe_hdr *th = field(fields, OFE_CE_TYPEHINTS_HEADER, &dup);
    if (th) {
        int rc = ce__typehints_check(th->value, th->value_len, errstr, errstr_size);
        if (rc)
            return rc;
        hints.s = th->value;
        hints.len = th->value_len;
    }
    struct ofe_ce *ev = ce__new(ce__wire_size(fields, 0));
    if (!ev)
        return OFE_ENOMEM;
    int rc = ce__wire_decode(ev, fields, &redis_dec, &hints, errstr, errstr_size);
    if (rc)
        goto fail;
    if (data) {
        char *d = ce__alloc(ev, data->value_len + 1);
        if (!d) {
            rc = OFE_ENOMEM;
            goto fail;
        }
        if (data->value_len)
            memcpy(d, data->value, data->value_len);
        d[data->value_len] = '\0';
        ce__set_data_arena(ev, d, data->value_len, false);
    }
    if ((rc = ofe_ce_validate(ev, errstr, errstr_size)))
        goto fail;
    *out = ev;
    return 0;
fail:
    ofe_ce_unref(ev);
    return rc;
}
