/* cfg_value: the scalar value parsers behind the config keys, public in cfg.h.
 *
 * Sizes, durations, ISO-8601 times, HOST:PORT and role names; the command lines
 * use them too. They return 0 or -EINVAL/-ERANGE and never touch the output on failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cfg.h"
#include "cfg_internal.h"

const char *const cfg_role_names[CFG_ROLE_COUNT] = {
	[CFG_ROLE_SENTINEL] = "sentinel",
	[CFG_ROLE_PROCTOR] = "proctor",
	[CFG_ROLE_ARCHIVIST] = "archivist",
	[CFG_ROLE_OPERATOR] = "operator",
};

/* One or more decimal digits; *ret_end points past them. */
static int
cfg_digits(const char *s, uint64_t *ret_value, const char **ret_end)
{
	uint64_t v = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -EINVAL;
	*ret_value = v;
	*ret_end = p;
	return 0;
}

/* A number, an optional space, then a unit from the table (NULL-terminated). */
static int
cfg_parse_unit(const char *s, const char *const *units, const uint64_t *mults, uint64_t max,
	       uint64_t *ret_value)
{
	const char *end;
	uint64_t n;
	int r;

	r = cfg_digits(s, &n, &end);
	if (r < 0)
		return r;
	if (*end == ' ' && end[1] != '\0')
		end++;
	for (size_t i = 0; units[i]; i++) {
		if (strcmp(end, units[i]) != 0)
			continue;
		if (n > max / mults[i])
			return -ERANGE;
		*ret_value = n * mults[i];
		return 0;
	}
	return -EINVAL;
}

int
cfg_parse_size(const char *s, uint64_t *ret_bytes)
{
	static const char *const units[] = { "",   "B",  "KiB", "MiB", "GiB", "TiB", "KB", "MB",
					     "GB", "TB", "k",   "K",   "M",   "G",   NULL };
	static const uint64_t mults[] = {
		1,       1,       CFG_KIB,    CFG_MIB,       CFG_GIB,
		CFG_TIB, 1000ULL, 1000000ULL, 1000000000ULL, 1000000000000ULL,
		CFG_KIB, CFG_KIB, CFG_MIB,    CFG_GIB
	};

	return cfg_parse_unit(s, units, mults, UINT64_MAX, ret_bytes);
}

int
cfg_parse_duration(const char *s, int64_t *ret_ms)
{
	static const char *const units[] = { "", "ms", "s", "m", "h", "d", NULL };
	static const uint64_t mults[] = { 1000, 1, 1000, 60000, 3600000, 86400000 };
	uint64_t ms;
	int r;

	r = cfg_parse_unit(s, units, mults, INT64_MAX, &ms);
	if (r < 0)
		return r;
	*ret_ms = (int64_t)ms;
	return 0;
}

/* Exactly n digits. */
static int
cfg_fixed(const char **p, int n, int *ret_value)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret_value = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t
cfg_days(int y, int m, int d)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

int
cfg_parse_time(const char *s, int64_t *ret_unix)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	const char *p = s;
	bool leap;
	int64_t t;

	if (cfg_fixed(&p, 4, &y) < 0 || *p++ != '-' || cfg_fixed(&p, 2, &mo) < 0 || *p++ != '-' ||
	    cfg_fixed(&p, 2, &d) < 0 || *p++ != 'T' || cfg_fixed(&p, 2, &h) < 0 || *p++ != ':' ||
	    cfg_fixed(&p, 2, &mi) < 0 || *p++ != ':' || cfg_fixed(&p, 2, &sec) < 0)
		return -EINVAL;
	if (*p == '.') { /* fractions of a second are dropped */
		if (*++p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (cfg_fixed(&p, 2, &oh) < 0 || *p++ != ':' || cfg_fixed(&p, 2, &om) < 0)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) ||
	    h > 23 || mi > 59 || sec > 59 || oh > 23 || om > 59)
		return -EINVAL;
	t = cfg_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
	if (t < 0)
		return -ERANGE;
	*ret_unix = t;
	return 0;
}

int
cfg_parse_listen(const char *s, struct cfg_listen *ret_listen)
{
	struct cfg_listen l = { 0 };
	const char *colon, *port, *end;
	unsigned char addr[16];
	size_t hostlen;
	uint64_t n;
	int r;

	if (s[0] == '[') {
		colon = strchr(s, ']');
		if (!colon || colon[1] != ':')
			return -EINVAL;
		hostlen = (size_t)(colon - s - 1);
		port = colon + 2;
		if (hostlen == 0 || hostlen >= sizeof(l.host))
			return -EINVAL;
		memcpy(l.host, s + 1, hostlen);
		if (inet_pton(AF_INET6, l.host, addr) != 1)
			return -EINVAL;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hostlen = (size_t)(colon - s);
		port = colon + 1;
		if (hostlen == 0 || hostlen >= sizeof(l.host) || s[0] == '-' || s[0] == '.')
			return -EINVAL;
		memcpy(l.host, s, hostlen);
		/* A host name, or an IPv4 address when it is only digits and dots. */
		if (strspn(l.host, "0123456789.") == hostlen) {
			if (inet_pton(AF_INET, l.host, addr) != 1)
				return -EINVAL;
		} else if (strspn(l.host, CFG_ALNUM ".-") != hostlen) {
			return -EINVAL; /* an IPv6 address without brackets lands here too */
		}
	}
	r = cfg_digits(port, &n, &end);
	if (r < 0 || *end != '\0')
		return r < 0 ? r : -EINVAL;
	if (n > 65535)
		return -ERANGE;
	l.port = (uint16_t)n;
	*ret_listen = l;
	return 0;
}

int
cfg_parse_floor(const char *s, struct cfg_floor *ret_floor)
{
	struct cfg_floor f = { .kind = CFG_FLOOR_AUTO };
	size_t len = strlen(s);
	const char *end;
	uint64_t whole, frac = 0;
	int r;

	if (strcmp(s, "auto") == 0) {
		*ret_floor = f;
		return 0;
	}
	if (len == 0 || s[len - 1] != '%') {
		f.kind = CFG_FLOOR_BYTES;
		r = cfg_parse_size(s, &f.bytes);
		if (r == 0)
			*ret_floor = f;
		return r;
	}
	/* N%, N.N% or N.NN%: hundredths of a percent, no float to round. */
	r = cfg_digits(s, &whole, &end);
	if (r < 0)
		return r;
	if (*end == '.') {
		const char *p = end + 1;

		if (!(p[0] >= '0' && p[0] <= '9'))
			return -EINVAL;
		frac = (uint64_t)(p[0] - '0') * 10;
		end = p + 1;
		if (*end >= '0' && *end <= '9')
			frac += (uint64_t)(*end++ - '0');
	}
	if (strcmp(end, "%") != 0)
		return -EINVAL;
	if (whole > CFG_FLOOR_PERCENT_MAX || whole * 100 + frac > CFG_FLOOR_PERCENT_MAX * 100)
		return -ERANGE;
	f.kind = CFG_FLOOR_PERCENT;
	f.hundredths = (uint32_t)(whole * 100 + frac);
	*ret_floor = f;
	return 0;
}

void
cfg_fmt_floor(char *buf, size_t size, const struct cfg_floor *floor)
{
	unsigned h = floor->hundredths;

	if (floor->kind == CFG_FLOOR_BYTES)
		snprintf(buf, size, "%llu", (unsigned long long)floor->bytes);
	else if (floor->kind != CFG_FLOOR_PERCENT)
		snprintf(buf, size, "auto");
	else if (h % 100 == 0)
		snprintf(buf, size, "%u%%", h / 100);
	else if (h % 10 == 0)
		snprintf(buf, size, "%u.%u%%", h / 100, h % 100 / 10);
	else
		snprintf(buf, size, "%u.%02u%%", h / 100, h % 100);
}

int
cfg_parse_int(const char *s, int64_t *ret_value)
{
	bool neg = s[0] == '-';
	const char *end;
	uint64_t n;
	int r;

	r = cfg_digits(s + neg, &n, &end);
	if (r < 0)
		return r;
	if (*end != '\0')
		return -EINVAL;
	if (n > (uint64_t)INT64_MAX)
		return -ERANGE;
	*ret_value = neg ? -(int64_t)n : (int64_t)n;
	return 0;
}

const char *
cfg_role_name(enum cfg_role role)
{
	if ((unsigned)role >= CFG_ROLE_COUNT)
		return "unknown";
	return cfg_role_names[role];
}

int
cfg_role_parse(const char *name, enum cfg_role *ret_role)
{
	for (int i = 0; i < CFG_ROLE_COUNT; i++) {
		if (strcmp(name, cfg_role_names[i]) == 0) {
			*ret_role = (enum cfg_role)i;
			return 0;
		}
	}
	return -EINVAL;
}
