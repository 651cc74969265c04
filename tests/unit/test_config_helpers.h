/* Helpers of the config unit tests: load YAML text and assert on the
 * formatted diagnostics exactly as `ofe validate` prints them. */
#ifndef TEST_CONFIG_HELPERS_H
#define TEST_CONFIG_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ofe/config.h"

/* Loads text as file "t.yaml" into a new config. */
static inline struct ofe_config *tc_load(const char *yaml)
{
    struct ofe_config *cfg = ofe_config_new();
    assert_non_null(cfg);
    ofe_config_load_buffer(cfg, "t.yaml", yaml, strlen(yaml));
    return cfg;
}

static inline void tc_dump(const struct ofe_config *cfg)
{
    size_t n;
    const struct ofe_config_diag *d = ofe_config_diags(cfg, &n);
    for (size_t i = 0; i < n; i++) {
        char line[2048];
        print_error("  %s\n", ofe_config_diag_format(&d[i], line, sizeof(line)));
    }
}

/* True when a formatted diagnostic contains want. */
static inline int tc_has(const struct ofe_config *cfg, const char *want)
{
    size_t n;
    const struct ofe_config_diag *d = ofe_config_diags(cfg, &n);
    for (size_t i = 0; i < n; i++) {
        char line[2048];
        if (strstr(ofe_config_diag_format(&d[i], line, sizeof(line)), want))
            return 1;
    }
    return 0;
}

#define assert_diag(cfg, want)                                                                     \
    do {                                                                                           \
        if (!tc_has((cfg), (want))) {                                                              \
            print_error("no diagnostic contains: %s\ndiagnostics:\n", (want));                     \
            tc_dump(cfg);                                                                          \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_no_diag(cfg, want)                                                                  \
    do {                                                                                           \
        if (tc_has((cfg), (want))) {                                                               \
            print_error("unexpected diagnostic: %s\n", (want));                                    \
            tc_dump(cfg);                                                                          \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_errors(cfg, n)                                                                      \
    do {                                                                                           \
        if (ofe_config_nerrors(cfg) != (size_t)(n)) {                                              \
            print_error("expected %d errors, got %zu:\n", (int)(n), ofe_config_nerrors(cfg));      \
            tc_dump(cfg);                                                                          \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_clean(cfg)                                                                          \
    do {                                                                                           \
        size_t n_;                                                                                 \
        ofe_config_diags((cfg), &n_);                                                              \
        if (n_) {                                                                                  \
            print_error("expected no diagnostics:\n");                                             \
            tc_dump(cfg);                                                                          \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define ES_HEAD                                                                                    \
    "apiVersion: events.openfunction.io/v1alpha1\n"                                                \
    "kind: EventSource\n"                                                                          \
    "metadata:\n"                                                                                  \
    "  name: es\n"                                                                                 \
    "spec:\n"

#define BUS_HEAD                                                                                   \
    "apiVersion: events.openfunction.io/v1alpha1\n"                                                \
    "kind: EventBus\n"                                                                             \
    "metadata:\n"                                                                                  \
    "  name: bus\n"                                                                                \
    "spec:\n"

#define TRIGGER_HEAD                                                                               \
    "apiVersion: events.openfunction.io/v1alpha1\n"                                                \
    "kind: Trigger\n"                                                                              \
    "metadata:\n"                                                                                  \
    "  name: tr\n"                                                                                 \
    "spec:\n"

#define COMPONENT_HEAD                                                                             \
    "apiVersion: dapr.io/v1alpha1\n"                                                               \
    "kind: Component\n"                                                                            \
    "metadata:\n"                                                                                  \
    "  name: comp\n"                                                                               \
    "spec:\n"

#endif
