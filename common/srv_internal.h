/* srv_internal: what srv.c (the loop, accepting, lifetimes, deadlines) and
 * srv_io.c (reading, the write queue, TLS) share. Private to the srv module. */
#ifndef VIGIL_SRV_INTERNAL_H
#define VIGIL_SRV_INTERNAL_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "srv.h"

#define SRV_RBUF       (64u << 10) /* bytes read per read(2) or SSL_read */
#define SRV_IOV_MAX    64          /* chunks per writev */
#define SRV_IP_BUCKETS 4096

/* What an epoll event points at: the first member of each object. */
enum srv_kind {
	SRV_K_LISTEN = 1,
	SRV_K_STAGE,
	SRV_K_WAKE,
	SRV_K_CONN,
};

struct srv_src {
	enum srv_kind kind;
	int fd;
};

/* Connections per peer address (IPv4 as v4-mapped IPv6). */
struct srv_ip {
	struct srv_ip *next;
	uint8_t addr[16];
	uint32_t n;
};

struct srv_out {
	const uint8_t *p;
	size_t len;
	void *tag; /* ops->sent when it leaves; NULL: p is ours (a copy) */
};

/* A connection's life:
 *
 *   accepted --(TLS handshake)--> open --srv_conn_shutdown--> ending (flush)
 *      |                           |                              |
 *      |                           +--srv_conn_abort/error--+     v
 *      |                                                    |  lingering (FIN
 *      +------ refused: canned 429/503, then lingering      |  sent, reading)
 *                                                           v     |
 *                                          closed (fd closed) <---+
 *                                                 | end of the round
 *                                                 v
 *                                               freed
 */
struct srv_conn {
	enum srv_kind kind; /* SRV_K_CONN */
	int fd;
	struct srv *s;
	const struct srv_ops *ops; /* s->ops, unless a layer took the connection over */
	void *ctx;
	struct srv_conn *next, **pprev; /* every connection */
	struct srv_conn *next_pending;  /* flush at the end of the round */
	struct srv_conn *next_zombie;
	SSL *ssl;
	bool tls_done, tls_write_wants_read;
	bool in_pending, want_write, blocked, paused, peer_eof, read_pending;
	bool ending, lingering, dead, refused, handshaking, told_closed;
	bool via_proxy;  /* the peer is a trusted proxy: peer may name its client */
	bool named;      /* via_proxy, and the last request head named the client */
	uint32_t events; /* what epoll watches now */
	int linger_ms;
	struct srv_out *out;
	size_t out_head, out_n, out_cap, out_off, queued;
	int64_t deadline_ms, accepted_ms, last_rx_ms;
	struct srv_ip *ip; /* NULL: a trusted proxy's own connection, not capped */
	char peer[48];
	char proxy[48]; /* via_proxy: the proxy's own address */
	alignas(16) unsigned char data[];
};

struct srv {
	struct stage *st;
	struct srv_params p;
	const struct srv_ops *ops;
	void *ctx;
	int epfd;
	struct srv_src listen, wake, sig, bus;
	SSL_CTX *tls;
	struct srv_conn *conns, *pending, *zombies;
	size_t n_conns, n_refusing;
	struct srv_ip *ips[SRV_IP_BUCKETS];
	struct cfg_net proxies[CFG_PROXIES_MAX];
	size_t n_proxies;
	struct srv_stats stats;
	int64_t next_tick_ms;
	uint8_t rbuf[SRV_RBUF];
};

/* srv.c */
void srv_conn_pend(struct srv_conn *c);
void srv_conn_watch(struct srv_conn *c);
void srv_conn_final(struct srv_conn *c);
/* The connection's client from now on: key (NULL: the proxy itself, uncapped),
 * counted against the per-address cap. -EUSERS over it, -ENOMEM. */
int srv_conn_client(struct srv_conn *c, const uint8_t *key);

/* srv_io.c */
int srv_tls_open(struct srv *s);
void srv_conn_read(struct srv_conn *c);
/* Writes what the socket takes; 1: more is queued, 0: all out, -1: the connection failed. */
int srv_conn_flush(struct srv_conn *c);
void srv_conn_drop_out(struct srv_conn *c);

#endif
