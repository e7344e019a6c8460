/* bench_proctor: the proctors of the relay benchmark (issue 4). N WebSocket
 * clients on one epoll loop, each registered with relay's /proctor and
 * subscribed to K of the sentinels that bench_relay streams.
 *
 * Why not libwebsockets here: its 4.1 client parses every payload byte through
 * a state machine, so the earlier load generator spent 91% of its CPU in lws's
 * receive path and about 1 ms per 127 KB segment: its own queueing was most of
 * the "relay latency" it measured. Here wslay (a WebSocket frame library) parses
 * frames out of whole socket reads (unbuffered: each message is assembled here
 * in one buffer per connection that is reused, as malloc'ing a fresh 127 KB
 * buffer per message made page faults the largest cost) and http-parser reads
 * the upgrade response.
 *
 * Latency: this process's CLOCK_REALTIME when a server.segment is complete minus
 * its startTime, which bench_relay's sentinel stamps (ms, rounded) right before
 * the write that holds the segment's last byte: same host, same clock, +-0.5 ms.
 * Prints one JSON object; tests/bench_relay.py merges the processes.
 *
 * --reconnect (issue 13's rolling restart): a proctor closed with 1012 (relay
 * restarting) connects again at once and subscribes with startFrom "oldest";
 * the figures then say how long each took from its 1012 to its next
 * server.segment, whether a sequence was missed (a gap: a sequence above the
 * last one plus one, or a server.skip), and how many connections failed
 * otherwise (refused, closed with another code). Sequences seen before are
 * the catch-up's and are only counted. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <msgpack.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "b64.h"
#include "env.h"
#include "mp.h"

#define BP_RX_BUF   (256u << 10) /* one read: two segments' worth */
#define BP_MSG_MAX  (8u << 20)   /* largest message accepted */
#define BP_GRACE_MS 3000         /* after the window, for segments in flight */
#define BP_LAG_MS   10           /* the loop's own lateness is sampled this often */
#define BP_ID_MAX   64
#define BP_SUBS_MAX 64
#define BP_HDR_MAX  256
#define BP_WS_GUID  "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define BP_RESTART  1012 /* close code of a relay that restarts */

enum bp_state {
	BP_CONNECTING,
	BP_UPGRADING,
	BP_REGISTERING,
	BP_READY,
	BP_CLOSED,
};

struct bp_conn {
	struct bp *b;
	unsigned num; /* global proctor number: picks its sentinels */
	int fd;
	enum bp_state state;
	/* the upgrade */
	char accept[32]; /* expected Sec-WebSocket-Accept */
	http_parser hp;
	char field[BP_HDR_MAX], value[BP_HDR_MAX];
	size_t field_len, value_len;
	bool in_value, accept_ok;
	/* bytes read and not yet given to wslay */
	unsigned char *in;
	size_t in_pos, in_len;
	wslay_event_context_ptr ws;
	/* the message being received, over one or more frames */
	unsigned char *msg;
	size_t msg_len, msg_cap;
	uint8_t msg_opcode;
	bool frame_fin, msg_bad;
	int subs[BP_SUBS_MAX];
	uint64_t received[BP_SUBS_MAX];
	int64_t last_seq[BP_SUBS_MAX]; /* --reconnect: the highest sequence seen, -1 */
	uint32_t events;               /* epoll interest now */
	bool again;                    /* --reconnect: connected again after a 1012 */
	/* The close frame's code, read here: wslay (1.1) takes 1012, a code IANA
	 * registered after RFC 6455, for a protocol error and reports 1006. */
	bool in_close;
	unsigned char close_payload[2];
	size_t close_len;
	double closed_ms; /* then: when the 1012 came; 0 once streaming again */
};

struct bp_opts {
	const char *url, *token, *ids_in, *samples_out;
	unsigned sentinels, proctors, subs, first;
	int64_t start_ms, end_ms;
	bool reconnect;
};

struct bp {
	struct bp_opts o;
	char host[256], path[256], port[16];
	struct addrinfo *addr;
	int ep;
	struct bp_conn *conns;
	char (*ids)[BP_ID_MAX];
	unsigned ready;
	int phase; /* 0 setup, 1 waiting for the window, 2 measuring, 3 grace, 4 done */
	bool failed;
	char fail_reason[256];
	int64_t lag_due_ms, lag_max_us;
	uint64_t lag_over_10ms;
	double *lat_ms;
	size_t lat_n, lat_cap;
	uint64_t rx_bytes, rx_segments, skips, unmatched, closed_during_run;
	/* --reconnect */
	uint64_t restarts, back, gaps, missed, repeats, failures;
	double back_ms_max, back_ms_sum;
};

static double
bp_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
bp_fail(struct bp *b, const char *what, const char *detail)
{
	if (b->failed)
		return;
	b->failed = true;
	snprintf(b->fail_reason, sizeof(b->fail_reason), "%s: %s", what, detail);
}

static void bp_connect(struct bp_conn *c);

static void
bp_close(struct bp_conn *c, const char *why)
{
	struct bp *b = c->b;
	bool restart =
		c->close_len == 2 && (c->close_payload[0] << 8 | c->close_payload[1]) == BP_RESTART;

	if (c->state == BP_CLOSED)
		return;
	if (b->phase < 3 && !(b->o.reconnect && restart)) {
		b->closed_during_run++;
		if (b->o.reconnect)
			b->failures++;
		fprintf(stderr, "bench_proctor: proctor %u closed: %s\n", c->num, why);
	}
	if (b->phase <= 1 && !b->o.reconnect)
		bp_fail(b, "proctor connection", why);
	c->state = BP_CLOSED;
	close(c->fd);
	c->fd = -1;
	/* Relay restarts: back at once, as the web app does. (A close frame is
	 * read in wslay_event_recv, so bp_io is here now, outside wslay.) */
	if (b->o.reconnect && restart && b->phase < 3) {
		wslay_event_context_free(c->ws);
		c->ws = NULL;
		c->close_len = 0;
		c->in_pos = c->in_len = 0;
		c->msg_opcode = 0;
		b->restarts++;
		c->again = true;
		c->closed_ms = bp_unix_ms();
		bp_connect(c);
	}
}

static void
bp_want(struct bp_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->state == BP_CLOSED || events == c->events)
		return;
	if (epoll_ctl(c->b->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		bp_close(c, strerror(errno));
		return;
	}
	c->events = events;
}

/* Queues one msgpack envelope (binary frame) and asks to write it. */
static void
bp_queue(struct bp_conn *c, msgpack_sbuffer *sb)
{
	struct wslay_event_msg msg = {
		.opcode = WSLAY_BINARY_FRAME,
		.msg = (const uint8_t *)sb->data,
		.msg_length = sb->size,
	};

	if (wslay_event_queue_msg(c->ws, &msg) != 0) {
		bp_close(c, "wslay_event_queue_msg failed");
		return;
	}
	bp_want(c, EPOLLIN | EPOLLOUT);
}

static void
bp_register(struct bp_conn *c)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char name[64];

	snprintf(name, sizeof(name), "bench %u", c->num);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	env_pack_header(&pk, "proctor.register", time(NULL));
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "token", c->b->o.token);
	mp_pack_kv_str(&pk, "name", name);
	bp_queue(c, &sb);
	msgpack_sbuffer_destroy(&sb);
	c->state = BP_REGISTERING;
}

static void
bp_subscribe(struct bp_conn *c)
{
	struct bp *b = c->b;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	env_pack_header(&pk, "proctor.subscribe", time(NULL));
	/* Back after a restart: from the oldest join point, so that nothing the
	 * ring still holds is missed. */
	msgpack_pack_map(&pk, c->again ? 2 : 1);
	if (c->again)
		mp_pack_kv_str(&pk, "startFrom", "oldest");
	mp_pack_str(&pk, "sentinelIds");
	msgpack_pack_array(&pk, b->o.subs);
	for (unsigned j = 0; j < b->o.subs; j++) {
		unsigned s = (unsigned)(((uint64_t)c->num * b->o.subs + j) % b->o.sentinels);

		c->subs[j] = (int)s;
		mp_pack_str(&pk, b->ids[s]);
	}
	bp_queue(c, &sb);
	msgpack_sbuffer_destroy(&sb);
}

static void
bp_add_sample(struct bp *b, double ms)
{
	if (b->lat_n == b->lat_cap) {
		size_t cap = b->lat_cap ? b->lat_cap * 2 : 65536;
		double *p = realloc(b->lat_ms, cap * sizeof(*p));

		if (p == NULL) {
			bp_fail(b, "latency samples", "out of memory");
			return;
		}
		b->lat_ms = p;
		b->lat_cap = cap;
	}
	b->lat_ms[b->lat_n++] = ms;
}

/* --reconnect: a segment of sub j: the first after a 1012, and its sequence
 * against the last one seen. */
static void
bp_track(struct bp_conn *c, unsigned j, int64_t seq, double now)
{
	struct bp *b = c->b;

	if (c->closed_ms > 0) {
		double back = now - c->closed_ms;

		b->back++;
		b->back_ms_sum += back;
		if (back > b->back_ms_max)
			b->back_ms_max = back;
		c->closed_ms = 0;
	}
	if (c->last_seq[j] >= 0 && seq <= c->last_seq[j]) {
		b->repeats++; /* the catch-up after a reconnection */
		return;
	}
	if (c->last_seq[j] >= 0 && seq > c->last_seq[j] + 1) {
		b->gaps++;
		b->missed += (uint64_t)(seq - c->last_seq[j] - 1);
		fprintf(stderr, "bench_proctor: proctor %u missed %lld..%lld of sentinel %d\n",
			c->num, (long long)c->last_seq[j] + 1, (long long)seq - 1, c->subs[j]);
	}
	c->last_seq[j] = seq;
}

static void
bp_on_segment(struct bp_conn *c, const msgpack_object *payload, double now, size_t bytes)
{
	struct bp *b = c->b;
	const char *id;
	size_t id_len;
	int64_t start_ms, seq = -1;

	if (mp_get_str(payload, "sentinelId", &id, &id_len) < 0 ||
	    mp_get_int(payload, "startTime", &start_ms) < 0) {
		b->unmatched++;
		return;
	}
	if (b->o.reconnect && mp_get_int(payload, "sequence", &seq) == 0) {
		for (unsigned j = 0; j < b->o.subs; j++) {
			const char *want = b->ids[c->subs[j]];

			if (strlen(want) == id_len && memcmp(want, id, id_len) == 0)
				bp_track(c, j, seq, now);
		}
	}
	/* Counted and timed: the segments stamped inside the window. */
	if (start_ms < b->o.start_ms || start_ms >= b->o.end_ms)
		return;
	for (unsigned j = 0; j < b->o.subs; j++) {
		const char *want = b->ids[c->subs[j]];

		if (strlen(want) == id_len && memcmp(want, id, id_len) == 0) {
			c->received[j]++;
			b->rx_segments++;
			b->rx_bytes += bytes;
			bp_add_sample(b, now - (double)start_ms);
			return;
		}
	}
	b->unmatched++;
}

static void
bp_on_msg(struct bp_conn *c, uint8_t opcode, const unsigned char *msg, size_t len)
{
	struct bp *b = c->b;
	double now = bp_unix_ms();
	struct env *env;
	const char *type;
	const msgpack_object *payload;
	char err[128], reason[128] = "";

	if (env_decode(msg, len, opcode == WSLAY_BINARY_FRAME ? ENV_MSGPACK : ENV_JSON, &env, err,
		       sizeof(err)) < 0) {
		bp_fail(b, "invalid message from relay", err);
		return;
	}
	type = env_type(env);
	payload = env_payload(env);
	if (strcmp(type, "server.segment") == 0) {
		bp_on_segment(c, payload, now, len);
	} else if (strcmp(type, "server.registration.ack") == 0 && c->state == BP_REGISTERING) {
		c->state = BP_READY;
		bp_subscribe(c);
		if (!c->again && ++b->ready == b->o.proctors) {
			fprintf(stderr, "ready\n");
			fflush(stderr);
			b->phase = 1;
		}
	} else if (strcmp(type, "server.registration.reject") == 0) {
		mp_get_strbuf(payload, "reason", reason, sizeof(reason));
		bp_fail(b, "proctor refused", reason);
	} else if (strcmp(type, "server.skip") == 0) {
		b->skips++;
		if (b->o.reconnect)
			b->gaps++;
	} else if (strcmp(type, "server.error") == 0) {
		mp_get_strbuf(payload, "reason", reason, sizeof(reason));
		fprintf(stderr, "bench_proctor: server.error to proctor %u: %s\n", c->num, reason);
	}
	env_free(env);
}

/* wslay reads from what the loop has read; one recv(2) of up to BP_RX_BUF
 * refills it, so a segment is a read or two, not wslay's 4 KiB at a time. */
static ssize_t
bp_ws_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *user)
{
	struct bp_conn *c = user;
	size_t n;

	(void)flags;
	if (c->in_pos == c->in_len) {
		ssize_t r = recv(c->fd, c->in, BP_RX_BUF, 0);

		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
			return -1;
		}
		if (r <= 0) {
			wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
			return -1;
		}
		c->in_pos = 0;
		c->in_len = (size_t)r;
	}
	n = c->in_len - c->in_pos;
	if (n > len)
		n = len;
	memcpy(buf, c->in + c->in_pos, n);
	c->in_pos += n;
	return (ssize_t)n;
}

static ssize_t
bp_ws_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags, void *user)
{
	struct bp_conn *c = user;
	ssize_t r;

	(void)flags;
	r = send(c->fd, data, len, MSG_NOSIGNAL);
	if (r < 0) {
		wslay_event_set_error(ws, errno == EAGAIN || errno == EINTR
						  ? WSLAY_ERR_WOULDBLOCK
						  : WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return r;
}

static int
bp_ws_mask(wslay_event_context_ptr ws, uint8_t *buf, size_t len, void *user)
{
	(void)ws;
	(void)user;
	return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

/* Data frames, assembled here; wslay answers pings and closes itself. */
static void
bp_ws_frame_start(wslay_event_context_ptr ws, const struct wslay_event_on_frame_recv_start_arg *arg,
		  void *user)
{
	struct bp_conn *c = user;

	(void)ws;
	c->frame_fin = arg->fin;
	c->in_close = arg->opcode == WSLAY_CONNECTION_CLOSE;
	if (c->in_close)
		c->close_len = 0;
	if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
		c->msg_opcode = arg->opcode;
		c->msg_len = 0;
		c->msg_bad = false;
	} else if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
		c->frame_fin = false; /* a control frame within a message */
	}
}

static void
bp_ws_frame_chunk(wslay_event_context_ptr ws, const struct wslay_event_on_frame_recv_chunk_arg *arg,
		  void *user)
{
	struct bp_conn *c = user;

	(void)ws;
	for (size_t i = 0; c->in_close && i < arg->data_length && c->close_len < 2; i++)
		c->close_payload[c->close_len++] = arg->data[i];
	if (c->in_close || c->msg_opcode == 0 || c->msg_bad)
		return;
	if (c->msg_len + arg->data_length > BP_MSG_MAX) {
		c->msg_bad = true;
		bp_fail(c->b, "receive", "message larger than 8 MiB");
		return;
	}
	if (c->msg_len + arg->data_length > c->msg_cap) {
		size_t cap = c->msg_cap ? c->msg_cap : 4096;
		unsigned char *p;

		while (cap < c->msg_len + arg->data_length)
			cap *= 2;
		p = realloc(c->msg, cap);
		if (p == NULL) {
			c->msg_bad = true;
			bp_fail(c->b, "receive", "out of memory");
			return;
		}
		c->msg = p;
		c->msg_cap = cap;
	}
	memcpy(c->msg + c->msg_len, arg->data, arg->data_length);
	c->msg_len += arg->data_length;
}

static void
bp_ws_frame_end(wslay_event_context_ptr ws, void *user)
{
	struct bp_conn *c = user;

	(void)ws;
	if (!c->frame_fin || c->msg_opcode == 0)
		return;
	if (!c->msg_bad)
		bp_on_msg(c, c->msg_opcode, c->msg, c->msg_len);
	c->msg_opcode = 0;
}

static const struct wslay_event_callbacks bp_ws_callbacks = {
	.recv_callback = bp_ws_recv,
	.send_callback = bp_ws_send,
	.genmask_callback = bp_ws_mask,
	.on_frame_recv_start_callback = bp_ws_frame_start,
	.on_frame_recv_chunk_callback = bp_ws_frame_chunk,
	.on_frame_recv_end_callback = bp_ws_frame_end,
};

/* The upgrade response, through http-parser: status 101 and the accept key. */
static void
bp_hdr_pair(struct bp_conn *c)
{
	if (c->field_len == strlen("Sec-WebSocket-Accept") &&
	    strncasecmp(c->field, "Sec-WebSocket-Accept", c->field_len) == 0)
		c->accept_ok = c->value_len == strlen(c->accept) &&
			       memcmp(c->value, c->accept, c->value_len) == 0;
	c->field_len = c->value_len = 0;
	c->in_value = false;
}

static int
bp_hp_field(http_parser *hp, const char *at, size_t len)
{
	struct bp_conn *c = hp->data;

	if (c->in_value)
		bp_hdr_pair(c);
	if (c->field_len + len >= BP_HDR_MAX)
		return 1;
	memcpy(c->field + c->field_len, at, len);
	c->field_len += len;
	return 0;
}

static int
bp_hp_value(http_parser *hp, const char *at, size_t len)
{
	struct bp_conn *c = hp->data;

	c->in_value = true;
	if (c->value_len + len >= BP_HDR_MAX)
		return 1;
	memcpy(c->value + c->value_len, at, len);
	c->value_len += len;
	return 0;
}

static int
bp_hp_done(http_parser *hp)
{
	struct bp_conn *c = hp->data;

	if (c->in_value)
		bp_hdr_pair(c);
	return 0;
}

static http_parser_settings bp_hp_settings = {
	.on_header_field = bp_hp_field,
	.on_header_value = bp_hp_value,
	.on_headers_complete = bp_hp_done,
};

static void
bp_upgrade_read(struct bp_conn *c)
{
	ssize_t r = recv(c->fd, c->in + c->in_len, BP_RX_BUF - c->in_len, 0);
	size_t n;

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		bp_close(c, r == 0 ? "closed during the upgrade" : strerror(errno));
		return;
	}
	n = http_parser_execute(&c->hp, &bp_hp_settings, (const char *)c->in + c->in_len,
				(size_t)r);
	c->in_len += (size_t)r;
	if (!c->hp.upgrade) {
		if (HTTP_PARSER_ERRNO(&c->hp) != HPE_OK || c->in_len == BP_RX_BUF)
			bp_close(c, "the upgrade response does not parse");
		return; /* more of the response to come */
	}
	if (c->hp.status_code != 101 || !c->accept_ok) {
		bp_close(c, "the upgrade was refused or its accept key is wrong");
		return;
	}
	/* What follows the headers is already WebSocket data. */
	c->in_pos = c->in_len - (size_t)r + n;
	if (wslay_event_context_client_init(&c->ws, &bp_ws_callbacks, c) != 0) {
		bp_close(c, "wslay_event_context_client_init failed");
		return;
	}
	wslay_event_config_set_max_recv_msg_length(c->ws, BP_MSG_MAX);
	wslay_event_config_set_no_buffering(c->ws, 1);
	bp_register(c);
}

static int
bp_accept_key(const char *key, char out[32])
{
	char in[64];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len;
	char *b64;
	size_t b64_len;
	int r;

	snprintf(in, sizeof(in), "%s%s", key, BP_WS_GUID);
	if (EVP_Digest(in, strlen(in), md, &md_len, EVP_sha1(), NULL) != 1)
		return -EIO;
	r = b64_encode(md, md_len, &b64, &b64_len);
	if (r < 0)
		return r;
	snprintf(out, 32, "%.*s", (int)b64_len, b64);
	free(b64);
	return 0;
}

/* Connected: sends the upgrade request, which a fresh socket takes whole. */
static void
bp_upgrade_send(struct bp_conn *c)
{
	struct bp *b = c->b;
	unsigned char nonce[16];
	char *key, req[1024];
	size_t key_len;
	int err = 0, n;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		bp_close(c, strerror(err ? err : errno));
		return;
	}
	if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce) ||
	    b64_encode(nonce, sizeof(nonce), &key, &key_len) < 0) {
		bp_close(c, "no key");
		return;
	}
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\n\r\n",
		     b->path, b->host, b->port, key);
	err = bp_accept_key(key, c->accept);
	free(key);
	if (err < 0 || send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		bp_close(c, "the upgrade request was not sent");
		return;
	}
	http_parser_init(&c->hp, HTTP_RESPONSE);
	c->hp.data = c;
	c->state = BP_UPGRADING;
	bp_want(c, EPOLLIN);
}

static void
bp_connect(struct bp_conn *c)
{
	struct bp *b = c->b;
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	int one = 1;

	c->accept_ok = false;
	c->field_len = c->value_len = 0;
	c->in_value = false;
	c->fd = socket(b->addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		bp_fail(b, "socket", strerror(errno));
		c->state = BP_CLOSED;
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = BP_CONNECTING;
	c->events = EPOLLOUT;
	if ((connect(c->fd, b->addr->ai_addr, b->addr->ai_addrlen) < 0 && errno != EINPROGRESS) ||
	    epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		bp_close(c, strerror(errno));
}

static void
bp_io(struct bp_conn *c, uint32_t events)
{
	switch (c->state) {
	case BP_CONNECTING:
		bp_upgrade_send(c);
		return;
	case BP_UPGRADING:
		bp_upgrade_read(c);
		return;
	case BP_CLOSED:
		return;
	default:
		break;
	}
	if (((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && wslay_event_recv(c->ws) != 0) ||
	    ((events & EPOLLOUT) && wslay_event_send(c->ws) != 0) ||
	    (!wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws))) {
		char why[64];

		snprintf(why, sizeof(why), "closed (close code from relay: %d)",
			 c->close_len == 2 ? c->close_payload[0] << 8 | c->close_payload[1] : 1006);
		bp_close(c, why);
		return;
	}
	bp_want(c, EPOLLIN | (wslay_event_want_write(c->ws) ? EPOLLOUT : 0));
}

/* Phases by the wall clock; the loop's lateness against a 10 ms beat. */
static int
bp_timers(struct bp *b)
{
	double now = bp_unix_ms();
	int64_t ms = (int64_t)now, next;

	if (b->phase <= 1 && ms >= b->o.start_ms) {
		if (b->phase == 0) {
			bp_fail(b, "setup", "not every proctor registered by --start-ms");
			return 0;
		}
		fprintf(stderr, "measuring\n");
		fflush(stderr);
		b->phase = 2;
		b->lag_due_ms = ms + BP_LAG_MS;
	}
	if (b->phase == 2) {
		int64_t late_us = (int64_t)((now - (double)b->lag_due_ms) * 1000);

		if (ms >= b->lag_due_ms) {
			if (late_us > b->lag_max_us)
				b->lag_max_us = late_us;
			if (late_us > 10000)
				b->lag_over_10ms++;
			b->lag_due_ms = ms + BP_LAG_MS;
		}
		if (ms >= b->o.end_ms) {
			fprintf(stderr, "measured\n");
			fflush(stderr);
			b->phase = 3;
		}
	}
	if (b->phase == 3 && ms >= b->o.end_ms + BP_GRACE_MS)
		b->phase = 4;
	next = b->phase <= 1   ? b->o.start_ms
	       : b->phase == 2 ? b->lag_due_ms
			       : b->o.end_ms + BP_GRACE_MS;
	return next > ms ? (int)(next - ms) : 0;
}

static int
bp_cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

static double
bp_pct(const double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static int
bp_report(struct bp *b)
{
	uint64_t received = 0;
	FILE *f;

	for (unsigned i = 0; i < b->o.proctors; i++)
		for (unsigned j = 0; j < b->o.subs; j++)
			received += b->conns[i].received[j];
	qsort(b->lat_ms, b->lat_n, sizeof(*b->lat_ms), bp_cmp_double);
	printf("{\"role\": \"proctors\", \"sentinels\": %u, \"subscriptions\": %u, "
	       "\"seconds\": %.1f,\n",
	       b->o.sentinels, b->o.subs, (double)(b->o.end_ms - b->o.start_ms) / 1e3);
	printf(" \"first\": %u, \"proctors\": %u, \"latencyMsP50\": %.2f, "
	       "\"latencyMsP99\": %.2f, \"latencyMsMax\": %.2f, \"latencySamples\": %zu,\n",
	       b->o.first, b->o.proctors, bp_pct(b->lat_ms, b->lat_n, 0.50),
	       bp_pct(b->lat_ms, b->lat_n, 0.99), b->lat_n ? b->lat_ms[b->lat_n - 1] : 0.0,
	       b->lat_n);
	printf(" \"rxBytes\": %llu, \"rxSegments\": %llu, \"received\": %llu, \"skips\": %llu, "
	       "\"unmatched\": %llu,\n",
	       (unsigned long long)b->rx_bytes, (unsigned long long)b->rx_segments,
	       (unsigned long long)received, (unsigned long long)b->skips,
	       (unsigned long long)b->unmatched);
	if (b->o.reconnect) {
		unsigned streaming = 0;

		/* Back: a segment came after the last 1012; a proctor still
		 * without one counts against it. */
		for (unsigned i = 0; i < b->o.proctors; i++)
			streaming += b->conns[i].closed_ms == 0 && b->conns[i].state == BP_READY;
		printf(" \"restarts\": %llu, \"back\": %llu, \"streaming\": %u, "
		       "\"backMsMax\": %.1f, \"backMsAvg\": %.1f, \"gaps\": %llu, "
		       "\"missed\": %llu, \"repeats\": %llu, \"failures\": %llu,\n",
		       (unsigned long long)b->restarts, (unsigned long long)b->back, streaming,
		       b->back_ms_max, b->back ? b->back_ms_sum / (double)b->back : 0.0,
		       (unsigned long long)b->gaps, (unsigned long long)b->missed,
		       (unsigned long long)b->repeats, (unsigned long long)b->failures);
	}
	printf(" \"closed\": %llu, \"benchLoopLagMsMax\": %.1f, \"benchLoopLagsOver10Ms\": %llu}\n",
	       (unsigned long long)b->closed_during_run, (double)b->lag_max_us / 1e3,
	       (unsigned long long)b->lag_over_10ms);
	fflush(stdout);
	if (b->o.samples_out == NULL)
		return 0;
	f = fopen(b->o.samples_out, "we");
	if (f == NULL)
		goto fail;
	for (size_t i = 0; i < b->lat_n; i++)
		fprintf(f, "%.3f\n", b->lat_ms[i]);
	if (fclose(f) == 0)
		return 0;
fail:
	fprintf(stderr, "bench_proctor: %s: %s\n", b->o.samples_out, strerror(errno));
	return -1;
}

/* --ids FILE: the sentinels' ids, one a line, as bench_relay wrote them. */
static int
bp_read_ids(struct bp *b)
{
	FILE *f = fopen(b->o.ids_in, "re");
	char line[256];
	unsigned n = 0;

	if (f == NULL)
		return -errno;
	while (n < b->o.sentinels && fgets(line, sizeof(line), f) != NULL) {
		size_t len = strcspn(line, "\r\n");

		if (len == 0 || len >= BP_ID_MAX)
			continue;
		memcpy(b->ids[n], line, len);
		b->ids[n++][len] = '\0';
	}
	fclose(f);
	return n == b->o.sentinels ? 0 : -EINVAL;
}

/* ws://host:port/path, numeric or resolvable host. */
static int
bp_parse_url(struct bp *b, const char *url)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	const char *p = url + strlen("ws://"), *colon, *slash;

	if (strncmp(url, "ws://", 5) != 0 || (slash = strchr(p, '/')) == NULL ||
	    (colon = memchr(p, ':', (size_t)(slash - p))) == NULL ||
	    (size_t)(colon - p) >= sizeof(b->host) || (size_t)(slash - colon) > sizeof(b->port) ||
	    strlen(slash) >= sizeof(b->path))
		return -EINVAL;
	snprintf(b->host, sizeof(b->host), "%.*s", (int)(colon - p), p);
	snprintf(b->port, sizeof(b->port), "%.*s", (int)(slash - colon - 1), colon + 1);
	snprintf(b->path, sizeof(b->path), "%s", slash);
	return getaddrinfo(b->host, b->port, &hints, &b->addr) == 0 ? 0 : -EINVAL;
}

static void
bp_usage(FILE *f)
{
	fprintf(f, "usage: bench_proctor --url ws://127.0.0.1:P/proctor --token TOKEN --ids FILE\n"
		   "       --sentinels S --first I --count N [--subs 4] --start-ms UNIX_MS\n"
		   "       --end-ms UNIX_MS [--samples FILE] [--reconnect]\n"
		   "Proctors I..I+N-1, each subscribed to K of the S sentinels in FILE; one JSON\n"
		   "object of figures on stdout, 'ready', 'measuring', 'measured' on stderr.\n");
}

static int
bp_parse(struct bp_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token", required_argument, NULL, 't' },
		{ "ids", required_argument, NULL, 'i' },
		{ "samples", required_argument, NULL, 's' },
		{ "sentinels", required_argument, NULL, 'S' },
		{ "first", required_argument, NULL, 'F' },
		{ "count", required_argument, NULL, 'N' },
		{ "subs", required_argument, NULL, 'K' },
		{ "start-ms", required_argument, NULL, 'a' },
		{ "end-ms", required_argument, NULL, 'e' },
		{ "reconnect", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t now_ms = (int64_t)bp_unix_ms();
	int ch;

	*o = (struct bp_opts){ .subs = 4, .token = "" };
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		unsigned long v = optarg ? strtoul(optarg, NULL, 10) : 0;

		switch (ch) {
		case 'u':
			o->url = optarg;
			break;
		case 't':
			o->token = optarg;
			break;
		case 'i':
			o->ids_in = optarg;
			break;
		case 's':
			o->samples_out = optarg;
			break;
		case 'S':
			o->sentinels = (unsigned)v;
			break;
		case 'F':
			o->first = (unsigned)v;
			break;
		case 'N':
			o->proctors = (unsigned)v;
			break;
		case 'K':
			o->subs = (unsigned)v;
			break;
		case 'a':
			o->start_ms = strtoll(optarg, NULL, 10);
			break;
		case 'e':
			o->end_ms = strtoll(optarg, NULL, 10);
			break;
		case 'r':
			o->reconnect = true;
			break;
		case 'h':
			bp_usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	/* A window within the next hour, at most an hour long. */
	if (o->url == NULL || o->ids_in == NULL || optind != argc || o->sentinels == 0 ||
	    o->sentinels > 10000 || o->proctors == 0 || o->proctors > 100000 || o->subs == 0 ||
	    o->subs > BP_SUBS_MAX || o->subs > o->sentinels || o->first > 1000000 ||
	    o->start_ms < now_ms - 1000 || o->start_ms > now_ms + 3600000 ||
	    o->end_ms <= o->start_ms || o->end_ms - o->start_ms > 3600000)
		return -EINVAL;
	return 0;
}

int
main(int argc, char **argv)
{
	struct bp b = { .ep = -1 };
	struct epoll_event evs[256];
	int r, status = 1;

	if (bp_parse(&b.o, argc, argv) < 0) {
		bp_usage(stderr);
		return 2;
	}
	if (bp_parse_url(&b, b.o.url) < 0) {
		fprintf(stderr, "bench_proctor: --url must be ws://host:port/path\n");
		return 2;
	}
	b.ep = epoll_create1(EPOLL_CLOEXEC);
	b.conns = calloc(b.o.proctors, sizeof(*b.conns));
	b.ids = calloc(b.o.sentinels, sizeof(*b.ids));
	if (b.ep < 0 || b.conns == NULL || b.ids == NULL)
		goto out;
	r = bp_read_ids(&b);
	if (r < 0) {
		fprintf(stderr, "bench_proctor: %s: not %u ids: %s\n", b.o.ids_in, b.o.sentinels,
			strerror(-r));
		goto out;
	}
	for (unsigned i = 0; i < b.o.proctors && !b.failed; i++) {
		struct bp_conn *c = &b.conns[i];

		c->b = &b;
		c->num = b.o.first + i;
		c->fd = -1;
		c->state = BP_CLOSED;
		for (unsigned j = 0; j < BP_SUBS_MAX; j++)
			c->last_seq[j] = -1;
		c->in = malloc(BP_RX_BUF);
		if (c->in == NULL)
			goto out;
		bp_connect(c);
	}
	/* Bounded by the window whatever relay does. */
	while (!b.failed && b.phase < 4) {
		int n = epoll_wait(b.ep, evs, 256, bp_timers(&b));

		if (n < 0 && errno != EINTR) {
			bp_fail(&b, "epoll_wait", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++)
			bp_io(evs[i].data.ptr, evs[i].events);
	}
	if (b.failed)
		fprintf(stderr, "bench_proctor: %s\n", b.fail_reason);
	else
		status = bp_report(&b) < 0 ? 1 : 0;

out:
	for (unsigned i = 0; b.conns != NULL && i < b.o.proctors; i++) {
		if (b.conns[i].fd >= 0)
			close(b.conns[i].fd);
		if (b.conns[i].ws != NULL)
			wslay_event_context_free(b.conns[i].ws);
		free(b.conns[i].in);
		free(b.conns[i].msg);
	}
	if (b.ep >= 0)
		close(b.ep);
	if (b.addr != NULL)
		freeaddrinfo(b.addr);
	free(b.conns);
	free(b.ids);
	free(b.lat_ms);
	return status;
}
