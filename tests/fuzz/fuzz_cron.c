/* libFuzzer harness: cron schedules (eventsource/cron_expr.c). The input is
 * parsed as a schedule in UTC and in a zone with daylight saving; an
 * accepted one is asked for a chain of next ticks, which must be strictly
 * increasing, on whole seconds (or the @every step), and come back fast.
 * A refused one must give an offset inside the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "ofe/err.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cron: check failed: %s (line %d)\n", #cond, __LINE__);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct es_tz *berlin;

static void run(const char *spec, size_t len, const struct es_tz *zone)
{
    struct es_cron *c = NULL;
    size_t off = (size_t)-1;
    char err[512];
    int rc = es_cron_parse_in(spec, zone, &c, &off, err, sizeof(err));
    if (rc) {
        CHECK(rc == OFE_EINVAL || rc == OFE_ENOMEM);
        CHECK(off <= len + 1);
        CHECK(err[0]);
        return;
    }
    /* 2024-03-30 and 2024-10-26, just before the Berlin transitions */
    int64_t starts[] = {1711800000000LL, 1729950000000LL, 0, 4102444800000LL};
    for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
        int64_t t = starts[k];
        for (int i = 0; i < 8; i++) {
            int64_t n = es_cron_next(c, t);
            if (n < 0)
                break;
            CHECK(n > t);
            if (!es_cron_is_every(c))
                CHECK(n % 1000 == 0);
            t = n;
        }
    }
    es_cron_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2048)
        return 0;
    if (!berlin) {
        char err[256];
        if (es_tz_load("Europe/Berlin", &berlin, err, sizeof(err)) != 0)
            es_tz_parse_posix("CET-1CEST,M3.5.0,M10.5.0/3", "Berlin", &berlin, err, sizeof(err));
    }
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    size_t len = strlen(s); /* up to an embedded NUL, as a config string would be */
    run(s, len, NULL);
    run(s, len, berlin);
    free(s);
    return 0;
}
