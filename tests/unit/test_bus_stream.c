/* ofe-eventbus stream model: the PEL treaps against a reference model
 * under random operations, and consumer bookkeeping. (Command semantics are
 * compared with redis-server in tests/integration/test_bus_diff.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stream.h"

#define N 2000

static void test_pel_random(void **state)
{
    (void)state;
    struct bus_stream *s = bus_stream_new("s", 1);
    struct bus_group *g = bus_group_create(s, "g", 1, &(struct bus_id){0, 0}, -1, 0);
    struct bus_consumer *cs[3];
    for (int i = 0; i < 3; i++) {
        char name[2] = {(char)('a' + i), 0};
        cs[i] = bus_consumer_create(g, name, 1, 0, 0);
    }
    int owner[N]; /* -1 = not pending */
    for (int i = 0; i < N; i++)
        owner[i] = -1;
    srand(42);
    for (int step = 0; step < 20000; step++) {
        int k = rand() % N, op = rand() % 3;
        struct bus_id id = {(uint64_t)k, (uint64_t)(k % 7)};
        if (op < 2) {
            int c = rand() % 3;
            assert_non_null(bus_pel_set(g, &id, cs[c], (uint64_t)step, 1));
            owner[k] = c;
        } else {
            assert_int_equal(bus_pel_del(g, &id), owner[k] >= 0);
            owner[k] = -1;
        }
    }
    /* Iteration in id order over the group and over each consumer. */
    size_t count[3] = {0}, total = 0;
    for (int i = 0; i < N; i++)
        if (owner[i] >= 0) {
            count[owner[i]]++;
            total++;
        }
    assert_int_equal(g->pel_count, total);
    struct bus_id zero = {0, 0};
    int prev = -1;
    size_t seen = 0;
    for (struct bus_nack *n = bus_pel_seek(g->pel, 0, &zero); n; n = bus_pel_next(g->pel, 0, n)) {
        assert_true((int)n->id.ms > prev);
        prev = (int)n->id.ms;
        assert_int_equal(owner[n->id.ms], n->consumer == cs[0] ? 0 : n->consumer == cs[1] ? 1 : 2);
        seen++;
    }
    assert_int_equal(seen, total);
    for (int c = 0; c < 3; c++) {
        assert_int_equal(cs[c]->pel_count, count[c]);
        size_t k = 0;
        for (struct bus_nack *n = bus_pel_seek(cs[c]->pel, 1, &zero); n;
             n = bus_pel_next(cs[c]->pel, 1, n)) {
            assert_ptr_equal(n->consumer, cs[c]);
            k++;
        }
        assert_int_equal(k, count[c]);
    }
    /* Seek lands on the first id >= the one asked for. */
    struct bus_nack *n = bus_pel_seek(g->pel, 0, &(struct bus_id){N / 2, 0});
    for (int i = N / 2; i < N; i++)
        if (owner[i] >= 0) {
            assert_non_null(n);
            assert_int_equal(n->id.ms, (uint64_t)i);
            break;
        }
    /* Deleting a consumer drops its entries from the group PEL too. */
    size_t had = bus_consumer_delete(g, cs[1]);
    assert_int_equal(had, count[1]);
    assert_int_equal(g->pel_count, total - count[1]);
    bus_stream_free(s);
}

static void test_ids(void **state)
{
    (void)state;
    struct bus_id a = {5, UINT64_MAX};
    assert_true(bus_id_incr(&a));
    assert_int_equal(a.ms, 6);
    assert_int_equal(a.seq, 0);
    assert_true(bus_id_decr(&a));
    assert_int_equal(a.seq, UINT64_MAX);
    struct bus_id m = BUS_ID_MAX;
    assert_false(bus_id_incr(&m));
    struct bus_id z = {0, 0};
    assert_false(bus_id_decr(&z));
    char b[48];
    b[bus_id_fmt(b, &m)] = '\0';
    assert_string_equal(b, "18446744073709551615-18446744073709551615");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pel_random),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
