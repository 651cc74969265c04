/* A bus message arrives (on a backend thread): its input becomes true,
 * each subscriber's filters and condition decide, one job goes to every
 * subscriber that takes the event. The message is acked when every job is
 * done (delivered, dead-lettered, or dropped and counted), nacked when a
 * job needs it again, and given back untouched when the trigger stops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "trigger.h"

static void held_add(struct trg_trigger *t, int d)
{
    pthread_mutex_lock(&t->lock);
    t->held = (unsigned)((int)t->held + d);
    ofe_gauge_set(t->m_held, t->held);
    if (t->held == 0)
        pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

/* Wait before a message comes again: 1 s doubling per redelivery, at most
 * 60 s. */
static uint32_t again_delay(const struct ofe_msg *msg)
{
    uint32_t n = ofe_msg_redeliveries(msg);
    uint32_t ms = 1000u << (n > 6 ? 6 : n);
    return ms > 60000 ? 60000 : ms;
}

void trg_msg_unref(struct trg_msg *m)
{
    if (atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    struct trg_trigger *t = m->t;
    if (atomic_load(&m->give_back)) {
        ofe_msg_nack(m->msg, 0);
    } else if (atomic_load(&m->again)) {
        uint32_t d = again_delay(m->msg);
        OFE_DEBUG(TRG_COMPONENT, t->id, "a bus message of topic %s comes again in %u ms",
                  ofe_msg_topic(m->msg), d);
        ofe_counter_inc(t->m_nacked);
        ofe_msg_nack(m->msg, d);
    } else {
        ofe_counter_inc(t->m_acked);
        ofe_msg_ack(m->msg);
    }
    free(m);
    held_add(t, -1); /* last touch of t: a stopping trigger may be freed after it */
}

/* Dead-letters an invalid message to each distinct dead-letter destination
 * of the trigger's subscribers. */
static void on_invalid(struct trg_trigger *t, struct trg_msg *m)
{
    size_t plen = 0;
    ofe_msg_payload(m->msg, &plen);
    const char *why = ofe_msg_error(m->msg);
    ofe_counter_inc(t->m_invalid);
    OFE_WARN(TRG_COMPONENT, t->id, "invalid bus message on topic %s (%zu bytes): %s",
             ofe_msg_topic(m->msg), plen, why ? why : "not a CloudEvent");
    struct ofe_ce *w = trg_invalid_wrapper(t, m->msg);
    if (!w) {
        atomic_store(&m->again, true);
        return;
    }
    size_t jobs = 0;
    for (size_t i = 0; i < t->nsubs; i++) {
        struct trg_subscriber *s = &t->subs[i];
        if (!s->dls && !s->dlt)
            continue;
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++) {
            const struct trg_subscriber *o = &t->subs[k];
            dup = (o->dls || o->dlt) &&
                  ((!o->dls_url && !s->dls_url) ||
                   (o->dls_url && s->dls_url && !strcmp(o->dls_url, s->dls_url))) &&
                  ((!o->dlt && !s->dlt) || (o->dlt && s->dlt && !strcmp(o->dlt, s->dlt)));
        }
        if (dup)
            continue;
        struct trg_job *j = trg_job_new(s, m, TRG_JOB_INVALID, w);
        if (!j) {
            atomic_store(&m->again, true);
            continue;
        }
        atomic_fetch_add(&m->refs, 1);
        jobs++;
        trg_job_start(j);
    }
    if (!jobs && !atomic_load(&m->again)) {
        ofe_counter_inc(t->m_invalid_dropped);
        OFE_ERROR(TRG_COMPONENT, t->id,
                  "invalid bus message on topic %s dropped: no subscriber has a deadLetterSink "
                  "or deadLetterTopic",
                  ofe_msg_topic(m->msg));
    }
    ofe_ce_unref(w);
}

void trg_input_on_msg(struct ofe_msg *msg, void *opaque)
{
    struct trg_trigger *t = opaque;
    uint64_t now = trg__now_ns();
    struct trg_msg *m = calloc(1, sizeof(*m));
    if (!m) {
        ofe_msg_nack(msg, 1000);
        return;
    }
    m->t = t;
    m->msg = msg;
    m->t0_ns = now;
    atomic_init(&m->refs, 1); /* the fan-out's own */
    atomic_init(&m->again, false);
    atomic_init(&m->give_back, false);
    held_add(t, 1);

    struct ofe_ce *ev = ofe_msg_event(msg);
    if (!ev) {
        on_invalid(t, m);
        trg_msg_unref(m);
        return;
    }
    trg_window_mark(t, ofe_msg_topic(msg), now);
    for (size_t i = 0; i < t->nsubs; i++) {
        struct trg_subscriber *s = &t->subs[i];
        ofe_counter_inc(s->m.received);
        if (s->filter && !trg_filter_match(s->filter, ev, s->m.filter_errors, s->name)) {
            ofe_counter_inc(s->m.filtered);
            continue;
        }
        if (!trg_window_holds(t, s->cond, now)) {
            ofe_counter_inc(s->m.cond_false);
            continue;
        }
        struct trg_job *j = trg_job_new(s, m, TRG_JOB_EVENT, ev);
        if (!j) {
            atomic_store(&m->again, true);
            continue;
        }
        atomic_fetch_add(&m->refs, 1);
        trg_dispatch_submit(j);
    }
    trg_msg_unref(m);
}
