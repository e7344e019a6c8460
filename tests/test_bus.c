/* test_bus: the control bus codec and its SOCK_SEQPACKET helpers. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "mp.h"

static size_t
pack_msg(msgpack_sbuffer *sb, const char *type, const char *to)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, type, "relay", to);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "sentinelId", "e0a1e92b-7aae-4885-b5f7-7f7a89fce101");
	mp_pack_kv_int(&pk, "n", -42);
	return sb->size;
}

START_TEST(test_round_trip)
{
	msgpack_sbuffer sb;
	struct bus_msg msg;
	const char *s;
	size_t n;
	int64_t v;

	pack_msg(&sb, "keyframe.request", "ingest");
	ck_assert_int_eq(bus_decode(sb.data, sb.size, &msg), 0);
	ck_assert_str_eq(msg.type, "keyframe.request");
	ck_assert_str_eq(msg.from, "relay");
	ck_assert_str_eq(msg.to, "ingest");
	ck_assert_int_eq(mp_get_str(msg.body, "sentinelId", &s, &n), 0);
	ck_assert_int_eq((int)n, 36);
	ck_assert_int_eq(mp_get_int(msg.body, "n", &v), 0);
	ck_assert_int_eq(v, -42);
	bus_msg_release(&msg);
	msgpack_sbuffer_destroy(&sb);

	/* "to" is optional */
	pack_msg(&sb, "heartbeat", NULL);
	ck_assert_int_eq(bus_decode(sb.data, sb.size, &msg), 0);
	ck_assert_str_eq(msg.to, "");
	bus_msg_release(&msg);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_malformed)
{
	static const char not_map[] = { (char)0x93, 1, 2, 3 };
	static const char huge_map[] = { (char)0xdf, (char)0xff, (char)0xff, (char)0xff,
					 (char)0xff };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct bus_msg msg;

	ck_assert_int_eq(bus_decode(not_map, sizeof(not_map), &msg), -EBADMSG);
	ck_assert_int_eq(bus_decode(huge_map, sizeof(huge_map), &msg), -EBADMSG);
	ck_assert_int_eq(bus_decode("", 0, &msg), -EBADMSG);

	/* truncated and with trailing bytes */
	pack_msg(&sb, "x", NULL);
	ck_assert_int_eq(bus_decode(sb.data, sb.size - 1, &msg), -EBADMSG);
	msgpack_sbuffer_write(&sb, "\0", 1);
	ck_assert_int_eq(bus_decode(sb.data, sb.size, &msg), -EBADMSG);
	msgpack_sbuffer_destroy(&sb);

	/* body not a map, missing from, empty type, overlong type */
	const char *types[] = { "ok", "ok", "",
				"a-type-name-that-is-far-too-long-for-the-bus-field-x" };
	for (int i = 0; i < 4; i++) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, i == 1 ? 2 : 3);
		mp_pack_kv_str(&pk, "type", types[i]);
		if (i != 1)
			mp_pack_kv_str(&pk, "from", "ingest");
		mp_pack_str(&pk, "body");
		if (i == 0)
			msgpack_pack_array(&pk, 0);
		else
			msgpack_pack_map(&pk, 0);
		ck_assert_int_eq(bus_decode(sb.data, sb.size, &msg), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
	}
}
END_TEST

START_TEST(test_stage_names)
{
	for (int i = 0; i < BUS_N_STAGES; i++)
		ck_assert_int_eq(bus_stage_parse(bus_stage_name(i)), i);
	ck_assert_int_eq(bus_stage_parse("vigild"), -EINVAL);
	ck_assert_int_eq(bus_stage_parse(""), -EINVAL);
}
END_TEST

/* A process's name: a stage, or one of its workers ("relay/1"). */
START_TEST(test_worker_names)
{
	static const char *const bad[] = {
		"relay/", "relay/8",  "relay/10", "relay/-1", "relay/ 1", "relay/1 ", "relay//1",
		"/1",     "vigild/0", "relay/a",  "relay 1",  "",         "relayx/1",
	};
	int worker = 5;

	ck_assert_int_eq(bus_name_parse("relay", &worker), BUS_RELAY);
	ck_assert_int_eq(worker, -1);
	ck_assert_int_eq(bus_name_parse("relay/0", &worker), BUS_RELAY);
	ck_assert_int_eq(worker, 0);
	ck_assert_int_eq(bus_name_parse("relay/7", &worker), BUS_RELAY);
	ck_assert_int_eq(worker, 7);
	ck_assert_int_eq(bus_name_parse("ingest/3", &worker), BUS_INGEST);
	ck_assert_int_eq(worker, 3);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(bus_name_parse(bad[i], &worker) == -EINVAL, "%s", bad[i]);
	ck_assert_str_eq(bus_stage_name(BUS_HTTPD), "httpd");
}
END_TEST

START_TEST(test_socket)
{
	char dir[] = "/tmp/vigil-bus-XXXXXX", path[64], *big;
	static char buf[BUS_MSG_MAX + 16];
	msgpack_sbuffer sb;
	struct bus_msg msg;
	int l, c, s;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/bus.sock", dir);
	l = bus_listen(path);
	ck_assert_int_ge(l, 0);
	c = bus_connect(path);
	ck_assert_int_ge(c, 0);
	s = accept(l, NULL, NULL);
	ck_assert_int_ge(s, 0);

	ck_assert_int_eq(bus_recv(s, buf, sizeof(buf)), -EAGAIN);
	pack_msg(&sb, "sentinel.online", "*");
	ck_assert_int_eq(bus_send(c, sb.data, sb.size), 0);
	ck_assert_int_eq(bus_recv(s, buf, sizeof(buf)), (int)sb.size);
	ck_assert_mem_eq(buf, sb.data, sb.size);
	ck_assert_int_eq(bus_decode(buf, sb.size, &msg), 0);
	ck_assert_str_eq(msg.type, "sentinel.online");
	bus_msg_release(&msg);
	msgpack_sbuffer_destroy(&sb);

	/* One packet is one message, up to BUS_MSG_MAX; larger is refused before sending. */
	big = calloc(1, BUS_MSG_MAX + 1);
	ck_assert_int_eq(bus_send(c, big, BUS_MSG_MAX + 1), -EMSGSIZE);
	ck_assert_int_eq(bus_send(c, big, BUS_MSG_MAX), 0);
	ck_assert_int_eq(bus_recv(s, buf, sizeof(buf)), BUS_MSG_MAX);
	free(big);

	close(c);
	ck_assert_int_eq(bus_recv(s, buf, sizeof(buf)), 0);
	close(s);
	close(l);
	ck_assert_int_eq(bus_connect("/nonexistent/bus.sock"), -ENOENT);
	unlink(path);
	rmdir(dir);
}
END_TEST

static Suite *
bus_suite(void)
{
	Suite *s = suite_create("bus");
	TCase *tc;

	tc = tcase_create("codec");
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_stage_names);
	tcase_add_test(tc, test_worker_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("socket");
	tcase_add_test(tc, test_socket);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(bus_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
