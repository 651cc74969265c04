/* `--bus FILE [--bus-name NAME]` for the ofe commands that talk to a bus
 * (publish, tail). */
#ifndef OFE_CLI_BUSARG_H
#define OFE_CLI_BUSARG_H

#include <stdint.h>

#include "ofe/config.h"
#include "ofe/pubsub.h"

struct cli_bus {
    struct ofe_config *cfg;
    struct ofe_bus *bus;
    char desc[1200]; /* how the bus was chosen, for --verbose */
};

/* Loads file (YAML; NULL: none, the embedded bus on its default address)
 * and opens the bus document called name in namespace ns (name NULL: the
 * first EventBus, ClusterEventBus or Component in the file). Prints what is
 * wrong on stderr prefixed with prog and returns the exit code (2: bad
 * file or option, 1: the bus could not be opened), or 0. */
int cli_bus_open(const char *prog, const char *file, const char *name, const char *ns,
                 uint32_t publish_timeout_ms, struct cli_bus *out);

/* Waits until the bus is ready, at most timeout_ms. Returns 0, or prints
 * "PROG: the bus is not ready after N ms: WHY" and returns 1. */
int cli_bus_wait_ready(const char *prog, struct cli_bus *b, uint32_t timeout_ms);

/* Closes the bus (draining up to drain_ms) and frees the config. */
void cli_bus_close(struct cli_bus *b, uint32_t drain_ms);

/* Parses a duration in milliseconds ("1500", "1500ms", "2s", "1m").
 * Returns 0 or -1. */
int cli_parse_ms(const char *s, uint32_t *out);

#endif
