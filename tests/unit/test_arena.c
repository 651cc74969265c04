/* The bump allocator shared by CESQL, header lists and the redis backend's
 * reply parsing (ofe/arena.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ofe/arena.h"

/* Aligned allocations stay aligned after odd-sized byte runs, within a
 * chunk and across a chunk boundary, and nothing handed out overlaps. */
static void test_alignment_and_no_overlap(void **state)
{
    (void)state;
    struct ofe_arena a = OFE_ARENA_INIT(64);
    for (int i = 0; i < 200; i++) {
        char *s = ofe_arena_bytes(&a, (size_t)(i % 7) + 1);
        assert_non_null(s);
        memset(s, 'x', (size_t)(i % 7) + 1);
        size_t n = (size_t)(i % 13) * 8 + 8;
        unsigned char *p = ofe_arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, i & 0xff, n);
        /* the string written before is intact */
        for (int k = 0; k < (i % 7) + 1; k++)
            assert_int_equal(s[k], 'x');
    }
    assert_true(a.total >= 64);
    ofe_arena_fini(&a);
    assert_null(a.head);
    assert_int_equal(a.total, 0);
}

static void test_strdup(void **state)
{
    (void)state;
    struct ofe_arena a = OFE_ARENA_INIT(0);
    char *s = ofe_arena_strdup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    char *e = ofe_arena_strdup(&a, NULL, 0);
    assert_non_null(e);
    assert_string_equal(e, "");
    ofe_arena_fini(&a);
}

/* reset keeps the memory as one chunk of the total size when within
 * keep_max (the next round of the same size allocates nothing), and frees
 * it when over. */
static void test_reset_keeps_or_frees(void **state)
{
    (void)state;
    struct ofe_arena a = OFE_ARENA_INIT(100);
    for (int i = 0; i < 50; i++)
        assert_non_null(ofe_arena_alloc(&a, 48));
    size_t total = a.total;
    assert_true(total >= 50 * 48);
    assert_non_null(a.head);
    ofe_arena_reset(&a, SIZE_MAX);
    assert_int_equal(a.total, total);
    void *first = ofe_arena_alloc(&a, 48);
    for (int i = 1; i < 50; i++)
        assert_non_null(ofe_arena_alloc(&a, 48));
    assert_int_equal(a.total, total); /* no new chunk */
    /* everything from the first round's memory: one chunk, reused */
    ofe_arena_reset(&a, SIZE_MAX);
    assert_ptr_equal(ofe_arena_alloc(&a, 48), first);

    ofe_arena_reset(&a, total - 1);
    assert_null(a.head);
    assert_int_equal(a.total, 0);
    assert_non_null(ofe_arena_alloc(&a, 10)); /* usable after */
    ofe_arena_fini(&a);
}

/* An allocation larger than any chunk gets a chunk of its own. */
static void test_large(void **state)
{
    (void)state;
    struct ofe_arena a = OFE_ARENA_INIT(128);
    char *small = ofe_arena_bytes(&a, 10);
    memcpy(small, "0123456789", 10);
    char *big = ofe_arena_alloc(&a, 1 << 20);
    assert_non_null(big);
    memset(big, 1, 1 << 20);
    assert_memory_equal(small, "0123456789", 10);
    assert_true(a.total >= (1u << 20) + 128);
    ofe_arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_no_overlap),
        cmocka_unit_test(test_strdup),
        cmocka_unit_test(test_reset_keeps_or_frees),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
