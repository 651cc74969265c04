/* ofe-eventsource as a daemon, with the sources that need no broker
 * (webhook, cron), an HTTP sink in this process and ofe-eventbus:
 *   - webhook: native bodies and CloudEvents (binary, structured, batch)
 *     pass, 202 only after the sink accepted, GitHub / GitLab / bearer /
 *     HMAC authentication, 413, 405, 404, 400, 503 on a failing sink and
 *     on backpressure, events on the bus too;
 *   - cron: ticks with the scheduled time, and catch-up from the state
 *     file after a stop (none without catchup);
 *   - SIGHUP reloads only the EventSource that changed; SIGTERM drains a
 *     request in delivery; /healthz, /readyz, /metrics. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/hmac.h>

#include "es_testlib.h"
#include "servers.h"
#include "testutil.h"

static struct tu_server *bus;
static struct es_sink *sink;

/* ---- HTTP client ------------------------------------------------------------------ */

struct resp {
    long status;
    char body[2048];
    size_t len;
    char retry_after[32];
    char allow[64];
};

static size_t body_cb(char *p, size_t s, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t k = s * n, room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, k < room ? k : room);
    r->len += k < room ? k : room;
    r->body[r->len] = '\0';
    return s * n;
}

static size_t hdr_cb(char *p, size_t s, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t k = s * n;
    if (k > 13 && !strncasecmp(p, "Retry-After: ", 13))
        snprintf(r->retry_after, sizeof(r->retry_after), "%.*s", (int)(k - 15), p + 13);
    if (k > 7 && !strncasecmp(p, "Allow: ", 7))
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(k - 9), p + 7);
    return k;
}

/* hdrs: NULL-terminated "Name: value" lines. */
static struct resp http(const char *method, int port, const char *path, const char *body,
                        size_t len, const char *const *hdrs)
{
    struct resp r = {0};
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    for (size_t i = 0; hdrs && hdrs[i]; i++)
        h = curl_slist_append(h, hdrs[i]);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hdr_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static void hmac_hex(const EVP_MD *md, const char *key, const char *body, char *out)
{
    unsigned char d[64];
    unsigned int n = 0;
    HMAC(md, key, (int)strlen(key), (const unsigned char *)body, strlen(body), d, &n);
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* ---- webhook ------------------------------------------------------------------------ */

static int wport;

static char *webhook_yaml(const char *extra_spec)
{
    char *y = NULL;
    int n = asprintf(&y,
                     "apiVersion: events.openfunction.io/v1alpha1\n"
                     "kind: EventBus\n"
                     "metadata: {name: default}\n"
                     "spec:\n"
                     "  embedded: {address: \"%s\"}\n"
                     "---\n"
                     "apiVersion: events.openfunction.io/v1alpha1\n"
                     "kind: EventSource\n"
                     "metadata: {name: wh}\n"
                     "spec:\n"
                     "  eventBus: default\n"
                     "  sink: {uri: \"%s\"}\n"
                     "  delivery: {retry: 2, backoffDelay: 20ms, backoffCap: 100ms, timeout: 2s}\n"
                     "  webhook:\n"
                     "    plain: {address: 127.0.0.1, port: %d, endpoint: /plain, maxPayloadSize: "
                     "1Ki}\n"
                     "    gh:\n"
                     "      address: 127.0.0.1\n"
                     "      port: %d\n"
                     "      endpoint: /github\n"
                     "      auth: {github: {secret: gh-secret}}\n"
                     "    gl: {address: 127.0.0.1, port: %d, endpoint: /gitlab, auth: {gitlab: "
                     "{token: gl-token}}}\n"
                     "    br: {address: 127.0.0.1, port: %d, endpoint: /bearer, method: PUT, auth: "
                     "{bearer: {token: br-token}}}\n"
                     "    hm:\n"
                     "      address: 127.0.0.1\n"
                     "      port: %d\n"
                     "      endpoint: /hmac\n"
                     "      auth: {hmac: {header: X-Sig, secret: hm-key, algorithm: sha1, prefix: "
                     "\"sha1=\"}}\n"
                     "%s",
                     bus->addr, es_sink_url(sink), wport, wport, wport, wport, wport,
                     extra_spec ? extra_spec : "");
    assert_true(n > 0);
    return y;
}

static void test_webhook(void **state)
{
    wport = tu_free_port();
    char *yaml = webhook_yaml(NULL);
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    bool ready = es_daemon_wait_ready(d, 10000) && tu_wait_port(wport, 5000) == 0;
    if (!ready)
        es_daemon_free(d, true), d = NULL;
    assert_true(ready);
    struct es_got *g = es_got_subscribe(yaml, "default-wh-plain", "check");
    assert_non_null(g);

    /* native body: 202 only once the sink has it */
    es_sink_delay(sink, 300);
    uint64_t t0 = es_now_ms_test();
    struct resp r =
        http("POST", wport, "/plain?ref=abc", "{\"a\":1}", 7,
             (const char *[]){"Content-Type: application/json", "Idempotency-Key: key-1", NULL});
    assert_int_equal(r.status, 202);
    assert_true(es_now_ms_test() - t0 >= 300);
    assert_int_equal(es_sink_count(sink), 1);
    es_sink_delay(sink, 0);
    struct ofe_ce *ev = es_sink_find_id(sink, "key-1");
    assert_non_null(ev);
    es_assert_attr(ev, "source", "/namespaces/default/eventsources/wh/plain");
    es_assert_attr(ev, "type", "dev.ofevents.webhook.request");
    es_assert_attr(ev, "datacontenttype", "application/json");
    es_assert_attr(ev, "query", "ref=abc");
    assert_memory_equal(ev->data, "{\"a\":1}", 7);
    ofe_ce_unref(ev);
    assert_true(es_got_wait(g, 1, 5000) >= 1);
    assert_non_null(es_got_find(g, "key-1"));

    /* CloudEvents: binary, structured, batch */
    r = http("POST", wport, "/plain", "bin", 3,
             (const char *[]){"ce-specversion: 1.0", "ce-id: w-bin", "ce-source: /caller",
                              "ce-type: com.example.w", "ce-myext: a%20b",
                              "Content-Type: text/plain", NULL});
    assert_int_equal(r.status, 202);
    const char *st = "{\"specversion\":\"1.0\",\"id\":\"w-st\",\"source\":\"/c\",\"type\":\"t\"}";
    r = http("POST", wport, "/plain", st, strlen(st),
             (const char *[]){"Content-Type: application/cloudevents+json", NULL});
    assert_int_equal(r.status, 202);
    const char *batch =
        "[{\"specversion\":\"1.0\",\"id\":\"w-b1\",\"source\":\"/c\",\"type\":\"t\"},"
        "{\"specversion\":\"1.0\",\"id\":\"w-b2\",\"source\":\"/c\",\"type\":\"t\"}]";
    r = http("POST", wport, "/plain", batch, strlen(batch),
             (const char *[]){"Content-Type: application/cloudevents-batch+json", NULL});
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "accepted 2 events"));
    ev = es_sink_find_id(sink, "w-bin");
    assert_non_null(ev);
    es_assert_attr(ev, "myext", "a b");
    es_assert_attr(ev, "source", "/caller");
    es_assert_attr(ev, "datacontenttype", "text/plain");
    ofe_ce_unref(ev);
    for (const char *const *id = (const char *[]){"w-st", "w-b1", "w-b2", NULL}; *id; id++) {
        ev = es_sink_find_id(sink, *id);
        assert_non_null(ev);
        ofe_ce_unref(ev);
    }
    /* bad requests */
    r = http("POST", wport, "/plain", "x", 1,
             (const char *[]){"ce-specversion: 1.0", "ce-source: /c", "ce-type: t", NULL});
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "id"));
    char big[2000];
    memset(big, 'x', sizeof(big));
    r = http("POST", wport, "/plain", big, sizeof(big), NULL);
    assert_int_equal(r.status, 413);
    r = http("GET", wport, "/plain", NULL, 0, NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "POST");
    r = http("POST", wport, "/nowhere", "x", 1, NULL);
    assert_int_equal(r.status, 404);

    /* GitHub */
    const char *body = "{\"action\":\"opened\"}";
    char sig[200] = "X-Hub-Signature-256: sha256=";
    hmac_hex(EVP_sha256(), "gh-secret", body, sig + strlen(sig));
    r = http("POST", wport, "/github", body, strlen(body),
             (const char *[]){sig, "X-GitHub-Event: pull_request", "X-GitHub-Delivery: gh-d-1",
                              "Content-Type: application/json", NULL});
    assert_int_equal(r.status, 202);
    ev = es_sink_find_id(sink, "gh-d-1");
    assert_non_null(ev);
    es_assert_attr(ev, "subject", "pull_request");
    es_assert_attr(ev, "source", "/namespaces/default/eventsources/wh/gh");
    ofe_ce_unref(ev);
    char badsig[200] = "X-Hub-Signature-256: sha256=";
    hmac_hex(EVP_sha256(), "wrong", body, badsig + strlen(badsig));
    r = http("POST", wport, "/github", body, strlen(body), (const char *[]){badsig, NULL});
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "does not match"));
    r = http("POST", wport, "/github", body, strlen(body), NULL);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "missing X-Hub-Signature-256"));
    r = http("POST", wport, "/github", body, strlen(body),
             (const char *[]){"X-Hub-Signature-256: sha256=zz", NULL});
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "malformed"));
    /* GitLab, bearer, HMAC */
    r = http("POST", wport, "/gitlab", "{}", 2,
             (const char *[]){"X-Gitlab-Token: gl-token", "X-Gitlab-Event: Push Hook", NULL});
    assert_int_equal(r.status, 202);
    r = http("POST", wport, "/gitlab", "{}", 2, (const char *[]){"X-Gitlab-Token: nope", NULL});
    assert_int_equal(r.status, 401);
    r = http("PUT", wport, "/bearer", "{}", 2,
             (const char *[]){"Authorization: Bearer br-token", NULL});
    assert_int_equal(r.status, 202);
    r = http("PUT", wport, "/bearer", "{}", 2,
             (const char *[]){"Authorization: Bearer br-tokenX", NULL});
    assert_int_equal(r.status, 401);
    r = http("POST", wport, "/bearer", "{}", 2,
             (const char *[]){"Authorization: Bearer br-token", NULL});
    assert_int_equal(r.status, 405);
    char hs[200] = "X-Sig: sha1=";
    hmac_hex(EVP_sha1(), "hm-key", "payload", hs + strlen(hs));
    r = http("POST", wport, "/hmac", "payload", 7, (const char *[]){hs, NULL});
    assert_int_equal(r.status, 202);
    r = http("POST", wport, "/hmac", "payloaX", 7, (const char *[]){hs, NULL});
    assert_int_equal(r.status, 401);

    /* a sink that keeps failing: 503 after the retries (the caller retries) */
    es_sink_fail(sink, 500, -1);
    r = http("POST", wport, "/plain", "late", 4, NULL);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.retry_after, "5");
    assert_non_null(strstr(r.body, "HTTP 500"));
    /* one refusing for good: 502 */
    es_sink_fail(sink, 422, -1);
    r = http("POST", wport, "/plain", "refused", 7, NULL);
    assert_int_equal(r.status, 502);
    es_sink_fail(sink, 0, 0);
    assert_int_equal(es_daemon_stop(d), 0);
    es_got_free(g);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

struct par {
    int port;
    long status;
    char retry_after[32];
};

static void *par_req(void *arg)
{
    struct par *p = arg;
    struct resp r = http("POST", p->port, "/plain", "x", 1, NULL);
    p->status = r.status;
    snprintf(p->retry_after, sizeof(p->retry_after), "%s", r.retry_after);
    return NULL;
}

static void test_webhook_backpressure(void **state)
{
    wport = tu_free_port();
    char *yaml = webhook_yaml(NULL);
    struct es_daemon *d = es_daemon_start(yaml, (const char *[]){"--max-inflight", "2", NULL});
    assert_non_null(d);
    assert_true(es_daemon_wait_ready(d, 10000));
    es_sink_delay(sink, 800);
    pthread_t t[6];
    struct par p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = (struct par){.port = wport};
        pthread_create(&t[i], NULL, par_req, &p[i]);
        es_msleep(30);
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        if (p[i].status == 202)
            ok++;
        else if (p[i].status == 503 && !strcmp(p[i].retry_after, "1"))
            busy++;
    }
    es_sink_delay(sink, 0);
    assert_int_equal(ok + busy, 6);
    assert_true(ok >= 2);
    assert_true(busy >= 1);
    /* SIGTERM while a request is in delivery: it completes with 202 */
    es_sink_delay(sink, 600);
    struct par q = {.port = wport};
    pthread_t tq;
    pthread_create(&tq, NULL, par_req, &q);
    es_msleep(200);
    kill(d->proc->pid, SIGTERM);
    pthread_join(tq, NULL);
    assert_int_equal(q.status, 202);
    assert_int_equal(es_daemon_stop(d), 0);
    es_sink_delay(sink, 0);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

/* ---- cron ---------------------------------------------------------------------------- */

static char *cron_yaml(const char *name, const char *schedule, bool catchup)
{
    char *y = NULL;
    int n = asprintf(&y,
                     "apiVersion: events.openfunction.io/v1alpha1\n"
                     "kind: EventSource\n"
                     "metadata: {name: %s}\n"
                     "spec:\n"
                     "  sink: {uri: \"%s\"}\n"
                     "  cron:\n"
                     "    tick:\n"
                     "      schedule: \"%s\"\n"
                     "      catchup: %s\n"
                     "      data: '{\"hello\": \"cron\"}'\n"
                     "      contentType: application/json\n",
                     name, es_sink_url(sink), schedule, catchup ? "true" : "false");
    assert_true(n > 0);
    return y;
}

/* Unix ms of an RFC 3339 UTC timestamp with milliseconds. */
static int64_t parse_ts(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void test_cron(void **state)
{
    char *yaml = cron_yaml("cr", "@every 200ms", false);
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    assert_true(es_sink_wait(sink, 4, 5000) >= 4);
    assert_int_equal(es_daemon_stop(d), 0);
    int64_t prev = -1;
    for (size_t i = 0; i < 4; i++) {
        struct ofe_ce *ev = es_sink_event(sink, i);
        es_assert_attr(ev, "type", "dev.ofevents.cron.tick");
        es_assert_attr(ev, "source", "/namespaces/default/eventsources/cr/tick");
        es_assert_attr(ev, "datacontenttype", "application/json");
        /* the id is the scheduled time, which is the event time */
        assert_string_equal(ofe_ce_get_str(ev, "id"), ofe_ce_get_str(ev, "time"));
        int64_t t = parse_ts(ofe_ce_get_str(ev, "time"));
        assert_true(t > 0);
        if (prev > 0)
            assert_int_equal(t - prev, 200);
        prev = t;
        assert_memory_equal(ev->data, "{\"hello\": \"cron\"}", 17);
        ofe_ce_unref(ev);
    }
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

/* Ticks at the sink, sorted by time. */
static size_t tick_times(int64_t *out, size_t max)
{
    size_t n = 0;
    for (struct ofe_ce *ev; n < max && (ev = es_sink_event(sink, n)); n++) {
        out[n] = parse_ts(ofe_ce_get_str(ev, "time"));
        ofe_ce_unref(ev);
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && out[j] < out[j - 1]; j--) {
            int64_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static void test_cron_catchup(void **state)
{
    char *dir = tu_mkdtemp("ofe-es-state");
    for (int catchup = 1; catchup >= 0; catchup--) {
        char *yaml = cron_yaml(catchup ? "cu" : "nocu", "@every 250ms", catchup);
        struct es_daemon *d = es_daemon_start(yaml, (const char *[]){"--state-dir", dir, NULL});
        assert_non_null(d);
        assert_true(es_sink_wait(sink, 3, 5000) >= 3);
        assert_int_equal(es_daemon_stop(d), 0);
        es_msleep(1300); /* about 5 ticks while down */
        assert_int_equal(es_daemon_restart(d), 0);
        es_msleep(1000);
        assert_int_equal(es_daemon_stop(d), 0);
        int64_t t[200];
        size_t n = tick_times(t, 200);
        assert_true(n >= 6);
        int64_t maxgap = 0;
        for (size_t i = 1; i < n; i++) {
            assert_true(t[i] > t[i - 1]); /* never the same tick twice */
            if (t[i] - t[i - 1] > maxgap)
                maxgap = t[i] - t[i - 1];
        }
        if (catchup) {
            /* every 250 ms tick, including those while down */
            assert_int_equal(maxgap, 250);
            assert_true(es_daemon_log_has(d, "catch-up: emitting"));
            char path[4200];
            snprintf(path, sizeof(path), "%s/cron-default_cu_tick.state", dir);
            char *text = tu_read_file(path, NULL);
            assert_non_null(text);
            assert_true(!strncmp(text, "ofe-cron-state 1\nlast ", 22));
            long long last = atoll(text + 22);
            assert_true(last == t[n - 1] || last == t[n - 2]);
            free(text);
        } else {
            assert_true(maxgap >= 1250);
        }
        es_daemon_free(d, false);
        es_sink_clear(sink);
        free(yaml);
    }
    tu_rmrf(dir);
    free(dir);
}

/* ---- reload ------------------------------------------------------------------------- */

/* SIGHUP with one event of an EventSource changed: only that event
 * restarts; its sibling in the same document keeps running. */
static void test_reload_one_event(void **state)
{
    char *y1 = NULL, *y2 = NULL;
    const char *fmt = "apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                      "metadata: {name: pair}\nspec:\n  sink: {uri: \"%s\"}\n  cron:\n"
                      "    a: {schedule: '@every 100ms'}\n"
                      "    b: {schedule: '%s'}\n";
    assert_true(asprintf(&y1, fmt, es_sink_url(sink), "@every 100ms") > 0);
    assert_true(asprintf(&y2, fmt, es_sink_url(sink), "@every 200ms") > 0);
    struct es_daemon *d = es_daemon_start(y1, NULL);
    assert_non_null(d);
    assert_true(es_daemon_wait_ready(d, 10000));
    es_daemon_write_config(d, y2);
    kill(d->proc->pid, SIGHUP);
    uint64_t end = es_now_ms_test() + 5000;
    while (!es_daemon_log_has(d, "configuration applied: 1 event(s) started, 1 kept, 1 stopped") &&
           es_now_ms_test() < end)
        es_msleep(50);
    assert_true(es_daemon_log_has(d, "1 event(s) started, 1 kept, 1 stopped, 0 failed"));
    assert_false(es_daemon_log_has(d, "default/pair/a] stopped"));
    assert_true(es_daemon_log_has(d, "default/pair/b] stopped"));
    assert_int_equal(es_daemon_stop(d), 0);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(y1);
    free(y2);
}

static void test_reload(void **state)
{
    wport = tu_free_port();
    char *a = cron_yaml("ticker", "@every 100ms", false);
    char *y1 = NULL, *y2 = NULL;
    assert_true(asprintf(&y1,
                         "%s---\napiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                         "metadata: {name: hooks}\nspec:\n  sink: {uri: \"%s\"}\n  webhook:\n"
                         "    in: {address: 127.0.0.1, port: %d, endpoint: /old}\n",
                         a, es_sink_url(sink), wport) > 0);
    assert_true(asprintf(&y2,
                         "%s---\napiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                         "metadata: {name: hooks}\nspec:\n  sink: {uri: \"%s\"}\n  webhook:\n"
                         "    in: {address: 127.0.0.1, port: %d, endpoint: /new}\n",
                         a, es_sink_url(sink), wport) > 0);
    struct es_daemon *d = es_daemon_start(y1, NULL);
    assert_non_null(d);
    assert_true(es_daemon_wait_ready(d, 10000));
    assert_int_equal(http("POST", wport, "/old", "1", 1, NULL).status, 202);
    es_msleep(300);
    const char *tick = "ofe_eventsource_events_received_total{source=\"default/ticker/tick\","
                       "kind=\"cron\"}";
    double before = es_daemon_metric(d, tick);
    assert_true(before >= 2);
    es_daemon_write_config(d, y2);
    kill(d->proc->pid, SIGHUP);
    uint64_t end = es_now_ms_test() + 5000;
    while (!es_daemon_log_has(d, "1 event(s) started, 1 kept, 1 stopped") && es_now_ms_test() < end)
        es_msleep(50);
    assert_true(es_daemon_log_has(d, "1 event(s) started, 1 kept, 1 stopped, 0 failed"));
    assert_true(tu_wait_port(wport, 5000) == 0);
    assert_int_equal(http("POST", wport, "/new", "2", 1, NULL).status, 202);
    assert_int_equal(http("POST", wport, "/old", "3", 1, NULL).status, 404);
    /* the cron source kept running: its counter goes on, not reset */
    end = es_now_ms_test() + 3000;
    while (es_daemon_metric(d, tick) <= before && es_now_ms_test() < end)
        es_msleep(20);
    assert_true(es_daemon_metric(d, tick) > before);
    assert_true(es_daemon_log_has(d, "default/ticker/tick] started cron source"));
    assert_false(es_daemon_log_has(d, "default/ticker/tick] stopped"));
    /* a broken config is refused and the running one kept */
    es_daemon_write_config(d, "apiVersion: nonsense\n");
    kill(d->proc->pid, SIGHUP);
    end = es_now_ms_test() + 5000;
    while (!es_daemon_log_has(d, "the running events are kept") && es_now_ms_test() < end)
        es_msleep(50);
    assert_true(es_daemon_log_has(d, "the running events are kept"));
    assert_int_equal(http("POST", wport, "/new", "4", 1, NULL).status, 202);
    /* removing the cron EventSource stops it and drops its series */
    char *y3 = strstr(y2, "---\n") + 4;
    es_daemon_write_config(d, y3);
    kill(d->proc->pid, SIGHUP);
    end = es_now_ms_test() + 5000;
    while (es_daemon_metric(d, tick) >= 0 && es_now_ms_test() < end)
        es_msleep(50);
    assert_true(es_daemon_metric(d, tick) < 0);
    char body[256];
    assert_int_equal(es_daemon_get(d, "/healthz", body, sizeof(body)), 200);
    assert_int_equal(es_daemon_get(d, "/readyz", body, sizeof(body)), 200);
    assert_int_equal(es_daemon_stop(d), 0);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(a);
    free(y1);
    free(y2);
}

static void test_cli(void **state)
{
    char out[8192];
    char *bad = cron_yaml("v", "*/5 * * * * * *", false);
    assert_int_equal(es_validate(bad, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "config.yaml:8:17: error: spec.cron.tick.schedule: "));
    free(bad);
    bad = cron_yaml("v", "0 9 * * MON-FRI", true);
    assert_int_equal(es_validate(bad, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "config.yaml:9:16: error: spec.cron.tick.catchup: catchup: true "
                                "needs a place to keep the last tick"));
    free(bad);
    char *good = cron_yaml("v", "CRON_TZ=Asia/Tokyo 0 30 9 * * MON-FRI", false);
    assert_int_equal(es_validate(good, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "configuration is valid: 1 event source(s), 1 event(s)"));
    free(good);
}

static int setup(void **state)
{
    bus = tu_server_start(TU_EVENTBUS, NULL);
    sink = es_sink_start(0);
    return bus && sink ? 0 : -1;
}

static int teardown(void **state)
{
    es_sink_stop(sink);
    tu_server_free(bus);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_webhook),
        cmocka_unit_test(test_webhook_backpressure),
        cmocka_unit_test(test_cron),
        cmocka_unit_test(test_cron_catchup),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_reload_one_event),
    };
    if (getenv("ES_TEST"))
        cmocka_set_test_filter(getenv("ES_TEST"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
