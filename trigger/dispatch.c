/* Per subscriber: at most `concurrency` jobs run at once; the others wait
 * in arrival order (ordered subscribers wait per partition key, see
 * ordering.c). The queue is bounded by the subscription's max_inflight:
 * while the trigger holds that many bus messages, the bus stops handing
 * out more. */
#include <stdlib.h>

#include "ofe/log.h"
#include "trigger.h"

void trg_dispatch_init(struct trg_subscriber *s)
{
    pthread_mutex_init(&s->lock, NULL);
}

void trg_dispatch_fini(struct trg_subscriber *s)
{
    trg_order_fini(s);
    pthread_mutex_destroy(&s->lock);
}

static void gauges(struct trg_subscriber *s)
{
    ofe_gauge_set(s->m.inflight, s->running);
    ofe_gauge_set(s->m.queued, s->queued);
}

/* Starts waiting jobs while there are free slots. One thread pumps at a
 * time; others leave a note (repump), so a job that finishes while
 * starting does not recurse. */
static void pump(struct trg_subscriber *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->pumping) {
        s->repump = true;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->pumping = true;
    do {
        s->repump = false;
        while (s->running < s->concurrency) {
            struct trg_job *j;
            if (s->ordered) {
                j = trg_order_next(s);
            } else {
                j = s->q_head;
                if (j) {
                    s->q_head = j->next;
                    if (!s->q_head)
                        s->q_tail = NULL;
                }
            }
            if (!j)
                break;
            j->next = NULL;
            s->queued--;
            s->running++;
            j->slotted = true;
            gauges(s);
            pthread_mutex_unlock(&s->lock);
            trg_job_start(j);
            pthread_mutex_lock(&s->lock);
        }
    } while (s->repump);
    s->pumping = false;
    pthread_mutex_unlock(&s->lock);
}

void trg_dispatch_submit(struct trg_job *j)
{
    struct trg_subscriber *s = j->s;
    pthread_mutex_lock(&s->lock);
    if (s->ordered) {
        if (trg_order_push(s, j) != 0) {
            pthread_mutex_unlock(&s->lock);
            atomic_store(&j->again, true);
            atomic_store(&j->pending, 1);
            trg_job_part_done(j);
            return;
        }
    } else {
        j->next = NULL;
        if (s->q_tail)
            s->q_tail->next = j;
        else
            s->q_head = j;
        s->q_tail = j;
    }
    s->queued++;
    gauges(s);
    pthread_mutex_unlock(&s->lock);
    pump(s);
}

void trg_dispatch_done(struct trg_job *j)
{
    struct trg_subscriber *s = j->s;
    pthread_mutex_lock(&s->lock);
    s->running--;
    if (s->ordered)
        trg_order_release(s, j);
    gauges(s);
    pthread_mutex_unlock(&s->lock);
    pump(s);
}

void trg_dispatch_flush(struct trg_subscriber *s)
{
    pthread_mutex_lock(&s->lock);
    struct trg_job *list;
    if (s->ordered) {
        list = trg_order_take_all(s);
    } else {
        list = s->q_head;
        s->q_head = s->q_tail = NULL;
    }
    s->queued = 0;
    gauges(s);
    pthread_mutex_unlock(&s->lock);
    while (list) {
        struct trg_job *n = list->next;
        trg_job_give_back(list);
        list = n;
    }
}
