/* bytes: see bytes.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"

int
bytes_append(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		uint8_t *q;

		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (q == NULL)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

void
bytes_reset(struct bytes *b, size_t keep)
{
	if (b->cap > keep)
		bytes_free(b);
	b->len = 0;
}

void
bytes_free(struct bytes *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
