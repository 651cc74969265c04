/* The kafka backend's offset tracker: the commit point never passes an
 * unacked offset, whatever the ack order, and follows offsets with holes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pubsub_kafka_int.h"

static void test_in_order(void **state)
{
    struct ofe_offset_track t;
    ofe_offset_track_init(&t);
    uint64_t seq[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(ofe_offset_track_push(&t, 100 + i, &seq[i]), 0);
    assert_int_equal(t.point, -1);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ofe_offset_track_ack(&t, seq[i]), 1);
        assert_int_equal(t.point, 101 + i);
    }
    assert_int_equal(t.n, 0);
    ofe_offset_track_fini(&t);
}

static void test_gap_holds_point(void **state)
{
    struct ofe_offset_track t;
    ofe_offset_track_init(&t);
    uint64_t seq[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(ofe_offset_track_push(&t, i, &seq[i]), 0);
    for (int i = 0; i < 4; i++)
        ofe_offset_track_ack(&t, seq[i]);
    assert_int_equal(t.point, 4);
    /* 5..9 acked, 4 not: the point stays at 4. */
    for (int i = 5; i < 10; i++) {
        assert_int_equal(ofe_offset_track_ack(&t, seq[i]), 0);
        assert_int_equal(t.point, 4);
    }
    /* Closing the gap releases everything at once. */
    assert_int_equal(ofe_offset_track_ack(&t, seq[4]), 6);
    assert_int_equal(t.point, 10);
    /* A second ack of the same message changes nothing. */
    assert_int_equal(ofe_offset_track_ack(&t, seq[4]), 0);
    assert_int_equal(t.point, 10);
    ofe_offset_track_fini(&t);
}

static void test_holes_in_offsets(void **state)
{
    struct ofe_offset_track t;
    ofe_offset_track_init(&t);
    uint64_t a, b, c;
    ofe_offset_track_push(&t, 7, &a);
    ofe_offset_track_push(&t, 12, &b); /* 8..11: compacted away or markers */
    ofe_offset_track_push(&t, 13, &c);
    assert_true(ofe_offset_track_seen(&t, 12));
    assert_false(ofe_offset_track_seen(&t, 14));
    ofe_offset_track_ack(&t, b);
    assert_int_equal(t.point, -1);
    ofe_offset_track_ack(&t, a);
    assert_int_equal(t.point, 13);
    ofe_offset_track_ack(&t, c);
    assert_int_equal(t.point, 14);
    ofe_offset_track_fini(&t);
}

/* Random ack orders over a growing, wrapping window: the point is always
 * one past the longest acked prefix. */
static void test_random_orders(void **state)
{
    srand(42);
    for (int round = 0; round < 50; round++) {
        struct ofe_offset_track t;
        ofe_offset_track_init(&t);
        enum { N = 700 };
        static uint64_t seq[N];
        static int acked[N];
        int64_t base = 1000 * round;
        int pushed = 0, prefix = 0;
        while (prefix < N) {
            /* Push a few, ack a few at random among the pushed. */
            for (int k = rand() % 5; k > 0 && pushed < N; k--, pushed++) {
                acked[pushed] = 0;
                assert_int_equal(ofe_offset_track_push(&t, base + pushed, &seq[pushed]), 0);
            }
            if (pushed == prefix)
                continue;
            int i = prefix + rand() % (pushed - prefix);
            if (!acked[i]) {
                acked[i] = 1;
                ofe_offset_track_ack(&t, seq[i]);
            }
            while (prefix < pushed && acked[prefix])
                prefix++;
            if (prefix == 0)
                assert_int_equal(t.point, -1);
            else
                assert_int_equal(t.point, base + prefix);
            assert_int_equal(t.n, (size_t)(pushed - prefix));
        }
        ofe_offset_track_fini(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_gap_holds_point),
        cmocka_unit_test(test_holes_in_offsets),
        cmocka_unit_test(test_random_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
