/* libFuzzer harness: time zone data (eventsource/tzfile.c). The input is
 * read as a TZif file and, as text, as a POSIX TZ string; an accepted zone
 * must answer offsets within +-26 hours for instants across the whole
 * range, without reading outside the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "ofe/err.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_tzif: check failed: %s (line %d)\n", #cond, __LINE__);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void probe(const struct es_tz *z)
{
    int64_t ts[] = {INT64_MIN / 2, -4000000000LL,  -1,           0, 1700000000LL, 2147483647LL,
                    4102444800LL,  253402300799LL, INT64_MAX / 4};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        int32_t o = es_tz_offset(z, ts[i]);
        CHECK(o >= -26 * 3600 && o <= 26 * 3600);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct es_tz *z = NULL;
    if (es_tz_parse_tzif(data, size, "fuzz", &z, err, sizeof(err)) == 0) {
        probe(z);
        es_tz_free(z);
    } else {
        CHECK(err[0]);
    }
    if (size < 512) {
        char s[512];
        memcpy(s, data, size);
        s[size] = '\0';
        z = NULL;
        if (es_tz_parse_posix(s, NULL, &z, err, sizeof(err)) == 0) {
            probe(z);
            es_tz_free(z);
        }
    }
    return 0;
}
