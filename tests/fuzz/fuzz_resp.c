/* libFuzzer harness: RESP parsing and command dispatch of ofe-eventbus on
 * an in-memory store. The input is fed to a socket-less client in chunks
 * whose sizes come from the input itself (so requests split anywhere);
 * every reply the server writes must be well-formed RESP2. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofe/log.h"
#include "server.h"

static struct bus_server *srv;
static unsigned runs;

/* Returns the length of one well-formed RESP2 reply at p, 0 if invalid. */
static size_t reply_len(const char *p, size_t n, int depth)
{
    if (n < 3 || depth > 64)
        return 0;
    const char *cr = memchr(p, '\r', n);
    if (!cr || (size_t)(cr - p) + 1 >= n || cr[1] != '\n')
        return 0;
    size_t hl = (size_t)(cr - p) + 2;
    switch (p[0]) {
    case '+':
    case '-':
        return hl;
    case ':':
        return hl > 3 ? hl : 0;
    case '$': {
        long long l = atoll(p + 1);
        if (l == -1)
            return hl;
        if (l < 0 || (unsigned long long)l + 2 > n - hl)
            return 0;
        if (p[hl + l] != '\r' || p[hl + l + 1] != '\n')
            return 0;
        return hl + (size_t)l + 2;
    }
    case '*': {
        long long k = atoll(p + 1);
        if (k == -1)
            return hl;
        size_t at = hl;
        for (long long i = 0; i < k; i++) {
            size_t e = reply_len(p + at, n - at, depth + 1);
            if (!e)
                return 0;
            at += e;
        }
        return at;
    }
    default:
        return 0;
    }
}

static void check_output(struct bus_client *c)
{
    size_t len;
    char *out = bus_client_take_output(c, &len);
    size_t at = 0;
    while (at < len) {
        size_t e = reply_len(out + at, len - at, 0);
        if (!e) {
            fprintf(stderr, "malformed reply at %zu: %.80s\n", at, out + at);
            abort();
        }
        at += e;
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) {
        ofe_log_set_level(OFE_LOG_ERROR);
        struct bus_server_opts o = {.bind = "127.0.0.1",
                                    .port = 0,
                                    .max_event_size = 4096,
                                    .client_ibuf = 1 << 20,
                                    .client_obuf = 1 << 20};
        char err[256];
        srv = bus_server_new(&o, err, sizeof(err));
        if (!srv) {
            fprintf(stderr, "cannot start the server: %s\n", err);
            abort();
        }
    }
    struct bus_client *c = bus_client_new_local(srv);
    struct bus_client *other = bus_client_new_local(srv);
    size_t at = 0;
    bool open = true;
    while (at < size && open) {
        /* A chunk length byte, then the chunk. */
        size_t chunk = (size_t)data[at++] % 64 + 1;
        if (chunk > size - at)
            chunk = size - at;
        open = bus_client_feed(c, data + at, chunk);
        at += chunk;
        check_output(c);
    }
    bus_server_poll(srv);
    check_output(c);
    check_output(other);
    bus_client_free_local(c);
    /* Keep memory flat across runs. */
    if (++runs % 64 == 0)
        bus_client_feed(other, "FLUSHALL\r\n", 10);
    check_output(other);
    bus_client_free_local(other);
    return 0;
}
