/* layout: the archive's format on disk (see layout.h): its names, the index
 * line, session.json and sentinel.json, .deleted-sessions. No state; the
 * texts are jansson's, compact and in the order written here, which is the
 * order on disk. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "layout.h"

#define LAYOUT_JSON_MAX (64u << 10) /* a session.json or sentinel.json is far smaller */

void
layout_seg_name(int64_t sequence, char *buf, size_t size)
{
	snprintf(buf, size, "%06" PRId64 ".m4s", sequence);
}

void
layout_init_name(uint32_t gen, char *buf, size_t size)
{
	if (gen == 0)
		snprintf(buf, size, "init.mp4");
	else
		snprintf(buf, size, "init-%" PRIu32 ".mp4", gen);
}

static bool
layout_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

bool
layout_seg_file(const char *name, int64_t *ret_sequence)
{
	size_t len = strlen(name);

	/* Six digits at least (%06lld), at most what an int64 holds. */
	if (len < 10 || len > 22 || strcmp(name + len - 4, ".m4s") != 0 ||
	    !layout_digits(name, len - 4))
		return false;
	if (ret_sequence != NULL)
		*ret_sequence = strtoll(name, NULL, 10);
	return true;
}

static bool
layout_init_file(const char *name, size_t len)
{
	if (strcmp(name, "init.mp4") == 0)
		return true;
	return len > 9 && strncmp(name, "init-", 5) == 0 && strcmp(name + len - 4, ".mp4") == 0 &&
	       layout_digits(name + 5, len - 9);
}

void
layout_thumb_name(uint32_t every_s, uint32_t width, int64_t n, char *buf, size_t size)
{
	snprintf(buf, size, "thumb-%" PRIu32 "s-%" PRIu32 "-%06" PRId64 ".jpg", every_s, width, n);
}

/* "thumb-" digits "s-" digits "-" digits ".jpg": what layout_thumb_name makes. */
bool
layout_thumb_file(const char *name)
{
	const char *p = name, *q;
	size_t len = strlen(name);

	if (len > 64 || strncmp(p, "thumb-", 6) != 0 || strcmp(name + len - 4, ".jpg") != 0)
		return false;
	p += 6;
	q = strchr(p, 's');
	if (q == NULL || !layout_digits(p, (size_t)(q - p)) || q[1] != '-')
		return false;
	p = q + 2;
	q = strchr(p, '-');
	if (q == NULL || !layout_digits(p, (size_t)(q - p)))
		return false;
	p = q + 1;
	return layout_digits(p, (size_t)(name + len - 4 - p));
}

bool
layout_name(const char *name)
{
	size_t len = strlen(name);

	if (len > 4 && strcmp(name + len - 4, LAYOUT_TMP) == 0) {
		char base[256];

		if (len - 4 >= sizeof(base))
			return false;
		memcpy(base, name, len - 4);
		base[len - 4] = '\0';
		return layout_name(base);
	}
	return strcmp(name, LAYOUT_INDEX) == 0 || strcmp(name, LAYOUT_SESSION) == 0 ||
	       strcmp(name, LAYOUT_SENTINEL) == 0 || strcmp(name, LAYOUT_MARKS) == 0 ||
	       layout_seg_file(name, NULL) || layout_init_file(name, len) ||
	       layout_thumb_file(name);
}

bool
layout_id_name(const char *name, uint8_t ret[16])
{
	uint8_t id[16] = { 0 };
	int k = 0;

	/* By hand, not id_parse: httpd checks every name under data_dir on each
	 * listing, and libuuid takes either case (and strtoull per group). */
	for (int i = 0; i < ID_STR_LEN - 1; i++) {
		char c = name[i];
		int v;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
			continue;
		}
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return false; /* also the NUL of a shorter name */
		id[k / 2] |= (uint8_t)(k % 2 == 0 ? v << 4 : v);
		k++;
	}
	if (name[ID_STR_LEN - 1] != '\0')
		return false;
	if (ret != NULL)
		memcpy(ret, id, 16);
	return true;
}

int
layout_sha256_hex(const void *data, size_t len, char out[LAYOUT_SHA_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int r = 0;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		n = 0; /* out stays a recognisably wrong digest */
		r = -EIO;
	}
	memset(out, '0', LAYOUT_SHA_HEX - 1);
	for (unsigned int i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[LAYOUT_SHA_HEX - 1] = '\0';
	return r;
}

int
layout_entry_format(const struct layout_entry *e, char *buf, size_t size)
{
	json_t *o;
	size_t n;
	int r;

	o = json_pack("{s:I, s:I, s:I, s:I, s:b, s:I, s:s}", "sequence", (json_int_t)e->sequence,
		      "startTime", (json_int_t)e->start_ms, "duration", (json_int_t)e->duration_ms,
		      "bytes", (json_int_t)e->bytes, "keyframe", e->keyframe, "init",
		      (json_int_t)e->init, "sha256", e->sha256);
	if (o == NULL)
		return -ENOMEM;
	n = json_dumpb(o, buf, size, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (n == 0 || n + 1 >= size) {
		r = -ENOBUFS;
		goto out;
	}
	buf[n++] = '\n';
	buf[n] = '\0';
	r = (int)n;
out:
	json_decref(o);
	return r;
}

static bool
layout_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/* The ranges and types both readings below share. */
static int
layout_entry_check(json_int_t seq, json_int_t start, json_int_t dur, json_int_t bytes, int kf,
		   json_int_t init, const char *sha, struct layout_entry *ret)
{
	struct layout_entry e = { 0 };

	if (seq < 0 || dur < 0 || dur > UINT32_MAX || bytes < 0 || init < 0 || init > UINT32_MAX ||
	    !layout_hex64(sha))
		return -EINVAL;
	e.sequence = seq;
	e.start_ms = start;
	e.duration_ms = (uint32_t)dur;
	e.bytes = (uint64_t)bytes;
	e.keyframe = kf != 0;
	e.init = (uint32_t)init;
	memcpy(e.sha256, sha, LAYOUT_SHA_HEX);
	*ret = e;
	return 0;
}

int
layout_entry_parse_json(const char *line, size_t len, struct layout_entry *ret)
{
	json_int_t seq, start, dur, bytes, init;
	const char *sha;
	json_t *o;
	int kf, r = -EINVAL;

	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (o == NULL)
		return -EINVAL;
	if (json_unpack(o, "{s:I, s:I, s:I, s:I, s:b, s:I, s:s}", "sequence", &seq, "startTime",
			&start, "duration", &dur, "bytes", &bytes, "keyframe", &kf, "init", &init,
			"sha256", &sha) == 0)
		r = layout_entry_check(seq, start, dur, bytes, kf, init, sha, ret);
	json_decref(o);
	return r;
}

static const char *
layout_lit(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	return p != NULL && (size_t)(end - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* An integer as JSON spells it and jansson keeps it: an optional '-' (when
 * sign), no leading zero, no "-0"; at most 18 digits, so it fits (longer
 * ones are left to jansson). */
static const char *
layout_int_lit(const char *p, const char *end, bool sign, json_int_t *ret)
{
	const char *digits;
	uint64_t v = 0; /* 19 digits fit, to see that there were more than 18 */
	bool neg = false;

	if (p == NULL)
		return NULL;
	if (sign && p < end && *p == '-') {
		neg = true;
		p++;
	}
	digits = p;
	while (p < end && *p >= '0' && *p <= '9' && p - digits < 19)
		v = v * 10 + (uint64_t)(*p++ - '0');
	if (p == digits || p - digits > 18 || (p - digits > 1 && *digits == '0') || (neg && v == 0))
		return NULL;
	*ret = neg ? -(json_int_t)v : (json_int_t)v;
	return p;
}

/* The line exactly as layout_entry_format writes it (compact, this key order,
 * ASCII) is read without jansson, about fifty times faster: an index of a
 * two-hour session has 7,200 lines, and httpd reads every line of every
 * index it lists. Any other spelling, valid or not, is jansson's to judge,
 * so both readings accept the same lines with the same values
 * (tests/test_layout.c compares them). True when the line was read. */
static bool
layout_entry_fast(const char *line, size_t len, struct layout_entry *ret, int *ret_r)
{
	const char *p = line, *end = line + len, *sha;
	json_int_t seq, start, dur, bytes, init;
	int kf = 0;

	p = layout_int_lit(layout_lit(p, end, "{\"sequence\":"), end, false, &seq);
	p = layout_int_lit(layout_lit(p, end, ",\"startTime\":"), end, true, &start);
	p = layout_int_lit(layout_lit(p, end, ",\"duration\":"), end, false, &dur);
	p = layout_int_lit(layout_lit(p, end, ",\"bytes\":"), end, false, &bytes);
	p = layout_lit(p, end, ",\"keyframe\":");
	if (layout_lit(p, end, "true") != NULL) {
		kf = 1;
		p += 4;
	} else {
		p = layout_lit(p, end, "false");
	}
	p = layout_int_lit(layout_lit(p, end, ",\"init\":"), end, false, &init);
	p = layout_lit(p, end, ",\"sha256\":\"");
	if (p == NULL || end - p != 64 + 2 || memcmp(p + 64, "\"}", 2) != 0)
		return false;
	sha = p;
	for (int i = 0; i < 64; i++) {
		if (!((sha[i] >= '0' && sha[i] <= '9') || (sha[i] >= 'a' && sha[i] <= 'f')))
			return false;
	}
	{
		char hex[LAYOUT_SHA_HEX];

		memcpy(hex, sha, 64);
		hex[64] = '\0';
		*ret_r = layout_entry_check(seq, start, dur, bytes, kf, init, hex, ret);
	}
	return true;
}

int
layout_entry_parse(const char *line, size_t len, struct layout_entry *ret)
{
	int r;

	if (layout_entry_fast(line, len, ret, &r))
		return r;
	return layout_entry_parse_json(line, len, ret);
}

void
layout_index_begin(struct layout_index_iter *it, const char *buf, size_t len, int64_t last_seq)
{
	it->p = buf;
	it->end = buf + len;
	it->last_seq = last_seq;
}

int
layout_index_next(struct layout_index_iter *it, struct layout_entry *ret, const char **ret_line,
		  size_t *ret_len)
{
	const char *line = it->p, *nl;
	size_t len;

	if (it->p >= it->end)
		return 0;
	nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	if (nl == NULL)
		return 0; /* being written, or torn by a crash: not there yet */
	len = (size_t)(nl - line);
	it->p = nl + 1;
	if (ret_line != NULL)
		*ret_line = line;
	if (ret_len != NULL)
		*ret_len = len;
	/* Never listed twice, always ascending: an entry that breaks the order
	 * is as invalid as one that does not parse. */
	if (layout_entry_parse(line, len, ret) < 0 || ret->sequence <= it->last_seq)
		return -EINVAL;
	it->last_seq = ret->sequence;
	return 1;
}

/* size bytes from off into a new NUL-terminated buffer; fewer if the file
 * is shorter by now (a torn tail cut off). */
static int
layout_pread_all(int fd, uint64_t off, size_t size, char **ret_buf, size_t *ret_len)
{
	char *buf = malloc(size + 1);
	size_t got = 0;

	if (buf == NULL)
		return -ENOMEM;
	while (got < size) {
		ssize_t n = pread(fd, buf + got, size - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;

			free(buf);
			return r;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*ret_buf = buf;
	*ret_len = got;
	return 0;
}

int
layout_index_read(int fd, uint64_t off, char **ret_buf, size_t *ret_len)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EINVAL;
	if ((uint64_t)sb.st_size > LAYOUT_INDEX_MAX)
		return -EFBIG;
	if (off > (uint64_t)sb.st_size)
		off = (uint64_t)sb.st_size;
	return layout_pread_all(fd, off, (size_t)((uint64_t)sb.st_size - off), ret_buf, ret_len);
}

static char *
layout_dump(json_t *o)
{
	char *text;

	if (o == NULL)
		return NULL;
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text;
}

char *
layout_session_text(const struct layout_session *s)
{
	return layout_dump(json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:I}",
				     "sentinelId", s->sentinel, "sessionId", s->session, "name",
				     s->name, "codec", s->codec, "width", (json_int_t)s->width,
				     "height", (json_int_t)s->height, "timescale",
				     (json_int_t)s->timescale, "startTime", (json_int_t)s->start_ms,
				     "endTime",
				     s->end_ms < 0 ? json_null() : json_integer(s->end_ms), "inits",
				     (json_int_t)s->inits));
}

char *
layout_sentinel_text(const struct layout_sentinel *s)
{
	return layout_dump(json_pack("{s:s, s:s, s:I}", "sentinelId", s->sentinel, "name", s->name,
				     "updated", (json_int_t)s->updated_ms));
}

static void
layout_copy_str(json_t *o, const char *key, char *buf, size_t size)
{
	const char *s = json_string_value(json_object_get(o, key));

	snprintf(buf, size, "%s", s != NULL ? s : "");
}

static int64_t
layout_int(json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

int
layout_session_parse(const char *text, size_t len, struct layout_session *ret)
{
	struct layout_session s = { 0 };
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	int r = -EINVAL;

	if (!json_is_object(o) || !json_is_integer(json_object_get(o, "startTime")))
		goto out;
	layout_copy_str(o, "sentinelId", s.sentinel, sizeof(s.sentinel));
	layout_copy_str(o, "sessionId", s.session, sizeof(s.session));
	layout_copy_str(o, "name", s.name, sizeof(s.name));
	layout_copy_str(o, "codec", s.codec, sizeof(s.codec));
	s.width = (uint32_t)layout_int(o, "width", 0);
	s.height = (uint32_t)layout_int(o, "height", 0);
	s.timescale = (uint32_t)layout_int(o, "timescale", 0);
	s.start_ms = layout_int(o, "startTime", 0);
	s.end_ms = layout_int(o, "endTime", -1);
	s.inits = (uint32_t)layout_int(o, "inits", 0);
	*ret = s;
	r = 0;
out:
	json_decref(o);
	return r;
}

int
layout_sentinel_parse(const char *text, size_t len, struct layout_sentinel *ret)
{
	struct layout_sentinel s = { 0 };
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	int r = -EINVAL;

	if (!json_is_object(o) || !json_is_string(json_object_get(o, "name")))
		goto out;
	layout_copy_str(o, "sentinelId", s.sentinel, sizeof(s.sentinel));
	layout_copy_str(o, "name", s.name, sizeof(s.name));
	s.updated_ms = layout_int(o, "updated", 0);
	*ret = s;
	r = 0;
out:
	json_decref(o);
	return r;
}

/* A small file of dirfd, whole; never through a symlink, never a FIFO. */
static int
layout_slurp(int dirfd, const char *name, char **ret_buf, size_t *ret_len)
{
	struct stat sb;
	int fd, r;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -EINVAL;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > LAYOUT_JSON_MAX) {
		r = -EINVAL;
		goto out;
	}
	r = layout_pread_all(fd, 0, (size_t)sb.st_size, ret_buf, ret_len);
out:
	close(fd);
	return r;
}

int
layout_session_read(int dirfd, struct layout_session *ret)
{
	char *text;
	size_t len;
	int r = layout_slurp(dirfd, LAYOUT_SESSION, &text, &len);

	if (r < 0)
		return r;
	r = layout_session_parse(text, len, ret);
	free(text);
	return r;
}

int
layout_sentinel_read(int dirfd, struct layout_sentinel *ret)
{
	char *text;
	size_t len;
	int r = layout_slurp(dirfd, LAYOUT_SENTINEL, &text, &len);

	if (r < 0)
		return r;
	r = layout_sentinel_parse(text, len, ret);
	free(text);
	return r;
}

int
layout_deleted_read(int dirfd, uint8_t (**ret_ids)[16], size_t *ret_n)
{
	uint8_t(*ids)[16] = NULL;
	char *buf = NULL, *p, *end, *nl;
	struct stat sb;
	uint64_t off = 0;
	size_t len, n = 0;
	int fd, r;

	fd = openat(dirfd, LAYOUT_DELETED, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	/* The newest ids are at the end; archive keeps the file short anyway. One
	 * byte before the tail tells whether it starts with a whole line. */
	if ((uint64_t)sb.st_size > LAYOUT_DELETED_READ)
		off = (uint64_t)sb.st_size - LAYOUT_DELETED_READ - 1;
	r = layout_pread_all(fd, off, (size_t)((uint64_t)sb.st_size - off), &buf, &len);
	if (r < 0)
		goto out;
	ids = len >= ID_STR_LEN ? malloc(len / ID_STR_LEN * sizeof(*ids)) : NULL;
	if (len >= ID_STR_LEN && ids == NULL) {
		r = -ENOMEM;
		goto out;
	}
	p = buf;
	end = buf + len;
	if (off > 0)
		p = (nl = memchr(p, '\n', len)) != NULL ? nl + 1 : end; /* up to a line's start */
	for (; p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL; p = nl + 1) {
		*nl = '\0';
		if (nl - p == ID_STR_LEN - 1 && id_parse(p, ids[n]) == 0)
			n++;
	}
	*ret_ids = n > 0 ? ids : NULL;
	*ret_n = n;
	if (n > 0)
		ids = NULL;
	r = 0;
out:
	free(ids);
	free(buf);
	close(fd);
	return r;
}
