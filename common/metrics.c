/* Prometheus metrics registry and text exposition (format 0.0.4). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "ofe/metrics.h"

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM, K_GAUGE_FN };

static const double default_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

struct series {
    struct series *next;
    char *labels; /* rendered label text without braces, "" when none */
    enum kind kind;
    union {
        struct ofe_counter *c;
        struct ofe_gauge *g;
        struct ofe_histogram *h;
    } u;
    double (*fn)(void *arg);
    void *fn_arg;
    char **label_pairs; /* NULL-terminated name, value list (owned) for remove_by_label */
};

struct family {
    struct family *next;
    char *name;
    char *help;
    enum kind kind; /* K_GAUGE_FN renders as gauge */
    struct series *series, **tail;
};

struct ofe_metrics {
    pthread_mutex_t lock;
    struct family *families, **tail;
};

struct ofe_counter {
    _Atomic uint64_t v;
};

struct ofe_gauge {
    _Atomic uint64_t bits; /* a double */
};

struct ofe_histogram {
    size_t nb;
    double *bounds;
    _Atomic uint64_t *buckets; /* nb + 1, the last is +Inf; not cumulative */
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t count;
};

static uint64_t d2b(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

static double b2d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

struct ofe_metrics *ofe_metrics_new(void)
{
    struct ofe_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->families;
    return m;
}

static void histogram_free(struct ofe_histogram *h)
{
    if (!h)
        return;
    free(h->bounds);
    free((void *)h->buckets);
    free(h);
}

static void series_free(struct series *s)
{
    switch (s->kind) {
    case K_COUNTER:
        free(s->u.c);
        break;
    case K_GAUGE:
        free(s->u.g);
        break;
    case K_HISTOGRAM:
        histogram_free(s->u.h);
        break;
    case K_GAUGE_FN:
        break;
    }
    if (s->label_pairs) {
        for (char **p = s->label_pairs; *p; p++)
            free(*p);
        free(s->label_pairs);
    }
    free(s->labels);
    free(s);
}

void ofe_metrics_destroy(struct ofe_metrics *m)
{
    if (!m)
        return;
    struct family *f = m->families;
    while (f) {
        struct family *fn = f->next;
        struct series *s = f->series;
        while (s) {
            struct series *sn = s->next;
            series_free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Renders a label set as name="value",... with the exposition escapes. */
static char *render_labels(const char *const *labels)
{
    struct ofe_buf b = OFE_BUF_INIT;
    ofe_buf_reserve(&b, 0);
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        if (i)
            ofe_buf_putc(&b, ',');
        ofe_buf_puts(&b, labels[i]);
        ofe_buf_puts(&b, "=\"");
        for (const char *p = labels[i + 1]; *p; p++) {
            if (*p == '\\')
                ofe_buf_puts(&b, "\\\\");
            else if (*p == '"')
                ofe_buf_puts(&b, "\\\"");
            else if (*p == '\n')
                ofe_buf_puts(&b, "\\n");
            else
                ofe_buf_putc(&b, *p);
        }
        ofe_buf_putc(&b, '"');
    }
    if (!b.data)
        return NULL;
    return ofe_buf_detach(&b, NULL);
}

static char **copy_pairs(const char *const *labels)
{
    size_t n = 0;
    while (labels && labels[n])
        n++;
    char **p = calloc(n + 1, sizeof(*p));
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(p[i] = strdup(labels[i]))) {
            while (i--)
                free(p[i]);
            free(p);
            return NULL;
        }
    }
    return p;
}

/* Finds or creates the series; called with the lock held. */
static struct series *lookup(struct ofe_metrics *m, const char *name, const char *help,
                             const char *const *labels, enum kind kind, bool *created)
{
    *created = false;
    struct family *f;
    for (f = m->families; f; f = f->next)
        if (!strcmp(f->name, name))
            break;
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f)
            return NULL;
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        if (!f->name || !f->help) {
            free(f->name);
            free(f->help);
            free(f);
            return NULL;
        }
        f->kind = kind;
        f->tail = &f->series;
        *m->tail = f;
        m->tail = &f->next;
    }
    char *lt = render_labels(labels);
    if (!lt)
        return NULL;
    for (struct series *s = f->series; s; s = s->next) {
        if (!strcmp(s->labels, lt)) {
            free(lt);
            return s->kind == kind ? s : NULL;
        }
    }
    struct series *s = calloc(1, sizeof(*s));
    if (!s) {
        free(lt);
        return NULL;
    }
    s->labels = lt;
    s->kind = kind;
    s->label_pairs = copy_pairs(labels);
    if (!s->label_pairs) {
        free(lt);
        free(s);
        return NULL;
    }
    *f->tail = s;
    f->tail = &s->next;
    *created = true;
    return s;
}

struct ofe_counter *ofe_metrics_counter(struct ofe_metrics *m, const char *name, const char *help,
                                        const char *const *labels)
{
    if (!m)
        return NULL;
    pthread_mutex_lock(&m->lock);
    bool created;
    struct series *s = lookup(m, name, help, labels, K_COUNTER, &created);
    if (s && created && !(s->u.c = calloc(1, sizeof(*s->u.c))))
        s = NULL; /* left registered without a value; renders nothing */
    struct ofe_counter *c = s ? s->u.c : NULL;
    pthread_mutex_unlock(&m->lock);
    return c;
}

struct ofe_gauge *ofe_metrics_gauge(struct ofe_metrics *m, const char *name, const char *help,
                                    const char *const *labels)
{
    if (!m)
        return NULL;
    pthread_mutex_lock(&m->lock);
    bool created;
    struct series *s = lookup(m, name, help, labels, K_GAUGE, &created);
    if (s && created && !(s->u.g = calloc(1, sizeof(*s->u.g))))
        s = NULL;
    struct ofe_gauge *g = s ? s->u.g : NULL;
    pthread_mutex_unlock(&m->lock);
    return g;
}

struct ofe_histogram *ofe_metrics_histogram(struct ofe_metrics *m, const char *name,
                                            const char *help, const char *const *labels,
                                            const double *bounds, size_t nbounds)
{
    if (!m)
        return NULL;
    if (!bounds) {
        bounds = default_bounds;
        nbounds = sizeof(default_bounds) / sizeof(default_bounds[0]);
    }
    pthread_mutex_lock(&m->lock);
    bool created;
    struct series *s = lookup(m, name, help, labels, K_HISTOGRAM, &created);
    if (s && created) {
        struct ofe_histogram *h = calloc(1, sizeof(*h));
        if (h) {
            h->nb = nbounds;
            h->bounds = malloc(nbounds * sizeof(double) + 1);
            h->buckets = calloc(nbounds + 1, sizeof(*h->buckets));
            if (h->bounds && h->buckets) {
                memcpy(h->bounds, bounds, nbounds * sizeof(double));
            } else {
                histogram_free(h);
                h = NULL;
            }
        }
        s->u.h = h;
    }
    struct ofe_histogram *h = s ? s->u.h : NULL;
    pthread_mutex_unlock(&m->lock);
    return h;
}

int ofe_metrics_gauge_fn(struct ofe_metrics *m, const char *name, const char *help,
                         const char *const *labels, double (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&m->lock);
    bool created;
    struct series *s = lookup(m, name, help, labels, K_GAUGE_FN, &created);
    if (s) {
        s->fn = fn;
        s->fn_arg = arg;
    }
    pthread_mutex_unlock(&m->lock);
    return s ? 0 : OFE_ENOMEM;
}

void ofe_metrics_remove_by_label(struct ofe_metrics *m, const char *label, const char *value)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    for (struct family *f = m->families; f; f = f->next) {
        struct series **pp = &f->series;
        f->tail = &f->series;
        while (*pp) {
            struct series *s = *pp;
            bool match = false;
            for (char **p = s->label_pairs; p && p[0] && p[1]; p += 2)
                if (!strcmp(p[0], label) && !strcmp(p[1], value))
                    match = true;
            if (match) {
                *pp = s->next;
                series_free(s);
            } else {
                pp = &s->next;
                f->tail = &s->next;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
}

void ofe_counter_add(struct ofe_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t ofe_counter_get(const struct ofe_counter *c)
{
    return c ? atomic_load_explicit(&((struct ofe_counter *)c)->v, memory_order_relaxed) : 0;
}

void ofe_gauge_set(struct ofe_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, d2b(v), memory_order_relaxed);
}

static void atomic_add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, d2b(b2d(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void ofe_gauge_add(struct ofe_gauge *g, double delta)
{
    if (g)
        atomic_add_double(&g->bits, delta);
}

double ofe_gauge_get(const struct ofe_gauge *g)
{
    return g ? b2d(atomic_load_explicit(&((struct ofe_gauge *)g)->bits, memory_order_relaxed))
             : 0.0;
}

void ofe_histogram_observe(struct ofe_histogram *h, double v)
{
    if (!h)
        return;
    size_t i = 0;
    while (i < h->nb && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

uint64_t ofe_histogram_count(const struct ofe_histogram *h)
{
    return h ? atomic_load_explicit(&((struct ofe_histogram *)h)->count, memory_order_relaxed) : 0;
}

static void put_double(struct ofe_buf *out, double v)
{
    if (isnan(v))
        ofe_buf_puts(out, "NaN");
    else if (isinf(v))
        ofe_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(int64_t)v && fabs(v) < 1e15)
        ofe_buf_printf(out, "%lld", (long long)v);
    else
        ofe_buf_printf(out, "%.17g", v);
}

static void put_name(struct ofe_buf *out, const char *name, const char *suffix, const char *labels,
                     const char *extra)
{
    ofe_buf_puts(out, name);
    ofe_buf_puts(out, suffix);
    bool l = labels && *labels, e = extra && *extra;
    if (l || e) {
        ofe_buf_putc(out, '{');
        if (l)
            ofe_buf_puts(out, labels);
        if (l && e)
            ofe_buf_putc(out, ',');
        if (e)
            ofe_buf_puts(out, extra);
        ofe_buf_putc(out, '}');
    }
    ofe_buf_putc(out, ' ');
}

int ofe_metrics_render(struct ofe_metrics *m, struct ofe_buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram", "gauge"};
    pthread_mutex_lock(&m->lock);
    for (struct family *f = m->families; f; f = f->next) {
        if (!f->series)
            continue;
        ofe_buf_printf(out, "# HELP %s ", f->name);
        for (const char *p = f->help; *p; p++) {
            if (*p == '\\')
                ofe_buf_puts(out, "\\\\");
            else if (*p == '\n')
                ofe_buf_puts(out, "\\n");
            else
                ofe_buf_putc(out, *p);
        }
        ofe_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->kind]);
        for (struct series *s = f->series; s; s = s->next) {
            switch (s->kind) {
            case K_COUNTER:
                if (!s->u.c)
                    break;
                put_name(out, f->name, "", s->labels, NULL);
                ofe_buf_printf(out, "%llu\n", (unsigned long long)ofe_counter_get(s->u.c));
                break;
            case K_GAUGE:
                if (!s->u.g)
                    break;
                put_name(out, f->name, "", s->labels, NULL);
                put_double(out, ofe_gauge_get(s->u.g));
                ofe_buf_putc(out, '\n');
                break;
            case K_GAUGE_FN:
                put_name(out, f->name, "", s->labels, NULL);
                put_double(out, s->fn ? s->fn(s->fn_arg) : 0.0);
                ofe_buf_putc(out, '\n');
                break;
            case K_HISTOGRAM: {
                struct ofe_histogram *h = s->u.h;
                if (!h)
                    break;
                uint64_t cum = 0;
                char le[64];
                for (size_t i = 0; i <= h->nb; i++) {
                    cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
                    if (i < h->nb) {
                        struct ofe_buf t = OFE_BUF_INIT;
                        put_double(&t, h->bounds[i]);
                        snprintf(le, sizeof(le), "le=\"%s\"", t.data ? t.data : "0");
                        ofe_buf_fini(&t);
                    } else {
                        snprintf(le, sizeof(le), "le=\"+Inf\"");
                    }
                    put_name(out, f->name, "_bucket", s->labels, le);
                    ofe_buf_printf(out, "%llu\n", (unsigned long long)cum);
                }
                put_name(out, f->name, "_sum", s->labels, NULL);
                put_double(out, b2d(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
                ofe_buf_putc(out, '\n');
                put_name(out, f->name, "_count", s->labels, NULL);
                ofe_buf_printf(out, "%llu\n", (unsigned long long)cum);
                break;
            }
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}
