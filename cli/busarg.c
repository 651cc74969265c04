/* `--bus FILE` handling shared by ofe publish and ofe tail (busarg.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busarg.h"
#include "ofe/err.h"

static const char *kind_word(enum ofe_config_kind k)
{
    return k == OFE_CONFIG_EVENTBUS          ? "EventBus"
           : k == OFE_CONFIG_CLUSTEREVENTBUS ? "ClusterEventBus"
                                             : "Component";
}

int cli_bus_open(const char *prog, const char *file, const char *name, const char *ns,
                 uint32_t publish_timeout_ms, struct cli_bus *out)
{
    memset(out, 0, sizeof(*out));
    out->cfg = ofe_config_new();
    if (!out->cfg) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    if (file) {
        ofe_config_load_file(out->cfg, file);
        size_t nd;
        const struct ofe_config_diag *d = ofe_config_diags(out->cfg, &nd);
        char line[2048];
        for (size_t i = 0; i < nd; i++)
            fprintf(stderr, "%s\n", ofe_config_diag_format(&d[i], line, sizeof(line)));
        if (ofe_config_nerrors(out->cfg)) {
            fprintf(stderr, "%s: %s: %zu error(s) in the bus file\n", prog, file,
                    ofe_config_nerrors(out->cfg));
            return 2;
        }
    }
    struct ofe_config_busdesc bd;
    char err[1024];
    int rc;
    if (file && !name) {
        if (!out->cfg->nbuses) {
            fprintf(stderr,
                    "%s: %s has no EventBus, ClusterEventBus or Component document (give "
                    "--bus-name, or leave out --bus for the embedded bus)\n",
                    prog, file);
            return 2;
        }
        const struct ofe_config_bus *b = out->cfg->buses[0];
        rc = ofe_config_resolve_bus(out->cfg, b->doc.name, b->doc.namespace, &bd, out->desc,
                                    sizeof(out->desc), err, sizeof(err));
        if (rc == 0 && bd.doc != b)
            snprintf(out->desc + strlen(out->desc), sizeof(out->desc) - strlen(out->desc),
                     " (note: the first bus document, %s %s, has the same name)",
                     kind_word(b->doc.kind), b->doc.name);
    } else {
        rc = ofe_config_resolve_bus(out->cfg, name, ns, &bd, out->desc, sizeof(out->desc), err,
                                    sizeof(err));
    }
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    struct ofe_bus_opts o = {.component = prog, .publish_timeout_ms = publish_timeout_ms};
    rc = ofe_bus_open(&bd, &o, &out->bus, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "%s: cannot open the bus: %s\n", prog, err);
        return rc == OFE_EINVAL || rc == OFE_EUNSUPP ? 2 : 1;
    }
    return 0;
}

int cli_bus_wait_ready(const char *prog, struct cli_bus *b, uint32_t timeout_ms)
{
    char why[1024] = "";
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (ofe_bus_ready(b->bus, why, sizeof(why)))
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= (long)timeout_ms)
            break;
        struct timespec d = {0, 10 * 1000000L};
        nanosleep(&d, NULL);
    }
    if (why[0])
        fprintf(stderr, "%s: the bus is not ready after %u ms: %s\n", prog, timeout_ms, why);
    else
        fprintf(stderr, "%s: the bus (%s) is not ready after %u ms\n", prog,
                ofe_bus_describe(b->bus), timeout_ms);
    return 1;
}

void cli_bus_close(struct cli_bus *b, uint32_t drain_ms)
{
    ofe_bus_close(b->bus, drain_ms);
    b->bus = NULL;
    ofe_config_destroy(b->cfg);
    b->cfg = NULL;
}

int cli_parse_ms(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mul = 1;
    if (!strcmp(end, "") || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else
        return -1;
    v *= mul;
    if (v > 4294967295.0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}
