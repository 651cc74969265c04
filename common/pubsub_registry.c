/* The pub/sub backends, one line each (STYLE.md: adding a backend is one
 * new file and one line here). */
#include <string.h>

#include "ofe/config.h"
#include "ofe/err.h"
#include "pubsub_int.h"

extern const struct ofe_pubsub_ops ofe_pubsub_memory;
extern const struct ofe_pubsub_ops ofe_pubsub_mqtt;
extern const struct ofe_pubsub_ops ofe_pubsub_jetstream;
extern const struct ofe_pubsub_ops ofe_pubsub_kafka;
extern const struct ofe_pubsub_ops ofe_pubsub_redis;

const struct ofe_pubsub_ops *const ofe_pubsub__registry[] = {
    &ofe_pubsub_memory,
    &ofe_pubsub_mqtt,
    &ofe_pubsub_jetstream,
    &ofe_pubsub_kafka,
    &ofe_pubsub_redis,
    NULL,
};

const struct ofe_pubsub_ops *ofe_pubsub__find(const char *name)
{
    for (size_t i = 0; ofe_pubsub__registry[i]; i++)
        if (!strcmp(ofe_pubsub__registry[i]->name, name))
            return ofe_pubsub__registry[i];
    return NULL;
}

int ofe_bus_open(const struct ofe_config_busdesc *def, const struct ofe_bus_opts *opts,
                 struct ofe_bus **out, char *errstr, size_t errstr_size)
{
    /* ofe-eventbus speaks the Redis protocol: the redis backend serves it. */
    const char *name = def->kind == OFE_CONFIG_BUS_EMBEDDED ? "redis" : def->kind_name;
    const struct ofe_pubsub_ops *ops = ofe_pubsub__find(name);
    if (!ops)
        return ofe_err(errstr, errstr_size, OFE_EUNSUPP,
                       "bus backend \"%s\" is not available in this build", def->kind_name);
    return ofe_bus__open_ops(ops, def, opts, out, errstr, errstr_size);
}
