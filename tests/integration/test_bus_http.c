/* HTTP side of ofe-eventbus with libcurl, as a function publishing without
 * a client library would use it: POST /topics/{topic} in binary,
 * structured and batch mode (202 with the ids), invalid events (400 with
 * the reason), oversize events (413), bearer-token auth (401); then the
 * stored entries are read back with hiredis and decoded with the Redis
 * Streams binding (ofe_ce_redis_decode), as the redis pub/sub backend does;
 * /metrics, /healthz, /readyz. */
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/buf.h"
#include "ofe/ce.h"
#include "servers.h"
#include "testutil.h"

static int failures;
static char base[128];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
    ofe_buf_append(arg, p, sz * n);
    return sz * n;
}

/* Sends a request; returns the status and fills body. headers: NULL-
 * terminated list of "Name: value". */
static long request(const char *method, const char *path, const char *const *headers,
                    const void *body, size_t len, struct ofe_buf *out)
{
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base, path);
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    ofe_buf_reset(out);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* Reads entry `index` of a stream back into a CloudEvent. */
static struct ofe_ce *read_back(redisContext *rc, const char *stream, const char *id)
{
    redisReply *r = redisCommand(rc, "XRANGE %s %s %s", stream, id, id);
    struct ofe_ce *ev = NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        redisReply *fv = r->element[0]->element[1];
        struct ofe_hdrs f;
        ofe_hdrs_init(&f);
        for (size_t i = 0; i + 1 < fv->elements; i += 2)
            ofe_hdrs_add_ref(&f, fv->element[i]->str, fv->element[i]->len, fv->element[i + 1]->str,
                             fv->element[i + 1]->len);
        char err[256];
        if (ofe_ce_redis_decode(&f, 0, &ev, err, sizeof(err)) != 0) {
            fprintf(stderr, "decode %s: %s\n", id, err);
            ev = NULL;
        }
        ofe_hdrs_fini(&f);
    }
    if (r)
        freeReplyObject(r);
    return ev;
}

/* Pulls the ids out of {"ids":["a","b"]}. */
static size_t ids_of(const char *json, char ids[][64], size_t max)
{
    json_t *o = json_loads(json, 0, NULL);
    json_t *a = o ? json_object_get(o, "ids") : NULL;
    size_t n = 0;
    for (size_t i = 0; a && i < json_array_size(a) && n < max; i++) {
        const char *v = json_string_value(json_array_get(a, i));
        if (v)
            snprintf(ids[n++], 64, "%s", v);
    }
    json_decref(o);
    return n;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the broker may close a connection first */
    setvbuf(stdout, NULL, _IOLBF, 0);
    curl_global_init(CURL_GLOBAL_ALL);
    const char *extra[] = {"--http-token", "t0ken", "--max-event-size", "2048", NULL};
    struct tu_server *srv = tu_server_start(TU_EVENTBUS, extra);
    if (!srv)
        return 1;
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", srv->http_port);
    struct timeval tv = {.tv_sec = 5};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", srv->port, tv);
    struct ofe_buf body = OFE_BUF_INIT;
    const char *auth = "Authorization: Bearer t0ken";
    char ids[8][64];

    /* Binary mode. */
    const char *bin[] = {auth,
                         "Content-Type: text/plain",
                         "ce-specversion: 1.0",
                         "ce-id: e1",
                         "ce-source: /test/src",
                         "ce-type: com.example.ping",
                         "ce-subject: Euro%20%E2%82%AC",
                         "ce-myext: 42",
                         NULL};
    long st = request("POST", "/topics/default-src-ev", bin, "hello", 5, &body);
    CHECK(st == 202, "binary: status %ld (%s)", st, body.data);
    CHECK(ids_of(body.data ? body.data : "", ids, 8) == 1, "binary: no id in %s", body.data);
    struct ofe_ce *ev = read_back(rc, "default-src-ev", ids[0]);
    CHECK(ev != NULL, "binary: entry not readable as a CloudEvent");
    if (ev) {
        CHECK(!strcmp(ofe_ce_get_str(ev, "id"), "e1"), "binary: id");
        CHECK(!strcmp(ofe_ce_get_str(ev, "type"), "com.example.ping"), "binary: type");
        CHECK(!strcmp(ofe_ce_get_str(ev, "subject"), "Euro \xE2\x82\xAC"), "binary: subject");
        CHECK(!strcmp(ofe_ce_get_str(ev, "datacontenttype"), "text/plain"), "binary: ct");
        CHECK(ofe_ce_get_str(ev, "myext") && !strcmp(ofe_ce_get_str(ev, "myext"), "42"),
              "binary: extension");
        CHECK(ev->data_len == 5 && !memcmp(ev->data, "hello", 5), "binary: data");
        ofe_ce_unref(ev);
    }

    /* Structured mode. */
    const char *sh[] = {auth, "Content-Type: application/cloudevents+json; charset=utf-8", NULL};
    const char *sj = "{\"specversion\":\"1.0\",\"id\":\"e2\",\"source\":\"/s\",\"type\":\"t\","
                     "\"datacontenttype\":\"application/json\",\"data\":{\"a\":[1,2]}}";
    st = request("POST", "/topics/default-src-ev", sh, sj, strlen(sj), &body);
    CHECK(st == 202, "structured: status %ld (%s)", st, body.data);
    CHECK(ids_of(body.data ? body.data : "", ids, 8) == 1, "structured: ids");
    ev = read_back(rc, "default-src-ev", ids[0]);
    CHECK(ev && !strcmp(ofe_ce_get_str(ev, "id"), "e2"), "structured: read back");
    if (ev) {
        CHECK(ev->data_len == 11 && !memcmp(ev->data, "{\"a\":[1,2]}", 11), "structured: data");
        ofe_ce_unref(ev);
    }

    /* Batch mode: three events, three ids in order. */
    const char *bh[] = {auth, "Content-Type: application/cloudevents-batch+json", NULL};
    const char *bj = "[{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":\"/s\",\"type\":\"t\"},"
                     "{\"specversion\":\"1.0\",\"id\":\"b2\",\"source\":\"/s\",\"type\":\"t\"},"
                     "{\"specversion\":\"1.0\",\"id\":\"b3\",\"source\":\"/s\",\"type\":\"t\","
                     "\"data_base64\":\"AAEC\"}]";
    st = request("POST", "/topics/batch", bh, bj, strlen(bj), &body);
    CHECK(st == 202, "batch: status %ld (%s)", st, body.data);
    size_t n = ids_of(body.data ? body.data : "", ids, 8);
    CHECK(n == 3, "batch: %zu ids", n);
    for (size_t i = 0; i < n; i++) {
        ev = read_back(rc, "batch", ids[i]);
        char want[32];
        snprintf(want, sizeof(want), "b%zu", i + 1);
        CHECK(ev && !strcmp(ofe_ce_get_str(ev, "id"), want), "batch: event %zu", i);
        if (ev && i == 2)
            CHECK(ev->data_len == 3 && !memcmp(ev->data, "\x00\x01\x02", 3), "batch: binary");
        ofe_ce_unref(ev);
    }
    redisReply *r = redisCommand(rc, "XLEN batch");
    CHECK(r && r->integer == 3, "batch: XLEN");
    freeReplyObject(r);

    /* Invalid events: 400 with the reason; nothing stored. */
    const char *noid[] = {auth, "ce-specversion: 1.0", "ce-source: /s", "ce-type: t", NULL};
    st = request("POST", "/topics/bad", noid, "x", 1, &body);
    CHECK(st == 400 && body.data && strstr(body.data, "id"), "missing id: %ld %s", st, body.data);
    st = request("POST", "/topics/bad", sh, "{not json", 9, &body);
    CHECK(st == 400 && body.data && strstr(body.data, "error"), "bad JSON: %ld %s", st, body.data);
    const char *badj = "[{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":\"/s\",\"type\":\"t\"},"
                       "{\"specversion\":\"0.3\",\"id\":\"b2\",\"source\":\"/s\",\"type\":\"t\"}]";
    st = request("POST", "/topics/bad", bh, badj, strlen(badj), &body);
    CHECK(st == 400, "bad batch member: %ld %s", st, body.data);
    r = redisCommand(rc, "EXISTS bad");
    CHECK(r && r->integer == 0, "an invalid request stored something");
    freeReplyObject(r);

    /* Over maxEventSize (2048): 413. */
    char *big = malloc(3000);
    memset(big, 'b', 3000);
    st = request("POST", "/topics/big", bin, big, 3000, &body);
    CHECK(st == 413, "oversize: %ld %s", st, body.data);
    char *huge = malloc(20 << 20);
    memset(huge, 'h', 20 << 20);
    st = request("POST", "/topics/big", bin, huge, 20 << 20, &body);
    CHECK(st == 413, "oversize body: %ld", st);
    free(big);
    free(huge);

    /* Auth. */
    const char *noauth[] = {"ce-specversion: 1.0", "ce-id: x", "ce-source: /s", "ce-type: t", NULL};
    st = request("POST", "/topics/t", noauth, "x", 1, &body);
    CHECK(st == 401, "no token: %ld", st);
    const char *wrong[] = {"Authorization: Bearer nope",
                           "ce-specversion: 1.0",
                           "ce-id: x",
                           "ce-source: /s",
                           "ce-type: t",
                           NULL};
    st = request("POST", "/topics/t", wrong, "x", 1, &body);
    CHECK(st == 401, "wrong token: %ld", st);
    st = request("POST", "/topics/", bin, "x", 1, &body);
    CHECK(st == 400, "empty topic: %ld", st);
    st = request("GET", "/topics/t", NULL, NULL, 0, &body);
    CHECK(st == 405, "GET /topics: %ld", st);

    /* Health and metrics. */
    st = request("GET", "/healthz", NULL, NULL, 0, &body);
    CHECK(st == 200, "healthz %ld", st);
    st = request("GET", "/readyz", NULL, NULL, 0, &body);
    CHECK(st == 200, "readyz %ld", st);
    /* A group with pending entries shows up (gauges refresh every second). */
    freeReplyObject(redisCommand(rc, "XGROUP CREATE batch g 0"));
    freeReplyObject(redisCommand(rc, "XREADGROUP GROUP g c COUNT 2 STREAMS batch >"));
    freeReplyObject(redisCommand(rc, "XACK batch g %s", ids[0]));
    tu_wait_port(srv->http_port, 100);
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 300000000};
    nanosleep(&ts, NULL);
    st = request("GET", "/metrics", NULL, NULL, 0, &body);
    CHECK(st == 200, "metrics %ld", st);
    const char *want[] = {"ofe_eventbus_appends_total 5",
                          "ofe_eventbus_reads_total",
                          "ofe_eventbus_acks_total 1",
                          "ofe_eventbus_clients 1",
                          "ofe_eventbus_pending_entries{stream=\"batch\",group=\"g\"} 1",
                          "ofe_eventbus_fsync_seconds_bucket",
                          "ofe_eventbus_http_requests_total{outcome=\"accepted\"} 3",
                          NULL};
    for (size_t i = 0; want[i]; i++)
        CHECK(body.data && strstr(body.data, want[i]), "metrics: no '%s'", want[i]);
    if (failures)
        fprintf(stderr, "metrics:\n%s\n", body.data ? body.data : "");

    ofe_buf_fini(&body);
    redisFree(rc);
    tu_server_free(srv);
    curl_global_cleanup();
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
