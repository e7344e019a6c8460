/* srv_io: a connection's bytes: reads into the loop's buffer, the queue of
 * borrowed chunks written with one sendmsg(2) for many chunks (SSL_write each
 * over TLS), and the TLS context. Runs in the stage's loop thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"
#include "proc.h"
#include "srv_internal.h"

/* ---- TLS ---- */

static const char *
srv_tls_error(void)
{
	static char buf[160];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/* HTTP/1.1 is all any listener speaks; a client offering only other
 * protocols gets no ALPN answer and decides for itself. */
static int
srv_tls_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
	     unsigned inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";

	if (SSL_select_next_proto((unsigned char **)out, outlen, ours, sizeof(ours) - 1, in,
				  inlen) == OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK;
}

int
srv_tls_open(struct srv *s)
{
	SSL_CTX *ctx;

	if (s->p.tls_cert == NULL)
		return 0;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		log_error(0, "SSL_CTX_new() failed: %s", srv_tls_error());
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Idle connections give their buffers back; a write may resume from the
	 * same bytes at another offset of the queue. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_alpn_select_cb(ctx, srv_tls_alpn, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, s->p.tls_cert) != 1) {
		log_error(0, "TLS certificate %s not loaded: %s", s->p.tls_cert, srv_tls_error());
		goto err;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, s->p.tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_error(0, "TLS key %s not loaded: %s", s->p.tls_key, srv_tls_error());
		goto err;
	}
	s->tls = ctx;
	return 0;

err:
	SSL_CTX_free(ctx);
	return -EINVAL;
}

/* 1: done; 0: wait for the socket; -1: failed (the connection is gone). */
static int
srv_tls_handshake(struct srv_conn *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->tls_done = true;
		srv_conn_watch(c);
		return 1;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	log_debug("TLS handshake with %s failed: %s", c->peer,
		  e == SSL_ERROR_SSL ? srv_tls_error() : "connection closed");
	ERR_clear_error();
	srv_conn_final(c);
	return -1;
}

/* > 0 bytes, 0 at the end of the stream, -EAGAIN, or -errno. */
static ssize_t
srv_recv(struct srv_conn *c, uint8_t *buf, size_t len)
{
	ssize_t n;
	int e;

	if (c->ssl == NULL || c->lingering) {
		n = recv(c->fd, buf, len, 0);
		if (n >= 0)
			return n;
		return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
	}
	ERR_clear_error();
	n = SSL_read(c->ssl, buf, (int)len);
	if (n > 0)
		return n;
	e = SSL_get_error(c->ssl, (int)n);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
		return 0;
	ERR_clear_error();
	return -EIO;
}

void
srv_conn_read(struct srv_conn *c)
{
	struct srv *s = c->s;

	if (c->ssl != NULL && !c->tls_done && !c->lingering) {
		if (srv_tls_handshake(c) <= 0)
			return;
	}
	if (c->tls_write_wants_read) {
		c->tls_write_wants_read = false;
		if (srv_conn_flush(c) < 0)
			return;
		srv_conn_pend(c);
	}
	/* One read per readiness (the loop is level-triggered, so more comes
	 * next round); over TLS also what OpenSSL already decrypted. */
	for (int i = 0; i < 4 && !c->dead; i++) {
		ssize_t n;

		if (c->paused && !c->lingering)
			return;
		n = srv_recv(c, s->rbuf, sizeof(s->rbuf));
		if (n == -EAGAIN)
			return;
		if (n < 0) {
			srv_conn_final(c);
			return;
		}
		if (n == 0) {
			if (c->peer_eof || c->lingering || c->ending || c->refused) {
				srv_conn_final(c);
				return;
			}
			c->peer_eof = true;
			srv_conn_watch(c);
			c->ops->data(c->ctx, c, NULL, 0);
			return;
		}
		c->last_rx_ms = proc_mono_ms();
		s->stats.bytes_in += (uint64_t)n;
		if (!c->lingering && !c->ending && !c->refused)
			c->ops->data(c->ctx, c, s->rbuf, (size_t)n);
		if (c->ssl == NULL || c->lingering || SSL_pending(c->ssl) == 0)
			return;
	}
}

/* ---- the write queue ---- */

static void
srv_release(struct srv_conn *c, struct srv_out *o, bool written)
{
	if (o->tag == NULL)
		free((void *)o->p);
	else if (!c->refused)
		c->ops->sent(c->ctx, c, o->tag, written);
}

static int
srv_push(struct srv_conn *c, const void *p, size_t len, void *tag)
{
	if (c->dead || c->ending)
		return -ESHUTDOWN;
	if (c->out_head == c->out_n)
		c->out_head = c->out_n = 0;
	if (c->out_n == c->out_cap) {
		if (c->out_head > 0) {
			memmove(c->out, c->out + c->out_head,
				(c->out_n - c->out_head) * sizeof(*c->out));
			c->out_n -= c->out_head;
			c->out_head = 0;
		} else {
			size_t cap = c->out_cap ? c->out_cap * 2 : 8;
			struct srv_out *v = realloc(c->out, cap * sizeof(*v));

			if (v == NULL)
				return -ENOMEM;
			c->out = v;
			c->out_cap = cap;
		}
	}
	c->out[c->out_n++] = (struct srv_out){ .p = p, .len = len, .tag = tag };
	c->queued += len;
	srv_conn_pend(c);
	return 0;
}

int
srv_conn_write(struct srv_conn *c, const void *p, size_t len, void *tag)
{
	if (tag == NULL || len == 0)
		return -EINVAL;
	return srv_push(c, p, len, tag);
}

int
srv_conn_write_copy(struct srv_conn *c, const void *p, size_t len)
{
	void *copy;
	int r;

	if (len == 0)
		return 0;
	if (c->dead || c->ending)
		return -ESHUTDOWN;
	copy = malloc(len);
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, p, len);
	r = srv_push(c, copy, len, NULL);
	if (r < 0)
		free(copy);
	return r;
}

size_t
srv_conn_queued(const struct srv_conn *c)
{
	return c->queued;
}

/* n bytes left the socket: whole chunks are released in order. */
static void
srv_advance(struct srv_conn *c, size_t n)
{
	c->queued -= n;
	c->s->stats.bytes_out += n;
	while (n > 0 && c->out_head < c->out_n) {
		struct srv_out o = c->out[c->out_head];
		size_t left = o.len - c->out_off;

		if (n < left) {
			c->out_off += n;
			return;
		}
		n -= left;
		c->out_head++;
		c->out_off = 0;
		srv_release(c, &o, true);
	}
}

static int
srv_flush_tls(struct srv_conn *c)
{
	while (c->out_head < c->out_n) {
		const struct srv_out *o = &c->out[c->out_head];
		size_t len = o->len - c->out_off;
		int n, e;

		ERR_clear_error();
		n = SSL_write(c->ssl, o->p + c->out_off, len > INT32_MAX ? INT32_MAX : (int)len);
		if (n > 0) {
			c->s->stats.writes++;
			srv_advance(c, (size_t)n);
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_WRITE) {
			c->blocked = true;
			return 1;
		}
		if (e == SSL_ERROR_WANT_READ) {
			c->tls_write_wants_read = true;
			return 1;
		}
		ERR_clear_error();
		srv_conn_final(c);
		return -1;
	}
	return 0;
}

int
srv_conn_flush(struct srv_conn *c)
{
	if (c->dead)
		return -1;
	if (c->ssl != NULL) {
		if (!c->tls_done)
			return c->out_head < c->out_n ? 1 : 0;
		return srv_flush_tls(c);
	}
	while (c->out_head < c->out_n) {
		struct iovec iov[SRV_IOV_MAX];
		struct msghdr msg = { .msg_iov = iov };
		size_t total = 0;
		ssize_t n;

		for (size_t i = c->out_head; i < c->out_n && msg.msg_iovlen < SRV_IOV_MAX; i++) {
			size_t off = i == c->out_head ? c->out_off : 0;

			iov[msg.msg_iovlen].iov_base = (void *)(c->out[i].p + off);
			iov[msg.msg_iovlen].iov_len = c->out[i].len - off;
			total += c->out[i].len - off;
			msg.msg_iovlen++;
		}
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				c->blocked = true;
				return 1;
			}
			srv_conn_final(c);
			return -1;
		}
		c->s->stats.writes++;
		srv_advance(c, (size_t)n);
		if ((size_t)n < total) {
			c->s->stats.partial_writes++;
			c->blocked = true;
			return 1;
		}
	}
	return 0;
}

void
srv_conn_drop_out(struct srv_conn *c)
{
	while (c->out_head < c->out_n) {
		struct srv_out o = c->out[c->out_head++];

		srv_release(c, &o, false);
	}
	c->out_head = c->out_n = c->out_off = 0;
	c->queued = 0;
}
