/* ofe validate: checks configuration files the way the daemons load them,
 * and prints the generated configuration reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ofe/buf.h"
#include "ofe/config.h"
#include "ofe/daemon.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ofe validate [-q] [-v] [--strict] FILE...\n"
            "       ofe validate --dump-reference\n"
            "\n"
            "Loads every FILE (YAML; - reads standard input) into one configuration, as the\n"
            "daemons do with several --config files, and prints each error and warning as\n"
            "FILE:LINE:COLUMN: error: FIELD.PATH: message (on standard error), then one line\n"
            "per file on standard output: `FILE: ok`, or `FILE: N error(s)`.\n"
            "\n"
            "  -q, --quiet        print only errors (no warnings, no ok lines)\n"
            "  -v, --verbose      also print how each EventSource and Trigger resolves its\n"
            "                     eventBus\n"
            "      --strict       an eventBus that names no loaded bus document is an error\n"
            "                     (the daemons' rule); by default it is a warning, as the bus\n"
            "                     may be defined in a file not given here\n"
            "      --dump-reference  print docs/config.md (the reference of every field,\n"
            "                     generated from the parsing tables) and exit\n"
            "\n"
            "Exit status: 0 when every file is valid, 2 otherwise.\n");
}

struct sorted {
    const struct ofe_config_diag *d;
    size_t index;
};

static int diag_cmp(const void *a, const void *b)
{
    const struct sorted *x = a, *y = b;
    if (x->d->pos.line != y->d->pos.line)
        return x->d->pos.line < y->d->pos.line ? -1 : 1;
    if (x->d->pos.col != y->d->pos.col)
        return x->d->pos.col < y->d->pos.col ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int load_stdin(struct ofe_config *cfg)
{
    struct ofe_buf b = OFE_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (ofe_buf_append(&b, chunk, n) != 0 || b.len > OFE_CONFIG_MAX_FILE_SIZE + 1)
            break;
    }
    int rc = ofe_config_load_buffer(cfg, "-", b.data ? b.data : "", b.len);
    ofe_buf_fini(&b);
    return rc;
}

static void print_resolution(const struct ofe_config *cfg)
{
    char desc[1024], err[512];
    struct ofe_config_busdesc bd;
    for (size_t i = 0; i < cfg->neventsources; i++) {
        const struct ofe_config_eventsource *es = cfg->eventsources[i];
        if (!es->spec.event_bus) {
            printf("EventSource %s/%s: no eventBus (sink only)\n", es->doc.namespace, es->doc.name);
            continue;
        }
        if (ofe_config_resolve_bus(cfg, es->spec.event_bus, es->doc.namespace, &bd, desc,
                                   sizeof(desc), err, sizeof(err)) == 0)
            printf("EventSource %s/%s: %s\n", es->doc.namespace, es->doc.name, desc);
        else
            printf("EventSource %s/%s: %s\n", es->doc.namespace, es->doc.name, err);
    }
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct ofe_config_trigger *t = cfg->triggers[i];
        if (ofe_config_resolve_bus(cfg, t->spec.event_bus, t->doc.namespace, &bd, desc,
                                   sizeof(desc), err, sizeof(err)) == 0)
            printf("Trigger %s/%s: %s\n", t->doc.namespace, t->doc.name, desc);
        else
            printf("Trigger %s/%s: %s\n", t->doc.namespace, t->doc.name, err);
    }
}

int cmd_config_validate(int argc, char **argv)
{
    bool quiet = false, verbose = false, strict = false;
    int first = 1;
    for (; first < argc; first++) {
        const char *a = argv[first];
        if (!strcmp(a, "--")) {
            first++;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
        } else if (!strcmp(a, "--strict")) {
            strict = true;
        } else if (!strcmp(a, "--dump-reference")) {
            struct ofe_buf b = OFE_BUF_INIT;
            if (ofe_config_reference(&b) != 0) {
                fprintf(stderr, "ofe validate: out of memory\n");
                return 1;
            }
            fwrite(b.data, 1, b.len, stdout);
            ofe_buf_fini(&b);
            return fflush(stdout) == 0 ? 0 : 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ofe validate: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (first >= argc) {
        usage(stderr);
        return 2;
    }
    struct ofe_config *cfg = ofe_config_new();
    if (!cfg) {
        fprintf(stderr, "ofe validate: out of memory\n");
        return 1;
    }
    ofe_config_set_cesql_check(cfg, ofe_daemon_cesql_check, NULL);
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "-"))
            load_stdin(cfg);
        else
            ofe_config_load_file(cfg, argv[i]);
    }
    ofe_config_check_refs(cfg, strict ? OFE_CONFIG_ERROR : OFE_CONFIG_WARNING);

    size_t n;
    const struct ofe_config_diag *diags = ofe_config_diags(cfg, &n);
    struct sorted *s = calloc(n + 1, sizeof(*s));
    int status = 0;
    for (int i = first; i < argc && s; i++) {
        bool dup = false;
        for (int j = first; j < i; j++)
            dup |= !strcmp(argv[i], argv[j]);
        if (dup)
            continue;
        size_t m = 0, errors = 0;
        for (size_t k = 0; k < n; k++)
            if (diags[k].pos.file && !strcmp(diags[k].pos.file, argv[i])) {
                s[m].d = &diags[k];
                s[m].index = k;
                m++;
                errors += diags[k].severity == OFE_CONFIG_ERROR;
            }
        qsort(s, m, sizeof(*s), diag_cmp);
        for (size_t k = 0; k < m; k++) {
            char line[4096];
            if (quiet && s[k].d->severity != OFE_CONFIG_ERROR)
                continue;
            fprintf(stderr, "%s\n", ofe_config_diag_format(s[k].d, line, sizeof(line)));
        }
        fflush(stderr);
        if (errors) {
            printf("%s: %zu error%s\n", argv[i], errors, errors == 1 ? "" : "s");
            status = 2;
        } else if (!quiet) {
            printf("%s: ok\n", argv[i]);
        }
        fflush(stdout);
    }
    free(s);
    if (verbose)
        print_resolution(cfg);
    ofe_config_destroy(cfg);
    return status;
}
