/* Helpers of the ofe-eventsource tests: an HTTP sink that records the
 * CloudEvents it receives (and fails on demand), and running the daemon
 * from a YAML text as a child process. */
#ifndef OFE_ES_TESTLIB_H
#define OFE_ES_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/ce.h"
#include "servers.h"

/* ---- sink ---------------------------------------------------------------- */

struct es_sink;

/* Starts a sink on 127.0.0.1 (port 0: a free one). NULL on failure. */
struct es_sink *es_sink_start(int port);
void es_sink_stop(struct es_sink *k); /* frees; NULL is a no-op */
const char *es_sink_url(const struct es_sink *k);
int es_sink_port(const struct es_sink *k);

/* The next `count` requests (-1: all until changed) get `status` (0:
 * normal 200); delay_ms: every request waits that long before answering
 * (timeouts). */
void es_sink_fail(struct es_sink *k, int status, int count);
void es_sink_delay(struct es_sink *k, int delay_ms);

/* Events received and accepted (2xx), in arrival order. */
size_t es_sink_count(struct es_sink *k);
/* Requests seen, accepted or not. */
size_t es_sink_requests(struct es_sink *k);
/* Waits until at least n events were accepted. Returns the count. */
size_t es_sink_wait(struct es_sink *k, size_t n, int timeout_ms);
/* Event i (a new reference; unref it), NULL past the end. */
struct ofe_ce *es_sink_event(struct es_sink *k, size_t i);
/* Header `name` of the request that carried event i ("" when absent). */
void es_sink_header(struct es_sink *k, size_t i, const char *name, char *out, size_t size);
/* The first event whose data equals (data, len), or NULL (new reference). */
struct ofe_ce *es_sink_find_data(struct es_sink *k, const void *data, size_t len);
/* Forget every event. */
void es_sink_clear(struct es_sink *k);

/* ---- the daemon ----------------------------------------------------------- */

struct es_daemon {
    struct tu_proc *proc;
    char *dir; /* temp dir with config.yaml and daemon.log */
    int http_port;
    char config[4200];
    char log[4200];
};

/* Writes yaml to <dir>/config.yaml and starts ofe-eventsource on it with
 * --http-port free and the extra arguments (NULL-terminated, may be
 * NULL). Does not wait for readiness. NULL on failure. */
struct es_daemon *es_daemon_start(const char *yaml, const char *const *extra);
/* Rewrites the config file (for SIGHUP). */
void es_daemon_write_config(struct es_daemon *d, const char *yaml);
/* Waits until /readyz answers 200. Returns true when ready. */
bool es_daemon_wait_ready(struct es_daemon *d, int timeout_ms);
/* GET path on the daemon's HTTP port: returns the status, body in out. */
int es_daemon_get(struct es_daemon *d, const char *path, char *out, size_t size);
/* Value of one Prometheus series ("name{label=\"v\",...}" exactly as
 * rendered, or a bare name); -1 when absent. */
double es_daemon_metric(struct es_daemon *d, const char *series);
/* Sum of every series of a metric whose labels contain `match` (e.g.
 * "source=\"default/es/ev\""). */
double es_daemon_metric_sum(struct es_daemon *d, const char *name, const char *match);
/* kill -9 */
void es_daemon_kill(struct es_daemon *d);
/* SIGTERM and wait; returns the exit status (WEXITSTATUS) or -1. */
int es_daemon_stop(struct es_daemon *d);
/* Starts it again with the same arguments. */
int es_daemon_restart(struct es_daemon *d);
/* Stops (kill -9 if running), removes the dir, frees. Prints the log
 * when print_log. */
void es_daemon_free(struct es_daemon *d, bool print_log);
/* Does the log contain s? */
bool es_daemon_log_has(struct es_daemon *d, const char *s);

/* Runs ofe-eventsource --validate on yaml; returns the exit status and
 * the output (stderr + stdout) in out. */
int es_validate(const char *yaml, char *out, size_t size);

/* ---- checking events ------------------------------------------------------ */

/* The event with that id at the sink (new reference), or NULL. */
struct ofe_ce *es_sink_find_id(struct es_sink *k, const char *id);
/* Fails the test unless attribute name has value want (NULL: unset). */
void es_assert_attr(const struct ofe_ce *ev, const char *name, const char *want);

/* A bus client opened on the EventBus "default" that yaml defines, and a
 * subscription collecting the events of one topic. */
struct es_got;
struct es_got *es_got_subscribe(const char *yaml, const char *topic, const char *group);
size_t es_got_wait(struct es_got *g, size_t n, int timeout_ms);
/* Borrowed: valid until es_got_free. */
struct ofe_ce *es_got_find(struct es_got *g, const char *id);
size_t es_got_count(struct es_got *g);
void es_got_free(struct es_got *g);

uint64_t es_now_ms_test(void);
void es_msleep(int ms);

#endif
