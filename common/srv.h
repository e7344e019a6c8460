/* srv: the event loop and the connections of every vigil stage that serves
 * clients (ingest, relay, httpd): epoll on the listening socket vigild handed
 * down, the stage's bus and signal fds and a wake-up eventfd; TCP or TLS
 * (OpenSSL) connections that read into one buffer of the loop and write from
 * a queue of borrowed chunks (writev, no copy); deadlines checked every tick;
 * closes that flush what is queued and then linger, so that the peer reads the
 * last answer instead of a reset.
 *
 * It knows no protocol: http1.h reads request heads, wss.h speaks WebSocket
 * and httpd answers HTTP on top of it. What a connection costs before its
 * protocol says it is established (srv_conn_established) is counted against
 * the listener's cap on handshakes, and every connection against its
 * address's cap (limits.max_connections_per_ip); over either, the connection
 * is answered 503 or 429 and closed without reading it.
 *
 * Behind a reverse proxy every connection comes from the proxy's address: a
 * peer in srv_params.proxies (trusted_proxies) is not capped at accept, and
 * the layer, once it read a request head, calls srv_conn_forwarded(): the
 * client that head names becomes the connection's address (srv_conn_peer,
 * for logs and the audit log) and is counted against the cap instead
 * (srv_fwd.c). Anyone else's X-Forwarded-For is ignored.
 *
 * Everything runs in the stage's one loop thread, except srv_wake().
 *
 * Caps (limits.max_connections_per_ip, limits.max_handshakes) count this
 * process's connections: with workers on one socket, each worker's.
 */
#ifndef VIGIL_SRV_H
#define VIGIL_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "stage.h"

struct srv;
struct srv_conn;
struct http1;

struct srv_ops {
	/* A connection was accepted; its data area is zeroed. */
	void (*opened)(void *ctx, struct srv_conn *c);
	/* Bytes arrived; the layer takes them all (it copies what it keeps). */
	void (*data)(void *ctx, struct srv_conn *c, const uint8_t *buf, size_t len);
	/* The queue is empty and the layer asked for this (srv_conn_want_write). */
	void (*writable)(void *ctx, struct srv_conn *c);
	/* A chunk queued with a tag left the queue: written whole, or dropped
	 * because the connection closed. */
	void (*sent)(void *ctx, struct srv_conn *c, void *tag, bool written);
	/* The deadline set with srv_conn_deadline() passed. */
	void (*expired)(void *ctx, struct srv_conn *c);
	/* The connection is gone (peer, error or srv_conn_abort); its data area
	 * stays readable until the loop's iteration ends. */
	void (*closed)(void *ctx, struct srv_conn *c);
	/* Optional: another thread called srv_wake(). */
	void (*wake)(void *ctx);
	/* Optional: every SRV_TICK_MS. */
	void (*tick)(void *ctx);
};

#define SRV_TICK_MS 250

struct srv_params {
	int listen_fd;        /* the stage's, kept open by the stage */
	const char *tls_cert; /* PEM chain and key: TLS on every connection; NULL: TCP */
	const char *tls_key;
	size_t conn_size;              /* the layer's per-connection data, zeroed */
	int sndbuf;                    /* SO_SNDBUF; 0: the kernel's autotuning */
	int64_t max_per_ip;            /* connections from one address; 0: no cap */
	int64_t max_handshakes;        /* connections not yet established; 0: no cap */
	const struct cfg_net *proxies; /* trusted_proxies, copied; NULL: none */
	size_t n_proxies;
	/* Other processes accept on the same socket (relay's workers): a new
	 * connection wakes one of them (EPOLLEXCLUSIVE), and each takes a few
	 * at a time and goes to the back of the socket's queue of waiters, so
	 * that the connections spread over the workers. */
	bool shared;
};

struct srv_stats {
	uint64_t accepted, refused_per_ip, refused_handshakes;
	uint64_t open, handshaking, peak_open;
	uint64_t bytes_in, bytes_out, writes, partial_writes;
};

/* Opens the loop on p->listen_fd with the stage's fds. NULL with errno; a TLS
 * certificate or key that does not load is logged once, by file. */
struct srv *srv_new(struct stage *st, const struct srv_params *p, const struct srv_ops *ops,
		    void *ctx);
/* Closes every connection at once (no callbacks but closed) and the loop. */
void srv_free(struct srv *s);
/* One round: waits up to timeout_ms for events (less when a tick is due),
 * handles them, flushes what was queued, and tells the stage how long the
 * work took (stage_loop_round). -errno when epoll fails. */
int srv_once(struct srv *s, int timeout_ms);
/* Any thread: makes ops->wake run in the loop. */
void srv_wake(struct srv *s);
/* Accepts no more (the stage stops): the connections that come go to the
 * other processes on the socket, or wait in its backlog for the next one. */
void srv_stop_accepting(struct srv *s);
/* Caps from a reloaded config, for connections accepted from now on. */
void srv_set_caps(struct srv *s, int64_t max_per_ip, int64_t max_handshakes);
/* trusted_proxies from a reloaded config (at most CFG_PROXIES_MAX), for
 * connections accepted from now on. */
void srv_set_proxies(struct srv *s, const struct cfg_net *proxies, size_t n);
const struct srv_stats *srv_stats(const struct srv *s);
size_t srv_conn_count(const struct srv *s);
/* 4 map entries for a heartbeat's stats: connectionsOpen, handshaking,
 * refusedPerIp, refusedHandshakes. */
void srv_pack_listener(const struct srv *s, msgpack_packer *pk);

void *srv_conn_data(struct srv_conn *c);
/* The bytes of the data area (srv_params.conn_size). */
size_t srv_conn_data_size(const struct srv_conn *c);
/* Another layer takes the connection over (httpd hands /api/ws to wss): its
 * callbacks from now on, with ctx; tick and wake stay the loop's. */
void srv_conn_set_ops(struct srv_conn *c, const struct srv_ops *ops, void *ctx);
struct srv_conn *srv_conn_of(void *data);
int srv_conn_fd(const struct srv_conn *c);
bool srv_conn_is_tls(const struct srv_conn *c);
/* The client's address, "203.0.113.7" or "2001:db8::1": the peer's, or the
 * one a trusted proxy named (srv_conn_forwarded). */
const char *srv_conn_peer(const struct srv_conn *c);
/* Whether c's last request head came from a trusted proxy and named its
 * client (a browser on the proxy's own host, straight to vigil, does not). */
bool srv_conn_proxied(const struct srv_conn *c);
/* A request head h was read on c. When c's peer is a trusted proxy, the
 * client its X-Forwarded-For (the rightmost address that is not itself a
 * trusted proxy) or else its X-Real-IP names becomes c's address and is
 * counted against limits.max_connections_per_ip; a head that names none (or
 * a malformed one, or one sent twice) leaves the proxy's own address, uncapped.
 * Anyone else's headers change nothing. 0, -EUSERS when the client is over
 * the cap (answer 429 and close; counted in refusedPerIp), -ENOMEM. */
int srv_conn_forwarded(struct srv_conn *c, const struct http1 *h);
/* srv_conn_forwarded's choice, pure: 1 and ret_key (16 bytes, IPv4
 * v4-mapped) when xff (xff_n fields of it; only one is read) or else
 * real_ip (NULL: absent) names a client, 0 when neither does. */
int srv_fwd_pick(const struct cfg_net *proxies, size_t n, const char *xff, unsigned xff_n,
		 const char *real_ip, uint8_t ret_key[16]);
/* An address key as srv_conn_peer shows it (IPv4 for a v4-mapped key). */
void srv_key_text(const uint8_t key[16], char *buf, size_t size);
/* CLOCK_MONOTONIC ms of the last byte received (the accept at first). */
int64_t srv_conn_last_rx(const struct srv_conn *c);
int64_t srv_conn_accepted_ms(const struct srv_conn *c);

/* The protocol's handshake is over: the connection leaves the handshake cap. */
void srv_conn_established(struct srv_conn *c);
/* Queues len bytes at p, borrowed until ops->sent(tag) (tag must not be NULL). */
int srv_conn_write(struct srv_conn *c, const void *p, size_t len, void *tag);
/* Queues a copy of len bytes. -ENOMEM. */
int srv_conn_write_copy(struct srv_conn *c, const void *p, size_t len);
/* Bytes queued and not yet taken by the socket. */
size_t srv_conn_queued(const struct srv_conn *c);
/* Asks for ops->writable once the queue is empty (at the end of this round
 * at the earliest). */
void srv_conn_want_write(struct srv_conn *c);
/* The layer wrote to the fd itself and the socket is full: ops->writable
 * once it takes more (EPOLLOUT). */
void srv_conn_wait_writable(struct srv_conn *c);
/* Stops or resumes reading (ops->data) from the peer. */
void srv_conn_pause(struct srv_conn *c, bool paused);
/* ops->expired at CLOCK_MONOTONIC ms at (0: none); checked every tick. */
void srv_conn_deadline(struct srv_conn *c, int64_t at_ms);
/* Sends what is queued, then ends the connection: the write side is shut and
 * what the peer still sends is read and dropped for up to linger_ms, so that
 * the peer sees the last answer rather than a reset. Then ops->closed. */
void srv_conn_shutdown(struct srv_conn *c, int linger_ms);
/* Ends the connection now, dropping what is queued; ops->closed at once. */
void srv_conn_abort(struct srv_conn *c);
bool srv_conn_ending(const struct srv_conn *c);

#endif
