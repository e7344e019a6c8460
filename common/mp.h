/* mp: small helpers over msgpack-c objects and packers, shared by the bus and
 * envelope codecs. Lookups return -ENOENT for a missing key and -EINVAL for a
 * key of the wrong type; ret_* stay untouched on failure. */
#ifndef VIGIL_MP_H
#define VIGIL_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

const msgpack_object *mp_map_get(const msgpack_object *map, const char *key);
bool mp_str_eq(const msgpack_object *obj, const char *s);

int mp_get_str(const msgpack_object *map, const char *key, const char **ret_str, size_t *ret_len);
/* Copies a string value into buf, NUL-terminated; -ENAMETOOLONG when it does not fit. */
int mp_get_strbuf(const msgpack_object *map, const char *key, char *buf, size_t size);
int mp_get_int(const msgpack_object *map, const char *key, int64_t *ret_val);
/* Accepts integers and floats. */
int mp_get_double(const msgpack_object *map, const char *key, double *ret_val);
int mp_get_bool(const msgpack_object *map, const char *key, bool *ret_val);
int mp_get_bin(const msgpack_object *map, const char *key, const void **ret_data, size_t *ret_len);
int mp_get_map(const msgpack_object *map, const char *key, const msgpack_object **ret_map);
int mp_get_array(const msgpack_object *map, const char *key, const msgpack_object **ret_array);

void mp_pack_str(msgpack_packer *pk, const char *s);
void mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
void mp_pack_kv_int(msgpack_packer *pk, const char *key, int64_t val);
void mp_pack_kv_double(msgpack_packer *pk, const char *key, double val);
void mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool val);
void mp_pack_kv_bin(msgpack_packer *pk, const char *key, const void *data, size_t len);

/* Packs a jansson json_t * (given as void *, as below) as the msgpack value
 * of the same shape: objects become maps, in the object's order. */
void mp_pack_json(msgpack_packer *pk, const void *json);

/* The object as a jansson json_t * (returned as void * to keep jansson out of
 * this header); BIN becomes its length (bus bodies carry no bytes).
 * NULL on allocation failure. Depth is bounded by msgpack-c's unpacker. */
void *mp_to_json(const msgpack_object *obj);

/* Deepest nesting of maps and arrays mp_unpack() accepts (the outermost
 * container is 1): msgpack-c's own stack, MSGPACK_EMBED_STACK_SIZE. */
#define MP_DEPTH_MAX 32

/* msgpack_unpack_next() for untrusted input. msgpack-c's C API has no limits:
 * it allocates each map and array for the count in its header before reading
 * an element, and calls nesting beyond its stack "out of memory". So buf is
 * first walked without allocating: it must hold exactly one object, no byte
 * after it, every count must fit in the bytes left, nesting at most
 * MP_DEPTH_MAX. Then it is unpacked into unp (msgpack_unpacked_init()ed by
 * the caller, who msgpack_unpacked_destroy()s it); strings and bins point into
 * buf. -EBADMSG with a static reason in *ret_why (may be NULL), -ENOMEM. */
int mp_unpack(msgpack_unpacked *unp, const void *buf, size_t len, const char **ret_why);

/* Copies len bytes of UTF-8 text into dst as a string, cut to size - 1 bytes
 * at a character boundary. */
void mp_copy_utf8(char *dst, size_t size, const char *src, size_t len);

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
bool mp_utf8_valid(const char *s, size_t len);

#endif
