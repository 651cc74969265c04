/* The jetstream backend: consumer groups as durable pull consumers.
 *
 * A subscription of group G to topics T1..Tn has one durable pull consumer
 * per topic (nats-server 2.9 filters one subject per consumer), named from
 * (durableName, G, Ti) and shared by every member of G, with explicit acks,
 * AckWait / MaxDeliver / BackOff / MaxAckPending from the options. One
 * thread per consumer pulls in batches no larger than the room left under
 * max_inflight (a reservation shared by the threads of one subscription
 * keeps the sum bounded), decodes and delivers.
 *
 * Pulling is the JetStream pull protocol spoken directly over a plain
 * subscription on a private inbox: one request {"batch":k,"expires":1s} at
 * a time, replies to <inbox>.<request number>, status messages (404, 408,
 * 409, 503) ending a request. (cnats 3.4.1's natsSubscription_Fetch was
 * seen returning more messages than the batch it was asked for after a
 * reconnect; this way every delivery is counted against max_inflight, and
 * one that arrives for a request already given up waits for room.)
 *
 * ack = "+ACK" on the message's reply subject (asynchronous: a lost ack
 * means one more delivery, never a lost event); nack = "-NAK" with the
 * delay (the server owns the redelivery); a message left by a member that
 * stops is given back with a Nak so another member gets it at once; one
 * held by a member that dies is redelivered by the server after AckWait.
 * The redelivery count comes from the message's JetStream metadata in its
 * reply subject ($JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.
 * <ts>.<pending>): delivered - 1. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "pubsub_jetstream_int.h"

#define FETCH_MAX       256  /* messages per pull request at most */
#define PULL_EXPIRES_MS 1000 /* how long the server keeps a pull request */
#define PULL_GRACE_MS   250  /* after which a request surely brings nothing */
#define WAIT_MS         200  /* longest wait in the loop: bounds how long stop takes */
#define UPDATE_TRIES    3    /* failed updates of a consumer's settings before keeping them */

struct jsub;

/* One consumer: one (group, topic). */
struct jcons {
    struct jsub *s;
    const char *topic; /* the subscription's copy */
    char durable[OFE_JS_NAME_MAX + 1];
    char filter[1024];
    char next_subj[OFE_JS_NAME_MAX * 2 + 64]; /* $JS.API.CONSUMER.MSG.NEXT.<stream>.<durable> */
    natsSubscription *nsub;                   /* on <inbox>.*, NULL until the consumer is made */
    char inbox[128];
    struct ofe_hdrs hdrs; /* decoding scratch of the consumer's thread */
    uint64_t reqid;       /* number of the request in progress (0: none) */
    unsigned req_left;    /* deliveries it may still bring (reserved) */
    uint64_t req_end_ns;  /* when it surely brings nothing more */
    uint32_t pause_ms;    /* wait before the next request (after a 409) */
    pthread_t thr;
    bool started;
    unsigned attempt;
    unsigned update_failures; /* in a row, for this consumer */
    char err[300];
    struct ofe_gauge *g_pending;
};

/* Per-message data (ofe_msg.priv): the NATS message until ack/nack, and
 * the list of messages still held, freed at release when the consumer
 * never resolved them (bus closed under it). */
struct jmsg {
    natsMsg *nm;
    struct jmsg *prev, *next;
};

struct jsub {
    struct js_bus *b;
    struct ofe_sub *sub;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    unsigned reserved; /* fetched or being fetched, not yet delivered */
    struct jmsg *held; /* delivered, not yet resolved */
    size_t ncons;
    struct jcons cons[];
};

/* FNV-1a, 32 bits. */
static uint32_t fnv(uint32_t h, const char *s)
{
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static size_t put_sanitized(char *out, size_t at, size_t max, const char *s)
{
    for (; s && *s && at < max; s++)
        out[at++] = (isalnum((unsigned char)*s) || *s == '-' || *s == '_') ? *s : '_';
    return at;
}

void js__consumer_name(const char *prefix, const char *group, const char *topic, char *out,
                       size_t out_size)
{
    uint32_t h = 2166136261u;
    h = fnv(h, prefix);
    h = fnv(fnv(h, "\x01"), group);
    h = fnv(fnv(h, "\x01"), topic);
    size_t max = out_size - 10 < OFE_JS_NAME_MAX - 9 ? out_size - 10 : OFE_JS_NAME_MAX - 9;
    size_t at = 0;
    if (prefix && *prefix) {
        at = put_sanitized(out, at, max, prefix);
        if (at < max)
            out[at++] = '_';
    }
    at = put_sanitized(out, at, max, group);
    if (topic && at < max)
        out[at++] = '_';
    at = put_sanitized(out, at, max, topic);
    snprintf(out + at, out_size - at, "_%08" PRIx32, h);
}

static void sleep_or_stop(struct jsub *s, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (uint64_t)ms * 1000000u;
    ts.tv_sec = (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    pthread_mutex_lock(&s->lock);
    while (!s->stop && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&s->lock);
}

static bool stopping(struct jsub *s)
{
    pthread_mutex_lock(&s->lock);
    bool st = s->stop;
    pthread_mutex_unlock(&s->lock);
    return st;
}

static bool same_backoff(const jsConsumerConfig *c, const struct js_bus *b)
{
    if (c->BackOffLen != b->nbackoff)
        return false;
    for (int i = 0; i < b->nbackoff; i++)
        if (c->BackOff[i] != b->backoff_ns[i])
            return false;
    return true;
}

/* Creates the durable consumer (or brings an existing one's settings in
 * line) and binds a pull subscription to it. Returns 0 or an error with
 * errstr. */
static int make_consumer(struct jcons *c, char *errstr, size_t errstr_size)
{
    struct js_bus *b = c->s->b;
    const struct ofe_sub_opts *o = ofe_sub__opts(c->s->sub);
    char txt[256];
    jsErrCode jerr = 0;
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_GetConsumerInfo(&ci, b->js, b->stream, c->durable, NULL, &jerr);
    if (s == NATS_OK) {
        jsConsumerConfig *cc = ci->Config;
        if (cc->FilterSubject && strcmp(cc->FilterSubject, c->filter) != 0) {
            int rc = ofe_err(errstr, errstr_size, OFE_EEXIST,
                             "consumer %s exists on stream %s with filter %s, not %s", c->durable,
                             b->stream, cc->FilterSubject, c->filter);
            jsConsumerInfo_Destroy(ci);
            return rc;
        }
        bool change = (b->ack_wait_ms > 0 && cc->AckWait != b->ack_wait_ms * 1000000) ||
                      (b->max_deliver != 0 && cc->MaxDeliver != b->max_deliver) ||
                      (b->max_ack_pending != 0 && cc->MaxAckPending != b->max_ack_pending) ||
                      (b->nbackoff && !same_backoff(cc, b));
        if (change) {
            jsConsumerConfig u = *cc;
            /* the server's copy may name the consumer only in Name: an update
             * needs the durable name */
            if (!u.Durable || !*u.Durable)
                u.Durable = c->durable;
            if (b->ack_wait_ms > 0)
                u.AckWait = b->ack_wait_ms * 1000000;
            if (b->max_deliver != 0)
                u.MaxDeliver = b->max_deliver;
            if (b->max_ack_pending != 0)
                u.MaxAckPending = b->max_ack_pending;
            if (b->nbackoff) {
                u.BackOff = b->backoff_ns;
                u.BackOffLen = b->nbackoff;
            }
            jsConsumerInfo *nci = NULL;
            s = js_UpdateConsumer(&nci, b->js, b->stream, &u, NULL, &jerr);
            jsConsumerInfo_Destroy(nci);
            if (s != NATS_OK && ++c->update_failures < UPDATE_TRIES) {
                /* Try again from the lookup: the consumer may be going away
                 * (an operator deleting it: nats-server 2.9 then answers
                 * "error creating store for consumer" and a pull on it never
                 * gets an answer), and the next lookup creates it afresh. */
                int rc = ofe_err(errstr, errstr_size, OFE_EREMOTE,
                                 "consumer %s: the update of its settings failed: %s", c->durable,
                                 js__errtext(s, txt, sizeof(txt)));
                jsConsumerInfo_Destroy(ci);
                return rc;
            }
            if (s != NATS_OK)
                OFE_WARN(b->comp, "jetstream",
                         "consumer %s: keeping its settings, the update failed %u times: %s",
                         c->durable, c->update_failures, js__errtext(s, txt, sizeof(txt)));
            else
                OFE_INFO(b->comp, "jetstream",
                         "consumer %s: updated ackWait/maxDeliver/backOff/maxAckPending",
                         c->durable);
        }
        c->update_failures = 0;
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
    } else if (jerr == JSConsumerNotFoundErr) {
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        char descr[400];
        snprintf(descr, sizeof(descr), "ofevents group %s, topic %s", o->group, c->topic);
        cc.Durable = c->durable;
        cc.Description = descr;
        cc.AckPolicy = js_AckExplicit;
        cc.ReplayPolicy = js_ReplayInstant;
        cc.FilterSubject = c->filter;
        int policy = b->deliver_policy;
        if (o->start == OFE_START_OLDEST)
            policy = OFE_CONFIG_DELIVER_ALL;
        else if (o->start == OFE_START_NEWEST)
            policy = OFE_CONFIG_DELIVER_NEW;
        switch (policy) {
        case OFE_CONFIG_DELIVER_LAST:
            cc.DeliverPolicy = js_DeliverLast;
            break;
        case OFE_CONFIG_DELIVER_NEW:
            cc.DeliverPolicy = js_DeliverNew;
            break;
        case OFE_CONFIG_DELIVER_SEQUENCE:
            cc.DeliverPolicy = js_DeliverByStartSequence;
            cc.OptStartSeq = (uint64_t)b->start_sequence;
            break;
        case OFE_CONFIG_DELIVER_TIME: {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            int64_t t = b->start_time_s > 0 ? b->start_time_s * 1000000000
                                            : (int64_t)now.tv_sec * 1000000000 + now.tv_nsec -
                                                  b->start_time_delta_ms * 1000000;
            cc.DeliverPolicy = js_DeliverByStartTime;
            cc.OptStartTime = t;
            break;
        }
        default:
            cc.DeliverPolicy = js_DeliverAll;
        }
        if (b->ack_wait_ms > 0)
            cc.AckWait = b->ack_wait_ms * 1000000;
        if (b->max_deliver != 0)
            cc.MaxDeliver = b->max_deliver;
        if (b->max_ack_pending != 0)
            cc.MaxAckPending = b->max_ack_pending;
        if (b->nbackoff) {
            cc.BackOff = b->backoff_ns;
            cc.BackOffLen = b->nbackoff;
        }
        s = js_AddConsumer(&ci, b->js, b->stream, &cc, NULL, &jerr);
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        if (s != NATS_OK)
            return ofe_err(errstr, errstr_size, OFE_EREMOTE,
                           "cannot create consumer %s on stream %s: %s", c->durable, b->stream,
                           js__errtext(s, txt, sizeof(txt)));
        OFE_INFO(b->comp, "jetstream", "created consumer %s (group %s, subject %s)", c->durable,
                 o->group, c->filter);
    } else {
        return ofe_err(errstr, errstr_size, OFE_EREMOTE, "cannot look up consumer %s: %s",
                       c->durable, js__errtext(s, txt, sizeof(txt)));
    }
    natsInbox *inbox = NULL;
    s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        snprintf(c->inbox, sizeof(c->inbox), "%s", (const char *)inbox);
        char wild[160];
        snprintf(wild, sizeof(wild), "%s.*", c->inbox);
        s = natsConnection_SubscribeSync(&c->nsub, b->nc, wild);
    }
    natsInbox_Destroy(inbox);
    if (s != NATS_OK)
        return ofe_err(errstr, errstr_size, OFE_EREMOTE, "cannot subscribe for consumer %s: %s",
                       c->durable, js__errtext(s, txt, sizeof(txt)));
    /* a request's messages queue here until delivered: bounded by its batch */
    natsSubscription_SetPendingLimits(c->nsub, -1, -1);
    snprintf(c->next_subj, sizeof(c->next_subj), "$JS.API.CONSUMER.MSG.NEXT.%s.%s", b->stream,
             c->durable);
    c->reqid = 0;
    c->req_left = 0;
    return 0;
}

/* Takes room for up to FETCH_MAX messages under max_inflight. Returns the
 * count reserved (0: none now). */
static unsigned reserve(struct jsub *s)
{
    unsigned cap = ofe_sub__capacity(s->sub);
    pthread_mutex_lock(&s->lock);
    unsigned k = cap > s->reserved ? cap - s->reserved : 0;
    if (k > FETCH_MAX)
        k = FETCH_MAX;
    s->reserved += k;
    pthread_mutex_unlock(&s->lock);
    return k;
}

static void unreserve(struct jsub *s, unsigned k)
{
    pthread_mutex_lock(&s->lock);
    s->reserved -= k;
    pthread_mutex_unlock(&s->lock);
}

/* Reads the delivery count and the pending count from a JetStream reply
 * subject: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.
 * <pending> (9 tokens), or the form with domain and account hash
 * ($JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>..., 11 or 12
 * tokens). Returns false when it is not one. */
static bool parse_ack_subject(const char *r, uint64_t *delivered, uint64_t *pending)
{
    if (!r || strncmp(r, "$JS.ACK.", 8) != 0)
        return false;
    const char *tok[14];
    size_t len[14], n = 0;
    const char *p = r;
    while (n < 14) {
        const char *dot = strchr(p, '.');
        tok[n] = p;
        len[n] = dot ? (size_t)(dot - p) : strlen(p);
        n++;
        if (!dot)
            break;
        p = dot + 1;
    }
    size_t di, pi;
    if (n == 9) {
        di = 4;
        pi = 8;
    } else if (n == 11 || n == 12) {
        di = 6;
        pi = 10;
    } else {
        return false;
    }
    uint64_t v[2] = {0, 0};
    size_t idx[2] = {di, pi};
    for (int k = 0; k < 2; k++) {
        if (!len[idx[k]] || len[idx[k]] > 19)
            return false;
        for (size_t i = 0; i < len[idx[k]]; i++) {
            char ch = tok[idx[k]][i];
            if (ch < '0' || ch > '9')
                return false;
            v[k] = v[k] * 10 + (uint64_t)(ch - '0');
        }
    }
    *delivered = v[0];
    *pending = v[1];
    return true;
}

/* Sends an acknowledgement body ("+ACK", "-NAK ...") for a delivery. */
static natsStatus send_ack(struct jsub *s, natsMsg *nm, const char *body)
{
    const char *reply = natsMsg_GetReply(nm);
    if (!reply || !*reply)
        return NATS_ILLEGAL_STATE;
    return natsConnection_Publish(s->b->nc, reply, body, (int)strlen(body));
}

/* Turns one fetched NATS message into an ofe_msg and delivers it. */
static void deliver(struct jcons *c, natsMsg *nm)
{
    struct jsub *s = c->s;
    struct ofe_msg *m = ofe_msg__new(s->sub, c->topic, sizeof(struct jmsg));
    if (!m) {
        send_ack(s, nm, "-NAK");
        natsMsg_Destroy(nm);
        return;
    }
    struct jmsg *jm = (struct jmsg *)m->priv;
    jm->nm = nm;
    uint64_t delivered = 0, pending = 0;
    if (parse_ack_subject(natsMsg_GetReply(nm), &delivered, &pending)) {
        m->redeliveries = delivered > 1 ? (uint32_t)(delivered - 1) : 0;
        ofe_gauge_set(c->g_pending, (double)pending);
    }
    struct ofe_hdrs *h = &c->hdrs;
    ofe_hdrs_reset(h);
    const char **keys = NULL;
    int nkeys = 0;
    if (natsMsgHeader_Keys(nm, &keys, &nkeys) == NATS_OK) {
        for (int i = 0; i < nkeys; i++) {
            const char *v = NULL;
            if (natsMsgHeader_Get(nm, keys[i], &v) == NATS_OK && v)
                ofe_hdrs_add_ref(h, keys[i], strlen(keys[i]), v, strlen(v));
        }
        free((void *)keys);
    }
    char why[512];
    const char *data = natsMsg_GetData(nm);
    int len = natsMsg_GetDataLength(nm);
    struct ofe_ce *ev = NULL;
    if (ofe_ce_nats_decode(h, data, (size_t)(len > 0 ? len : 0), OFE_CE_BIND_TYPEHINTS, &ev, why,
                           sizeof(why)) == 0)
        m->ev = ev;
    else
        ofe_msg__set_invalid(m, data, (size_t)(len > 0 ? len : 0), why);
    ofe_hdrs_reset(h);
    pthread_mutex_lock(&s->lock);
    jm->next = s->held;
    if (s->held)
        s->held->prev = jm;
    s->held = jm;
    pthread_mutex_unlock(&s->lock);
    ofe_sub__deliver(s->sub, m);
}

static void drop_binding(struct jcons *c)
{
    if (c->nsub) {
        natsSubscription_Unsubscribe(c->nsub);
        natsSubscription_Destroy(c->nsub);
        c->nsub = NULL;
    }
    if (c->reqid && c->req_left)
        unreserve(c->s, c->req_left);
    c->reqid = 0;
    c->req_left = 0;
}

static void end_request(struct jcons *c)
{
    if (c->req_left)
        unreserve(c->s, c->req_left);
    c->reqid = 0;
    c->req_left = 0;
}

/* Sends a pull request for up to k messages (k already reserved). */
static natsStatus send_pull(struct jcons *c, unsigned k)
{
    static uint64_t seq;
    char reply[200], body[96];
    uint64_t id = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    snprintf(reply, sizeof(reply), "%s.%" PRIu64, c->inbox, id);
    int n = snprintf(body, sizeof(body), "{\"batch\":%u,\"expires\":%" PRIu64 "}", k,
                     (uint64_t)PULL_EXPIRES_MS * 1000000u);
    natsStatus st = natsConnection_PublishRequest(c->s->b->nc, c->next_subj, reply, body, n);
    if (st == NATS_OK) {
        c->reqid = id;
        c->req_left = k;
        c->req_end_ns = js__now_ns() + (uint64_t)(PULL_EXPIRES_MS + PULL_GRACE_MS) * 1000000u;
    }
    return st;
}

/* The request number a reply subject <inbox>.<n> names, or 0. */
static uint64_t reply_id(const struct jcons *c, const char *subj)
{
    size_t il = strlen(c->inbox);
    if (!subj || strncmp(subj, c->inbox, il) != 0 || subj[il] != '.')
        return 0;
    return strtoull(subj + il + 1, NULL, 10);
}

/* Waits for room for one delivery that came outside a reservation (a
 * request already given up). Returns false when stopping. */
static bool reserve_one(struct jsub *s)
{
    for (;;) {
        unsigned cap = ofe_sub__capacity(s->sub);
        pthread_mutex_lock(&s->lock);
        bool ok = cap > s->reserved;
        if (ok)
            s->reserved++;
        bool stop = s->stop;
        pthread_mutex_unlock(&s->lock);
        if (ok)
            return true;
        if (stop)
            return false;
        ofe_sub__wait_capacity(s->sub, WAIT_MS);
    }
}

/* One status message (no data, a Status header) of the pull protocol. */
static void on_status(struct jcons *c, natsMsg *nm, const char *code)
{
    struct js_bus *b = c->s->b;
    uint64_t id = reply_id(c, natsMsg_GetSubject(nm));
    const char *desc = NULL;
    natsMsgHeader_Get(nm, "Description", &desc);
    if (!strcmp(code, "100"))
        return; /* idle heartbeat */
    if (!strcmp(code, "503")) {
        /* nobody answers for the consumer: it (or the stream) is gone */
        drop_binding(c);
        js__stream_suspect(b);
        return;
    }
    if (!strcmp(code, "409") && desc && strstr(desc, "Consumer Deleted")) {
        OFE_WARN(b->comp, "jetstream", "consumer %s was deleted; making it again", c->durable);
        drop_binding(c);
        return;
    }
    if (!strcmp(code, "409")) {
        /* too many members waiting on this consumer, or a limit: pause */
        OFE_DEBUG(b->comp, "jetstream", "consumer %s: %s %s", c->durable, code, desc ? desc : "");
        c->pause_ms = 100;
    }
    if (id && id == c->reqid)
        end_request(c); /* 404, 408, 409: this request brings nothing more */
}

static void *cons_run(void *arg)
{
    struct jcons *c = arg;
    struct jsub *s = c->s;
    struct js_bus *b = s->b;
    pthread_setname_np(pthread_self(), "ofe-js-cons");
    char err[512];
    while (!stopping(s)) {
        if (!c->nsub) {
            if (!js__usable(b)) {
                sleep_or_stop(s, 100);
                continue;
            }
            if (make_consumer(c, err, sizeof(err)) != 0) {
                if (strcmp(c->err, err) != 0)
                    OFE_WARN(b->comp, "jetstream", "%s", err);
                js__copy(c->err, sizeof(c->err), err);
                sleep_or_stop(s, ofe_pubsub__backoff_ms(c->attempt++, 100, 5000) + 50);
                continue;
            }
            c->err[0] = '\0';
        }
        uint64_t now = js__now_ns();
        if (c->reqid && now >= c->req_end_ns)
            end_request(c);
        if (!c->reqid && c->pause_ms) {
            sleep_or_stop(s, c->pause_ms);
            c->pause_ms = 0;
            continue;
        }
        if (!c->reqid) {
            if (natsConnection_Status(b->nc) != NATS_CONN_STATUS_CONNECTED) {
                /* a request buffered while disconnected would come back
                 * late: pull only on a live connection */
                sleep_or_stop(s, 50);
                continue;
            }
            unsigned k = reserve(s);
            if (!k) {
                ofe_sub__wait_capacity(s->sub, WAIT_MS);
                continue;
            }
            natsStatus st = send_pull(c, k);
            if (st != NATS_OK) {
                unreserve(s, k);
                sleep_or_stop(s, ofe_pubsub__backoff_ms(c->attempt++, 50, 2000) + 20);
                continue;
            }
            now = js__now_ns();
        }
        int64_t wait = (int64_t)((c->req_end_ns > now ? c->req_end_ns - now : 0) / 1000000u);
        if (wait > WAIT_MS)
            wait = WAIT_MS;
        natsMsg *nm = NULL;
        natsStatus st = natsSubscription_NextMsg(&nm, c->nsub, wait > 0 ? wait : 1);
        if (st == NATS_TIMEOUT)
            continue;
        if (st != NATS_OK) {
            /* slow consumer notices and the like: the request is lost */
            js__errtext(st, err, sizeof(err));
            OFE_DEBUG(b->comp, "jetstream", "consumer %s: %s", c->durable, err);
            end_request(c);
            if (st == NATS_CONNECTION_CLOSED || st == NATS_INVALID_SUBSCRIPTION)
                drop_binding(c);
            sleep_or_stop(s, 50);
            continue;
        }
        const char *code = NULL;
        if (natsMsg_GetDataLength(nm) == 0 && natsMsgHeader_Get(nm, "Status", &code) == NATS_OK &&
            code) {
            on_status(c, nm, code);
            natsMsg_Destroy(nm);
            continue;
        }
        c->attempt = 0;
        /* deliveries carry the stream subject, not the request's: count
         * them against the request in progress, the rest waits for room */
        bool counted = c->reqid && c->req_left > 0;
        if (counted) {
            c->req_left--; /* its unit of the reservation moves to in flight */
        } else if (!reserve_one(s)) {
            send_ack(s, nm, "-NAK");
            natsMsg_Destroy(nm);
            continue;
        }
        deliver(c, nm);
        unreserve(s, 1);
        if (counted && c->req_left == 0)
            c->reqid = 0; /* the request is complete */
    }
    end_request(c);
    return NULL;
}

int js__subscribe(void *ctx, struct ofe_sub *sub, void **sctx, char *errstr, size_t errstr_size)
{
    struct js_bus *b = ctx;
    const struct ofe_sub_opts *o = ofe_sub__opts(sub);
    struct jsub *s = calloc(1, sizeof(*s) + o->ntopics * sizeof(struct jcons));
    if (!s)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    s->b = b;
    s->sub = sub;
    s->ncons = o->ntopics;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&s->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = 0;
    for (size_t i = 0; i < s->ncons && !rc; i++) {
        struct jcons *c = &s->cons[i];
        c->s = s;
        c->topic = o->topics[i];
        ofe_hdrs_init(&c->hdrs);
        rc = js__subject(b, c->topic, c->filter, sizeof(c->filter), errstr, errstr_size);
        for (size_t j = 0; j < i && !rc; j++)
            if (!strcmp(s->cons[j].topic, c->topic))
                rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "subscribe: topic \"%s\" given twice",
                             c->topic);
        js__consumer_name(b->durable_prefix, o->group, c->topic, c->durable, sizeof(c->durable));
        const char *lb[] = {"backend", "jetstream", "group", o->group, "topic", c->topic, NULL};
        c->g_pending =
            ofe_metrics_gauge(ofe_bus__metrics(b->bus), "ofe_bus_consumer_pending",
                              "Messages in the stream not yet delivered to the group", lb);
    }
    for (size_t i = 0; i < s->ncons && !rc; i++) {
        if (pthread_create(&s->cons[i].thr, NULL, cons_run, &s->cons[i]) != 0)
            rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "jetstream: cannot start a thread");
        else
            s->cons[i].started = true;
    }
    if (rc) {
        js__stop(b, s);
        js__release(b, s);
        return rc;
    }
    *sctx = s;
    return 0;
}

void js__stop(void *ctx, void *sctx)
{
    struct jsub *s = sctx;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < s->ncons; i++)
        if (s->cons[i].started) {
            pthread_join(s->cons[i].thr, NULL);
            s->cons[i].started = false;
        }
    /* Deliveries that arrived and were not handed out go back at once;
     * unsubscribing stops more (what is on the wire waits for AckWait). */
    for (size_t i = 0; i < s->ncons; i++) {
        struct jcons *c = &s->cons[i];
        if (!c->nsub)
            continue;
        natsSubscription_Unsubscribe(c->nsub);
        natsMsg *nm = NULL;
        while (natsSubscription_NextMsg(&nm, c->nsub, 0) == NATS_OK) {
            if (natsMsg_GetReply(nm) && !strncmp(natsMsg_GetReply(nm), "$JS.ACK.", 8))
                send_ack(s, nm, "-NAK");
            natsMsg_Destroy(nm);
        }
    }
}

void js__release(void *ctx, void *sctx)
{
    struct jsub *s = sctx;
    /* Messages nobody will resolve any more (the bus closed under them):
     * the server redelivers them after AckWait. */
    struct jmsg *jm = s->held;
    while (jm) {
        struct jmsg *n = jm->next;
        natsMsg_Destroy(jm->nm);
        jm->nm = NULL;
        jm = n;
    }
    s->held = NULL;
    for (size_t i = 0; i < s->ncons; i++) {
        if (s->cons[i].nsub) {
            natsSubscription_Unsubscribe(s->cons[i].nsub);
            natsSubscription_Destroy(s->cons[i].nsub);
        }
        ofe_hdrs_fini(&s->cons[i].hdrs);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

/* Takes m's NATS message out of the held list. */
static natsMsg *take(struct jsub *s, struct ofe_msg *m)
{
    struct jmsg *jm = (struct jmsg *)m->priv;
    pthread_mutex_lock(&s->lock);
    natsMsg *nm = jm->nm;
    if (nm) {
        if (jm->prev)
            jm->prev->next = jm->next;
        else
            s->held = jm->next;
        if (jm->next)
            jm->next->prev = jm->prev;
        jm->nm = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    return nm;
}

void js__ack(void *ctx, void *sctx, struct ofe_msg *m)
{
    struct jsub *s = sctx;
    natsMsg *nm = take(s, m);
    if (!nm)
        return;
    natsStatus st = send_ack(s, nm, "+ACK");
    if (st != NATS_OK) {
        char txt[256];
        OFE_DEBUG(s->b->comp, "jetstream", "ack lost (%s): the event comes again after AckWait",
                  js__errtext(st, txt, sizeof(txt)));
    }
    natsMsg_Destroy(nm);
}

void js__nack(void *ctx, void *sctx, struct ofe_msg *m, uint32_t delay_ms)
{
    struct jsub *s = sctx;
    natsMsg *nm = take(s, m);
    if (!nm)
        return;
    char body[64];
    if (delay_ms)
        snprintf(body, sizeof(body), "-NAK {\"delay\": %" PRIu64 "}",
                 (uint64_t)delay_ms * 1000000u);
    else
        snprintf(body, sizeof(body), "-NAK");
    send_ack(s, nm, body);
    natsMsg_Destroy(nm);
}

void js__abandon(void *ctx, void *sctx, struct ofe_msg *m)
{
    /* give it back now: another member need not wait for AckWait */
    js__nack(ctx, sctx, m, 0);
}
