/* What ofe-eventsource and ofe-trigger share: the command line, loading
 * and validating the configuration, signals (SIGTERM/SIGINT drain and exit,
 * SIGHUP reloads), the /metrics /healthz /readyz endpoints, and sharing one
 * open bus among everything that resolves to the same bus.
 *
 * Threads: call ofe_daemon_init on the main thread before starting any
 * other thread: it blocks the handled signals, so only ofe_daemon_wait
 * (main thread) sees them. */
#ifndef OFE_DAEMON_H
#define OFE_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "ofe/config.h"
#include "ofe/httpd.h"
#include "ofe/log.h"
#include "ofe/metrics.h"
#include "ofe/pubsub.h"

/* An extra command-line option of one daemon. */
struct ofe_daemon_opt {
    const char *name; /* long name without dashes, e.g. "window" */
    const char *arg;  /* argument name for --help, NULL for a flag */
    const char *help;
    /* Called with the argument (NULL for a flag); returns 0, or fills errstr
     * and returns non-zero (bad usage). */
    int (*set)(void *target, const char *value, char *errstr, size_t errstr_size);
    void *target;
};

struct ofe_daemon {
    const char *prog;      /* "ofe-eventsource" */
    const char *component; /* "eventsource": log prefix */
    char **configs;        /* --config FILE, in order */
    size_t nconfigs;
    char *http_bind;    /* --http-bind, default 127.0.0.1 */
    int http_port;      /* --http-port, default per daemon; 0 picks a free port */
    bool validate_only; /* --validate */
    char *instance;     /* --instance, else $OFE_INSTANCE, else NULL: this replica's
                           stable member name (consumer names, MQTT sessions);
                           NULL lets the bus use host name and pid */
    struct ofe_metrics *metrics;
    struct ofe_httpd *httpd;
};

/* Parses the command line:
 *   --config FILE (-c, repeatable, at least one), --http-port N, --instance NAME,
 *   --http-bind ADDR, --validate, --log-level error|warn|info|debug,
 *   --log-format text|json, --help (-h), --version,
 * plus the daemon's extra options (NULL-terminated by a zeroed entry, or
 * NULL). Returns -1 to go on, or an exit code to exit with at once (0 after
 * --help/--version, 2 on bad usage, with a message on stderr). Blocks
 * SIGTERM, SIGINT and SIGHUP, ignores SIGPIPE, creates the metrics
 * registry. `about` is the paragraph --help prints under the usage line. */
int ofe_daemon_init(struct ofe_daemon *d, const char *prog, const char *component,
                    int default_http_port, const char *about, const struct ofe_daemon_opt *extra,
                    int argc, char **argv);

/* Loads every --config file into a new config with CESQL filters checked
 * and cross-document references as errors, and logs every diagnostic
 * (errors and warnings, "FILE:LINE:COL: error: PATH: MESSAGE"). Returns
 * the config, or NULL when any error was found (all of them logged). */
struct ofe_config *ofe_daemon_load(struct ofe_daemon *d);

/* Starts the HTTP server with /metrics, /healthz and /readyz (ready_fn may
 * be NULL). Returns 0, or logs why and returns an OFE_E* code. */
int ofe_daemon_http_start(struct ofe_daemon *d,
                          bool (*ready_fn)(void *arg, char *why, size_t why_size), void *arg);

enum ofe_daemon_event { OFE_DAEMON_TIMEOUT = 0, OFE_DAEMON_STOP, OFE_DAEMON_RELOAD };
/* Waits for a handled signal up to timeout_ms (-1: forever). */
enum ofe_daemon_event ofe_daemon_wait(struct ofe_daemon *d, int timeout_ms);

/* Stops the HTTP server, frees the metrics and the options. */
void ofe_daemon_fini(struct ofe_daemon *d);

/* ---- sharing buses ---------------------------------------------------- */

/* Buses open in a daemon, one per distinct resolved description (backend
 * kind and document fingerprint), reference counted. */
struct ofe_busset;

struct ofe_busset *ofe_busset_new(struct ofe_metrics *m, const char *component);
/* Returns the open bus for desc, opening it on first use (the description
 * is logged then). Returns 0, or the error of ofe_bus_open with errstr. */
int ofe_busset_get(struct ofe_busset *set, const struct ofe_config_busdesc *desc,
                   struct ofe_bus **out, char *errstr, size_t errstr_size);
/* Drops a reference from ofe_busset_get; the bus closes (draining up to
 * drain_ms) when none is left. */
void ofe_busset_put(struct ofe_busset *set, struct ofe_bus *bus, uint32_t drain_ms);
/* True when every open bus is ready; else why names the first that is not. */
bool ofe_busset_ready(struct ofe_busset *set, char *why, size_t why_size);
/* Closes every bus (draining up to drain_ms) and frees the set. NULL is a
 * no-op. */
void ofe_busset_destroy(struct ofe_busset *set, uint32_t drain_ms);

/* Compiles a CESQL filter for config checking (the hook of
 * ofe_config_set_cesql_check): 0 when valid, else errstr and the offset. */
int ofe_daemon_cesql_check(void *ctx, const char *expr, size_t *err_off, char *errstr,
                           size_t errstr_size);

#endif
