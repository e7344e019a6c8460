/* fuzz_listener: libFuzzer target for what a WebSocket listener receives
 * before the register: each input is written, as one client would, to a
 * real wss server (common/wss.c on common/srv.c, http1 and wslay) listening
 * on 127.0.0.1, whose stage answers a sentinel.register with a known token
 * and refuses everything else. The client then ends its side and reads until
 * the server closes; the loop runs until no connection is left, so every
 * input's memory is freed before the next (LeakSanitizer checks). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "env.h"
#include "mp.h"
#include "net.h"
#include "stage.h"
#include "tok.h"
#include "wss.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fl_conn {
	bool registered;
};

static struct stage *fl_st;
static struct wss *fl_wss;
static struct tok_store *fl_tok;
static unsigned fl_port;

static void
fl_message(void *ctx, struct wss_conn *c, const void *buf, size_t len, bool binary,
	   int64_t rx_done_us)
{
	struct fl_conn *fc = wss_conn_data(c);
	const struct tok_info *info;
	struct env *e = wss_decode(c, buf, len, binary);
	struct wss_msg m;

	if (e == NULL)
		return;
	if (fc->registered) {
		wss_send_error(c, 404, "unknown message type", env_type(e));
	} else if (strcmp(env_type(e), "sentinel.register") != 0) {
		wss_reject(c, 3001, "The first message must be sentinel.register");
	} else if (wss_conn_check_token(c, fl_tok, env_payload(e), CFG_ROLE_SENTINEL, &info) < 0) {
		wss_reject(c, 3001, "Invalid token");
	} else {
		fc->registered = true;
		wss_conn_registered(c);
		wss_msg_begin(&m, "server.registration.ack", 1);
		mp_pack_kv_str(&m.pk, "sentinelId", "00000000-0000-4000-8000-000000000000");
		wss_msg_send(c, &m);
	}
	env_free(e);
}

static void
fl_closed(void *ctx, struct wss_conn *c)
{
}

static void
fl_tick(void *ctx)
{
}

static const struct wss_ops fl_ops = {
	.protocol = "vigil-sentinel",
	.path = "/sentinel",
	.register_type = "sentinel.register",
	.restart_text = "restarting",
	.conn_size = sizeof(struct fl_conn),
	.message = fl_message,
	.closed = fl_closed,
	.tick = fl_tick,
};

static void
fl_init(void)
{
	char dir[] = "/tmp/fuzz_listener.XXXXXX", path[256];
	char *argv[] = { "fuzz_listener", "--config", path, NULL };
	FILE *f;
	int lfd;

	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/vigil.yaml", dir);
	f = fopen(path, "w");
	if (f == NULL)
		abort();
	fprintf(f,
		"instance: fuzz\nrun_dir: %s\ndata_dir: %s\nlog_level: error\n"
		"listen: { ingest: \"127.0.0.1:0\" }\n"
		"limits: { max_message_bytes: 1MiB, max_connections_per_ip: 0 }\n"
		"auth:\n  sentinel: required\n  tokens:\n"
		"    - { name: s, role: sentinel, token: \"fuzz-token\" }\n",
		dir, dir);
	fclose(f);
	fl_st = stage_new(BUS_INGEST, 3, argv);
	fl_tok = tok_store_new();
	if (fl_st == NULL || fl_tok == NULL || tok_store_load(fl_tok, stage_cfg(fl_st)) < 0)
		abort();
	fl_wss = wss_new(fl_st, &stage_cfg(fl_st)->listen_ingest, &fl_ops, NULL);
	lfd = stage_listen_fd(fl_st, &stage_cfg(fl_st)->listen_ingest);
	if (fl_wss == NULL || lfd < 0)
		abort();
	net_local_name(lfd, path, sizeof(path), &fl_port);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)fl_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	size_t sent = 0;
	bool shut = false;
	char buf[65536];
	int fd;

	if (fl_st == NULL) {
		fl_init();
		to.sin_port = htons((uint16_t)fl_port);
	}
	/* Closed with a reset, from 200 source addresses in turn: the server's
	 * TIME_WAITs after its own closes would otherwise use up the local
	 * ports of one address within a minute of inputs. */
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	static unsigned next_source;
	struct sockaddr_in from = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(0x7f000002u + next_source++ % 200) };

	/* Nonblocking from the start: libFuzzer's timer signals would interrupt
	 * a blocking connect. The loop below waits for it with the server. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0 ||
	    bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0 ||
	    (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 && errno != EINPROGRESS)) {
		perror("fuzz_listener: the client's socket");
		abort();
	}
	for (int round = 0; round < 1000; round++) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		if (poll(&p, 1, 0) == 1)
			break;
		wss_service(fl_wss, 1); /* the server accepts */
	}
	/* Bounded: the server closes within its own deadlines, every one far
	 * shorter than this many rounds of at most 1 ms. */
	for (int round = 0; round < 20000; round++) {
		ssize_t n;

		if (sent < size) {
			n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOTCONN)
				sent = size; /* the server closed: the rest is not taken */
		} else if (!shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		wss_service(fl_wss, 0);
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOTCONN))
			break;
	}
	close(fd);
	for (int round = 0; round < 20000 && wss_conn_count(fl_wss) > 0; round++)
		wss_service(fl_wss, 1);
	if (wss_conn_count(fl_wss) > 0)
		abort(); /* a connection the server never closed */
	return 0;
}
