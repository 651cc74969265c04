/* Prometheus metrics: a registry of counters, gauges and histograms, and the
 * text exposition format (version 0.0.4) for GET /metrics.
 *
 * A series is a metric name plus a label set. Getting a series creates it
 * on first use and returns the same pointer afterwards, so hot paths look a
 * series up once and keep the pointer. Updates are lock-free atomics and may
 * come from any thread; registration takes the registry lock. */
#ifndef OFE_METRICS_H
#define OFE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ofe/buf.h"

struct ofe_metrics;
struct ofe_counter;
struct ofe_gauge;
struct ofe_histogram;

/* Creates a registry. Returns NULL on allocation failure. */
struct ofe_metrics *ofe_metrics_new(void);
/* Frees the registry and every series; ofe_metrics_destroy(NULL) is a no-op.
 * No other thread may use its series any more. */
void ofe_metrics_destroy(struct ofe_metrics *m);

/* Series lookups. `name` is the full metric name (e.g.
 * "ofe_eventsource_events_received_total"); `help` is used the first time a
 * name is seen; `labels` is NULL or an even-length NULL-terminated list of
 * label name, value strings: (const char *[]){"source", "s1", NULL}. Values
 * are escaped on output. Return NULL only on allocation failure, and the
 * update functions accept NULL (and do nothing), so callers need no checks.
 * A name must always be used with the same kind and label names. */
struct ofe_counter *ofe_metrics_counter(struct ofe_metrics *m, const char *name, const char *help,
                                        const char *const *labels);
struct ofe_gauge *ofe_metrics_gauge(struct ofe_metrics *m, const char *name, const char *help,
                                    const char *const *labels);
/* `bounds` are the upper bounds of the buckets in increasing order (seconds
 * for latencies); +Inf is implicit. NULL uses a default latency set from
 * 100 us to 10 s. */
struct ofe_histogram *ofe_metrics_histogram(struct ofe_metrics *m, const char *name,
                                            const char *help, const char *const *labels,
                                            const double *bounds, size_t nbounds);
/* A gauge computed at scrape time by fn(arg) (e.g. pending entries of a
 * group). fn runs on the scraping thread with no registry lock held... it
 * must be thread-safe. Replaces an earlier function for the same series.
 * Returns 0 or OFE_ENOMEM. */
int ofe_metrics_gauge_fn(struct ofe_metrics *m, const char *name, const char *help,
                         const char *const *labels, double (*fn)(void *arg), void *arg);
/* Removes every series whose label `label` has value `value` (used when a
 * source or trigger is removed on reload). */
void ofe_metrics_remove_by_label(struct ofe_metrics *m, const char *label, const char *value);

void ofe_counter_add(struct ofe_counter *c, uint64_t n);
static inline void ofe_counter_inc(struct ofe_counter *c)
{
    ofe_counter_add(c, 1);
}
uint64_t ofe_counter_get(const struct ofe_counter *c);
void ofe_gauge_set(struct ofe_gauge *g, double v);
void ofe_gauge_add(struct ofe_gauge *g, double delta);
double ofe_gauge_get(const struct ofe_gauge *g);
void ofe_histogram_observe(struct ofe_histogram *h, double v);
uint64_t ofe_histogram_count(const struct ofe_histogram *h);

/* Appends the exposition text of every series to out. Returns 0 or
 * OFE_ENOMEM. */
int ofe_metrics_render(struct ofe_metrics *m, struct ofe_buf *out);

#endif
