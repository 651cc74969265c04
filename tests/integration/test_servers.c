/* The server harness: redis-server, nats-server (JetStream) and mosquitto
 * start on free loopback ports, are killed and restarted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "servers.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis),
        cmocka_unit_test(test_nats),
        cmocka_unit_test(test_mosquitto),
        cmocka_unit_test(test_missing_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
