/* aread_chain: GET /api/audit/verify's check of the hash chain
 * (aread_chain.h), record by record as docs/audit.md's offline script does:
 * a record is good when its seq follows the one before, its prev is the hash
 * of the one before, and its hash is the SHA-256 of the line up to its last
 * `,"hash":"` followed by `}`. Empty lines are skipped (the script does so);
 * a last line without its newline is bad even when it would pass (it was cut
 * short), unless it gets its newline within AREAD_TAIL_WAIT_NS (the writer
 * was appending it as the check read). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "aread_chain.h"
#include "beneath.h"

#define AREAD_ANCHOR_MAX   4096 /* bytes of head or base */
#define AREAD_PREV_MAX     256  /* a prev (base's hash) we can compare */
#define AREAD_TRIES        3
#define AREAD_TAIL_WAIT_NS (200 * 1000 * 1000) /* for a last line being written */

static const char aread_hash_key[] = ",\"hash\":\"";

struct aread_chain {
	int dirfd;
	EVP_MD *sha;
	EVP_MD_CTX *md;
	int64_t seq; /* of the last good record (base's at first) */
	char prev[AREAD_PREV_MAX + 1];
	size_t prev_len;
	unsigned char *buf;
	struct aread_verdict *v;
	char file[AREAD_NAME_LEN + 1];
	int64_t line;
};

/* head or base: {"seq":N,"hash":"..."}. 1 with its values, 0 when absent,
 * -EINVAL when it is not that, else -errno. */
static int
aread_anchor(int dirfd, const char *name, int64_t *ret_seq, char *hash, size_t size)
{
	char buf[AREAD_ANCHOR_MAX];
	struct stat sb;
	json_t *j, *s, *h;
	ssize_t n;
	int fd = beneath_open_file(dirfd, name, &sb), r = -EINVAL;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return -errno;
	j = (size_t)n < sizeof(buf) ? json_loadb(buf, (size_t)n, 0, NULL) : NULL;
	s = json_object_get(j, "seq");
	h = json_object_get(j, "hash");
	if (json_is_integer(s) && json_integer_value(s) >= 0 && json_is_string(h) &&
	    json_string_length(h) < size) {
		*ret_seq = (int64_t)json_integer_value(s);
		snprintf(hash, size, "%s", json_string_value(h));
		r = 1;
	}
	json_decref(j);
	return r;
}

static int
aread_day_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

int
aread_days(int dirfd, int64_t **ret, size_t *ret_n)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	int64_t *v = NULL, *nv;
	size_t n = 0, cap = 0;
	struct dirent *e;

	if (d == NULL) {
		int err = -errno;

		if (fd >= 0)
			close(fd);
		return err;
	}
	while ((e = readdir(d)) != NULL) {
		int64_t day = aread_day_of_name(e->d_name);

		if (day < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = day;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), aread_day_cmp);
	*ret = v;
	*ret_n = n;
	return 0;
}

static void
aread_bad(struct aread_chain *c, const char *reason)
{
	struct aread_verdict *v = c->v;

	v->ok = false;
	v->first_bad = c->seq + 1;
	snprintf(v->reason, sizeof(v->reason), "%s", reason);
	snprintf(v->file, sizeof(v->file), "%s", c->file);
	v->line = c->line;
}

static void
aread_hex(const unsigned char *md, char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = '\0';
}

/* The last `,"hash":"` of the line, or -1. */
static ssize_t
aread_cut(const char *line, size_t len)
{
	size_t kl = sizeof(aread_hash_key) - 1;

	for (size_t i = len >= kl ? len - kl + 1 : 0; i-- > 0;)
		if (line[i] == ',' && memcmp(line + i, aread_hash_key, kl) == 0)
			return (ssize_t)i;
	return -1;
}

/* One record: true when good (the chain moves on), else the verdict is set. */
static bool
aread_record(struct aread_chain *c, const char *line, size_t len)
{
	static const char *const keys[3] = { "seq", "prev", "hash" };
	struct aread_val v[3];
	unsigned char md[32];
	char hex[65], detail[96];
	unsigned mdlen = 0;
	ssize_t cut = aread_cut(line, len);
	json_t *hold;
	bool good = false;

	if (aread_fields(line, len, keys, 3, v, &hold) < 0) {
		aread_bad(c, "the line is not a JSON object");
		return false;
	}
	if (cut <= 0) {
		aread_bad(c, "the line has no \"hash\" at its end");
		goto out;
	}
	if (v[0].type != AREAD_INT || v[0].i != c->seq + 1) {
		if (v[0].type == AREAD_INT)
			snprintf(detail, sizeof(detail), "seq is %lld, not %lld", (long long)v[0].i,
				 (long long)(c->seq + 1));
		else
			snprintf(detail, sizeof(detail), "seq is not an integer");
		aread_bad(c, detail);
		goto out;
	}
	if (v[1].type != AREAD_STRING || v[1].len != c->prev_len ||
	    memcmp(v[1].s, c->prev, c->prev_len) != 0) {
		aread_bad(c, "prev is not the hash of the record before");
		goto out;
	}
	if (EVP_DigestInit_ex(c->md, c->sha, NULL) != 1 ||
	    EVP_DigestUpdate(c->md, line, (size_t)cut) != 1 ||
	    EVP_DigestUpdate(c->md, "}", 1) != 1 || EVP_DigestFinal_ex(c->md, md, &mdlen) != 1) {
		aread_bad(c, "SHA-256 failed");
		goto out;
	}
	aread_hex(md, hex);
	if (v[2].type != AREAD_STRING || v[2].len != 64 || memcmp(v[2].s, hex, 64) != 0) {
		aread_bad(c, "hash is not the SHA-256 of the line");
		goto out;
	}
	c->seq++;
	memcpy(c->prev, hex, 65);
	c->prev_len = 64;
	c->v->records++;
	good = true;
out:
	json_decref(hold);
	return good;
}

/* One day file. 1: every record good; 0: a bad one (the verdict says which);
 * -EAGAIN: the file is gone (retention: start again); else -errno. */
static int
aread_file(struct aread_chain *c, int64_t day)
{
	struct stat sb;
	size_t have = 0;
	bool waited = false;
	int fd, r = 1;

	aread_day_name(day, c->file, sizeof(c->file));
	c->line = 0;
	fd = beneath_open_file(c->dirfd, c->file, &sb);
	if (fd == -ENOENT)
		return -EAGAIN;
	if (fd < 0)
		return fd;
	for (;;) {
		ssize_t n = read(fd, c->buf + have, AREAD_LINE_MAX + 1 - have);
		size_t start = 0;
		unsigned char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0 && have > 0 && !waited) {
			/* The writer may be appending this line right now: once
			 * more after a moment before calling it cut short. */
			const struct timespec ts = { .tv_nsec = AREAD_TAIL_WAIT_NS };

			waited = true;
			nanosleep(&ts, NULL);
			continue;
		}
		if (n == 0) {
			if (have > 0) {
				c->line++;
				if (aread_record(c, (const char *)c->buf, have)) {
					c->seq--; /* the position stays the bad one */
					c->v->records--;
					aread_bad(c, "the last line has no newline (cut short)");
				}
				r = 0;
			}
			break;
		}
		have += (size_t)n;
		while ((nl = memchr(c->buf + start, '\n', have - start)) != NULL) {
			size_t len = (size_t)(nl - (c->buf + start));

			c->line++;
			if (len > 0 && !aread_record(c, (const char *)c->buf + start, len)) {
				r = 0;
				goto out;
			}
			start += len + 1;
		}
		memmove(c->buf, c->buf + start, have - start);
		have -= start;
		if (have == AREAD_LINE_MAX + 1) {
			c->line++;
			aread_bad(c, "the line is over 1 MiB");
			r = 0;
			break;
		}
	}
out:
	close(fd);
	return r;
}

/* One pass over the log. 1: done (v says how it went); -EAGAIN: again. */
static int
aread_pass(struct aread_chain *c)
{
	struct aread_verdict *v = c->v;
	char hash[AREAD_PREV_MAX + 1], again[AREAD_PREV_MAX + 1];
	int64_t head = -1, base = -1, base2 = -1, *days = NULL;
	size_t n = 0;
	int rh, rb, r;

	*v = (struct aread_verdict){ .ok = true, .first_bad = -1, .base = -1, .head = -1 };
	c->file[0] = '\0';
	c->line = 0;
	/* head first: whatever the writer adds from now on lies past it. */
	rh = aread_anchor(c->dirfd, "head", &head, hash, sizeof(hash));
	rb = aread_anchor(c->dirfd, "base", &base, c->prev, sizeof(c->prev));
	if (rb == -EINVAL) {
		v->ok = false;
		snprintf(v->reason, sizeof(v->reason), "base is not {\"seq\":N,\"hash\":\"...\"}");
		return 1;
	}
	if (rb < 0 || (rh < 0 && rh != -EINVAL)) {
		v->ok = false;
		snprintf(v->reason, sizeof(v->reason), "%s cannot be read: %s",
			 rb < 0 ? "base" : "head", strerror(rb < 0 ? -rb : -rh));
		return 1;
	}
	if (rb == 0) {
		snprintf(c->prev, sizeof(c->prev), "%064d", 0);
		base = 0;
	} else {
		v->base = base;
	}
	c->prev_len = strlen(c->prev);
	c->seq = base;
	if (rh == 1)
		v->head = head;
	r = aread_days(c->dirfd, &days, &n);
	if (r < 0) {
		v->ok = false;
		snprintf(v->reason, sizeof(v->reason), "the audit directory cannot be read: %s",
			 strerror(-r));
		return 1;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		r = aread_file(c, days[i]);
		if (r == 0)
			break;
	}
	free(days);
	if (r == -EAGAIN)
		return -EAGAIN;
	if (r < 0) {
		v->ok = false;
		v->first_bad = -1;
		snprintf(v->reason, sizeof(v->reason), "%s cannot be read: %s", c->file,
			 strerror(-r));
		return 1;
	}
	/* A bad record found while retention moved base: start again. */
	if (!v->ok) {
		int rb2 = aread_anchor(c->dirfd, "base", &base2, again, sizeof(again));

		if (rb2 >= 0 && (rb2 != rb || (rb == 1 && base2 != base)))
			return -EAGAIN;
		return 1;
	}
	if (rh == -EINVAL) {
		v->ok = false;
		snprintf(v->reason, sizeof(v->reason), "head is not {\"seq\":N,\"hash\":\"...\"}");
	} else if (rh == 1 && head > c->seq) {
		v->ok = false;
		v->first_bad = c->seq + 1;
		snprintf(v->reason, sizeof(v->reason),
			 "the log ends at record %lld but head says %lld was written",
			 (long long)c->seq, (long long)head);
	}
	return 1;
}

int
aread_chain_check(int dirfd, struct aread_verdict *v)
{
	struct aread_chain c = { .dirfd = dirfd, .v = v };
	int r = -EAGAIN;

	*v = (struct aread_verdict){ .ok = true, .first_bad = -1, .base = -1, .head = -1 };
	if (dirfd < 0)
		return 0;
	c.sha = EVP_MD_fetch(NULL, "SHA256", NULL);
	c.md = EVP_MD_CTX_new();
	c.buf = malloc(AREAD_LINE_MAX + 1);
	if (c.sha == NULL || c.md == NULL || c.buf == NULL) {
		v->ok = false;
		snprintf(v->reason, sizeof(v->reason), "out of memory");
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < AREAD_TRIES && r == -EAGAIN; i++)
		r = aread_pass(&c);
	if (r == -EAGAIN) {
		v->ok = false;
		v->first_bad = -1;
		snprintf(v->reason, sizeof(v->reason),
			 "the day files kept changing under the check (retention): ask again");
	}
	r = 0;
out:
	free(c.buf);
	EVP_MD_CTX_free(c.md);
	EVP_MD_free(c.sha);
	return r;
}
