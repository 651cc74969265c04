/* TLS for the RESP port with OpenSSL (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include "ofe/err.h"

struct bus_tls_ctx {
    SSL_CTX *ctx;
};

struct bus_tls_conn {
    SSL *ssl;
    bool want_write;
};

struct bus_tls_ctx *bus_tls_ctx_new(const char *cert, const char *key, char *errstr,
                                    size_t errstr_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "TLS: cannot create a context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ofe_err(errstr, errstr_size, OFE_EINVAL, "TLS: cannot load certificate %s: %s", cert,
                ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ofe_err(errstr, errstr_size, OFE_EINVAL, "TLS: cannot load key %s: %s", key,
                ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct bus_tls_ctx *t = calloc(1, sizeof(*t));
    if (!t) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    t->ctx = ctx;
    return t;
}

void bus_tls_ctx_free(struct bus_tls_ctx *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

struct bus_tls_conn *bus_tls_conn_new(struct bus_tls_ctx *t, int fd)
{
    struct bus_tls_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->ssl = SSL_new(t->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
        SSL_free(c->ssl);
        free(c);
        return NULL;
    }
    SSL_set_accept_state(c->ssl);
    return c;
}

void bus_tls_conn_free(struct bus_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    free(c);
}

static ssize_t result(struct bus_tls_conn *c, int r)
{
    int e = SSL_get_error(c->ssl, r);
    c->want_write = false;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->want_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        errno = ECONNRESET;
        return -1;
    }
}

ssize_t bus_tls_read(struct bus_tls_conn *c, void *buf, size_t n)
{
    ERR_clear_error();
    int r = SSL_read(c->ssl, buf, (int)(n > 1 << 30 ? 1 << 30 : n));
    if (r > 0) {
        c->want_write = false;
        return r;
    }
    return result(c, r);
}

ssize_t bus_tls_write(struct bus_tls_conn *c, const void *buf, size_t n)
{
    ERR_clear_error();
    int r = SSL_write(c->ssl, buf, (int)(n > 1 << 30 ? 1 << 30 : n));
    if (r > 0) {
        c->want_write = false;
        return r;
    }
    return result(c, r);
}

size_t bus_tls_pending(struct bus_tls_conn *c)
{
    int p = SSL_pending(c->ssl);
    return p > 0 ? (size_t)p : 0;
}

bool bus_tls_want_write(struct bus_tls_conn *c)
{
    return c->want_write;
}
