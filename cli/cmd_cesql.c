/* ofe cesql: evaluates a CloudEvents SQL expression against one event.
 *
 *   ofe cesql [--event FILE|-] EXPRESSION
 *
 * Prints exactly one JSON line on stdout,
 *   {"result": <boolean|integer|string>, "error": null}
 * or with "error": "<kind>" (parse, math, cast, missingAttribute,
 * missingFunction, functionEvaluation, generic) and the result the spec
 * gives alongside the error. Details (the parse error's position, further
 * errors) go to stderr. Exit 0 whenever that line was printed, 2 on bad
 * usage or an unreadable or invalid event. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ofe/buf.h"
#include "ofe/ce.h"
#include "ofe/cesql.h"
#include "ofe/err.h"

/* The event used without --event: only the required attributes. */
#define DEFAULT_ID     "00000000-0000-0000-0000-000000000000"
#define DEFAULT_SOURCE "/ofe/cesql"
#define DEFAULT_TYPE   "dev.ofevents.cesql"

static void usage(FILE *out)
{
    fprintf(out, "usage: ofe cesql [--event FILE|-] EXPRESSION\n"
                 "\n"
                 "Evaluates a CloudEvents SQL (CESQL v1) expression against a JSON-format event\n"
                 "(FILE, or stdin for -) and prints one JSON line:\n"
                 "  {\"result\": <boolean|integer|string>, \"error\": null | \"<kind>\"}\n"
                 "Without --event the event has only the required attributes:\n"
                 "  specversion 1.0, id " DEFAULT_ID ", source " DEFAULT_SOURCE ",\n"
                 "  type " DEFAULT_TYPE ".\n"
                 "Error kinds: parse, math, cast, missingAttribute, missingFunction,\n"
                 "functionEvaluation, generic. Exit status: 0 when the line was printed,\n"
                 "2 on bad usage or an unreadable or invalid event. See docs/cesql.md.\n");
}

/* Appends s as a JSON string; invalid UTF-8 bytes become U+FFFD. */
static void json_string(struct ofe_buf *b, const char *s, size_t len)
{
    ofe_buf_putc(b, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            ofe_buf_putc(b, '\\');
            ofe_buf_putc(b, (char)c);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n':
                ofe_buf_puts(b, "\\n");
                break;
            case '\t':
                ofe_buf_puts(b, "\\t");
                break;
            case '\r':
                ofe_buf_puts(b, "\\r");
                break;
            default:
                ofe_buf_printf(b, "\\u%04x", c);
            }
            i++;
        } else if (c < 0x80) {
            ofe_buf_putc(b, (char)c);
            i++;
        } else {
            size_t n = c >= 0xC2 && c <= 0xDF   ? 2
                       : c >= 0xE0 && c <= 0xEF ? 3
                       : c >= 0xF0 && c <= 0xF4 ? 4
                                                : 0;
            bool ok = n && len - i >= n;
            for (size_t k = 1; ok && k < n; k++)
                ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
            /* Reject overlong forms, surrogates and code points past U+10FFFF. */
            if (ok && n == 3) {
                unsigned char c1 = (unsigned char)s[i + 1];
                ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
            } else if (ok && n == 4) {
                unsigned char c1 = (unsigned char)s[i + 1];
                ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
            }
            if (ok) {
                ofe_buf_append(b, s + i, n);
                i += n;
            } else {
                ofe_buf_puts(b, "\\ufffd");
                i++;
            }
        }
    }
    ofe_buf_putc(b, '"');
}

static struct ofe_ce *default_event(void)
{
    struct ofe_ce *ev = ofe_ce_new();
    char err[128];
    if (!ev || ofe_ce_set_str(ev, "specversion", OFE_CE_T_NONE, "1.0", err, sizeof(err)) ||
        ofe_ce_set_str(ev, "id", OFE_CE_T_NONE, DEFAULT_ID, err, sizeof(err)) ||
        ofe_ce_set_str(ev, "source", OFE_CE_T_NONE, DEFAULT_SOURCE, err, sizeof(err)) ||
        ofe_ce_set_str(ev, "type", OFE_CE_T_NONE, DEFAULT_TYPE, err, sizeof(err))) {
        ofe_ce_unref(ev);
        return NULL;
    }
    return ev;
}

static char *read_all(FILE *f, size_t *len)
{
    struct ofe_buf b = OFE_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (ofe_buf_append(&b, chunk, n)) {
            ofe_buf_fini(&b);
            return NULL;
        }
    if (ferror(f)) {
        ofe_buf_fini(&b);
        return NULL;
    }
    return ofe_buf_detach(&b, len);
}

static struct ofe_ce *load_event(const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "ofe cesql: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t len = 0;
    char *text = read_all(f, &len);
    int rd_errno = errno;
    if (f != stdin)
        fclose(f);
    if (!text) {
        fprintf(stderr, "ofe cesql: cannot read %s: %s\n", path, strerror(rd_errno));
        return NULL;
    }
    struct ofe_ce *ev = NULL;
    char err[512];
    int rc = ofe_ce_json_decode(text, len, &ev, err, sizeof(err));
    free(text);
    if (rc) {
        fprintf(stderr, "ofe cesql: %s: not a valid JSON-format CloudEvent: %s\n",
                strcmp(path, "-") ? path : "stdin", err);
        return NULL;
    }
    return ev;
}

int cmd_cesql(int argc, char **argv)
{
    const char *event_path = NULL, *text = NULL;
    bool opts = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            usage(stdout);
            return 0;
        }
        if (opts && !strcmp(a, "--")) {
            opts = false;
            continue;
        }
        if (opts && (!strcmp(a, "--event") || !strncmp(a, "--event=", 8))) {
            if (event_path) {
                fprintf(stderr, "ofe cesql: --event given twice\n");
                return 2;
            }
            if (a[7] == '=') {
                event_path = a + 8;
            } else if (i + 1 < argc) {
                event_path = argv[++i];
            } else {
                fprintf(stderr, "ofe cesql: --event needs a file name (or - for stdin)\n");
                return 2;
            }
            if (!*event_path) {
                fprintf(stderr, "ofe cesql: --event needs a file name (or - for stdin)\n");
                return 2;
            }
            continue;
        }
        if (opts && a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "ofe cesql: unknown option %s (see ofe cesql --help)\n", a);
            return 2;
        }
        /* Anything else, "-10" included, is the expression. */
        if (text) {
            fprintf(stderr, "ofe cesql: one EXPRESSION expected (quote it), got '%s' and '%s'\n",
                    text, a);
            return 2;
        }
        text = a;
    }
    if (!text) {
        usage(stderr);
        return 2;
    }

    struct ofe_ce *ev = event_path ? load_event(event_path) : default_event();
    if (!ev) {
        if (!event_path)
            fprintf(stderr, "ofe cesql: out of memory\n");
        return 2;
    }

    struct ofe_buf out = OFE_BUF_INIT;
    struct ofe_cesql *expr = NULL;
    char err[512];
    int rc = ofe_cesql_compile(NULL, text, &expr, err, sizeof(err));
    if (rc == 0) {
        struct ofe_cesql_ctx ctx;
        struct ofe_cesql_result res;
        ofe_cesql_ctx_init(&ctx);
        ofe_cesql_eval(expr, ev, &ctx, &res);
        ofe_buf_puts(&out, "{\"result\": ");
        switch (res.value.type) {
        case OFE_CESQL_T_INTEGER:
            ofe_buf_printf(&out, "%d", (int)res.value.i);
            break;
        case OFE_CESQL_T_STRING:
            json_string(&out, res.value.s, res.value.len);
            break;
        default:
            ofe_buf_puts(&out, res.value.i ? "true" : "false");
        }
        const char *en = ofe_cesql_errname(res.error);
        if (en)
            ofe_buf_printf(&out, ", \"error\": \"%s\"}\n", en);
        else
            ofe_buf_puts(&out, ", \"error\": null}\n");
        if (res.nerrors > 1) {
            fprintf(stderr, "ofe cesql: %u errors raised, of kinds:", res.nerrors);
            for (int k = 1; k < OFE_CESQL_E__COUNT; k++)
                if (res.errmask & (1u << k))
                    fprintf(stderr, " %s", ofe_cesql_errname((enum ofe_cesql_err)k));
            fprintf(stderr, " (first: %s)\n", en);
        }
        ofe_cesql_ctx_fini(&ctx);
        ofe_cesql_destroy(expr);
    } else if (rc == OFE_EPARSE) {
        fprintf(stderr, "ofe cesql: parse error: %s\n", err);
        ofe_buf_puts(&out, "{\"result\": false, \"error\": \"parse\"}\n");
    } else {
        fprintf(stderr, "ofe cesql: %s\n", err);
        ofe_ce_unref(ev);
        ofe_buf_fini(&out);
        return 1;
    }
    ofe_ce_unref(ev);
    int status = 0;
    if (!out.data || fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        fprintf(stderr, "ofe cesql: cannot write the result: %s\n", strerror(errno));
        status = 1;
    }
    ofe_buf_fini(&out);
    return status;
}
