/* Shared daemon start-up, signals, endpoints and bus sharing (daemon.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/cesql.h"
#include "ofe/daemon.h"
#include "ofe/err.h"

static void usage(FILE *out, const char *prog, int default_port, const char *about,
                  const struct ofe_daemon_opt *extra)
{
    fprintf(out, "usage: %s --config FILE [--config FILE ...] [options]\n\n%s\n\noptions:\n", prog,
            about ? about : "");
    fprintf(out,
            "  -c, --config FILE       YAML file of documents (repeatable)\n"
            "      --validate          check the configuration and exit (0 valid, 2 not)\n"
            "      --http-port N       port of /metrics, /healthz, /readyz (default %d;\n"
            "                          0 picks a free port)\n"
            "      --http-bind ADDR    address of that port (default 127.0.0.1)\n"
            "      --log-level LEVEL   error, warn, info (default) or debug\n"
            "      --log-format FMT    text (default) or json\n",
            default_port);
    for (size_t i = 0; extra && extra[i].name; i++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", extra[i].name, extra[i].arg ? " " : "",
                 extra[i].arg ? extra[i].arg : "");
        fprintf(out, "      %-19s %s\n", left, extra[i].help);
    }
    fprintf(out, "  -h, --help              this text\n"
                 "      --version           print the version\n\n"
                 "Signals: SIGTERM or SIGINT drains in-flight work and exits; SIGHUP reloads\n"
                 "the configuration files.\n");
}

static int bad_usage(const char *prog, const char *fmt, const char *what)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (see %s --help)\n", prog);
    return 2;
}

int ofe_daemon_init(struct ofe_daemon *d, const char *prog, const char *component,
                    int default_http_port, const char *about, const struct ofe_daemon_opt *extra,
                    int argc, char **argv)
{
    memset(d, 0, sizeof(*d));
    d->prog = prog;
    d->component = component;
    d->http_port = default_http_port;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout, prog, default_http_port, about, extra);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("%s %s\n", prog, OFE_VERSION);
            return 0;
        }
        if (!strcmp(a, "-c")) {
            snprintf(name, sizeof(name), "config");
        } else if (!strncmp(a, "--", 2)) {
            const char *eq = strchr(a, '=');
            size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (n >= sizeof(name))
                return bad_usage(prog, "unknown option %s", a);
            memcpy(name, a + 2, n);
            name[n] = '\0';
            if (eq)
                val = eq + 1;
        } else {
            return bad_usage(prog, "unexpected argument \"%s\"", a);
        }
        /* options that take a value */
        bool takes = !strcmp(name, "config") || !strcmp(name, "http-port") ||
                     !strcmp(name, "http-bind") || !strcmp(name, "log-level") ||
                     !strcmp(name, "instance") ||
                     !strcmp(name, "log-format");
        const struct ofe_daemon_opt *xo = NULL;
        for (size_t k = 0; !takes && extra && extra[k].name; k++)
            if (!strcmp(extra[k].name, name)) {
                xo = &extra[k];
                takes = xo->arg != NULL;
            }
        if (!takes && !xo && strcmp(name, "validate"))
            return bad_usage(prog, "unknown option %s", a);
        if (takes && !val) {
            if (i + 1 >= argc)
                return bad_usage(prog, "%s needs a value", a);
            val = argv[++i];
        }
        if (!strcmp(name, "config")) {
            char **c = realloc(d->configs, (d->nconfigs + 1) * sizeof(*c));
            if (!c)
                return 1;
            d->configs = c;
            d->configs[d->nconfigs++] = strdup(val);
        } else if (!strcmp(name, "http-port")) {
            char *end;
            long p = strtol(val, &end, 10);
            if (*val == '\0' || *end || p < 0 || p > 65535)
                return bad_usage(prog, "--http-port wants a port number, not \"%s\"", val);
            d->http_port = (int)p;
        } else if (!strcmp(name, "instance")) {
            free(d->instance);
            d->instance = strdup(val);
        } else if (!strcmp(name, "http-bind")) {
            free(d->http_bind);
            d->http_bind = strdup(val);
        } else if (!strcmp(name, "log-level")) {
            enum ofe_log_level l;
            if (ofe_log_parse_level(val, &l))
                return bad_usage(prog, "--log-level wants error, warn, info or debug, not \"%s\"",
                                 val);
            ofe_log_set_level(l);
        } else if (!strcmp(name, "log-format")) {
            enum ofe_log_format f;
            if (ofe_log_parse_format(val, &f))
                return bad_usage(prog, "--log-format wants text or json, not \"%s\"", val);
            ofe_log_set_format(f);
        } else if (!strcmp(name, "validate")) {
            d->validate_only = true;
        } else if (xo) {
            char err[256] = "";
            if (xo->set(xo->target, val, err, sizeof(err)) != 0) {
                fprintf(stderr, "%s: --%s: %s (see %s --help)\n", prog, name, err, prog);
                return 2;
            }
        }
    }
    if (d->nconfigs == 0)
        return bad_usage(prog, "%s", "no --config file given");
    if (!d->instance && getenv("OFE_INSTANCE") && *getenv("OFE_INSTANCE"))
        d->instance = strdup(getenv("OFE_INSTANCE"));

    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a state file over the size limit: EFBIG, not death */
    d->metrics = ofe_metrics_new();
    if (!d->metrics)
        return 1;
    return -1;
}

int ofe_daemon_cesql_check(void *ctx, const char *expr, size_t *err_off, char *errstr,
                           size_t errstr_size)
{
    struct ofe_cesql *x = NULL;
    int rc = ofe_cesql_compile(NULL, expr, &x, errstr, errstr_size);
    ofe_cesql_destroy(x);
    if (rc == 0)
        return 0;
    /* The compiler says "column N: ..." (1-based bytes). */
    unsigned col = 0;
    if (sscanf(errstr, "column %u", &col) == 1 && col > 0)
        *err_off = col - 1;
    else
        *err_off = 0;
    return rc;
}

struct ofe_config *ofe_daemon_load(struct ofe_daemon *d)
{
    struct ofe_config *cfg = ofe_config_new();
    if (!cfg) {
        OFE_ERROR(d->component, NULL, "out of memory");
        return NULL;
    }
    ofe_config_set_cesql_check(cfg, ofe_daemon_cesql_check, NULL);
    for (size_t i = 0; i < d->nconfigs; i++)
        ofe_config_load_file(cfg, d->configs[i]);
    ofe_config_check_refs(cfg, OFE_CONFIG_ERROR);
    size_t n;
    const struct ofe_config_diag *diags = ofe_config_diags(cfg, &n);
    for (size_t i = 0; i < n; i++) {
        char line[2048];
        ofe_config_diag_format(&diags[i], line, sizeof(line));
        ofe_log(diags[i].severity == OFE_CONFIG_ERROR ? OFE_LOG_ERROR : OFE_LOG_WARN, d->component,
                "config", "%s", line);
    }
    if (ofe_config_nerrors(cfg)) {
        OFE_ERROR(d->component, "config", "%zu error(s) in the configuration",
                  ofe_config_nerrors(cfg));
        ofe_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

int ofe_daemon_http_start(struct ofe_daemon *d,
                          bool (*ready_fn)(void *arg, char *why, size_t why_size), void *arg)
{
    char err[256];
    struct ofe_httpd_opts o = {
        .bind = d->http_bind,
        .port = (uint16_t)d->http_port,
        .component = d->component,
    };
    d->httpd = ofe_httpd_open(&o, err, sizeof(err));
    if (!d->httpd) {
        OFE_ERROR(d->component, "http", "cannot serve /metrics, /healthz, /readyz: %s", err);
        return OFE_EIO;
    }
    int rc = ofe_httpd_route_std(d->httpd, d->metrics, ready_fn, arg);
    if (rc)
        return rc;
    if (ofe_httpd_serve(d->httpd, err, sizeof(err)) != 0) {
        OFE_ERROR(d->component, "http", "cannot serve /metrics, /healthz, /readyz: %s", err);
        return OFE_EIO;
    }
    OFE_INFO(d->component, "http", "serving /metrics, /healthz and /readyz on %s:%u",
             d->http_bind ? d->http_bind : "127.0.0.1", ofe_httpd_port(d->httpd));
    return 0;
}

enum ofe_daemon_event ofe_daemon_wait(struct ofe_daemon *d, int timeout_ms)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGHUP);
    int sig;
    if (timeout_ms < 0) {
        if (sigwait(&s, &sig) != 0)
            return OFE_DAEMON_TIMEOUT;
    } else {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        sig = sigtimedwait(&s, NULL, &ts);
        if (sig < 0)
            return OFE_DAEMON_TIMEOUT;
    }
    if (sig == SIGHUP) {
        OFE_INFO(d->component, NULL, "SIGHUP: reloading the configuration");
        return OFE_DAEMON_RELOAD;
    }
    OFE_INFO(d->component, NULL, "%s: draining and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return OFE_DAEMON_STOP;
}

void ofe_daemon_fini(struct ofe_daemon *d)
{
    ofe_httpd_stop(d->httpd);
    d->httpd = NULL;
    ofe_metrics_destroy(d->metrics);
    d->metrics = NULL;
    for (size_t i = 0; i < d->nconfigs; i++)
        free(d->configs[i]);
    free(d->configs);
    free(d->http_bind);
    free(d->instance);
    d->instance = NULL;
    d->configs = NULL;
    d->nconfigs = 0;
}

/* ---- bus sharing -------------------------------------------------------- */

struct busref {
    struct busref *next;
    enum ofe_config_bus_kind kind;
    uint64_t fingerprint;
    struct ofe_bus *bus;
    int refs;
};

struct ofe_busset {
    pthread_mutex_t lock;
    struct busref *list;
    struct ofe_metrics *metrics;
    char *component;
};

struct ofe_busset *ofe_busset_new(struct ofe_metrics *m, const char *component)
{
    struct ofe_busset *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->metrics = m;
    s->component = strdup(component ? component : "daemon");
    if (!s->component) {
        free(s);
        return NULL;
    }
    return s;
}

int ofe_busset_get(struct ofe_busset *set, const struct ofe_config_busdesc *desc,
                   struct ofe_bus **out, char *errstr, size_t errstr_size)
{
    pthread_mutex_lock(&set->lock);
    for (struct busref *r = set->list; r; r = r->next) {
        if (r->kind == desc->kind && r->fingerprint == desc->fingerprint) {
            r->refs++;
            *out = r->bus;
            pthread_mutex_unlock(&set->lock);
            return 0;
        }
    }
    struct busref *r = calloc(1, sizeof(*r));
    if (!r) {
        pthread_mutex_unlock(&set->lock);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    struct ofe_bus_opts o = {.component = set->component, .metrics = set->metrics};
    int rc = ofe_bus_open(desc, &o, &r->bus, errstr, errstr_size);
    if (rc) {
        free(r);
        pthread_mutex_unlock(&set->lock);
        return rc;
    }
    r->kind = desc->kind;
    r->fingerprint = desc->fingerprint;
    r->refs = 1;
    r->next = set->list;
    set->list = r;
    OFE_INFO(set->component, "bus", "opened %s bus: %s", ofe_bus_backend(r->bus),
             ofe_bus_describe(r->bus));
    *out = r->bus;
    pthread_mutex_unlock(&set->lock);
    return 0;
}

void ofe_busset_put(struct ofe_busset *set, struct ofe_bus *bus, uint32_t drain_ms)
{
    if (!bus)
        return;
    pthread_mutex_lock(&set->lock);
    for (struct busref **pp = &set->list; *pp; pp = &(*pp)->next) {
        struct busref *r = *pp;
        if (r->bus != bus)
            continue;
        if (--r->refs == 0) {
            *pp = r->next;
            pthread_mutex_unlock(&set->lock);
            OFE_INFO(set->component, "bus", "closing %s bus: %s", ofe_bus_backend(bus),
                     ofe_bus_describe(bus));
            ofe_bus_close(bus, drain_ms);
            free(r);
            return;
        }
        break;
    }
    pthread_mutex_unlock(&set->lock);
}

bool ofe_busset_ready(struct ofe_busset *set, char *why, size_t why_size)
{
    pthread_mutex_lock(&set->lock);
    bool ok = true;
    for (struct busref *r = set->list; r && ok; r = r->next) {
        char w[256] = "";
        if (!ofe_bus_ready(r->bus, w, sizeof(w))) {
            snprintf(why, why_size, "%s bus (%s) not ready: %s", ofe_bus_backend(r->bus),
                     ofe_bus_describe(r->bus), w);
            ok = false;
        }
    }
    pthread_mutex_unlock(&set->lock);
    return ok;
}

void ofe_busset_destroy(struct ofe_busset *set, uint32_t drain_ms)
{
    if (!set)
        return;
    struct busref *r = set->list;
    while (r) {
        struct busref *n = r->next;
        ofe_bus_close(r->bus, drain_ms);
        free(r);
        r = n;
    }
    pthread_mutex_destroy(&set->lock);
    free(set->component);
    free(set);
}
