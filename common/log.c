/* log: stage-tagged logging to stderr, one write(2) per line; each call site
 * (format string) at most LOG_BURST lines per LOG_WINDOW_MS, the rest counted
 * and summed up in one line, so that a flood of one kind of line (a client
 * sending the same bad request 10,000 times) cannot push everything else out
 * of the operator's view. Every line goes through log_redact() first. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

#define LOG_BURST     20
#define LOG_WINDOW_MS 5000
#define LOG_SITES     128 /* call sites tracked at once; beyond, lines are not limited */

static const char *log_stage = "vigil";
static enum log_level log_level = LOG_LVL_INFO;

/* One call site's window: lines written and held back since it began. */
struct log_site {
	const char *fmt;
	enum log_level level;
	int64_t since_ms;
	unsigned written, held;
};

static struct log_site log_sites[LOG_SITES];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_level_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void
log_open(const char *stage)
{
	log_stage = stage;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

int
log_level_parse(const char *name, enum log_level *ret_level)
{
	for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcmp(name, log_level_names[i]) == 0) {
			*ret_level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
log_level_name(enum log_level level)
{
	return (unsigned)level <= LOG_LVL_DEBUG ? log_level_names[level] : "?";
}

/* n decimal digits at s; -1 when one is not a digit. */
static int
log_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard
 * Hinnant's days_from_civil): timegm() would do, but reads the time zone. */
static int64_t
log_days(int64_t y, int m, int d)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

int
log_line_parse(const char *line, size_t len, enum log_level *ret_level, int64_t *ret_ms)
{
	/* "2026-12-06T07:10:06.123Z ingest[1234] info: message" */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
	int y, mo, d, h, mi, s, ms;
	const char *p, *end = line + len, *colon;
	size_t n = sizeof(shape) - 1;

	if (len < n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (shape[i] == 'd' ? line[i] < '0' || line[i] > '9' : line[i] != shape[i])
			return -EINVAL;
	}
	y = log_digits(line, 4);
	mo = log_digits(line + 5, 2);
	d = log_digits(line + 8, 2);
	h = log_digits(line + 11, 2);
	mi = log_digits(line + 14, 2);
	s = log_digits(line + 17, 2);
	ms = log_digits(line + 20, 3);
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -EINVAL;
	/* The name and pid: "NAME[PID] ", then the level and a colon. */
	p = memchr(line + n, ']', (size_t)(end - (line + n)));
	if (p == NULL || p + 1 >= end || p[1] != ' ')
		return -EINVAL;
	p += 2;
	colon = memchr(p, ':', (size_t)(end - p));
	if (colon == NULL)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		size_t l = strlen(log_level_names[i]);

		if ((size_t)(colon - p) == l && memcmp(p, log_level_names[i], l) == 0) {
			*ret_level = (enum log_level)i;
			*ret_ms = ((log_days(y, mo, d) * 24 + h) * 60 + mi) * 60000 + s * 1000 + ms;
			return 0;
		}
	}
	return -EINVAL;
}

/* Where a secret's value ends in a URL or a key=value text. */
static bool
log_value_end(char c)
{
	return c == '\0' || c == '&' || c == ';' || c == '#' || c == '"' || c == '\'' || c == '<' ||
	       c == '>' || c == ',' || c == ')' || c == ']' || c == '}' ||
	       isspace((unsigned char)c);
}

static bool
log_at(const char *in, size_t len, size_t i, const char *word)
{
	size_t n = strlen(word);

	return len - i >= n && strncasecmp(in + i, word, n) == 0;
}

/* Appends l bytes of s to out (n bytes used of size), cut to leave the NUL. */
static void
log_put(char *out, size_t size, size_t *n, const char *s, size_t l)
{
	if (*n + l >= size)
		l = size - 1 - *n;
	memcpy(out + *n, s, l);
	*n += l;
}

size_t
log_redact(const char *in, size_t len, char *out, size_t size)
{
	size_t i = 0, n = 0, j;

	if (size == 0)
		return 0;
	while (i < len) {
		/* Most bytes begin none of the forms below (token, bearer, ://):
		 * the run up to the next one that may is copied whole. vigild
		 * passes every line of every stage through here. */
		for (j = i; j < len; j++) {
			unsigned char c = (unsigned char)in[j] | 0x20;

			if (c == 't' || c == 'b' || in[j] == ':')
				break;
		}
		if (j > i) {
			log_put(out, size, &n, in + i, j - i);
			i = j;
			continue;
		}
		if (log_at(in, len, i, "token=")) {
			log_put(out, size, &n, in + i, 6);
			for (j = i += 6; i < len && !log_value_end(in[i]); i++)
				;
			if (i > j)
				log_put(out, size, &n, "***", 3);
			continue;
		}
		if (log_at(in, len, i, "token\"")) {
			/* "token": "value", with or without spaces */
			for (j = i + 6; j < len && in[j] == ' '; j++)
				;
			if (j < len && in[j] == ':') {
				for (j++; j < len && in[j] == ' '; j++)
					;
				if (j < len && in[j] == '"') {
					log_put(out, size, &n, in + i, j + 1 - i);
					for (i = ++j; i < len && in[i] != '"'; i++)
						if (in[i] == '\\' && i + 1 < len)
							i++;
					if (i > j)
						log_put(out, size, &n, "***", 3);
					continue;
				}
			}
		}
		if (log_at(in, len, i, "bearer ") && i + 7 < len &&
		    !isspace((unsigned char)in[i + 7])) {
			log_put(out, size, &n, in + i, 7);
			for (i += 7; i < len && !log_value_end(in[i]); i++)
				;
			log_put(out, size, &n, "***", 3);
			continue;
		}
		if (log_at(in, len, i, "://")) {
			/* user information ends at the authority's '@', before any path */
			for (j = i + 3; j < len && in[j] != '@' && in[j] != '/' && in[j] != '?' &&
					!log_value_end(in[j]);
			     j++)
				;
			if (j < len && in[j] == '@' && j > i + 3) {
				log_put(out, size, &n, "://***@", 7);
				i = j + 1;
				continue;
			}
		}
		log_put(out, size, &n, in + i, 1);
		i++;
	}
	out[n] = '\0';
	return n;
}

static void log_line(enum log_level level, int err, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void
log_line(enum log_level level, int err, const char *fmt, va_list ap)
{
	char line[2048], msg[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n,
			      ".%03ldZ %s[%d] %s: ", ts.tv_nsec / 1000000, log_stage, (int)getpid(),
			      log_level_names[level]);
	m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m > 0 && n < sizeof(line))
		n += log_redact(msg, (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1,
				line + n, sizeof(line) - n);
	if (err != 0 && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, ": %s", strerror(-err));
	/* Truncated lines keep their newline. */
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report it. */
	}
}

static void log_line_f(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
log_line_f(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(level, 0, fmt, ap);
	va_end(ap);
}

/* The window of a site ended: what it held back is said once. Called with
 * log_lock held. */
static void
log_site_close(struct log_site *site, int64_t now)
{
	if (site->held > 0)
		log_line_f(site->level, "%u more line%s like \"%.200s\" in %lld s not written",
			   site->held, site->held == 1 ? "" : "s", site->fmt,
			   (long long)((now - site->since_ms + 999) / 1000));
	site->since_ms = now;
	site->written = site->held = 0;
}

/* Whether this call may write its line now. */
static bool
log_admit(enum log_level level, const char *fmt, int64_t now)
{
	uintptr_t h = (uintptr_t)fmt;
	struct log_site *free_site = NULL;

	for (unsigned k = 0; k < LOG_SITES; k++) {
		struct log_site *site = &log_sites[(h / sizeof(void *) + k) % LOG_SITES];

		if (site->fmt == NULL) {
			free_site = site;
			break;
		}
		if (site->fmt != fmt)
			continue;
		if (now - site->since_ms >= LOG_WINDOW_MS)
			log_site_close(site, now);
		if (site->written < LOG_BURST) {
			site->written++;
			return true;
		}
		site->held++;
		return false;
	}
	if (free_site != NULL)
		*free_site = (struct log_site){
			.fmt = fmt, .level = level, .since_ms = now, .written = 1
		};
	return true;
}

void
log_tick(void)
{
	int64_t now = proc_mono_ms();

	pthread_mutex_lock(&log_lock);
	for (unsigned k = 0; k < LOG_SITES; k++)
		if (log_sites[k].fmt != NULL && log_sites[k].held > 0 &&
		    now - log_sites[k].since_ms >= LOG_WINDOW_MS)
			log_site_close(&log_sites[k], now);
	pthread_mutex_unlock(&log_lock);
}

void
log_msg(enum log_level level, int err, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;
	bool ok;

	if (level > log_level)
		return;
	pthread_mutex_lock(&log_lock);
	ok = log_admit(level, fmt, proc_mono_ms());
	if (ok) {
		va_start(ap, fmt);
		log_line(level, err, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}
