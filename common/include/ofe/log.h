/* Leveled logging with [component:instance] prefixes, text or JSON lines.
 * Thread-safe: every record is written with a single write(2) to stderr. */
#ifndef OFE_LOG_H
#define OFE_LOG_H

#include <stdarg.h>

enum ofe_log_level { OFE_LOG_ERROR = 0, OFE_LOG_WARN, OFE_LOG_INFO, OFE_LOG_DEBUG };
enum ofe_log_format { OFE_LOG_TEXT = 0, OFE_LOG_JSON };

/* Process-wide settings; call before starting threads. */
void ofe_log_set_level(enum ofe_log_level level);
void ofe_log_set_format(enum ofe_log_format fmt);
enum ofe_log_level ofe_log_get_level(void);

/* Parses "error|warn|info|debug" or OpenFunction's numeric logLevel ("0".."3"
 * where a larger number is more verbose). Returns 0, or OFE_EINVAL. */
int ofe_log_parse_level(const char *s, enum ofe_log_level *out);
/* Parses "text|json". Returns 0, or OFE_EINVAL. */
int ofe_log_parse_format(const char *s, enum ofe_log_format *out);

/* Writes one record. component is e.g. "eventbus", instance e.g. a source or
 * topic name (may be NULL). Records above the configured level cost one
 * comparison. */
void ofe_log(enum ofe_log_level level, const char *component, const char *instance,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void ofe_logv(enum ofe_log_level level, const char *component, const char *instance,
              const char *fmt, va_list ap);

#define ofe_log_enabled(lvl) ((lvl) <= ofe_log_get_level())
#define OFE_ERROR(comp, inst, ...) ofe_log(OFE_LOG_ERROR, comp, inst, __VA_ARGS__)
#define OFE_WARN(comp, inst, ...) ofe_log(OFE_LOG_WARN, comp, inst, __VA_ARGS__)
#define OFE_INFO(comp, inst, ...) ofe_log(OFE_LOG_INFO, comp, inst, __VA_ARGS__)
#define OFE_DEBUG(comp, inst, ...)                                                            \
    do {                                                                                      \
        if (ofe_log_enabled(OFE_LOG_DEBUG))                                                   \
            ofe_log(OFE_LOG_DEBUG, comp, inst, __VA_ARGS__);                                  \
    } while (0)

#endif
