/* One job: the delivery of one bus message to one subscriber. Its parts
 * (sink, re-publish to topic, reply, dead letters) run concurrently; the
 * job finishes when the last part does, and then its outcome goes to the
 * message (trg_msg_unref acks or nacks once every job is done). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "trigger.h"

struct trg_job *trg_job_new(struct trg_subscriber *s, struct trg_msg *m, enum trg_job_kind kind,
                            struct ofe_ce *ev)
{
    struct trg_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->kind = kind;
    j->s = s;
    j->m = m;
    j->ev = ofe_ce_ref(ev);
    j->lane = atomic_fetch_add(&s->next_lane, 1) % s->t->nhttp;
    if (s->ordered && kind == TRG_JOB_EVENT) {
        const char *k = ofe_ce_get_str(ev, "partitionkey");
        if (!(j->key = strdup(k ? k : TRG_NO_KEY))) {
            trg_job_free(j);
            return NULL;
        }
    }
    atomic_init(&j->pending, 0);
    atomic_init(&j->again, false);
    atomic_init(&j->give_back, false);
    atomic_init(&j->dl_ok, 0);
    atomic_init(&j->dl_perm, 0);
    return j;
}

void trg_job_free(struct trg_job *j)
{
    if (!j)
        return;
    ofe_ce_unref(j->ev);
    free(j->key);
    free(j);
}

int trg_http_send(struct trg_trigger *t, struct ofe_sender *s, struct ofe_ce *ev,
                  ofe_send_done_fn done, ofe_send_retry_fn on_retry, void *opaque, char *errstr,
                  size_t errstr_size)
{
    int rc;
    pthread_rwlock_rdlock(&t->http_lock);
    if (atomic_load(&t->aborting))
        rc = ofe_err(errstr, errstr_size, OFE_ECLOSED, "the trigger is stopping");
    else
        rc = ofe_sender_send(s, ev, done, on_retry, opaque, errstr, errstr_size);
    pthread_rwlock_unlock(&t->http_lock);
    return rc;
}

int trg_http_later(struct trg_trigger *t, unsigned lane, uint32_t delay_ms,
                   void (*fn)(void *opaque), void *opaque)
{
    int rc;
    pthread_rwlock_rdlock(&t->http_lock);
    if (atomic_load(&t->aborting))
        rc = OFE_ECLOSED;
    else
        rc = ofe_http_client_later(t->http[lane % t->nhttp], delay_ms, fn, opaque);
    pthread_rwlock_unlock(&t->http_lock);
    return rc;
}

/* The last part finished: account, free the slot, hand the outcome to the
 * message. */
static void finish(struct trg_job *j)
{
    struct trg_subscriber *s = j->s;
    struct trg_msg *m = j->m;
    bool give_back = atomic_load(&j->give_back);
    bool again = atomic_load(&j->again);
    if (j->dl_started && !give_back) {
        if (again) {
            /* counted at the message: it is delivered again */
        } else if (atomic_load(&j->dl_ok) > 0) {
            ofe_counter_inc(s->m.deadlettered);
        } else {
            ofe_counter_inc(s->m.dropped);
            OFE_ERROR(TRG_COMPONENT, s->t->id,
                      "subscriber %s: event id=%s source=%s: every dead-letter destination "
                      "refused it: dropped",
                      s->name, ofe_ce_get_str(j->ev, "id"), ofe_ce_get_str(j->ev, "source"));
        }
    }
    if (j->slotted)
        trg_dispatch_done(j);
    if (give_back)
        atomic_store(&m->give_back, true);
    else if (again)
        atomic_store(&m->again, true);
    trg_job_free(j);
    trg_msg_unref(m);
}

void trg_job_part_done(struct trg_job *j)
{
    if (atomic_fetch_sub(&j->pending, 1) == 1)
        finish(j);
}

void trg_job_give_back(struct trg_job *j)
{
    atomic_store(&j->give_back, true);
    atomic_store(&j->pending, 1);
    trg_job_part_done(j);
}

/* ---- the sink ------------------------------------------------------------ */

static void on_sink_retry(void *opaque, unsigned retry_no, const char *why)
{
    struct trg_job *j = opaque;
    ofe_counter_inc(j->s->m.retried);
    OFE_DEBUG(TRG_COMPONENT, j->s->t->id, "subscriber %s: event id=%s: attempt %u failed (%s)",
              j->s->name, ofe_ce_get_str(j->ev, "id"), retry_no, why);
}

static void on_sink_done(void *opaque, const struct ofe_send_report *r)
{
    struct trg_job *j = opaque;
    struct trg_subscriber *s = j->s;
    struct trg_trigger *t = s->t;
    if (r->outcome == OFE_DELIVERY_OK) {
        j->sink_ok = true;
        ofe_counter_inc(s->m.delivered);
        ofe_histogram_observe(s->m.latency, (double)(trg__now_ns() - j->m->t0_ns) / 1e9);
        if (r->reply && s->reply_topic)
            trg_reply_publish(j, r->reply);
    } else if (atomic_load(&t->aborting)) {
        atomic_store(&j->give_back, true);
    } else {
        const char *data = (const char *)r->body_excerpt;
        size_t len = r->body_excerpt_len;
        if (!len) {
            data = r->last_error ? r->last_error : "";
            len = strlen(data);
        }
        OFE_WARN(TRG_COMPONENT, t->id,
                 "subscriber %s: event id=%s source=%s not delivered to %s after %u attempt(s): "
                 "%s",
                 s->name, ofe_ce_get_str(j->ev, "id"), ofe_ce_get_str(j->ev, "source"), s->sink_url,
                 r->attempts, r->last_error ? r->last_error : "");
        trg_deadletter(j, r->last_status, data, len, r->last_error);
    }
    trg_job_part_done(j);
}

static void send_sink(struct trg_job *j);

static void sink_later(void *opaque)
{
    send_sink(opaque);
}

static void send_sink(struct trg_job *j)
{
    struct trg_subscriber *s = j->s;
    char err[256] = "";
    int rc = trg_http_send(s->t, s->sink[j->lane], j->ev, on_sink_done, on_sink_retry, j, err,
                           sizeof(err));
    if (rc == 0)
        return;
    if (rc == OFE_EAGAIN && trg_http_later(s->t, j->lane, 5, sink_later, j) == 0)
        return;
    if (rc == OFE_EAGAIN || rc == OFE_ECLOSED) {
        atomic_store(&j->give_back, true);
    } else {
        /* The event cannot be sent at all (it cannot be encoded). */
        OFE_WARN(TRG_COMPONENT, s->t->id, "subscriber %s: event id=%s cannot be sent: %s", s->name,
                 ofe_ce_get_str(j->ev, "id"), err);
        trg_deadletter(j, 0, err, strlen(err), err);
    }
    trg_job_part_done(j);
}

void trg_job_start(struct trg_job *j)
{
    struct trg_subscriber *s = j->s;
    atomic_store(&j->pending, 1); /* held while the parts start */
    if (atomic_load(&s->t->aborting)) {
        atomic_store(&j->give_back, true);
    } else if (j->kind == TRG_JOB_INVALID) {
        trg_deadletter(j, 0, NULL, 0, NULL);
    } else {
        if (s->sink) {
            atomic_fetch_add(&j->pending, 1);
            send_sink(j);
        }
        if (s->topic)
            trg_republish(j);
    }
    trg_job_part_done(j);
}
