/* The ofe-eventbus server: one epoll event loop thread owning the
 * listener, every client connection, the keyspace (streams) and the store;
 * commands; blocking reads; durability holds (replies sent only once what
 * they depend on is on disk, under fsync always); client limits.
 *
 * Other threads talk to the loop only through bus_server_submit()
 * (HTTP ingress) and bus_server_stop() (signals). */
#ifndef OFE_BUS_SERVER_H
#define OFE_BUS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/buf.h"
#include "ofe/ce.h"
#include "resp.h"
#include "store.h"
#include "stream.h"

#define BUS_REDIS_VERSION     "7.0.15" /* the Redis behaviour we reproduce */
#define BUS_DEFAULT_PORT      6380
#define BUS_DEFAULT_HTTP_PORT 8089

struct bus_server_opts {
    const char *bind;        /* default "127.0.0.1" */
    uint16_t port;           /* 0 = pick a free port (see bus_server_port) */
    const char *requirepass; /* NULL = no AUTH needed */
    size_t max_clients;      /* default 10000 */
    size_t max_event_size;   /* largest argument / XADD payload; default 1 MiB */
    size_t client_ibuf;      /* unprocessed input per client; default 64 MiB */
    size_t client_obuf;      /* unsent output per client; default 64 MiB */
    struct bus_retention retention;
    struct bus_store_opts store;    /* dir NULL = in memory */
    const char *tls_cert, *tls_key; /* both set = TLS on the RESP port */
};

struct bus_server;
struct bus_client;

/* Opens the store (recovering it), binds the port. Returns NULL with errstr
 * filled ("127.0.0.1:6380: Address already in use", "data directory ...
 * is in use by another ofe-eventbus ..."). */
struct bus_server *bus_server_new(const struct bus_server_opts *opts, char *errstr,
                                  size_t errstr_size);
/* Runs the event loop until bus_server_stop(); then flushes and syncs.
 * Returns 0, or OFE_EIO when storage failed at some point. */
int bus_server_run(struct bus_server *srv);
/* After the loop stopped: refuses new HTTP jobs (503), syncs everything to
 * disk whatever the fsync policy, answers waiting jobs and held replies.
 * bus_server_run calls it; safe to call again. */
void bus_server_finish(struct bus_server *srv);
/* Asks the loop to stop (async-signal-safe: writes an eventfd). */
void bus_server_stop(struct bus_server *srv);
/* Closes every client and the store; frees. NULL is a no-op. */
void bus_server_free(struct bus_server *srv);
uint16_t bus_server_port(const struct bus_server *srv);
/* Readiness for /readyz: false with a reason after a storage failure. */
bool bus_server_ready(struct bus_server *srv, char *why, size_t why_size);

/* ---- HTTP ingress handoff (any thread) ------------------------------- */

/* An append job: XADD * of each field list to one stream. The loop thread
 * calls done(arg, status, ids or error text) once the entries are durable
 * (per the fsync policy): status 0 and ids[n] ("ms-seq" strings), or a
 * negative OFE_E* code and a message. */
struct bus_append_job {
    char *stream;
    size_t slen;
    struct ofe_hdrs *fields; /* n field lists */
    size_t n;
    void (*done)(void *arg, int status, char **ids, size_t n, const char *msg);
    void *arg;
    /* loop-thread private */
    char **ids;
    uint64_t seq;
    struct bus_append_job *next;
};
/* Queues a job (taking ownership of it and its fields). Returns 0, or
 * OFE_EAGAIN when the queue is full (1024 jobs) / OFE_ECLOSED when stopping:
 * the caller keeps the job then. */
int bus_server_submit(struct bus_server *srv, struct bus_append_job *job);

/* ---- clients without a socket (unit tests, fuzzing) ----------------------- */

/* A client fed by the caller instead of a socket (loop thread only). */
struct bus_client *bus_client_new_local(struct bus_server *srv);
/* Feeds bytes as if they had been read, runs every complete command and
 * serves woken blocked clients. Returns false once the server would close
 * the connection (protocol error, QUIT, a limit); the client stays
 * allocated until bus_client_free_local. */
bool bus_client_feed(struct bus_client *c, const void *p, size_t n);
/* Moves the replies produced so far out (malloc'd, *len bytes; NULL when
 * none). Replies held for durability are included. */
char *bus_client_take_output(struct bus_client *c, size_t *len);
void bus_client_free_local(struct bus_client *c);
/* One round of the loop's housekeeping without waiting: flush the store,
 * time out blocked clients, run queued HTTP jobs, cron. */
void bus_server_poll(struct bus_server *srv);

/* ---- metrics ----------------------------------------------------------- */

struct ofe_metrics;
/* Registers the server's metrics in m (call before bus_server_run). */
void bus_server_set_metrics(struct bus_server *srv, struct ofe_metrics *m);

/* ---- for commands (loop thread) ----------------------------------------- */

/* Arguments of the command being run; not NUL-terminated. */
struct bus_cmdctx {
    size_t argc;
    const char **argv;
    size_t *argl;
};

struct bus_cmd {
    const char *name; /* lower case, "xgroup|create" for subcommands */
    int arity;        /* Redis convention: n exact, -n at least n */
    unsigned flags;
    void (*fn)(struct bus_client *c, struct bus_cmdctx *a);
    int first_key, last_key, step;
    const char *acl; /* ACL categories for COMMAND */
    const struct bus_cmd *subs;
};

#define BUS_CMD_WRITE    0x1u
#define BUS_CMD_READONLY 0x2u
#define BUS_CMD_NOAUTH   0x4u
#define BUS_CMD_FAST     0x8u
#define BUS_CMD_BLOCKING 0x10u
#define BUS_CMD_ADMIN    0x20u

extern const struct bus_cmd bus_commands[];
const struct bus_cmd *bus_cmd_lookup(const char *name, size_t len);

/* Accessors for command implementations. */
struct ofe_buf *bus_client_out(struct bus_client *c);
struct bus_server *bus_client_server(struct bus_client *c);
uint64_t bus_client_id(const struct bus_client *c);
uint64_t bus_now_ms(const struct bus_server *srv);
struct bus_store *bus_server_store(struct bus_server *srv);

/* Keyspace. */
struct bus_stream *bus_db_get(struct bus_server *srv, const char *key, size_t klen);
/* Creates an empty stream with its log; NULL with an error reply written
 * to c on failure. */
struct bus_stream *bus_db_create(struct bus_server *srv, struct bus_client *c, const char *key,
                                 size_t klen);
/* DEL: wakes blocked readers with the Redis errors, deletes files. */
void bus_db_delete(struct bus_server *srv, struct bus_stream *s);
size_t bus_db_size(const struct bus_server *srv);

/* Marks a stream as having new entries (or a deleted group) so that
 * blocked clients are served after the current command. */
void bus_signal_ready(struct bus_server *srv, struct bus_stream *s);

/* Blocks the current client. keys/ids describe what it waits for (ids
 * already resolved: "$" became the last id, ">" stays as BUS_ID_MAX). The
 * command will be re-run with only the ready key when data arrives.
 * timeout_ms 0 = forever. Returns 0 or OFE_ENOMEM. */
int bus_block_client(struct bus_client *c, struct bus_cmdctx *a, size_t streams_arg, size_t nkeys,
                     const struct bus_id *ids, uint64_t timeout_ms);
/* True while the command runs on behalf of a blocked client being
 * served: it must not block again. */
bool bus_client_serving_blocked(const struct bus_client *c);

/* Client state for CLIENT / HELLO / AUTH / QUIT. */
const char *bus_client_name(const struct bus_client *c);
int bus_client_set_name(struct bus_client *c, const char *name, size_t len);
bool bus_client_authed(const struct bus_client *c);
void bus_client_set_authed(struct bus_client *c, bool v);
void bus_client_close_after_reply(struct bus_client *c);
const char *bus_server_requirepass(const struct bus_server *srv);
size_t bus_server_max_event(const struct bus_server *srv);
/* Writes "# Clients" etc. for INFO. */
void bus_server_info(struct bus_server *srv, struct ofe_buf *out, const char *section);
/* CLIENT LIST / INFO line for c. */
void bus_client_describe(struct bus_client *c, struct ofe_buf *out);
void bus_server_list_clients(struct bus_server *srv, struct ofe_buf *out);
/* Counts for metrics. */
void bus_count_reads(struct bus_server *srv, uint64_t entries);
void bus_count_acks(struct bus_server *srv, uint64_t n);
void bus_count_appends(struct bus_server *srv, uint64_t n, uint64_t bytes);
/* Registers / forgets the pending-entries gauge of a group. */
void bus_group_metric_add(struct bus_server *srv, struct bus_group *g);
void bus_group_metric_del(struct bus_server *srv, struct bus_group *g);
/* Deletes every stream (FLUSHALL). */
void bus_db_flush(struct bus_server *srv);

/* Command implementations (cmd_*.c). */
void bus_cmd_xadd_internal(struct bus_server *srv, struct bus_append_job *job);

#endif
