/* Real servers for integration tests (servers.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "servers.h"
#include "testutil.h"

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Ports for test servers are taken below the kernel's ephemeral range:
 * a port found free there cannot be handed to some process's outgoing
 * connection before the server binds it (tu_wait_port alone makes dozens
 * of connections a second, and ctest runs tests side by side). Test
 * processes reserve each port with an flock on PORT_LOCK_DIR/PORT, held
 * until they exit, so two tests never pick the same one; scripts/demo.py
 * and tests/lib/free_port.py (shell tests) follow the same convention. */
#define PORT_FLOOR 20000
#define PORT_LOCK_DIR_FMT "%s/ofe-test-ports-%u"

/* The [lo, hi] range to draw from, or 0 when there is no room for one. */
static int port_range(int *lo, int *hi)
{
    int elo = 32768, ehi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &elo, &ehi) != 2)
            elo = 32768, ehi = 60999;
        fclose(f);
    }
    if (elo - 1 - PORT_FLOOR >= 1000) {
        *lo = PORT_FLOOR, *hi = elo - 1;
        return 1;
    }
    if (65535 - (ehi + 1) >= 1000) {
        *lo = ehi + 1, *hi = 65535;
        return 1;
    }
    return 0;
}

/* Whether a listener could bind 127.0.0.1:port right now. No SO_REUSEADDR:
 * a port with connections in TIME_WAIT is skipped too. */
static int port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* The kernel's choice (the old way): bound and released. */
static int ephemeral_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void port_lock_dir(char *buf, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, n, PORT_LOCK_DIR_FMT, tmp && *tmp ? tmp : "/tmp", (unsigned)getuid());
}

void tu_port_lock_path(int port, char *buf, size_t n)
{
    char dir[4096];
    port_lock_dir(dir, sizeof(dir));
    snprintf(buf, n, "%s/%d", dir, port);
}

int tu_free_port(void)
{
    static unsigned seed;
    int lo, hi;
    if (!port_range(&lo, &hi))
        return ephemeral_port();
    char dir[4096], path[4200];
    port_lock_dir(dir, sizeof(dir));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return ephemeral_port();
    if (!seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec;
    }
    for (int tries = 0; tries < 200; tries++) {
        int port = lo + (int)(rand_r(&seed) % (unsigned)(hi - lo + 1));
        tu_port_lock_path(port, path, sizeof(path));
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return ephemeral_port();
        if (flock(fd, LOCK_EX | LOCK_NB) != 0 || !port_bindable(port)) {
            close(fd);
            continue;
        }
        return port; /* fd stays open: the reservation lasts until exit */
    }
    return ephemeral_port();
}

int tu_wait_port(int port, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
        close(fd);
        if (rc == 0)
            return 0;
        msleep(20);
    }
    return -1;
}

char *tu_mkdtemp(const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    if (!mkdtemp(path))
        return NULL;
    return strdup(path);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

void tu_rmrf(const char *dir)
{
    if (dir && *dir && strcmp(dir, "/"))
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_build_path(const char *rel)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", tu_build_dir(), rel);
    return strdup(p);
}

static pid_t spawn(char **argv, const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        setpgid(0, 0);
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

struct tu_proc *tu_proc_start(const char *const *argv, const char *log_path)
{
    struct tu_proc *p = calloc(1, sizeof(*p));
    size_t n = 0;
    while (argv[n])
        n++;
    p->argv = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        p->argv[i] = strdup(argv[i]);
    p->log = log_path ? strdup(log_path) : NULL;
    p->pid = spawn(p->argv, p->log);
    if (p->pid <= 0) {
        p->pid = 0;
        tu_proc_free(p);
        return NULL;
    }
    return p;
}

bool tu_proc_alive(struct tu_proc *p)
{
    if (!p || p->pid <= 0)
        return false;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->pid = 0;
        return false;
    }
    return true;
}

int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms)
{
    if (!p || p->pid <= 0)
        return 0;
    int st = 0;
    kill(p->pid, sig);
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid || (r < 0 && errno == ECHILD))
            break;
        if (waited >= timeout_ms) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            break;
        }
        msleep(10);
    }
    p->pid = 0;
    return st;
}

int tu_proc_restart(struct tu_proc *p)
{
    if (p->pid > 0)
        tu_proc_stop(p, SIGKILL, 1000);
    p->pid = spawn(p->argv, p->log);
    if (p->pid <= 0) {
        p->pid = 0;
        return -1;
    }
    return 0;
}

void tu_proc_free(struct tu_proc *p)
{
    if (!p)
        return;
    tu_proc_stop(p, SIGKILL, 1000);
    for (size_t i = 0; p->argv && p->argv[i]; i++)
        free(p->argv[i]);
    free(p->argv);
    free(p->log);
    free(p);
}

/* Builds argv for a server kind. Returns the number of arguments. */
static int build_argv(struct tu_server *s, const char **av, char bufs[][4200],
                      const char *const *extra)
{
    int n = 0, b = 0;
#define ARG(x)    (av[n++] = (x))
#define ARGF(...) (snprintf(bufs[b], sizeof(bufs[b]), __VA_ARGS__), av[n++] = bufs[b++])
    switch (s->kind) {
    case TU_REDIS:
        ARG("redis-server");
        ARG("--port");
        ARGF("%d", s->port);
        ARG("--bind");
        ARG("127.0.0.1");
        ARG("--dir");
        ARG(s->dir);
        ARG("--save");
        ARG("");
        ARG("--appendonly");
        ARG("yes");
        ARG("--appendfsync");
        ARG("always");
        ARG("--daemonize");
        ARG("no");
        break;
    case TU_NATS:
        ARG("nats-server");
        ARG("-a");
        ARG("127.0.0.1");
        ARG("-p");
        ARGF("%d", s->port);
        ARG("-js");
        ARG("-sd");
        ARG(s->dir);
        break;
    case TU_MOSQUITTO: {
        char conf[4200];
        snprintf(conf, sizeof(conf), "%s/mosquitto.conf", s->dir);
        FILE *f = fopen(conf, "w");
        if (f) {
            fprintf(f,
                    "listener %d 127.0.0.1\n"
                    "allow_anonymous true\n"
                    "persistence true\n"
                    "persistence_location %s/\n"
                    "autosave_interval 1\n"
                    "max_queued_messages 1000000\n"
                    "max_inflight_messages 0\n"
                    "set_tcp_nodelay true\n"
                    "log_dest stderr\n"
                    "log_type error\nlog_type warning\nlog_type notice\n",
                    s->port, s->dir);
            /* Started as root, mosquitto drops to user "mosquitto", which
             * cannot write the persistence file into our private dir. */
            if (geteuid() == 0)
                fprintf(f, "user root\n");
            /* extra: more configuration lines, not arguments. */
            for (size_t i = 0; extra && extra[i]; i++)
                fprintf(f, "%s\n", extra[i]);
            fclose(f);
        }
        extra = NULL;
        ARG("mosquitto");
        ARG("-c");
        ARGF("%s", conf);
        break;
    }
    case TU_EVENTBUS:
        ARGF("%s/eventbus/ofe-eventbus", tu_build_dir());
        ARG("--port");
        ARGF("%d", s->port);
        ARG("--http-port");
        ARGF("%d", s->http_port);
        ARG("--data-dir");
        ARG(s->dir);
        ARG("--fsync");
        ARG("always");
        break;
    case TU_KAFKA:
        /* The mock cluster picks its own broker ports: it writes its
         * bootstrap servers to a file that kafka_wait_bootstrap reads. */
        ARGF("%s/tests/ofe-kafka-mock", tu_build_dir());
        ARG("--bootstrap-file");
        ARGF("%s/bootstrap", s->dir);
        break;
    }
    for (size_t i = 0; extra && extra[i]; i++)
        ARG(extra[i]);
    av[n] = NULL;
#undef ARG
#undef ARGF
    return n;
}

static const char *kind_name(enum tu_server_kind k)
{
    static const char *const names[] = {"redis", "nats", "mosquitto", "eventbus", "kafka"};
    return names[k];
}

/* TU_KAFKA: waits for the bootstrap file of ofe-kafka-mock, sets url to
 * its bootstrap servers and addr/port to the first broker, and waits until
 * that broker accepts. Returns 0 or -1 after timeout_ms. */
static int kafka_wait_bootstrap(struct tu_server *s, int timeout_ms)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/bootstrap", s->dir);
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        char *text = tu_read_file(path, NULL);
        if (text) {
            text[strcspn(text, "\r\n")] = '\0';
            snprintf(s->url, sizeof(s->url), "%s", text);
            size_t first = strcspn(text, ",");
            text[first] = '\0';
            snprintf(s->addr, sizeof(s->addr), "%s", text);
            const char *colon = strrchr(text, ':');
            s->port = colon ? atoi(colon + 1) : 0;
            free(text);
            return s->port > 0 ? tu_wait_port(s->port, timeout_ms - waited) : -1;
        }
        if (!tu_proc_alive(s->proc))
            return -1;
        msleep(20);
    }
    return -1;
}

struct tu_server *tu_server_start(enum tu_server_kind kind, const char *const *extra)
{
    struct tu_server *s = calloc(1, sizeof(*s));
    s->kind = kind;
    s->dir = tu_mkdtemp(kind_name(kind));
    s->port = tu_free_port();
    if (kind == TU_EVENTBUS)
        s->http_port = tu_free_port();
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
    switch (kind) {
    case TU_REDIS:
    case TU_EVENTBUS:
        snprintf(s->url, sizeof(s->url), "redis://%s", s->addr);
        break;
    case TU_NATS:
        snprintf(s->url, sizeof(s->url), "nats://%s", s->addr);
        break;
    case TU_MOSQUITTO:
        snprintf(s->url, sizeof(s->url), "tcp://%s", s->addr);
        break;
    case TU_KAFKA:
        snprintf(s->url, sizeof(s->url), "%s", s->addr);
        break;
    }
    const char *av[128];
    static char bufs[16][4200];
    build_argv(s, av, bufs, extra);
    char log[4200];
    snprintf(log, sizeof(log), "%s/server.log", s->dir);
    s->proc = tu_proc_start(av, log);
    if (!s->proc || (kind == TU_KAFKA ? kafka_wait_bootstrap(s, 10000)
                                      : tu_wait_port(s->port, 10000)) != 0) {
        fprintf(stderr, "cannot start %s on port %d (see %s)\n", av[0], s->port, log);
        char *text = tu_read_file(log, NULL);
        if (text) {
            fprintf(stderr, "%s\n", text);
            free(text);
        }
        tu_server_free(s);
        return NULL;
    }
    return s;
}

void tu_server_stop(struct tu_server *s)
{
    tu_proc_stop(s->proc, SIGTERM, 10000);
}

void tu_server_kill(struct tu_server *s)
{
    tu_proc_stop(s->proc, SIGKILL, 5000);
}

int tu_server_restart(struct tu_server *s)
{
    if (s->kind == TU_KAFKA) {
        /* The mock keeps nothing across a restart and comes back on new
         * ports: a new, empty cluster (url and addr change). */
        char path[4200];
        snprintf(path, sizeof(path), "%s/bootstrap", s->dir);
        unlink(path);
        if (tu_proc_restart(s->proc) != 0)
            return -1;
        return kafka_wait_bootstrap(s, 10000);
    }
    /* The port may linger in TIME_WAIT; servers set SO_REUSEADDR. */
    for (int attempt = 0; attempt < 5; attempt++) {
        if (tu_proc_restart(s->proc) == 0 && tu_wait_port(s->port, 10000) == 0)
            return 0;
        msleep(200);
    }
    return -1;
}

void tu_server_free(struct tu_server *s)
{
    if (!s)
        return;
    tu_proc_free(s->proc);
    if (!getenv("OFE_KEEP_TEST_DIRS"))
        tu_rmrf(s->dir);
    free(s->dir);
    free(s);
}
