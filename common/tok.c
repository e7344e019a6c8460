/* tok: a flat list of SHA-256 digests, every check scanning all of it.
 *
 * Entries are allocated one by one so that the tok_info pointers handed out
 * stay valid while the list grows. Only the digest comparison is constant
 * time: what happens after a match (revoked, expired, role) is returned to the
 * caller anyway. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
};

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

	if (store == NULL)
		errno = ENOMEM;
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
	free(store);
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
		.revoked = false,
	};
	store->entries[store->n++] = e;
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
	const struct tok_entry *e;
	int r;

	if (secret == NULL || len == 0)
		return -EACCES;
	r = tok_digest(secret, len, digest);
	if (r < 0)
		return r;
	e = tok_find(store, digest);
	OPENSSL_cleanse(digest, sizeof(digest));
	if (e == NULL)
		return -EACCES;
	if (e->info.revoked)
		return -EKEYREVOKED;
	if (e->info.expires != 0 && now >= e->info.expires)
		return -EKEYEXPIRED;
	if ((need_mask & TOK_ROLE(e->info.role)) == 0)
		return -EPERM;
	if (ret_info != NULL)
		*ret_info = &e->info;
	return 0;
}

int
tok_revoke(struct tok_store *store, const char *secret, size_t len)
{
	uint8_t digest[TOK_DIGEST_LEN];
	struct tok_entry *e;
	int r;

	if (secret == NULL || len == 0)
		return -ENOENT;
	r = tok_digest(secret, len, digest);
	if (r < 0)
		return r;
	e = tok_find(store, digest);
	if (e == NULL)
		return -ENOENT;
	e->info.revoked = true;
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
