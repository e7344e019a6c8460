/* wss_rx: a WebSocket connection's bytes after the upgrade, read into frames
 * by wslay and held to RFC 6455 (masking, fragments, control frames, UTF-8,
 * the close handshake) and to vigil's size limits; whole messages go to the
 * stage. Loop thread. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <wslay/wslay.h>

#include "log.h"
#include "proc.h"
#include "wss_internal.h"

/* ---- receiving frames ---- */

static ssize_t
wss_frame_recv(uint8_t *buf, size_t len, int flags, void *user)
{
	struct wss_conn *c = user;
	size_t n = len < c->in_len ? len : c->in_len;

	if (n == 0)
		return -1; /* wslay: want more */
	memcpy(buf, c->in, n);
	c->in += n;
	c->in_len -= n;
	return (ssize_t)n;
}

static ssize_t
wss_frame_nosend(const uint8_t *data, size_t len, int flags, void *user)
{
	return -1; /* this context only reads */
}

static ssize_t
wss_frame_norecv(uint8_t *buf, size_t len, int flags, void *user)
{
	return -1; /* this context only writes */
}

static int
wss_genmask(uint8_t *buf, size_t len, void *user)
{
	return -1; /* servers do not mask */
}

const struct wslay_frame_callbacks wss_frame_in = { wss_frame_nosend, wss_frame_recv, wss_genmask };
const struct wslay_frame_callbacks wss_frame_out = { wss_framer_send, wss_frame_norecv,
						     wss_genmask };

static bool
wss_close_code_ok(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
	       (code >= 3000 && code <= 4999);
}

static void
wss_on_close_frame(struct wss_conn *c)
{
	unsigned code = 1000;

	if (c->ctl_len == 1) {
		wss_fail(c, 1002, "A close frame of one byte");
		return;
	}
	if (c->ctl_len >= 2) {
		code = (unsigned)c->ctl[0] << 8 | c->ctl[1];
		if (!wss_close_code_ok(code)) {
			wss_fail(c, 1002, "Close code %u is not one a client may send", code);
			return;
		}
		if (!env_utf8_valid(c->ctl + 2, c->ctl_len - 2)) {
			wss_fail(c, 1007, "The close reason is not valid UTF-8");
			return;
		}
	}
	wss_conn_close(c, (int)code, "Closing as the client asked");
}

static void
wss_on_control(struct wss_conn *c)
{
	switch (c->frame_op) {
	case WSLAY_PING:
		if (wss_send_control(c, WSLAY_PONG, c->ctl, c->ctl_len) < 0)
			srv_conn_abort(c->sc);
		break;
	case WSLAY_CONNECTION_CLOSE:
		wss_on_close_frame(c);
		break;
	default: /* a pong: activity, nothing else */
		break;
	}
}

static void
wss_on_message(struct wss_conn *c)
{
	struct wss *w = c->w;

	c->in_msg = false;
	if (!c->rx_binary && !env_utf8_valid(c->rx.p, c->rx.len)) {
		wss_fail(c, 1007, "Text message is not valid UTF-8");
		return;
	}
	w->ops->message(w->ctx, c, c->rx.p, c->rx.len, c->rx_binary, proc_mono_us());
	bytes_reset(&c->rx, WSS_RX_KEEP);
}

/* The first chunk of a frame: its header is checked against the rules that
 * wslay leaves to its caller. false: the connection is being failed. */
static bool
wss_frame_start(struct wss_conn *c, const struct wslay_frame_iocb *io)
{
	struct wss *w = c->w;
	uint64_t max = w->cfg->max_message_bytes;

	c->frame_open = true;
	c->frame_op = io->opcode;
	c->frame_left = io->payload_length;
	c->ctl_len = 0;
	if (!io->mask) {
		wss_fail(c, 1002, "A client frame must be masked (RFC 6455 section 5.1)");
		return false;
	}
	if (io->rsv != 0) {
		wss_fail(c, 1002, "Reserved bits are set: no extension was negotiated");
		return false;
	}
	switch (io->opcode) {
	case WSLAY_CONTINUATION_FRAME:
		if (!c->in_msg) {
			wss_fail(c, 1002, "A continuation frame with no message to continue");
			return false;
		}
		break;
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME:
		if (c->in_msg) {
			wss_fail(c, 1002, "A new message began before the last one was finished");
			return false;
		}
		c->in_msg = true;
		c->rx_binary = io->opcode == WSLAY_BINARY_FRAME;
		c->rx.len = 0;
		break;
	case WSLAY_CONNECTION_CLOSE:
	case WSLAY_PING:
	case WSLAY_PONG:
		return true;
	default:
		wss_fail(c, 1002, "Unknown opcode %u", io->opcode);
		return false;
	}
	if (!c->registered && max > WSS_PREREG_MAX)
		max = WSS_PREREG_MAX;
	if (c->rx.len + io->payload_length > max) {
		w->stats.closes_1009++;
		wss_fail(c, 1009,
			 "Message of at least %llu bytes exceeds the limit of %llu bytes%s",
			 (unsigned long long)(c->rx.len + io->payload_length),
			 (unsigned long long)max, c->registered ? "" : " before the register");
		return false;
	}
	return true;
}

static bool
wss_rx_append(struct wss_conn *c, const uint8_t *p, size_t n)
{
	if (bytes_append(&c->rx, p, n) < 0) {
		wss_fail(c, 3005, "Out of memory");
		return false;
	}
	return true;
}

void
wss_frames(struct wss_conn *c, const uint8_t *buf, size_t len)
{
	c->in = buf;
	c->in_len = len;
	while (c->state == WSS_C_OPEN && !c->closing) {
		struct wslay_frame_iocb io;
		ssize_t r;

		memset(&io, 0, sizeof(io));
		r = wslay_frame_recv(c->fr, &io);
		if (r == WSLAY_ERR_WANT_READ)
			break;
		if (r < 0) {
			wss_fail(c, 1002,
				 "Malformed frame header (a length that is not minimal or "
				 "has its top bit set, or a control frame over 125 bytes or "
				 "fragmented)");
			break;
		}
		if (!c->frame_open && !wss_frame_start(c, &io))
			break;
		if (c->frame_op & 0x8) {
			memcpy(c->ctl + c->ctl_len, io.data, io.data_length);
			c->ctl_len += io.data_length;
		} else if (io.data_length > 0 && !wss_rx_append(c, io.data, io.data_length)) {
			break;
		}
		c->frame_left -= io.data_length;
		if (c->frame_left > 0)
			continue;
		c->frame_open = false;
		if (c->frame_op & 0x8)
			wss_on_control(c);
		else if (io.fin)
			wss_on_message(c);
	}
	c->in = NULL;
	c->in_len = 0;
}
