/* The table engine of the config module: parses a YAML mapping into a C
 * struct following the block's declarative table (config_int.h), checks
 * types, bounds, enums, required and unknown keys, applies defaults, frees
 * and describes blocks. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "ofe/duration.h"
#include "ofe/err.h"

#define FIELD(obj, f)  ((void *)((char *)(obj) + (f)->off))
#define STRP(obj, off) ((char **)((char *)(obj) + (off)))

struct ofe_config_array {
    void *v;
    size_t n;
};

char *cfg__join(const char *parent, const char *key)
{
    char *s = NULL;
    if (!parent)
        parent = "";
    if (!key)
        return strdup(parent);
    int n = (!*parent || key[0] == '[') ? asprintf(&s, "%s%s", parent, key)
                                        : asprintf(&s, "%s.%s", parent, key);
    return n < 0 ? NULL : s;
}

const char *cfg__type_name(yaml_node_t *n)
{
    if (!n)
        return "nothing";
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        return "a single value";
    default:
        return "nothing";
    }
}

struct ofe_config_fpos cfg__fpos(const struct pctx *p, yaml_node_t *n, bool expanded)
{
    struct ofe_config_fpos fp;
    fp.pos = cfg__node_pos(p, n);
    fp.linear = false;
    fp.shift = 0;
    if (n && n->type == YAML_SCALAR_NODE) {
        size_t raw = n->end_mark.index - n->start_mark.index;
        size_t len = n->data.scalar.length;
        int quoted = n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                     n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        if (quoted)
            fp.shift = 1;
        if (!expanded && n->start_mark.line == n->end_mark.line &&
            (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE || quoted) &&
            raw == len + (quoted ? 2 : 0))
            fp.linear = true;
    }
    return fp;
}

void cfg__hash(struct pctx *p, const char *path, const char *key, const char *value)
{
    if (p->quiet)
        return;
    /* FNV-1a over "path.key\0value", then a 64-bit finalizer; the document
     * hash is the sum, so key order does not matter. */
    uint64_t h = 1469598103934665603ULL;
    const char *parts[3] = {path ? path : "", key ? key : "", value ? value : ""};
    for (int i = 0; i < 3; i++) {
        for (const unsigned char *c = (const unsigned char *)parts[i]; *c; c++) {
            h ^= *c;
            h *= 1099511628211ULL;
        }
        h ^= 0xff;
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    p->hash += h;
    if (p->record) {
        if (p->nitems == p->capitems) {
            size_t cap = p->capitems ? p->capitems * 2 : 64;
            struct cfg_hash_item *v = realloc(p->items, cap * sizeof(*v));
            if (!v)
                return;
            p->items = v;
            p->capitems = cap;
        }
        char *copy = strdup(path ? path : "");
        if (copy) {
            p->items[p->nitems].path = copy;
            p->items[p->nitems++].h = h;
        }
    }
}

bool cfg__visit(struct pctx *p, const char *path)
{
    if (p->abort)
        return false;
    if (++p->visits > OFE_CONFIG_MAX_NODES) {
        struct ofe_config_pos pos = {p->file, 0, 0};
        if (p->doc)
            pos = p->doc->node.pos;
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, path, NULL,
                  "document too large: more than %d YAML nodes visited (aliases count each "
                  "time they are used)",
                  OFE_CONFIG_MAX_NODES);
        p->abort = true;
        return false;
    }
    return true;
}

static bool is_null_literal(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

int cfg__scalar(struct pctx *p, yaml_node_t *n, const char *path, const char *key, char **out,
                bool *lenient)
{
    *out = NULL;
    if (lenient)
        *lenient = p->lenient;
    if (!cfg__visit(p, path))
        return -1;
    if (!n || n->type != YAML_SCALAR_NODE) {
        struct ofe_config_pos pos = cfg__node_pos(p, n);
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, path, key, "expected a single value, got %s",
                  cfg__type_name(n));
        return -1;
    }
    const char *v = (const char *)n->data.scalar.value;
    if (n->tag && strncmp((const char *)n->tag, "tag:yaml.org,2002:", 18) != 0) {
        struct ofe_config_pos pos = cfg__node_pos(p, n);
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, path, key, "unsupported YAML tag '%s'",
                  (const char *)n->tag);
        return -1;
    }
    if (is_null_literal(n) || (n->tag && !strcmp((const char *)n->tag, "tag:yaml.org,2002:null")))
        return 0;
    if (memchr(v, '\0', n->data.scalar.length)) {
        struct ofe_config_pos pos = cfg__node_pos(p, n);
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, path, key, "the value contains a NUL character");
        return -1;
    }
    char err[256];
    size_t off = 0;
    bool changed = false;
    char *s = NULL;
    if (cfg__expand(p, v, &s, &changed, &off, err, sizeof(err)) < 0) {
        struct ofe_config_fpos fp = cfg__fpos(p, n, false);
        if (fp.linear)
            fp.pos.col += fp.shift + (int)off;
        cfg__diag(p, OFE_CONFIG_ERROR, &fp.pos, path, key, "%s", err);
        return -1;
    }
    if (!s) {
        struct ofe_config_pos pos = cfg__node_pos(p, n);
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, path, key, "out of memory");
        return -1;
    }
    if (changed && lenient)
        *lenient = true;
    cfg__hash(p, path, key, s);
    *out = s;
    return 1;
}

/* --------------------------------------------------------------------- */
/* Suggestions                                                            */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t m = prev[j] + 1;
            if (cur[j - 1] + 1 < m)
                m = cur[j - 1] + 1;
            if (prev[j - 1] + cost < m)
                m = prev[j - 1] + cost;
            cur[j] = m;
        }
        memcpy(prev, cur, sizeof(size_t) * (lb + 1));
    }
    return prev[lb];
}

const char *cfg__closest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word);
    size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    const char *best = NULL;
    size_t bestd = limit + 1;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i])
            continue;
        size_t d = edit_distance(word, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

/* --------------------------------------------------------------------- */
/* Value conversions, shared by YAML values and table defaults.           */

static int conv_bool(const char *s, bool lenient, bool *out)
{
    static const char *const t_strict[] = {"true", "True", "TRUE"};
    static const char *const f_strict[] = {"false", "False", "FALSE"};
    for (int i = 0; i < 3; i++) {
        if (!strcmp(s, t_strict[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, f_strict[i])) {
            *out = false;
            return 0;
        }
    }
    if (lenient) {
        static const char *const t_l[] = {"1", "t", "y", "yes", "on"};
        static const char *const f_l[] = {"0", "f", "n", "no", "off"};
        for (int i = 0; i < 5; i++) {
            if (!strcasecmp(s, t_l[i])) {
                *out = true;
                return 0;
            }
            if (!strcasecmp(s, f_l[i])) {
                *out = false;
                return 0;
            }
        }
    }
    return -1;
}

static int conv_int(const char *s, int64_t *out)
{
    const char *c = s;
    if (*c == '-' || *c == '+')
        c++;
    if (!isdigit((unsigned char)*c))
        return -1;
    for (const char *d = c; *d; d++)
        if (!isdigit((unsigned char)*d))
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -2;
    *out = v;
    return 0;
}

static int conv_size(const char *s, int64_t *out, char *err, size_t errsz)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"K", 1000},
        {"KB", 1000},
        {"Ki", 1024},
        {"KiB", 1024},
        {"M", 1000000},
        {"MB", 1000000},
        {"Mi", 1048576},
        {"MiB", 1048576},
        {"G", 1000000000},
        {"GB", 1000000000},
        {"Gi", 1073741824},
        {"GiB", 1073741824},
        {"T", 1000000000000LL},
        {"TB", 1000000000000LL},
        {"Ti", 1099511627776LL},
        {"TiB", 1099511627776LL},
    };
    const char *c = s;
    while (isdigit((unsigned char)*c))
        c++;
    if (c == s) {
        snprintf(err, errsz,
                 "expected a size (bytes, or a number with a unit: 512Ki, 1MiB, 4MB), got '%s'", s);
        return -1;
    }
    if (c - s > 18) {
        snprintf(err, errsz, "size '%s' is too large", s);
        return -1;
    }
    long long n = strtoll(s, NULL, 10);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (!strcasecmp(c, units[i].suffix)) {
            if (n > INT64_MAX / units[i].mult) {
                snprintf(err, errsz, "size '%s' is too large", s);
                return -1;
            }
            *out = n * units[i].mult;
            return 0;
        }
    }
    snprintf(err, errsz,
             "unknown size unit '%s' in '%s' (expected B, K, KB, Ki, KiB, M, MB, Mi, MiB, G, GB, "
             "Gi, GiB, T, TB, Ti, TiB)",
             c, s);
    return -1;
}

static int conv_enum(const struct cfg_field *f, const char *s, int *out)
{
    for (const struct cfg_enum *e = f->enums; e && e->name; e++) {
        if (!strcasecmp(e->name, s)) {
            *out = e->value;
            return 0;
        }
    }
    return -1;
}

static void enum_list(const struct cfg_field *f, struct ofe_buf *b)
{
    int first = 1;
    for (const struct cfg_enum *e = f->enums; e && e->name; e++) {
        ofe_buf_printf(b, "%s%s", first ? "" : ", ", e->name);
        first = 0;
    }
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    memmove(s, s + i, n - i + 1);
}

/* Splits a comma-separated string into trimmed items. Returns the count,
 * or -1 when an item is empty. */
static long split_csv(const char *s, char ***items)
{
    char *copy = strdup(s);
    long n = 0, cap = 0;
    char **v = NULL;
    if (!copy)
        return -1;
    char *start = copy;
    for (;;) {
        char *comma = strchr(start, ',');
        if (comma)
            *comma = '\0';
        trim(start);
        if (!*start) {
            for (long i = 0; i < n; i++)
                free(v[i]);
            free(v);
            free(copy);
            return -1;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            char **nv = realloc(v, (size_t)cap * sizeof(char *));
            if (!nv)
                break;
            v = nv;
        }
        v[n++] = strdup(start);
        if (!comma)
            break;
        start = comma + 1;
    }
    free(copy);
    *items = v;
    return n;
}

/* Applies a table default (trusted text) to the field. */
static void apply_default(const struct cfg_field *f, void *obj)
{
    void *dst = FIELD(obj, f);
    const char *d = f->def;
    char err[160];
    switch (f->type) {
    case CT_STRING:
    case CT_SECRET:
    case CT_PATH:
    case CT_CSV:
        free(*(char **)dst);
        *(char **)dst = strdup(d);
        break;
    case CT_BOOL:
        conv_bool(d, false, (bool *)dst);
        break;
    case CT_INT:
        conv_int(d, (int64_t *)dst);
        break;
    case CT_DURATION: {
        int64_t us = 0;
        ofe_duration_parse(d, &us, NULL, err, sizeof(err));
        *(int64_t *)dst = us / 1000;
        break;
    }
    case CT_SIZE:
        conv_size(d, (int64_t *)dst, err, sizeof(err));
        break;
    case CT_ENUM:
        conv_enum(f, d, (int *)dst);
        break;
    case CT_DURLIST: {
        struct ofe_config_durlist *dl = dst;
        char **items = NULL;
        long n = *d ? split_csv(d, &items) : 0;
        dl->v = n > 0 ? calloc((size_t)n, sizeof(int64_t)) : NULL;
        dl->n = 0;
        for (long i = 0; i < n; i++) {
            int64_t us = 0;
            ofe_duration_parse(items[i], &us, NULL, err, sizeof(err));
            if (dl->v)
                dl->v[dl->n++] = us / 1000;
            free(items[i]);
        }
        free(items);
        break;
    }
    default:
        break;
    }
}

/* --------------------------------------------------------------------- */
/* Field parsers                                                          */

static void set_fpos(struct ofe_config_node *node, const struct cfg_field *f,
                     const struct ofe_config_fpos *fp)
{
    size_t i = (size_t)(f - node->table->fields);
    if (node->fpos && i < node->table->nfields)
        node->fpos[i] = *fp;
}

void cfg__set_fpos(struct ofe_config_node *n, const char *key, const struct ofe_config_fpos *fp)
{
    for (size_t i = 0; n->table && i < n->table->nfields; i++)
        if (!strcmp(n->table->fields[i].key, key) && n->fpos)
            n->fpos[i] = *fp;
}

static void err_at(struct pctx *p, yaml_node_t *v, const char *path, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void err_at(struct pctx *p, yaml_node_t *v, const char *path, const char *key,
                   const char *fmt, ...)
{
    struct ofe_config_fpos fp = cfg__fpos(p, v, false);
    va_list ap;
    va_start(ap, fmt);
    cfg__vpdiag(p, OFE_CONFIG_ERROR, &fp.pos, path, key, fmt, ap);
    va_end(ap);
}

static void replace_str(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

/* Reads a scalar for a field of type f; returns 1 with *s, 0 for null, -1
 * on error. Non-scalars get an error naming the expected type. */
static int field_scalar(struct pctx *p, const struct cfg_field *f, yaml_node_t *v, const char *path,
                        const char *key, char **s, bool *lenient)
{
    if (v->type != YAML_SCALAR_NODE) {
        struct ofe_buf b = OFE_BUF_INIT;
        cfg__describe_type(f, &b);
        err_at(p, v, path, key, "expected %s, got %s", b.data ? b.data : "a value",
               cfg__type_name(v));
        ofe_buf_fini(&b);
        return -1;
    }
    return cfg__scalar(p, v, path, key, s, lenient);
}

static int bounds_ok(struct pctx *p, const struct cfg_field *f, yaml_node_t *v, const char *path,
                     const char *key, int64_t val, const char *shown)
{
    if (!(f->flags & F_BOUNDS) || (val >= f->min && val <= f->max))
        return 1;
    char lo[48], hi[48];
    if (f->type == CT_DURATION) {
        ofe_duration_format(f->min * 1000, lo, sizeof(lo));
        ofe_duration_format(f->max * 1000, hi, sizeof(hi));
    } else {
        snprintf(lo, sizeof(lo), "%lld", (long long)f->min);
        snprintf(hi, sizeof(hi), "%lld", (long long)f->max);
    }
    err_at(p, v, path, key, "value %s is out of range (allowed %s to %s)", shown, lo, hi);
    return 0;
}

static void parse_list_items(struct pctx *p, const struct cfg_field *f, yaml_node_t *v,
                             const char *path, const char *key, void *dst);

/* Parses one field value. Returns true when a value was stored. */
static bool parse_field(struct pctx *p, const struct cfg_field *f, yaml_node_t *kn, yaml_node_t *v,
                        const char *path, const char *key, void *obj, bool file_variant)
{
    void *dst = FIELD(obj, f);
    struct ofe_config_node *node = obj;
    char *s = NULL;
    bool lenient = false;
    int r;
    char err[512];

    if (!cfg__visit(p, path))
        return false;
    struct ofe_config_fpos fp = cfg__fpos(p, v, false);

    switch (f->type) {
    case CT_STRING:
    case CT_PATH:
    case CT_SECRET:
        r = field_scalar(p, f, v, path, key, &s, &lenient);
        if (r <= 0)
            return false;
        if (file_variant) {
            char *content = NULL, *resolved = NULL;
            if (cfg__read_secret(p, s, &content, &resolved, err, sizeof(err)) < 0) {
                err_at(p, v, path, key, "%s", err);
                free(s);
                return false;
            }
            free(s);
            /* The content is what matters for reloads, not the file name. */
            cfg__hash(p, path, f->key, content);
            replace_str((char **)dst, content);
            if (f->aux_off)
                replace_str(STRP(obj, f->aux_off), resolved);
            else
                free(resolved);
        } else {
            if ((f->flags & F_NOTEMPTY) && !*s) {
                err_at(p, v, path, key, "must not be empty");
                free(s);
                return false;
            }
            if (f->type == CT_PATH) {
                char *abs = cfg__resolve_path(p, s);
                free(s);
                s = abs;
            }
            replace_str((char **)dst, s);
            if (f->aux_off)
                replace_str(STRP(obj, f->aux_off), NULL);
        }
        fp = cfg__fpos(p, v, strchr((const char *)v->data.scalar.value, '$') != NULL);
        set_fpos(node, f, &fp);
        return true;

    case CT_BOOL: {
        r = field_scalar(p, f, v, path, key, &s, &lenient);
        if (r <= 0)
            return false;
        bool b;
        int plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (conv_bool(s, lenient || p->lenient, &b) == 0 && (plain || lenient || p->lenient)) {
            *(bool *)dst = b;
            set_fpos(node, f, &fp);
            free(s);
            return true;
        }
        if (!plain && conv_bool(s, true, &b) == 0)
            err_at(p, v, path, key,
                   "expected true or false, got the string \"%s\" (remove the "
                   "quotes)",
                   s);
        else
            err_at(p, v, path, key, "expected true or false, got '%s'", s);
        free(s);
        return false;
    }

    case CT_INT: {
        r = field_scalar(p, f, v, path, key, &s, &lenient);
        if (r <= 0)
            return false;
        int64_t n;
        int plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        int c = conv_int(s, &n);
        if (c == 0 && !plain && !lenient && !p->lenient) {
            err_at(p, v, path, key,
                   "expected an integer, got the string \"%s\" (remove the quotes)", s);
        } else if (c == -2) {
            err_at(p, v, path, key, "integer '%s' is too large", s);
        } else if (c < 0) {
            err_at(p, v, path, key, "expected an integer, got '%s'", s);
        } else if (bounds_ok(p, f, v, path, key, n, s)) {
            *(int64_t *)dst = n;
            set_fpos(node, f, &fp);
            free(s);
            return true;
        }
        free(s);
        return false;
    }

    case CT_DURATION: {
        r = field_scalar(p, f, v, path, key, &s, &lenient);
        if (r <= 0)
            return false;
        int64_t us;
        size_t off = 0;
        if (ofe_duration_parse(s, &us, &off, err, sizeof(err)) < 0) {
            struct ofe_config_fpos efp = cfg__fpos(p, v, lenient && !p->lenient);
            if (efp.linear)
                efp.pos.col += efp.shift + (int)off;
            cfg__diag(p, OFE_CONFIG_ERROR, &efp.pos, path, key, "%s", err);
        } else if (us % 1000 != 0) {
            err_at(p, v, path, key, "duration '%s' is finer than the millisecond resolution", s);
        } else if (bounds_ok(p, f, v, path, key, us / 1000, s)) {
            *(int64_t *)dst = us / 1000;
            set_fpos(node, f, &fp);
            free(s);
            return true;
        }
        free(s);
        return false;
    }

    case CT_SIZE: {
        r = field_scalar(p, f, v, path, key, &s, &lenient);
        if (r <= 0)
            return false;
        int64_t n;
        if (conv_size(s, &n, err, sizeof(err)) < 0) {
            err_at(p, v, path, key, "%s", err);
        } else if (bounds_ok(p, f, v, path, key, n, s)) {
            *(int64_t *)dst = n;
            set_fpos(node, f, &fp);
            free(s);
            return true;
        }
        free(s);
        return false;
    }

    case CT_ENUM: {
        r = field_scalar(p, f, v, path, key, &s, &lenient);
        if (r <= 0)
            return false;
        int e;
        if (conv_enum(f, s, &e) == 0) {
            *(int *)dst = e;
            set_fpos(node, f, &fp);
            free(s);
            return true;
        }
        struct ofe_buf b = OFE_BUF_INIT;
        enum_list(f, &b);
        err_at(p, v, path, key, "unknown value '%s' (expected one of: %s)", s,
               b.data ? b.data : "");
        ofe_buf_fini(&b);
        free(s);
        return false;
    }

    case CT_CSV: {
        struct ofe_buf b = OFE_BUF_INIT;
        bool ok = true;
        if (v->type == YAML_SEQUENCE_NODE) {
            size_t i = 0;
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top && ok; it++, i++) {
                char idx[32];
                snprintf(idx, sizeof(idx), "[%zu]", i);
                char *ipath = cfg__join(key, idx);
                yaml_node_t *in = yaml_document_get_node(p->ydoc, *it);
                r = cfg__scalar(p, in, path, ipath, &s, NULL);
                if (r == 1 && *s) {
                    trim(s);
                    ofe_buf_printf(&b, "%s%s", b.len ? "," : "", s);
                } else if (r >= 0) {
                    err_at(p, in, path, ipath, "list item is empty");
                    ok = false;
                } else {
                    ok = false;
                }
                free(s);
                free(ipath);
            }
            if (ok && b.len == 0) {
                err_at(p, v, path, key, "the list is empty");
                ok = false;
            }
        } else {
            r = field_scalar(p, f, v, path, key, &s, &lenient);
            if (r <= 0) {
                ofe_buf_fini(&b);
                return false;
            }
            char **items = NULL;
            long n = split_csv(s, &items);
            if (n <= 0) {
                err_at(p, v, path, key, "empty item in '%s' (expected a,b,c)", s);
                ok = false;
            }
            for (long i = 0; i < n; i++) {
                ofe_buf_printf(&b, "%s%s", i ? "," : "", items[i]);
                free(items[i]);
            }
            free(items);
            free(s);
        }
        if (!ok) {
            ofe_buf_fini(&b);
            return false;
        }
        replace_str((char **)dst, ofe_buf_detach(&b, NULL));
        set_fpos(node, f, &fp);
        return true;
    }

    case CT_STRLIST:
    case CT_DURLIST:
        parse_list_items(p, f, v, path, key, dst);
        set_fpos(node, f, &fp);
        return true;

    case CT_STRMAP:
    case CT_PREFIXMAP: {
        struct ofe_config_kvlist *kv = dst;
        if (v->type == YAML_SCALAR_NODE && f->type == CT_PREFIXMAP && key &&
            strlen(key) > strlen(f->key)) {
            /* `rdkafka.fetch.wait.max.ms: 100` */
            r = cfg__scalar(p, v, path, key, &s, NULL);
            if (r < 0)
                return false;
            const char *sub = key + strlen(f->key) + 1;
            for (size_t i = 0; i < kv->n; i++)
                if (!strcmp(kv->v[i].key, sub)) {
                    err_at(p, v, path, key, "'%s' is set twice", sub);
                    free(s);
                    return false;
                }
            struct ofe_config_kv *nv = realloc(kv->v, (kv->n + 1) * sizeof(*nv));
            if (!nv) {
                free(s);
                return false;
            }
            kv->v = nv;
            kv->v[kv->n].key = strdup(sub);
            kv->v[kv->n].value = s ? s : strdup("");
            kv->v[kv->n].pos = fp.pos;
            kv->n++;
            set_fpos(node, f, &fp);
            return true;
        }
        if (v->type == YAML_SCALAR_NODE && is_null_literal(v))
            return false;
        struct cfg_map m;
        char *mpath = cfg__join(path, key);
        if (cfg__map_build(p, v, mpath, &m) < 0) {
            err_at(p, v, path, key, "expected a mapping of names to values, got %s",
                   cfg__type_name(v));
            free(mpath);
            return false;
        }
        for (size_t i = 0; i < m.n; i++) {
            for (size_t j = 0; j < kv->n; j++)
                if (!strcmp(kv->v[j].key, m.v[i].keystr)) {
                    err_at(p, m.v[i].key, mpath, m.v[i].keystr, "'%s' is set twice", m.v[i].keystr);
                    goto next_pair;
                }
            r = cfg__scalar(p, m.v[i].value, mpath, m.v[i].keystr, &s, NULL);
            if (r < 0)
                continue;
            struct ofe_config_kv *nv = realloc(kv->v, (kv->n + 1) * sizeof(*nv));
            if (!nv) {
                free(s);
                break;
            }
            kv->v = nv;
            kv->v[kv->n].key = strdup(m.v[i].keystr);
            kv->v[kv->n].value = s ? s : strdup("");
            kv->v[kv->n].pos = cfg__node_pos(p, m.v[i].value);
            kv->n++;
        next_pair:;
        }
        free(mpath);
        cfg__map_fini(&m);
        set_fpos(node, f, &fp);
        return true;
    }

    case CT_BLOCK: {
        if (v->type == YAML_SCALAR_NODE && is_null_literal(v))
            return false;
        char *bpath = cfg__join(path, key);
        struct cfg_map m;
        if (cfg__map_build(p, v, bpath, &m) < 0) {
            err_at(p, v, path, key, "expected a mapping (%s), got %s", f->sub->title,
                   cfg__type_name(v));
            free(bpath);
            return false;
        }
        cfg__free_block(f->sub, dst);
        memset(dst, 0, f->sub->size);
        struct ofe_config_pos pos = cfg__node_pos(p, kn ? kn : v);
        cfg__parse_block(p, f->sub, dst, &m, bpath, &pos);
        cfg__map_fini(&m);
        free(bpath);
        set_fpos(node, f, &fp);
        return true;
    }

    case CT_MAP:
    case CT_LIST: {
        struct ofe_config_array *arr = dst;
        if (v->type == YAML_SCALAR_NODE && is_null_literal(v))
            return false;
        char *mpath = cfg__join(path, key);
        if (f->type == CT_MAP) {
            struct cfg_map m;
            if (cfg__map_build(p, v, mpath, &m) < 0) {
                err_at(p, v, path, key, "expected a mapping of names to %s blocks, got %s",
                       f->sub->title, cfg__type_name(v));
                free(mpath);
                return false;
            }
            arr->v = m.n ? calloc(m.n, f->sub->size) : NULL;
            arr->n = 0;
            for (size_t i = 0; i < m.n && arr->v && !p->abort; i++) {
                struct ofe_config_node *item =
                    (struct ofe_config_node *)((char *)arr->v + arr->n * f->sub->size);
                const char *name = m.v[i].keystr;
                char *ipath = cfg__join(mpath, name);
                struct ofe_config_pos ipos = cfg__node_pos(p, m.v[i].key);
                struct cfg_map im;
                yaml_node_t *iv = m.v[i].value;
                if (!*name)
                    err_at(p, m.v[i].key, mpath, NULL, "empty name");
                if ((f->flags & F_NAMES) && *name) {
                    const char *c = name;
                    bool ok = *c != '-';
                    for (; *c && ok; c++)
                        ok = isalnum((unsigned char)*c) || *c == '_' || *c == '-';
                    if (ok && (!strcasecmp(name, "and") || !strcasecmp(name, "or") ||
                               !strcasecmp(name, "not")))
                        ok = false;
                    if (!ok)
                        err_at(p, m.v[i].key, mpath, name,
                               "name '%s' cannot be used in conditions: use letters, digits, "
                               "'_' and '-' (not first), and not the words and/or/not",
                               name);
                }
                if (iv->type == YAML_SCALAR_NODE && is_null_literal(iv)) {
                    im.v = NULL;
                    im.n = 0;
                    im.pos = ipos;
                } else if (cfg__map_build(p, iv, ipath, &im) < 0) {
                    err_at(p, iv, mpath, name, "expected a mapping (%s), got %s", f->sub->title,
                           cfg__type_name(iv));
                    free(ipath);
                    continue;
                }
                item->name = strdup(name);
                item->index = arr->n;
                cfg__parse_block(p, f->sub, item, &im, ipath, &ipos);
                cfg__map_fini(&im);
                free(ipath);
                arr->n++;
            }
            cfg__map_fini(&m);
        } else {
            if (v->type != YAML_SEQUENCE_NODE) {
                err_at(p, v, path, key, "expected a list of %s blocks, got %s", f->sub->title,
                       cfg__type_name(v));
                free(mpath);
                return false;
            }
            size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            arr->v = n ? calloc(n, f->sub->size) : NULL;
            arr->n = 0;
            for (size_t i = 0; i < n && arr->v && !p->abort; i++) {
                yaml_node_t *iv = yaml_document_get_node(p->ydoc, v->data.sequence.items.start[i]);
                char idx[32];
                snprintf(idx, sizeof(idx), "[%zu]", i);
                char *ipath = cfg__join(mpath, idx);
                struct cfg_map im;
                struct ofe_config_pos ipos = cfg__node_pos(p, iv);
                if (!cfg__visit(p, ipath) || cfg__map_build(p, iv, ipath, &im) < 0) {
                    if (!p->abort)
                        err_at(p, iv, mpath, idx, "expected a mapping (%s), got %s", f->sub->title,
                               cfg__type_name(iv));
                    free(ipath);
                    continue;
                }
                struct ofe_config_node *item =
                    (struct ofe_config_node *)((char *)arr->v + arr->n * f->sub->size);
                item->index = i;
                cfg__parse_block(p, f->sub, item, &im, ipath, &ipos);
                cfg__map_fini(&im);
                free(ipath);
                arr->n++;
            }
        }
        free(mpath);
        set_fpos(node, f, &fp);
        return true;
    }

    case CT_IGNORED:
        if (f->flags & F_WARN) {
            struct ofe_config_pos pos = cfg__node_pos(p, v);
            cfg__diag(p, OFE_CONFIG_WARNING, &pos, path, key, "ignored: %s", f->desc);
        }
        return false;

    case CT_CUSTOM:
        f->custom->parse(p, f, v, path, obj);
        set_fpos(node, f, &fp);
        return true;
    }
    return false;
}

static void parse_list_items(struct pctx *p, const struct cfg_field *f, yaml_node_t *v,
                             const char *path, const char *key, void *dst)
{
    char **items = NULL;
    long n = 0;
    yaml_node_t **nodes = NULL;
    char *s = NULL;
    if (v->type == YAML_SEQUENCE_NODE) {
        n = (long)(v->data.sequence.items.top - v->data.sequence.items.start);
        items = calloc((size_t)n + 1, sizeof(char *));
        nodes = calloc((size_t)n + 1, sizeof(*nodes));
        for (long i = 0; i < n && items && nodes; i++) {
            char idx[32];
            snprintf(idx, sizeof(idx), "[%ld]", i);
            char *ikey = cfg__join(key, idx);
            nodes[i] = yaml_document_get_node(p->ydoc, v->data.sequence.items.start[i]);
            if (cfg__scalar(p, nodes[i], path, ikey, &items[i], NULL) == 0)
                items[i] = strdup("");
            free(ikey);
        }
    } else {
        int r = field_scalar(p, f, v, path, key, &s, NULL);
        if (r <= 0)
            return;
        n = *s ? split_csv(s, &items) : 0;
        if (n < 0) {
            err_at(p, v, path, key, "empty item in '%s' (expected a, b, c)", s);
            free(s);
            return;
        }
        nodes = calloc((size_t)n + 1, sizeof(*nodes));
        for (long i = 0; i < n && nodes; i++)
            nodes[i] = v;
        free(s);
    }
    if (!items || !nodes) {
        free(items);
        free(nodes);
        return;
    }
    if (f->type == CT_STRLIST) {
        struct ofe_config_strlist *sl = dst;
        for (size_t i = 0; i < sl->n; i++)
            free(sl->v[i]);
        free(sl->v);
        sl->v = NULL;
        sl->n = 0;
        sl->v = calloc((size_t)n + 1, sizeof(char *));
        for (long i = 0; i < n && sl->v; i++) {
            if (items[i])
                sl->v[sl->n++] = items[i];
            items[i] = NULL;
        }
    } else {
        struct ofe_config_durlist *dl = dst;
        free(dl->v);
        dl->n = 0;
        dl->v = calloc((size_t)n + 1, sizeof(int64_t));
        for (long i = 0; i < n && dl->v; i++) {
            int64_t us;
            char err[256];
            if (!items[i])
                continue;
            if (ofe_duration_parse(items[i], &us, NULL, err, sizeof(err)) < 0) {
                char idx[32];
                snprintf(idx, sizeof(idx), "[%ld]", i);
                char *ikey = cfg__join(key, idx);
                err_at(p, nodes[i], path, ikey, "%s", err);
                free(ikey);
            } else if (us % 1000) {
                err_at(p, nodes[i], path, key, "duration '%s' is finer than a millisecond",
                       items[i]);
            } else {
                dl->v[dl->n++] = us / 1000;
            }
        }
    }
    for (long i = 0; i < n; i++)
        free(items[i]);
    free(items);
    free(nodes);
}

/* --------------------------------------------------------------------- */
/* Mappings and blocks                                                    */

struct key_ix {
    const char *k;
    size_t i;
};

static int ix_cmp(const void *a, const void *b)
{
    const struct key_ix *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    if (c)
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

int cfg__map_build(struct pctx *p, yaml_node_t *node, const char *path, struct cfg_map *out)
{
    memset(out, 0, sizeof(*out));
    if (!node || node->type != YAML_MAPPING_NODE)
        return -1;
    out->pos = cfg__node_pos(p, node);
    size_t n = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    out->v = calloc(n + 1, sizeof(struct cfg_pair));
    if (!out->v)
        return 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *pr = &node->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(p->ydoc, pr->key);
        yaml_node_t *v = yaml_document_get_node(p->ydoc, pr->value);
        if (!cfg__visit(p, path))
            break;
        if (!k || !v)
            continue;
        if (k->type != YAML_SCALAR_NODE) {
            err_at(p, k, path, NULL, "a key must be a plain name, got %s", cfg__type_name(k));
            continue;
        }
        if (memchr(k->data.scalar.value, '\0', k->data.scalar.length)) {
            err_at(p, k, path, NULL, "a key contains a NUL character");
            continue;
        }
        out->v[out->n].key = k;
        out->v[out->n].value = v;
        out->v[out->n].keystr = (const char *)k->data.scalar.value;
        out->n++;
    }
    if (out->n < 2)
        return 0;
    /* Duplicate keys: sort the keys, report each later occurrence, drop it
     * (O(n log n): a mapping may hold many keys). */
    size_t n2 = out->n;
    struct key_ix *ix = malloc(n2 * sizeof(*ix));
    bool *drop = calloc(n2, sizeof(bool));
    if (!ix || !drop) {
        free(ix);
        free(drop);
        return 0;
    }
    for (size_t i = 0; i < n2; i++) {
        ix[i].k = out->v[i].keystr;
        ix[i].i = i;
    }
    qsort(ix, n2, sizeof(*ix), ix_cmp);
    size_t first = 0, ndup = 0;
    for (size_t i = 1; i < n2; i++) {
        if (strcmp(ix[i].k, ix[first].k) != 0) {
            first = i;
            continue;
        }
        const yaml_node_t *fk = out->v[ix[first].i].key;
        err_at(p, out->v[ix[i].i].key, path, ix[i].k,
               "duplicate key '%s' (first at line %d, column %d)", ix[i].k,
               (int)fk->start_mark.line + 1, (int)fk->start_mark.column + 1);
        drop[ix[i].i] = true;
        ndup++;
    }
    if (ndup) {
        size_t w = 0;
        for (size_t i = 0; i < n2; i++)
            if (!drop[i])
                out->v[w++] = out->v[i];
        out->n = w;
    }
    free(ix);
    free(drop);
    return 0;
}

void cfg__map_fini(struct cfg_map *m)
{
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

static void unknown_key(struct pctx *p, const struct ofe_config_table *t, const struct cfg_pair *pr,
                        const char *path)
{
    const char *cands[256];
    char files[64][80];
    size_t n = 0, nf = 0;
    for (size_t i = 0; i < t->nfields && n < 250; i++) {
        const struct cfg_field *f = &t->fields[i];
        if (f->flags & F_HIDDEN)
            continue;
        cands[n++] = f->key;
        if ((f->flags & F_FILE) && nf < 64) {
            snprintf(files[nf], sizeof(files[nf]), "%sFile", f->key);
            cands[n++] = files[nf++];
        }
    }
    const char *what = p->lenient ? "metadata name" : "field";
    const char *best = cfg__closest(pr->keystr, cands, n);
    if (best) {
        err_at(p, pr->key, path, pr->keystr, "unknown %s '%s' in %s; did you mean '%s'?", what,
               pr->keystr, t->title, best);
        return;
    }
    size_t shown = 0;
    for (size_t i = 0; i < t->nfields; i++)
        if (!(t->fields[i].flags & (F_HIDDEN)) && t->fields[i].type != CT_IGNORED)
            shown++;
    if (shown <= 12) {
        struct ofe_buf b = OFE_BUF_INIT;
        for (size_t i = 0; i < t->nfields; i++) {
            const struct cfg_field *f = &t->fields[i];
            if ((f->flags & F_HIDDEN) || f->type == CT_IGNORED)
                continue;
            ofe_buf_printf(&b, "%s%s", b.len ? ", " : "", f->key);
        }
        err_at(p, pr->key, path, pr->keystr, "unknown %s '%s' in %s (expected one of: %s)", what,
               pr->keystr, t->title, b.data ? b.data : "");
        ofe_buf_fini(&b);
    } else {
        err_at(p, pr->key, path, pr->keystr,
               "unknown %s '%s' in %s (see docs/config.md, section \"%s\")", what, pr->keystr,
               t->title, t->title);
    }
}

void cfg__parse_block(struct pctx *p, const struct ofe_config_table *t, void *obj,
                      const struct cfg_map *map, const char *path, const struct ofe_config_pos *pos)
{
    struct ofe_config_node *node = obj;
    node->table = t;
    free(node->path);
    node->path = strdup(path ? path : "");
    free(node->fpos);
    node->fpos = calloc(t->nfields ? t->nfields : 1, sizeof(struct ofe_config_fpos));
    node->present = map != NULL;
    if (pos)
        node->pos = *pos;
    else
        node->pos.file = p ? p->file : NULL;

    for (size_t i = 0; i < t->nfields; i++)
        if (t->fields[i].def)
            apply_default(&t->fields[i], obj);

    bool seen_stack[64], set_stack[64];
    bool *seen = t->nfields <= 64 ? seen_stack : calloc(t->nfields, sizeof(bool));
    bool *set = t->nfields <= 64 ? set_stack : calloc(t->nfields, sizeof(bool));
    if (!seen || !set) {
        if (seen != seen_stack)
            free(seen);
        if (set != set_stack)
            free(set);
        return;
    }
    memset(seen, 0, t->nfields * sizeof(bool));
    memset(set, 0, t->nfields * sizeof(bool));

    for (size_t k = 0; map && k < map->n && !p->abort; k++) {
        const struct cfg_pair *pr = &map->v[k];
        const char *key = pr->keystr;
        size_t klen = strlen(key);
        const struct cfg_field *f = NULL;
        bool file_variant = false;
        for (size_t i = 0; i < t->nfields && !f; i++) {
            const struct cfg_field *c = &t->fields[i];
            size_t cl = strlen(c->key);
            if (!strcmp(c->key, key))
                f = c;
            else if ((c->flags & F_FILE) && klen == cl + 4 && !strncmp(key, c->key, cl) &&
                     !strcmp(key + cl, "File")) {
                f = c;
                file_variant = true;
            } else if (c->type == CT_PREFIXMAP && klen > cl + 1 && !strncmp(key, c->key, cl) &&
                       key[cl] == '.')
                f = c;
        }
        if (!f) {
            unknown_key(p, t, pr, path);
            continue;
        }
        size_t idx = (size_t)(f - t->fields);
        if (seen[idx] && f->type != CT_PREFIXMAP) {
            if (f->flags & F_FILE)
                err_at(p, pr->key, path, key, "give either '%s' or '%sFile', not both", f->key,
                       f->key);
            else
                err_at(p, pr->key, path, key, "'%s' is given twice", f->key);
            continue;
        }
        seen[idx] = true;
        if (parse_field(p, f, pr->key, pr->value, path, key, obj, file_variant))
            set[idx] = true;
    }

    for (size_t i = 0; i < t->nfields && map && !p->abort; i++) {
        const struct cfg_field *f = &t->fields[i];
        if (!(f->flags & F_REQUIRED) || set[i])
            continue;
        struct ofe_config_pos bpos = node->pos;
        if (seen[i]) {
            /* Seen but not set: an error was reported, or the value was null. */
            bool reported = false;
            for (size_t k = 0; k < map->n; k++)
                if (!strcmp(map->v[k].keystr, f->key) &&
                    map->v[k].value->type == YAML_SCALAR_NODE && is_null_literal(map->v[k].value)) {
                    struct ofe_config_pos vp = cfg__node_pos(p, map->v[k].key);
                    cfg__diag(p, OFE_CONFIG_ERROR, &vp, path, f->key, "'%s' has no value (%s)",
                              f->key, f->desc);
                    reported = true;
                }
            (void)reported;
            continue;
        }
        if (f->flags & F_FILE)
            cfg__diag(p, OFE_CONFIG_ERROR, &bpos, path, f->key,
                      "missing required field '%s' (or '%sFile'): %s", f->key, f->key, f->desc);
        else
            cfg__diag(p, OFE_CONFIG_ERROR, &bpos, path, f->key, "missing required field '%s': %s",
                      f->key, f->desc);
    }

    /* Blocks not written still get their defaults and a header. */
    for (size_t i = 0; i < t->nfields; i++) {
        const struct cfg_field *f = &t->fields[i];
        if (f->type == CT_BLOCK && !set[i]) {
            void *dst = FIELD(obj, f);
            char *bpath = cfg__join(path, f->key);
            struct ofe_config_pos bpos = node->pos;
            cfg__free_block(f->sub, dst);
            memset(dst, 0, f->sub->size);
            bool q = p->quiet;
            p->quiet = true;
            cfg__parse_block(p, f->sub, dst, NULL, bpath, &bpos);
            p->quiet = q;
            ((struct ofe_config_node *)dst)->pos.line = 0;
            ((struct ofe_config_node *)dst)->pos.col = 0;
            free(bpath);
        }
    }
    if (seen != seen_stack)
        free(seen);
    if (set != set_stack)
        free(set);
    if (map && t->check && !p->abort)
        t->check(p, obj);
}

void cfg__free_block(const struct ofe_config_table *t, void *obj)
{
    struct ofe_config_node *node = obj;
    if (!obj || !t)
        return;
    if (t->fini && node->table)
        t->fini(obj);
    for (size_t i = 0; i < t->nfields; i++) {
        const struct cfg_field *f = &t->fields[i];
        void *dst = FIELD(obj, f);
        switch (f->type) {
        case CT_STRING:
        case CT_SECRET:
        case CT_PATH:
        case CT_CSV:
            free(*(char **)dst);
            *(char **)dst = NULL;
            if (f->aux_off) {
                free(*STRP(obj, f->aux_off));
                *STRP(obj, f->aux_off) = NULL;
            }
            break;
        case CT_STRLIST: {
            struct ofe_config_strlist *sl = dst;
            for (size_t j = 0; j < sl->n; j++)
                free(sl->v[j]);
            free(sl->v);
            sl->v = NULL;
            sl->n = 0;
            break;
        }
        case CT_DURLIST: {
            struct ofe_config_durlist *dl = dst;
            free(dl->v);
            dl->v = NULL;
            dl->n = 0;
            break;
        }
        case CT_STRMAP:
        case CT_PREFIXMAP: {
            struct ofe_config_kvlist *kv = dst;
            for (size_t j = 0; j < kv->n; j++) {
                free(kv->v[j].key);
                free(kv->v[j].value);
            }
            free(kv->v);
            kv->v = NULL;
            kv->n = 0;
            break;
        }
        case CT_BLOCK:
            cfg__free_block(f->sub, dst);
            break;
        case CT_MAP:
        case CT_LIST: {
            struct ofe_config_array *arr = dst;
            for (size_t j = 0; j < arr->n; j++)
                cfg__free_block(f->sub, (char *)arr->v + j * f->sub->size);
            free(arr->v);
            arr->v = NULL;
            arr->n = 0;
            break;
        }
        case CT_CUSTOM:
            if (f->custom->free)
                f->custom->free(dst);
            break;
        default:
            break;
        }
    }
    free(node->path);
    free(node->fpos);
    free(node->name);
    node->path = NULL;
    node->fpos = NULL;
    node->name = NULL;
    node->table = NULL;
}

/* --------------------------------------------------------------------- */
/* Descriptions                                                           */

void cfg__describe_type(const struct cfg_field *f, struct ofe_buf *out)
{
    char lo[48], hi[48];
    switch (f->type) {
    case CT_STRING:
        ofe_buf_puts(out, "a string");
        break;
    case CT_SECRET:
        ofe_buf_puts(out, "a string (secret)");
        break;
    case CT_PATH:
        ofe_buf_puts(out, "a file path");
        break;
    case CT_BOOL:
        ofe_buf_puts(out, "true or false");
        break;
    case CT_INT:
        if (f->flags & F_BOUNDS)
            ofe_buf_printf(out, "an integer %lld..%lld", (long long)f->min, (long long)f->max);
        else
            ofe_buf_puts(out, "an integer");
        break;
    case CT_DURATION:
        if (f->flags & F_BOUNDS) {
            ofe_duration_format(f->min * 1000, lo, sizeof(lo));
            ofe_duration_format(f->max * 1000, hi, sizeof(hi));
            ofe_buf_printf(out, "a duration %s..%s", lo, hi);
        } else {
            ofe_buf_puts(out, "a duration");
        }
        break;
    case CT_SIZE:
        if (f->flags & F_BOUNDS)
            ofe_buf_printf(out, "a size %lld..%lld bytes", (long long)f->min, (long long)f->max);
        else
            ofe_buf_puts(out, "a size");
        break;
    case CT_ENUM:
        ofe_buf_puts(out, "one of ");
        enum_list(f, out);
        break;
    case CT_CSV:
        ofe_buf_puts(out, "a comma-separated string or a list");
        break;
    case CT_STRLIST:
        ofe_buf_puts(out, "a list of strings (or a comma-separated string)");
        break;
    case CT_DURLIST:
        ofe_buf_puts(out, "a list of durations (or a comma-separated string)");
        break;
    case CT_STRMAP:
        ofe_buf_puts(out, "a mapping of strings");
        break;
    case CT_PREFIXMAP:
        ofe_buf_printf(out, "settings `%s.NAME: VALUE` (or a mapping under `%s`)", f->key, f->key);
        break;
    case CT_BLOCK:
        ofe_buf_printf(out, "a mapping (%s)", f->sub->title);
        break;
    case CT_MAP:
        ofe_buf_printf(out, "a mapping of names to %s", f->sub->title);
        break;
    case CT_LIST:
        ofe_buf_printf(out, "a list of %s", f->sub->title);
        break;
    case CT_IGNORED:
        ofe_buf_puts(out, "anything (ignored)");
        break;
    case CT_CUSTOM:
        ofe_buf_puts(out, f->custom->type_name);
        break;
    }
}

int cfg__check_k8s_name(const char *s, size_t max, bool allow_dots)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum)
            continue;
        if ((c == '-' || (allow_dots && c == '.')) && i > 0 && i < n - 1)
            continue;
        return -1;
    }
    return 0;
}
