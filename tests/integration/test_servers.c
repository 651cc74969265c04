/* The server harness: redis-server, nats-server (JetStream) and mosquitto
 * start on free loopback ports, are killed and restarted; free ports come
 * from outside the ephemeral range and stay reserved while their holder
 * lives (C tests, and shell tests through tests/lib/free_port.py); a file
 * another process appends lines to is read line-whole. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "servers.h"
#include "testutil.h"

static void cycle(enum tu_server_kind kind)
{
    struct tu_server *s = tu_server_start(kind, NULL);
    assert_non_null(s);
    assert_true(tu_proc_alive(s->proc));
    assert_int_equal(tu_wait_port(s->port, 1000), 0);
    tu_server_kill(s);
    assert_false(tu_proc_alive(s->proc));
    assert_int_equal(tu_server_restart(s), 0);
    assert_true(tu_proc_alive(s->proc));
    tu_server_stop(s);
    assert_false(tu_proc_alive(s->proc));
    tu_server_free(s);
}

static void test_redis(void **state)
{
    cycle(TU_REDIS);
}

static void test_nats(void **state)
{
    cycle(TU_NATS);
}

static void test_mosquitto(void **state)
{
    cycle(TU_MOSQUITTO);
}

static void test_missing_binary(void **state)
{
    const char *av[] = {"/nonexistent/server", NULL};
    struct tu_proc *p = tu_proc_start(av, NULL);
    assert_non_null(p); /* fork works; the child exits 127 */
    int st = tu_proc_stop(p, 0, 2000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 127);
    tu_proc_free(p);
}

/* Whether port's reservation is held: an flock through a file description
 * of our own (flock locks conflict between descriptions, even within one
 * process) is refused. */
static bool reserved_elsewhere(int port)
{
    char path[4200];
    tu_port_lock_path(port, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    bool held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

static void test_free_port(void **state)
{
    int elo = 32768, ehi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        assert_int_equal(fscanf(f, "%d %d", &elo, &ehi), 2);
        fclose(f);
    }
    int a = tu_free_port(), b = tu_free_port();
    assert_true(a > 0 && b > 0 && a != b);
    /* (this machine leaves room below the range; tu_free_port falls back
     * to the kernel's choice on one that does not) */
    assert_true(a < elo || a > ehi);
    assert_true(b < elo || b > ehi);
    assert_true(reserved_elsewhere(a));
    assert_true(reserved_elsewhere(b));
}

/* No place for the reservations (TMPDIR names nothing): a port still
 * comes, the kernel's choice, unreserved. */
static void test_free_port_no_lock_dir(void **state)
{
    const char *old = getenv("TMPDIR");
    char *keep = old ? strdup(old) : NULL;
    setenv("TMPDIR", "/nonexistent/ofe-test", 1);
    int port = tu_free_port();
    if (keep)
        setenv("TMPDIR", keep, 1);
    else
        unsetenv("TMPDIR");
    free(keep);
    assert_true(port > 0 && port < 65536);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0); /* it was free */
    close(fd);
}

/* The shell tests' helper: the reservation outlives the helper (command
 * substitution) and ends once the shell it holds for has exited. */
static void test_free_port_shell(void **state)
{
    char cmd[8192], out[64] = "";
    snprintf(cmd, sizeof(cmd),
             "sh -c 'P=$(python3 %s/tests/lib/free_port.py --hold $$) && echo $P && sleep 2'",
             tu_source_dir());
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, sizeof(out), p));
    int port = atoi(out);
    assert_true(port > 0);
    assert_true(reserved_elsewhere(port)); /* the shell still runs */
    assert_true(WIFEXITED(pclose(p)));
    bool released = false;
    for (int i = 0; i < 50 && !released; i++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        released = !reserved_elsewhere(port);
    }
    assert_true(released);
}

/* tu_read_lines: only whole lines, also while another process appends
 * lines of 1500 bytes with one write() each (what `ofe sink --output`
 * does); tu_read_file can end in the middle of one of them then. */
static void test_read_lines(void **state)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/ofe-read-lines-%d",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("a\nbc\npart", f);
    fclose(f);
    size_t n;
    char *t = tu_read_lines(path, &n);
    assert_string_equal(t, "a\nbc\n");
    assert_int_equal(n, 5);
    free(t);
    f = fopen(path, "w");
    fputs("no newline", f);
    fclose(f);
    t = tu_read_lines(path, NULL);
    assert_string_equal(t, "");
    free(t);

    enum { LEN = 1500, LINES = 3000 };
    static char line[LEN];
    memset(line, 'x', LEN - 1);
    line[LEN - 1] = '\n';
    unlink(path);
    pid_t w = fork();
    assert_true(w >= 0);
    if (w == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        for (int i = 0; fd >= 0 && i < LINES; i++) {
            if (write(fd, line, LEN) != LEN)
                _exit(1);
            usleep(100);
        }
        _exit(fd >= 0 ? 0 : 1);
    }
    long reads = 0, bad = 0;
    int st;
    while (waitpid(w, &st, WNOHANG) == 0) {
        t = tu_read_lines(path, &n);
        if (!t)
            continue;
        reads++;
        for (size_t off = 0; off < n; off += LEN)
            if (n - off < LEN || memcmp(t + off, line, LEN) != 0) {
                bad++;
                break;
            }
        free(t);
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    t = tu_read_lines(path, &n);
    assert_int_equal(n, (size_t)LEN * LINES);
    free(t);
    unlink(path);
    print_message("%ld reads while appending, %ld with a piece of a line\n", reads, bad);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis),
        cmocka_unit_test(test_nats),
        cmocka_unit_test(test_mosquitto),
        cmocka_unit_test(test_missing_binary),
        cmocka_unit_test(test_free_port),
        cmocka_unit_test(test_free_port_shell),
        cmocka_unit_test(test_free_port_no_lock_dir),
        cmocka_unit_test(test_read_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
