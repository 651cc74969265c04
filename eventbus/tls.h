/* Optional TLS on the RESP port (OpenSSL). A connection wraps a
 * non-blocking socket; reads and writes follow read(2)/write(2)
 * conventions (-1 with errno EAGAIN when the handshake or the record layer
 * needs more I/O). Loop thread only. */
#ifndef OFE_BUS_TLS_H
#define OFE_BUS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bus_tls_ctx;
struct bus_tls_conn;

/* Loads a PEM certificate chain and key. Returns NULL with errstr set. */
struct bus_tls_ctx *bus_tls_ctx_new(const char *cert, const char *key, char *errstr,
                                    size_t errstr_size);
void bus_tls_ctx_free(struct bus_tls_ctx *ctx);
/* Server side of a connection on fd (not owned). NULL on failure. */
struct bus_tls_conn *bus_tls_conn_new(struct bus_tls_ctx *ctx, int fd);
void bus_tls_conn_free(struct bus_tls_conn *c);
ssize_t bus_tls_read(struct bus_tls_conn *c, void *buf, size_t n);
ssize_t bus_tls_write(struct bus_tls_conn *c, const void *buf, size_t n);
/* Decrypted bytes buffered inside the TLS layer (epoll cannot see them). */
size_t bus_tls_pending(struct bus_tls_conn *c);
/* The last operation needs the socket writable to progress. */
bool bus_tls_want_write(struct bus_tls_conn *c);

#endif
