/* ofe-eventbus: the embedded, durable event bus of ofevents. Speaks the
 * Redis protocol (RESP2) for streams on one port and serves CloudEvents
 * over HTTP on another. See docs/eventbus.md. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_ingress.h"
#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "ofe/metrics.h"
#include "server.h"

#define COMP "eventbus"

static struct bus_server *g_srv;

static void on_signal(int sig)
{
    (void)sig;
    if (g_srv)
        bus_server_stop(g_srv);
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: ofe-eventbus [--config FILE] [--bus NAME] [--bind ADDR] [--port N]\n"
            "                    [--http-port N] [--data-dir DIR] [--fsync always|everysec|no]\n"
            "                    [--requirepass SECRET] [options]\n"
            "\n"
            "The embedded event bus of ofevents: a durable, single-node broker speaking the\n"
            "Redis protocol for streams (XADD, XREADGROUP, XACK, ...), so redis-cli, hiredis and\n"
            "redis-benchmark work against it, plus an HTTP ingress for CloudEvents\n"
            "(POST /topics/{topic}) and /metrics, /healthz, /readyz.\n"
            "\n"
            "Options (command-line flags override the configuration file):\n"
            "  -c, --config FILE        EventBus YAML with an `embedded` block\n"
            "      --bus NAME           which EventBus/ClusterEventBus of the file (default: the\n"
            "                           only one with an `embedded` block)\n"
            "      --bind ADDR          listen address (default 127.0.0.1)\n"
            "      --port N             RESP port (default %d; 0 picks a free port)\n"
            "      --http-port N        HTTP port (default %d; 0 disables HTTP)\n"
            "      --data-dir DIR       log segments and group state (default ofe-eventbus-data)\n"
            "      --fsync POLICY       always (reply once on disk, group commit), everysec\n"
            "                           (default), no\n"
            "      --requirepass SECRET clients must AUTH with it\n"
            "      --requirepass-file F read the password from a file\n"
            "      --http-token SECRET  bearer token for POST /topics\n"
            "      --max-event-size N   largest event in bytes (default 4194304)\n"
            "      --max-clients N      connections at most (default 10000)\n"
            "      --segment-size N     roll log segments at N bytes (default 67108864)\n"
            "      --tls-cert FILE      PEM certificate chain: TLS on the RESP port\n"
            "      --tls-key FILE       PEM private key\n"
            "      --log-level LEVEL    error|warn|info|debug (default info)\n"
            "      --log-format FORMAT  text|json (default text)\n"
            "      --validate           check the configuration and exit\n"
            "  -h, --help               this help\n"
            "      --version            print the version\n",
            BUS_DEFAULT_PORT, BUS_DEFAULT_HTTP_PORT);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static char *read_secret(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return strdup(buf);
}

/* Splits "host:port" (or "[v6]:port"). */
static int split_address(const char *addr, char **host, uint16_t *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    uint64_t p;
    if (parse_u64(colon + 1, 65535, &p) != 0)
        return -1;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    *host = strndup(h, hl);
    *port = (uint16_t)p;
    return 0;
}

enum {
    O_BUS = 256,
    O_BIND,
    O_PORT,
    O_HTTP_PORT,
    O_DATA_DIR,
    O_FSYNC,
    O_PASS,
    O_PASS_FILE,
    O_TOKEN,
    O_MAX_EVENT,
    O_MAX_CLIENTS,
    O_SEGMENT,
    O_TLS_CERT,
    O_TLS_KEY,
    O_LOG_LEVEL,
    O_LOG_FORMAT,
    O_VALIDATE,
    O_VERSION
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"bus", required_argument, NULL, O_BUS},
        {"bind", required_argument, NULL, O_BIND},
        {"port", required_argument, NULL, O_PORT},
        {"http-port", required_argument, NULL, O_HTTP_PORT},
        {"data-dir", required_argument, NULL, O_DATA_DIR},
        {"fsync", required_argument, NULL, O_FSYNC},
        {"requirepass", required_argument, NULL, O_PASS},
        {"requirepass-file", required_argument, NULL, O_PASS_FILE},
        {"http-token", required_argument, NULL, O_TOKEN},
        {"max-event-size", required_argument, NULL, O_MAX_EVENT},
        {"max-clients", required_argument, NULL, O_MAX_CLIENTS},
        {"segment-size", required_argument, NULL, O_SEGMENT},
        {"tls-cert", required_argument, NULL, O_TLS_CERT},
        {"tls-key", required_argument, NULL, O_TLS_KEY},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"log-format", required_argument, NULL, O_LOG_FORMAT},
        {"validate", no_argument, NULL, O_VALIDATE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *busname = NULL;
    const char *f_bind = NULL, *f_port = NULL, *f_http = NULL, *f_dir = NULL, *f_fsync = NULL;
    const char *f_pass = NULL, *f_pass_file = NULL, *f_token = NULL, *f_max_event = NULL;
    const char *f_max_clients = NULL, *f_segment = NULL, *f_cert = NULL, *f_key = NULL;
    bool validate = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case O_BUS:
            busname = optarg;
            break;
        case O_BIND:
            f_bind = optarg;
            break;
        case O_PORT:
            f_port = optarg;
            break;
        case O_HTTP_PORT:
            f_http = optarg;
            break;
        case O_DATA_DIR:
            f_dir = optarg;
            break;
        case O_FSYNC:
            f_fsync = optarg;
            break;
        case O_PASS:
            f_pass = optarg;
            break;
        case O_PASS_FILE:
            f_pass_file = optarg;
            break;
        case O_TOKEN:
            f_token = optarg;
            break;
        case O_MAX_EVENT:
            f_max_event = optarg;
            break;
        case O_MAX_CLIENTS:
            f_max_clients = optarg;
            break;
        case O_SEGMENT:
            f_segment = optarg;
            break;
        case O_TLS_CERT:
            f_cert = optarg;
            break;
        case O_TLS_KEY:
            f_key = optarg;
            break;
        case O_LOG_LEVEL: {
            enum ofe_log_level l;
            if (ofe_log_parse_level(optarg, &l) != 0) {
                fprintf(stderr, "ofe-eventbus: invalid --log-level '%s'\n", optarg);
                return 2;
            }
            ofe_log_set_level(l);
            break;
        }
        case O_LOG_FORMAT: {
            enum ofe_log_format f;
            if (ofe_log_parse_format(optarg, &f) != 0) {
                fprintf(stderr, "ofe-eventbus: invalid --log-format '%s'\n", optarg);
                return 2;
            }
            ofe_log_set_format(f);
            break;
        }
        case O_VALIDATE:
            validate = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case O_VERSION:
            printf("ofe-eventbus %s (Redis %s streams protocol)\n", OFE_VERSION, BUS_REDIS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ofe-eventbus: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* Defaults are those of the `embedded` block (docs/config.md); a file
     * replaces them, flags replace both. */
    struct ofe_config *cfg = ofe_config_new();
    if (!cfg) {
        fprintf(stderr, "ofe-eventbus: out of memory\n");
        return 1;
    }
    char errstr[512], desc[512];
    const struct ofe_config_embedded_bus *eb = NULL;
    struct ofe_config_busdesc bd;
    if (config) {
        ofe_config_load_file(cfg, config);
        size_t nd;
        const struct ofe_config_diag *d = ofe_config_diags(cfg, &nd);
        for (size_t i = 0; i < nd; i++) {
            char line[1024];
            fprintf(stderr, "%s\n", ofe_config_diag_format(&d[i], line, sizeof(line)));
        }
        if (ofe_config_nerrors(cfg)) {
            ofe_config_destroy(cfg);
            return 2;
        }
        const struct ofe_config_bus *pick = NULL;
        size_t found = 0;
        for (size_t i = 0; i < cfg->nbuses; i++) {
            const struct ofe_config_bus *b = cfg->buses[i];
            if (!b->valid || b->backend != OFE_CONFIG_BUS_EMBEDDED)
                continue;
            if (busname && strcmp(b->doc.name, busname) != 0)
                continue;
            pick = pick ? pick : b;
            found++;
        }
        if (!pick) {
            fprintf(stderr, "%s: no EventBus or ClusterEventBus%s%s%s with an `embedded` block\n",
                    config, busname ? " named '" : "", busname ? busname : "", busname ? "'" : "");
            ofe_config_destroy(cfg);
            return 2;
        }
        if (found > 1) {
            fprintf(stderr, "%s: %zu buses have an `embedded` block; choose one with --bus NAME\n",
                    config, found);
            ofe_config_destroy(cfg);
            return 2;
        }
        eb = &pick->spec.embedded;
    } else {
        if (ofe_config_resolve_bus(cfg, "default", NULL, &bd, desc, sizeof(desc), errstr,
                                   sizeof(errstr)) != 0 ||
            !bd.embedded) {
            fprintf(stderr, "ofe-eventbus: %s\n", errstr);
            ofe_config_destroy(cfg);
            return 1;
        }
        eb = bd.embedded;
    }

    struct bus_server_opts so = {0};
    char *host = NULL;
    uint16_t port = BUS_DEFAULT_PORT;
    if (eb->address && split_address(eb->address, &host, &port) != 0) {
        fprintf(stderr, "ofe-eventbus: invalid address '%s'\n", eb->address);
        ofe_config_destroy(cfg);
        return 2;
    }
    uint64_t http_port = eb->http_port >= 0 ? (uint64_t)eb->http_port : BUS_DEFAULT_HTTP_PORT;
    const char *dir = eb->data_dir ? eb->data_dir : "ofe-eventbus-data";
    enum bus_fsync fs = eb->fsync == OFE_CONFIG_FSYNC_ALWAYS     ? BUS_FSYNC_ALWAYS
                        : eb->fsync == OFE_CONFIG_FSYNC_EVERYSEC ? BUS_FSYNC_EVERYSEC
                                                                 : BUS_FSYNC_NO;
    char *pass = eb->requirepass ? strdup(eb->requirepass) : NULL;
    char *token = eb->http_token ? strdup(eb->http_token) : NULL;
    uint64_t max_event =
        eb->limits.max_event_size > 0 ? (uint64_t)eb->limits.max_event_size : 4 * 1024 * 1024;
    uint64_t max_clients = eb->limits.max_clients > 0 ? (uint64_t)eb->limits.max_clients : 10000;
    uint64_t segment = 0, v;
    so.client_ibuf =
        eb->limits.client_input_buffer > 0 ? (size_t)eb->limits.client_input_buffer : 0;
    so.client_obuf =
        eb->limits.client_output_buffer > 0 ? (size_t)eb->limits.client_output_buffer : 0;
    so.retention.max_age_ms = eb->retention.max_age_ms > 0 ? (uint64_t)eb->retention.max_age_ms : 0;
    so.retention.max_bytes = eb->retention.max_bytes > 0 ? (uint64_t)eb->retention.max_bytes : 0;
    so.retention.max_entries =
        eb->retention.max_entries > 0 ? (uint64_t)eb->retention.max_entries : 0;
    const char *cert = eb->tls.cert, *key = eb->tls.key;
    int rc = 2;

    if (f_bind) {
        free(host);
        host = strdup(f_bind);
    }
    if (f_port) {
        if (parse_u64(f_port, 65535, &v) != 0) {
            fprintf(stderr, "ofe-eventbus: invalid --port '%s'\n", f_port);
            goto out;
        }
        port = (uint16_t)v;
    }
    if (f_http && parse_u64(f_http, 65535, &http_port) != 0) {
        fprintf(stderr, "ofe-eventbus: invalid --http-port '%s'\n", f_http);
        goto out;
    }
    if (f_dir)
        dir = f_dir;
    if (f_fsync) {
        if (!strcmp(f_fsync, "always"))
            fs = BUS_FSYNC_ALWAYS;
        else if (!strcmp(f_fsync, "everysec"))
            fs = BUS_FSYNC_EVERYSEC;
        else if (!strcmp(f_fsync, "no"))
            fs = BUS_FSYNC_NO;
        else {
            fprintf(stderr, "ofe-eventbus: --fsync must be always, everysec or no (not '%s')\n",
                    f_fsync);
            goto out;
        }
    }
    if (f_pass) {
        free(pass);
        pass = strdup(f_pass);
    }
    if (f_pass_file) {
        free(pass);
        pass = read_secret(f_pass_file);
        if (!pass) {
            fprintf(stderr, "ofe-eventbus: cannot read %s: %s\n", f_pass_file, strerror(errno));
            goto out;
        }
    }
    if (f_token) {
        free(token);
        token = strdup(f_token);
    }
    if (f_max_event && (parse_u64(f_max_event, 512ull << 20, &max_event) != 0 || max_event < 16)) {
        fprintf(stderr, "ofe-eventbus: invalid --max-event-size '%s'\n", f_max_event);
        goto out;
    }
    if (f_max_clients &&
        (parse_u64(f_max_clients, 1000000, &max_clients) != 0 || max_clients < 1)) {
        fprintf(stderr, "ofe-eventbus: invalid --max-clients '%s'\n", f_max_clients);
        goto out;
    }
    if (f_segment && (parse_u64(f_segment, 1ull << 30, &segment) != 0 || segment < 4096)) {
        fprintf(stderr, "ofe-eventbus: --segment-size must be 4096 to 1073741824\n");
        goto out;
    }
    if (f_cert)
        cert = f_cert;
    if (f_key)
        key = f_key;
    if ((cert && !key) || (!cert && key)) {
        fprintf(stderr, "ofe-eventbus: TLS needs both a certificate and a key\n");
        goto out;
    }
    if (validate) {
        printf("%s: ok\n", config ? config : "(no configuration file)");
        rc = 0;
        goto out;
    }

    so.bind = host ? host : "127.0.0.1";
    so.port = port;
    so.requirepass = pass;
    so.max_clients = (size_t)max_clients;
    so.max_event_size = (size_t)max_event;
    so.store.dir = dir;
    so.store.fsync = fs;
    so.store.segment_bytes = segment;
    so.tls_cert = cert;
    so.tls_key = key;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    /* A write over the file size limit (ulimit -f, LimitFSIZE=) fails with
     * EFBIG like any storage error instead of killing the broker. */
    signal(SIGXFSZ, SIG_IGN);

    rc = 1;
    struct ofe_metrics *m = ofe_metrics_new();
    struct bus_server *srv = bus_server_new(&so, errstr, sizeof(errstr));
    if (!srv) {
        OFE_ERROR(COMP, NULL, "cannot start: %s", errstr);
        ofe_metrics_destroy(m);
        goto out;
    }
    bus_server_set_metrics(srv, m);
    struct bus_http *http = NULL;
    if (http_port) {
        struct bus_http_opts ho = {.bind = so.bind,
                                   .port = (uint16_t)http_port,
                                   .token = token,
                                   .max_event_size = so.max_event_size};
        http = bus_http_start(srv, m, &ho, errstr, sizeof(errstr));
        if (!http) {
            OFE_ERROR(COMP, NULL, "cannot start the HTTP server: %s", errstr);
            bus_server_free(srv);
            ofe_metrics_destroy(m);
            goto out;
        }
    }
    g_srv = srv;
    char httpdesc[96] = "off";
    if (http)
        snprintf(httpdesc, sizeof(httpdesc), "%s:%u", so.bind, bus_http_port(http));
    OFE_INFO(COMP, NULL,
             "ofe-eventbus %s ready: RESP on %s:%u%s, HTTP %s, data %s, fsync %s, %zu "
             "stream(s) recovered",
             OFE_VERSION, so.bind, bus_server_port(srv), cert ? " (TLS)" : "", httpdesc, dir,
             fs == BUS_FSYNC_ALWAYS     ? "always"
             : fs == BUS_FSYNC_EVERYSEC ? "everysec"
                                        : "no",
             bus_db_size(srv));
    rc = bus_server_run(srv) == 0 ? 0 : 1;
    OFE_INFO(COMP, NULL, "stopping: data flushed and synced");
    bus_http_stop(http);
    g_srv = NULL;
    bus_server_free(srv);
    ofe_metrics_destroy(m);
out:
    free(host);
    free(pass);
    free(token);
    ofe_config_destroy(cfg);
    return rc;
}
