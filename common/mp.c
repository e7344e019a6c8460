/* mp: lookups in msgpack maps, key/value packing shorthands, and bounded
 * unpacking of untrusted input. */
#include <errno.h>
#include <string.h>

#include <jansson.h>
#include <msgpack/unpack_define.h>

#include "mp.h"

_Static_assert(MSGPACK_EMBED_STACK_SIZE >= MP_DEPTH_MAX, "msgpack-c unpacks less deep");

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

void
mp_pack_json(msgpack_packer *pk, const void *json)
{
	const json_t *j = json;
	const char *key;
	json_t *v;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach((json_t *)j, key, v)
		{
			mp_pack_str(pk, key);
			mp_pack_json(pk, v);
		}
		break;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v) mp_pack_json(pk, v);
		break;
	case JSON_STRING:
		msgpack_pack_str(pk, json_string_length(j));
		msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	default:
		msgpack_pack_nil(pk);
		break;
	}
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
		return json_integer(obj->via.u64 > INT64_MAX ? INT64_MAX
							     : (json_int_t)obj->via.u64);
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

			if (kv->key.type != MSGPACK_OBJECT_STR ||
			    kv->key.via.str.size >= sizeof(key))
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

#define MP_STR(x)  #x
#define MP_XSTR(x) MP_STR(x)

/* Walks one object from p without building it; *ret_end is the offset after it. */
static int
mp_scan(const uint8_t *p, size_t len, size_t *ret_end, const char **ret_why)
{
	uint64_t left[MP_DEPTH_MAX + 1]; /* elements still to read at each level */
	unsigned depth = 0;
	size_t off = 0;

	if (len == 0) {
		*ret_why = "empty message";
		return -EBADMSG;
	}
	left[0] = 1;
	for (;;) {
		uint64_t skip = 0, count = 0;
		size_t width = 0; /* of a length or count field */
		bool container = false, is_map = false;
		uint8_t b;

		if (off >= len)
			goto truncated;
		b = p[off++];
		switch (b) {
		case 0x00 ... 0x7f: /* positive fixint */
		case 0xe0 ... 0xff: /* negative fixint */
		case 0xc0:          /* nil */
		case 0xc2 ... 0xc3: /* false, true */
			break;
		case 0x80 ... 0x8f: /* fixmap */
			container = is_map = true;
			count = b & 0x0f;
			break;
		case 0x90 ... 0x9f: /* fixarray */
			container = true;
			count = b & 0x0f;
			break;
		case 0xa0 ... 0xbf: /* fixstr */
			skip = b & 0x1f;
			break;
		case 0xc4 ... 0xc6: /* bin 8, 16, 32 */
			width = (size_t)1 << (b - 0xc4);
			break;
		case 0xc7 ... 0xc9: /* ext 8, 16, 32: length, then a type byte */
			width = (size_t)1 << (b - 0xc7);
			skip = 1;
			break;
		case 0xca: /* float 32 */
			skip = 4;
			break;
		case 0xcb: /* float 64 */
			skip = 8;
			break;
		case 0xcc ... 0xcf: /* uint 8 to 64 */
			skip = (uint64_t)1 << (b - 0xcc);
			break;
		case 0xd0 ... 0xd3: /* int 8 to 64 */
			skip = (uint64_t)1 << (b - 0xd0);
			break;
		case 0xd4 ... 0xd8: /* fixext 1 to 16, after a type byte */
			skip = 1 + ((uint64_t)1 << (b - 0xd4));
			break;
		case 0xd9 ... 0xdb: /* str 8, 16, 32 */
			width = (size_t)1 << (b - 0xd9);
			break;
		case 0xdc ... 0xdd: /* array 16, 32 */
			container = true;
			width = (size_t)2 << (b - 0xdc);
			break;
		case 0xde ... 0xdf: /* map 16, 32 */
			container = is_map = true;
			width = (size_t)2 << (b - 0xde);
			break;
		default: /* 0xc1 */
			*ret_why = "invalid MessagePack: the never-used byte 0xc1";
			return -EBADMSG;
		}
		if (width > 0) {
			uint64_t n = 0;

			if (len - off < width)
				goto truncated;
			for (size_t k = 0; k < width; k++)
				n = n << 8 | p[off + k];
			off += width;
			if (container)
				count = n;
			else
				skip += n;
		}
		left[depth]--;
		if (container) {
			if (is_map)
				count *= 2;
			if (depth == MP_DEPTH_MAX) {
				*ret_why = "nesting deeper than " MP_XSTR(MP_DEPTH_MAX) " levels";
				return -EBADMSG;
			}
			/* Every element takes at least one byte. */
			if (count > len - off)
				goto truncated;
			left[++depth] = count;
		} else {
			if (skip > len - off)
				goto truncated;
			off += skip;
		}
		while (left[depth] == 0) {
			if (depth == 0) {
				*ret_end = off;
				return 0;
			}
			depth--;
		}
	}

truncated:
	*ret_why = "truncated MessagePack";
	return -EBADMSG;
}

int
mp_unpack(msgpack_unpacked *unp, const void *buf, size_t len, const char **ret_why)
{
	const char *why = NULL;
	size_t end = 0, off = 0;
	msgpack_unpack_return ur;
	int r;

	r = mp_scan(buf, len, &end, &why);
	if (r < 0)
		goto fail;
	if (end != len) {
		why = "trailing bytes after the MessagePack object";
		r = -EBADMSG;
		goto fail;
	}
	ur = msgpack_unpack_next(unp, buf, len, &off);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
		return -ENOMEM;
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		/* mp_scan() accepted it: msgpack-c should have too. */
		why = "invalid MessagePack";
		r = -EBADMSG;
		goto fail;
	}
	return 0;

fail:
	if (ret_why != NULL)
		*ret_why = why;
	return r;
}

bool
mp_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp, min;
		size_t more;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < more)
			return false;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += more + 1;
	}
	return true;
}

void
mp_copy_utf8(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
}
