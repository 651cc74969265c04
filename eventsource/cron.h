/* Cron schedules of the cron source: the expression parser, the next-tick
 * computation, and the time zones it needs (TZif files of the TZ database
 * and POSIX TZ strings), written without touching the process-wide TZ.
 *
 * Syntax (docs/sources.md has the full rules):
 *   - 5 fields "min hour dom month dow", or 6 with seconds first
 *     "sec min hour dom month dow" (Dapr, robfig/cron);
 *   - each field: `*`, `?` (dom/dow), numbers, names (JAN..DEC, SUN..SAT),
 *     ranges a-b, steps x/n (x = `*`, a number or a range), lists a,b,c;
 *     dow 0-7 with 0 and 7 Sunday;
 *   - descriptors @yearly @annually @monthly @weekly @daily @midnight
 *     @hourly, and `@every <duration>` (Go or ISO 8601, at least 10 ms);
 *   - an optional `CRON_TZ=Zone ` or `TZ=Zone ` prefix.
 * dom and dow: when both are restricted (neither is `*` or `?`), a day
 * matching either fires (Vixie cron); otherwise both must match.
 *
 * Times are Unix milliseconds (UTC). Fields are matched against the wall
 * clock of the zone. A wall time that does not exist (spring-forward gap)
 * does not fire; one that occurs twice (fall-back) fires once, at its
 * first occurrence, unless the hour field is `*` (then every real minute
 * or second of the repeated hour fires).
 *
 * Thread safety: parsed schedules and zones are immutable; any thread may
 * use them at once. */
#ifndef OFE_ES_CRON_H
#define OFE_ES_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- time zones --------------------------------------------------------- */

struct es_tz;

/* Loads a zone by IANA name ("Europe/Berlin", "UTC") from the TZ database
 * (/usr/share/zoneinfo, or $TZDIR). NULL, "" or "Local" is the local zone:
 * $TZ when set (a zone name, ":name", or a POSIX TZ string), else
 * /etc/localtime, else UTC. Returns 0, or OFE_ENOENT (no such zone),
 * OFE_EINVAL (bad name or corrupt file: errstr says which), OFE_ENOMEM. */
int es_tz_load(const char *name, struct es_tz **out, char *errstr, size_t errstr_size);

/* Parses the contents of a TZif file (RFC 8536, versions 1 to 4). Returns
 * 0 or OFE_EINVAL with errstr naming what is wrong. */
int es_tz_parse_tzif(const void *buf, size_t len, const char *name, struct es_tz **out,
                     char *errstr, size_t errstr_size);

/* Parses a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3", "UTC0",
 * "<+0530>-5:30"), with RFC 8536's extensions (hours -167..167 in rule
 * times). Returns 0 or OFE_EINVAL with errstr. */
int es_tz_parse_posix(const char *s, const char *name, struct es_tz **out, char *errstr,
                      size_t errstr_size);

/* Offset of the zone's wall clock from UTC at Unix second t, in seconds
 * east of UTC. This function can't fail. */
int32_t es_tz_offset(const struct es_tz *z, int64_t t);

/* The name the zone was loaded with ("UTC", "Europe/Berlin", "Local"). */
const char *es_tz_name(const struct es_tz *z);

/* es_tz_free(NULL) is a no-op. */
void es_tz_free(struct es_tz *z);

/* Civil calendar helpers (proleptic Gregorian). */
int64_t es_days_from_civil(int64_t y, unsigned m, unsigned d);
void es_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* ---- schedules ---------------------------------------------------------- */

struct es_cron;

/* Parses a schedule. tz_name is the `timezone` field (NULL when absent);
 * a CRON_TZ= prefix naming another zone is an error. The zone is loaded
 * here. Returns 0, or OFE_EINVAL with errstr and *err_off (0-based byte
 * offset in spec of the problem; may be NULL), OFE_ENOENT (unknown zone),
 * OFE_ENOMEM. */
int es_cron_parse(const char *spec, const char *tz_name, struct es_cron **out, size_t *err_off,
                  char *errstr, size_t errstr_size);

/* Same, with the zone given (not owned; must outlive the schedule; NULL
 * means UTC). Used by tests and the fuzzer; a CRON_TZ= prefix is checked
 * for syntax only. */
int es_cron_parse_in(const char *spec, const struct es_tz *zone, struct es_cron **out,
                     size_t *err_off, char *errstr, size_t errstr_size);

/* The first tick strictly after Unix millisecond `after`, or -1 when the
 * schedule never fires again within 8 years (e.g. "0 0 30 2 *"). For
 * `@every d` the answer is after + d. This function can't fail. */
int64_t es_cron_next(const struct es_cron *c, int64_t after_ms);

/* True for `@every` schedules (ticks relative to the previous tick). */
bool es_cron_is_every(const struct es_cron *c);

/* The zone of the schedule (never NULL). */
const struct es_tz *es_cron_zone(const struct es_cron *c);

void es_cron_free(struct es_cron *c);

#endif
