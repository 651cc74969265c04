/* Events the trigger puts back on its bus: re-publication to a
 * subscriber's `topic` (OpenFunction's chaining), reply events of a sink
 * (200 with a CloudEvent) to `replyTopic`, and dead letters to
 * `deadLetterTopic`. The first two carry the loop guard: the Integer
 * extension ofettl, decremented per hop; an event whose ofettl is 0 is not
 * put on a bus again (docs/trigger.md). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "trigger.h"

static int ttl_of(const struct ofe_ce *ev, int dflt)
{
    const struct ofe_ce_attr *a = ofe_ce_get(ev, TRG_TTL_EXT, sizeof(TRG_TTL_EXT) - 1);
    if (!a || !a->value)
        return dflt;
    if (a->type == OFE_CE_T_INTEGER)
        return a->ival;
    /* Over a binding without type hints it arrives as a String. */
    char *end;
    errno = 0;
    long v = strtol(a->value, &end, 10);
    if (errno || end == a->value || *end || v < INT_MIN || v > INT_MAX)
        return dflt;
    return (int)v;
}

struct ofe_ce *trg_ttl_next(struct trg_runtime *rt, const struct ofe_ce *src,
                            const struct ofe_ce *ev, bool *exhausted)
{
    int dflt = trg__opts(rt)->ttl_default;
    int next = ttl_of(src, dflt) - 1;
    if (ev != src) {
        /* A reply may lower the guard, never raise it. */
        int own = ttl_of(ev, INT_MAX);
        if (own < next)
            next = own;
    }
    *exhausted = next < 0;
    if (*exhausted)
        return NULL;
    struct ofe_ce *c = ofe_ce_dup(ev);
    if (!c)
        return NULL;
    if (ofe_ce_set_int(c, TRG_TTL_EXT, next, NULL, 0) != 0) {
        ofe_ce_unref(c);
        return NULL;
    }
    return c;
}

struct pubop {
    struct trg_job *j;
    struct ofe_ce *ev;
    const char *topic; /* into the config */
    enum trg_pub_kind kind;
};

static const char *const kind_names[] = {"topic", "replyTopic", "deadLetterTopic"};

static void pub_outcome(struct pubop *op, int err, const char *errmsg)
{
    struct trg_job *j = op->j;
    struct trg_subscriber *s = j->s;
    struct trg_trigger *t = s->t;
    if (err == 0) {
        if (op->kind == TRG_PUB_TOPIC)
            ofe_counter_inc(s->m.republished);
        else if (op->kind == TRG_PUB_REPLY)
            ofe_counter_inc(s->m.replies);
        else
            atomic_fetch_add(&j->dl_ok, 1);
    } else if (atomic_load(&t->aborting) || err == OFE_ECLOSED) {
        atomic_store(&j->give_back, true);
    } else if (err == OFE_EINVAL || err == OFE_ETOOBIG) {
        /* The bus refuses this event for good. */
        OFE_ERROR(TRG_COMPONENT, t->id, "subscriber %s: event id=%s refused by %s %s: %s%s",
                  s->name, ofe_ce_get_str(op->ev, "id"), kind_names[op->kind], op->topic, errmsg,
                  op->kind == TRG_PUB_DLT ? "" : ": dropped");
        if (op->kind == TRG_PUB_DLT)
            atomic_fetch_add(&j->dl_perm, 1);
        else
            ofe_counter_inc(s->m.dropped);
    } else {
        OFE_WARN(TRG_COMPONENT, t->id,
                 "subscriber %s: event id=%s not published to %s %s: %s (the bus message "
                 "comes again later)",
                 s->name, ofe_ce_get_str(op->ev, "id"), kind_names[op->kind], op->topic, errmsg);
        atomic_store(&j->again, true);
    }
    ofe_ce_unref(op->ev);
    free(op);
    trg_job_part_done(j);
}

static void on_pub_done(void *opaque, int err, const char *errmsg)
{
    pub_outcome(opaque, err, errmsg ? errmsg : "");
}

static void pub_try(void *opaque)
{
    struct pubop *op = opaque;
    struct trg_trigger *t = op->j->s->t;
    char err[256] = "";
    if (atomic_load(&t->aborting)) {
        pub_outcome(op, OFE_ECLOSED, "the trigger is stopping");
        return;
    }
    int rc = ofe_bus_publish(t->bus, op->topic, op->ev, on_pub_done, op, err, sizeof(err));
    if (rc == 0)
        return;
    /* The bus has too many publishes waiting for confirmation: try again
     * shortly (the job keeps its slot, so this pushes back too). */
    if (rc == OFE_EAGAIN && trg_http_later(t, op->j->lane, 5, pub_try, op) == 0)
        return;
    pub_outcome(op, rc == OFE_EAGAIN ? OFE_ECLOSED : rc, err);
}

void trg_publish(struct trg_job *j, const char *topic, struct ofe_ce *ev, enum trg_pub_kind kind)
{
    struct pubop *op = calloc(1, sizeof(*op));
    if (!op) {
        atomic_store(&j->again, true);
        return;
    }
    op->j = j;
    op->ev = ofe_ce_ref(ev);
    op->topic = topic;
    op->kind = kind;
    atomic_fetch_add(&j->pending, 1);
    pub_try(op);
}

void trg_reply_publish(struct trg_job *j, const struct ofe_ce *reply)
{
    struct trg_subscriber *s = j->s;
    bool exhausted = false;
    struct ofe_ce *r = trg_ttl_next(s->t->rt, j->ev, reply, &exhausted);
    if (!r) {
        if (exhausted) {
            ofe_counter_inc(s->m.loop_guard);
            OFE_WARN(TRG_COMPONENT, s->t->id,
                     "subscriber %s: reply id=%s to event id=%s not published to %s: the loop "
                     "guard (%s) is exhausted",
                     s->name, ofe_ce_get_str(reply, "id"), ofe_ce_get_str(j->ev, "id"),
                     s->reply_topic, TRG_TTL_EXT);
        } else {
            atomic_store(&j->again, true);
        }
        return;
    }
    trg_publish(j, s->reply_topic, r, TRG_PUB_REPLY);
    ofe_ce_unref(r);
}

void trg_republish(struct trg_job *j)
{
    struct trg_subscriber *s = j->s;
    bool exhausted = false;
    struct ofe_ce *r = trg_ttl_next(s->t->rt, j->ev, j->ev, &exhausted);
    if (!r) {
        if (exhausted) {
            ofe_counter_inc(s->m.loop_guard);
            OFE_WARN(TRG_COMPONENT, s->t->id,
                     "subscriber %s: event id=%s not re-published to %s: the loop guard (%s) is "
                     "exhausted",
                     s->name, ofe_ce_get_str(j->ev, "id"), s->topic, TRG_TTL_EXT);
        } else {
            atomic_store(&j->again, true);
        }
        return;
    }
    trg_publish(j, s->topic, r, TRG_PUB_TOPIC);
    ofe_ce_unref(r);
}
