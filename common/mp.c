/* mp: lookups in msgpack maps and key/value packing shorthands. */
#include <errno.h>
#include <string.h>

#include <jansson.h>

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

void *
mp_to_json(const msgpack_object *obj)
{
	json_t *j = NULL, *v;

	switch (obj->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(obj->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return json_integer(obj->via.u64 > INT64_MAX ? INT64_MAX : (json_int_t)obj->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer(obj->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(obj->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_stringn_nocheck(obj->via.str.ptr, obj->via.str.size);
	case MSGPACK_OBJECT_BIN:
		/* Bus bodies carry no bytes; show the size rather than dump them. */
		return json_integer((json_int_t)obj->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		j = json_array();
		for (uint32_t i = 0; j != NULL && i < obj->via.array.size; i++) {
			v = mp_to_json(&obj->via.array.ptr[i]);
			if (v == NULL || json_array_append_new(j, v) < 0)
				goto err_free;
		}
		return j;
	case MSGPACK_OBJECT_MAP:
		j = json_object();
		for (uint32_t i = 0; j != NULL && i < obj->via.map.size; i++) {
			const msgpack_object_kv *kv = &obj->via.map.ptr[i];
			char key[128];

			if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size >= sizeof(key))
				continue;
			memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
			key[kv->key.via.str.size] = '\0';
			v = mp_to_json(&kv->val);
			if (v == NULL || json_object_set_new(j, key, v) < 0)
				goto err_free;
		}
		return j;
	default:
		return json_null();
	}

err_free:
	json_decref(j);
	return NULL;
}
