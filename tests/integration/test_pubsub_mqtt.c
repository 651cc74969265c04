/* The mqtt backend beyond the conformance suite, against real mosquitto
 * brokers (tests/lib/servers.h, TU_MOSQUITTO with persistence):
 *   - the libmosquitto 2.0.11 facts the design rests on (when PUBACK leaves);
 *   - options from an EventBus and from a Dapr pubsub.mqtt3 Component;
 *   - the MQTT 5 binary and MQTT 3.1.1 structured bindings as seen on the
 *     wire by a plain libmosquitto client;
 *   - a member killed with SIGKILL before acking: the broker keeps the
 *     message for its session, a restarted member with the same id gets it,
 *     another live member does not;
 *   - nacked or held messages left when a subscription closes come back;
 *   - held messages across a broker restart;
 *   - precise errors: bad options, unreachable broker, wrong password, TLS
 *     with a wrong CA, oversized events with MQTT 3.1.1.
 * The child member is this binary re-executed with --child. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "ofe/log.h"
#include "ofe/pubsub.h"
#include "servers.h"
#include "testutil.h"

extern char **environ;

static struct tu_server *SRV; /* the shared broker */
static char SELF[4096];

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void msleep(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int port_of(const char *url)
{
    const char *c = strrchr(url, ':');
    return c ? atoi(c + 1) : 0;
}

/* ---- buses and events --------------------------------------------------- */

struct mopt {
    const char *url;
    const char *consumer_id;
    int version; /* OFE_CONFIG_MQTT_V5 / V311 */
    int qos;
    const char *username, *password;
    const char *ca_cert, *client_cert, *client_key;
    int64_t keep_alive_ms;
    int64_t session_expiry_ms;
    const char *client_id;
    uint32_t publish_timeout_ms;
};

static int open_mqtt(const struct mopt *o, struct ofe_bus **out, char *err, size_t errsz)
{
    struct ofe_config_mqtt_bus m = {
        .url = (char *)o->url,
        .consumer_id = (char *)o->consumer_id,
        .qos = o->qos ? o->qos : 1,
        .session_expiry_ms = o->session_expiry_ms ? o->session_expiry_ms : 3600 * 1000,
        .keep_alive_ms = o->keep_alive_ms ? o->keep_alive_ms : 60000,
        .protocol_version = o->version,
        .username = (char *)o->username,
        .password = (char *)o->password,
        .ca_cert = (char *)o->ca_cert,
        .client_cert = (char *)o->client_cert,
        .client_key = (char *)o->client_key,
    };
    struct ofe_config_busdesc d = {
        .kind = OFE_CONFIG_BUS_MQTT, .kind_name = "mqtt", .options = &m.node, .mqtt = &m};
    struct ofe_bus_opts bo = {.component = "test",
                              .client_id = o->client_id,
                              .publish_timeout_ms = o->publish_timeout_ms};
    return ofe_bus_open(&d, &bo, out, err, errsz);
}

static struct ofe_bus *bus_on(const char *url, const char *client_id)
{
    struct mopt o = {.url = url, .client_id = client_id};
    struct ofe_bus *b = NULL;
    char err[600];
    int rc = open_mqtt(&o, &b, err, sizeof(err));
    if (rc)
        fail_msg("open: %s", err);
    return b;
}

static bool wait_ready(struct ofe_bus *b, unsigned ms, char *why, size_t whysz)
{
    uint64_t end = now_ms() + ms;
    while (!ofe_bus_ready(b, why, whysz)) {
        if (now_ms() > end)
            return false;
        msleep(10);
    }
    return true;
}

static struct ofe_ce *event(const char *id, const char *data)
{
    struct ofe_ce *ev = ofe_ce_new();
    char err[256];
    assert_int_equal(ofe_ce_set_str(ev, "id", 0, id, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "specversion", 0, "1.0", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "source", 0, "/test/mqtt", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "type", 0, "io.ofevents.test", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "subject", 0, "s\xc3\xa9 1", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "time", 0, "2024-01-02T03:04:05.678Z", err, sizeof(err)),
                     0);
    assert_int_equal(ofe_ce_set_int(ev, "seq", 42, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_bool(ev, "flag", true, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "bin", OFE_CE_T_BINARY, "AP8K", err, sizeof(err)), 0);
    assert_int_equal(
        ofe_ce_set_str(ev, "datacontenttype", 0, "application/octet-stream", err, sizeof(err)), 0);
    if (data)
        assert_int_equal(ofe_ce_set_data(ev, data, strlen(data)), 0);
    return ev;
}

static void publish_ok(struct ofe_bus *b, const char *topic, const char *id)
{
    struct ofe_ce *ev = event(id, id);
    char err[600];
    int rc = ofe_bus_publish_sync(b, topic, ev, err, sizeof(err));
    ofe_ce_unref(ev);
    if (rc)
        fail_msg("publish %s: %s", id, err);
}

/* ---- a collecting consumer ---------------------------------------------- */

enum { DO_ACK = 0, DO_HOLD, DO_NACK_ONCE };

struct coll {
    pthread_mutex_t lock;
    int action;
    char ids[256][64];
    uint32_t redeliv[256];
    size_t n;
    struct ofe_msg *held[256];
    size_t nheld;
    struct ofe_ce *last;
    char last_err[300];
    size_t invalid;
};

static void coll_init(struct coll *c, int action)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->action = action;
}

static size_t coll_count(struct coll *c, const char *id)
{
    size_t k = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++)
        k += !strcmp(c->ids[i], id);
    pthread_mutex_unlock(&c->lock);
    return k;
}

static size_t coll_n(struct coll *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

static void release_held(struct coll *c, bool ack)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nheld; i++) {
        if (ack)
            ofe_msg_ack(c->held[i]);
        else
            ofe_msg_nack(c->held[i], 0);
    }
    c->nheld = 0;
    pthread_mutex_unlock(&c->lock);
}

static void coll_fini(struct coll *c)
{
    release_held(c, true);
    ofe_ce_unref(c->last);
    pthread_mutex_destroy(&c->lock);
}

static void on_msg(struct ofe_msg *m, void *opaque)
{
    struct coll *c = opaque;
    struct ofe_ce *ev = ofe_msg_event(m);
    pthread_mutex_lock(&c->lock);
    if (!ev) {
        c->invalid++;
        snprintf(c->last_err, sizeof(c->last_err), "%s", ofe_msg_error(m));
        pthread_mutex_unlock(&c->lock);
        ofe_msg_ack(m);
        return;
    }
    bool first = true;
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->ids[i], ofe_ce_get_str(ev, "id")))
            first = false;
    if (c->n < 256) {
        snprintf(c->ids[c->n], sizeof(c->ids[0]), "%s", ofe_ce_get_str(ev, "id"));
        c->redeliv[c->n] = ofe_msg_redeliveries(m);
        c->n++;
    }
    ofe_ce_unref(c->last);
    c->last = ofe_ce_ref(ev);
    int act = c->action;
    if (act == DO_HOLD && c->nheld < 256) {
        c->held[c->nheld++] = m;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pthread_mutex_unlock(&c->lock);
    if (act == DO_NACK_ONCE && first)
        ofe_msg_nack(m, 50);
    else
        ofe_msg_ack(m);
}

static bool wait_n(struct coll *c, size_t n, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (coll_n(c) < n && now_ms() < end)
        msleep(10);
    return coll_n(c) >= n;
}

static struct ofe_sub *sub_on(struct ofe_bus *b, const char *topic, const char *group,
                              const char *member, unsigned window, struct coll *c)
{
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {.group = group,
                              .consumer = member,
                              .topics = topics,
                              .ntopics = 1,
                              .max_inflight = window,
                              .on_msg = on_msg,
                              .opaque = c};
    struct ofe_sub *s = NULL;
    char err[600];
    if (ofe_bus_subscribe(b, &so, &s, err, sizeof(err)))
        fail_msg("subscribe: %s", err);
    return s;
}

static char RUN[32];

static void name(char *buf, size_t sz, const char *what)
{
    snprintf(buf, sz, "%s-%s", what, RUN);
}

/* ---- a plain libmosquitto client ----------------------------------------- */

struct raw {
    struct mosquitto *m;
    atomic_int connected, subscribed, got, pubacked;
    char ct[200];
    char props[2048]; /* "name=value;" ... */
    unsigned char payload[4096];
    int payloadlen;
};

static void raw_on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                           const mosquitto_property *p)
{
    ((struct raw *)obj)->connected = rc == 0 ? 1 : -1;
}

static void raw_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *q,
                             const mosquitto_property *p)
{
    ((struct raw *)obj)->subscribed = 1;
}

static void raw_on_publish(struct mosquitto *m, void *obj, int mid, int rc,
                           const mosquitto_property *p)
{
    ((struct raw *)obj)->pubacked++;
}

static void raw_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                           const mosquitto_property *props)
{
    struct raw *r = obj;
    r->ct[0] = r->props[0] = '\0';
    size_t off = 0;
    for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
        int id = mosquitto_property_identifier(p);
        if (id == MQTT_PROP_CONTENT_TYPE) {
            char *s = NULL;
            mosquitto_property_read_string(p, id, &s, false);
            snprintf(r->ct, sizeof(r->ct), "%s", s ? s : "");
            free(s);
        } else if (id == MQTT_PROP_USER_PROPERTY) {
            char *n = NULL, *v = NULL;
            mosquitto_property_read_string_pair(p, id, &n, &v, false);
            off += (size_t)snprintf(r->props + off,
                                    off < sizeof(r->props) ? sizeof(r->props) - off : 0, "%s=%s;",
                                    n, v);
            free(n);
            free(v);
        }
    }
    r->payloadlen = msg->payloadlen < (int)sizeof(r->payload) ? msg->payloadlen : 0;
    memcpy(r->payload, msg->payload, (size_t)r->payloadlen);
    r->got++;
}

static struct raw *raw_connect(const char *url, int version, const char *sub_topic)
{
    struct raw *r = calloc(1, sizeof(*r));
    r->m = mosquitto_new(NULL, true, r);
    mosquitto_int_option(r->m, MOSQ_OPT_PROTOCOL_VERSION, version);
    mosquitto_connect_v5_callback_set(r->m, raw_on_connect);
    mosquitto_subscribe_v5_callback_set(r->m, raw_on_subscribe);
    mosquitto_message_v5_callback_set(r->m, raw_on_message);
    mosquitto_publish_v5_callback_set(r->m, raw_on_publish);
    assert_int_equal(mosquitto_connect(r->m, "127.0.0.1", port_of(url), 30), 0);
    assert_int_equal(mosquitto_loop_start(r->m), 0);
    uint64_t end = now_ms() + 5000;
    while (!r->connected && now_ms() < end)
        msleep(5);
    assert_int_equal(r->connected, 1);
    if (sub_topic) {
        assert_int_equal(mosquitto_subscribe(r->m, NULL, sub_topic, 1), 0);
        while (!r->subscribed && now_ms() < end)
            msleep(5);
        assert_int_equal(r->subscribed, 1);
    }
    return r;
}

static void raw_free(struct raw *r)
{
    mosquitto_disconnect(r->m);
    mosquitto_loop_stop(r->m, false);
    mosquitto_destroy(r->m);
    free(r);
}

/* ---- the libmosquitto facts --------------------------------------------- */

struct held {
    int got; /* only the thread driving the client touches it */
};

static void held_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                            const mosquitto_property *p)
{
    ((struct held *)obj)->got++;
}

/* Connects a persistent-session client `id` subscribed to topic, drives it
 * by hand until one message arrived (never calling mosquitto_loop_write
 * after that), then drops the socket without writing. Returns how many
 * messages arrived. */
static int receive_then_vanish(const char *url, const char *id, const char *topic, bool threaded,
                               bool publish_first)
{
    struct held h = {0};
    struct mosquitto *m = mosquitto_new(id, false, &h);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (threaded)
        mosquitto_threaded_set(m, true);
    mosquitto_message_v5_callback_set(m, held_on_message);
    mosquitto_property *props = NULL;
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
    assert_int_equal(mosquitto_connect_bind_v5(m, "127.0.0.1", port_of(url), 30, NULL, props), 0);
    mosquitto_property_free_all(&props);
    assert_int_equal(mosquitto_subscribe(m, NULL, topic, 1), 0);
    /* CONNECT and SUBSCRIBE out, CONNACK and SUBACK in */
    for (int i = 0; i < 20; i++) {
        struct pollfd pf = {mosquitto_socket(m), POLLIN, 0};
        if (mosquitto_want_write(m))
            mosquitto_loop_write(m, 1);
        if (poll(&pf, 1, 50) > 0)
            mosquitto_loop_read(m, 1);
    }
    if (publish_first) {
        struct raw *p = raw_connect(url, MQTT_PROTOCOL_V5, NULL);
        assert_int_equal(mosquitto_publish(p->m, NULL, topic, 5, "fact!", 1, false), 0);
        uint64_t end = now_ms() + 5000;
        while (!p->pubacked && now_ms() < end)
            msleep(5);
        raw_free(p);
    }
    uint64_t end = now_ms() + 3000;
    while (!h.got && now_ms() < end) {
        struct pollfd pf = {mosquitto_socket(m), POLLIN, 0};
        if (poll(&pf, 1, 50) > 0)
            mosquitto_loop_read(m, 1); /* no loop_write from here on */
    }
    int got = h.got;
    shutdown(mosquitto_socket(m), SHUT_RDWR);
    mosquitto_destroy(m);
    return got;
}

/* libmosquitto 2.0.11 queues the PUBACK of a QoS 1 message before it calls
 * on_message. Threaded mode: it leaves only with mosquitto_loop_write, so
 * a client that vanishes first gets the message again. Non-threaded: it
 * is written inside mosquitto_loop_read, before the application saw the
 * message, and the message is gone. The backend relies on the first. */
static void test_libmosquitto_puback_timing(void **state)
{
    char topic[64], id1[64], id2[64];
    name(topic, sizeof(topic), "fact");
    name(id1, sizeof(id1), "fact-threaded");
    name(id2, sizeof(id2), "fact-plain");
    assert_int_equal(receive_then_vanish(SRV->url, id1, topic, true, true), 1);
    assert_int_equal(receive_then_vanish(SRV->url, id1, topic, true, false), 1); /* again */
    char t2[80];
    snprintf(t2, sizeof(t2), "%s-2", topic);
    assert_int_equal(receive_then_vanish(SRV->url, id2, t2, false, true), 1);
    assert_int_equal(receive_then_vanish(SRV->url, id2, t2, false, false), 0); /* gone */
}

/* ---- options from YAML ---------------------------------------------------- */

static struct ofe_bus *bus_from_yaml(const char *yaml, char *desc, size_t descsz)
{
    struct ofe_config *cfg = ofe_config_new();
    ofe_config_load_buffer(cfg, "bus.yaml", yaml, strlen(yaml));
    size_t nd;
    const struct ofe_config_diag *d = ofe_config_diags(cfg, &nd);
    for (size_t i = 0; i < nd; i++) {
        char line[600];
        fprintf(stderr, "%s\n", ofe_config_diag_format(&d[i], line, sizeof(line)));
    }
    assert_int_equal(ofe_config_nerrors(cfg), 0);
    struct ofe_config_busdesc bd;
    char err[600];
    assert_int_equal(ofe_config_resolve_bus(cfg, "mybus", NULL, &bd, NULL, 0, err, sizeof(err)), 0);
    assert_string_equal(bd.kind_name, "mqtt");
    struct ofe_bus *b = NULL;
    struct ofe_bus_opts bo = {.component = "test"};
    int rc = ofe_bus_open(&bd, &bo, &b, err, sizeof(err));
    ofe_config_destroy(cfg); /* the backend copied what it needs */
    if (rc)
        fail_msg("open: %s", err);
    snprintf(desc, descsz, "%s", ofe_bus_describe(b));
    return b;
}

/* Same attribute names, canonical values and data; types may differ
 * (MQTT 3.1.1 carries structured JSON, where Binary, URI, URI-reference
 * and Timestamp extensions are plain strings). */
static bool same_values(const struct ofe_ce *a, const struct ofe_ce *b)
{
    const struct ofe_ce_attr *x, *y;
    size_t n = 0;
    for (size_t i = 0; (x = ofe_ce_attr_at(a, i)); i++, n++) {
        y = ofe_ce_get(b, x->name, x->name_len);
        if (!y || y->value_len != x->value_len || memcmp(x->value, y->value, x->value_len))
            return false;
    }
    for (size_t i = 0; ofe_ce_attr_at(b, i); i++)
        n--;
    return n == 0 && a->has_data == b->has_data && a->data_len == b->data_len &&
           (!a->data_len || !memcmp(a->data, b->data, a->data_len));
}

static void roundtrip(struct ofe_bus *b, const char *what)
{
    char topic[64], group[64], err[600];
    name(topic, sizeof(topic), what);
    name(group, sizeof(group), what);
    struct coll c;
    coll_init(&c, DO_ACK);
    struct ofe_sub *s = sub_on(b, topic, group, "m", 8, &c);
    assert_true(wait_ready(b, 10000, err, sizeof(err)));
    struct ofe_ce *ev = event("rt-1", "payload \x01\x02 bytes");
    assert_int_equal(ofe_bus_publish_sync(b, topic, ev, err, sizeof(err)), 0);
    assert_true(wait_n(&c, 1, 10000));
    if (strstr(ofe_bus_describe(b), "MQTT 3.1.1")) {
        assert_true(same_values(ev, c.last));
        assert_int_equal(ofe_ce_get(c.last, "bin", 3)->type, OFE_CE_T_STRING);
        assert_int_equal(ofe_ce_get(c.last, "seq", 3)->type, OFE_CE_T_INTEGER);
    } else {
        assert_true(ofe_ce_equal(ev, c.last));
    }
    ofe_ce_unref(ev);
    ofe_sub_close(s);
    coll_fini(&c);
}

static void test_options_eventbus_and_component(void **state)
{
    char yaml[2048], desc[400];
    snprintf(yaml, sizeof(yaml),
             "apiVersion: events.openfunction.io/v1alpha1\n"
             "kind: EventBus\n"
             "metadata:\n  name: mybus\n"
             "spec:\n  mqtt:\n    url: %s\n    qos: 1\n    consumerID: yamlapp\n"
             "    sessionExpiry: 10m\n    keepAlive: 30s\n",
             SRV->url);
    struct ofe_bus *b = bus_from_yaml(yaml, desc, sizeof(desc));
    assert_non_null(strstr(desc, "MQTT 5"));
    assert_non_null(strstr(desc, "QoS 1"));
    roundtrip(b, "yaml-eventbus");
    ofe_bus_close(b, 2000);

    snprintf(yaml, sizeof(yaml),
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata:\n  name: mybus\n"
             "spec:\n  type: pubsub.mqtt3\n  version: v1\n  metadata:\n"
             "  - name: url\n    value: \"%s\"\n"
             "  - name: qos\n    value: \"1\"\n"
             "  - name: cleanSession\n    value: \"false\"\n"
             "  - name: consumerID\n    value: daprapp\n"
             "  - name: protocolVersion\n    value: \"311\"\n",
             SRV->url);
    b = bus_from_yaml(yaml, desc, sizeof(desc));
    assert_non_null(strstr(desc, "MQTT 3.1.1"));
    roundtrip(b, "yaml-component");
    ofe_bus_close(b, 2000);
}

/* ---- bindings on the wire ------------------------------------------------- */

static void test_binary_mode_on_the_wire(void **state)
{
    char topic[64], err[600];
    name(topic, sizeof(topic), "wire5");
    struct raw *r = raw_connect(SRV->url, MQTT_PROTOCOL_V5, topic);
    struct ofe_bus *b = bus_on(SRV->url, NULL);
    assert_true(wait_ready(b, 10000, err, sizeof(err)));
    struct ofe_ce *ev = event("wire-1", "raw data bytes");
    assert_int_equal(ofe_bus_publish_sync(b, topic, ev, err, sizeof(err)), 0);
    uint64_t end = now_ms() + 5000;
    while (!r->got && now_ms() < end)
        msleep(5);
    assert_int_equal(r->got, 1);
    assert_string_equal(r->ct, "application/octet-stream");
    assert_int_equal(r->payloadlen, 14);
    assert_memory_equal(r->payload, "raw data bytes", 14);
    const char *want[] = {
        "id=wire-1;",  "specversion=1.0;", "source=/test/mqtt;", "type=io.ofevents.test;",
        "seq=42;",     "flag=true;",       "bin=AP8K;",          "time=2024-01-02T03:04:05.678Z;",
        "ofe-cetypes="};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(r->props, want[i]))
            fail_msg("user property %s missing in %s", want[i], r->props);
    assert_null(strstr(r->props, "datacontenttype="));
    ofe_ce_unref(ev);
    ofe_bus_close(b, 2000);
    raw_free(r);
}

static void test_structured_mode_mqtt311(void **state)
{
    char topic[64], group[64], err[600];
    name(topic, sizeof(topic), "wire311");
    name(group, sizeof(group), "g311");
    struct raw *r = raw_connect(SRV->url, MQTT_PROTOCOL_V311, topic);
    struct mopt o = {.url = SRV->url, .version = OFE_CONFIG_MQTT_V311};
    struct ofe_bus *b311 = NULL, *b5 = bus_on(SRV->url, NULL);
    assert_int_equal(open_mqtt(&o, &b311, err, sizeof(err)), 0);
    struct coll c5, c3;
    coll_init(&c5, DO_ACK);
    coll_init(&c3, DO_ACK);
    struct ofe_sub *s5 = sub_on(b5, topic, group, "v5", 8, &c5);
    char g2[80];
    snprintf(g2, sizeof(g2), "%s-b", group);
    struct ofe_sub *s3 = sub_on(b311, topic, g2, "v3", 8, &c3);
    assert_true(wait_ready(b311, 10000, err, sizeof(err)));
    assert_true(wait_ready(b5, 10000, err, sizeof(err)));
    struct ofe_ce *ev = event("s311-1", "{\"a\":1}");
    assert_int_equal(ofe_bus_publish_sync(b311, topic, ev, err, sizeof(err)), 0);
    uint64_t end = now_ms() + 5000;
    while (!r->got && now_ms() < end)
        msleep(5);
    assert_int_equal(r->got, 1);
    r->payload[r->payloadlen < 4095 ? r->payloadlen : 4095] = '\0';
    assert_int_equal(r->payload[0], '{');
    assert_non_null(strstr((char *)r->payload, "\"specversion\":\"1.0\""));
    assert_non_null(strstr((char *)r->payload, "\"id\":\"s311-1\""));
    /* an MQTT 5 member and an MQTT 3.1.1 member both decode it */
    assert_true(wait_n(&c5, 1, 5000));
    assert_true(wait_n(&c3, 1, 5000));
    assert_true(same_values(ev, c5.last));
    assert_true(same_values(ev, c3.last));
    ofe_ce_unref(ev);
    ofe_sub_close(s5);
    ofe_sub_close(s3);
    coll_fini(&c5);
    coll_fini(&c3);
    ofe_bus_close(b5, 2000);
    ofe_bus_close(b311, 2000);
    raw_free(r);
}

/* ---- a member killed before acking ---------------------------------------- */

/* Child: subscribe as member `member`, hold every message, print its id. */
static int child_main(const char *url, const char *topic, const char *group, const char *member)
{
    struct ofe_bus *b = NULL;
    struct mopt o = {.url = url};
    char err[600];
    if (open_mqtt(&o, &b, err, sizeof(err))) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    struct coll c;
    coll_init(&c, DO_HOLD);
    const char *topics[] = {topic};
    struct ofe_sub_opts so = {.group = group,
                              .consumer = member,
                              .topics = topics,
                              .ntopics = 1,
                              .max_inflight = 16,
                              .on_msg = on_msg,
                              .opaque = &c};
    struct ofe_sub *s;
    if (ofe_bus_subscribe(b, &so, &s, err, sizeof(err))) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    printf("subscribed\n");
    fflush(stdout);
    size_t told = 0;
    for (int i = 0; i < 60000; i++) {
        pthread_mutex_lock(&c.lock);
        while (told < c.n) {
            printf("held %s\n", c.ids[told]);
            told++;
        }
        pthread_mutex_unlock(&c.lock);
        fflush(stdout);
        msleep(5);
    }
    return 1; /* killed long before */
}

/* Reads lines from fd until one starts with prefix; returns it in buf. */
static bool read_line(int fd, const char *prefix, char *buf, size_t sz, unsigned ms)
{
    static char acc[8192];
    static size_t alen;
    uint64_t end = now_ms() + ms;
    for (;;) {
        char *nl;
        while ((nl = memchr(acc, '\n', alen))) {
            size_t l = (size_t)(nl - acc);
            bool match = !strncmp(acc, prefix, strlen(prefix));
            if (match)
                snprintf(buf, sz, "%.*s", (int)l, acc);
            memmove(acc, nl + 1, alen - l - 1);
            alen -= l + 1;
            if (match)
                return true;
        }
        if (now_ms() > end)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t r = read(fd, acc + alen, sizeof(acc) - alen);
        if (r <= 0)
            return false;
        alen += (size_t)r;
    }
}

static void test_killed_member_resumes_its_session(void **state)
{
    char topic[64], group[64], line[200];
    name(topic, sizeof(topic), "kill");
    name(group, sizeof(group), "kill");
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    char *argv[] = {SELF, "--child", SRV->url, topic, group, "crashy", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, SELF, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    assert_true(read_line(pfd[0], "subscribed", line, sizeof(line), 15000));

    /* another member of the group, alive throughout */
    struct ofe_bus *b = bus_on(SRV->url, NULL);
    struct coll live;
    coll_init(&live, DO_ACK);
    struct ofe_sub *sl = sub_on(b, topic, group, "steady", 16, &live);
    char why[400];
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    for (int i = 0; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof(id), "k-%d", i);
        publish_ok(b, topic, id);
    }
    /* the child holds its share without acking, then dies */
    char held[8][64];
    size_t nheld = 0;
    while (nheld < 8 && coll_n(&live) + nheld < 6 &&
           read_line(pfd[0], "held ", line, sizeof(line), 5000))
        snprintf(held[nheld++], sizeof(held[0]), "%.63s", line + 5);
    assert_true(wait_n(&live, 6 - nheld, 5000));
    assert_true(nheld >= 1); /* the shared subscription gave the child some */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(pfd[0]);
    /* what the child held stays with its session: not given to "steady" */
    publish_ok(b, topic, "k-after");
    msleep(500);
    for (size_t i = 0; i < nheld; i++)
        assert_int_equal(coll_count(&live, held[i]), 0);

    /* the member comes back under the same name: it gets them again */
    struct ofe_bus *b2 = bus_on(SRV->url, NULL);
    struct coll back;
    coll_init(&back, DO_ACK);
    struct ofe_sub *sb = sub_on(b2, topic, group, "crashy", 16, &back);
    uint64_t end = now_ms() + 10000;
    bool all = false;
    while (!all && now_ms() < end) {
        all = true;
        for (size_t i = 0; i < nheld; i++)
            all &= coll_count(&back, held[i]) == 1;
        msleep(10);
    }
    assert_true(all);
    /* every event reached the group */
    const char *ids[] = {"k-0", "k-1", "k-2", "k-3", "k-4", "k-5", "k-after"};
    end = now_ms() + 5000;
    for (size_t i = 0; i < 7; i++) {
        while (coll_count(&live, ids[i]) + coll_count(&back, ids[i]) == 0 && now_ms() < end)
            msleep(10);
        assert_true(coll_count(&live, ids[i]) + coll_count(&back, ids[i]) >= 1);
    }
    ofe_sub_close(sb);
    ofe_sub_close(sl);
    coll_fini(&back);
    coll_fini(&live);
    ofe_bus_close(b2, 2000);
    ofe_bus_close(b, 2000);
}

/* ---- nack, close with unresolved messages --------------------------------- */

static void test_nack_redelivers(void **state)
{
    char topic[64], group[64], why[400];
    name(topic, sizeof(topic), "nack");
    name(group, sizeof(group), "nack");
    struct ofe_bus *b = bus_on(SRV->url, NULL);
    struct coll c;
    coll_init(&c, DO_NACK_ONCE);
    struct ofe_sub *s = sub_on(b, topic, group, "n1", 8, &c);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    publish_ok(b, topic, "nk-1");
    assert_true(wait_n(&c, 2, 5000));
    assert_int_equal(coll_count(&c, "nk-1"), 2);
    assert_int_equal(c.redeliv[0], 0);
    assert_int_equal(c.redeliv[1], 1);
    msleep(300);
    assert_int_equal(coll_count(&c, "nk-1"), 2); /* acked the second time */
    ofe_sub_close(s);
    coll_fini(&c);
    ofe_bus_close(b, 2000);
}

/* Messages still unacked when a subscription closes (held by the consumer,
 * or waiting for their nack delay) stay unacknowledged at the broker: the
 * member gets them again when it subscribes again. */
static void test_unresolved_at_close_come_back(void **state)
{
    char topic[64], group[64], why[400];
    name(topic, sizeof(topic), "unres");
    name(group, sizeof(group), "unres");
    struct ofe_bus *b = bus_on(SRV->url, NULL);
    struct coll c;
    coll_init(&c, DO_HOLD);
    struct ofe_sub *s = sub_on(b, topic, group, "u1", 8, &c);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    publish_ok(b, topic, "un-1");
    publish_ok(b, topic, "un-2");
    assert_true(wait_n(&c, 2, 5000));
    /* one acked, one nacked with a long delay: the nacked one is abandoned
     * at close, which must keep the acked one's PUBACK from leaving too */
    pthread_mutex_lock(&c.lock);
    struct ofe_msg *m1 = c.held[0], *m2 = c.held[1];
    c.nheld = 0;
    pthread_mutex_unlock(&c.lock);
    ofe_msg_nack(m2, 60000);
    ofe_msg_ack(m1);
    ofe_sub_close(s);
    coll_fini(&c);

    struct coll c2;
    coll_init(&c2, DO_ACK);
    s = sub_on(b, topic, group, "u1", 8, &c2);
    assert_true(wait_n(&c2, 2, 10000));
    assert_int_equal(coll_count(&c2, "un-2"), 1);
    assert_int_equal(coll_count(&c2, "un-1"), 1); /* a duplicate: the price of the nack */
    ofe_sub_close(s);
    /* acked and closed cleanly: nothing comes back */
    struct coll c3;
    coll_init(&c3, DO_ACK);
    s = sub_on(b, topic, group, "u1", 8, &c3);
    msleep(500);
    assert_int_equal(coll_n(&c3), 0);
    ofe_sub_close(s);
    coll_fini(&c2);
    coll_fini(&c3);
    ofe_bus_close(b, 2000);
}

/* A member that vanished with unacked messages and does not come back
 * within sessionExpiry loses them: mosquitto drops the session and gives
 * them to nobody. (Closing with an abandoned message drops the connection
 * without DISCONNECT, as a crash does.) */
static void test_expired_session_loses_held_messages(void **state)
{
    char topic[64], group[64], why[400], err[600];
    name(topic, sizeof(topic), "expiry");
    name(group, sizeof(group), "expiry");
    struct mopt o = {.url = SRV->url, .session_expiry_ms = 2000};
    struct ofe_bus *b = NULL;
    assert_int_equal(open_mqtt(&o, &b, err, sizeof(err)), 0);
    struct coll c;
    coll_init(&c, DO_HOLD);
    struct ofe_sub *s = sub_on(b, topic, group, "short", 8, &c);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    publish_ok(b, topic, "ex-1");
    assert_true(wait_n(&c, 1, 5000));
    pthread_mutex_lock(&c.lock);
    struct ofe_msg *m = c.held[0];
    c.nheld = 0;
    pthread_mutex_unlock(&c.lock);
    ofe_msg_nack(m, 60000); /* abandoned at close: no PUBACK, no DISCONNECT */
    ofe_sub_close(s);
    msleep(3500);
    struct coll c2;
    coll_init(&c2, DO_ACK);
    s = sub_on(b, topic, group, "short", 8, &c2);
    publish_ok(b, topic, "ex-2");
    assert_true(wait_n(&c2, 1, 5000));
    msleep(300);
    assert_int_equal(coll_count(&c2, "ex-1"), 0); /* lost with the session */
    assert_int_equal(coll_count(&c2, "ex-2"), 1);
    ofe_sub_close(s);
    coll_fini(&c);
    coll_fini(&c2);
    ofe_bus_close(b, 2000);
}

/* A message held unacked for longer than the keep-alive interval stalls
 * the connection's writes (PINGREQ queues behind its PUBACK): the
 * connection drops and the broker sends the message again. */
static void test_hold_longer_than_keepalive(void **state)
{
    char topic[64], group[64], why[400], err[600];
    name(topic, sizeof(topic), "keepalive");
    name(group, sizeof(group), "keepalive");
    struct mopt o = {.url = SRV->url, .keep_alive_ms = 5000};
    struct ofe_bus *b = NULL;
    assert_int_equal(open_mqtt(&o, &b, err, sizeof(err)), 0);
    struct coll c;
    coll_init(&c, DO_HOLD);
    struct ofe_sub *s = sub_on(b, topic, group, "slow", 8, &c);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    publish_ok(b, topic, "ka-1");
    assert_true(wait_n(&c, 1, 5000));
    pthread_mutex_lock(&c.lock);
    c.action = DO_ACK; /* the copy that comes again is acked */
    pthread_mutex_unlock(&c.lock);
    assert_true(wait_n(&c, 2, 20000));
    assert_int_equal(coll_count(&c, "ka-1"), 2);
    release_held(&c, true); /* the first copy, acked late: no effect */
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    publish_ok(b, topic, "ka-2");
    assert_true(wait_n(&c, 3, 5000));
    msleep(300);
    assert_int_equal(coll_count(&c, "ka-1"), 2);
    ofe_sub_close(s);
    coll_fini(&c);
    ofe_bus_close(b, 2000);
}

/* Messages delivered and not acked while the broker restarts come again on
 * the resumed session; the clients reconnect by themselves. */
static void test_broker_restart_with_held_messages(void **state)
{
    const char *extra[] = {NULL};
    struct tu_server *srv = tu_server_start(TU_MOSQUITTO, extra);
    assert_non_null(srv);
    char topic[64], group[64], why[400];
    name(topic, sizeof(topic), "brh");
    name(group, sizeof(group), "brh");
    struct ofe_bus *b = bus_on(srv->url, NULL);
    struct coll c;
    coll_init(&c, DO_HOLD);
    struct ofe_sub *s = sub_on(b, topic, group, "h1", 8, &c);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    publish_ok(b, topic, "bh-1");
    publish_ok(b, topic, "bh-2");
    assert_true(wait_n(&c, 2, 5000));
    tu_server_stop(srv); /* SIGTERM: mosquitto saves sessions and messages */
    uint64_t end = now_ms() + 10000;
    while (ofe_bus_ready(b, why, sizeof(why)) && now_ms() < end)
        msleep(10);
    assert_false(ofe_bus_ready(b, why, sizeof(why)));
    assert_non_null(strstr(why, srv->url));
    release_held(&c, true); /* acks for a connection that is gone: no effect */
    pthread_mutex_lock(&c.lock);
    c.action = DO_ACK;
    pthread_mutex_unlock(&c.lock);
    assert_int_equal(tu_server_restart(srv), 0);
    assert_true(wait_ready(b, 30000, why, sizeof(why)));
    publish_ok(b, topic, "bh-3");
    end = now_ms() + 10000;
    while (
        (coll_count(&c, "bh-1") < 2 || coll_count(&c, "bh-2") < 2 || coll_count(&c, "bh-3") < 1) &&
        now_ms() < end)
        msleep(10);
    assert_int_equal(coll_count(&c, "bh-1"), 2);
    assert_int_equal(coll_count(&c, "bh-2"), 2);
    assert_int_equal(coll_count(&c, "bh-3"), 1);
    ofe_sub_close(s);
    coll_fini(&c);
    ofe_bus_close(b, 2000);
    tu_server_free(srv);
}

/* ---- errors ----------------------------------------------------------------- */

static void expect_open_error(const struct mopt *o, int want, const char *needle)
{
    struct ofe_bus *b = NULL;
    char err[600] = "";
    int rc = open_mqtt(o, &b, err, sizeof(err));
    if (rc != want || !strstr(err, needle))
        fail_msg("open %s: got %d '%s', wanted %d with '%s'", o->url, rc, err, want, needle);
}

static void test_bad_options(void **state)
{
    expect_open_error(&(struct mopt){.url = "http://127.0.0.1:1883"}, OFE_EINVAL,
                      "unsupported scheme 'http'");
    expect_open_error(&(struct mopt){.url = "tcp://127.0.0.1:99999"}, OFE_EINVAL, "bad port");
    expect_open_error(&(struct mopt){.url = "tcp://127.0.0.1:1883/topic"}, OFE_EINVAL,
                      "no path or query");
    expect_open_error(&(struct mopt){.url = "tcp://:1883"}, OFE_EINVAL, "no host name");
    expect_open_error(&(struct mopt){.url = "tcp://u:p%zz@127.0.0.1"}, OFE_EINVAL,
                      "percent-encoding");
    expect_open_error(&(struct mopt){.url = SRV->url, .keep_alive_ms = 2000}, OFE_EINVAL,
                      "at least 5s");
    expect_open_error(&(struct mopt){.url = "ssl://127.0.0.1:8883", .ca_cert = "/nonexistent.pem"},
                      OFE_EINVAL, "neither PEM text");
    expect_open_error(&(struct mopt){.url = "ssl://127.0.0.1:8883",
                                     .ca_cert = "-----BEGIN CERTIFICATE-----\nnot a cert\n"
                                                "-----END CERTIFICATE-----\n",
                                     .client_cert = "/etc/hostname"},
                      OFE_EINVAL, "clientCert and clientKey go together");
    expect_open_error(&(struct mopt){.url = SRV->url, .password = "x"}, OFE_EINVAL,
                      "password needs a username");

    /* subscription and topic names */
    struct ofe_bus *b = bus_on(SRV->url, NULL);
    char err[600];
    struct coll c;
    coll_init(&c, DO_ACK);
    struct ofe_sub *s = NULL;
    const char *t1[] = {"ok"};
    struct ofe_sub_opts so = {
        .group = "a/b", .topics = t1, .ntopics = 1, .on_msg = on_msg, .opaque = &c};
    assert_int_equal(ofe_bus_subscribe(b, &so, &s, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "cannot name a shared subscription"));
    const char *t2[] = {"a/#/b"};
    so.group = "g";
    so.topics = t2;
    assert_int_equal(ofe_bus_subscribe(b, &so, &s, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "not a valid topic filter"));
    struct ofe_ce *ev = event("bad-1", "x");
    assert_int_equal(ofe_bus_publish(b, "a/+", ev, NULL, NULL, err, sizeof(err)), OFE_EINVAL);
    assert_non_null(strstr(err, "wildcards"));
    /* one member id twice in a process */
    so.topics = t1;
    so.consumer = "twin";
    struct ofe_sub *s1 = NULL;
    assert_int_equal(ofe_bus_subscribe(b, &so, &s1, err, sizeof(err)), 0);
    assert_int_equal(ofe_bus_subscribe(b, &so, &s, err, sizeof(err)), OFE_EEXIST);
    assert_non_null(strstr(err, "already used"));
    ofe_sub_close(s1);
    ofe_ce_unref(ev);
    coll_fini(&c);
    ofe_bus_close(b, 1000);
}

static void test_unreachable_broker(void **state)
{
    char url[64], err[600], why[600];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", tu_free_port());
    struct mopt o = {.url = url, .publish_timeout_ms = 1000};
    struct ofe_bus *b = NULL;
    assert_int_equal(open_mqtt(&o, &b, err, sizeof(err)), 0); /* connects in the background */
    uint64_t end = now_ms() + 10000;
    while (!(!ofe_bus_ready(b, why, sizeof(why)) && strstr(why, "Connection refused")) &&
           now_ms() < end)
        msleep(10);
    assert_false(ofe_bus_ready(b, why, sizeof(why)));
    assert_non_null(strstr(why, "Connection refused"));
    struct ofe_ce *ev = event("un-1", "x");
    uint64_t t0 = now_ms();
    int rc = ofe_bus_publish_sync(b, "t", ev, err, sizeof(err));
    assert_int_equal(rc, OFE_ECONN);
    assert_non_null(strstr(err, "Connection refused"));
    assert_true(now_ms() - t0 < 10000);
    ofe_ce_unref(ev);
    ofe_bus_close(b, 1000);
}

static void test_authentication(void **state)
{
    char *dir = tu_mkdtemp("mqtt-auth");
    char pw[4200], cmd[4400], line[4300];
    snprintf(pw, sizeof(pw), "%s/passwd", dir);
    snprintf(cmd, sizeof(cmd), "mosquitto_passwd -c -b %s alice 's3cret p@ss' >/dev/null 2>&1", pw);
    if (system(cmd) != 0) {
        tu_rmrf(dir);
        free(dir);
        skip();
    }
    snprintf(line, sizeof(line), "password_file %s", pw);
    const char *extra[] = {"allow_anonymous false", line, NULL};
    struct tu_server *srv = tu_server_start(TU_MOSQUITTO, extra);
    assert_non_null(srv);
    char err[600], why[600], url[200];
    struct ofe_bus *b = NULL;
    /* wrong password: not ready, and says why */
    struct mopt o = {
        .url = srv->url, .username = "alice", .password = "wrong", .publish_timeout_ms = 1000};
    assert_int_equal(open_mqtt(&o, &b, err, sizeof(err)), 0);
    uint64_t end = now_ms() + 5000;
    while (!(!ofe_bus_ready(b, why, sizeof(why)) && strstr(why, "refused")) && now_ms() < end)
        msleep(10);
    assert_non_null(strstr(why, "refused the connection"));
    assert_true(strstr(why, "Bad user name or password") || strstr(why, "Not authorized"));
    struct ofe_ce *ev = event("auth-1", "x");
    assert_int_equal(ofe_bus_publish_sync(b, "t", ev, err, sizeof(err)), OFE_ECONN);
    assert_non_null(strstr(err, "refused the connection"));
    ofe_bus_close(b, 1000);
    /* right one, as options and in the URL (percent-encoded) */
    o.password = "s3cret p@ss";
    assert_int_equal(open_mqtt(&o, &b, err, sizeof(err)), 0);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    assert_int_equal(ofe_bus_publish_sync(b, "t", ev, err, sizeof(err)), 0);
    ofe_bus_close(b, 1000);
    snprintf(url, sizeof(url), "tcp://alice:s3cret%%20p%%40ss@127.0.0.1:%d", srv->port);
    struct mopt o2 = {.url = url};
    assert_int_equal(open_mqtt(&o2, &b, err, sizeof(err)), 0);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    assert_null(strstr(ofe_bus_describe(b), "s3cret")); /* no password in logs */
    assert_int_equal(ofe_bus_publish_sync(b, "t", ev, err, sizeof(err)), 0);
    ofe_bus_close(b, 1000);
    ofe_ce_unref(ev);
    tu_server_free(srv);
    tu_rmrf(dir);
    free(dir);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void test_tls(void **state)
{
    char *dir = tu_mkdtemp("mqtt-tls");
    /* a CA, a server certificate for 127.0.0.1 signed by it, another CA */
    int rc = sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
                "-days 2 -subj /CN=ofe-test-ca >/dev/null 2>&1 && "
                "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
                "-subj /CN=127.0.0.1 >/dev/null 2>&1 && "
                "printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
                "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                "-out srv.pem -days 2 -extfile ext >/dev/null 2>&1 && "
                "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem "
                "-days 2 -subj /CN=other-ca >/dev/null 2>&1",
                dir);
    if (rc != 0) {
        tu_rmrf(dir);
        free(dir);
        skip(); /* no openssl command */
    }
    int tport = tu_free_port();
    char l1[64], l2[4200], l3[4200], l4[4200];
    snprintf(l1, sizeof(l1), "listener %d 127.0.0.1", tport);
    snprintf(l2, sizeof(l2), "certfile %s/srv.pem", dir);
    snprintf(l3, sizeof(l3), "keyfile %s/srv.key", dir);
    snprintf(l4, sizeof(l4), "cafile %s/ca.pem", dir);
    const char *extra[] = {l1, l2, l3, l4, NULL};
    struct tu_server *srv = tu_server_start(TU_MOSQUITTO, extra);
    assert_non_null(srv);
    assert_int_equal(tu_wait_port(tport, 5000), 0);
    char path[4200], url[64], err[600], why[600];
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    char *ca = tu_read_file(path, NULL);
    snprintf(path, sizeof(path), "%s/other.pem", dir);
    char *other = tu_read_file(path, NULL);
    assert_non_null(ca);
    assert_non_null(other);
    snprintf(url, sizeof(url), "ssl://127.0.0.1:%d", tport);
    /* the right CA given inline (as Dapr's caCert): works */
    struct mopt o = {.url = url, .ca_cert = ca, .publish_timeout_ms = 2000};
    struct ofe_bus *b = NULL;
    assert_int_equal(open_mqtt(&o, &b, err, sizeof(err)), 0);
    if (!wait_ready(b, 10000, why, sizeof(why)))
        fail_msg("TLS with the right CA: %s", why);
    roundtrip(b, "tls");
    ofe_bus_close(b, 1000);
    /* another CA: refused, and the reason says so */
    o.ca_cert = other;
    assert_int_equal(open_mqtt(&o, &b, err, sizeof(err)), 0);
    uint64_t end = now_ms() + 5000;
    while (!(!ofe_bus_ready(b, why, sizeof(why)) && strstr(why, "cannot connect")) &&
           now_ms() < end)
        msleep(10);
    assert_false(ofe_bus_ready(b, why, sizeof(why)));
    if (!strstr(why, "certificate verify failed"))
        fail_msg("TLS with a wrong CA: %s", why);
    ofe_bus_close(b, 1000);
    free(ca);
    free(other);
    tu_server_free(srv);
    tu_rmrf(dir);
    free(dir);
}

/* MQTT 3.1.1 has no way to learn the broker's size limit: mosquitto drops
 * the connection on an oversized PUBLISH. The publish fails after a few
 * drops instead of being sent forever, and the bus goes on working. */
static void test_oversize_mqtt311(void **state)
{
    const char *extra[] = {"max_packet_size 100000", NULL};
    struct tu_server *srv = tu_server_start(TU_MOSQUITTO, extra);
    assert_non_null(srv);
    struct mopt o = {.url = srv->url, .version = OFE_CONFIG_MQTT_V311, .publish_timeout_ms = 20000};
    struct ofe_bus *b = NULL;
    char err[600], why[600];
    assert_int_equal(open_mqtt(&o, &b, err, sizeof(err)), 0);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    char *big = malloc(200001);
    memset(big, 'x', 200000);
    big[200000] = '\0';
    struct ofe_ce *ev = event("big-1", big);
    free(big);
    int rc = ofe_bus_publish_sync(b, "big", ev, err, sizeof(err));
    assert_int_equal(rc, OFE_EREMOTE);
    assert_non_null(strstr(err, "dropped 3 times"));
    ofe_ce_unref(ev);
    assert_true(wait_ready(b, 10000, why, sizeof(why)));
    publish_ok(b, "big", "small-after");
    ofe_bus_close(b, 1000);
    tu_server_free(srv);
}

/* ---- driver --------------------------------------------------------------- */

static int setup(void **state)
{
    SRV = tu_server_start(TU_MOSQUITTO, NULL);
    return SRV ? 0 : -1;
}

static int teardown(void **state)
{
    tu_server_free(SRV);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    if (!getenv("OFE_TEST_VERBOSE"))
        ofe_log_set_level(OFE_LOG_ERROR);
    if (argc >= 6 && !strcmp(argv[1], "--child"))
        return child_main(argv[2], argv[3], argv[4], argv[5]);
    ssize_t n = readlink("/proc/self/exe", SELF, sizeof(SELF) - 1);
    if (n <= 0)
        return 1;
    SELF[n] = '\0';
    if (access("/usr/sbin/mosquitto", X_OK) != 0 && system("command -v mosquitto >/dev/null")) {
        printf("mosquitto is not installed: skipped\n");
        return 77;
    }
    snprintf(RUN, sizeof(RUN), "%d-%llu", (int)getpid(), (unsigned long long)(now_ms() % 100000));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libmosquitto_puback_timing),
        cmocka_unit_test(test_options_eventbus_and_component),
        cmocka_unit_test(test_binary_mode_on_the_wire),
        cmocka_unit_test(test_structured_mode_mqtt311),
        cmocka_unit_test(test_killed_member_resumes_its_session),
        cmocka_unit_test(test_nack_redelivers),
        cmocka_unit_test(test_unresolved_at_close_come_back),
        cmocka_unit_test(test_expired_session_loses_held_messages),
        cmocka_unit_test(test_hold_longer_than_keepalive),
        cmocka_unit_test(test_broker_restart_with_held_messages),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_unreachable_broker),
        cmocka_unit_test(test_authentication),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_oversize_mqtt311),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    mosquitto_lib_cleanup();
    return rc;
}
