/* `ofe publish` and `ofe tail` as a user runs them, against a real
 * redis-server: bus files (EventBus and Dapr Component), single events and
 * batches, tailing from oldest and as events arrive, and the precise errors
 * with their exit codes (bad event, bad option, authentication, unreachable
 * broker, bad usage). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ofe/ce.h"
#include "servers.h"
#include "testutil.h"

#define PASSWORD "cli-pw"

static struct tu_server *SRV;
static char *DIR_;
static char *OFE;
static char OUT[1 << 16], ERR[1 << 16];

static void write_file(const char *name, const char *fmt, ...)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", DIR_, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

/* Runs `ofe ARGS` in DIR_ (shell words), stdin from in_file when given;
 * returns the exit status; OUT and ERR hold what it printed. */
static int run(const char *in_file, const char *fmt, ...)
{
    char args[4096], cmd[9000], path[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' %s < %s > out.txt 2> err.txt", DIR_, OFE, args,
             in_file ? in_file : "/dev/null");
    int st = system(cmd);
    snprintf(path, sizeof(path), "%s/out.txt", DIR_);
    char *o = tu_read_file(path, NULL);
    snprintf(path, sizeof(path), "%s/err.txt", DIR_);
    char *e = tu_read_file(path, NULL);
    snprintf(OUT, sizeof(OUT), "%s", o ? o : "");
    snprintf(ERR, sizeof(ERR), "%s", e ? e : "");
    free(o);
    free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#define EXPECT_RUN(code, needle_out, needle_err, ...)                                              \
    do {                                                                                           \
        int rc_ = run(__VA_ARGS__);                                                                \
        if (rc_ != (code) || !strstr(OUT, needle_out) || !strstr(ERR, needle_err))                 \
            fail_msg("exit %d (want %d)\nstdout: %s\nstderr: %s\nwanted stdout ~ \"%s\", "         \
                     "stderr ~ \"%s\"",                                                            \
                     rc_, code, OUT, ERR, needle_out, needle_err);                                 \
    } while (0)

static redisContext *raw(void)
{
    redisContext *c = redisConnect("127.0.0.1", SRV->port);
    assert_true(c && !c->err);
    redisReply *r = redisCommand(c, "AUTH %s", PASSWORD);
    freeReplyObject(r);
    return c;
}

static long long xlen(const char *key)
{
    redisContext *c = raw();
    redisReply *r = redisCommand(c, "XLEN %s", key);
    long long n = r ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static int setup(void **state)
{
    const char *extra[] = {"--requirepass", PASSWORD, NULL};
    SRV = tu_server_start(TU_REDIS, extra);
    if (!SRV)
        return -1;
    DIR_ = tu_mkdtemp("ofe-cli");
    OFE = tu_build_path("cli/ofe");
    write_file("bus.yaml",
               "apiVersion: events.openfunction.io/v1alpha1\n"
               "kind: EventBus\n"
               "metadata:\n  name: mybus\n"
               "spec:\n  redis:\n    redisHost: %s\n    redisPassword: %s\n"
               "    processingTimeout: 1s\n    redeliverInterval: 250ms\n",
               SRV->addr, PASSWORD);
    write_file("dapr.yaml",
               "apiVersion: events.openfunction.io/v1alpha1\n"
               "kind: EventBus\n"
               "metadata:\n  name: other\n"
               "spec:\n  redis:\n    redisHost: 127.0.0.1:1\n"
               "---\n"
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Component\n"
               "metadata:\n  name: pubsub\n"
               "spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n"
               "  - name: redisHost\n    value: \"%s\"\n"
               "  - name: redisPassword\n    value: \"%s\"\n",
               SRV->addr, PASSWORD);
    write_file("badpw.yaml",
               "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
               "metadata:\n  name: b\nspec:\n  redis:\n    redisHost: %s\n"
               "    redisPassword: wrong\n",
               SRV->addr);
    write_file("down.yaml",
               "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
               "metadata:\n  name: b\nspec:\n  redis:\n    redisHost: 127.0.0.1:%d\n",
               tu_free_port());
    write_file("tls.yaml",
               "apiVersion: events.openfunction.io/v1alpha1\nkind: EventBus\n"
               "metadata:\n  name: b\nspec:\n  redis:\n    redisHost: %s\n"
               "    enableTLS: true\n",
               SRV->addr);
    write_file("nobus.yaml", "apiVersion: events.openfunction.io/v1alpha1\nkind: EventSource\n"
                             "metadata:\n  name: s\nspec:\n  sink:\n    uri: http://127.0.0.1:9/\n"
                             "  cron:\n    tick:\n"
                             "      schedule: \"@every 1m\"\n");
    write_file("e1.json", "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/cli\","
                          "\"type\":\"t\",\"myext\":7,\"data\":{\"k\":[1,2]}}\n");
    write_file("batch.json",
               "[{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":\"/cli\",\"type\":\"t\"},\n"
               " {\"specversion\":\"1.0\",\"id\":\"b2\",\"source\":\"/cli\",\"type\":\"t\","
               "\"datacontenttype\":\"application/octet-stream\",\"data_base64\":\"AP8K\"}]\n");
    write_file("bad.json", "{\"specversion\":\"1.0\",\"id\":\"x\",\"type\":\"t\"}\n");
    write_file("badbatch.json",
               "[{\"specversion\":\"1.0\",\"id\":\"ok\",\"source\":\"/s\",\"type\":\"t\"},"
               "{\"specversion\":\"1.0\",\"id\":\"bad\",\"source\":\"/s\",\"type\":\"t\","
               "\"time\":\"yesterday\"}]\n");
    return 0;
}

static int teardown(void **state)
{
    tu_server_free(SRV);
    tu_rmrf(DIR_);
    free(DIR_);
    free(OFE);
    return 0;
}

static void test_publish_and_tail(void **state)
{
    EXPECT_RUN(0, "e1\n", "", NULL, "publish --bus bus.yaml --topic t1 e1.json");
    EXPECT_RUN(0, "b1\nb2\n", "", "batch.json", "publish --bus bus.yaml --topic t1");
    assert_int_equal(xlen("t1"), 3);
    EXPECT_RUN(0, "", "", NULL,
               "tail --bus bus.yaml --topic t1 --from oldest --count 3 "
               "--group g1 --timeout 10s");
    /* one JSON line per event, equal to what was published */
    const char *want[] = {
        "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/cli\",\"type\":\"t\",\"myext\":7,"
        "\"data\":{\"k\":[1,2]}}",
        "{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":\"/cli\",\"type\":\"t\"}",
        "{\"specversion\":\"1.0\",\"id\":\"b2\",\"source\":\"/cli\",\"type\":\"t\","
        "\"datacontenttype\":\"application/octet-stream\",\"data_base64\":\"AP8K\"}"};
    char *line = OUT;
    for (int i = 0; i < 3; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        struct ofe_ce *a, *b;
        char err[300];
        if (ofe_ce_json_decode(line, strlen(line), &a, err, sizeof(err)))
            fail_msg("line %d: %s: %s", i, line, err);
        assert_int_equal(ofe_ce_json_decode(want[i], strlen(want[i]), &b, err, sizeof(err)), 0);
        if (!ofe_ce_equal(a, b))
            fail_msg("line %d: %s\nwanted: %s", i, line, want[i]);
        ofe_ce_unref(a);
        ofe_ce_unref(b);
        line = nl + 1;
    }
    assert_string_equal(line, "");
    /* the group acked everything: nothing is left for it */
    EXPECT_RUN(1, "", "0 of 1 events arrived", NULL,
               "tail --bus bus.yaml --topic t1 --group g1 --count 1 --timeout 1500");
}

static void test_tail_as_events_arrive(void **state)
{
    char log[4200];
    snprintf(log, sizeof(log), "%s/tail.log", DIR_);
    char bus[4200];
    snprintf(bus, sizeof(bus), "%s/dapr.yaml", DIR_);
    const char *argv[] = {OFE,       "tail",    "--bus",     bus,       "--bus-name",
                          "pubsub",  "--topic", "t2",        "--topic", "t3",
                          "--count", "2",       "--timeout", "20s",     NULL};
    struct tu_proc *p = tu_proc_start(argv, log);
    assert_non_null(p);
    /* --from newest: publish only once its group exists on both streams */
    redisContext *c = raw();
    int groups = 0;
    for (int i = 0; i < 500 && groups < 2; i++) {
        groups = 0;
        const char *keys[] = {"t2", "t3"};
        for (int k = 0; k < 2; k++) {
            redisReply *r = redisCommand(c, "XINFO GROUPS %s", keys[k]);
            groups += r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
            freeReplyObject(r);
        }
        usleep(20000);
    }
    redisFree(c);
    assert_int_equal(groups, 2);
    EXPECT_RUN(0, "e1\n", "", NULL, "publish --bus dapr.yaml --bus-name pubsub --topic t2 e1.json");
    /* a stream entry that is not a CloudEvent is reported, acked, skipped */
    c = raw();
    redisReply *r = redisCommand(c, "XADD t3 * hello world");
    freeReplyObject(r);
    redisFree(c);
    EXPECT_RUN(0, "b1\nb2\n", "", "batch.json",
               "publish --bus dapr.yaml --bus-name pubsub --topic t3");
    for (int i = 0; i < 1000 && tu_proc_alive(p); i++)
        usleep(20000);
    assert_false(tu_proc_alive(p));
    char *text = tu_read_file(log, NULL);
    assert_non_null(text);
    if (!strstr(text, "\"id\":\"e1\"") || !strstr(text, "not a CloudEvent") ||
        !strstr(text, "\"hello\":\"world\""))
        fail_msg("tail output: %s", text);
    free(text);
    tu_proc_free(p);
}

static void test_errors(void **state)
{
    long long before = xlen("t4");
    /* invalid events: nothing is published */
    EXPECT_RUN(2, "", "missing required attribute 'source'", NULL,
               "publish --bus bus.yaml --topic t4 bad.json");
    EXPECT_RUN(2, "", "event [1]", NULL, "publish --bus bus.yaml --topic t4 badbatch.json");
    EXPECT_RUN(2, "", "", NULL, "publish --bus bus.yaml --topic t4 nonexistent.json");
    assert_int_equal(xlen("t4"), before);
    /* the broker refuses the password */
    EXPECT_RUN(1, "", "authentication failed", NULL,
               "publish --bus badpw.yaml --topic t4 --timeout 1500 e1.json");
    EXPECT_RUN(1, "", "WRONGPASS", NULL, "tail --bus badpw.yaml --topic t4 --timeout 1500");
    /* nothing listens there */
    EXPECT_RUN(1, "", "Connection refused", NULL,
               "publish --bus down.yaml --topic t4 --timeout 1500 e1.json");
    /* options this build cannot honour, bad files */
    EXPECT_RUN(2, "", "hiredis >= 1.0", NULL, "publish --bus tls.yaml --topic t4 e1.json");
    EXPECT_RUN(2, "", "no EventBus, ClusterEventBus or Component", NULL,
               "publish --bus nobus.yaml --topic t4 e1.json");
    EXPECT_RUN(2, "", "no EventBus \"nope\"", NULL,
               "publish --bus bus.yaml --bus-name nope --topic t4 e1.json");
    EXPECT_RUN(2, "", "", NULL, "publish --bus missing.yaml --topic t4 e1.json");
    /* usage */
    EXPECT_RUN(2, "", "--topic is required", NULL, "publish --bus bus.yaml e1.json");
    EXPECT_RUN(2, "", "unknown option", NULL, "publish --frob --topic t e1.json");
    EXPECT_RUN(2, "", "neither oldest nor newest", NULL,
               "tail --bus bus.yaml --topic t --from middle");
    EXPECT_RUN(2, "", "not a positive number", NULL, "tail --bus bus.yaml --topic t --count 0");
    EXPECT_RUN(0, "usage: ofe publish", "", NULL, "publish --help");
    EXPECT_RUN(0, "usage: ofe tail", "", NULL, "tail --help");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_and_tail),
        cmocka_unit_test(test_tail_as_events_arrive),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
