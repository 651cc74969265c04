/* RESP2, the Redis protocol: an incremental, bounded request parser
 * (multibulk and inline commands, pipelining) and the reply writers.
 *
 * The parser works over a caller-owned input buffer. Arguments are kept as
 * offsets into it, so the buffer may be reallocated or compacted between
 * calls (see resp_keep_from / resp_shift). Inline commands are unquoted in
 * place, inside the buffer. Nothing here allocates except the argument
 * vector, which is bounded by max_args. */
#ifndef OFE_BUS_RESP_H
#define OFE_BUS_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/buf.h"

#define RESP_INLINE_MAX    (64 * 1024)            /* longest inline command or header line */
#define RESP_HARD_MAX_BULK (512ull * 1024 * 1024) /* larger bulks are protocol errors */

struct resp_arg {
    size_t off; /* offset in the input buffer; SIZE_MAX when discarded */
    size_t len;
};

struct resp_parser {
    /* limits, set by the owner */
    size_t max_args;      /* more arguments: "invalid multibulk length" */
    size_t max_arg_len;   /* longer arguments are discarded and the command flagged */
    bool unauthenticated; /* Redis's small limits before AUTH (10 args, 16 KiB bulks) */

    /* state */
    size_t pos;        /* where parsing continues */
    size_t cmd_start;  /* first byte of the command being parsed */
    long long mb_left; /* multibulk arguments still to read; 0 = at a command start */
    long long bulk;    /* length of the bulk being read, -1 = expect a '$' line */
    size_t skip;       /* bytes of an oversize bulk still to discard */
    bool in_mb;
    bool oversize;       /* a bulk of this command exceeded max_arg_len */
    size_t oversize_len; /* its length */

    /* the command, valid after RESP_CMD until the next call */
    struct resp_arg *argv;
    size_t argc, argcap;
};

enum { RESP_MORE = 0, RESP_CMD = 1, RESP_ERR = -1 };

void resp_parser_init(struct resp_parser *p, size_t max_args, size_t max_arg_len);
void resp_parser_fini(struct resp_parser *p);

/* Parses from p->pos in buf[0..len). Returns RESP_CMD with p->argv/argc
 * set (p->oversize tells that an argument was discarded), RESP_MORE when
 * the next command is incomplete, or RESP_ERR with *err set to the Redis
 * error text ("Protocol error: ..."): the connection must be closed after
 * replying. buf must be writable (inline commands are unquoted in place). */
int resp_parse(struct resp_parser *p, char *buf, size_t len, const char **err);

/* Bytes before this offset are no longer needed by the parser. */
size_t resp_keep_from(const struct resp_parser *p);
/* The owner dropped n bytes from the front of the buffer. */
void resp_shift(struct resp_parser *p, size_t n);

/* ---- integers as Redis parses them ----------------------------------- */

/* Redis's string2ll: optional '-', no '+', no leading zeros or spaces,
 * must fit a long long. Returns true on success. */
bool resp_str2ll(const char *s, size_t len, long long *out);
/* Redis's string2ull (string2ll, else strtoull on a C string). */
bool resp_str2ull(const char *s, size_t len, unsigned long long *out);
/* Writes v in decimal; returns the length (no NUL). buf >= 21 bytes. */
size_t resp_u64toa(char *buf, uint64_t v);
size_t resp_i64toa(char *buf, int64_t v);

/* ---- replies (append to an output buffer; each returns 0 or OFE_ENOMEM) */

int resp_add_simple(struct ofe_buf *o, const char *s);
/* An error: msg starting with '-' is sent as is ("-NOGROUP ..."), anything
 * else gets "-ERR " in front. CR and LF become spaces, as in Redis. */
int resp_add_error(struct ofe_buf *o, const char *msg);
int resp_add_errorf(struct ofe_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int resp_add_int(struct ofe_buf *o, long long v);
int resp_add_bulk(struct ofe_buf *o, const void *p, size_t n);
int resp_add_bulk_str(struct ofe_buf *o, const char *s);
int resp_add_bulk_ll(struct ofe_buf *o, long long v);
int resp_add_null(struct ofe_buf *o);       /* $-1 */
int resp_add_null_array(struct ofe_buf *o); /* *-1 */
int resp_add_array(struct ofe_buf *o, long long n);

#endif
