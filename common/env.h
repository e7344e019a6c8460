/* env: the message envelope of PROTOCOL.md section 2, { type, timestamp?,
 * payload? }, in its two encodings: JSON text (byte fields as base64 strings)
 * and MessagePack (byte fields as bin). Both decode into one msgpack_object
 * tree, whose payload fields are read with the mp_get_* helpers of mp.h. */
#ifndef VIGIL_ENV_H
#define VIGIL_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* Limits of a valid envelope. */
#define ENV_TYPE_MAX  64 /* bytes of printable ASCII in type */
#define ENV_DEPTH_MAX 32 /* nested maps and arrays, the root map being 1 */

enum env_enc {
	ENV_JSON,
	ENV_MSGPACK,
};

struct env;

/* Decodes one envelope. Valid means: the root is a map with string keys and
 * no map at any level repeats a key; type is a string of 1 to ENV_TYPE_MAX
 * printable ASCII bytes; timestamp is absent or an integer; payload is absent,
 * null or a map; nesting is at most ENV_DEPTH_MAX deep; strings are UTF-8 and
 * integers fit in int64. Other top-level keys are ignored (and kept).
 *
 * The value of every key named "data", at any depth, is bytes: in JSON a
 * base64 string, decoded into a BIN; in MessagePack a bin, a str there being
 * an error. Any other type under "data" is left as it is.
 *
 * ENV_MSGPACK: buf is exactly one object, no byte after it. Strings and bins
 * of the tree point into buf, which is not copied: the caller keeps buf alive
 * and unchanged until env_free(). ENV_JSON: buf is not referenced afterwards.
 *
 * Returns -EBADMSG for anything else, with one line in err (when errlen > 0)
 * naming the place, e.g. "payload.frames[0].data: invalid base64";
 * -ENOMEM. */
int env_decode(const void *buf, size_t len, enum env_enc enc, struct env **ret_env, char *err,
	       size_t errlen);
void env_free(struct env *env);

/* NUL-terminated copy, valid until env_free(). */
const char *env_type(const struct env *env);
bool env_has_timestamp(const struct env *env);
/* 0 when absent. */
int64_t env_timestamp(const struct env *env);
/* The payload map: an empty map when it was absent or null, never NULL. */
const msgpack_object *env_payload(const struct env *env);
/* The whole envelope as decoded, unknown keys included. */
const msgpack_object *env_root(const struct env *env);

/* Starts a MessagePack envelope: a map of 3 entries, type, timestamp and the
 * key "payload". The caller then packs the payload, a map. */
void env_pack_header(msgpack_packer *pk, const char *type, int64_t timestamp);

/* Converts one packed MessagePack object (an envelope, or any object) into
 * compact JSON: bin as base64, floats as reals (NaN and infinities as null).
 * *ret_json is malloc'ed and NUL-terminated. -EBADMSG when buf is not exactly
 * one object or has no JSON form (non-string or repeated map keys, invalid
 * UTF-8, ext types, integers beyond int64, nesting beyond ENV_DEPTH_MAX);
 * -ENOMEM. */
int env_msgpack_to_json(const void *mp, size_t len, char **ret_json, size_t *ret_len);

/* Encodes a decoded envelope again, unknown keys included, so that JSON ->
 * env -> MessagePack -> env -> JSON keeps the content. *ret_buf is malloc'ed
 * (NUL-terminated for ENV_JSON). -ENOMEM. */
int env_encode(const struct env *env, enum env_enc enc, char **ret_buf, size_t *ret_len);

/* Whether len bytes at p are UTF-8 as RFC 3629 defines it (no overlong
 * forms, surrogates or code points past U+10FFFF); NUL bytes are valid. */
bool env_utf8_valid(const void *p, size_t len);

#endif
