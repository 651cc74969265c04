/* The event loop, connections, command dispatch, blocking reads,
 * durability holds and client limits of ofe-eventbus (see server.h).
 *
 * Flow of one loop iteration, as in Redis: epoll_wait; read from ready
 * clients and run every complete command (replies go to per-client output
 * buffers; clients blocked on keys that became ready are served right
 * after each command); then, before sleeping again: write buffered log
 * records and hand them to the fsync thread (bus_store_flush), release
 * replies whose data is durable, write replies to sockets. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "ofe/metrics.h"
#include "tls.h"

#define COMP                        "eventbus"
#define READ_LEN                    (64 * 1024)
#define HTTP_QUEUE_MAX              1024
#define XREAD_BLOCKED_DEFAULT_COUNT 1000

enum { K_LISTENER = 1, K_CLIENT, K_WAKE };

struct ev_tag {
    int kind;
};

struct hold {
    uint64_t start; /* absolute output offset from which bytes wait */
    uint64_t seq;   /* store sequence that must be durable */
};

struct bus_block {
    size_t argc;
    char **argv;
    size_t *argl;
    size_t streams_arg, nkeys;
    struct bus_id *ids;
    uint64_t deadline;              /* 0 = forever */
    struct bus_client *next, *prev; /* server's blocked list */
};

#define CF_CLOSE_AFTER_REPLY 0x1u
#define CF_CLOSE_ASAP        0x2u
#define CF_IN_WLIST          0x4u
#define CF_IN_HELD           0x8u
#define CF_SERVING_BLOCKED   0x10u
#define CF_STILL_BLOCKED     0x20u
#define CF_EPOLLOUT          0x40u
#define CF_LOCAL             0x80u /* no socket: fed by bus_client_feed */

struct bus_client {
    struct ev_tag tag;
    int fd;
    uint64_t id;
    struct bus_server *srv;
    struct bus_tls_conn *tls;
    char *ib;
    size_t ilen, icap;
    struct resp_parser rp;
    struct ofe_buf ob;
    size_t osent;
    uint64_t obase;
    struct hold *holds;
    size_t nholds, hcap, hhead;
    unsigned flags;
    bool authed;
    char *name;
    uint64_t ctime_ms, last_ms;
    uint64_t ncmds;
    const char *last_cmd;
    struct bus_block *blk;
    struct bus_client *next, *prev;   /* all clients */
    struct bus_client *wnext;         /* pending write list */
    struct bus_client *hnext, *hprev; /* held list */
    char addr[64];
};

struct bus_server {
    struct bus_server_opts o;
    char *bind, *requirepass;
    int epfd, lfd, wakefd;
    uint16_t port;
    struct ev_tag listener_tag, wake_tag;
    struct bus_store *store;
    struct bus_tls_ctx *tls;
    struct bus_dict keys;     /* name -> struct bus_stream */
    struct bus_dict blocking; /* name -> struct waitq */
    struct bus_client *clients;
    size_t nclients;
    uint64_t next_client_id;
    struct bus_client *wlist;
    struct bus_client *held;
    struct bus_client *blocked;
    size_t nblocked;
    struct bus_stream *ready;
    uint64_t now;
    uint64_t start_ms;
    uint64_t last_cron, last_slow_cron;
    atomic_bool stop;
    /* HTTP ingress */
    pthread_mutex_t qmu;
    struct bus_append_job *qhead, *qtail;
    size_t qlen;
    bool qclosed;
    struct bus_append_job *jobs_waiting; /* appended, not yet durable */
    /* stats */
    uint64_t total_conns, total_cmds, rejected_conns, total_appends, total_reads;
    /* metrics */
    struct ofe_metrics *m;
    struct ofe_counter *m_appends, *m_bytes, *m_reads, *m_acks, *m_conns, *m_cmds;
    struct ofe_gauge *m_clients, *m_blocked, *m_streams, *m_disk;
    struct ofe_histogram *m_fsync;
    bool failed_reported;
};

/* Waiters on one key, in blocking order. */
struct waitq {
    struct bus_client **v;
    size_t n, cap;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- small accessors --------------------------------------------------- */

struct ofe_buf *bus_client_out(struct bus_client *c)
{
    return &c->ob;
}
struct bus_server *bus_client_server(struct bus_client *c)
{
    return c->srv;
}
uint64_t bus_client_id(const struct bus_client *c)
{
    return c->id;
}
uint64_t bus_now_ms(const struct bus_server *srv)
{
    return srv->now;
}
struct bus_store *bus_server_store(struct bus_server *srv)
{
    return srv->store;
}
uint16_t bus_server_port(const struct bus_server *srv)
{
    return srv->port;
}
const char *bus_client_name(const struct bus_client *c)
{
    return c->name;
}
bool bus_client_authed(const struct bus_client *c)
{
    return c->authed;
}
void bus_client_set_authed(struct bus_client *c, bool v)
{
    c->authed = v;
    c->rp.unauthenticated = c->srv->requirepass && !v;
}
void bus_client_close_after_reply(struct bus_client *c)
{
    c->flags |= CF_CLOSE_AFTER_REPLY;
}
const char *bus_server_requirepass(const struct bus_server *srv)
{
    return srv->requirepass;
}
size_t bus_server_max_event(const struct bus_server *srv)
{
    return srv->o.max_event_size;
}
bool bus_client_serving_blocked(const struct bus_client *c)
{
    return (c->flags & CF_SERVING_BLOCKED) != 0;
}

int bus_client_set_name(struct bus_client *c, const char *name, size_t len)
{
    char *n = NULL;
    if (len) {
        n = malloc(len + 1);
        if (!n)
            return OFE_ENOMEM;
        memcpy(n, name, len);
        n[len] = '\0';
    }
    free(c->name);
    c->name = n;
    return 0;
}

void bus_count_reads(struct bus_server *srv, uint64_t n)
{
    srv->total_reads += n;
    ofe_counter_add(srv->m_reads, n);
}
void bus_count_acks(struct bus_server *srv, uint64_t n)
{
    ofe_counter_add(srv->m_acks, n);
}
void bus_count_appends(struct bus_server *srv, uint64_t n, uint64_t bytes)
{
    srv->total_appends += n;
    ofe_counter_add(srv->m_appends, n);
    ofe_counter_add(srv->m_bytes, bytes);
}

/* ---- keyspace ------------------------------------------------------------ */

struct bus_stream *bus_db_get(struct bus_server *srv, const char *key, size_t klen)
{
    return bus_dict_get(&srv->keys, key, klen);
}

size_t bus_db_size(const struct bus_server *srv)
{
    return srv->keys.n;
}

struct bus_stream *bus_db_create(struct bus_server *srv, struct bus_client *c, const char *key,
                                 size_t klen)
{
    char err[256];
    struct bus_stream *s = bus_stream_new(key, klen);
    if (!s) {
        if (c)
            resp_add_error(&c->ob, "out of memory");
        return NULL;
    }
    if (bus_log_create(srv->store, s, err, sizeof(err)) != 0) {
        if (c)
            resp_add_errorf(&c->ob, "cannot create stream: %s", err);
        bus_stream_free(s);
        return NULL;
    }
    if (bus_dict_set(&srv->keys, key, klen, s) != 0) {
        bus_log_destroy(s->log);
        bus_stream_free(s);
        if (c)
            resp_add_error(&c->ob, "out of memory");
        return NULL;
    }
    return s;
}

void bus_group_metric_add(struct bus_server *srv, struct bus_group *g)
{
    (void)srv;
    (void)g; /* series are (re)created by the cron from the live groups */
}

void bus_group_metric_del(struct bus_server *srv, struct bus_group *g)
{
    if (srv->m)
        ofe_metrics_remove_by_label(srv->m, "group", g->name);
}

static void unlink_ready(struct bus_server *srv, struct bus_stream *s)
{
    if (!s->ready)
        return;
    struct bus_stream **pp = &srv->ready;
    while (*pp && *pp != s)
        pp = &(*pp)->ready_next;
    if (*pp)
        *pp = s->ready_next;
    s->ready = false;
}

static void serve_key(struct bus_server *srv, const char *key, size_t klen, bool deleted);

void bus_db_delete(struct bus_server *srv, struct bus_stream *s)
{
    unlink_ready(srv, s);
    size_t pos = 0;
    struct bus_dict_ent *e;
    while ((e = bus_dict_next(&s->groups, &pos)))
        bus_group_metric_del(srv, e->val);
    char *name = malloc(s->nlen + 1);
    size_t nlen = s->nlen;
    if (name)
        memcpy(name, s->name, nlen);
    bus_dict_del(&srv->keys, s->name, s->nlen);
    bus_log_destroy(s->log);
    bus_stream_free(s);
    if (name) {
        serve_key(srv, name, nlen, true);
        free(name);
    }
}

void bus_db_flush(struct bus_server *srv)
{
    while (srv->keys.n) {
        size_t pos = 0;
        struct bus_dict_ent *e = bus_dict_next(&srv->keys, &pos);
        bus_db_delete(srv, e->val);
    }
}

void bus_signal_ready(struct bus_server *srv, struct bus_stream *s)
{
    if (s->ready || !bus_dict_get(&srv->blocking, s->name, s->nlen))
        return;
    s->ready = true;
    s->ready_next = srv->ready;
    srv->ready = s;
}

/* ---- output and holds ------------------------------------------------------- */

static void want_write(struct bus_client *c)
{
    if (c->flags & CF_IN_WLIST)
        return;
    c->flags |= CF_IN_WLIST;
    c->wnext = c->srv->wlist;
    c->srv->wlist = c;
}

static void held_add(struct bus_client *c)
{
    if (c->flags & CF_IN_HELD)
        return;
    c->flags |= CF_IN_HELD;
    c->hprev = NULL;
    c->hnext = c->srv->held;
    if (c->srv->held)
        c->srv->held->hprev = c;
    c->srv->held = c;
}

static void held_del(struct bus_client *c)
{
    if (!(c->flags & CF_IN_HELD))
        return;
    c->flags &= ~CF_IN_HELD;
    if (c->hprev)
        c->hprev->hnext = c->hnext;
    else
        c->srv->held = c->hnext;
    if (c->hnext)
        c->hnext->hprev = c->hprev;
}

/* The sequence number that makes durable everything a reply written now
 * may depend on: writes still buffered, or handed over but not synced. */
static uint64_t needed_seq(struct bus_server *srv)
{
    return bus_store_flush_pending(srv->store);
}

/* Called after the client produced output starting at start. */
static void after_reply(struct bus_client *c, uint64_t start)
{
    if (c->ob.len + c->obase > start || c->nholds) {
        uint64_t need = needed_seq(c->srv);
        if (need > bus_store_durable(c->srv->store)) {
            if (c->nholds == 0 || c->holds[(c->hhead + c->nholds - 1) % c->hcap].seq < need) {
                if (c->nholds == c->hcap) {
                    size_t ncap = c->hcap ? c->hcap * 2 : 4;
                    struct hold *nv = malloc(ncap * sizeof(*nv));
                    if (!nv) {
                        c->flags |= CF_CLOSE_ASAP;
                        return;
                    }
                    for (size_t i = 0; i < c->nholds; i++)
                        nv[i] = c->holds[(c->hhead + i) % c->hcap];
                    free(c->holds);
                    c->holds = nv;
                    c->hcap = ncap;
                    c->hhead = 0;
                }
                c->holds[(c->hhead + c->nholds) % c->hcap] = (struct hold){start, need};
                c->nholds++;
            }
            held_add(c);
        }
    }
    if (c->ob.len > c->osent)
        want_write(c);
}

/* Absolute offset up to which output may be sent now. */
static uint64_t sendable(struct bus_client *c)
{
    uint64_t durable = bus_store_durable(c->srv->store);
    while (c->nholds && c->holds[c->hhead].seq <= durable) {
        c->hhead = (c->hhead + 1) % c->hcap;
        c->nholds--;
    }
    if (c->nholds)
        return c->holds[c->hhead].start;
    return c->obase + c->ob.len;
}

/* ---- clients ------------------------------------------------------------------ */

static void unblock_client(struct bus_client *c);

static void free_client(struct bus_client *c)
{
    struct bus_server *srv = c->srv;
    if (c->blk)
        unblock_client(c);
    held_del(c);
    if (c->flags & CF_IN_WLIST) {
        struct bus_client **pp = &srv->wlist;
        while (*pp && *pp != c)
            pp = &(*pp)->wnext;
        if (*pp)
            *pp = c->wnext;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nclients--;
    ofe_gauge_set(srv->m_clients, (double)srv->nclients);
    if (c->fd >= 0) {
        epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    bus_tls_conn_free(c->tls);
    resp_parser_fini(&c->rp);
    free(c->ib);
    ofe_buf_fini(&c->ob);
    free(c->holds);
    free(c->name);
    free(c);
}

static void set_events(struct bus_client *c, bool out)
{
    if (c->fd < 0)
        return;
    bool has = (c->flags & CF_EPOLLOUT) != 0;
    if (has == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = &c->tag};
    epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    if (out)
        c->flags |= CF_EPOLLOUT;
    else
        c->flags &= ~CF_EPOLLOUT;
}

/* Writes what may be sent. Returns -1 when the client was freed. */
static int client_write(struct bus_client *c)
{
    if (c->flags & CF_LOCAL)
        return 0;
    uint64_t lim = sendable(c);
    size_t upto = (size_t)(lim - c->obase);
    if (upto > c->ob.len)
        upto = c->ob.len;
    while (c->osent < upto) {
        ssize_t w = c->tls ? bus_tls_write(c->tls, c->ob.data + c->osent, upto - c->osent)
                           : write(c->fd, c->ob.data + c->osent, upto - c->osent);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            free_client(c);
            return -1;
        }
        c->osent += (size_t)w;
    }
    if (c->osent == c->ob.len) {
        c->obase += c->ob.len;
        c->ob.len = 0;
        c->osent = 0;
        if (c->ob.cap > 1024 * 1024)
            ofe_buf_fini(&c->ob);
        if (c->flags & CF_CLOSE_AFTER_REPLY) {
            free_client(c);
            return -1;
        }
    } else if (c->osent > 64 * 1024 && c->osent * 2 > c->ob.len) {
        memmove(c->ob.data, c->ob.data + c->osent, c->ob.len - c->osent);
        c->ob.len -= c->osent;
        c->obase += c->osent;
        c->osent = 0;
    }
    if (c->nholds)
        held_add(c);
    else
        held_del(c);
    set_events(c, c->osent < upto || (c->tls && bus_tls_want_write(c->tls)));
    return 0;
}

/* ---- blocking -------------------------------------------------------------------- */

static void waitq_remove(struct bus_server *srv, const char *key, size_t klen, struct bus_client *c)
{
    struct waitq *q = bus_dict_get(&srv->blocking, key, klen);
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        if (q->v[i] == c) {
            memmove(q->v + i, q->v + i + 1, (q->n - i - 1) * sizeof(*q->v));
            q->n--;
            break;
        }
    if (q->n == 0) {
        bus_dict_del(&srv->blocking, key, klen);
        free(q->v);
        free(q);
    }
}

static void free_block(struct bus_block *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->argc; i++)
        free(b->argv[i]);
    free(b->argv);
    free(b->argl);
    free(b->ids);
    free(b);
}

static void unblock_client(struct bus_client *c)
{
    struct bus_block *b = c->blk;
    struct bus_server *srv = c->srv;
    for (size_t k = 0; k < b->nkeys; k++)
        waitq_remove(srv, b->argv[b->streams_arg + k], b->argl[b->streams_arg + k], c);
    if (b->prev)
        b->prev->blk->next = b->next;
    else
        srv->blocked = b->next;
    if (b->next)
        b->next->blk->prev = b->prev;
    srv->nblocked--;
    ofe_gauge_set(srv->m_blocked, (double)srv->nblocked);
    c->blk = NULL;
    free_block(b);
}

int bus_block_client(struct bus_client *c, struct bus_cmdctx *a, size_t streams_arg, size_t nkeys,
                     const struct bus_id *ids, uint64_t timeout_ms)
{
    if (c->flags & CF_SERVING_BLOCKED) {
        c->flags |= CF_STILL_BLOCKED;
        return 0;
    }
    struct bus_server *srv = c->srv;
    struct bus_block *b = calloc(1, sizeof(*b));
    if (!b)
        return OFE_ENOMEM;
    b->argc = a->argc;
    b->argv = calloc(a->argc, sizeof(*b->argv));
    b->argl = calloc(a->argc, sizeof(*b->argl));
    b->ids = calloc(nkeys, sizeof(*b->ids));
    if (!b->argv || !b->argl || !b->ids)
        goto fail;
    for (size_t i = 0; i < a->argc; i++) {
        b->argv[i] = malloc(a->argl[i] + 1);
        if (!b->argv[i])
            goto fail;
        memcpy(b->argv[i], a->argv[i], a->argl[i]);
        b->argv[i][a->argl[i]] = '\0';
        b->argl[i] = a->argl[i];
    }
    memcpy(b->ids, ids, nkeys * sizeof(*ids));
    b->streams_arg = streams_arg;
    b->nkeys = nkeys;
    b->deadline = timeout_ms ? srv->now + timeout_ms : 0;
    for (size_t k = 0; k < nkeys; k++) {
        const char *key = b->argv[streams_arg + k];
        size_t klen = b->argl[streams_arg + k];
        struct waitq *q = bus_dict_get(&srv->blocking, key, klen);
        if (!q) {
            q = calloc(1, sizeof(*q));
            if (!q || bus_dict_set(&srv->blocking, key, klen, q) != 0) {
                free(q);
                goto fail_keys;
            }
        }
        bool dup = false;
        for (size_t i = 0; i < q->n; i++)
            dup |= q->v[i] == c;
        if (dup)
            continue;
        if (q->n == q->cap) {
            size_t ncap = q->cap ? q->cap * 2 : 4;
            struct bus_client **nv = realloc(q->v, ncap * sizeof(*nv));
            if (!nv)
                goto fail_keys;
            q->v = nv;
            q->cap = ncap;
        }
        q->v[q->n++] = c;
    }
    c->blk = b;
    b->prev = NULL;
    b->next = srv->blocked;
    if (srv->blocked)
        srv->blocked->blk->prev = c;
    srv->blocked = c;
    srv->nblocked++;
    ofe_gauge_set(srv->m_blocked, (double)srv->nblocked);
    return 0;
fail_keys:
    for (size_t k = 0; k < nkeys; k++)
        waitq_remove(srv, b->argv[streams_arg + k], b->argl[streams_arg + k], c);
fail:
    free_block(b);
    return OFE_ENOMEM;
}

static void run_command(struct bus_client *c, struct bus_cmdctx *a);
static void handle_ready(struct bus_server *srv);

/* Tries to serve one blocked client for one key. Returns true when the
 * client got a reply (and was unblocked). */
static bool serve_blocked(struct bus_client *c, size_t k, bool deleted)
{
    struct bus_block *b = c->blk;
    struct bus_server *srv = c->srv;
    const char *key = b->argv[b->streams_arg + k];
    size_t klen = b->argl[b->streams_arg + k];
    bool xreadgroup = b->argl[0] == 10;
    struct bus_stream *s = bus_db_get(srv, key, klen);
    uint64_t start = c->obase + c->ob.len;
    if (xreadgroup) {
        if (!s || deleted) {
            resp_add_error(&c->ob, "-UNBLOCKED the stream key no longer exists");
            unblock_client(c);
            after_reply(c, start);
            return true;
        }
        /* GROUP is always before STREAMS; find its name. */
        for (size_t i = 1; i + 2 < b->streams_arg; i++)
            if (b->argl[i] == 5 && !strncasecmp(b->argv[i], "group", 5)) {
                if (!bus_group_get(s, b->argv[i + 1], b->argl[i + 1])) {
                    resp_add_error(&c->ob, "-NOGROUP the consumer group this client was "
                                           "blocked on no longer exists");
                    unblock_client(c);
                    after_reply(c, start);
                    return true;
                }
                break;
            }
    } else if (!s) {
        return false;
    }
    /* Re-run the command for this key only, with the id resolved at
     * blocking time. */
    const char *argv[b->streams_arg + 2];
    size_t argl[b->streams_arg + 2];
    for (size_t i = 0; i < b->streams_arg; i++) {
        argv[i] = b->argv[i];
        argl[i] = b->argl[i];
    }
    char idbuf[48];
    argv[b->streams_arg] = key;
    argl[b->streams_arg] = klen;
    if (b->ids[k].ms == UINT64_MAX && b->ids[k].seq == UINT64_MAX && xreadgroup) {
        argv[b->streams_arg + 1] = ">";
        argl[b->streams_arg + 1] = 1;
    } else {
        argl[b->streams_arg + 1] = bus_id_fmt(idbuf, &b->ids[k]);
        argv[b->streams_arg + 1] = idbuf;
    }
    struct bus_cmdctx a = {b->streams_arg + 2, argv, argl};
    c->flags |= CF_SERVING_BLOCKED;
    c->flags &= ~CF_STILL_BLOCKED;
    run_command(c, &a);
    c->flags &= ~CF_SERVING_BLOCKED;
    if (c->flags & CF_STILL_BLOCKED) {
        c->flags &= ~CF_STILL_BLOCKED;
        c->ob.len = (size_t)(start - c->obase); /* drop anything partial */
        return false;
    }
    if (c->blk)
        unblock_client(c);
    after_reply(c, start);
    return true;
}

static void serve_key(struct bus_server *srv, const char *key, size_t klen, bool deleted)
{
    struct waitq *q = bus_dict_get(&srv->blocking, key, klen);
    if (!q)
        return;
    /* Snapshot: serving changes the queue. */
    size_t n = q->n;
    struct bus_client **v = malloc(n * sizeof(*v));
    if (!v)
        return;
    memcpy(v, q->v, n * sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        struct bus_client *c = v[i];
        /* Still blocked on this key? (an earlier serve may have freed q) */
        struct waitq *cur = bus_dict_get(&srv->blocking, key, klen);
        bool still = false;
        for (size_t j = 0; cur && j < cur->n; j++)
            still |= cur->v[j] == c;
        if (!still || !c->blk)
            continue;
        size_t k;
        for (k = 0; k < c->blk->nkeys; k++)
            if (c->blk->argl[c->blk->streams_arg + k] == klen &&
                !memcmp(c->blk->argv[c->blk->streams_arg + k], key, klen))
                break;
        if (k == c->blk->nkeys)
            continue;
        serve_blocked(c, k, deleted);
    }
    free(v);
}

static void handle_ready(struct bus_server *srv)
{
    while (srv->ready) {
        struct bus_stream *s = srv->ready;
        srv->ready = s->ready_next;
        s->ready = false;
        serve_key(srv, s->name, s->nlen, false);
    }
}

static void check_timeouts(struct bus_server *srv)
{
    struct bus_client *c = srv->blocked;
    while (c) {
        struct bus_client *next = c->blk->next;
        if (c->blk->deadline && c->blk->deadline <= srv->now) {
            uint64_t start = c->obase + c->ob.len;
            resp_add_null_array(&c->ob);
            unblock_client(c);
            after_reply(c, start);
        }
        c = next;
    }
}

static uint64_t next_deadline(struct bus_server *srv)
{
    uint64_t d = 0;
    for (struct bus_client *c = srv->blocked; c; c = c->blk->next)
        if (c->blk->deadline && (!d || c->blk->deadline < d))
            d = c->blk->deadline;
    return d;
}

/* ---- dispatch ------------------------------------------------------------------ */

static bool name_eq(const char *a, size_t al, const char *b)
{
    size_t bl = strlen(b);
    return al == bl && strncasecmp(a, b, al) == 0;
}

const struct bus_cmd *bus_cmd_lookup(const char *name, size_t len)
{
    for (const struct bus_cmd *c = bus_commands; c->name; c++)
        if (name_eq(name, len, c->name))
            return c;
    return NULL;
}

static const struct bus_cmd *sub_lookup(const struct bus_cmd *parent, const char *name, size_t len)
{
    size_t pl = strlen(parent->name);
    for (const struct bus_cmd *c = parent->subs; c->name; c++)
        if (name_eq(name, len, c->name + pl + 1))
            return c;
    return NULL;
}

static void upper(char *d, const char *s, size_t max)
{
    size_t i = 0;
    for (; s[i] && i + 1 < max; i++)
        d[i] = (char)((s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i]);
    d[i] = '\0';
}

static void run_command(struct bus_client *c, struct bus_cmdctx *a)
{
    struct bus_server *srv = c->srv;
    struct ofe_buf *o = &c->ob;
    const struct bus_cmd *cmd = bus_cmd_lookup(a->argv[0], a->argl[0]);
    if (!cmd) {
        /* Redis: "unknown command '%.128s', with args beginning with: " and
         * each argument quoted while the list is under 128 bytes. */
        char args[512];
        size_t al = 0;
        args[0] = '\0';
        for (size_t i = 1; i < a->argc && al < 128; i++) {
            int room = 128 - (int)al;
            int w =
                snprintf(args + al, sizeof(args) - al, "'%.*s' ",
                         (int)(a->argl[i] < (size_t)room ? a->argl[i] : (size_t)room), a->argv[i]);
            if (w < 0)
                break;
            al += (size_t)w;
            if (al >= sizeof(args))
                al = sizeof(args) - 1;
        }
        resp_add_errorf(o, "unknown command '%.*s', with args beginning with: %s",
                        (int)(a->argl[0] < 128 ? a->argl[0] : 128), a->argv[0], args);
        return;
    }
    if (cmd->subs && a->argc >= 2) {
        const struct bus_cmd *sub = sub_lookup(cmd, a->argv[1], a->argl[1]);
        if (!sub) {
            char up[32];
            upper(up, cmd->name, sizeof(up));
            resp_add_errorf(o, "unknown subcommand '%.*s'. Try %s HELP.",
                            (int)(a->argl[1] < 128 ? a->argl[1] : 128), a->argv[1], up);
            return;
        }
        cmd = sub;
    }
    if ((cmd->arity > 0 && (size_t)cmd->arity != a->argc) ||
        (cmd->arity < 0 && a->argc < (size_t)-cmd->arity)) {
        resp_add_errorf(o, "wrong number of arguments for '%s' command", cmd->name);
        return;
    }
    if (srv->requirepass && !c->authed && !(cmd->flags & BUS_CMD_NOAUTH)) {
        resp_add_error(o, "-NOAUTH Authentication required.");
        return;
    }
    c->last_cmd = cmd->name;
    srv->total_cmds++;
    ofe_counter_inc(srv->m_cmds);
    cmd->fn(c, a);
}

static void process_command(struct bus_client *c)
{
    struct resp_parser *p = &c->rp;
    uint64_t start = c->obase + c->ob.len;
    c->ncmds++;
    if (p->oversize) {
        resp_add_errorf(&c->ob, "argument of %zu bytes exceeds the event size limit of %zu bytes",
                        p->oversize_len, c->srv->o.max_event_size);
        after_reply(c, start);
        return;
    }
    size_t argc = p->argc;
    const char *argvs[64];
    size_t argls[64];
    const char **argv = argvs;
    size_t *argl = argls;
    if (argc > 64) {
        argv = malloc(argc * sizeof(*argv));
        argl = malloc(argc * sizeof(*argl));
        if (!argv || !argl) {
            free(argv);
            free(argl);
            resp_add_error(&c->ob, "out of memory");
            after_reply(c, start);
            return;
        }
    }
    for (size_t i = 0; i < argc; i++) {
        argv[i] = c->ib + p->argv[i].off;
        argl[i] = p->argv[i].len;
    }
    struct bus_cmdctx a = {argc, argv, argl};
    run_command(c, &a);
    if (argv != argvs) {
        free(argv);
        free(argl);
    }
    after_reply(c, start);
    if (c->srv->ready)
        handle_ready(c->srv);
}

/* Runs every complete command in the input buffer. */
static void process_input(struct bus_client *c)
{
    while (!(c->flags & (CF_CLOSE_AFTER_REPLY | CF_CLOSE_ASAP)) && !c->blk) {
        const char *err = NULL;
        int r = resp_parse(&c->rp, c->ib, c->ilen, &err);
        if (r == RESP_MORE)
            break;
        if (r == RESP_ERR) {
            uint64_t start = c->obase + c->ob.len;
            resp_add_error(&c->ob, err);
            OFE_INFO(COMP, NULL, "client %s: %s; closing the connection", c->addr, err);
            c->flags |= CF_CLOSE_AFTER_REPLY;
            after_reply(c, start);
            break;
        }
        process_command(c);
        if (c->ob.len - c->osent > c->srv->o.client_obuf) {
            OFE_WARN(COMP, NULL,
                     "client %s: output buffer over the limit (%zu bytes unsent); closing", c->addr,
                     c->ob.len - c->osent);
            c->flags |= CF_CLOSE_ASAP;
            break;
        }
    }
    size_t keep = resp_keep_from(&c->rp);
    if (keep > 0 && (keep == c->ilen || keep > 64 * 1024 || keep * 2 > c->ilen)) {
        memmove(c->ib, c->ib + keep, c->ilen - keep);
        c->ilen -= keep;
        resp_shift(&c->rp, keep);
    }
}

static bool client_read_once(struct bus_client *c);

static void client_readable(struct bus_client *c)
{
    /* Bytes OpenSSL already decrypted are invisible to epoll: drain them. */
    for (int i = 0; i < 16; i++) {
        bool tls = c->tls != NULL;
        if (!client_read_once(c) || !tls || !bus_tls_pending(c->tls))
            return;
    }
}

/* One read and the commands it completes. Returns false when the client
 * was freed or nothing was read. */
static bool client_read_once(struct bus_client *c)
{
    struct bus_server *srv = c->srv;
    if (c->icap - c->ilen < READ_LEN) {
        size_t ncap = c->icap ? c->icap : READ_LEN;
        while (ncap - c->ilen < READ_LEN)
            ncap *= 2;
        char *nb = realloc(c->ib, ncap + 1);
        if (!nb) {
            free_client(c);
            return false;
        }
        c->ib = nb;
        c->icap = ncap;
    }
    ssize_t r = c->tls ? bus_tls_read(c->tls, c->ib + c->ilen, READ_LEN)
                       : read(c->fd, c->ib + c->ilen, READ_LEN);
    if (r == 0) {
        free_client(c);
        return false;
    }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            free_client(c);
        return false;
    }
    c->ilen += (size_t)r;
    c->last_ms = srv->now;
    /* As Redis does with its query buffer: the limit applies to what is
     * buffered, before commands run (a read may complete a command that is
     * over the limit), and again after. */
    for (int pass = 0; pass < 2; pass++) {
        if (c->ilen - resp_keep_from(&c->rp) > srv->o.client_ibuf) {
            OFE_WARN(COMP, NULL, "client %s: input buffer over the limit (%zu bytes); closing",
                     c->addr, c->ilen - resp_keep_from(&c->rp));
            free_client(c);
            return false;
        }
        if (pass == 0)
            process_input(c);
        if (c->flags & CF_CLOSE_ASAP) {
            free_client(c);
            return false;
        }
    }
    if (c->ob.len > c->osent)
        want_write(c);
    return true;
}

static struct bus_client *client_alloc(struct bus_server *srv, int fd)
{
    struct bus_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->tag.kind = K_CLIENT;
    c->fd = fd;
    c->srv = srv;
    c->id = ++srv->next_client_id;
    c->ctime_ms = c->last_ms = srv->now;
    resp_parser_init(&c->rp, 1024 * 1024, srv->o.max_event_size);
    c->authed = srv->requirepass == NULL;
    c->rp.unauthenticated = !c->authed;
    return c;
}

static void client_link(struct bus_client *c)
{
    struct bus_server *srv = c->srv;
    c->next = srv->clients;
    if (srv->clients)
        srv->clients->prev = c;
    srv->clients = c;
    srv->nclients++;
    ofe_gauge_set(srv->m_clients, (double)srv->nclients);
}

static void run_jobs(struct bus_server *srv);
static void cron(struct bus_server *srv);
static void before_sleep(struct bus_server *srv);

static void accept_clients(struct bus_server *srv)
{
    for (int n = 0; n < 64; n++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(srv->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                OFE_WARN(COMP, NULL, "accept: %s", strerror(errno));
            return;
        }
        srv->total_conns++;
        ofe_counter_inc(srv->m_conns);
        if (srv->nclients >= srv->o.max_clients) {
            static const char msg[] = "-ERR max number of clients reached\r\n";
            ssize_t w = write(fd, msg, sizeof(msg) - 1);
            (void)w;
            close(fd);
            srv->rejected_conns++;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct bus_client *c = client_alloc(srv, fd);
        if (!c) {
            close(fd);
            continue;
        }
        char host[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof(host));
            port = ntohs(in->sin6_port);
        }
        snprintf(c->addr, sizeof(c->addr), "%s:%d", host, port);
        if (srv->tls) {
            c->tls = bus_tls_conn_new(srv->tls, fd);
            if (!c->tls) {
                close(fd);
                resp_parser_fini(&c->rp);
                free(c);
                continue;
            }
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->tag};
        if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            bus_tls_conn_free(c->tls);
            close(fd);
            resp_parser_fini(&c->rp);
            free(c);
            continue;
        }
        client_link(c);
    }
}

struct bus_client *bus_client_new_local(struct bus_server *srv)
{
    struct bus_client *c = client_alloc(srv, -1);
    if (!c)
        return NULL;
    c->flags |= CF_LOCAL;
    snprintf(c->addr, sizeof(c->addr), "local");
    client_link(c);
    return c;
}

bool bus_client_feed(struct bus_client *c, const void *p, size_t n)
{
    if (c->flags & (CF_CLOSE_AFTER_REPLY | CF_CLOSE_ASAP))
        return false;
    if (c->icap - c->ilen < n) {
        size_t ncap = c->icap ? c->icap : 1024;
        while (ncap - c->ilen < n)
            ncap *= 2;
        char *nb = realloc(c->ib, ncap + 1);
        if (!nb)
            return false;
        c->ib = nb;
        c->icap = ncap;
    }
    memcpy(c->ib + c->ilen, p, n);
    c->ilen += n;
    if (c->ilen - resp_keep_from(&c->rp) > c->srv->o.client_ibuf) {
        c->flags |= CF_CLOSE_ASAP;
        return false;
    }
    process_input(c);
    return !(c->flags & (CF_CLOSE_AFTER_REPLY | CF_CLOSE_ASAP));
}

char *bus_client_take_output(struct bus_client *c, size_t *len)
{
    *len = c->ob.len;
    char *out = c->ob.len ? ofe_buf_detach(&c->ob, len) : NULL;
    c->obase += *len;
    c->osent = 0;
    c->nholds = 0;
    c->hhead = 0;
    held_del(c);
    return out;
}

void bus_client_free_local(struct bus_client *c)
{
    if (c)
        free_client(c);
}

void bus_server_poll(struct bus_server *srv)
{
    srv->now = wall_ms();
    run_jobs(srv);
    check_timeouts(srv);
    cron(srv);
    before_sleep(srv);
}

/* ---- HTTP jobs ----------------------------------------------------------------- */

int bus_server_submit(struct bus_server *srv, struct bus_append_job *job)
{
    pthread_mutex_lock(&srv->qmu);
    if (srv->qclosed || atomic_load(&srv->stop)) {
        pthread_mutex_unlock(&srv->qmu);
        return OFE_ECLOSED;
    }
    if (srv->qlen >= HTTP_QUEUE_MAX) {
        pthread_mutex_unlock(&srv->qmu);
        return OFE_EAGAIN;
    }
    job->next = NULL;
    if (srv->qtail)
        srv->qtail->next = job;
    else
        srv->qhead = job;
    srv->qtail = job;
    srv->qlen++;
    pthread_mutex_unlock(&srv->qmu);
    uint64_t one = 1;
    ssize_t w = write(srv->wakefd, &one, sizeof(one));
    (void)w;
    return 0;
}

static void job_finish(struct bus_append_job *job, int status, const char *msg)
{
    job->done(job->arg, status, job->ids, status == 0 ? job->n : 0, msg);
    for (size_t i = 0; job->ids && i < job->n; i++)
        free(job->ids[i]);
    free(job->ids);
    for (size_t i = 0; i < job->n; i++)
        ofe_hdrs_fini(&job->fields[i]);
    free(job->fields);
    free(job->stream);
    free(job);
}

static void run_jobs(struct bus_server *srv)
{
    pthread_mutex_lock(&srv->qmu);
    struct bus_append_job *j = srv->qhead;
    srv->qhead = srv->qtail = NULL;
    srv->qlen = 0;
    pthread_mutex_unlock(&srv->qmu);
    while (j) {
        struct bus_append_job *next = j->next;
        bus_cmd_xadd_internal(srv, j); /* fills ids or finishes with an error */
        if (j->ids) {
            j->seq = needed_seq(srv);
            j->next = srv->jobs_waiting;
            srv->jobs_waiting = j;
        }
        j = next;
    }
    if (srv->ready)
        handle_ready(srv);
}

static void release_jobs(struct bus_server *srv, bool failing)
{
    uint64_t durable = bus_store_durable(srv->store);
    struct bus_append_job **pp = &srv->jobs_waiting;
    while (*pp) {
        struct bus_append_job *j = *pp;
        if (j->seq <= durable) {
            *pp = j->next;
            job_finish(j, 0, NULL);
        } else if (failing) {
            *pp = j->next;
            job_finish(j, OFE_EIO, "storage failure: the events may not be durable");
        } else {
            pp = &j->next;
        }
    }
}

/* ---- the loop -------------------------------------------------------------------- */

static void update_metrics(struct bus_server *srv)
{
    struct bus_store_stats st;
    bus_store_stats(srv->store, &st);
    ofe_gauge_set(srv->m_streams, (double)srv->keys.n);
    ofe_gauge_set(srv->m_disk, (double)st.bytes_on_disk);
    if (!srv->m)
        return;
    size_t pos = 0;
    struct bus_dict_ent *e;
    while ((e = bus_dict_next(&srv->keys, &pos))) {
        struct bus_stream *s = e->val;
        size_t gp = 0;
        struct bus_dict_ent *ge;
        while ((ge = bus_dict_next(&s->groups, &gp))) {
            struct bus_group *g = ge->val;
            struct ofe_gauge *gg =
                ofe_metrics_gauge(srv->m, "ofe_eventbus_pending_entries",
                                  "Entries delivered to a consumer group and not yet acknowledged",
                                  (const char *const[]){"stream", s->name, "group", g->name, NULL});
            ofe_gauge_set(gg, (double)g->pel_count);
        }
    }
}

void bus_server_finish(struct bus_server *srv);

static void cron(struct bus_server *srv)
{
    if (srv->now - srv->last_slow_cron >= 1000) {
        srv->last_slow_cron = srv->now;
        const struct bus_retention *r = &srv->o.retention;
        if (r->max_age_ms || r->max_bytes || r->max_entries) {
            size_t pos = 0;
            struct bus_dict_ent *e;
            while ((e = bus_dict_next(&srv->keys, &pos)))
                bus_store_retain(srv->store, e->val, r, srv->now);
        }
        bus_store_cron(srv->store);
        update_metrics(srv);
    }
}

static void before_sleep(struct bus_server *srv)
{
    bus_store_flush(srv->store);
    bool failing = bus_store_failed(srv->store);
    if (failing && !srv->failed_reported) {
        srv->failed_reported = true;
        OFE_ERROR(COMP, NULL, "storage failed: closing clients waiting for durability");
    }
    /* Replies whose data became durable. */
    for (struct bus_client *c = srv->held, *next; c; c = next) {
        next = c->hnext;
        if (failing && c->nholds) {
            /* Their writes may not be on disk: no acknowledgement. */
            c->nholds = 0;
            c->flags |= CF_CLOSE_ASAP;
            held_del(c);
            free_client(c);
            continue;
        }
        uint64_t lim = sendable(c);
        if (!c->nholds)
            held_del(c);
        if (lim > c->obase + c->osent)
            want_write(c);
    }
    release_jobs(srv, failing);
    while (srv->wlist) {
        struct bus_client *c = srv->wlist;
        srv->wlist = c->wnext;
        c->flags &= ~CF_IN_WLIST;
        client_write(c);
    }
}

void bus_server_stop(struct bus_server *srv)
{
    atomic_store(&srv->stop, true);
    uint64_t one = 1;
    ssize_t w = write(srv->wakefd, &one, sizeof(one));
    (void)w;
}

int bus_server_run(struct bus_server *srv)
{
    struct epoll_event evs[256];
    srv->now = wall_ms();
    while (!atomic_load(&srv->stop)) {
        before_sleep(srv);
        int timeout = 100;
        uint64_t d = next_deadline(srv);
        if (d) {
            uint64_t now = wall_ms();
            int until = d > now ? (int)(d - now) : 0;
            if (until < timeout)
                timeout = until;
        }
        int n = epoll_wait(srv->epfd, evs, 256, timeout);
        srv->now = wall_ms();
        if (n < 0 && errno != EINTR) {
            OFE_ERROR(COMP, NULL, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct ev_tag *t = evs[i].data.ptr;
            if (t->kind == K_LISTENER) {
                accept_clients(srv);
            } else if (t->kind == K_WAKE) {
                uint64_t v;
                ssize_t r = read(srv->wakefd, &v, sizeof(v));
                (void)r;
            } else {
                struct bus_client *c = (struct bus_client *)t;
                if (evs[i].events & EPOLLOUT) {
                    if (client_write(c) < 0)
                        continue;
                }
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    client_readable(c);
            }
        }
        run_jobs(srv);
        check_timeouts(srv);
        if (srv->now - srv->last_cron >= 100) {
            srv->last_cron = srv->now;
            cron(srv);
        }
    }
    /* Shutdown: everything buffered goes to disk; held replies go out. */
    bus_server_finish(srv);
    return bus_store_failed(srv->store) ? OFE_EIO : 0;
}

void bus_server_finish(struct bus_server *srv)
{
    pthread_mutex_lock(&srv->qmu);
    srv->qclosed = true;
    struct bus_append_job *j = srv->qhead;
    srv->qhead = srv->qtail = NULL;
    srv->qlen = 0;
    pthread_mutex_unlock(&srv->qmu);
    while (j) {
        struct bus_append_job *next = j->next;
        job_finish(j, OFE_ECLOSED, "the broker is shutting down");
        j = next;
    }
    bus_store_flush(srv->store);
    bus_store_sync_now(srv->store);
    before_sleep(srv);
}

/* ---- setup ------------------------------------------------------------------------ */

static int add_stream_cb(void *arg, struct bus_stream *s)
{
    struct bus_server *srv = arg;
    struct bus_stream *old = bus_dict_get(&srv->keys, s->name, s->nlen);
    if (old) {
        OFE_WARN(COMP, s->name, "two directories hold stream '%s'; keeping the first", s->name);
        bus_log_free(s->log);
        bus_stream_free(s);
        return 0;
    }
    return bus_dict_set(&srv->keys, s->name, s->nlen, s);
}

static void fsync_observe(void *arg, double secs)
{
    struct bus_server *srv = arg;
    ofe_histogram_observe(srv->m_fsync, secs);
}

static int listen_on(struct bus_server *srv, char *errstr, size_t errstr_size)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%u", srv->o.port);
    int rc = getaddrinfo(srv->bind, port, &hints, &res);
    if (rc != 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: %s", srv->bind, gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return ofe_err(errstr, errstr_size, OFE_EIO, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 511) != 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(res);
        return ofe_err(errstr, errstr_size, OFE_EIO, "%s:%u: %s", srv->bind, srv->o.port,
                       strerror(e));
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    srv->lfd = fd;
    return 0;
}

struct bus_server *bus_server_new(const struct bus_server_opts *opts, char *errstr,
                                  size_t errstr_size)
{
    struct bus_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    srv->o = *opts;
    srv->epfd = srv->lfd = srv->wakefd = -1;
    if (!srv->o.max_clients)
        srv->o.max_clients = 10000;
    if (!srv->o.max_event_size)
        srv->o.max_event_size = 1024 * 1024;
    if (!srv->o.client_ibuf)
        srv->o.client_ibuf = 64 * 1024 * 1024;
    if (srv->o.client_ibuf < srv->o.max_event_size + 1024)
        srv->o.client_ibuf = srv->o.max_event_size + 1024;
    if (!srv->o.client_obuf)
        srv->o.client_obuf = 64 * 1024 * 1024;
    srv->bind = strdup(opts->bind ? opts->bind : "127.0.0.1");
    srv->requirepass = opts->requirepass && opts->requirepass[0] ? strdup(opts->requirepass) : NULL;
    srv->o.bind = srv->bind;
    srv->o.requirepass = srv->requirepass;
    bus_dict_init(&srv->keys);
    bus_dict_init(&srv->blocking);
    pthread_mutex_init(&srv->qmu, NULL);
    atomic_init(&srv->stop, false);
    srv->listener_tag.kind = K_LISTENER;
    srv->wake_tag.kind = K_WAKE;
    srv->now = srv->start_ms = wall_ms();

    /* Many streams mean many open segment files. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    srv->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->wakefd < 0 || srv->epfd < 0) {
        ofe_err(errstr, errstr_size, OFE_EIO, "eventfd/epoll: %s", strerror(errno));
        goto fail;
    }
    if (opts->tls_cert && opts->tls_key) {
        srv->tls = bus_tls_ctx_new(opts->tls_cert, opts->tls_key, errstr, errstr_size);
        if (!srv->tls)
            goto fail;
    }
    struct bus_store_opts so = opts->store;
    so.notify_fd = srv->wakefd;
    so.fsync_observe = fsync_observe;
    so.observe_arg = srv;
    if (bus_store_open(&so, &srv->store, errstr, errstr_size) != 0)
        goto fail;
    if (bus_store_load(srv->store, add_stream_cb, srv, errstr, errstr_size) != 0)
        goto fail;
    if (listen_on(srv, errstr, errstr_size) != 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->listener_tag};
    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lfd, &ev);
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &srv->wake_tag};
    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->wakefd, &wev);
    return srv;
fail:
    bus_server_free(srv);
    return NULL;
}

void bus_server_set_metrics(struct bus_server *srv, struct ofe_metrics *m)
{
    srv->m = m;
    srv->m_appends =
        ofe_metrics_counter(m, "ofe_eventbus_appends_total", "Entries appended to streams", NULL);
    srv->m_bytes = ofe_metrics_counter(m, "ofe_eventbus_append_bytes_total",
                                       "Bytes of field names and values appended", NULL);
    srv->m_reads = ofe_metrics_counter(m, "ofe_eventbus_reads_total",
                                       "Entries returned by XREAD, XREADGROUP and XRANGE", NULL);
    srv->m_acks = ofe_metrics_counter(m, "ofe_eventbus_acks_total",
                                      "Pending entries acknowledged with XACK", NULL);
    srv->m_conns = ofe_metrics_counter(m, "ofe_eventbus_connections_total",
                                       "Client connections accepted", NULL);
    srv->m_cmds = ofe_metrics_counter(m, "ofe_eventbus_commands_total", "Commands processed", NULL);
    srv->m_clients = ofe_metrics_gauge(m, "ofe_eventbus_clients", "Connected clients", NULL);
    srv->m_blocked = ofe_metrics_gauge(m, "ofe_eventbus_blocked_clients",
                                       "Clients blocked in XREAD/XREADGROUP", NULL);
    srv->m_streams = ofe_metrics_gauge(m, "ofe_eventbus_streams", "Streams (keys)", NULL);
    srv->m_disk =
        ofe_metrics_gauge(m, "ofe_eventbus_disk_bytes", "Bytes in segment and journal files", NULL);
    srv->m_fsync = ofe_metrics_histogram(m, "ofe_eventbus_fsync_seconds",
                                         "Latency of one group-commit fsync round", NULL, NULL, 0);
    update_metrics(srv);
}

bool bus_server_ready(struct bus_server *srv, char *why, size_t why_size)
{
    if (bus_store_failed(srv->store)) {
        snprintf(why, why_size, "storage failed: writes are refused");
        return false;
    }
    if (atomic_load(&srv->stop)) {
        snprintf(why, why_size, "shutting down");
        return false;
    }
    return true;
}

void bus_server_free(struct bus_server *srv)
{
    if (!srv)
        return;
    while (srv->clients)
        free_client(srv->clients);
    /* Jobs still queued or waiting get an answer. */
    pthread_mutex_lock(&srv->qmu);
    struct bus_append_job *j = srv->qhead;
    srv->qhead = srv->qtail = NULL;
    pthread_mutex_unlock(&srv->qmu);
    while (j) {
        struct bus_append_job *next = j->next;
        job_finish(j, OFE_ECLOSED, "the broker is shutting down");
        j = next;
    }
    if (srv->store) {
        bus_store_flush(srv->store);
    }
    while (srv->jobs_waiting) {
        j = srv->jobs_waiting;
        srv->jobs_waiting = j->next;
        job_finish(j, OFE_ECLOSED, "the broker is shutting down");
    }
    size_t pos = 0;
    struct bus_dict_ent *e;
    while ((e = bus_dict_next(&srv->keys, &pos))) {
        struct bus_stream *s = e->val;
        bus_log_free(s->log);
        bus_stream_free(s);
    }
    bus_dict_fini(&srv->keys);
    pos = 0;
    while ((e = bus_dict_next(&srv->blocking, &pos))) {
        struct waitq *q = e->val;
        free(q->v);
        free(q);
    }
    bus_dict_fini(&srv->blocking);
    bus_store_close(srv->store);
    bus_tls_ctx_free(srv->tls);
    if (srv->lfd >= 0)
        close(srv->lfd);
    if (srv->epfd >= 0)
        close(srv->epfd);
    if (srv->wakefd >= 0)
        close(srv->wakefd);
    pthread_mutex_destroy(&srv->qmu);
    free(srv->bind);
    free(srv->requirepass);
    free(srv);
}

/* ---- INFO / CLIENT ------------------------------------------------------------------ */

void bus_client_describe(struct bus_client *c, struct ofe_buf *out)
{
    uint64_t now = c->srv->now;
    ofe_buf_printf(out,
                   "id=%" PRIu64 " addr=%s laddr=%s:%u fd=%d name=%s age=%" PRIu64 " idle=%" PRIu64
                   " flags=%s db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=%zu "
                   "qbuf-free=%zu argv-mem=0 multi-mem=0 rbs=%zu rbp=0 obl=0 oll=0 omem=%zu "
                   "tot-mem=%zu events=r cmd=%s user=default redir=-1 resp=2",
                   c->id, c->addr, c->srv->bind, c->srv->port, c->fd, c->name ? c->name : "",
                   (now - c->ctime_ms) / 1000, (now - c->last_ms) / 1000, c->blk ? "b" : "N",
                   c->ilen, c->icap - c->ilen, c->icap, c->ob.len - c->osent, c->icap + c->ob.cap,
                   c->last_cmd ? c->last_cmd : "NULL");
}

void bus_server_list_clients(struct bus_server *srv, struct ofe_buf *out)
{
    for (struct bus_client *c = srv->clients; c; c = c->next) {
        bus_client_describe(c, out);
        ofe_buf_puts(out, "\n");
    }
}

static bool want_section(const char *section, const char *name)
{
    if (!section || !strcasecmp(section, "all") || !strcasecmp(section, "everything") ||
        !strcasecmp(section, "default"))
        return true;
    return !strcasecmp(section, name);
}

void bus_server_info(struct bus_server *srv, struct ofe_buf *o, const char *section)
{
    bool first = true;
#define SECTION(n)                                                                                 \
    if (want_section(section, n) && (first ? (first = false, 1) : (ofe_buf_puts(o, "\r\n"), 1)))
    SECTION("server")
    {
        struct utsname u;
        uname(&u);
        ofe_buf_printf(o,
                       "# Server\r\nredis_version:%s\r\nofe_eventbus_version:%s\r\n"
                       "redis_mode:standalone\r\nos:%s %s %s\r\narch_bits:%d\r\n"
                       "multiplexing_api:epoll\r\nprocess_id:%ld\r\ntcp_port:%u\r\n"
                       "uptime_in_seconds:%" PRIu64 "\r\nuptime_in_days:%" PRIu64 "\r\n",
                       BUS_REDIS_VERSION, OFE_VERSION, u.sysname, u.release, u.machine,
                       (int)(sizeof(long) * 8), (long)getpid(), srv->port,
                       (srv->now - srv->start_ms) / 1000, (srv->now - srv->start_ms) / 86400000);
    }
    SECTION("clients")
    {
        ofe_buf_printf(o,
                       "# Clients\r\nconnected_clients:%zu\r\nmaxclients:%zu\r\n"
                       "blocked_clients:%zu\r\n",
                       srv->nclients, srv->o.max_clients, srv->nblocked);
    }
    SECTION("memory")
    {
        long rss_pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f) {
            long total;
            if (fscanf(f, "%ld %ld", &total, &rss_pages) != 2)
                rss_pages = 0;
            fclose(f);
        }
        uint64_t rss = (uint64_t)rss_pages * (uint64_t)sysconf(_SC_PAGESIZE);
        ofe_buf_printf(o, "# Memory\r\nused_memory_rss:%" PRIu64 "\r\n", rss);
    }
    SECTION("persistence")
    {
        struct bus_store_stats st;
        bus_store_stats(srv->store, &st);
        const char *pol = srv->o.store.fsync == BUS_FSYNC_ALWAYS     ? "always"
                          : srv->o.store.fsync == BUS_FSYNC_EVERYSEC ? "everysec"
                                                                     : "no";
        ofe_buf_printf(o,
                       "# Persistence\r\nloading:0\r\naof_enabled:%d\r\nappendfsync:%s\r\n"
                       "ofe_data_dir:%s\r\nofe_disk_bytes:%" PRIu64 "\r\nofe_segments:%" PRIu64
                       "\r\nofe_fsyncs:%" PRIu64 "\r\nofe_storage_ok:%d\r\n",
                       srv->o.store.dir ? 1 : 0, pol,
                       srv->o.store.dir ? srv->o.store.dir : "(memory)", st.bytes_on_disk,
                       st.segments, st.fsyncs, bus_store_failed(srv->store) ? 0 : 1);
    }
    SECTION("stats")
    {
        ofe_buf_printf(o,
                       "# Stats\r\ntotal_connections_received:%" PRIu64
                       "\r\ntotal_commands_processed:%" PRIu64 "\r\nrejected_connections:%" PRIu64
                       "\r\nofe_entries_appended:%" PRIu64 "\r\nofe_entries_read:%" PRIu64 "\r\n",
                       srv->total_conns, srv->total_cmds, srv->rejected_conns, srv->total_appends,
                       srv->total_reads);
    }
    SECTION("replication")
    {
        ofe_buf_puts(o, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n");
    }
    SECTION("keyspace")
    {
        ofe_buf_puts(o, "# Keyspace\r\n");
        if (srv->keys.n)
            ofe_buf_printf(o, "db0:keys=%zu,expires=0,avg_ttl=0\r\n", srv->keys.n);
    }
#undef SECTION
}
