/* range: RFC 9110 byte ranges. Grammar (section 14.1.1):
 *   ranges-specifier = range-unit "=" range-set   (unit "bytes", case-insensitive)
 *   range-set        = 1#range-spec               (OWS "," OWS between)
 *   range-spec       = first-pos "-" [ last-pos ] / "-" suffix-length */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

#include "range.h"

/* Reads 1*DIGIT; false on none or on overflow past 2^63. */
static bool
range_digits(const char **pp, uint64_t *ret)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*p))
		return false;
	while (isdigit((unsigned char)*p)) {
		if (v > (UINT64_C(1) << 62))
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
	}
	*pp = p;
	*ret = v;
	return true;
}

static void
range_ows(const char **pp)
{
	while (**pp == ' ' || **pp == '\t')
		(*pp)++;
}

enum range_result
range_parse(const char *hdr, uint64_t size, struct range *ret)
{
	const char *p = hdr;
	struct range one = { 0, 0 };
	unsigned specs = 0, satisfiable = 0;

	if (hdr == NULL)
		return RANGE_WHOLE;
	range_ows(&p);
	if (strncasecmp(p, "bytes", 5) != 0)
		return RANGE_WHOLE;
	p += 5;
	range_ows(&p);
	if (*p++ != '=')
		return RANGE_WHOLE;
	for (;;) {
		uint64_t first, last;
		bool suffix = false, open = false;

		range_ows(&p);
		if (*p == ',') { /* empty list elements are allowed by the # rule */
			p++;
			continue;
		}
		if (*p == '\0')
			break;
		if (++specs > RANGE_MAX_SPECS)
			return RANGE_WHOLE;
		if (*p == '-') {
			p++;
			suffix = true;
			if (!range_digits(&p, &last))
				return RANGE_WHOLE;
		} else {
			if (!range_digits(&p, &first) || *p++ != '-')
				return RANGE_WHOLE;
			if (!range_digits(&p, &last))
				open = true;
			else if (last < first)
				return RANGE_WHOLE;
		}
		range_ows(&p);
		if (*p != ',' && *p != '\0')
			return RANGE_WHOLE;
		/* Satisfiable: a suffix of non-zero length, or a first-pos inside the
		 * representation (section 14.1.1). */
		if (suffix) {
			if (last > 0 && size > 0) {
				satisfiable++;
				one.first = last >= size ? 0 : size - last;
				one.last = size - 1;
			}
		} else if (first < size) {
			satisfiable++;
			one.first = first;
			one.last = open || last >= size ? size - 1 : last;
		}
	}
	if (specs == 0)
		return RANGE_WHOLE;
	if (satisfiable == 0)
		return RANGE_UNSATISFIABLE;
	if (specs > 1)
		return RANGE_WHOLE;
	*ret = one;
	return RANGE_PARTIAL;
}
