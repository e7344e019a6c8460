/* sentinel_msg: reference-counted media blobs and the per-connection messages
 * built around them. An envelope is packed with MessagePack (common/env.h); each
 * blob becomes a hole in it that the writer fills from the shared bytes, so the
 * bytes of a segment are never copied per connection. In JSON mode the envelope
 * goes through env_msgpack_to_json() with a marker where each blob goes, and the
 * marker is replaced by the blob's base64, made once per blob. Runs in the lws
 * thread, except snt_blob_new() which the encoder thread calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "b64.h"
#include "env.h"
#include "mp.h"
#include "sentinel.h"

/* Bytes packed where a blob goes in JSON mode: 18 random bytes are 24 base64
 * characters that no name or token will contain by chance. */
#define SNT_MARKER_LEN 18

static uint8_t snt_marker[SNT_MARKER_LEN];
static char snt_marker_b64[B64_ENCODED_LEN(SNT_MARKER_LEN) + 1];

struct snt_blob *
snt_blob_new(const void *data, size_t len)
{
	struct snt_blob *b = malloc(sizeof(*b) + len);

	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->len = len;
	b->b64 = NULL;
	b->b64_len = 0;
	memcpy(b->data, data, len);
	return b;
}

struct snt_blob *
snt_blob_ref(struct snt_blob *b)
{
	b->refs++;
	return b;
}

void
snt_blob_unref(struct snt_blob *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	free(b->b64);
	free(b);
}

static int
snt_blob_b64(struct snt_blob *b)
{
	if (b->b64 != NULL)
		return 0;
	return b64_encode(b->data, b->len, &b->b64, &b->b64_len);
}

static void
snt_marker_init(void)
{
	char *s;
	size_t n;

	if (snt_marker_b64[0] != '\0')
		return;
	if (getrandom(snt_marker, sizeof(snt_marker), 0) != (ssize_t)sizeof(snt_marker)) {
		/* Not secret, only unlikely to occur in a name: the time will do. */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(snt_marker, &ts,
		       sizeof(ts) < sizeof(snt_marker) ? sizeof(ts) : sizeof(snt_marker));
	}
	if (b64_encode(snt_marker, sizeof(snt_marker), &s, &n) == 0) {
		memcpy(snt_marker_b64, s, n + 1);
		free(s);
	}
}

void
snt_mb_begin(struct snt_mb *mb, bool json, const char *type, uint32_t n)
{
	memset(mb, 0, sizeof(*mb));
	mb->json = json;
	snprintf(mb->type, sizeof(mb->type), "%s", type);
	msgpack_sbuffer_init(&mb->sb);
	msgpack_packer_init(&mb->pk, &mb->sb, msgpack_sbuffer_write);
	env_pack_header(&mb->pk, type, time(NULL));
	msgpack_pack_map(&mb->pk, n);
	if (json)
		snt_marker_init();
}

void
snt_mb_blob(struct snt_mb *mb, const char *key, struct snt_blob *b)
{
	mp_pack_str(&mb->pk, key);
	if (mb->n == mb->cap) {
		size_t cap = mb->cap ? mb->cap * 2 : 4;
		struct snt_blob **blobs = realloc(mb->blobs, cap * sizeof(*blobs));
		size_t *at = blobs ? realloc(mb->at, cap * sizeof(*at)) : NULL;

		if (blobs != NULL)
			mb->blobs = blobs;
		if (at == NULL) {
			mb->failed = true;
			msgpack_pack_nil(&mb->pk);
			return;
		}
		mb->at = at;
		mb->cap = cap;
	}
	if (mb->json) {
		msgpack_pack_bin(&mb->pk, SNT_MARKER_LEN);
		msgpack_pack_bin_body(&mb->pk, snt_marker, SNT_MARKER_LEN);
	} else {
		/* The header only: the writer sends the blob's bytes right after it. */
		msgpack_pack_bin(&mb->pk, b->len);
	}
	mb->blobs[mb->n] = snt_blob_ref(b);
	mb->at[mb->n++] = mb->sb.size;
}

static void
snt_mb_discard(struct snt_mb *mb)
{
	for (size_t i = 0; i < mb->n; i++)
		snt_blob_unref(mb->blobs[i]);
	free(mb->blobs);
	free(mb->at);
	msgpack_sbuffer_destroy(&mb->sb);
}

/* Splits text at each marker (in order, one per blob) into own and blob parts. */
static int
snt_mb_split_json(struct snt_mb *mb, struct snt_msg *m, char *text, size_t len)
{
	size_t mlen = strlen(snt_marker_b64), from = 0;

	m->own = (uint8_t *)text;
	for (size_t i = 0; i < mb->n; i++) {
		char *hit = memmem(text + from, len - from, snt_marker_b64, mlen);
		int r;

		if (hit == NULL)
			return -EBADMSG;
		r = snt_blob_b64(mb->blobs[i]);
		if (r < 0)
			return r;
		m->parts[m->n_parts++] =
			(struct snt_part){ (uint8_t *)text + from, (size_t)(hit - text) - from };
		m->parts[m->n_parts++] =
			(struct snt_part){ (uint8_t *)mb->blobs[i]->b64, mb->blobs[i]->b64_len };
		from = (size_t)(hit - text) + mlen;
	}
	m->parts[m->n_parts++] = (struct snt_part){ (uint8_t *)text + from, len - from };
	return 0;
}

struct snt_msg *
snt_mb_end(struct snt_mb *mb, enum snt_msg_kind kind)
{
	struct snt_msg *m = calloc(1, sizeof(*m));
	int r = -ENOMEM;

	if (m == NULL || mb->failed)
		goto fail;
	m->kind = kind;
	m->text = mb->json;
	m->duration_ms = -1;
	memcpy(m->type, mb->type, sizeof(m->type));
	m->parts = calloc(2 * mb->n + 1, sizeof(*m->parts));
	if (m->parts == NULL)
		goto fail;
	if (mb->json) {
		char *text;
		size_t len;

		r = env_msgpack_to_json(mb->sb.data, mb->sb.size, &text, &len);
		if (r < 0)
			goto fail;
		r = snt_mb_split_json(mb, m, text, len);
		if (r < 0)
			goto fail;
	} else {
		size_t from = 0;

		for (size_t i = 0; i < mb->n; i++) {
			m->parts[m->n_parts++] = (struct snt_part){ (uint8_t *)mb->sb.data + from,
								    mb->at[i] - from };
			m->parts[m->n_parts++] =
				(struct snt_part){ mb->blobs[i]->data, mb->blobs[i]->len };
			from = mb->at[i];
		}
		m->parts[m->n_parts++] =
			(struct snt_part){ (uint8_t *)mb->sb.data + from, mb->sb.size - from };
		/* The parts point into the sbuffer's memory, which the message keeps. */
		m->own = (uint8_t *)msgpack_sbuffer_release(&mb->sb);
	}
	for (size_t i = 0; i < m->n_parts; i++)
		m->total += m->parts[i].len;
	/* The blob references move into the message. */
	m->refs = mb->blobs;
	m->n_refs = mb->n;
	mb->blobs = NULL;
	mb->n = 0;
	snt_mb_discard(mb);
	return m;

fail:
	snt_mb_discard(mb);
	snt_msg_free(m);
	errno = -r;
	return NULL;
}

void
snt_msg_free(struct snt_msg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_refs; i++)
		snt_blob_unref(m->refs[i]);
	free(m->refs);
	free(m->parts);
	free(m->own);
	free(m);
}
