/* Durable storage: segment logs, group journals, group commit, recovery
 * and retention (see store.h and docs/eventbus-format.md). */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "resp.h"

#define COMP                  "eventbus"
#define DEFAULT_SEGMENT_BYTES (64ull * 1024 * 1024)
#define READ_CHUNK            (64 * 1024)

/* ---- little-endian helpers ------------------------------------------- */

static inline void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- files ------------------------------------------------------------ */

struct bus_file {
    uint64_t id; /* unique in the process: keys reader caches */
    int fd;      /* -1 for a memory file */
    bool is_dir;
    bool pending; /* in store->pend (loop thread) */
    atomic_int refs;
    uint64_t size; /* bytes written */
    struct ofe_buf mem;
    char *path;
};

static struct bus_file *file_new(int fd, const char *path, bool is_dir)
{
    struct bus_file *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    static atomic_uint_fast64_t next_id = 1;
    f->id = atomic_fetch_add(&next_id, 1);
    f->fd = fd;
    f->is_dir = is_dir;
    atomic_init(&f->refs, 1);
    if (path && !(f->path = strdup(path))) {
        free(f);
        return NULL;
    }
    return f;
}

static void file_unref(struct bus_file *f)
{
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    if (f->fd >= 0)
        close(f->fd);
    ofe_buf_fini(&f->mem);
    free(f->path);
    free(f);
}

static struct bus_file *file_ref(struct bus_file *f)
{
    atomic_fetch_add(&f->refs, 1);
    return f;
}

static int file_write(struct bus_file *f, const void *p, size_t n)
{
    if (f->fd < 0) {
        if (ofe_buf_append(&f->mem, p, n) != 0)
            return OFE_ENOMEM;
        f->size += n;
        return 0;
    }
    const char *c = p;
    while (n) {
        ssize_t w = write(f->fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return OFE_EIO;
        }
        c += w;
        n -= (size_t)w;
        f->size += (uint64_t)w;
    }
    return 0;
}

static ssize_t file_pread(struct bus_file *f, void *p, size_t n, uint64_t off)
{
    if (f->fd < 0) {
        if (off >= f->size)
            return 0;
        if (n > f->size - off)
            n = (size_t)(f->size - off);
        memcpy(p, f->mem.data + off, n);
        return (ssize_t)n;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(f->fd, (char *)p + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* ---- structures --------------------------------------------------------- */

struct bus_seg {
    uint64_t no;
    uint64_t created_ms;
    struct bus_file *f;
};

struct bus_log {
    struct bus_store *st;
    struct bus_stream *s;
    uint64_t dirno;
    char *dir; /* NULL in memory */
    struct bus_file *dirf;
    struct bus_seg *segs; /* segs[0] oldest, segs[nsegs-1] active */
    size_t nsegs, segcap;
    struct ofe_buf wbuf; /* appended to the active segment, not yet written */
    /* group journal */
    struct bus_file *jf;
    uint64_t jgen;
    struct ofe_buf jbuf;
    uint64_t jsnap; /* size of the snapshot the journal started with */
    bool in_dirty;
    struct bus_log *dirty_next;
    struct bus_log *all_next, *all_prev;
};

struct bus_store {
    char *dir, *sdir;
    int lockfd;
    struct bus_file *sdirf;
    enum bus_fsync policy;
    uint64_t seg_max;
    int notify_fd;
    void (*observe)(void *, double);
    void *observe_arg;
    struct bus_log *dirty;
    struct bus_log *all;
    struct bus_file **pend;
    size_t npend, cappend;
    uint64_t next_dirno;
    uint64_t written_seq;
    bool unflushed; /* something was buffered or written since the last flush */
    /* fsync thread */
    pthread_t thr;
    bool thr_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct bus_file **todo;
    size_t ntodo, captodo;
    char **unl;
    size_t nunl, capunl;
    uint64_t todo_seq;
    bool stop, force;
    atomic_uint_fast64_t durable;
    atomic_bool failed;
    char failmsg[256];
    atomic_uint_fast64_t n_fsyncs, n_writes;
};

/* ---- failure ------------------------------------------------------------ */

static void store_fail(struct bus_store *st, const char *what, const char *path, int err)
{
    pthread_mutex_lock(&st->mu);
    if (!atomic_load(&st->failed)) {
        snprintf(st->failmsg, sizeof(st->failmsg), "%s %s: %s", what, path ? path : "",
                 strerror(err));
        atomic_store(&st->failed, true);
    }
    pthread_mutex_unlock(&st->mu);
    OFE_ERROR(COMP, NULL, "storage failure: %s %s: %s; refusing writes until restart", what,
              path ? path : "", strerror(err));
}

bool bus_store_writable(const struct bus_store *st, char *errstr, size_t errstr_size)
{
    if (!atomic_load(&st->failed))
        return true;
    ofe_err(errstr, errstr_size, OFE_EIO, "storage failed (%s)", st->failmsg);
    return false;
}

bool bus_store_failed(const struct bus_store *st)
{
    return atomic_load(&st->failed);
}

/* ---- fsync thread ------------------------------------------------------- */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

static void *fsync_main(void *arg)
{
    struct bus_store *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (st->policy == BUS_FSYNC_EVERYSEC && !st->force && !st->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&st->cv, &st->mu, &ts);
        } else {
            while (!st->stop && !st->force &&
                   !(st->policy == BUS_FSYNC_ALWAYS &&
                     (st->ntodo || st->todo_seq > atomic_load(&st->durable))))
                pthread_cond_wait(&st->cv, &st->mu);
        }
        /* Under always, a sequence with nothing left to sync (its files
         * were synced by an earlier round) is published too. */
        if (!st->ntodo && !st->nunl &&
            !(st->policy == BUS_FSYNC_ALWAYS && st->todo_seq > atomic_load(&st->durable))) {
            st->force = false;
            if (st->stop)
                break;
            continue;
        }
        struct bus_file **todo = st->todo;
        size_t ntodo = st->ntodo;
        char **unl = st->unl;
        size_t nunl = st->nunl;
        uint64_t seq = st->todo_seq;
        st->todo = NULL;
        st->ntodo = st->captodo = 0;
        st->unl = NULL;
        st->nunl = st->capunl = 0;
        st->force = false;
        pthread_mutex_unlock(&st->mu);

        /* One fsync per distinct file covers every write handed over so
         * far: that is the group commit. */
        if (ntodo > 1) /* todo is NULL when empty (a forced sync) */
            qsort(todo, ntodo, sizeof(*todo), cmp_ptr);
        bool ok = true;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (size_t i = 0; i < ntodo; i++) {
            struct bus_file *f = todo[i];
            if ((i == 0 || todo[i - 1] != f) && f->fd >= 0) {
                int r = f->is_dir ? fsync(f->fd) : fdatasync(f->fd);
                atomic_fetch_add(&st->n_fsyncs, 1);
                if (r != 0 && errno != EINVAL && errno != EROFS) {
                    store_fail(st, "fsync", f->path, errno);
                    ok = false;
                }
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (ntodo && st->observe)
            st->observe(st->observe_arg,
                        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        for (size_t i = 0; i < ntodo; i++)
            file_unref(todo[i]);
        free(todo);
        for (size_t i = 0; i < nunl; i++) {
            if (ok && unlink(unl[i]) != 0 && errno != ENOENT)
                OFE_WARN(COMP, NULL, "unlink %s: %s", unl[i], strerror(errno));
            free(unl[i]);
        }
        free(unl);
        if (ok && st->policy == BUS_FSYNC_ALWAYS) {
            uint64_t cur = atomic_load(&st->durable);
            if (seq > cur)
                atomic_store(&st->durable, seq);
        }
        if (st->notify_fd >= 0) {
            uint64_t one = 1;
            ssize_t w = write(st->notify_fd, &one, sizeof(one));
            (void)w;
        }
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Loop thread: remember that f has unsynced writes. */
static void pend_add(struct bus_store *st, struct bus_file *f)
{
    if (!f)
        return;
    st->unflushed = true;
    if (f->fd < 0 || f->pending)
        return;
    if (st->npend == st->cappend) {
        size_t ncap = st->cappend ? st->cappend * 2 : 16;
        struct bus_file **nv = realloc(st->pend, ncap * sizeof(*nv));
        if (!nv)
            return; /* the next fsync of this file still covers it */
        st->pend = nv;
        st->cappend = ncap;
    }
    f->pending = true;
    st->pend[st->npend++] = file_ref(f);
}

/* Hands pending files (and optional unlinks) to the fsync thread. */
static void handoff(struct bus_store *st, uint64_t seq, char *unlink_path, bool force)
{
    pthread_mutex_lock(&st->mu);
    if (st->ntodo + st->npend > st->captodo) {
        size_t ncap = st->captodo ? st->captodo : 16;
        while (ncap < st->ntodo + st->npend)
            ncap *= 2;
        struct bus_file **nv = realloc(st->todo, ncap * sizeof(*nv));
        if (nv) {
            st->todo = nv;
            st->captodo = ncap;
        }
    }
    for (size_t i = 0; i < st->npend; i++) {
        st->pend[i]->pending = false;
        if (st->ntodo < st->captodo)
            st->todo[st->ntodo++] = st->pend[i];
        else
            file_unref(st->pend[i]);
    }
    st->npend = 0;
    if (unlink_path) {
        if (st->nunl == st->capunl) {
            size_t ncap = st->capunl ? st->capunl * 2 : 4;
            char **nv = realloc(st->unl, ncap * sizeof(*nv));
            if (nv) {
                st->unl = nv;
                st->capunl = ncap;
            }
        }
        if (st->nunl < st->capunl)
            st->unl[st->nunl++] = unlink_path;
        else
            free(unlink_path);
    }
    if (seq > st->todo_seq)
        st->todo_seq = seq;
    if (force)
        st->force = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

static void pend_drop(struct bus_store *st)
{
    for (size_t i = 0; i < st->npend; i++) {
        st->pend[i]->pending = false;
        file_unref(st->pend[i]);
    }
    st->npend = 0;
}

/* ---- open / close ------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

static struct bus_file *open_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct bus_file *f = file_new(fd, path, true);
    if (!f)
        close(fd);
    return f;
}

int bus_store_open(const struct bus_store_opts *opts, struct bus_store **out, char *errstr,
                   size_t errstr_size)
{
    struct bus_store *st = calloc(1, sizeof(*st));
    if (!st)
        return OFE_ENOMEM;
    st->lockfd = -1;
    st->policy = opts->fsync;
    st->seg_max = opts->segment_bytes ? opts->segment_bytes : DEFAULT_SEGMENT_BYTES;
    if (st->seg_max > (1ull << 30))
        st->seg_max = 1ull << 30;
    st->notify_fd = opts->notify_fd;
    st->observe = opts->fsync_observe;
    st->observe_arg = opts->observe_arg;
    st->next_dirno = 1;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    atomic_init(&st->durable, 0);
    atomic_init(&st->failed, false);
    int rc = OFE_EIO;

    if (opts->dir) {
        st->dir = strdup(opts->dir);
        if (!st->dir || asprintf(&st->sdir, "%s/streams", opts->dir) < 0) {
            st->sdir = NULL;
            rc = OFE_ENOMEM;
            goto fail;
        }
        if (mkdir_p(st->dir) != 0) {
            ofe_err(errstr, errstr_size, OFE_EIO, "cannot create data directory %s: %s", st->dir,
                    strerror(errno));
            goto fail;
        }
        char lock[4096];
        snprintf(lock, sizeof(lock), "%s/LOCK", st->dir);
        st->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (st->lockfd < 0) {
            ofe_err(errstr, errstr_size, OFE_EIO, "cannot open %s: %s", lock, strerror(errno));
            goto fail;
        }
        if (flock(st->lockfd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) {
                char pid[32] = "";
                ssize_t n = pread(st->lockfd, pid, sizeof(pid) - 1, 0);
                if (n > 0)
                    pid[n] = '\0';
                pid[strcspn(pid, "\n")] = '\0';
                ofe_err(errstr, errstr_size, OFE_EEXIST,
                        "data directory %s is in use by another ofe-eventbus (pid %s): "
                        "only one broker may use a data directory",
                        st->dir, pid[0] ? pid : "unknown");
                rc = OFE_EEXIST;
            } else {
                ofe_err(errstr, errstr_size, OFE_EIO, "cannot lock %s: %s", lock, strerror(errno));
            }
            goto fail;
        }
        char pid[32];
        int pn = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (ftruncate(st->lockfd, 0) != 0 || pwrite(st->lockfd, pid, (size_t)pn, 0) != pn)
            OFE_WARN(COMP, NULL, "cannot write pid to %s: %s", lock, strerror(errno));
        if (mkdir_p(st->sdir) != 0) {
            ofe_err(errstr, errstr_size, OFE_EIO, "cannot create %s: %s", st->sdir,
                    strerror(errno));
            goto fail;
        }
        st->sdirf = open_dir(st->sdir);
        if (!st->sdirf) {
            ofe_err(errstr, errstr_size, OFE_EIO, "cannot open %s: %s", st->sdir, strerror(errno));
            goto fail;
        }
        if (pthread_create(&st->thr, NULL, fsync_main, st) != 0) {
            ofe_err(errstr, errstr_size, OFE_EIO, "cannot start the fsync thread");
            goto fail;
        }
        st->thr_started = true;
    }
    *out = st;
    return 0;
fail:
    if (st->lockfd >= 0)
        close(st->lockfd);
    file_unref(st->sdirf);
    free(st->dir);
    free(st->sdir);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
    return rc;
}

static void log_release(struct bus_log *log);

void bus_store_close(struct bus_store *st)
{
    if (!st)
        return;
    bus_store_flush(st);
    if (st->thr_started) {
        /* Whatever the policy, a clean stop leaves everything on disk. */
        for (struct bus_log *l = st->all; l; l = l->all_next) {
            if (l->nsegs)
                pend_add(st, l->segs[l->nsegs - 1].f);
            pend_add(st, l->jf);
            pend_add(st, l->dirf);
        }
        pend_add(st, st->sdirf);
        handoff(st, st->written_seq, NULL, true);
        pthread_mutex_lock(&st->mu);
        st->stop = true;
        pthread_cond_signal(&st->cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->thr, NULL);
    }
    pend_drop(st);
    while (st->all)
        log_release(st->all);
    free(st->pend);
    free(st->todo);
    for (size_t i = 0; i < st->nunl; i++)
        free(st->unl[i]);
    free(st->unl);
    file_unref(st->sdirf);
    if (st->lockfd >= 0)
        close(st->lockfd); /* releases the flock */
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st->dir);
    free(st->sdir);
    free(st);
}

/* ---- logs --------------------------------------------------------------- */

static void mark_dirty(struct bus_log *log)
{
    log->st->unflushed = true;
    if (!log->in_dirty) {
        log->in_dirty = true;
        log->dirty_next = log->st->dirty;
        log->st->dirty = log;
    }
}

static struct bus_log *log_alloc(struct bus_store *st, struct bus_stream *s, uint64_t dirno)
{
    struct bus_log *log = calloc(1, sizeof(*log));
    if (!log)
        return NULL;
    log->st = st;
    log->s = s;
    log->dirno = dirno;
    if (st->sdir && asprintf(&log->dir, "%s/%016" PRIx64, st->sdir, dirno) < 0) {
        free(log);
        return NULL;
    }
    log->all_next = st->all;
    if (st->all)
        st->all->all_prev = log;
    st->all = log;
    s->log = log;
    return log;
}

static void log_unlink_lists(struct bus_log *log)
{
    struct bus_store *st = log->st;
    if (log->all_prev)
        log->all_prev->all_next = log->all_next;
    else
        st->all = log->all_next;
    if (log->all_next)
        log->all_next->all_prev = log->all_prev;
    if (log->in_dirty) {
        struct bus_log **pp = &st->dirty;
        while (*pp && *pp != log)
            pp = &(*pp)->dirty_next;
        if (*pp)
            *pp = log->dirty_next;
        log->in_dirty = false;
    }
}

static void log_release(struct bus_log *log)
{
    log_unlink_lists(log);
    for (size_t i = 0; i < log->nsegs; i++)
        file_unref(log->segs[i].f);
    free(log->segs);
    file_unref(log->jf);
    file_unref(log->dirf);
    ofe_buf_fini(&log->wbuf);
    ofe_buf_fini(&log->jbuf);
    if (log->s)
        log->s->log = NULL;
    free(log->dir);
    free(log);
}

void bus_log_free(struct bus_log *log)
{
    if (!log)
        return;
    /* Keep what was buffered: write it before letting go. */
    struct bus_store *st = log->st;
    if (log->wbuf.len && log->nsegs) {
        if (file_write(log->segs[log->nsegs - 1].f, log->wbuf.data, log->wbuf.len) != 0)
            store_fail(st, "write", log->segs[log->nsegs - 1].f->path, errno);
        pend_add(st, log->segs[log->nsegs - 1].f);
    }
    if (log->jbuf.len && log->jf) {
        if (file_write(log->jf, log->jbuf.data, log->jbuf.len) != 0)
            store_fail(st, "write", log->jf->path, errno);
        pend_add(st, log->jf);
    }
    log_release(log);
}

static char *seg_path(const struct bus_log *log, uint64_t no)
{
    char *p = NULL;
    if (log->dir && asprintf(&p, "%s/seg-%016" PRIx64 ".log", log->dir, no) < 0)
        return NULL;
    return p;
}

static char *journal_path(const struct bus_log *log, uint64_t gen)
{
    char *p = NULL;
    if (log->dir && asprintf(&p, "%s/groups-%016" PRIx64 ".log", log->dir, gen) < 0)
        return NULL;
    return p;
}

static struct bus_file *create_file(struct bus_log *log, const char *path)
{
    if (!log->dir)
        return file_new(-1, NULL, false);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    struct bus_file *f = file_new(fd, path, false);
    if (!f) {
        close(fd);
        return NULL;
    }
    pend_add(log->st, log->dirf); /* the new name must be durable too */
    return f;
}

/* Appends a segment header for the stream's current state to wbuf. */
static int put_seg_header(struct bus_log *log, uint64_t no, uint64_t created)
{
    const struct bus_stream *s = log->s;
    size_t hl = BUS_SEG_HDR_FIXED + s->nlen + 4;
    if (ofe_buf_reserve(&log->wbuf, hl) != 0)
        return OFE_ENOMEM;
    unsigned char *h = (unsigned char *)log->wbuf.data + log->wbuf.len;
    memcpy(h, BUS_SEG_MAGIC, 8);
    put16(h + 8, BUS_FORMAT_VERSION);
    put16(h + 10, 0);
    put32(h + 12, (uint32_t)hl);
    put64(h + 16, no);
    put64(h + 24, created);
    put64(h + 32, s->last_id.ms);
    put64(h + 40, s->last_id.seq);
    put64(h + 48, s->max_deleted.ms);
    put64(h + 56, s->max_deleted.seq);
    put64(h + 64, s->entries_added);
    put32(h + 72, (uint32_t)s->nlen);
    memcpy(h + 76, s->name, s->nlen);
    put32(h + 76 + s->nlen, bus_crc32c(0, h, 76 + s->nlen));
    log->wbuf.len += hl;
    log->wbuf.data[log->wbuf.len] = '\0';
    mark_dirty(log);
    return 0;
}

static int log_write_out(struct bus_log *log)
{
    struct bus_store *st = log->st;
    int rc = 0;
    if (log->wbuf.len && log->nsegs) {
        struct bus_file *f = log->segs[log->nsegs - 1].f;
        if (file_write(f, log->wbuf.data, log->wbuf.len) != 0) {
            store_fail(st, "write", f->path, errno);
            rc = OFE_EIO;
        }
        atomic_fetch_add(&st->n_writes, 1);
        pend_add(st, f);
        log->wbuf.len = 0;
        if (log->wbuf.cap > (1u << 20)) {
            ofe_buf_fini(&log->wbuf);
        }
    }
    if (log->jbuf.len && log->jf) {
        if (file_write(log->jf, log->jbuf.data, log->jbuf.len) != 0) {
            store_fail(st, "write", log->jf->path, errno);
            rc = OFE_EIO;
        }
        atomic_fetch_add(&st->n_writes, 1);
        pend_add(st, log->jf);
        log->jbuf.len = 0;
        if (log->jbuf.cap > (1u << 20))
            ofe_buf_fini(&log->jbuf);
    }
    return rc;
}

static int add_segment(struct bus_log *log, uint64_t no)
{
    if (log->nsegs == log->segcap) {
        size_t ncap = log->segcap ? log->segcap * 2 : 4;
        struct bus_seg *nv = realloc(log->segs, ncap * sizeof(*nv));
        if (!nv)
            return OFE_ENOMEM;
        log->segs = nv;
        log->segcap = ncap;
    }
    char *path = seg_path(log, no);
    if (log->dir && !path)
        return OFE_ENOMEM;
    struct bus_file *f = create_file(log, path);
    if (!f) {
        if (log->dir)
            store_fail(log->st, "create", path, errno);
        free(path);
        return OFE_EIO;
    }
    free(path);
    uint64_t created = now_ms();
    log->segs[log->nsegs++] = (struct bus_seg){.no = no, .created_ms = created, .f = f};
    return put_seg_header(log, no, created);
}

static uint64_t active_size(const struct bus_log *log)
{
    return log->segs[log->nsegs - 1].f->size + log->wbuf.len;
}

int bus_log_create(struct bus_store *st, struct bus_stream *s, char *errstr, size_t errstr_size)
{
    if (s->nlen > BUS_NAME_MAX)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "stream name longer than %d bytes",
                       BUS_NAME_MAX);
    if (!bus_store_writable(st, errstr, errstr_size))
        return OFE_EIO;
    struct bus_log *log = log_alloc(st, s, st->next_dirno++);
    if (!log)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    if (log->dir) {
        if (mkdir(log->dir, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            ofe_err(errstr, errstr_size, OFE_EIO, "mkdir %s: %s", log->dir, strerror(e));
            store_fail(st, "mkdir", log->dir, e);
            log_release(log);
            return OFE_EIO;
        }
        log->dirf = open_dir(log->dir);
        if (!log->dirf) {
            ofe_err(errstr, errstr_size, OFE_EIO, "open %s: %s", log->dir, strerror(errno));
            log_release(log);
            return OFE_EIO;
        }
        pend_add(st, st->sdirf);
    }
    int rc = add_segment(log, 1);
    if (rc != 0) {
        ofe_err(errstr, errstr_size, rc, "cannot create the first segment of the stream");
        log_release(log);
        return rc;
    }
    return 0;
}

static int rm_rf_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(path);
}

void bus_log_destroy(struct bus_log *log)
{
    if (!log)
        return;
    struct bus_store *st = log->st;
    char *dir = log->dir ? strdup(log->dir) : NULL;
    log->wbuf.len = 0;
    log->jbuf.len = 0;
    log_release(log);
    if (dir) {
        /* Rename first: a crash half-way leaves a ".del" directory that
         * recovery removes, never half a stream. */
        char del[4200];
        snprintf(del, sizeof(del), "%s.del", dir);
        if (rename(dir, del) != 0) {
            OFE_WARN(COMP, NULL, "rename %s: %s", dir, strerror(errno));
        } else {
            pend_add(st, st->sdirf);
            if (rm_rf_dir(del) != 0)
                OFE_WARN(COMP, NULL, "cannot remove %s: %s", del, strerror(errno));
        }
        free(dir);
    }
}

/* ---- records ------------------------------------------------------------ */

/* Reserves a record of payload length n in b; returns a pointer to the
 * payload. finish_rec() then fills in length and checksum. */
static unsigned char *begin_rec(struct ofe_buf *b, int type, size_t n)
{
    if (ofe_buf_reserve(b, BUS_REC_HDR + n) != 0)
        return NULL;
    unsigned char *h = (unsigned char *)b->data + b->len;
    put32(h, (uint32_t)(n + 1));
    h[8] = (unsigned char)type;
    return h + BUS_REC_HDR;
}

static void finish_rec(struct ofe_buf *b, size_t n)
{
    unsigned char *h = (unsigned char *)b->data + b->len;
    uint32_t crc = bus_crc32c(0, h, 4);
    crc = bus_crc32c(crc, h + 8, n + 1);
    put32(h + 4, crc);
    b->len += BUS_REC_HDR + n;
    b->data[b->len] = '\0';
}

static size_t ndigits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

int bus_log_entry(struct bus_log *log, const struct bus_id *id, bool node_start, size_t nfields,
                  const char *const *fv, const size_t *fvlen, uint32_t *seg, uint32_t *off)
{
    struct bus_store *st = log->st;
    if (atomic_load(&st->failed))
        return OFE_EIO;
    if (active_size(log) >= st->seg_max && log->segs[log->nsegs - 1].f->size + log->wbuf.len >
                                               (uint64_t)(BUS_SEG_HDR_FIXED + log->s->nlen + 4)) {
        if (log_write_out(log) != 0)
            return OFE_EIO;
        int rc = add_segment(log, log->segs[log->nsegs - 1].no + 1);
        if (rc != 0)
            return rc;
    }
    size_t arr = 1 + ndigits(nfields * 2) + 2;
    for (size_t i = 0; i < nfields * 2; i++)
        arr += 1 + ndigits(fvlen[i]) + 2 + fvlen[i] + 2;
    size_t n = 1 + 8 + 8 + 4 + arr;
    if (n + 1 > BUS_REC_MAX)
        return OFE_ETOOBIG;
    uint64_t at = active_size(log);
    unsigned char *p = begin_rec(&log->wbuf, BUS_REC_ENTRY, n);
    if (!p)
        return OFE_ENOMEM;
    p[0] = node_start ? 1 : 0;
    put64(p + 1, id->ms);
    put64(p + 9, id->seq);
    put32(p + 17, (uint32_t)nfields);
    char *w = (char *)p + 21;
    *w++ = '*';
    w += resp_u64toa(w, nfields * 2);
    *w++ = '\r';
    *w++ = '\n';
    for (size_t i = 0; i < nfields * 2; i++) {
        *w++ = '$';
        w += resp_u64toa(w, fvlen[i]);
        *w++ = '\r';
        *w++ = '\n';
        memcpy(w, fv[i], fvlen[i]);
        w += fvlen[i];
        *w++ = '\r';
        *w++ = '\n';
    }
    finish_rec(&log->wbuf, n);
    mark_dirty(log);
    *seg = (uint32_t)(log->segs[log->nsegs - 1].no & BUS_SLOT_SEGMASK);
    *off = (uint32_t)at;
    return 0;
}

int bus_log_delete(struct bus_log *log, const struct bus_id *ids, size_t n)
{
    if (atomic_load(&log->st->failed))
        return OFE_EIO;
    size_t len = 4 + 16 * n;
    unsigned char *p = begin_rec(&log->wbuf, BUS_REC_DELETE, len);
    if (!p)
        return OFE_ENOMEM;
    put32(p, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put64(p + 4 + 16 * i, ids[i].ms);
        put64(p + 12 + 16 * i, ids[i].seq);
    }
    finish_rec(&log->wbuf, len);
    mark_dirty(log);
    return 0;
}

int bus_log_trim(struct bus_log *log, const struct bus_trim_plan *plan)
{
    if (atomic_load(&log->st->failed))
        return OFE_EIO;
    unsigned char *p = begin_rec(&log->wbuf, BUS_REC_TRIM, 33);
    if (!p)
        return OFE_ENOMEM;
    p[0] = (unsigned char)((plan->remove ? 1 : 0) | (plan->mark ? 2 : 0));
    put64(p + 1, plan->remove_through.ms);
    put64(p + 9, plan->remove_through.seq);
    put64(p + 17, plan->mark_through.ms);
    put64(p + 25, plan->mark_through.seq);
    finish_rec(&log->wbuf, 33);
    mark_dirty(log);
    return 0;
}

/* ---- group journal ------------------------------------------------------ */

static size_t snapshot_into(struct ofe_buf *b, const struct bus_stream *s, uint64_t gen);

static int journal_open_gen(struct bus_log *log, uint64_t gen)
{
    char *path = journal_path(log, gen);
    if (log->dir && !path)
        return OFE_ENOMEM;
    struct bus_file *f = create_file(log, path);
    if (!f) {
        store_fail(log->st, "create", path, errno);
        free(path);
        return OFE_EIO;
    }
    free(path);
    unsigned char h[BUS_JOURNAL_HDR];
    memcpy(h, BUS_JOURNAL_MAGIC, 8);
    put16(h + 8, BUS_FORMAT_VERSION);
    put16(h + 10, 0);
    put32(h + 12, 0);
    put64(h + 16, gen);
    put32(h + 24, bus_crc32c(0, h, 24));
    struct ofe_buf nb = OFE_BUF_INIT;
    if (ofe_buf_append(&nb, h, sizeof(h)) != 0) {
        file_unref(f);
        return OFE_ENOMEM;
    }
    size_t snap = snapshot_into(&nb, log->s, gen);
    if (snap == 0) {
        ofe_buf_fini(&nb);
        file_unref(f);
        return OFE_ENOMEM;
    }
    /* The old journal's buffered tail goes to the old file first. */
    if (log->jbuf.len && log->jf) {
        if (file_write(log->jf, log->jbuf.data, log->jbuf.len) != 0)
            store_fail(log->st, "write", log->jf->path, errno);
        pend_add(log->st, log->jf);
        log->jbuf.len = 0;
    }
    struct bus_file *old = log->jf;
    char *old_path = old && old->path ? strdup(old->path) : NULL;
    ofe_buf_fini(&log->jbuf);
    log->jbuf = nb;
    log->jf = f;
    log->jgen = gen;
    log->jsnap = nb.len;
    mark_dirty(log);
    if (old) {
        /* The old generation goes once the new one is on disk. */
        if (log_write_out(log) == 0 && log->st->thr_started) {
            pend_add(log->st, f);
            pend_add(log->st, log->dirf);
            handoff(log->st, 0, old_path, true);
            old_path = NULL;
        }
        file_unref(old);
    }
    free(old_path);
    return 0;
}

/* Opens the journal on first use; false when the store cannot write. */
static bool journal_ready(struct bus_log *log)
{
    if (atomic_load(&log->st->failed))
        return false;
    if (!log->jf && journal_open_gen(log, 1) != 0)
        return false;
    mark_dirty(log);
    return true;
}

static unsigned char *jrec(struct bus_log *log, int type, size_t n)
{
    if (!journal_ready(log))
        return NULL;
    unsigned char *p = begin_rec(&log->jbuf, type, n);
    if (p)
        mark_dirty(log);
    return p;
}

static int put_group_create(struct ofe_buf *b, const struct bus_group *g)
{
    size_t n = 4 + 16 + 8 + 4 + g->nlen;
    unsigned char *p = begin_rec(b, BUS_REC_GROUP_CREATE, n);
    if (!p)
        return OFE_ENOMEM;
    put32(p, g->jid);
    put64(p + 4, g->last_id.ms);
    put64(p + 12, g->last_id.seq);
    put64(p + 20, (uint64_t)g->entries_read);
    put32(p + 28, (uint32_t)g->nlen);
    memcpy(p + 32, g->name, g->nlen);
    finish_rec(b, n);
    return 0;
}

static int put_consumer_create(struct ofe_buf *b, const struct bus_consumer *c)
{
    size_t n = 4 + 4 + 8 + 4 + c->nlen;
    unsigned char *p = begin_rec(b, BUS_REC_CONSUMER_CREATE, n);
    if (!p)
        return OFE_ENOMEM;
    put32(p, c->group->jid);
    put32(p + 4, c->jid);
    put64(p + 8, c->seen_time);
    put32(p + 16, (uint32_t)c->nlen);
    memcpy(p + 20, c->name, c->nlen);
    finish_rec(b, n);
    return 0;
}

static int put_pel_set(struct ofe_buf *b, const struct bus_consumer *c, struct bus_nack *const *v,
                       size_t k)
{
    size_t n = 4 + 4 + 8 + 4 + 32 * k;
    unsigned char *p = begin_rec(b, BUS_REC_PEL_SET, n);
    if (!p)
        return OFE_ENOMEM;
    put32(p, c->group->jid);
    put32(p + 4, c->jid);
    put64(p + 8, c->seen_time);
    put32(p + 16, (uint32_t)k);
    for (size_t i = 0; i < k; i++) {
        unsigned char *q = p + 20 + 32 * i;
        put64(q, v[i]->id.ms);
        put64(q + 8, v[i]->id.seq);
        put64(q + 16, v[i]->delivery_time);
        put64(q + 24, v[i]->delivery_count);
    }
    finish_rec(b, n);
    return 0;
}

static size_t snapshot_into(struct ofe_buf *b, const struct bus_stream *s, uint64_t gen)
{
    size_t start = b->len;
    unsigned char *p = begin_rec(b, BUS_REC_SNAP_BEGIN, 8);
    if (!p)
        return 0;
    put64(p, gen);
    finish_rec(b, 8);
    size_t pos = 0;
    struct bus_dict_ent *e;
    while ((e = bus_dict_next(&s->groups, &pos))) {
        const struct bus_group *g = e->val;
        if (put_group_create(b, g) != 0)
            return 0;
        size_t cpos = 0;
        struct bus_dict_ent *ce;
        while ((ce = bus_dict_next(&g->consumers, &cpos))) {
            const struct bus_consumer *c = ce->val;
            if (put_consumer_create(b, c) != 0)
                return 0;
            /* The consumer's PEL in batches. */
            struct bus_nack *batch[256];
            size_t k = 0;
            for (struct bus_nack *n = bus_pel_seek(c->pel, 1, &(struct bus_id){0, 0}); n;
                 n = bus_pel_next(c->pel, 1, n)) {
                batch[k++] = n;
                if (k == 256) {
                    if (put_pel_set(b, c, batch, k) != 0)
                        return 0;
                    k = 0;
                }
            }
            if (k && put_pel_set(b, c, batch, k) != 0)
                return 0;
        }
    }
    if (!begin_rec(b, BUS_REC_SNAP_END, 0))
        return 0;
    finish_rec(b, 0);
    return b->len - start;
}

int bus_log_group_create(struct bus_log *log, const struct bus_group *g)
{
    if (!journal_ready(log))
        return OFE_EIO;
    return put_group_create(&log->jbuf, g);
}

int bus_log_group_destroy(struct bus_log *log, const struct bus_group *g)
{
    unsigned char *p = jrec(log, BUS_REC_GROUP_DESTROY, 4);
    if (!p)
        return OFE_EIO;
    put32(p, g->jid);
    finish_rec(&log->jbuf, 4);
    return 0;
}

int bus_log_group_setid(struct bus_log *log, const struct bus_group *g)
{
    unsigned char *p = jrec(log, BUS_REC_GROUP_SETID, 28);
    if (!p)
        return OFE_EIO;
    put32(p, g->jid);
    put64(p + 4, g->last_id.ms);
    put64(p + 12, g->last_id.seq);
    put64(p + 20, (uint64_t)g->entries_read);
    finish_rec(&log->jbuf, 28);
    return 0;
}

int bus_log_consumer_create(struct bus_log *log, const struct bus_consumer *c)
{
    if (!journal_ready(log))
        return OFE_EIO;
    return put_consumer_create(&log->jbuf, c);
}

int bus_log_consumer_delete(struct bus_log *log, const struct bus_consumer *c)
{
    unsigned char *p = jrec(log, BUS_REC_CONSUMER_DELETE, 8);
    if (!p)
        return OFE_EIO;
    put32(p, c->group->jid);
    put32(p + 4, c->jid);
    finish_rec(&log->jbuf, 8);
    return 0;
}

int bus_log_pel_set(struct bus_log *log, const struct bus_consumer *c,
                    struct bus_nack *const *nacks, size_t n)
{
    if (!journal_ready(log))
        return OFE_EIO;
    return put_pel_set(&log->jbuf, c, nacks, n);
}

int bus_log_pel_del(struct bus_log *log, const struct bus_group *g, const struct bus_id *ids,
                    size_t n)
{
    size_t len = 8 + 16 * n;
    unsigned char *p = jrec(log, BUS_REC_PEL_DEL, len);
    if (!p)
        return OFE_EIO;
    put32(p, g->jid);
    put32(p + 4, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put64(p + 8 + 16 * i, ids[i].ms);
        put64(p + 16 + 16 * i, ids[i].seq);
    }
    finish_rec(&log->jbuf, len);
    return 0;
}

/* ---- replay --------------------------------------------------------------- */

/* Checks that p[0..n) is exactly one RESP array of 2*nfields bulk strings. */
static bool valid_fields(const unsigned char *p, size_t n, uint32_t nfields)
{
    const char *c = (const char *)p, *e = c + n;
    if (c >= e || *c != '*')
        return false;
    const char *cr = memchr(c, '\r', (size_t)(e - c));
    long long cnt;
    if (!cr || cr + 1 >= e || cr[1] != '\n' || !resp_str2ll(c + 1, (size_t)(cr - c - 1), &cnt) ||
        cnt != (long long)nfields * 2)
        return false;
    c = cr + 2;
    for (long long i = 0; i < cnt; i++) {
        if (c >= e || *c != '$')
            return false;
        cr = memchr(c, '\r', (size_t)(e - c));
        long long bl;
        if (!cr || cr + 1 >= e || cr[1] != '\n' || !resp_str2ll(c + 1, (size_t)(cr - c - 1), &bl) ||
            bl < 0)
            return false;
        c = cr + 2;
        if ((unsigned long long)(e - c) < (unsigned long long)bl + 2)
            return false;
        c += bl;
        if (c[0] != '\r' || c[1] != '\n')
            return false;
        c += 2;
    }
    return c == e;
}

int bus_seg_apply(struct bus_stream *s, int type, const unsigned char *p, size_t n, uint32_t seg,
                  uint32_t off)
{
    switch (type) {
    case BUS_REC_ENTRY: {
        if (n < 21)
            return OFE_EPARSE;
        struct bus_id id = {get64(p + 1), get64(p + 9)};
        uint32_t nf = get32(p + 17);
        if (nf == 0 || !valid_fields(p + 21, n - 21, nf))
            return OFE_EPARSE;
        if (s->n) {
            struct bus_id last = bus_slot_id(bus_slot_at(s, s->n - 1));
            if (bus_id_cmp(&id, &last) <= 0)
                return OFE_EPARSE;
        }
        if (bus_id_zero(&id))
            return OFE_EPARSE;
        return bus_stream_apply_entry(s, &id, p[0] & 1, seg, off);
    }
    case BUS_REC_DELETE: {
        if (n < 4)
            return OFE_EPARSE;
        uint32_t k = get32(p);
        if ((size_t)k * 16 != n - 4)
            return OFE_EPARSE;
        for (uint32_t i = 0; i < k; i++) {
            struct bus_id id = {get64(p + 4 + 16 * i), get64(p + 12 + 16 * i)};
            /* The entry may sit in a segment retention already removed;
             * the tombstone still counts for max-deleted-entry-id. */
            if (!bus_stream_apply_delete(s, &id) && bus_id_cmp(&id, &s->max_deleted) > 0)
                s->max_deleted = id;
        }
        return 0;
    }
    case BUS_REC_TRIM: {
        if (n != 33)
            return OFE_EPARSE;
        struct bus_trim_plan plan = {
            .remove = p[0] & 1,
            .mark = (p[0] & 2) != 0,
            .remove_through = {get64(p + 1), get64(p + 9)},
            .mark_through = {get64(p + 17), get64(p + 25)},
        };
        bus_stream_apply_trim(s, &plan);
        return 0;
    }
    default:
        return OFE_EPARSE;
    }
}

static void drop_all_groups(struct bus_stream *s)
{
    struct bus_dict_ent **v = bus_dict_sorted(&s->groups);
    size_t n = s->groups.n;
    for (size_t i = 0; v && i < n; i++)
        bus_group_destroy(s, v[i]->val);
    free(v);
}

int bus_journal_apply(struct bus_stream *s, int type, const unsigned char *p, size_t n)
{
    switch (type) {
    case BUS_REC_SNAP_BEGIN:
        drop_all_groups(s);
        return 0;
    case BUS_REC_SNAP_END:
        return 0;
    case BUS_REC_GROUP_CREATE: {
        if (n < 32 || get32(p + 28) != n - 32 || get32(p) == 0)
            return OFE_EPARSE;
        const char *name = (const char *)p + 32;
        size_t nlen = n - 32;
        struct bus_group *old = bus_group_get(s, name, nlen);
        if (old)
            bus_group_destroy(s, old);
        old = bus_group_by_jid(s, get32(p));
        if (old)
            bus_group_destroy(s, old);
        struct bus_id id = {get64(p + 4), get64(p + 12)};
        return bus_group_create(s, name, nlen, &id, (int64_t)get64(p + 20), get32(p)) ? 0
                                                                                      : OFE_ENOMEM;
    }
    case BUS_REC_GROUP_DESTROY: {
        if (n != 4)
            return OFE_EPARSE;
        struct bus_group *g = bus_group_by_jid(s, get32(p));
        if (g)
            bus_group_destroy(s, g);
        return 0;
    }
    case BUS_REC_GROUP_SETID: {
        if (n != 28)
            return OFE_EPARSE;
        struct bus_group *g = bus_group_by_jid(s, get32(p));
        if (g) {
            g->last_id = (struct bus_id){get64(p + 4), get64(p + 12)};
            g->entries_read = (int64_t)get64(p + 20);
        }
        return 0;
    }
    case BUS_REC_CONSUMER_CREATE: {
        if (n < 20 || get32(p + 16) != n - 20 || get32(p + 4) == 0)
            return OFE_EPARSE;
        struct bus_group *g = bus_group_by_jid(s, get32(p));
        if (!g)
            return 0;
        const char *name = (const char *)p + 20;
        size_t nlen = n - 20;
        struct bus_consumer *c = bus_consumer_get(g, name, nlen);
        if (c)
            bus_consumer_delete(g, c);
        c = bus_consumer_by_jid(g, get32(p + 4));
        if (c)
            bus_consumer_delete(g, c);
        return bus_consumer_create(g, name, nlen, get64(p + 8), get32(p + 4)) ? 0 : OFE_ENOMEM;
    }
    case BUS_REC_CONSUMER_DELETE: {
        if (n != 8)
            return OFE_EPARSE;
        struct bus_group *g = bus_group_by_jid(s, get32(p));
        struct bus_consumer *c = g ? bus_consumer_by_jid(g, get32(p + 4)) : NULL;
        if (c)
            bus_consumer_delete(g, c);
        return 0;
    }
    case BUS_REC_PEL_SET: {
        if (n < 20 || (size_t)get32(p + 16) * 32 != n - 20)
            return OFE_EPARSE;
        struct bus_group *g = bus_group_by_jid(s, get32(p));
        struct bus_consumer *c = g ? bus_consumer_by_jid(g, get32(p + 4)) : NULL;
        if (!c)
            return 0;
        if (get64(p + 8))
            c->seen_time = get64(p + 8);
        uint32_t k = get32(p + 16);
        for (uint32_t i = 0; i < k; i++) {
            const unsigned char *q = p + 20 + 32 * i;
            struct bus_id id = {get64(q), get64(q + 8)};
            if (!bus_pel_set(g, &id, c, get64(q + 16), get64(q + 24)))
                return OFE_ENOMEM;
        }
        return 0;
    }
    case BUS_REC_PEL_DEL: {
        if (n < 8 || (size_t)get32(p + 4) * 16 != n - 8)
            return OFE_EPARSE;
        struct bus_group *g = bus_group_by_jid(s, get32(p));
        if (!g)
            return 0;
        uint32_t k = get32(p + 4);
        for (uint32_t i = 0; i < k; i++) {
            struct bus_id id = {get64(p + 8 + 16 * i), get64(p + 16 + 16 * i)};
            bus_pel_del(g, &id);
        }
        return 0;
    }
    default:
        return OFE_EPARSE;
    }
}

/* Validates the record framing at data[off..len). Returns the record's
 * total length, or 0 with *why set. */
static size_t rec_check(const unsigned char *data, size_t len, size_t off, const char **why)
{
    if (len - off < BUS_REC_HDR) {
        *why = "torn record header";
        return 0;
    }
    uint32_t rl = get32(data + off);
    if (rl == 0 || rl > BUS_REC_MAX) {
        *why = "invalid record length";
        return 0;
    }
    if ((uint64_t)(len - off) < (uint64_t)rl + 8) {
        *why = "torn record (file ends inside it)";
        return 0;
    }
    uint32_t crc = bus_crc32c(0, data + off, 4);
    crc = bus_crc32c(crc, data + off + 8, rl);
    if (crc != get32(data + off + 4)) {
        *why = "checksum mismatch";
        return 0;
    }
    return (size_t)rl + 8;
}

static size_t parse_seg_header(const unsigned char *data, size_t len, struct bus_seg_hdr *hdr,
                               const char **why)
{
    memset(hdr, 0, sizeof(*hdr));
    if (len < BUS_SEG_HDR_FIXED + 4) {
        *why = "segment header torn";
        return 0;
    }
    if (memcmp(data, BUS_SEG_MAGIC, 8) != 0) {
        *why = "not a segment file (bad magic)";
        return 0;
    }
    hdr->version = get16(data + 8);
    if (hdr->version != BUS_FORMAT_VERSION) {
        *why = "unsupported segment format version";
        return 0;
    }
    uint32_t hl = get32(data + 12);
    uint32_t nl = get32(data + 72);
    if ((uint64_t)nl + BUS_SEG_HDR_FIXED + 4 != hl || hl > len) {
        *why = hl > len ? "segment header torn" : "invalid segment header length";
        return 0;
    }
    if (bus_crc32c(0, data, BUS_SEG_HDR_FIXED + nl) != get32(data + BUS_SEG_HDR_FIXED + nl)) {
        *why = "segment header checksum mismatch";
        return 0;
    }
    hdr->no = get64(data + 16);
    hdr->created_ms = get64(data + 24);
    hdr->last_id = (struct bus_id){get64(data + 32), get64(data + 40)};
    hdr->max_deleted = (struct bus_id){get64(data + 48), get64(data + 56)};
    hdr->entries_added = get64(data + 64);
    hdr->name = (const char *)data + BUS_SEG_HDR_FIXED;
    hdr->nlen = nl;
    hdr->hdr_len = hl;
    return hl;
}

size_t bus_seg_scan(const unsigned char *data, size_t len, struct bus_seg_hdr *hdr,
                    int (*apply_rec)(void *arg, int type, const unsigned char *p, size_t n,
                                     uint64_t off),
                    void *arg, const char **why)
{
    *why = NULL;
    size_t hl = parse_seg_header(data, len, hdr, why);
    if (!hl)
        return 0;
    size_t off = hl;
    while (off < len) {
        size_t rl = rec_check(data, len, off, why);
        if (!rl)
            return off;
        if (apply_rec &&
            apply_rec(arg, data[off + 8], data + off + BUS_REC_HDR, rl - BUS_REC_HDR, off) != 0) {
            *why = "malformed record";
            return off;
        }
        off += rl;
    }
    return off;
}

/* ---- reading ------------------------------------------------------------ */

void bus_reader_init(struct bus_reader *rd)
{
    memset(rd, 0, sizeof(*rd));
}

void bus_reader_fini(struct bus_reader *rd)
{
    free(rd->buf);
    memset(rd, 0, sizeof(*rd));
}

static struct bus_seg *find_seg(struct bus_log *log, uint32_t segm)
{
    if (!log->nsegs)
        return NULL;
    uint32_t first = (uint32_t)(log->segs[0].no & BUS_SLOT_SEGMASK);
    uint32_t k = (segm - first) & BUS_SLOT_SEGMASK;
    return k < log->nsegs ? &log->segs[k] : NULL;
}

static int rd_fill(struct bus_reader *rd, struct bus_file *f, uint64_t off, size_t need)
{
    size_t want = need > READ_CHUNK ? need : READ_CHUNK;
    if (f->size > off && want > f->size - off)
        want = (size_t)(f->size - off);
    if (want < need)
        want = need;
    if (rd->cap < want) {
        char *nb = realloc(rd->buf, want);
        if (!nb)
            return OFE_ENOMEM;
        rd->buf = nb;
        rd->cap = want;
    }
    ssize_t r = file_pread(f, rd->buf, want, off);
    if (r < 0)
        return OFE_EIO;
    rd->file = f->id;
    rd->lo = off;
    rd->hi = off + (uint64_t)r;
    return 0;
}

int bus_log_read(struct bus_log *log, const struct bus_slot *sl, struct bus_reader *rd,
                 const char **fields, size_t *flen, uint32_t *nfields)
{
    uint32_t segm = sl->seg & BUS_SLOT_SEGMASK;
    struct bus_seg *sg = find_seg(log, segm);
    if (!sg)
        return OFE_EIO;
    uint64_t off = sl->off;
    if (sg == &log->segs[log->nsegs - 1] && log->wbuf.len && off + BUS_REC_HDR > sg->f->size) {
        /* The entry is still in the write buffer: write it out first. */
        log_write_out(log);
    }
    if (!(rd->file == sg->f->id && off >= rd->lo && off + BUS_REC_HDR <= rd->hi)) {
        int rc = rd_fill(rd, sg->f, off, BUS_REC_HDR);
        if (rc)
            return rc;
    }
    const unsigned char *h = (const unsigned char *)rd->buf + (off - rd->lo);
    if (rd->hi - off < BUS_REC_HDR)
        return OFE_EIO;
    uint32_t rl = get32(h);
    if (rl < 22 || rl > BUS_REC_MAX)
        return OFE_EPARSE;
    if (off + 8 + rl > rd->hi) {
        int rc = rd_fill(rd, sg->f, off, (size_t)rl + 8);
        if (rc)
            return rc;
        if (rd->hi - off < (uint64_t)rl + 8)
            return OFE_EIO;
        h = (const unsigned char *)rd->buf;
    }
    uint32_t crc = bus_crc32c(0, h, 4);
    crc = bus_crc32c(crc, h + 8, rl);
    if (crc != get32(h + 4) || h[8] != BUS_REC_ENTRY)
        return OFE_EPARSE;
    const unsigned char *p = h + BUS_REC_HDR;
    *nfields = get32(p + 17);
    *fields = (const char *)p + 21;
    *flen = rl - 1 - 21;
    return 0;
}

/* ---- flush / cron --------------------------------------------------------- */

uint64_t bus_store_flush(struct bus_store *st)
{
    bool wrote = false;
    while (st->dirty) {
        struct bus_log *log = st->dirty;
        st->dirty = log->dirty_next;
        log->in_dirty = false;
        if (log->wbuf.len || log->jbuf.len)
            wrote = true;
        log_write_out(log);
    }
    /* Whatever was written since the last flush (also by compaction or a
     * reader writing the buffer out early) gets a sequence of its own, so
     * replies waiting for it are released. */
    if (!wrote && !st->npend && !st->unflushed)
        return 0;
    st->unflushed = false;
    uint64_t seq = ++st->written_seq;
    if (!st->thr_started) {
        pend_drop(st);
        atomic_store(&st->durable, seq);
    } else if (st->policy == BUS_FSYNC_ALWAYS) {
        handoff(st, seq, NULL, false);
    } else if (st->policy == BUS_FSYNC_EVERYSEC) {
        /* The thread syncs what accumulated once a second. */
        handoff(st, seq, NULL, false);
        atomic_store(&st->durable, seq);
    } else {
        pend_drop(st);
        atomic_store(&st->durable, seq);
    }
    return seq;
}

uint64_t bus_store_flush_pending(const struct bus_store *st)
{
    return (st->dirty || st->npend || st->unflushed) ? st->written_seq + 1 : st->written_seq;
}

uint64_t bus_store_durable(const struct bus_store *st)
{
    return atomic_load(&((struct bus_store *)st)->durable);
}

void bus_store_sync_now(struct bus_store *st)
{
    bus_store_flush(st);
    bool ok = true;
    for (struct bus_log *l = st->all; l; l = l->all_next) {
        struct bus_file *fs[3] = {l->nsegs ? l->segs[l->nsegs - 1].f : NULL, l->jf, l->dirf};
        for (int i = 0; i < 3; i++)
            if (fs[i] && fs[i]->fd >= 0 &&
                (fs[i]->is_dir ? fsync(fs[i]->fd) : fdatasync(fs[i]->fd)) != 0 && errno != EINVAL) {
                store_fail(st, "fsync", fs[i]->path, errno);
                ok = false;
            }
    }
    if (st->sdirf && st->sdirf->fd >= 0)
        fsync(st->sdirf->fd);
    if (ok)
        atomic_store(&st->durable, st->written_seq);
}

void bus_store_cron(struct bus_store *st)
{
    for (struct bus_log *l = st->all; l; l = l->all_next) {
        if (!l->jf)
            continue;
        uint64_t jsize = l->jf->size + l->jbuf.len;
        if (jsize > 4 * l->jsnap + (1u << 20))
            journal_open_gen(l, l->jgen + 1);
    }
}

/* ---- retention ------------------------------------------------------------ */

static void drop_first_segment(struct bus_log *log)
{
    struct bus_seg *sg = &log->segs[0];
    if (sg->f->path && unlink(sg->f->path) != 0 && errno != ENOENT)
        OFE_WARN(COMP, log->s->name, "unlink %s: %s", sg->f->path, strerror(errno));
    file_unref(sg->f);
    memmove(log->segs, log->segs + 1, (log->nsegs - 1) * sizeof(*log->segs));
    log->nsegs--;
    pend_add(log->st, log->dirf);
}

/* Removes segments no index slot refers to (never the active one). */
static void log_gc(struct bus_log *log)
{
    const struct bus_stream *s = log->s;
    while (log->nsegs > 1) {
        uint32_t first = (uint32_t)(log->segs[0].no & BUS_SLOT_SEGMASK);
        if (s->n && (bus_slot_at(s, 0)->seg & BUS_SLOT_SEGMASK) == first)
            break;
        drop_first_segment(log);
    }
}

long long bus_store_retain(struct bus_store *st, struct bus_stream *s,
                           const struct bus_retention *r, uint64_t now)
{
    struct bus_log *log = s->log;
    if (!log || atomic_load(&st->failed))
        return 0;
    long long removed = 0;
    log_gc(log);
    /* Age is measured on append time, not on ids (which clients may
     * choose): the active segment is rolled after a quarter of max_age, and
     * a sealed segment goes once its successor is older than max_age (all
     * its entries were appended before that). Entries thus live between
     * max_age and 1.25 x max_age. */
    if (r->max_age_ms) {
        uint64_t roll = r->max_age_ms / 4 < 1000 ? 1000 : r->max_age_ms / 4;
        struct bus_seg *act = &log->segs[log->nsegs - 1];
        uint64_t hdr = BUS_SEG_HDR_FIXED + s->nlen + 4;
        if (act->f->size + log->wbuf.len > hdr && act->created_ms + roll <= now &&
            log_write_out(log) == 0)
            add_segment(log, act->no + 1);
    }
    /* Whole segments first: cheap and frees disk space. */
    while (log->nsegs > 1) {
        uint64_t total = 0;
        for (size_t i = 0; i < log->nsegs; i++)
            total += log->segs[i].f->size;
        total += log->wbuf.len;
        bool by_bytes = r->max_bytes && total > r->max_bytes;
        /* Segment 0 holds nothing newer than segment 1's creation. */
        bool by_age = r->max_age_ms && log->segs[1].created_ms + r->max_age_ms < now;
        if (!by_bytes && !by_age)
            break;
        uint32_t first = (uint32_t)(log->segs[0].no & BUS_SLOT_SEGMASK);
        size_t k = 0;
        while (k < s->n && (bus_slot_at(s, k)->seg & BUS_SLOT_SEGMASK) == first)
            k++;
        removed += bus_stream_drop_slots(s, k);
        drop_first_segment(log);
    }
    /* Then entries, logically. */
    struct bus_trim t = {.strategy = BUS_TRIM_NONE};
    if (r->max_entries && s->length > r->max_entries) {
        t.strategy = BUS_TRIM_MAXLEN;
        t.maxlen = (long long)r->max_entries;
    }
    struct bus_trim_plan plan;
    if (t.strategy != BUS_TRIM_NONE) {
        bus_stream_plan_trim(s, &t, &plan);
        if (plan.deleted && bus_log_trim(log, &plan) == 0) {
            bus_stream_apply_trim(s, &plan);
            removed += plan.deleted;
        }
    }
    log_gc(log);
    return removed;
}

void bus_log_gc(struct bus_log *log)
{
    if (log)
        log_gc(log);
}

void bus_store_stats(const struct bus_store *st, struct bus_store_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (const struct bus_log *l = st->all; l; l = l->all_next) {
        out->bytes_on_disk += bus_log_bytes(l);
        out->segments += l->nsegs;
    }
    out->fsyncs = atomic_load(&((struct bus_store *)st)->n_fsyncs);
    out->writes = atomic_load(&((struct bus_store *)st)->n_writes);
}

uint64_t bus_log_bytes(const struct bus_log *log)
{
    uint64_t b = log->wbuf.len + log->jbuf.len;
    for (size_t i = 0; i < log->nsegs; i++)
        b += log->segs[i].f->size;
    if (log->jf)
        b += log->jf->size;
    return b;
}

/* ---- recovery --------------------------------------------------------------- */

struct replay_ctx {
    struct bus_stream *s;
    uint32_t segm;
    bool journal;
    bool saw_end;
    bool first;
};

static int replay_seg_rec(void *arg, int type, const unsigned char *p, size_t n, uint64_t off)
{
    struct replay_ctx *c = arg;
    return bus_seg_apply(c->s, type, p, n, c->segm, (uint32_t)off);
}

static int replay_journal_rec(void *arg, int type, const unsigned char *p, size_t n, uint64_t off)
{
    (void)off;
    struct replay_ctx *c = arg;
    if (c->first && type != BUS_REC_SNAP_BEGIN)
        return OFE_EPARSE;
    c->first = false;
    if (type == BUS_REC_SNAP_END)
        c->saw_end = true;
    return bus_journal_apply(c->s, type, p, n);
}

/* A crash cuts the end of a file; other damage (checksums, garbage) is
 * corruption and its evidence is kept. */
static bool is_torn(const char *why)
{
    return !why || strstr(why, "torn") || strstr(why, "empty");
}

/* Copies a damaged file to PATH.corrupt before recovery cuts it. */
static void keep_copy(const char *path, int fd, size_t len)
{
    char aside[4300];
    snprintf(aside, sizeof(aside), "%s.corrupt", path);
    int out = open(aside, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        OFE_ERROR(COMP, NULL, "cannot keep a copy of %s: %s", path, strerror(errno));
        return;
    }
    char buf[65536];
    for (size_t off = 0; off < len;) {
        ssize_t r = pread(fd, buf, sizeof(buf), (off_t)off);
        if (r <= 0 || write(out, buf, (size_t)r) != r)
            break;
        off += (size_t)r;
    }
    close(out);
}

static bool dir_has_corrupt(const char *dir)
{
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".corrupt"))
            found = true;
    if (d)
        closedir(d);
    return found;
}

struct fent {
    uint64_t no;
    int kind; /* 0 segment, 1 journal */
};

static int cmp_fent(const void *a, const void *b)
{
    const struct fent *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    return x->no < y->no ? -1 : x->no > y->no;
}

/* Maps a file read-only; returns NULL for an empty file (*len 0). */
static unsigned char *map_file(int fd, size_t *len)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return NULL;
    *len = (size_t)sb.st_size;
    if (!*len)
        return NULL;
    void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    return m == MAP_FAILED ? NULL : m;
}

/* Scans a journal image after its header; returns the valid length. */
static size_t journal_scan(const unsigned char *data, size_t len, struct replay_ctx *c,
                           const char **why)
{
    *why = NULL;
    if (len < BUS_JOURNAL_HDR || memcmp(data, BUS_JOURNAL_MAGIC, 8) != 0 ||
        get16(data + 8) != BUS_FORMAT_VERSION || bus_crc32c(0, data, 24) != get32(data + 24)) {
        *why = "invalid journal header";
        return 0;
    }
    size_t off = BUS_JOURNAL_HDR;
    c->first = true;
    while (off < len) {
        size_t rl = rec_check(data, len, off, why);
        if (!rl)
            return off;
        if (replay_journal_rec(c, data[off + 8], data + off + BUS_REC_HDR, rl - BUS_REC_HDR, off) !=
            0) {
            *why = "malformed record";
            return off;
        }
        off += rl;
    }
    return off;
}

static int load_stream_dir(struct bus_store *st, const char *name, uint64_t dirno,
                           int (*add)(void *, struct bus_stream *), void *arg)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/%s", st->sdir, name);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct fent *fv = NULL;
    size_t nf = 0, capf = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long no;
        char tail[8];
        int kind;
        if (sscanf(e->d_name, "seg-%16llx.%4s", &no, tail) == 2 && !strcmp(tail, "log"))
            kind = 0;
        else if (sscanf(e->d_name, "groups-%16llx.%4s", &no, tail) == 2 && !strcmp(tail, "log"))
            kind = 1;
        else
            continue;
        if (nf == capf) {
            capf = capf ? capf * 2 : 16;
            struct fent *nv = realloc(fv, capf * sizeof(*nv));
            if (!nv) {
                closedir(d);
                free(fv);
                return OFE_ENOMEM;
            }
            fv = nv;
        }
        fv[nf++] = (struct fent){no, kind};
    }
    closedir(d);
    if (nf > 1) /* fv is NULL for a stream directory with no file yet */
        qsort(fv, nf, sizeof(*fv), cmp_fent);

    struct bus_stream *s = NULL;
    struct bus_log *log = NULL;
    int rc = 0;
    size_t nseg = 0;
    for (size_t i = 0; i < nf; i++)
        if (fv[i].kind == 0)
            nseg++;
    for (size_t i = 0; i < nseg; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/seg-%016" PRIx64 ".log", dir, fv[i].no);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            OFE_ERROR(COMP, NULL, "cannot open %s: %s", path, strerror(errno));
            rc = OFE_EIO;
            break;
        }
        size_t len = 0;
        unsigned char *m = map_file(fd, &len);
        bool last = i + 1 == nseg;
        struct bus_seg_hdr hdr;
        const char *why = NULL;
        struct replay_ctx ctx = {.s = s, .segm = (uint32_t)(fv[i].no & BUS_SLOT_SEGMASK)};
        size_t valid = 0;
        if (m) {
            /* Header first, to create the stream before replaying. */
            if (parse_seg_header(m, len, &hdr, &why)) {
                if (!s) {
                    s = bus_stream_new(hdr.name, hdr.nlen);
                    if (!s) {
                        munmap(m, len);
                        close(fd);
                        rc = OFE_ENOMEM;
                        break;
                    }
                    s->last_id = hdr.last_id;
                    s->max_deleted = hdr.max_deleted;
                    s->entries_added = hdr.entries_added;
                    log = log_alloc(st, s, dirno);
                    if (!log) {
                        munmap(m, len);
                        close(fd);
                        rc = OFE_ENOMEM;
                        break;
                    }
                    log->dirf = open_dir(dir);
                } else if (hdr.nlen != s->nlen || memcmp(hdr.name, s->name, s->nlen) != 0) {
                    OFE_WARN(COMP, s->name, "%s names stream '%.*s'; using it anyway", path,
                             (int)hdr.nlen, hdr.name);
                }
                /* A segment header is the stream's state when the segment
                 * was opened: it wins over counts replayed from a damaged
                 * predecessor. */
                if (bus_id_cmp(&hdr.last_id, &s->last_id) > 0)
                    s->last_id = hdr.last_id;
                if (bus_id_cmp(&hdr.max_deleted, &s->max_deleted) > 0)
                    s->max_deleted = hdr.max_deleted;
                if (hdr.entries_added > s->entries_added)
                    s->entries_added = hdr.entries_added;
                ctx.s = s;
                valid = bus_seg_scan(m, len, &hdr, replay_seg_rec, &ctx, &why);
            }
            munmap(m, len);
        } else {
            why = "segment file empty";
        }
        if (!valid) {
            if (why && strstr(why, "version")) {
                OFE_ERROR(COMP, s ? s->name : name,
                          "%s: %s (this ofe-eventbus reads version %d): written by a newer "
                          "version? Refusing to start rather than touch it",
                          path, why, BUS_FORMAT_VERSION);
                close(fd);
                rc = OFE_EUNSUPP;
                break;
            }
            if (last && (!why || is_torn(why))) {
                /* The first write of the newest segment was cut by a crash:
                 * nothing in it was acknowledged under fsync always. */
                OFE_WARN(COMP, s ? s->name : name, "%s: %s; removing the empty segment", path,
                         why ? why : "invalid");
                close(fd);
                unlink(path);
                continue;
            }
            char aside[4300];
            snprintf(aside, sizeof(aside), "%s.corrupt", path);
            OFE_ERROR(COMP, s ? s->name : name, "%s: %s; moved to %s, its entries are not served",
                      path, why ? why : "invalid", aside);
            close(fd);
            if (rename(path, aside) != 0)
                OFE_ERROR(COMP, NULL, "rename %s: %s", path, strerror(errno));
            continue;
        }
        if (valid < len) {
            bool torn = is_torn(why);
            if (!torn)
                keep_copy(path, fd, len);
            if (last && torn)
                OFE_WARN(COMP, s->name,
                         "%s: %s at offset %zu; truncating the torn tail (%zu bytes)", path, why,
                         valid, len - valid);
            else
                OFE_ERROR(COMP, s->name,
                          "%s: %s at offset %zu%s; the log is cut there (%zu bytes dropped, a "
                          "copy of the file is kept as %s.corrupt)",
                          path, why ? why : "invalid data", valid,
                          last ? "" : " in a sealed segment", len - valid, path);
            if (ftruncate(fd, (off_t)valid) != 0)
                OFE_ERROR(COMP, s->name, "cannot truncate %s: %s", path, strerror(errno));
        }
        if (lseek(fd, (off_t)valid, SEEK_SET) < 0) {
            close(fd);
            rc = OFE_EIO;
            break;
        }
        struct bus_file *f = file_new(fd, path, false);
        if (!f) {
            close(fd);
            rc = OFE_ENOMEM;
            break;
        }
        f->size = valid;
        if (log->nsegs == log->segcap) {
            size_t ncap = log->segcap ? log->segcap * 2 : 4;
            struct bus_seg *nv = realloc(log->segs, ncap * sizeof(*nv));
            if (!nv) {
                file_unref(f);
                rc = OFE_ENOMEM;
                break;
            }
            log->segs = nv;
            log->segcap = ncap;
        }
        log->segs[log->nsegs++] = (struct bus_seg){fv[i].no, hdr.created_ms, f};
    }
    if (rc == 0 && s && log && log->nsegs) {
        /* Group journal: the newest generation with a complete snapshot. */
        bool loaded = false;
        for (size_t i = nf; i-- > nseg;) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/groups-%016" PRIx64 ".log", dir, fv[i].no);
            if (loaded) {
                unlink(path);
                continue;
            }
            int fd = open(path, O_RDWR | O_CLOEXEC);
            if (fd < 0)
                continue;
            size_t len = 0;
            unsigned char *m = map_file(fd, &len);
            struct replay_ctx ctx = {.s = s, .journal = true};
            const char *why = NULL;
            size_t valid = m ? journal_scan(m, len, &ctx, &why) : 0;
            if (m)
                munmap(m, len);
            if (why && strstr(why, "version")) {
                OFE_ERROR(COMP, s->name,
                          "%s: %s (this ofe-eventbus reads version %d); refusing to start", path,
                          why, BUS_FORMAT_VERSION);
                close(fd);
                rc = OFE_EUNSUPP;
                break;
            }
            if (!ctx.saw_end) {
                OFE_WARN(COMP, s->name, "%s: incomplete group snapshot (%s); trying an older one",
                         path, why ? why : "no end marker");
                drop_all_groups(s);
                close(fd);
                if (!is_torn(why)) {
                    char aside[4300];
                    snprintf(aside, sizeof(aside), "%s.corrupt", path);
                    if (rename(path, aside) != 0)
                        unlink(path);
                } else {
                    unlink(path);
                }
                continue;
            }
            if (valid < len) {
                if (!is_torn(why))
                    keep_copy(path, fd, len);
                OFE_WARN(COMP, s->name, "%s: %s at offset %zu; truncating there", path,
                         why ? why : "invalid data", valid);
                if (ftruncate(fd, (off_t)valid) != 0)
                    OFE_ERROR(COMP, s->name, "cannot truncate %s: %s", path, strerror(errno));
            }
            lseek(fd, (off_t)valid, SEEK_SET);
            struct bus_file *f = file_new(fd, path, false);
            if (!f) {
                close(fd);
                rc = OFE_ENOMEM;
                break;
            }
            f->size = valid;
            log->jf = f;
            log->jgen = fv[i].no;
            log->jsnap = valid;
            loaded = true;
        }
    }
    free(fv);
    if (rc != 0) {
        if (log)
            log_release(log);
        bus_stream_free(s);
        return rc;
    }
    if (!s || !log || !log->nsegs) {
        if (log)
            log_release(log);
        bus_stream_free(s);
        /* Keep what was set aside for inspection; drop an empty shell. */
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.corrupt", dir);
        if (dir_has_corrupt(dir) && rename(dir, aside) == 0) {
            OFE_ERROR(COMP, NULL, "%s holds no valid segment; moved to %s", dir, aside);
        } else {
            OFE_WARN(COMP, NULL, "%s holds no valid segment; removing it", dir);
            rm_rf_dir(dir);
        }
        return 0;
    }
    bus_stream_after_load(s);
    if (add(arg, s) != 0) {
        log_release(log);
        bus_stream_free(s);
        return OFE_ENOMEM;
    }
    return 0;
}

int bus_store_load(struct bus_store *st, int (*add)(void *arg, struct bus_stream *s), void *arg,
                   char *errstr, size_t errstr_size)
{
    if (!st->sdir)
        return 0;
    DIR *d = opendir(st->sdir);
    if (!d)
        return ofe_err(errstr, errstr_size, OFE_EIO, "cannot read %s: %s", st->sdir,
                       strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t nl = strlen(e->d_name);
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", st->sdir, e->d_name);
        if (nl > 4 && !strcmp(e->d_name + nl - 4, ".del")) {
            rm_rf_dir(path); /* a DEL interrupted by a crash */
            continue;
        }
        unsigned long long no;
        char extra;
        if (nl != 16 || sscanf(e->d_name, "%16llx%c", &no, &extra) != 1)
            continue;
        if (no >= st->next_dirno)
            st->next_dirno = no + 1;
        rc = load_stream_dir(st, e->d_name, no, add, arg);
        if (rc != 0) {
            ofe_err(errstr, errstr_size, rc, "cannot load %s: %s%s", path, ofe_strerror(rc),
                    rc == OFE_EUNSUPP ? " (a newer on-disk format version; see the log)" : "");
            break;
        }
    }
    closedir(d);
    return rc;
}
