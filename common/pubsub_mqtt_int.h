/* Between the files of the mqtt pub/sub backend (pubsub_mqtt*.c).
 *
 * Layout: pubsub_mqtt_opts.c copies and checks the options (URL, TLS
 * files, client ids); pubsub_mqtt_conn.c runs one MQTT connection per
 * thread (its own poll loop over libmosquitto, reconnects, publish
 * tracking, holding PUBACKs); pubsub_mqtt.c is the ops table (encoding,
 * decoding, subscriptions). See the comment at the top of pubsub_mqtt.c
 * for the delivery guarantee and why PUBACKs are held. */
#ifndef OFE_PUBSUB_MQTT_INT_H
#define OFE_PUBSUB_MQTT_INT_H

#include <mosquitto.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ofe/config.h"
#include "pubsub_int.h"

/* The largest packet MQTT can carry (remaining length 268435455 plus the
 * fixed header): the size limit when the broker announces none. */
#define MQTT__MAX_PACKET 268435460u

/* The options of one bus, copied at open (the config is freed after open
 * returns) and shared, reference counted, by the bus and its connections. */
struct mqtt_opts {
    atomic_int refs;
    char *host;
    int port;
    bool tls;
    char *url; /* as given, password removed (for logs) */
    char *consumer_id;
    int qos;
    bool retain;
    bool clean_session;
    int version; /* MQTT_PROTOCOL_V5 or MQTT_PROTOCOL_V311 */
    char *username, *password;
    char *cafile, *certfile, *keyfile; /* paths */
    char *tmpdir;                      /* holds PEM files written from inline contents */
    uint32_t session_expiry_s;
    int keepalive_s;
    char *component;     /* log prefix */
    char desc[320];      /* ofe_bus_describe */
    uint32_t max_packet; /* our own limit (MQTT__MAX_PACKET) */
};

/* Copies the options of a resolved bus. Returns 0, or OFE_EINVAL with
 * errstr naming the option (bad URL, unreadable PEM file, keepAlive below
 * what libmosquitto accepts), OFE_EIO (cannot write a PEM temp file),
 * OFE_ENOMEM. */
int mqtt__opts_new(const struct ofe_config_mqtt_bus *c, const char *component,
                   struct mqtt_opts **out, char *errstr, size_t errstr_size);
struct mqtt_opts *mqtt__opts_ref(struct mqtt_opts *o);
/* Drops a reference; the last one removes the PEM temp files. NULL is a
 * no-op. */
void mqtt__opts_unref(struct mqtt_opts *o);

/* Splits an MQTT URL: scheme tcp|mqtt (plain, port 1883) or
 * ssl|mqtts|tls (TLS, port 8883), optional percent-encoded
 * user[:password]@, host name, IPv4 or [IPv6], optional :port, optional
 * trailing "/". Strings are malloc'd (user/pass NULL when absent).
 * Returns 0 or OFE_EINVAL with errstr. */
int mqtt__parse_url(const char *url, char **host, int *port, bool *tls, char **user, char **pass,
                    char *errstr, size_t errstr_size);

/* The client id of a group member (stable across restarts when its parts
 * are): "{consumerID|ofe}-{group}[-{member}]", shortened with a hash when
 * longer than 128 bytes. member may be NULL. malloc'd, NULL on ENOMEM. */
char *mqtt__member_id(const char *consumer_id, const char *group, const char *member);

/* A process-wide set of client ids in use by this process's
 * subscriptions: two members with one id would throw each other off the
 * broker forever. claim returns false when id is taken. */
bool mqtt__id_claim(const char *id);
void mqtt__id_release(const char *id);

enum mqtt_role { MQTT_PUB = 0, MQTT_SUB };

/* One publish (the pointer sits in ofe_pub__priv). Payload and properties
 * are kept until the broker confirms, so a publish lost with its
 * connection is handed to the next connection again. */
struct mqtt_pub {
    struct ofe_pub *p;
    char *topic;
    const void *payload; /* into the event's data, or own_payload */
    void *own_payload;
    int len;
    mosquitto_property *props;
    uint64_t deadline_ns;
    int mid;
    int drops;              /* connection losses lived through while handed over */
    uint64_t not_before_ns; /* in r: when to send it again */
    struct mqtt_pub *next;
};

/* One MQTT connection, run by its own thread. */
struct mqtt_conn {
    struct mqtt_opts *o; /* a reference */
    enum mqtt_role role;
    char *client_id;
    bool clean_start;
    uint32_t session_expiry_s;
    unsigned window; /* SUB: unacked messages at most (MQTT 5 Receive Maximum) */
    char **filters;  /* SUB: "$share/{group}/{topic}" */
    int nfilters;
    int sub_qos;
    struct ofe_sub *sub; /* SUB */
    struct ofe_counter *m_reconnects;
    uint32_t publish_timeout_ms; /* PUB */

    pthread_t thr;
    int wakefd;
    pthread_mutex_t lock;
    pthread_cond_t cond;

    /* Under lock: */
    bool quit, stopping, reading, exited, orphan;
    bool up, subscribed, tried, ever_up;
    char why[384];
    uint32_t epoch;      /* changes with every connection */
    unsigned unresolved; /* delivered on this epoch, not yet acked */
    bool poisoned;       /* an abandoned message: this epoch's PUBACKs must never go out */
    bool wake_pending;
    uint32_t broker_max_packet;       /* from CONNACK, 0 = not announced */
    struct mqtt_pub *q_head, *q_tail; /* waiting for a connection */
    struct mqtt_pub *f_head, *f_tail; /* handed to libmosquitto, waiting for PUBACK */
    struct mqtt_pub *r_head, *r_tail; /* "no matching subscribers" early after a
                                       * (re)connect: sent again a little later */
    struct mqtt_pub **bymid;          /* 65536 slots */
    unsigned nf;                      /* length of f */
    unsigned send_cap;                /* at most this many in f (broker's Receive Maximum) */
    unsigned npending;
    bool closed;             /* no more publishes: everything was failed */
    uint64_t grace_until_ns; /* PUB: re-send "no matching subscribers" until then */

    /* Loop thread only: */
    struct mosquitto *mosq;
    unsigned attempt;
    unsigned since_flush;
    bool drop;          /* drop the connection at the end of this round */
    bool refused;       /* why holds the broker's refusal */
    int server_reason;  /* reason code of a DISCONNECT from the broker */
    char last_log[256]; /* libmosquitto's last error/warning line */
};

/* Creates a connection (not started). Takes a reference on o. */
struct mqtt_conn *mqtt__conn_new(struct mqtt_opts *o, enum mqtt_role role, const char *client_id);
/* Frees a connection whose thread was never started. NULL is a no-op. */
void mqtt__conn_discard(struct mqtt_conn *c);
/* Starts its thread. Returns 0 or OFE_ENOMEM. */
int mqtt__conn_start(struct mqtt_conn *c);
/* Wakes its thread (any thread). */
void mqtt__conn_wake(struct mqtt_conn *c);
/* SUB: no more deliveries once this returns. Any thread but the loop's. */
void mqtt__conn_stop_reading(struct mqtt_conn *c);
/* Ends the thread and frees c. A subscriber flushes its PUBACKs and
 * disconnects cleanly unless a message was abandoned (then the connection
 * is dropped without writing, so the broker keeps every unacked message);
 * a publisher fails what is still pending with OFE_ECLOSED. Waits at most
 * wait_ms for the thread (a thread stuck in a blocking connect is left to
 * finish and free itself). */
void mqtt__conn_destroy(struct mqtt_conn *c, uint32_t wait_ms);
/* PUB: queues a publish (the loop thread hands it to libmosquitto when
 * connected). Returns 0 or OFE_ECLOSED. */
int mqtt__conn_publish(struct mqtt_conn *c, struct mqtt_pub *mp);
/* PUB: waits until nothing is pending or wait_ms passed. */
void mqtt__conn_drain(struct mqtt_conn *c, uint32_t wait_ms);
/* Frees a publish that was completed. */
void mqtt__pub_free(struct mqtt_pub *mp);
/* Waits until a subscriber is subscribed (a publisher connected) or an
 * attempt failed, at most ms. Returns true when ready. */
bool mqtt__conn_wait(struct mqtt_conn *c, uint32_t ms);
/* Checks at open that libmosquitto accepts the options (TLS files above
 * all), so a bad one is an open error rather than an endless reconnect.
 * Returns 0 or OFE_EINVAL with errstr. */
int mqtt__probe_options(struct mqtt_opts *o, char *errstr, size_t errstr_size);
/* Connection state for ofe_bus_ready. */
bool mqtt__conn_ready(struct mqtt_conn *c, char *why, size_t why_size);

/* Implemented in pubsub_mqtt.c, called on the loop thread of a subscriber
 * for each message received. */
void mqtt__deliver(struct mqtt_conn *c, const struct mosquitto_message *msg,
                   const mosquitto_property *props);

/* Monotonic clock in nanoseconds. */
uint64_t mqtt__now_ns(void);

#endif
