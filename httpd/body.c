/* body: response bodies as lists of parts (file ranges, refcounted memory
 * buffers), built by the handlers and streamed by answer.c. Loop thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "xplan.h"

struct hbuf *
hbuf_new(size_t len)
{
	struct hbuf *b = malloc(sizeof(*b) + (len ? len : 1));

	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->len = len;
	b->account = NULL;
	return b;
}

struct hbuf *
hbuf_ref(struct hbuf *b)
{
	b->refs++;
	return b;
}

void
hbuf_unref(struct hbuf *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	if (b->account != NULL)
		*b->account -= b->len;
	free(b);
}

static int
body_grow(struct hbody *b)
{
	struct hpart *v;
	size_t cap;

	if (b->n < b->cap)
		return 0;
	cap = b->cap ? b->cap * 2 : 8;
	v = realloc(b->v, cap * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	b->v = v;
	b->cap = cap;
	return 0;
}

int
body_add_file(struct hbody *b, int dirfd, const char *path, uint64_t off, uint64_t len)
{
	char *p;

	if (body_grow(b) < 0 || (p = strdup(path)) == NULL)
		return -ENOMEM;
	b->v[b->n++] = (struct hpart){
		.path = p, .dirfd = dirfd, .off = off, .len = len, .gen = -1, .src_len = len
	};
	b->total += len;
	return 0;
}

int
body_add_mem(struct hbody *b, struct hbuf *mem, uint64_t off, uint64_t len)
{
	if (body_grow(b) < 0)
		return -ENOMEM;
	b->v[b->n++] = (struct hpart){
		.mem = hbuf_ref(mem), .off = off, .len = len, .gen = -1, .src_len = len
	};
	b->total += len;
	return 0;
}

int
body_add_copy(struct hbody *b, const void *data, size_t len)
{
	struct hbuf *m = hbuf_new(len);
	int r;

	if (m == NULL)
		return -ENOMEM;
	memcpy(m->data, data, len);
	r = body_add_mem(b, m, 0, len);
	hbuf_unref(m);
	return r;
}

void
body_free(struct hbody *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->v[i].path);
		hbuf_unref(b->v[i].mem);
	}
	free(b->v);
	xport_free(b->xp);
	memset(b, 0, sizeof(*b));
}

void
body_remap_last(struct hbody *b, int gen)
{
	if (b->n > 0)
		b->v[b->n - 1].gen = gen;
}
