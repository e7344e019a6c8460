/* test_env: the envelope codec in both encodings (round trips, the seed's
 * register, every kind of malformed input, zero-copy MessagePack decoding) and
 * the strict base64 it relies on. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "b64.h"
#include "env.h"
#include "mp.h"

#define ERR_LEN 256

/* Deterministic "random" bytes, so that a failure can be replayed. */
static void
fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 24);
	}
}

static char *
b64(const void *p, size_t n)
{
	char *s;
	size_t len;

	ck_assert_int_eq(b64_encode(p, n, &s, &len), 0);
	ck_assert_uint_eq(len, strlen(s));
	return s;
}

static int
decode_json(const char *s, struct env **ret_env, char *err)
{
	return env_decode(s, strlen(s), ENV_JSON, ret_env, err, ERR_LEN);
}

/* Asserts that a JSON text is refused and the error line contains want. */
static void
refuse_json(const char *s, const char *want)
{
	struct env *env = (struct env *)&env; /* must stay untouched */
	char err[ERR_LEN];

	ck_assert_int_eq(decode_json(s, &env, err), -EBADMSG);
	ck_assert_ptr_eq(env, (struct env *)&env);
	ck_assert_msg(strstr(err, want) != NULL, "input %s: error \"%s\" lacks \"%s\"", s, err,
		      want);
	ck_assert_ptr_null(strchr(err, '\n'));
}

static void
refuse_mp(const msgpack_sbuffer *sb, const char *want)
{
	struct env *env = (struct env *)&env;
	char err[ERR_LEN];

	ck_assert_int_eq(env_decode(sb->data, sb->size, ENV_MSGPACK, &env, err, sizeof(err)),
			 -EBADMSG);
	ck_assert_ptr_eq(env, (struct env *)&env);
	ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
}

static bool
json_same(const char *a, size_t alen, const char *b, size_t blen)
{
	json_t *x = json_loadb(a, alen, 0, NULL);
	json_t *y = json_loadb(b, blen, 0, NULL);
	bool same = x != NULL && y != NULL && json_equal(x, y);

	json_decref(x);
	json_decref(y);
	return same;
}

/* A packer writing into a fresh sbuffer. */
struct mpbuf {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void
mpbuf_init(struct mpbuf *m)
{
	msgpack_sbuffer_init(&m->sb);
	msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void
mpbuf_reset(struct mpbuf *m)
{
	msgpack_sbuffer_destroy(&m->sb);
	mpbuf_init(m);
}

START_TEST(test_seed_register)
{
	static const char seed[] = "{\"type\":\"sentinel.register\",\"timestamp\":1696969420}";
	struct env *env = NULL;
	char err[ERR_LEN];
	const msgpack_object *p;

	ck_assert_int_eq(decode_json(seed, &env, err), 0);
	ck_assert_str_eq(env_type(env), "sentinel.register");
	ck_assert(env_has_timestamp(env));
	ck_assert_int_eq(env_timestamp(env), 1696969420);
	p = env_payload(env);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->type, MSGPACK_OBJECT_MAP);
	ck_assert_uint_eq(p->via.map.size, 0);
	ck_assert_ptr_null(mp_map_get(p, "token"));
	env_free(env);

	/* null payload is the empty map too; whitespace around is fine. */
	ck_assert_int_eq(decode_json(" {\"type\":\"a.b\",\"payload\":null,\"x\":[1]}\n", &env, err),
			 0);
	ck_assert_int_eq(env_payload(env)->type, MSGPACK_OBJECT_MAP);
	ck_assert_uint_eq(env_payload(env)->via.map.size, 0);
	env_free(env);
	env_free(NULL);
}
END_TEST

START_TEST(test_missing_timestamp)
{
	struct env *env = NULL;
	char err[ERR_LEN];
	struct mpbuf m;
	const char *s;
	size_t n;

	ck_assert_int_eq(decode_json("{\"type\":\"sentinel.ping\"}", &env, err), 0);
	ck_assert_str_eq(env_type(env), "sentinel.ping");
	ck_assert(!env_has_timestamp(env));
	ck_assert_int_eq(env_timestamp(env), 0);
	env_free(env);

	ck_assert_int_eq(decode_json("{\"timestamp\":-5,\"type\":\"t\"}", &env, err), 0);
	ck_assert_int_eq(env_timestamp(env), -5);
	env_free(env);

	mpbuf_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "sentinel.bye");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_str(&m.pk, "reason", "done");
	ck_assert_int_eq(env_decode(m.sb.data, m.sb.size, ENV_MSGPACK, &env, err, sizeof(err)), 0);
	ck_assert(!env_has_timestamp(env));
	ck_assert_int_eq(mp_get_str(env_payload(env), "reason", &s, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert(memcmp(s, "done", 4) == 0);
	env_free(env);
	msgpack_sbuffer_destroy(&m.sb);
}
END_TEST

START_TEST(test_json_round_trip)
{
	uint8_t raw[1000], f0[3], f1[7];
	char *b_raw, *b_f0, *b_f1, *json, *mp, *json2, *json3;
	size_t mp_len, json2_len, json3_len;
	struct env *e1 = NULL, *e2 = NULL;
	const msgpack_object *frames;
	const void *bin;
	size_t bin_len;
	char err[ERR_LEN];

	fill_random(raw, sizeof(raw), 1);
	fill_random(f0, sizeof(f0), 2);
	fill_random(f1, sizeof(f1), 3);
	b_raw = b64(raw, sizeof(raw));
	b_f0 = b64(f0, sizeof(f0));
	b_f1 = b64(f1, sizeof(f1));
	ck_assert_int_ge(
		asprintf(&json,
			 "{\"type\":\"sentinel.frame\",\"timestamp\":1700000000,"
			 "\"payload\":{\"data\":\"%s\",\"name\":\"Hall A / seat 14 \\u00e9\","
			 "\"neg\":-42,\"big\":9223372036854775807,\"small\":"
			 "-9223372036854775808,\"real\":0.25,\"yes\":true,\"no\":false,"
			 "\"nothing\":null,\"empty\":{},\"list\":[],\"nested\":{\"a\":[1,"
			 "[2,{\"b\":\"c\"}]]},\"frames\":[{\"sentinelId\":\"s\",\"index\":0,"
			 "\"data\":\"%s\"},{\"index\":1,\"data\":\"%s\"},{\"data\":\"\"}]},"
			 "\"extra\":\"kept\"}",
			 b_raw, b_f0, b_f1),
		0);

	/* JSON -> env: data fields are bin. */
	ck_assert_msg(decode_json(json, &e1, err) == 0, "%s", err);
	ck_assert_int_eq(mp_get_bin(env_payload(e1), "data", &bin, &bin_len), 0);
	ck_assert_uint_eq(bin_len, sizeof(raw));
	ck_assert_mem_eq(bin, raw, sizeof(raw));
	ck_assert_int_eq(mp_get_array(env_payload(e1), "frames", &frames), 0);
	ck_assert_uint_eq(frames->via.array.size, 3);
	ck_assert_int_eq(mp_get_bin(&frames->via.array.ptr[1], "data", &bin, &bin_len), 0);
	ck_assert_uint_eq(bin_len, sizeof(f1));
	ck_assert_mem_eq(bin, f1, sizeof(f1));
	ck_assert_int_eq(mp_get_bin(&frames->via.array.ptr[2], "data", &bin, &bin_len), 0);
	ck_assert_uint_eq(bin_len, 0);
	ck_assert_int_eq(mp_map_get(env_payload(e1), "real")->type, MSGPACK_OBJECT_FLOAT64);
	ck_assert_int_eq(mp_map_get(env_payload(e1), "neg")->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	ck_assert_int_eq(mp_map_get(env_payload(e1), "big")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);

	/* env -> MessagePack -> env: the same tree. */
	ck_assert_int_eq(env_encode(e1, ENV_MSGPACK, &mp, &mp_len), 0);
	ck_assert_msg(env_decode(mp, mp_len, ENV_MSGPACK, &e2, err, sizeof(err)) == 0, "%s", err);
	ck_assert(msgpack_object_equal(*env_root(e1), *env_root(e2)));
	ck_assert_str_eq(env_type(e2), "sentinel.frame");
	ck_assert_int_eq(env_timestamp(e2), 1700000000);

	/* -> JSON: the same content as the input, both ways of getting there. */
	ck_assert_int_eq(env_encode(e2, ENV_JSON, &json2, &json2_len), 0);
	ck_assert_uint_eq(json2_len, strlen(json2));
	ck_assert_msg(json_same(json, strlen(json), json2, json2_len), "%s\n%s", json, json2);
	ck_assert_ptr_null(strchr(json2, '\n')); /* compact */
	ck_assert_int_eq(env_msgpack_to_json(mp, mp_len, &json3, &json3_len), 0);
	ck_assert(json_same(json, strlen(json), json3, json3_len));

	free(json3);
	free(json2);
	env_free(e2);
	free(mp);
	env_free(e1);
	free(json);
	free(b_f1);
	free(b_f0);
	free(b_raw);
}
END_TEST

START_TEST(test_msgpack_round_trip)
{
	uint8_t seg[4096];
	struct mpbuf m;
	struct env *e1 = NULL, *e2 = NULL;
	char *json, *mp;
	size_t json_len, mp_len;
	char err[ERR_LEN];

	fill_random(seg, sizeof(seg), 4);
	mpbuf_init(&m);
	env_pack_header(&m.pk, "sentinel.segment", 1700000001);
	msgpack_pack_map(&m.pk, 6);
	mp_pack_kv_int(&m.pk, "sequence", 7);
	mp_pack_kv_bin(&m.pk, "data", seg, sizeof(seg));
	mp_pack_kv_double(&m.pk, "duration", 2000.5);
	mp_pack_kv_bool(&m.pk, "keyframe", true);
	mp_pack_kv_str(&m.pk, "label", "caf\xc3\xa9");
	mp_pack_str(&m.pk, "frames");
	msgpack_pack_array(&m.pk, 1);
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_bin(&m.pk, "data", seg, 10);

	ck_assert_msg(env_decode(m.sb.data, m.sb.size, ENV_MSGPACK, &e1, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(env_encode(e1, ENV_JSON, &json, &json_len), 0);
	ck_assert_msg(decode_json(json, &e2, err) == 0, "%s", err);
	ck_assert(msgpack_object_equal(*env_root(e1), *env_root(e2)));
	ck_assert_int_eq(env_encode(e2, ENV_MSGPACK, &mp, &mp_len), 0);
	ck_assert_uint_eq(mp_len, m.sb.size);
	ck_assert_mem_eq(mp, m.sb.data, mp_len);

	free(mp);
	env_free(e2);
	free(json);
	env_free(e1);
	msgpack_sbuffer_destroy(&m.sb);
}
END_TEST

START_TEST(test_pack_header)
{
	struct mpbuf m;
	struct env *env = NULL;
	char err[ERR_LEN], *json;
	size_t json_len;
	int64_t seq;
	const void *bin;
	size_t bin_len;
	json_t *j;

	mpbuf_init(&m);
	env_pack_header(&m.pk, "server.segment", 1696969421);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_int(&m.pk, "sequence", 3);
	mp_pack_kv_bin(&m.pk, "data", "\x00\x01\x02", 3);
	ck_assert_int_eq(env_decode(m.sb.data, m.sb.size, ENV_MSGPACK, &env, err, sizeof(err)), 0);
	ck_assert_str_eq(env_type(env), "server.segment");
	ck_assert_int_eq(env_timestamp(env), 1696969421);
	ck_assert_int_eq(mp_get_int(env_payload(env), "sequence", &seq), 0);
	ck_assert_int_eq(seq, 3);
	ck_assert_int_eq(mp_get_bin(env_payload(env), "data", &bin, &bin_len), 0);
	ck_assert_uint_eq(bin_len, 3);
	env_free(env);

	/* The JSON form of a server message decodes too. */
	ck_assert_int_eq(env_msgpack_to_json(m.sb.data, m.sb.size, &json, &json_len), 0);
	j = json_loads(json, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "payload"), "data")),
			 "AAEC");
	json_decref(j);
	ck_assert_int_eq(decode_json(json, &env, err), 0);
	ck_assert_int_eq(mp_get_bin(env_payload(env), "data", &bin, &bin_len), 0);
	ck_assert_uint_eq(bin_len, 3);
	ck_assert_mem_eq(bin, "\x00\x01\x02", 3);
	env_free(env);
	free(json);

	/* An empty payload. */
	mpbuf_reset(&m);
	env_pack_header(&m.pk, "server.keyframe.request", 0);
	msgpack_pack_map(&m.pk, 0);
	ck_assert_int_eq(env_decode(m.sb.data, m.sb.size, ENV_MSGPACK, &env, err, sizeof(err)), 0);
	ck_assert_uint_eq(env_payload(env)->via.map.size, 0);
	ck_assert(env_has_timestamp(env));
	env_free(env);
	msgpack_sbuffer_destroy(&m.sb);
}
END_TEST

START_TEST(test_json_base64)
{
	struct env *env = NULL;
	char err[ERR_LEN];
	const void *bin;
	size_t n;
	static const char *const bad[] = {
		"QU*D",                           /* invalid character */
		"QUJD\n",                         /* whitespace */
		"QU JD",  " QUJD",    "QUJ",      /* wrong length */
		"QUJDQ",  "QQ=A",                 /* padding inside */
		"Q===",   "====",     "QQ==QUJD", /* padding before the end */
		"QR==",                           /* non-zero bits under the padding */
		"QUJ=",   "QUJD-_==",             /* url-safe alphabet */
	};

	ck_assert_int_eq(decode_json("{\"type\":\"t\",\"payload\":{\"data\":\"QUJD\"}}", &env, err),
			 0);
	ck_assert_int_eq(mp_get_bin(env_payload(env), "data", &bin, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(bin, "ABC", 3);
	env_free(env);
	ck_assert_int_eq(decode_json("{\"type\":\"t\",\"payload\":{\"data\":\"QQ==\"}}", &env, err),
			 0);
	ck_assert_int_eq(mp_get_bin(env_payload(env), "data", &bin, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_mem_eq(bin, "A", 1);
	env_free(env);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char json[128];
		json_t *s = json_string(bad[i]);
		char *q = json_dumps(s, JSON_ENCODE_ANY);

		snprintf(json, sizeof(json), "{\"type\":\"t\",\"payload\":{\"data\":%s}}", q);
		refuse_json(json, "payload.data: invalid base64");
		free(q);
		json_decref(s);
	}
	refuse_json("{\"type\":\"t\",\"payload\":{\"frames\":[{\"data\":\"QUJD\"},{\"data\":\"QU*"
		    "D\"}]}}",
		    "payload.frames[1].data: invalid base64");
	/* A string that is not under "data" is not base64. */
	ck_assert_int_eq(decode_json("{\"type\":\"t\",\"payload\":{\"datum\":\"QU*D\"}}", &env,
				     err),
			 0);
	env_free(env);
	/* Other types under "data" are left alone. */
	ck_assert_int_eq(decode_json("{\"type\":\"t\",\"payload\":{\"data\":{\"x\":1}}}", &env,
				     err),
			 0);
	ck_assert_int_eq(mp_map_get(env_payload(env), "data")->type, MSGPACK_OBJECT_MAP);
	env_free(env);
}
END_TEST

START_TEST(test_malformed_json)
{
	char type65[ENV_TYPE_MAX + 2], json[256];
	struct env *env = NULL;
	char err[ERR_LEN];

	refuse_json("42", "envelope: expected a map");
	refuse_json("[{\"type\":\"t\"}]", "envelope: expected a map");
	refuse_json("\"sentinel.register\"", "envelope: expected a map");
	refuse_json("null", "envelope: expected a map");
	refuse_json("{}", "type: missing");
	refuse_json("{\"payload\":{}}", "type: missing");
	refuse_json("{\"type\":\"\"}", "type: empty");
	refuse_json("{\"type\":5}", "type: expected a string");
	refuse_json("{\"type\":null}", "type: expected a string");
	refuse_json("{\"type\":[\"a\"]}", "type: expected a string");
	refuse_json("{\"type\":\"a\\u0001\"}", "type: not printable ASCII");
	refuse_json("{\"type\":\"caf\\u00e9\"}", "type: not printable ASCII");

	memset(type65, 'x', ENV_TYPE_MAX + 1);
	type65[ENV_TYPE_MAX + 1] = '\0';
	snprintf(json, sizeof(json), "{\"type\":\"%s\"}", type65);
	refuse_json(json, "type: longer than 64 bytes");
	type65[ENV_TYPE_MAX] = '\0';
	snprintf(json, sizeof(json), "{\"type\":\"%s\"}", type65);
	ck_assert_int_eq(decode_json(json, &env, err), 0);
	ck_assert_uint_eq(strlen(env_type(env)), ENV_TYPE_MAX);
	env_free(env);

	refuse_json("{\"type\":\"t\",\"timestamp\":\"1696969420\"}",
		    "timestamp: expected an integer");
	refuse_json("{\"type\":\"t\",\"timestamp\":1.5}", "timestamp: expected an integer");
	refuse_json("{\"type\":\"t\",\"timestamp\":null}", "timestamp: expected an integer");
	refuse_json("{\"type\":\"t\",\"payload\":[]}", "payload: expected a map");
	refuse_json("{\"type\":\"t\",\"payload\":\"x\"}", "payload: expected a map");
	refuse_json("{\"type\":\"t\",\"payload\":0}", "payload: expected a map");

	refuse_json("{\"type\":\"a\",\"type\":\"b\"}", "duplicate");
	refuse_json("{\"type\":\"a\",\"payload\":{\"x\":[{\"k\":1,\"k\":2}]}}", "duplicate");

	refuse_json("", "invalid JSON at line");
	refuse_json("{\"type\":", "invalid JSON at line 1 column");
	refuse_json("{\"type\":\"t\"} x", "invalid JSON");
	refuse_json("{\"type\":\"t\",}", "invalid JSON");
	refuse_json("{type:\"t\"}", "invalid JSON");
	refuse_json("{\"type\":\"t\",\"payload\":{\"n\":\"\xff\"}}", "invalid JSON");
	refuse_json("{\"type\":\"t\",\"payload\":{\"n\":\"\xc3\x28\"}}", "invalid JSON");
	refuse_json("{\"type\":\"t\",\"payload\":{\"n\":99999999999999999999}}", "invalid JSON");

	/* errlen 0 and a NULL err are fine. */
	ck_assert_int_eq(env_decode("[]", 2, ENV_JSON, &env, NULL, 0), -EBADMSG);
}
END_TEST

/* {"type":"t","payload":{"a":{"a":...}}} with depth maps in all. */
static char *
nested_json(int depth)
{
	size_t cap = 64 + (size_t)depth * 8;
	char *s = malloc(cap);
	size_t pos = 0;

	ck_assert_ptr_nonnull(s);
	pos += (size_t)snprintf(s + pos, cap - pos, "{\"type\":\"t\",\"payload\":");
	for (int i = 2; i < depth; i++)
		pos += (size_t)snprintf(s + pos, cap - pos, "{\"a\":");
	pos += (size_t)snprintf(s + pos, cap - pos, "[]");
	for (int i = 1; i < depth; i++)
		pos += (size_t)snprintf(s + pos, cap - pos, "}");
	return s;
}

static void
pack_nested(msgpack_packer *pk, int depth)
{
	msgpack_pack_map(pk, 2);
	mp_pack_kv_str(pk, "type", "t");
	mp_pack_str(pk, "payload");
	for (int i = 2; i < depth; i++) {
		msgpack_pack_map(pk, 1);
		mp_pack_str(pk, "a");
	}
	msgpack_pack_array(pk, 0);
}

START_TEST(test_depth)
{
	struct env *env = NULL;
	char err[ERR_LEN];
	char *s;
	struct mpbuf m;

	s = nested_json(ENV_DEPTH_MAX);
	ck_assert_msg(decode_json(s, &env, err) == 0, "%s", err);
	env_free(env);
	free(s);
	s = nested_json(ENV_DEPTH_MAX + 1);
	refuse_json(s, "nesting deeper than 32 levels");
	free(s);

	mpbuf_init(&m);
	pack_nested(&m.pk, ENV_DEPTH_MAX);
	ck_assert_msg(env_decode(m.sb.data, m.sb.size, ENV_MSGPACK, &env, err, sizeof(err)) == 0,
		      "%s", err);
	env_free(env);
	mpbuf_reset(&m);
	pack_nested(&m.pk, ENV_DEPTH_MAX + 1);
	refuse_mp(&m.sb, "nesting deeper than 32 levels");
	mpbuf_reset(&m);
	pack_nested(&m.pk, 200);
	refuse_mp(&m.sb, "nesting deeper than 32 levels");
	msgpack_sbuffer_destroy(&m.sb);
}
END_TEST

START_TEST(test_malformed_msgpack)
{
	struct mpbuf m;
	char type65[ENV_TYPE_MAX + 2];

	mpbuf_init(&m);
	msgpack_pack_array(&m.pk, 1);
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_str(&m.pk, "type", "t");
	refuse_mp(&m.sb, "envelope: expected a map");

	mpbuf_reset(&m);
	msgpack_pack_int(&m.pk, 5);
	refuse_mp(&m.sb, "envelope: expected a map");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_int(&m.pk, "timestamp", 1);
	refuse_mp(&m.sb, "type: missing");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_str(&m.pk, "type", "");
	refuse_mp(&m.sb, "type: empty");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_bin(&m.pk, "type", "t", 1);
	refuse_mp(&m.sb, "type: expected a string");

	memset(type65, 'y', ENV_TYPE_MAX + 1);
	type65[ENV_TYPE_MAX + 1] = '\0';
	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_str(&m.pk, "type", type65);
	refuse_mp(&m.sb, "type: longer than 64 bytes");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_kv_str(&m.pk, "timestamp", "1696969420");
	refuse_mp(&m.sb, "timestamp: expected an integer");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_kv_double(&m.pk, "timestamp", 1.0);
	refuse_mp(&m.sb, "timestamp: expected an integer");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_array(&m.pk, 0);
	refuse_mp(&m.sb, "payload: expected a map");

	/* Repeated keys, at the top and further down. */
	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "a");
	mp_pack_kv_str(&m.pk, "type", "b");
	refuse_mp(&m.sb, "type: duplicate key");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 3);
	mp_pack_kv_int(&m.pk, "a", 1);
	mp_pack_kv_int(&m.pk, "b", 2);
	mp_pack_kv_int(&m.pk, "a", 3);
	refuse_mp(&m.sb, "payload.a: duplicate key");

	/* A large map goes through the sorting check. */
	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 101);
	for (int i = 0; i < 100; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%d", i);
		mp_pack_kv_int(&m.pk, key, i);
	}
	mp_pack_kv_int(&m.pk, "k57", 0);
	refuse_mp(&m.sb, "payload.k57: duplicate key");

	/* Keys that are not strings. */
	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	msgpack_pack_int(&m.pk, 7);
	msgpack_pack_nil(&m.pk);
	refuse_mp(&m.sb, "envelope: map key 1 is not a string");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 1);
	msgpack_pack_bin(&m.pk, 1);
	msgpack_pack_bin_body(&m.pk, "k", 1);
	msgpack_pack_nil(&m.pk);
	refuse_mp(&m.sb, "payload: map key 0 is not a string");

	/* Bytes as a string. */
	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_str(&m.pk, "data", "QUJD");
	refuse_mp(&m.sb, "payload.data: expected bin");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 1);
	mp_pack_str(&m.pk, "frames");
	msgpack_pack_array(&m.pk, 2);
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_bin(&m.pk, "data", "x", 1);
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_str(&m.pk, "data", "x");
	refuse_mp(&m.sb, "payload.frames[1].data: expected bin");

	/* Strings that are not UTF-8, ext, integers beyond int64. */
	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 1);
	mp_pack_kv_str(&m.pk, "name", "\xc0\xaf");
	refuse_mp(&m.sb, "payload.name: invalid UTF-8");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 1);
	mp_pack_str(&m.pk, "x");
	msgpack_pack_ext(&m.pk, 1, 1);
	msgpack_pack_ext_body(&m.pk, "z", 1);
	refuse_mp(&m.sb, "payload.x: ext types are not supported");

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_str(&m.pk, "type", "t");
	mp_pack_str(&m.pk, "payload");
	msgpack_pack_map(&m.pk, 1);
	mp_pack_str(&m.pk, "n");
	msgpack_pack_uint64(&m.pk, UINT64_MAX);
	refuse_mp(&m.sb, "payload.n: integer out of range");

	msgpack_sbuffer_destroy(&m.sb);
}
END_TEST

START_TEST(test_msgpack_framing)
{
	struct mpbuf m;
	struct env *env = NULL;
	char err[ERR_LEN];
	char *json;
	size_t json_len;
	/* map32 announcing 2^32-1 entries, array32 2^28: must not allocate that. */
	static const uint8_t huge_map[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a' };
	static const uint8_t huge_arr[] = { 0x81, 0xa1, 'a', 0xdd, 0x0f, 0xff, 0xff, 0xff };
	static const uint8_t never_used[] = { 0x81, 0xa4, 't', 'y', 'p', 'e', 0xc1 };

	mpbuf_init(&m);
	env_pack_header(&m.pk, "sentinel.segment", 1);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_int(&m.pk, "sequence", 1);
	mp_pack_kv_bin(&m.pk, "data", "abcdef", 6);

	/* Every strict prefix is truncated. */
	for (size_t n = 0; n < m.sb.size; n++) {
		ck_assert_int_eq(env_decode(m.sb.data, n, ENV_MSGPACK, &env, err, sizeof(err)),
				 -EBADMSG);
		ck_assert_msg(strstr(err, n == 0 ? "empty" : "truncated") != NULL, "%zu: %s", n,
			      err);
		ck_assert_int_eq(env_msgpack_to_json(m.sb.data, n, &json, &json_len), -EBADMSG);
	}
	ck_assert_int_eq(env_decode(m.sb.data, m.sb.size, ENV_MSGPACK, &env, err, sizeof(err)), 0);
	env_free(env);

	/* Trailing bytes, even a second whole object. */
	msgpack_pack_nil(&m.pk);
	refuse_mp(&m.sb, "trailing bytes after the MessagePack object");
	ck_assert_int_eq(env_msgpack_to_json(m.sb.data, m.sb.size, &json, &json_len), -EBADMSG);
	env_pack_header(&m.pk, "x", 2);
	msgpack_pack_map(&m.pk, 0);
	refuse_mp(&m.sb, "trailing bytes");

	ck_assert_int_eq(env_decode(huge_map, sizeof(huge_map), ENV_MSGPACK, &env, err,
				    sizeof(err)),
			 -EBADMSG);
	ck_assert_int_eq(env_decode(huge_arr, sizeof(huge_arr), ENV_MSGPACK, &env, err,
				    sizeof(err)),
			 -EBADMSG);
	ck_assert_int_eq(env_decode(never_used, sizeof(never_used), ENV_MSGPACK, &env, err,
				    sizeof(err)),
			 -EBADMSG);
	ck_assert_msg(strstr(err, "0xc1") != NULL, "%s", err);
	msgpack_sbuffer_destroy(&m.sb);
}
END_TEST

START_TEST(test_zero_copy_segment)
{
	const size_t size = 4u << 20;
	uint8_t *seg = malloc(size);
	struct mpbuf m;
	struct env *env = NULL;
	char err[ERR_LEN];
	const void *bin;
	size_t bin_len;
	int64_t seq;

	ck_assert_ptr_nonnull(seg);
	fill_random(seg, size, 5);
	mpbuf_init(&m);
	env_pack_header(&m.pk, "sentinel.segment", 1700000002);
	msgpack_pack_map(&m.pk, 3);
	mp_pack_kv_int(&m.pk, "sequence", 42);
	mp_pack_kv_bin(&m.pk, "data", seg, size);
	mp_pack_kv_bool(&m.pk, "keyframe", true);

	/* Many decodes: each must cost a walk over the structure, not the bytes. */
	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(env_decode(m.sb.data, m.sb.size, ENV_MSGPACK, &env, err,
					    sizeof(err)),
				 0);
		if (i < 999)
			env_free(env);
	}
	ck_assert_int_eq(mp_get_int(env_payload(env), "sequence", &seq), 0);
	ck_assert_int_eq(seq, 42);
	ck_assert_int_eq(mp_get_bin(env_payload(env), "data", &bin, &bin_len), 0);
	ck_assert_uint_eq(bin_len, size);
	/* The bin is the input buffer itself. */
	ck_assert((const char *)bin > m.sb.data);
	ck_assert((const char *)bin + bin_len <= m.sb.data + m.sb.size);
	ck_assert_mem_eq(bin, seg, 64);
	ck_assert(memcmp(bin, seg, size) == 0);
	env_free(env);
	msgpack_sbuffer_destroy(&m.sb);
	free(seg);
}
END_TEST

START_TEST(test_large_json_data)
{
	const size_t size = 6u << 20; /* 8 MiB of base64 */
	uint8_t *raw = malloc(size);
	char *b, *json, *out;
	size_t b_len, out_len;
	struct env *env = NULL;
	char err[ERR_LEN];
	const void *bin;
	size_t bin_len;

	ck_assert_ptr_nonnull(raw);
	fill_random(raw, size, 6);
	ck_assert_int_eq(b64_encode(raw, size, &b, &b_len), 0);
	ck_assert_uint_eq(b_len, 8u << 20);
	ck_assert_int_ge(asprintf(&json,
				  "{\"type\":\"sentinel.init\",\"payload\":{\"data\":\"%s\"}}", b),
			 0);
	ck_assert_msg(decode_json(json, &env, err) == 0, "%s", err);
	ck_assert_int_eq(mp_get_bin(env_payload(env), "data", &bin, &bin_len), 0);
	ck_assert_uint_eq(bin_len, size);
	ck_assert(memcmp(bin, raw, size) == 0);
	ck_assert_int_eq(env_encode(env, ENV_JSON, &out, &out_len), 0);
	ck_assert(json_same(json, strlen(json), out, out_len));
	free(out);
	env_free(env);
	free(json);
	free(b);
	free(raw);
}
END_TEST

START_TEST(test_msgpack_to_json)
{
	struct mpbuf m;
	char *json;
	size_t len;

	mpbuf_init(&m);
	msgpack_pack_map(&m.pk, 6);
	mp_pack_kv_double(&m.pk, "nan", NAN);
	mp_pack_kv_double(&m.pk, "inf", INFINITY);
	mp_pack_str(&m.pk, "f32");
	msgpack_pack_float(&m.pk, 0.5f);
	mp_pack_kv_bin(&m.pk, "b", "", 0);
	mp_pack_kv_str(&m.pk, "s", "");
	mp_pack_str(&m.pk, "a");
	msgpack_pack_array(&m.pk, 2);
	msgpack_pack_int(&m.pk, -1);
	msgpack_pack_true(&m.pk);
	ck_assert_int_eq(env_msgpack_to_json(m.sb.data, m.sb.size, &json, &len), 0);
	ck_assert_str_eq(
		json,
		"{\"nan\":null,\"inf\":null,\"f32\":0.5,\"b\":\"\",\"s\":\"\",\"a\":[-1,true]}");
	ck_assert_uint_eq(len, strlen(json));
	free(json);

	/* Any object converts, not only envelopes. */
	mpbuf_reset(&m);
	msgpack_pack_array(&m.pk, 1);
	msgpack_pack_nil(&m.pk);
	ck_assert_int_eq(env_msgpack_to_json(m.sb.data, m.sb.size, &json, &len), 0);
	ck_assert_str_eq(json, "[null]");
	free(json);

	/* What JSON cannot hold. */
	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 1);
	msgpack_pack_int(&m.pk, 1);
	msgpack_pack_int(&m.pk, 2);
	json = (char *)&json;
	ck_assert_int_eq(env_msgpack_to_json(m.sb.data, m.sb.size, &json, &len), -EBADMSG);
	ck_assert_ptr_eq(json, (char *)&json);

	mpbuf_reset(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_pack_kv_int(&m.pk, "k", 1);
	mp_pack_kv_int(&m.pk, "k", 2);
	ck_assert_int_eq(env_msgpack_to_json(m.sb.data, m.sb.size, &json, &len), -EBADMSG);

	mpbuf_reset(&m);
	mp_pack_str(&m.pk, "\xff");
	ck_assert_int_eq(env_msgpack_to_json(m.sb.data, m.sb.size, &json, &len), -EBADMSG);

	mpbuf_reset(&m);
	msgpack_pack_uint64(&m.pk, UINT64_MAX);
	ck_assert_int_eq(env_msgpack_to_json(m.sb.data, m.sb.size, &json, &len), -EBADMSG);
	ck_assert_int_eq(env_msgpack_to_json("", 0, &json, &len), -EBADMSG);
	msgpack_sbuffer_destroy(&m.sb);
}
END_TEST

START_TEST(test_b64_codec)
{
	static const struct {
		const char *raw, *enc;
	} vec[] = {
		/* RFC 4648 section 10 */
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	static const char *const bad[] = {
		"Zg=", "Zg", "Z", "Zm9v\n", "Zm9v\r\n", "Zm 9v", "\tZm9v", "Zm9v ",
		"Zh==", "Zm9=", "Z===", "=Zm9", "Zm=v", "Zm9vY===", "Zm9v====", "Zm9-", "Zm9_",
		"Zm9\x80",
		/* whitespace in groups of four, which EVP_DecodeBlock would trim */
		"    Zm9v", "Zm9v    ", " Zm9", "Zm9 ", "Zm\n9", "Zm9v\r\n\r\n"
	};
	char *enc;
	void *dec;
	size_t len;
	uint8_t keep;

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		ck_assert_int_eq(b64_encode(vec[i].raw, strlen(vec[i].raw), &enc, &len), 0);
		ck_assert_str_eq(enc, vec[i].enc);
		ck_assert_uint_eq(len, strlen(vec[i].enc));
		free(enc);
		ck_assert_int_eq(b64_decode(vec[i].enc, strlen(vec[i].enc), &dec, &len), 0);
		ck_assert_ptr_nonnull(dec);
		ck_assert_uint_eq(len, strlen(vec[i].raw));
		ck_assert(memcmp(dec, vec[i].raw, len) == 0);
		free(dec);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dec = &keep;
		ck_assert_msg(b64_decode(bad[i], strlen(bad[i]), &dec, &len) == -EINVAL,
			      "accepted \"%s\"", bad[i]);
		ck_assert_ptr_eq(dec, &keep);
	}
	/* An embedded NUL is an invalid character, not an end. */
	ck_assert_int_eq(b64_decode("Zm9v\0\0\0\0", 8, &dec, &len), -EINVAL);
}
END_TEST

START_TEST(test_b64_large)
{
	const size_t size = 8u << 20; /* 8 MiB: 2^23 % 3 == 2, so one '=' */
	uint8_t *raw = malloc(size);
	char *enc;
	void *dec;
	size_t enc_len, dec_len;

	ck_assert_ptr_nonnull(raw);
	fill_random(raw, size, 7);
	ck_assert_int_eq(b64_encode(raw, size, &enc, &enc_len), 0);
	ck_assert_uint_eq(enc_len, B64_ENCODED_LEN(size));
	ck_assert_uint_eq(strlen(enc), enc_len);
	ck_assert_ptr_null(memchr(enc, '\n', enc_len));
	ck_assert_int_eq(enc[enc_len - 1], '=');
	ck_assert_int_eq(b64_decode(enc, enc_len, &dec, &dec_len), 0);
	ck_assert_uint_eq(dec_len, size);
	ck_assert(memcmp(dec, raw, size) == 0);
	free(dec);
	/* One bad character deep inside. */
	enc[enc_len / 2] = '.';
	ck_assert_int_eq(b64_decode(enc, enc_len, &dec, &dec_len), -EINVAL);
	free(enc);
	free(raw);
}
END_TEST

/* Found by fuzz_env: two empty keys (memcmp of a NULL pointer under UBSan), and
 * a key with a NUL byte, which no JSON object can hold. */
START_TEST(test_fuzz_found_keys)
{
	static const char empty_keys[] = { (char)0x82, (char)0xa0, (char)0xa0, (char)0xa0,
					   (char)0xa0 };
	static const char nul_key[] = { (char)0x82, (char)0xa4, 't',        'y', 'p', 'e',
					(char)0xa1, 'x',        (char)0xa2, 'a', 0,   (char)0xc0 };
	struct env *env = NULL;
	char err[ERR_LEN];

	ck_assert_int_eq(env_decode(empty_keys, sizeof(empty_keys), ENV_MSGPACK, &env, err,
				    sizeof(err)),
			 -EBADMSG);
	ck_assert_msg(strstr(err, "duplicate") != NULL, "%s", err);
	ck_assert_int_eq(env_decode(nul_key, sizeof(nul_key), ENV_MSGPACK, &env, err, sizeof(err)),
			 -EBADMSG);
	ck_assert_msg(strstr(err, "NUL") != NULL, "%s", err);
}
END_TEST

static void
add(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *
env_suite(void)
{
	Suite *s = suite_create("env");

	add(s, "seed_register", test_seed_register);
	add(s, "missing_timestamp", test_missing_timestamp);
	add(s, "json_round_trip", test_json_round_trip);
	add(s, "msgpack_round_trip", test_msgpack_round_trip);
	add(s, "pack_header", test_pack_header);
	add(s, "json_base64", test_json_base64);
	add(s, "malformed_json", test_malformed_json);
	add(s, "depth", test_depth);
	add(s, "malformed_msgpack", test_malformed_msgpack);
	add(s, "msgpack_framing", test_msgpack_framing);
	add(s, "zero_copy", test_zero_copy_segment);
	add(s, "large_json", test_large_json_data);
	add(s, "msgpack_to_json", test_msgpack_to_json);
	add(s, "fuzz_found_keys", test_fuzz_found_keys);
	return s;
}

/* base64 has no test program of its own: the envelope is its user. */
static Suite *
b64_suite(void)
{
	Suite *s = suite_create("b64");

	add(s, "codec", test_b64_codec);
	add(s, "large", test_b64_large);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(env_suite());
	int failed;

	srunner_add_suite(sr, b64_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
