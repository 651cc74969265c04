/* Internals of the config module, shared by common/config*.c only.
 *
 * A block of configuration is described by one declarative table
 * (struct ofe_config_table): one row per YAML key with its type, default,
 * bounds or enum values, offset into the C struct, flags and a one-line
 * description. The same rows drive parsing, validation, unknown-key errors,
 * freeing, fingerprints and the generated docs/config.md. */
#ifndef OFE_CONFIG_INT_H
#define OFE_CONFIG_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "ofe/config.h"

enum cfg_type {
    CT_STRING,    /* char * */
    CT_SECRET,    /* char *; with F_FILE also `<key>File` (path kept at aux_off) */
    CT_PATH,      /* char *, a file path: relative ones are made relative to the YAML file */
    CT_BOOL,      /* bool */
    CT_INT,       /* int64_t */
    CT_DURATION,  /* int64_t milliseconds */
    CT_SIZE,      /* int64_t bytes: 1048576, 512Ki, 1MiB, 4MB */
    CT_ENUM,      /* int, from .enums */
    CT_CSV,       /* char *: a string "a,b" or a list [a, b], kept as "a,b" */
    CT_STRLIST,   /* struct ofe_config_strlist: a list, or a comma-separated string */
    CT_DURLIST,   /* struct ofe_config_durlist: a list, or "50ms, 1s" */
    CT_STRMAP,    /* struct ofe_config_kvlist: a mapping of strings */
    CT_PREFIXMAP, /* struct ofe_config_kvlist: `<key>.x.y: v` or `<key>: {x.y: v}` */
    CT_BLOCK,     /* an embedded struct described by .sub */
    CT_MAP,       /* OFE_CONFIG_ARRAY of .sub structs: a mapping name -> block */
    CT_LIST,      /* OFE_CONFIG_ARRAY of .sub structs: a sequence of blocks */
    CT_IGNORED,   /* accepted and not stored (F_WARN: with a warning) */
    CT_CUSTOM,    /* parsed by .custom */
};

#define F_REQUIRED (1u << 0) /* must be written (for F_FILE: either form) */
#define F_FILE     (1u << 1) /* CT_SECRET also accepts `<key>File: PATH` */
#define F_WARN     (1u << 2) /* CT_IGNORED: warn that the value is ignored */
#define F_NOTEMPTY (1u << 3) /* a string must not be empty */
#define F_BOUNDS   (1u << 4) /* min/max apply (CT_INT, CT_DURATION in ms, CT_SIZE) */
#define F_HIDDEN   (1u << 5) /* not listed in docs/config.md (tolerated k8s bookkeeping) */
#define F_NAMES    (1u << 6) /* CT_MAP: keys follow the condition NAME rule */

struct cfg_enum {
    const char *name; /* as written in YAML (matched case-insensitively) */
    int value;        /* a later entry with an earlier value is an alias */
};

struct pctx;
struct cfg_field;

struct cfg_custom {
    const char *type_name; /* for the docs */
    /* Parses v into the field at (char *)obj + f->off. Reports its own
     * errors. */
    void (*parse)(struct pctx *p, const struct cfg_field *f, yaml_node_t *v, const char *path,
                  void *obj);
    void (*free)(void *field);
};

struct cfg_field {
    const char *key;
    enum cfg_type type;
    size_t off;      /* of the value in the block's struct (never 0: the node header is there) */
    size_t aux_off;  /* CT_SECRET with F_FILE: char * receiving the file path */
    const char *def; /* default, as YAML text, parsed by the same code; NULL = none */
    int64_t min, max;
    unsigned flags;
    const struct cfg_enum *enums;
    const struct ofe_config_table *sub;
    const struct cfg_custom *custom;
    const char *desc;
};

struct ofe_config_table {
    const char *id;    /* anchor in docs/config.md */
    const char *title; /* e.g. "EventSource.spec.kafka.<event>" */
    const char *intro; /* paragraph for the docs, may be NULL */
    size_t size;       /* of the struct (map/list items) */
    const struct cfg_field *fields;
    size_t nfields;
    /* Cross-field validation and derived values, after the block's fields
     * are parsed (only for blocks written in YAML). */
    void (*check)(struct pctx *p, void *obj);
    /* Frees members that are not table fields. */
    void (*fini)(void *obj);
};

/* Per-field position: where the value starts and whether byte offsets in
 * the value map one to one onto columns (single-line, no escapes, no
 * ${VAR} expansion), so errors inside an expression can point at the
 * exact column. */
struct ofe_config_fpos {
    struct ofe_config_pos pos; /* of the scalar (its opening quote, if any) */
    bool linear;
    int shift; /* columns from pos to the first character of the value (quote) */
};

/* A mapping to parse: key/value node pairs, checked for non-scalar and
 * duplicate keys. Built from a YAML mapping, or from a Dapr metadata list. */
struct cfg_pair {
    yaml_node_t *key; /* scalar node holding the key (name node for Dapr) */
    yaml_node_t *value;
    const char *keystr;
};

struct cfg_map {
    struct cfg_pair *v;
    size_t n;
    struct ofe_config_pos pos;
};

struct ofe_config_priv {
    unsigned flags;
    struct ofe_config_diag *diags;
    size_t ndiags, cap_diags, nerrors, nwarnings;
    char **files; /* interned file names */
    size_t nfiles;
    ofe_config_cesql_check_fn cesql_check;
    void *cesql_ctx;
    struct ofe_config_embedded_bus default_embedded;
};

/* State of the parse of one document. */
struct pctx {
    struct ofe_config *cfg;
    const char *file;    /* interned */
    const char *basedir; /* directory of the file, NULL for buffers */
    yaml_document_t *ydoc;
    struct ofe_config_doc *doc; /* document being parsed, NULL for defaults */
    bool lenient;               /* Dapr metadata: values are strings */
    bool quiet;                 /* defaults: no diagnostics, no hash */
    bool abort;                 /* too many nodes: stop */
    uint64_t hash;
    /* While an EventSource is parsed: every hashed item with its path, to
     * give each event a fingerprint of its own (ofe_config_event). */
    bool record;
    struct cfg_hash_item {
        char *path;
        uint64_t h;
    } * items;
    size_t nitems, capitems;
    size_t visits;
    yaml_node_t *component_metadata; /* Component spec.metadata, parsed after spec.type */
};

/* config.c */
#define CFG_MAX_DOC_ERRORS 1000 /* then the document is abandoned */
void cfg__vpdiag(struct pctx *p, enum ofe_config_severity sev, const struct ofe_config_pos *pos,
                 const char *path, const char *key, const char *fmt, va_list ap);
void cfg__diag(struct pctx *p, enum ofe_config_severity sev, const struct ofe_config_pos *pos,
               const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void cfg__vdiag(struct ofe_config *cfg, enum ofe_config_severity sev,
                const struct ofe_config_pos *pos, const char *path, const char *key,
                const char *fmt, va_list ap);
struct ofe_config_pos cfg__node_pos(const struct pctx *p, const yaml_node_t *n);

/* config_table.c */
/* Parses map (NULL: the block is absent, defaults only) into obj, which is
 * zeroed memory of t->size bytes (or an embedded block). */
void cfg__parse_block(struct pctx *p, const struct ofe_config_table *t, void *obj,
                      const struct cfg_map *map, const char *path,
                      const struct ofe_config_pos *pos);
/* Builds the pair list of a mapping node; reports non-scalar and duplicate
 * keys (duplicates are dropped). Returns 0, or -1 when node is not a
 * mapping (nothing reported). Free with cfg__map_fini. */
int cfg__map_build(struct pctx *p, yaml_node_t *node, const char *path, struct cfg_map *out);
void cfg__map_fini(struct cfg_map *m);
void cfg__free_block(const struct ofe_config_table *t, void *obj);
/* Reads a scalar value: returns 1 with *out (malloc'd, ${VAR} expanded) for
 * a value, 0 for a YAML null (nothing reported), -1 after reporting an
 * error (not a scalar, bad ${...}). *lenient is set when the value came
 * from the environment or from a Dapr metadata entry. */
int cfg__scalar(struct pctx *p, yaml_node_t *n, const char *path, const char *key, char **out,
                bool *lenient);
/* "parent.key" or "parent[3]" into a new string. */
char *cfg__join(const char *parent, const char *key);
const char *cfg__type_name(yaml_node_t *n);
void cfg__hash(struct pctx *p, const char *path, const char *key, const char *value);
bool cfg__visit(struct pctx *p, const char *path);
/* Sets the position of field `key` of block n (used by custom parsers). */
void cfg__set_fpos(struct ofe_config_node *n, const char *key, const struct ofe_config_fpos *fp);
struct ofe_config_fpos cfg__fpos(const struct pctx *p, yaml_node_t *n, bool expanded);
/* Suggests the closest of n candidates to word (NULL when none is close). */
const char *cfg__closest(const char *word, const char *const *cands, size_t n);
/* Describes a field's type for messages and docs ("integer 1..65535"). */
void cfg__describe_type(const struct cfg_field *f, struct ofe_buf *out);
/* Returns 0 when s is a DNS-1123 subdomain (Kubernetes object name). */
int cfg__check_k8s_name(const char *s, size_t max, bool allow_dots);

/* config_env.c */
/* Expands ${VAR}, ${VAR:-default} and the escape $${ in s. Returns 0 with
 * *out malloc'd (and *changed), or -1 with errstr / *err_off set. */
int cfg__expand(const struct pctx *p, const char *s, char **out, bool *changed, size_t *err_off,
                char *errstr, size_t errstr_size);
/* Reads a secret file (trailing CR/LF trimmed). Returns 0 with *out
 * malloc'd, or -1 with errstr set. path relative to basedir. */
int cfg__read_secret(const struct pctx *p, const char *path, char **out, char **resolved,
                     char *errstr, size_t errstr_size);
/* Makes a relative path relative to basedir (malloc'd). */
char *cfg__resolve_path(const struct pctx *p, const char *path);

/* config_schema.c */
struct cfg_kind {
    const char *api_version;
    const char *kind;
    enum ofe_config_kind id;
    const struct ofe_config_table *table; /* the whole document */
};
extern const struct cfg_kind cfg__kinds[];
extern const size_t cfg__nkinds;
extern const struct ofe_config_table cfg__embedded_table;
/* Tables in the order docs/config.md lists them. */
extern const struct ofe_config_table *const cfg__doc_tables[];
extern const size_t cfg__ndoc_tables;
/* Cross-document checks run after a document is added (duplicates,
 * webhook listeners). */
void cfg__check_new_doc(struct pctx *p, struct ofe_config_doc *doc);

#endif
