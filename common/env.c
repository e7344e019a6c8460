/* env: decoding and encoding of envelopes in JSON (jansson) and MessagePack
 * (msgpack-c). JSON is converted into msgpack_object trees allocated in a
 * msgpack_zone; MessagePack is unpacked in place, referencing the caller's
 * buffer. Either way the struct env itself lives in the tree's zone, so a
 * decode costs one zone and env_free() is one msgpack_zone_free(). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "b64.h"
#include "env.h"
#include "mp.h"

/* mp_unpack() refuses what is deeper than the envelope allows, and the JSON
 * conversion checks the same limit. */
_Static_assert(ENV_DEPTH_MAX == MP_DEPTH_MAX, "envelope and unpacker depths differ");

/* Maps below this size are checked for repeated keys pair by pair. */
#define ENV_DUP_PAIRWISE 16
/* How much of a key an error line shows. */
#define ENV_ERR_KEY_MAX 48

struct env {
	msgpack_zone *zone; /* holds this struct and the tree */
	msgpack_object root;
	const msgpack_object *payload;
	msgpack_object empty; /* the payload when absent or null */
	int64_t timestamp;
	bool has_timestamp;
	char type[ENV_TYPE_MAX + 1];
};

/* One step of the path to the value being looked at: a key, or an index when
 * key is NULL. */
struct env_step {
	const char *key;
	size_t len;
	uint32_t index;
};

/* State of one decode or conversion. */
struct env_ctx {
	char *err;
	size_t errlen;
	msgpack_zone *zone; /* where the JSON conversion allocates */
	unsigned depth;     /* steps in path */
	struct env_step path[ENV_DEPTH_MAX + 1];
};

/* Zero-length strings and bins point here rather than at NULL, which
 * memcpy() and friends must not be given. */
static const char env_nothing[1];

static void
env_put(char *buf, size_t size, size_t *pos, char c)
{
	if (*pos + 1 < size)
		buf[(*pos)++] = c;
}

/* "payload.frames[0].data", or "envelope" for the root. Keys are shortened
 * and bytes other than printable ASCII shown as '?'. */
static void
env_path_format(const struct env_ctx *ctx, char *buf, size_t size)
{
	size_t pos = 0;

	if (ctx->depth == 0) {
		snprintf(buf, size, "envelope");
		return;
	}
	for (unsigned i = 0; i < ctx->depth; i++) {
		const struct env_step *s = &ctx->path[i];

		if (s->key == NULL) {
			char idx[16];

			snprintf(idx, sizeof(idx), "[%" PRIu32 "]", s->index);
			for (const char *p = idx; *p != '\0'; p++)
				env_put(buf, size, &pos, *p);
			continue;
		}
		if (i > 0)
			env_put(buf, size, &pos, '.');
		for (size_t k = 0; k < s->len && k < ENV_ERR_KEY_MAX; k++) {
			unsigned char c = (unsigned char)s->key[k];

			env_put(buf, size, &pos, c >= 0x20 && c < 0x7f ? (char)c : '?');
		}
		if (s->len > ENV_ERR_KEY_MAX) {
			for (int k = 0; k < 3; k++)
				env_put(buf, size, &pos, '.');
		}
	}
	buf[pos] = '\0';
}

static int env_vfail(struct env_ctx *ctx, bool with_path, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static int env_fail(struct env_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int env_fail_whole(struct env_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
env_vfail(struct env_ctx *ctx, bool with_path, const char *fmt, va_list ap)
{
	char path[256], msg[256];

	if (ctx->errlen == 0)
		return -EBADMSG;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_path) {
		env_path_format(ctx, path, sizeof(path));
		snprintf(ctx->err, ctx->errlen, "%s: %s", path, msg);
	} else {
		snprintf(ctx->err, ctx->errlen, "%s", msg);
	}
	return -EBADMSG;
}

/* Writes "PATH: message" into the error line; returns -EBADMSG. */
static int
env_fail(struct env_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = env_vfail(ctx, true, fmt, ap);
	va_end(ap);
	return r;
}

/* The same for errors that are not about one value. */
static int
env_fail_whole(struct env_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = env_vfail(ctx, false, fmt, ap);
	va_end(ap);
	return r;
}

static void
env_push_key(struct env_ctx *ctx, const char *key, size_t len)
{
	assert(ctx->depth < ENV_DEPTH_MAX + 1);
	ctx->path[ctx->depth++] = (struct env_step){ .key = key, .len = len };
}

static void
env_push_index(struct env_ctx *ctx, uint32_t index)
{
	assert(ctx->depth < ENV_DEPTH_MAX + 1);
	ctx->path[ctx->depth++] = (struct env_step){ .key = NULL, .index = index };
}

static bool
env_is_data_key(const char *key, size_t len)
{
	return len == 4 && memcmp(key, "data", 4) == 0;
}

/* Unpacks exactly one object from p into *ret_obj, in a zone the caller
 * frees with msgpack_zone_free(). */
static int
env_mp_unpack(struct env_ctx *ctx, const void *p, size_t len, msgpack_object *ret_obj,
	      msgpack_zone **ret_zone)
{
	msgpack_unpacked u;
	const char *why = "";
	int r;

	msgpack_unpacked_init(&u);
	r = mp_unpack(&u, p, len, &why);
	if (r < 0) {
		msgpack_unpacked_destroy(&u);
		return r == -EBADMSG ? env_fail_whole(ctx, "%s", why) : r;
	}
	*ret_obj = u.data;
	*ret_zone = msgpack_unpacked_release_zone(&u);
	return 0;
}

static int
env_key_cmp(const void *a, const void *b)
{
	const msgpack_object_str *x = &(*(const msgpack_object_kv *const *)a)->key.via.str;
	const msgpack_object_str *y = &(*(const msgpack_object_kv *const *)b)->key.via.str;

	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	/* An empty key may come with a NULL pointer: memcmp must not see it. */
	return x->size == 0 ? 0 : memcmp(x->ptr, y->ptr, x->size);
}

static bool
env_key_eq(const msgpack_object *a, const msgpack_object *b)
{
	return a->via.str.size == b->via.str.size &&
	       (a->via.str.size == 0 ||
		memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
}

/* Refuses a key that appears twice in map, whose keys are all strings. Small
 * maps compare pairs; large ones sort pointers, so that a map of many keys
 * does not cost their square. */
static int
env_check_dups(struct env_ctx *ctx, const msgpack_object_map *map)
{
	const msgpack_object_kv *dup = NULL;
	const msgpack_object_kv **v;

	if (map->size <= ENV_DUP_PAIRWISE) {
		for (uint32_t i = 1; i < map->size && dup == NULL; i++) {
			for (uint32_t k = 0; k < i; k++) {
				if (env_key_eq(&map->ptr[i].key, &map->ptr[k].key)) {
					dup = &map->ptr[i];
					break;
				}
			}
		}
	} else {
		v = malloc(map->size * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		for (uint32_t i = 0; i < map->size; i++)
			v[i] = &map->ptr[i];
		qsort(v, map->size, sizeof(*v), env_key_cmp);
		for (uint32_t i = 1; i < map->size && dup == NULL; i++) {
			if (env_key_eq(&v[i]->key, &v[i - 1]->key))
				dup = v[i];
		}
		free(v);
	}
	if (dup == NULL)
		return 0;
	env_push_key(ctx, dup->key.via.str.ptr, dup->key.via.str.size);
	return env_fail(ctx, "duplicate key");
}

/* Checks an unpacked tree against what JSON input would have produced: string
 * keys, no repeated key, UTF-8 strings, int64 integers, no ext, and bytes under
 * "data" as bin. The depth was checked by mp_unpack(). */
static int
env_check_mp(struct env_ctx *ctx, const msgpack_object *o)
{
	int r;

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		if (!mp_utf8_valid(o->via.str.ptr, o->via.str.size))
			return env_fail(ctx, "invalid UTF-8");
		return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return env_fail(ctx, "integer out of range");
		return 0;
	case MSGPACK_OBJECT_EXT:
		return env_fail(ctx, "ext types are not supported");
	case MSGPACK_OBJECT_ARRAY:
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			env_push_index(ctx, i);
			r = env_check_mp(ctx, &o->via.array.ptr[i]);
			if (r < 0)
				return r;
			ctx->depth--;
		}
		return 0;
	case MSGPACK_OBJECT_MAP:
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;

			if (k->type != MSGPACK_OBJECT_STR)
				return env_fail(ctx, "map key %" PRIu32 " is not a string", i);
			if (!mp_utf8_valid(k->via.str.ptr, k->via.str.size)) {
				env_push_key(ctx, k->via.str.ptr, k->via.str.size);
				return env_fail(ctx, "key is not valid UTF-8");
			}
			/* JSON objects cannot hold such a key: refused, so that every
			 * accepted envelope encodes back to JSON (fuzz_env round trip). */
			if (k->via.str.size > 0 && memchr(k->via.str.ptr, '\0', k->via.str.size)) {
				env_push_key(ctx, k->via.str.ptr, k->via.str.size);
				return env_fail(ctx, "key holds a NUL byte");
			}
		}
		r = env_check_dups(ctx, &o->via.map);
		if (r < 0)
			return r;
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];

			env_push_key(ctx, kv->key.via.str.ptr, kv->key.via.str.size);
			if (kv->val.type == MSGPACK_OBJECT_STR &&
			    env_is_data_key(kv->key.via.str.ptr, kv->key.via.str.size))
				return env_fail(ctx, "expected bin");
			r = env_check_mp(ctx, &kv->val);
			if (r < 0)
				return r;
			ctx->depth--;
		}
		return 0;
	default:
		return 0;
	}
}

/* A zone copy of n bytes of s. */
static const char *
env_zone_dup(msgpack_zone *zone, const char *s, size_t n)
{
	char *p;

	if (n == 0)
		return env_nothing;
	p = msgpack_zone_malloc_no_align(zone, n);
	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

static int env_from_json(struct env_ctx *ctx, json_t *j, msgpack_object *o, unsigned depth,
			 bool is_data);

static int
env_from_json_object(struct env_ctx *ctx, json_t *j, msgpack_object *o, unsigned depth)
{
	size_t n = json_object_size(j);
	msgpack_object_kv *kv = NULL;
	uint32_t i = 0;
	int r;

	if (n > 0) {
		kv = msgpack_zone_malloc(ctx->zone, n * sizeof(*kv));
		if (kv == NULL)
			return -ENOMEM;
	}
	for (void *it = json_object_iter(j); it != NULL; it = json_object_iter_next(j, it), i++) {
		const char *key = json_object_iter_key(it);
		size_t len = json_object_iter_key_len(it);

		kv[i].key.type = MSGPACK_OBJECT_STR;
		kv[i].key.via.str.size = (uint32_t)len;
		kv[i].key.via.str.ptr = env_zone_dup(ctx->zone, key, len);
		if (kv[i].key.via.str.ptr == NULL)
			return -ENOMEM;
		env_push_key(ctx, key, len);
		r = env_from_json(ctx, json_object_iter_value(it), &kv[i].val, depth,
				  env_is_data_key(key, len));
		if (r < 0)
			return r;
		ctx->depth--;
	}
	o->type = MSGPACK_OBJECT_MAP;
	o->via.map.size = (uint32_t)n;
	o->via.map.ptr = kv;
	return 0;
}

static int
env_from_json_array(struct env_ctx *ctx, json_t *j, msgpack_object *o, unsigned depth)
{
	size_t n = json_array_size(j);
	msgpack_object *v = NULL;
	int r;

	if (n > 0) {
		v = msgpack_zone_malloc(ctx->zone, n * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		env_push_index(ctx, (uint32_t)i);
		r = env_from_json(ctx, json_array_get(j, i), &v[i], depth, false);
		if (r < 0)
			return r;
		ctx->depth--;
	}
	o->type = MSGPACK_OBJECT_ARRAY;
	o->via.array.size = (uint32_t)n;
	o->via.array.ptr = v;
	return 0;
}

static int
env_from_json_string(struct env_ctx *ctx, json_t *j, msgpack_object *o, bool is_data)
{
	const char *s = json_string_value(j);
	size_t n = json_string_length(j);
	const char *bin = env_nothing;
	size_t bin_len = 0;
	char *out;

	if (!is_data) {
		o->type = MSGPACK_OBJECT_STR;
		o->via.str.size = (uint32_t)n;
		o->via.str.ptr = env_zone_dup(ctx->zone, s, n);
		return o->via.str.ptr != NULL ? 0 : -ENOMEM;
	}
	if (n > 0) {
		out = msgpack_zone_malloc_no_align(ctx->zone, B64_DECODED_MAX(n));
		if (out == NULL)
			return -ENOMEM;
		if (b64_decode_to(s, n, out, &bin_len) < 0)
			return env_fail(ctx, "invalid base64");
		bin = out;
	}
	o->type = MSGPACK_OBJECT_BIN;
	o->via.bin.size = (uint32_t)bin_len;
	o->via.bin.ptr = bin;
	return 0;
}

/* Converts j into o, allocating in ctx->zone. depth counts the containers
 * around j; is_data says j is the value of a "data" key. */
static int
env_from_json(struct env_ctx *ctx, json_t *j, msgpack_object *o, unsigned depth, bool is_data)
{
	json_int_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		if (depth + 1 > ENV_DEPTH_MAX)
			return env_fail(ctx, "nesting deeper than %d levels", ENV_DEPTH_MAX);
		if (json_is_object(j))
			return env_from_json_object(ctx, j, o, depth + 1);
		return env_from_json_array(ctx, j, o, depth + 1);
	case JSON_STRING:
		return env_from_json_string(ctx, j, o, is_data);
	case JSON_INTEGER:
		i = json_integer_value(j);
		if (i >= 0) {
			o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			o->via.u64 = (uint64_t)i;
		} else {
			o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			o->via.i64 = i;
		}
		return 0;
	case JSON_REAL:
		o->type = MSGPACK_OBJECT_FLOAT64;
		o->via.f64 = json_real_value(j);
		return 0;
	case JSON_TRUE:
	case JSON_FALSE:
		o->type = MSGPACK_OBJECT_BOOLEAN;
		o->via.boolean = json_is_true(j);
		return 0;
	case JSON_NULL:
	default:
		o->type = MSGPACK_OBJECT_NIL;
		return 0;
	}
}

/* A struct env inside zone, which it then owns. */
static struct env *
env_new_in(msgpack_zone *zone)
{
	struct env *env = msgpack_zone_malloc(zone, sizeof(*env));

	if (env == NULL)
		return NULL;
	*env = (struct env){ .zone = zone };
	env->empty.type = MSGPACK_OBJECT_MAP;
	return env;
}

static int
env_decode_msgpack(struct env_ctx *ctx, const void *buf, size_t len, struct env **ret_env)
{
	msgpack_object root;
	msgpack_zone *zone;
	struct env *env;
	int r;

	r = env_mp_unpack(ctx, buf, len, &root, &zone);
	if (r < 0)
		return r;
	if (root.type != MSGPACK_OBJECT_MAP) {
		r = env_fail(ctx, "expected a map");
		goto free_zone;
	}
	r = env_check_mp(ctx, &root);
	if (r < 0)
		goto free_zone;
	env = env_new_in(zone);
	if (env == NULL) {
		r = -ENOMEM;
		goto free_zone;
	}
	env->root = root;
	*ret_env = env;
	return 0;

free_zone:
	msgpack_zone_free(zone);
	return r;
}

static int
env_decode_json(struct env_ctx *ctx, const void *buf, size_t len, struct env **ret_env)
{
	json_error_t jerr;
	msgpack_zone *zone;
	struct env *env;
	json_t *root;
	int r;

	/* JSON_ALLOW_NUL: MessagePack strings may hold NUL too; JSON_DECODE_ANY
	 * so that a non-object root gets the same error as in MessagePack. */
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
			  &jerr);
	if (root == NULL) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		return env_fail_whole(ctx, "invalid JSON at line %d column %d: %s", jerr.line,
				      jerr.column, jerr.text);
	}
	if (!json_is_object(root)) {
		r = env_fail(ctx, "expected a map");
		goto decref_root;
	}
	zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (zone == NULL) {
		r = -ENOMEM;
		goto decref_root;
	}
	env = env_new_in(zone);
	if (env == NULL) {
		r = -ENOMEM;
		goto free_zone;
	}
	ctx->zone = zone;
	r = env_from_json(ctx, root, &env->root, 0, false);
	if (r < 0)
		goto free_zone;
	json_decref(root);
	*ret_env = env;
	return 0;

free_zone:
	msgpack_zone_free(zone);
decref_root:
	json_decref(root);
	return r;
}

/* Reads type, timestamp and payload out of the checked tree. */
static int
env_read_header(struct env_ctx *ctx, struct env *env)
{
	const msgpack_object *o;

	ctx->depth = 0;
	env_push_key(ctx, "type", 4);
	o = mp_map_get(&env->root, "type");
	if (o == NULL)
		return env_fail(ctx, "missing");
	if (o->type != MSGPACK_OBJECT_STR)
		return env_fail(ctx, "expected a string");
	if (o->via.str.size == 0)
		return env_fail(ctx, "empty");
	if (o->via.str.size > ENV_TYPE_MAX)
		return env_fail(ctx, "longer than %d bytes", ENV_TYPE_MAX);
	for (uint32_t i = 0; i < o->via.str.size; i++) {
		unsigned char c = (unsigned char)o->via.str.ptr[i];

		if (c < 0x20 || c >= 0x7f)
			return env_fail(ctx, "not printable ASCII");
	}
	memcpy(env->type, o->via.str.ptr, o->via.str.size);
	env->type[o->via.str.size] = '\0';

	ctx->depth = 0;
	env_push_key(ctx, "timestamp", 9);
	o = mp_map_get(&env->root, "timestamp");
	if (o != NULL) {
		/* Positive integers above INT64_MAX were refused already. */
		if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			env->timestamp = (int64_t)o->via.u64;
		else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			env->timestamp = o->via.i64;
		else
			return env_fail(ctx, "expected an integer");
		env->has_timestamp = true;
	}

	ctx->depth = 0;
	env_push_key(ctx, "payload", 7);
	o = mp_map_get(&env->root, "payload");
	if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
		env->payload = &env->empty;
	else if (o->type == MSGPACK_OBJECT_MAP)
		env->payload = o;
	else
		return env_fail(ctx, "expected a map");
	return 0;
}

int
env_decode(const void *buf, size_t len, enum env_enc enc, struct env **ret_env, char *err,
	   size_t errlen)
{
	struct env_ctx ctx = { .err = err, .errlen = errlen };
	struct env *env = NULL;
	int r;

	if (errlen > 0)
		err[0] = '\0';
	if (enc == ENV_JSON)
		r = env_decode_json(&ctx, buf, len, &env);
	else if (enc == ENV_MSGPACK)
		r = env_decode_msgpack(&ctx, buf, len, &env);
	else
		return -EINVAL;
	if (r < 0)
		return r;
	r = env_read_header(&ctx, env);
	if (r < 0)
		goto free_env;
	*ret_env = env;
	return 0;

free_env:
	env_free(env);
	return r;
}

void
env_free(struct env *env)
{
	/* env lives in its zone. */
	if (env != NULL)
		msgpack_zone_free(env->zone);
}

const char *
env_type(const struct env *env)
{
	return env->type;
}

bool
env_has_timestamp(const struct env *env)
{
	return env->has_timestamp;
}

int64_t
env_timestamp(const struct env *env)
{
	return env->timestamp;
}

const msgpack_object *
env_payload(const struct env *env)
{
	return env->payload;
}

const msgpack_object *
env_root(const struct env *env)
{
	return &env->root;
}

void
env_pack_header(msgpack_packer *pk, const char *type, int64_t timestamp)
{
	msgpack_pack_map(pk, 3);
	mp_pack_kv_str(pk, "type", type);
	mp_pack_kv_int(pk, "timestamp", timestamp);
	mp_pack_str(pk, "payload");
}

static int env_to_json(const msgpack_object *o, unsigned depth, json_t **ret_json);

static int
env_to_json_map(const msgpack_object_map *map, unsigned depth, json_t **ret_json)
{
	json_t *obj = json_object();
	json_t *val;
	int r;

	if (obj == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key;

		if (k->type != MSGPACK_OBJECT_STR ||
		    !mp_utf8_valid(k->via.str.ptr, k->via.str.size) ||
		    json_object_getn(obj, k->via.str.ptr, k->via.str.size) != NULL) {
			r = -EBADMSG;
			goto decref_obj;
		}
		r = env_to_json(&map->ptr[i].val, depth, &val);
		if (r < 0)
			goto decref_obj;
		if (json_object_setn_new_nocheck(obj, k->via.str.ptr, k->via.str.size, val) < 0) {
			r = -ENOMEM;
			goto decref_obj;
		}
	}
	*ret_json = obj;
	return 0;

decref_obj:
	json_decref(obj);
	return r;
}

static int
env_to_json_array(const msgpack_object_array *array, unsigned depth, json_t **ret_json)
{
	json_t *arr = json_array();
	json_t *val;
	int r;

	if (arr == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < array->size; i++) {
		r = env_to_json(&array->ptr[i], depth, &val);
		if (r < 0)
			goto decref_arr;
		if (json_array_append_new(arr, val) < 0) {
			r = -ENOMEM;
			goto decref_arr;
		}
	}
	*ret_json = arr;
	return 0;

decref_arr:
	json_decref(arr);
	return r;
}

static int
env_to_json_bin(const msgpack_object_bin *bin, json_t **ret_json)
{
	char *s;
	size_t n;
	json_t *j;
	int r;

	r = b64_encode(bin->ptr, bin->size, &s, &n);
	if (r < 0)
		return r;
	/* Base64 is ASCII: no UTF-8 check needed. */
	j = json_stringn_nocheck(s, n);
	free(s);
	if (j == NULL)
		return -ENOMEM;
	*ret_json = j;
	return 0;
}

/* Converts o into a new JSON value. -EBADMSG for what JSON cannot hold. */
static int
env_to_json(const msgpack_object *o, unsigned depth, json_t **ret_json)
{
	json_t *j;

	switch (o->type) {
	case MSGPACK_OBJECT_MAP:
	case MSGPACK_OBJECT_ARRAY:
		if (depth + 1 > ENV_DEPTH_MAX)
			return -EBADMSG;
		if (o->type == MSGPACK_OBJECT_MAP)
			return env_to_json_map(&o->via.map, depth + 1, ret_json);
		return env_to_json_array(&o->via.array, depth + 1, ret_json);
	case MSGPACK_OBJECT_BIN:
		return env_to_json_bin(&o->via.bin, ret_json);
	case MSGPACK_OBJECT_STR:
		if (!mp_utf8_valid(o->via.str.ptr, o->via.str.size))
			return -EBADMSG;
		j = json_stringn_nocheck(o->via.str.size > 0 ? o->via.str.ptr : env_nothing,
					 o->via.str.size);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return -EBADMSG;
		j = json_integer((json_int_t)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		j = json_integer(o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		/* JSON has no NaN or infinity; JSON.stringify() writes null too. */
		j = isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		j = json_boolean(o->via.boolean);
		break;
	case MSGPACK_OBJECT_NIL:
		j = json_null();
		break;
	default: /* ext */
		return -EBADMSG;
	}
	if (j == NULL)
		return -ENOMEM;
	*ret_json = j;
	return 0;
}

/* Dumps j compactly and takes it. */
static int
env_dump_json(json_t *j, char **ret_json, size_t *ret_len)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(j);
	if (s == NULL)
		return -ENOMEM;
	*ret_json = s;
	*ret_len = strlen(s);
	return 0;
}

int
env_msgpack_to_json(const void *mp, size_t len, char **ret_json, size_t *ret_len)
{
	struct env_ctx ctx = { .errlen = 0 };
	msgpack_object root;
	msgpack_zone *zone;
	json_t *j;
	int r;

	r = env_mp_unpack(&ctx, mp, len, &root, &zone);
	if (r < 0)
		return r;
	r = env_to_json(&root, 0, &j);
	msgpack_zone_free(zone);
	if (r < 0)
		return r;
	return env_dump_json(j, ret_json, ret_len);
}

int
env_encode(const struct env *env, enum env_enc enc, char **ret_buf, size_t *ret_len)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	json_t *j;
	size_t n;
	int r;

	if (enc == ENV_JSON) {
		r = env_to_json(&env->root, 0, &j);
		if (r < 0)
			return r;
		return env_dump_json(j, ret_buf, ret_len);
	}
	if (enc != ENV_MSGPACK)
		return -EINVAL;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	if (msgpack_pack_object(&pk, env->root) < 0) {
		r = -ENOMEM;
		goto destroy_sbuf;
	}
	n = sbuf.size;
	*ret_buf = msgpack_sbuffer_release(&sbuf);
	*ret_len = n;
	return 0;

destroy_sbuf:
	msgpack_sbuffer_destroy(&sbuf);
	return r;
}

bool
env_utf8_valid(const void *p, size_t len)
{
	/* jansson's check, the one its parser applies to every JSON string. */
	json_t *s;

	if (len == 0)
		return true;
	s = json_stringn(p, len);

	json_decref(s);
	return s != NULL;
}
