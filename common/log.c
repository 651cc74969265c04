/* Leveled logging: one write(2) per record, text or JSON lines. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ofe/err.h"
#include "ofe/log.h"

static enum ofe_log_level g_level = OFE_LOG_INFO;
static enum ofe_log_format g_format = OFE_LOG_TEXT;

void ofe_log_set_level(enum ofe_log_level level)
{
    g_level = level;
}

void ofe_log_set_format(enum ofe_log_format fmt)
{
    g_format = fmt;
}

enum ofe_log_level ofe_log_get_level(void)
{
    return g_level;
}

int ofe_log_parse_level(const char *s, enum ofe_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, names[i])) {
            *out = (enum ofe_log_level)i;
            return 0;
        }
    }
    if (!strcasecmp(s, "warning")) {
        *out = OFE_LOG_WARN;
        return 0;
    }
    /* OpenFunction's logLevel: "1" is the default, larger is noisier. */
    if (s[0] >= '0' && s[0] <= '9' && s[1] == '\0') {
        int v = s[0] - '0';
        *out = v <= 0 ? OFE_LOG_WARN : v == 1 ? OFE_LOG_INFO : OFE_LOG_DEBUG;
        return 0;
    }
    return OFE_EINVAL;
}

int ofe_log_parse_format(const char *s, enum ofe_log_format *out)
{
    if (!strcasecmp(s, "text"))
        *out = OFE_LOG_TEXT;
    else if (!strcasecmp(s, "json"))
        *out = OFE_LOG_JSON;
    else
        return OFE_EINVAL;
    return 0;
}

/* Appends s as the inside of a JSON string. */
static size_t json_escape(char *dst, size_t room, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < room; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(dst + n, room - n, "\\u%04x", c);
        } else {
            dst[n++] = (char)c;
        }
    }
    return n;
}

void ofe_logv(enum ofe_log_level level, const char *component, const char *instance,
              const char *fmt, va_list ap)
{
    static const char *const lvl[] = {"error", "warn", "info", "debug"};
    if (level > g_level)
        return;
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);

    char line[4096 + 512];
    size_t n;
    if (g_format == OFE_LOG_JSON) {
        n = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"",
                             when, lvl[level]);
        n += json_escape(line + n, sizeof(line) - n, component ? component : "");
        if (instance) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"instance\":\"");
            n += json_escape(line + n, sizeof(line) - n, instance);
        }
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"msg\":\"");
        n += json_escape(line + n, sizeof(line) - n, msg);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\"}\n");
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s %-5s [%s%s%s] %s\n", when, lvl[level],
                             component ? component : "", instance ? ":" : "",
                             instance ? instance : "", msg);
    }
    if (n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void ofe_log(enum ofe_log_level level, const char *component, const char *instance,
             const char *fmt, ...)
{
    if (level > g_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    ofe_logv(level, component, instance, fmt, ap);
    va_end(ap);
}
