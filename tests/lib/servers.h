/* Real servers for integration tests: started on free loopback ports in
 * private temporary directories, stopped, killed with SIGKILL and restarted
 * with the same arguments and data. Children get PR_SET_PDEATHSIG, so a
 * crashed test leaves no server behind.
 *
 * Binaries: redis-server, nats-server and mosquitto from PATH (Debian
 * packages); ofe-eventbus and ofe-kafka-mock from the build tree
 * (OFE_BUILD_DIR). */
#ifndef OFE_TEST_SERVERS_H
#define OFE_TEST_SERVERS_H

#include <stdbool.h>
#include <sys/types.h>

/* A child process. */
struct tu_proc {
    pid_t pid;   /* 0 when not running */
    char **argv; /* NULL-terminated copy */
    char *log;   /* stdout and stderr go here (appended) */
};

/* A free TCP port on 127.0.0.1, below the kernel's ephemeral port range
 * (so no outgoing connection can take it before the server binds it) and
 * reserved for this process until it exits (an flock other test processes
 * respect). Falls back to a port the kernel picks when there is no room
 * below or above the ephemeral range. */
int tu_free_port(void);
/* The file whose flock reserves port ($TMPDIR/ofe-test-ports-UID/PORT). */
void tu_port_lock_path(int port, char *buf, size_t n);
/* Waits until 127.0.0.1:port accepts a connection. Returns 0, or -1 after
 * timeout_ms. */
int tu_wait_port(int port, int timeout_ms);
/* Makes a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *tu_mkdtemp(const char *prefix);
/* Removes a directory tree (no-op on NULL). */
void tu_rmrf(const char *dir);
/* Full path of a program built in the build tree, e.g.
 * tu_build_path("eventbus/ofe-eventbus"); malloc'd. */
char *tu_build_path(const char *rel);

/* Starts argv (argv[0] looked up in PATH unless it has a '/'). Returns NULL
 * when fork/exec fails. */
struct tu_proc *tu_proc_start(const char *const *argv, const char *log_path);
/* Sends sig and reaps the process (SIGKILL if it has not exited after
 * timeout_ms). Returns its wait status. No-op when not running. */
int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms);
/* Starts the same command again. Returns 0 or -1. */
int tu_proc_restart(struct tu_proc *p);
/* Stops (SIGKILL) if running and frees. NULL is a no-op. */
void tu_proc_free(struct tu_proc *p);
/* True while the process runs (reaps it when it has exited). */
bool tu_proc_alive(struct tu_proc *p);

enum tu_server_kind {
    TU_REDIS,     /* redis-server, AOF with appendfsync always */
    TU_NATS,      /* nats-server -js with a store directory */
    TU_MOSQUITTO, /* mosquitto with persistence; extra = more mosquitto.conf lines */
    TU_EVENTBUS,  /* ofe-eventbus, fsync always */
    TU_KAFKA,     /* ofe-kafka-mock (librdkafka mock cluster) */
};

struct tu_server {
    enum tu_server_kind kind;
    struct tu_proc *proc;
    int port;      /* the client port */
    int http_port; /* ofe-eventbus: its HTTP port */
    char *dir;     /* data directory, removed by tu_server_free */
    char addr[64]; /* "127.0.0.1:port" */
    char url[128]; /* "redis://..", "nats://..", "tcp://..", or Kafka bootstrap servers */
};

/* Starts a server and waits until it accepts connections (10 s at most).
 * extra: more command-line arguments (NULL-terminated, may be NULL).
 * Returns NULL, with a line on stderr saying why, when it cannot start
 * (e.g. the binary is missing). */
struct tu_server *tu_server_start(enum tu_server_kind kind, const char *const *extra);
/* Graceful stop (SIGTERM) and wait. */
void tu_server_stop(struct tu_server *s);
/* kill -9. */
void tu_server_kill(struct tu_server *s);
/* Starts it again on the same port and data; waits until it accepts
 * connections. Returns 0 or -1. */
int tu_server_restart(struct tu_server *s);
/* Kills it if running, removes its data, frees. NULL is a no-op. */
void tu_server_free(struct tu_server *s);

#endif
