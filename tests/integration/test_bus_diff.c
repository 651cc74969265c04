/* Differential test: runs command scripts against a real redis-server and
 * against ofe-eventbus (both started here on free loopback ports) and
 * requires identical replies, except where a script masks a time- or
 * instance-dependent field explicitly.
 *
 * Usage: test_bus_diff [SCRIPT...]   (default: every *.txt in
 *        tests/integration/eventbus_diff)
 *
 * Script lines (one command per line, arguments split like redis-cli does,
 * "double quotes" with \r \n \t \xHH escapes):
 *   CMD ARGS...            run on connection 1, compare the replies
 *   @N CMD ARGS...         on connection N (1..8)
 *   @N& CMD ARGS...        send on connection N without reading the reply
 *   @N<                    read the pending reply of connection N, compare
 *   !sleep MS              pause
 *   !restart               stop ofe-eventbus with SIGTERM, start it again,
 *                          reconnect (redis keeps running: state must match)
 *   !crash                 the same with kill -9 (fsync always)
 *   !raw BYTES             send raw bytes (with escapes) on connection 1,
 *                          then read and compare one reply
 *   !closed                connection 1 must be closed by both servers, then
 *                          it is reopened
 *   !repeat N LINE         run a command line N times; "$i" in it becomes
 *                          1..N
 *   !requirepass SECRET    (first line only) start both with a password
 *   # ...                  comment
 * A command line may end with masks after "#!":
 * Ids generated from the clock (13-digit milliseconds) always compare as
 * <id>; scripts use other ids when they choose ids themselves.
 *   after NAME replace the element following the bulk string NAME (any depth)
 *   path P     replace the element at P: dot-separated 0-based indexes, *
 *              for every index (e.g. "*.2")
 *   skip       do not compare (the command still runs on both)
 *   type       compare only the reply type and array shape
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "servers.h"
#include "testutil.h"

#define MAXCONN 9

struct conn {
    int fd;
    char buf[1 << 16];
    size_t len, pos;
};

struct side {
    const char *name;
    struct tu_server *srv;
    struct conn c[MAXCONN];
};

static int failures;

static int conn_open(struct conn *c, int port)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    c->len = c->pos = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = c->pos = 0;
}

/* Returns the next byte, -1 on EOF/timeout. */
static int getb(struct conn *c)
{
    if (c->pos == c->len) {
        ssize_t r = read(c->fd, c->buf, sizeof(c->buf));
        if (r <= 0)
            return -1;
        c->len = (size_t)r;
        c->pos = 0;
    }
    return (unsigned char)c->buf[c->pos++];
}

static int getline_crlf(struct conn *c, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        int b = getb(c);
        if (b < 0)
            return -1;
        if (b == '\r') {
            if (getb(c) != '\n')
                return -1;
            out[n] = '\0';
            return (int)n;
        }
        if (n + 1 < cap)
            out[n++] = (char)b;
    }
}

/* A reply as a tree. */
struct reply {
    char type; /* + - : $ * and 'N' (null bulk) 'M' (null array) 'E' (connection closed) */
    char *str;
    size_t len;
    struct reply **el;
    size_t n;
};

static void reply_free(struct reply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        reply_free(r->el[i]);
    free(r->el);
    free(r->str);
    free(r);
}

static struct reply *read_reply(struct conn *c)
{
    struct reply *r = calloc(1, sizeof(*r));
    char line[70000];
    int n = c->fd >= 0 ? getline_crlf(c, line, sizeof(line)) : -1;
    if (n < 1) {
        r->type = 'E';
        return r;
    }
    r->type = line[0];
    switch (line[0]) {
    case '+':
    case '-':
    case ':':
        r->str = strdup(line + 1);
        r->len = strlen(r->str);
        break;
    case '$': {
        long long l = atoll(line + 1);
        if (l < 0) {
            r->type = 'N';
            break;
        }
        r->str = malloc((size_t)l + 1);
        for (long long i = 0; i < l; i++) {
            int b = getb(c);
            if (b < 0) {
                r->type = 'E';
                return r;
            }
            r->str[i] = (char)b;
        }
        r->str[l] = '\0';
        r->len = (size_t)l;
        getb(c);
        getb(c);
        break;
    }
    case '*': {
        long long l = atoll(line + 1);
        if (l < 0) {
            r->type = 'M';
            break;
        }
        r->n = (size_t)l;
        r->el = calloc(r->n ? r->n : 1, sizeof(*r->el));
        for (size_t i = 0; i < r->n; i++)
            r->el[i] = read_reply(c);
        break;
    }
    default:
        r->type = 'E';
    }
    return r;
}

/* ---- masks -------------------------------------------------------------- */

struct masks {
    bool ids, skip, type;
    char after[8][64];
    int nafter;
    char paths[8][64];
    int npaths;
};

static void set_masked(struct reply *r)
{
    for (size_t i = 0; i < r->n; i++)
        reply_free(r->el[i]);
    free(r->el);
    r->el = NULL;
    r->n = 0;
    free(r->str);
    r->str = strdup("<masked>");
    r->len = strlen(r->str);
    r->type = '?';
}

static bool clock_id(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    while (i < len && isdigit((unsigned char)s[i]))
        i++, digits++;
    if (digits != 13 || i >= len || s[i] != '-')
        return false;
    for (i++; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static void apply_masks(struct reply *r, const struct masks *m)
{
    if ((r->type == '$' || r->type == '+') && clock_id(r->str, r->len)) {
        free(r->str);
        r->str = strdup("<id>");
        r->len = 4;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (r->el[i]->type == '$' && i + 1 < r->n)
            for (int k = 0; k < m->nafter; k++)
                if (!strcmp(r->el[i]->str, m->after[k]))
                    set_masked(r->el[i + 1]);
        apply_masks(r->el[i], m);
    }
}

static void mask_path(struct reply *r, const char *path)
{
    if (!*path) {
        set_masked(r);
        return;
    }
    const char *dot = strchr(path, '.');
    size_t seglen = dot ? (size_t)(dot - path) : strlen(path);
    const char *rest = dot ? dot + 1 : "";
    if (seglen == 1 && path[0] == '*') {
        for (size_t i = 0; i < r->n; i++)
            mask_path(r->el[i], rest);
    } else {
        size_t idx = (size_t)atoi(path);
        if (idx < r->n)
            mask_path(r->el[idx], rest);
    }
}

struct ofe_buf_lite {
    char *p;
    size_t len, cap;
};

static void bput(struct ofe_buf_lite *b, const char *fmt, ...)
{
    va_list ap;
    char tmp[4096];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, tmp, (size_t)n + 1);
    b->len += (size_t)n;
}

static void render(struct ofe_buf_lite *b, const struct reply *r, int depth, bool shape)
{
    bput(b, "%*s", depth * 2, "");
    switch (r->type) {
    case '*':
        bput(b, "*%zu\n", r->n);
        for (size_t i = 0; i < r->n; i++)
            render(b, r->el[i], depth + 1, shape);
        return;
    case 'N':
        bput(b, "(nil)\n");
        return;
    case 'M':
        bput(b, "(nil-array)\n");
        return;
    case 'E':
        bput(b, "(connection closed)\n");
        return;
    default:
        break;
    }
    if (shape) {
        bput(b, "%c\n", r->type);
        return;
    }
    bput(b, "%c\"", r->type);
    for (size_t i = 0; i < r->len && i < 1000; i++) {
        unsigned char ch = (unsigned char)r->str[i];
        if (ch >= 32 && ch < 127 && ch != '"' && ch != '\\')
            bput(b, "%c", ch);
        else
            bput(b, "\\x%02x", ch);
    }
    bput(b, "\"\n");
}

/* ---- script parsing ------------------------------------------------------- */

static int hexv(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* Splits args like redis-cli; returns count, -1 on bad quotes. */
static int split_args(const char *s, char **av, size_t *al, int max)
{
    int n = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        if (n == max)
            return -1;
        char *out = malloc(strlen(s) + 1);
        size_t k = 0;
        if (*s == '"') {
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && s[1]) {
                    s++;
                    switch (*s) {
                    case 'n':
                        out[k++] = '\n';
                        break;
                    case 'r':
                        out[k++] = '\r';
                        break;
                    case 't':
                        out[k++] = '\t';
                        break;
                    case 'x':
                        out[k++] = (char)(hexv(s[1]) * 16 + hexv(s[2]));
                        s += 2;
                        break;
                    default:
                        out[k++] = *s;
                    }
                    s++;
                } else {
                    out[k++] = *s++;
                }
            }
            if (*s != '"') {
                free(out);
                return -1;
            }
            s++;
        } else {
            while (*s && *s != ' ' && *s != '\t')
                out[k++] = *s++;
        }
        out[k] = '\0';
        av[n] = out;
        al[n] = k;
        n++;
    }
    return n;
}

static void send_all(struct conn *c, const char *p, size_t n)
{
    while (n && c->fd >= 0) {
        ssize_t w = write(c->fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void send_cmd(struct conn *c, char **av, size_t *al, int n)
{
    char hdr[64];
    snprintf(hdr, sizeof(hdr), "*%d\r\n", n);
    send_all(c, hdr, strlen(hdr));
    for (int i = 0; i < n; i++) {
        snprintf(hdr, sizeof(hdr), "$%zu\r\n", al[i]);
        send_all(c, hdr, strlen(hdr));
        send_all(c, av[i], al[i]);
        send_all(c, "\r\n", 2);
    }
}

static void parse_masks(const char *s, struct masks *m)
{
    memset(m, 0, sizeof(*m));
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (!strcmp(t, "ids"))
            m->ids = true;
        else if (!strcmp(t, "skip"))
            m->skip = true;
        else if (!strcmp(t, "type"))
            m->type = true;
        else if (!strcmp(t, "after") && m->nafter < 8) {
            char *v = strtok_r(NULL, " ", &save);
            if (v)
                snprintf(m->after[m->nafter++], 64, "%s", v);
        } else if (!strcmp(t, "path") && m->npaths < 8) {
            char *v = strtok_r(NULL, " ", &save);
            if (v)
                snprintf(m->paths[m->npaths++], 64, "%s", v);
        }
    }
}

static void compare(const char *script, int lineno, const char *text, struct reply *ra,
                    struct reply *rb, const struct masks *m)
{
    if (m->skip) {
        reply_free(ra);
        reply_free(rb);
        return;
    }
    struct reply *rs[2] = {ra, rb};
    for (int i = 0; i < 2; i++) {
        apply_masks(rs[i], m);
        for (int k = 0; k < m->npaths; k++)
            mask_path(rs[i], m->paths[k]);
    }
    struct ofe_buf_lite x = {0}, y = {0};
    render(&x, ra, 0, m->type);
    render(&y, rb, 0, m->type);
    if (strcmp(x.p, y.p) != 0) {
        failures++;
        fprintf(stderr, "%s:%d: MISMATCH for: %s\n--- redis-server:\n%s--- ofe-eventbus:\n%s\n",
                script, lineno, text, x.p, y.p);
    } else if (getenv("BUS_DIFF_VERBOSE")) {
        printf("%s:%d: %s\n%s", script, lineno, text, x.p);
    }
    free(x.p);
    free(y.p);
    reply_free(ra);
    reply_free(rb);
}

static int open_all(struct side *s)
{
    for (int i = 1; i < MAXCONN; i++)
        if (conn_open(&s->c[i], s->srv->port) != 0)
            return -1;
    return 0;
}

static void close_all(struct side *s)
{
    for (int i = 1; i < MAXCONN; i++)
        conn_close(&s->c[i]);
}

static int run_script(const char *path)
{
    size_t len;
    char *text = tu_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "%s: cannot read\n", path);
        return 1;
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *extra[4] = {NULL};
    if (!strncmp(text, "!requirepass ", 13)) {
        static char pass[128];
        sscanf(text + 13, "%127s", pass);
        extra[0] = "--requirepass";
        extra[1] = pass;
    }
    struct side sides[2] = {{.name = "redis-server"}, {.name = "ofe-eventbus"}};
    sides[0].srv = tu_server_start(TU_REDIS, extra);
    sides[1].srv = tu_server_start(TU_EVENTBUS, extra);
    if (!sides[0].srv || !sides[1].srv) {
        fprintf(stderr, "%s: cannot start the servers\n", name);
        tu_server_free(sides[0].srv);
        tu_server_free(sides[1].srv);
        free(text);
        return 1;
    }
    int before = failures;
    for (int s = 0; s < 2; s++)
        if (open_all(&sides[s]) != 0) {
            fprintf(stderr, "%s: cannot connect to %s\n", name, sides[s].name);
            failures++;
        }
    int lineno = 0;
    char *next = text;
    while (next) {
        char *line = next;
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        while (*line == ' ')
            line++;
        if (!*line || *line == '#' || !strncmp(line, "!requirepass", 12))
            continue;
        struct masks m = {0};
        char *mk = strstr(line, " #!");
        if (mk) {
            *mk = '\0';
            parse_masks(mk + 3, &m);
        }
        if (!strncmp(line, "!sleep ", 7)) {
            usleep((useconds_t)atoi(line + 7) * 1000);
            continue;
        }
        if (!strcmp(line, "!restart") || !strcmp(line, "!crash")) {
            close_all(&sides[1]);
            if (line[1] == 'c')
                tu_server_kill(sides[1].srv);
            else
                tu_server_stop(sides[1].srv);
            if (tu_server_restart(sides[1].srv) != 0 || open_all(&sides[1]) != 0) {
                fprintf(stderr, "%s:%d: ofe-eventbus did not come back\n", name, lineno);
                failures++;
            }
            /* Keep connection state equal: reconnect redis too. */
            close_all(&sides[0]);
            open_all(&sides[0]);
            continue;
        }
        if (!strcmp(line, "!closed")) {
            for (int s = 0; s < 2; s++) {
                struct reply *r = read_reply(&sides[s].c[1]);
                if (r->type != 'E') {
                    fprintf(stderr, "%s:%d: %s did not close the connection\n", name, lineno,
                            sides[s].name);
                    failures++;
                }
                reply_free(r);
                conn_close(&sides[s].c[1]);
                conn_open(&sides[s].c[1], sides[s].srv->port);
            }
            continue;
        }
        if (!strncmp(line, "!raw ", 5)) {
            /* Escapes: \r \n \t \xHH \\; anything else is literal. */
            char raw[8192];
            size_t rl = 0;
            for (const char *p = line + 5; *p && rl < sizeof(raw); p++) {
                if (p[0] == '\\' && p[1]) {
                    p++;
                    switch (*p) {
                    case 'r':
                        raw[rl++] = '\r';
                        break;
                    case 'n':
                        raw[rl++] = '\n';
                        break;
                    case 't':
                        raw[rl++] = '\t';
                        break;
                    case '\\':
                        raw[rl++] = '\\';
                        break;
                    case 'x':
                        if (isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
                            raw[rl++] = (char)(hexv(p[1]) * 16 + hexv(p[2]));
                            p += 2;
                        } else {
                            raw[rl++] = '\\';
                            raw[rl++] = 'x';
                        }
                        break;
                    default:
                        raw[rl++] = '\\';
                        raw[rl++] = *p;
                    }
                } else {
                    raw[rl++] = *p;
                }
            }
            struct reply *r[2];
            for (int s = 0; s < 2; s++) {
                send_all(&sides[s].c[1], raw, rl);
                r[s] = read_reply(&sides[s].c[1]);
            }
            compare(name, lineno, line, r[0], r[1], &m);
            continue;
        }
        int repeat = 1;
        if (!strncmp(line, "!repeat ", 8)) {
            repeat = atoi(line + 8);
            line += 8;
            while (isdigit((unsigned char)*line))
                line++;
            while (*line == ' ')
                line++;
        }
        char tmpl[4096];
        snprintf(tmpl, sizeof(tmpl), "%s", line);
        for (int it = 1; it <= repeat; it++) {
            char expanded[8192];
            {
                size_t o = 0;
                for (const char *p = tmpl; *p && o + 24 < sizeof(expanded); p++) {
                    if (p[0] == '$' && p[1] == 'i') {
                        o += (size_t)snprintf(expanded + o, sizeof(expanded) - o, "%d", it);
                        p++;
                    } else {
                        expanded[o++] = *p;
                    }
                }
                expanded[o] = '\0';
            }
            line = expanded;
            int conn = 1;
            bool async = false, readonly = false;
            if (line[0] == '@') {
                conn = line[1] - '0';
                char *p = line + 2;
                if (*p == '&') {
                    async = true;
                    p++;
                } else if (*p == '<') {
                    readonly = true;
                    p++;
                }
                line = p;
                while (*line == ' ')
                    line++;
                if (conn < 1 || conn >= MAXCONN) {
                    fprintf(stderr, "%s:%d: bad connection number\n", name, lineno);
                    failures++;
                    break;
                }
            }
            if (readonly) {
                struct reply *r0 = read_reply(&sides[0].c[conn]);
                struct reply *r1 = read_reply(&sides[1].c[conn]);
                compare(name, lineno, "(pending reply)", r0, r1, &m);
                continue;
            }
            char *av[256];
            size_t al[256];
            int n = split_args(line, av, al, 256);
            if (n <= 0) {
                fprintf(stderr, "%s:%d: cannot parse: %s\n", name, lineno, line);
                failures++;
                break;
            }
            struct reply *r[2] = {NULL, NULL};
            for (int s = 0; s < 2; s++) {
                send_cmd(&sides[s].c[conn], av, al, n);
                if (!async)
                    r[s] = read_reply(&sides[s].c[conn]);
            }
            for (int i = 0; i < n; i++)
                free(av[i]);
            if (!async)
                compare(name, lineno, line, r[0], r[1], &m);
        }
    }
    for (int s = 0; s < 2; s++) {
        close_all(&sides[s]);
        tu_server_free(sides[s].srv);
    }
    free(text);
    printf("%-28s %s\n", name, failures == before ? "ok" : "FAILED");
    return failures != before;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* the broker may close a connection first */
    int bad = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            bad |= run_script(argv[i]);
        return bad;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tests/integration/eventbus_diff", tu_source_dir());
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return 1;
    }
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".txt")) {
            names[n] = malloc(strlen(dir) + l + 2);
            sprintf(names[n], "%s/%s", dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(*names), cmp_str);
    for (int i = 0; i < n; i++) {
        bad |= run_script(names[i]);
        free(names[i]);
    }
    if (n == 0) {
        fprintf(stderr, "no scripts in %s\n", dir);
        return 1;
    }
    return bad;
}
