/* The source kinds of ofe-eventsource: one line per kind (STYLE.md). */
#include "es.h"

extern const struct es_kind es_kind_kafka;
extern const struct es_kind es_kind_nats;
extern const struct es_kind es_kind_mqtt;
extern const struct es_kind es_kind_redis;
extern const struct es_kind es_kind_cron;
extern const struct es_kind es_kind_webhook;

/* clang-format off */
const struct es_kind *const es_kinds[] = {
    &es_kind_kafka,
    &es_kind_nats,
    &es_kind_mqtt,
    &es_kind_redis,
    &es_kind_cron,
    &es_kind_webhook,
    NULL,
};
/* clang-format on */

const struct es_kind *es_kind_find(enum ofe_config_source_kind k)
{
    for (size_t i = 0; es_kinds[i]; i++)
        if (es_kinds[i]->kind == k)
            return es_kinds[i];
    return NULL;
}
