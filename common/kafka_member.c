/* A Kafka consumer group member's partitions and commits (kafka_member.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/kafka_member.h"
#include "ofe/log.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ofe_kafka_member_init(struct ofe_kafka_member *m, pthread_mutex_t *lock, const char *component,
                           const char *instance, const char *group, unsigned commit_ms)
{
    memset(m, 0, sizeof(*m));
    m->lock = lock;
    m->component = component;
    m->instance = instance;
    m->group = group;
    m->commit_ms = commit_ms;
}

void ofe_kafka_member_fini(struct ofe_kafka_member *m)
{
    while (m->all) {
        struct ofe_kafka_part *p = m->all;
        m->all = p->all_next;
        ofe_offset_track_fini(&p->t);
        free(p->topic);
        free(p);
    }
    m->active = NULL;
    ofe_kafka_resume_fini(&m->resume);
}

/* ---- parts (lock held) ------------------------------------------------------ */

struct ofe_kafka_part *ofe_kafka_member_find_locked(struct ofe_kafka_member *m, const char *topic,
                                                    int32_t partition)
{
    for (struct ofe_kafka_part *p = m->active; p; p = p->next)
        if (p->partition == partition && !strcmp(p->topic, topic))
            return p;
    return NULL;
}

static void part_unref(struct ofe_kafka_member *m, struct ofe_kafka_part *p)
{
    if (--p->refs > 0)
        return;
    for (struct ofe_kafka_part **pp = &m->all; *pp; pp = &(*pp)->all_next)
        if (*pp == p) {
            *pp = p->all_next;
            break;
        }
    ofe_offset_track_fini(&p->t);
    free(p->topic);
    free(p);
}

/* Stops tracking a partition (revoked or lost). */
static void part_drop(struct ofe_kafka_member *m, struct ofe_kafka_part *p)
{
    for (struct ofe_kafka_part **pp = &m->active; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    p->active = false;
    m->tracked -= p->t.n;
    ofe_offset_track_fini(&p->t);
    part_unref(m, p);
}

static struct ofe_kafka_part *part_add(struct ofe_kafka_member *m, const char *topic,
                                       int32_t partition)
{
    struct ofe_kafka_part *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->refs = 1;
    p->active = true;
    p->sent = p->committed = -1;
    ofe_offset_track_init(&p->t);
    p->next = m->active;
    m->active = p;
    p->all_next = m->all;
    m->all = p;
    return p;
}

bool ofe_kafka_member_skip_locked(struct ofe_kafka_member *m, const char *topic, int32_t partition,
                                  int64_t offset)
{
    struct ofe_kafka_part *p = ofe_kafka_member_find_locked(m, topic, partition);
    return !p || ofe_offset_track_seen(&p->t, offset);
}

bool ofe_kafka_member_take_locked(struct ofe_kafka_member *m, const char *topic, int32_t partition,
                                  int64_t offset, struct ofe_kafka_part **part, uint64_t *seq)
{
    struct ofe_kafka_part *p = ofe_kafka_member_find_locked(m, topic, partition);
    if (!p || ofe_offset_track_seen(&p->t, offset) ||
        ofe_offset_track_push(&p->t, offset, seq) != 0)
        return false;
    p->refs++;
    m->tracked++;
    *part = p;
    return true;
}

void ofe_kafka_member_resolve_locked(struct ofe_kafka_member *m, struct ofe_kafka_part *part,
                                     uint64_t seq, bool acked)
{
    if (acked && part->active)
        m->tracked -= ofe_offset_track_ack(&part->t, seq);
    part_unref(m, part);
}

int ofe_kafka_member_unresolved_locked(struct ofe_kafka_member *m,
                                       const rd_kafka_topic_partition_list_t *parts)
{
    int n = 0;
    for (int i = 0; i < parts->cnt; i++) {
        struct ofe_kafka_part *p =
            ofe_kafka_member_find_locked(m, parts->elems[i].topic, parts->elems[i].partition);
        if (p)
            n += p->refs - 1; /* the assignment holds one */
    }
    return n;
}

/* ---- commits ------------------------------------------------------------------ */

/* Offsets to commit: every assigned partition of only (or all when NULL)
 * whose commit point moved since it was last sent, or with force since it
 * was last confirmed. NULL when none. Lock held. */
static rd_kafka_topic_partition_list_t *
commit_list(struct ofe_kafka_member *m, const rd_kafka_topic_partition_list_t *only, bool force)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (struct ofe_kafka_part *p = m->active; p; p = p->next) {
        if (p->t.point < 0 || (force ? p->t.point <= p->committed : p->t.point == p->sent))
            continue;
        if (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->t.point;
        p->sent = p->t.point;
    }
    return l;
}

void ofe_kafka_member_committed(struct ofe_kafka_member *m, rd_kafka_resp_err_t err,
                                const rd_kafka_topic_partition_list_t *offsets)
{
    pthread_mutex_lock(m->lock);
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *o = &offsets->elems[i];
        struct ofe_kafka_part *p = ofe_kafka_member_find_locked(m, o->topic, o->partition);
        if (!p)
            continue;
        if (!err && !o->err) {
            if (o->offset > p->committed)
                p->committed = o->offset;
        } else if (p->sent == o->offset) {
            p->sent = p->committed; /* send it again next time */
        }
    }
    pthread_mutex_unlock(m->lock);
    if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    /* Commits fail while the group rebalances; the next owner of a
     * partition then starts at the last committed offset. */
    enum ofe_log_level l = err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
                                   err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
                                   err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID
                               ? OFE_LOG_INFO
                               : OFE_LOG_WARN;
    ofe_log(l, m->component, m->instance, "kafka: commit failed (will retry): %s",
            rd_kafka_err2str(err));
}

rd_kafka_resp_err_t ofe_kafka_member_commit(struct ofe_kafka_member *m,
                                            const rd_kafka_topic_partition_list_t *only, bool sync)
{
    uint64_t now = mono_ms();
    if (!sync && now - m->last_commit < m->commit_ms)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    m->last_commit = now;
    pthread_mutex_lock(m->lock);
    rd_kafka_topic_partition_list_t *l = commit_list(m, only, sync);
    pthread_mutex_unlock(m->lock);
    if (!l)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    /* The outcome comes to the offset commit callback (also for a
     * synchronous commit). */
    rd_kafka_resp_err_t err = rd_kafka_commit(m->rk, l, sync ? 0 : 1);
    if (!sync && err)
        ofe_kafka_member_committed(m, err, l);
    for (int i = 0; sync && !err && i < l->cnt; i++)
        if (l->elems[i].err)
            err = l->elems[i].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (!sync || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    return err;
}

/* ---- fetching ------------------------------------------------------------------ */

void ofe_kafka_member_set_paused(struct ofe_kafka_member *m, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(m->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (l->cnt)
        pause ? rd_kafka_pause_partitions(m->rk, l) : rd_kafka_resume_partitions(m->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    pthread_mutex_lock(m->lock);
    m->paused = pause;
    pthread_mutex_unlock(m->lock);
    OFE_DEBUG(m->component, m->instance, "kafka: group %s: %s fetching", m->group,
              pause ? "paused" : "resumed");
}

bool ofe_kafka_member_paused(struct ofe_kafka_member *m)
{
    pthread_mutex_lock(m->lock);
    bool p = m->paused;
    pthread_mutex_unlock(m->lock);
    return p;
}

void ofe_kafka_member_fetch_error(struct ofe_kafka_member *m, const rd_kafka_message_t *msg)
{
    char text[256];
    snprintf(text, sizeof(text), "%s%s%s: %s", msg->rkt ? rd_kafka_topic_name(msg->rkt) : "",
             msg->rkt ? " " : "", rd_kafka_err2name(msg->err), rd_kafka_message_errstr(msg));
    if (!strcmp(text, m->fetch_err))
        return;
    snprintf(m->fetch_err, sizeof(m->fetch_err), "%s", text);
    OFE_WARN(m->component, m->instance, "kafka: group %s: %s", m->group, text);
}

void ofe_kafka_member_fetch_ok(struct ofe_kafka_member *m)
{
    m->fetch_err[0] = '\0';
}

void ofe_kafka_message_headers(const rd_kafka_message_t *msg, struct ofe_hdrs *h)
{
    rd_kafka_headers_t *kh = NULL;
    if (rd_kafka_message_headers(msg, &kh) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    const char *name;
    const void *val;
    size_t vlen;
    for (size_t i = 0; rd_kafka_header_get_all(kh, i, &name, &val, &vlen) == 0; i++)
        ofe_hdrs_add_ref(h, name, strlen(name), val ? val : "", val ? vlen : 0);
}

/* ---- rebalances ---------------------------------------------------------------- */

static void log_parts(struct ofe_kafka_member *m, const char *what,
                      const rd_kafka_topic_partition_list_t *l)
{
    char buf[512];
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->cnt && n < sizeof(buf) - 40; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s[%d]", i ? " " : "", l->elems[i].topic,
                              (int)l->elems[i].partition);
    OFE_INFO(m->component, m->instance, "kafka: group %s: %s %s", m->group, what,
             l->cnt ? buf : "nothing");
}

static bool cooperative(rd_kafka_t *rk)
{
    return !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
}

void ofe_kafka_member_assign(struct ofe_kafka_member *m, rd_kafka_t *rk,
                             rd_kafka_topic_partition_list_t *parts)
{
    int resumed = ofe_kafka_resume_apply(&m->resume, rk, parts, 5000);
    if (resumed)
        OFE_INFO(m->component, m->instance,
                 "kafka: group %s: %d partitions come back past their committed offset (the "
                 "group refused the commit when they were given up)",
                 m->group, resumed);
    pthread_mutex_lock(m->lock);
    bool paused = m->paused;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &parts->elems[i];
        struct ofe_kafka_part *old = ofe_kafka_member_find_locked(m, e->topic, e->partition);
        if (old)
            part_drop(m, old);
        struct ofe_kafka_part *p = part_add(m, e->topic, e->partition);
        if (!p)
            OFE_ERROR(m->component, m->instance, "kafka: out of memory");
        else if (e->offset >= 0)
            p->t.point = e->offset; /* committed at the next pace */
    }
    pthread_mutex_unlock(m->lock);
    log_parts(m, "assigned", parts);
    if (cooperative(rk)) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
        if (e) {
            OFE_ERROR(m->component, m->instance, "kafka: assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, parts);
    }
    if (paused)
        rd_kafka_pause_partitions(rk, parts);
}

void ofe_kafka_member_revoke(struct ofe_kafka_member *m, rd_kafka_t *rk,
                             const rd_kafka_topic_partition_list_t *parts)
{
    /* Lost partitions (session timed out) belong to another member
     * already: committing for them would fail or overwrite its work. */
    bool lost = rd_kafka_assignment_lost(rk);
    rd_kafka_resp_err_t cerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!lost) {
        cerr = ofe_kafka_member_commit(m, parts, true);
        if (cerr)
            OFE_INFO(m->component, m->instance,
                     "kafka: group %s: commit on revocation refused (%s); should the "
                     "partitions come back here, they resume at the acked point",
                     m->group, rd_kafka_err2str(cerr));
    }
    pthread_mutex_lock(m->lock);
    for (int i = 0; i < parts->cnt; i++) {
        struct ofe_kafka_part *p =
            ofe_kafka_member_find_locked(m, parts->elems[i].topic, parts->elems[i].partition);
        if (!p)
            continue;
        if (cerr && p->t.point > p->committed)
            ofe_kafka_resume_note(&m->resume, p->topic, p->partition, p->t.point);
        part_drop(m, p);
    }
    pthread_mutex_unlock(m->lock);
    log_parts(m, lost ? "lost" : "revoked", parts);
    if (cooperative(rk)) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

void ofe_kafka_member_rebalance_error(struct ofe_kafka_member *m, rd_kafka_t *rk,
                                      rd_kafka_resp_err_t err)
{
    OFE_ERROR(m->component, m->instance, "kafka: group %s: rebalance error: %s", m->group,
              rd_kafka_err2str(err));
    pthread_mutex_lock(m->lock);
    while (m->active)
        part_drop(m, m->active);
    pthread_mutex_unlock(m->lock);
    rd_kafka_assign(rk, NULL);
}
