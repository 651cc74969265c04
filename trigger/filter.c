/* Subscriber filters: `filter` (one CESQL expression) and Knative's
 * `filters` dialects (exact, prefix, suffix, all, any, not, cesql), all of
 * which must match. Compiled once per trigger build; evaluated on backend
 * threads concurrently (compiled expressions are read-only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "trigger.h"

struct fnode {
    enum ofe_config_filter_kind kind;
    const struct ofe_config_kvlist *attrs; /* exact, prefix, suffix: into the config */
    struct fnode *sub;                     /* all, any, not */
    size_t nsub;
    struct ofe_cesql *expr; /* cesql */
};

struct trg_filter {
    struct ofe_cesql *expr; /* `filter`, or NULL */
    struct fnode *nodes;    /* `filters`, all must match */
    size_t n;
};

static void fnode_fini(struct fnode *f)
{
    for (size_t i = 0; i < f->nsub; i++)
        fnode_fini(&f->sub[i]);
    free(f->sub);
    ofe_cesql_destroy(f->expr);
}

static int compile_cesql(const char *text, const char *where, struct ofe_cesql **out, char *errstr,
                         size_t errstr_size)
{
    char err[256];
    int rc = ofe_cesql_compile(NULL, text, out, err, sizeof(err));
    if (rc)
        return ofe_err(errstr, errstr_size, rc, "%s: CESQL \"%s\": %s", where, text, err);
    enum ofe_cesql_type ty = ofe_cesql_result_type(*out);
    if (ty == OFE_CESQL_T_INTEGER || ty == OFE_CESQL_T_STRING)
        OFE_WARN(TRG_COMPONENT, NULL, "%s: CESQL \"%s\" yields %s, not Boolean: it never matches",
                 where, text, ofe_cesql_typename(ty));
    return 0;
}

static int fnode_build(const struct ofe_config_filter *c, struct fnode *f, char *errstr,
                       size_t errstr_size)
{
    f->kind = c->kind;
    switch (c->kind) {
    case OFE_CONFIG_FILTER_EXACT:
    case OFE_CONFIG_FILTER_PREFIX:
    case OFE_CONFIG_FILTER_SUFFIX:
        f->attrs = &c->attrs;
        return 0;
    case OFE_CONFIG_FILTER_ALL:
    case OFE_CONFIG_FILTER_ANY:
    case OFE_CONFIG_FILTER_NOT:
        if (c->nsub) {
            f->sub = calloc(c->nsub, sizeof(*f->sub));
            if (!f->sub)
                return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < c->nsub; i++) {
            f->nsub = i + 1;
            int rc = fnode_build(&c->sub[i], &f->sub[i], errstr, errstr_size);
            if (rc)
                return rc;
        }
        f->nsub = c->nsub;
        if (c->kind == OFE_CONFIG_FILTER_NOT && f->nsub != 1)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: `not` takes exactly one filter",
                           c->path ? c->path : "filters");
        return 0;
    case OFE_CONFIG_FILTER_CESQL:
        return compile_cesql(c->cesql ? c->cesql : "", c->path ? c->path : "filters", &f->expr,
                             errstr, errstr_size);
    }
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "unknown filter kind %d", (int)c->kind);
}

int trg_filter_build(const struct ofe_config_subscriber *cfg, struct trg_filter **out, char *errstr,
                     size_t errstr_size)
{
    *out = NULL;
    if (!cfg->filter && !cfg->filters.n)
        return 0;
    struct trg_filter *f = calloc(1, sizeof(*f));
    if (!f)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    int rc = 0;
    if (cfg->filter)
        rc = compile_cesql(cfg->filter, "filter", &f->expr, errstr, errstr_size);
    if (!rc && cfg->filters.n) {
        f->nodes = calloc(cfg->filters.n, sizeof(*f->nodes));
        if (!f->nodes)
            rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < cfg->filters.n; i++) {
            f->n = i + 1;
            rc = fnode_build(&cfg->filters.v[i], &f->nodes[i], errstr, errstr_size);
        }
    }
    if (rc) {
        trg_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void trg_filter_free(struct trg_filter *f)
{
    if (!f)
        return;
    ofe_cesql_destroy(f->expr);
    for (size_t i = 0; i < f->n; i++)
        fnode_fini(&f->nodes[i]);
    free(f->nodes);
    free(f);
}

static bool cesql_match(const struct ofe_cesql *x, const struct ofe_ce *ev,
                        struct ofe_counter *errors, const char *who)
{
    enum ofe_cesql_err err = OFE_CESQL_OK;
    if (ofe_cesql_match(x, ev, &err))
        return true;
    if (err != OFE_CESQL_OK) {
        ofe_counter_inc(errors);
        OFE_DEBUG(TRG_COMPONENT, who, "CESQL \"%s\" on event id=%s: %s error: no match",
                  ofe_cesql_text(x), ofe_ce_get_str(ev, "id"), ofe_cesql_errname(err));
    }
    return false;
}

static bool attr_match(enum ofe_config_filter_kind kind, const struct ofe_config_kvlist *attrs,
                       const struct ofe_ce *ev)
{
    for (size_t i = 0; i < attrs->n; i++) {
        const char *name = attrs->v[i].key, *want = attrs->v[i].value ? attrs->v[i].value : "";
        const struct ofe_ce_attr *a = ofe_ce_get(ev, name, strlen(name));
        if (!a || !a->value)
            return false;
        size_t wl = strlen(want), vl = a->value_len;
        switch (kind) {
        case OFE_CONFIG_FILTER_EXACT:
            if (vl != wl || memcmp(a->value, want, wl))
                return false;
            break;
        case OFE_CONFIG_FILTER_PREFIX:
            if (vl < wl || memcmp(a->value, want, wl))
                return false;
            break;
        default: /* suffix */
            if (vl < wl || memcmp(a->value + vl - wl, want, wl))
                return false;
            break;
        }
    }
    return true;
}

static bool fnode_match(const struct fnode *f, const struct ofe_ce *ev, struct ofe_counter *errors,
                        const char *who)
{
    switch (f->kind) {
    case OFE_CONFIG_FILTER_EXACT:
    case OFE_CONFIG_FILTER_PREFIX:
    case OFE_CONFIG_FILTER_SUFFIX:
        return attr_match(f->kind, f->attrs, ev);
    case OFE_CONFIG_FILTER_ALL:
        for (size_t i = 0; i < f->nsub; i++)
            if (!fnode_match(&f->sub[i], ev, errors, who))
                return false;
        return true;
    case OFE_CONFIG_FILTER_ANY:
        /* Knative: an empty `any` sets no constraint. */
        for (size_t i = 0; i < f->nsub; i++)
            if (fnode_match(&f->sub[i], ev, errors, who))
                return true;
        return f->nsub == 0;
    case OFE_CONFIG_FILTER_NOT:
        return !fnode_match(&f->sub[0], ev, errors, who);
    case OFE_CONFIG_FILTER_CESQL:
        return cesql_match(f->expr, ev, errors, who);
    }
    return false;
}

bool trg_filter_match(const struct trg_filter *f, const struct ofe_ce *ev,
                      struct ofe_counter *errors, const char *who)
{
    if (f->expr && !cesql_match(f->expr, ev, errors, who))
        return false;
    for (size_t i = 0; i < f->n; i++)
        if (!fnode_match(&f->nodes[i], ev, errors, who))
            return false;
    return true;
}
