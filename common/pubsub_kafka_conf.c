/* librdkafka configuration of the kafka backend from a Kafka EventBus block
 * or a Dapr pubsub.kafka Component (struct ofe_config_kafka_bus).
 *
 * Order: the bus options (brokers, security, compression, size limit), the
 * role's defaults (producer: acks=all, idempotence; consumer: where a new
 * group starts, topic auto-creation, bounded prefetch), every `rdkafka.*`
 * entry verbatim so that a user can tune anything, and last what the
 * backend cannot work without (consumer: group.id, manual commits only).
 *
 * authType (Dapr's names):
 *   none      plaintext; TLS (ssl) when caCert is given and disableTls is
 *             not set (an ofevents extension: Dapr has no TLS without auth)
 *   password  SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 (saslMechanism)
 *             with saslUsername / saslPassword, over TLS unless disableTls
 *   mtls      TLS with clientCert / clientKey (PEM); disableTls is an error
 *   oidc      SASL OAUTHBEARER with librdkafka's OIDC client-credentials
 *             login (oidcTokenEndpoint, oidcClientID, oidcClientSecret,
 *             oidcScopes), over TLS unless disableTls
 * caCert (PEM) verifies the brokers; skipVerify turns verification and the
 * host-name check off. */
#include <stdio.h>
#include <string.h>

#include "ofe/buf.h"
#include "ofe/config.h"
#include "ofe/err.h"
#include "pubsub_kafka_int.h"

const char *kafka_conf_protocol(const struct ofe_config_kafka_bus *kb)
{
    bool tls = !kb->disable_tls;
    switch (kb->auth_type) {
    case OFE_CONFIG_KAFKA_AUTH_PASSWORD:
    case OFE_CONFIG_KAFKA_AUTH_OIDC:
        return tls ? "sasl_ssl" : "sasl_plaintext";
    case OFE_CONFIG_KAFKA_AUTH_MTLS:
        return "ssl";
    default:
        return tls && kb->ca_cert && *kb->ca_cert ? "ssl" : "plaintext";
    }
}

/* Sets one property; on failure fills errstr with what and why. `what`
 * names the option as the user wrote it. */
static int set(rd_kafka_conf_t *c, const char *what, const char *name, const char *value,
               char *errstr, size_t errstr_size)
{
    char e[512];
    if (rd_kafka_conf_set(c, name, value, e, sizeof(e)) == RD_KAFKA_CONF_OK)
        return 0;
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: %s: %s", what, e);
}

static bool has(const char *s)
{
    return s && *s;
}

static int set_security(rd_kafka_conf_t *c, const struct ofe_config_kafka_bus *kb, char *errstr,
                        size_t errstr_size)
{
    const char *proto = kafka_conf_protocol(kb);
    int rc = set(c, "authType", "security.protocol", proto, errstr, errstr_size);
    if (rc)
        return rc;
    switch (kb->auth_type) {
    case OFE_CONFIG_KAFKA_AUTH_PASSWORD: {
        static const char *const mech[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
        int m = kb->sasl_mechanism >= 0 && kb->sasl_mechanism < 3 ? kb->sasl_mechanism : 0;
        if (!has(kb->sasl_username) || !kb->sasl_password)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "kafka: authType password needs saslUsername and saslPassword");
        if ((rc = set(c, "saslMechanism", "sasl.mechanisms", mech[m], errstr, errstr_size)) ||
            (rc =
                 set(c, "saslUsername", "sasl.username", kb->sasl_username, errstr, errstr_size)) ||
            (rc = set(c, "saslPassword", "sasl.password", kb->sasl_password, errstr, errstr_size)))
            return rc;
        break;
    }
    case OFE_CONFIG_KAFKA_AUTH_MTLS:
        if (kb->disable_tls)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "kafka: authType mtls needs TLS, but disableTls is true");
        if (!has(kb->client_cert) || !has(kb->client_key))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "kafka: authType mtls needs clientCert and clientKey (PEM)");
        break;
    case OFE_CONFIG_KAFKA_AUTH_OIDC: {
        if (!has(kb->oidc_token_endpoint) || !has(kb->oidc_client_id) ||
            !has(kb->oidc_client_secret))
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "kafka: authType oidc needs oidcTokenEndpoint, oidcClientID and "
                           "oidcClientSecret");
        if ((rc = set(c, "authType", "sasl.mechanisms", "OAUTHBEARER", errstr, errstr_size)) ||
            (rc = set(c, "authType", "sasl.oauthbearer.method", "oidc", errstr, errstr_size)) ||
            (rc = set(c, "oidcTokenEndpoint", "sasl.oauthbearer.token.endpoint.url",
                      kb->oidc_token_endpoint, errstr, errstr_size)) ||
            (rc = set(c, "oidcClientID", "sasl.oauthbearer.client.id", kb->oidc_client_id, errstr,
                      errstr_size)) ||
            (rc = set(c, "oidcClientSecret", "sasl.oauthbearer.client.secret",
                      kb->oidc_client_secret, errstr, errstr_size)))
            return rc;
        if (kb->oidc_scopes.n) {
            /* OAuth 2.0 scopes are space-separated in the token request. */
            struct ofe_buf b = OFE_BUF_INIT;
            for (size_t i = 0; i < kb->oidc_scopes.n; i++)
                ofe_buf_printf(&b, "%s%s", i ? " " : "", kb->oidc_scopes.v[i]);
            rc = set(c, "oidcScopes", "sasl.oauthbearer.scope", b.data ? (char *)b.data : "",
                     errstr, errstr_size);
            ofe_buf_fini(&b);
            if (rc)
                return rc;
        }
        break;
    }
    default:
        break;
    }
    if (strstr(proto, "ssl")) {
        if (has(kb->ca_cert) &&
            (rc = set(c, "caCert", "ssl.ca.pem", kb->ca_cert, errstr, errstr_size)))
            return rc;
        if (has(kb->client_cert) && has(kb->client_key) &&
            ((rc = set(c, "clientCert", "ssl.certificate.pem", kb->client_cert, errstr,
                       errstr_size)) ||
             (rc = set(c, "clientKey", "ssl.key.pem", kb->client_key, errstr, errstr_size))))
            return rc;
        if (kb->skip_verify && ((rc = set(c, "skipVerify", "enable.ssl.certificate.verification",
                                          "false", errstr, errstr_size)) ||
                                (rc = set(c, "skipVerify", "ssl.endpoint.identification.algorithm",
                                          "none", errstr, errstr_size))))
            return rc;
    }
    return 0;
}

rd_kafka_conf_t *kafka_conf_build(const struct ofe_config_kafka_bus *kb,
                                  const struct kafka_conf_opts *o, char *errstr, size_t errstr_size)
{
    static const char *const codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    char num[32];
    if (!has(kb->brokers)) {
        ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: brokers is required");
        return NULL;
    }
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (!c) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    size_t limit = o->max_bytes + 1024; /* protocol framing around one record */
    if (limit < 1000)
        limit = 1000;
    if (limit > 1000000000)
        limit = 1000000000;
    snprintf(num, sizeof(num), "%zu", limit);
    const char *client_id = has(kb->client_id) ? kb->client_id : o->client_id;
    if (set(c, "brokers", "bootstrap.servers", kb->brokers, errstr, errstr_size) ||
        (client_id && set(c, "clientID", "client.id", client_id, errstr, errstr_size)) ||
        set_security(c, kb, errstr, errstr_size) ||
        set(c, "maxMessageBytes", "message.max.bytes", num, errstr, errstr_size))
        goto fail;

    if (o->role == KAFKA_PRODUCER) {
        int codec = kb->compression >= 0 && kb->compression < 5 ? kb->compression : 0;
        /* The core bounds unconfirmed publishes (max_pending); librdkafka
         * counts a message until its report callback has returned, a bit
         * longer than the core does: leave it room. */
        unsigned q = o->max_pending < 1000 ? 2000 : o->max_pending * 2;
        char qbuf[32], tbuf[32];
        snprintf(qbuf, sizeof(qbuf), "%u", q > 10000000 ? 10000000 : q);
        snprintf(tbuf, sizeof(tbuf), "%u", o->timeout_ms ? o->timeout_ms : 30000);
        if (set(c, "compression", "compression.codec", codecs[codec], errstr, errstr_size) ||
            set(c, "kafka", "enable.idempotence", "true", errstr, errstr_size) ||
            set(c, "kafka", "acks", "all", errstr, errstr_size) ||
            set(c, "kafka", "message.timeout.ms", tbuf, errstr, errstr_size) ||
            set(c, "kafka", "queue.buffering.max.messages", qbuf, errstr, errstr_size) ||
            /* Key -> partition as the Java client does, so keyed events of
             * ofevents and of Java producers land on the same partition. */
            set(c, "kafka", "partitioner", "murmur2_random", errstr, errstr_size) ||
            /* Events without a partition key spread over the partitions
             * one by one (not in sticky runs), so the members of a group
             * share even short bursts. */
            set(c, "kafka", "sticky.partitioning.linger.ms", "0", errstr, errstr_size) ||
            /* Readiness and gauges come from the statistics. */
            set(c, "kafka", "statistics.interval.ms", "1000", errstr, errstr_size))
            goto fail;
    } else {
        if (set(c, "initialOffset", "auto.offset.reset", o->offset_reset, errstr, errstr_size) ||
            set(c, "kafka", "allow.auto.create.topics", "true", errstr, errstr_size) ||
            set(c, "kafka", "enable.partition.eof", "false", errstr, errstr_size) ||
            /* Prefetch is librdkafka's memory: keep it bounded. */
            set(c, "kafka", "queued.max.messages.kbytes", "16384", errstr, errstr_size) ||
            /* The backend commits acked offsets at this pace. */
            set(c, "kafka", "auto.commit.interval.ms", "100", errstr, errstr_size) ||
            set(c, "kafka", "statistics.interval.ms", "5000", errstr, errstr_size))
            goto fail;
    }

    for (size_t i = 0; i < kb->rdkafka.n; i++) {
        const struct ofe_config_kv *kv = &kb->rdkafka.v[i];
        char e[512];
        if (rd_kafka_conf_set(c, kv->key, kv->value ? kv->value : "", e, sizeof(e)) !=
            RD_KAFKA_CONF_OK) {
            if (kv->pos.file && kv->pos.line)
                ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: rdkafka.%s: %s (%s:%d:%d)",
                        kv->key, e, kv->pos.file, kv->pos.line, kv->pos.col);
            else
                ofe_err(errstr, errstr_size, OFE_EINVAL, "kafka: rdkafka.%s: %s", kv->key, e);
            goto fail;
        }
    }

    if (o->role == KAFKA_CONSUMER &&
        (set(c, "consumer group", "group.id", o->group, errstr, errstr_size) ||
         set(c, "kafka", "enable.auto.commit", "false", errstr, errstr_size) ||
         set(c, "kafka", "enable.auto.offset.store", "false", errstr, errstr_size)))
        goto fail;
    return c;
fail:
    rd_kafka_conf_destroy(c);
    return NULL;
}
