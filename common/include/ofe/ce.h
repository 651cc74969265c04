/* CloudEvents v1.0.2: the one event model of ofevents.
 *
 * An event is a set of context attributes, each with a type and a value kept
 * in its canonical string form (the form every protocol binding carries),
 * plus optional data as opaque bytes. Integer and Boolean values are also
 * kept decoded. The attributes the spec defines sit in fixed slots
 * (OFE_CE_ID .. OFE_CE_TIME), so hot paths reach them by index; extensions
 * follow in insertion order.
 *
 * Events are reference counted (ofe_ce_ref / ofe_ce_unref) and may be read
 * from several threads at once; only the creator mutates an event, before it
 * is shared. */
#ifndef OFE_CE_H
#define OFE_CE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/buf.h"

/* The attribute types of the type system (spec "Type System"). */
enum ofe_ce_type {
    OFE_CE_T_NONE = 0, /* unset */
    OFE_CE_T_BOOLEAN,
    OFE_CE_T_INTEGER,
    OFE_CE_T_STRING,
    OFE_CE_T_BINARY,
    OFE_CE_T_URI,
    OFE_CE_T_URIREF,
    OFE_CE_T_TIMESTAMP,
};

/* Slots of the context attributes the spec defines. */
enum {
    OFE_CE_ID = 0,
    OFE_CE_SOURCE,
    OFE_CE_SPECVERSION,
    OFE_CE_TYPE,
    OFE_CE_DATACONTENTTYPE,
    OFE_CE_DATASCHEMA,
    OFE_CE_SUBJECT,
    OFE_CE_TIME,
    OFE_CE_NSPEC /* first extension slot */
};

#define OFE_CE_NAME_MAX 64 /* longest attribute name we accept (spec: SHOULD <= 20) */

struct ofe_ce_attr {
    const char *name;  /* NUL-terminated, [a-z0-9]+; owned by the event */
    const char *value; /* canonical string form, NUL-terminated; NULL when unset */
    uint32_t value_len;
    uint8_t name_len;
    uint8_t type; /* enum ofe_ce_type; OFE_CE_T_NONE when unset */
    int32_t ival; /* Integer value, or Boolean as 0/1; 0 for other types */
};

/* The event. Fields are readable by anyone holding a reference; change them
 * only through the functions below. */
struct ofe_ce {
    int refcnt;                            /* atomic */
    struct ofe_ce_attr spec[OFE_CE_NSPEC]; /* fixed slots, .value NULL when unset */
    struct ofe_ce_attr *ext;               /* extensions, next of them */
    uint32_t next, ext_cap;
    unsigned char *data; /* owned; NULL with data_len 0 when no data */
    size_t data_len;
    bool has_data;     /* distinguishes "no data" from empty data */
    bool data_is_json; /* data holds a JSON text (from a JSON `data` member) */
    void *arena;       /* private string storage */
};

/* Creates an empty event (refcount 1, no attributes, no data).
 * Returns NULL on allocation failure. */
struct ofe_ce *ofe_ce_new(void);
/* Takes one more reference; returns ev. */
struct ofe_ce *ofe_ce_ref(struct ofe_ce *ev);
/* Drops a reference; the event is freed at zero. ofe_ce_unref(NULL) is a no-op. */
void ofe_ce_unref(struct ofe_ce *ev);
/* Deep copy with refcount 1, or NULL on allocation failure. */
struct ofe_ce *ofe_ce_dup(const struct ofe_ce *ev);

/* The type the spec gives a context attribute it defines (id: STRING,
 * source: URIREF, time: TIMESTAMP, ...), or OFE_CE_T_NONE for an extension. */
enum ofe_ce_type ofe_ce_spec_type(const char *name, size_t name_len);
/* Slot of a spec-defined attribute name, or -1 for an extension. */
int ofe_ce_spec_slot(const char *name, size_t name_len);
/* Name of a type as the spec writes it ("Boolean", "URI-reference", ...). */
const char *ofe_ce_type_name(enum ofe_ce_type t);

/* Checks an attribute name: 1 to OFE_CE_NAME_MAX characters of a-z and 0-9.
 * Returns 0 or OFE_EINVAL with a sentence in errstr. */
int ofe_ce_check_name(const char *name, size_t len, char *errstr, size_t errstr_size);

/* Sets attribute `name` from its string form, checked against `type` (which
 * must be the spec's type for spec-defined attributes; OFE_CE_T_NONE means
 * "the spec's type, or String for an extension"). The value must be in the
 * canonical string form (Boolean "true"/"false"; Integer without leading
 * zeros or "+", in signed 32-bit range, "-0" is stored as "0"; Binary as
 * padded RFC 4648 base64; Timestamp per RFC 3339, kept as given; rules in
 * docs/bindings.md). Spec attributes must not be empty. Replaces a previous
 * value. Returns 0, or OFE_EINVAL with a precise sentence (e.g. "attribute
 * 'time': \"yesterday\" is not an RFC 3339 timestamp: ..."), or
 * OFE_ENOMEM. The event is unchanged on error. The value is copied. */
int ofe_ce_set(struct ofe_ce *ev, const char *name, size_t name_len, enum ofe_ce_type type,
               const char *value, size_t value_len, char *errstr, size_t errstr_size);
/* Convenience for NUL-terminated name and value. */
int ofe_ce_set_str(struct ofe_ce *ev, const char *name, enum ofe_ce_type type, const char *value,
                   char *errstr, size_t errstr_size);
int ofe_ce_set_int(struct ofe_ce *ev, const char *name, int32_t v, char *errstr,
                   size_t errstr_size);
int ofe_ce_set_bool(struct ofe_ce *ev, const char *name, bool v, char *errstr, size_t errstr_size);
/* Removes an attribute; returns 0 or OFE_ENOENT. */
int ofe_ce_unset(struct ofe_ce *ev, const char *name, size_t name_len);

/* Looks an attribute up by name (spec slots without string compares for
 * the common names). Returns NULL when unset. */
const struct ofe_ce_attr *ofe_ce_get(const struct ofe_ce *ev, const char *name, size_t name_len);
/* Value of a set attribute as a C string, or NULL. */
const char *ofe_ce_get_str(const struct ofe_ce *ev, const char *name);

/* Iterates every set attribute, spec ones first: for (i = 0; (a =
 * ofe_ce_attr_at(ev, i)); i++). Returns NULL past the end. */
const struct ofe_ce_attr *ofe_ce_attr_at(const struct ofe_ce *ev, size_t i);

/* Copies data into the event (has_data becomes true, data_is_json false).
 * Returns 0 or OFE_ENOMEM. */
int ofe_ce_set_data(struct ofe_ce *ev, const void *data, size_t len);
/* Takes ownership of a malloc'd buffer (on success only). */
int ofe_ce_take_data(struct ofe_ce *ev, void *data, size_t len);
/* Removes data. */
void ofe_ce_clear_data(struct ofe_ce *ev);

/* Validates the whole event per CloudEvents v1.0.2: required attributes
 * set and non-empty, specversion "1.0" (every value was checked against its
 * type when it was set). Returns 0 or OFE_EINVAL naming the first violation
 * in errstr. Cheap: encoders call it on every event. */
int ofe_ce_validate(const struct ofe_ce *ev, char *errstr, size_t errstr_size);

/* Attribute-by-attribute and data comparison (types, canonical values and
 * data bytes). Returns true when equal. */
bool ofe_ce_equal(const struct ofe_ce *a, const struct ofe_ce *b);

/* True when a media type (parameters ignored, any case) declares JSON
 * data: subtype "json" or a "+json" suffix. This function can't fail. */
bool ofe_ce_media_is_json(const char *content_type, size_t len);

/* ---- JSON event format (application/cloudevents+json) ----------------- */

#define OFE_CE_JSON_MEDIA  "application/cloudevents+json"
#define OFE_CE_BATCH_MEDIA "application/cloudevents-batch+json"

/* Appends the JSON form of one event to out. Data goes to `data` as JSON
 * when it is JSON (data_is_json, or datacontenttype absent, .../json or
 * .../...+json, and the bytes are valid JSON), to `data` as a string when it is
 * text of a non-JSON type, else to `data_base64`. Returns 0, OFE_EINVAL
 * (the event is invalid: errstr says why) or OFE_ENOMEM. */
int ofe_ce_json_encode(const struct ofe_ce *ev, struct ofe_buf *out, char *errstr,
                       size_t errstr_size);
/* Decodes one JSON-format event. On success *out holds a new, validated
 * event. Returns OFE_EPARSE (not JSON, errstr has the position) or
 * OFE_EINVAL (not a valid CloudEvent, errstr names the attribute). */
int ofe_ce_json_decode(const void *json, size_t len, struct ofe_ce **out, char *errstr,
                       size_t errstr_size);

/* A list of events (batches). */
struct ofe_ce_list {
    struct ofe_ce **v;
    size_t n, cap;
};
void ofe_ce_list_fini(struct ofe_ce_list *l);                   /* unrefs every event */
int ofe_ce_list_push(struct ofe_ce_list *l, struct ofe_ce *ev); /* takes the reference */

int ofe_ce_json_encode_batch(struct ofe_ce *const *evs, size_t n, struct ofe_buf *out, char *errstr,
                             size_t errstr_size);
/* Decodes a JSON array of events; on error nothing is appended to out and
 * errstr names the index of the bad event ("event [3]: ..."). */
int ofe_ce_json_decode_batch(const void *json, size_t len, struct ofe_ce_list *out, char *errstr,
                             size_t errstr_size);
/* Like ofe_ce_json_decode_batch, but a bad event does not stop the batch:
 * each one is reported through bad(arg, index, error code, message) and
 * skipped, and the good ones are appended to out. Returns 0 when every
 * event was good, OFE_EINVAL when some were bad (errstr names the first),
 * OFE_EPARSE when the text is not JSON (nothing appended, errstr has the
 * position), OFE_ENOMEM. */
int ofe_ce_json_decode_batch_each(const void *json, size_t len, struct ofe_ce_list *out,
                                  void (*bad)(void *arg, size_t index, int err, const char *msg),
                                  void *arg, char *errstr, size_t errstr_size);

/* ---- Protocol bindings: pure codecs over a header list and a body ----- */

/* A header (or Kafka header, MQTT 5 user property, NATS header, Redis
 * stream field). Names and values are byte strings, not NUL-terminated. */
struct ofe_hdr {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A list of headers. Strings added with ofe_hdrs_add_copy live in the list's
 * own storage (NUL-terminated, valid until reset or fini, never moved);
 * ofe_hdrs_add_ref only points (the caller keeps them alive). reset keeps
 * the storage, so a list reused per message stops allocating. */
struct ofe_hdrs {
    struct ofe_hdr *v;
    size_t n, cap;
    struct ofe_buf store; /* private */
    void *arena;          /* private */
};
void ofe_hdrs_init(struct ofe_hdrs *h);
void ofe_hdrs_fini(struct ofe_hdrs *h);
void ofe_hdrs_reset(struct ofe_hdrs *h);
int ofe_hdrs_add_ref(struct ofe_hdrs *h, const char *name, size_t nlen, const char *value,
                     size_t vlen);
int ofe_hdrs_add_copy(struct ofe_hdrs *h, const char *name, size_t nlen, const char *value,
                      size_t vlen);
/* Case-insensitive lookup of the first header of that name, or NULL. */
const struct ofe_hdr *ofe_hdrs_get(const struct ofe_hdrs *h, const char *name);

/* Content modes. */
enum ofe_ce_mode { OFE_CE_BINARY = 0, OFE_CE_STRUCTURED, OFE_CE_BATCH };

/* Binding flags.
 * OFE_CE_BIND_TYPEHINTS: the encoder adds one header `ofe-cetypes` listing
 * the extensions whose type is not String ("myint=integer,flag=boolean"),
 * and the decoder applies such a header, so events crossing the bus between
 * ofevents processes keep their extension types. Other receivers see an
 * ordinary extra header. Without it, binary-mode extensions decode as
 * String (the spec's rule). */
#define OFE_CE_BIND_TYPEHINTS   0x1u
#define OFE_CE_TYPEHINTS_HEADER "ofe-cetypes"

/* Percent-encoding of header values as the HTTP binding specifies (space,
 * '"', '%' and bytes outside U+0021..U+007E, as UTF-8). decode accepts
 * lower- and upper-case hex, decodes exactly once, and rejects invalid
 * percent sequences and invalid UTF-8 (OFE_EINVAL). Both append to out. */
int ofe_ce_pct_encode(const char *s, size_t len, struct ofe_buf *out);
int ofe_ce_pct_decode(const char *s, size_t len, struct ofe_buf *out, char *errstr,
                      size_t errstr_size);

/* HTTP. encode: binary mode appends to `hdrs` one `ce-<name>` header per
 * attribute other than datacontenttype, then Content-Type (=
 * datacontenttype; application/json for JSON data of a JSON event without
 * one), and points *body at the event's data (not copied; NULL when there
 * is none). Header names and values may point into the event: use them
 * while the event lives. Structured mode appends Content-Type
 * application/cloudevents+json and appends the JSON to body_buf, pointing
 * *body at it. With OFE_CE_BIND_TYPEHINTS both modes add the type-hint
 * header when an extension is not a String. Returns 0, OFE_EINVAL (invalid
 * event, or OFE_CE_BATCH), OFE_ENOMEM. */
int ofe_ce_http_encode(const struct ofe_ce *ev, enum ofe_ce_mode mode, unsigned flags,
                       struct ofe_hdrs *hdrs, struct ofe_buf *body_buf, const void **body,
                       size_t *body_len, char *errstr, size_t errstr_size);
/* Encodes a batch (application/cloudevents-batch+json) into body_buf. */
int ofe_ce_http_encode_batch(struct ofe_ce *const *evs, size_t n, struct ofe_hdrs *hdrs,
                             struct ofe_buf *body_buf, char *errstr, size_t errstr_size);
/* Mode from a Content-Type value (case-insensitive, parameters ignored). */
enum ofe_ce_mode ofe_ce_http_mode(const char *content_type, size_t len);
/* Decodes an HTTP message (headers as received, any case) into one or more
 * events appended to out. Returns 0, OFE_EPARSE or OFE_EINVAL with a reason
 * fit for a 400 reply; out is unchanged on error. */
int ofe_ce_http_decode(const struct ofe_hdrs *hdrs, const void *body, size_t body_len,
                       unsigned flags, struct ofe_ce_list *out, char *errstr, size_t errstr_size);

/* Kafka: `ce_<name>` headers (UTF-8, not percent-encoded), `content-type`
 * = datacontenttype, value = data (NULL, a tombstone, when the event has no
 * data); *key and *key_len from the `partitionkey` extension (NULL when
 * absent). Structured mode: content-type application/cloudevents+json,
 * value = JSON appended to value_buf. decode: structured when content-type
 * starts with application/cloudevents, else binary; value NULL is no data,
 * a non-NULL empty value is empty data; in binary mode a key that is a
 * valid String becomes partitionkey when no ce_partitionkey header gave
 * one. */
int ofe_ce_kafka_encode(const struct ofe_ce *ev, enum ofe_ce_mode mode, unsigned flags,
                        struct ofe_hdrs *hdrs, struct ofe_buf *value_buf, const void **value,
                        size_t *value_len, const void **key, size_t *key_len, char *errstr,
                        size_t errstr_size);
int ofe_ce_kafka_decode(const struct ofe_hdrs *hdrs, const void *key, size_t key_len,
                        const void *value, size_t value_len, unsigned flags, struct ofe_ce **out,
                        char *errstr, size_t errstr_size);

/* MQTT 5 binary: *content_type = datacontenttype (or NULL; a pointer into
 * the event or a static string), one user property per other attribute
 * with the bare attribute name, payload = data. MQTT 3.1.1: structured JSON
 * only (mode OFE_CE_STRUCTURED; user_props stays empty, *content_type is
 * application/cloudevents+json for MQTT 5 senders). decode: structured when
 * the content type starts with application/cloudevents, or when there is
 * no content type and no user property named like an attribute (MQTT
 * 3.1.1); else binary, where user properties that are not attribute names
 * are ignored. user_props may be NULL. */
int ofe_ce_mqtt_encode(const struct ofe_ce *ev, enum ofe_ce_mode mode, unsigned flags,
                       struct ofe_hdrs *user_props, const char **content_type,
                       struct ofe_buf *payload_buf, const void **payload, size_t *payload_len,
                       char *errstr, size_t errstr_size);
int ofe_ce_mqtt_decode(const struct ofe_hdrs *user_props, const char *content_type,
                       const void *payload, size_t payload_len, unsigned flags, struct ofe_ce **out,
                       char *errstr, size_t errstr_size);

/* NATS (binary, headers): `ce-<name>` for every attribute including
 * ce-datacontenttype, percent-encoded as in HTTP, plus Content-Type;
 * structured when Content-Type starts with application/cloudevents. */
int ofe_ce_nats_encode(const struct ofe_ce *ev, enum ofe_ce_mode mode, unsigned flags,
                       struct ofe_hdrs *hdrs, struct ofe_buf *body_buf, const void **body,
                       size_t *body_len, char *errstr, size_t errstr_size);
int ofe_ce_nats_decode(const struct ofe_hdrs *hdrs, const void *body, size_t body_len,
                       unsigned flags, struct ofe_ce **out, char *errstr, size_t errstr_size);

/* Redis Streams (ours; docs/bindings.md, binding version 1): a version
 * field, one field per attribute, the extension types, and a `data` field,
 * in the order written there. The fields land in `fields` (name, value
 * pairs, pointing into the event) ready for XADD; decode takes the fields
 * of one entry. Extension types always travel (flags is ignored). decode
 * also reads Dapr pubsub.redis entries (one `data` field holding a
 * JSON-format event); an unknown version is OFE_EUNSUPP. */
int ofe_ce_redis_encode(const struct ofe_ce *ev, unsigned flags, struct ofe_hdrs *fields,
                        char *errstr, size_t errstr_size);
int ofe_ce_redis_decode(const struct ofe_hdrs *fields, unsigned flags, struct ofe_ce **out,
                        char *errstr, size_t errstr_size);

#endif
