/* What the protocol bindings share: attributes to and from header lists,
 * the extension type hints (OFE_CE_TYPEHINTS_HEADER), content types and
 * the structured-mode format check. Each binding file (ce_http.c,
 * ce_kafka.c, ce_mqtt.c, ce_nats.c, ce_redis.c) only says which prefix,
 * encoding and content-type rules it uses. */
#include <stdio.h>
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

/* ---- type hints -------------------------------------------------------- */

static const struct {
    const char *token;
    enum ofe_ce_type type;
} hint_types[] = {
    {"boolean", OFE_CE_T_BOOLEAN},
    {"integer", OFE_CE_T_INTEGER},
    {"string", OFE_CE_T_STRING},
    {"binary", OFE_CE_T_BINARY},
    {"uri", OFE_CE_T_URI},
    {"urireference", OFE_CE_T_URIREF},
    {"timestamp", OFE_CE_T_TIMESTAMP},
};

static const char *hint_token(enum ofe_ce_type t)
{
    for (size_t i = 0; i < sizeof(hint_types) / sizeof(hint_types[0]); i++)
        if (hint_types[i].type == t)
            return hint_types[i].token;
    return "string";
}

int ce__typehints_build(const struct ofe_ce *ev, struct ofe_buf *out)
{
    bool first = true;
    for (uint32_t i = 0; i < ev->next; i++) {
        const struct ofe_ce_attr *a = &ev->ext[i];
        if (a->type == OFE_CE_T_STRING)
            continue;
        if (!first && ofe_buf_putc(out, ','))
            return OFE_ENOMEM;
        first = false;
        if (ofe_buf_append(out, a->name, a->name_len) || ofe_buf_putc(out, '=') ||
            ofe_buf_puts(out, hint_token(a->type)))
            return OFE_ENOMEM;
    }
    return 0;
}

/* Walks "name=type" items; calls fn for each, stops when fn returns non-0. */
static int hints_walk(const char *s, size_t len, char *errstr, size_t errstr_size,
                      int (*fn)(void *arg, const char *n, size_t nlen, enum ofe_ce_type t),
                      void *arg)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t n0 = i;
        while (i < len && s[i] != '=' && s[i] != ',')
            i++;
        size_t nlen = i - n0;
        if (i == len || s[i] != '=')
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "header %s: expected name=type at position %zu", OFE_CE_TYPEHINTS_HEADER,
                           n0 + 1);
        if (ofe_ce_check_name(s + n0, nlen, NULL, 0) || ofe_ce_spec_slot(s + n0, nlen) >= 0)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "header %s: '%.*s' is not an extension attribute name",
                           OFE_CE_TYPEHINTS_HEADER, (int)(nlen > 64 ? 64 : nlen), s + n0);
        size_t t0 = ++i;
        while (i < len && s[i] != ',' && s[i] != ' ' && s[i] != '\t')
            i++;
        size_t tlen = i - t0;
        enum ofe_ce_type t = OFE_CE_T_NONE;
        for (size_t k = 0; k < sizeof(hint_types) / sizeof(hint_types[0]); k++)
            if (strlen(hint_types[k].token) == tlen &&
                memcmp(hint_types[k].token, s + t0, tlen) == 0)
                t = hint_types[k].type;
        if (t == OFE_CE_T_NONE)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "header %s: unknown type '%.*s'",
                           OFE_CE_TYPEHINTS_HEADER, (int)(tlen > 32 ? 32 : tlen), s + t0);
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i < len) {
            if (s[i] != ',')
                return ofe_err(errstr, errstr_size, OFE_EINVAL,
                               "header %s: expected ',' at position %zu", OFE_CE_TYPEHINTS_HEADER,
                               i + 1);
            i++;
        }
        if (fn) {
            int rc = fn(arg, s + n0, nlen, t);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int ce__typehints_check(const char *s, size_t len, char *errstr, size_t errstr_size)
{
    return hints_walk(s, len, errstr, errstr_size, NULL, NULL);
}

struct hint_lookup {
    const char *name;
    size_t nlen;
    enum ofe_ce_type type;
};

static int lookup_fn(void *arg, const char *n, size_t nlen, enum ofe_ce_type t)
{
    struct hint_lookup *l = arg;
    if (nlen == l->nlen && memcmp(n, l->name, nlen) == 0) {
        l->type = t;
        return 1;
    }
    return 0;
}

enum ofe_ce_type ce__typehints_get(const struct ce_hints *h, const char *name, size_t nlen)
{
    if (!h || !h->s)
        return OFE_CE_T_STRING;
    struct hint_lookup l = {name, nlen, OFE_CE_T_STRING};
    hints_walk(h->s, h->len, NULL, 0, lookup_fn, &l);
    return l.type;
}

struct hint_apply {
    struct ofe_ce *ev;
    char *errstr;
    size_t errstr_size;
};

static int apply_fn(void *arg, const char *n, size_t nlen, enum ofe_ce_type t)
{
    struct hint_apply *ap = arg;
    struct ofe_ce_attr *a = ce__find(ap->ev, n, nlen);
    if (!a || a->type == t)
        return 0;
    if (a->type != OFE_CE_T_STRING)
        return ofe_err(ap->errstr, ap->errstr_size, OFE_EINVAL,
                       "attribute '%.*s' is %s but header %s says %s", (int)nlen, n,
                       ofe_ce_type_name(a->type), OFE_CE_TYPEHINTS_HEADER, ofe_ce_type_name(t));
    return ce__set_nocopy(ap->ev, -1, a->name, a->name_len, t, a->value, a->value_len, ap->errstr,
                          ap->errstr_size);
}

int ce__typehints_apply(struct ofe_ce *ev, const struct ce_hints *h, char *errstr,
                        size_t errstr_size)
{
    if (!h || !h->s)
        return 0;
    struct hint_apply ap = {ev, errstr, errstr_size};
    return hints_walk(h->s, h->len, errstr, errstr_size, apply_fn, &ap);
}

int ce__typehints_find(const struct ofe_hdrs *hdrs, unsigned flags, struct ce_hints *h,
                       char *errstr, size_t errstr_size)
{
    h->s = NULL;
    h->len = 0;
    if (!(flags & OFE_CE_BIND_TYPEHINTS) || !hdrs)
        return 0;
    const struct ofe_hdr *e = ofe_hdrs_get(hdrs, OFE_CE_TYPEHINTS_HEADER);
    if (!e)
        return 0;
    int rc = ce__typehints_check(e->value, e->value_len, errstr, errstr_size);
    if (rc)
        return rc;
    h->s = e->value;
    h->len = e->value_len;
    return 0;
}

/* ---- attributes as headers --------------------------------------------- */

static int add_value(struct ofe_hdrs *h, const char *name, size_t nlen, const char *v, size_t vlen,
                     bool pct)
{
    if (pct) {
        size_t n = ce__pct_encoded_len(v, vlen);
        if (n != vlen) {
            char *p = ofe_hdrs__alloc(h, n + 1);
            if (!p)
                return OFE_ENOMEM;
            ce__pct_encode_into(v, vlen, p);
            p[n] = '\0';
            return ofe_hdrs_add_ref(h, name, nlen, p, n);
        }
    }
    return ofe_hdrs_add_ref(h, name, nlen, v, vlen);
}

int ce__wire_encode(const struct ofe_ce *ev, const struct ce_wire *w, unsigned flags,
                    struct ofe_hdrs *h)
{
    static const int order[] = {
        OFE_CE_SPECVERSION,     OFE_CE_ID,         OFE_CE_SOURCE,  OFE_CE_TYPE,
        OFE_CE_DATACONTENTTYPE, OFE_CE_DATASCHEMA, OFE_CE_SUBJECT, OFE_CE_TIME};
    int rc;
    bool typed = false;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        int s = order[i];
        const struct ofe_ce_attr *a = &ev->spec[s];
        if (!a->value || (s == OFE_CE_DATACONTENTTYPE && !w->with_ct))
            continue;
        if ((rc = add_value(h, w->spec_names[s], w->plen + a->name_len, a->value, a->value_len,
                            w->pct)))
            return rc;
    }
    for (uint32_t i = 0; i < ev->next; i++) {
        const struct ofe_ce_attr *a = &ev->ext[i];
        const char *n = a->name;
        size_t nlen = a->name_len;
        if (w->plen) {
            char *p = ofe_hdrs__alloc(h, w->plen + nlen + 1);
            if (!p)
                return OFE_ENOMEM;
            memcpy(p, w->prefix, w->plen);
            memcpy(p + w->plen, a->name, nlen + 1);
            n = p;
            nlen += w->plen;
        }
        if ((rc = add_value(h, n, nlen, a->value, a->value_len, w->pct)))
            return rc;
        typed |= a->type != OFE_CE_T_STRING;
    }
    if (typed && (flags & OFE_CE_BIND_TYPEHINTS)) {
        struct ofe_buf b = OFE_BUF_INIT;
        rc = ce__typehints_build(ev, &b);
        if (!rc)
            rc = ofe_hdrs_add_copy(h, OFE_CE_TYPEHINTS_HEADER, strlen(OFE_CE_TYPEHINTS_HEADER),
                                   b.data, b.len);
        ofe_buf_fini(&b);
        return rc;
    }
    return 0;
}

size_t ce__wire_size(const struct ofe_hdrs *h, size_t body_len)
{
    size_t n = body_len + 96;
    for (size_t i = 0; h && i < h->n; i++)
        n += h->v[i].name_len + h->v[i].value_len + 2;
    return n;
}

/* Undoes RFC 7230 quoted-strings (with backslash escapes) in a header
 * value; out may be v itself. */
static int unquote(const char *v, size_t n, char *out, size_t *olen)
{
    size_t o = 0, i = 0;
    while (i < n) {
        if (v[i] != '"') {
            out[o++] = v[i++];
            continue;
        }
        i++;
        for (;;) {
            if (i >= n)
                return OFE_EINVAL;
            if (v[i] == '"') {
                i++;
                break;
            }
            if (v[i] == '\\') {
                if (i + 1 >= n)
                    return OFE_EINVAL;
                i++;
            }
            out[o++] = v[i++];
        }
    }
    *olen = o;
    return 0;
}

/* Whether byte c occurs in s (eight bytes at a time: values are short). */
static bool has_byte(const char *s, size_t n, unsigned char c)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const uint64_t pat = ones * c;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        w ^= pat;
        if ((w - ones) & ~w & highs)
            return true;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] == c)
            return true;
    return false;
}

static int header_error(const struct ofe_hdr *e, const char *msg, char *errstr, size_t errstr_size)
{
    char q[96];
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "header %s: %s",
                   ce__quote(q, sizeof(q), e->name, e->name_len), msg);
}

int ce__wire_decode(struct ofe_ce *ev, const struct ofe_hdrs *h, const struct ce_wire_dec *w,
                    const struct ce_hints *hints, char *errstr, size_t errstr_size)
{
    static const size_t hint_hdr_len = sizeof(OFE_CE_TYPEHINTS_HEADER) - 1;
    char msg[384];
    for (size_t i = 0; h && i < h->n; i++) {
        const struct ofe_hdr *e = &h->v[i];
        if (e->name_len < w->plen)
            continue;
        bool match = true;
        for (size_t k = 0; k < w->plen && match; k++) {
            unsigned char c = (unsigned char)e->name[k];
            match = (c >= 'A' && c <= 'Z' ? (c | 0x20) : c) == (unsigned char)w->prefix[k];
        }
        if (!match)
            continue;
        size_t nlen = e->name_len - w->plen;
        if (!w->plen && nlen == hint_hdr_len &&
            ce__has_prefix_ci(e->name, e->name_len, OFE_CE_TYPEHINTS_HEADER))
            continue;
        char name[OFE_CE_NAME_MAX + 1];
        if (nlen == 0 || nlen > OFE_CE_NAME_MAX) {
            if (w->skip_bad_names)
                continue;
            ofe_ce_check_name(e->name + w->plen, nlen, msg, sizeof(msg));
            return header_error(e, msg, errstr, errstr_size);
        }
        for (size_t k = 0; k < nlen; k++) {
            char c = e->name[w->plen + k];
            name[k] = (w->plen && c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
        }
        name[nlen] = '\0';
        int slot = ofe_ce_spec_slot(name, nlen);
        if (slot < 0 && ofe_ce_check_name(name, nlen, msg, sizeof(msg))) {
            if (w->skip_bad_names)
                continue;
            return header_error(e, msg, errstr, errstr_size);
        }
        if (ce__find(ev, name, nlen))
            return header_error(e, "attribute given twice", errstr, errstr_size);
        const char *v = e->value;
        size_t vlen = e->value_len;
        if (w->trim) {
            while (vlen && (*v == ' ' || *v == '\t')) {
                v++;
                vlen--;
            }
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
        }
        char *p = ce__alloc(ev, vlen + 1);
        if (!p)
            return OFE_ENOMEM;
        if (vlen)
            memcpy(p, v, vlen);
        bool quote = w->quoted && has_byte(p, vlen, '"');
        bool pct = w->pct && has_byte(p, vlen, '%');
        size_t plen = vlen;
        if (quote && unquote(v, vlen, p, &plen))
            return header_error(e, "unterminated quoted string", errstr, errstr_size);
        if (pct) {
            char why[128];
            if (ce__pct_decode_into(p, plen, p, &plen, why, sizeof(why)))
                return header_error(e, why, errstr, errstr_size);
        }
        p[plen] = '\0';
        enum ofe_ce_type t = slot >= 0 ? OFE_CE_T_NONE : ce__typehints_get(hints, name, nlen);
        if (ce__set_nocopy(ev, slot, name, nlen, t, p, plen, msg, sizeof(msg)))
            return header_error(e, msg, errstr, errstr_size);
    }
    return 0;
}

/* ---- content types and formats ----------------------------------------- */

int ce__check_format(const char *ct, size_t len, bool batch, char *errstr, size_t errstr_size)
{
    const char *media = batch ? "application/cloudevents-batch" : "application/cloudevents";
    size_t i = 0;
    while (i < len && (ct[i] == ' ' || ct[i] == '\t'))
        i++;
    size_t m = strlen(media);
    size_t j = i + m;
    size_t e = j;
    while (e < len && ct[e] != ';' && ct[e] != ' ' && ct[e] != '\t')
        e++;
    if (e == j || (e - j == 5 && ce__has_prefix_ci(ct + j, 5, "+json")))
        return 0;
    char q[96];
    return ofe_err(errstr, errstr_size, OFE_EINVAL,
                   "unsupported event format %s (only the JSON format, %s, is supported)",
                   ce__quote(q, sizeof(q), ct + i, e - i),
                   batch ? OFE_CE_BATCH_MEDIA : OFE_CE_JSON_MEDIA);
}

const char *ce__binary_content_type(const struct ofe_ce *ev, size_t *len)
{
    const struct ofe_ce_attr *ct = &ev->spec[OFE_CE_DATACONTENTTYPE];
    if (ct->value) {
        *len = ct->value_len;
        return ct->value;
    }
    if (ev->has_data && ev->data_is_json) {
        *len = 16;
        return "application/json";
    }
    *len = 0;
    return NULL;
}

int ce__set_content_type(struct ofe_ce *ev, const char *v, size_t len, const char *what,
                         char *errstr, size_t errstr_size)
{
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    char msg[384];
    int rc = ofe_ce_set(ev, "datacontenttype", 15, OFE_CE_T_STRING, v, len, msg, sizeof(msg));
    if (rc == OFE_EINVAL)
        return ofe_err(errstr, errstr_size, rc, "%s: %s", what, msg);
    return rc;
}

int ce__structured_decode(const void *body, size_t len, const struct ce_hints *hints,
                          struct ofe_ce **out, char *errstr, size_t errstr_size)
{
    struct ofe_ce *ev;
    int rc = ofe_ce_json_decode(body, len, &ev, errstr, errstr_size);
    if (rc)
        return rc;
    if ((rc = ce__typehints_apply(ev, hints, errstr, errstr_size))) {
        ofe_ce_unref(ev);
        return rc;
    }
    *out = ev;
    return 0;
}
