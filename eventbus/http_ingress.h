/* The HTTP side of ofe-eventbus: POST /topics/{topic} (CloudEvents in
 * binary, structured or batch mode, stored with the Redis Streams binding
 * of ofe_ce_redis_encode so every Redis-streams reader decodes them), and
 * GET /metrics, /healthz, /readyz. Requests run on libmicrohttpd threads
 * and reach the loop thread through bus_server_submit(); the reply (202
 * with the ids) is sent once the entries are durable under the fsync
 * policy. */
#ifndef OFE_BUS_HTTP_INGRESS_H
#define OFE_BUS_HTTP_INGRESS_H

#include <stdint.h>

#include "server.h"

struct bus_http_opts {
    const char *bind;      /* default 127.0.0.1 */
    uint16_t port;         /* 0 = a free port */
    const char *token;     /* bearer token; NULL = no auth */
    size_t max_event_size; /* per event (413 above) */
};

struct bus_http;

/* Starts the server. Returns NULL with errstr on failure. */
struct bus_http *bus_http_start(struct bus_server *srv, struct ofe_metrics *m,
                                const struct bus_http_opts *o, char *errstr, size_t errstr_size);
uint16_t bus_http_port(const struct bus_http *h);
/* Stops the server (pending requests get 503). NULL is a no-op. */
void bus_http_stop(struct bus_http *h);

#endif
