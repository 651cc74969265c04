/* Names of the OFE_E* codes. */
#include <stdarg.h>
#include <stdio.h>

#include "ofe/err.h"

static const char *const names[OFE_E__COUNT] = {
    [0] = "success",
    [-OFE_EINVAL] = "invalid argument",
    [-OFE_ENOMEM] = "out of memory",
    [-OFE_EIO] = "input/output error",
    [-OFE_ENOENT] = "not found",
    [-OFE_ETIMEDOUT] = "timed out",
    [-OFE_ECONN] = "connection failed",
    [-OFE_ETOOBIG] = "too large",
    [-OFE_EAUTH] = "authentication failed",
    [-OFE_EPARSE] = "parse error",
    [-OFE_EUNSUPP] = "not supported",
    [-OFE_EAGAIN] = "queue full, try again",
    [-OFE_ECLOSED] = "closed",
    [-OFE_EEXIST] = "already exists",
    [-OFE_ESTATE] = "not allowed in this state",
    [-OFE_EREMOTE] = "refused by the remote side",
};

const char *ofe_strerror(int err)
{
    static __thread char unknown[32];
    if (err <= 0 && err > -OFE_E__COUNT && names[-err])
        return names[-err];
    snprintf(unknown, sizeof(unknown), "unknown error %d", err);
    return unknown;
}

int ofe_err(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
{
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}
