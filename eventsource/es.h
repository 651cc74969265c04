/* Inside ofe-eventsource: the runtime that runs the events of EventSource
 * documents, the dispatch of each CloudEvent to the sink and/or the bus,
 * and the contract of a source kind (one file per kind, one registry
 * table in registry.c).
 *
 * A running event is a `struct es_source`. Its kind turns native messages
 * into CloudEvents and hands each to es_emit(); dispatch delivers it to
 * every destination (the EventSource's sink over HTTP, its bus topic
 * `{namespace}-{eventsource}-{event}`) and then calls the kind's done
 * function once, with the outcome. The kind acknowledges its input only
 * then (Kafka offset commit of the acked prefix, JetStream ack, MQTT
 * PUBACK, XACK), so a crash at any moment loses nothing.
 *
 * Bounded work: at most max_inflight events of a source are between
 * es_emit and done. Kinds fetch only while es_capacity() > 0, so a slow or
 * failing destination stops the fetching instead of growing a buffer.
 *
 * Retries: a sink attempt sequence (delivery policy: retry, backoff,
 * timeout) that ends on a retryable failure, or a bus publish that fails
 * (broker down, timed out), is started again after a capped backoff for as
 * long as the source runs ("redrive"), unless the kind says its caller
 * wants to know (webhook: the HTTP caller gets 503 and retries itself). A
 * destination that refuses the event for good (sink 400/401/403/413...,
 * bus: event too large) makes the outcome ES_REJECTED: logged, counted,
 * and the kind acknowledges the input anyway, so one poison message does
 * not stop the source (the EventSource schema has no dead letter). */
#ifndef OFE_ES_H
#define OFE_ES_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ofe/ce.h"
#include "ofe/config.h"
#include "ofe/offset_track.h"
#include "ofe/daemon.h"
#include "ofe/delivery.h"
#include "ofe/http_client.h"
#include "ofe/metrics.h"
#include "ofe/pubsub.h"

#define ES_COMPONENT "eventsource"

/* Outcome of one event, given to the kind's done function. */
enum es_result {
    ES_OK = 0,       /* every destination accepted it: acknowledge the input */
    ES_REJECTED = 1, /* a destination refused it for good: acknowledge anyway (counted) */
    ES_FAILED = 2,   /* not delivered (no redrive, or the source stopped): do not ack */
};

/* Called once per emitted event, on a dispatch thread (HTTP client or bus
 * backend), possibly inside es_emit itself. */
typedef void (*es_done_fn)(void *token, enum es_result r, const char *why);

struct es_source;
struct es_runtime;
struct es_cfgref;

/* Diagnostics of the kind-specific checks (--validate and start-up). */
struct es_diag {
    size_t nerrors;
    const char *component;
};

/* Reports an error about field `key` of block `node` (key NULL: the
 * block) as "FILE:LINE:COL: error: PATH.KEY: message". */
void es_diag_error(struct es_diag *d, const struct ofe_config_node *node, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Options of the daemon that kinds read. */
struct es_options {
    const char *state_dir; /* --state-dir (cron catch-up), NULL when not given */
    unsigned max_inflight; /* --max-inflight per source, 0 = the kind's default */
    uint32_t drain_ms;     /* --drain-timeout */
    const char *instance;  /* --instance / $OFE_INSTANCE: stable replica name, or NULL */
};

/* A source kind. Every function runs on the main thread unless said. */
struct es_kind {
    const char *name; /* "kafka", ... as in the config (ofe_config_event.kind_name) */
    enum ofe_config_source_kind kind;
    /* true: a failing destination is retried until it accepts (the input
     * waits unacknowledged); false: done gets ES_FAILED after the sink's
     * retries (the caller retries itself). */
    bool redrive;
    unsigned default_inflight;
    /* Checks what the config loader cannot (cron expressions, URLs,
     * unsupported options, native client options); reports with
     * es_diag_error. May be NULL. */
    void (*check)(const struct ofe_config_eventsource *es, const struct ofe_config_event *ev,
                  const struct es_options *o, struct es_diag *d);
    /* Starts taking input (own threads or the client library's). The
     * source's config stays valid until destroy. Returns 0 or an OFE_E*
     * code with errstr. */
    int (*start)(struct es_source *s, void **ctx, char *errstr, size_t errstr_size);
    /* Stops taking input; events already emitted still complete and are
     * acknowledged through done. Returns promptly. */
    void (*stop)(void *ctx);
    /* Every emitted event has completed: commits what is acked, closes
     * connections, frees ctx. */
    void (*destroy)(void *ctx);
    /* Connected and consuming; else why says what is missing. Any thread. */
    bool (*ready)(void *ctx, char *why, size_t why_size);
};

/* The registry (registry.c). */
extern const struct es_kind *const es_kinds[];
const struct es_kind *es_kind_find(enum ofe_config_source_kind k);

/* One destination of a source (sink or bus), with its metrics. */
struct es_dest {
    const char *label; /* "sink" or "bus" */
    struct ofe_counter *delivered, *failed, *retried, *rejected;
    struct ofe_histogram *latency;
};

/* A running event. Fields above the line are for kinds to read. */
struct es_source {
    const struct es_kind *kind;
    const struct ofe_config *config; /* the whole configuration es came from */
    const struct ofe_config_eventsource *es;
    const struct ofe_config_event *ev;
    const char *name;      /* "{namespace}/{eventsource}/{event}": log instance, metric label */
    const char *ce_source; /* the CloudEvents `source` of native messages */
    const struct es_options *opts;
    struct ofe_metrics *metrics;
    /* ------------------------------------------------------------------ */
    struct es_runtime *rt;
    struct es_cfgref *cfg;
    char *name_buf, *ce_source_buf;
    void *kctx;
    bool started, stopped;
    /* dispatch */
    struct ofe_sender *sender; /* NULL: no sink */
    char *sink_url;
    struct ofe_delivery_policy policy;
    struct ofe_bus *bus; /* NULL: no bus */
    const char *topic;
    uint64_t bus_fp;
    int bus_kind;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned inflight, max_inflight;
    atomic_bool abandon; /* stop redriving: complete what is left as ES_FAILED */
    atomic_bool sink_down;
    char sink_why[256];
    struct es_dest d_sink, d_bus;
    struct ofe_counter *m_received, *m_invalid, *m_acked, *m_dropped;
    struct ofe_gauge *g_inflight, *g_paused;
    /* rate limit of bad-input log lines */
    uint64_t invalid_window_ms;
    unsigned invalid_logged, invalid_suppressed;
    uint64_t warn_at_ms; /* rate limit of delivery warnings */
    unsigned warn_suppressed;
    struct es_source *next;
};

/* ---- for kinds ----------------------------------------------------------- */

/* Flags of es_emit. */
#define ES_EMIT_FORCE 0x1u /* take it even above max_inflight (input already read) */

/* Hands ev (a reference is taken) to every destination. Returns 0 (done
 * will run exactly once, maybe before es_emit returns), OFE_EAGAIN (no
 * capacity and no ES_EMIT_FORCE; done is not called) or OFE_ECLOSED (the
 * source is stopping; done is not called). Any thread. */
int es_emit(struct es_source *s, struct ofe_ce *ev, unsigned flags, es_done_fn done, void *token);

/* Room under max_inflight now (0 while stopping). Any thread. */
unsigned es_capacity(struct es_source *s);
/* Waits until capacity > 0, stop, or timeout_ms. Returns the capacity. */
unsigned es_wait_capacity(struct es_source *s, int timeout_ms);

/* Logs (rate limited) and counts a message that could not become a valid
 * CloudEvent. The kind acknowledges it afterwards. Any thread. */
void es_invalid(struct es_source *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Counts an input acknowledgement (for metrics and tests). */
void es_count_acked(struct es_source *s, unsigned n);

/* The HTTP client of the daemon, for timers (ofe_http_client_later). */
struct ofe_http_client *es_http_client(struct es_source *s);

/* ---- building CloudEvents of native messages (mapping.c) ----------------- */

/* A new event with specversion, id, source (s->ce_source), type, subject
 * (may be NULL), time (Unix ms, < 0: now) and data. content_type NULL:
 * guessed from the bytes (es_guess_content_type); no data (data NULL)
 * leaves datacontenttype unset. Returns 0 or OFE_EINVAL/OFE_ENOMEM with
 * errstr. */
int es_ce_native(struct es_source *s, const char *type, const char *id, const char *subject,
                 int64_t time_ms, const char *content_type, const void *data, size_t len,
                 struct ofe_ce **out, char *errstr, size_t errstr_size);

/* "application/json" for a JSON text, "text/plain; charset=utf-8" for
 * UTF-8 text without control characters other than tab, CR, LF, else
 * "application/octet-stream". */
const char *es_guess_content_type(const void *data, size_t len);
bool es_utf8_valid(const void *data, size_t len);
/* RFC 3339 UTC with milliseconds, "2024-05-01T10:00:00.123Z" (buf >= 32). */
char *es_time_format(int64_t ms, char *buf, size_t size);
/* Random UUID v4 text (buf >= 37). */
char *es_uuid(char *buf, size_t size);
/* Wall clock, Unix ms. */
int64_t es_now_ms(void);
uint64_t es_mono_ms(void);
/* Lower-case hex of the first n bytes of SHA-256(data parts). */
void es_sha256_hex(const void *const *parts, const size_t *lens, size_t nparts, char *out,
                   size_t nhex);

/* True when a header list carries a CloudEvent in binary mode (a header
 * `<prefix>specversion`, any case) or structured mode (content type
 * application/cloudevents...). ct may be NULL. */
bool es_looks_like_ce(const struct ofe_hdrs *h, const char *prefix, const char *ct, size_t ct_len);

/* Extra diagnostics form: at a given position and path. */
void es_diag_error_at(struct es_diag *d, const struct ofe_config_pos *pos, const char *path,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- the runtime (runtime.c) --------------------------------------------- */

struct es_runtime_opts {
    struct ofe_metrics *metrics;
    struct es_options opts;
    /* Tests: every source publishes to this bus instead of resolving its
     * eventBus (not owned). */
    struct ofe_bus *bus_override;
};

struct es_runtime *es_runtime_new(const struct es_runtime_opts *o, char *errstr,
                                  size_t errstr_size);
/* Runs the events of cfg (taking ownership of it): starts new events,
 * stops removed ones, restarts changed ones (EventSource document or its
 * bus changed), keeps the rest running. Returns the number of events that
 * failed to start (each logged). */
size_t es_runtime_apply(struct es_runtime *rt, struct ofe_config *cfg);
/* Housekeeping from the main loop: frees stopped sources whose last event
 * completed. */
void es_runtime_tick(struct es_runtime *rt);
bool es_runtime_ready(void *rt, char *why, size_t why_size);
/* Number of running sources. */
size_t es_runtime_count(struct es_runtime *rt);
/* Finds a running source by name (tests). */
struct es_source *es_runtime_find(struct es_runtime *rt, const char *name);
/* Stops every source, drains up to drain_ms, fails the rest (their input
 * stays unacknowledged), closes buses and frees. NULL is a no-op. */
void es_runtime_destroy(struct es_runtime *rt);

/* Checks every event of cfg with its kind's check (and the sink URLs).
 * Returns the number of errors (each logged). */
size_t es_check_config(const struct ofe_config *cfg, const struct es_options *o);

/* ---- dispatch (dispatch.c), used by the runtime --------------------------- */

int es_dispatch_init(struct es_source *s, struct ofe_http_client *hc, struct ofe_bus *bus,
                     char *errstr, size_t errstr_size);
void es_dispatch_fini(struct es_source *s);
/* Waits until inflight is 0 or deadline (mono ms). Returns the inflight left. */
unsigned es_dispatch_wait_idle(struct es_source *s, uint64_t deadline_ms);
unsigned es_inflight(struct es_source *s);

#endif
