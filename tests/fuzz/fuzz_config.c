/* libFuzzer harness for the configuration loader: the input is a YAML file.
 * It is loaded from memory in sandbox mode (no environment, no files) with
 * the CESQL checker, then every public reader is exercised, and the loader's
 * promises are checked:
 *   - the return code agrees with the error count;
 *   - every diagnostic has a message, and a position inside the input;
 *   - every kept document has a name, a namespace and a valid kind;
 *   - loading the same bytes again gives the same fingerprints and the same
 *     diagnostics count (no hidden state, no dependence on addresses);
 *   - a Trigger without errors has a compiled condition per subscriber;
 *   - bus resolution either succeeds or explains itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/config.h"
#include "ofe/daemon.h"
#include "ofe/err.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_config: check failed: %s (line %d)\n", #c, __LINE__);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct ofe_config *load(const uint8_t *data, size_t size, int *rc)
{
    struct ofe_config *cfg = ofe_config_new();
    if (!cfg)
        return NULL;
    ofe_config_set_flags(cfg, OFE_CONFIG_SANDBOX);
    ofe_config_set_cesql_check(cfg, ofe_daemon_cesql_check, NULL);
    *rc = ofe_config_load_buffer(cfg, "fuzz.yaml", (const char *)data, size);
    return cfg;
}

static void exercise_node(const struct ofe_config_node *n, const char *key)
{
    char buf[512];
    const struct ofe_config_pos *p = ofe_config_field_pos(n, key);
    CHECK(p != NULL);
    ofe_config_where(n, key, buf, sizeof(buf));
    CHECK(strlen(buf) < sizeof(buf));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = 0, rc2 = 0;
    struct ofe_config *cfg = load(data, size, &rc);
    if (!cfg)
        return 0;
    /* YAML breaks lines at LF, CR, CRLF, NEL, LS and PS: each takes a byte
     * at least, so a line number cannot exceed the size. */
    size_t lines = size + 1;

    CHECK((rc == 0) == (ofe_config_nerrors(cfg) == 0) || rc == OFE_ENOMEM);
    ofe_config_check_refs(cfg, OFE_CONFIG_WARNING);

    size_t n;
    const struct ofe_config_diag *d = ofe_config_diags(cfg, &n);
    CHECK(n == ofe_config_nerrors(cfg) + ofe_config_nwarnings(cfg));
    for (size_t i = 0; i < n; i++) {
        char line[4096];
        CHECK(d[i].message && d[i].message[0]);
        CHECK(d[i].path);
        CHECK(d[i].pos.file && !strcmp(d[i].pos.file, "fuzz.yaml"));
        CHECK(d[i].pos.line >= 0 && (size_t)d[i].pos.line <= lines + 1);
        ofe_config_diag_format(&d[i], line, sizeof(line));
    }

    char desc[1024], err[512];
    struct ofe_config_busdesc bd;
    for (size_t i = 0; i < cfg->neventsources; i++) {
        const struct ofe_config_eventsource *es = cfg->eventsources[i];
        CHECK(es->doc.name && es->doc.namespace && es->doc.kind == OFE_CONFIG_EVENTSOURCE);
        exercise_node(&es->spec.node, "eventBus");
        for (size_t k = 0; k < es->nevents; k++) {
            CHECK(es->events[k].spec && es->events[k].name);
            CHECK(es->events[k].bus_topic);
            exercise_node(es->events[k].spec, "topic");
        }
        err[0] = '\0';
        int r = ofe_config_resolve_bus(cfg, es->spec.event_bus, es->doc.namespace, &bd, desc,
                                       sizeof(desc), err, sizeof(err));
        CHECK(r == 0 ? bd.options != NULL : err[0] != '\0');
        char url[512];
        ofe_config_destination_url(&es->spec.sink, es->doc.namespace, url, sizeof(url));
    }
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct ofe_config_trigger *t = cfg->triggers[i];
        CHECK(t->doc.name && t->doc.namespace && t->doc.kind == OFE_CONFIG_TRIGGER);
        err[0] = '\0';
        int r = ofe_config_resolve_bus(cfg, t->spec.event_bus, t->doc.namespace, &bd, desc,
                                       sizeof(desc), err, sizeof(err));
        CHECK(r == 0 ? bd.options != NULL : err[0] != '\0');
        uint64_t bits[4] = {~0ULL, 0, ~0ULL, 0};
        for (size_t k = 0; k < t->spec.subscribers.n; k++) {
            const struct ofe_config_subscriber *s = &t->spec.subscribers.v[k];
            CHECK(s->name);
            if (t->doc.nerrors == 0 && t->spec.inputs.n <= 256) {
                CHECK(s->cond != NULL);
                if (t->spec.inputs.n <= 128) {
                    (void)ofe_condition_eval_bits(s->cond, bits);
                    struct ofe_buf b = OFE_BUF_INIT;
                    CHECK(ofe_condition_format(s->cond, t->input_names, &b) == 0);
                    ofe_buf_fini(&b);
                }
            }
        }
    }
    for (size_t i = 0; i < cfg->nbuses; i++) {
        const struct ofe_config_bus *b = cfg->buses[i];
        CHECK(b->doc.name && b->doc.namespace);
        CHECK(b->doc.kind == OFE_CONFIG_EVENTBUS || b->doc.kind == OFE_CONFIG_CLUSTEREVENTBUS ||
              b->doc.kind == OFE_CONFIG_COMPONENT);
    }

    /* Determinism: the same bytes give the same documents and diagnostics. */
    struct ofe_config *again = load(data, size, &rc2);
    if (again) {
        CHECK(rc == rc2);
        CHECK(again->neventsources == cfg->neventsources && again->nbuses == cfg->nbuses &&
              again->ntriggers == cfg->ntriggers);
        for (size_t i = 0; i < cfg->neventsources; i++)
            CHECK(ofe_config_doc_same(&cfg->eventsources[i]->doc, &again->eventsources[i]->doc));
        for (size_t i = 0; i < cfg->nbuses; i++)
            CHECK(ofe_config_doc_same(&cfg->buses[i]->doc, &again->buses[i]->doc));
        for (size_t i = 0; i < cfg->ntriggers; i++)
            CHECK(ofe_config_doc_same(&cfg->triggers[i]->doc, &again->triggers[i]->doc));
        ofe_config_check_refs(again, OFE_CONFIG_WARNING);
        size_t n2;
        ofe_config_diags(again, &n2);
        CHECK(n2 == n);
        ofe_config_destroy(again);
    }
    ofe_config_destroy(cfg);
    return 0;
}
