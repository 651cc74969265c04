/* The pub/sub core through the memory backend: publish confirmation,
 * groups, bounded in-flight, nack redelivery, stop and close. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ofe/err.h"
#include "ofe/pubsub.h"

static struct ofe_ce *mkev(int i)
{
    struct ofe_ce *ev = ofe_ce_new();
    char id[32], err[128];
    snprintf(id, sizeof(id), "%d", i);
    assert_int_equal(ofe_ce_set_str(ev, "id", 0, id, err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "source", 0, "/test", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "specversion", 0, "1.0", err, sizeof(err)), 0);
    assert_int_equal(ofe_ce_set_str(ev, "type", 0, "t", err, sizeof(err)), 0);
    return ev;
}

static int ev_num(const struct ofe_msg *m)
{
    return atoi(ofe_ce_get_str(ofe_msg_event(m), "id"));
}

#define N 2000

struct seen {
    pthread_mutex_t lock;
    int count[N];
    int total;
    int inflight_max;
    atomic_int held;
    bool hold; /* keep messages instead of acking */
    struct ofe_msg *kept[N];
    int nkept;
    int nack_first; /* nack each event the first time it is seen */
};

static void on_msg(struct ofe_msg *m, void *opaque)
{
    struct seen *s = opaque;
    int i = ev_num(m);
    pthread_mutex_lock(&s->lock);
    s->count[i]++;
    s->total++;
    bool first = s->count[i] == 1;
    if (s->hold) {
        s->kept[s->nkept++] = m;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    pthread_mutex_unlock(&s->lock);
    if (s->nack_first && first)
        ofe_msg_nack(m, 20);
    else
        ofe_msg_ack(m);
}

static void wait_total(struct seen *s, int want)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&s->lock);
        int t = s->total;
        pthread_mutex_unlock(&s->lock);
        if (t >= want)
            return;
        usleep(5000);
    }
}

static struct seen *seen_new(void)
{
    struct seen *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

static struct ofe_sub *sub(struct ofe_bus *b, const char *group, struct seen *s, unsigned max)
{
    const char *topics[] = {"t1"};
    struct ofe_sub_opts o = {.group = group,
                             .topics = topics,
                             .ntopics = 1,
                             .max_inflight = max,
                             .on_msg = on_msg,
                             .opaque = s};
    struct ofe_sub *sb;
    char err[256];
    assert_int_equal(ofe_bus_subscribe(b, &o, &sb, err, sizeof(err)), 0);
    return sb;
}

static void publish_n(struct ofe_bus *b, int n)
{
    char err[256];
    for (int i = 0; i < n; i++) {
        struct ofe_ce *ev = mkev(i);
        assert_int_equal(ofe_bus_publish_sync(b, "t1", ev, err, sizeof(err)), 0);
        ofe_ce_unref(ev);
    }
}

static void test_groups(void **state)
{
    struct ofe_bus *b;
    char err[256];
    assert_int_equal(ofe_bus_open_memory("groups", NULL, &b, err, sizeof(err)), 0);
    struct seen *a = seen_new(), *c = seen_new();
    /* two members of group g1 share; group g2 gets everything */
    struct ofe_sub *s1 = sub(b, "g1", a, 8), *s2 = sub(b, "g1", a, 8), *s3 = sub(b, "g2", c, 8);
    publish_n(b, N);
    wait_total(a, N);
    wait_total(c, N);
    usleep(50000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a->count[i], 1);
        assert_int_equal(c->count[i], 1);
    }
    ofe_sub_close(s1);
    ofe_sub_close(s2);
    ofe_sub_close(s3);
    ofe_bus_close(b, 1000);
    free(a);
    free(c);
}

static void test_inflight_bound_and_abandon(void **state)
{
    struct ofe_bus *b;
    char err[256];
    assert_int_equal(ofe_bus_open_memory("bound", NULL, &b, err, sizeof(err)), 0);
    struct seen *a = seen_new();
    a->hold = true;
    struct ofe_sub *s1 = sub(b, "g", a, 5);
    publish_n(b, 20);
    wait_total(a, 5);
    usleep(100000);
    /* exactly max_inflight were handed out, no more */
    assert_int_equal(a->total, 5);
    assert_int_equal(ofe_sub_inflight(s1), 5);
    /* the member stops without acking: another member gets them again */
    ofe_sub_close(s1);
    for (int i = 0; i < a->nkept; i++)
        ofe_msg_nack(a->kept[i], 0); /* after close: handed back to the broker */
    struct seen *c = seen_new();
    struct ofe_sub *s2 = sub(b, "g", c, 50);
    wait_total(c, 20);
    usleep(50000);
    for (int i = 0; i < 20; i++)
        assert_int_equal(c->count[i], 1);
    ofe_sub_close(s2);
    ofe_bus_close(b, 1000);
    free(a);
    free(c);
}

static void test_nack_redelivers(void **state)
{
    struct ofe_bus *b;
    char err[256];
    assert_int_equal(ofe_bus_open_memory("nack", NULL, &b, err, sizeof(err)), 0);
    struct seen *a = seen_new();
    a->nack_first = 1;
    struct ofe_sub *s1 = sub(b, "g", a, 4);
    publish_n(b, 50);
    wait_total(a, 100);
    usleep(50000);
    for (int i = 0; i < 50; i++)
        assert_int_equal(a->count[i], 2);
    assert_int_equal(ofe_sub_inflight(s1), 0);
    ofe_sub_close(s1);
    ofe_bus_close(b, 1000);
    free(a);
}

static void test_start_newest(void **state)
{
    struct ofe_bus *b;
    char err[256];
    assert_int_equal(ofe_bus_open_memory("newest", NULL, &b, err, sizeof(err)), 0);
    publish_n(b, 10);
    struct seen *a = seen_new();
    const char *topics[] = {"t1"};
    struct ofe_sub_opts o = {.group = "late",
                             .topics = topics,
                             .ntopics = 1,
                             .start = OFE_START_NEWEST,
                             .on_msg = on_msg,
                             .opaque = a};
    struct ofe_sub *sb;
    assert_int_equal(ofe_bus_subscribe(b, &o, &sb, err, sizeof(err)), 0);
    struct ofe_ce *ev = mkev(77);
    assert_int_equal(ofe_bus_publish_sync(b, "t1", ev, err, sizeof(err)), 0);
    ofe_ce_unref(ev);
    wait_total(a, 1);
    usleep(50000);
    assert_int_equal(a->total, 1);
    assert_int_equal(a->count[77], 1);
    ofe_sub_close(sb);
    ofe_bus_close(b, 1000);
    free(a);
}

static void test_bad_args(void **state)
{
    struct ofe_bus *b;
    char err[256];
    assert_int_equal(ofe_bus_open_memory("bad", NULL, &b, err, sizeof(err)), 0);
    struct ofe_sub *sb;
    struct ofe_sub_opts o = {.group = "g", .ntopics = 0, .on_msg = on_msg};
    assert_int_equal(ofe_bus_subscribe(b, &o, &sb, err, sizeof(err)), OFE_EINVAL);
    assert_string_equal(err, "subscribe: no topic given");
    struct ofe_ce *ev = mkev(1);
    assert_int_equal(ofe_bus_publish(b, "", ev, NULL, NULL, err, sizeof(err)), OFE_EINVAL);
    ofe_ce_unref(ev);
    assert_string_equal(ofe_bus_backend(b), "memory");
    assert_true(ofe_bus_ready(b, err, sizeof(err)));
    ofe_bus_close(b, 0);
}

static void test_close_with_held_messages(void **state)
{
    /* Closing the bus while the consumer still holds messages: the late
     * acks only free memory (ASan checks for leaks and use after free). */
    struct ofe_bus *b;
    char err[256];
    assert_int_equal(ofe_bus_open_memory("held", NULL, &b, err, sizeof(err)), 0);
    struct seen *a = seen_new();
    a->hold = true;
    sub(b, "g", a, 3);
    publish_n(b, 3);
    wait_total(a, 3);
    ofe_bus_close(b, 50);
    for (int i = 0; i < a->nkept; i++)
        ofe_msg_ack(a->kept[i]);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups),          cmocka_unit_test(test_inflight_bound_and_abandon),
        cmocka_unit_test(test_nack_redelivers), cmocka_unit_test(test_start_newest),
        cmocka_unit_test(test_bad_args),        cmocka_unit_test(test_close_with_held_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
