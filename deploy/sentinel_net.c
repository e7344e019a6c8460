/* sentinel_net: the one lws context of vigil-sentinel and its loop. Client
 * connections for every simulated sentinel, the signal fd adopted into the loop,
 * media taken from the encoder's queue when lws_cancel_service() wakes the loop
 * and handed to every connection, the progress line, --duration, and the
 * orderly end. Runs in the lws thread, except snt_net_wake(). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "sentinel_net.h"

#define SNT_PROGRESS_MS 10000
/* Legacy frames are sent once a second, or sooner past this many bytes. */
#define SNT_BATCH_MS    1000
#define SNT_BATCH_BYTES (4u << 20)

static void snt_net_progress_cb(lws_sorted_usec_list_t *sul);

void
snt_net_wake(void *opaque)
{
	struct snt_net *n = opaque;

	lws_cancel_service(n->ctx);
}

static void
snt_net_flush_batch(struct snt_net *n)
{
	if (n->batch_n == 0)
		return;
	for (unsigned i = 0; i < n->n_conns; i++)
		snt_conn_frames(&n->conns[i], n->batch, n->batch_n);
	for (size_t i = 0; i < n->batch_n; i++)
		snt_blob_unref(n->batch[i]);
	n->batch_n = 0;
	n->batch_bytes = 0;
}

static void
snt_net_batch_cb(lws_sorted_usec_list_t *sul)
{
	struct snt_net *n = lws_container_of(sul, struct snt_net, sul_batch);

	if (!n->stopping)
		snt_net_flush_batch(n);
	lws_sul_schedule(n->ctx, 0, &n->sul_batch, snt_net_batch_cb, SNT_BATCH_MS * LWS_US_PER_MS);
}

/* A legacy JPEG frame joins the current second's batch (the reference moves). */
static void
snt_net_add_frame(struct snt_net *n, struct snt_blob *b)
{
	if (n->batch_n > 0 && n->batch_bytes + b->len > SNT_BATCH_BYTES)
		snt_net_flush_batch(n);
	if (n->batch_n == n->batch_cap) {
		size_t cap = n->batch_cap ? n->batch_cap * 2 : 32;
		struct snt_blob **p = realloc(n->batch, cap * sizeof(*p));

		if (p == NULL) {
			snt_blob_unref(b);
			return;
		}
		n->batch = p;
		n->batch_cap = cap;
	}
	n->batch[n->batch_n++] = b;
	n->batch_bytes += b->len;
}

/* Everything the encoder queued since the last wake-up. */
static void
snt_net_drain(struct snt_net *n)
{
	struct snt_media m;

	if (n->enc == NULL)
		return;
	while (snt_enc_pop(n->enc, &m) == 0) {
		switch (m.kind) {
		case SNT_MEDIA_ERROR:
			log_error(0, "video pipeline: %s", m.err);
			snt_net_stop(n, 1, "video pipeline failed");
			break;
		case SNT_MEDIA_INIT:
			snt_blob_unref(n->init);
			n->init = m.blob;
			n->init_gen++;
			log_info("init segment of %zu bytes", m.blob->len);
			for (unsigned i = 0; i < n->n_conns && !n->stopping; i++)
				snt_conn_media(&n->conns[i], &m);
			break;
		case SNT_MEDIA_SEGMENT:
			log_debug("segment of %zu bytes, %lld ms%s", m.blob->len,
				  (long long)m.duration_ms, m.keyframe ? ", keyframe" : "");
			for (unsigned i = 0; i < n->n_conns && !n->stopping; i++)
				snt_conn_media(&n->conns[i], &m);
			snt_blob_unref(m.blob);
			break;
		case SNT_MEDIA_FRAME:
			/* Even when stopping: the last frames go out before the bye. */
			snt_net_add_frame(n, m.blob);
			break;
		}
	}
}

static void
snt_net_on_signal(struct snt_net *n)
{
	struct signalfd_siginfo si;

	while (read(n->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (n->stopping) {
			log_info("second %s: exiting now", strsignal((int)si.ssi_signo));
			n->finished = true;
		} else {
			snt_net_stop(n, 0, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
		}
	}
}

/* The lws thread, for every connection and for the adopted signal fd. */
static int
snt_net_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		 size_t len)
{
	struct snt_net *n = lws_context_user(lws_get_context(wsi));
	struct snt_conn *c = lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (c != NULL)
			snt_conn_closed(c, in ? (const char *)in : "connection error");
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		snt_conn_established(c);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return snt_conn_receive(c, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return snt_out_writeable(c);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		snt_conn_peer_close(c, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		snt_conn_closed(c, "closed");
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		snt_net_drain(n);
		return 0;
	case LWS_CALLBACK_RAW_RX_FILE:
		snt_net_on_signal(n);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols snt_net_protocols[] = {
	{ .name = "vigil-sentinel", .callback = snt_net_callback, .rx_buffer_size = 16384 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* lws's own lines; they say more than a user needs, so they are debug. */
static void
snt_net_lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_debug("lws: %.*s", (int)n, line);
}

/* ws://host[:port]/path or wss://...; -EINVAL otherwise. */
static int
snt_net_parse_url(struct snt_net *n, const char *url)
{
	char buf[sizeof(n->host) + sizeof(n->path)];
	const char *prot, *addr, *path;
	int port;

	if (strlen(url) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, url);
	if (lws_parse_uri(buf, &prot, &addr, &port, &path) != 0 || addr[0] == '\0')
		return -EINVAL;
	if (strcmp(prot, "ws") == 0)
		n->tls = false;
	else if (strcmp(prot, "wss") == 0)
		n->tls = true;
	else
		return -EINVAL;
	/* lws_parse_uri() gives 80 or 443 by default, and the path without its
	 * leading slash, or "/" when there is none. */
	snprintf(n->host, sizeof(n->host), "%s", addr);
	snprintf(n->path, sizeof(n->path), "%s%s", path[0] == '/' ? "" : "/", path);
	n->port = port;
	/* The Host header: brackets around an IPv6 address, the port unless default. */
	snprintf(n->host_header, sizeof(n->host_header), "%s%s%s", strchr(addr, ':') ? "[" : "",
		 addr, strchr(addr, ':') ? "]" : "");
	if (port != (n->tls ? 443 : 80))
		snprintf(n->host_header + strlen(n->host_header),
			 sizeof(n->host_header) - strlen(n->host_header), ":%d", port);
	return 0;
}

struct snt_net *
snt_net_new(const struct snt_opts *o, int signal_fd)
{
	struct lws_context_creation_info info;
	struct snt_net *n = calloc(1, sizeof(*n));
	int r = -ENOMEM;

	if (n == NULL) {
		close(signal_fd);
		return NULL;
	}
	n->o = o;
	n->signal_fd = signal_fd;
	n->signal_owned = true;
	r = snt_net_parse_url(n, o->url);
	if (r < 0)
		goto fail;
	r = -ENOMEM;
	n->scratch = malloc(LWS_PRE + SNT_CHUNK);
	n->conns = calloc(o->count, sizeof(*n->conns));
	if (n->scratch == NULL || n->conns == NULL)
		goto fail;
	srandom((unsigned)(time(NULL) ^ getpid()));

	lws_set_log_level(log_get_level() >= LOG_LVL_DEBUG ? LLL_ERR | LLL_WARN : 0,
			  snt_net_lws_log);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = snt_net_protocols;
	info.user = n;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	if (n->tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	n->ctx = lws_create_context(&info);
	if (n->ctx == NULL) {
		r = -EIO;
		goto fail;
	}
	for (unsigned i = 0; i < o->count; i++)
		snt_conn_init(&n->conns[i], n, i + 1);
	n->n_conns = o->count;
	return n;

fail:
	snt_net_free(n);
	errno = -r;
	return NULL;
}

static void
snt_net_totals(const struct snt_net *n, struct snt_stats *t, unsigned *ready)
{
	memset(t, 0, sizeof(*t));
	*ready = 0;
	for (unsigned i = 0; i < n->n_conns; i++) {
		const struct snt_stats *s = &n->conns[i].st;

		t->segments += s->segments;
		t->bytes += s->bytes;
		t->drops += s->drops;
		t->offline += s->offline;
		t->reconnects += s->reconnects;
		*ready += n->conns[i].state == SNT_CONN_READY;
	}
	if (n->enc != NULL)
		t->drops += snt_enc_dropped(n->enc);
}

/* The line every SNT_PROGRESS_MS; at the end (final) the totals since start. */
static void
snt_net_progress(struct snt_net *n, bool final)
{
	struct snt_stats t;
	unsigned ready;
	int64_t now = proc_mono_ms(), ms = now - n->last_ms > 0 ? now - n->last_ms : 1;
	const char *what = n->o->legacy_jpeg ? "frame batches" : "segments";

	snt_net_totals(n, &t, &ready);
	if (final)
		log_info("total: %llu %s sent, %.1f MB, %llu dropped, %llu not connected, "
			 "%llu reconnects",
			 (unsigned long long)t.segments, what, (double)t.bytes / 1e6,
			 (unsigned long long)t.drops, (unsigned long long)t.offline,
			 (unsigned long long)t.reconnects);
	else
		log_info("progress: %u/%u registered, %llu %s sent (+%llu), %.1f MB (%.0f kbit/s), "
			 "%llu dropped, %llu not connected, %llu reconnects",
			 ready, n->n_conns, (unsigned long long)t.segments, what,
			 (unsigned long long)(t.segments - n->last.segments), (double)t.bytes / 1e6,
			 (double)(t.bytes - n->last.bytes) * 8 / (double)ms,
			 (unsigned long long)t.drops, (unsigned long long)t.offline,
			 (unsigned long long)t.reconnects);
	n->last = t;
	n->last_ms = now;
}

static void
snt_net_progress_cb(lws_sorted_usec_list_t *sul)
{
	struct snt_net *n = lws_container_of(sul, struct snt_net, sul_progress);

	snt_net_progress(n, false);
	lws_sul_schedule(n->ctx, 0, &n->sul_progress, snt_net_progress_cb,
			 SNT_PROGRESS_MS * LWS_US_PER_MS);
}

static void
snt_net_duration_cb(lws_sorted_usec_list_t *sul)
{
	struct snt_net *n = lws_container_of(sul, struct snt_net, sul_duration);

	snt_net_stop(n, 0, "duration reached");
}

static void
snt_net_deadline_cb(lws_sorted_usec_list_t *sul)
{
	struct snt_net *n = lws_container_of(sul, struct snt_net, sul_deadline);

	log_warn(0, "the server did not close every session within %d s of sentinel.bye",
		 SNT_BYE_MS / 1000);
	n->finished = true;
}

void
snt_net_conn_done(struct snt_net *n, struct snt_conn *c, int status)
{
	unsigned done = 0;

	if (status > n->exit_code)
		n->exit_code = status;
	if (status != 0 && !n->stopping)
		snt_net_stop(n, status, "registration refused");
	for (unsigned i = 0; i < n->n_conns; i++)
		done += n->conns[i].state == SNT_CONN_DONE;
	if (done == n->n_conns && !n->finished) {
		n->finished = true;
		lws_cancel_service(n->ctx);
	}
}

void
snt_net_stop(struct snt_net *n, int status, const char *reason)
{
	if (status > n->exit_code)
		n->exit_code = status;
	if (n->stopping)
		return;
	n->stopping = true;
	log_info("stopping: %s", reason);
	/* No more media: the pipeline's threads end before the byes go out, and
	 * what they queued (the last legacy frames) goes out first. */
	if (n->enc != NULL) {
		snt_enc_stop(n->enc);
		snt_net_drain(n);
	}
	snt_net_flush_batch(n);
	for (unsigned i = 0; i < n->n_conns; i++)
		snt_conn_stop(&n->conns[i], reason);
	lws_sul_schedule(n->ctx, 0, &n->sul_deadline, snt_net_deadline_cb,
			 SNT_BYE_MS * LWS_US_PER_MS);
}

int
snt_net_run(struct snt_net *n, struct snt_enc *enc)
{
	struct lws_vhost *vh = lws_get_vhost_by_name(n->ctx, "default");
	lws_sock_file_fd_type fd = { .filefd = n->signal_fd };

	n->enc = enc;
	n->last_ms = proc_mono_ms();
	/* From here lws owns the fd: it closes it, even when adoption fails. */
	n->signal_owned = false;
	if (vh == NULL || lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd,
						     "vigil-sentinel", NULL) == NULL) {
		log_error(0, "the signal fd cannot join the lws loop");
		return 1;
	}
	for (unsigned i = 0; i < n->n_conns; i++)
		snt_conn_connect(&n->conns[i]);
	lws_sul_schedule(n->ctx, 0, &n->sul_progress, snt_net_progress_cb,
			 SNT_PROGRESS_MS * LWS_US_PER_MS);
	if (n->o->duration_ms > 0)
		lws_sul_schedule(n->ctx, 0, &n->sul_duration, snt_net_duration_cb,
				 n->o->duration_ms * LWS_US_PER_MS);
	if (n->o->legacy_jpeg)
		lws_sul_schedule(n->ctx, 0, &n->sul_batch, snt_net_batch_cb,
				 SNT_BATCH_MS * LWS_US_PER_MS);
	snt_net_drain(n);
	while (!n->finished && lws_service(n->ctx, 0) >= 0)
		;
	snt_net_progress(n, true);
	return n->exit_code;
}

void
snt_net_free(struct snt_net *n)
{
	if (n == NULL)
		return;
	/* Closing what is left calls back into the connections: they still exist,
	 * and with stopping set nothing reconnects. */
	n->stopping = true;
	n->finished = true;
	for (unsigned i = 0; i < n->n_conns; i++) {
		lws_sul_cancel(&n->conns[i].sul_retry);
		lws_sul_cancel(&n->conns[i].sul_ping);
		lws_sul_cancel(&n->conns[i].sul_register);
	}
	lws_sul_cancel(&n->sul_progress);
	lws_sul_cancel(&n->sul_duration);
	lws_sul_cancel(&n->sul_deadline);
	lws_sul_cancel(&n->sul_batch);
	if (n->ctx != NULL)
		lws_context_destroy(n->ctx);
	for (unsigned i = 0; i < n->n_conns; i++)
		snt_conn_fini(&n->conns[i]);
	for (size_t i = 0; i < n->batch_n; i++)
		snt_blob_unref(n->batch[i]);
	free(n->batch);
	snt_blob_unref(n->init);
	free(n->conns);
	free(n->scratch);
	if (n->signal_owned)
		close(n->signal_fd);
	free(n);
}
