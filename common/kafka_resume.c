/* Resume points of partitions given up with an unconfirmed commit
 * (kafka_resume.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/kafka_resume.h"

#define RESUME_MAX 4096

struct ofe_kafka_resume_point {
    struct ofe_kafka_resume_point *next; /* newest first */
    char *topic;
    int32_t partition;
    int64_t point;
};

static struct ofe_kafka_resume_point **find(struct ofe_kafka_resume *r, const char *topic,
                                            int32_t partition)
{
    for (struct ofe_kafka_resume_point **pp = &r->head; *pp; pp = &(*pp)->next)
        if ((*pp)->partition == partition && !strcmp((*pp)->topic, topic))
            return pp;
    return NULL;
}

static void unlink_free(struct ofe_kafka_resume *r, struct ofe_kafka_resume_point **pp)
{
    struct ofe_kafka_resume_point *p = *pp;
    *pp = p->next;
    free(p->topic);
    free(p);
    r->n--;
}

void ofe_kafka_resume_note(struct ofe_kafka_resume *r, const char *topic, int32_t partition,
                           int64_t point)
{
    if (point < 0)
        return;
    struct ofe_kafka_resume_point **pp = find(r, topic, partition);
    if (pp) {
        if (point > (*pp)->point)
            (*pp)->point = point;
        return;
    }
    struct ofe_kafka_resume_point *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p); /* out of memory: the partition restarts at its committed offset */
        return;
    }
    p->partition = partition;
    p->point = point;
    p->next = r->head;
    r->head = p;
    if (++r->n > RESUME_MAX) {
        struct ofe_kafka_resume_point **last = &r->head;
        while ((*last)->next)
            last = &(*last)->next;
        unlink_free(r, last);
    }
}

int ofe_kafka_resume_apply(struct ofe_kafka_resume *r, rd_kafka_t *rk,
                           rd_kafka_topic_partition_list_t *parts, int timeout_ms)
{
    if (!r->n)
        return 0;
    rd_kafka_topic_partition_list_t *q = NULL;
    for (int i = 0; i < parts->cnt; i++)
        if (find(r, parts->elems[i].topic, parts->elems[i].partition)) {
            if (!q)
                q = rd_kafka_topic_partition_list_new(parts->cnt);
            rd_kafka_topic_partition_list_add(q, parts->elems[i].topic, parts->elems[i].partition);
        }
    if (!q)
        return 0;
    int moved = 0;
    bool read = rd_kafka_committed(rk, q, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < q->cnt; i++) {
        const rd_kafka_topic_partition_t *c = &q->elems[i];
        struct ofe_kafka_resume_point **pp = find(r, c->topic, c->partition);
        if (!pp)
            continue;
        if (read && !c->err && (c->offset < 0 || c->offset < (*pp)->point)) {
            rd_kafka_topic_partition_t *p =
                rd_kafka_topic_partition_list_find(parts, c->topic, c->partition);
            if (p) {
                p->offset = (*pp)->point;
                moved++;
            }
        }
        unlink_free(r, pp);
    }
    rd_kafka_topic_partition_list_destroy(q);
    return moved;
}

void ofe_kafka_resume_fini(struct ofe_kafka_resume *r)
{
    while (r->head)
        unlink_free(r, &r->head);
}
