/* The config loader: files and buffers to YAML documents (libyaml), each
 * document to its typed struct (config_table.c with the tables of
 * config_schema.c), diagnostics, lookups. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_int.h"
#include "ofe/err.h"

/* --------------------------------------------------------------------- */
/* Diagnostics                                                            */

void cfg__vdiag(struct ofe_config *cfg, enum ofe_config_severity sev,
                const struct ofe_config_pos *pos, const char *path, const char *key,
                const char *fmt, va_list ap)
{
    struct ofe_config_priv *pv = cfg->priv;
    if (pv->ndiags == pv->cap_diags) {
        size_t cap = pv->cap_diags ? pv->cap_diags * 2 : 16;
        struct ofe_config_diag *d = realloc(pv->diags, cap * sizeof(*d));
        if (!d)
            return;
        pv->diags = d;
        pv->cap_diags = cap;
    }
    struct ofe_config_diag *d = &pv->diags[pv->ndiags];
    memset(d, 0, sizeof(*d));
    d->severity = sev;
    if (pos)
        d->pos = *pos;
    d->path = cfg__join(path, key);
    if (vasprintf(&d->message, fmt, ap) < 0)
        d->message = NULL;
    if (!d->path)
        d->path = strdup("");
    if (!d->message)
        d->message = strdup("out of memory");
    pv->ndiags++;
    if (sev == OFE_CONFIG_ERROR)
        pv->nerrors++;
    else
        pv->nwarnings++;
}

static void cfg__vdiag_s(struct ofe_config *cfg, enum ofe_config_severity sev,
                         const struct ofe_config_pos *pos, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

void cfg__vpdiag(struct pctx *p, enum ofe_config_severity sev, const struct ofe_config_pos *pos,
                 const char *path, const char *key, const char *fmt, va_list ap)
{
    if (p->quiet)
        return;
    if (p->doc && p->doc->nerrors >= CFG_MAX_DOC_ERRORS) {
        /* Enough to act on; checking the rest would only cost time. */
        if (!p->abort) {
            struct ofe_config_pos dpos = p->doc->node.pos;
            p->abort = true;
            cfg__vdiag_s(p->cfg, OFE_CONFIG_ERROR, &dpos, "",
                         "too many errors in this document; the rest of it is not checked");
            p->doc->nerrors++;
        }
        return;
    }
    cfg__vdiag(p->cfg, sev, pos, path, key, fmt, ap);
    if (sev == OFE_CONFIG_ERROR && p->doc)
        p->doc->nerrors++;
}

void cfg__diag(struct pctx *p, enum ofe_config_severity sev, const struct ofe_config_pos *pos,
               const char *path, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg__vpdiag(p, sev, pos, path, key, fmt, ap);
    va_end(ap);
}

static void cfg__vdiag_s(struct ofe_config *cfg, enum ofe_config_severity sev,
                         const struct ofe_config_pos *pos, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg__vdiag(cfg, sev, pos, path, NULL, fmt, ap);
    va_end(ap);
}

static void file_diag(struct ofe_config *cfg, const char *file, int line, int col,
                      enum ofe_config_severity sev, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void file_diag(struct ofe_config *cfg, const char *file, int line, int col,
                      enum ofe_config_severity sev, const char *fmt, ...)
{
    struct ofe_config_pos pos = {file, line, col};
    va_list ap;
    va_start(ap, fmt);
    cfg__vdiag(cfg, sev, &pos, "", NULL, fmt, ap);
    va_end(ap);
}

struct ofe_config_pos cfg__node_pos(const struct pctx *p, const yaml_node_t *n)
{
    struct ofe_config_pos pos = {p ? p->file : NULL, 0, 0};
    if (n) {
        pos.line = (int)n->start_mark.line + 1;
        pos.col = (int)n->start_mark.column + 1;
    }
    return pos;
}

const struct ofe_config_diag *ofe_config_diags(const struct ofe_config *cfg, size_t *n)
{
    *n = cfg->priv->ndiags;
    return cfg->priv->diags;
}

size_t ofe_config_nerrors(const struct ofe_config *cfg)
{
    return cfg->priv->nerrors;
}

size_t ofe_config_nwarnings(const struct ofe_config *cfg)
{
    return cfg->priv->nwarnings;
}

char *ofe_config_diag_format(const struct ofe_config_diag *d, char *buf, size_t size)
{
    char where[600];
    const char *sev = d->severity == OFE_CONFIG_ERROR ? "error" : "warning";
    if (!buf || !size)
        return buf;
    if (d->pos.file && d->pos.line)
        snprintf(where, sizeof(where), "%s:%d:%d", d->pos.file, d->pos.line, d->pos.col);
    else
        snprintf(where, sizeof(where), "%s", d->pos.file ? d->pos.file : "<config>");
    if (d->path && *d->path)
        snprintf(buf, size, "%s: %s: %s: %s", where, sev, d->path, d->message);
    else
        snprintf(buf, size, "%s: %s: %s", where, sev, d->message);
    return buf;
}

/* --------------------------------------------------------------------- */
/* Lifecycle                                                              */

struct ofe_config *ofe_config_new(void)
{
    struct ofe_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->priv = calloc(1, sizeof(*cfg->priv));
    if (!cfg->priv) {
        free(cfg);
        return NULL;
    }
    struct pctx p;
    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    p.quiet = true;
    cfg__parse_block(&p, &cfg__embedded_table, &cfg->priv->default_embedded, NULL, "embedded",
                     NULL);
    return cfg;
}

static void free_doc(struct ofe_config_doc *d)
{
    if (!d)
        return;
    cfg__free_block(d->node.table, d);
    free(d);
}

void ofe_config_destroy(struct ofe_config *cfg)
{
    if (!cfg)
        return;
    struct ofe_config_priv *pv = cfg->priv;
    for (size_t i = 0; i < cfg->neventsources; i++)
        free_doc(&cfg->eventsources[i]->doc);
    for (size_t i = 0; i < cfg->nbuses; i++)
        free_doc(&cfg->buses[i]->doc);
    for (size_t i = 0; i < cfg->ntriggers; i++)
        free_doc(&cfg->triggers[i]->doc);
    free(cfg->eventsources);
    free(cfg->buses);
    free(cfg->triggers);
    for (size_t i = 0; i < pv->ndiags; i++) {
        free(pv->diags[i].path);
        free(pv->diags[i].message);
    }
    free(pv->diags);
    for (size_t i = 0; i < pv->nfiles; i++)
        free(pv->files[i]);
    free(pv->files);
    cfg__free_block(&cfg__embedded_table, &pv->default_embedded);
    free(pv);
    free(cfg);
}

void ofe_config_set_flags(struct ofe_config *cfg, unsigned flags)
{
    cfg->priv->flags = flags;
}

void ofe_config_set_cesql_check(struct ofe_config *cfg, ofe_config_cesql_check_fn fn, void *ctx)
{
    cfg->priv->cesql_check = fn;
    cfg->priv->cesql_ctx = ctx;
}

static const char *intern_file(struct ofe_config *cfg, const char *name)
{
    struct ofe_config_priv *pv = cfg->priv;
    for (size_t i = 0; i < pv->nfiles; i++)
        if (!strcmp(pv->files[i], name))
            return pv->files[i];
    char **f = realloc(pv->files, (pv->nfiles + 1) * sizeof(char *));
    if (!f)
        return NULL;
    pv->files = f;
    pv->files[pv->nfiles] = strdup(name);
    if (!pv->files[pv->nfiles])
        return NULL;
    return pv->files[pv->nfiles++];
}

/* --------------------------------------------------------------------- */
/* Documents                                                              */

static int append_doc(struct ofe_config *cfg, struct ofe_config_doc *d)
{
    void ***arr;
    size_t *n;
    switch (d->kind) {
    case OFE_CONFIG_EVENTSOURCE:
        arr = (void ***)&cfg->eventsources;
        n = &cfg->neventsources;
        break;
    case OFE_CONFIG_TRIGGER:
        arr = (void ***)&cfg->triggers;
        n = &cfg->ntriggers;
        break;
    default:
        arr = (void ***)&cfg->buses;
        n = &cfg->nbuses;
        break;
    }
    void **na = realloc(*arr, (*n + 1) * sizeof(void *));
    if (!na)
        return OFE_ENOMEM;
    na[*n] = d;
    *arr = na;
    (*n)++;
    return 0;
}

/* The raw text of key's scalar value in m, or NULL. */
static yaml_node_t *find_key(const struct cfg_map *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->v[i].keystr, key))
            return m->v[i].value;
    return NULL;
}

/* Sum of the hashed items inside the block at path (the path itself or
 * below it). */
static uint64_t block_hash(const struct pctx *p, const char *path)
{
    size_t n = strlen(path);
    uint64_t h = 0;
    for (size_t i = 0; i < p->nitems; i++) {
        const char *ip = p->items[i].path;
        if (!strncmp(ip, path, n) && (ip[n] == '\0' || ip[n] == '.'))
            h += p->items[i].h;
    }
    return h;
}

/* An event's fingerprint covers its own block and everything of the
 * document outside the events' blocks (sink, eventBus, delivery, ...), so a
 * daemon restarts only the events whose settings changed. */
static void event_fingerprints(const struct pctx *p, struct ofe_config_eventsource *es)
{
    uint64_t all_blocks = 0;
    for (size_t i = 0; i < es->nevents; i++)
        all_blocks += block_hash(p, es->events[i].spec->path);
    for (size_t i = 0; i < es->nevents; i++)
        es->events[i].fingerprint = p->hash - all_blocks + block_hash(p, es->events[i].spec->path) +
                                    /* the kind and name are part of what the event is */
                                    (uint64_t)es->events[i].kind * 0x9e3779b97f4a7c15ULL;
}

static void load_document(struct pctx *p, yaml_node_t *root, size_t index)
{
    struct ofe_config *cfg = p->cfg;
    p->doc = NULL;
    p->hash = 0;
    p->visits = 0;
    p->abort = false;
    p->lenient = false;
    p->component_metadata = NULL;

    if (root->type == YAML_SCALAR_NODE && root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (!root->data.scalar.length || !strcmp((const char *)root->data.scalar.value, "~") ||
         !strcmp((const char *)root->data.scalar.value, "null")))
        return; /* an empty document (e.g. a trailing ---) */

    struct ofe_config_pos rpos = cfg__node_pos(p, root);
    struct cfg_map m;
    if (cfg__map_build(p, root, "", &m) < 0) {
        cfg__diag(p, OFE_CONFIG_ERROR, &rpos, "", NULL,
                  "a document must be a mapping with apiVersion, kind, metadata and spec; got %s",
                  cfg__type_name(root));
        return;
    }
    yaml_node_t *api = find_key(&m, "apiVersion");
    yaml_node_t *kind = find_key(&m, "kind");
    const char *api_s =
        api && api->type == YAML_SCALAR_NODE ? (const char *)api->data.scalar.value : NULL;
    const char *kind_s =
        kind && kind->type == YAML_SCALAR_NODE ? (const char *)kind->data.scalar.value : NULL;
    if (!api_s || !kind_s) {
        if (!api_s) {
            struct ofe_config_pos apos = api ? cfg__node_pos(p, api) : rpos;
            cfg__diag(p, OFE_CONFIG_ERROR, &apos, "", "apiVersion",
                      "missing apiVersion (expected " OFE_CONFIG_API_EVENTS
                      " or " OFE_CONFIG_API_DAPR ")");
        }
        if (!kind_s)
            cfg__diag(p, OFE_CONFIG_ERROR, &rpos, "", "kind",
                      "missing kind (expected EventSource, EventBus, ClusterEventBus, Trigger or "
                      "Component)");
        cfg__map_fini(&m);
        return;
    }
    const struct cfg_kind *k = NULL;
    bool api_known = false;
    for (size_t i = 0; i < cfg__nkinds; i++) {
        if (!strcmp(cfg__kinds[i].api_version, api_s)) {
            api_known = true;
            if (!strcmp(cfg__kinds[i].kind, kind_s))
                k = &cfg__kinds[i];
        }
    }
    if (!api_known) {
        struct ofe_config_pos pos = cfg__node_pos(p, api);
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, "", "apiVersion",
                  "unknown apiVersion '%s' (expected " OFE_CONFIG_API_EVENTS
                  " or " OFE_CONFIG_API_DAPR ")",
                  api_s);
        cfg__map_fini(&m);
        return;
    }
    if (!k) {
        struct ofe_config_pos pos = cfg__node_pos(p, kind);
        const char *cands[8];
        size_t nc = 0;
        struct ofe_buf b = OFE_BUF_INIT;
        const char *elsewhere = NULL;
        for (size_t i = 0; i < cfg__nkinds; i++) {
            if (!strcmp(cfg__kinds[i].api_version, api_s)) {
                cands[nc++] = cfg__kinds[i].kind;
                ofe_buf_printf(&b, "%s%s", b.len ? ", " : "", cfg__kinds[i].kind);
            } else if (!strcmp(cfg__kinds[i].kind, kind_s)) {
                elsewhere = cfg__kinds[i].api_version;
            }
        }
        const char *best = cfg__closest(kind_s, cands, nc);
        if (elsewhere)
            cfg__diag(p, OFE_CONFIG_ERROR, &pos, "", "kind",
                      "kind %s belongs to apiVersion %s, not %s", kind_s, elsewhere, api_s);
        else if (best)
            cfg__diag(p, OFE_CONFIG_ERROR, &pos, "", "kind",
                      "unknown kind '%s' for %s; did you mean '%s'?", kind_s, api_s, best);
        else
            cfg__diag(p, OFE_CONFIG_ERROR, &pos, "", "kind",
                      "unknown kind '%s' for %s (expected one of: %s)", kind_s, api_s,
                      b.data ? b.data : "");
        ofe_buf_fini(&b);
        cfg__map_fini(&m);
        return;
    }
    struct ofe_config_doc *d = calloc(1, k->table->size);
    if (!d) {
        cfg__map_fini(&m);
        return;
    }
    d->kind = k->id;
    d->doc_index = index;
    p->doc = d;
    p->record = k->id == OFE_CONFIG_EVENTSOURCE;
    cfg__parse_block(p, k->table, d, &m, "", &rpos);
    cfg__map_fini(&m);
    d->fingerprint = p->hash;
    if (p->record) {
        event_fingerprints(p, (struct ofe_config_eventsource *)d);
        for (size_t i = 0; i < p->nitems; i++)
            free(p->items[i].path);
        free(p->items);
        p->items = NULL;
        p->nitems = p->capitems = 0;
        p->record = false;
    }
    if (!d->name && d->metadata.name) {
        /* The document's checks did not run (it was abandoned). */
        d->name = d->metadata.name;
        d->namespace = d->metadata.namespace ? d->metadata.namespace : OFE_CONFIG_DEFAULT_NAMESPACE;
    }
    if (!d->name) {
        /* Without a name nothing can refer to it; its errors are reported. */
        p->doc = NULL;
        free_doc(d);
        return;
    }
    cfg__check_new_doc(p, d);
    p->doc = NULL;
    if (append_doc(cfg, d) < 0)
        free_doc(d);
}

static void syntax_error(struct pctx *p, yaml_parser_t *parser, const char *buf, size_t len)
{
    int line = (int)parser->problem_mark.line + 1;
    int col = (int)parser->problem_mark.column + 1;
    if (parser->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset. */
        line = 1;
        col = 1;
        for (size_t i = 0; i < parser->problem_offset && i < len; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
                col++;
            }
        }
        if (parser->problem_value != -1)
            file_diag(p->cfg, p->file, line, col, OFE_CONFIG_ERROR,
                      "invalid input: %s (byte 0x%02x); YAML must be UTF-8 text",
                      parser->problem ? parser->problem : "?", parser->problem_value & 0xff);
        else
            file_diag(p->cfg, p->file, line, col, OFE_CONFIG_ERROR,
                      "invalid input: %s; YAML must be UTF-8 text",
                      parser->problem ? parser->problem : "?");
        return;
    }
    if (parser->error == YAML_MEMORY_ERROR) {
        file_diag(p->cfg, p->file, 0, 0, OFE_CONFIG_ERROR, "out of memory while parsing YAML");
        return;
    }
    if (parser->context)
        file_diag(p->cfg, p->file, line, col, OFE_CONFIG_ERROR,
                  "YAML syntax error: %s (%s at line %d, column %d)",
                  parser->problem ? parser->problem : "?", parser->context,
                  (int)parser->context_mark.line + 1, (int)parser->context_mark.column + 1);
    else
        file_diag(p->cfg, p->file, line, col, OFE_CONFIG_ERROR, "YAML syntax error: %s",
                  parser->problem ? parser->problem : "?");
}

static int load(struct ofe_config *cfg, const char *name, const char *basedir, const char *buf,
                size_t len)
{
    struct ofe_config_priv *pv = cfg->priv;
    size_t errors_before = pv->nerrors;
    struct pctx p;
    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    p.file = intern_file(cfg, name ? name : "<buffer>");
    p.basedir = basedir;
    if (!p.file)
        return OFE_ENOMEM;
    if (len > OFE_CONFIG_MAX_FILE_SIZE) {
        file_diag(cfg, p.file, 0, 0, OFE_CONFIG_ERROR, "file larger than %d bytes",
                  OFE_CONFIG_MAX_FILE_SIZE);
        return OFE_EINVAL;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return OFE_ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    size_t docs = 0;
    for (size_t index = 0;; index++) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            syntax_error(&p, &parser, buf, len);
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) {
            yaml_document_delete(&doc);
            break;
        }
        p.ydoc = &doc;
        size_t before = cfg->neventsources + cfg->nbuses + cfg->ntriggers;
        load_document(&p, root, index);
        docs += cfg->neventsources + cfg->nbuses + cfg->ntriggers - before;
        p.ydoc = NULL;
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    if (docs == 0 && pv->nerrors == errors_before)
        file_diag(cfg, p.file, 0, 0, OFE_CONFIG_WARNING, "no documents in this file");
    return pv->nerrors > errors_before ? OFE_EINVAL : 0;
}

int ofe_config_load_buffer(struct ofe_config *cfg, const char *name, const char *buf, size_t len)
{
    return load(cfg, name, NULL, buf ? buf : "", buf ? len : 0);
}

int ofe_config_load_file(struct ofe_config *cfg, const char *path)
{
    const char *fname = intern_file(cfg, path);
    if (!fname)
        return OFE_ENOMEM;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        file_diag(cfg, fname, 0, 0, OFE_CONFIG_ERROR, "cannot open: %s", strerror(errno));
        return OFE_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        file_diag(cfg, fname, 0, 0, OFE_CONFIG_ERROR, "not a regular file");
        close(fd);
        return OFE_EIO;
    }
    if (st.st_size > OFE_CONFIG_MAX_FILE_SIZE) {
        file_diag(cfg, fname, 0, 0, OFE_CONFIG_ERROR, "file larger than %d bytes",
                  OFE_CONFIG_MAX_FILE_SIZE);
        close(fd);
        return OFE_EINVAL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            file_diag(cfg, fname, 0, 0, OFE_CONFIG_ERROR, "cannot read: %s", strerror(errno));
            free(buf);
            close(fd);
            return OFE_EIO;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf)
        return OFE_ENOMEM;
    char *dcopy = strdup(path);
    const char *dir = dcopy ? dirname(dcopy) : NULL;
    int rc = load(cfg, fname, dir, buf, got);
    free(dcopy);
    free(buf);
    return rc;
}

/* --------------------------------------------------------------------- */
/* Lookups                                                                */

const struct ofe_config_pos *ofe_config_field_pos(const struct ofe_config_node *n, const char *key)
{
    for (size_t i = 0; key && n->table && n->fpos && i < n->table->nfields; i++)
        if (!strcmp(n->table->fields[i].key, key) && n->fpos[i].pos.line)
            return &n->fpos[i].pos;
    return &n->pos;
}

char *ofe_config_where(const struct ofe_config_node *n, const char *key, char *buf, size_t size)
{
    const struct ofe_config_pos *pos = ofe_config_field_pos(n, key);
    char *path = cfg__join(n->path, key);
    if (pos->line)
        snprintf(buf, size, "%s:%d:%d (%s)", pos->file ? pos->file : "?", pos->line, pos->col,
                 path ? path : "");
    else
        snprintf(buf, size, "default (%s)", path ? path : "");
    free(path);
    return buf;
}

static bool same_ns(const char *a, const char *b)
{
    return !strcmp(a ? a : OFE_CONFIG_DEFAULT_NAMESPACE, b ? b : OFE_CONFIG_DEFAULT_NAMESPACE);
}

const struct ofe_config_eventsource *ofe_config_find_eventsource(const struct ofe_config *cfg,
                                                                 const char *ns, const char *name)
{
    for (size_t i = 0; i < cfg->neventsources; i++) {
        const struct ofe_config_doc *d = &cfg->eventsources[i]->doc;
        if (!strcmp(d->name, name) && same_ns(d->namespace, ns))
            return cfg->eventsources[i];
    }
    return NULL;
}

const struct ofe_config_trigger *ofe_config_find_trigger(const struct ofe_config *cfg,
                                                         const char *ns, const char *name)
{
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct ofe_config_doc *d = &cfg->triggers[i]->doc;
        if (!strcmp(d->name, name) && same_ns(d->namespace, ns))
            return cfg->triggers[i];
    }
    return NULL;
}

bool ofe_config_doc_same(const struct ofe_config_doc *a, const struct ofe_config_doc *b)
{
    if (!a || !b)
        return false;
    return a->kind == b->kind && !strcmp(a->name, b->name) && same_ns(a->namespace, b->namespace) &&
           a->fingerprint == b->fingerprint;
}
