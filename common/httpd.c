/* Embedded HTTP server on libmicrohttpd: routes, bounded bodies, deferred
 * replies through suspend/resume, and the standard daemon endpoints.
 *
 * An exchange has two owners: libmicrohttpd (until its completion callback)
 * and the handler (until it replies). It is freed when both have let go, so
 * a handler replying late after the server stopped touches only its own
 * memory. Lock order: exchange lock, then server lock. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ofe/err.h"
#include "ofe/httpd.h"
#include "ofe/log.h"

struct route {
    char *method; /* NULL: any */
    char *path;
    size_t plen;
    bool prefix;
    ofe_httpd_handler fn;
    void *arg;
};

struct ofe_httpd {
    struct MHD_Daemon *d;
    int lfd;
    uint16_t port;
    size_t max_body;
    unsigned threads, max_conns, timeout_s;
    char bind[256];
    char *component;
    struct route *routes;
    size_t nroutes;
    pthread_mutex_t lock;
    struct ofe_http_exchange *suspended; /* list of suspended exchanges */
    unsigned live;                       /* exchanges libmicrohttpd still holds */
    bool stopping;
    /* standard routes */
    struct ofe_metrics *metrics;
    bool (*ready_fn)(void *arg, char *why, size_t why_size);
    void *ready_arg;
};

enum xstate { X_READING, X_DISPATCHING, X_SUSPENDED, X_RESUMED, X_QUEUED, X_DONE };

struct ofe_http_exchange {
    struct ofe_httpd *h;
    struct MHD_Connection *conn;
    pthread_mutex_t lock;
    int refs;
    enum xstate state;
    bool too_big;
    bool handler_owned; /* the handler has not replied yet */
    struct ofe_buf body;
    struct ofe_hdrs hdrs;
    char *method, *path;
    struct ofe_buf query;
    char remote[INET6_ADDRSTRLEN + 8];
    struct ofe_http_request req;
    /* the reply */
    bool has_reply;
    int status;
    char *ctype;
    struct ofe_buf rbody;
    struct ofe_hdrs rhdrs;
    struct ofe_http_exchange *snext, **sprev;
};

static void x_free(struct ofe_http_exchange *x)
{
    ofe_buf_fini(&x->body);
    ofe_hdrs_fini(&x->hdrs);
    ofe_hdrs_fini(&x->rhdrs);
    ofe_buf_fini(&x->query);
    ofe_buf_fini(&x->rbody);
    free(x->method);
    free(x->path);
    free(x->ctype);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

/* Drops one reference; called with x->lock held, which it releases. */
static void x_unref_unlock(struct ofe_http_exchange *x)
{
    int left = --x->refs;
    pthread_mutex_unlock(&x->lock);
    if (left == 0)
        x_free(x);
}

static void suspended_remove(struct ofe_http_exchange *x)
{
    if (!x->sprev)
        return;
    *x->sprev = x->snext;
    if (x->snext)
        x->snext->sprev = x->sprev;
    x->snext = NULL;
    x->sprev = NULL;
}

static enum MHD_Result queue_reply(struct ofe_http_exchange *x)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(x->rbody.len, x->rbody.data, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (x->ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, x->ctype);
    for (size_t i = 0; i < x->rhdrs.n; i++) {
        char name[256], *value;
        const struct ofe_hdr *hd = &x->rhdrs.v[i];
        if (hd->name_len >= sizeof(name))
            continue;
        memcpy(name, hd->name, hd->name_len);
        name[hd->name_len] = '\0';
        value = strndup(hd->value, hd->value_len);
        if (value) {
            MHD_add_response_header(r, name, value);
            free(value);
        }
    }
    enum MHD_Result rc = MHD_queue_response(x->conn, (unsigned)x->status, r);
    MHD_destroy_response(r);
    x->state = X_QUEUED;
    return rc;
}

/* Stores a reply; resumes the connection when it waits. Returns with the
 * lock released. drop_handler: this is the handler's own reply. */
static void set_reply(struct ofe_http_exchange *x, int status, const char *ctype, const void *body,
                      size_t len, const struct ofe_hdrs *headers, bool drop_handler)
{
    pthread_mutex_lock(&x->lock);
    if (!x->has_reply) {
        x->has_reply = true;
        x->status = status;
        x->ctype = ctype ? strdup(ctype) : NULL;
        ofe_buf_reset(&x->rbody);
        if (len)
            ofe_buf_append(&x->rbody, body, len);
        for (size_t i = 0; headers && i < headers->n; i++)
            ofe_hdrs_add_copy(&x->rhdrs, headers->v[i].name, headers->v[i].name_len,
                              headers->v[i].value, headers->v[i].value_len);
        if (x->state == X_SUSPENDED) {
            pthread_mutex_lock(&x->h->lock);
            suspended_remove(x);
            pthread_mutex_unlock(&x->h->lock);
            x->state = X_RESUMED;
            MHD_resume_connection(x->conn);
        }
    }
    if (drop_handler && x->handler_owned) {
        x->handler_owned = false;
        x_unref_unlock(x);
        return;
    }
    pthread_mutex_unlock(&x->lock);
}

void ofe_httpd_reply(struct ofe_http_exchange *x, int status, const char *content_type,
                     const void *body, size_t body_len, const struct ofe_hdrs *headers)
{
    set_reply(x, status, content_type, body, body_len, headers, true);
}

void ofe_httpd_replyf(struct ofe_http_exchange *x, int status, const char *fmt, ...)
{
    struct ofe_buf b = OFE_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    ofe_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    ofe_buf_putc(&b, '\n');
    ofe_httpd_reply(x, status, "text/plain; charset=utf-8", b.data, b.len, NULL);
    ofe_buf_fini(&b);
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct ofe_http_exchange *x = cls;
    ofe_hdrs_add_copy(&x->hdrs, key, strlen(key), value ? value : "", value ? strlen(value) : 0);
    return MHD_YES;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct ofe_buf *q = cls;
    if (q->len)
        ofe_buf_putc(q, '&');
    ofe_buf_puts(q, key);
    if (value) {
        ofe_buf_putc(q, '=');
        ofe_buf_puts(q, value);
    }
    return MHD_YES;
}

static const struct route *find_route(struct ofe_httpd *h, const char *method, const char *path,
                                      bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < h->nroutes; i++) {
        const struct route *r = &h->routes[i];
        bool pm = r->prefix ? !strncmp(path, r->path, r->plen) : !strcmp(path, r->path);
        if (!pm)
            continue;
        *path_known = true;
        if (!r->method || !strcmp(r->method, method))
            return r;
    }
    return NULL;
}

static void dispatch(struct ofe_httpd *h, struct ofe_http_exchange *x)
{
    x->req.method = x->method;
    x->req.path = x->path;
    x->req.query = x->query.data ? x->query.data : "";
    x->req.headers = &x->hdrs;
    x->req.body = (const unsigned char *)(x->body.data ? x->body.data : "");
    x->req.body_len = x->body.len;
    x->req.remote = x->remote;

    bool known;
    const struct route *r = find_route(h, x->method, x->path, &known);
    if (!r) {
        if (known)
            ofe_httpd_replyf(x, 405, "method %s not allowed on %s", x->method, x->path);
        else
            ofe_httpd_replyf(x, 404, "no such endpoint: %s", x->path);
        return;
    }
    r->fn(x, &x->req, r->arg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct ofe_httpd *h = cls;
    struct ofe_http_exchange *x = *con_cls;

    if (!x) {
        x = calloc(1, sizeof(*x));
        if (!x)
            return MHD_NO;
        pthread_mutex_init(&x->lock, NULL);
        x->h = h;
        x->conn = conn;
        x->refs = 1; /* libmicrohttpd's */
        ofe_hdrs_init(&x->hdrs);
        ofe_hdrs_init(&x->rhdrs);
        x->method = strdup(method);
        x->path = strdup(url);
        if (!x->method || !x->path) {
            x_free(x);
            return MHD_NO;
        }
        MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, x);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &x->query);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, x->remote,
                          sizeof(x->remote));
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, x->remote,
                          sizeof(x->remote));
        }
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->max_body)
            x->too_big = true;
        pthread_mutex_lock(&h->lock);
        h->live++;
        pthread_mutex_unlock(&h->lock);
        *con_cls = x;
        return MHD_YES;
    }

    if (x->state == X_READING && *upload_data_size) {
        if (!x->too_big) {
            if (x->body.len + *upload_data_size > h->max_body) {
                x->too_big = true;
                ofe_buf_fini(&x->body);
            } else if (ofe_buf_append(&x->body, upload_data, *upload_data_size)) {
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (x->state == X_READING) {
        if (x->too_big) {
            x->has_reply = true;
            x->status = 413;
            x->ctype = strdup("text/plain; charset=utf-8");
            ofe_buf_printf(&x->rbody, "request body larger than the limit of %zu bytes\n",
                           h->max_body);
            return queue_reply(x);
        }
        pthread_mutex_lock(&x->lock);
        x->state = X_DISPATCHING;
        x->refs++;
        x->handler_owned = true;
        pthread_mutex_unlock(&x->lock);

        dispatch(h, x);

        pthread_mutex_lock(&x->lock);
        enum MHD_Result rc = MHD_YES;
        if (x->has_reply) {
            rc = queue_reply(x);
        } else {
            x->state = X_SUSPENDED;
            pthread_mutex_lock(&h->lock);
            x->snext = h->suspended;
            if (h->suspended)
                h->suspended->sprev = &x->snext;
            x->sprev = &h->suspended;
            h->suspended = x;
            pthread_mutex_unlock(&h->lock);
            MHD_suspend_connection(conn);
        }
        pthread_mutex_unlock(&x->lock);
        return rc;
    }

    /* Called again after a resume. */
    pthread_mutex_lock(&x->lock);
    enum MHD_Result rc = MHD_YES;
    if (x->state == X_RESUMED && x->has_reply)
        rc = queue_reply(x);
    pthread_mutex_unlock(&x->lock);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ofe_httpd *h = cls;
    struct ofe_http_exchange *x = *con_cls;
    if (!x)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&x->lock);
    x->state = X_DONE;
    pthread_mutex_lock(&h->lock);
    suspended_remove(x);
    h->live--;
    pthread_mutex_unlock(&h->lock);
    x_unref_unlock(x);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct ofe_httpd *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    OFE_DEBUG(h->component, "http", "%s", msg);
}

/* Binds the listening socket ourselves so a failure has a reason. */
static int listen_on(const char *bind_addr, uint16_t port, uint16_t *bound, char *errstr,
                     size_t errstr_size)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    int gai = getaddrinfo(bind_addr, ps, &hints, &ai);
    if (gai != 0)
        return ofe_err(errstr, errstr_size, OFE_EINVAL, "%s: cannot resolve bind address: %s",
                       bind_addr, gai_strerror(gai));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return ofe_err(errstr, errstr_size, OFE_EIO, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(ai);
        return ofe_err(errstr, errstr_size, OFE_EIO, "%s:%u: %s", bind_addr, port, strerror(e));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

struct ofe_httpd *ofe_httpd_open(const struct ofe_httpd_opts *opts, char *errstr,
                                 size_t errstr_size)
{
    struct ofe_httpd *h = calloc(1, sizeof(*h));
    if (!h) {
        ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->max_body = opts->max_body ? opts->max_body : 1024 * 1024;
    h->component = strdup(opts->component ? opts->component : "http");
    h->threads = opts->threads ? opts->threads : 2;
    h->max_conns = opts->max_conns ? opts->max_conns : 1024;
    h->timeout_s = opts->timeout_s ? opts->timeout_s : 60;
    snprintf(h->bind, sizeof(h->bind), "%s", opts->bind && *opts->bind ? opts->bind : "127.0.0.1");
    h->lfd = listen_on(h->bind, opts->port, &h->port, errstr, errstr_size);
    if (h->lfd < 0 || !h->component) {
        if (h->lfd >= 0)
            close(h->lfd);
        free(h->component);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    return h;
}

int ofe_httpd_serve(struct ofe_httpd *h, char *errstr, size_t errstr_size)
{
    if (h->d)
        return 0;
    h->d = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, h, MHD_OPTION_LISTEN_SOCKET, h->lfd, MHD_OPTION_THREAD_POOL_SIZE, h->threads,
        MHD_OPTION_CONNECTION_LIMIT, h->max_conns, MHD_OPTION_CONNECTION_TIMEOUT, h->timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_END);
    if (!h->d)
        return ofe_err(errstr, errstr_size, OFE_EIO, "%s:%u: cannot start the HTTP server", h->bind,
                       h->port);
    return 0;
}

struct ofe_httpd *ofe_httpd_start(const struct ofe_httpd_opts *opts, char *errstr,
                                  size_t errstr_size)
{
    struct ofe_httpd *h = ofe_httpd_open(opts, errstr, errstr_size);
    if (h && ofe_httpd_serve(h, errstr, errstr_size) != 0) {
        ofe_httpd_stop(h);
        return NULL;
    }
    return h;
}

void ofe_httpd_stop(struct ofe_httpd *h)
{
    if (!h)
        return;
    if (h->d)
        MHD_quiesce_daemon(h->d);
    /* Answer every exchange still waiting for its handler. */
    for (;;) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        struct ofe_http_exchange *x = h->suspended;
        if (x) {
            /* keep x alive while we leave the server lock */
            pthread_mutex_unlock(&h->lock);
            pthread_mutex_lock(&x->lock);
            x->refs++;
            pthread_mutex_unlock(&x->lock);
            static const char msg[] = "server shutting down\n";
            set_reply(x, 503, "text/plain; charset=utf-8", msg, sizeof(msg) - 1, NULL, false);
            pthread_mutex_lock(&x->lock);
            x_unref_unlock(x);
            continue;
        }
        pthread_mutex_unlock(&h->lock);
        break;
    }
    /* Give resumed connections a moment to send their replies. */
    for (int i = 0; i < 50; i++) {
        pthread_mutex_lock(&h->lock);
        unsigned live = h->live;
        pthread_mutex_unlock(&h->lock);
        if (!live)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (h->d)
        MHD_stop_daemon(h->d);
    close(h->lfd);
    for (size_t i = 0; i < h->nroutes; i++) {
        free(h->routes[i].method);
        free(h->routes[i].path);
    }
    free(h->routes);
    free(h->component);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

uint16_t ofe_httpd_port(const struct ofe_httpd *h)
{
    return h->port;
}

int ofe_httpd_route(struct ofe_httpd *h, const char *method, const char *path, ofe_httpd_handler fn,
                    void *arg)
{
    struct route *nr = realloc(h->routes, (h->nroutes + 1) * sizeof(*nr));
    if (!nr)
        return OFE_ENOMEM;
    h->routes = nr;
    struct route *r = &nr[h->nroutes];
    size_t len = strlen(path);
    r->prefix = len > 0 && path[len - 1] == '*';
    r->plen = r->prefix ? len - 1 : len;
    r->path = strndup(path, r->plen);
    r->method = method ? strdup(method) : NULL;
    r->fn = fn;
    r->arg = arg;
    if (!r->path || (method && !r->method)) {
        free(r->path);
        free(r->method);
        return OFE_ENOMEM;
    }
    h->nroutes++;
    return 0;
}

static void std_metrics(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    struct ofe_httpd *h = arg;
    struct ofe_buf b = OFE_BUF_INIT;
    if (h->metrics)
        ofe_metrics_render(h->metrics, &b);
    ofe_httpd_reply(x, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
    ofe_buf_fini(&b);
}

static void std_healthz(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    ofe_httpd_reply(x, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL);
}

static void std_readyz(struct ofe_http_exchange *x, const struct ofe_http_request *req, void *arg)
{
    struct ofe_httpd *h = arg;
    char why[512] = "not ready";
    if (!h->ready_fn || h->ready_fn(h->ready_arg, why, sizeof(why)))
        ofe_httpd_reply(x, 200, "text/plain; charset=utf-8", "ready\n", 6, NULL);
    else
        ofe_httpd_replyf(x, 503, "%s", why);
}

int ofe_httpd_route_std(struct ofe_httpd *h, struct ofe_metrics *m,
                        bool (*ready_fn)(void *arg, char *why, size_t why_size), void *arg)
{
    h->metrics = m;
    h->ready_fn = ready_fn;
    h->ready_arg = arg;
    int rc = ofe_httpd_route(h, "GET", "/metrics", std_metrics, h);
    if (!rc)
        rc = ofe_httpd_route(h, "GET", "/healthz", std_healthz, h);
    if (!rc)
        rc = ofe_httpd_route(h, "GET", "/readyz", std_readyz, h);
    return rc;
}
