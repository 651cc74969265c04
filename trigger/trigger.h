/* ofe-trigger internals: how the files of trigger/ fit together.
 *
 *   main.c        the daemon: command line, config, signals, reload, drain
 *   runtime.c     the set of running triggers; apply a config (start new,
 *                 restart changed, stop removed, keep unchanged); drain
 *   trigger.c     one Trigger document: build from the config, start
 *                 (metrics, subscription), stop
 *   input.c       a bus message arrives: inputs and windows, filters and
 *                 conditions per subscriber, one job per matching subscriber;
 *                 ack or nack once every job is finished
 *   window.c      condition windows (an input is true for a while after
 *                 its last event)
 *   filter.c      `filter` (CESQL) and Knative `filters` dialects
 *   dispatch.c    per subscriber: concurrency limit and the queue of jobs
 *   ordering.c    per subscriber with `ordering: ordered`: one job in
 *                 flight per partition key, in arrival order
 *   deliver.c     one job: sink (HTTP), topic re-publish, outcome
 *   reply.c       reply events to replyTopic and the loop guard (ofettl)
 *   deadletter.c  dead-letter events (ofeerror* extensions) to the
 *                 dead-letter sink and topic; invalid bus messages
 *   tmetrics.c    the trigger's metric series
 *
 * Threads: bus messages arrive on backend threads (input.c); HTTP
 * completions run on the HTTP client thread; publish completions on bus
 * threads. A job may finish on any of them. Shared state is guarded by the
 * subscriber lock (dispatch/ordering queues) or atomics (counters,
 * windows, reference counts). */
#ifndef OFE_TRIGGER_H
#define OFE_TRIGGER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ofe/ce.h"
#include "ofe/cesql.h"
#include "ofe/config.h"
#include "ofe/delivery.h"
#include "ofe/http_client.h"
#include "ofe/metrics.h"
#include "ofe/pubsub.h"

#define TRG_COMPONENT "trigger"

/* The loop guard: an Integer extension carried by every event the trigger
 * puts back on a bus (re-publish to `topic`, replies to `replyTopic`).
 * An event without it counts as TRG_TTL_DEFAULT (see docs/trigger.md). */
#define TRG_TTL_EXT     "ofettl"
#define TRG_TTL_DEFAULT 16

/* Dead-letter extensions. */
#define TRG_ERR_DEST     "ofeerrordest"
#define TRG_ERR_CODE     "ofeerrorcode"
#define TRG_ERR_DATA     "ofeerrordata"
#define TRG_ERR_DATA_MAX 1024 /* bytes of ofeerrordata at most */

/* The CloudEvent type of the wrapper of an invalid bus message. */
#define TRG_INVALID_TYPE "dev.ofevents.trigger.invalid"

/* Events without a partitionkey extension share this key in ordered mode. */
#define TRG_NO_KEY ""

/* ---- bus access --------------------------------------------------------- */

/* Where buses come from: the daemon's ofe_busset, or memory buses in unit
 * tests. get returns 0 and a bus reference, or an OFE_E* code with errstr;
 * put drops the reference. */
struct trg_buses {
    int (*get)(void *arg, const struct ofe_config_busdesc *d, struct ofe_bus **out, char *errstr,
               size_t errstr_size);
    void (*put)(void *arg, struct ofe_bus *b);
    void *arg;
};

/* ---- the runtime --------------------------------------------------------- */

struct trg_runtime_opts {
    struct ofe_metrics *metrics; /* not owned; may be NULL */
    struct trg_buses buses;
    unsigned max_inflight;      /* bus messages held per trigger; 0 = 1024 */
    uint32_t drain_ms;          /* SIGTERM / reload: wait this long for in-flight work */
    int ttl_default;            /* loop guard start value; 0 = TRG_TTL_DEFAULT */
    const char *consumer;       /* member name in consumer groups; NULL = bus client id */
    unsigned http_max_inflight; /* HTTP transfers at once per client; 0 = 1024 */
    unsigned http_threads;      /* HTTP clients (threads) per trigger; 0 = 1 */
    bool no_jitter;             /* tests: exact backoff schedule (no full jitter) */
};

struct trg_runtime;

/* Creates a runtime (and its HTTP client). NULL with errstr on failure. */
struct trg_runtime *trg_runtime_new(const struct trg_runtime_opts *o, char *errstr,
                                    size_t errstr_size);

/* Runs the triggers of cfg (ownership of cfg moves to the runtime, also on
 * error). First use: starts every trigger. Later (reload): unchanged
 * triggers (same document, same resolved bus) keep running untouched;
 * changed ones are rebuilt, and replaced only when the new one builds (else
 * the old one keeps running and the error is logged); removed ones are
 * drained and stopped. Returns 0 when every trigger of cfg runs, else the
 * first error (every problem is logged). */
int trg_runtime_apply(struct trg_runtime *rt, struct ofe_config *cfg, char *errstr,
                      size_t errstr_size);

/* True when every trigger runs and its bus is ready; else why says what
 * is not. Any thread. */
bool trg_runtime_ready(struct trg_runtime *rt, char *why, size_t why_size);

/* Stops taking messages, waits up to drain_ms for work in flight, gives
 * back (unacked) whatever is left, and frees everything. NULL is a no-op. */
void trg_runtime_destroy(struct trg_runtime *rt);

/* Number of triggers running (tests). */
size_t trg_runtime_count(struct trg_runtime *rt);
/* The running instance of a trigger, or NULL (tests: an unchanged trigger
 * keeps its instance across a reload). */
const void *trg_runtime_instance(struct trg_runtime *rt, const char *ns, const char *name);

/* ---- internal structures ----------------------------------------------- */

struct trg_cfgref; /* a config shared by the triggers built from it */

struct trg_filter; /* compiled filter + filters of one subscriber */

struct trg_sub_metrics {
    struct ofe_counter *received, *filtered, *cond_false, *delivered, *retried, *deadlettered,
        *dropped, *republished, *replies, *loop_guard, *filter_errors;
    struct ofe_gauge *inflight, *queued;
    struct ofe_histogram *latency;
};

struct trg_keyq; /* ordering.c */

struct trg_job;

struct trg_subscriber {
    struct trg_trigger *t;
    const struct ofe_config_subscriber *cfg;
    const char *name;
    struct trg_filter *filter; /* NULL: everything passes */
    const struct ofe_condition *cond;
    char *sink_url, *dls_url;        /* NULL when absent */
    struct ofe_sender **sink, **dls; /* one per HTTP client (lane); NULL when absent */
    atomic_uint next_lane;
    const char *topic, *dlt, *reply_topic; /* point into cfg; NULL when absent */
    bool ordered;
    unsigned concurrency;

    pthread_mutex_t lock; /* the queues below */
    unsigned running;     /* jobs started and not finished */
    unsigned queued;
    struct trg_job *q_head, *q_tail; /* unordered: waiting for a slot */
    /* ordered: keyed queues (ordering.c) */
    struct trg_keyq **buckets;
    size_t nbuckets, nkeys;
    struct trg_keyq *ready_head, *ready_tail; /* keys with work, waiting for a slot */
    bool pumping, repump;

    struct trg_sub_metrics m;
};

struct trg_input {
    const char *name;         /* input name (condition operand) */
    const char *topic;        /* bus topic */
    size_t index;             /* in the trigger's input list = condition index */
    _Atomic uint64_t last_ns; /* arrival of the last event (monotonic), 0 = never */
    struct ofe_counter *received;
};

struct trg_trigger {
    struct trg_runtime *rt;
    struct trg_cfgref *cfg;
    const struct ofe_config_trigger *doc;
    char *id;                          /* "namespace/name" for logs and metrics */
    struct ofe_config_busdesc busdesc; /* pointers into cfg */
    struct ofe_bus *bus;
    struct ofe_sub *sub;
    struct ofe_http_client **http; /* the trigger's own: stopping them cancels its sends */
    unsigned nhttp;                /* lanes: jobs spread over the clients' threads */
    char **topics;                 /* distinct input topics */
    size_t ntopics;
    struct trg_input *inputs;
    size_t ninputs;
    struct trg_subscriber *subs;
    size_t nsubs;
    uint64_t window_ns;

    pthread_mutex_t lock; /* held / drained */
    pthread_cond_t cond;
    unsigned held;              /* bus messages not yet acked or nacked */
    pthread_rwlock_t http_lock; /* aborting (writer) vs. submissions to http (readers) */
    atomic_bool aborting;       /* give back instead of finishing (forced stop) */

    struct ofe_counter *m_invalid, *m_invalid_dropped, *m_acked, *m_nacked;
    struct ofe_gauge *m_held;
    struct trg_trigger *next; /* runtime list */
};

/* One bus message in process. */
struct trg_msg {
    struct trg_trigger *t;
    struct ofe_msg *msg;
    atomic_int refs;       /* one per job, plus one during fan-out */
    atomic_bool again;     /* some job wants the message redelivered */
    atomic_bool give_back; /* abandoned: redeliver without counting a failure */
    _Atomic uint32_t again_ms;
    uint64_t t0_ns; /* arrival */
};

enum trg_job_kind { TRG_JOB_EVENT = 0, TRG_JOB_INVALID };

/* One delivery of one message to one subscriber. */
struct trg_job {
    struct trg_job *next; /* queue link */
    enum trg_job_kind kind;
    struct trg_subscriber *s;
    struct trg_msg *m;
    struct ofe_ce *ev; /* owned reference; for TRG_JOB_INVALID: the wrapper */
    char *key;         /* ordered mode: the partition key */
    struct trg_keyq *kq;
    unsigned lane;         /* HTTP client of this job */
    bool slotted;          /* counted in s->running */
    atomic_int pending;    /* destinations outstanding (+1 while starting) */
    atomic_bool again;     /* redeliver the message later (transient failure) */
    atomic_bool give_back; /* stopping: give the message back untouched */
    bool sink_ok;
    bool dl_started; /* the sink failed and dead letters were sent */
    atomic_int dl_ok, dl_perm;
};

/* runtime.c */
const struct trg_runtime_opts *trg__opts(struct trg_runtime *rt);
const struct ofe_config *trg__cfg_of(const struct trg_cfgref *c);
struct ofe_metrics *trg__metrics(struct trg_runtime *rt);
uint64_t trg__now_ns(void);

/* trigger.c: build (no side effects on buses' subscriptions), start,
 * stop (drain up to drain_ms, then give back), free. */
int trg_trigger_build(struct trg_runtime *rt, struct trg_cfgref *cfg,
                      const struct ofe_config_trigger *doc, struct trg_trigger **out, char *errstr,
                      size_t errstr_size);
int trg_trigger_start(struct trg_trigger *t, char *errstr, size_t errstr_size);
void trg_trigger_stop(struct trg_trigger *t, uint32_t drain_ms);
void trg_trigger_free(struct trg_trigger *t);
/* Subscriptions closed, waits for held messages up to drain_ms. Returns
 * true when none is left. */
bool trg_trigger_wait_idle(struct trg_trigger *t, uint32_t drain_ms);

/* tmetrics.c */
void trg_metrics_trigger(struct trg_trigger *t);
void trg_metrics_subscriber(struct trg_subscriber *s);
void trg_metrics_forget(struct ofe_metrics *m, const char *trigger_id);

/* input.c: the subscription handler */
void trg_input_on_msg(struct ofe_msg *msg, void *opaque);
/* Drops a job's reference on its message; acks or nacks at the last. */
void trg_msg_unref(struct trg_msg *m);

/* window.c */
void trg_window_mark(struct trg_trigger *t, const char *topic, uint64_t now_ns);
bool trg_window_holds(const struct trg_trigger *t, const struct ofe_condition *c, uint64_t now_ns);

/* filter.c */
int trg_filter_build(const struct ofe_config_subscriber *cfg, struct trg_filter **out, char *errstr,
                     size_t errstr_size);
/* True when the event passes. Counts CESQL evaluation errors (logged at
 * debug level, with the error kind). */
bool trg_filter_match(const struct trg_filter *f, const struct ofe_ce *ev,
                      struct ofe_counter *errors, const char *who);
void trg_filter_free(struct trg_filter *f);

/* dispatch.c */
void trg_dispatch_init(struct trg_subscriber *s);
void trg_dispatch_fini(struct trg_subscriber *s);
/* Queues a job; it starts when the subscriber has a free slot (and, when
 * ordered, its key has nothing in flight). */
void trg_dispatch_submit(struct trg_job *j);
/* A started job finished: frees its slot, starts what waits. */
void trg_dispatch_done(struct trg_job *j);
/* Gives back every queued job (forced stop). */
void trg_dispatch_flush(struct trg_subscriber *s);

/* ordering.c (called with s->lock held) */
int trg_order_push(struct trg_subscriber *s, struct trg_job *j);
struct trg_job *trg_order_next(struct trg_subscriber *s);
void trg_order_release(struct trg_subscriber *s, struct trg_job *j);
struct trg_job *trg_order_take_all(struct trg_subscriber *s);
void trg_order_fini(struct trg_subscriber *s);

/* deliver.c */
struct trg_job *trg_job_new(struct trg_subscriber *s, struct trg_msg *m, enum trg_job_kind kind,
                            struct ofe_ce *ev);
void trg_job_start(struct trg_job *j);
/* One destination of the job finished. */
void trg_job_part_done(struct trg_job *j);
/* Finishes a job that never started (forced stop): the message is given
 * back. */
void trg_job_give_back(struct trg_job *j);
void trg_job_free(struct trg_job *j);
/* Sends ev through sender s of the job's trigger, unless the trigger is
 * aborting (OFE_ECLOSED then). Same results as ofe_sender_send. */
int trg_http_send(struct trg_trigger *t, struct ofe_sender *s, struct ofe_ce *ev,
                  ofe_send_done_fn done, ofe_send_retry_fn on_retry, void *opaque, char *errstr,
                  size_t errstr_size);
/* Runs fn(opaque) on the trigger's HTTP client thread after delay_ms.
 * Returns 0, or OFE_ECLOSED when the trigger is aborting. */
int trg_http_later(struct trg_trigger *t, unsigned lane, uint32_t delay_ms,
                   void (*fn)(void *opaque), void *opaque);

/* reply.c */
/* Returns a copy of ev carrying the decremented loop guard, or NULL when
 * the guard is exhausted (*exhausted true) or memory is short. src is the
 * event whose TTL counts (the incoming event). */
struct ofe_ce *trg_ttl_next(struct trg_runtime *rt, const struct ofe_ce *src,
                            const struct ofe_ce *ev, bool *exhausted);
/* Publishes a reply (one more part of the job); reply is borrowed. */
void trg_reply_publish(struct trg_job *j, const struct ofe_ce *reply);
/* Re-publishes the job's event to the subscriber's topic (one more part). */
void trg_republish(struct trg_job *j);

enum trg_pub_kind { TRG_PUB_TOPIC = 0, TRG_PUB_REPLY, TRG_PUB_DLT };
/* Publishes ev (a reference is taken) to topic on the trigger's bus as one
 * more part of j; retries while the bus pushes back; the outcome lands in
 * the job (counters, again, dl_ok/dl_perm). */
void trg_publish(struct trg_job *j, const char *topic, struct ofe_ce *ev, enum trg_pub_kind kind);

/* deadletter.c */
/* The sink failed for good: dead-letter the job's event (or count it as
 * dropped), then finish that part. */
void trg_deadletter(struct trg_job *j, int code, const char *data, size_t data_len,
                    const char *reason);
/* Builds the wrapper event of an invalid bus message (docs/trigger.md). */
struct ofe_ce *trg_invalid_wrapper(const struct trg_trigger *t, const struct ofe_msg *msg);
/* Sanitised, bounded excerpt for ofeerrordata. Returns a malloc'd string. */
char *trg_excerpt(const void *data, size_t len);

#endif
