/* Error codes shared by every module of libofe. */
#ifndef OFE_ERR_H
#define OFE_ERR_H

#include <stddef.h>

/* Functions that can fail return 0 or one of these (negative) codes; where
 * the cause is the caller's input they also fill an errstr buffer with a
 * sentence for a human (librdkafka's rd_kafka_conf_set pattern). */
enum {
    OFE_OK = 0,
    OFE_EINVAL = -1,    /* invalid argument or input (errstr says why) */
    OFE_ENOMEM = -2,    /* out of memory */
    OFE_EIO = -3,       /* I/O error (errno kept where it helps) */
    OFE_ENOENT = -4,    /* no such thing: file, topic, group, attribute */
    OFE_ETIMEDOUT = -5, /* timed out */
    OFE_ECONN = -6,     /* cannot connect, or the connection was lost */
    OFE_ETOOBIG = -7,   /* over a configured size limit */
    OFE_EAUTH = -8,     /* authentication or authorisation failed */
    OFE_EPARSE = -9,    /* malformed input that could not be parsed */
    OFE_EUNSUPP = -10,  /* not supported (by this backend, build, mode) */
    OFE_EAGAIN = -11,   /* a bounded queue is full: try again later */
    OFE_ECLOSED = -12,  /* the object is closing or closed */
    OFE_EEXIST = -13,   /* already exists */
    OFE_ESTATE = -14,   /* not allowed in the current state */
    OFE_EREMOTE = -15,  /* the remote side refused (errstr has its words) */
    OFE_E__COUNT = 16
};

/* Delivery outcome of one attempt to hand an event on (fluent-bit's
 * FLB_OK / FLB_RETRY / FLB_ERROR): the core owns retry timing. */
enum ofe_outcome { OFE_DELIVERY_OK = 0, OFE_DELIVERY_RETRY = 1, OFE_DELIVERY_FAIL = 2 };

/* Returns a static, human-readable name for an OFE_E* code (or "unknown
 * error -N"). This function can't fail. */
const char *ofe_strerror(int err);

/* Formats into errstr (when errstr is not NULL and errstr_size > 0) and
 * returns err, so that `return ofe_err(buf, sz, OFE_EINVAL, "...")` reads
 * as one statement. */
int ofe_err(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
