/* ofe-eventsource with redis sources against a real redis-server, the
 * embedded bus (ofe-eventbus) and an HTTP sink in this process:
 *   - a stream: native entries (one `data` field, several fields, binary
 *     values) and CloudEvents in our Redis binding become the documented
 *     events at the sink and on the bus; entries are XACKed only after
 *     delivery (the group's pending count stays up while the sink fails);
 *   - a pub/sub channel and a pattern: messages become events (at most
 *     once);
 *   - unsupported connection options are precise --validate errors. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "es_testlib.h"
#include "servers.h"

static struct tu_server *rs, *bus;
static struct es_sink *sink;
static redisContext *rc;

static char *yaml_for(const char *event, const char *body)
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
                     "metadata: {name: rs}\n"
                     "spec:\n"
                     "  eventBus: default\n"
                     "  sink: {uri: \"%s\"}\n"
                     "  delivery: {retry: 1, backoffDelay: 20ms, backoffCap: 100ms, timeout: 1s}\n"
                     "  redis:\n"
                     "    %s:\n"
                     "      redisHost: \"%s\"\n"
                     "      redisPassword: \"\"\n"
                     "%s",
                     bus->addr, es_sink_url(sink), event, rs->addr, body);
    assert_true(n > 0);
    return y;
}

static long long pending(const char *stream, const char *group)
{
    redisReply *r = redisCommand(rc, "XPENDING %s %s", stream, group);
    long long n =
        r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 ? r->element[0]->integer : -1;
    freeReplyObject(r);
    return n;
}

static void test_stream(void **state)
{
    char *yaml = yaml_for("orders", "      stream: orders\n      initialOffset: oldest\n");
    /* written before the source starts: initialOffset oldest gets it */
    redisReply *r = redisCommand(rc, "XADD orders 1700000000000-0 data %s", "{\"n\":1}");
    freeReplyObject(r);
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    struct es_got *g = es_got_subscribe(yaml, "default-rs-orders", "check");
    assert_non_null(g);
    r = redisCommand(rc, "XADD orders 1700000000001-0 customer %s total %s", "ada", "42");
    freeReplyObject(r);
    const char bin[] = {'a', (char)0xff, 'b'};
    r = redisCommand(rc, "XADD orders 1700000000002-0 blob %b", bin, sizeof(bin));
    freeReplyObject(r);
    /* a CloudEvent in our binding */
    r = redisCommand(rc,
                     "XADD orders 1700000000003-0 ofe-ce 1 specversion 1.0 id rd-ce-1 source /x "
                     "type t.redis datacontenttype text/plain flag true ofe-cetypes flag=boolean "
                     "data hello");
    freeReplyObject(r);
    bool ok = es_sink_wait(sink, 4, 15000) >= 4 && es_got_wait(g, 4, 10000) >= 4;
    if (!ok)
        es_daemon_free(d, true), d = NULL;
    assert_true(ok);

    struct ofe_ce *ev = es_sink_find_id(sink, "orders/1700000000000-0");
    assert_non_null(ev);
    es_assert_attr(ev, "source", "/namespaces/default/eventsources/rs/orders");
    es_assert_attr(ev, "type", "dev.ofevents.redis.stream.entry");
    es_assert_attr(ev, "subject", "orders");
    es_assert_attr(ev, "time", "2023-11-14T22:13:20.000Z");
    es_assert_attr(ev, "datacontenttype", "application/json");
    assert_memory_equal(ev->data, "{\"n\":1}", 7);
    ofe_ce_unref(ev);
    ev = es_sink_find_id(sink, "orders/1700000000001-0");
    assert_non_null(ev);
    es_assert_attr(ev, "datacontenttype", "application/json");
    assert_int_equal(ev->data_len, strlen("{\"customer\":\"ada\",\"total\":\"42\"}"));
    assert_memory_equal(ev->data, "{\"customer\":\"ada\",\"total\":\"42\"}", ev->data_len);
    ofe_ce_unref(ev);
    ev = es_sink_find_id(sink, "orders/1700000000002-0");
    assert_non_null(ev);
    es_assert_attr(ev, "base64fields", "blob");
    assert_memory_equal(ev->data, "{\"blob\":\"Yf9i\"}", ev->data_len);
    ofe_ce_unref(ev);
    ev = es_sink_find_id(sink, "rd-ce-1");
    assert_non_null(ev);
    es_assert_attr(ev, "type", "t.redis");
    es_assert_attr(ev, "flag", "true");
    assert_memory_equal(ev->data, "hello", 5);
    struct ofe_ce *bev = es_got_find(g, "rd-ce-1");
    assert_non_null(bev);
    assert_int_equal(ofe_ce_get(bev, "flag", 4)->type, OFE_CE_T_BOOLEAN);
    ofe_ce_unref(ev);
    uint64_t end = es_now_ms_test() + 5000;
    while (pending("orders", "default-rs-orders") != 0 && es_now_ms_test() < end)
        es_msleep(20);
    assert_int_equal(pending("orders", "default-rs-orders"), 0);

    /* a failing sink: the entry stays pending until delivered */
    es_sink_fail(sink, 503, -1);
    size_t before = es_sink_requests(sink);
    r = redisCommand(rc, "XADD orders * data later");
    freeReplyObject(r);
    while (es_sink_requests(sink) < before + 4 && es_now_ms_test() < end + 10000)
        es_msleep(20);
    assert_int_equal(pending("orders", "default-rs-orders"), 1);
    es_sink_fail(sink, 0, 0);
    assert_true(es_sink_wait(sink, 5, 10000) >= 5);
    end = es_now_ms_test() + 5000;
    while (pending("orders", "default-rs-orders") != 0 && es_now_ms_test() < end)
        es_msleep(20);
    assert_int_equal(pending("orders", "default-rs-orders"), 0);
    assert_int_equal(es_daemon_stop(d), 0);
    es_got_free(g);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

static void test_channel(void **state)
{
    char *yaml = yaml_for("news", "      channel: \"news.*\"\n");
    struct es_daemon *d = es_daemon_start(yaml, NULL);
    assert_non_null(d);
    assert_true(es_daemon_wait_ready(d, 10000));
    redisReply *r = redisCommand(rc, "PUBLISH news.sport %s", "goal!");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = redisCommand(rc, "PUBLISH weather %s", "rain");
    freeReplyObject(r);
    assert_true(es_sink_wait(sink, 1, 10000) >= 1);
    struct ofe_ce *ev = es_sink_event(sink, 0);
    es_assert_attr(ev, "type", "dev.ofevents.redis.channel.message");
    es_assert_attr(ev, "subject", "news.sport");
    es_assert_attr(ev, "datacontenttype", "text/plain; charset=utf-8");
    assert_memory_equal(ev->data, "goal!", 5);
    ofe_ce_unref(ev);
    es_msleep(300);
    assert_int_equal(es_sink_count(sink), 1);
    assert_int_equal(es_daemon_stop(d), 0);
    es_daemon_free(d, false);
    es_sink_clear(sink);
    free(yaml);
}

static void test_validate(void **state)
{
    char *yaml = yaml_for("v", "      stream: s\n"
                               "      enableTLS: true\n"
                               "      redisType: cluster\n");
    char out[8192];
    int rc_ = es_validate(yaml, out, sizeof(out));
    if (rc_ != 2 || !strstr(out, "2 error(s)"))
        fprintf(stderr, "%s\n", out);
    assert_int_equal(rc_, 2);
    assert_non_null(strstr(out, "config.yaml:19:18: error: spec.redis.v.enableTLS: TLS to Redis "
                                "is not available"));
    assert_non_null(strstr(out, "config.yaml:20:18: error: spec.redis.v.redisType: Redis Cluster "
                                "is not supported"));
    free(yaml);
}

static int setup(void **state)
{
    rs = tu_server_start(TU_REDIS, NULL);
    bus = tu_server_start(TU_EVENTBUS, NULL);
    sink = es_sink_start(0);
    if (!rs || !bus || !sink)
        return -1;
    rc = redisConnect("127.0.0.1", rs->port);
    return rc && !rc->err ? 0 : -1;
}

static int teardown(void **state)
{
    redisFree(rc);
    es_sink_stop(sink);
    tu_server_free(bus);
    tu_server_free(rs);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_channel),
    };
    if (getenv("ES_TEST"))
        cmocka_set_test_filter(getenv("ES_TEST"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
