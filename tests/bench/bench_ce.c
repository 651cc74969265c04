/* bench_ce: CloudEvents codec throughput on one core.
 *
 *   bench_ce [SECONDS_PER_CASE [CASE...]]   (default 1 s, every case)
 *
 * For one ~500-byte event (3 extensions, ~400 bytes of JSON data) it
 * prints events/s for:
 *   http-binary   ofe_ce_http_encode (binary mode) + ofe_ce_http_decode
 *   json          ofe_ce_json_encode + ofe_ce_json_decode (structured)
 *   http-struct   the same through the HTTP structured-mode codec
 *   jansson       json_loads + json_dumps of the same structured bytes
 *                 (the floor: a plain parse and print, no CloudEvents rules)
 * and the ratios against the goals: binary >= 1,000,000 events/s,
 * structured >= 0.9 x jansson. Times are the thread's CPU time. A
 * benchmark, not a test: it never fails on timing. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ofe/ce.h"
#include "ofe/err.h"

static const char EVENT[] =
    "{\"specversion\":\"1.0\",\"id\":\"6e8bc430-9c3a-11d9-9669-0800200c9a66\","
    "\"source\":\"/sensors/tn-1234567/alerts\",\"type\":\"com.example.sensor.reading\","
    "\"datacontenttype\":\"application/json\",\"time\":\"2024-05-01T12:34:56.789Z\","
    "\"region\":\"eu-west-1\",\"priority\":5,\"sampled\":true,"
    "\"data\":{\"sensor\":\"tn-1234567\",\"site\":\"Amsterdam North\",\"readings\":"
    "[{\"kind\":\"temperature\",\"value\":21.5,\"unit\":\"C\"},"
    "{\"kind\":\"humidity\",\"value\":48.25,\"unit\":\"%\"},"
    "{\"kind\":\"pressure\",\"value\":1013.2,\"unit\":\"hPa\"},"
    "{\"kind\":\"co2\",\"value\":612,\"unit\":\"ppm\"}],"
    "\"battery\":{\"level\":0.87,\"charging\":false},\"firmware\":\"2.4.1-rc3\","
    "\"tags\":[\"roof\",\"north\",\"calibrated\"],\"alert\":null,"
    "\"note\":\"R\\u00e9sum\\u00e9: stable.\"}}";

/* CPU time of this thread: events/s per core, and less sensitive to other
 * load on the machine than wall-clock time. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_ce: %s: %s\n", what, err);
    exit(1);
}

typedef void (*step_fn)(void);

static struct ofe_ce *ev;
static struct ofe_hdrs hdrs;
static struct ofe_buf buf;
static char err[512];
static volatile size_t sink;

static void http_binary(void)
{
    const void *body;
    size_t blen;
    ofe_hdrs_reset(&hdrs);
    if (ofe_ce_http_encode(ev, OFE_CE_BINARY, 0, &hdrs, &buf, &body, &blen, err, sizeof(err)))
        die("http encode", err);
    struct ofe_ce_list l = {0};
    struct ofe_ce *one[1];
    l.v = one;
    l.cap = 1;
    if (ofe_ce_http_decode(&hdrs, body, blen, 0, &l, err, sizeof(err)))
        die("http decode", err);
    sink += l.v[0]->data_len;
    ofe_ce_unref(l.v[0]);
}

static void json_structured(void)
{
    ofe_buf_reset(&buf);
    if (ofe_ce_json_encode(ev, &buf, err, sizeof(err)))
        die("json encode", err);
    struct ofe_ce *d;
    if (ofe_ce_json_decode(buf.data, buf.len, &d, err, sizeof(err)))
        die("json decode", err);
    sink += d->data_len;
    ofe_ce_unref(d);
}

static void http_structured(void)
{
    const void *body;
    size_t blen;
    ofe_hdrs_reset(&hdrs);
    ofe_buf_reset(&buf);
    if (ofe_ce_http_encode(ev, OFE_CE_STRUCTURED, 0, &hdrs, &buf, &body, &blen, err, sizeof(err)))
        die("http structured encode", err);
    struct ofe_ce_list l = {0};
    struct ofe_ce *one[1];
    l.v = one;
    l.cap = 1;
    if (ofe_ce_http_decode(&hdrs, body, blen, 0, &l, err, sizeof(err)))
        die("http structured decode", err);
    sink += l.v[0]->data_len;
    ofe_ce_unref(l.v[0]);
}

static const char *jbytes;
static size_t jlen;

static void jansson(void)
{
    json_error_t je;
    json_t *root = json_loads(jbytes, 0, &je);
    if (!root)
        die("jansson load", je.text);
    char *s = json_dumps(root, JSON_COMPACT);
    if (!s)
        die("jansson dump", "out of memory");
    sink += strlen(s);
    free(s);
    json_decref(root);
}

static double measure(step_fn fn, double seconds)
{
    for (int i = 0; i < 1000; i++) /* warm up */
        fn();
    size_t n = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 2000; i++)
            fn();
        n += 2000;
        t = now();
    } while (t - t0 < seconds);
    return (double)n / (t - t0);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (seconds <= 0)
        seconds = 1.0;
    if (ofe_ce_json_decode(EVENT, strlen(EVENT), &ev, err, sizeof(err)))
        die("fixture", err);
    ofe_hdrs_init(&hdrs);
    ofe_buf_init(&buf);
    struct ofe_buf structured = OFE_BUF_INIT;
    if (ofe_ce_json_encode(ev, &structured, err, sizeof(err)))
        die("fixture encode", err);
    jbytes = structured.data;
    jlen = structured.len;
    const void *body;
    size_t blen, wire = 0;
    if (ofe_ce_http_encode(ev, OFE_CE_BINARY, 0, &hdrs, &buf, &body, &blen, err, sizeof(err)))
        die("fixture http encode", err);
    for (size_t i = 0; i < hdrs.n; i++)
        wire += hdrs.v[i].name_len + 2 + hdrs.v[i].value_len + 2; /* "name: value\r\n" */
    size_t size = ev->data_len;
    const struct ofe_ce_attr *at;
    for (size_t i = 0; (at = ofe_ce_attr_at(ev, i)); i++)
        size += at->name_len + at->value_len;
    printf("event: %zu bytes (attribute names, values and data; %zu bytes data, %u "
           "extensions)\n       %zu bytes as HTTP binary headers + body, %zu bytes structured "
           "JSON\n",
           size, ev->data_len, ev->next, wire + blen, jlen);

    static const struct {
        const char *name, *what;
        step_fn fn;
    } cases[] = {
        {"http-binary", "encode+decode", http_binary},
        {"json", "encode+decode", json_structured},
        {"http-struct", "encode+decode", http_structured},
        {"jansson", "json_loads+json_dumps, the floor", jansson},
    };
    double rate[4] = {0};
    for (size_t i = 0; i < 4; i++) {
        bool run = argc <= 2;
        for (int a = 2; a < argc; a++)
            run |= !strcmp(argv[a], cases[i].name);
        if (!run)
            continue;
        rate[i] = measure(cases[i].fn, seconds);
        printf("%-14s %12.0f events/s  (%s)\n", cases[i].name, rate[i], cases[i].what);
    }
    if (rate[0] > 0)
        printf("ratio http-binary / 1,000,000 goal  %.2f\n", rate[0] / 1e6);
    if (rate[1] > 0 && rate[3] > 0)
        printf("ratio json / jansson                %.2f  (goal >= 0.90)\n", rate[1] / rate[3]);
    if (rate[2] > 0 && rate[3] > 0)
        printf("ratio http-struct / jansson         %.2f\n", rate[2] / rate[3]);
    ofe_ce_unref(ev);
    ofe_hdrs_fini(&hdrs);
    ofe_buf_fini(&buf);
    ofe_buf_fini(&structured);
    return 0;
}
