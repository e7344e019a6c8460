/* hlscap: playlist tokens (hlscap.h): HMAC-SHA256 from OpenSSL, base64url
 * through common/b64, the key file made once and never rewritten, and a
 * cache of the token store's parent ids rebuilt when the store changes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "b64.h"
#include "be.h"
#include "files.h"
#include "hlscap.h"

#define HLSCAP_ID_LEN  8
#define HLSCAP_MAC_LEN 16
#define HLSCAP_ID_AT   4
#define HLSCAP_MAC_AT  (HLSCAP_ID_AT + HLSCAP_ID_LEN)
#define HLSCAP_UUID    36
#define HLSCAP_B64_LEN (HLSCAP_TEXT_LEN - (int)sizeof(HLSCAP_PREFIX) + 1)

_Static_assert(HLSCAP_MAC_AT + HLSCAP_MAC_LEN == HLSCAP_RAW_LEN, "the layout of hlscap.h");
_Static_assert(HLSCAP_B64_LEN == (HLSCAP_RAW_LEN * 4 + 2) / 3, "unpadded base64url of the bytes");

/* Domain separation: the two HMACs of one key never take the same input. */
static const char hlscap_label_id[] = "vigil hls parent 1";
static const char hlscap_label_mac[] = "vigil hls cap 1";

struct hlscap_parent {
	uint8_t id[HLSCAP_ID_LEN];
	uint8_t digest[TOK_DIGEST_LEN];
};

struct hlscap {
	uint8_t key[HLSCAP_KEY_LEN];
	/* The parent ids of the store whose serial is serial. */
	uint64_t serial;
	struct hlscap_parent *parents;
	size_t n_parents;
};

struct hlscap *
hlscap_new(const uint8_t key[HLSCAP_KEY_LEN])
{
	struct hlscap *cap = calloc(1, sizeof(*cap));

	if (cap == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memcpy(cap->key, key, HLSCAP_KEY_LEN);
	return cap;
}

static int
hlscap_random(uint8_t key[HLSCAP_KEY_LEN])
{
	size_t got = 0;

	/* Up to 256 bytes come whole once the pool is ready; EINTR can cut them. */
	while (got < HLSCAP_KEY_LEN) {
		ssize_t n = getrandom(key + got, HLSCAP_KEY_LEN - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	return 0;
}

struct hlscap *
hlscap_new_random(void)
{
	uint8_t key[HLSCAP_KEY_LEN];
	struct hlscap *cap;
	int r = hlscap_random(key);

	if (r < 0) {
		errno = -r;
		return NULL;
	}
	cap = hlscap_new(key);
	OPENSSL_cleanse(key, sizeof(key));
	return cap;
}

void
hlscap_free(struct hlscap *cap)
{
	if (cap == NULL)
		return;
	free(cap->parents);
	OPENSSL_cleanse(cap, sizeof(*cap));
	free(cap);
}

/* A new key in a temporary file of our own, linked to the key file's name:
 * link(2) fails rather than replace a file, so when two processes race, both
 * end up reading the one that was linked first. */
static int
hlscap_create(int dirfd)
{
	uint8_t key[HLSCAP_KEY_LEN];
	char tmp[64];
	int fd, r;

	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", HLSCAP_KEY_FILE, (long)getpid());
	r = hlscap_random(key);
	if (r < 0)
		return r;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto cleanse;
	}
	/* The mode is exact whatever the umask. */
	r = fchmod(fd, 0600) < 0 ? -errno : 0;
	if (r == 0)
		r = files_write_all(fd, key, sizeof(key));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && linkat(dirfd, tmp, dirfd, HLSCAP_KEY_FILE, 0) < 0 && errno != EEXIST)
		r = -errno;
	unlinkat(dirfd, tmp, 0);
	if (r == 0 && fsync(dirfd) < 0)
		r = -errno;
cleanse:
	OPENSSL_cleanse(key, sizeof(key));
	return r;
}

static int
hlscap_read(int dirfd, uint8_t key[HLSCAP_KEY_LEN])
{
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	fd = openat(dirfd, HLSCAP_KEY_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -EINVAL : -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_size != HLSCAP_KEY_LEN)
		r = -EINVAL;
	else if ((st.st_mode & 077) != 0)
		r = -EPERM; /* whoever else reads it can make playlist tokens */
	if (r == 0) {
		do
			n = pread(fd, key, HLSCAP_KEY_LEN, 0);
		while (n < 0 && errno == EINTR);
		r = n < 0 ? -errno : n != HLSCAP_KEY_LEN ? -EINVAL : 0;
	}
	close(fd);
	return r;
}

int
hlscap_open(int dirfd, struct hlscap **ret_cap)
{
	uint8_t key[HLSCAP_KEY_LEN];
	struct hlscap *cap;
	int r = hlscap_read(dirfd, key);

	if (r == -ENOENT) {
		r = hlscap_create(dirfd);
		if (r == 0)
			r = hlscap_read(dirfd, key);
	}
	if (r < 0)
		goto cleanse;
	cap = hlscap_new(key);
	if (cap == NULL) {
		r = -ENOMEM;
		goto cleanse;
	}
	*ret_cap = cap;
cleanse:
	OPENSSL_cleanse(key, sizeof(key));
	return r;
}

/* HMAC-SHA256 of the concatenated parts, cut to outlen bytes. */
static int
hlscap_hmac(const struct hlscap *cap, const void *const *parts, const size_t *lens, size_t n,
	    uint8_t *out, size_t outlen)
{
	uint8_t in[160], md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		if (lens[i] > sizeof(in) - len)
			return -EINVAL;
		memcpy(in + len, parts[i], lens[i]);
		len += lens[i];
	}
	if (HMAC(EVP_sha256(), cap->key, HLSCAP_KEY_LEN, in, len, md, &mdlen) == NULL ||
	    mdlen < outlen)
		return -ENOMEM;
	memcpy(out, md, outlen);
	return 0;
}

static int
hlscap_parent_id(const struct hlscap *cap, const uint8_t digest[TOK_DIGEST_LEN],
		 uint8_t id[HLSCAP_ID_LEN])
{
	const void *parts[] = { hlscap_label_id, digest };
	size_t lens[] = { sizeof(hlscap_label_id), TOK_DIGEST_LEN };

	return hlscap_hmac(cap, parts, lens, 2, id, HLSCAP_ID_LEN);
}

static int
hlscap_mac(const struct hlscap *cap, const uint8_t raw[HLSCAP_RAW_LEN],
	   const uint8_t digest[TOK_DIGEST_LEN], const char *sentinel, const char *session,
	   uint8_t mac[HLSCAP_MAC_LEN])
{
	const void *parts[] = { hlscap_label_mac, raw, digest, sentinel, session };
	size_t lens[] = { sizeof(hlscap_label_mac), HLSCAP_MAC_AT, TOK_DIGEST_LEN, HLSCAP_UUID,
			  HLSCAP_UUID };

	return hlscap_hmac(cap, parts, lens, 5, mac, HLSCAP_MAC_LEN);
}

int
hlscap_make(struct hlscap *cap, const uint8_t parent[TOK_DIGEST_LEN], const char *sentinel,
	    const char *session, int64_t expires, char out[HLSCAP_TEXT_LEN + 1])
{
	uint8_t raw[HLSCAP_RAW_LEN];
	size_t len, n = 0;
	char *b64;
	int r;

	if (strlen(sentinel) != HLSCAP_UUID || strlen(session) != HLSCAP_UUID || expires < 0)
		return -EINVAL;
	be32_put(raw, expires > UINT32_MAX ? UINT32_MAX : (uint32_t)expires);
	r = hlscap_parent_id(cap, parent, raw + HLSCAP_ID_AT);
	if (r == 0)
		r = hlscap_mac(cap, raw, parent, sentinel, session, raw + HLSCAP_MAC_AT);
	if (r == 0)
		r = b64_encode(raw, sizeof(raw), &b64, &len);
	if (r < 0)
		return r;
	memcpy(out, HLSCAP_PREFIX, sizeof(HLSCAP_PREFIX) - 1);
	n = sizeof(HLSCAP_PREFIX) - 1;
	for (size_t i = 0; i < len && b64[i] != '='; i++)
		out[n++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	out[n] = '\0';
	free(b64);
	return n == HLSCAP_TEXT_LEN ? 0 : -EINVAL;
}

bool
hlscap_is(const char *text, size_t len)
{
	return len >= sizeof(HLSCAP_PREFIX) - 1 &&
	       memcmp(text, HLSCAP_PREFIX, sizeof(HLSCAP_PREFIX) - 1) == 0;
}

/* The bytes of text, or -EBADMSG: exactly the prefix and HLSCAP_B64_LEN
 * characters of base64url whose unused bits are zero, so that every token
 * has one spelling. */
static int
hlscap_parse(const char *text, size_t len, uint8_t raw[HLSCAP_RAW_LEN])
{
	char b64[HLSCAP_B64_LEN + 3];
	uint8_t buf[B64_DECODED_MAX(sizeof(b64))];
	size_t n = 0, got;

	if (!hlscap_is(text, len) || len != HLSCAP_TEXT_LEN)
		return -EBADMSG;
	text += sizeof(HLSCAP_PREFIX) - 1;
	for (; n < HLSCAP_B64_LEN; n++) {
		char c = text[n];

		if (c == '+' || c == '/' || c == '=')
			return -EBADMSG;
		b64[n] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	while (n % 4 != 0)
		b64[n++] = '=';
	if (b64_decode_to(b64, n, buf, &got) < 0 || got != HLSCAP_RAW_LEN)
		return -EBADMSG;
	memcpy(raw, buf, HLSCAP_RAW_LEN);
	return 0;
}

/* The parent ids of every entry of store, computed again when its entries
 * changed (a reload makes a new store; revocations change no entry). */
static int
hlscap_index(struct hlscap *cap, const struct tok_store *store)
{
	size_t n = tok_store_count(store);
	struct hlscap_parent *v;
	int r;

	if (cap->parents != NULL && cap->serial == tok_store_serial(store))
		return 0;
	v = calloc(n > 0 ? n : 1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(v[i].digest, tok_store_digest(store, i), TOK_DIGEST_LEN);
		r = hlscap_parent_id(cap, v[i].digest, v[i].id);
		if (r < 0) {
			free(v);
			return r;
		}
	}
	free(cap->parents);
	cap->parents = v;
	cap->n_parents = n;
	cap->serial = tok_store_serial(store);
	return 0;
}

int
hlscap_check(struct hlscap *cap, const struct tok_store *store, const char *text, size_t len,
	     const char *sentinel, const char *session, int64_t now,
	     const struct tok_info **ret_info)
{
	uint8_t raw[HLSCAP_RAW_LEN], mac[HLSCAP_MAC_LEN];
	const struct hlscap_parent *parent = NULL;
	int r;

	if (hlscap_parse(text, len, raw) < 0 || strlen(sentinel) != HLSCAP_UUID ||
	    strlen(session) != HLSCAP_UUID)
		return -EBADMSG;
	r = hlscap_index(cap, store);
	if (r < 0)
		return r;
	/* Two configured tokens with the same 64-bit id are as likely as a
	 * collision of random 64-bit numbers; the MAC decides between them. */
	for (size_t i = 0; i < cap->n_parents; i++) {
		if (CRYPTO_memcmp(cap->parents[i].id, raw + HLSCAP_ID_AT, HLSCAP_ID_LEN) != 0)
			continue;
		r = hlscap_mac(cap, raw, cap->parents[i].digest, sentinel, session, mac);
		if (r < 0)
			return r;
		if (CRYPTO_memcmp(mac, raw + HLSCAP_MAC_AT, HLSCAP_MAC_LEN) == 0) {
			parent = &cap->parents[i];
			break;
		}
	}
	/* A parent no longer configured has no id here: its tokens read as
	 * another key's. */
	if (parent == NULL)
		return -EBADMSG;
	if (now >= (int64_t)be32_get(raw))
		return -EKEYEXPIRED;
	return tok_check_digest(store, parent->digest, tok_mask_for(CFG_ROLE_PROCTOR), now,
				ret_info);
}
