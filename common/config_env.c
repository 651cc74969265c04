/* ${VAR} expansion in configuration values and secrets read from files
 * (`<field>File`). Rules are in docs/config.md ("Environment variables",
 * "Secrets in files"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_int.h"
#include "ofe/buf.h"

static int name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static int fail(size_t *err_off, size_t off, char *errstr, size_t errstr_size, const char *msg,
                const char *arg, int arglen)
{
    if (err_off)
        *err_off = off;
    if (errstr && errstr_size)
        snprintf(errstr, errstr_size, msg, arglen, arg);
    return -1;
}

int cfg__expand(const struct pctx *p, const char *s, char **out, bool *changed, size_t *err_off,
                char *errstr, size_t errstr_size)
{
    *changed = false;
    *out = NULL;
    if (!strchr(s, '$')) {
        *out = strdup(s);
        return 0;
    }
    struct ofe_buf b = OFE_BUF_INIT;
    size_t i = 0;
    while (s[i]) {
        if (s[i] == '$' && s[i + 1] == '$' && s[i + 2] == '{') {
            ofe_buf_puts(&b, "${");
            i += 3;
            *changed = true;
            continue;
        }
        if (!(s[i] == '$' && s[i + 1] == '{')) {
            ofe_buf_putc(&b, s[i++]);
            continue;
        }
        size_t start = i;
        size_t j = i + 2;
        if (!name_start(s[j])) {
            ofe_buf_fini(&b);
            return fail(err_off, j, errstr, errstr_size,
                        "invalid variable reference '%.*s': a name of letters, digits and '_' "
                        "(not starting with a digit) must follow '${' (write $${ for a literal "
                        "${)",
                        s + start, (int)(s[j] ? j - start + 1 : j - start));
        }
        while (name_char(s[j]))
            j++;
        size_t name_len = j - (i + 2);
        const char *def = NULL;
        size_t def_len = 0;
        if (s[j] == ':' && s[j + 1] == '-') {
            def = s + j + 2;
            size_t k = j + 2;
            while (s[k] && s[k] != '}') {
                if (s[k] == '$' && s[k + 1] == '{') {
                    ofe_buf_fini(&b);
                    return fail(err_off, k, errstr, errstr_size,
                                "nested '${' in the default of '%.*s' is not supported", s + start,
                                (int)(k - start));
                }
                k++;
            }
            def_len = (size_t)(s + k - def);
            j = k;
        }
        if (s[j] != '}') {
            ofe_buf_fini(&b);
            if (!s[j])
                return fail(err_off, start, errstr, errstr_size,
                            "unclosed variable reference '%.*s' (missing '}')", s + start,
                            (int)(j - start));
            return fail(err_off, j, errstr, errstr_size,
                        "unexpected character in variable reference '%.*s' (expected ${NAME} or "
                        "${NAME:-default})",
                        s + start, (int)(j - start + 1));
        }
        char name[256];
        if (name_len >= sizeof(name)) {
            ofe_buf_fini(&b);
            return fail(err_off, start, errstr, errstr_size, "variable name too long in '%.*s'",
                        s + start, 40);
        }
        memcpy(name, s + i + 2, name_len);
        name[name_len] = '\0';
        const char *val = (p && (p->cfg->priv->flags & OFE_CONFIG_SANDBOX)) ? NULL : getenv(name);
        if (def && (!val || !*val)) {
            ofe_buf_append(&b, def, def_len);
        } else if (val) {
            ofe_buf_puts(&b, val);
        } else {
            ofe_buf_fini(&b);
            return fail(err_off, start, errstr, errstr_size,
                        "environment variable %.*s is not set (use ${NAME:-default} for a "
                        "default, $${ for a literal ${)",
                        name, (int)name_len);
        }
        *changed = true;
        i = j + 1;
    }
    *out = ofe_buf_detach(&b, NULL);
    return *out ? 0 : -1;
}

char *cfg__resolve_path(const struct pctx *p, const char *path)
{
    char *s = NULL;
    if (!p || !p->basedir || !*p->basedir || path[0] == '/' || !*path)
        return strdup(path);
    if (asprintf(&s, "%s/%s", p->basedir, path) < 0)
        return NULL;
    return s;
}

int cfg__read_secret(const struct pctx *p, const char *path, char **out, char **resolved,
                     char *errstr, size_t errstr_size)
{
    *out = NULL;
    *resolved = NULL;
    if (!*path) {
        snprintf(errstr, errstr_size, "empty file path");
        return -1;
    }
    if (p && (p->cfg->priv->flags & OFE_CONFIG_SANDBOX)) {
        snprintf(errstr, errstr_size, "cannot read '%s': file access is disabled here", path);
        return -1;
    }
    char *full = cfg__resolve_path(p, path);
    if (!full) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "cannot read secret file '%s': %s", full, strerror(errno));
        free(full);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(errstr, errstr_size, "cannot read secret file '%s': not a regular file", full);
        close(fd);
        free(full);
        return -1;
    }
    if (st.st_size > OFE_CONFIG_MAX_SECRET_SIZE) {
        snprintf(errstr, errstr_size, "secret file '%s' is larger than %d bytes", full,
                 OFE_CONFIG_MAX_SECRET_SIZE);
        close(fd);
        free(full);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf) {
        snprintf(errstr, errstr_size, "out of memory");
        free(full);
        return -1;
    }
    buf[got] = '\0';
    if (memchr(buf, '\0', got)) {
        snprintf(errstr, errstr_size, "secret file '%s' contains a NUL byte", full);
        free(buf);
        free(full);
        return -1;
    }
    while (got && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
        buf[--got] = '\0';
    *out = buf;
    *resolved = full;
    return 0;
}
