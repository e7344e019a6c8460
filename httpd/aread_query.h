/* aread_query: the pure parts of reading the audit log (docs/audit.md, the
 * format archive writes): GET /api/audit's query and which day files a time
 * range reads (aread_query.c), the few top-level fields of a record line that
 * its filters and the chain check need (aread_fields.c). No I/O; unit-tested
 * alone (tests/test_aread.c).
 *
 * A record line is read in place when it is in the writer's own spelling
 * (compact JSON, strings without escapes, integers, valid UTF-8): then it is
 * certainly a JSON object and its values are the bytes between the quotes.
 * Anything else goes to jansson, which has the last word on what is JSON:
 * the two give the same answer for every line. */
#ifndef VIGIL_HTTPD_AREAD_QUERY_H
#define VIGIL_HTTPD_AREAD_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define AREAD_ACTOR_MAX   256 /* bytes of actor=, decoded */
#define AREAD_ACTIONS_MAX 16  /* names in one action= list */
#define AREAD_ACTION_MAX  64  /* bytes of one action name */
#define AREAD_DAY_MS      86400000LL
/* A record lies in the file of its time's UTC day or of the day before or
 * after (it is written when it is made, and time may sit a few ms, or for a
 * view that ends past midnight, a little more, across midnight). */
#define AREAD_DAY_MARGIN 1
#define AREAD_NAME_LEN   22 /* "audit-YYYY-MM-DD.jsonl" */

struct aread_query {
	bool has_from, has_to, has_sentinel, has_actor;
	int64_t from, to;  /* unix ms, both included */
	char sentinel[37]; /* lower case */
	char actor[AREAD_ACTOR_MAX + 1];
	size_t n_actions; /* 0: any action */
	char actions[AREAD_ACTIONS_MAX][AREAD_ACTION_MAX + 1];
	int64_t limit; /* records at most; 0: every one */
};

/* Parses a raw query (what follows '?', still percent-encoded; NULL or "" for
 * none). Known names: from, to, sentinelId, actor, action, limit; others (the
 * token among them) are left alone, as every route of httpd does. 0, or
 * -EINVAL with a message that names the parameter in err. */
int aread_query_parse(const char *query, struct aread_query *q, char *err, size_t err_size);
/* Whether the query filters at all (else every record passes). */
bool aread_query_filters(const struct aread_query *q);
/* Whether a record line (without its '\n') passes the filters. A line that is
 * not a JSON object passes only a query with no filter. */
bool aread_match(const struct aread_query *q, const char *line, size_t len);

/* A value at the top level of a record. */
enum aread_type {
	AREAD_ABSENT = 0,
	AREAD_STRING,
	AREAD_INT,
	AREAD_OTHER, /* a real, true, false, null, an object or an array */
};

struct aread_val {
	enum aread_type type;
	const char *s; /* AREAD_STRING: the text (unescaped, may hold NUL), len bytes */
	size_t len;
	int64_t i; /* AREAD_INT */
};

/* The values of keys[0..n) at the top level of line (the last one when a key
 * repeats, as jansson and Python keep it). 0 when the line is a JSON object,
 * -EINVAL when it is not. *ret_hold is what the values point into besides the
 * line (a parse by jansson), to json_decref after use; NULL when nothing. */
int aread_fields(const char *line, size_t len, const char *const *keys, size_t n,
		 struct aread_val *vals, json_t **ret_hold);

/* The day of a day file's name "audit-YYYY-MM-DD.jsonl" (days since
 * 1970-01-01), or -1 for any other name (a date that does not exist too). */
int64_t aread_day_of_name(const char *name);
/* The name of a day's file, into buf (at least AREAD_NAME_LEN + 1 bytes). */
void aread_day_name(int64_t day, char *buf, size_t size);
/* Whether the file of that day can hold records of the query's time range. */
bool aread_day_wanted(const struct aread_query *q, int64_t day);

#endif
