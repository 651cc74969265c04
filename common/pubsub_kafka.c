/* The kafka backend (librdkafka).
 *
 * Publishing: one idempotent producer per bus (acks=all,
 * enable.idempotence=true, message.timeout.ms = the bus's publish
 * timeout). An event becomes one record in the Kafka binding's binary mode
 * (`ce_` headers, content-type, value = data, key = the `partitionkey`
 * extension, plus the `ofe-cetypes` type hints). A publish completes from
 * the delivery report: confirmed by every in-sync replica, or failed with
 * the reason (timed out, too large, not authorised, closed). A thread polls
 * the producer for the reports. A fatal producer error (idempotence state
 * lost) fails what was waiting and replaces the producer.
 *
 * Subscribing: one consumer per subscription, group.id = the
 * subscription's group (or consumerGroup when the bus sets one), automatic
 * commits off. A new group starts at initialOffset when it is written,
 * else at the oldest offset. A thread reads batches of at most the
 * subscription's free capacity and delivers them in partition order. Each
 * assigned partition has an offset tracker (kafka_member.h, shared with the
 * kafka source): acks move its commit point over the acked prefix only,
 * and the thread commits moved points at most every
 * auto.commit.interval.ms (100 ms by default), on revocation and on close. An offset acked above an
 * unacked one waits for the gap to close, so a crash redelivers from the first unacked message.
 *
 * Backpressure: when the subscription has no capacity for 100 ms, every
 * assigned partition is paused (librdkafka drops what it prefetched and
 * refetches from the delivered position on resume) and the thread keeps
 * polling, so rebalances are served and the member stays in the group.
 * Offsets acked behind an unacked one count against a bound too.
 *
 * Rebalances (eager by default, cooperative when partition.assignment.
 * strategy says so): on revocation the member first lets the messages it
 * delivered from the revoked partitions be acked (up to 10 s; the group
 * waits for it meanwhile), commits the acked prefix synchronously and drops
 * their trackers; acks that arrive later are ignored, and those messages
 * go to the new owner again. When the group refuses that commit (the
 * rebalance has begun) and the partition comes back to this member, it
 * resumes at its own acked point (kafka_resume.h), not at the stale
 * committed offset. Lost partitions (session expired) are given up at
 * once, without a commit.
 *
 * Nack: the core's local delayed redelivery (ops->nack is NULL): the
 * message stays unacked at the broker and holds its partition's commit
 * point until it is acked, so a crash meanwhile redelivers it.
 *
 * Closing a subscription stops delivery and pauses; the consumer stays in
 * the group and keeps committing acks of messages already delivered until
 * every one is resolved (or the bus closes), then commits and leaves.
 *
 * Readiness: from the producer's statistics (a broker connection is UP),
 * its error events (all brokers down, authentication) and delivery
 * reports. It says nothing of group membership: a new subscription
 * receives once its group join completes (a new group waits
 * group.initial.rebalance.delay.ms, 3 s by default, for more members). Connecting and reconnecting
 * are librdkafka's own (backoff between reconnect.backoff.ms and reconnect.backoff.max.ms). Gauge
 * ofe_bus_consumer_lag{backend,group,topic} from the consumer statistics. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "ofe/config.h"
#include "ofe/kafka_member.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "pubsub_int.h"
#include "pubsub_kafka_int.h"

#define BATCH_MAX 256
/* Offsets delivered and tracked (acked behind an unacked one, or in
 * flight) per subscription before fetching stops. */
#define TRACK_MAX 100000
/* Topics whose metadata the producer looks up as soon as they are first
 * published to; past that, librdkafka finds them on its own (within 1 s). */
#define KNOWN_MAX 1024
/* How long a revocation waits for the messages delivered from the revoked
 * partitions to be acked. */
#define REVOKE_WAIT_MS 10000

/* Connection state of one client handle, fed by its callbacks. */
struct kstate {
    pthread_mutex_t lock;
    bool up;        /* a broker connection is up (statistics, delivery) */
    bool seen;      /* statistics or a delivery report arrived */
    bool auth;      /* the last error was an authentication failure */
    char why[400];  /* why not up: "connecting to ...", "all brokers are down", ... */
    char last[320]; /* the last connection error librdkafka reported */
    const char *component;
    const char *instance;
};

struct kbus {
    struct kstate st; /* first: the callbacks' opaque */
    struct ofe_bus *bus;
    /* The options are copied at open (the config may go away): into these
     * two templates and the fields below. */
    rd_kafka_conf_t *pconf; /* producer configuration */
    rd_kafka_conf_t *cconf; /* consumer configuration, group.id still to set */
    bool client_id_fixed;   /* clientID or rdkafka.client.id given: not per member */
    char *brokers;
    char *group;    /* consumerGroup: every subscription's group when set */
    rd_kafka_t *rk; /* the producer */
    pthread_rwlock_t rk_lock;
    pthread_t poller;
    atomic_bool stop;
    atomic_bool fatal;
    atomic_long outstanding; /* produced, report not yet seen */
    size_t max_bytes;
    uint32_t timeout_ms;
    char describe[320];
    /* Topics published to (up to KNOWN_MAX); the new ones wait in lookup
     * for the poller to fetch their metadata. */
    pthread_mutex_t topics_lock;
    char **known, **lookup;
    size_t nknown, nlookup;
    uint64_t last_probe;
};

struct kpriv {
    struct ofe_kafka_part *tr;
    uint64_t seq;
};

struct klag {
    struct klag *next;
    char *topic;
    struct ofe_gauge *g;
};

struct ksub {
    struct kstate st; /* first: the callbacks' opaque */
    struct kbus *k;
    struct ofe_sub *sub;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    pthread_t thr;
    atomic_bool exit;
    pthread_mutex_t lock; /* the member's parts, flags below */
    pthread_cond_t cond;
    struct ofe_kafka_member m; /* partitions, offsets, commits */
    bool stopping, delivering;
    char *group;
    struct klag *lags;
    bool closing; /* leaving the group: revocation does not wait */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- callbacks shared by producer and consumers ------------------------- */

static void state_set(struct kstate *st, bool up, const char *why)
{
    pthread_mutex_lock(&st->lock);
    st->up = up;
    st->seen = true;
    if (up)
        st->auth = false;
    if (why)
        snprintf(st->why, sizeof(st->why), "%s", why);
    pthread_mutex_unlock(&st->lock);
}

/* Why the handle is not up, with the last connection error. Takes the
 * lock. */
static void state_why(struct kstate *st, char *buf, size_t size)
{
    pthread_mutex_lock(&st->lock);
    if (st->last[0] && !st->auth)
        snprintf(buf, size, "%.380s (%.300s)", st->why, st->last);
    else
        snprintf(buf, size, "%.380s", st->why);
    pthread_mutex_unlock(&st->lock);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct kstate *st = rd_kafka_opaque(rk);
    enum ofe_log_level l = level <= 4 ? OFE_LOG_WARN : level <= 6 ? OFE_LOG_INFO : OFE_LOG_DEBUG;
    /* rdkafka.* options go to producer and consumers alike: that each
     * ignores the other's properties is expected. */
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "property and will be ignored by this"))
        l = OFE_LOG_DEBUG;
    if (ofe_log_enabled(l))
        ofe_log(l, st ? st->component : "kafka", st ? st->instance : NULL, "librdkafka %s: %s", fac,
                buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kstate *st = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        OFE_ERROR(st->component, st->instance, "kafka: fatal error: %s: %s",
                  rd_kafka_err2name(orig), buf);
        if (rd_kafka_type(rk) == RD_KAFKA_PRODUCER)
            atomic_store(&((struct kbus *)opaque)->fatal, true);
        return;
    }
    switch (err) {
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN: {
        pthread_mutex_lock(&st->lock);
        bool was = st->up || !st->seen;
        pthread_mutex_unlock(&st->lock);
        state_set(st, false, "all brokers are down");
        if (was) { /* once per outage */
            char why[720];
            state_why(st, why, sizeof(why));
            OFE_WARN(st->component, st->instance, "kafka: %s", why);
        }
        return;
    }
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__SSL: {
        char why[384];
        snprintf(why, sizeof(why), "authentication failed: %s", reason);
        state_set(st, false, why);
        pthread_mutex_lock(&st->lock);
        st->auth = true;
        pthread_mutex_unlock(&st->lock);
        OFE_ERROR(st->component, st->instance, "kafka: %s", why);
        return;
    }
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
        /* One broker is unreachable; readiness changes only when all are. */
        pthread_mutex_lock(&st->lock);
        snprintf(st->last, sizeof(st->last), "%s", reason);
        pthread_mutex_unlock(&st->lock);
        OFE_DEBUG(st->component, st->instance, "kafka: %s", reason);
        return;
    default:
        OFE_WARN(st->component, st->instance, "kafka: %s: %s", rd_kafka_err2name(err), reason);
        return;
    }
}

/* Readiness from the statistics: UP when any broker connection is up. */
static void stats_brokers(struct kstate *st, json_t *root)
{
    json_t *brokers = json_object_get(root, "brokers");
    const char *name;
    json_t *b;
    bool up = false;
    json_object_foreach(brokers, name, b)
    {
        const char *source = json_string_value(json_object_get(b, "source"));
        const char *state = json_string_value(json_object_get(b, "state"));
        if (source && !strcmp(source, "internal"))
            continue;
        if (state && !strcmp(state, "UP"))
            up = true;
    }
    pthread_mutex_lock(&st->lock);
    bool was = st->up;
    st->seen = true;
    if (up) {
        st->up = true;
        st->auth = false;
    } else if (was) {
        st->up = false;
        snprintf(st->why, sizeof(st->why), "no broker connection is up");
    }
    pthread_mutex_unlock(&st->lock);
}

static struct ofe_gauge *lag_gauge(struct ksub *ks, const char *topic)
{
    for (struct klag *l = ks->lags; l; l = l->next)
        if (!strcmp(l->topic, topic))
            return l->g;
    struct klag *l = calloc(1, sizeof(*l));
    if (!l || !(l->topic = strdup(topic))) {
        free(l);
        return NULL;
    }
    const char *labels[] = {"backend", "kafka", "group", ks->group, "topic", topic, NULL};
    l->g = ofe_metrics_gauge(ofe_bus__metrics(ks->k->bus), "ofe_bus_consumer_lag",
                             "Messages of the assigned partitions not yet committed by the group",
                             labels);
    l->next = ks->lags;
    ks->lags = l;
    return l->g;
}

static void stats_lag(struct ksub *ks, json_t *root)
{
    json_t *topics = json_object_get(root, "topics");
    const char *tname, *pname;
    json_t *t, *p;
    json_object_foreach(topics, tname, t)
    {
        double lag = 0;
        bool any = false;
        json_object_foreach(json_object_get(t, "partitions"), pname, p)
        {
            json_t *l = json_object_get(p, "consumer_lag");
            if (!strcmp(pname, "-1") || !json_is_true(json_object_get(p, "desired")) ||
                !json_is_integer(l) || json_integer_value(l) < 0)
                continue;
            lag += (double)json_integer_value(l);
            any = true;
        }
        if (any)
            ofe_gauge_set(lag_gauge(ks, tname), lag);
    }
}

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!root)
        return 0;
    stats_brokers(opaque, root);
    if (rd_kafka_type(rk) == RD_KAFKA_CONSUMER)
        stats_lag(opaque, root);
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static void set_callbacks(rd_kafka_conf_t *c, struct kstate *st)
{
    rd_kafka_conf_set_opaque(c, st);
    rd_kafka_conf_set_log_cb(c, on_log);
    rd_kafka_conf_set_error_cb(c, on_error);
    rd_kafka_conf_set_stats_cb(c, on_stats);
}

static void state_init(struct kstate *st, const char *component, const char *instance,
                       const char *brokers)
{
    pthread_mutex_init(&st->lock, NULL);
    st->component = component;
    st->instance = instance;
    snprintf(st->why, sizeof(st->why), "connecting to %s", brokers);
}

/* ---- producer ------------------------------------------------------------ */

static int map_produce_err(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
        return OFE_ECLOSED;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return OFE_ETIMEDOUT;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
        return OFE_EINVAL;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        return OFE_EAUTH;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return OFE_ENOENT;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return OFE_EAGAIN;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        return OFE_ECONN;
    default:
        return OFE_EREMOTE;
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kbus *k = opaque;
    struct ofe_pub *p = m->_private;
    if (!m->err) {
        pthread_mutex_lock(&k->st.lock);
        k->st.up = k->st.seen = true;
        pthread_mutex_unlock(&k->st.lock);
        ofe_pub__done(p, 0, NULL);
    } else {
        char msg[1100];
        int code = map_produce_err(m->err);
        const char *topic = rd_kafka_topic_name(m->rkt);
        if (code == OFE_ETIMEDOUT) {
            pthread_mutex_lock(&k->st.lock);
            bool up = k->st.up, auth = k->st.auth;
            pthread_mutex_unlock(&k->st.lock);
            char why[720];
            state_why(&k->st, why, sizeof(why));
            if (!up) {
                code = auth ? OFE_EAUTH : OFE_ECONN;
                snprintf(msg, sizeof(msg), "kafka: %s: not confirmed within %u ms: %s", topic,
                         k->timeout_ms, why);
            } else {
                snprintf(msg, sizeof(msg), "kafka: %s: not confirmed within %u ms (%s)", topic,
                         k->timeout_ms, rd_kafka_err2str(m->err));
            }
        } else if (code == OFE_ECLOSED) {
            snprintf(msg, sizeof(msg),
                     "kafka: %s: the bus closed before the broker confirmed the event", topic);
        } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
            char buf[256];
            rd_kafka_fatal_error(rk, buf, sizeof(buf));
            code = OFE_EIO;
            snprintf(msg, sizeof(msg), "kafka: %s: producer failed: %s", topic, buf);
        } else {
            snprintf(msg, sizeof(msg), "kafka: %s: %s (%s)", topic, rd_kafka_err2str(m->err),
                     rd_kafka_err2name(m->err));
        }
        ofe_pub__done(p, code, msg);
    }
    atomic_fetch_sub(&k->outstanding, 1);
}

static rd_kafka_t *producer_new(struct kbus *k, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *c = rd_kafka_conf_dup(k->pconf);
    char e[512];
    if (!c) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
    if (!rk) {
        rd_kafka_conf_destroy(c);
        ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: %s", e);
    }
    return rk;
}

/* Fails what the old producer still holds, once its replacement takes
 * publishes. */
static void producer_retire(rd_kafka_t *rk)
{
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 200 && rd_kafka_outq_len(rk) > 0; i++)
        rd_kafka_poll(rk, 50);
    rd_kafka_destroy(rk);
}

/* librdkafka looks a topic it has not seen up on a 1 s timer, so the
 * first events to a new topic would wait up to a second: the poller asks
 * for the metadata of new topics at once. Called with topics_lock. */
static bool topic_seen_locked(struct kbus *k, const char *topic)
{
    for (size_t i = 0; i < k->nknown; i++)
        if (!strcmp(k->known[i], topic))
            return false;
    if (k->nknown == KNOWN_MAX)
        return false;
    char *t = strdup(topic);
    char **kn = realloc(k->known, (k->nknown + 1) * sizeof(*kn));
    if (kn)
        k->known = kn;
    char **lk = kn ? realloc(k->lookup, (k->nlookup + 1) * sizeof(*lk)) : NULL;
    if (lk)
        k->lookup = lk;
    if (!t || !kn || !lk) {
        free(t);
        return false;
    }
    k->known[k->nknown++] = t;
    k->lookup[k->nlookup++] = t;
    return true;
}

static void topics_lookup(struct kbus *k, rd_kafka_t *rk)
{
    pthread_mutex_lock(&k->topics_lock);
    size_t n = k->nlookup;
    char *names[64];
    if (n == 0) {
        pthread_mutex_unlock(&k->topics_lock);
        return;
    }
    if (n > 64)
        n = 64;
    memcpy(names, k->lookup, n * sizeof(*names));
    memmove(k->lookup, k->lookup + n, (k->nlookup - n) * sizeof(*names));
    k->nlookup -= n;
    pthread_mutex_unlock(&k->topics_lock);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, names[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
    }
}

/* Readiness without statistics (rdkafka.statistics.interval.ms 0), and
 * sooner than the first statistics: a metadata answer means a broker is
 * reachable. At most once a second while not up. */
static void probe(struct kbus *k, rd_kafka_t *rk)
{
    pthread_mutex_lock(&k->st.lock);
    bool up = k->st.up;
    pthread_mutex_unlock(&k->st.lock);
    uint64_t now = now_ms();
    if (up || now - k->last_probe < 1000)
        return;
    k->last_probe = now;
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, NULL, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        state_set(&k->st, true, NULL);
    }
}

static void *producer_poll(void *arg)
{
    struct kbus *k = arg;
    while (!atomic_load(&k->stop)) {
        pthread_rwlock_rdlock(&k->rk_lock);
        rd_kafka_t *rk = k->rk;
        pthread_rwlock_unlock(&k->rk_lock);
        rd_kafka_poll(rk, 50);
        topics_lookup(k, rk);
        probe(k, rk);
        if (atomic_exchange(&k->fatal, false)) {
            char err[512];
            rd_kafka_t *nrk = producer_new(k, err, sizeof(err));
            if (!nrk) {
                OFE_ERROR(k->st.component, k->st.instance, "kafka: cannot replace the producer: %s",
                          err);
                continue;
            }
            OFE_WARN(k->st.component, k->st.instance,
                     "kafka: replacing the producer after a fatal error; "
                     "unconfirmed publishes fail");
            pthread_rwlock_wrlock(&k->rk_lock);
            k->rk = nrk;
            pthread_rwlock_unlock(&k->rk_lock);
            producer_retire(rk);
        }
    }
    return NULL;
}

/* Kafka topic names: 1 to 249 of [a-zA-Z0-9._-], not "." or "..". */
static bool topic_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 249 || !strcmp(t, ".") || !strcmp(t, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int k_publish(void *ctx, const char *topic, struct ofe_pub *p, char *errstr,
                     size_t errstr_size)
{
    struct kbus *k = ctx;
    if (!topic_ok(topic))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "kafka: \"%s\" is not a valid Kafka topic name (1 to 249 letters, digits, "
                       "'.', '_' or '-')",
                       topic);
    struct ofe_hdrs h;
    struct ofe_buf vb = OFE_BUF_INIT;
    const void *value = NULL, *key = NULL;
    size_t vlen = 0, klen = 0;
    char e[400];
    ofe_hdrs_init(&h);
    int rc = ofe_ce_kafka_encode(ofe_pub__event(p), OFE_CE_BINARY, OFE_CE_BIND_TYPEHINTS, &h, &vb,
                                 &value, &vlen, &key, &klen, e, sizeof(e));
    if (rc) {
        rc = ofe_err(errstr, errstr_size, rc, "kafka: %s", e);
        goto out;
    }
    /* Empty data is a zero-length value, no data a null value. */
    if (!value && ofe_pub__event(p)->has_data)
        value = "";
    size_t size = vlen + klen;
    for (size_t i = 0; i < h.n; i++)
        size += h.v[i].name_len + h.v[i].value_len;
    if (size > k->max_bytes) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                     "kafka: the event takes %zu bytes as a Kafka record, over maxMessageBytes "
                     "(%zu)",
                     size, k->max_bytes);
        goto out;
    }
    pthread_mutex_lock(&k->topics_lock);
    bool fresh = topic_seen_locked(k, topic);
    pthread_mutex_unlock(&k->topics_lock);
    if (fresh) { /* wake the poller out of rd_kafka_poll for the lookup */
        pthread_rwlock_rdlock(&k->rk_lock);
        rd_kafka_yield(k->rk);
        pthread_rwlock_unlock(&k->rk_lock);
    }
    rd_kafka_headers_t *kh = rd_kafka_headers_new(h.n);
    for (size_t i = 0; i < h.n; i++)
        rd_kafka_header_add(kh, h.v[i].name, (ssize_t)h.v[i].name_len, h.v[i].value,
                            (ssize_t)h.v[i].value_len);
    atomic_fetch_add(&k->outstanding, 1);
    pthread_rwlock_rdlock(&k->rk_lock);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE((void *)value, vlen), RD_KAFKA_V_KEY(key, klen),
                          RD_KAFKA_V_HEADERS(kh), RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
    pthread_rwlock_unlock(&k->rk_lock);
    if (err) {
        atomic_fetch_sub(&k->outstanding, 1);
        rd_kafka_headers_destroy(kh);
        rc = ofe_err(errstr, errstr_size, map_produce_err(err), "kafka: %s: %s", topic,
                     rd_kafka_err2str(err));
    }
out:
    ofe_hdrs_fini(&h);
    ofe_buf_fini(&vb);
    return rc;
}

/* ---- bus ----------------------------------------------------------------- */

/* Where a new group starts: initialOffset when it was written, else the
 * oldest offset (ofevents' default: nothing published before a trigger
 * first started is lost; Dapr's default is newest). Options built in code
 * rather than parsed from YAML (no table) are taken as they are. */
static int initial_offset(const struct ofe_config_kafka_bus *kb)
{
    bool written =
        !kb->node.table || ofe_config_field_pos(&kb->node, "initialOffset") != &kb->node.pos;
    return written ? kb->initial_offset : OFE_CONFIG_OFFSET_OLDEST;
}

static int k_open(struct ofe_bus *bus, const void *def, void **ctx, char *errstr,
                  size_t errstr_size)
{
    const struct ofe_config_busdesc *d = def;
    const struct ofe_config_kafka_bus *kb = d ? d->kafka : NULL;
    if (!kb)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: the bus has no kafka options");
    const struct ofe_bus_opts *bo = ofe_bus__opts(bus);
    struct kbus *k = calloc(1, sizeof(*k));
    if (!k)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    k->bus = bus;
    k->timeout_ms = bo->publish_timeout_ms;
    k->max_bytes =
        kb->max_message_bytes > 0 ? (size_t)kb->max_message_bytes : (size_t)KAFKA_DEFAULT_MAX_BYTES;
    k->brokers = strdup(kb->brokers ? kb->brokers : "");
    k->group = kb->consumer_group && *kb->consumer_group ? strdup(kb->consumer_group) : NULL;
    k->client_id_fixed = kb->client_id && *kb->client_id;
    for (size_t i = 0; i < kb->rdkafka.n; i++)
        if (!strcmp(kb->rdkafka.v[i].key, "client.id"))
            k->client_id_fixed = true;
    state_init(&k->st, bo->component, "kafka", k->brokers ? k->brokers : "");
    pthread_rwlock_init(&k->rk_lock, NULL);
    pthread_mutex_init(&k->topics_lock, NULL);
    snprintf(k->describe, sizeof(k->describe), "kafka %s (%s)", kb->brokers ? kb->brokers : "",
             kafka_conf_protocol(kb));
    struct kafka_conf_opts o = {.role = KAFKA_PRODUCER,
                                .client_id = ofe_bus__client_id(bus),
                                .max_bytes = k->max_bytes,
                                .timeout_ms = bo->publish_timeout_ms,
                                .max_pending = bo->max_pending};
    int rc = OFE_EINVAL;
    k->pconf = kafka_conf_build(kb, &o, errstr, errstr_size);
    if (!k->pconf)
        goto fail;
    /* The consumers' template: a bad consumer option is an open error, not
     * a subscribe error later. Where a new group starts: initialOffset. */
    struct kafka_conf_opts co = {
        .role = KAFKA_CONSUMER,
        .client_id = ofe_bus__client_id(bus),
        .group = "unset",
        .offset_reset = initial_offset(kb) == OFE_CONFIG_OFFSET_OLDEST ? "earliest" : "latest",
        .max_bytes = k->max_bytes};
    if (!(k->cconf = kafka_conf_build(kb, &co, errstr, errstr_size)))
        goto fail;
    if (!k->brokers) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(k->pconf, on_delivery);
    set_callbacks(k->pconf, &k->st);
    if (!(k->rk = producer_new(k, errstr, errstr_size)))
        goto fail;
    if (pthread_create(&k->poller, NULL, producer_poll, k) != 0) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "kafka: cannot start a thread");
        rd_kafka_destroy(k->rk);
        goto fail;
    }
    *ctx = k;
    return 0;
fail:
    if (k->pconf)
        rd_kafka_conf_destroy(k->pconf);
    if (k->cconf)
        rd_kafka_conf_destroy(k->cconf);
    free(k->brokers);
    free(k->group);
    pthread_rwlock_destroy(&k->rk_lock);
    pthread_mutex_destroy(&k->topics_lock);
    pthread_mutex_destroy(&k->st.lock);
    free(k);
    return rc;
}

static bool k_ready(void *ctx, char *why, size_t why_size)
{
    struct kbus *k = ctx;
    pthread_mutex_lock(&k->st.lock);
    bool up = k->st.up;
    pthread_mutex_unlock(&k->st.lock);
    if (!up && why && why_size) {
        char w[720];
        state_why(&k->st, w, sizeof(w));
        snprintf(why, why_size, "kafka: %s", w);
    }
    return up;
}

static const char *k_describe(void *ctx)
{
    return ((struct kbus *)ctx)->describe;
}

static void k_close(void *ctx, uint32_t drain_ms)
{
    struct kbus *k = ctx;
    atomic_store(&k->stop, true);
    pthread_join(k->poller, NULL);
    /* flush serves the delivery reports while it waits. */
    rd_kafka_flush(k->rk, (int)drain_ms);
    rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 400 && atomic_load(&k->outstanding) > 0; i++)
        rd_kafka_poll(k->rk, 50);
    if (atomic_load(&k->outstanding) > 0)
        OFE_ERROR(k->st.component, k->st.instance,
                  "kafka: %ld publishes got no delivery report before close",
                  (long)atomic_load(&k->outstanding));
    rd_kafka_destroy(k->rk);
    rd_kafka_conf_destroy(k->pconf);
    rd_kafka_conf_destroy(k->cconf);
    free(k->brokers);
    free(k->group);
    pthread_rwlock_destroy(&k->rk_lock);
    pthread_mutex_destroy(&k->topics_lock);
    pthread_mutex_destroy(&k->st.lock);
    for (size_t i = 0; i < k->nknown; i++)
        free(k->known[i]);
    free(k->known);
    free(k->lookup);
    free(k);
}

/* ---- consumer: rebalances ------------------------------------------------ */

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct ksub *ks = opaque;
    ofe_kafka_member_committed(&ks->m, err, offsets);
}

/* Before giving partitions up, lets the messages delivered from them be
 * resolved (up to REVOKE_WAIT_MS), so that their acks are committed here
 * and the next owner does not get them again. The group waits meanwhile,
 * as it waits for any member to rejoin. */
static void revoke_wait(struct ksub *ks, const rd_kafka_topic_partition_list_t *parts)
{
    uint64_t deadline = now_ms() + REVOKE_WAIT_MS;
    int pending = 0;
    pthread_mutex_lock(&ks->lock);
    for (;;) {
        pending = ofe_kafka_member_unresolved_locked(&ks->m, parts);
        if (!pending || ks->closing || now_ms() >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ks->cond, &ks->lock, &ts);
    }
    pthread_mutex_unlock(&ks->lock);
    if (pending)
        OFE_INFO(ks->st.component, ks->st.instance,
                 "kafka: group %s: giving up partitions with %d unresolved messages; their next "
                 "owner gets them again",
                 ks->group, pending);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct ksub *ks = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ofe_kafka_member_assign(&ks->m, rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        if (!rd_kafka_assignment_lost(rk))
            revoke_wait(ks, parts);
        ofe_kafka_member_revoke(&ks->m, rk, parts);
    } else {
        ofe_kafka_member_rebalance_error(&ks->m, rk, err);
    }
}

/* ---- consumer: the thread ------------------------------------------------- */

/* Decodes one record into a message and hands it over. */
static void handle(struct ksub *ks, rd_kafka_message_t *m)
{
    if (m->err) {
        ofe_kafka_member_fetch_error(&ks->m, m);
        rd_kafka_message_destroy(m);
        return;
    }
    ofe_kafka_member_fetch_ok(&ks->m);
    const char *topic = rd_kafka_topic_name(m->rkt);
    pthread_mutex_lock(&ks->lock);
    /* Not assigned any more, or already delivered in this assignment
     * (a queue left over from before a rebalance): not ours to deliver. */
    bool skip =
        ks->stopping || ofe_kafka_member_skip_locked(&ks->m, topic, m->partition, m->offset);
    pthread_mutex_unlock(&ks->lock);
    if (skip) {
        rd_kafka_message_destroy(m);
        return;
    }
    struct ofe_msg *om = ofe_msg__new(ks->sub, topic, sizeof(struct kpriv));
    if (!om) {
        rd_kafka_message_destroy(m);
        return;
    }
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    ofe_kafka_message_headers(m, &h);
    char e[400];
    int rc = ofe_ce_kafka_decode(&h, m->key, m->key_len, m->payload, m->len, OFE_CE_BIND_TYPEHINTS,
                                 &om->ev, e, sizeof(e));
    if (rc) {
        char why[512];
        om->ev = NULL;
        snprintf(why, sizeof(why), "kafka: %s [%d] at offset %lld: %s", topic, (int)m->partition,
                 (long long)m->offset, e);
        ofe_msg__set_invalid(om, m->payload, m->len, why);
    }
    ofe_hdrs_fini(&h);
    struct kpriv *pv = (struct kpriv *)om->priv;
    pthread_mutex_lock(&ks->lock);
    /* The assignment may have changed while decoding. */
    bool ok = !ks->stopping && ofe_kafka_member_take_locked(&ks->m, topic, m->partition, m->offset,
                                                            &pv->tr, &pv->seq);
    if (ok)
        ks->delivering = true;
    pthread_mutex_unlock(&ks->lock);
    rd_kafka_message_destroy(m);
    if (!ok) {
        ofe_msg__free(om);
        return;
    }
    ofe_sub__deliver(ks->sub, om);
    pthread_mutex_lock(&ks->lock);
    ks->delivering = false;
    pthread_cond_broadcast(&ks->cond);
    pthread_mutex_unlock(&ks->lock);
}

static void *sub_run(void *arg)
{
    struct ksub *ks = arg;
    rd_kafka_message_t *batch[BATCH_MAX];
    while (!atomic_load(&ks->exit)) {
        pthread_mutex_lock(&ks->lock);
        bool stopping = ks->stopping, full = ks->m.tracked >= TRACK_MAX;
        pthread_mutex_unlock(&ks->lock);
        unsigned cap = stopping || full ? 0 : ofe_sub__capacity(ks->sub);
        if (cap == 0 && !stopping && !full)
            cap = ofe_sub__wait_capacity(ks->sub, 100);
        if (cap == 0) {
            /* Stay in the group (rebalances, commits) without fetching. */
            if (!ofe_kafka_member_paused(&ks->m))
                ofe_kafka_member_set_paused(&ks->m, true);
            ssize_t n =
                rd_kafka_consume_batch_queue(ks->q, stopping || full ? 100 : 0, batch, BATCH_MAX);
            for (ssize_t i = 0; i < n; i++) {
                /* Fetched before the pause took effect: the resume refetches
                 * from the delivered position. Errors are still worth a line. */
                if (batch[i]->err)
                    ofe_kafka_member_fetch_error(&ks->m, batch[i]);
                rd_kafka_message_destroy(batch[i]);
            }
            ofe_kafka_member_commit(&ks->m, NULL, false);
            continue;
        }
        if (ofe_kafka_member_paused(&ks->m))
            ofe_kafka_member_set_paused(&ks->m, false);
        /* Wait for one message (a batch call would wait for a full batch
         * or the timeout), then take what else is there. */
        size_t lim = cap < BATCH_MAX ? (size_t)cap : BATCH_MAX;
        ssize_t n = 0;
        if ((batch[0] = rd_kafka_consume_queue(ks->q, 100))) {
            n = 1;
            if (lim > 1) {
                ssize_t more = rd_kafka_consume_batch_queue(ks->q, 0, batch + 1, lim - 1);
                n += more > 0 ? more : 0;
            }
        }
        for (ssize_t i = 0; i < n; i++)
            handle(ks, batch[i]);
        ofe_kafka_member_commit(&ks->m, NULL, false);
    }
    return NULL;
}

static int k_subscribe(void *ctx, struct ofe_sub *sub, void **sctx, char *errstr,
                       size_t errstr_size)
{
    struct kbus *k = ctx;
    const struct ofe_sub_opts *so = ofe_sub__opts(sub);
    struct ksub *ks = calloc(1, sizeof(*ks));
    const char *group = k->group ? k->group : so->group;
    if (!ks || !(ks->group = strdup(group))) {
        free(ks);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    ks->k = k;
    ks->sub = sub;
    state_init(&ks->st, k->st.component, ks->group, k->brokers);
    pthread_mutex_init(&ks->lock, NULL);
    pthread_cond_init(&ks->cond, NULL);
    rd_kafka_topic_partition_list_t *tl = NULL;
    int rc = OFE_EINVAL;
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_dup(k->cconf);
    if (!c) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    /* An explicit start wins over initialOffset and rdkafka.auto.offset.reset. */
    const char *reset = so->start == OFE_START_OLDEST   ? "earliest"
                        : so->start == OFE_START_NEWEST ? "latest"
                                                        : NULL;
    if (rd_kafka_conf_set(c, "group.id", group, e, sizeof(e)) != RD_KAFKA_CONF_OK ||
        (reset && rd_kafka_conf_set(c, "auto.offset.reset", reset, e, sizeof(e))) ||
        (!k->client_id_fixed &&
         rd_kafka_conf_set(c, "client.id", ofe_sub__consumer(sub), e, sizeof(e)))) {
        rd_kafka_conf_destroy(c);
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: %s", e);
        goto fail;
    }
    char v[64];
    size_t vs = sizeof(v);
    int commit_ms = 100;
    if (rd_kafka_conf_get(c, "auto.commit.interval.ms", v, &vs) == RD_KAFKA_CONF_OK)
        commit_ms = atoi(v);
    ofe_kafka_member_init(&ks->m, &ks->lock, ks->st.component, ks->st.instance, ks->group,
                          commit_ms > 0 ? (unsigned)commit_ms : 0);
    set_callbacks(c, &ks->st);
    rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(c, on_commit);
    /* The callbacks get the ksub: set_callbacks made it the opaque. */
    ks->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof(e));
    if (!ks->rk) {
        rd_kafka_conf_destroy(c);
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: %s", e);
        goto fail;
    }
    ks->m.rk = ks->rk;
    rd_kafka_poll_set_consumer(ks->rk);
    ks->q = rd_kafka_queue_get_consumer(ks->rk);
    tl = rd_kafka_topic_partition_list_new((int)so->ntopics);
    for (size_t i = 0; i < so->ntopics; i++) {
        if (!topic_ok(so->topics[i])) {
            rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                         "kafka: \"%s\" is not a valid Kafka topic name", so->topics[i]);
            goto fail;
        }
        rd_kafka_topic_partition_list_add(tl, so->topics[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(ks->rk, tl);
    if (err) {
        rc =
            ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: subscribe: %s", rd_kafka_err2str(err));
        goto fail;
    }
    rd_kafka_topic_partition_list_destroy(tl);
    tl = NULL;
    if (pthread_create(&ks->thr, NULL, sub_run, ks) != 0) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "kafka: cannot start a thread");
        goto fail;
    }
    *sctx = ks;
    return 0;
fail:
    if (tl)
        rd_kafka_topic_partition_list_destroy(tl);
    if (ks->q)
        rd_kafka_queue_destroy(ks->q);
    if (ks->rk) {
        rd_kafka_consumer_close(ks->rk);
        rd_kafka_destroy(ks->rk);
    }
    pthread_mutex_destroy(&ks->lock);
    pthread_cond_destroy(&ks->cond);
    pthread_mutex_destroy(&ks->st.lock);
    ofe_kafka_member_fini(&ks->m);
    free(ks->group);
    free(ks);
    return rc;
}

static void k_stop(void *ctx, void *sctx)
{
    struct ksub *ks = sctx;
    pthread_mutex_lock(&ks->lock);
    ks->stopping = true;
    while (ks->delivering)
        pthread_cond_wait(&ks->cond, &ks->lock);
    pthread_mutex_unlock(&ks->lock);
}

static void k_release(void *ctx, void *sctx)
{
    struct ksub *ks = sctx;
    atomic_store(&ks->exit, true);
    pthread_join(ks->thr, NULL);
    ofe_kafka_member_commit(&ks->m, NULL, true);
    pthread_mutex_lock(&ks->lock);
    ks->closing = true; /* what is still unresolved now stays so */
    pthread_mutex_unlock(&ks->lock);
    /* Leaving the group runs the revocation (and its commit) inside. */
    rd_kafka_consumer_close(ks->rk);
    rd_kafka_queue_destroy(ks->q);
    rd_kafka_destroy(ks->rk);
    ofe_kafka_member_fini(&ks->m);
    while (ks->lags) {
        struct klag *l = ks->lags;
        ks->lags = l->next;
        free(l->topic);
        free(l);
    }
    pthread_mutex_destroy(&ks->lock);
    pthread_cond_destroy(&ks->cond);
    pthread_mutex_destroy(&ks->st.lock);
    free(ks->group);
    free(ks);
}

static void k_ack(void *ctx, void *sctx, struct ofe_msg *m)
{
    struct ksub *ks = sctx;
    struct kpriv *pv = (struct kpriv *)m->priv;
    pthread_mutex_lock(&ks->lock);
    if (pv->tr) {
        ofe_kafka_member_resolve_locked(&ks->m, pv->tr, pv->seq, true);
        pv->tr = NULL;
    }
    pthread_cond_broadcast(&ks->cond); /* revoke_wait */
    pthread_mutex_unlock(&ks->lock);
}

static void k_abandon(void *ctx, void *sctx, struct ofe_msg *m)
{
    struct ksub *ks = sctx;
    struct kpriv *pv = (struct kpriv *)m->priv;
    pthread_mutex_lock(&ks->lock);
    if (pv->tr) {
        ofe_kafka_member_resolve_locked(&ks->m, pv->tr, 0, false);
        pv->tr = NULL;
    }
    pthread_cond_broadcast(&ks->cond); /* revoke_wait */
    pthread_mutex_unlock(&ks->lock);
}

const struct ofe_pubsub_ops ofe_pubsub_kafka = {
    .name = "kafka",
    .open = k_open,
    .publish = k_publish,
    .subscribe = k_subscribe,
    .stop = k_stop,
    .release = k_release,
    .ack = k_ack,
    .nack = NULL, /* the core redelivers locally; the offset stays uncommitted */
    .abandon = k_abandon,
    .ready = k_ready,
    .close = k_close,
    .describe = k_describe,
};
