/* test_fwd: trusted_proxies (cfg_net.c: the key, its addresses and networks,
 * their match and text) and the client a trusted proxy's request names
 * (srv_fwd_pick: X-Forwarded-For right to left, then X-Real-IP).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "srv.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* An address as a 16-byte key, IPv4 v4-mapped. */
static void
key_of(const char *text, uint8_t key[16])
{
	memset(key, 0, 16);
	if (inet_pton(AF_INET, text, key + 12) == 1) {
		key[10] = key[11] = 0xff;
		return;
	}
	ck_assert_msg(inet_pton(AF_INET6, text, key) == 1, "%s", text);
}

START_TEST(test_parse_net)
{
	static const struct {
		const char *in, *out;
		unsigned bits;
	} good[] = {
		{ "127.0.0.1", "127.0.0.1", 128 },
		{ "::1", "::1", 128 },
		{ "10.0.0.0/8", "10.0.0.0/8", 104 },
		{ "192.168.1.0/24", "192.168.1.0/24", 120 },
		{ "0.0.0.0/0", "0.0.0.0/0", 96 },
		{ "2001:db8::/32", "2001:db8::/32", 32 },
		{ "2001:DB8:0::1", "2001:db8::1", 128 },
		{ "::/0", "::/0", 0 },
		{ "127.0.0.1/32", "127.0.0.1", 128 },
	};
	static const char *const bad[] = {
		"",        "/8",         "1.2.3",          "localhost",  "1.2.3.4/",  "1.2.3.4/33",
		"::1/129", "10.0.0.1/8", "1.2.3.4/08",     "1.2.3.4/-1", "1.2.3.4 ",  " 1.2.3.4",
		"[::1]",   "1.2.3.4:80", "2001:db8::1/32", "1.2.3.4/8x", "256.1.1.1", "01.2.3.4",
	};
	struct cfg_net net, untouched;
	char text[64];

	for (size_t i = 0; i < N(good); i++) {
		ck_assert_msg(cfg_parse_net(good[i].in, &net) == 0, "%s refused", good[i].in);
		ck_assert_uint_eq(net.bits, good[i].bits);
		cfg_fmt_net(text, sizeof(text), &net);
		ck_assert_str_eq(text, good[i].out);
	}
	memset(&untouched, 0xa5, sizeof(untouched));
	for (size_t i = 0; i < N(bad); i++) {
		net = untouched;
		ck_assert_msg(cfg_parse_net(bad[i], &net) == -EINVAL, "\"%s\" taken", bad[i]);
		ck_assert(memcmp(&net, &untouched, sizeof(net)) == 0);
	}
}
END_TEST

START_TEST(test_net_match)
{
	static const struct {
		const char *net, *addr;
		bool match;
	} cases[] = {
		{ "127.0.0.1", "127.0.0.1", true },
		{ "127.0.0.1", "127.0.0.2", false },
		{ "10.0.0.0/8", "10.255.1.2", true },
		{ "10.0.0.0/8", "11.0.0.0", false },
		{ "172.16.0.0/12", "172.31.9.9", true },
		{ "172.16.0.0/12", "172.32.0.1", false },
		{ "0.0.0.0/0", "203.0.113.9", true },
		{ "0.0.0.0/0", "::1", false },
		{ "::1", "::1", true },
		{ "::1", "127.0.0.1", false },
		{ "2001:db8::/32", "2001:db8:ffff::7", true },
		{ "2001:db8::/33", "2001:db8:8000::1", false },
		{ "::/0", "127.0.0.1", true }, /* every address, IPv4 ones as v4-mapped too */
	};
	struct cfg_net net;
	uint8_t key[16];

	for (size_t i = 0; i < N(cases); i++) {
		ck_assert_int_eq(cfg_parse_net(cases[i].net, &net), 0);
		key_of(cases[i].addr, key);
		ck_assert_msg(cfg_net_match(&net, 1, key) == cases[i].match, "%s in %s",
			      cases[i].addr, cases[i].net);
	}
	ck_assert(!cfg_net_match(NULL, 0, key));
}
END_TEST

/* Loads text as a config file; returns 0 or the error line in err. */
static int
load(const char *text, struct cfg **ret_cfg, char *err, size_t errlen)
{
	char path[] = "/tmp/test_fwd.XXXXXX";
	int fd = mkstemp(path), r;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	r = cfg_load(path, ret_cfg, err, errlen);
	/* Without the temporary path, so that the expected lines are constant. */
	if (r < 0 && strncmp(err, path, strlen(path)) == 0)
		memmove(err, err + strlen(path), strlen(err + strlen(path)) + 1);
	unlink(path);
	return r;
}

START_TEST(test_cfg_key)
{
	static const struct {
		const char *yaml, *err;
	} bad[] = {
		{ "trusted_proxies: 127.0.0.1\n",
		  ":1:18: trusted_proxies: expected a list of addresses such as [127.0.0.1], found "
		  "\"127.0.0.1\"" },
		{ "trusted_proxies: [127.0.0.1, nginx]\n",
		  ":1:30: trusted_proxies[1]: expected an IP address such as 127.0.0.1 or ::1, or a "
		  "network such as 10.0.0.0/8, found \"nginx\"" },
		{ "trusted_proxies:\n  - { a: 1 }\n",
		  ":2:5: trusted_proxies[0]: expected an IP address such as 127.0.0.1 or ::1, or a "
		  "network such as 10.0.0.0/8, found a map" },
		{ "trusted_proxies: [10.1.0.0/8]\n",
		  ":1:19: trusted_proxies[0]: expected an IP address such as 127.0.0.1 or ::1, or a "
		  "network such as 10.0.0.0/8, found \"10.1.0.0/8\"" },
	};
	char err[CFG_ERR_MAX], many[2048] = "trusted_proxies: [";
	struct cfg *cfg = NULL;
	json_t *j, *list;
	uint8_t key[16];

	ck_assert_int_eq(load("instance: a\n", &cfg, err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg->n_trusted_proxies, 0); /* trust nobody */
	j = cfg_to_json(cfg, true);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "trusted_proxies")), 0);
	json_decref(j);
	cfg_free(cfg);

	ck_assert_int_eq(load("trusted_proxies: [127.0.0.1, \"::1\", 10.0.0.0/8]\n", &cfg, err,
			      sizeof(err)),
			 0);
	ck_assert_uint_eq(cfg->n_trusted_proxies, 3);
	key_of("10.9.8.7", key);
	ck_assert(cfg_net_match(cfg->trusted_proxies, cfg->n_trusted_proxies, key));
	j = cfg_to_json(cfg, true);
	list = json_pack("[s, s, s]", "127.0.0.1", "::1", "10.0.0.0/8");
	ck_assert(json_equal(json_object_get(j, "trusted_proxies"), list));
	json_decref(list);
	json_decref(j);
	cfg_free(cfg);

	ck_assert_int_eq(load("trusted_proxies: null\n", &cfg, err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg->n_trusted_proxies, 0);
	cfg_free(cfg);

	for (size_t i = 0; i < N(bad); i++) {
		ck_assert_int_eq(load(bad[i].yaml, &cfg, err, sizeof(err)), -EINVAL);
		ck_assert_str_eq(err, bad[i].err);
	}
	for (int i = 0; i <= CFG_PROXIES_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.0.%d",
			 i ? ", " : "", i);
	strcat(many, "]\n");
	ck_assert_int_eq(load(many, &cfg, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, ":1:18: trusted_proxies: expected at most 32 addresses, found 33");
}
END_TEST

/* A live update replaces the list, checked as the file is. */
START_TEST(test_cfg_update)
{
	char err[CFG_ERR_MAX];
	struct cfg *cfg = NULL;
	json_t *over;

	over = json_pack("{s:[s]}", "trusted_proxies", "192.0.2.0/24");
	ck_assert_int_eq(cfg_load_over(NULL, over, &cfg, err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg->n_trusted_proxies, 1);
	ck_assert_uint_eq(cfg->trusted_proxies[0].bits, 120);
	cfg_free(cfg);
	json_decref(over);

	over = json_pack("{s:[s]}", "trusted_proxies", "proxy.example");
	ck_assert_int_eq(cfg_load_over(NULL, over, &cfg, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "config.update: trusted_proxies[0]: expected an IP address such as "
			      "127.0.0.1 or ::1, or a network such as 10.0.0.0/8, found "
			      "\"proxy.example\"");
	json_decref(over);
}
END_TEST

START_TEST(test_pick)
{
	static const struct {
		const char *xff;
		unsigned xff_n;
		const char *real_ip, *want; /* want NULL: nothing believed */
	} cases[] = {
		/* nginx: $proxy_add_x_forwarded_for appends the address it saw */
		{ "203.0.113.9", 1, NULL, "203.0.113.9" },
		{ "1.1.1.1, 203.0.113.9", 1, NULL, "203.0.113.9" }, /* a forged entry first */
		{ "garbage, 203.0.113.9", 1, NULL, "203.0.113.9" }, /* never read */
		/* a chain of trusted proxies: the first untrusted from the right */
		{ "198.51.100.1, 10.0.0.5, 127.0.0.1", 1, NULL, "198.51.100.1" },
		{ "10.0.0.5,127.0.0.1", 1, NULL, "10.0.0.5" }, /* all trusted: the leftmost */
		{ " 2001:db8::7 ,\t::1 ", 1, NULL, "2001:db8::7" },
		{ "203.0.113.9", 1, "198.51.100.7", "203.0.113.9" }, /* X-Forwarded-For first */
		/* not believed: then X-Real-IP, else nothing */
		{ "unknown", 1, "198.51.100.7", "198.51.100.7" },
		{ "203.0.113.9:4711", 1, NULL, NULL },
		{ "", 1, NULL, NULL },
		{ "203.0.113.9,", 1, NULL, NULL },
		{ "203.0.113.9", 2, NULL, NULL }, /* sent twice */
		{ "1.2.3.4, nope, 127.0.0.1", 1, NULL, NULL },
		{ NULL, 0, "198.51.100.7", "198.51.100.7" },
		{ NULL, 0, "[::1]", NULL },
		{ NULL, 0, NULL, NULL },
	};
	struct cfg_net nets[3];
	uint8_t key[16], want[16], untouched[16];
	int r;

	ck_assert_int_eq(cfg_parse_net("127.0.0.1", &nets[0]), 0);
	ck_assert_int_eq(cfg_parse_net("::1", &nets[1]), 0);
	ck_assert_int_eq(cfg_parse_net("10.0.0.0/8", &nets[2]), 0);
	memset(untouched, 0x5a, sizeof(untouched));
	for (size_t i = 0; i < N(cases); i++) {
		memcpy(key, untouched, 16);
		r = srv_fwd_pick(nets, N(nets), cases[i].xff, cases[i].xff_n, cases[i].real_ip,
				 key);
		if (cases[i].want == NULL) {
			ck_assert_msg(r == 0, "case %zu believed", i);
			ck_assert(memcmp(key, untouched, 16) == 0);
			continue;
		}
		ck_assert_msg(r == 1, "case %zu: nothing believed", i);
		key_of(cases[i].want, want);
		ck_assert_msg(memcmp(key, want, 16) == 0, "case %zu", i);
	}
	/* Without trusted proxies, the rightmost entry (the one proxy's). */
	ck_assert_int_eq(srv_fwd_pick(NULL, 0, "10.0.0.5, 127.0.0.1", 1, NULL, key), 1);
	key_of("127.0.0.1", want);
	ck_assert(memcmp(key, want, 16) == 0);
}
END_TEST

START_TEST(test_key_text)
{
	uint8_t key[16];
	char text[64];

	key_of("192.0.2.1", key);
	srv_key_text(key, text, sizeof(text));
	ck_assert_str_eq(text, "192.0.2.1"); /* never "::ffff:192.0.2.1" */
	key_of("2001:db8::1", key);
	srv_key_text(key, text, sizeof(text));
	ck_assert_str_eq(text, "2001:db8::1");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("fwd");
	TCase *tc = tcase_create("fwd");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_parse_net);
	tcase_add_test(tc, test_net_match);
	tcase_add_test(tc, test_cfg_key);
	tcase_add_test(tc, test_cfg_update);
	tcase_add_test(tc, test_pick);
	tcase_add_test(tc, test_key_text);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
