/* tok: a flat list of SHA-256 digests, every check scanning all of it.
 *
 * Entries are allocated one by one so that the tok_info pointers handed out
 * stay valid while the list grows. Only the digest comparison is constant
 * time: what happens after a match (revoked, expired, role) is returned to the
 * caller anyway. The revocation list is a second flat array of digests, and
 * each entry's revoked flag mirrors whether its digest is on it. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tok.h"

struct tok_entry {
	uint8_t digest[TOK_DIGEST_LEN];
	struct tok_info info;
	char name[]; /* info.name points here */
};

struct tok_store {
	struct tok_entry **entries;
	size_t n, cap;
	uint8_t *revoked; /* n_revoked digests, back to back */
	size_t n_revoked;
	uint64_t serial; /* tok_store_serial() */
};

/* The last serial given to any store of the process. */
static _Atomic uint64_t tok_serials;

static void
tok_store_changed(struct tok_store *store)
{
	store->serial = atomic_fetch_add(&tok_serials, 1) + 1;
}

int
tok_digest(const char *secret, size_t len, uint8_t out[TOK_DIGEST_LEN])
{
	/* EVP_Digest only fails when it cannot allocate its context. */
	if (EVP_Digest(secret, len, out, NULL, EVP_sha256(), NULL) != 1)
		return -ENOMEM;
	return 0;
}

/* The entry whose digest is digest, or NULL. Looks at every entry and selects
 * the match with a mask instead of a branch or an early exit; the store holds
 * each digest once, so at most one entry matches. */
static struct tok_entry *
tok_find(const struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN])
{
	uintptr_t found = 0;

	for (size_t i = 0; i < store->n; i++) {
		uint32_t d =
			(uint32_t)CRYPTO_memcmp(store->entries[i]->digest, digest, TOK_DIGEST_LEN);
		/* Bit 31 of ~d & (d - 1) is set exactly when d == 0. */
		uintptr_t mask = (uintptr_t)0 - (uintptr_t)((~d & (d - 1)) >> 31);

		found |= (uintptr_t)store->entries[i] & mask;
	}
	return (struct tok_entry *)found;
}

struct tok_store *
tok_store_new(void)
{
	struct tok_store *store = calloc(1, sizeof(*store));

	if (store == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	tok_store_changed(store);
	return store;
}

void
tok_store_free(struct tok_store *store)
{
	if (store == NULL)
		return;
	for (size_t i = 0; i < store->n; i++)
		free(store->entries[i]);
	free(store->entries);
	free(store->revoked);
	free(store);
}

/* The index of digest on the revocation list, or -1. */
static ssize_t
tok_revoked_index(const struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN])
{
	for (size_t i = 0; i < store->n_revoked; i++) {
		if (CRYPTO_memcmp(store->revoked + i * TOK_DIGEST_LEN, digest, TOK_DIGEST_LEN) == 0)
			return (ssize_t)i;
	}
	return -1;
}

int
tok_store_add(struct tok_store *store, const char *name, enum cfg_role role, const char *secret,
	      int64_t expires)
{
	uint8_t digest[TOK_DIGEST_LEN];
	struct tok_entry *e;
	size_t name_len;
	int r;

	if (secret == NULL || secret[0] == '\0' || (unsigned)role >= CFG_ROLE_COUNT)
		return -EINVAL;
	if (name == NULL)
		name = "";
	r = tok_digest(secret, strlen(secret), digest);
	if (r < 0)
		return r;
	if (tok_find(store, digest) != NULL)
		return -EEXIST;
	if (store->n == store->cap) {
		size_t cap = store->cap > 0 ? store->cap * 2 : 8;
		struct tok_entry **v = reallocarray(store->entries, cap, sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		store->entries = v;
		store->cap = cap;
	}
	name_len = strlen(name);
	e = malloc(sizeof(*e) + name_len + 1);
	if (e == NULL)
		return -ENOMEM;
	memcpy(e->digest, digest, TOK_DIGEST_LEN);
	memcpy(e->name, name, name_len + 1);
	e->info = (struct tok_info){
		.name = e->name,
		.role = role,
		.expires = expires,
		.revoked = tok_revoked_index(store, digest) >= 0,
	};
	store->entries[store->n++] = e;
	tok_store_changed(store);
	return 0;
}

int
tok_store_load(struct tok_store *store, const struct cfg *cfg)
{
	size_t before = store->n;
	int r = 0;

	for (size_t i = 0; i < cfg->n_tokens; i++) {
		const struct cfg_token *t = &cfg->tokens[i];

		r = tok_store_add(store, t->name, t->role, t->token, t->expires);
		if (r < 0)
			goto drop_added;
	}
	return 0;

drop_added:
	while (store->n > before)
		free(store->entries[--store->n]);
	tok_store_changed(store);
	return r;
}

unsigned
tok_mask_for(enum cfg_role need)
{
	switch (need) {
	case CFG_ROLE_SENTINEL:
		return TOK_ROLE(CFG_ROLE_SENTINEL) | TOK_ROLE(CFG_ROLE_OPERATOR);
	case CFG_ROLE_PROCTOR:
		return TOK_ROLE(CFG_ROLE_PROCTOR) | TOK_ROLE(CFG_ROLE_ARCHIVIST) |
		       TOK_ROLE(CFG_ROLE_OPERATOR);
	case CFG_ROLE_ARCHIVIST:
		return TOK_ROLE(CFG_ROLE_ARCHIVIST) | TOK_ROLE(CFG_ROLE_OPERATOR);
	case CFG_ROLE_OPERATOR:
		return TOK_ROLE(CFG_ROLE_OPERATOR);
	default:
		return 0;
	}
}

int
tok_check(const struct tok_store *store, const char *secret, size_t len, unsigned need_mask,
	  int64_t now, const struct tok_info **ret_info)
{
	uint8_t digest[TOK_DIGEST_LEN];
	int r;

	if (secret == NULL || len == 0)
		return -EACCES;
	r = tok_digest(secret, len, digest);
	if (r < 0)
		return r;
	r = tok_check_digest(store, digest, need_mask, now, ret_info);
	OPENSSL_cleanse(digest, sizeof(digest));
	return r;
}

int
tok_check_digest(const struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN],
		 unsigned need_mask, int64_t now, const struct tok_info **ret_info)
{
	const struct tok_entry *e = tok_find(store, digest);

	if (e == NULL)
		return -EACCES;
	/* Known, refused or not: the audit log names who was refused. */
	if (ret_info != NULL)
		*ret_info = &e->info;
	if (e->info.revoked)
		return -EKEYREVOKED;
	if (e->info.expires != 0 && now >= e->info.expires)
		return -EKEYEXPIRED;
	if ((need_mask & TOK_ROLE(e->info.role)) == 0)
		return -EPERM;
	return 0;
}

size_t
tok_store_count(const struct tok_store *store)
{
	return store->n;
}

const uint8_t *
tok_store_digest(const struct tok_store *store, size_t i)
{
	return i < store->n ? store->entries[i]->digest : NULL;
}

uint64_t
tok_store_serial(const struct tok_store *store)
{
	return store->serial;
}

int
tok_revoke(struct tok_store *store, const char *secret, size_t len)
{
	uint8_t digest[TOK_DIGEST_LEN];
	int r;

	if (secret == NULL || len == 0)
		return -ENOENT;
	r = tok_digest(secret, len, digest);
	if (r < 0)
		return r;
	if (tok_find(store, digest) == NULL)
		return -ENOENT;
	r = tok_revoke_digest(store, digest);
	return r < 0 ? r : 0;
}

int
tok_revoke_digest(struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN])
{
	struct tok_entry *e = tok_find(store, digest);
	uint8_t *v;

	if (tok_revoked_index(store, digest) < 0) {
		v = reallocarray(store->revoked, store->n_revoked + 1, TOK_DIGEST_LEN);
		if (v == NULL)
			return -ENOMEM;
		memcpy(v + store->n_revoked * TOK_DIGEST_LEN, digest, TOK_DIGEST_LEN);
		store->revoked = v;
		store->n_revoked++;
	}
	if (e == NULL)
		return 0;
	e->info.revoked = true;
	return 1;
}

int
tok_lift_digest(struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN])
{
	ssize_t i = tok_revoked_index(store, digest);
	struct tok_entry *e;

	if (i < 0)
		return -ENOENT;
	memmove(store->revoked + (size_t)i * TOK_DIGEST_LEN,
		store->revoked + ((size_t)i + 1) * TOK_DIGEST_LEN,
		(store->n_revoked - (size_t)i - 1) * TOK_DIGEST_LEN);
	store->n_revoked--;
	e = tok_find(store, digest);
	if (e != NULL)
		e->info.revoked = false;
	return 0;
}

int
tok_set_revoked(struct tok_store *store, const uint8_t *digests, size_t n)
{
	uint8_t *copy = NULL;
	int count = 0;

	if (n > 0) {
		copy = reallocarray(NULL, n, TOK_DIGEST_LEN);
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, digests, n * TOK_DIGEST_LEN);
	}
	free(store->revoked);
	store->revoked = copy;
	store->n_revoked = n;
	for (size_t i = 0; i < store->n; i++) {
		struct tok_entry *e = store->entries[i];

		e->info.revoked = tok_revoked_index(store, e->digest) >= 0;
		count += e->info.revoked;
	}
	return count;
}

const uint8_t *
tok_revoked(const struct tok_store *store, size_t *ret_n)
{
	*ret_n = store->n_revoked;
	return store->revoked;
}

bool
tok_digest_revoked(const struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN])
{
	return tok_revoked_index(store, digest) >= 0;
}

void
tok_digest_hex(const uint8_t digest[TOK_DIGEST_LEN], char out[TOK_DIGEST_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < TOK_DIGEST_LEN; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[TOK_DIGEST_HEX] = '\0';
}

static int
tok_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
tok_digest_parse(const char *hex, size_t len, uint8_t ret_digest[TOK_DIGEST_LEN])
{
	uint8_t d[TOK_DIGEST_LEN];

	if (len != TOK_DIGEST_HEX)
		return -EINVAL;
	for (size_t i = 0; i < TOK_DIGEST_LEN; i++) {
		int hi = tok_nibble(hex[2 * i]), lo = tok_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		d[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret_digest, d, TOK_DIGEST_LEN);
	return 0;
}

const char *
tok_refusal(int err, enum cfg_role role)
{
	switch (err) {
	case -ENOENT:
		return "Missing token";
	case -EPERM:
		return role == CFG_ROLE_SENTINEL  ? "Token not valid for sentinels"
		       : role == CFG_ROLE_PROCTOR ? "Token not valid for proctors"
						  : "Token not valid for this role";
	case -EKEYEXPIRED:
		return "Token expired";
	case -EKEYREVOKED:
		return "Token revoked";
	default:
		return "Invalid token";
	}
}
