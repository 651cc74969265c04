/* The HTTP limit of this machine, for the benchmarks that compare with it
 * (bench_http_client, bench_trigger): a local nginx answering 202, and wrk
 * posting one fixed request to it. */
#ifndef TU_BENCH_HTTP_H
#define TU_BENCH_HTTP_H

#include <stddef.h>

#include "ofe/ce.h"
#include "servers.h"

/* Starts nginx (one worker, keep-alive, every path answers 202) on a free
 * port of 127.0.0.1, with its files in dir. NULL when it does not start. */
struct tu_proc *tu_nginx_start(const char *dir, int *port);

/* Runs wrk (one thread, conns connections, seconds long) posting the
 * request made of h and body to 127.0.0.1:port; its script and output go
 * to dir. Returns requests/s, or -1. */
double tu_wrk_post(const char *dir, int port, int seconds, int conns, const struct ofe_hdrs *h,
                   const void *body, size_t body_len);

/* Writes text to path; exits the benchmark when it cannot. */
void tu_write_text(const char *path, const char *text);

#endif
