/* Durations as configuration values: one parser for the two notations users
 * write, ISO 8601 (Knative's `backoffDelay: PT0.2S`) and Go's
 * (`ackWait: 30s`, `1m30s`, Dapr metadata), returning microseconds.
 *
 * Accepted forms (exact rules; docs/config.md repeats them):
 *   - "0" alone (zero, no unit needed).
 *   - Go style: one or more <number><unit> with no spaces, number = digits
 *     with an optional fraction (`1.5h`, `.5s`), unit = ns | us | µs | ms |
 *     s | m | h. Example: `250ms`, `15s`, `1m30s`, `1h`.
 *   - ISO 8601: `P` [n`W`] [n`D`] [`T` [n`H`] [n`M`] [n`S`]] with at least
 *     one component, units in that order, each at most once; the last
 *     component may carry a fraction (`.` or `,`). Years and months (`P1Y`,
 *     `P1M`) are refused: they have no fixed length. Example: `PT0.2S`,
 *     `PT1M30S`, `P1D`, `P1DT12H`.
 * Signs are refused (no negative durations). The result must fit in
 * int64 microseconds (about 292,000 years) and be a whole number of
 * microseconds. */
#ifndef OFE_DURATION_H
#define OFE_DURATION_H

#include <stddef.h>
#include <stdint.h>

#define OFE_USEC_PER_MSEC 1000LL
#define OFE_USEC_PER_SEC  1000000LL

/* Parses the NUL-terminated string s into *us (microseconds).
 * Returns 0, or OFE_EINVAL with errstr saying what was expected and
 * *err_off (when not NULL) set to the 0-based byte offset in s where the
 * problem starts. *us is left unchanged on error. */
int ofe_duration_parse(const char *s, int64_t *us, size_t *err_off, char *errstr,
                       size_t errstr_size);

/* Writes us in Go notation (`0s`, `250ms`, `1m30s`, `1h0m0.5s`, `1500us`) into
 * buf (always NUL-terminated when size > 0) and returns buf. Parsing the
 * output gives back the same value. This function can't fail. */
char *ofe_duration_format(int64_t us, char *buf, size_t size);

#endif
