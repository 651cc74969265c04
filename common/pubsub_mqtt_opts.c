/* mqtt backend: options copied at open (URL, credentials, TLS files,
 * session settings), member client ids, and the set of ids this process
 * uses. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ofe/err.h"
#include "ofe/log.h"
#include "pubsub_mqtt_int.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a new string; NULL on a bad escape or
 * allocation failure. */
static char *pct_dup(const char *s, size_t len)
{
    char *out = malloc(len + 1), *w = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int a = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
            int b = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
            int h = a < 0 || b < 0 ? -1 : a * 16 + b;
            if (h <= 0) { /* a bad escape, or %00 */
                free(out);
                return NULL;
            }
            *w++ = (char)h;
            i += 2;
        } else {
            *w++ = s[i];
        }
    }
    *w = '\0';
    return out;
}

int mqtt__parse_url(const char *url, char **host, int *port, bool *tls, char **user, char **pass,
                    char *errstr, size_t errstr_size)
{
    static const struct {
        const char *scheme;
        bool tls;
    } schemes[] = {{"tcp", false}, {"mqtt", false}, {"ssl", true}, {"mqtts", true}, {"tls", true}};
    *host = *user = *pass = NULL;
    const char *sep = url ? strstr(url, "://") : NULL;
    if (!sep)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "url '%s': expected tcp://, mqtt://, ssl://, mqtts:// or tls://HOST[:PORT]",
                       url ? url : "");
    size_t slen = (size_t)(sep - url);
    bool found = false;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strlen(schemes[i].scheme) == slen && !strncasecmp(url, schemes[i].scheme, slen)) {
            *tls = schemes[i].tls;
            found = true;
        }
    if (!found)
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "url '%s': unsupported scheme '%.*s' (tcp, mqtt, ssl, mqtts or tls; "
                       "libmosquitto has no websockets client)",
                       url, (int)slen, url);
    const char *a = sep + 3, *end = a + strcspn(a, "/?#");
    if (*end == '?' || *end == '#' || (*end == '/' && end[1]))
        return ofe_err(errstr, errstr_size, OFE_EINVAL,
                       "url '%s': MQTT URLs have no path or query (only scheme://host:port)", url);
    const char *at = memchr(a, '@', (size_t)(end - a));
    if (at) {
        /* the last '@' ends the userinfo (a password may contain '@' unescaped) */
        for (const char *q = at; q < end; q++)
            if (*q == '@')
                at = q;
        const char *colon = memchr(a, ':', (size_t)(at - a));
        size_t ulen = (size_t)((colon ? colon : at) - a);
        *user = pct_dup(a, ulen);
        if (colon)
            *pass = pct_dup(colon + 1, (size_t)(at - colon - 1));
        if (!*user || (colon && !*pass)) {
            free(*user);
            free(*pass);
            *user = *pass = NULL;
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "url: bad percent-encoding in the user name or password");
        }
        if (!**user) {
            free(*user);
            *user = NULL;
        }
        a = at + 1;
    }
    const char *hs = a, *he, *ps = NULL;
    if (*a == '[') {
        he = memchr(a, ']', (size_t)(end - a));
        if (!he)
            goto bad_host;
        hs = a + 1;
        if (he + 1 < end) {
            if (he[1] != ':')
                goto bad_host;
            ps = he + 2;
        }
    } else {
        he = memchr(a, ':', (size_t)(end - a));
        if (he)
            ps = he + 1;
        else
            he = end;
    }
    if (he == hs)
        goto bad_host;
    *port = *tls ? 8883 : 1883;
    if (ps) {
        long v = 0;
        if (ps == end)
            goto bad_port;
        for (const char *q = ps; q < end; q++) {
            if (!isdigit((unsigned char)*q) || v > 65535)
                goto bad_port;
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535)
            goto bad_port;
        *port = (int)v;
    }
    *host = strndup(hs, (size_t)(he - hs));
    if (!*host)
        goto nomem;
    return 0;
bad_port:
    free(*user);
    free(*pass);
    *user = *pass = NULL;
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "url '%s': bad port (1 to 65535)", url);
bad_host:
    free(*user);
    free(*pass);
    *user = *pass = NULL;
    return ofe_err(errstr, errstr_size, OFE_EINVAL, "url '%s': no host name", url);
nomem:
    free(*user);
    free(*pass);
    *user = *pass = NULL;
    return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
}

/* A PEM option: the config holds the contents (inline, or read from
 * fieldFile, whose path is kept in `file`). Uses that path when there is
 * one, writes inline PEM text to a private temp file, and accepts a value
 * that is not PEM text as a path. */
static int pem_path(struct mqtt_opts *o, const char *key, const char *value, const char *file,
                    const char *name, char **out, char *errstr, size_t errstr_size)
{
    if (!value && !file)
        return 0;
    if (file) {
        if (access(file, R_OK) != 0)
            return ofe_err(errstr, errstr_size, OFE_EINVAL, "%sFile '%s': %s", key, file,
                           strerror(errno));
        *out = strdup(file);
        return *out ? 0 : ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    if (!strstr(value, "-----BEGIN")) {
        if (access(value, R_OK) != 0)
            return ofe_err(errstr, errstr_size, OFE_EINVAL,
                           "%s: neither PEM text (-----BEGIN ...) nor a readable file ('%s': %s)",
                           key, value, strerror(errno));
        *out = strdup(value);
        return *out ? 0 : ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    if (!o->tmpdir) {
        const char *t = getenv("TMPDIR");
        char tmpl[4096];
        snprintf(tmpl, sizeof(tmpl), "%s/ofe-mqtt-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpl))
            return ofe_err(errstr, errstr_size, OFE_EIO, "%s: cannot make a directory for it: %s",
                           key, strerror(errno));
        o->tmpdir = strdup(tmpl);
        if (!o->tmpdir) {
            rmdir(tmpl);
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        }
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", o->tmpdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(value);
    if (fd < 0 || write(fd, value, len) != (ssize_t)len || close(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlink(path);
        return ofe_err(errstr, errstr_size, OFE_EIO, "%s: cannot write '%s': %s", key, path,
                       strerror(e));
    }
    *out = strdup(path);
    return *out ? 0 : ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
}

static void opts_free(struct mqtt_opts *o)
{
    if (o->tmpdir) {
        const char *names[] = {"ca.pem", "cert.pem", "key.pem"};
        for (size_t i = 0; i < 3; i++) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", o->tmpdir, names[i]);
            unlink(path);
        }
        rmdir(o->tmpdir);
    }
    free(o->host);
    free(o->url);
    free(o->consumer_id);
    free(o->username);
    if (o->password) {
        memset(o->password, 0, strlen(o->password));
        free(o->password);
    }
    free(o->cafile);
    free(o->certfile);
    free(o->keyfile);
    free(o->tmpdir);
    free(o->component);
    free(o);
}

struct mqtt_opts *mqtt__opts_ref(struct mqtt_opts *o)
{
    atomic_fetch_add(&o->refs, 1);
    return o;
}

void mqtt__opts_unref(struct mqtt_opts *o)
{
    if (o && atomic_fetch_sub(&o->refs, 1) == 1)
        opts_free(o);
}

/* The URL without its password, for logs. */
static char *url_shown(const char *url)
{
    const char *sep = strstr(url, "://");
    const char *a = sep ? sep + 3 : url;
    const char *end = a + strcspn(a, "/?#");
    const char *at = NULL;
    for (const char *q = a; q < end; q++)
        if (*q == '@')
            at = q;
    const char *colon = at ? memchr(a, ':', (size_t)(at - a)) : NULL;
    if (!colon)
        return strdup(url);
    struct ofe_buf b = OFE_BUF_INIT;
    ofe_buf_append(&b, url, (size_t)(colon - url));
    ofe_buf_puts(&b, ":***");
    ofe_buf_puts(&b, at);
    return ofe_buf_detach(&b, NULL);
}

int mqtt__opts_new(const struct ofe_config_mqtt_bus *c, const char *component,
                   struct mqtt_opts **out, char *errstr, size_t errstr_size)
{
    struct mqtt_opts *o = calloc(1, sizeof(*o));
    if (!o)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    atomic_init(&o->refs, 1);
    char *uuser = NULL, *upass = NULL;
    char err[512];
    int rc = mqtt__parse_url(c->url, &o->host, &o->port, &o->tls, &uuser, &upass, err, sizeof(err));
    if (rc) {
        ofe_err(errstr, errstr_size, rc, "mqtt: %s", err);
        goto fail;
    }
    o->url = url_shown(c->url);
    o->component = strdup(component ? component : "pubsub");
    if (!o->url || !o->component) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    if (c->qos < 0 || c->qos > 2) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "mqtt: qos %lld: expected 0, 1 or 2",
                     (long long)c->qos);
        goto fail;
    }
    o->qos = (int)c->qos;
    o->retain = c->retain;
    o->clean_session = c->clean_session;
    o->version =
        c->protocol_version == OFE_CONFIG_MQTT_V311 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
    if (c->keep_alive_ms > 0 && c->keep_alive_ms < 5000) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                     "mqtt: keepAlive %lld ms: libmosquitto needs at least 5s",
                     (long long)c->keep_alive_ms);
        goto fail;
    }
    int64_t ka = c->keep_alive_ms > 0 ? c->keep_alive_ms / 1000 : 60;
    o->keepalive_s = ka > 65535 ? 65535 : (int)ka;
    int64_t se = c->session_expiry_ms / 1000;
    o->session_expiry_s = se > 0xffffffffLL ? 0xffffffffu : (uint32_t)se;
    if (o->version == MQTT_PROTOCOL_V5 && !o->clean_session && o->session_expiry_s == 0)
        OFE_WARN(o->component, "mqtt",
                 "sessionExpiry 0 with cleanSession false: MQTT 5 sessions end at disconnect, "
                 "so a restarted subscriber does not get what it missed");
    if ((c->consumer_id && !(o->consumer_id = strdup(c->consumer_id)))) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    /* username/password options win over credentials in the URL */
    const char *user = c->username ? c->username : uuser;
    const char *pass = c->password ? c->password : c->username ? NULL : upass;
    if (pass && !user) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL, "mqtt: a password needs a username");
        goto fail;
    }
    if ((user && !(o->username = strdup(user))) || (pass && !(o->password = strdup(pass)))) {
        rc = ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = pem_path(o, "caCert", c->ca_cert, c->ca_cert_file, "ca.pem", &o->cafile, errstr,
                       errstr_size)) ||
        (rc = pem_path(o, "clientCert", c->client_cert, c->client_cert_file, "cert.pem",
                       &o->certfile, errstr, errstr_size)) ||
        (rc = pem_path(o, "clientKey", c->client_key, c->client_key_file, "key.pem", &o->keyfile,
                       errstr, errstr_size)))
        goto fail;
    if (!!o->certfile != !!o->keyfile) {
        rc = ofe_err(errstr, errstr_size, OFE_EINVAL,
                     "mqtt: clientCert and clientKey go together (give both or neither)");
        goto fail;
    }
    if ((o->cafile || o->certfile) && !o->tls)
        OFE_WARN(o->component, "mqtt",
                 "caCert/clientCert are set but url %s is not ssl:// or mqtts://: TLS is off",
                 o->url);
    o->max_packet = MQTT__MAX_PACKET;
    if (c->max_message_bytes > 0 && (uint64_t)c->max_message_bytes < o->max_packet)
        o->max_packet = (uint32_t)c->max_message_bytes;
    snprintf(o->desc, sizeof(o->desc), "mqtt %s (MQTT %s, QoS %d%s%s)", o->url,
             o->version == MQTT_PROTOCOL_V5 ? "5" : "3.1.1", o->qos, o->tls ? ", TLS" : "",
             o->clean_session ? ", clean sessions" : "");
    free(uuser);
    free(upass);
    *out = o;
    return 0;
fail:
    free(uuser);
    free(upass);
    opts_free(o);
    return rc;
}

char *mqtt__member_id(const char *consumer_id, const char *group, const char *member)
{
    struct ofe_buf b = OFE_BUF_INIT;
    int rc = ofe_buf_printf(&b, "%s-%s%s%s", consumer_id ? consumer_id : "ofe", group,
                            member ? "-" : "", member ? member : "");
    if (rc)
        return NULL;
    if (b.len > 128) {
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (size_t i = 0; i < b.len; i++) {
            h ^= (unsigned char)b.data[i];
            h *= 1099511628211ULL;
        }
        b.len = 100;
        if (ofe_buf_printf(&b, "-%016llx", (unsigned long long)h)) {
            ofe_buf_fini(&b);
            return NULL;
        }
    }
    return ofe_buf_detach(&b, NULL);
}

static pthread_mutex_t ids_lock = PTHREAD_MUTEX_INITIALIZER;
static struct id_node {
    struct id_node *next;
    char id[];
} * ids;

bool mqtt__id_claim(const char *id)
{
    pthread_mutex_lock(&ids_lock);
    for (struct id_node *n = ids; n; n = n->next)
        if (!strcmp(n->id, id)) {
            pthread_mutex_unlock(&ids_lock);
            return false;
        }
    struct id_node *n = malloc(sizeof(*n) + strlen(id) + 1);
    if (n) {
        strcpy(n->id, id);
        n->next = ids;
        ids = n;
    }
    pthread_mutex_unlock(&ids_lock);
    return n != NULL;
}

void mqtt__id_release(const char *id)
{
    pthread_mutex_lock(&ids_lock);
    for (struct id_node **pp = &ids; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->id, id)) {
            struct id_node *n = *pp;
            *pp = n->next;
            free(n);
            break;
        }
    pthread_mutex_unlock(&ids_lock);
}
