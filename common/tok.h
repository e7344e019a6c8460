/* tok: the access tokens of the configuration, checked in constant time.
 *
 * The store keeps only SHA-256 digests of the secrets. A check hashes the
 * presented secret and compares it with every entry, so its timing reveals
 * neither which entry matched nor how long any stored secret is.
 * Revocation is a list of digests the store keeps beside its entries: an entry
 * whose digest is on it is refused, including one added after the digest was.
 * A store rebuilt from the configuration starts with an empty list; the
 * stages set it again from vigild's "revoked" message (stage_revoked()), which
 * vigild keeps durably under data_dir. */
#ifndef VIGIL_TOK_H
#define VIGIL_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define TOK_ROLE(r)    (1u << (r))
#define TOK_DIGEST_LEN 32
#define TOK_DIGEST_HEX (2 * TOK_DIGEST_LEN) /* characters, without the NUL */

struct tok_store;

/* Valid as long as the store; never holds the secret. */
struct tok_info {
	const char *name;
	enum cfg_role role;
	int64_t expires; /* unix seconds, 0 = never */
	bool revoked;
};

/* NULL with errno ENOMEM. */
struct tok_store *tok_store_new(void);
void tok_store_free(struct tok_store *store);

/* name may be NULL (stored as ""). -EINVAL for an empty secret or a bad role,
 * -EEXIST when the store already holds this secret, -ENOMEM. */
int tok_store_add(struct tok_store *store, const char *name, enum cfg_role role, const char *secret,
		  int64_t expires);
/* Adds every cfg->tokens entry, or none of them: on failure the store is as it
 * was. Errors as tok_store_add. */
int tok_store_load(struct tok_store *store, const struct cfg *cfg);

/* The roles that may do what need may (PROTOCOL.md section 6): operator may do
 * everything, archivist everything proctor may. 0 for an unknown role. */
unsigned tok_mask_for(enum cfg_role need);

/* 0 when secret is a known token whose role is in need_mask (TOK_ROLE bits,
 * usually tok_mask_for()), not revoked and not expired at now (unix seconds).
 * Otherwise, checked in this order: -EACCES unknown or empty, -EKEYREVOKED,
 * -EKEYEXPIRED (now >= expires), -EPERM wrong role; -ENOMEM if hashing failed.
 * *ret_info (may be NULL) is set whenever the token is known (success, and
 * every refusal but -EACCES), so that a refusal can name the token's entry. */
int tok_check(const struct tok_store *store, const char *secret, size_t len, unsigned need_mask,
	      int64_t now, const struct tok_info **ret_info);

/* tok_check for what a stage remembers of a token, its digest (an HLS
 * playlist's token names its parent by it, common/hlscap.h): the same checks
 * and errors, without the secret. */
int tok_check_digest(const struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN],
		     unsigned need_mask, int64_t now, const struct tok_info **ret_info);

/* The entries, for a cache of something computed from each digest: how many,
 * the i-th one's digest (i < tok_store_count; valid as long as the store), and
 * a serial that differs whenever the entries differ. Serials come from one
 * counter for every store of the process, so a store rebuilt at a reload never
 * has the serial of the one it replaces. Revocations do not change it. */
size_t tok_store_count(const struct tok_store *store);
const uint8_t *tok_store_digest(const struct tok_store *store, size_t i);
uint64_t tok_store_serial(const struct tok_store *store);

/* The SHA-256 of a secret, as the store keeps it: what a stage may remember of
 * the token a connection used. -ENOMEM. */
int tok_digest(const char *secret, size_t len, uint8_t out[TOK_DIGEST_LEN]);

/* Marks the token revoked (again is fine). -ENOENT if unknown, -ENOMEM. */
int tok_revoke(struct tok_store *store, const char *secret, size_t len);

/* Revocation by digest, for what a stage learns from vigild or remembers of a
 * connection. tok_revoke_digest adds digest to the list (again is fine): 1 when
 * an entry has it, 0 when none does yet (it is refused if it is added later),
 * -ENOMEM. tok_lift_digest takes it off: 0, or -ENOENT when it was not on it. */
int tok_revoke_digest(struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN]);
int tok_lift_digest(struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN]);
/* Replaces the whole list with n digests (n * TOK_DIGEST_LEN bytes; vigild's
 * "revoked"): every other digest is lifted. Returns how many entries are
 * revoked now, or -ENOMEM with the list as it was. */
int tok_set_revoked(struct tok_store *store, const uint8_t *digests, size_t n);
/* The list, *ret_n digests of TOK_DIGEST_LEN bytes each; valid until the next change. */
const uint8_t *tok_revoked(const struct tok_store *store, size_t *ret_n);
/* Whether digest is on the list (a connection's remembered token). */
bool tok_digest_revoked(const struct tok_store *store, const uint8_t digest[TOK_DIGEST_LEN]);

/* Lower-case hex, the form of the bus and the revocations file: out gets
 * TOK_DIGEST_HEX characters and a NUL. tok_digest_parse reads exactly
 * TOK_DIGEST_HEX hex digits (either case) of len bytes: 0 or -EINVAL. */
void tok_digest_hex(const uint8_t digest[TOK_DIGEST_LEN], char out[TOK_DIGEST_HEX + 1]);
int tok_digest_parse(const char *hex, size_t len, uint8_t ret_digest[TOK_DIGEST_LEN]);

/* The reason a client is given when its token is refused: err is what
 * tok_check returned, -ENOENT for no token, -EINVAL for a token that is not a
 * string; role names who the token was presented as ("sentinels", ...). */
const char *tok_refusal(int err, enum cfg_role role);

#endif
