/* log: stage-tagged logging to stderr.
 *
 * Every line is "TIME STAGE[PID] LEVEL: message", one line per call, written
 * with a single write(2) so lines from several processes never interleave.
 * vigild captures each stage's stderr and keeps the last lines for vigilctl.
 */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Names the process in every line ("vigild", "ingest", ...). Not copied. */
void log_open(const char *stage);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -EINVAL otherwise. */
int log_level_parse(const char *name, enum log_level *ret_level);
const char *log_level_name(enum log_level level);

/* Reads back a line this module wrote (without its newline): its level and
 * its time in unix ms. -EINVAL for a line of another form (a library's own
 * stderr), with ret_* untouched. vigild reads its stages' lines with it. */
int log_line_parse(const char *line, size_t len, enum log_level *ret_level, int64_t *ret_ms);

/* err is a negative errno (or 0): its text is appended as ": strerror".
 * Each call site (fmt) writes at most 20 lines per 5 s; what it held back
 * is said in one line when its window ends (at its next call or log_tick()). */
void log_msg(enum log_level level, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* About once a second: says what the call sites whose window ended held back. */
void log_tick(void);

/* Copies len bytes of in to out (size bytes, NUL-terminated, cut to fit) with
 * what has the shape of a secret replaced by "***": the value of a query
 * argument or key=value pair whose name ends in "token" (?token=, &token=,
 * access_token=; any case), the string of a JSON member so named
 * ("token":"..."), the credentials after "Bearer ", and the user information
 * of a URL (scheme://user:password@host). Returns the length written. Every
 * line log_msg writes goes through it, and vigild passes its stages' lines
 * (a library's own output too) through it again: no token in a URL reaches a
 * log, whichever call quoted the URL. A token quoted bare cannot be told from
 * other text: no call may log one (tests/check_secrets.py looks). */
size_t log_redact(const char *in, size_t len, char *out, size_t size);

#define log_error(err, ...) log_msg(LOG_LVL_ERROR, (err), __VA_ARGS__)
#define log_warn(err, ...)  log_msg(LOG_LVL_WARN, (err), __VA_ARGS__)
#define log_info(...)       log_msg(LOG_LVL_INFO, 0, __VA_ARGS__)
#define log_debug(...)      log_msg(LOG_LVL_DEBUG, 0, __VA_ARGS__)

#endif
