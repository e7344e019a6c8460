/* range: the Range request header of RFC 9110 section 14 (bytes only), parsed
 * against a representation of a known size. Pure; unit-tested alone. */
#ifndef VIGIL_HTTPD_RANGE_H
#define VIGIL_HTTPD_RANGE_H

#include <stdint.h>

#define RANGE_MAX_SPECS 32 /* more ranges than this: the header is ignored */

enum range_result {
	RANGE_WHOLE = 0,     /* no header, a header to ignore (malformed, another unit,
	                  * several ranges): 200 with the whole representation */
	RANGE_PARTIAL,       /* one satisfiable range: 206 with *ret */
	RANGE_UNSATISFIABLE, /* no range overlaps the representation: 416 */
};

struct range {
	uint64_t first, last; /* inclusive, last < size */
};

/* hdr may be NULL (no Range header). Several ranges of which any is
 * satisfiable are answered whole (RFC 9110 lets a server ignore Range), so the
 * bytes are never wrong; none satisfiable is RANGE_UNSATISFIABLE. A range-spec
 * that breaks the grammar (first > last, a sign, garbage, an empty list) makes
 * the whole header invalid, which RFC 9110 says to ignore: RANGE_WHOLE. */
enum range_result range_parse(const char *hdr, uint64_t size, struct range *ret);

#endif
