/* The chaos suite (docs/chaos.md): webhook -> ofe-eventsource -> bus ->
 * ofe-trigger -> `ofe sink`, under kill -9 of the daemons and the broker.
 *
 *   chaos_main.c   the run: servers, schedule of kills, the final checks
 *   chaos_feed.c   the webhook caller (the test's side of the source)
 *   chaos_proc.c   daemons, readiness, metrics scrapes, the sink's output */
#ifndef OFE_TEST_CHAOS_H
#define OFE_TEST_CHAOS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "servers.h"

uint64_t ch_now_ms(void);
void ch_msleep(int ms);
/* Seconds since the start of the run, for log lines. */
double ch_elapsed(void);
/* printf to stdout with a "[  12.3s] " prefix, flushed. */
void ch_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- HTTP (libcurl) --------------------------------------------------------- */

/* GET url with a timeout; returns the status (0 on no answer) and the body
 * in *out (malloc'd, may be NULL). */
int ch_http_get(const char *url, int timeout_ms, char **out);

/* ---- daemons ------------------------------------------------------------------ */

struct ch_daemon {
    const char *name; /* "ofe-eventsource", "ofe-trigger" */
    struct tu_proc *p;
    int http_port; /* /metrics, /readyz */
    int restarts;
    int last_status; /* wait status of the last exit we saw */
};

/* Starts argv (copied), stdout/stderr appended to log. Returns 0 or -1. */
int ch_daemon_start(struct ch_daemon *d, const char *name, const char *const *argv, const char *log,
                    int http_port);
/* True while it runs; reaps it (and keeps its status) when it exited. */
bool ch_daemon_alive(struct ch_daemon *d);
/* Waits for 200 from /readyz (timeout_ms at most). Returns 0, or -1 with
 * the last answer and the log's tail on stderr. */
int ch_daemon_ready(struct ch_daemon *d, int timeout_ms);
/* Prints the last bytes of a log file to stderr. */
void ch_show_log(const char *path, size_t tail);

/* The sum of every sample of a metric family in a /metrics text (lines
 * "name{...} value" or "name value") whose line contains filter (NULL: all).
 * Returns -1 when there is no such sample. */
double ch_metric(const char *text, const char *name, const char *filter);
/* GETs /metrics (3 attempts). Returns the body (malloc'd) or NULL. */
char *ch_scrape(int http_port);

/* ---- the sink ------------------------------------------------------------------ */

struct ch_sink {
    struct tu_proc *p;
    int port;
    char out[4200], log[4200], url[96];
};

struct ch_sink_stats {
    long requests, events, unique, duplicates, failed, invalid;
};

int ch_sink_start(struct ch_sink *s, const char *dir, const char *const *extra);
int ch_sink_stats(struct ch_sink *s, struct ch_sink_stats *st);
/* Reads sink stats until two reads 150 ms apart agree (at most timeout_ms);
 * the trigger is down when this is called, so only stragglers can move it. */
int ch_sink_settle(struct ch_sink *s, struct ch_sink_stats *st, int timeout_ms);

/* What the sink's output says about the events "chaos-<n>", n < nmax. */
struct ch_sink_view {
    uint32_t *accepted; /* 2xx deliveries per n */
    long lines, accepted_total, failed_total, foreign, bad_data;
};
/* Parses the sink's --json output, its whole lines (the sink may be
 * writing one). Returns 0 or -1 (file unreadable, a line that is not
 * JSON). */
int ch_sink_view(struct ch_sink *s, long nmax, struct ch_sink_view *v);
void ch_sink_view_free(struct ch_sink_view *v);

/* ---- the webhook caller ---------------------------------------------------- */

/* Request outcomes, counted in events (a batch request counts each event). */
struct ch_feed_counts {
    long requests;     /* HTTP attempts */
    long attempted;    /* events in those attempts */
    long acked;        /* events in requests answered 202 */
    long refused;      /* events in requests answered otherwise (503 ...) */
    long unanswered;   /* events in requests without an answer (refused
                          connection, reset, timeout) */
    long issued;       /* distinct events handed out so far */
    long acked_unique; /* distinct events acknowledged */
};

struct ch_feed;

/* Starts nthreads callers of url at rate events/s in total. The events are
 * chaos-0, chaos-1, ... with source /chaos; every 10th request is a batch
 * of 4 (structured JSON), the others are binary mode. Returns NULL on
 * failure. nmax bounds the number of events. */
struct ch_feed *ch_feed_start(const char *url, int nthreads, double rate, long nmax);
void ch_feed_counts(struct ch_feed *f, struct ch_feed_counts *c);
/* Holds new requests (the current ones finish) while paused; returns when
 * no request is in progress (timeout_ms at most). */
void ch_feed_pause(struct ch_feed *f, bool paused, int timeout_ms);
/* Waits until every request that was in progress when called has ended
 * (answered or failed), at most timeout_ms. Called after a kill -9 of the
 * source: then every answer of the dead process has been counted. */
void ch_feed_quiesce(struct ch_feed *f, int timeout_ms);
/* Stops handing out new events; each thread retries its current request
 * until it is acknowledged or timeout_ms passed. Returns the number of
 * events still not acknowledged (0 on success). Joins the threads. */
long ch_feed_finish(struct ch_feed *f, int timeout_ms);
/* 1 if event n was acknowledged (202), 0 if issued but not, -1 if never issued. */
int ch_feed_acked(struct ch_feed *f, long n);
void ch_feed_free(struct ch_feed *f);

/* The data of event n (checked at the sink). */
void ch_event_data(long n, char *buf, size_t size);

#endif
