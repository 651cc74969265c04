/* Internals shared by the CloudEvents files of libofe (ce*.c, hdrs.c).
 * Not a public header: nothing outside common/ includes it. */
#ifndef OFE_CE_INT_H
#define OFE_CE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/buf.h"
#include "ofe/ce.h"

/* ---- event storage (ce.c) ---------------------------------------------- */

/* Creates an event whose arena starts with room for about `hint` bytes of
 * strings and data, so that a decoder that knows the size of its input
 * makes one allocation per event. NULL on allocation failure. */
struct ofe_ce *ce__new(size_t hint);
/* Arena allocation (unaligned, for strings and data). NULL on failure. */
char *ce__alloc(struct ofe_ce *ev, size_t n);
/* Stores an attribute whose value already lives in the event's arena (or is
 * static), NUL-terminated at value[len], after checking it against its type.
 * `slot` is the spec slot or -1 (then `name` must be a valid extension name,
 * checked by the caller). Replaces a previous value. */
int ce__set_nocopy(struct ofe_ce *ev, int slot, const char *name, size_t nlen,
                   enum ofe_ce_type type, const char *value, size_t len, char *errstr,
                   size_t errstr_size);
/* Points data at `len` bytes already in the arena. */
void ce__set_data_arena(struct ofe_ce *ev, const char *data, size_t len, bool is_json);
/* Mutable view of an attribute (NULL when unset). */
struct ofe_ce_attr *ce__find(struct ofe_ce *ev, const char *name, size_t nlen);

/* ---- value checks (ce_check.c) ----------------------------------------- */

/* Checks `v` as a value of type `t` for attribute `name` (used only in the
 * error message). On success *ival holds the Integer / Boolean value and
 * *canon_len the length of the canonical form, which is a prefix-free
 * rewrite the caller applies with ce__canonicalize (only "-0" -> "0"). */
int ce__check_value(const char *name, size_t nlen, enum ofe_ce_type t, const char *v, size_t len,
                    int32_t *ival, char *errstr, size_t errstr_size);
/* Validates UTF-8 and the String rules (no C0/C1 controls, no surrogates,
 * no noncharacters). Returns 0 or OFE_EINVAL with the reason. */
int ce__check_string(const char *name, size_t nlen, const char *v, size_t len, char *errstr,
                     size_t errstr_size);
/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
size_t ce__utf8_seq(const unsigned char *s, size_t n);
/* Plain UTF-8 validity (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
bool ce__utf8_valid(const char *s, size_t n);
/* RFC 2046 / RFC 7231 media type: type "/" subtype *(OWS ";" OWS param). */
int ce__check_media_type(const char *v, size_t len, char *why, size_t why_size);
/* True when a media type declares JSON data: subtype "json" or "+json"
 * suffix, parameters ignored, case-insensitive. */
bool ce__media_is_json(const char *ct, size_t len);
/* True when a non-JSON media type is text (text/any, XML, YAML, a charset
 * parameter, form data, JavaScript): JSON-format data of such a type is
 * written as a JSON string when it is valid UTF-8. */
bool ce__media_is_text(const char *ct, size_t len);
/* Writes a short, printable, quoted rendering of a value for messages. */
const char *ce__quote(char *out, size_t out_size, const char *v, size_t len);

/* ---- base64, RFC 4648 with padding (ce_base64.c) ----------------------- */

static inline size_t ce__b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}
/* Writes ce__b64_len(n) characters (no NUL). */
void ce__b64_encode(const unsigned char *in, size_t n, char *out);
/* Strict decode: alphabet A-Z a-z 0-9 + /, length a multiple of 4, '='
 * only as final padding, unused bits zero. out needs len/4*3 bytes.
 * Returns 0 and the decoded length, or OFE_EINVAL with the reason in why. */
int ce__b64_decode(const char *in, size_t len, unsigned char *out, size_t *out_len, char *why,
                   size_t why_size);

/* ---- JSON helpers (ce_json.c) ------------------------------------------ */

/* Appends s as a JSON string literal (with quotes). */
int ce__json_put_string(struct ofe_buf *b, const char *s, size_t n);
/* True when the bytes are exactly one JSON value (RFC 8259, surrounding
 * whitespace allowed). */
bool ce__json_valid(const char *s, size_t n);

/* ---- percent-encoding (ce_pct.c) -------------------------------------- */

size_t ce__pct_encoded_len(const char *s, size_t len);
void ce__pct_encode_into(const char *s, size_t len, char *out);
/* Decodes into out (which may be s itself); checks UTF-8. */
int ce__pct_decode_into(const char *s, size_t len, char *out, size_t *out_len, char *why,
                        size_t why_size);

/* ---- shared binding machinery (ce_bind.c) ------------------------------ */

/* Extension types carried by the OFE_CE_TYPEHINTS_HEADER value
 * "name=type,name=type" (docs/bindings.md). A checked value is scanned
 * again on each lookup: events carry few typed extensions. */
struct ce_hints {
    const char *s;
    size_t len;
};
/* Appends the hint value for ev to out (nothing when every extension is a
 * String). */
int ce__typehints_build(const struct ofe_ce *ev, struct ofe_buf *out);
int ce__typehints_check(const char *s, size_t len, char *errstr, size_t errstr_size);
/* Type of extension `name`, OFE_CE_T_STRING when not listed (or no hints). */
enum ofe_ce_type ce__typehints_get(const struct ce_hints *h, const char *name, size_t nlen);
/* Re-types the String extensions of ev that h names (after a structured
 * decode, where JSON has no URI or Timestamp types). */
int ce__typehints_apply(struct ofe_ce *ev, const struct ce_hints *h, char *errstr,
                        size_t errstr_size);
/* Finds and checks the hint header in hdrs (when flags ask for hints):
 * h->s is NULL when there is none. */
int ce__typehints_find(const struct ofe_hdrs *hdrs, unsigned flags, struct ce_hints *h,
                       char *errstr, size_t errstr_size);

/* How a binding writes attributes as headers. */
struct ce_wire {
    const char *const *spec_names; /* header names of the spec slots */
    const char *prefix;            /* "ce-", "ce_" or "" */
    size_t plen;
    bool pct;     /* percent-encode values */
    bool with_ct; /* datacontenttype is a header too */
};
/* Appends one header per attribute (spec ones first, then extensions in
 * order) and, with OFE_CE_BIND_TYPEHINTS, the hint header. Values that
 * need no encoding point into the event. */
int ce__wire_encode(const struct ofe_ce *ev, const struct ce_wire *w, unsigned flags,
                    struct ofe_hdrs *h);

/* How a binding reads attributes from headers. */
struct ce_wire_dec {
    const char *prefix; /* matched case-insensitively; names are lower-cased */
    size_t plen;
    bool pct;            /* percent-decode values */
    bool quoted;         /* undo HTTP quoted-strings first */
    bool trim;           /* trim spaces and tabs around values */
    bool skip_bad_names; /* ignore (rather than reject) non-attribute names */
};
/* Sets every attribute found in h on ev. */
int ce__wire_decode(struct ofe_ce *ev, const struct ofe_hdrs *h, const struct ce_wire_dec *w,
                    const struct ce_hints *hints, char *errstr, size_t errstr_size);
/* Bytes a decoded event from these headers and body may need. */
size_t ce__wire_size(const struct ofe_hdrs *h, size_t body_len);
/* Checks that a structured-mode media type names the JSON format
 * ("application/cloudevents[+json]" or the batch one). */
int ce__check_format(const char *ct, size_t len, bool batch, char *errstr, size_t errstr_size);
/* Content type a binary message carries for ev: datacontenttype, or
 * application/json for JSON data from a JSON event without one (JSON
 * format 3.1.2), else NULL. */
const char *ce__binary_content_type(const struct ofe_ce *ev, size_t *len);
/* Sets datacontenttype from a content-type header / property value. */
int ce__set_content_type(struct ofe_ce *ev, const char *v, size_t len, const char *what,
                         char *errstr, size_t errstr_size);
/* Decodes a structured body and applies hints. */
int ce__structured_decode(const void *body, size_t len, const struct ce_hints *hints,
                          struct ofe_ce **out, char *errstr, size_t errstr_size);

/* Arena memory of a header list (hdrs.c): valid until reset/fini. */
char *ofe_hdrs__alloc(struct ofe_hdrs *h, size_t n);

/* Case-insensitive prefix test (prefix in lower case). */
bool ce__has_prefix_ci(const char *s, size_t len, const char *prefix);

#endif
