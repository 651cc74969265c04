/* The kafka source (librdkafka high-level consumer).
 *
 * One consumer per event, in consumer group consumerGroup (default
 * {namespace}-{eventsource}-{event}), automatic commits and offset stores
 * off. A thread reads batches no larger than the room left under max
 * in-flight and emits one event per record. The partitions, their offset
 * windows and the commits are the group member's (kafka_member.h, shared
 * with the kafka bus backend): when an event completes, its offset is
 * acked and the commit point moves over the acked prefix only; the thread
 * commits moved points every COMMIT_MS, on revocation (synchronously) and
 * when the source stops. An offset acked above an unacked one waits, so
 * a crash (kill -9) redelivers from the first unacknowledged record:
 * nothing is lost, some records come again with the same id.
 *
 * Backpressure: with no room left for PAUSE_AFTER_MS (sink or bus slow or
 * down), every assigned partition is paused (librdkafka stops fetching
 * and drops what it prefetched) and the thread keeps polling so the
 * member stays in the group; fetching resumes once half the window is
 * free.
 *
 * A record that is a CloudEvent (ce_ headers, or a content-type of
 * application/cloudevents...) passes through as it is; any other record
 * becomes an event as docs/sources.md says (id {topic}/{partition}/{offset},
 * partition and offset extensions, the key as partitionkey). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>

#include "es.h"
#include "ofe/err.h"
#include "ofe/kafka_member.h"
#include "ofe/log.h"

#define BATCH_MAX      256
#define COMMIT_MS      100
#define TRACK_FACTOR   64
#define PAUSE_AFTER_MS 100 /* offsets tracked at most: max in-flight x this */
#define KAFKA_TYPE     "dev.ofevents.kafka.message"

struct ktok {
    struct kafka_src *k;
    struct ofe_kafka_part *tr;
    uint64_t seq;
};

struct kafka_src {
    struct es_source *s;
    const struct ofe_config_kafka_source *c;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    pthread_t thr;
    bool thr_started;
    atomic_bool stopping, exit;
    pthread_mutex_t lock;      /* trackers, state below */
    struct ofe_kafka_member m; /* partitions, offsets, commits */
    bool joined, down;
    char why[300];
};

/* ---- configuration ------------------------------------------------------ */

static int kset(rd_kafka_conf_t *c, const char *field, const char *name, const char *value,
                char *errstr, size_t errstr_size)
{
    char e[512];
    if (rd_kafka_conf_set(c, name, value, e, sizeof(e)) == RD_KAFKA_CONF_OK)
        return 0;
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: librdkafka refuses %s=%s: %s", field, name,
                   !strcmp(name, "sasl.password") ? "***" : value, e);
}

/* Builds the consumer configuration. With d, every problem is reported
 * there (--validate); without, the first one is returned. */
static rd_kafka_conf_t *build_conf(const struct ofe_config_kafka_source *k, const char *client_id,
                                   struct es_diag *d, char *errstr, size_t errstr_size)
{
    static const char *const mech[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (!c) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    char e[600];
    bool bad = false;
#define SET(field, name, value)                                                                    \
    do {                                                                                           \
        if (kset(c, field, name, value, e, sizeof(e))) {                                           \
            bad = true;                                                                            \
            if (d)                                                                                 \
                es_diag_error(d, &k->node, field, "%s", e);                                        \
            else                                                                                   \
                goto fail;                                                                         \
        }                                                                                          \
    } while (0)
    bool tls = k->tls.node.present;
    const char *proto =
        k->auth_required ? (tls ? "sasl_ssl" : "sasl_plaintext") : (tls ? "ssl" : "plaintext");
    SET("brokers", "bootstrap.servers", k->brokers ? k->brokers : "");
    SET("consumerGroup", "group.id", k->consumer_group ? k->consumer_group : "");
    if (client_id)
        SET("consumerGroup", "client.id", client_id);
    SET("authRequired", "security.protocol", proto);
    if (k->auth_required) {
        int m = k->sasl_mechanism >= 0 && k->sasl_mechanism < 3 ? k->sasl_mechanism : 0;
        if (!k->sasl_username || !k->sasl_password) {
            snprintf(e, sizeof(e),
                     "authRequired is true: saslUsername and saslPassword are "
                     "required");
            bad = true;
            if (d)
                es_diag_error(d, &k->node, "authRequired", "%s", e);
            else
                goto fail;
        } else {
            SET("saslMechanism", "sasl.mechanisms", mech[m]);
            SET("saslUsername", "sasl.username", k->sasl_username);
            SET("saslPassword", "sasl.password", k->sasl_password);
        }
    }
    if (tls) {
        if (k->tls.ca_cert)
            SET("tls.caCert", "ssl.ca.pem", k->tls.ca_cert);
        if (k->tls.client_cert)
            SET("tls.clientCert", "ssl.certificate.pem", k->tls.client_cert);
        if (k->tls.client_key)
            SET("tls.clientKey", "ssl.key.pem", k->tls.client_key);
        if (k->tls.insecure_skip_verify) {
            SET("tls.insecureSkipVerify", "enable.ssl.certificate.verification", "false");
            SET("tls.insecureSkipVerify", "ssl.endpoint.identification.algorithm", "none");
        }
        if (k->tls.server_name) {
            snprintf(e, sizeof(e),
                     "librdkafka has no server name override: leave serverName "
                     "out (the broker's advertised name is checked)");
            bad = true;
            if (d)
                es_diag_error(d, &k->tls.node, "serverName", "%s", e);
            else
                goto fail;
        }
    }
    SET("initialOffset", "auto.offset.reset",
        k->initial_offset == OFE_CONFIG_OFFSET_OLDEST ? "earliest" : "latest");
    if (k->max_message_bytes > 50 * 1024 * 1024) {
        char num[32];
        snprintf(num, sizeof(num), "%lld", (long long)k->max_message_bytes);
        SET("maxMessageBytes", "fetch.max.bytes", num);
        snprintf(num, sizeof(num), "%lld", (long long)k->max_message_bytes + 1024 * 1024);
        SET("maxMessageBytes", "receive.message.max.bytes", num);
    }
    for (size_t i = 0; i < k->rdkafka.n; i++) {
        const struct ofe_config_kv *kv = &k->rdkafka.v[i];
        char em[512];
        if (rd_kafka_conf_set(c, kv->key, kv->value ? kv->value : "", em, sizeof(em)) !=
            RD_KAFKA_CONF_OK) {
            bad = true;
            snprintf(e, sizeof(e), "rdkafka.%s: %s", kv->key, em);
            if (d) {
                char path[512];
                snprintf(path, sizeof(path), "%s.rdkafka.%s", k->node.path, kv->key);
                es_diag_error_at(d, &kv->pos, path, "%s", em);
            } else {
                goto fail;
            }
        }
    }
    /* What the source cannot work without wins over rdkafka.*. */
    SET("rdkafka", "enable.auto.commit", "false");
    SET("rdkafka", "enable.auto.offset.store", "false");
    SET("rdkafka", "enable.partition.eof", "false");
#undef SET
    if (bad)
        goto fail;
    return c;
fail:
    if (!d)
        ofe_err(errstr, errstr_size, OFE_EINVAL, "%s", e);
    rd_kafka_conf_destroy(c);
    return NULL;
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct kafka_src *k = opaque;
    ofe_kafka_member_committed(&k->m, err, offsets);
}

/* ---- callbacks ---------------------------------------------------------------- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct kafka_src *k = rd_kafka_opaque(rk);
    enum ofe_log_level l = level <= 4 ? OFE_LOG_WARN : level <= 6 ? OFE_LOG_INFO : OFE_LOG_DEBUG;
    if (ofe_log_enabled(l))
        ofe_log(l, ES_COMPONENT, k ? k->s->name : "kafka", "librdkafka %s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_src *k = opaque;
    bool down = err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
                err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__FATAL ||
                err == RD_KAFKA_RESP_ERR__RESOLVE;
    pthread_mutex_lock(&k->lock);
    bool was = k->down;
    if (down) {
        k->down = true;
        snprintf(k->why, sizeof(k->why), "kafka: %s: %s", rd_kafka_err2name(err), reason);
    }
    pthread_mutex_unlock(&k->lock);
    if (down && !was)
        OFE_WARN(ES_COMPONENT, k->s->name, "kafka: %s: %s", rd_kafka_err2name(err), reason);
    else
        OFE_DEBUG(ES_COMPONENT, k->s->name, "kafka: %s: %s", rd_kafka_err2name(err), reason);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_src *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        pthread_mutex_lock(&k->lock);
        k->joined = true;
        k->down = false;
        pthread_mutex_unlock(&k->lock);
        ofe_kafka_member_assign(&k->m, rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        ofe_kafka_member_revoke(&k->m, rk, parts);
    } else {
        ofe_kafka_member_rebalance_error(&k->m, rk, err);
    }
}

/* ---- records ------------------------------------------------------------------ */

static void on_done(void *token, enum es_result r, const char *why)
{
    struct ktok *tk = token;
    struct kafka_src *k = tk->k;
    pthread_mutex_lock(&k->lock);
    ofe_kafka_member_resolve_locked(&k->m, tk->tr, tk->seq, r != ES_FAILED);
    pthread_mutex_unlock(&k->lock);
    if (r != ES_FAILED)
        es_count_acked(k->s, 1);
    free(tk);
}

static bool string_ok(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return es_utf8_valid(p, n);
}

/* The extension name of a native header: "kafkaheader" + its lower-case
 * letters and digits. Returns false when nothing is left. */
static bool header_ext(const char *name, char *out, size_t size)
{
    if (size < 16)
        return false;
    memcpy(out, "kafkaheader", 11);
    size_t n = 11;
    for (const char *c = name; *c && n + 1 < size && n < OFE_CE_NAME_MAX; c++) {
        char ch = *c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c;
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
            out[n++] = ch;
    }
    out[n] = '\0';
    return n > 11;
}

static int native_event(struct kafka_src *k, const rd_kafka_message_t *m, const char *topic,
                        const struct ofe_hdrs *h, const char *ct, struct ofe_ce **out, char *err,
                        size_t err_size)
{
    struct es_source *s = k->s;
    char id[400];
    snprintf(id, sizeof(id), "%s/%d/%" PRId64, topic, (int)m->partition, (int64_t)m->offset);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    if (tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts < 0)
        ts = -1;
    struct ofe_ce *ev = NULL;
    int rc = es_ce_native(s, KAFKA_TYPE, id, topic, ts, ct, m->payload, m->len, &ev, err, err_size);
    if (rc)
        return rc;
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, (int64_t)m->offset);
    if ((rc = ofe_ce_set_int(ev, "partition", m->partition, err, err_size)) ||
        (rc = ofe_ce_set_str(ev, "offset", OFE_CE_T_STRING, num, err, err_size)))
        goto fail;
    if (m->key && m->key_len) {
        if (string_ok(m->key, m->key_len)) {
            rc = ofe_ce_set(ev, "partitionkey", 12, OFE_CE_T_STRING, m->key, m->key_len, err,
                            err_size);
        } else {
            size_t cap = 4 * ((m->key_len + 2) / 3) + 1;
            unsigned char *b64 = malloc(cap);
            if (!b64) {
                rc = OFE_ENOMEM;
                goto fail;
            }
            int n = EVP_EncodeBlock(b64, m->key, (int)m->key_len);
            rc = ofe_ce_set(ev, "kafkakey", 8, OFE_CE_T_BINARY, (const char *)b64, (size_t)n, err,
                            err_size);
            free(b64);
        }
        if (rc)
            goto fail;
    }
    for (size_t i = 0; i < h->n; i++) {
        const struct ofe_hdr *x = &h->v[i];
        char nm[128], ext[OFE_CE_NAME_MAX + 1];
        if (x->name_len >= sizeof(nm))
            continue;
        memcpy(nm, x->name, x->name_len);
        nm[x->name_len] = '\0';
        if (!strcasecmp(nm, "content-type") || !header_ext(nm, ext, sizeof(ext)) ||
            !string_ok(x->value, x->value_len) || ofe_ce_get(ev, ext, strlen(ext)))
            continue;
        if (ofe_ce_set(ev, ext, strlen(ext), OFE_CE_T_STRING, x->value, x->value_len, NULL, 0))
            continue; /* an invalid value is left out, not the event */
    }
    *out = ev;
    return 0;
fail:
    ofe_ce_unref(ev);
    return rc;
}

static void handle(struct kafka_src *k, rd_kafka_message_t *m)
{
    struct es_source *s = k->s;
    if (m->err) {
        ofe_kafka_member_fetch_error(&k->m, m);
        rd_kafka_message_destroy(m);
        return;
    }
    ofe_kafka_member_fetch_ok(&k->m);
    const char *topic = rd_kafka_topic_name(m->rkt);
    struct ktok *tk = malloc(sizeof(*tk));
    pthread_mutex_lock(&k->lock);
    k->down = false;
    /* Not assigned any more, or already handed on in this assignment. */
    bool skip = !tk || !ofe_kafka_member_take_locked(&k->m, topic, m->partition, m->offset, &tk->tr,
                                                     &tk->seq);
    pthread_mutex_unlock(&k->lock);
    if (skip) {
        free(tk);
        rd_kafka_message_destroy(m);
        return;
    }
    tk->k = k;
    struct ofe_hdrs h;
    ofe_hdrs_init(&h);
    ofe_kafka_message_headers(m, &h);
    const struct ofe_hdr *cth = ofe_hdrs_get(&h, "content-type");
    char ct[256];
    const char *ctp = NULL;
    if (cth && cth->value_len < sizeof(ct) && string_ok(cth->value, cth->value_len)) {
        memcpy(ct, cth->value, cth->value_len);
        ct[cth->value_len] = '\0';
        ctp = ct;
    }
    struct ofe_ce *ev = NULL;
    char err[400];
    int rc;
    if (m->len > (size_t)k->c->max_message_bytes) {
        rc = ofe_err(err, sizeof(err), OFE_ETOOBIG, "record of %zu bytes is above maxMessageBytes",
                     m->len);
    } else if (es_looks_like_ce(&h, "ce_", cth ? cth->value : NULL, cth ? cth->value_len : 0)) {
        rc = ofe_ce_kafka_decode(&h, m->key, m->key_len, m->payload, m->len, OFE_CE_BIND_TYPEHINTS,
                                 &ev, err, sizeof(err));
    } else {
        rc = native_event(k, m, topic, &h, ctp, &ev, err, sizeof(err));
    }
    ofe_hdrs_fini(&h);
    if (rc) {
        es_invalid(s, "kafka %s [%d] offset %" PRId64 ": %s", topic, (int)m->partition,
                   (int64_t)m->offset, err);
        rd_kafka_message_destroy(m);
        on_done(tk, ES_REJECTED, NULL); /* acked: it never becomes valid */
        return;
    }
    rd_kafka_message_destroy(m);
    if (es_emit(s, ev, ES_EMIT_FORCE, on_done, tk) != 0) {
        /* stopping: left unacked, the next owner reads it again */
        pthread_mutex_lock(&k->lock);
        ofe_kafka_member_resolve_locked(&k->m, tk->tr, tk->seq, false);
        pthread_mutex_unlock(&k->lock);
        free(tk);
    }
    ofe_ce_unref(ev);
}

static void *kafka_run(void *arg)
{
    struct kafka_src *k = arg;
    struct es_source *s = k->s;
    rd_kafka_message_t *batch[BATCH_MAX];
    size_t track_max = (size_t)s->max_inflight * TRACK_FACTOR;
    while (!atomic_load(&k->exit)) {
        bool stopping = atomic_load(&k->stopping);
        pthread_mutex_lock(&k->lock);
        bool full = k->m.tracked >= track_max;
        bool paused = k->m.paused;
        pthread_mutex_unlock(&k->lock);
        unsigned cap = stopping || full ? 0 : es_capacity(s);
        /* A full window for a moment is normal (the destinations confirm
         * in batches): librdkafka's own prefetch, bounded by
         * queued.max.messages.kbytes, waits meanwhile. Only a window full
         * for PAUSE_AFTER_MS pauses the partitions (a resume costs a
         * refetch), and fetching resumes once half the window is free. */
        if (cap == 0 && !paused && !stopping && !full)
            cap = es_wait_capacity(s, PAUSE_AFTER_MS);
        if (paused && cap < s->max_inflight / 2 + (s->max_inflight == 1))
            cap = 0;
        if (cap == 0) {
            if (!paused)
                ofe_kafka_member_set_paused(&k->m, true);
            /* Stay in the group (rebalances, commits) without fetching. */
            rd_kafka_message_t *one = rd_kafka_consumer_poll(k->rk, 100);
            ssize_t n = one ? rd_kafka_consume_batch_queue(k->q, 0, batch + 1, BATCH_MAX - 1) : 0;
            if (one)
                batch[0] = one, n++;
            for (ssize_t i = 0; i < n; i++) {
                if (stopping)
                    rd_kafka_message_destroy(batch[i]); /* never handed on: read again later */
                else
                    handle(k, batch[i]); /* fetched before the pause took effect */
            }
            ofe_kafka_member_commit(&k->m, NULL, false);
            continue;
        }
        if (paused)
            ofe_kafka_member_set_paused(&k->m, false);
        /* Wait for one record (returns at once when one is there), then
         * take what else is queued without waiting: a batch call with a
         * timeout would wait for a full batch. */
        rd_kafka_message_t *first = rd_kafka_consumer_poll(k->rk, 100);
        if (first) {
            handle(k, first);
            size_t more = cap - 1 < BATCH_MAX ? cap - 1 : BATCH_MAX;
            ssize_t n = more ? rd_kafka_consume_batch_queue(k->q, 0, batch, more) : 0;
            for (ssize_t i = 0; i < n; i++)
                handle(k, batch[i]);
        }
        ofe_kafka_member_commit(&k->m, NULL, false);
    }
    ofe_kafka_member_commit(&k->m, NULL, true);
    return NULL;
}

/* ---- kind ------------------------------------------------------------------------ */

static void kafka_check(const struct ofe_config_eventsource *es, const struct ofe_config_event *ev,
                        const struct es_options *o, struct es_diag *d)
{
    const struct ofe_config_kafka_source *k = (const struct ofe_config_kafka_source *)ev->spec;
    rd_kafka_conf_t *c = build_conf(k, NULL, d, NULL, 0);
    if (c)
        rd_kafka_conf_destroy(c);
}

static void kafka_destroy(void *ctx);

static int kafka_start(struct es_source *s, void **ctx, char *errstr, size_t errstr_size)
{
    struct kafka_src *k = calloc(1, sizeof(*k));
    if (!k)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    k->s = s;
    k->c = (const struct ofe_config_kafka_source *)s->ev->spec;
    pthread_mutex_init(&k->lock, NULL);
    ofe_kafka_member_init(&k->m, &k->lock, ES_COMPONENT, s->name, k->c->consumer_group, COMMIT_MS);
    atomic_init(&k->stopping, false);
    atomic_init(&k->exit, false);
    snprintf(k->why, sizeof(k->why), "kafka: joining group %s at %s", k->c->consumer_group,
             k->c->brokers);
    char host[128] = "host";
    gethostname(host, sizeof(host) - 1);
    char cid[512];
    if (s->opts->instance)
        snprintf(cid, sizeof(cid), "ofe-eventsource-%s", s->opts->instance);
    else
        snprintf(cid, sizeof(cid), "ofe-eventsource-%s-%d", host, (int)getpid());
    rd_kafka_conf_t *c = build_conf(k->c, cid, NULL, errstr, errstr_size);
    if (!c) {
        free(k);
        return OFE_EINVAL;
    }
    rd_kafka_conf_set_opaque(c, k);
    rd_kafka_conf_set_log_cb(c, on_log);
    rd_kafka_conf_set_error_cb(c, on_error);
    rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(c, on_commit);
    char e[512];
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof(e));
    if (!k->rk) {
        rd_kafka_conf_destroy(c);
        pthread_mutex_destroy(&k->lock);
        free(k);
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: cannot create a consumer: %s", e);
    }
    k->m.rk = k->rk;
    rd_kafka_poll_set_consumer(k->rk);
    k->q = rd_kafka_queue_get_consumer(k->rk);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, k->c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(k->rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    if (err) {
        ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: cannot subscribe to %s: %s", k->c->topic,
                rd_kafka_err2str(err));
        kafka_destroy(k);
        return OFE_EINVAL;
    }
    if (pthread_create(&k->thr, NULL, kafka_run, k) != 0) {
        kafka_destroy(k);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "cannot start a thread");
    }
    k->thr_started = true;
    OFE_INFO(ES_COMPONENT, s->name, "kafka: topic %s, group %s, brokers %s", k->c->topic,
             k->c->consumer_group, k->c->brokers);
    *ctx = k;
    return 0;
}

static void kafka_stop(void *ctx)
{
    struct kafka_src *k = ctx;
    atomic_store(&k->stopping, true);
}

static void kafka_destroy(void *ctx)
{
    struct kafka_src *k = ctx;
    atomic_store(&k->stopping, true);
    atomic_store(&k->exit, true);
    if (k->thr_started)
        pthread_join(k->thr, NULL);
    if (k->q)
        rd_kafka_queue_destroy(k->q);
    if (k->rk) {
        /* Leaving the group revokes the partitions: on_rebalance commits. */
        rd_kafka_consumer_close(k->rk);
        rd_kafka_destroy(k->rk);
    }
    ofe_kafka_member_fini(&k->m);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

static bool kafka_ready(void *ctx, char *why, size_t why_size)
{
    struct kafka_src *k = ctx;
    pthread_mutex_lock(&k->lock);
    bool ok = k->joined && !k->down;
    if (!ok)
        snprintf(why, why_size, "%s", k->why);
    pthread_mutex_unlock(&k->lock);
    return ok;
}

const struct es_kind es_kind_kafka = {
    .name = "kafka",
    .kind = OFE_CONFIG_SOURCE_KAFKA,
    .redrive = true,
    .default_inflight = 1024,
    .check = kafka_check,
    .start = kafka_start,
    .stop = kafka_stop,
    .destroy = kafka_destroy,
    .ready = kafka_ready,
};
