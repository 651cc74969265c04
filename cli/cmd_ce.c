/* ofe ce: CloudEvents tools.
 *
 *   ofe ce validate [FILE|-]
 *       Checks a JSON-format event or batch (a JSON array). Prints "ok"
 *       (a batch: "ok (N events)") and exits 0, or prints every error to
 *       stderr as "NAME: [event [i]: ]message" and exits 2.
 *   ofe ce http [--mode binary|structured] [--url URL] [FILE|-]
 *       Prints the HTTP request that would carry the event: request line,
 *       headers, blank line, body (CRLF line ends, as on the wire). A batch
 *       always uses batch mode.
 *
 * Exit status: 0 ok, 1 the input could not be read, 2 bad usage or an
 * invalid event. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ofe/buf.h"
#include "ofe/ce.h"
#include "ofe/err.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: ofe ce validate [FILE|-]\n"
                 "       ofe ce http [--mode binary|structured] [--url URL] [FILE|-]\n"
                 "\n"
                 "validate  checks a CloudEvent in JSON format, or a batch (a JSON array of\n"
                 "          events); prints ok, or every error, and exits 0 (valid) or 2.\n"
                 "http      prints the HTTP request that carries the event: binary mode\n"
                 "          (ce- headers, body = data; the default) or structured mode\n"
                 "          (application/cloudevents+json). A batch is sent in batch mode\n"
                 "          (application/cloudevents-batch+json). --url sets the request\n"
                 "          target and Host (default: POST / to localhost).\n"
                 "FILE defaults to stdin (also -).\n");
}

/* Reads FILE (or stdin for NULL / "-") into b. */
static int read_input(const char *path, struct ofe_buf *b)
{
    FILE *f = stdin;
    if (path && strcmp(path, "-") != 0) {
        f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "ofe ce: %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (ofe_buf_append(b, chunk, n)) {
            fprintf(stderr, "ofe ce: out of memory\n");
            if (f != stdin)
                fclose(f);
            return 1;
        }
    }
    int err = ferror(f);
    if (f != stdin)
        fclose(f);
    if (err) {
        fprintf(stderr, "ofe ce: %s: read error\n", path ? path : "<stdin>");
        return 1;
    }
    return 0;
}

static bool is_batch(const struct ofe_buf *b)
{
    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        return c == '[';
    }
    return false;
}

static const char *display_name(const char *path)
{
    return !path || !strcmp(path, "-") ? "<stdin>" : path;
}

struct report {
    const char *name;
    size_t bad;
};

static void report_bad(void *arg, size_t index, int err, const char *msg)
{
    struct report *r = arg;
    r->bad++;
    fprintf(stderr, "%s: event [%zu]: %s\n", r->name, index, msg);
}

static int ce_validate(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ofe ce validate: unknown option '%s'\n", argv[i]);
            return 2;
        }
        if (path) {
            fprintf(stderr, "ofe ce validate: one input at a time\n");
            return 2;
        }
        path = argv[i];
    }
    struct ofe_buf in = OFE_BUF_INIT;
    int rc = read_input(path, &in);
    if (rc) {
        ofe_buf_fini(&in);
        return rc;
    }
    const char *name = display_name(path);
    char errstr[512];
    int status = 0;
    if (is_batch(&in)) {
        struct ofe_ce_list list = {0};
        struct report r = {name, 0};
        rc = ofe_ce_json_decode_batch_each(in.data, in.len, &list, report_bad, &r, errstr,
                                           sizeof(errstr));
        if (rc == OFE_EPARSE || rc == OFE_ENOMEM) {
            fprintf(stderr, "%s: %s\n", name, rc == OFE_ENOMEM ? "out of memory" : errstr);
            status = rc == OFE_ENOMEM ? 1 : 2;
        } else if (rc) {
            fprintf(stderr, "%s: %zu of %zu events invalid\n", name, r.bad, r.bad + list.n);
            status = 2;
        } else {
            printf("ok (%zu event%s)\n", list.n, list.n == 1 ? "" : "s");
        }
        ofe_ce_list_fini(&list);
    } else {
        struct ofe_ce *ev = NULL;
        rc = ofe_ce_json_decode(in.data, in.len, &ev, errstr, sizeof(errstr));
        if (rc) {
            fprintf(stderr, "%s: %s\n", name, rc == OFE_ENOMEM ? "out of memory" : errstr);
            status = rc == OFE_ENOMEM ? 1 : 2;
        } else {
            printf("ok\n");
        }
        ofe_ce_unref(ev);
    }
    ofe_buf_fini(&in);
    return status;
}

/* Splits http://host[:port]/path into the Host header and request target. */
static int parse_url(const char *url, struct ofe_buf *host, struct ofe_buf *target)
{
    const char *p = strstr(url, "://");
    if (!p || (strncmp(url, "http", 4) != 0))
        return -1;
    p += 3;
    const char *slash = strchr(p, '/');
    size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
    if (hlen == 0)
        return -1;
    ofe_buf_append(host, p, hlen);
    ofe_buf_puts(target, slash ? slash : "/");
    return 0;
}

static int ce_http(int argc, char **argv)
{
    const char *path = NULL, *url = NULL;
    enum ofe_ce_mode mode = OFE_CE_BINARY;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--mode") || !strncmp(a, "--mode=", 7)) {
            const char *m = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (m && !strcmp(m, "binary")) {
                mode = OFE_CE_BINARY;
            } else if (m && !strcmp(m, "structured")) {
                mode = OFE_CE_STRUCTURED;
            } else {
                fprintf(stderr, "ofe ce http: --mode takes binary or structured\n");
                return 2;
            }
            continue;
        }
        if (!strcmp(a, "--url") || !strncmp(a, "--url=", 6)) {
            url = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!url) {
                fprintf(stderr, "ofe ce http: --url takes a URL\n");
                return 2;
            }
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ofe ce http: unknown option '%s'\n", a);
            return 2;
        }
        if (path) {
            fprintf(stderr, "ofe ce http: one input at a time\n");
            return 2;
        }
        path = a;
    }
    struct ofe_buf host = OFE_BUF_INIT, target = OFE_BUF_INIT;
    if (url ? parse_url(url, &host, &target) != 0
            : (ofe_buf_puts(&host, "localhost") || ofe_buf_puts(&target, "/"))) {
        fprintf(stderr, "ofe ce http: '%s' is not an http:// or https:// URL\n", url);
        ofe_buf_fini(&host);
        ofe_buf_fini(&target);
        return 2;
    }
    struct ofe_buf in = OFE_BUF_INIT, body_buf = OFE_BUF_INIT, out = OFE_BUF_INIT;
    struct ofe_hdrs hdrs;
    struct ofe_ce_list list = {0};
    struct ofe_ce *ev = NULL;
    ofe_hdrs_init(&hdrs);
    int status = read_input(path, &in);
    if (status)
        goto done;
    const char *name = display_name(path);
    char errstr[512];
    const void *body = NULL;
    size_t body_len = 0;
    int rc;
    if (is_batch(&in)) {
        rc = ofe_ce_json_decode_batch(in.data, in.len, &list, errstr, sizeof(errstr));
        if (!rc)
            rc = ofe_ce_http_encode_batch(list.v, list.n, &hdrs, &body_buf, errstr, sizeof(errstr));
        body = body_buf.data;
        body_len = body_buf.len;
    } else {
        rc = ofe_ce_json_decode(in.data, in.len, &ev, errstr, sizeof(errstr));
        if (!rc)
            rc = ofe_ce_http_encode(ev, mode, 0, &hdrs, &body_buf, &body, &body_len, errstr,
                                    sizeof(errstr));
    }
    if (rc) {
        fprintf(stderr, "%s: %s\n", name, rc == OFE_ENOMEM ? "out of memory" : errstr);
        status = rc == OFE_ENOMEM ? 1 : 2;
        goto done;
    }
    ofe_buf_printf(&out, "POST %s HTTP/1.1\r\nHost: %s\r\n", target.data, host.data);
    for (size_t i = 0; i < hdrs.n; i++) {
        ofe_buf_append(&out, hdrs.v[i].name, hdrs.v[i].name_len);
        ofe_buf_puts(&out, ": ");
        ofe_buf_append(&out, hdrs.v[i].value, hdrs.v[i].value_len);
        ofe_buf_puts(&out, "\r\n");
    }
    ofe_buf_printf(&out, "Content-Length: %zu\r\n\r\n", body_len);
    if (body_len)
        ofe_buf_append(&out, body, body_len);
    if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        fprintf(stderr, "ofe ce http: write error\n");
        status = 1;
    }
done:
    ofe_ce_unref(ev);
    ofe_ce_list_fini(&list);
    ofe_hdrs_fini(&hdrs);
    ofe_buf_fini(&in);
    ofe_buf_fini(&body_buf);
    ofe_buf_fini(&out);
    ofe_buf_fini(&host);
    ofe_buf_fini(&target);
    return status;
}

int cmd_ce(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "validate"))
        return ce_validate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "http"))
        return ce_http(argc - 1, argv + 1);
    fprintf(stderr, "ofe ce: unknown subcommand '%s' (validate or http)\n", argv[1]);
    return 2;
}
