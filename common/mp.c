/* mp: lookups in msgpack maps and key/value packing shorthands. */
#include <errno.h>
#include <string.h>

#include "mp.h"

bool
mp_str_eq(const msgpack_object *obj, const char *s)
{
	size_t n = strlen(s);

	return obj->type == MSGPACK_OBJECT_STR && obj->via.str.size == n &&
	       memcmp(obj->via.str.ptr, s, n) == 0;
}

const msgpack_object *
mp_map_get(const msgpack_object *map, const char *key)
{
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];

		if (mp_str_eq(&kv->key, key))
			return &kv->val;
	}
	return NULL;
}

/* Finds key and checks its type; NIL counts as missing. */
static int
mp_lookup(const msgpack_object *map, const char *key, msgpack_object_type type,
	  const msgpack_object **ret_obj)
{
	const msgpack_object *obj = mp_map_get(map, key);

	if (obj == NULL || obj->type == MSGPACK_OBJECT_NIL)
		return -ENOENT;
	if (obj->type != type)
		return -EINVAL;
	*ret_obj = obj;
	return 0;
}

int
mp_get_str(const msgpack_object *map, const char *key, const char **ret_str, size_t *ret_len)
{
	const msgpack_object *obj;
	int r = mp_lookup(map, key, MSGPACK_OBJECT_STR, &obj);

	if (r < 0)
		return r;
	*ret_str = obj->via.str.ptr;
	*ret_len = obj->via.str.size;
	return 0;
}

int
mp_get_strbuf(const msgpack_object *map, const char *key, char *buf, size_t size)
{
	const char *s;
	size_t n;
	int r = mp_get_str(map, key, &s, &n);

	if (r < 0)
		return r;
	if (n >= size || memchr(s, '\0', n) != NULL)
		return n >= size ? -ENAMETOOLONG : -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

int
mp_get_int(const msgpack_object *map, const char *key, int64_t *ret_val)
{
	const msgpack_object *obj = mp_map_get(map, key);

	if (obj == NULL || obj->type == MSGPACK_OBJECT_NIL)
		return -ENOENT;
	if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (obj->via.u64 > INT64_MAX)
			return -ERANGE;
		*ret_val = (int64_t)obj->via.u64;
		return 0;
	}
	if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*ret_val = obj->via.i64;
		return 0;
	}
	return -EINVAL;
}

int
mp_get_double(const msgpack_object *map, const char *key, double *ret_val)
{
	const msgpack_object *obj = mp_map_get(map, key);

	if (obj == NULL || obj->type == MSGPACK_OBJECT_NIL)
		return -ENOENT;
	switch (obj->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*ret_val = (double)obj->via.u64;
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*ret_val = (double)obj->via.i64;
		return 0;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*ret_val = obj->via.f64;
		return 0;
	default:
		return -EINVAL;
	}
}

int
mp_get_bool(const msgpack_object *map, const char *key, bool *ret_val)
{
	const msgpack_object *obj;
	int r = mp_lookup(map, key, MSGPACK_OBJECT_BOOLEAN, &obj);

	if (r < 0)
		return r;
	*ret_val = obj->via.boolean;
	return 0;
}

int
mp_get_bin(const msgpack_object *map, const char *key, const void **ret_data, size_t *ret_len)
{
	const msgpack_object *obj;
	int r = mp_lookup(map, key, MSGPACK_OBJECT_BIN, &obj);

	if (r < 0)
		return r;
	*ret_data = obj->via.bin.ptr;
	*ret_len = obj->via.bin.size;
	return 0;
}

int
mp_get_map(const msgpack_object *map, const char *key, const msgpack_object **ret_map)
{
	return mp_lookup(map, key, MSGPACK_OBJECT_MAP, ret_map);
}

int
mp_get_array(const msgpack_object *map, const char *key, const msgpack_object **ret_array)
{
	return mp_lookup(map, key, MSGPACK_OBJECT_ARRAY, ret_array);
}

void
mp_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void
mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
	mp_pack_str(pk, key);
	if (val == NULL)
		msgpack_pack_nil(pk);
	else
		mp_pack_str(pk, val);
}

void
mp_pack_kv_int(msgpack_packer *pk, const char *key, int64_t val)
{
	mp_pack_str(pk, key);
	msgpack_pack_int64(pk, val);
}

void
mp_pack_kv_double(msgpack_packer *pk, const char *key, double val)
{
	mp_pack_str(pk, key);
	msgpack_pack_double(pk, val);
}

void
mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
	mp_pack_str(pk, key);
	if (val)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void
mp_pack_kv_bin(msgpack_packer *pk, const char *key, const void *data, size_t len)
{
	mp_pack_str(pk, key);
	msgpack_pack_bin(pk, len);
	msgpack_pack_bin_body(pk, data, len);
}
