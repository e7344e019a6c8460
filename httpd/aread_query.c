/* aread_query: GET /api/audit's query, whether a record passes it, and the
 * day files of a time range (aread_query.h; a record's fields are read by
 * aread_fields.c). Pure: no I/O. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aread_query.h"
#include "id.h"
#include "route.h"

#define AREAD_ARG_MAX 8200 /* a decoded value always fits: a target is at most 8 KiB */

/* ---- the query ---------------------------------------------------------- */

enum aread_arg { ARG_FROM, ARG_TO, ARG_SENTINEL, ARG_ACTOR, ARG_ACTION, ARG_LIMIT, ARG_N };

static const char *const aread_arg_names[ARG_N] = {
	"from", "to", "sentinelId", "actor", "action", "limit",
};

static int aread_fail(char *err, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
aread_fail(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int
aread_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into buf: -EINVAL for a '%' without two hex digits
 * or a decoded control byte (NUL among them), -ENAMETOOLONG. '+' stays '+'
 * (as libcurl decodes every other route's arguments). */
static int
aread_decode(const char *s, size_t n, char *buf, size_t size, size_t *ret_len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi = i + 2 < n ? aread_hex(s[i + 1]) : -1;
			int lo = i + 2 < n ? aread_hex(s[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return -EINVAL;
		if (o + 1 >= size)
			return -ENAMETOOLONG;
		buf[o++] = (char)c;
	}
	buf[o] = '\0';
	*ret_len = o;
	return 0;
}

static bool
aread_action_char(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

static int
aread_actions(struct aread_query *q, const char *v, char *err, size_t size)
{
	const char *p = v;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);

		if (q->n_actions == AREAD_ACTIONS_MAX)
			return aread_fail(err, size, "action lists more than %d names",
					  AREAD_ACTIONS_MAX);
		if (n == 0 || n > AREAD_ACTION_MAX)
			return aread_fail(err, size,
					  "action must be a comma-separated list of action names "
					  "of 1 to %d bytes",
					  AREAD_ACTION_MAX);
		for (size_t i = 0; i < n; i++)
			if (!aread_action_char(p[i]))
				return aread_fail(err, size,
						  "action must be action names (letters, digits, "
						  "'.', '_', '-') separated by commas");
		memcpy(q->actions[q->n_actions], p, n);
		q->actions[q->n_actions++][n] = '\0';
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

/* One known argument's decoded value into q. */
static int
aread_take(struct aread_query *q, enum aread_arg a, const char *v, size_t len, char *err,
	   size_t size)
{
	const char *name = aread_arg_names[a];

	switch (a) {
	case ARG_FROM:
	case ARG_TO:
		if (route_parse_int(v, a == ARG_FROM ? &q->from : &q->to) < 0)
			return aread_fail(err, size,
					  "%s must be unix milliseconds (a non-negative integer)",
					  name);
		*(a == ARG_FROM ? &q->has_from : &q->has_to) = true;
		return 0;
	case ARG_SENTINEL:
		if (!id_valid(v))
			return aread_fail(err, size, "sentinelId is not a UUID");
		for (int i = 0; i < 36; i++)
			q->sentinel[i] = (char)tolower((unsigned char)v[i]);
		q->sentinel[36] = '\0';
		q->has_sentinel = true;
		return 0;
	case ARG_ACTOR:
		if (len > AREAD_ACTOR_MAX)
			return aread_fail(err, size, "actor is over %d bytes", AREAD_ACTOR_MAX);
		memcpy(q->actor, v, len + 1);
		q->has_actor = true;
		return 0;
	case ARG_ACTION:
		return aread_actions(q, v, err, size);
	case ARG_LIMIT:
		if (route_parse_int(v, &q->limit) < 0 || q->limit < 1)
			return aread_fail(err, size, "limit must be a positive integer");
		return 0;
	case ARG_N:
		break;
	}
	return -EINVAL;
}

int
aread_query_parse(const char *query, struct aread_query *q, char *err, size_t err_size)
{
	char buf[AREAD_ARG_MAX];
	bool seen[ARG_N] = { false };
	const char *p = query != NULL ? query : "";

	memset(q, 0, sizeof(*q));
	while (*p != '\0') {
		const char *amp = strchr(p, '&');
		const char *stop = amp != NULL ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		size_t nl = (size_t)((eq != NULL ? eq : stop) - p);
		int a = -1, r;
		size_t len;

		for (int i = 0; i < ARG_N; i++)
			if (strlen(aread_arg_names[i]) == nl &&
			    memcmp(p, aread_arg_names[i], nl) == 0)
				a = i;
		if (a >= 0) {
			const char *name = aread_arg_names[a];

			if (seen[a])
				return aread_fail(err, err_size,
						  "%s is given twice (action takes one "
						  "comma-separated list)",
						  name);
			seen[a] = true;
			if (eq == NULL || eq + 1 == stop)
				return aread_fail(err, err_size, "%s is empty", name);
			r = aread_decode(eq + 1, (size_t)(stop - eq - 1), buf, sizeof(buf), &len);
			if (r == -ENAMETOOLONG)
				return aread_fail(err, err_size, "%s is too long", name);
			if (r < 0)
				return aread_fail(err, err_size,
						  "%s has a bad percent-encoding or a control byte",
						  name);
			r = aread_take(q, (enum aread_arg)a, buf, len, err, err_size);
			if (r < 0)
				return r;
		}
		p = amp != NULL ? amp + 1 : stop;
	}
	if (q->has_from && q->has_to && q->from > q->to)
		return aread_fail(err, err_size, "from is after to");
	return 0;
}

bool
aread_query_filters(const struct aread_query *q)
{
	return q->has_from || q->has_to || q->has_sentinel || q->has_actor || q->n_actions > 0;
}

static bool
aread_str_is(const struct aread_val *v, const char *s, bool nocase)
{
	size_t n = strlen(s);

	if (v->type != AREAD_STRING || v->len != n)
		return false;
	return nocase ? strncasecmp(v->s, s, n) == 0 : memcmp(v->s, s, n) == 0;
}

bool
aread_match(const struct aread_query *q, const char *line, size_t len)
{
	static const char *const keys[4] = { "time", "sentinelId", "actor", "action" };
	struct aread_val v[4];
	json_t *hold;
	bool ok;

	if (!aread_query_filters(q))
		return true;
	if (aread_fields(line, len, keys, 4, v, &hold) < 0)
		return false;
	ok = (!q->has_from || (v[0].type == AREAD_INT && v[0].i >= q->from)) &&
	     (!q->has_to || (v[0].type == AREAD_INT && v[0].i <= q->to)) &&
	     (!q->has_sentinel || aread_str_is(&v[1], q->sentinel, true)) &&
	     (!q->has_actor || aread_str_is(&v[2], q->actor, false));
	if (ok && q->n_actions > 0) {
		ok = false;
		for (size_t i = 0; i < q->n_actions && !ok; i++)
			ok = aread_str_is(&v[3], q->actions[i], false);
	}
	json_decref(hold);
	return ok;
}

/* ---- day files ---------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t
aread_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void
aread_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int
aread_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int64_t
aread_day_of_name(const char *name)
{
	static const unsigned char mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d;

	if (strlen(name) != AREAD_NAME_LEN || strncmp(name, "audit-", 6) != 0 || name[10] != '-' ||
	    name[13] != '-' || strcmp(name + 16, ".jsonl") != 0)
		return -1;
	y = aread_digits(name + 6, 4);
	m = aread_digits(name + 11, 2);
	d = aread_digits(name + 14, 2);
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -1;
	return aread_days_from_civil(y, (unsigned)m, (unsigned)d);
}

void
aread_day_name(int64_t day, char *buf, size_t size)
{
	int64_t y;
	unsigned m, d;

	aread_civil_from_days(day, &y, &m, &d);
	snprintf(buf, size, "audit-%04lld-%02u-%02u.jsonl", (long long)y, m, d);
}

bool
aread_day_wanted(const struct aread_query *q, int64_t day)
{
	if (q->has_from && day < q->from / AREAD_DAY_MS - AREAD_DAY_MARGIN)
		return false;
	if (q->has_to && day > q->to / AREAD_DAY_MS + AREAD_DAY_MARGIN)
		return false;
	return true;
}
