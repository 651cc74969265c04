/* Metrics registry and Prometheus text exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ofe/metrics.h"

static char *render(struct ofe_metrics *m)
{
    struct ofe_buf b = OFE_BUF_INIT;
    assert_int_equal(ofe_metrics_render(m, &b), 0);
    return ofe_buf_detach(&b, NULL);
}

static void test_counter_labels(void **state)
{
    struct ofe_metrics *m = ofe_metrics_new();
    const char *l1[] = {"source", "a", NULL};
    const char *l2[] = {"source", "b\"x\\y\nz", NULL};
    struct ofe_counter *c1 = ofe_metrics_counter(m, "ofe_events_total", "Events seen", l1);
    struct ofe_counter *c2 = ofe_metrics_counter(m, "ofe_events_total", "Events seen", l2);
    assert_non_null(c1);
    assert_ptr_not_equal(c1, c2);
    assert_ptr_equal(c1, ofe_metrics_counter(m, "ofe_events_total", "ignored", l1));
    ofe_counter_add(c1, 41);
    ofe_counter_inc(c1);
    ofe_counter_inc(c2);
    assert_int_equal(ofe_counter_get(c1), 42);
    char *t = render(m);
    assert_non_null(
        strstr(t, "# HELP ofe_events_total Events seen\n# TYPE ofe_events_total counter\n"));
    assert_non_null(strstr(t, "ofe_events_total{source=\"a\"} 42\n"));
    assert_non_null(strstr(t, "ofe_events_total{source=\"b\\\"x\\\\y\\nz\"} 1\n"));
    /* a name reused with another kind is refused, not corrupted */
    assert_null(ofe_metrics_gauge(m, "ofe_events_total", "x", l1));
    free(t);
    ofe_metrics_destroy(m);
}

static void test_gauge_and_fn(void **state)
{
    struct ofe_metrics *m = ofe_metrics_new();
    struct ofe_gauge *g = ofe_metrics_gauge(m, "ofe_inflight", "In flight", NULL);
    ofe_gauge_set(g, 3);
    ofe_gauge_add(g, 0.5);
    assert_true(ofe_gauge_get(g) == 3.5);
    /* a function gauge without a function renders 0 */
    assert_int_equal(
        ofe_metrics_gauge_fn(m, "ofe_lag", "Lag", (const char *[]){"group", "g", NULL}, NULL, NULL),
        0);
    char *t = render(m);
    assert_non_null(strstr(t, "ofe_inflight 3.5\n"));
    assert_non_null(strstr(t, "ofe_lag{group=\"g\"} 0\n"));
    free(t);
    ofe_metrics_destroy(m);
}

static double seven(void *arg)
{
    return *(double *)arg;
}

static void test_gauge_fn_value(void **state)
{
    struct ofe_metrics *m = ofe_metrics_new();
    double v = 7;
    ofe_metrics_gauge_fn(m, "ofe_pending", "Pending", NULL, seven, &v);
    char *t = render(m);
    assert_non_null(strstr(t, "# TYPE ofe_pending gauge\nofe_pending 7\n"));
    free(t);
    ofe_metrics_destroy(m);
}

static void test_histogram(void **state)
{
    struct ofe_metrics *m = ofe_metrics_new();
    const double b[] = {0.1, 1};
    struct ofe_histogram *h =
        ofe_metrics_histogram(m, "ofe_latency_seconds", "Latency", NULL, b, 2);
    ofe_histogram_observe(h, 0.05);
    ofe_histogram_observe(h, 0.1); /* on the bound: counted in le="0.1" */
    ofe_histogram_observe(h, 0.5);
    ofe_histogram_observe(h, 3);
    assert_int_equal(ofe_histogram_count(h), 4);
    char *t = render(m);
    assert_non_null(strstr(t, "ofe_latency_seconds_bucket{le=\"0.10000000000000001\"} 2\n") ||
                    strstr(t, "ofe_latency_seconds_bucket{le=\"0.1\"} 2\n"));
    assert_non_null(strstr(t, "ofe_latency_seconds_bucket{le=\"1\"} 3\n"));
    assert_non_null(strstr(t, "ofe_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t, "ofe_latency_seconds_sum 3.6499999999999999\n") ||
                    strstr(t, "ofe_latency_seconds_sum 3.65\n"));
    assert_non_null(strstr(t, "ofe_latency_seconds_count 4\n"));
    free(t);
    ofe_metrics_destroy(m);
}

static void test_remove_by_label(void **state)
{
    struct ofe_metrics *m = ofe_metrics_new();
    ofe_counter_inc(
        ofe_metrics_counter(m, "ofe_x_total", "x", (const char *[]){"trigger", "t1", NULL}));
    ofe_counter_inc(
        ofe_metrics_counter(m, "ofe_x_total", "x", (const char *[]){"trigger", "t2", NULL}));
    ofe_metrics_remove_by_label(m, "trigger", "t1");
    char *t = render(m);
    assert_null(strstr(t, "t1"));
    assert_non_null(strstr(t, "ofe_x_total{trigger=\"t2\"} 1\n"));
    free(t);
    /* re-creating after removal starts from zero */
    struct ofe_counter *c =
        ofe_metrics_counter(m, "ofe_x_total", "x", (const char *[]){"trigger", "t1", NULL});
    assert_int_equal(ofe_counter_get(c), 0);
    ofe_metrics_destroy(m);
}

static void test_null_safe(void **state)
{
    ofe_counter_inc(NULL);
    ofe_gauge_set(NULL, 1);
    ofe_histogram_observe(NULL, 1);
    assert_null(ofe_metrics_counter(NULL, "a", "b", NULL));
    ofe_metrics_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_labels),  cmocka_unit_test(test_gauge_and_fn),
        cmocka_unit_test(test_gauge_fn_value),  cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_remove_by_label), cmocka_unit_test(test_null_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
