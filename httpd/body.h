/* body: response bodies as lists of parts (file ranges, refcounted memory
 * buffers), built by the handlers and streamed by answer.c. A Range picks
 * bytes across the parts, so an export of hours is sent in constant memory
 * with its exact length known before the first byte. Loop thread, but for
 * the workers that read a body they own (xplan.c). */
#ifndef VIGIL_HTTPD_BODY_H
#define VIGIL_HTTPD_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTPD_ETAG_MAX 80 /* a strong ETag, quotes included */

struct xport;

/* A refcounted byte buffer; the loop thread alone touches the count. */
struct hbuf {
	unsigned refs;
	size_t len;
	uint64_t *account; /* when set, len is taken off *account at the last unref */
	unsigned char data[];
};

struct hbuf *hbuf_new(size_t len);
struct hbuf *hbuf_ref(struct hbuf *b);
void hbuf_unref(struct hbuf *b);

struct hpart {
	char *path; /* a file, or NULL: beneath dirfd (beneath.h) unless AT_FDCWD */
	int dirfd;
	struct hbuf *mem;  /* or bytes in memory */
	uint64_t off, len; /* the bytes the part sends */
	/* An export's segment, remapped when it is sent (xplan.c): by the
	 * export's generation gen (-1: sent as it is), from src_len bytes at
	 * off; len is then what the remap gives. */
	int gen;
	uint64_t src_len;
	bool release; /* mem was made for sending: let go once it is sent */
};

#define HTTPD_ETAG_MAX 80 /* a strong ETag, quotes included */

struct xport;

struct hbody {
	struct hpart *v;
	size_t n, cap;
	uint64_t total;
	struct xport *xp; /* an export's remaps (xplan.c), or NULL */
	bool has_sha256;  /* sha256 is the whole body's: Repr-Digest with a 200 */
	unsigned char sha256[32];
};

/* -ENOMEM. add_mem takes a reference of its own. A file's path is relative to
 * dirfd and opened beneath it when it is sent (AT_FDCWD: an absolute path). */
int body_add_file(struct hbody *b, int dirfd, const char *path, uint64_t off, uint64_t len);
int body_add_mem(struct hbody *b, struct hbuf *mem, uint64_t off, uint64_t len);
int body_add_copy(struct hbody *b, const void *data, size_t len);
void body_free(struct hbody *b);
/* The last part added becomes a segment remapped by generation gen of b->xp. */
void body_remap_last(struct hbody *b, int gen);

#endif
