/* aread_fields: a record line's top-level values (aread_query.h), read in
 * place when the line is in the writer's spelling and by jansson otherwise,
 * so that both readings agree on every line (tests/test_aread.c compares
 * them on mutated records). Pure: no I/O. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "aread_query.h"

#define AREAD_DEPTH_MAX 32 /* nesting read in place; deeper goes to jansson */

#define AREAD_KEYS_MAX 8

struct aread_scan {
	const unsigned char *p, *end;
	const char *const *keys;
	size_t n, klen[AREAD_KEYS_MAX];
	struct aread_val *vals;
};

static void
aread_ws(struct aread_scan *sc)
{
	while (sc->p < sc->end &&
	       (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
		sc->p++;
}

/* The length of one UTF-8 sequence at p (strict, as jansson checks it: no
 * overlong form, no surrogate, nothing past U+10FFFF), or 0. */
static size_t
aread_utf8(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], cp;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Whether 8 bytes are all plain ASCII for a string: no quote, backslash,
 * control byte or byte >= 0x80 (the bit tricks of "Bit Twiddling Hacks":
 * (x - 0x01..) & ~x & 0x80.. is nonzero when some byte is zero). */
static bool
aread_plain8(const unsigned char *p)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t x, q, b;

	memcpy(&x, p, 8);
	q = x ^ (ones * '"');
	b = x ^ (ones * '\\');
	return ((x & highs) | ((x - ones * 0x20) & ~x & highs) | ((q - ones) & ~q & highs) |
		((b - ones) & ~b & highs)) == 0;
}

/* A string without escapes: false for anything else (an escape, a control
 * byte, bad UTF-8, no closing quote), which jansson then reads. */
static bool
aread_string(struct aread_scan *sc, const char **ret, size_t *ret_len)
{
	const unsigned char *start;

	if (sc->p >= sc->end || *sc->p != '"')
		return false;
	start = ++sc->p;
	while (sc->end - sc->p >= 8 && aread_plain8(sc->p))
		sc->p += 8;
	while (sc->p < sc->end && *sc->p != '"') {
		size_t k;

		if (*sc->p < 0x80) { /* the common case, one byte at a time */
			if (*sc->p == '\\' || *sc->p < 0x20)
				return false;
			sc->p++;
			continue;
		}
		k = aread_utf8(sc->p, sc->end);
		if (k == 0)
			return false;
		sc->p += k;
	}
	if (sc->p >= sc->end)
		return false;
	*ret = (const char *)start;
	*ret_len = (size_t)(sc->p - start);
	sc->p++;
	return true;
}

/* An integer of at most 18 digits (it fits jansson's and ours); a fraction,
 * an exponent or a longer one goes to jansson. */
static bool
aread_int(struct aread_scan *sc, int64_t *ret)
{
	bool neg = false;
	int64_t v = 0;
	int digits = 0;

	if (sc->p < sc->end && *sc->p == '-') {
		neg = true;
		sc->p++;
	}
	if (sc->p < sc->end && *sc->p == '0') {
		sc->p++;
		digits = 1;
	} else {
		while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9' && digits <= 18) {
			if (digits < 18) /* a 19th digit only says "too long" */
				v = v * 10 + (*sc->p - '0');
			sc->p++;
			digits++;
		}
	}
	if (digits == 0 || digits > 18)
		return false;
	if (sc->p < sc->end &&
	    ((*sc->p >= '0' && *sc->p <= '9') || *sc->p == '.' || *sc->p == 'e' || *sc->p == 'E'))
		return false;
	*ret = neg ? -v : v;
	return true;
}

static bool
aread_literal(struct aread_scan *sc, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
		return false;
	sc->p += n;
	return true;
}

static bool aread_value(struct aread_scan *sc, int depth, struct aread_val *out);

/* '{' or '[' and what it holds, up to its closing bracket. */
static bool
aread_nested(struct aread_scan *sc, int depth)
{
	bool object = *sc->p == '{';
	char close = object ? '}' : ']';
	struct aread_val v;

	if (depth >= AREAD_DEPTH_MAX)
		return false;
	sc->p++;
	aread_ws(sc);
	if (sc->p < sc->end && *sc->p == close) {
		sc->p++;
		return true;
	}
	for (;;) {
		if (object) {
			const char *k;
			size_t kl;

			if (!aread_string(sc, &k, &kl))
				return false;
			aread_ws(sc);
			if (sc->p >= sc->end || *sc->p++ != ':')
				return false;
			aread_ws(sc);
		}
		if (!aread_value(sc, depth + 1, &v))
			return false;
		aread_ws(sc);
		if (sc->p >= sc->end)
			return false;
		if (*sc->p == close) {
			sc->p++;
			return true;
		}
		if (*sc->p++ != ',')
			return false;
		aread_ws(sc);
	}
}

static bool
aread_value(struct aread_scan *sc, int depth, struct aread_val *out)
{
	*out = (struct aread_val){ .type = AREAD_OTHER };
	if (sc->p >= sc->end)
		return false;
	switch (*sc->p) {
	case '"':
		out->type = AREAD_STRING;
		return aread_string(sc, &out->s, &out->len);
	case '{':
	case '[':
		return aread_nested(sc, depth);
	case 't':
		return aread_literal(sc, "true");
	case 'f':
		return aread_literal(sc, "false");
	case 'n':
		return aread_literal(sc, "null");
	default:
		out->type = AREAD_INT;
		return aread_int(sc, &out->i);
	}
}

/* The top-level object: true when read whole in place, with vals set. */
static bool
aread_scan_object(struct aread_scan *sc)
{
	aread_ws(sc);
	if (sc->p >= sc->end || *sc->p++ != '{')
		return false;
	aread_ws(sc);
	if (sc->p < sc->end && *sc->p == '}') {
		sc->p++;
	} else {
		for (;;) {
			const char *k;
			size_t kl;
			struct aread_val v;

			if (!aread_string(sc, &k, &kl))
				return false;
			aread_ws(sc);
			if (sc->p >= sc->end || *sc->p++ != ':')
				return false;
			aread_ws(sc);
			if (!aread_value(sc, 1, &v))
				return false;
			for (size_t i = 0; i < sc->n; i++)
				if (sc->klen[i] == kl && memcmp(sc->keys[i], k, kl) == 0)
					sc->vals[i] = v;
			aread_ws(sc);
			if (sc->p >= sc->end)
				return false;
			if (*sc->p == '}') {
				sc->p++;
				break;
			}
			if (*sc->p++ != ',')
				return false;
			aread_ws(sc);
		}
	}
	aread_ws(sc);
	return sc->p == sc->end;
}

/* jansson's reading, for lines not in the writer's spelling. */
static int
aread_fields_json(const char *line, size_t len, const char *const *keys, size_t n,
		  struct aread_val *vals, json_t **ret_hold)
{
	json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, NULL);

	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(j, keys[i]);

		if (v == NULL)
			vals[i] = (struct aread_val){ .type = AREAD_ABSENT };
		else if (json_is_string(v))
			vals[i] = (struct aread_val){ .type = AREAD_STRING,
						      .s = json_string_value(v),
						      .len = json_string_length(v) };
		else if (json_is_integer(v))
			vals[i] = (struct aread_val){ .type = AREAD_INT,
						      .i = (int64_t)json_integer_value(v) };
		else
			vals[i] = (struct aread_val){ .type = AREAD_OTHER };
	}
	*ret_hold = j;
	return 0;
}

int
aread_fields(const char *line, size_t len, const char *const *keys, size_t n,
	     struct aread_val *vals, json_t **ret_hold)
{
	struct aread_scan sc = { .p = (const unsigned char *)line,
				 .end = (const unsigned char *)line + len,
				 .keys = keys,
				 .n = n,
				 .vals = vals };

	*ret_hold = NULL;
	memset(vals, 0, n * sizeof(*vals));
	for (size_t i = 0; i < n && n <= AREAD_KEYS_MAX; i++)
		sc.klen[i] = strlen(keys[i]);
	if (n <= AREAD_KEYS_MAX && aread_scan_object(&sc))
		return 0;
	return aread_fields_json(line, len, keys, n, vals, ret_hold);
}
