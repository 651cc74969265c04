/* CloudEvents v1.0.2 event model: storage, attributes, data, validation.
 *
 * Storage: an event is one malloc'd block holding struct ofe_ce, its arena
 * header and the first arena chunk. Attribute names and values (and data,
 * when a decoder sizes the block for it) are bump-allocated from the arena;
 * more chunks are chained when it fills. Nothing in the arena is freed
 * before the event: a replaced value stays until ofe_ce_unref. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ce_int.h"
#include "ofe/err.h"

struct ce_chunk {
    struct ce_chunk *next;
};

struct ce_arena {
    char *p, *end;           /* free space of the current chunk */
    struct ce_chunk *chunks; /* extra chunks, freed with the event */
    size_t next_size;        /* size of the next extra chunk */
    bool data_in_arena;      /* ev->data is arena memory, not malloc'd */
};

struct ce_block {
    struct ofe_ce ev;
    struct ce_arena ar;
    _Alignas(8) char mem[];
};

#define CE_DEFAULT_ARENA 512
#define CE_CHUNK_MIN     1024
#define CE_CHUNK_MAX     (64 * 1024)
#define CE_EXT_INITIAL   8

static const struct {
    const char *name;
    uint8_t len;
    uint8_t type;
} spec_attrs[OFE_CE_NSPEC] = {
    [OFE_CE_ID] = {"id", 2, OFE_CE_T_STRING},
    [OFE_CE_SOURCE] = {"source", 6, OFE_CE_T_URIREF},
    [OFE_CE_SPECVERSION] = {"specversion", 11, OFE_CE_T_STRING},
    [OFE_CE_TYPE] = {"type", 4, OFE_CE_T_STRING},
    [OFE_CE_DATACONTENTTYPE] = {"datacontenttype", 15, OFE_CE_T_STRING},
    [OFE_CE_DATASCHEMA] = {"dataschema", 10, OFE_CE_T_URI},
    [OFE_CE_SUBJECT] = {"subject", 7, OFE_CE_T_STRING},
    [OFE_CE_TIME] = {"time", 4, OFE_CE_T_TIMESTAMP},
};

static inline struct ce_arena *arena_of(const struct ofe_ce *ev)
{
    return (struct ce_arena *)ev->arena;
}

struct ofe_ce *ce__new(size_t hint)
{
    if (hint > CE_CHUNK_MAX)
        hint = CE_CHUNK_MAX;
    struct ce_block *b = malloc(sizeof(*b) + hint);
    if (!b)
        return NULL;
    memset(&b->ev, 0, sizeof(b->ev));
    b->ev.refcnt = 1;
    b->ev.arena = &b->ar;
    b->ar.p = b->mem;
    b->ar.end = b->mem + hint;
    b->ar.chunks = NULL;
    b->ar.next_size = CE_CHUNK_MIN;
    b->ar.data_in_arena = false;
    for (int i = 0; i < OFE_CE_NSPEC; i++) {
        b->ev.spec[i].name = spec_attrs[i].name;
        b->ev.spec[i].name_len = spec_attrs[i].len;
    }
    return &b->ev;
}

struct ofe_ce *ofe_ce_new(void)
{
    return ce__new(CE_DEFAULT_ARENA);
}

static char *arena_alloc(struct ce_arena *a, size_t n, size_t align)
{
    uintptr_t p = ((uintptr_t)a->p + (align - 1)) & ~(uintptr_t)(align - 1);
    if (p <= (uintptr_t)a->end && n <= (size_t)((uintptr_t)a->end - p)) {
        a->p = (char *)(p + n);
        return (char *)p;
    }
    /* A large request gets a chunk of its own and leaves the current one
     * in place; a small one starts a new current chunk. */
    size_t hdr = (sizeof(struct ce_chunk) + 15) & ~(size_t)15;
    bool dedicated = n > a->next_size / 4;
    size_t size = dedicated ? n : a->next_size;
    if (n > SIZE_MAX - hdr - 16)
        return NULL;
    struct ce_chunk *c = malloc(hdr + size);
    if (!c)
        return NULL;
    c->next = a->chunks;
    a->chunks = c;
    char *mem = (char *)c + hdr;
    if (dedicated)
        return mem;
    if (a->next_size < CE_CHUNK_MAX)
        a->next_size *= 2;
    a->p = mem + n;
    a->end = mem + size;
    return mem;
}

char *ce__alloc(struct ofe_ce *ev, size_t n)
{
    return arena_alloc(arena_of(ev), n, 1);
}

static char *arena_strdup(struct ofe_ce *ev, const char *s, size_t n)
{
    char *p = arena_alloc(arena_of(ev), n + 1, 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void free_data(struct ofe_ce *ev)
{
    if (ev->data && !arena_of(ev)->data_in_arena)
        free(ev->data);
    ev->data = NULL;
    ev->data_len = 0;
    ev->has_data = false;
    ev->data_is_json = false;
    arena_of(ev)->data_in_arena = false;
}

struct ofe_ce *ofe_ce_ref(struct ofe_ce *ev)
{
    __atomic_add_fetch(&ev->refcnt, 1, __ATOMIC_RELAXED);
    return ev;
}

void ofe_ce_unref(struct ofe_ce *ev)
{
    if (!ev)
        return;
    if (__atomic_sub_fetch(&ev->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free_data(ev);
    struct ce_chunk *c = arena_of(ev)->chunks;
    while (c) {
        struct ce_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(ev); /* the block starts with the event */
}

/* ---- names and types --------------------------------------------------- */

int ofe_ce_spec_slot(const char *name, size_t len)
{
    int slot;
    switch (len) {
    case 2:
        slot = OFE_CE_ID;
        break;
    case 4:
        slot = name[1] == 'y' ? OFE_CE_TYPE : OFE_CE_TIME;
        break;
    case 6:
        slot = OFE_CE_SOURCE;
        break;
    case 7:
        slot = OFE_CE_SUBJECT;
        break;
    case 10:
        slot = OFE_CE_DATASCHEMA;
        break;
    case 11:
        slot = OFE_CE_SPECVERSION;
        break;
    case 15:
        slot = OFE_CE_DATACONTENTTYPE;
        break;
    default:
        return -1;
    }
    return memcmp(name, spec_attrs[slot].name, len) == 0 ? slot : -1;
}

enum ofe_ce_type ofe_ce_spec_type(const char *name, size_t len)
{
    int slot = ofe_ce_spec_slot(name, len);
    return slot < 0 ? OFE_CE_T_NONE : (enum ofe_ce_type)spec_attrs[slot].type;
}

const char *ofe_ce_type_name(enum ofe_ce_type t)
{
    switch (t) {
    case OFE_CE_T_BOOLEAN:
        return "Boolean";
    case OFE_CE_T_INTEGER:
        return "Integer";
    case OFE_CE_T_STRING:
        return "String";
    case OFE_CE_T_BINARY:
        return "Binary";
    case OFE_CE_T_URI:
        return "URI";
    case OFE_CE_T_URIREF:
        return "URI-reference";
    case OFE_CE_T_TIMESTAMP:
        return "Timestamp";
    case OFE_CE_T_NONE:
        break;
    }
    return "unset";
}

int ofe_ce_check_name(const char *name, size_t len, char *errstr, size_t errstr_size)
{
    char q[96];
    if (len == 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute name is empty");
    if (len > OFE_CE_NAME_MAX)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "attribute name %s is longer than %d characters",
                       ce__quote(q, sizeof(q), name, len), OFE_CE_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            continue;
        char cq[16];
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "attribute name %s: character %s at position %zu is not allowed (names "
                       "use a-z and 0-9 only)",
                       ce__quote(q, sizeof(q), name, len), ce__quote(cq, sizeof(cq), name + i, 1),
                       i + 1);
    }
    if (len == 4 && memcmp(name, "data", 4) == 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "attribute name \"data\" is reserved (it names the event data)");
    return 0;
}

/* ---- attributes -------------------------------------------------------- */

struct ofe_ce_attr *ce__find(struct ofe_ce *ev, const char *name, size_t nlen)
{
    int slot = ofe_ce_spec_slot(name, nlen);
    if (slot >= 0)
        return ev->spec[slot].value ? &ev->spec[slot] : NULL;
    for (uint32_t i = 0; i < ev->next; i++) {
        struct ofe_ce_attr *a = &ev->ext[i];
        if (a->name_len == nlen && memcmp(a->name, name, nlen) == 0)
            return a;
    }
    return NULL;
}

const struct ofe_ce_attr *ofe_ce_get(const struct ofe_ce *ev, const char *name, size_t name_len)
{
    return ce__find((struct ofe_ce *)ev, name, name_len);
}

const char *ofe_ce_get_str(const struct ofe_ce *ev, const char *name)
{
    const struct ofe_ce_attr *a = ofe_ce_get(ev, name, strlen(name));
    return a ? a->value : NULL;
}

const struct ofe_ce_attr *ofe_ce_attr_at(const struct ofe_ce *ev, size_t i)
{
    for (int s = 0; s < OFE_CE_NSPEC; s++) {
        if (!ev->spec[s].value)
            continue;
        if (i == 0)
            return &ev->spec[s];
        i--;
    }
    return i < ev->next ? &ev->ext[i] : NULL;
}

/* Checks a value for attribute (slot | name) and resolves its type. */
static int check_attr(int slot, const char *name, size_t nlen, enum ofe_ce_type *type,
                      const char *value, size_t len, int32_t *ival, char *errstr,
                      size_t errstr_size)
{
    if (slot >= 0) {
        enum ofe_ce_type st = (enum ofe_ce_type)spec_attrs[slot].type;
        if (*type != OFE_CE_T_NONE && *type != st)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute '%s' has type %s, not %s",
                           spec_attrs[slot].name, ofe_ce_type_name(st), ofe_ce_type_name(*type));
        *type = st;
        if (len == 0)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute '%s' must not be empty",
                           spec_attrs[slot].name);
    } else if (*type == OFE_CE_T_NONE) {
        *type = OFE_CE_T_STRING;
    } else if (*type > OFE_CE_T_TIMESTAMP) {
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute '%.*s': unknown type %d",
                       (int)nlen, name, (int)*type);
    }
    int rc = ce__check_value(name, nlen, *type, value, len, ival, errstr, errstr_size);
    if (rc)
        return rc;
    if (slot == OFE_CE_DATACONTENTTYPE) {
        char why[128];
        char q[96];
        if (ce__check_media_type(value, len, why, sizeof(why)))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute 'datacontenttype': %s is not a media type (RFC 2046): %s",
                           ce__quote(q, sizeof(q), value, len), why);
    }
    return 0;
}

/* Stores a checked value (already in the arena or static). */
static int store_attr(struct ofe_ce *ev, int slot, const char *name, size_t nlen,
                      enum ofe_ce_type type, const char *value, size_t len, int32_t ival)
{
    struct ofe_ce_attr *a;
    if (slot >= 0) {
        a = &ev->spec[slot];
    } else {
        a = NULL;
        for (uint32_t i = 0; i < ev->next; i++) {
            if (ev->ext[i].name_len == nlen && memcmp(ev->ext[i].name, name, nlen) == 0) {
                a = &ev->ext[i];
                break;
            }
        }
        if (!a) {
            if (ev->next == ev->ext_cap) {
                uint32_t cap = ev->ext_cap ? ev->ext_cap * 2 : CE_EXT_INITIAL;
                struct ofe_ce_attr *v = (struct ofe_ce_attr *)arena_alloc(
                    arena_of(ev), cap * sizeof(*v), _Alignof(struct ofe_ce_attr));
                if (!v)
                    return OFE_ENOMEM;
                if (ev->next)
                    memcpy(v, ev->ext, ev->next * sizeof(*v));
                ev->ext = v;
                ev->ext_cap = cap;
            }
            char *n = arena_strdup(ev, name, nlen);
            if (!n)
                return OFE_ENOMEM;
            a = &ev->ext[ev->next++];
            a->name = n;
            a->name_len = (uint8_t)nlen;
        }
    }
    a->value = value;
    a->value_len = (uint32_t)len;
    a->type = (uint8_t)type;
    a->ival = ival;
    return 0;
}

/* "-0" is the one non-canonical Integer spelling the grammar admits. */
static void canonical_int(const char **value, size_t *len)
{
    if (*len == 2 && (*value)[0] == '-' && (*value)[1] == '0') {
        *value = "0";
        *len = 1;
    }
}

int ce__set_nocopy(struct ofe_ce *ev, int slot, const char *name, size_t nlen,
                   enum ofe_ce_type type, const char *value, size_t len, char *errstr,
                   size_t errstr_size)
{
    int32_t ival = 0;
    if (slot >= 0) {
        name = spec_attrs[slot].name;
        nlen = spec_attrs[slot].len;
    }
    if (len > UINT32_MAX - 1)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute '%.*s': value too long",
                       (int)nlen, name);
    int rc = check_attr(slot, name, nlen, &type, value, len, &ival, errstr, errstr_size);
    if (rc)
        return rc;
    if (type == OFE_CE_T_INTEGER)
        canonical_int(&value, &len);
    else if (type == OFE_CE_T_BOOLEAN)
        value = ival ? "true" : "false";
    return store_attr(ev, slot, name, nlen, type, value, len, ival);
}

int ofe_ce_set(struct ofe_ce *ev, const char *name, size_t name_len, enum ofe_ce_type type,
               const char *value, size_t value_len, char *errstr, size_t errstr_size)
{
    int slot = ofe_ce_spec_slot(name, name_len);
    if (slot < 0) {
        int rc = ofe_ce_check_name(name, name_len, errstr, errstr_size);
        if (rc)
            return rc;
    }
    if (value_len > UINT32_MAX - 1)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute '%.*s': value too long",
                       (int)name_len, name);
    int32_t ival = 0;
    int rc = check_attr(slot, name, name_len, &type, value, value_len, &ival, errstr, errstr_size);
    if (rc)
        return rc;
    const char *v;
    if (type == OFE_CE_T_BOOLEAN) {
        v = ival ? "true" : "false";
    } else {
        if (type == OFE_CE_T_INTEGER)
            canonical_int(&value, &value_len);
        v = arena_strdup(ev, value, value_len);
        if (!v)
            return OFE_ENOMEM;
    }
    return store_attr(ev, slot, name, name_len, type, v, value_len, ival);
}

int ofe_ce_set_str(struct ofe_ce *ev, const char *name, enum ofe_ce_type type, const char *value,
                   char *errstr, size_t errstr_size)
{
    return ofe_ce_set(ev, name, strlen(name), type, value, strlen(value), errstr, errstr_size);
}

int ofe_ce_set_int(struct ofe_ce *ev, const char *name, int32_t v, char *errstr, size_t errstr_size)
{
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d", (int)v);
    return ofe_ce_set(ev, name, strlen(name), OFE_CE_T_INTEGER, buf, (size_t)n, errstr,
                      errstr_size);
}

int ofe_ce_set_bool(struct ofe_ce *ev, const char *name, bool v, char *errstr, size_t errstr_size)
{
    const char *s = v ? "true" : "false";
    return ofe_ce_set(ev, name, strlen(name), OFE_CE_T_BOOLEAN, s, strlen(s), errstr, errstr_size);
}

int ofe_ce_unset(struct ofe_ce *ev, const char *name, size_t name_len)
{
    int slot = ofe_ce_spec_slot(name, name_len);
    if (slot >= 0) {
        struct ofe_ce_attr *a = &ev->spec[slot];
        if (!a->value)
            return OFE_ENOENT;
        a->value = NULL;
        a->value_len = 0;
        a->type = OFE_CE_T_NONE;
        a->ival = 0;
        return 0;
    }
    for (uint32_t i = 0; i < ev->next; i++) {
        if (ev->ext[i].name_len == name_len && memcmp(ev->ext[i].name, name, name_len) == 0) {
            memmove(&ev->ext[i], &ev->ext[i + 1], (ev->next - i - 1) * sizeof(ev->ext[0]));
            ev->next--;
            return 0;
        }
    }
    return OFE_ENOENT;
}

/* ---- data -------------------------------------------------------------- */

void ce__set_data_arena(struct ofe_ce *ev, const char *data, size_t len, bool is_json)
{
    free_data(ev);
    ev->data = (unsigned char *)data;
    ev->data_len = len;
    ev->has_data = true;
    ev->data_is_json = is_json;
    arena_of(ev)->data_in_arena = true;
}

int ofe_ce_set_data(struct ofe_ce *ev, const void *data, size_t len)
{
    struct ce_arena *a = arena_of(ev);
    /* Small data goes to the arena when it fits the current chunk. */
    if (len < (size_t)(a->end - a->p)) {
        char *p = arena_alloc(a, len + 1, 1);
        if (len)
            memcpy(p, data, len);
        p[len] = '\0';
        ce__set_data_arena(ev, p, len, false);
        return 0;
    }
    unsigned char *p = malloc(len + 1);
    if (!p)
        return OFE_ENOMEM;
    if (len)
        memcpy(p, data, len);
    p[len] = '\0';
    free_data(ev);
    ev->data = p;
    ev->data_len = len;
    ev->has_data = true;
    return 0;
}

int ofe_ce_take_data(struct ofe_ce *ev, void *data, size_t len)
{
    free_data(ev);
    ev->data = data;
    ev->data_len = len;
    ev->has_data = true;
    return 0;
}

void ofe_ce_clear_data(struct ofe_ce *ev)
{
    free_data(ev);
}

/* ---- copies, validation, comparison ------------------------------------ */

struct ofe_ce *ofe_ce_dup(const struct ofe_ce *ev)
{
    size_t need = ev->next * sizeof(struct ofe_ce_attr) + 16;
    for (int s = 0; s < OFE_CE_NSPEC; s++)
        if (ev->spec[s].value)
            need += ev->spec[s].value_len + 1;
    for (uint32_t i = 0; i < ev->next; i++)
        need += ev->ext[i].name_len + 1 + ev->ext[i].value_len + 1;
    if (ev->has_data)
        need += ev->data_len + 1;
    struct ofe_ce *d = ce__new(need);
    if (!d)
        return NULL;
    for (int s = 0; s < OFE_CE_NSPEC; s++) {
        const struct ofe_ce_attr *a = &ev->spec[s];
        if (!a->value)
            continue;
        char *v = arena_strdup(d, a->value, a->value_len);
        if (!v)
            goto fail;
        store_attr(d, s, a->name, a->name_len, a->type, v, a->value_len, a->ival);
    }
    if (ev->next) {
        d->ext = (struct ofe_ce_attr *)arena_alloc(arena_of(d), ev->next * sizeof(*d->ext),
                                                   _Alignof(struct ofe_ce_attr));
        if (!d->ext)
            goto fail;
        d->ext_cap = ev->next;
        for (uint32_t i = 0; i < ev->next; i++) {
            const struct ofe_ce_attr *a = &ev->ext[i];
            char *n = arena_strdup(d, a->name, a->name_len);
            char *v = arena_strdup(d, a->value, a->value_len);
            if (!n || !v)
                goto fail;
            d->ext[i] = *a;
            d->ext[i].name = n;
            d->ext[i].value = v;
        }
        d->next = ev->next;
    }
    if (ev->has_data) {
        char *p = arena_alloc(arena_of(d), ev->data_len + 1, 1);
        if (!p)
            goto fail;
        if (ev->data_len)
            memcpy(p, ev->data, ev->data_len);
        p[ev->data_len] = '\0';
        ce__set_data_arena(d, p, ev->data_len, ev->data_is_json);
    }
    return d;
fail:
    ofe_ce_unref(d);
    return NULL;
}

int ofe_ce_validate(const struct ofe_ce *ev, char *errstr, size_t errstr_size)
{
    static const int required[] = {OFE_CE_SPECVERSION, OFE_CE_ID, OFE_CE_SOURCE, OFE_CE_TYPE};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const struct ofe_ce_attr *a = &ev->spec[required[i]];
        if (!a->value)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "missing required attribute '%s'",
                           spec_attrs[required[i]].name);
        if (a->value_len == 0)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "attribute '%s' must not be empty",
                           spec_attrs[required[i]].name);
        if (required[i] == OFE_CE_SPECVERSION &&
            (a->value_len != 3 || memcmp(a->value, "1.0", 3) != 0)) {
            char q[96];
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "attribute 'specversion': %s is not supported (this implementation "
                           "speaks CloudEvents \"1.0\")",
                           ce__quote(q, sizeof(q), a->value, a->value_len));
        }
    }
    return 0;
}

static bool attr_equal(const struct ofe_ce_attr *a, const struct ofe_ce_attr *b)
{
    if (!a->value || !b->value)
        return !a->value && !b->value;
    return a->type == b->type && a->value_len == b->value_len &&
           memcmp(a->value, b->value, a->value_len) == 0;
}

bool ofe_ce_equal(const struct ofe_ce *a, const struct ofe_ce *b)
{
    if (a == b)
        return true;
    for (int s = 0; s < OFE_CE_NSPEC; s++)
        if (!attr_equal(&a->spec[s], &b->spec[s]))
            return false;
    if (a->next != b->next)
        return false;
    for (uint32_t i = 0; i < a->next; i++) {
        const struct ofe_ce_attr *x = &a->ext[i];
        const struct ofe_ce_attr *y = ofe_ce_get(b, x->name, x->name_len);
        if (!y || !attr_equal(x, y))
            return false;
    }
    if (a->has_data != b->has_data || a->data_len != b->data_len)
        return false;
    return a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0;
}
