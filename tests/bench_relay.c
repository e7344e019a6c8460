/* bench_relay: the sentinels of the relay benchmark (issue 4). S sentinels
 * register with ingest's /sentinel, write the sentinelIds they got (--ids-out
 * FILE, else stdout), one a line, and then each sends a segment of about
 * --segment-bytes once a second, staggered over the second. Right before the
 * write that holds a segment's last byte, the sentinel stamps its startTime with
 * CLOCK_REALTIME (ms, rounded): tests/bench_proctor, the proctors, take their
 * latency against it. --start-ms/--end-ms (unix ms) are the common window;
 * prints one JSON object of what it sent. tests/bench_relay.py runs both
 * against a vigild and merges them. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>
#include <msgpack.h>

#include "env.h"
#include "mp.h"

#define BR_CHUNK     (64u << 10) /* bytes per write: fragments of one message */
#define BR_RX_MAX    (8u << 20)  /* largest message a connection accepts */
#define BR_QUEUE_MAX 4           /* segments waiting per sentinel before dropping */
#define BR_GRACE_MS  3000        /* after the window, for segments still in flight */
#define BR_ID_MAX    64

enum br_state {
	BR_CONNECTING,
	BR_REGISTERING,
	BR_READY,
	BR_CLOSED,
};

/* One outgoing WebSocket message; buf has LWS_PRE bytes of headroom. */
struct br_msg {
	struct br_msg *next;
	unsigned char *buf;
	size_t len, off;
	bool text;
	int64_t seq;      /* a segment's sequence, else -1 */
	size_t stamp_off; /* startTime's 8 bytes (big-endian uint64), 0 = none */
};

struct br_conn {
	struct br_bench *b;
	unsigned idx;
	enum br_state state;
	struct lws *wsi;
	struct br_msg *q_head;
	unsigned q_segments;
	unsigned char *rx;
	size_t rx_len, rx_cap;
	bool rx_binary;
	/* sentinel */
	char id[BR_ID_MAX];
	int64_t next_seq;
	uint64_t win_sent; /* segments with a startTime inside the window */
	lws_sorted_usec_list_t sul_tick;
	int64_t tick_base_ns;
};

struct br_opts {
	const char *sentinel_url, *fixtures, *ids_out;
	unsigned sentinels;
	int64_t start_ms, end_ms; /* the window, unix ms */
	size_t segment_bytes;
};

struct br_bench {
	struct br_opts o;
	struct lws_context *ctx;
	char host[256], path[256];
	int port;
	struct br_conn *conns;
	char (*ids)[BR_ID_MAX]; /* the sentinelIds, by sentinel index */
	unsigned char *init;
	size_t init_len;
	unsigned char *seg;
	size_t seg_len;
	lws_sorted_usec_list_t sul_phase, sul_lag;
	int64_t lag_due_ns, lag_max_ns;
	uint64_t lag_over_10ms;
	int phase; /* 0 setup, 1 waiting for the window, 2 measuring, 3 grace, 4 done */
	unsigned sentinels_ready;
	bool failed;
	char fail_reason[256];
	uint64_t send_drops, partial_writes, closed_during_run;
};

static int64_t
br_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
br_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Rounded to the nearest ms: the error of a stamp is within +-0.5 ms. */
static int64_t
br_unix_ms_round(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + (ts.tv_nsec + 500000) / 1000000;
}

static void
br_fail(struct br_bench *b, const char *what, const char *detail)
{
	if (!b->failed)
		snprintf(b->fail_reason, sizeof(b->fail_reason), "%.60s: %.180s", what, detail);
	b->failed = true;
	b->phase = 4;
	lws_cancel_service(b->ctx);
}

static int
br_read_file(const char *dir, const char *name, unsigned char **ret_buf, size_t *ret_len)
{
	char path[4096];
	FILE *f;
	long n;
	unsigned char *buf;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rbe");
	if (f == NULL)
		return -errno;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return -EIO;
	}
	buf = malloc((size_t)n);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	*ret_buf = buf;
	*ret_len = (size_t)n;
	return 0;
}

/* The segment payload: seg0+seg1 pairs (each moof+mdat, both keyframes) until
 * segment_bytes. Their tfdt go backwards when repeated; the server does not
 * check tfdt order. */
static int
br_load_fixtures(struct br_bench *b)
{
	unsigned char *s0 = NULL, *s1 = NULL;
	size_t l0, l1, pairs;
	int r;

	r = br_read_file(b->o.fixtures, "init.mp4", &b->init, &b->init_len);
	if (r == 0)
		r = br_read_file(b->o.fixtures, "seg0.m4s", &s0, &l0);
	if (r == 0)
		r = br_read_file(b->o.fixtures, "seg1.m4s", &s1, &l1);
	if (r < 0)
		goto out;
	pairs = (b->o.segment_bytes + l0 + l1 - 1) / (l0 + l1);
	if (pairs == 0)
		pairs = 1;
	b->seg_len = pairs * (l0 + l1);
	b->seg = malloc(b->seg_len);
	if (b->seg == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < pairs; i++) {
		memcpy(b->seg + i * (l0 + l1), s0, l0);
		memcpy(b->seg + i * (l0 + l1) + l0, s1, l1);
	}
out:
	free(s1);
	free(s0);
	return r;
}

static struct br_msg *
br_msg_new(const void *data, size_t len, bool text, int64_t seq)
{
	struct br_msg *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->buf = malloc(LWS_PRE + len);
	if (m->buf == NULL) {
		free(m);
		return NULL;
	}
	memcpy(m->buf + LWS_PRE, data, len);
	m->len = len;
	m->text = text;
	m->seq = seq;
	return m;
}

static void
br_msg_free(struct br_msg *m)
{
	if (m == NULL)
		return;
	free(m->buf);
	free(m);
}

static void
br_push(struct br_conn *c, struct br_msg *m)
{
	struct br_msg **p = &c->q_head;

	if (m == NULL) {
		br_fail(c->b, "queue", "out of memory");
		return;
	}
	while (*p != NULL)
		p = &(*p)->next;
	*p = m;
	if (m->seq >= 0)
		c->q_segments++;
	if (c->wsi != NULL)
		lws_callback_on_writable(c->wsi);
}

static void
br_push_text(struct br_conn *c, const char *json)
{
	br_push(c, br_msg_new(json, strlen(json), true, -1));
}

/* A MessagePack envelope in an sbuffer, queued as one binary message. */
static void
br_push_sbuf(struct br_conn *c, msgpack_sbuffer *sb, int64_t seq)
{
	br_push(c, br_msg_new(sb->data, sb->size, false, seq));
	msgpack_sbuffer_destroy(sb);
}

static void
br_send_init(struct br_conn *c)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	env_pack_header(&pk, "sentinel.init", br_unix_ms() / 1000);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_bin(&pk, "data", c->b->init, c->b->init_len);
	br_push_sbuf(c, &sb, -1);
}

static void
br_send_segment(struct br_conn *c)
{
	struct br_bench *b = c->b;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int64_t now = br_unix_ms();
	unsigned char u64[9];
	size_t stamp_off;
	struct br_msg *m;

	if (c->q_segments >= BR_QUEUE_MAX) {
		b->send_drops++; /* the ingest does not keep up: this second is lost */
		c->next_seq++;
		return;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	env_pack_header(&pk, "sentinel.segment", now / 1000);
	msgpack_pack_map(&pk, 5);
	mp_pack_kv_int(&pk, "sequence", c->next_seq);
	/* startTime as a uint64 of fixed width, stamped again right before the
	 * write (br_writeable). */
	mp_pack_str(&pk, "startTime");
	stamp_off = sb.size + 1;
	memset(u64, 0, sizeof(u64));
	u64[0] = 0xcf;
	msgpack_sbuffer_write(&sb, (const char *)u64, sizeof(u64));
	mp_pack_kv_int(&pk, "duration", 1000);
	mp_pack_kv_bool(&pk, "keyframe", true);
	mp_pack_kv_bin(&pk, "data", b->seg, b->seg_len);
	m = br_msg_new(sb.data, sb.size, false, c->next_seq);
	msgpack_sbuffer_destroy(&sb);
	if (m != NULL)
		m->stamp_off = stamp_off;
	br_push(c, m);
	c->next_seq++;
}

/* Every second per sentinel, staggered over the second so that the ingest
 * sees a steady stream rather than S segments at once. */
static void
br_tick_cb(lws_sorted_usec_list_t *sul)
{
	struct br_conn *c = lws_container_of(sul, struct br_conn, sul_tick);
	int64_t now = br_mono_ns(), next;

	if (c->state != BR_READY || c->b->phase >= 3)
		return;
	br_send_segment(c);
	next = c->tick_base_ns + c->next_seq * 1000000000LL;
	lws_sul_schedule(c->b->ctx, 0, &c->sul_tick, br_tick_cb,
			 next > now ? (next - now) / 1000 : 1);
}

static void
br_start_segments(struct br_bench *b)
{
	for (unsigned i = 0; i < b->o.sentinels; i++) {
		struct br_conn *c = &b->conns[i];
		int64_t delay_us = (int64_t)i * 1000000 / b->o.sentinels;

		c->tick_base_ns = br_mono_ns() + delay_us * 1000;
		lws_sul_schedule(b->ctx, 0, &c->sul_tick, br_tick_cb, delay_us + 1);
	}
}

/* ws://host:port/path; -EINVAL otherwise. */
static int
br_parse_url(struct br_bench *b, const char *url)
{
	char buf[512];
	const char *prot, *addr, *path;
	int port;

	if (strlen(url) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, url);
	if (lws_parse_uri(buf, &prot, &addr, &port, &path) != 0 || strcmp(prot, "ws") != 0)
		return -EINVAL;
	snprintf(b->host, sizeof(b->host), "%s", addr);
	snprintf(b->path, sizeof(b->path), "/%s", path[0] == '/' ? path + 1 : path);
	b->port = port;
	return 0;
}

static void
br_connect(struct br_conn *c)
{
	struct br_bench *b = c->b;
	struct lws_client_connect_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.context = b->ctx;
	ci.address = b->host;
	ci.port = b->port;
	ci.path = b->path;
	ci.host = b->host;
	ci.local_protocol_name = "bench-relay";
	ci.opaque_user_data = c;
	ci.pwsi = &c->wsi;
	c->state = BR_CONNECTING;
	if (lws_client_connect_via_info(&ci) == NULL)
		br_fail(b, "connect", b->host);
}

/* How late this loop runs a 10 ms timer during the window: a late sentinel
 * stamps late, so its lateness does not count as latency, but it shows that
 * the load generator is short of CPU. */
#define BR_LAG_US 10000

static void
br_lag_cb(lws_sorted_usec_list_t *sul)
{
	struct br_bench *b = lws_container_of(sul, struct br_bench, sul_lag);
	int64_t now = br_mono_ns(), late = now - b->lag_due_ns;

	if (b->phase != 2)
		return;
	if (late > b->lag_max_ns)
		b->lag_max_ns = late;
	if (late > 10000000)
		b->lag_over_10ms++;
	b->lag_due_ns = now + BR_LAG_US * 1000;
	lws_sul_schedule(b->ctx, 0, &b->sul_lag, br_lag_cb, BR_LAG_US);
}

static void br_phase_cb(lws_sorted_usec_list_t *sul);

static void
br_next_phase(struct br_bench *b, int phase, int64_t after_ms)
{
	b->phase = phase;
	lws_sul_schedule(b->ctx, 0, &b->sul_phase, br_phase_cb, after_ms * LWS_US_PER_MS);
}

static void
br_phase_cb(lws_sorted_usec_list_t *sul)
{
	struct br_bench *b = lws_container_of(sul, struct br_bench, sul_phase);
	int64_t left;

	switch (b->phase) {
	case 0:
		br_fail(b, "setup", "not every sentinel registered by --start-ms");
		break;
	case 1:
		b->lag_due_ns = br_mono_ns() + BR_LAG_US * 1000;
		lws_sul_schedule(b->ctx, 0, &b->sul_lag, br_lag_cb, BR_LAG_US);
		left = b->o.end_ms - br_unix_ms();
		br_next_phase(b, 2, left > 0 ? left : 0);
		break;
	case 2:
		br_next_phase(b, 3, BR_GRACE_MS);
		break;
	default:
		b->phase = 4;
		lws_cancel_service(b->ctx);
		break;
	}
}

/* --ids-out FILE (written whole, then renamed) or stdout: one id a line. */
static int
br_write_ids(struct br_bench *b)
{
	char tmp[4200];
	FILE *f = stdout;

	if (b->o.ids_out != NULL) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", b->o.ids_out);
		f = fopen(tmp, "we");
		if (f == NULL) {
			br_fail(b, "ids", strerror(errno));
			return -1;
		}
	}
	for (unsigned i = 0; i < b->o.sentinels; i++)
		fprintf(f, "%s\n", b->ids[i]);
	if (f == stdout) {
		fflush(f);
		return 0;
	}
	if (fclose(f) != 0 || rename(tmp, b->o.ids_out) != 0) {
		br_fail(b, "ids", strerror(errno));
		return -1;
	}
	return 0;
}

static void
br_on_ack(struct br_conn *c, const msgpack_object *payload)
{
	struct br_bench *b = c->b;

	c->state = BR_READY;
	if (mp_get_strbuf(payload, "sentinelId", c->id, sizeof(c->id)) < 0) {
		br_fail(b, "sentinel ack", "no sentinelId");
		return;
	}
	memcpy(b->ids[c->idx], c->id, sizeof(c->id));
	br_send_init(c);
	if (++b->sentinels_ready < b->o.sentinels)
		return;
	if (br_write_ids(b) < 0)
		return;
	b->phase = 1; /* the timer of --start-ms is running */
	/* Segments start now: the proctors join during the warm-up. */
	br_start_segments(b);
}

/* One complete message from ingest. */
static void
br_on_message(struct br_conn *c)
{
	struct br_bench *b = c->b;
	struct env *env;
	char err[128], reason[128] = "";
	const char *type;
	const msgpack_object *payload;

	if (env_decode(c->rx, c->rx_len, c->rx_binary ? ENV_MSGPACK : ENV_JSON, &env, err,
		       sizeof(err)) < 0) {
		br_fail(b, "invalid message from the server", err);
		return;
	}
	type = env_type(env);
	payload = env_payload(env);
	if (strcmp(type, "server.registration.ack") == 0 && c->state == BR_REGISTERING) {
		br_on_ack(c, payload);
	} else if (strcmp(type, "server.registration.reject") == 0) {
		mp_get_strbuf(payload, "reason", reason, sizeof(reason));
		br_fail(b, "sentinel refused", reason);
	} else if (strcmp(type, "server.error") == 0) {
		mp_get_strbuf(payload, "reason", reason, sizeof(reason));
		fprintf(stderr, "bench_relay: server.error to sentinel %u: %s\n", c->idx, reason);
	}
	env_free(env);
}

static int
br_receive(struct br_conn *c, const void *in, size_t len)
{
	struct lws *wsi = c->wsi;

	if (lws_is_first_fragment(wsi)) {
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(wsi);
	}
	if (c->rx_len + len > BR_RX_MAX) {
		br_fail(c->b, "receive", "message larger than 8 MiB");
		return -1;
	}
	if (c->rx_len + len > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : 4096;
		unsigned char *p;

		while (cap < c->rx_len + len)
			cap *= 2;
		p = realloc(c->rx, cap);
		if (p == NULL) {
			br_fail(c->b, "receive", "out of memory");
			return -1;
		}
		c->rx = p;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0)
		br_on_message(c);
	return 0;
}

/* One fragment of the head message per writeable callback. */
static int
br_writeable(struct br_conn *c)
{
	struct br_bench *b = c->b;
	struct br_msg *m = c->q_head;
	size_t n;
	bool start, end;
	int flags;
	int64_t stamp = -1;

	if (m == NULL)
		return 0;
	/* A segment in one write, so that its startTime, stamped right before,
	 * is the time its last byte is handed on. */
	n = m->len - m->off;
	if (m->seq < 0 && n > BR_CHUNK)
		n = BR_CHUNK;
	start = m->off == 0;
	end = m->off + n == m->len;
	flags = lws_write_ws_flags(m->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY, start, end);
	if (m->stamp_off > 0 && start && end) {
		int64_t ms = br_unix_ms_round();
		unsigned char *p = m->buf + LWS_PRE + m->stamp_off;

		stamp = ms;
		for (int i = 7; i >= 0; i--, ms >>= 8)
			p[i] = (unsigned char)(ms & 0xff);
	}
	if (lws_write(c->wsi, m->buf + LWS_PRE + m->off, n, (enum lws_write_protocol)flags) <
	    (int)n)
		return -1;
	m->off += n;
	if (end) {
		/* The last byte is handed to the kernel or, when the socket took
		 * only part, to lws's buffer, which sends it before anything else;
		 * waiting there counts as latency. */
		if (m->seq >= 0) {
			if (lws_partial_buffered(c->wsi))
				b->partial_writes++;
			if (stamp >= b->o.start_ms && stamp < b->o.end_ms)
				c->win_sent++;
			c->q_segments--;
		}
		c->q_head = m->next;
		br_msg_free(m);
	}
	if (c->q_head != NULL)
		lws_callback_on_writable(c->wsi);
	return 0;
}

static void
br_closed(struct br_conn *c, const char *why)
{
	struct br_bench *b = c->b;

	if (c->state == BR_CLOSED)
		return;
	c->state = BR_CLOSED;
	c->wsi = NULL;
	lws_sul_cancel(&c->sul_tick);
	if (b->phase < 3) {
		b->closed_during_run++;
		fprintf(stderr, "bench_relay: sentinel %u closed: %s\n", c->idx, why);
	}
	if (b->phase == 0)
		br_fail(b, "sentinel connection", why);
}

/* The lws thread, for every connection. */
static int
br_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct br_conn *c = lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (c != NULL)
			br_closed(c, in ? (const char *)in : "connection error");
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->state = BR_REGISTERING;
		br_push_text(c, "{\"type\":\"sentinel.register\",\"payload\":{}}");
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return br_receive(c, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return br_writeable(c);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			const unsigned char *p = in;

			fprintf(stderr, "bench_relay: close %d from the server: %.*s\n",
				p[0] << 8 | p[1], (int)len - 2, (const char *)in + 2);
		}
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		br_closed(c, "closed");
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols br_protocols[] = {
	{ .name = "bench-relay",
	  .callback = br_callback,
	  .rx_buffer_size = 65536,
	  /* a segment in one send(2): lws caps a send at rx_buffer_size otherwise */
	  .tx_packet_size = 1u << 20 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* The figures bench_relay.py merges with the proctors'. */
static void
br_report(struct br_bench *b)
{
	double secs = (double)(b->o.end_ms - b->o.start_ms) / 1e3;
	uint64_t win_sent = 0;

	printf("{\"role\": \"sentinels\", \"sentinels\": %u, \"segmentBytes\": %zu, "
	       "\"seconds\": %.1f,\n \"windowSent\": [",
	       b->o.sentinels, b->seg_len, secs);
	for (unsigned i = 0; i < b->o.sentinels; i++) {
		win_sent += b->conns[i].win_sent;
		printf("%s%llu", i ? ", " : "", (unsigned long long)b->conns[i].win_sent);
	}
	printf("],\n \"sentSegmentsPerS\": %.1f, \"sendDrops\": %llu, \"partialWrites\": %llu,\n"
	       " \"closed\": %llu, \"benchLoopLagMsMax\": %.1f, \"benchLoopLagsOver10Ms\": %llu}\n",
	       (double)win_sent / secs, (unsigned long long)b->send_drops,
	       (unsigned long long)b->partial_writes, (unsigned long long)b->closed_during_run,
	       (double)b->lag_max_ns / 1e6, (unsigned long long)b->lag_over_10ms);
	fflush(stdout);
}

static void
br_usage(FILE *f)
{
	fprintf(f,
		"usage: bench_relay --sentinel-url ws://127.0.0.1:P/sentinel --start-ms UNIX_MS\n"
		"       --end-ms UNIX_MS [--sentinels 50] [--segment-bytes 125000]\n"
		"       [--fixtures tests/data/fmp4] [--ids-out FILE]\n");
}

static int
br_parse(struct br_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "sentinel-url", required_argument, NULL, 'u' },
		{ "sentinels", required_argument, NULL, 'S' },
		{ "segment-bytes", required_argument, NULL, 'B' },
		{ "fixtures", required_argument, NULL, 'f' },
		{ "ids-out", required_argument, NULL, 'o' },
		{ "start-ms", required_argument, NULL, 'a' },
		{ "end-ms", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	int64_t now_ms = br_unix_ms();

	*o = (struct br_opts){ .sentinels = 50, .segment_bytes = 125000 };
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		unsigned long v = optarg ? strtoul(optarg, NULL, 10) : 0;

		switch (ch) {
		case 'u':
			o->sentinel_url = optarg;
			break;
		case 'S':
			o->sentinels = (unsigned)v;
			break;
		case 'B':
			o->segment_bytes = v;
			break;
		case 'f':
			o->fixtures = optarg;
			break;
		case 'o':
			o->ids_out = optarg;
			break;
		case 'a':
			o->start_ms = strtoll(optarg, NULL, 10);
			break;
		case 'e':
			o->end_ms = strtoll(optarg, NULL, 10);
			break;
		case 'h':
			br_usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	/* A window within the next hour, at most an hour long. */
	if (o->sentinel_url == NULL || optind != argc || o->sentinels == 0 ||
	    o->sentinels > 10000 || o->segment_bytes > (4u << 20) || o->start_ms < now_ms - 1000 ||
	    o->start_ms > now_ms + 3600000 || o->end_ms <= o->start_ms ||
	    o->end_ms - o->start_ms > 3600000)
		return -EINVAL;
	return 0;
}

int
main(int argc, char **argv)
{
	struct br_bench b;
	struct lws_context_creation_info info;
	const char *src = getenv("VIGIL_SOURCE_DIR");
	char fixtures[4096];
	int64_t hard_deadline, to_start;
	int r, status = 1;

	memset(&b, 0, sizeof(b));
	if (br_parse(&b.o, argc, argv) < 0) {
		br_usage(stderr);
		return 2;
	}
	if (b.o.fixtures == NULL) {
		snprintf(fixtures, sizeof(fixtures), "%s/tests/data/fmp4", src ? src : ".");
		b.o.fixtures = fixtures;
	}
	if (br_parse_url(&b, b.o.sentinel_url) < 0) {
		fprintf(stderr, "bench_relay: the URL must be ws://host:port/path\n");
		return 2;
	}
	r = br_load_fixtures(&b);
	if (r < 0) {
		fprintf(stderr, "bench_relay: fixtures in %s: %s\n", b.o.fixtures, strerror(-r));
		return 2;
	}
	b.conns = calloc(b.o.sentinels, sizeof(*b.conns));
	b.ids = calloc(b.o.sentinels, sizeof(*b.ids));
	if (b.conns == NULL || b.ids == NULL)
		goto out;
	for (unsigned i = 0; i < b.o.sentinels; i++) {
		b.conns[i].b = &b;
		b.conns[i].idx = i;
	}

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = br_protocols;
	info.user = &b;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.fd_limit_per_thread = b.o.sentinels + 64;
	b.ctx = lws_create_context(&info);
	if (b.ctx == NULL) {
		fprintf(stderr, "bench_relay: lws_create_context failed\n");
		goto out;
	}
	to_start = b.o.start_ms - br_unix_ms();
	if (to_start < 0)
		to_start = 0;
	lws_sul_schedule(b.ctx, 0, &b.sul_phase, br_phase_cb, to_start * LWS_US_PER_MS);
	/* Bounded in time whatever the server does. */
	hard_deadline = br_mono_ns() + (b.o.end_ms - br_unix_ms() + BR_GRACE_MS + 10000) * 1000000;
	for (unsigned i = 0; i < b.o.sentinels && !b.failed; i++)
		br_connect(&b.conns[i]);
	while (b.phase < 4 && br_mono_ns() < hard_deadline && lws_service(b.ctx, 0) >= 0)
		;
	if (b.failed) {
		fprintf(stderr, "bench_relay: %s\n", b.fail_reason);
	} else if (b.phase < 4) {
		fprintf(stderr, "bench_relay: did not finish in time\n");
	} else {
		br_report(&b);
		status = 0;
	}

out:
	if (b.ctx != NULL) {
		lws_sul_cancel(&b.sul_phase);
		lws_sul_cancel(&b.sul_lag);
		for (unsigned i = 0; i < b.o.sentinels; i++)
			lws_sul_cancel(&b.conns[i].sul_tick);
		lws_context_destroy(b.ctx);
	}
	for (unsigned i = 0; b.conns != NULL && i < b.o.sentinels; i++) {
		struct br_msg *m = b.conns[i].q_head, *next;

		for (; m != NULL; m = next) {
			next = m->next;
			br_msg_free(m);
		}
		free(b.conns[i].rx);
	}
	free(b.conns);
	free(b.ids);
	free(b.seg);
	free(b.init);
	return status;
}
