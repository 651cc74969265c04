/* HTTP ingress of ofe-eventbus (see http_ingress.h). */
#include "http_ingress.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/err.h"
#include "ofe/httpd.h"
#include "ofe/log.h"
#include "ofe/metrics.h"

#define COMP "eventbus"

struct bus_http {
    struct bus_server *srv;
    struct ofe_httpd *httpd;
    char *token;
    size_t max_event;
    struct ofe_counter *m_ok, *m_bad, *m_big, *m_auth;
};

static void reply_json_error(struct ofe_http_exchange *x, int status, const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
        ofe_httpd_reply(x, status, "application/json", s, strlen(s), NULL);
    else
        ofe_httpd_replyf(x, status, "%s", msg);
    free(s);
    json_decref(o);
}

static bool token_ok(const struct bus_http *h, const struct ofe_http_request *req)
{
    const struct ofe_hdr *a = ofe_hdrs_get(req->headers, "authorization");
    if (!a || a->value_len < 7 || strncasecmp(a->value, "Bearer ", 7) != 0)
        return false;
    const char *got = a->value + 7;
    size_t gl = a->value_len - 7, wl = strlen(h->token);
    unsigned char d = gl != wl;
    for (size_t i = 0; i < gl; i++)
        d |= (unsigned char)(got[i] ^ h->token[i % (wl ? wl : 1)]);
    return d == 0;
}

static void job_done(void *arg, int status, char **ids, size_t n, const char *msg)
{
    struct ofe_http_exchange *x = arg;
    if (status != 0) {
        reply_json_error(x, status == OFE_ECLOSED || status == OFE_EAGAIN ? 503 : 500,
                         msg ? msg : ofe_strerror(status));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    json_t *o = json_pack("{s:o}", "ids", arr);
    char *s = json_dumps(o, JSON_COMPACT);
    ofe_httpd_reply(x, 202, "application/json", s, strlen(s), NULL);
    free(s);
    json_decref(o);
}

static void h_topics(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    struct bus_http *h = arg;
    char err[512];
    if (h->token && !token_ok(h, req)) {
        ofe_counter_inc(h->m_auth);
        struct ofe_hdrs hd;
        ofe_hdrs_init(&hd);
        ofe_hdrs_add_ref(&hd, "WWW-Authenticate", 16, "Bearer", 6);
        const char *msg = "{\"error\":\"missing or wrong bearer token\"}";
        ofe_httpd_reply(x, 401, "application/json", msg, strlen(msg), &hd);
        ofe_hdrs_fini(&hd);
        return;
    }
    const char *topic = req->path + strlen("/topics/");
    size_t tl = strlen(topic);
    bool bad_name = tl == 0 || tl > 1024;
    for (size_t i = 0; i < tl && !bad_name; i++)
        bad_name = topic[i] == '/' || (unsigned char)topic[i] < 0x20;
    if (bad_name) {
        ofe_counter_inc(h->m_bad);
        reply_json_error(x, 400, "invalid topic name in the path /topics/{topic}");
        return;
    }
    struct ofe_ce_list evs = {0};
    int rc = ofe_ce_http_decode(req->headers, req->body, req->body_len, OFE_CE_BIND_TYPEHINTS, &evs,
                                err, sizeof(err));
    if (rc != 0) {
        ofe_counter_inc(h->m_bad);
        reply_json_error(x, 400, err);
        return;
    }
    if (evs.n == 0) {
        ofe_counter_inc(h->m_bad);
        reply_json_error(x, 400, "the batch holds no event");
        ofe_ce_list_fini(&evs);
        return;
    }
    struct bus_append_job *job = calloc(1, sizeof(*job));
    struct ofe_hdrs *fields = job ? calloc(evs.n, sizeof(*fields)) : NULL;
    if (!job || !fields) {
        free(job);
        ofe_ce_list_fini(&evs);
        reply_json_error(x, 500, "out of memory");
        return;
    }
    job->fields = fields;
    job->n = evs.n;
    for (size_t i = 0; i < evs.n; i++)
        ofe_hdrs_init(&fields[i]);
    int status = 0;
    for (size_t i = 0; i < evs.n && !status; i++) {
        struct ofe_hdrs tmp;
        ofe_hdrs_init(&tmp);
        rc = ofe_ce_redis_encode(evs.v[i], 0, &tmp, err, sizeof(err));
        if (rc != 0) {
            status = 400;
        } else {
            size_t bytes = 0;
            for (size_t k = 0; k < tmp.n; k++)
                bytes += tmp.v[k].name_len + tmp.v[k].value_len;
            if (bytes > h->max_event) {
                snprintf(err, sizeof(err),
                         "event %zu is %zu bytes as stored, over the limit of %zu bytes", i, bytes,
                         h->max_event);
                status = 413;
            }
            for (size_t k = 0; k < tmp.n && !status; k++)
                if (ofe_hdrs_add_copy(&fields[i], tmp.v[k].name, tmp.v[k].name_len, tmp.v[k].value,
                                      tmp.v[k].value_len) != 0)
                    status = 500;
        }
        ofe_hdrs_fini(&tmp);
    }
    ofe_ce_list_fini(&evs);
    if (!status) {
        job->stream = malloc(tl + 1);
        if (job->stream) {
            memcpy(job->stream, topic, tl + 1);
            job->slen = tl;
            job->done = job_done;
            job->arg = x;
            rc = bus_server_submit(h->srv, job);
            if (rc == 0) {
                ofe_counter_add(h->m_ok, 1);
                return;
            }
            status = 503;
            snprintf(err, sizeof(err), "%s",
                     rc == OFE_EAGAIN ? "the broker is busy: retry later"
                                      : "the broker is shutting down");
        } else {
            status = 500;
            snprintf(err, sizeof(err), "out of memory");
        }
    }
    if (status == 413)
        ofe_counter_inc(h->m_big);
    else if (status == 400)
        ofe_counter_inc(h->m_bad);
    reply_json_error(x, status, status == 500 && !err[0] ? "internal error" : err);
    for (size_t i = 0; i < job->n; i++)
        ofe_hdrs_fini(&job->fields[i]);
    free(job->fields);
    free(job->stream);
    free(job);
}

static bool ready(void *arg, char *why, size_t why_size)
{
    struct bus_http *h = arg;
    return bus_server_ready(h->srv, why, why_size);
}

struct bus_http *bus_http_start(struct bus_server *srv, struct ofe_metrics *m,
                                const struct bus_http_opts *o, char *errstr, size_t errstr_size)
{
    struct bus_http *h = calloc(1, sizeof(*h));
    if (!h) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    h->srv = srv;
    h->max_event = o->max_event_size ? o->max_event_size : 4 * 1024 * 1024;
    if (o->token && o->token[0])
        h->token = strdup(o->token);
    size_t max_body = h->max_event * 4;
    if (max_body < 16 * 1024 * 1024)
        max_body = 16 * 1024 * 1024;
    struct ofe_httpd_opts ho = {
        .bind = o->bind, .port = o->port, .max_body = max_body, .component = COMP};
    h->httpd = ofe_httpd_open(&ho, errstr, errstr_size);
    if (!h->httpd) {
        free(h->token);
        free(h);
        return NULL;
    }
    h->m_ok = ofe_metrics_counter(m, "ofe_eventbus_http_requests_total",
                                  "POST /topics requests by outcome",
                                  (const char *const[]){"outcome", "accepted", NULL});
    h->m_bad = ofe_metrics_counter(m, "ofe_eventbus_http_requests_total",
                                   "POST /topics requests by outcome",
                                   (const char *const[]){"outcome", "invalid", NULL});
    h->m_big = ofe_metrics_counter(m, "ofe_eventbus_http_requests_total",
                                   "POST /topics requests by outcome",
                                   (const char *const[]){"outcome", "too_large", NULL});
    h->m_auth = ofe_metrics_counter(m, "ofe_eventbus_http_requests_total",
                                    "POST /topics requests by outcome",
                                    (const char *const[]){"outcome", "unauthorized", NULL});
    if (ofe_httpd_route(h->httpd, "POST", "/topics/*", h_topics, h) != 0 ||
        ofe_httpd_route_std(h->httpd, m, ready, h) != 0) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        bus_http_stop(h);
        return NULL;
    }
    /* answering only now: a request in the first moment must not get 404 */
    if (ofe_httpd_serve(h->httpd, errstr, errstr_size) != 0) {
        bus_http_stop(h);
        return NULL;
    }
    return h;
}

uint16_t bus_http_port(const struct bus_http *h)
{
    return ofe_httpd_port(h->httpd);
}

void bus_http_stop(struct bus_http *h)
{
    if (!h)
        return;
    ofe_httpd_stop(h->httpd);
    free(h->token);
    free(h);
}
