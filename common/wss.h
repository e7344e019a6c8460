/* wss: the WebSocket server every vigil stage with clients shares (ingest for
 * sentinels, relay for proctors), on srv's loop and the listening socket
 * vigild handed down: the upgrade (RFC 6455 section 4, refused with its HTTP
 * status otherwise), frames by wslay, messages reassembled under the size
 * limit (1009 as soon as a frame header shows it cannot fit; 64 KiB before
 * the register), the frame rules (1002: unmasked or reserved bits or bad
 * opcodes or fragments; 1007: text that is not UTF-8), a send queue per
 * connection of shared, refcounted buffers; closes with code and reason after
 * the queue; the register deadline and the idle rule (3003).
 *
 * Stages see wss_ objects only. Every callback runs in the stage's loop
 * thread; wss_wake() is the only call another thread may make.
 */
#ifndef VIGIL_WSS_H
#define VIGIL_WSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cfg.h"
#include "env.h"
#include "http1.h"
#include "lat.h"
#include "srv.h"
#include "stage.h"
#include "tok.h"

struct wss;
struct wss_conn;

/* One message to send, shared by every queue holding it (relay's fan-out). */
struct wss_buf;
struct wss_buf *wss_buf_new(size_t len, bool binary);
/* Where the message's len bytes go (headroom for the frame header is before it). */
uint8_t *wss_buf_data(struct wss_buf *b);
/* The message's length (len of wss_buf_new). */
size_t wss_buf_len(const struct wss_buf *b);
void wss_buf_ref(struct wss_buf *b);
void wss_buf_unref(struct wss_buf *b);

/* What a queued message stands for, handed back to tx_done when it leaves the
 * queue (sent or dropped). owner NULL: an event or reply. */
struct wss_tx_info {
	void *owner;
	int64_t seq;
	uint32_t weight;
	uint32_t flags;
	uint64_t bytes; /* the owner's to count with: wss only hands it back */
	/* unix us (CLOCK_REALTIME): when the message's last byte is handed to the
	 * socket, the time since goes into tx_latency. 0: not timed. */
	int64_t stamp_us;
};

struct wss_ops {
	const char *protocol;      /* lws protocol name, e.g. "vigil-sentinel" */
	const char *path;          /* "/sentinel" */
	const char *register_type; /* "sentinel.register", for the 3003 reason */
	const char *restart_text;  /* "Ingest is restarting", for 1012 at a restart */
	size_t conn_size;          /* the stage's per-connection state, zeroed */
	int sndbuf;                /* SO_SNDBUF for each connection; 0: the kernel's autotuning */
	void (*opened)(void *ctx, struct wss_conn *c);
	/* One complete message; buf is valid until it returns. rx_done_us: CLOCK_MONOTONIC. */
	void (*message)(void *ctx, struct wss_conn *c, const void *buf, size_t len, bool binary,
			int64_t rx_done_us);
	void (*closed)(void *ctx, struct wss_conn *c);
	/* Optional: a queued message with an owner left the queue. */
	void (*tx_done)(void *ctx, struct wss_conn *c, const struct wss_tx_info *tx);
	/* Optional: another thread called wss_wake(). */
	void (*wake)(void *ctx);
	/* Every 250 ms. */
	void (*tick)(void *ctx);
};

struct wss_stats {
	uint64_t connections_total, closes_1009, closes_3006, idle_closes, sent_messages;
	/* the listener's connections: open, still in their handshake (upgrade
	 * or register pending), refused over limits.max_connections_per_ip and
	 * limits.max_handshakes */
	uint64_t open, handshaking, refused_per_ip, refused_handshakes;
	uint64_t partial_writes; /* messages the socket did not take whole at once */
	struct lat tx_latency;   /* timed messages (stamp_us): stamp to last byte sent */
};

/* Opens the server on the stage's listening socket for addr (vigild's fd 3). */
struct wss *wss_new(struct stage *st, const struct cfg_listen *addr, const struct wss_ops *ops,
		    void *ctx);
void wss_free(struct wss *w);
/* Serves until the stage is asked to stop, then closes every connection (1012
 * for a restart, 1001 for a shutdown) and waits up to 2 s for the closes. */
int wss_run(struct wss *w);
/* Embedded in another layer's loop (httpd's /api/ws): no listener of its
 * own. The host sizes its connections' data area to at least
 * wss_conn_size(ops), hands over each connection whose upgrade request it
 * read (wss_adopt takes head and answers 101 or the refusal), calls
 * wss_tick() every SRV_TICK_MS and, at stop, wss_close_all() and its loop
 * until wss_open_count() is 0 (or a drain time passed). */
struct wss *wss_embed(struct stage *st, struct srv *s, const struct wss_ops *ops, void *ctx);
size_t wss_conn_size(const struct wss_ops *ops);
/* The host's own state of the connection is gone by now: the data area is
 * the connection's from here. rest: bytes read after the head. -ENOBUFS
 * (the connection aborted) when the area is too small. */
int wss_adopt(struct wss *w, struct srv_conn *sc, struct http1 *head, const uint8_t *rest,
	      size_t len);
void wss_tick(struct wss *w);
/* 1012 to every client when the stage restarts, 1001 when it stops. */
void wss_close_all(struct wss *w);
size_t wss_open_count(const struct wss *w);
/* One round of the loop, waiting up to timeout_ms: what wss_run does until
 * the stage stops, for a driver that runs the loop itself (the fuzz target). */
int wss_service(struct wss *w, int timeout_ms);
/* Connections accepted and not yet closed, upgraded or not. */
size_t wss_conn_count(const struct wss *w);
/* Any thread: makes ops->wake run in the service thread. */
void wss_wake(struct wss *w);
const struct wss_stats *wss_stats(const struct wss *w);
/* Packs 4 map entries of the listener's connection figures (connectionsOpen,
 * handshaking, refusedPerIp, refusedHandshakes) into a heartbeat's stats. */
void wss_pack_listener(const struct wss *w, msgpack_packer *pk);
/* The stage's config changed (stage_reload): limits and timeouts from now on. */
void wss_set_cfg(struct wss *w, const struct cfg *cfg);
/* Iterates over every open connection. */
struct wss_conn *wss_first(struct wss *w);
struct wss_conn *wss_next(struct wss_conn *c);

void *wss_conn_data(struct wss_conn *c);
/* The client's address without the port, "203.0.113.7" or "2001:db8::1" (an
 * IPv4 client of a dual-stack socket as IPv4), for logs and the audit log. */
const char *wss_conn_peer(const struct wss_conn *c);
struct wss_conn *wss_conn_of(void *data);
/* Queues a packed msgpack envelope, sent as a JSON text frame. -ENOBUFS when
 * 256 replies wait already: a client that reads nothing loses replies only. */
int wss_conn_send(struct wss_conn *c, const void *mp, size_t len);
/* Queues a shared buffer (takes a reference). */
int wss_conn_queue(struct wss_conn *c, struct wss_buf *b, const struct wss_tx_info *tx);
/* Drops every queued message of owner; ret_from/ret_to: its first and last seq, or -1. */
void wss_conn_drop(struct wss_conn *c, void *owner, int64_t *ret_from, int64_t *ret_to);
/* Checks the payload's "token" for role (tok_check with tok_mask_for(role),
 * now) and remembers it (its digest only) so that wss_revoke finds the
 * connection. Errors as tok_check, -ENOENT without a token, -EINVAL when it is
 * not a string: what tok_refusal explains. *ret_info is the token's entry
 * whenever the store knows it (refused or not), else NULL: the audit log's
 * auth.failed names who was refused. */
int wss_conn_check_token(struct wss_conn *c, const struct tok_store *store,
			 const msgpack_object *payload, enum cfg_role role,
			 const struct tok_info **ret_info);
/* The bus's token.revoke { token } (the operator console's revocation): marks
 * the token revoked in store and closes every connection that uses it with
 * 3004. Returns how many were closed, -EINVAL without a token, -ENOENT for a
 * token the store does not know. */
int wss_revoke(struct wss *w, struct tok_store *store, const msgpack_object *body);
/* c was registered with a token on store's revocation list. */
bool wss_conn_revoked(const struct wss_conn *c, const struct tok_store *store);
/* From now on no revocation closes c: its owner does (the console answers
 * an operator's revocation of their own token first). */
void wss_conn_hold(struct wss_conn *c);
/* vigild's "revoked" list (stage_revoked()): makes it store's whole list
 * (tok_set_revoked: the digests not on it are lifted) and closes every
 * connection registered with a token on it with 3004. Returns how many were
 * closed, or -ENOMEM with nothing changed. */
int wss_revoke_list(struct wss *w, struct tok_store *store, const uint8_t *digests, size_t n);
/* Stops (or resumes) reading the client: backpressure for a stage whose work
 * on the client's messages lags behind (ingest's JPEG encoder). The messages
 * in bytes read already are still delivered; the kernel's buffers then fill
 * and TCP slows the client down. */
void wss_conn_pause(struct wss_conn *c, bool paused);
/* Closes after what is queued has been sent. */
void wss_conn_close(struct wss_conn *c, int code, const char *reason);
bool wss_conn_closing(const struct wss_conn *c);
/* From the register deadline to the idle rule. Call it after the
 * registration's ack: after a shutdown notice, the client gets
 * server.shutdown next. */
void wss_conn_registered(struct wss_conn *c);
/* The bus's shutdown.notice { at } (unix ms; PROTOCOL.md section 7): every
 * registered client gets server.shutdown { at } now, and each one that
 * registers later gets it after its ack. A second notice replaces the time.
 * The closes (1001) come when vigild stops the stage. */
void wss_shutdown_notice(struct wss *w, int64_t at_ms);

/* Decodes a client message as an envelope (JSON text or msgpack binary). A
 * malformed one closes the connection, 3006 with the parser's reason (3005 if
 * memory ran out), and gives NULL. The env borrows buf; env_free() it. */
struct env *wss_decode(struct wss_conn *c, const void *buf, size_t len, bool binary);

/* A server envelope (PROTOCOL.md section 2) built in place: begin with the
 * type and the number of payload entries, pack them with m.pk, then send
 * (which frees it) as a JSON text frame. */
struct wss_msg {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};
void wss_msg_begin(struct wss_msg *m, const char *type, uint32_t n_payload);
int wss_msg_send(struct wss_conn *c, struct wss_msg *m);
/* server.error { code, reason, ref }: the connection stays. */
void wss_send_error(struct wss_conn *c, int code, const char *reason, const char *ref);
/* The same with the reason formatted printf-style. */
void wss_send_errorf(struct wss_conn *c, int code, const char *ref, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* server.pong { time: unix ms }, the answer to every *.ping (PROTOCOL.md section 3). */
void wss_send_pong(struct wss_conn *c);
/* The register's version (PROTOCOL.md section 4, 5, 7): absent or the
 * integer 1 is 0; otherwise -1 with the 3002 reason in reason. */
int wss_check_version(const msgpack_object *payload, char *reason, size_t size);
/* server.registration.reject { reason }, then the close with the same reason. */
void wss_reject(struct wss_conn *c, int code, const char *reason);

#endif
