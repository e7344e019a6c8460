/* xplan: the parts of an export that need more than its list of parts.
 *
 * Remaps. A segment enters an export through fmp4_remap (fmp4_edit.c): its
 * decode times moved back when the export starts later than its session, and
 * after a new init it names its own sample entry. The remap runs as the part
 * is sent (answer.c calls xport_render), so the archive's bytes stay as they
 * are and an export of hours streams in constant memory.
 *
 * Plans. Two things can only be known by reading the whole export: the
 * lengths of segments whose remap grows them (needed before the first byte:
 * Content-Length, Range) and the SHA-256 of the whole file (Repr-Digest,
 * manifest.json). A worker thread (work.h) reads the export once (about 1.3 GB/s of
 * SHA-256 here, plus the reads) and the loop keeps the result by the export's
 * ETag, which changes whenever any byte would; requests wait parked. Only the
 * worker reads the job's body while it runs, and only the loop thread touches
 * refcounts (the job's body is freed once it is back). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "beneath.h"
#include "httpd.h"
#include "log.h"
#include "proc.h"
#include "work.h"
#include "xplan.h"

#define XPLAN_CACHE    64
#define XPLAN_QUEUE    8              /* jobs waiting or running */
#define XPLAN_RETRY_MS 5000           /* a failed plan is made again after this */
#define XPLAN_CHUNK    (1u << 20)     /* bytes read at a time for the digest */
#define XPLAN_SEG_MAX  (256ull << 20) /* a segment larger than this is not remapped */

struct xport {
	size_t n;
	struct fmp4_init *init;
	struct fmp4_remap *remap;
};

enum xplan_state { XPLAN_FREE, XPLAN_PENDING, XPLAN_READY, XPLAN_FAILED };

struct xplan_entry {
	char etag[HTTPD_ETAG_MAX];
	char session[37];
	enum xplan_state state;
	uint64_t *len; /* of every part */
	size_t n;
	unsigned char sha256[32];
	int64_t done_ms, used;
};

struct xplan_job {
	struct work_job wj; /* first: the worker's view of it */
	int entry;
	char etag[HTTPD_ETAG_MAX];
	struct hbody body;
	uint64_t *len;
	unsigned char md[32];
	int err;
};

struct xplan {
	struct xplan_entry e[XPLAN_CACHE];
	int64_t clock;
	struct work *work; /* NULL when the thread did not start */
	unsigned jobs;
};

/* ---- remaps ------------------------------------------------------------- */

struct xport *
xport_new(size_t gens)
{
	struct xport *xp = calloc(1, sizeof(*xp));

	if (xp == NULL)
		return NULL;
	xp->n = gens;
	xp->init = calloc(gens ? gens : 1, sizeof(*xp->init));
	xp->remap = calloc(gens ? gens : 1, sizeof(*xp->remap));
	if (xp->init == NULL || xp->remap == NULL) {
		xport_free(xp);
		return NULL;
	}
	return xp;
}

void
xport_free(struct xport *xp)
{
	if (xp == NULL)
		return;
	free(xp->init);
	free(xp->remap);
	free(xp);
}

void
xport_set(struct xport *xp, size_t i, const struct fmp4_init *init, uint32_t sample_desc,
	  uint64_t rebase)
{
	xp->init[i] = *init;
	xp->remap[i] = (struct fmp4_remap){ .own = &xp->init[i],
					    .export = &xp->init[0],
					    .sample_desc = sample_desc,
					    .rebase = rebase };
}

bool
xport_same_length(const struct xport *xp, size_t i)
{
	const struct fmp4_init *a = &xp->init[i], *b = &xp->init[0];

	return xp->remap[i].sample_desc == 0 &&
	       a->default_sample_duration == b->default_sample_duration &&
	       a->default_sample_size == b->default_sample_size &&
	       a->default_sample_flags == b->default_sample_flags;
}

/* The part's source bytes: its memory, or its file read whole into *ret_own. */
static int
xport_source(const struct hpart *pt, const uint8_t **ret, uint8_t **ret_own)
{
	struct stat sb;
	uint8_t *buf;
	ssize_t n;
	int fd;

	*ret_own = NULL;
	if (pt->mem != NULL) {
		*ret = pt->mem->data + pt->off;
		return 0;
	}
	if (pt->src_len > XPLAN_SEG_MAX)
		return -EFBIG;
	fd = pt->dirfd == AT_FDCWD ? open(pt->path, O_RDONLY | O_CLOEXEC)
				   : beneath_open_file(pt->dirfd, pt->path, &sb);
	if (fd < 0)
		return -EIO;
	buf = malloc(pt->src_len ? pt->src_len : 1);
	n = buf != NULL ? pread(fd, buf, pt->src_len, (off_t)pt->off) : -1;
	close(fd);
	if (n != (ssize_t)pt->src_len) {
		free(buf);
		return -EIO;
	}
	*ret = buf;
	*ret_own = buf;
	return 0;
}

/* The part remapped, into a buffer of its own length. */
static int
xport_remap(const struct xport *xp, const struct hpart *pt, struct hbuf **ret)
{
	const uint8_t *src;
	uint8_t *own;
	struct hbuf *b = NULL;
	ssize_t n;
	int r;

	if (xp == NULL || pt->gen < 0 || (size_t)pt->gen >= xp->n)
		return -EIO;
	r = xport_source(pt, &src, &own);
	if (r < 0)
		return r;
	n = fmp4_remap(src, pt->src_len, &xp->remap[pt->gen], NULL, 0);
	if (n >= 0)
		b = hbuf_new((size_t)n);
	if (b != NULL)
		n = fmp4_remap(src, pt->src_len, &xp->remap[pt->gen], b->data, b->len);
	free(own);
	if (b == NULL || n < 0) {
		log_warn(0, "%s could not be remapped for the export",
			 pt->path != NULL ? pt->path : "a segment from memory");
		hbuf_unref(b); /* this thread's own */
		return -EIO;
	}
	*ret = b;
	return 0;
}

int
xport_render(const struct xport *xp, const struct hpart *pt, struct hbuf **ret)
{
	struct hbuf *b;
	int r = xport_remap(xp, pt, &b);

	if (r < 0)
		return r;
	if (b->len != pt->len) {
		hbuf_unref(b);
		return -EIO; /* the plan was for other bytes */
	}
	*ret = b;
	return 0;
}

/* ---- the worker --------------------------------------------------------- */

/* Adds a part that is sent as it is to the digest, a chunk at a time. */
static int
xplan_hash_plain(EVP_MD_CTX *md, const struct hpart *pt, uint8_t *chunk)
{
	struct stat sb;
	uint64_t done = 0;
	int fd, r = 0;

	if (pt->mem != NULL)
		return EVP_DigestUpdate(md, pt->mem->data + pt->off, pt->len) == 1 ? 0 : -ENOMEM;
	fd = pt->dirfd == AT_FDCWD ? open(pt->path, O_RDONLY | O_CLOEXEC)
				   : beneath_open_file(pt->dirfd, pt->path, &sb);
	if (fd < 0)
		return -EIO;
	while (done < pt->len && r == 0) {
		size_t want = pt->len - done < XPLAN_CHUNK ? (size_t)(pt->len - done) : XPLAN_CHUNK;
		ssize_t n = pread(fd, chunk, want, (off_t)(pt->off + done));

		if (n <= 0)
			r = -EIO;
		else if (EVP_DigestUpdate(md, chunk, (size_t)n) != 1)
			r = -ENOMEM;
		else
			done += (uint64_t)n;
	}
	close(fd);
	return r;
}

/* Every part's length and the digest of them all, in order. */
static int
xplan_run(struct xplan_job *j)
{
	struct hbody *b = &j->body;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *chunk = malloc(XPLAN_CHUNK);
	unsigned dlen = 0;
	int r = md != NULL && chunk != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1
			? 0
			: -ENOMEM;

	for (size_t i = 0; i < b->n && r == 0; i++) {
		struct hpart *pt = &b->v[i];
		struct hbuf *out;

		if (pt->gen < 0) {
			j->len[i] = pt->len;
			r = xplan_hash_plain(md, pt, chunk);
			continue;
		}
		r = xport_remap(b->xp, pt, &out);
		if (r < 0)
			break;
		j->len[i] = out->len;
		if (EVP_DigestUpdate(md, out->data, out->len) != 1)
			r = -ENOMEM;
		hbuf_unref(out); /* made here, never shared */
	}
	if (r == 0 && (EVP_DigestFinal_ex(md, j->md, &dlen) != 1 || dlen != 32))
		r = -ENOMEM;
	EVP_MD_CTX_free(md);
	free(chunk);
	return r;
}

/* The worker thread: the job's body is read whole. */
static void
xplan_job_run(struct work_job *wj)
{
	struct xplan_job *j = (struct xplan_job *)wj;

	j->err = xplan_run(j);
}

static void
xplan_job_free(struct xplan_job *j)
{
	if (j == NULL)
		return;
	body_free(&j->body);
	free(j->len);
	free(j);
}

static void
xplan_job_free_wj(struct work_job *wj)
{
	xplan_job_free((struct xplan_job *)wj);
}

void
xplan_init(struct httpd *h)
{
	struct xplan *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return;
	x->work = work_new(h);
	if (x->work == NULL)
		log_error(-errno, "export worker not started: exports that need it answer 503");
	h->xplan = x;
}

static void
xplan_entry_clear(struct xplan_entry *e)
{
	free(e->len);
	memset(e, 0, sizeof(*e));
}

void
xplan_free(struct httpd *h)
{
	struct xplan *x = h->xplan;

	if (x == NULL)
		return;
	work_free(x->work, xplan_job_free_wj);
	for (int i = 0; i < XPLAN_CACHE; i++)
		xplan_entry_clear(&x->e[i]);
	free(x);
	h->xplan = NULL;
}

void
xplan_service(struct httpd *h)
{
	struct xplan *x = h->xplan;
	struct work_job *done;

	if (x == NULL || x->work == NULL || (done = work_done(x->work)) == NULL)
		return;
	while (done != NULL) {
		struct xplan_job *j = (struct xplan_job *)done;
		struct xplan_entry *e = &x->e[j->entry];

		done = done->next;
		x->jobs--;
		/* A forgotten session's entry was cleared (and maybe taken again)
		 * meanwhile: then the result goes. */
		if (e->state == XPLAN_PENDING && strcmp(e->etag, j->etag) == 0) {
			e->done_ms = proc_mono_ms();
			if (j->err == 0) {
				e->state = XPLAN_READY;
				e->len = j->len;
				e->n = j->body.n;
				j->len = NULL;
				memcpy(e->sha256, j->md, sizeof(e->sha256));
			} else {
				e->state = XPLAN_FAILED;
				log_warn(j->err, "export %s of session %s could not be read whole",
					 e->etag, e->session);
			}
		}
		xplan_job_free(j);
	}
	hs_unpark(h, HS_PARK_EXPORT, -1);
}

/* ---- the cache ---------------------------------------------------------- */

static struct xplan_entry *
xplan_find(struct xplan *x, const char *etag, int *ret_i)
{
	int lru = -1;

	for (int i = 0; i < XPLAN_CACHE; i++) {
		struct xplan_entry *e = &x->e[i];

		if (e->state != XPLAN_FREE && strcmp(e->etag, etag) == 0) {
			*ret_i = i;
			return e;
		}
		if (e->state != XPLAN_PENDING && (lru < 0 || e->used < x->e[lru].used))
			lru = i;
	}
	*ret_i = lru;
	return NULL;
}

static int
xplan_submit(struct httpd *h, int i, const char *etag, const char *session, struct hbody *b)
{
	struct xplan *x = h->xplan;
	struct xplan_entry *e = &x->e[i];
	struct xplan_job *j;

	if (x->work == NULL || x->jobs >= XPLAN_QUEUE)
		return -EAGAIN;
	j = calloc(1, sizeof(*j));
	if (j == NULL || (j->len = calloc(b->n ? b->n : 1, sizeof(*j->len))) == NULL) {
		free(j);
		return -EAGAIN;
	}
	xplan_entry_clear(e);
	snprintf(e->etag, sizeof(e->etag), "%s", etag);
	snprintf(e->session, sizeof(e->session), "%s", session);
	e->state = XPLAN_PENDING;
	e->used = ++x->clock;
	j->entry = i;
	snprintf(j->etag, sizeof(j->etag), "%s", etag);
	j->body = *b;
	memset(b, 0, sizeof(*b));
	j->wj.run = xplan_job_run;
	x->jobs++;
	work_submit(x->work, &j->wj);
	return 0;
}

int
xplan_apply(struct httpd *h, const char *etag, const char *session, struct hbody *b, bool need)
{
	struct xplan *x = h->xplan;
	struct xplan_entry *e;
	int i;

	if (x == NULL)
		return need ? -EAGAIN : 1;
	e = xplan_find(x, etag, &i);
	if (e != NULL && e->state == XPLAN_FAILED && proc_mono_ms() - e->done_ms > XPLAN_RETRY_MS)
		e = NULL; /* made again */
	if (e != NULL) {
		e->used = ++x->clock;
		if (e->state == XPLAN_PENDING)
			return 0;
		if (e->state == XPLAN_FAILED || e->n != b->n)
			return -EAGAIN;
		b->total = 0;
		for (size_t k = 0; k < b->n; k++) {
			b->v[k].len = e->len[k];
			b->total += e->len[k];
		}
		memcpy(b->sha256, e->sha256, sizeof(b->sha256));
		b->has_sha256 = true;
		return 1;
	}
	if (!need)
		return 1;
	if (i < 0)
		return -EAGAIN; /* every entry has a job running */
	return xplan_submit(h, i, etag, session, b) < 0 ? -EAGAIN : 0;
}

void
xplan_forget(struct httpd *h, const char *session)
{
	struct xplan *x = h->xplan;

	if (x == NULL)
		return;
	for (int i = 0; i < XPLAN_CACHE; i++) {
		if (x->e[i].state != XPLAN_FREE && strcmp(x->e[i].session, session) == 0)
			xplan_entry_clear(&x->e[i]);
	}
}
