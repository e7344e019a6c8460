/* hlscap: the short-lived tokens an HLS playlist's links carry in place of
 * the token that fetched it (docs/httpd.md, "Playlist tokens").
 *
 * A player fetches a playlist's links without the request's header, so each
 * link needs a token in its URL; a long-lived token there would be kept by
 * the player, proxies and the browser's history. A playlist token instead is
 * bound to one session, read-only, expires, and names its parent (the
 * configured token that fetched the playlist) without revealing it:
 *
 *   "hc1." base64url (no padding) of 28 bytes:
 *
 *    0          4                    12                                  28
 *    +----------+--------------------+-----------------------------------+
 *    | expires  | parent id          | MAC                               |
 *    | u32 BE s | 8 bytes            | 16 bytes                          |
 *    +----------+--------------------+-----------------------------------+
 *
 *   parent id = HMAC-SHA256(key, "vigil hls parent 1" || parent digest)[0..8]
 *   MAC       = HMAC-SHA256(key, "vigil hls cap 1" || bytes 0..12 ||
 *                           parent digest || sentinelId || sessionId)[0..16]
 *
 * parent digest is the parent token's SHA-256 as common/tok.h keeps it; the
 * ids are the lower-case UUID texts of the route. The parent id is keyed, so
 * a playlist token gives nothing to guess its parent's secret from offline;
 * the MAC binds the token to the parent's whole digest and to the session.
 * A check finds the parent in the current token store by its id, so a parent
 * removed from the configuration, revoked or expired ends its playlist
 * tokens at once, and the actor is the parent's configured name and role.
 *
 * The key (HLSCAP_KEY_LEN random bytes) lives in data_dir/.hls-key (0600),
 * made once with getrandom(2) and an atomic link(2), so playlist tokens
 * outlive a restart of httpd. Not thread-safe: one thread (httpd's loop)
 * uses a struct hlscap. */
#ifndef VIGIL_HLSCAP_H
#define VIGIL_HLSCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok.h"

#define HLSCAP_KEY_LEN  32
#define HLSCAP_KEY_FILE ".hls-key"
#define HLSCAP_PREFIX   "hc1."
#define HLSCAP_RAW_LEN  28
#define HLSCAP_TEXT_LEN 42 /* characters: the prefix and 38 of base64url */

struct hlscap;

/* The key in dirfd's HLSCAP_KEY_FILE, made when there is none: 0, or
 * -EINVAL (a file that is not a regular file of HLSCAP_KEY_LEN bytes),
 * -EPERM (a file group or others may read or write), -ENOMEM, -errno. */
int hlscap_open(int dirfd, struct hlscap **ret_cap);
/* With this key (tests; a key that cannot be kept). NULL with errno ENOMEM. */
struct hlscap *hlscap_new(const uint8_t key[HLSCAP_KEY_LEN]);
/* With a fresh random key that no file keeps. NULL with errno set. */
struct hlscap *hlscap_new_random(void);
void hlscap_free(struct hlscap *cap);

/* A playlist token for the session (lower-case UUID texts) of the token whose
 * digest is parent, valid until expires (unix s; cut to 2^32 - 1): out gets
 * HLSCAP_TEXT_LEN characters and a NUL. -EINVAL for an id that is not 36
 * characters or an expiry before 1970, -ENOMEM. */
int hlscap_make(struct hlscap *cap, const uint8_t parent[TOK_DIGEST_LEN], const char *sentinel,
		const char *session, int64_t expires, char out[HLSCAP_TEXT_LEN + 1]);

/* Whether text has the form of a playlist token (its prefix): one that does
 * not pass hlscap_check is refused as one, not as an unknown token. */
bool hlscap_is(const char *text, size_t len);

/* 0 when text is a playlist token this key made for this session, not
 * expired at now (unix s), whose parent is in store and passes
 * tok_check_digest for proctor routes at now. *ret_info (may be NULL) is
 * the parent's, valid as long as store. Errors, in this order: -EBADMSG a
 * malformed token, another key's, another session's, one changed in any
 * byte, or one whose parent is no longer configured (without the parent's
 * digest its MAC cannot be told from a forgery); -EKEYEXPIRED the playlist
 * token expired; then the parent's, as tok_check_digest: -EKEYREVOKED,
 * -EKEYEXPIRED, -EPERM a role that may not read; -ENOMEM. */
int hlscap_check(struct hlscap *cap, const struct tok_store *store, const char *text, size_t len,
		 const char *sentinel, const char *session, int64_t now,
		 const struct tok_info **ret_info);

#endif
