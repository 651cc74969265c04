/* The schema: one declarative table per configuration block (STYLE.md),
 * with the cross-field checks each block needs. Field names follow
 * OpenFunction's CRDs (apis/events/v1alpha1) and Dapr's component metadata;
 * fields marked "ours" in the descriptions are ofevents additions. Every
 * row here appears in docs/config.md. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "config_int.h"
#include "ofe/duration.h"
#include "ofe/log.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MS_HOUR  3600000LL
#define MS_DAY   (24 * MS_HOUR)

/* Row builders. T must be #defined to the block's struct type. */
#define OFF(m) offsetof(T, m)
#define STR(k, m, fl, d, ds)                                                                       \
    {                                                                                              \
        .key = k, .type = CT_STRING, .off = OFF(m), .flags = (fl), .def = (d), .desc = ds          \
    }
#define SECRET(k, m, mf, fl, ds)                                                                   \
    {                                                                                              \
        .key = k, .type = CT_SECRET, .off = OFF(m), .aux_off = OFF(mf), .flags = F_FILE | (fl),    \
        .desc = ds                                                                                 \
    }
#define PATHF(k, m, fl, ds)                                                                        \
    {                                                                                              \
        .key = k, .type = CT_PATH, .off = OFF(m), .flags = (fl), .desc = ds                        \
    }
#define BOOLF(k, m, d, ds)                                                                         \
    {                                                                                              \
        .key = k, .type = CT_BOOL, .off = OFF(m), .def = d, .desc = ds                             \
    }
#define BOOLR(k, m, ds)                                                                            \
    {                                                                                              \
        .key = k, .type = CT_BOOL, .off = OFF(m), .flags = F_REQUIRED, .desc = ds                  \
    }
#define INTF(k, m, fl, d, lo, hi, ds)                                                              \
    {                                                                                              \
        .key = k, .type = CT_INT, .off = OFF(m), .flags = F_BOUNDS | (fl), .def = d, .min = lo,    \
        .max = hi, .desc = ds                                                                      \
    }
#define DUR(k, m, fl, d, lo, hi, ds)                                                               \
    {                                                                                              \
        .key = k, .type = CT_DURATION, .off = OFF(m), .flags = F_BOUNDS | (fl), .def = d,          \
        .min = lo, .max = hi, .desc = ds                                                           \
    }
#define SIZEF(k, m, fl, d, lo, hi, ds)                                                             \
    {                                                                                              \
        .key = k, .type = CT_SIZE, .off = OFF(m), .flags = F_BOUNDS | (fl), .def = d, .min = lo,   \
        .max = hi, .desc = ds                                                                      \
    }
#define ENUMF(k, m, fl, d, e, ds)                                                                  \
    {                                                                                              \
        .key = k, .type = CT_ENUM, .off = OFF(m), .flags = (fl), .def = d, .enums = e, .desc = ds  \
    }
#define CSVF(k, m, fl, ds)                                                                         \
    {                                                                                              \
        .key = k, .type = CT_CSV, .off = OFF(m), .flags = (fl), .desc = ds                         \
    }
#define STRLISTF(k, m, ds)                                                                         \
    {                                                                                              \
        .key = k, .type = CT_STRLIST, .off = OFF(m), .desc = ds                                    \
    }
#define DURLISTF(k, m, ds)                                                                         \
    {                                                                                              \
        .key = k, .type = CT_DURLIST, .off = OFF(m), .desc = ds                                    \
    }
#define STRMAPF(k, m, fl, ds)                                                                      \
    {                                                                                              \
        .key = k, .type = CT_STRMAP, .off = OFF(m), .flags = (fl), .desc = ds                      \
    }
#define PREFIXF(k, m, ds)                                                                          \
    {                                                                                              \
        .key = k, .type = CT_PREFIXMAP, .off = OFF(m), .desc = ds                                  \
    }
#define BLOCKF(k, m, fl, s, ds)                                                                    \
    {                                                                                              \
        .key = k, .type = CT_BLOCK, .off = OFF(m), .flags = (fl), .sub = &(s), .desc = ds          \
    }
#define MAPF(k, m, fl, s, ds)                                                                      \
    {                                                                                              \
        .key = k, .type = CT_MAP, .off = OFF(m), .flags = (fl), .sub = &(s), .desc = ds            \
    }
#define LISTF(k, m, fl, s, ds)                                                                     \
    {                                                                                              \
        .key = k, .type = CT_LIST, .off = OFF(m), .flags = (fl), .sub = &(s), .desc = ds           \
    }
#define IGN(k, fl, ds)                                                                             \
    {                                                                                              \
        .key = k, .type = CT_IGNORED, .flags = (fl), .desc = ds                                    \
    }
#define CUSTOMF(k, m, fl, c, ds)                                                                   \
    {                                                                                              \
        .key = k, .type = CT_CUSTOM, .off = OFF(m), .flags = (fl), .custom = &(c), .desc = ds      \
    }

#define TABLE(name, id_, title_, intro_, type, fields_, check_, fini_)                             \
    const struct ofe_config_table name = {.id = id_,                                               \
                                          .title = title_,                                         \
                                          .intro = intro_,                                         \
                                          .size = sizeof(type),                                    \
                                          .fields = fields_,                                       \
                                          .nfields = NELEM(fields_),                               \
                                          .check = check_,                                         \
                                          .fini = fini_}

/* ===================================================================== */
/* Enums                                                                  */

static const struct cfg_enum mode_enum[] = {
    {"binary", OFE_CONFIG_MODE_BINARY}, {"structured", OFE_CONFIG_MODE_STRUCTURED}, {NULL, 0}};
static const struct cfg_enum backoff_enum[] = {{"exponential", OFE_CONFIG_BACKOFF_EXPONENTIAL},
                                               {"linear", OFE_CONFIG_BACKOFF_LINEAR},
                                               {NULL, 0}};
static const struct cfg_enum ordering_enum[] = {{"unordered", OFE_CONFIG_ORDERING_UNORDERED},
                                                {"ordered", OFE_CONFIG_ORDERING_ORDERED},
                                                {NULL, 0}};
static const struct cfg_enum offset_enum[] = {
    {"newest", OFE_CONFIG_OFFSET_NEWEST}, {"oldest", OFE_CONFIG_OFFSET_OLDEST}, {NULL, 0}};
static const struct cfg_enum mqtt_version_enum[] = {{"5", OFE_CONFIG_MQTT_V5},
                                                    {"311", OFE_CONFIG_MQTT_V311},
                                                    {"3.1.1", OFE_CONFIG_MQTT_V311},
                                                    {NULL, 0}};
static const struct cfg_enum sasl_enum[] = {{"PLAIN", OFE_CONFIG_SASL_PLAIN},
                                            {"SCRAM-SHA-256", OFE_CONFIG_SASL_SCRAM_SHA_256},
                                            {"SCRAM-SHA-512", OFE_CONFIG_SASL_SCRAM_SHA_512},
                                            {"PLAINTEXT", OFE_CONFIG_SASL_PLAIN},
                                            {"SHA-256", OFE_CONFIG_SASL_SCRAM_SHA_256},
                                            {"SHA-512", OFE_CONFIG_SASL_SCRAM_SHA_512},
                                            {NULL, 0}};
static const struct cfg_enum kafka_auth_enum[] = {{"none", OFE_CONFIG_KAFKA_AUTH_NONE},
                                                  {"password", OFE_CONFIG_KAFKA_AUTH_PASSWORD},
                                                  {"mtls", OFE_CONFIG_KAFKA_AUTH_MTLS},
                                                  {"oidc", OFE_CONFIG_KAFKA_AUTH_OIDC},
                                                  {NULL, 0}};
static const struct cfg_enum compression_enum[] = {
    {"none", OFE_CONFIG_COMPRESSION_NONE},     {"gzip", OFE_CONFIG_COMPRESSION_GZIP},
    {"snappy", OFE_CONFIG_COMPRESSION_SNAPPY}, {"lz4", OFE_CONFIG_COMPRESSION_LZ4},
    {"zstd", OFE_CONFIG_COMPRESSION_ZSTD},     {NULL, 0}};
static const struct cfg_enum deliver_enum[] = {
    {"all", OFE_CONFIG_DELIVER_ALL},   {"last", OFE_CONFIG_DELIVER_LAST},
    {"new", OFE_CONFIG_DELIVER_NEW},   {"sequence", OFE_CONFIG_DELIVER_SEQUENCE},
    {"time", OFE_CONFIG_DELIVER_TIME}, {NULL, 0}};
static const struct cfg_enum deliver_src_enum[] = {{"all", OFE_CONFIG_DELIVER_ALL},
                                                   {"last", OFE_CONFIG_DELIVER_LAST},
                                                   {"new", OFE_CONFIG_DELIVER_NEW},
                                                   {NULL, 0}};
static const struct cfg_enum redis_type_enum[] = {
    {"node", OFE_CONFIG_REDIS_NODE}, {"cluster", OFE_CONFIG_REDIS_CLUSTER}, {NULL, 0}};
static const struct cfg_enum fsync_enum[] = {{"always", OFE_CONFIG_FSYNC_ALWAYS},
                                             {"everysec", OFE_CONFIG_FSYNC_EVERYSEC},
                                             {"no", OFE_CONFIG_FSYNC_NO},
                                             {NULL, 0}};
static const struct cfg_enum method_enum[] = {
    {"POST", OFE_CONFIG_HTTP_POST},     {"PUT", OFE_CONFIG_HTTP_PUT},
    {"PATCH", OFE_CONFIG_HTTP_PATCH},   {"GET", OFE_CONFIG_HTTP_GET},
    {"DELETE", OFE_CONFIG_HTTP_DELETE}, {NULL, 0}};
const char *const ofe_config_http_method_names[] = {"POST", "PUT", "PATCH", "GET", "DELETE"};
static const struct cfg_enum hmac_enum[] = {{"sha256", OFE_CONFIG_HMAC_SHA256},
                                            {"sha1", OFE_CONFIG_HMAC_SHA1},
                                            {"sha512", OFE_CONFIG_HMAC_SHA512},
                                            {NULL, 0}};
static const struct cfg_enum subscription_enum[] = {
    {"topic", OFE_CONFIG_SUBSCRIPTION_TOPIC}, {"queue", OFE_CONFIG_SUBSCRIPTION_QUEUE}, {NULL, 0}};

/* ===================================================================== */
/* Check helpers                                                          */

static const struct ofe_config_fpos *fpos_of(const struct ofe_config_node *n, const char *key)
{
    for (size_t i = 0; n->table && i < n->table->nfields; i++)
        if (!strcmp(n->table->fields[i].key, key) && n->fpos && n->fpos[i].pos.line)
            return &n->fpos[i];
    return NULL;
}

/* Position of a field for messages: its value, or the block. */
static struct ofe_config_pos at(const struct ofe_config_node *n, const char *key)
{
    const struct ofe_config_fpos *fp = key ? fpos_of(n, key) : NULL;
    return fp ? fp->pos : n->pos;
}

#define ERR(p, n, key, ...)                                                                        \
    do {                                                                                           \
        struct ofe_config_pos pos_ = at((n), (key));                                               \
        cfg__diag((p), OFE_CONFIG_ERROR, &pos_, (n)->path, (key), __VA_ARGS__);                    \
    } while (0)
#define WARN(p, n, key, ...)                                                                       \
    do {                                                                                           \
        struct ofe_config_pos pos_ = at((n), (key));                                               \
        cfg__diag((p), OFE_CONFIG_WARNING, &pos_, (n)->path, (key), __VA_ARGS__);                  \
    } while (0)

/* host:port with a port in 1..65535 (host may be [v6]). */
static int check_hostport(const char *s, char *why, size_t whysz)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) {
        snprintf(why, whysz, "'%s' is not host:port", s);
        return -1;
    }
    if (s[0] == '[' && colon[-1] != ']') {
        snprintf(why, whysz, "'%s' is not [ipv6]:port", s);
        return -1;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 1 || port > 65535) {
        snprintf(why, whysz, "'%s' has no valid port (1-65535)", s);
        return -1;
    }
    for (const char *c = s; c < colon; c++)
        if (isspace((unsigned char)*c) || *c == '/') {
            snprintf(why, whysz, "'%s' is not host:port", s);
            return -1;
        }
    return 0;
}

static void check_hostlist(struct pctx *p, const struct ofe_config_node *n, const char *key,
                           const char *list)
{
    if (!list)
        return;
    char *copy = strdup(list);
    char why[256];
    for (char *save = NULL, *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (check_hostport(tok, why, sizeof(why)) < 0) {
            ERR(p, n, key, "%s (expected host:port[,host:port...])", why);
            break;
        }
    }
    free(copy);
}

/* Checks that url starts with one of the schemes ("tcp", "ssl", ...) and
 * has a host. */
static void check_url(struct pctx *p, const struct ofe_config_node *n, const char *key,
                      const char *url, const char *const *schemes, bool list)
{
    if (!url)
        return;
    char *copy = strdup(url);
    for (char *save = NULL, *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
         tok = list ? strtok_r(NULL, ",", &save) : NULL) {
        while (*tok == ' ')
            tok++;
        const char *sep = strstr(tok, "://");
        bool ok = false;
        for (const char *const *s = schemes; sep && *s; s++)
            if ((size_t)(sep - tok) == strlen(*s) && !strncasecmp(tok, *s, strlen(*s)))
                ok = true;
        if (ok && !sep[3])
            ok = false;
        if (!ok) {
            struct ofe_buf b = OFE_BUF_INIT;
            for (const char *const *s = schemes; *s; s++)
                ofe_buf_printf(&b, "%s%s://", b.len ? ", " : "", *s);
            ERR(p, n, key, "'%s' is not a URL with a host and one of the schemes %s", tok,
                b.data ? b.data : "");
            ofe_buf_fini(&b);
            break;
        }
    }
    free(copy);
}

static void check_log_level(struct pctx *p, const struct ofe_config_node *n, const char *level)
{
    enum ofe_log_level l;
    if (level && ofe_log_parse_level(level, &l) != 0)
        ERR(p, n, "logLevel",
            "unknown log level '%s' (expected error, warn, info, debug, or one of "
            "OpenFunction's digits \"0\" to \"9\", larger is more verbose)",
            level);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* ===================================================================== */
/* Shared blocks                                                          */

#define T struct ofe_config_ref
static const struct cfg_field ref_fields[] = {
    STR("kind", kind, F_REQUIRED | F_NOTEMPTY, NULL, "Kind of the referent, e.g. Function."),
    STR("apiVersion", api_version, F_REQUIRED | F_NOTEMPTY, NULL,
        "API version of the referent, e.g. core.openfunction.io/v1beta2."),
    STR("name", name, F_REQUIRED | F_NOTEMPTY, NULL, "Name of the referent."),
    STR("namespace", namespace, 0, NULL,
        "Namespace of the referent; the referring document's namespace when absent."),
};
static TABLE(ref_table, "ref", "ref",
             "A reference to an addressable object (OpenFunction's "
             "`Reference`). Outside Kubernetes it resolves to "
             "`http://{name}.{namespace}.svc.cluster.local/`, the address Knative gives it; "
             "use `uri` for anything else.",
             T, ref_fields, NULL, NULL);
#undef T

static void dest_check(struct pctx *p, void *obj)
{
    struct ofe_config_destination *d = obj;
    if (!d->uri && !d->ref.node.present) {
        ERR(p, &d->node, NULL, "a sink needs a uri or a ref");
        return;
    }
    if (d->uri && d->ref.node.present)
        WARN(p, &d->node, "ref", "both uri and ref are given: uri is used, ref is ignored");
    if (d->uri) {
        static const char *const http[] = {"http", "https", NULL};
        check_url(p, &d->node, "uri", d->uri, http, false);
    }
}

#define T struct ofe_config_destination
static const struct cfg_field dest_fields[] = {
    STR("uri", uri, F_NOTEMPTY, NULL,
        "Absolute http:// or https:// URL to POST events to; wins "
        "over ref."),
    BLOCKF("ref", ref, 0, ref_table, "Reference to the receiving object."),
};
static TABLE(dest_table, "sink", "sink",
             "Where events are sent (OpenFunction's `SinkSpec`): "
             "give `uri`, or `ref`, or both (then `uri` wins, as upstream).",
             T, dest_fields, dest_check, NULL);
#undef T

static void delivery_check(struct pctx *p, void *obj)
{
    struct ofe_config_delivery *d = obj;
    if (d->backoff_cap_ms < d->backoff_delay_ms)
        WARN(p, &d->node, "backoffCap",
             "backoffCap is shorter than backoffDelay: every wait is capped at backoffCap");
}

#define T struct ofe_config_delivery
static const struct cfg_field delivery_fields[] = {
    INTF("retry", retry, 0, "3", 0, 10000,
         "Attempts after the first one before giving up (then the dead letter, if any)."),
    ENUMF("backoffPolicy", backoff_policy, 0, "exponential", backoff_enum,
          "Wait growth: linear waits backoffDelay x n, exponential backoffDelay x 2^n, before "
          "full jitter."),
    DUR("backoffDelay", backoff_delay_ms, 0, "PT0.2S", 1, MS_DAY,
        "Base wait between attempts (ISO 8601 like PT0.2S, or 200ms)."),
    DUR("backoffCap", backoff_cap_ms, 0, "60s", 1, MS_DAY, "Upper bound of one wait (ours)."),
    DUR("timeout", timeout_ms, 0, "30s", 1, MS_HOUR, "Timeout of one attempt."),
};
static TABLE(delivery_table, "delivery", "delivery", "Knative's delivery options of a sink.", T,
             delivery_fields, delivery_check, NULL);
#undef T

static void tls_check(struct pctx *p, void *obj)
{
    struct ofe_config_tls *t = obj;
    if (!!t->client_cert != !!t->client_key)
        ERR(p, &t->node, t->client_cert ? "clientKey" : "clientCert",
            "clientCert and clientKey go together (give both or neither)");
}

#define T struct ofe_config_tls
static const struct cfg_field tls_fields[] = {
    SECRET("caCert", ca_cert, ca_cert_file, 0,
           "PEM of the CA that signs the server certificate; the system CAs when absent."),
    SECRET("clientCert", client_cert, client_cert_file, 0, "PEM client certificate (mutual TLS)."),
    SECRET("clientKey", client_key, client_key_file, 0, "PEM private key of clientCert."),
    BOOLF("insecureSkipVerify", insecure_skip_verify, "false",
          "Do not verify the server certificate (tests only)."),
    STR("serverName", server_name, 0, NULL, "Name expected in the server certificate (SNI)."),
};
static TABLE(tls_table, "tls", "tls",
             "Client TLS (ours). TLS is on when this block is present; "
             "an empty block `tls: {}` means TLS with the system CAs.",
             T, tls_fields, tls_check, NULL);
#undef T

/* ===================================================================== */
/* EventSource kinds                                                      */

static void kafka_source_check(struct pctx *p, void *obj)
{
    struct ofe_config_kafka_source *k = obj;
    check_hostlist(p, &k->node, "brokers", k->brokers);
    if (k->auth_required) {
        if (!k->sasl_username)
            ERR(p, &k->node, "saslUsername", "authRequired is true: saslUsername is required");
        if (!k->sasl_password)
            ERR(p, &k->node, "saslPassword",
                "authRequired is true: saslPassword (or saslPasswordFile) is required");
    } else if (k->sasl_username || k->sasl_password) {
        WARN(p, &k->node, k->sasl_username ? "saslUsername" : "saslPassword",
             "ignored because authRequired is false");
    }
}

#define T struct ofe_config_kafka_source
static const struct cfg_field kafka_source_fields[] = {
    CSVF("brokers", brokers, F_REQUIRED,
         "Bootstrap brokers, \"host:port,host:port\" (or a YAML list)."),
    BOOLR("authRequired", auth_required, "Use SASL authentication (saslUsername/saslPassword)."),
    STR("topic", topic, F_REQUIRED | F_NOTEMPTY, NULL, "Topic to consume."),
    STR("saslUsername", sasl_username, 0, NULL, "SASL user name."),
    SECRET("saslPassword", sasl_password, sasl_password_file, 0, "SASL password."),
    ENUMF("saslMechanism", sasl_mechanism, 0, "PLAIN", sasl_enum,
          "SASL mechanism (ours; Dapr's PLAINTEXT, SHA-256, SHA-512 are accepted too)."),
    SIZEF("maxMessageBytes", max_message_bytes, 0, "1MiB", 1, 1000000000,
          "Largest record accepted."),
    IGN("scaleOption", F_WARN, "KEDA scaling options apply to Kubernetes deployments only."),
    STR("consumerGroup", consumer_group, F_NOTEMPTY, NULL,
        "Consumer group (ours); default `{namespace}-{eventsource}-{event}`."),
    ENUMF("initialOffset", initial_offset, 0, "newest", offset_enum,
          "Where a new consumer group starts (ours)."),
    BLOCKF("tls", tls, 0, tls_table, "TLS to the brokers (ours)."),
    PREFIXF("rdkafka", rdkafka,
            "librdkafka properties passed to rd_kafka_conf_set as written (ours), e.g. "
            "`rdkafka.fetch.wait.max.ms: 100`."),
};
static TABLE(kafka_source_table, "eventsource-kafka", "EventSource.spec.kafka.<event>",
             "Consumes a Kafka topic as a consumer group; offsets are committed only after "
             "the event was delivered.",
             T, kafka_source_fields, kafka_source_check, NULL);
#undef T

static void cron_check(struct pctx *p, void *obj)
{
    struct ofe_config_cron_source *c = obj;
    const char *s = c->schedule;
    if (!s)
        return;
    bool tz_prefix = false;
    while (*s == ' ')
        s++;
    if (!strncmp(s, "CRON_TZ=", 8) || !strncmp(s, "TZ=", 3)) {
        tz_prefix = true;
        s = strchr(s, ' ');
        if (!s) {
            ERR(p, &c->node, "schedule", "'%s' has a time zone prefix but no schedule",
                c->schedule);
            return;
        }
        while (*s == ' ')
            s++;
    }
    if (tz_prefix && c->timezone)
        ERR(p, &c->node, "timezone",
            "give the time zone either as timezone or as a CRON_TZ= prefix, not both");
    if (*s == '@') {
        static const char *const named[] = {"@yearly", "@annually", "@monthly", "@weekly",
                                            "@daily",  "@midnight", "@hourly"};
        if (!strncmp(s, "@every ", 7)) {
            int64_t us;
            char err[256];
            const char *d = s + 7;
            while (*d == ' ')
                d++;
            if (ofe_duration_parse(d, &us, NULL, err, sizeof(err)) < 0)
                ERR(p, &c->node, "schedule", "bad @every interval: %s", err);
            else if (us < 1000)
                ERR(p, &c->node, "schedule", "@every needs an interval of at least 1ms");
            return;
        }
        for (size_t i = 0; i < NELEM(named); i++)
            if (!strcmp(s, named[i]))
                return;
        ERR(p, &c->node, "schedule",
            "unknown schedule '%s' (expected @every <duration>, @yearly, @annually, @monthly, "
            "@weekly, @daily, @midnight or @hourly)",
            s);
        return;
    }
    int fields = 0;
    bool in = false;
    for (const char *q = s; *q; q++) {
        if (*q == ' ' || *q == '\t') {
            in = false;
            continue;
        }
        if (!in)
            fields++;
        in = true;
        if (!isalnum((unsigned char)*q) && !strchr("*/,-?#", *q)) {
            ERR(p, &c->node, "schedule", "unexpected character '%c' in schedule '%s'", *q,
                c->schedule);
            return;
        }
    }
    if (fields != 5 && fields != 6)
        ERR(p, &c->node, "schedule",
            "'%s' has %d fields; expected 5 (minute hour day month weekday) or 6 (with seconds "
            "first), or @every <duration>",
            s, fields);
    if (c->timezone && !(p->cfg->priv->flags & OFE_CONFIG_SANDBOX)) {
        struct stat st;
        char path[512];
        snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", c->timezone);
        if (strstr(c->timezone, "..") ||
            (stat("/usr/share/zoneinfo", &st) == 0 && stat(path, &st) != 0 &&
             strcmp(c->timezone, "UTC") && strcmp(c->timezone, "Local")))
            ERR(p, &c->node, "timezone", "unknown time zone '%s' (expected e.g. Europe/Berlin)",
                c->timezone);
    }
}

#define T struct ofe_config_cron_source
static const struct cfg_field cron_fields[] = {
    STR("schedule", schedule, F_REQUIRED | F_NOTEMPTY, NULL,
        "Cron schedule: 5 fields, or 6 with seconds first (Dapr), or `@every 15s`, `@hourly`, "
        "`@daily`, ...; an optional `CRON_TZ=Zone ` prefix."),
    STR("timezone", timezone, F_NOTEMPTY, NULL,
        "IANA time zone of the schedule (ours); local time when absent."),
    BOOLF("catchup", catchup, "false",
          "Emit the ticks missed while the daemon was down, at start (ours)."),
    STR("data", data, 0, NULL, "Payload of every tick (ours); no data when absent."),
    STR("contentType", content_type, F_NOTEMPTY, "text/plain", "datacontenttype of data (ours)."),
};
static TABLE(cron_table, "eventsource-cron", "EventSource.spec.cron.<event>",
             "Emits one event per tick, timestamped with the scheduled time.", T, cron_fields,
             cron_check, NULL);
#undef T

static void redis_source_check(struct pctx *p, void *obj)
{
    struct ofe_config_redis_source *r = obj;
    char why[256];
    if (r->redis_host && check_hostport(r->redis_host, why, sizeof(why)) < 0)
        ERR(p, &r->node, "redisHost", "%s", why);
    if (!r->stream && !r->channel)
        ERR(p, &r->node, NULL,
            "set one of stream (Redis Streams, at least once) or channel (pub/sub, at most "
            "once)");
    else if (r->stream && r->channel)
        ERR(p, &r->node, "channel", "set only one of stream and channel");
    if (r->channel && (fpos_of(&r->node, "consumerGroup") || fpos_of(&r->node, "consumerName")))
        WARN(p, &r->node, fpos_of(&r->node, "consumerGroup") ? "consumerGroup" : "consumerName",
             "ignored for a pub/sub channel (only streams have consumer groups)");
    if (r->failover && !r->sentinel_master_name)
        ERR(p, &r->node, "sentinelMasterName", "failover is true: sentinelMasterName is required");
}

#define T struct ofe_config_redis_source
static const struct cfg_field redis_source_fields[] = {
    STR("redisHost", redis_host, F_REQUIRED | F_NOTEMPTY, NULL, "Redis address, host:port."),
    SECRET("redisPassword", redis_password, redis_password_file, F_REQUIRED,
           "Password (may be \"\" for none)."),
    STR("redisUsername", redis_username, 0, NULL, "ACL user name (ours)."),
    BOOLF("enableTLS", enable_tls, "false", "Connect with TLS."),
    BOOLF("failover", failover, "false", "Use Redis Sentinel."),
    STR("sentinelMasterName", sentinel_master_name, 0, NULL, "Sentinel master name."),
    DUR("redeliverInterval", redeliver_interval_ms, 0, "60s", 0, MS_DAY,
        "How often to look for entries left pending by a dead consumer (0: never)."),
    DUR("processingTimeout", processing_timeout_ms, 0, "15s", 0, MS_DAY,
        "Idle time after which a pending entry is claimed (XAUTOCLAIM min-idle)."),
    ENUMF("redisType", redis_type, 0, "node", redis_type_enum, "Single node or cluster."),
    INTF("redisDB", redis_db, 0, "0", 0, 1000000, "Database number."),
    INTF("redisMaxRetries", redis_max_retries, 0, "3", 0, 1000, "Retries of a failed command."),
    DUR("redisMinRetryInterval", redis_min_retry_interval_ms, 0, "8ms", 0, MS_HOUR,
        "Smallest wait between retries."),
    DUR("redisMaxRetryInterval", redis_max_retry_interval_ms, 0, "512ms", 0, MS_HOUR,
        "Largest wait between retries."),
    DUR("dialTimeout", dial_timeout_ms, 0, "5s", 1, MS_HOUR, "Connect timeout."),
    DUR("readTimeout", read_timeout_ms, 0, "3s", 1, MS_HOUR, "Read timeout."),
    DUR("writeTimeout", write_timeout_ms, 0, "3s", 1, MS_HOUR, "Write timeout."),
    INTF("poolSize", pool_size, 0, "10", 1, 10000, "Connections at most."),
    DUR("poolTimeout", pool_timeout_ms, 0, "4s", 0, MS_HOUR, "Wait for a free connection."),
    DUR("maxConnAge", max_conn_age_ms, 0, "0", 0, MS_DAY * 365,
        "Close connections older than this (0: never)."),
    INTF("minIdleConns", min_idle_conns, 0, "0", 0, 10000, "Idle connections kept open."),
    DUR("idleCheckFrequency", idle_check_frequency_ms, 0, "1m", 0, MS_DAY,
        "How often idle connections are reaped."),
    DUR("idleTimeout", idle_timeout_ms, 0, "5m", 0, MS_DAY, "Close connections idle this long."),
    STR("stream", stream, F_NOTEMPTY, NULL,
        "Redis stream to consume with a consumer group, at least once (ours)."),
    STR("channel", channel, F_NOTEMPTY, NULL,
        "Redis pub/sub channel (or PSUBSCRIBE pattern) to receive, at most once (ours)."),
    STR("consumerGroup", consumer_group, F_NOTEMPTY, NULL,
        "Stream consumer group (ours); default `{namespace}-{eventsource}-{event}`."),
    STR("consumerName", consumer_name, F_NOTEMPTY, NULL,
        "Consumer name in the group (ours); default host name and process id."),
    ENUMF("initialOffset", initial_offset, 0, "newest", offset_enum,
          "Where a new consumer group starts: newest ($) or oldest (0) (ours)."),
};
static TABLE(redis_source_table, "eventsource-redis", "EventSource.spec.redis.<event>",
             "Reads a Redis stream (XREADGROUP, XACK after delivery, XAUTOCLAIM of stuck "
             "entries) or a pub/sub channel. Connection fields as OpenFunction's `RedisSpec`.",
             T, redis_source_fields, redis_source_check, NULL);
#undef T

static const char *const mqtt_schemes[] = {"tcp", "mqtt", "ssl", "mqtts", "tls", NULL};

static void mqtt_source_check(struct pctx *p, void *obj)
{
    struct ofe_config_mqtt_source *m = obj;
    check_url(p, &m->node, "url", m->url, mqtt_schemes, false);
    if (!!m->client_cert != !!m->client_key)
        ERR(p, &m->node, m->client_cert ? "clientKey" : "clientCert",
            "clientCert and clientKey go together (give both or neither)");
    if (m->password && !m->username)
        ERR(p, &m->node, "username", "password is set: username is required");
}

#define T struct ofe_config_mqtt_source
static const struct cfg_field mqtt_source_fields[] = {
    STR("url", url, F_REQUIRED | F_NOTEMPTY, NULL,
        "Broker URL: tcp:// or mqtt:// (plain), ssl://, mqtts:// or tls:// (TLS), host and "
        "port."),
    STR("topic", topic, F_REQUIRED | F_NOTEMPTY, NULL, "Topic filter (+ and # allowed)."),
    STR("consumerID", consumer_id, F_NOTEMPTY, NULL,
        "Client id; default `{namespace}-{eventsource}-{event}`."),
    INTF("qos", qos, 0, "1", 0, 2, "Subscription QoS."),
    BOOLF("retain", retain, "false", "Also deliver the retained message at subscription."),
    BOOLF("cleanSession", clean_session, "false",
          "Start without the session state kept by the broker."),
    SECRET("caCert", ca_cert, ca_cert_file, 0, "PEM CA certificate for TLS."),
    SECRET("clientCert", client_cert, client_cert_file, 0, "PEM client certificate."),
    SECRET("clientKey", client_key, client_key_file, 0, "PEM client key."),
    STR("username", username, 0, NULL, "User name (ours)."),
    SECRET("password", password, password_file, 0, "Password (ours)."),
    ENUMF("protocolVersion", protocol_version, 0, "5", mqtt_version_enum,
          "MQTT 5, or 311 for MQTT 3.1.1 (ours)."),
    DUR("keepAlive", keep_alive_ms, 0, "60s", 1000, MS_HOUR * 18, "Keep-alive interval (ours)."),
};
static TABLE(mqtt_source_table, "eventsource-mqtt", "EventSource.spec.mqtt.<event>",
             "Subscribes to an MQTT topic; QoS 1/2 messages are acknowledged after delivery.", T,
             mqtt_source_fields, mqtt_source_check, NULL);
#undef T

#define T struct ofe_config_nats_jetstream
static const struct cfg_field nats_js_fields[] = {
    STR("stream", stream, F_NOTEMPTY, NULL, "Stream name; looked up by subject when absent."),
    STR("durable", durable, F_NOTEMPTY, NULL,
        "Durable consumer name; default `{namespace}-{eventsource}-{event}` with characters "
        "other than A-Z a-z 0-9 _ - replaced by _."),
    DUR("ackWait", ack_wait_ms, 0, "30s", 1, MS_DAY, "Redelivery wait for unacknowledged events."),
    INTF("maxDeliver", max_deliver, 0, "0", 0, 1000000000, "Deliveries at most (0: unlimited)."),
    INTF("maxAckPending", max_ack_pending, 0, "1000", 1, 1000000,
         "Unacknowledged events in flight at most."),
    ENUMF("deliverPolicy", deliver_policy, 0, "all", deliver_src_enum,
          "Where a new durable starts."),
};
static TABLE(nats_js_table, "eventsource-nats-jetstream", "EventSource.spec.nats.<event>.jetstream",
             "Consume through JetStream with a durable pull consumer and explicit acks (at least "
             "once). Without this block, core NATS (at most once).",
             T, nats_js_fields, NULL, NULL);
#undef T

static const char *const nats_schemes[] = {"nats", "tls", NULL};

static void nats_source_check(struct pctx *p, void *obj)
{
    struct ofe_config_nats_source *n = obj;
    check_url(p, &n->node, "url", n->url, nats_schemes, true);
    int auth = !!n->credentials + !!n->token + !!n->user + !!n->nkey_seed;
    if (auth > 1)
        ERR(p, &n->node, NULL,
            "choose one authentication: credentials, token, user/password or nkeySeed");
    if (n->password && !n->user)
        ERR(p, &n->node, "user", "password is set: user is required");
}

#define T struct ofe_config_nats_source
static const struct cfg_field nats_source_fields[] = {
    STR("url", url, F_REQUIRED | F_NOTEMPTY, NULL,
        "Server URL(s): nats://host:port or tls://host:port, comma-separated."),
    STR("subject", subject, F_REQUIRED | F_NOTEMPTY, NULL, "Subject (wildcards * and > allowed)."),
    STR("queueGroup", queue_group, F_NOTEMPTY, NULL,
        "Queue group: replicas share the messages (core NATS)."),
    PATHF("credentials", credentials, F_NOTEMPTY, "Path of a .creds file (JWT and NKey seed)."),
    SECRET("token", token, token_file, 0, "Authentication token."),
    STR("user", user, 0, NULL, "User name."),
    SECRET("password", password, password_file, 0, "Password."),
    SECRET("nkeySeed", nkey_seed, nkey_seed_file, 0, "NKey seed (SU...)."),
    BLOCKF("tls", tls, 0, tls_table, "TLS options."),
    BLOCKF("jetstream", jetstream, 0, nats_js_table, "Consume through JetStream."),
};
static TABLE(nats_source_table, "eventsource-nats", "EventSource.spec.nats.<event>",
             "Subscribes to a NATS subject (ours: asked for by OpenFunction users, issue "
             "#303).",
             T, nats_source_fields, nats_source_check, NULL);
#undef T

#define T struct ofe_config_webhook_github
static const struct cfg_field gh_fields[] = {
    SECRET("secret", secret, secret_file, F_REQUIRED,
           "Webhook secret; requests must carry a matching X-Hub-Signature-256."),
};
static TABLE(gh_table, "webhook-github", "webhook auth.github", NULL, T, gh_fields, NULL, NULL);
#undef T

#define T struct ofe_config_webhook_token
static const struct cfg_field gitlab_fields[] = {
    SECRET("token", token, token_file, F_REQUIRED,
           "Secret token; requests must carry it in X-Gitlab-Token."),
};
static TABLE(gitlab_table, "webhook-gitlab", "webhook auth.gitlab", NULL, T, gitlab_fields, NULL,
             NULL);
static const struct cfg_field bearer_fields[] = {
    SECRET("token", token, token_file, F_REQUIRED,
           "Requests must carry `Authorization: Bearer <token>`."),
};
static TABLE(bearer_table, "webhook-bearer", "webhook auth.bearer", NULL, T, bearer_fields, NULL,
             NULL);
#undef T

#define T struct ofe_config_webhook_hmac
static const struct cfg_field hmac_fields[] = {
    STR("header", header, F_REQUIRED | F_NOTEMPTY, NULL,
        "Request header holding the hex HMAC of the body, e.g. X-Signature."),
    SECRET("secret", secret, secret_file, F_REQUIRED, "HMAC key."),
    ENUMF("algorithm", algorithm, 0, "sha256", hmac_enum, "Hash function."),
    STR("prefix", prefix, 0, NULL, "Text before the hex digest in the header, e.g. sha256=."),
};
static TABLE(hmac_table, "webhook-hmac", "webhook auth.hmac", NULL, T, hmac_fields, NULL, NULL);
#undef T

static void webhook_auth_check(struct pctx *p, void *obj)
{
    struct ofe_config_webhook_auth *a = obj;
    int n = a->github.node.present + a->gitlab.node.present + a->bearer.node.present +
            a->hmac.node.present;
    if (n > 1)
        ERR(p, &a->node, NULL, "give at most one of github, gitlab, bearer and hmac");
}

#define T struct ofe_config_webhook_auth
static const struct cfg_field webhook_auth_fields[] = {
    BLOCKF("github", github, 0, gh_table, "GitHub signature (X-Hub-Signature-256, HMAC-SHA256)."),
    BLOCKF("gitlab", gitlab, 0, gitlab_table, "GitLab token (X-Gitlab-Token)."),
    BLOCKF("bearer", bearer, 0, bearer_table, "Bearer token."),
    BLOCKF("hmac", hmac, 0, hmac_table, "Generic HMAC of the body."),
};
static TABLE(webhook_auth_table, "webhook-auth", "EventSource.spec.webhook.<event>.auth",
             "Request authentication (ours); at most one method. A request that fails it gets "
             "401 and is not turned into an event.",
             T, webhook_auth_fields, webhook_auth_check, NULL);
#undef T

static void webhook_check(struct pctx *p, void *obj)
{
    struct ofe_config_webhook_source *w = obj;
    if (w->endpoint && w->endpoint[0] != '/')
        ERR(p, &w->node, "endpoint", "endpoint '%s' must start with '/'", w->endpoint);
}

#define T struct ofe_config_webhook_source
static const struct cfg_field webhook_fields[] = {
    STR("address", address, F_NOTEMPTY, "0.0.0.0", "Address to listen on (ours)."),
    INTF("port", port, F_REQUIRED, NULL, 1, 65535, "Port to listen on."),
    STR("endpoint", endpoint, F_REQUIRED | F_NOTEMPTY, NULL, "URL path, e.g. /github."),
    ENUMF("method", method, 0, "POST", method_enum, "Accepted HTTP method."),
    SIZEF("maxPayloadSize", max_payload_size, 0, "1MiB", 1, 1073741824,
          "Largest request body (413 above)."),
    BLOCKF("auth", auth, 0, webhook_auth_table, "Request authentication."),
};
static TABLE(webhook_table, "eventsource-webhook", "EventSource.spec.webhook.<event>",
             "An HTTP endpoint (Argo Events' webhook names). Several events may share a port "
             "with different endpoints.",
             T, webhook_fields, webhook_check, NULL);
#undef T

/* ===================================================================== */
/* Metadata and documents                                                 */

static void metadata_check(struct pctx *p, void *obj)
{
    struct ofe_config_metadata *m = obj;
    if (m->name && cfg__check_k8s_name(m->name, 253, true) < 0)
        ERR(p, &m->node, "name",
            "'%s' is not a valid name: lower-case letters, digits, '-' and '.', starting and "
            "ending with a letter or digit, at most 253 characters",
            m->name);
    if (m->namespace && cfg__check_k8s_name(m->namespace, 63, false) < 0)
        ERR(p, &m->node, "namespace",
            "'%s' is not a valid namespace: lower-case letters, digits and '-', starting and "
            "ending with a letter or digit, at most 63 characters",
            m->namespace);
}

#define T struct ofe_config_metadata
static const struct cfg_field metadata_fields[] = {
    STR("name", name, F_REQUIRED | F_NOTEMPTY, NULL, "Name of the object."),
    STR("namespace", namespace, F_NOTEMPTY, "default", "Namespace of the object."),
    STRMAPF("labels", labels, 0, "Labels (kept, not used)."),
    STRMAPF("annotations", annotations, 0, "Annotations (kept, not used)."),
    IGN("uid", F_HIDDEN, ""),
    IGN("resourceVersion", F_HIDDEN, ""),
    IGN("generation", F_HIDDEN, ""),
    IGN("creationTimestamp", F_HIDDEN, ""),
    IGN("managedFields", F_HIDDEN, ""),
    IGN("finalizers", F_HIDDEN, ""),
    IGN("ownerReferences", F_HIDDEN, ""),
    IGN("selfLink", F_HIDDEN, ""),
};
static TABLE(metadata_table, "metadata", "metadata",
             "Kubernetes object metadata. Bookkeeping fields that `kubectl get -o yaml` prints "
             "(uid, resourceVersion, ...) are tolerated and ignored.",
             T, metadata_fields, metadata_check, NULL);
#undef T

static void set_doc_names(struct ofe_config_doc *d)
{
    d->name = d->metadata.name;
    d->namespace = d->metadata.namespace ? d->metadata.namespace : OFE_CONFIG_DEFAULT_NAMESPACE;
}

static const struct {
    const char *name;
    size_t off;
} es_kinds[] = {
    [OFE_CONFIG_SOURCE_KAFKA] = {"kafka", offsetof(struct ofe_config_eventsource_spec, kafka)},
    [OFE_CONFIG_SOURCE_CRON] = {"cron", offsetof(struct ofe_config_eventsource_spec, cron)},
    [OFE_CONFIG_SOURCE_REDIS] = {"redis", offsetof(struct ofe_config_eventsource_spec, redis)},
    [OFE_CONFIG_SOURCE_MQTT] = {"mqtt", offsetof(struct ofe_config_eventsource_spec, mqtt)},
    [OFE_CONFIG_SOURCE_NATS] = {"nats", offsetof(struct ofe_config_eventsource_spec, nats)},
    [OFE_CONFIG_SOURCE_WEBHOOK] = {"webhook",
                                   offsetof(struct ofe_config_eventsource_spec, webhook)},
};

struct es_array {
    void *v;
    size_t n;
};

static size_t es_item_size(int kind)
{
    switch (kind) {
    case OFE_CONFIG_SOURCE_KAFKA:
        return sizeof(struct ofe_config_kafka_source);
    case OFE_CONFIG_SOURCE_CRON:
        return sizeof(struct ofe_config_cron_source);
    case OFE_CONFIG_SOURCE_REDIS:
        return sizeof(struct ofe_config_redis_source);
    case OFE_CONFIG_SOURCE_MQTT:
        return sizeof(struct ofe_config_mqtt_source);
    case OFE_CONFIG_SOURCE_NATS:
        return sizeof(struct ofe_config_nats_source);
    default:
        return sizeof(struct ofe_config_webhook_source);
    }
}

static void es_spec_check(struct pctx *p, void *obj)
{
    struct ofe_config_eventsource_spec *s = obj;
    check_log_level(p, &s->node, s->log_level);
    if (!s->event_bus && !s->sink.node.present)
        ERR(p, &s->node, NULL,
            "an EventSource needs a sink, an eventBus, or both (neither is given)");
    size_t total = 0;
    for (size_t k = 0; k < NELEM(es_kinds); k++) {
        struct es_array *a = (struct es_array *)((char *)s + es_kinds[k].off);
        size_t sz = es_item_size((int)k);
        for (size_t i = 0; i < a->n; i++) {
            struct ofe_config_node *n = (struct ofe_config_node *)((char *)a->v + i * sz);
            /* An event name is unique across kinds: kinds share the bus topic namespace. */
            for (size_t k2 = 0; k2 <= k; k2++) {
                struct es_array *b = (struct es_array *)((char *)s + es_kinds[k2].off);
                size_t sz2 = es_item_size((int)k2);
                size_t lim = k2 == k ? i : b->n;
                for (size_t j = 0; j < lim; j++) {
                    struct ofe_config_node *m = (struct ofe_config_node *)((char *)b->v + j * sz2);
                    if (n->name && m->name && !strcmp(n->name, m->name)) {
                        cfg__diag(p, OFE_CONFIG_ERROR, &n->pos, n->path, NULL,
                                  "event name '%s' is already used by %s (line %d): events of "
                                  "one EventSource share the bus topic "
                                  "{namespace}-{eventsource}-{event}",
                                  n->name, m->path, m->pos.line);
                        goto next;
                    }
                }
            }
        next:
            total++;
        }
    }
    if (total == 0)
        ERR(p, &s->node, NULL,
            "an EventSource needs at least one event: add a kafka, cron, redis, mqtt, nats or "
            "webhook map");
}

#define T struct ofe_config_eventsource_spec
static const struct cfg_field es_spec_fields[] = {
    STR("eventBus", event_bus, F_NOTEMPTY, NULL,
        "Bus to publish to: an EventBus in the namespace, a ClusterEventBus, or a Dapr "
        "Component of that name; `default` is the embedded bus when none is defined."),
    BLOCKF("sink", sink, 0, dest_table, "HTTP sink receiving every event."),
    STR("logLevel", log_level, 0, NULL,
        "Log level: error, warn, info, debug, or OpenFunction's \"1\", \"2\", ... (larger "
        "is more verbose)."),
    BLOCKF("delivery", delivery, 0, delivery_table, "Delivery options of the sink (ours)."),
    ENUMF("mode", mode, 0, "binary", mode_enum, "CloudEvents HTTP mode of the sink (ours)."),
    MAPF("kafka", kafka, 0, kafka_source_table, "Kafka events, by event name."),
    MAPF("cron", cron, 0, cron_table, "Cron events, by event name."),
    MAPF("redis", redis, 0, redis_source_table, "Redis events, by event name."),
    MAPF("mqtt", mqtt, 0, mqtt_source_table, "MQTT events, by event name."),
    MAPF("nats", nats, 0, nats_source_table, "NATS events, by event name (ours)."),
    MAPF("webhook", webhook, 0, webhook_table, "Webhook events, by event name (ours)."),
    IGN("build", F_WARN, "function builds are not part of ofevents."),
};
static TABLE(es_spec_table, "eventsource", "EventSource.spec",
             "An EventSource turns messages into CloudEvents and sends each to its sink, its "
             "bus, or both. Events of all kinds share one name space (names are unique in the "
             "EventSource); the bus topic of an event is `{namespace}-{eventsource}-{event}`.",
             T, es_spec_fields, es_spec_check, NULL);
#undef T

static char *sanitize_durable(const char *s)
{
    char *d = strdup(s);
    for (char *c = d; c && *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
            *c = '_';
    return d;
}

static void es_doc_check(struct pctx *p, void *obj)
{
    struct ofe_config_eventsource *es = obj;
    (void)p;
    set_doc_names(&es->doc);
    if (!es->doc.name)
        return;
    const char *ns = es->doc.namespace, *nm = es->doc.name;
    size_t total = 0;
    for (size_t k = 0; k < NELEM(es_kinds); k++)
        total += ((struct es_array *)((char *)&es->spec + es_kinds[k].off))->n;
    es->events = total ? calloc(total, sizeof(*es->events)) : NULL;
    es->nevents = 0;
    for (size_t k = 0; k < NELEM(es_kinds) && es->events; k++) {
        struct es_array *a = (struct es_array *)((char *)&es->spec + es_kinds[k].off);
        size_t sz = es_item_size((int)k);
        for (size_t i = 0; i < a->n; i++) {
            struct ofe_config_node *n = (struct ofe_config_node *)((char *)a->v + i * sz);
            struct ofe_config_event *ev = &es->events[es->nevents++];
            ev->kind = (enum ofe_config_source_kind)k;
            ev->kind_name = es_kinds[k].name;
            ev->name = n->name ? n->name : "";
            ev->spec = n;
            ev->bus_topic = xasprintf("%s-%s-%s", ns, nm, ev->name);
            char *deflt = xasprintf("%s-%s-%s", ns, nm, ev->name);
            switch (k) {
            case OFE_CONFIG_SOURCE_KAFKA: {
                struct ofe_config_kafka_source *s = (void *)n;
                if (!s->consumer_group) {
                    s->consumer_group = deflt;
                    deflt = NULL;
                }
                break;
            }
            case OFE_CONFIG_SOURCE_REDIS: {
                struct ofe_config_redis_source *s = (void *)n;
                if (!s->consumer_group && s->stream) {
                    s->consumer_group = deflt;
                    deflt = NULL;
                }
                break;
            }
            case OFE_CONFIG_SOURCE_MQTT: {
                struct ofe_config_mqtt_source *s = (void *)n;
                if (!s->consumer_id) {
                    s->consumer_id = deflt;
                    deflt = NULL;
                }
                break;
            }
            case OFE_CONFIG_SOURCE_NATS: {
                struct ofe_config_nats_source *s = (void *)n;
                if (s->jetstream.node.present && !s->jetstream.durable && deflt)
                    s->jetstream.durable = sanitize_durable(deflt);
                break;
            }
            default:
                break;
            }
            free(deflt);
        }
    }
}

static void es_doc_fini(void *obj)
{
    struct ofe_config_eventsource *es = obj;
    for (size_t i = 0; i < es->nevents; i++)
        free(es->events[i].bus_topic);
    free(es->events);
    es->events = NULL;
    es->nevents = 0;
}

#define DOC_HEAD(T)                                                                                \
    STR("apiVersion", doc.api_version, F_REQUIRED, NULL, "API group and version."),                \
        STR("kind", doc.kind_name, F_REQUIRED, NULL, "Kind of the document."),                     \
        BLOCKF("metadata", doc.metadata, F_REQUIRED, metadata_table, "Name and namespace."),       \
        IGN("status", F_HIDDEN, "")

#define T struct ofe_config_eventsource
static const struct cfg_field es_doc_fields[] = {
    DOC_HEAD(T),
    BLOCKF("spec", spec, F_REQUIRED, es_spec_table, "The EventSource."),
};
static TABLE(es_doc_table, "eventsource-doc", "EventSource", NULL, T, es_doc_fields, es_doc_check,
             es_doc_fini);
#undef T

/* ===================================================================== */
/* Bus backends                                                           */

#define T struct ofe_config_nats_streaming
static const struct cfg_field nats_streaming_fields[] = {
    STR("natsURL", nats_url, F_REQUIRED | F_NOTEMPTY, NULL,
        "NATS server URL; used as JetStream's natsURL."),
    STR("natsStreamingClusterID", nats_streaming_cluster_id, F_REQUIRED | F_NOTEMPTY, NULL,
        "NATS Streaming cluster id; not used by JetStream."),
    ENUMF("subscriptionType", subscription_type, F_REQUIRED, NULL, subscription_enum,
          "queue: replicas share the messages (JetStream queue group); topic: each gets all."),
    STR("durableSubscriptionName", durable_subscription_name, F_NOTEMPTY, NULL,
        "Durable name; becomes JetStream's durableName (and queue group for queue)."),
    DUR("ackWaitTime", ack_wait_time_ms, 0, "30s", 1, MS_DAY, "Becomes ackWait."),
    INTF("maxInFlight", max_in_flight, 0, "1000", 1, 1000000, "Becomes maxAckPending."),
    BOOLF("deliverNew", deliver_new, "false", "Becomes deliverPolicy new."),
    INTF("startAtSequence", start_at_sequence, 0, "0", 0, INT64_MAX,
         "Becomes deliverPolicy sequence with startSequence."),
    BOOLF("startWithLastReceived", start_with_last_received, "false",
          "Becomes deliverPolicy last."),
    BOOLF("deliverAll", deliver_all, "false", "Becomes deliverPolicy all."),
    DUR("startAtTimeDelta", start_at_time_delta_ms, 0, "0", 0, MS_DAY * 36500,
        "Becomes deliverPolicy time, that long before the subscription."),
    STR("startAtTime", start_at_time, F_NOTEMPTY, NULL,
        "Becomes deliverPolicy time at this RFC 3339 time."),
    STR("startAtTimeFormat", start_at_time_format, 0, NULL,
        "Go time layout of startAtTime; only RFC 3339 (2006-01-02T15:04:05Z07:00) is "
        "supported."),
    STR("consumerID", consumer_id, F_NOTEMPTY, NULL, "Queue group override."),
    IGN("scaleOption", F_WARN, "KEDA scaling options apply to Kubernetes deployments only."),
};
static TABLE(nats_streaming_table, "bus-natsstreaming", "EventBus.spec.natsStreaming",
             "OpenFunction's only bus. NATS Streaming (STAN) is end-of-life, so this block is "
             "converted into an equivalent `jetstream` block, with a warning that shows the "
             "mapping. Prefer writing `jetstream` directly.",
             T, nats_streaming_fields, NULL, NULL);
#undef T

static void jetstream_check(struct pctx *p, void *obj)
{
    struct ofe_config_jetstream_bus *j = obj;
    check_url(p, &j->node, "natsURL", j->nats_url, nats_schemes, true);
    if (j->deliver_policy == OFE_CONFIG_DELIVER_SEQUENCE && j->start_sequence <= 0)
        ERR(p, &j->node, "startSequence", "deliverPolicy sequence needs startSequence >= 1");
    if (j->deliver_policy == OFE_CONFIG_DELIVER_TIME && !j->start_time && !j->start_time_delta_ms)
        ERR(p, &j->node, "startTime", "deliverPolicy time needs startTime or startTimeDelta");
    int auth = !!j->credentials + !!j->token + !!j->user + !!j->jwt;
    if (auth > 1)
        ERR(p, &j->node, NULL,
            "choose one authentication: credentials, token, jwt/seedKey or "
            "user/password");
    if (j->jwt && !j->seed_key)
        ERR(p, &j->node, "seedKey", "jwt is set: seedKey is required");
    if (!!j->tls_client_cert != !!j->tls_client_key)
        ERR(p, &j->node, j->tls_client_cert ? "tls_client_key" : "tls_client_cert",
            "tls_client_cert and tls_client_key go together");
}

#define T struct ofe_config_jetstream_bus
static const struct cfg_field jetstream_fields[] = {
    STR("natsURL", nats_url, F_REQUIRED | F_NOTEMPTY, NULL,
        "Server URL(s), nats:// or tls://, comma-separated."),
    STR("streamName", stream_name, F_NOTEMPTY, NULL,
        "Stream holding the bus topics; the backend's default stream when absent."),
    STR("durableName", durable_name, F_NOTEMPTY, NULL,
        "Durable consumer name; each subscriber's consumer group when absent."),
    STR("queueGroupName", queue_group_name, F_NOTEMPTY, NULL, "Queue group name."),
    ENUMF("deliverPolicy", deliver_policy, 0, "all", deliver_enum, "Where a new consumer starts."),
    INTF("startSequence", start_sequence, 0, "0", 0, INT64_MAX,
         "First sequence (deliverPolicy sequence)."),
    INTF("startTime", start_time, 0, "0", 0, INT64_MAX, "Unix time (deliverPolicy time)."),
    DUR("startTimeDelta", start_time_delta_ms, 0, "0", 0, MS_DAY * 36500,
        "Start this long before subscribing (deliverPolicy time; ours, from natsStreaming)."),
    DUR("ackWait", ack_wait_ms, 0, "30s", 1, MS_DAY, "Redelivery wait for unacknowledged events."),
    INTF("maxDeliver", max_deliver, 0, "0", 0, 1000000000, "Deliveries at most (0: unlimited)."),
    DURLISTF("backOff", back_off, "Redelivery waits, e.g. \"50ms, 1s, 10s\"."),
    INTF("maxAckPending", max_ack_pending, 0, "1000", 1, 1000000,
         "Unacknowledged events in flight at most."),
    INTF("replicas", replicas, 0, "1", 1, 5, "Stream replicas (when the backend creates it)."),
    BOOLF("memoryStorage", memory_storage, "false", "Memory storage for a created stream."),
    SECRET("token", token, token_file, 0, "Authentication token."),
    STR("jwt", jwt, 0, NULL, "User JWT (with seedKey)."),
    SECRET("seedKey", seed_key, seed_key_file, 0, "NKey seed of the JWT."),
    PATHF("tls_client_cert", tls_client_cert, 0, "Path of the client certificate (PEM)."),
    PATHF("tls_client_key", tls_client_key, 0, "Path of the client key (PEM)."),
    PATHF("tls_ca_cert", tls_ca_cert, 0, "Path of the CA certificate (PEM) (ours)."),
    STR("user", user, 0, NULL, "User name (ours)."),
    SECRET("password", password, password_file, 0, "Password (ours)."),
    PATHF("credentials", credentials, 0, "Path of a .creds file (ours)."),
    STR("name", name, 0, NULL, "Connection name."),
    DUR("streamMaxAge", stream_max_age_ms, 0, "0", 0, MS_DAY * 36500,
        "Age limit of a created stream (0: none) (ours)."),
    SIZEF("streamMaxBytes", stream_max_bytes, 0, "0", 0, INT64_MAX,
          "Size limit of a created stream (0: none) (ours)."),
    INTF("streamMaxMsgs", stream_max_msgs, 0, "0", 0, INT64_MAX,
         "Message limit of a created stream (0: none) (ours)."),
    IGN("concurrencyMode", F_WARN, "Dapr option; concurrency is set per subscriber."),
    IGN("ackPolicy", F_WARN, "Dapr option; acks are always explicit."),
    IGN("hearbeat", F_WARN, "Dapr option; not used."),
    IGN("flowControl", F_WARN, "Dapr option; not used."),
};
static TABLE(jetstream_table, "bus-jetstream", "EventBus.spec.jetstream",
             "NATS JetStream, with Dapr's pubsub.jetstream metadata names. Bus topics are "
             "subjects of one stream; a consumer group is a durable pull consumer with "
             "explicit acks.",
             T, jetstream_fields, jetstream_check, NULL);
#undef T

static void kafka_bus_check(struct pctx *p, void *obj)
{
    struct ofe_config_kafka_bus *k = obj;
    check_hostlist(p, &k->node, "brokers", k->brokers);
    switch (k->auth_type) {
    case OFE_CONFIG_KAFKA_AUTH_PASSWORD:
        if (!k->sasl_username)
            ERR(p, &k->node, "saslUsername", "authType password needs saslUsername");
        if (!k->sasl_password)
            ERR(p, &k->node, "saslPassword",
                "authType password needs saslPassword (or saslPasswordFile)");
        break;
    case OFE_CONFIG_KAFKA_AUTH_MTLS:
        if (!k->client_cert || !k->client_key)
            ERR(p, &k->node, k->client_cert ? "clientKey" : "clientCert",
                "authType mtls needs clientCert and clientKey");
        break;
    case OFE_CONFIG_KAFKA_AUTH_OIDC:
        if (!k->oidc_token_endpoint)
            ERR(p, &k->node, "oidcTokenEndpoint", "authType oidc needs oidcTokenEndpoint");
        if (!k->oidc_client_id)
            ERR(p, &k->node, "oidcClientID", "authType oidc needs oidcClientID");
        if (!k->oidc_client_secret)
            ERR(p, &k->node, "oidcClientSecret", "authType oidc needs oidcClientSecret");
        break;
    default:
        if (k->sasl_username || k->sasl_password)
            WARN(p, &k->node, k->sasl_username ? "saslUsername" : "saslPassword",
                 "ignored because authType is none (set authType: password)");
        break;
    }
}

#define T struct ofe_config_kafka_bus
static const struct cfg_field kafka_bus_fields[] = {
    CSVF("brokers", brokers, F_REQUIRED, "Bootstrap brokers, \"host:port,host:port\"."),
    STR("consumerGroup", consumer_group, F_NOTEMPTY, NULL,
        "Consumer group for every subscription; each subscriber's own group when absent."),
    STR("clientID", client_id, F_NOTEMPTY, NULL, "Client id sent to the brokers."),
    ENUMF("authType", auth_type, 0, "none", kafka_auth_enum,
          "none, password (SASL), mtls (client certificate) or oidc (SASL/OAUTHBEARER)."),
    STR("saslUsername", sasl_username, 0, NULL, "SASL user name."),
    SECRET("saslPassword", sasl_password, sasl_password_file, 0, "SASL password."),
    ENUMF("saslMechanism", sasl_mechanism, 0, "PLAIN", sasl_enum, "SASL mechanism."),
    SECRET("caCert", ca_cert, ca_cert_file, 0, "PEM CA certificate."),
    SECRET("clientCert", client_cert, client_cert_file, 0, "PEM client certificate."),
    SECRET("clientKey", client_key, client_key_file, 0, "PEM client key."),
    BOOLF("skipVerify", skip_verify, "false", "Do not verify the broker certificate."),
    BOOLF("disableTls", disable_tls, "false",
          "Plain TCP even with authType password/oidc (TLS is on for password, mtls and oidc "
          "otherwise, and whenever caCert is given)."),
    ENUMF("initialOffset", initial_offset, 0, "oldest", offset_enum,
          "Where a new consumer group starts (oldest: nothing published before a trigger first "
          "started is missed)."),
    SIZEF("maxMessageBytes", max_message_bytes, 0, "1MiB", 1, 1000000000,
          "Largest event published or fetched."),
    ENUMF("compression", compression, 0, "none", compression_enum, "Producer compression."),
    STR("oidcTokenEndpoint", oidc_token_endpoint, 0, NULL, "OAuth token endpoint URL."),
    STR("oidcClientID", oidc_client_id, 0, NULL, "OAuth client id."),
    SECRET("oidcClientSecret", oidc_client_secret, oidc_client_secret_file, 0,
           "OAuth client secret."),
    STRLISTF("oidcScopes", oidc_scopes, "OAuth scopes."),
    PREFIXF("rdkafka", rdkafka,
            "librdkafka properties passed to rd_kafka_conf_set as written (ours); its error "
            "text is shown when one is refused."),
    IGN("version", F_WARN, "Dapr option; librdkafka negotiates the protocol version."),
    IGN("consumeRetryEnabled", F_WARN, "Dapr option; redelivery is the subscriber's delivery."),
    IGN("consumeRetryInterval", F_WARN, "Dapr option; redelivery is the subscriber's delivery."),
    IGN("heartbeatInterval", F_WARN, "Dapr option; use rdkafka.heartbeat.interval.ms."),
    IGN("sessionTimeout", F_WARN, "Dapr option; use rdkafka.session.timeout.ms."),
    IGN("channelBufferSize", F_WARN, "Dapr option; not used."),
};
static TABLE(kafka_bus_table, "bus-kafka", "EventBus.spec.kafka",
             "Kafka through librdkafka, with Dapr's pubsub.kafka metadata names. Publishes "
             "wait for acks=all.",
             T, kafka_bus_fields, kafka_bus_check, NULL);
#undef T

static void mqtt_bus_check(struct pctx *p, void *obj)
{
    struct ofe_config_mqtt_bus *m = obj;
    check_url(p, &m->node, "url", m->url, mqtt_schemes, false);
    if (!!m->client_cert != !!m->client_key)
        ERR(p, &m->node, m->client_cert ? "clientKey" : "clientCert",
            "clientCert and clientKey go together (give both or neither)");
    if (m->password && !m->username)
        ERR(p, &m->node, "username", "password is set: username is required");
}

#define T struct ofe_config_mqtt_bus
static const struct cfg_field mqtt_bus_fields[] = {
    STR("url", url, F_REQUIRED | F_NOTEMPTY, NULL,
        "Broker URL: tcp:// or mqtt:// (plain), ssl://, mqtts:// or tls:// (TLS)."),
    STR("consumerID", consumer_id, F_NOTEMPTY, NULL,
        "Client id prefix; derived from each subscriber's consumer group when absent."),
    INTF("qos", qos, 0, "1", 0, 2, "QoS of publishes and subscriptions."),
    BOOLF("retain", retain, "false", "Publish retained messages."),
    BOOLF("cleanSession", clean_session, "false",
          "Start sessions clean (false keeps what a restarted subscriber missed)."),
    SECRET("caCert", ca_cert, ca_cert_file, 0, "PEM CA certificate."),
    SECRET("clientCert", client_cert, client_cert_file, 0, "PEM client certificate."),
    SECRET("clientKey", client_key, client_key_file, 0, "PEM client key."),
    ENUMF("protocolVersion", protocol_version, 0, "5", mqtt_version_enum,
          "5 (binary CloudEvents in user properties) or 311 (structured JSON) (ours)."),
    STR("username", username, 0, NULL, "User name (ours)."),
    SECRET("password", password, password_file, 0, "Password (ours)."),
    DUR("sessionExpiry", session_expiry_ms, 0, "1h", 0, 4294967295000LL,
        "MQTT 5 session expiry interval (ours)."),
    DUR("keepAlive", keep_alive_ms, 0, "60s", 1000, MS_HOUR * 18, "Keep-alive interval (ours)."),
    SIZEF("maxMessageBytes", max_message_bytes, 0, "0", 0, 268435455,
          "Largest event published; 0: the broker's announced maximum (MQTT 5) or no check "
          "(ours)."),
    IGN("backOffMaxRetries", F_WARN, "Dapr option; reconnects back off without limit."),
};
static TABLE(mqtt_bus_table, "bus-mqtt", "EventBus.spec.mqtt",
             "MQTT through libmosquitto, with Dapr's pubsub.mqtt3 metadata names. Consumer "
             "groups are shared subscriptions `$share/{group}/{topic}`.",
             T, mqtt_bus_fields, mqtt_bus_check, NULL);
#undef T

static void redis_bus_check(struct pctx *p, void *obj)
{
    struct ofe_config_redis_bus *r = obj;
    char why[256];
    if (r->redis_host && check_hostport(r->redis_host, why, sizeof(why)) < 0)
        ERR(p, &r->node, "redisHost", "%s", why);
}

#define T struct ofe_config_redis_bus
static const struct cfg_field redis_bus_fields[] = {
    STR("redisHost", redis_host, F_REQUIRED | F_NOTEMPTY, NULL, "Redis address, host:port."),
    SECRET("redisPassword", redis_password, redis_password_file, 0, "Password."),
    STR("redisUsername", redis_username, 0, NULL, "ACL user name."),
    INTF("redisDB", redis_db, 0, "0", 0, 1000000, "Database number."),
    STR("consumerID", consumer_id, F_NOTEMPTY, NULL,
        "Consumer group for every subscription; each subscriber's own group when absent."),
    BOOLF("enableTLS", enable_tls, "false", "Connect with TLS."),
    DUR("redeliverInterval", redeliver_interval_ms, 0, "60s", 0, MS_DAY,
        "How often to look for pending entries of dead consumers (0: never)."),
    DUR("processingTimeout", processing_timeout_ms, 0, "15s", 0, MS_DAY,
        "Idle time after which a pending entry is claimed (XAUTOCLAIM)."),
    INTF("queueDepth", queue_depth, 0, "100", 1, 100000, "Entries fetched per read."),
    INTF("concurrency", concurrency, 0, "10", 1, 10000, "Entries processed at once."),
    INTF("maxLenApprox", max_len_approx, 0, "0", 0, INT64_MAX, "XADD MAXLEN ~ trimming (0: none)."),
    DUR("streamTTL", stream_ttl_ms, 0, "0", 0, MS_DAY * 36500,
        "Trim entries older than this (XADD MINID ~) (0: none)."),
    DUR("dialTimeout", dial_timeout_ms, 0, "5s", 1, MS_HOUR, "Connect timeout."),
    DUR("readTimeout", read_timeout_ms, 0, "3s", 1, MS_HOUR, "Read timeout."),
    DUR("writeTimeout", write_timeout_ms, 0, "3s", 1, MS_HOUR, "Write timeout."),
    IGN("redisType", F_WARN, "Dapr option; only single-node Redis is supported as a bus."),
    IGN("failover", F_WARN, "Dapr option; Sentinel is not supported as a bus."),
    IGN("sentinelMasterName", F_WARN, "Dapr option; Sentinel is not supported as a bus."),
    IGN("redisMaxRetries", F_WARN, "Dapr option; reconnects back off without limit."),
    IGN("redisMinRetryInterval", F_WARN, "Dapr option; not used."),
    IGN("redisMaxRetryInterval", F_WARN, "Dapr option; not used."),
    IGN("poolSize", F_WARN, "Dapr option; not used."),
    IGN("poolTimeout", F_WARN, "Dapr option; not used."),
    IGN("maxConnAge", F_WARN, "Dapr option; not used."),
    IGN("minIdleConns", F_WARN, "Dapr option; not used."),
    IGN("idleCheckFrequency", F_WARN, "Dapr option; not used."),
    IGN("idleTimeout", F_WARN, "Dapr option; not used."),
};
static TABLE(redis_bus_table, "bus-redis", "EventBus.spec.redis",
             "Redis Streams through hiredis, with Dapr's pubsub.redis metadata names: XADD, "
             "XREADGROUP, XACK, XAUTOCLAIM.",
             T, redis_bus_fields, redis_bus_check, NULL);
#undef T

#define T struct ofe_config_embedded_retention
static const struct cfg_field retention_fields[] = {
    DUR("maxAge", max_age_ms, 0, "168h", 0, MS_DAY * 36500,
        "Delete entries older than this (0: keep)."),
    SIZEF("maxBytes", max_bytes, 0, "0", 0, INT64_MAX,
          "Delete the oldest segments above this size per topic (0: no limit)."),
    INTF("maxEntries", max_entries, 0, "0", 0, INT64_MAX,
         "Keep at most this many entries per topic (0: no limit)."),
};
static TABLE(retention_table, "bus-embedded-retention", "EventBus.spec.embedded.retention",
             "Retention of each topic (stream); whole segments are deleted.", T, retention_fields,
             NULL, NULL);
#undef T

#define T struct ofe_config_embedded_limits
static const struct cfg_field limits_fields[] = {
    SIZEF("maxEventSize", max_event_size, 0, "4MiB", 1024, 536870912,
          "Largest event (XADD entry or HTTP body)."),
    INTF("maxClients", max_clients, 0, "10000", 1, 1000000, "Connections at most."),
    SIZEF("clientInputBuffer", client_input_buffer, 0, "64MiB", 65536, 4294967296LL,
          "Unparsed input per client before it is disconnected."),
    SIZEF("clientOutputBuffer", client_output_buffer, 0, "64MiB", 65536, 4294967296LL,
          "Unsent replies per client before it is disconnected."),
};
static TABLE(limits_table, "bus-embedded-limits", "EventBus.spec.embedded.limits",
             "Limits that keep one client from taking the broker's memory.", T, limits_fields, NULL,
             NULL);
#undef T

#define T struct ofe_config_embedded_tls
static const struct cfg_field etls_fields[] = {
    PATHF("cert", cert, F_REQUIRED | F_NOTEMPTY, "Path of the PEM certificate chain."),
    PATHF("key", key, F_REQUIRED | F_NOTEMPTY, "Path of the PEM private key."),
};
static TABLE(etls_table, "bus-embedded-tls", "EventBus.spec.embedded.tls",
             "TLS on the RESP port (clients then use TLS too).", T, etls_fields, NULL, NULL);
#undef T

static void embedded_check(struct pctx *p, void *obj)
{
    struct ofe_config_embedded_bus *e = obj;
    char why[256];
    if (e->address && check_hostport(e->address, why, sizeof(why)) < 0)
        ERR(p, &e->node, "address", "%s", why);
}

#define T struct ofe_config_embedded_bus
static const struct cfg_field embedded_fields[] = {
    STR("address", address, F_NOTEMPTY, OFE_CONFIG_EMBEDDED_DEFAULT_ADDRESS,
        "host:port of the RESP (Redis protocol) listener; clients connect there."),
    INTF("httpPort", http_port, 0, "8089", 0, 65535,
         "Port of the HTTP ingress, /metrics, /healthz and /readyz on the same host (0: off)."),
    STR("dataDir", data_dir, F_NOTEMPTY, "ofe-eventbus-data",
        "Directory of the log segments and group state (relative to the working directory)."),
    ENUMF("fsync", fsync, 0, "everysec", fsync_enum,
          "always: reply after the write is on disk (group commit); everysec: fsync every "
          "second; no: leave it to the OS."),
    BLOCKF("retention", retention, 0, retention_table, "Retention."),
    BLOCKF("limits", limits, 0, limits_table, "Limits."),
    SECRET("requirepass", requirepass, requirepass_file, 0,
           "Password clients must AUTH with (none when absent)."),
    BLOCKF("tls", tls, 0, etls_table, "TLS on the RESP port."),
    SECRET("httpToken", http_token, http_token_file, 0,
           "Bearer token required by POST /topics/{topic} (none when absent)."),
    DUR("redeliverInterval", redeliver_interval_ms, 0, "60s", 0, MS_DAY,
        "Clients: how often to look for pending entries of dead consumers (0: never)."),
    DUR("processingTimeout", processing_timeout_ms, 0, "15s", 0, MS_DAY,
        "Clients: idle time after which a pending entry of another consumer is claimed."),
};
TABLE(cfg__embedded_table, "bus-embedded", "EventBus.spec.embedded",
      "ofe-eventbus, the embedded broker: a durable event log speaking the Redis streams "
      "protocol. Daemons connect to it with the redis backend. With `eventBus: default` and "
      "no bus document, it is used at 127.0.0.1:6380 with every default below.",
      T, embedded_fields, embedded_check, NULL);
#undef T

static const char *const backend_keys[] = {"natsStreaming", "jetstream", "kafka",
                                           "mqtt",          "redis",     "embedded"};

/* Converts natsStreaming into jetstream (both blocks in spec). */
static void convert_nats_streaming(struct pctx *p, struct ofe_config_bus_spec *s)
{
    struct ofe_config_nats_streaming *n = &s->nats_streaming;
    struct ofe_config_jetstream_bus *j = &s->jetstream;
    struct ofe_buf b = OFE_BUF_INIT;
    j->node.present = true;
    j->node.pos = n->node.pos;
    j->from_nats_streaming = true;
    free(j->nats_url);
    j->nats_url = n->nats_url ? strdup(n->nats_url) : NULL;
    ofe_buf_printf(&b,
                   "natsStreaming (NATS Streaming is end-of-life) runs on NATS JetStream: "
                   "natsURL=%s",
                   n->nats_url ? n->nats_url : "?");
    if (n->durable_subscription_name) {
        free(j->durable_name);
        j->durable_name = strdup(n->durable_subscription_name);
        ofe_buf_printf(&b, ", durableName=%s", j->durable_name);
    }
    if (n->subscription_type == OFE_CONFIG_SUBSCRIPTION_QUEUE) {
        const char *q = n->consumer_id ? n->consumer_id : n->durable_subscription_name;
        if (q) {
            free(j->queue_group_name);
            j->queue_group_name = strdup(q);
            ofe_buf_printf(&b, ", queueGroupName=%s", q);
        }
    }
    j->ack_wait_ms = n->ack_wait_time_ms;
    j->max_ack_pending = n->max_in_flight;
    ofe_buf_printf(&b, ", ackWait=%lldms, maxAckPending=%lld", (long long)j->ack_wait_ms,
                   (long long)j->max_ack_pending);
    int policies = n->deliver_new + n->deliver_all + n->start_with_last_received +
                   (n->start_at_sequence > 0) + (n->start_at_time_delta_ms > 0) +
                   (n->start_at_time != NULL);
    if (policies > 1)
        ERR(p, &n->node, NULL,
            "give at most one of deliverNew, deliverAll, startWithLastReceived, startAtSequence, "
            "startAtTimeDelta and startAtTime");
    if (n->deliver_new) {
        j->deliver_policy = OFE_CONFIG_DELIVER_NEW;
    } else if (n->start_with_last_received) {
        j->deliver_policy = OFE_CONFIG_DELIVER_LAST;
    } else if (n->start_at_sequence > 0) {
        j->deliver_policy = OFE_CONFIG_DELIVER_SEQUENCE;
        j->start_sequence = n->start_at_sequence;
    } else if (n->start_at_time_delta_ms > 0) {
        j->deliver_policy = OFE_CONFIG_DELIVER_TIME;
        j->start_time_delta_ms = n->start_at_time_delta_ms;
    } else if (n->start_at_time) {
        if (n->start_at_time_format && strcmp(n->start_at_time_format, "2006-01-02T15:04:05Z07:00"))
            ERR(p, &n->node, "startAtTimeFormat",
                "only RFC 3339 (2006-01-02T15:04:05Z07:00) is supported; write startAtTime in "
                "that form");
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *rest = strptime(n->start_at_time, "%Y-%m-%dT%H:%M:%S", &tm);
        long off = 0;
        if (rest && *rest == '.')
            while (isdigit((unsigned char)*++rest))
                ;
        if (rest && (*rest == 'Z' || *rest == 'z') && !rest[1]) {
            off = 0;
        } else if (rest && (*rest == '+' || *rest == '-') && isdigit((unsigned char)rest[1]) &&
                   isdigit((unsigned char)rest[2]) && rest[3] == ':' &&
                   isdigit((unsigned char)rest[4]) && isdigit((unsigned char)rest[5]) && !rest[6]) {
            off = ((rest[1] - '0') * 10 + (rest[2] - '0')) * 3600 +
                  ((rest[4] - '0') * 10 + (rest[5] - '0')) * 60;
            if (*rest == '-')
                off = -off;
        } else {
            rest = NULL;
        }
        if (!rest) {
            ERR(p, &n->node, "startAtTime",
                "'%s' is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z)", n->start_at_time);
        } else {
            j->deliver_policy = OFE_CONFIG_DELIVER_TIME;
            j->start_time = (int64_t)timegm(&tm) - off;
        }
    } else {
        j->deliver_policy = OFE_CONFIG_DELIVER_ALL;
    }
    for (size_t i = 0; deliver_enum[i].name; i++)
        if (deliver_enum[i].value == j->deliver_policy) {
            ofe_buf_printf(&b, ", deliverPolicy=%s", deliver_enum[i].name);
            break;
        }
    ofe_buf_printf(&b, "; natsStreamingClusterID '%s' is not used",
                   n->nats_streaming_cluster_id ? n->nats_streaming_cluster_id : "");
    WARN(p, &n->node, NULL, "%s", b.data ? b.data : "");
    ofe_buf_fini(&b);
    jetstream_check(p, j);
}

static void bus_spec_check(struct pctx *p, void *obj)
{
    struct ofe_config_bus_spec *s = obj;
    struct ofe_config_bus *bus =
        (struct ofe_config_bus *)((char *)s - offsetof(struct ofe_config_bus, spec));
    const struct ofe_config_node *blocks[] = {&s->nats_streaming.node, &s->jetstream.node,
                                              &s->kafka.node,          &s->mqtt.node,
                                              &s->redis.node,          &s->embedded.node};
    int n = 0, first = -1;
    for (int i = 0; i < 6; i++) {
        if (!blocks[i]->present)
            continue;
        if (n >= 1)
            cfg__diag(p, OFE_CONFIG_ERROR, &blocks[i]->pos, s->node.path, backend_keys[i],
                      "only one backend block is allowed: %s is already given (line %d)",
                      backend_keys[first], blocks[first]->pos.line);
        if (n == 0)
            first = i;
        n++;
    }
    if (n == 0) {
        ERR(p, &s->node, NULL,
            "no backend: add one of natsStreaming, jetstream, kafka, mqtt, redis or embedded");
        return;
    }
    static const enum ofe_config_bus_kind kinds[] = {
        OFE_CONFIG_BUS_JETSTREAM, OFE_CONFIG_BUS_JETSTREAM, OFE_CONFIG_BUS_KAFKA,
        OFE_CONFIG_BUS_MQTT,      OFE_CONFIG_BUS_REDIS,     OFE_CONFIG_BUS_EMBEDDED};
    bus->backend = kinds[first];
    bus->valid = n == 1;
    if (first == 0 && n == 1)
        convert_nats_streaming(p, s);
}

#define T struct ofe_config_bus_spec
static const struct cfg_field bus_spec_fields[] = {
    STR("topic", topic, 0, NULL, "Documented by OpenFunction, unused there and here."),
    BLOCKF("natsStreaming", nats_streaming, 0, nats_streaming_table,
           "NATS Streaming (converted to JetStream)."),
    BLOCKF("jetstream", jetstream, 0, jetstream_table, "NATS JetStream (ours)."),
    BLOCKF("kafka", kafka, 0, kafka_bus_table, "Kafka (ours)."),
    BLOCKF("mqtt", mqtt, 0, mqtt_bus_table, "MQTT (ours)."),
    BLOCKF("redis", redis, 0, redis_bus_table, "Redis Streams (ours)."),
    BLOCKF("embedded", embedded, 0, cfg__embedded_table, "ofe-eventbus (ours)."),
};
static TABLE(bus_spec_table, "eventbus", "EventBus.spec",
             "The bus that EventSources publish to and Triggers subscribe from: exactly one "
             "backend block. A ClusterEventBus has the same spec and is found from every "
             "namespace.",
             T, bus_spec_fields, bus_spec_check, NULL);
#undef T

/* --- Dapr Component ---------------------------------------------------- */

static const struct {
    const char *type;
    enum ofe_config_bus_kind kind;
    const struct ofe_config_table *table;
    size_t off;
} dapr_types[] = {
    {"pubsub.kafka", OFE_CONFIG_BUS_KAFKA, &kafka_bus_table,
     offsetof(struct ofe_config_bus_spec, kafka)},
    {"pubsub.jetstream", OFE_CONFIG_BUS_JETSTREAM, &jetstream_table,
     offsetof(struct ofe_config_bus_spec, jetstream)},
    {"pubsub.mqtt3", OFE_CONFIG_BUS_MQTT, &mqtt_bus_table,
     offsetof(struct ofe_config_bus_spec, mqtt)},
    {"pubsub.redis", OFE_CONFIG_BUS_REDIS, &redis_bus_table,
     offsetof(struct ofe_config_bus_spec, redis)},
};

static void component_metadata_parse(struct pctx *p, const struct cfg_field *f, yaml_node_t *v,
                                     const char *path, void *obj)
{
    (void)f;
    (void)obj;
    if (v->type == YAML_SCALAR_NODE && !strcmp((const char *)v->data.scalar.value, ""))
        return;
    if (v->type != YAML_SEQUENCE_NODE) {
        struct ofe_config_pos pos = cfg__node_pos(p, v);
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, path, "metadata",
                  "expected a list of {name, value} entries, got %s", cfg__type_name(v));
        return;
    }
    p->component_metadata = v;
}

static const struct cfg_custom component_metadata_custom = {
    .type_name = "a list of `{name: ..., value: ...}`",
    .parse = component_metadata_parse,
};

#define MAX_DAPR_ENTRIES 1000

static void parse_dapr_metadata(struct pctx *p, struct ofe_config_bus_spec *s, size_t ti)
{
    yaml_node_t *seq = p->component_metadata;
    char *mpath = cfg__join(s->node.path, "metadata");
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    struct cfg_map map;
    memset(&map, 0, sizeof(map));
    map.pos = cfg__node_pos(p, seq);
    if (n > MAX_DAPR_ENTRIES) {
        cfg__diag(p, OFE_CONFIG_ERROR, &map.pos, mpath, NULL, "more than %d metadata entries",
                  MAX_DAPR_ENTRIES);
        free(mpath);
        return;
    }
    map.v = calloc(n + 1, sizeof(struct cfg_pair));
    for (size_t i = 0; i < n && map.v && !p->abort; i++) {
        yaml_node_t *item = yaml_document_get_node(p->ydoc, seq->data.sequence.items.start[i]);
        char idx[32];
        snprintf(idx, sizeof(idx), "[%zu]", i);
        char *ipath = cfg__join(mpath, idx);
        struct cfg_map im;
        if (!cfg__visit(p, ipath) || cfg__map_build(p, item, ipath, &im) < 0) {
            if (!p->abort) {
                struct ofe_config_pos pos = cfg__node_pos(p, item);
                cfg__diag(p, OFE_CONFIG_ERROR, &pos, ipath, NULL,
                          "expected a {name, value} entry, got %s", cfg__type_name(item));
            }
            free(ipath);
            continue;
        }
        yaml_node_t *name = NULL, *value = NULL, *secret = NULL;
        for (size_t k = 0; k < im.n; k++) {
            const char *key = im.v[k].keystr;
            if (!strcmp(key, "name"))
                name = im.v[k].value;
            else if (!strcmp(key, "value"))
                value = im.v[k].value;
            else if (!strcmp(key, "secretKeyRef"))
                secret = im.v[k].value;
            else {
                struct ofe_config_pos pos = cfg__node_pos(p, im.v[k].key);
                cfg__diag(p, OFE_CONFIG_ERROR, &pos, ipath, key,
                          "unknown key '%s' in a metadata entry (expected name and value)", key);
            }
        }
        struct ofe_config_pos ipos = im.pos;
        cfg__map_fini(&im);
        if (!name || name->type != YAML_SCALAR_NODE || !name->data.scalar.length) {
            cfg__diag(p, OFE_CONFIG_ERROR, &ipos, ipath, "name", "a metadata entry needs a name");
            free(ipath);
            continue;
        }
        const char *nm = (const char *)name->data.scalar.value;
        if (secret) {
            struct ofe_config_pos pos = cfg__node_pos(p, secret);
            cfg__diag(p, OFE_CONFIG_ERROR, &pos, ipath, "secretKeyRef",
                      "secretKeyRef is not supported (there is no Dapr secret store here): use "
                      "value: ${ENV_VAR}, or an entry named '%sFile' whose value is the path of "
                      "a file holding the secret",
                      nm);
            free(ipath);
            continue;
        }
        if (!value) {
            cfg__diag(p, OFE_CONFIG_ERROR, &ipos, ipath, "value",
                      "metadata entry '%s' has no value", nm);
            free(ipath);
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < map.n && !dup; k++)
            if (!strcmp(map.v[k].keystr, nm)) {
                struct ofe_config_pos pos = cfg__node_pos(p, name);
                cfg__diag(p, OFE_CONFIG_ERROR, &pos, ipath, "name",
                          "metadata '%s' is given twice (first at line %d)", nm,
                          (int)map.v[k].key->start_mark.line + 1);
                dup = true;
            }
        if (!dup) {
            map.v[map.n].key = name;
            map.v[map.n].value = value;
            map.v[map.n].keystr = nm;
            map.n++;
        }
        free(ipath);
    }
    bool old = p->lenient;
    p->lenient = true;
    void *dst = (char *)s + dapr_types[ti].off;
    cfg__parse_block(p, dapr_types[ti].table, dst, &map, mpath, &map.pos);
    p->lenient = old;
    cfg__map_fini(&map);
    free(mpath);
}

static void component_spec_check(struct pctx *p, void *obj)
{
    struct ofe_config_bus_spec *s = obj;
    struct ofe_config_bus *bus =
        (struct ofe_config_bus *)((char *)s - offsetof(struct ofe_config_bus, spec));
    if (!s->type)
        return;
    size_t ti = NELEM(dapr_types);
    for (size_t i = 0; i < NELEM(dapr_types); i++)
        if (!strcmp(s->type, dapr_types[i].type))
            ti = i;
    if (ti == NELEM(dapr_types)) {
        if (!strcmp(s->type, "pubsub.natsstreaming"))
            ERR(p, &s->node, "type",
                "pubsub.natsstreaming is end-of-life and not supported: use pubsub.jetstream "
                "(or an EventBus with natsStreaming, which is converted)");
        else if (!strncmp(s->type, "bindings.", 9) || !strncmp(s->type, "state.", 6))
            ERR(p, &s->node, "type",
                "'%s' is not a pub/sub component; supported: pubsub.kafka, pubsub.jetstream, "
                "pubsub.mqtt3, pubsub.redis",
                s->type);
        else
            ERR(p, &s->node, "type",
                "unsupported component type '%s' (expected pubsub.kafka, pubsub.jetstream, "
                "pubsub.mqtt3 or pubsub.redis)",
                s->type);
        return;
    }
    if (s->version && strcmp(s->version, "v1"))
        WARN(p, &s->node, "version", "version '%s' is read as v1", s->version);
    bus->backend = dapr_types[ti].kind;
    if (!p->component_metadata) {
        /* No metadata: the required fields are still missing. */
        yaml_node_t empty;
        memset(&empty, 0, sizeof(empty));
        struct cfg_map map;
        memset(&map, 0, sizeof(map));
        map.pos = s->node.pos;
        bool old = p->lenient;
        p->lenient = true;
        char *mpath = cfg__join(s->node.path, "metadata");
        cfg__parse_block(p, dapr_types[ti].table, (char *)s + dapr_types[ti].off, &map, mpath,
                         &map.pos);
        free(mpath);
        p->lenient = old;
    } else {
        parse_dapr_metadata(p, s, ti);
    }
    bus->valid = true;
}

static void component_spec_fini(void *obj)
{
    struct ofe_config_bus_spec *s = obj;
    for (size_t i = 0; i < NELEM(dapr_types); i++) {
        void *b = (char *)s + dapr_types[i].off;
        if (((struct ofe_config_node *)b)->table)
            cfg__free_block(dapr_types[i].table, b);
    }
}

#define T struct ofe_config_bus_spec
static const struct cfg_field component_spec_fields[] = {
    STR("type", type, F_REQUIRED | F_NOTEMPTY, NULL,
        "pubsub.kafka, pubsub.jetstream, pubsub.mqtt3 or pubsub.redis."),
    STR("version", version, 0, "v1", "Component version (v1)."),
    CUSTOMF("metadata", type, 0, component_metadata_custom,
            "Options as `{name, value}` entries, with the field names of the matching "
            "EventBus block (EventBus.spec.kafka for pubsub.kafka, ...). Values may be strings "
            "(\"true\", \"10\", \"15s\"). `secretKeyRef` is refused (no secret store): use "
            "`value: ${VAR}` or an entry `<name>File` with a file path."),
    IGN("ignoreErrors", F_WARN, "Dapr option; a bad bus is always an error."),
    IGN("initTimeout", F_WARN, "Dapr option; not used."),
};
static TABLE(component_spec_table, "component", "Component.spec",
             "A Dapr pub/sub Component (apiVersion dapr.io/v1alpha1) used as a bus: named by "
             "`eventBus` when no EventBus or ClusterEventBus of that name exists.",
             T, component_spec_fields, component_spec_check, component_spec_fini);
#undef T

static void bus_doc_check(struct pctx *p, void *obj)
{
    (void)p;
    set_doc_names(&((struct ofe_config_bus *)obj)->doc);
}

#define T struct ofe_config_bus
static const struct cfg_field bus_doc_fields[] = {
    DOC_HEAD(T),
    BLOCKF("spec", spec, F_REQUIRED, bus_spec_table, "The bus."),
};
static TABLE(bus_doc_table, "eventbus-doc", "EventBus", NULL, T, bus_doc_fields, bus_doc_check,
             NULL);
static const struct cfg_field component_doc_fields[] = {
    DOC_HEAD(T),
    BLOCKF("spec", spec, F_REQUIRED, component_spec_table, "The component."),
    IGN("scopes", 0, "Dapr app scopes (not used)."),
    IGN("auth", F_WARN, "Dapr secret store reference; secret stores are not supported."),
};
static TABLE(component_doc_table, "component-doc", "Component", NULL, T, component_doc_fields,
             bus_doc_check, NULL);
#undef T

/* ===================================================================== */
/* Trigger                                                                */

#define T struct ofe_config_input
static const struct cfg_field input_fields[] = {
    STR("eventSource", event_source, F_REQUIRED | F_NOTEMPTY, NULL, "Name of the EventSource."),
    STR("event", event, F_REQUIRED | F_NOTEMPTY, NULL, "Name of the event in the EventSource."),
    STR("namespace", namespace, F_NOTEMPTY, NULL,
        "Namespace of the EventSource; the Trigger's namespace when absent."),
};
static TABLE(input_table, "trigger-input", "Trigger.spec.inputs.<name>",
             "An input subscribes to the bus topic `{namespace}-{eventSource}-{event}` with the "
             "consumer group `{namespace}-{trigger}`. Its name is used in conditions: letters, "
             "digits, `_` and `-` (not first), not `and`, `or` or `not`.",
             T, input_fields, NULL, NULL);
#undef T

/* --- filters (Knative dialects) --------------------------------------- */

#define FILTER_MAX_DEPTH 32

static const char *const dialects[] = {"exact", "prefix", "suffix", "all", "any", "not", "cesql"};

static void filter_free_one(struct ofe_config_filter *f)
{
    for (size_t i = 0; i < f->attrs.n; i++) {
        free(f->attrs.v[i].key);
        free(f->attrs.v[i].value);
    }
    free(f->attrs.v);
    for (size_t i = 0; i < f->nsub; i++)
        filter_free_one(&f->sub[i]);
    free(f->sub);
    free(f->cesql);
    free(f->path);
}

static void check_cesql(struct pctx *p, const char *expr, const struct ofe_config_fpos *fp,
                        const char *path, const char *key)
{
    struct ofe_config_priv *pv = p->cfg->priv;
    if (!pv->cesql_check || !expr)
        return;
    /* CESQL HOOK: the CESQL engine owns the syntax; see ofe_config_set_cesql_check. */
    size_t off = 0;
    char err[512];
    err[0] = '\0';
    if (pv->cesql_check(pv->cesql_ctx, expr, &off, err, sizeof(err)) != 0) {
        struct ofe_config_pos pos = fp->pos;
        if (fp->linear)
            pos.col += fp->shift + (int)off;
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, path, key, "CESQL: %s", err[0] ? err : "invalid");
    }
}

static int parse_filter(struct pctx *p, yaml_node_t *v, const char *path,
                        struct ofe_config_filter *out, int depth);

static int parse_filter_list(struct pctx *p, yaml_node_t *v, const char *path,
                             struct ofe_config_filter **out, size_t *nout, int depth)
{
    struct ofe_config_pos pos = cfg__node_pos(p, v);
    if (v->type != YAML_SEQUENCE_NODE) {
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, path, NULL, "expected a list of filters, got %s",
                  cfg__type_name(v));
        return -1;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    *out = n ? calloc(n, sizeof(**out)) : NULL;
    *nout = 0;
    for (size_t i = 0; i < n && *out && !p->abort; i++) {
        char idx[32];
        snprintf(idx, sizeof(idx), "[%zu]", i);
        char *ipath = cfg__join(path, idx);
        yaml_node_t *item = yaml_document_get_node(p->ydoc, v->data.sequence.items.start[i]);
        if (parse_filter(p, item, ipath, &(*out)[*nout], depth + 1) == 0)
            (*nout)++;
        else
            filter_free_one(&(*out)[*nout]), memset(&(*out)[*nout], 0, sizeof(**out));
        free(ipath);
    }
    return 0;
}

static int parse_filter(struct pctx *p, yaml_node_t *v, const char *path,
                        struct ofe_config_filter *out, int depth)
{
    memset(out, 0, sizeof(*out));
    out->pos = cfg__node_pos(p, v);
    out->path = strdup(path);
    if (depth > FILTER_MAX_DEPTH) {
        cfg__diag(p, OFE_CONFIG_ERROR, &out->pos, path, NULL, "filters nested deeper than %d",
                  FILTER_MAX_DEPTH);
        return -1;
    }
    struct cfg_map m;
    if (!cfg__visit(p, path) || cfg__map_build(p, v, path, &m) < 0) {
        if (!p->abort)
            cfg__diag(p, OFE_CONFIG_ERROR, &out->pos, path, NULL,
                      "expected a filter (a mapping with one of exact, prefix, suffix, all, any, "
                      "not, cesql), got %s",
                      cfg__type_name(v));
        return -1;
    }
    int rc = 0;
    if (m.n != 1) {
        cfg__diag(p, OFE_CONFIG_ERROR, &out->pos, path, NULL,
                  "a filter needs exactly one dialect (exact, prefix, suffix, all, any, not, "
                  "cesql), got %zu keys",
                  m.n);
        cfg__map_fini(&m);
        return -1;
    }
    const char *key = m.v[0].keystr;
    yaml_node_t *val = m.v[0].value;
    size_t d;
    for (d = 0; d < NELEM(dialects); d++)
        if (!strcmp(key, dialects[d]))
            break;
    if (d == NELEM(dialects)) {
        struct ofe_config_pos kp = cfg__node_pos(p, m.v[0].key);
        const char *best = cfg__closest(key, dialects, NELEM(dialects));
        if (best)
            cfg__diag(p, OFE_CONFIG_ERROR, &kp, path, key,
                      "unknown filter dialect '%s'; did you mean '%s'?", key, best);
        else
            cfg__diag(p, OFE_CONFIG_ERROR, &kp, path, key,
                      "unknown filter dialect '%s' (expected exact, prefix, suffix, all, any, "
                      "not or cesql)",
                      key);
        cfg__map_fini(&m);
        return -1;
    }
    out->kind = (enum ofe_config_filter_kind)d;
    char *dpath = cfg__join(path, key);
    switch (out->kind) {
    case OFE_CONFIG_FILTER_EXACT:
    case OFE_CONFIG_FILTER_PREFIX:
    case OFE_CONFIG_FILTER_SUFFIX: {
        struct cfg_map am;
        if (cfg__map_build(p, val, dpath, &am) < 0 || am.n == 0) {
            struct ofe_config_pos vp = cfg__node_pos(p, val);
            cfg__diag(p, OFE_CONFIG_ERROR, &vp, dpath, NULL,
                      "expected a mapping of attribute names to values, e.g. {type: "
                      "com.example.created}");
            cfg__map_fini(&am);
            rc = -1;
            break;
        }
        out->attrs.v = calloc(am.n, sizeof(struct ofe_config_kv));
        for (size_t i = 0; i < am.n && out->attrs.v; i++) {
            const char *attr = am.v[i].keystr;
            struct ofe_config_pos ap = cfg__node_pos(p, am.v[i].key);
            bool ok = *attr != '\0' && strlen(attr) <= 64;
            for (const char *c = attr; *c && ok; c++)
                ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9');
            if (!ok) {
                cfg__diag(p, OFE_CONFIG_ERROR, &ap, dpath, attr,
                          "'%s' is not a CloudEvents attribute name (lower-case a-z and 0-9)",
                          attr);
                rc = -1;
                continue;
            }
            char *s = NULL;
            int r = cfg__scalar(p, am.v[i].value, dpath, attr, &s, NULL);
            if (r < 0) {
                rc = -1;
                continue;
            }
            if (!s)
                s = strdup("");
            if (out->kind != OFE_CONFIG_FILTER_EXACT && s && !*s) {
                struct ofe_config_pos vp = cfg__node_pos(p, am.v[i].value);
                cfg__diag(p, OFE_CONFIG_ERROR, &vp, dpath, attr, "%s value must not be empty", key);
                free(s);
                rc = -1;
                continue;
            }
            out->attrs.v[out->attrs.n].key = strdup(attr);
            out->attrs.v[out->attrs.n].value = s;
            out->attrs.v[out->attrs.n].pos = cfg__node_pos(p, am.v[i].value);
            out->attrs.n++;
        }
        cfg__map_fini(&am);
        break;
    }
    case OFE_CONFIG_FILTER_ALL:
    case OFE_CONFIG_FILTER_ANY:
        if (parse_filter_list(p, val, dpath, &out->sub, &out->nsub, depth) < 0) {
            rc = -1;
        } else if (out->nsub == 0 &&
                   (val->type != YAML_SEQUENCE_NODE ||
                    val->data.sequence.items.top == val->data.sequence.items.start)) {
            cfg__diag(p, OFE_CONFIG_ERROR, &out->pos, dpath, NULL, "%s needs at least one filter",
                      key);
            rc = -1;
        }
        break;
    case OFE_CONFIG_FILTER_NOT:
        out->sub = calloc(1, sizeof(*out->sub));
        if (!out->sub || parse_filter(p, val, dpath, out->sub, depth + 1) < 0) {
            if (out->sub)
                filter_free_one(out->sub);
            free(out->sub);
            out->sub = NULL;
            rc = -1;
        } else {
            out->nsub = 1;
        }
        break;
    case OFE_CONFIG_FILTER_CESQL: {
        char *s = NULL;
        bool lenient = false;
        int r = cfg__scalar(p, val, path, key, &s, &lenient);
        if (r <= 0 || !*s) {
            if (r >= 0) {
                struct ofe_config_pos vp = cfg__node_pos(p, val);
                cfg__diag(p, OFE_CONFIG_ERROR, &vp, path, key, "empty CESQL expression");
            }
            free(s);
            rc = -1;
            break;
        }
        struct ofe_config_fpos fp = cfg__fpos(p, val, lenient);
        out->cesql = s;
        out->cesql_pos = fp.pos;
        out->cesql_pos.col += fp.shift;
        check_cesql(p, s, &fp, path, key);
        break;
    }
    }
    free(dpath);
    cfg__map_fini(&m);
    return rc;
}

static void filters_parse(struct pctx *p, const struct cfg_field *f, yaml_node_t *v,
                          const char *path, void *obj)
{
    struct ofe_config_filterlist *fl = (struct ofe_config_filterlist *)((char *)obj + f->off);
    if (v->type == YAML_SCALAR_NODE && !v->data.scalar.length)
        return;
    char *fpath = cfg__join(path, f->key);
    parse_filter_list(p, v, fpath, &fl->v, &fl->n, 0);
    free(fpath);
}

static void filters_free(void *field)
{
    struct ofe_config_filterlist *fl = field;
    for (size_t i = 0; i < fl->n; i++)
        filter_free_one(&fl->v[i]);
    free(fl->v);
    fl->v = NULL;
    fl->n = 0;
}

static const struct cfg_custom filters_custom = {
    .type_name = "a list of filters (each one of exact, prefix, suffix, all, any, not, cesql)",
    .parse = filters_parse,
    .free = filters_free,
};

/* --- subscribers -------------------------------------------------------- */

static void subscriber_check(struct pctx *p, void *obj)
{
    struct ofe_config_subscriber *s = obj;
    if (!s->sink.node.present && !s->topic)
        ERR(p, &s->node, NULL, "a subscriber needs a sink (HTTP) or a topic (bus), or both");
    if (!s->sink.node.present) {
        if (s->dead_letter_sink.node.present)
            WARN(p, &s->node, "deadLetterSink", "ignored without a sink");
        if (s->dead_letter_topic)
            WARN(p, &s->node, "deadLetterTopic", "ignored without a sink");
        if (s->reply_topic)
            WARN(p, &s->node, "replyTopic", "ignored without a sink");
    }
    const struct ofe_config_fpos *fp = fpos_of(&s->node, "filter");
    if (fp && s->filter) {
        s->filter_pos = fp->pos;
        s->filter_pos.col += fp->shift;
        check_cesql(p, s->filter, fp, s->node.path, "filter");
    }
}

static void subscriber_fini(void *obj)
{
    struct ofe_config_subscriber *s = obj;
    ofe_condition_destroy(s->cond);
    s->cond = NULL;
}

#define T struct ofe_config_subscriber
static const struct cfg_field subscriber_fields[] = {
    STR("name", name, F_NOTEMPTY, NULL,
        "Name in metrics and logs (ours); its index (\"0\", \"1\", ...) when absent."),
    STR("condition", condition, F_REQUIRED | F_NOTEMPTY, NULL,
        "Boolean expression over input names: &&, ||, !, parentheses, and/or/not."),
    BLOCKF("sink", sink, 0, dest_table, "HTTP sink (a function)."),
    BLOCKF("deadLetterSink", dead_letter_sink, 0, dest_table,
           "HTTP sink for events that failed every attempt."),
    STR("topic", topic, F_NOTEMPTY, NULL, "Bus topic the event is re-published to."),
    STR("deadLetterTopic", dead_letter_topic, F_NOTEMPTY, NULL,
        "Bus topic for events that failed every attempt."),
    STR("replyTopic", reply_topic, F_NOTEMPTY, NULL,
        "Bus topic for CloudEvents the sink replies with (ours)."),
    STR("filter", filter, F_NOTEMPTY, NULL,
        "CloudEvents SQL expression; only matching events reach this subscriber (ours)."),
    CUSTOMF("filters", filters, 0, filters_custom,
            "Knative filters, all of which must match (ours)."),
    BLOCKF("delivery", delivery, 0, delivery_table, "Retries and timeouts of the sink (ours)."),
    ENUMF("ordering", ordering, 0, "unordered", ordering_enum,
          "ordered: one event in flight per partition key, in order (ours)."),
    INTF("concurrency", concurrency, 0, "16", 1, 10000, "Deliveries in flight at most (ours)."),
    ENUMF("mode", mode, 0, "binary", mode_enum, "CloudEvents HTTP mode of the sink (ours)."),
};
static TABLE(subscriber_table, "trigger-subscriber", "Trigger.spec.subscribers[]",
             "A subscriber gets each arriving event whose filters match while its condition "
             "holds. Two subscribers with the same condition are two subscribers.",
             T, subscriber_fields, subscriber_check, subscriber_fini);
#undef T

static void trigger_spec_check(struct pctx *p, void *obj)
{
    struct ofe_config_trigger_spec *s = obj;
    check_log_level(p, &s->node, s->log_level);
    if (!s->inputs.n && fpos_of(&s->node, "inputs"))
        ERR(p, &s->node, "inputs", "a Trigger needs at least one input");
    if (!s->subscribers.n && fpos_of(&s->node, "subscribers"))
        ERR(p, &s->node, "subscribers", "a Trigger needs at least one subscriber");
    const char **names = calloc(s->inputs.n + 1, sizeof(char *));
    for (size_t i = 0; i < s->inputs.n && names; i++)
        names[i] = s->inputs.v[i].node.name;
    for (size_t i = 0; i < s->subscribers.n; i++) {
        struct ofe_config_subscriber *sub = &s->subscribers.v[i];
        if (!sub->name) {
            char idx[32];
            snprintf(idx, sizeof(idx), "%zu", i);
            sub->name = strdup(idx);
        }
        for (size_t j = 0; j < i; j++)
            if (sub->name && s->subscribers.v[j].name &&
                !strcmp(sub->name, s->subscribers.v[j].name))
                ERR(p, &sub->node, "name", "subscriber name '%s' is already used by %s", sub->name,
                    s->subscribers.v[j].node.path);
        if (!sub->condition || !names)
            continue;
        char err[512];
        size_t off = 0;
        int rc = ofe_condition_compile(sub->condition, names, s->inputs.n, &sub->cond, &off, err,
                                       sizeof(err));
        if (rc != 0) {
            const struct ofe_config_fpos *fp = fpos_of(&sub->node, "condition");
            struct ofe_config_pos pos = fp ? fp->pos : sub->node.pos;
            if (fp && fp->linear)
                pos.col += fp->shift + (int)off;
            cfg__diag(p, OFE_CONFIG_ERROR, &pos, sub->node.path, "condition", "%s", err);
        }
    }
    free(names);
}

#define T struct ofe_config_trigger_spec
static const struct cfg_field trigger_spec_fields[] = {
    STR("eventBus", event_bus, F_REQUIRED | F_NOTEMPTY, NULL,
        "Bus to subscribe from (resolved as for EventSource)."),
    MAPF("inputs", inputs, F_REQUIRED | F_NAMES, input_table, "Inputs, by name."),
    LISTF("subscribers", subscribers, F_REQUIRED, subscriber_table, "Subscribers."),
    STR("logLevel", log_level, 0, NULL,
        "Log level: error, warn, info, debug, or OpenFunction's \"1\", \"2\", ... (larger "
        "is more verbose)."),
    DUR("conditionWindow", condition_window_ms, 0, "60s", 1, 30 * MS_DAY,
        "How long an input stays true after its last event (ours; fixed 60s upstream)."),
};
static TABLE(trigger_spec_table, "trigger", "Trigger.spec",
             "A Trigger subscribes to its inputs' topics as one consumer group, and delivers "
             "each arriving event to every subscriber whose filters match and whose condition "
             "holds.",
             T, trigger_spec_fields, trigger_spec_check, NULL);
#undef T

static void trigger_doc_check(struct pctx *p, void *obj)
{
    struct ofe_config_trigger *t = obj;
    (void)p;
    set_doc_names(&t->doc);
    if (!t->doc.name)
        return;
    t->consumer_group = xasprintf("%s-%s", t->doc.namespace, t->doc.name);
    t->input_names = calloc(t->spec.inputs.n + 1, sizeof(char *));
    for (size_t i = 0; i < t->spec.inputs.n; i++) {
        struct ofe_config_input *in = &t->spec.inputs.v[i];
        if (t->input_names)
            t->input_names[i] = in->node.name;
        if (!in->namespace)
            in->namespace = strdup(t->doc.namespace);
        if (in->event_source && in->event && in->namespace)
            in->bus_topic = xasprintf("%s-%s-%s", in->namespace, in->event_source, in->event);
    }
}

static void trigger_doc_fini(void *obj)
{
    struct ofe_config_trigger *t = obj;
    free(t->consumer_group);
    t->consumer_group = NULL;
    free(t->input_names);
    t->input_names = NULL;
    for (size_t i = 0; i < t->spec.inputs.n; i++) {
        free(t->spec.inputs.v[i].bus_topic);
        t->spec.inputs.v[i].bus_topic = NULL;
    }
}

#define T struct ofe_config_trigger
static const struct cfg_field trigger_doc_fields[] = {
    DOC_HEAD(T),
    BLOCKF("spec", spec, F_REQUIRED, trigger_spec_table, "The Trigger."),
};
static TABLE(trigger_doc_table, "trigger-doc", "Trigger", NULL, T, trigger_doc_fields,
             trigger_doc_check, trigger_doc_fini);
#undef T

/* ===================================================================== */
/* Registry                                                               */

const struct cfg_kind cfg__kinds[] = {
    {OFE_CONFIG_API_EVENTS, "EventSource", OFE_CONFIG_EVENTSOURCE, &es_doc_table},
    {OFE_CONFIG_API_EVENTS, "EventBus", OFE_CONFIG_EVENTBUS, &bus_doc_table},
    {OFE_CONFIG_API_EVENTS, "ClusterEventBus", OFE_CONFIG_CLUSTEREVENTBUS, &bus_doc_table},
    {OFE_CONFIG_API_EVENTS, "Trigger", OFE_CONFIG_TRIGGER, &trigger_doc_table},
    {OFE_CONFIG_API_DAPR, "Component", OFE_CONFIG_COMPONENT, &component_doc_table},
};
const size_t cfg__nkinds = NELEM(cfg__kinds);

const struct ofe_config_table *const cfg__doc_tables[] = {
    &metadata_table,       &es_spec_table,      &dest_table,        &ref_table,
    &delivery_table,       &kafka_source_table, &tls_table,         &cron_table,
    &redis_source_table,   &mqtt_source_table,  &nats_source_table, &nats_js_table,
    &webhook_table,        &webhook_auth_table, &gh_table,          &gitlab_table,
    &bearer_table,         &hmac_table,         &bus_spec_table,    &nats_streaming_table,
    &jetstream_table,      &kafka_bus_table,    &mqtt_bus_table,    &redis_bus_table,
    &cfg__embedded_table,  &retention_table,    &limits_table,      &etls_table,
    &component_spec_table, &trigger_spec_table, &input_table,       &subscriber_table,
};
const size_t cfg__ndoc_tables = NELEM(cfg__doc_tables);

/* ===================================================================== */
/* Cross-document checks                                                  */

static const char *kind_label(enum ofe_config_kind k)
{
    for (size_t i = 0; i < NELEM(cfg__kinds); i++)
        if (cfg__kinds[i].id == k)
            return cfg__kinds[i].kind;
    return "?";
}

static void check_webhooks(struct pctx *p, struct ofe_config_eventsource *es)
{
    struct ofe_config *cfg = p->cfg;
    for (size_t i = 0; i < es->spec.webhook.n; i++) {
        struct ofe_config_webhook_source *w = &es->spec.webhook.v[i];
        if (!w->port || !w->endpoint)
            continue;
        /* Earlier webhooks: of loaded EventSources, then of this one. The
         * first conflict is reported. */
        bool reported = false;
        for (size_t d = 0; d <= cfg->neventsources && !reported; d++) {
            struct ofe_config_eventsource *o = d < cfg->neventsources ? cfg->eventsources[d] : es;
            size_t lim = o == es ? i : o->spec.webhook.n;
            for (size_t j = 0; j < lim && !reported; j++) {
                struct ofe_config_webhook_source *x = &o->spec.webhook.v[j];
                if (x->port != w->port || !x->endpoint)
                    continue;
                struct ofe_config_pos pos = at(&w->node, "port");
                if (x->address && w->address && strcmp(x->address, w->address)) {
                    cfg__diag(p, OFE_CONFIG_ERROR, &pos, w->node.path, "port",
                              "port %lld is already used with address %s by %s/%s %s (%s:%d)",
                              (long long)w->port, x->address, o->doc.namespace, o->doc.name,
                              x->node.path, x->node.pos.file, x->node.pos.line);
                    reported = true;
                } else if (!strcmp(x->endpoint, w->endpoint) && x->method == w->method) {
                    pos = at(&w->node, "endpoint");
                    cfg__diag(p, OFE_CONFIG_ERROR, &pos, w->node.path, "endpoint",
                              "%s %s on port %lld is already served by %s/%s %s (%s:%d)",
                              ofe_config_http_method_names[w->method], w->endpoint,
                              (long long)w->port, o->doc.namespace, o->doc.name, x->node.path,
                              x->node.pos.file, x->node.pos.line);
                    reported = true;
                }
            }
        }
    }
}

void cfg__check_new_doc(struct pctx *p, struct ofe_config_doc *doc)
{
    struct ofe_config *cfg = p->cfg;
    if (!doc->name)
        return;
    struct ofe_config_doc **list = NULL;
    size_t n = 0;
    switch (doc->kind) {
    case OFE_CONFIG_EVENTSOURCE:
        list = (struct ofe_config_doc **)cfg->eventsources;
        n = cfg->neventsources;
        break;
    case OFE_CONFIG_TRIGGER:
        list = (struct ofe_config_doc **)cfg->triggers;
        n = cfg->ntriggers;
        break;
    default:
        list = (struct ofe_config_doc **)cfg->buses;
        n = cfg->nbuses;
        break;
    }
    for (size_t i = 0; i < n; i++) {
        struct ofe_config_doc *o = list[i];
        if (o->kind != doc->kind || !o->name || strcmp(o->name, doc->name))
            continue;
        if (doc->kind != OFE_CONFIG_CLUSTEREVENTBUS && strcmp(o->namespace, doc->namespace))
            continue;
        struct ofe_config_pos pos = at(&doc->metadata.node, "name");
        cfg__diag(p, OFE_CONFIG_ERROR, &pos, "metadata", "name",
                  "%s %s/%s is already defined at %s:%d:%d", kind_label(doc->kind), doc->namespace,
                  doc->name, o->node.pos.file, o->node.pos.line, o->node.pos.col);
        break;
    }
    if (doc->kind == OFE_CONFIG_EVENTSOURCE)
        check_webhooks(p, (struct ofe_config_eventsource *)doc);
}
