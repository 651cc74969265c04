/* Limits and safety of ofe-eventbus, as a hostile or careless client would
 * meet them: oversize events, too many connections, a client that never
 * reads its replies, an input buffer over the limit, garbage protocol, and
 * requirepass from a file. After each, the broker keeps serving others.
 * The broker is configured through an EventBus YAML (--config). */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "servers.h"
#include "testutil.h"

static int failures;
static int port;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads until EOF or timeout; returns bytes read, -1 if the peer kept the
 * connection open until the timeout. */
static ssize_t read_to_eof(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t n = 0;
    for (;;) {
        char tmp[65536];
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r == 0)
            return (ssize_t)n;
        if (r < 0)
            return errno == ECONNRESET ? (ssize_t)n : -1;
        size_t take = (size_t)r < cap - n ? (size_t)r : cap - n;
        memcpy(buf + n, tmp, take);
        n += take;
        if (n + 1 >= cap)
            n = 0; /* keep the tail only */
    }
}

static redisContext *cli(void)
{
    struct timeval tv = {.tv_sec = 5};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err)
        return NULL;
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "AUTH %s", "pa55word");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* The broker still answers another client. Connections the test just
 * closed may still count against maxClients for a moment: retry briefly. */
static void still_serving(const char *after)
{
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++) {
        redisContext *c = cli();
        redisReply *r = c ? redisCommand(c, "PING") : NULL;
        ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
        if (!ok)
            usleep(50 * 1000);
    }
    CHECK(ok, "broker does not answer PING after %s", after);
}

static void test_auth(void)
{
    struct timeval tv = {.tv_sec = 5};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = redisCommand(c, "XLEN s");
    CHECK(r && r->type == REDIS_REPLY_ERROR && !strcmp(r->str, "NOAUTH Authentication required."),
          "no NOAUTH before AUTH");
    freeReplyObject(r);
    r = redisCommand(c, "AUTH wrong");
    CHECK(r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "WRONGPASS"), "wrong password");
    freeReplyObject(r);
    r = redisCommand(c, "AUTH pa55word");
    CHECK(r && r->type == REDIS_REPLY_STATUS, "password from requirepassFile refused");
    freeReplyObject(r);
    redisFree(c);
}

static void test_oversize(void)
{
    redisContext *c = cli();
    size_t big = 5000; /* maxEventSize is 4096 */
    char *v = malloc(big);
    memset(v, 'x', big);
    redisReply *r = redisCommand(c, "XADD s * f %b", v, big);
    CHECK(r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "exceeds the event size limit"),
          "oversize argument accepted: %s", r && r->str ? r->str : "?");
    freeReplyObject(r);
    /* Under the per-argument limit, over the per-event limit. */
    r = redisCommand(c, "XADD s * a %b b %b", v, (size_t)3000, v, (size_t)3000);
    CHECK(r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "event too large"),
          "oversize event accepted: %s", r && r->str ? r->str : "?");
    freeReplyObject(r);
    /* The connection keeps working and nothing was stored. */
    r = redisCommand(c, "XLEN s");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0, "oversize event stored");
    freeReplyObject(r);
    r = redisCommand(c, "XADD s * f %b", v, (size_t)4000);
    CHECK(r && r->type == REDIS_REPLY_STRING, "event under the limit refused");
    freeReplyObject(r);
    free(v);
    redisFree(c);
    still_serving("oversize events");
}

static void test_max_clients(void)
{
    /* maxClients is 20. */
    redisContext *cs[20];
    int n = 0;
    for (int i = 0; i < 20; i++)
        if ((cs[n] = cli()))
            n++;
    CHECK(n == 20, "only %d of 20 clients could connect", n);
    int fd = raw_connect();
    char buf[256];
    ssize_t got = fd >= 0 ? read_to_eof(fd, buf, sizeof(buf), 3000) : -1;
    if (got >= 0)
        buf[got] = '\0';
    CHECK(got > 0 && strstr(buf, "-ERR max number of clients reached"),
          "client 21 not refused with Redis's error (got %zd)", got);
    if (fd >= 0)
        close(fd);
    redisReply *r = redisCommand(cs[0], "PING");
    CHECK(r && r->type == REDIS_REPLY_STATUS, "existing client broken by a refused one");
    freeReplyObject(r);
    for (int i = 0; i < n; i++)
        redisFree(cs[i]);
    usleep(100 * 1000);
    still_serving("too many clients");
}

static void test_slow_reader(void)
{
    redisContext *c = cli();
    char v[1024];
    memset(v, 'y', sizeof(v));
    for (int i = 0; i < 200; i++)
        freeReplyObject(redisCommand(c, "XADD big * f %b", v, sizeof(v)));
    redisFree(c);
    /* A client asking for ~200 KiB again and again and never reading: the
     * broker must drop it once 64 KiB (clientOutputBuffer) are unsent. */
    int fd = raw_connect();
    const char auth[] = "AUTH pa55word\r\n";
    CHECK(write(fd, auth, sizeof(auth) - 1) > 0, "write");
    int rcv = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    const char cmd[] = "XRANGE big - +\r\n";
    bool dropped = false;
    for (int i = 0; i < 2000 && !dropped; i++) {
        if (write(fd, cmd, sizeof(cmd) - 1) < 0)
            dropped = true;
        if (i % 50 == 49) {
            usleep(20 * 1000);
            still_serving("a slow reader");
        }
    }
    /* Draining now ends in EOF: the broker closed it. */
    static char sink[1 << 20];
    ssize_t got = read_to_eof(fd, sink, sizeof(sink), 5000);
    CHECK(dropped || got >= 0, "slow reader not disconnected");
    close(fd);
    still_serving("a slow reader");
}

static void test_input_limit(void)
{
    /* One command of 200 arguments of 1000 bytes: 200 KB of input before
     * it completes, over clientInputBuffer (64 KiB). */
    int fd = raw_connect();
    const char auth[] = "AUTH pa55word\r\n";
    CHECK(write(fd, auth, sizeof(auth) - 1) > 0, "write");
    char arg[1100];
    memset(arg, 'z', 1000);
    const char hdr[] = "*201\r\n$4\r\nECHO\r\n";
    CHECK(write(fd, hdr, sizeof(hdr) - 1) > 0, "write");
    bool broken = false;
    for (int i = 0; i < 200 && !broken; i++) {
        char h[32];
        int hl = snprintf(h, sizeof(h), "$1000\r\n");
        if (write(fd, h, (size_t)hl) < 0 || write(fd, arg, 1000) < 0 || write(fd, "\r\n", 2) < 0)
            broken = true;
    }
    char buf[256];
    ssize_t got = read_to_eof(fd, buf, sizeof(buf), 5000);
    CHECK(broken || got >= 0, "client over the input limit not disconnected");
    close(fd);
    still_serving("an input buffer over the limit");
}

static void test_garbage(void)
{
    const char *bad[] = {"*abc\r\n",     "*1\r\n$abc\r\n",   "*2\r\n$-5\r\n",
                         "*1\r\n:1\r\n", "\"unbalanced\r\n", "*99999999999\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = raw_connect();
        const char auth[] = "AUTH pa55word\r\n";
        CHECK(write(fd, auth, sizeof(auth) - 1) > 0, "write");
        CHECK(write(fd, bad[i], strlen(bad[i])) > 0, "write");
        char buf[512];
        ssize_t got = read_to_eof(fd, buf, sizeof(buf) - 1, 5000);
        if (got >= 0)
            buf[got] = '\0';
        CHECK(got > 0 && strstr(buf, "-ERR Protocol error"),
              "garbage #%zu: no protocol error and close (got %zd)", i, got);
        close(fd);
    }
    /* Random bytes. */
    srand(7);
    for (int k = 0; k < 20; k++) {
        int fd = raw_connect();
        char junk[4096];
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (char)rand();
        if (write(fd, junk, sizeof(junk)) < 0) {
        }
        close(fd);
    }
    still_serving("garbage protocol");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the broker may close a connection first */
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *dir = tu_mkdtemp("bus-limits");
    char cfg[4096], pass[4096];
    snprintf(pass, sizeof(pass), "%s/pass", dir);
    FILE *f = fopen(pass, "w");
    fprintf(f, "pa55word\n");
    fclose(f);
    snprintf(cfg, sizeof(cfg), "%s/bus.yaml", dir);
    f = fopen(cfg, "w");
    fprintf(f,
            "apiVersion: events.openfunction.io/v1alpha1\n"
            "kind: EventBus\n"
            "metadata:\n  name: default\n"
            "spec:\n"
            "  embedded:\n"
            "    fsync: everysec\n"
            "    requirepassFile: %s\n"
            "    limits:\n"
            "      maxEventSize: 4096\n"
            "      maxClients: 20\n"
            "      clientInputBuffer: 65536\n"
            "      clientOutputBuffer: 65536\n",
            pass);
    fclose(f);
    /* Flags given by the harness (port, data dir, fsync always) override
     * the file; the limits and the password come from it. */
    const char *extra[] = {"--config", cfg, NULL};
    struct tu_server *srv = tu_server_start(TU_EVENTBUS, extra);
    if (!srv) {
        tu_rmrf(dir);
        free(dir);
        return 1;
    }
    port = srv->port;
    test_auth();
    test_oversize();
    test_max_clients();
    test_slow_reader();
    test_input_limit();
    test_garbage();
    CHECK(tu_proc_alive(srv->proc), "the broker died");
    char *log = tu_read_file(srv->proc->log, NULL);
    CHECK(log && strstr(log, "output buffer over the limit"), "no log line for the slow reader");
    CHECK(log && strstr(log, "input buffer over the limit"), "no log line for the input limit");
    if (failures && log)
        fprintf(stderr, "broker log:\n%s\n", log);
    free(log);
    tu_server_free(srv);
    tu_rmrf(dir);
    free(dir);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
