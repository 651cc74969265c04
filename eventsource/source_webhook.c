/* The webhook source: an HTTP endpoint (Argo Events' names: port,
 * endpoint, method, maxPayloadSize).
 *
 * Webhook events on the same address and port share one listener; a
 * request is routed by exact path, then method (404, 405 with Allow).
 * A request that passes authentication becomes events: CloudEvents in
 * binary, structured or batched mode pass through (ofe_ce_http_decode);
 * any other body becomes the data of one event with the request's
 * Content-Type. The reply waits until every event of the request was
 * accepted by every destination: 202, or 503 when a destination could not
 * take it (the caller retries; a retry may deliver it twice), 502 when a
 * destination refused it for good, 400 with the reason for a malformed
 * CloudEvent, 401 for failed authentication, 413 above maxPayloadSize,
 * and 503 with Retry-After when max in-flight is reached (backpressure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "es.h"
#include "ofe/err.h"
#include "ofe/httpd.h"
#include "ofe/log.h"
#include "webhook.h"

#define WH_TYPE "dev.ofevents.webhook.request"

struct wh_src;

struct wh_route {
    struct wh_src *src;
    struct wh_route *next;
};

struct wh_server {
    char *addr;
    int port;
    struct ofe_httpd *h;
    size_t max_body;
    struct wh_route *routes;
    int refs;
    struct wh_server *next;
};

struct wh_src {
    struct es_source *s;
    const struct ofe_config_webhook_source *c;
    struct wh_server *srv;
    atomic_bool stopping;
    atomic_int active; /* handler calls running (the route may not go away under them) */
};

/* Every listener of the process, keyed by address and port. */
static pthread_mutex_t servers_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t routes_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct wh_server *servers;

/* ---- one request ---------------------------------------------------------- */

struct wh_req {
    struct es_source *s;
    struct ofe_http_exchange *x;
    atomic_int left;
    atomic_int worst;
    unsigned n;
    pthread_mutex_t lock;
    char why[300];
};

static void req_reply(struct wh_req *r)
{
    int worst = atomic_load(&r->worst);
    if (worst == ES_OK) {
        ofe_httpd_replyf(r->x, 202, "accepted %u event%s\n", r->n, r->n == 1 ? "" : "s");
    } else if (worst == ES_REJECTED) {
        ofe_httpd_replyf(r->x, 502, "a destination refused the event: %s\n", r->why);
    } else {
        struct ofe_hdrs h;
        ofe_hdrs_init(&h);
        ofe_hdrs_add_ref(&h, "Retry-After", 11, "5", 1);
        char body[400];
        int n = snprintf(body, sizeof(body), "not delivered, try again: %s\n", r->why);
        ofe_httpd_reply(r->x, 503, "text/plain; charset=utf-8", body, (size_t)n, &h);
        ofe_hdrs_fini(&h);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Drops one count: the last one replies. */
static void req_put(struct wh_req *r, enum es_result res, const char *why)
{
    int cur = atomic_load(&r->worst);
    while ((int)res > cur && !atomic_compare_exchange_weak(&r->worst, &cur, (int)res)) {
    }
    if (res != ES_OK && why) {
        pthread_mutex_lock(&r->lock);
        if (!r->why[0])
            snprintf(r->why, sizeof(r->why), "%s", why);
        pthread_mutex_unlock(&r->lock);
    }
    if (atomic_fetch_sub(&r->left, 1) == 1)
        req_reply(r);
}

static void req_done(void *token, enum es_result res, const char *why)
{
    struct wh_req *r = token;
    if (res != ES_FAILED)
        es_count_acked(r->s, 1);
    req_put(r, res, why);
}

static const char *hdr_str(const struct ofe_hdrs *h, const char *name, char *buf, size_t size)
{
    const struct ofe_hdr *x = ofe_hdrs_get(h, name);
    if (!x || x->value_len == 0 || x->value_len >= size)
        return NULL;
    memcpy(buf, x->value, x->value_len);
    buf[x->value_len] = '\0';
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            return NULL;
    return buf;
}

/* The event of a request that is not a CloudEvent. */
static int native_event(struct wh_src *w, const struct ofe_http_request *req, struct ofe_ce **out,
                        char *err, size_t err_size)
{
    char idb[256], subj[256], ctb[256];
    const char *id = hdr_str(req->headers, "X-GitHub-Delivery", idb, sizeof(idb));
    if (!id)
        id = hdr_str(req->headers, "X-Gitlab-Event-UUID", idb, sizeof(idb));
    if (!id)
        id = hdr_str(req->headers, "Idempotency-Key", idb, sizeof(idb));
    if (!id)
        id = hdr_str(req->headers, "X-Request-Id", idb, sizeof(idb));
    if (!id)
        id = es_uuid(idb, sizeof(idb));
    const char *subject = hdr_str(req->headers, "X-GitHub-Event", subj, sizeof(subj));
    if (!subject)
        subject = hdr_str(req->headers, "X-Gitlab-Event", subj, sizeof(subj));
    const char *ct = hdr_str(req->headers, "Content-Type", ctb, sizeof(ctb));
    bool has_body = req->body_len > 0 || ofe_hdrs_get(req->headers, "Content-Type");
    int rc = es_ce_native(w->s, WH_TYPE, id, subject, -1, ct,
                          has_body ? (req->body ? (const void *)req->body : "") : NULL,
                          req->body_len, out, err, err_size);
    if (rc)
        return rc;
    if (req->query && *req->query &&
        (rc = ofe_ce_set_str(*out, "query", OFE_CE_T_STRING, req->query, err, err_size))) {
        ofe_ce_unref(*out);
        *out = NULL;
    }
    return rc;
}

static void handle(struct wh_src *w, struct ofe_http_exchange *x,
                   const struct ofe_http_request *req)
{
    struct es_source *s = w->s;
    if (atomic_load(&w->stopping)) {
        ofe_httpd_replyf(x, 503, "the endpoint is being reconfigured, try again\n");
        return;
    }
    if ((int64_t)req->body_len > w->c->max_payload_size) {
        ofe_httpd_replyf(x, 413, "request body of %zu bytes is above maxPayloadSize %lld\n",
                         req->body_len, (long long)w->c->max_payload_size);
        return;
    }
    char why[300];
    if (es_wh_verify(&w->c->auth, req->headers, req->body, req->body_len, why, sizeof(why)) != 0) {
        OFE_DEBUG(ES_COMPONENT, s->name, "request from %s refused: %s", req->remote, why);
        ofe_httpd_replyf(x, 401, "%s\n", why);
        return;
    }
    struct ofe_ce_list evs = {0};
    const struct ofe_hdr *ct = ofe_hdrs_get(req->headers, "Content-Type");
    if (es_looks_like_ce(req->headers, "ce-", ct ? ct->value : NULL, ct ? ct->value_len : 0)) {
        if (ofe_ce_http_decode(req->headers, req->body, req->body_len, 0, &evs, why, sizeof(why)) !=
            0) {
            es_invalid(s, "request from %s: %s", req->remote, why);
            ofe_httpd_replyf(x, 400, "not a valid CloudEvent: %s\n", why);
            return;
        }
        if (evs.n == 0) {
            ofe_ce_list_fini(&evs);
            ofe_httpd_replyf(x, 202, "accepted 0 events\n");
            return;
        }
    } else {
        struct ofe_ce *ev = NULL;
        if (native_event(w, req, &ev, why, sizeof(why)) != 0) {
            es_invalid(s, "request from %s: %s", req->remote, why);
            ofe_httpd_replyf(x, 400, "cannot make an event of the request: %s\n", why);
            return;
        }
        ofe_ce_list_push(&evs, ev);
    }
    if (es_capacity(s) < evs.n) {
        ofe_ce_list_fini(&evs);
        struct ofe_hdrs h;
        ofe_hdrs_init(&h);
        ofe_hdrs_add_ref(&h, "Retry-After", 11, "1", 1);
        const char msg[] = "busy: too many events in delivery, try again\n";
        ofe_httpd_reply(x, 503, "text/plain; charset=utf-8", msg, sizeof(msg) - 1, &h);
        ofe_hdrs_fini(&h);
        return;
    }
    struct wh_req *r = calloc(1, sizeof(*r));
    if (!r) {
        ofe_ce_list_fini(&evs);
        ofe_httpd_replyf(x, 503, "out of memory\n");
        return;
    }
    r->x = x;
    r->s = s;
    r->n = (unsigned)evs.n;
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->worst, ES_OK);
    atomic_init(&r->left, (int)evs.n + 1);
    for (size_t i = 0; i < evs.n; i++) {
        if (es_emit(s, evs.v[i], ES_EMIT_FORCE, req_done, r) != 0)
            req_put(r, ES_FAILED, "the endpoint is stopping");
    }
    ofe_ce_list_fini(&evs);
    req_put(r, ES_OK, NULL); /* the count held while emitting */
}

static void on_request(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    struct wh_server *srv = arg;
    pthread_rwlock_rdlock(&routes_lock);
    struct wh_src *hit = NULL;
    bool path_known = false;
    char allow[128] = "";
    for (struct wh_route *r = srv->routes; r; r = r->next) {
        if (strcmp(r->src->c->endpoint, req->path) != 0)
            continue;
        path_known = true;
        const char *m = ofe_config_http_method_names[r->src->c->method];
        if (!strcasecmp(m, req->method)) {
            hit = r->src;
            break;
        }
        size_t al = strlen(allow);
        snprintf(allow + al, sizeof(allow) - al, "%s%s", al ? ", " : "", m);
    }
    if (hit)
        atomic_fetch_add(&hit->active, 1);
    pthread_rwlock_unlock(&routes_lock);
    if (hit) {
        handle(hit, x, req);
        atomic_fetch_sub(&hit->active, 1);
        return;
    }
    if (path_known) {
        struct ofe_hdrs h;
        ofe_hdrs_init(&h);
        ofe_hdrs_add_ref(&h, "Allow", 5, allow, strlen(allow));
        char body[200];
        int n = snprintf(body, sizeof(body), "method %s not allowed on %s (allowed: %s)\n",
                         req->method, req->path, allow);
        ofe_httpd_reply(x, 405, "text/plain; charset=utf-8", body, (size_t)n, &h);
        ofe_hdrs_fini(&h);
        return;
    }
    ofe_httpd_replyf(x, 404, "no webhook endpoint %s on this port\n", req->path);
}

/* ---- listeners -------------------------------------------------------------- */

static const char *bind_addr(const struct ofe_config_webhook_source *c)
{
    return c->address && *c->address ? c->address : "0.0.0.0";
}

/* The largest maxPayloadSize of the webhook events on addr:port in cfg. */
static size_t max_payload_on(const struct ofe_config *cfg, const char *addr, int port)
{
    size_t m = 0;
    for (size_t i = 0; i < cfg->neventsources; i++) {
        const struct ofe_config_eventsource *es = cfg->eventsources[i];
        for (size_t k = 0; k < es->spec.webhook.n; k++) {
            const struct ofe_config_webhook_source *c = &es->spec.webhook.v[k];
            if (c->port == port && !strcmp(bind_addr(c), addr) && (size_t)c->max_payload_size > m)
                m = (size_t)c->max_payload_size;
        }
    }
    return m;
}

static int server_open(struct wh_server *srv, size_t max_body, char *errstr, size_t errstr_size)
{
    struct ofe_httpd_opts o = {
        .bind = srv->addr,
        .port = (uint16_t)srv->port,
        .max_body = max_body,
        .threads = 4,
        .component = ES_COMPONENT,
    };
    struct ofe_httpd *h = ofe_httpd_open(&o, errstr, errstr_size);
    if (!h)
        return OFE_EIO;
    if (ofe_httpd_route(h, NULL, "/*", on_request, srv) != 0) {
        ofe_httpd_stop(h);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    if (ofe_httpd_serve(h, errstr, errstr_size) != 0) {
        ofe_httpd_stop(h);
        return OFE_EIO;
    }
    srv->h = h;
    srv->max_body = max_body;
    return 0;
}

/* Adds w's route to the listener of its address and port, opening it (or
 * opening it again with a larger body limit). */
static int route_add(struct wh_src *w, char *errstr, size_t errstr_size)
{
    const char *addr = bind_addr(w->c);
    int port = (int)w->c->port;
    size_t need = max_payload_on(w->s->config, addr, port);
    if (need < (size_t)w->c->max_payload_size)
        need = (size_t)w->c->max_payload_size;
    pthread_mutex_lock(&servers_lock);
    struct wh_server *srv = servers;
    while (srv && !(srv->port == port && !strcmp(srv->addr, addr)))
        srv = srv->next;
    int rc = 0;
    if (!srv) {
        srv = calloc(1, sizeof(*srv));
        if (!srv || !(srv->addr = strdup(addr))) {
            free(srv);
            pthread_mutex_unlock(&servers_lock);
            return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        }
        srv->port = port;
        if ((rc = server_open(srv, need, errstr, errstr_size)) != 0) {
            free(srv->addr);
            free(srv);
            pthread_mutex_unlock(&servers_lock);
            return rc;
        }
        srv->next = servers;
        servers = srv;
        OFE_INFO(ES_COMPONENT, "webhook", "listening on %s:%d (bodies up to %zu bytes)", addr, port,
                 need);
    } else if (need > srv->max_body) {
        /* Requests in progress on the old listener get 503 and retry. */
        OFE_INFO(ES_COMPONENT, "webhook", "%s:%d: body limit grows to %zu bytes: reopening", addr,
                 port, need);
        ofe_httpd_stop(srv->h);
        srv->h = NULL;
        if ((rc = server_open(srv, need, errstr, errstr_size)) != 0) {
            pthread_mutex_unlock(&servers_lock);
            return rc;
        }
    }
    struct wh_route *r = calloc(1, sizeof(*r));
    if (!r) {
        pthread_mutex_unlock(&servers_lock);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    r->src = w;
    pthread_rwlock_wrlock(&routes_lock);
    r->next = srv->routes;
    srv->routes = r;
    pthread_rwlock_unlock(&routes_lock);
    srv->refs++;
    w->srv = srv;
    pthread_mutex_unlock(&servers_lock);
    return 0;
}

static void route_remove(struct wh_src *w)
{
    struct wh_server *srv = w->srv;
    if (!srv)
        return;
    pthread_mutex_lock(&servers_lock);
    pthread_rwlock_wrlock(&routes_lock);
    for (struct wh_route **pp = &srv->routes; *pp; pp = &(*pp)->next)
        if ((*pp)->src == w) {
            struct wh_route *r = *pp;
            *pp = r->next;
            free(r);
            break;
        }
    pthread_rwlock_unlock(&routes_lock);
    /* A handler may still be inside handle() for w: wait it out. */
    while (atomic_load(&w->active) > 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (--srv->refs == 0) {
        for (struct wh_server **pp = &servers; *pp; pp = &(*pp)->next)
            if (*pp == srv) {
                *pp = srv->next;
                break;
            }
        OFE_INFO(ES_COMPONENT, "webhook", "closing the listener on %s:%d", srv->addr, srv->port);
        ofe_httpd_stop(srv->h);
        free(srv->addr);
        free(srv);
    }
    w->srv = NULL;
    pthread_mutex_unlock(&servers_lock);
}

/* ---- kind ------------------------------------------------------------------- */

static void wh_check(const struct ofe_config_eventsource *es, const struct ofe_config_event *ev,
                     const struct es_options *o, struct es_diag *d)
{
    const struct ofe_config_webhook_source *c = (const struct ofe_config_webhook_source *)ev->spec;
    const struct ofe_config_webhook_auth *a = &c->auth;
    if (a->github.node.present && (!a->github.secret || !*a->github.secret))
        es_diag_error(d, &a->github.node, "secret", "the GitHub webhook secret is empty");
    if (a->gitlab.node.present && (!a->gitlab.token || !*a->gitlab.token))
        es_diag_error(d, &a->gitlab.node, "token", "the GitLab token is empty");
    if (a->bearer.node.present && (!a->bearer.token || !*a->bearer.token))
        es_diag_error(d, &a->bearer.node, "token", "the bearer token is empty");
    if (a->hmac.node.present && (!a->hmac.secret || !*a->hmac.secret))
        es_diag_error(d, &a->hmac.node, "secret", "the HMAC secret is empty");
    if (c->endpoint && c->endpoint[0] != '/')
        es_diag_error(d, &c->node, "endpoint", "\"%s\" must start with '/'", c->endpoint);
}

static int wh_start(struct es_source *s, void **ctx, char *errstr, size_t errstr_size)
{
    struct wh_src *w = calloc(1, sizeof(*w));
    if (!w)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    w->s = s;
    w->c = (const struct ofe_config_webhook_source *)s->ev->spec;
    atomic_init(&w->stopping, false);
    atomic_init(&w->active, 0);
    int rc = route_add(w, errstr, errstr_size);
    if (rc) {
        free(w);
        return rc;
    }
    OFE_INFO(ES_COMPONENT, s->name, "webhook %s %s on %s:%lld",
             ofe_config_http_method_names[w->c->method], w->c->endpoint, bind_addr(w->c),
             (long long)w->c->port);
    *ctx = w;
    return 0;
}

static void wh_stop(void *ctx)
{
    struct wh_src *w = ctx;
    atomic_store(&w->stopping, true);
}

static void wh_destroy(void *ctx)
{
    struct wh_src *w = ctx;
    route_remove(w);
    free(w);
}

static bool wh_ready(void *ctx, char *why, size_t why_size)
{
    return true;
}

const struct es_kind es_kind_webhook = {
    .name = "webhook",
    .kind = OFE_CONFIG_SOURCE_WEBHOOK,
    .redrive = false,
    .default_inflight = 1024,
    .check = wh_check,
    .start = wh_start,
    .stop = wh_stop,
    .destroy = wh_destroy,
    .ready = wh_ready,
};
