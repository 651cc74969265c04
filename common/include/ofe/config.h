/* Configuration: OpenFunction Events YAML (EventSource, EventBus,
 * ClusterEventBus, Trigger) and Dapr pub/sub Components, loaded into typed
 * structs.
 *
 * Use:
 *     struct ofe_config *cfg = ofe_config_new();
 *     ofe_config_load_file(cfg, "events.yaml");        (any number of files)
 *     if (ofe_config_nerrors(cfg)) { print ofe_config_diags(); exit(2); }
 *     for (size_t i = 0; i < cfg->neventsources; i++) ... cfg->eventsources[i]
 *     ofe_config_resolve_bus(cfg, es->spec.event_bus, es->doc.namespace, &bus, ...)
 *     ofe_config_destroy(cfg);
 *
 * Everything reachable from a struct ofe_config is owned by it and lives
 * until ofe_config_destroy(); nothing is shared between two configs. The
 * reference of every field (YAML name, type, default, bounds, meaning) is
 * docs/config.md, generated from the same tables that parse the YAML
 * (ofe_config_reference(); `ofe validate --dump-reference`).
 *
 * Conventions of the structs below:
 *   - YAML `camelCase` field -> C `snake_case` member.
 *   - Strings are NUL-terminated, NULL when not set and without default.
 *   - Durations are int64_t milliseconds in members named *_ms.
 *   - Sizes are int64_t bytes.
 *   - Secrets (`fieldFile` variant accepted) keep the value in `field` and
 *     the path it was read from in `field_file` (NULL when given inline).
 *   - Every block starts with a struct ofe_config_node: where it is in
 *     which file, its field path, and (via ofe_config_field_pos) where each
 *     of its fields was written. Use them in runtime messages.
 *
 * Threads: loading mutates the config and must not run concurrently with
 * anything else on it. A loaded config is read-only: any number of threads
 * may read it (and call resolve/find/field_pos) at once. */
#ifndef OFE_CONFIG_H
#define OFE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/buf.h"
#include "ofe/condition.h"

#define OFE_CONFIG_API_EVENTS "events.openfunction.io/v1alpha1"
#define OFE_CONFIG_API_DAPR   "dapr.io/v1alpha1"

/* Where the embedded bus (ofe-eventbus) listens when nothing says
 * otherwise: RESP on 127.0.0.1:6380 (Redis's port + 1, so a local Redis
 * can run next to it) and its HTTP ingress/metrics on port 8089. */
#define OFE_CONFIG_EMBEDDED_DEFAULT_ADDRESS   "127.0.0.1:6380"
#define OFE_CONFIG_EMBEDDED_DEFAULT_HTTP_PORT 8089
#define OFE_CONFIG_DEFAULT_NAMESPACE          "default"
#define OFE_CONFIG_DEFAULT_BUS                "default"

/* Bounds of what the loader accepts (errors name them). */
#define OFE_CONFIG_MAX_FILE_SIZE   (16 * 1024 * 1024) /* bytes of YAML per file */
#define OFE_CONFIG_MAX_SECRET_SIZE (1024 * 1024)      /* bytes of a *File secret */
#define OFE_CONFIG_MAX_NODES       200000             /* YAML nodes visited per document */

/* ---------------------------------------------------------------------
 * Positions and diagnostics
 * --------------------------------------------------------------------- */

/* A place in a YAML file. file is owned by the config (one copy per loaded
 * file); line and col are 1-based; line 0 means "not written in any file"
 * (a default value, or the implicit default bus). */
struct ofe_config_pos {
    const char *file;
    int line;
    int col;
};

struct ofe_config_table; /* internal: the declarative table of a block */
struct ofe_config_fpos;  /* internal: position of one field */

/* Header of every block parsed from YAML. */
struct ofe_config_node {
    struct ofe_config_pos pos; /* where the block starts; line 0 when absent */
    char *path;                /* field path ("spec.kafka.sample-one"); "" for a document */
    char *name;                /* key of a map item (event, input name), else NULL */
    size_t index;              /* position in its list or map, else 0 */
    bool present;              /* false when not written in YAML (defaults only) */
    const struct ofe_config_table *table; /* internal */
    struct ofe_config_fpos *fpos;         /* internal: one per table field */
};

enum ofe_config_severity { OFE_CONFIG_ERROR = 0, OFE_CONFIG_WARNING = 1 };

/* One error or warning. */
struct ofe_config_diag {
    enum ofe_config_severity severity;
    struct ofe_config_pos pos; /* line 0 when no place applies (e.g. unreadable file) */
    char *path;                /* field path, "" when none applies */
    char *message;             /* what is wrong and what was expected */
};

/* ---------------------------------------------------------------------
 * Shared value types
 * --------------------------------------------------------------------- */

struct ofe_config_strlist {
    char **v;
    size_t n;
};

struct ofe_config_kv {
    char *key;
    char *value;
    struct ofe_config_pos pos; /* of the value */
};

struct ofe_config_kvlist {
    struct ofe_config_kv *v;
    size_t n;
};

struct ofe_config_durlist {
    int64_t *v; /* milliseconds */
    size_t n;
};

/* A typed array of blocks (map items or list items). */
#define OFE_CONFIG_ARRAY(type)                                                                     \
    struct {                                                                                       \
        type *v;                                                                                   \
        size_t n;                                                                                  \
    }

enum ofe_config_mode { OFE_CONFIG_MODE_BINARY = 0, OFE_CONFIG_MODE_STRUCTURED };
enum ofe_config_backoff { OFE_CONFIG_BACKOFF_EXPONENTIAL = 0, OFE_CONFIG_BACKOFF_LINEAR };
enum ofe_config_ordering { OFE_CONFIG_ORDERING_UNORDERED = 0, OFE_CONFIG_ORDERING_ORDERED };
enum ofe_config_offset { OFE_CONFIG_OFFSET_NEWEST = 0, OFE_CONFIG_OFFSET_OLDEST };
enum ofe_config_mqtt_version { OFE_CONFIG_MQTT_V5 = 0, OFE_CONFIG_MQTT_V311 };
enum ofe_config_sasl {
    OFE_CONFIG_SASL_PLAIN = 0,
    OFE_CONFIG_SASL_SCRAM_SHA_256,
    OFE_CONFIG_SASL_SCRAM_SHA_512
};
enum ofe_config_kafka_auth {
    OFE_CONFIG_KAFKA_AUTH_NONE = 0,
    OFE_CONFIG_KAFKA_AUTH_PASSWORD,
    OFE_CONFIG_KAFKA_AUTH_MTLS,
    OFE_CONFIG_KAFKA_AUTH_OIDC
};
enum ofe_config_compression {
    OFE_CONFIG_COMPRESSION_NONE = 0,
    OFE_CONFIG_COMPRESSION_GZIP,
    OFE_CONFIG_COMPRESSION_SNAPPY,
    OFE_CONFIG_COMPRESSION_LZ4,
    OFE_CONFIG_COMPRESSION_ZSTD
};
enum ofe_config_deliver_policy {
    OFE_CONFIG_DELIVER_ALL = 0,
    OFE_CONFIG_DELIVER_LAST,
    OFE_CONFIG_DELIVER_NEW,
    OFE_CONFIG_DELIVER_SEQUENCE,
    OFE_CONFIG_DELIVER_TIME
};
enum ofe_config_redis_type { OFE_CONFIG_REDIS_NODE = 0, OFE_CONFIG_REDIS_CLUSTER };
enum ofe_config_fsync {
    OFE_CONFIG_FSYNC_ALWAYS = 0,
    OFE_CONFIG_FSYNC_EVERYSEC,
    OFE_CONFIG_FSYNC_NO
};
enum ofe_config_http_method {
    OFE_CONFIG_HTTP_POST = 0,
    OFE_CONFIG_HTTP_PUT,
    OFE_CONFIG_HTTP_PATCH,
    OFE_CONFIG_HTTP_GET,
    OFE_CONFIG_HTTP_DELETE
};
enum ofe_config_hmac_alg {
    OFE_CONFIG_HMAC_SHA256 = 0,
    OFE_CONFIG_HMAC_SHA1,
    OFE_CONFIG_HMAC_SHA512
};
enum ofe_config_subscription_type {
    OFE_CONFIG_SUBSCRIPTION_TOPIC = 0,
    OFE_CONFIG_SUBSCRIPTION_QUEUE
};

/* Names of enum values as written in YAML, indexed by the enum above. */
extern const char *const ofe_config_http_method_names[];

/* A Kubernetes-style object reference (sink.ref). */
struct ofe_config_ref {
    struct ofe_config_node node;
    char *kind;
    char *api_version;
    char *name;
    char *namespace; /* NULL: the namespace of the referring document */
};

/* sink / deadLetterSink: uri wins over ref when both are given (a warning
 * says so). node.present is false when the destination was not written. */
struct ofe_config_destination {
    struct ofe_config_node node;
    char *uri;
    struct ofe_config_ref ref;
};

/* Knative-style delivery options of a sink. */
struct ofe_config_delivery {
    struct ofe_config_node node;
    int64_t retry;      /* attempts after the first */
    int backoff_policy; /* enum ofe_config_backoff */
    int64_t backoff_delay_ms;
    int64_t backoff_cap_ms; /* upper bound of one wait */
    int64_t timeout_ms;     /* per attempt */
};

/* Client TLS options (kafka and nats sources). TLS is on when the block is
 * present (node.present). PEM contents; *_file is the path they came from. */
struct ofe_config_tls {
    struct ofe_config_node node;
    char *ca_cert, *ca_cert_file;
    char *client_cert, *client_cert_file;
    char *client_key, *client_key_file;
    bool insecure_skip_verify;
    char *server_name;
};

/* ---------------------------------------------------------------------
 * Documents
 * --------------------------------------------------------------------- */

enum ofe_config_kind {
    OFE_CONFIG_EVENTSOURCE = 0,
    OFE_CONFIG_EVENTBUS,
    OFE_CONFIG_CLUSTEREVENTBUS,
    OFE_CONFIG_TRIGGER,
    OFE_CONFIG_COMPONENT,
};

struct ofe_config_metadata {
    struct ofe_config_node node;
    char *name;      /* required */
    char *namespace; /* "default" when not given */
    struct ofe_config_kvlist labels;
    struct ofe_config_kvlist annotations;
};

/* Common head of every document. */
struct ofe_config_doc {
    struct ofe_config_node node; /* the document; node.pos = its first line */
    enum ofe_config_kind kind;
    char *api_version;
    char *kind_name; /* "EventSource", ... as written */
    struct ofe_config_metadata metadata;
    const char *name;      /* = metadata.name (not owned separately) */
    const char *namespace; /* = metadata.namespace */
    size_t doc_index;      /* 0-based position of the document in its file */
    size_t nerrors;        /* errors reported inside this document */
    /* Hash of every value written in the document (after ${VAR} expansion,
     * with *File contents), independent of key order, positions and
     * comments. Equal documents have equal fingerprints; a daemon compares
     * them on SIGHUP to restart only what changed (see
     * ofe_config_doc_same). */
    uint64_t fingerprint;
};

/* --- EventSource ------------------------------------------------------ */

struct ofe_config_kafka_source {
    struct ofe_config_node node; /* node.name = event name */
    char *brokers;               /* "host:port,host:port" */
    bool auth_required;
    char *topic;
    char *sasl_username;
    char *sasl_password, *sasl_password_file;
    int sasl_mechanism; /* enum ofe_config_sasl */
    int64_t max_message_bytes;
    char *consumer_group; /* default "{namespace}-{eventsource}-{event}" (filled in) */
    int initial_offset;   /* enum ofe_config_offset */
    struct ofe_config_tls tls;
    struct ofe_config_kvlist rdkafka; /* `rdkafka.x.y: v` -> {"x.y", "v"} */
};

struct ofe_config_cron_source {
    struct ofe_config_node node;
    char *schedule; /* as written (CRON_TZ= prefix kept for the cron engine) */
    char *timezone; /* NULL: local time (or the CRON_TZ prefix) */
    bool catchup;
    char *data;         /* optional payload of each tick */
    char *content_type; /* datacontenttype of data */
};

struct ofe_config_redis_source {
    struct ofe_config_node node;
    char *redis_host; /* host:port */
    char *redis_password, *redis_password_file;
    char *redis_username;
    bool enable_tls;
    bool failover;
    char *sentinel_master_name;
    int64_t redeliver_interval_ms; /* how often to look for stuck entries */
    int64_t processing_timeout_ms; /* idle time after which an entry is claimed */
    int redis_type;                /* enum ofe_config_redis_type */
    int64_t redis_db;
    int64_t redis_max_retries;
    int64_t redis_min_retry_interval_ms, redis_max_retry_interval_ms;
    int64_t dial_timeout_ms, read_timeout_ms, write_timeout_ms;
    int64_t pool_size;
    int64_t pool_timeout_ms, max_conn_age_ms;
    int64_t min_idle_conns;
    int64_t idle_check_frequency_ms, idle_timeout_ms;
    char *stream; /* exactly one of stream / channel */
    char *channel;
    char *consumer_group; /* default "{namespace}-{eventsource}-{event}" (filled in) */
    char *consumer_name;  /* NULL: chosen at run time (host name + pid) */
    int initial_offset;   /* enum ofe_config_offset: where a new group starts */
};

struct ofe_config_mqtt_source {
    struct ofe_config_node node;
    char *url; /* tcp://, mqtt://, ssl://, mqtts://, tls:// */
    char *topic;
    char *consumer_id; /* client id; default "{namespace}-{eventsource}-{event}" */
    int64_t qos;
    bool retain;
    bool clean_session;
    char *ca_cert, *ca_cert_file;
    char *client_cert, *client_cert_file;
    char *client_key, *client_key_file;
    char *username;
    char *password, *password_file;
    int protocol_version; /* enum ofe_config_mqtt_version */
    int64_t keep_alive_ms;
};

struct ofe_config_nats_jetstream {
    struct ofe_config_node node; /* present: consume through JetStream */
    char *stream;                /* NULL: looked up by subject */
    char *durable;               /* default "{namespace}-{eventsource}-{event}", sanitized */
    int64_t ack_wait_ms;
    int64_t max_deliver;
    int64_t max_ack_pending;
    int deliver_policy; /* enum ofe_config_deliver_policy (all, last, new) */
};

struct ofe_config_nats_source {
    struct ofe_config_node node;
    char *url;
    char *subject;
    char *queue_group;
    char *credentials; /* path of a .creds file */
    char *token, *token_file;
    char *user;
    char *password, *password_file;
    char *nkey_seed, *nkey_seed_file;
    struct ofe_config_tls tls;
    struct ofe_config_nats_jetstream jetstream;
};

struct ofe_config_webhook_github {
    struct ofe_config_node node;
    char *secret, *secret_file;
};
struct ofe_config_webhook_token {
    struct ofe_config_node node;
    char *token, *token_file;
};
struct ofe_config_webhook_hmac {
    struct ofe_config_node node;
    char *header; /* request header carrying the signature */
    char *secret, *secret_file;
    int algorithm; /* enum ofe_config_hmac_alg */
    char *prefix;  /* text before the hex digest, e.g. "sha256=" */
};
/* At most one of the four is present. */
struct ofe_config_webhook_auth {
    struct ofe_config_node node;
    struct ofe_config_webhook_github github;
    struct ofe_config_webhook_token gitlab;
    struct ofe_config_webhook_token bearer;
    struct ofe_config_webhook_hmac hmac;
};

struct ofe_config_webhook_source {
    struct ofe_config_node node;
    char *address; /* bind address */
    int64_t port;
    char *endpoint; /* URL path, starts with '/' */
    int method;     /* enum ofe_config_http_method */
    int64_t max_payload_size;
    struct ofe_config_webhook_auth auth;
};

enum ofe_config_source_kind {
    OFE_CONFIG_SOURCE_KAFKA = 0,
    OFE_CONFIG_SOURCE_CRON,
    OFE_CONFIG_SOURCE_REDIS,
    OFE_CONFIG_SOURCE_MQTT,
    OFE_CONFIG_SOURCE_NATS,
    OFE_CONFIG_SOURCE_WEBHOOK,
};

/* One event of an EventSource, whatever its kind (derived, not YAML). */
struct ofe_config_event {
    enum ofe_config_source_kind kind;
    const char *kind_name;              /* "kafka", "cron", ... */
    const char *name;                   /* the event name (map key) */
    const struct ofe_config_node *spec; /* points at the kind's struct, e.g.
                                           (const struct ofe_config_kafka_source *)spec */
    char *bus_topic;                    /* "{namespace}-{eventsource}-{event}" */
    /* Hash of the event's own block and of the rest of its document outside
     * every event block (sink, eventBus, delivery, mode, metadata): equal
     * when nothing that affects this event changed (SIGHUP reloads). */
    uint64_t fingerprint;
};

struct ofe_config_eventsource_spec {
    struct ofe_config_node node;
    char *event_bus; /* NULL: no bus (sink only) */
    struct ofe_config_destination sink;
    char *log_level;
    struct ofe_config_delivery delivery; /* of the sink */
    int mode;                            /* enum ofe_config_mode, of the sink */
    OFE_CONFIG_ARRAY(struct ofe_config_kafka_source) kafka;
    OFE_CONFIG_ARRAY(struct ofe_config_cron_source) cron;
    OFE_CONFIG_ARRAY(struct ofe_config_redis_source) redis;
    OFE_CONFIG_ARRAY(struct ofe_config_mqtt_source) mqtt;
    OFE_CONFIG_ARRAY(struct ofe_config_nats_source) nats;
    OFE_CONFIG_ARRAY(struct ofe_config_webhook_source) webhook;
};

struct ofe_config_eventsource {
    struct ofe_config_doc doc;
    struct ofe_config_eventsource_spec spec;
    struct ofe_config_event *events; /* every event of every kind, in kind order */
    size_t nevents;
};

/* --- Bus backends (EventBus / ClusterEventBus blocks, Dapr Components) --- */

struct ofe_config_kafka_bus {
    struct ofe_config_node node;
    char *brokers;
    char *consumer_group; /* NULL: each subscriber's own group */
    char *client_id;
    int auth_type; /* enum ofe_config_kafka_auth */
    char *sasl_username;
    char *sasl_password, *sasl_password_file;
    int sasl_mechanism; /* enum ofe_config_sasl */
    char *ca_cert, *ca_cert_file;
    char *client_cert, *client_cert_file;
    char *client_key, *client_key_file;
    bool skip_verify;
    bool disable_tls;
    int initial_offset; /* enum ofe_config_offset */
    int64_t max_message_bytes;
    int compression; /* enum ofe_config_compression */
    char *oidc_token_endpoint;
    char *oidc_client_id;
    char *oidc_client_secret, *oidc_client_secret_file;
    struct ofe_config_strlist oidc_scopes;
    struct ofe_config_kvlist rdkafka;
};

struct ofe_config_jetstream_bus {
    struct ofe_config_node node;
    char *nats_url;
    char *stream_name; /* NULL: the backend's default stream */
    char *durable_name;
    char *queue_group_name;
    int deliver_policy; /* enum ofe_config_deliver_policy */
    int64_t start_sequence;
    int64_t start_time;          /* unix seconds (deliverPolicy time) */
    int64_t start_time_delta_ms; /* start that long before subscribing (deliverPolicy time) */
    int64_t ack_wait_ms;
    int64_t max_deliver;
    struct ofe_config_durlist back_off;
    int64_t max_ack_pending;
    int64_t replicas;
    bool memory_storage;
    char *token, *token_file;
    char *jwt;
    char *seed_key, *seed_key_file;
    char *tls_client_cert; /* path */
    char *tls_client_key;  /* path */
    char *tls_ca_cert;     /* path */
    char *user;
    char *password, *password_file;
    char *credentials; /* path of a .creds file */
    char *name;        /* connection name */
    int64_t stream_max_age_ms;
    int64_t stream_max_bytes;
    int64_t stream_max_msgs;
    bool from_nats_streaming; /* derived from a natsStreaming block */
};

/* OpenFunction's natsStreaming block, kept as written; it is converted into
 * the jetstream block of the same spec (with a warning). */
struct ofe_config_nats_streaming {
    struct ofe_config_node node;
    char *nats_url;
    char *nats_streaming_cluster_id;
    int subscription_type; /* enum ofe_config_subscription_type */
    char *durable_subscription_name;
    int64_t ack_wait_time_ms;
    int64_t max_in_flight;
    bool deliver_new;
    int64_t start_at_sequence;
    bool start_with_last_received;
    bool deliver_all;
    int64_t start_at_time_delta_ms;
    char *start_at_time;
    char *start_at_time_format;
    char *consumer_id;
};

struct ofe_config_mqtt_bus {
    struct ofe_config_node node;
    char *url;
    char *consumer_id; /* client id prefix; NULL: derived per subscriber */
    int64_t qos;
    bool retain;
    bool clean_session;
    char *ca_cert, *ca_cert_file;
    char *client_cert, *client_cert_file;
    char *client_key, *client_key_file;
    int protocol_version; /* enum ofe_config_mqtt_version */
    char *username;
    char *password, *password_file;
    int64_t session_expiry_ms;
    int64_t keep_alive_ms;
    int64_t max_message_bytes; /* 0: the broker's maximum packet size */
};

struct ofe_config_redis_bus {
    struct ofe_config_node node;
    char *redis_host;
    char *redis_password, *redis_password_file;
    char *redis_username;
    int64_t redis_db;
    char *consumer_id; /* NULL: each subscriber's own group */
    bool enable_tls;
    int64_t redeliver_interval_ms;
    int64_t processing_timeout_ms;
    int64_t queue_depth;
    int64_t concurrency;
    int64_t max_len_approx; /* 0: no trimming */
    int64_t stream_ttl_ms;  /* 0: no trimming by age */
    int64_t dial_timeout_ms, read_timeout_ms, write_timeout_ms;
};

struct ofe_config_embedded_retention {
    struct ofe_config_node node;
    int64_t max_age_ms; /* 0: unlimited */
    int64_t max_bytes;  /* 0: unlimited */
    int64_t max_entries;
};

struct ofe_config_embedded_limits {
    struct ofe_config_node node;
    int64_t max_event_size;
    int64_t max_clients;
    int64_t client_input_buffer;
    int64_t client_output_buffer;
};

struct ofe_config_embedded_tls {
    struct ofe_config_node node; /* present: RESP port speaks TLS */
    char *cert;                  /* path of the PEM certificate chain */
    char *key;                   /* path of the PEM private key */
};

struct ofe_config_embedded_bus {
    struct ofe_config_node node;
    char *address;     /* host:port of the RESP listener (and of clients) */
    int64_t http_port; /* 0: no HTTP listener */
    char *data_dir;
    int fsync; /* enum ofe_config_fsync */
    struct ofe_config_embedded_retention retention;
    struct ofe_config_embedded_limits limits;
    char *requirepass, *requirepass_file;
    struct ofe_config_embedded_tls tls;
    char *http_token, *http_token_file;
    int64_t redeliver_interval_ms; /* clients (redis backend): claim loop period */
    int64_t processing_timeout_ms; /* clients: idle time before claiming */
};

enum ofe_config_bus_kind {
    OFE_CONFIG_BUS_EMBEDDED = 0,
    OFE_CONFIG_BUS_KAFKA,
    OFE_CONFIG_BUS_JETSTREAM,
    OFE_CONFIG_BUS_MQTT,
    OFE_CONFIG_BUS_REDIS,
};

struct ofe_config_bus_spec {
    struct ofe_config_node node;
    char *topic; /* EventBus.spec.topic: documented upstream, unused */
    struct ofe_config_nats_streaming nats_streaming;
    struct ofe_config_jetstream_bus jetstream;
    struct ofe_config_kafka_bus kafka;
    struct ofe_config_mqtt_bus mqtt;
    struct ofe_config_redis_bus redis;
    struct ofe_config_embedded_bus embedded;
    /* Component only: */
    char *type;    /* "pubsub.kafka", ... */
    char *version; /* "v1" */
};

/* An EventBus, ClusterEventBus or Dapr Component (doc.kind says which). For
 * a Component, spec.metadata is parsed into the block named by spec.type. */
struct ofe_config_bus {
    struct ofe_config_doc doc;
    struct ofe_config_bus_spec spec;
    enum ofe_config_bus_kind backend; /* which block of spec is the backend */
    bool valid;                       /* exactly one backend block was given */
};

/* --- Trigger ---------------------------------------------------------- */

struct ofe_config_input {
    struct ofe_config_node node; /* node.name = input name */
    char *event_source;
    char *event;
    char *namespace; /* default: the Trigger's namespace (filled in) */
    char *bus_topic; /* "{namespace}-{eventSource}-{event}" (derived) */
};

enum ofe_config_filter_kind {
    OFE_CONFIG_FILTER_EXACT = 0,
    OFE_CONFIG_FILTER_PREFIX,
    OFE_CONFIG_FILTER_SUFFIX,
    OFE_CONFIG_FILTER_ALL,
    OFE_CONFIG_FILTER_ANY,
    OFE_CONFIG_FILTER_NOT,
    OFE_CONFIG_FILTER_CESQL,
};

/* One Knative filter (exactly one dialect). exact/prefix/suffix: every
 * attribute in attrs must match (attribute name -> value). all/any: the
 * children; not: one child; cesql: the expression. */
struct ofe_config_filter {
    enum ofe_config_filter_kind kind;
    struct ofe_config_pos pos;
    char *path;
    struct ofe_config_kvlist attrs;
    struct ofe_config_filter *sub;
    size_t nsub;
    char *cesql;
    struct ofe_config_pos cesql_pos; /* of the expression's first character */
};

struct ofe_config_filterlist {
    struct ofe_config_filter *v; /* all must match */
    size_t n;
};

struct ofe_config_subscriber {
    struct ofe_config_node node;
    char *name;                 /* default: its index, "0", "1", ... */
    char *condition;            /* as written */
    struct ofe_condition *cond; /* compiled against the Trigger's input names */
    struct ofe_config_destination sink;
    struct ofe_config_destination dead_letter_sink;
    char *topic;
    char *dead_letter_topic;
    char *reply_topic;
    char *filter;                     /* CESQL, NULL when absent */
    struct ofe_config_pos filter_pos; /* of the filter text */
    struct ofe_config_filterlist filters;
    struct ofe_config_delivery delivery;
    int ordering; /* enum ofe_config_ordering */
    int64_t concurrency;
    int mode; /* enum ofe_config_mode */
};

struct ofe_config_trigger_spec {
    struct ofe_config_node node;
    char *event_bus;
    OFE_CONFIG_ARRAY(struct ofe_config_input) inputs;
    OFE_CONFIG_ARRAY(struct ofe_config_subscriber) subscribers;
    char *log_level;
    int64_t condition_window_ms;
};

struct ofe_config_trigger {
    struct ofe_config_doc doc;
    struct ofe_config_trigger_spec spec;
    char *consumer_group;     /* "{namespace}-{trigger}" (derived) */
    const char **input_names; /* spec.inputs.v[i].node.name, for conditions */
};

/* ---------------------------------------------------------------------
 * The config
 * --------------------------------------------------------------------- */

struct ofe_config_priv;

struct ofe_config {
    struct ofe_config_eventsource **eventsources;
    size_t neventsources;
    struct ofe_config_bus **buses; /* EventBus, ClusterEventBus and Component */
    size_t nbuses;
    struct ofe_config_trigger **triggers;
    size_t ntriggers;
    struct ofe_config_priv *priv;
};

/* Creates an empty config. Returns NULL on allocation failure. */
struct ofe_config *ofe_config_new(void);

/* Frees cfg and everything reachable from it. ofe_config_destroy(NULL) is a
 * no-op. */
void ofe_config_destroy(struct ofe_config *cfg);

/* Flags for ofe_config_set_flags. */
enum {
    /* No environment lookups: every ${VAR} without a default is an error.
     * No file reads: every *File field is an error. (Fuzzing, tests.) */
    OFE_CONFIG_SANDBOX = 1 << 0,
};
void ofe_config_set_flags(struct ofe_config *cfg, unsigned flags);

/* Checks a CESQL expression: returns 0 when valid, else fills errstr and
 * sets *err_off to the 0-based byte offset of the problem. */
typedef int (*ofe_config_cesql_check_fn)(void *ctx, const char *expr, size_t *err_off, char *errstr,
                                         size_t errstr_size);

/* CESQL HOOK: the config module does not parse CESQL. When a checker is set
 * (before loading), every `filter` and `filters[].cesql` expression is
 * passed to it and its errors become config errors at the expression's
 * position; without one, expressions are stored unchecked. */
void ofe_config_set_cesql_check(struct ofe_config *cfg, ofe_config_cesql_check_fn fn, void *ctx);

/* Loads every document of a YAML file into cfg. Errors and warnings are
 * added to the diagnostics (ofe_config_diags), all of them, not only the
 * first. Returns 0 when the file added no error, OFE_EINVAL when it added
 * errors (including YAML syntax errors; documents before the syntax error
 * are kept), OFE_EIO when it cannot be read (also a diagnostic), OFE_ENOMEM.
 * Relative paths in *File fields are relative to the file's directory. */
int ofe_config_load_file(struct ofe_config *cfg, const char *path);

/* Same, from memory. name is used in diagnostics as the file name (copied);
 * buf needs no NUL. Relative *File paths are relative to the current
 * directory. */
int ofe_config_load_buffer(struct ofe_config *cfg, const char *name, const char *buf, size_t len);

/* Cross-document checks, to run after the last load: every eventBus that
 * names no loaded EventBus, ClusterEventBus or Component (other than
 * "default"), and every Trigger input whose EventSource is loaded but has
 * no such event, is reported with the given severity (daemons: error;
 * `ofe validate` of a subset of files: warning). Returns the number of
 * problems found. */
size_t ofe_config_check_refs(struct ofe_config *cfg, enum ofe_config_severity severity);

/* All diagnostics so far, in the order found. *n receives the count. The
 * array is valid until the next load or destroy. This function can't
 * fail. */
const struct ofe_config_diag *ofe_config_diags(const struct ofe_config *cfg, size_t *n);
size_t ofe_config_nerrors(const struct ofe_config *cfg);
size_t ofe_config_nwarnings(const struct ofe_config *cfg);

/* Formats one diagnostic as "FILE:LINE:COL: error: PATH: MESSAGE" (or
 * "warning"; without LINE:COL when the position is unknown, without PATH
 * when empty) into buf, always NUL-terminated. Returns buf. */
char *ofe_config_diag_format(const struct ofe_config_diag *d, char *buf, size_t size);

/* Where key of block n was written: its value's position, or the block's
 * position when the key was not written or is unknown. Never NULL. */
const struct ofe_config_pos *ofe_config_field_pos(const struct ofe_config_node *n, const char *key);

/* Formats "FILE:LINE:COL (PATH.KEY)" for runtime messages, e.g.
 * "events.yaml:12:16 (spec.kafka.sample-one.brokers)". key may be NULL
 * (the block itself). Returns buf. */
char *ofe_config_where(const struct ofe_config_node *n, const char *key, char *buf, size_t size);

/* Finds a document by namespace (NULL = "default") and name. Returns NULL
 * when none is loaded. */
const struct ofe_config_eventsource *ofe_config_find_eventsource(const struct ofe_config *cfg,
                                                                 const char *ns, const char *name);
const struct ofe_config_trigger *ofe_config_find_trigger(const struct ofe_config *cfg,
                                                         const char *ns, const char *name);

/* True when a and b are the same document (kind, namespace, name) with the
 * same content (fingerprint). A daemon reloading on SIGHUP keeps what is
 * the same, and must also restart what uses a bus whose resolved
 * fingerprint (ofe_config_busdesc.fingerprint) changed. */
bool ofe_config_doc_same(const struct ofe_config_doc *a, const struct ofe_config_doc *b);

/* ---------------------------------------------------------------------
 * Bus resolution
 * --------------------------------------------------------------------- */

/* A resolved bus: the backend and its options. Pointers refer into the
 * config (or, for the implicit default, to defaults held by the config). */
struct ofe_config_busdesc {
    enum ofe_config_bus_kind kind;
    const char *kind_name;                 /* "embedded", "kafka", "jetstream", "mqtt", "redis" */
    const struct ofe_config_bus *doc;      /* NULL for the implicit default bus */
    const struct ofe_config_node *options; /* the backend's struct, below by kind */
    const struct ofe_config_embedded_bus *embedded;
    const struct ofe_config_kafka_bus *kafka;
    const struct ofe_config_jetstream_bus *jetstream;
    const struct ofe_config_mqtt_bus *mqtt;
    const struct ofe_config_redis_bus *redis;
    uint64_t fingerprint; /* of doc; 0 for the implicit default */
};

/* Resolves the bus a document in namespace ns (NULL = "default") names
 * with `eventBus: name` (NULL or "" = "default"): an EventBus of that name
 * in ns, else a ClusterEventBus of that name, else a Dapr Component of that
 * name in ns; "default" with none of these is the embedded bus at
 * OFE_CONFIG_EMBEDDED_DEFAULT_ADDRESS. A natsStreaming EventBus resolves to
 * kind jetstream.
 * Fills *out and, when desc is not NULL, a one-sentence description of the
 * resolution for the start-up log (e.g. `eventBus "default" (namespace
 * "default") is EventBus default/default from bus.yaml:1:1: kafka, brokers
 * 127.0.0.1:9092`). Returns 0; OFE_ENOENT with errstr saying what was
 * searched; or OFE_EINVAL when the document found has errors (it is not
 * skipped in favour of the next candidate). This function can be called
 * from any thread on a loaded config. */
int ofe_config_resolve_bus(const struct ofe_config *cfg, const char *name, const char *ns,
                           struct ofe_config_busdesc *out, char *desc, size_t desc_size,
                           char *errstr, size_t errstr_size);

/* The URL of a destination: uri when given, else the cluster-local address
 * Knative gives a ref, "http://{name}.{namespace}.svc.cluster.local/"
 * (namespace defaults to ns). Returns 0, or OFE_EINVAL when the
 * destination has neither. */
int ofe_config_destination_url(const struct ofe_config_destination *d, const char *ns, char *buf,
                               size_t size);

/* ---------------------------------------------------------------------
 * Reference
 * --------------------------------------------------------------------- */

/* Appends docs/config.md (Markdown: every kind, block and field with its
 * type, default, bounds and meaning, generated from the parsing tables) to
 * out. Returns 0 or OFE_ENOMEM. */
int ofe_config_reference(struct ofe_buf *out);

#endif
