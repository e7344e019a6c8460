/* id: UUIDs through libuuid, which checks the canonical form itself; the
 * length is checked first so that a long string is not read to its end. */
#include <errno.h>
#include <string.h>

#include <uuid/uuid.h>

#include "id.h"

void
id_new(char out[ID_STR_LEN])
{
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

int
id_parse(const char *s, uint8_t out[16])
{
	uuid_t u;

	if (s == NULL || strnlen(s, ID_STR_LEN) != ID_STR_LEN - 1)
		return -EINVAL;
	if (uuid_parse_range(s, s + ID_STR_LEN - 1, u) < 0)
		return -EINVAL;
	memcpy(out, u, sizeof(u));
	return 0;
}

bool
id_valid(const char *s)
{
	uint8_t u[16];

	return id_parse(s, u) == 0;
}

void
id_format(const uint8_t in[16], char out[ID_STR_LEN])
{
	uuid_unparse_lower(in, out);
}

bool
id_is_nil(const uint8_t id[16])
{
	return uuid_is_null(id);
}
