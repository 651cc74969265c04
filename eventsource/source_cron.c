/* The cron source: one event per tick of a schedule (cron.h), stamped with
 * the scheduled time.
 *
 * A tick is due at its scheduled wall-clock time. Without catchup, a tick
 * that could not be emitted on time (the daemon was down, or every slot
 * of max in-flight was taken by ticks the destinations have not accepted
 * yet) is skipped and counted in ofe_eventsource_cron_ticks_missed_total.
 * With `catchup: true` the source keeps the time of the last tick every
 * destination accepted in a state file under --state-dir, and at start
 * emits every tick after it, oldest first (the most recent
 * CATCHUP_MAX at most), before going on with the schedule; ticks are
 * never skipped then, a full in-flight window just delays them.
 *
 * State file `<state-dir>/cron-<namespace>_<eventsource>_<event>.state`,
 * text, version 1 (docs/sources.md):
 *     ofe-cron-state 1\n
 *     last <Unix milliseconds of the last accepted tick>\n
 *     schedule <the schedule as written>\n
 * written to a temporary file, fsynced and renamed over the old one, at
 * most once a second and when the source stops. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cron.h"
#include "es.h"
#include "ofe/err.h"
#include "ofe/log.h"

#define CATCHUP_MAX    10000
#define STATE_EVERY_MS 1000
#define CRON_TYPE      "dev.ofevents.cron.tick"

struct tick {
    int64_t at;
    bool done;
};

struct cron_src {
    struct es_source *s;
    const struct ofe_config_cron_source *c;
    struct es_cron *sched;
    char *state_path;
    pthread_t thr;
    bool thr_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    /* ticks emitted and not accepted yet, in emission order (ring) */
    struct tick *ring;
    size_t cap, head, n;
    int64_t last_done; /* last tick of the accepted prefix, -1 none */
    int64_t last_saved;
    uint64_t saved_at_ms;
    struct ofe_counter *m_missed;
};

/* ---- state file ------------------------------------------------------------ */

static char *state_path(const struct es_source *s, const char *dir)
{
    char name[600];
    snprintf(name, sizeof(name), "%s_%s_%s", s->es->doc.namespace, s->es->doc.name, s->ev->name);
    for (char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            *p = '_';
    char *path = NULL;
    if (asprintf(&path, "%s/cron-%s.state", dir, name) < 0)
        return NULL;
    return path;
}

/* Reads the last accepted tick. Returns 0, OFE_ENOENT (no file) or
 * OFE_EINVAL (unreadable content: errstr). */
static int state_read(const char *path, int64_t *last, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT
                   ? OFE_ENOENT
                   : ofe_err(errstr, errstr_size, OFE_EIO, "%s: %s", path, strerror(errno));
    char line[256];
    int rc = OFE_EINVAL;
    if (fgets(line, sizeof(line), f) && !strcmp(line, "ofe-cron-state 1\n") &&
        fgets(line, sizeof(line), f)) {
        char *end;
        if (!strncmp(line, "last ", 5)) {
            long long v = strtoll(line + 5, &end, 10);
            if (end != line + 5 && *end == '\n' && v >= 0) {
                *last = v;
                rc = 0;
            }
        }
    }
    fclose(f);
    if (rc)
        ofe_err(errstr, errstr_size, rc, "%s: not a version 1 cron state file", path);
    return rc;
}

static int state_write(const char *path, int64_t last, const char *schedule)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return OFE_EIO;
    char buf[1400];
    int n = snprintf(buf, sizeof(buf), "ofe-cron-state 1\nlast %" PRId64 "\nschedule %.1200s\n",
                     last, schedule);
    for (char *p = buf + 24; *p; p++) /* keep the schedule line one line */
        if (*p == '\r')
            *p = ' ';
    bool ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return OFE_EIO;
    }
    /* the rename itself must survive a crash */
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

/* Called with the lock held. */
static void maybe_save(struct cron_src *x, bool force)
{
    if (!x->state_path || x->last_done < 0 || x->last_done == x->last_saved)
        return;
    uint64_t now = es_mono_ms();
    if (!force && now - x->saved_at_ms < STATE_EVERY_MS)
        return;
    if (state_write(x->state_path, x->last_done, x->c->schedule) != 0) {
        OFE_WARN(ES_COMPONENT, x->s->name, "cannot write the cron state file %s: %s", x->state_path,
                 strerror(errno));
        return;
    }
    x->last_saved = x->last_done;
    x->saved_at_ms = now;
}

/* ---- ticks ----------------------------------------------------------------- */

struct cron_tok {
    struct cron_src *x;
    struct tick *slot; /* ring slots never move while in use */
};

static void on_done(void *token, enum es_result r, const char *why)
{
    struct cron_tok *tk = token;
    struct cron_src *x = tk->x;
    pthread_mutex_lock(&x->lock);
    if (r != ES_FAILED) {
        tk->slot->done = true;
        while (x->n && x->ring[x->head].done) {
            x->last_done = x->ring[x->head].at;
            x->head = (x->head + 1) % x->cap;
            x->n--;
        }
        es_count_acked(x->s, 1);
        maybe_save(x, false);
    } else {
        /* Only when stopping: the tick stays unaccepted, the state file
         * does not move past it, and catch-up emits it again. */
        char t1[40];
        OFE_DEBUG(ES_COMPONENT, x->s->name, "tick %s not delivered: %s",
                  es_time_format(tk->slot->at, t1, sizeof(t1)), why ? why : "stopped");
    }
    free(tk);
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

/* Emits the tick at `at`. Returns 0, OFE_EAGAIN (no room) or OFE_ECLOSED. */
static int emit_tick(struct cron_src *x, int64_t at)
{
    struct es_source *s = x->s;
    char id[40], err[300];
    es_time_format(at, id, sizeof(id));
    struct ofe_ce *ev = NULL;
    const char *data = x->c->data;
    if (es_ce_native(s, CRON_TYPE, id, NULL, at, data ? x->c->content_type : NULL, data,
                     data ? strlen(data) : 0, &ev, err, sizeof(err)) != 0) {
        es_invalid(s, "tick %s: %s", id, err);
        return 0;
    }
    struct cron_tok *tk = malloc(sizeof(*tk));
    pthread_mutex_lock(&x->lock);
    if (!tk || x->n == x->cap) {
        pthread_mutex_unlock(&x->lock);
        free(tk);
        ofe_ce_unref(ev);
        return OFE_EAGAIN;
    }
    size_t slot = (x->head + x->n) % x->cap;
    x->ring[slot].at = at;
    x->ring[slot].done = false;
    x->n++;
    pthread_mutex_unlock(&x->lock);
    tk->x = x;
    tk->slot = &x->ring[slot];
    int rc = es_emit(s, ev, 0, on_done, tk);
    ofe_ce_unref(ev);
    if (rc) {
        /* Not taken: undo the slot (it is the last one, nothing after it). */
        pthread_mutex_lock(&x->lock);
        x->n--;
        pthread_mutex_unlock(&x->lock);
        free(tk);
    }
    return rc;
}

/* Waits until the wall clock reaches at_ms (or stop, or at most max_ms).
 * Returns true when stopping. */
static bool wait_until(struct cron_src *x, int64_t at_ms, int max_ms)
{
    int64_t now = es_now_ms();
    int64_t d = at_ms - now;
    if (d > max_ms)
        d = max_ms;
    pthread_mutex_lock(&x->lock);
    if (d > 0 && !x->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(d / 1000);
        ts.tv_nsec += (long)(d % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&x->cond, &x->lock, &ts);
    }
    bool stop = x->stop;
    pthread_mutex_unlock(&x->lock);
    return stop;
}

/* The first tick to emit at start. */
static int64_t first_tick(struct cron_src *x, int64_t now)
{
    struct es_source *s = x->s;
    if (!x->c->catchup || !x->state_path)
        return es_cron_next(x->sched, now);
    int64_t last = -1;
    char err[512];
    int rc = state_read(x->state_path, &last, err, sizeof(err));
    if (rc == OFE_ENOENT) {
        OFE_INFO(ES_COMPONENT, s->name, "no cron state yet (%s): starting with the next tick",
                 x->state_path);
        return es_cron_next(x->sched, now);
    }
    if (rc) {
        OFE_WARN(ES_COMPONENT, s->name, "%s: starting with the next tick", err);
        return es_cron_next(x->sched, now);
    }
    x->last_done = x->last_saved = last;
    /* Due ticks after `last`: keep the most recent CATCHUP_MAX. */
    uint64_t total = 0;
    int64_t first = es_cron_next(x->sched, last);
    if (es_cron_is_every(x->sched)) {
        int64_t step = es_cron_next(x->sched, 0);
        total = now >= last ? (uint64_t)((now - last) / step) : 0;
        if (total > CATCHUP_MAX)
            first = last + step * (int64_t)(total - CATCHUP_MAX + 1);
    } else {
        int64_t *ring = malloc(CATCHUP_MAX * sizeof(*ring));
        if (!ring)
            return first;
        for (int64_t t = first; t >= 0 && t <= now; t = es_cron_next(x->sched, t))
            ring[total++ % CATCHUP_MAX] = t;
        if (total > CATCHUP_MAX)
            first = ring[total % CATCHUP_MAX];
        free(ring);
    }
    char t1[40];
    if (total > CATCHUP_MAX) {
        OFE_WARN(ES_COMPONENT, s->name,
                 "catch-up: %" PRIu64 " ticks were missed; emitting the most recent %d from %s",
                 total, CATCHUP_MAX, es_time_format(first, t1, sizeof(t1)));
        ofe_counter_add(x->m_missed, total - CATCHUP_MAX);
    } else if (total > 0) {
        OFE_INFO(ES_COMPONENT, s->name, "catch-up: emitting %" PRIu64 " missed tick(s) from %s",
                 total, es_time_format(first, t1, sizeof(t1)));
    }
    return first;
}

static void *cron_run(void *arg)
{
    struct cron_src *x = arg;
    struct es_source *s = x->s;
    int64_t next = first_tick(x, es_now_ms());
    bool catchup = x->c->catchup && x->state_path;
    for (;;) {
        if (next < 0) {
            OFE_WARN(ES_COMPONENT, s->name, "the schedule has no further tick");
            while (!wait_until(x, INT64_MAX, 1000)) {
            }
            break;
        }
        int64_t now = es_now_ms();
        if (next > now) {
            if (wait_until(x, next, 1000))
                break;
            continue;
        }
        if (!catchup) {
            /* Late by more than one tick (suspended, clock jumped,
             * destinations slow): skip to the newest due tick. */
            uint64_t missed = 0;
            for (int64_t n2; (n2 = es_cron_next(x->sched, next)) >= 0 && n2 <= now;) {
                next = n2;
                if (++missed > 100000) {
                    next = es_cron_next(x->sched, now - 1);
                    break;
                }
            }
            if (missed) {
                ofe_counter_add(x->m_missed, missed);
                OFE_WARN(ES_COMPONENT, s->name, "%" PRIu64 " tick(s) missed (late); catchup is off",
                         missed);
            }
        }
        int rc = emit_tick(x, next);
        if (rc == OFE_ECLOSED)
            break;
        if (rc == OFE_EAGAIN) {
            if (catchup) {
                /* the tick waits for room */
                es_wait_capacity(s, 1000);
                pthread_mutex_lock(&x->lock);
                bool stop = x->stop;
                pthread_mutex_unlock(&x->lock);
                if (stop)
                    break;
                continue;
            }
            char t1[40];
            ofe_counter_inc(x->m_missed);
            OFE_WARN(ES_COMPONENT, s->name,
                     "tick %s missed: %u earlier tick(s) still in delivery (max in-flight)",
                     es_time_format(next, t1, sizeof(t1)), es_inflight(s));
        }
        next = es_cron_next(x->sched, next);
    }
    return NULL;
}

/* ---- kind ------------------------------------------------------------------- */

static void cron_check(const struct ofe_config_eventsource *es, const struct ofe_config_event *ev,
                       const struct es_options *o, struct es_diag *d)
{
    const struct ofe_config_cron_source *c = (const struct ofe_config_cron_source *)ev->spec;
    struct es_cron *sched = NULL;
    char err[512];
    size_t off = 0;
    int rc = es_cron_parse(c->schedule, c->timezone, &sched, &off, err, sizeof(err));
    if (rc) {
        es_diag_error(d, &c->node, rc == OFE_ENOENT && c->timezone ? "timezone" : "schedule", "%s",
                      err);
        return;
    }
    if (es_cron_next(sched, es_now_ms()) < 0)
        es_diag_error(d, &c->node, "schedule",
                      "schedule \"%s\" never fires (no matching date "
                      "in the next 8 years)",
                      c->schedule);
    es_cron_free(sched);
    if (c->catchup && !o->state_dir)
        es_diag_error(d, &c->node, "catchup",
                      "catchup: true needs a place to keep the last tick: start ofe-eventsource "
                      "with --state-dir DIR (or STATE_DIRECTORY set)");
}

static void cron_destroy(void *ctx);

static int cron_start(struct es_source *s, void **ctx, char *errstr, size_t errstr_size)
{
    struct cron_src *x = calloc(1, sizeof(*x));
    if (!x)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    x->s = s;
    x->c = (const struct ofe_config_cron_source *)s->ev->spec;
    x->last_done = x->last_saved = -1;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, NULL);
    const char *l[] = {"source", s->name, NULL};
    x->m_missed = ofe_metrics_counter(s->metrics, "ofe_eventsource_cron_ticks_missed_total",
                                      "Cron ticks not emitted (daemon late or destinations "
                                      "behind, catchup off; beyond the catch-up window).",
                                      l);
    char err[512];
    int rc = es_cron_parse(x->c->schedule, x->c->timezone, &x->sched, NULL, err, sizeof(err));
    if (rc) {
        ofe_err(errstr, errstr_size, rc, "%s", err);
        goto fail;
    }
    x->cap = s->max_inflight;
    x->ring = calloc(x->cap, sizeof(*x->ring));
    if (!x->ring) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    if (x->c->catchup) {
        if (!s->opts->state_dir) {
            rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "catchup: true needs --state-dir");
            goto fail;
        }
        x->state_path = state_path(s, s->opts->state_dir);
        if (!x->state_path) {
            rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (pthread_create(&x->thr, NULL, cron_run, x) != 0) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "cannot start a thread");
        goto fail;
    }
    x->thr_started = true;
    char t1[40];
    int64_t nx = es_cron_next(x->sched, es_now_ms());
    OFE_INFO(ES_COMPONENT, s->name, "schedule \"%s\" in %s, next tick %s%s", x->c->schedule,
             es_tz_name(es_cron_zone(x->sched)),
             nx >= 0 ? es_time_format(nx, t1, sizeof(t1)) : "never",
             x->state_path ? " (catch-up on)" : "");
    *ctx = x;
    return 0;
fail:
    cron_destroy(x);
    return rc;
}

static void cron_stop(void *ctx)
{
    struct cron_src *x = ctx;
    pthread_mutex_lock(&x->lock);
    x->stop = true;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    if (x->thr_started) {
        pthread_join(x->thr, NULL);
        x->thr_started = false;
    }
}

static void cron_destroy(void *ctx)
{
    struct cron_src *x = ctx;
    if (!x)
        return;
    cron_stop(x);
    pthread_mutex_lock(&x->lock);
    maybe_save(x, true);
    pthread_mutex_unlock(&x->lock);
    es_cron_free(x->sched);
    free(x->state_path);
    free(x->ring);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cond);
    free(x);
}

static bool cron_ready(void *ctx, char *why, size_t why_size)
{
    return true;
}

const struct es_kind es_kind_cron = {
    .name = "cron",
    .kind = OFE_CONFIG_SOURCE_CRON,
    .redrive = true,
    .default_inflight = 16,
    .check = cron_check,
    .start = cron_start,
    .stop = cron_stop,
    .destroy = cron_destroy,
    .ready = cron_ready,
};
