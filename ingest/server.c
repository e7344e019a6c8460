/* server: vigil-ingest's libwebsockets context. The listening socket comes
 * from vigild (fd 3) and is adopted into the loop as a raw fd; accepted
 * connections are handed to lws; the bus and signal fds share the loop.
 * Messages are reassembled here under the size limit, then given to session.c.
 * Everything runs in the lws service thread. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gst/gst.h>

#include "ingest.h"
#include "log.h"
#include "mp.h"
#include "net.h"
#include "proc.h"

#define INGEST_TX_MAX   256        /* queued replies per connection */
#define INGEST_RX_KEEP  (1u << 20) /* a larger receive buffer is freed after use */
#define INGEST_DRAIN_MS 2000       /* at stop: time for clients to get their close */

struct ingest_tx {
	struct ingest_tx *next;
	size_t len;
	unsigned char buf[]; /* LWS_PRE bytes, then the JSON text */
};

/* lws allocates one per WebSocket (per_session_data_size) and zeroes it. */
struct ingest_conn {
	struct ingest_conn *next, **pprev;
	struct lws *wsi;
	struct ingest *ing;
	uint8_t *rx;
	size_t rx_len, rx_cap;
	bool rx_binary;
	struct ingest_tx *tx_head, *tx_tail;
	unsigned tx_count;
	bool closing;
	int close_code;
	char close_reason[124];
	lws_sorted_usec_list_t sul;
	struct ingest_sess sess;
};

enum ingest_fd_kind {
	INGEST_FD_LISTEN = 1,
	INGEST_FD_STAGE,
};

static int64_t
ingest_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct ingest_sess *
ingest_conn_sess(struct ingest_conn *c)
{
	return &c->sess;
}

bool
ingest_conn_closing(const struct ingest_conn *c)
{
	return c->closing;
}

int
ingest_conn_send(struct ingest_conn *c, const void *mp, size_t len)
{
	struct ingest_tx *tx;
	char *json;
	size_t jlen;
	int r;

	if (c->closing && c->close_code != 0 && c->tx_head == NULL)
		return -ESHUTDOWN;
	if (c->tx_count >= INGEST_TX_MAX)
		return -ENOBUFS; /* a sentinel that reads nothing loses replies, nothing else */
	r = env_msgpack_to_json(mp, len, &json, &jlen);
	if (r < 0)
		return r;
	tx = malloc(sizeof(*tx) + LWS_PRE + jlen);
	if (tx == NULL) {
		free(json);
		return -ENOMEM;
	}
	tx->next = NULL;
	tx->len = jlen;
	memcpy(tx->buf + LWS_PRE, json, jlen);
	free(json);
	if (c->tx_tail != NULL)
		c->tx_tail->next = tx;
	else
		c->tx_head = tx;
	c->tx_tail = tx;
	c->tx_count++;
	lws_callback_on_writable(c->wsi);
	return 0;
}

void
ingest_conn_close(struct ingest_conn *c, int code, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	lws_callback_on_writable(c->wsi);
}

/* Register deadline first, then the idle check. TCP_INFO's tcpi_last_data_recv
 * counts every byte from the client, WebSocket pings included, which lws does
 * not report to the protocol callback. */
static void
ingest_conn_timer(lws_sorted_usec_list_t *sul)
{
	struct ingest_conn *c = lws_container_of(sul, struct ingest_conn, sul);
	const struct cfg *cfg = c->ing->cfg;
	struct tcp_info ti;
	socklen_t tlen = sizeof(ti);
	char reason[96];
	int64_t idle = cfg->timeout_idle_ms;

	if (c->closing)
		return;
	if (!c->sess.registered) {
		snprintf(reason, sizeof(reason), "No sentinel.register within %lld ms",
			 (long long)cfg->timeout_register_ms);
		ingest_conn_close(c, 3003, reason);
		return;
	}
	if (getsockopt(lws_get_socket_fd(c->wsi), IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0 &&
	    (int64_t)ti.tcpi_last_data_recv < idle) {
		lws_sul_schedule(c->ing->ctx, 0, &c->sul, ingest_conn_timer,
				 (idle - ti.tcpi_last_data_recv + 10) * LWS_US_PER_MS);
		return;
	}
	c->ing->stats.idle_closes++;
	snprintf(reason, sizeof(reason), "Nothing received for %lld ms", (long long)idle);
	ingest_conn_close(c, 3003, reason);
}

void
ingest_conn_registered(struct ingest_conn *c)
{
	lws_sul_schedule(c->ing->ctx, 0, &c->sul, ingest_conn_timer,
			 c->ing->cfg->timeout_idle_ms * LWS_US_PER_MS);
}

static int
ingest_conn_rx(struct ingest_conn *c, const void *in, size_t len)
{
	struct ingest *ing = c->ing;
	uint64_t max = ing->cfg->max_message_bytes;
	size_t remaining, total;
	char reason[123];

	if (lws_is_first_fragment(c->wsi)) {
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(c->wsi);
	}
	/* Counted across fragmented frames, and refused as soon as a frame header
	 * tells that the message cannot fit. */
	remaining = lws_remaining_packet_payload(c->wsi);
	total = c->rx_len + len + remaining;
	if (total > max) {
		ing->stats.closes_1009++;
		snprintf(reason, sizeof(reason),
			 "Message of at least %zu bytes exceeds the limit of "
			 "%llu bytes",
			 total, (unsigned long long)max);
		lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 (unsigned char *)reason, strlen(reason));
		return -1;
	}
	if (total > c->rx_cap) {
		size_t cap = c->rx_cap < 4096 ? 4096 : c->rx_cap;
		uint8_t *rx;

		while (cap < total)
			cap *= 2;
		if (cap > max)
			cap = max;
		rx = realloc(c->rx, cap);
		if (rx == NULL) {
			lws_close_reason(c->wsi, 3005, (unsigned char *)"Out of memory", 13);
			return -1;
		}
		c->rx = rx;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!lws_is_final_fragment(c->wsi))
		return 0;
	ingest_sess_message(ing, c, c->rx, c->rx_len, c->rx_binary, ingest_now_us());
	if (c->rx_cap > INGEST_RX_KEEP) {
		free(c->rx);
		c->rx = NULL;
		c->rx_cap = 0;
	}
	c->rx_len = 0;
	return 0;
}

static int
ingest_conn_writeable(struct ingest_conn *c)
{
	struct ingest_tx *tx = c->tx_head;

	if (tx != NULL) {
		c->tx_head = tx->next;
		if (c->tx_head == NULL)
			c->tx_tail = NULL;
		c->tx_count--;
		if (lws_write(c->wsi, tx->buf + LWS_PRE, tx->len, LWS_WRITE_TEXT) < (int)tx->len) {
			free(tx);
			return -1;
		}
		free(tx);
		if (c->tx_head != NULL || c->closing)
			lws_callback_on_writable(c->wsi);
		return 0;
	}
	if (c->closing) {
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)c->close_reason, strlen(c->close_reason));
		return -1;
	}
	return 0;
}

static void
ingest_conn_release(struct ingest_conn *c)
{
	struct ingest_tx *tx, *next;

	lws_sul_cancel(&c->sul);
	ingest_sess_closed(c->ing, c);
	for (tx = c->tx_head; tx != NULL; tx = next) {
		next = tx->next;
		free(tx);
	}
	free(c->rx);
	if (c->pprev != NULL) {
		*c->pprev = c->next;
		if (c->next != NULL)
			c->next->pprev = c->pprev;
	}
}

static bool
ingest_path_ok(struct lws *wsi)
{
	char uri[64];

	return lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0 &&
	       strcmp(uri, "/sentinel") == 0;
}

/* The sentinel WebSocket protocol. */
static int
ingest_cb_sentinel(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		   size_t len)
{
	struct ingest *ing = lws_context_user(lws_get_context(wsi));
	struct ingest_conn *c = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return ingest_path_ok(wsi) ? 0 : 1;
	case LWS_CALLBACK_ESTABLISHED:
		c->wsi = wsi;
		c->ing = ing;
		c->next = ing->conns;
		if (c->next != NULL)
			c->next->pprev = &c->next;
		c->pprev = &ing->conns;
		ing->conns = c;
		ing->stats.connections_total++;
		lws_sul_schedule(ing->ctx, 0, &c->sul, ingest_conn_timer,
				 ing->cfg->timeout_register_ms * LWS_US_PER_MS);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (c->closing)
			return 0;
		return ingest_conn_rx(c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ingest_conn_writeable(c);
	case LWS_CALLBACK_CLOSED:
		ingest_conn_release(c);
		return 0;
	default:
		return 0;
	}
}

static void
ingest_accept(struct ingest *ing, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn(-errno, "accept4() failed");
			if (errno != EINTR)
				return;
			continue;
		}
		if (lws_adopt_socket_vhost(ing->vh, fd) == NULL) {
			log_warn(0, "lws_adopt_socket_vhost() failed: connection dropped");
			close(fd);
		}
	}
}

/* The raw fds: the listening socket, and the stage's bus and signal fds. */
static int
ingest_cb_fd(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct ingest *ing = lws_context_user(lws_get_context(wsi));
	intptr_t kind = (intptr_t)lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (kind == INGEST_FD_LISTEN)
			ingest_accept(ing, lws_get_socket_fd(wsi));
		else
			stage_service(ing->st);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (ing != NULL)
			ingest_jpeg_drain(ing);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols ingest_protocols[] = {
	{ "http", lws_callback_http_dummy, 0, 0, 0, NULL, 0 },
	{ "vigil-sentinel", ingest_cb_sentinel, sizeof(struct ingest_conn), 65536, 0, NULL, 0 },
	{ "vigil-fd", ingest_cb_fd, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* Clients that name no subprotocol get the sentinel protocol. */
static const struct lws_protocol_vhost_options ingest_pvo_default = { NULL, NULL, "default", "1" };
static const struct lws_protocol_vhost_options ingest_pvo = { NULL, &ingest_pvo_default,
							      "vigil-sentinel", "" };

static int
ingest_adopt_fd(struct ingest *ing, int fd, enum ingest_fd_kind kind)
{
	lws_sock_file_fd_type u;
	struct lws *wsi;
	int dupfd;

	/* lws closes what it adopts; the stage keeps its own descriptor. */
	dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dupfd < 0)
		return -errno;
	u.filefd = (lws_filefd_type)dupfd;
	wsi = lws_adopt_descriptor_vhost(ing->vh, LWS_ADOPT_RAW_FILE_DESC, u, "vigil-fd", NULL);
	if (wsi == NULL) {
		close(dupfd);
		return -EIO;
	}
	lws_set_opaque_user_data(wsi, (void *)(intptr_t)kind);
	return 0;
}

/* Tokens, limits and timeouts from the new config apply to what comes next;
 * listen and ring take a vigild restart (vigild says so when it reloads). */
static void
ingest_reload(struct ingest *ing)
{
	struct tok_store *tokens;

	if (stage_reload(ing->st) < 0)
		return;
	ing->cfg = stage_cfg(ing->st);
	tokens = tok_store_new();
	if (tokens == NULL || tok_store_load(tokens, ing->cfg) < 0) {
		log_error(0, "tokens of the reloaded config not loaded: keeping the old ones");
		tok_store_free(tokens);
		return;
	}
	tok_store_free(ing->tokens);
	ing->tokens = tokens;
}

static int
ingest_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The heartbeat's "stats": counters since start, and the latency from a
 * segment's last byte received to its being visible in the ring over the
 * segments since the previous heartbeat (microseconds). */
static void
ingest_pack_stats(void *ctx, msgpack_packer *pk)
{
	struct ingest *ing = ctx;
	struct ingest_stats *st = &ing->stats;
	uint32_t n = st->n_lat;

	qsort(st->lat_us, n, sizeof(st->lat_us[0]), ingest_cmp_u32);
	msgpack_pack_map(pk, 15);
	mp_pack_kv_int(pk, "sentinelsOnline", ing->online);
	mp_pack_kv_int(pk, "connectionsTotal", (int64_t)st->connections_total);
	mp_pack_kv_int(pk, "registeredTotal", (int64_t)st->registered_total);
	mp_pack_kv_int(pk, "rejectedTotal", (int64_t)st->rejected_total);
	mp_pack_kv_int(pk, "replacedTotal", (int64_t)st->replaced_total);
	mp_pack_kv_int(pk, "segments", (int64_t)st->segments);
	mp_pack_kv_int(pk, "segmentBytes", (int64_t)st->segment_bytes);
	mp_pack_kv_int(pk, "inits", (int64_t)st->inits);
	mp_pack_kv_int(pk, "frames", (int64_t)st->frames);
	mp_pack_kv_int(pk, "errors", (int64_t)st->errors);
	mp_pack_kv_int(pk, "closes1009", (int64_t)st->closes_1009);
	mp_pack_kv_int(pk, "closes3006", (int64_t)st->closes_3006);
	mp_pack_kv_int(pk, "ringErrors", (int64_t)st->ring_errors);
	mp_pack_str(pk, "ringLatencyUs");
	msgpack_pack_map(pk, 4);
	mp_pack_kv_int(pk, "samples", n);
	mp_pack_kv_int(pk, "p50", n > 0 ? st->lat_us[n / 2] : 0);
	mp_pack_kv_int(pk, "p99", n > 0 ? st->lat_us[(uint64_t)n * 99 / 100] : 0);
	mp_pack_kv_int(pk, "max", n > 0 ? st->lat_us[n - 1] : 0);
	mp_pack_kv_int(pk, "idleCloses", (int64_t)st->idle_closes);
	st->n_lat = 0;
}

static void
ingest_tick(lws_sorted_usec_list_t *sul)
{
	struct ingest *ing = lws_container_of(sul, struct ingest, sul_tick);

	if (stage_take_reload(ing->st))
		ingest_reload(ing);
	ingest_reg_check_tokens(ing, time(NULL));
	stage_metrics(ing->st)->connections = ing->online;
	stage_tick(ing->st);
	lws_sul_schedule(ing->ctx, 0, &ing->sul_tick, ingest_tick, 250 * LWS_US_PER_MS);
}

static int
ingest_lws_open(struct ingest *ing)
{
	struct lws_context_creation_info info;
	const struct cfg *cfg = ing->cfg;
	int lfd;

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (cfg->tls_cert != NULL)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.user = ing;
	info.timeout_secs = 10;
	ing->ctx = lws_create_context(&info);
	if (ing->ctx == NULL)
		return -EIO;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.vhost_name = "ingest";
	info.protocols = ingest_protocols;
	info.pvo = &ingest_pvo;
	/* lws reads this option from the vhost's info too: without it no TLS. */
	if (cfg->tls_cert != NULL)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.ssl_cert_filepath = cfg->tls_cert;
	info.ssl_private_key_filepath = cfg->tls_key;
	info.timeout_secs = 10;
	ing->vh = lws_create_vhost(ing->ctx, &info);
	if (ing->vh == NULL)
		return -EIO;
	lfd = stage_listen_fd(ing->st, &cfg->listen_ingest);
	if (lfd < 0) {
		log_error(lfd, "no listening socket for %s:%u", cfg->listen_ingest.host,
			  cfg->listen_ingest.port);
		return lfd;
	}
	if (ingest_adopt_fd(ing, lfd, INGEST_FD_LISTEN) < 0 ||
	    ingest_adopt_fd(ing, stage_signal_fd(ing->st), INGEST_FD_STAGE) < 0 ||
	    (stage_bus_fd(ing->st) >= 0 &&
	     ingest_adopt_fd(ing, stage_bus_fd(ing->st), INGEST_FD_STAGE) < 0))
		return -EIO;
	lws_sul_schedule(ing->ctx, 0, &ing->sul_tick, ingest_tick, 250 * LWS_US_PER_MS);
	return 0;
}

struct ingest *
ingest_new(struct stage *st)
{
	struct ingest *ing = calloc(1, sizeof(*ing));
	char name[64];
	int r;

	if (ing == NULL)
		return NULL;
	ing->st = st;
	ing->cfg = stage_cfg(st);
	pthread_mutex_init(&ing->jpeg_lock, NULL);
	snprintf(name, sizeof(name), "/vigil-%s", ing->cfg->instance);
	r = ring_open(name, true, &ing->ring);
	if (r < 0) {
		log_error(r, "ring_open(%s) as writer failed", name);
		goto err_free;
	}
	ing->tokens = tok_store_new();
	if (ing->tokens == NULL || (r = tok_store_load(ing->tokens, ing->cfg)) < 0) {
		log_error(r, "loading the tokens failed");
		goto err_free;
	}
	r = ingest_reg_init(ing);
	if (r < 0)
		goto err_free;
	stage_on_message(st, ingest_reg_bus, ing);
	stage_on_stats(st, ingest_pack_stats, ing);
	r = ingest_lws_open(ing);
	if (r < 0) {
		log_error(r, "libwebsockets setup failed");
		goto err_free;
	}
	return ing;

err_free:
	ingest_free(ing);
	return NULL;
}

void
ingest_free(struct ingest *ing)
{
	if (ing == NULL)
		return;
	if (ing->ctx != NULL)
		lws_context_destroy(ing->ctx);
	ingest_reg_free(ing);
	tok_store_free(ing->tokens);
	ring_close(ing->ring);
	pthread_mutex_destroy(&ing->jpeg_lock);
	/* GStreamer's globals, if a JPEG sentinel made us start it. */
	if (gst_is_initialized())
		gst_deinit();
	free(ing);
}

int
ingest_run(struct ingest *ing)
{
	int64_t deadline;
	char lis[64] = "?";

	net_local_name(stage_listen_fd(ing->st, &ing->cfg->listen_ingest), lis, sizeof(lis), NULL);
	log_info("accepting sentinels on ws://%s/sentinel", lis);
	while (!stage_stopping(ing->st)) {
		if (lws_service(ing->ctx, 0) < 0)
			return -EIO;
	}
	/* Clients learn why they are dropped: 1012 to come back soon, 1001 otherwise. */
	for (struct ingest_conn *c = ing->conns; c != NULL; c = c->next)
		ingest_conn_close(c, stage_restarting(ing->st) ? 1012 : 1001,
				  stage_restarting(ing->st) ? "Ingest is restarting"
							    : "Server shutting down");
	deadline = proc_mono_ms() + INGEST_DRAIN_MS;
	while (ing->conns != NULL && proc_mono_ms() < deadline)
		lws_service(ing->ctx, 0);
	return 0;
}
