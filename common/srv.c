/* srv: the loop (epoll), accepting with the per-address and handshake caps,
 * each connection's lifetime, deadlines and ticks. Reading, writing and TLS
 * are in srv_io.c. Runs in the stage's loop thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mp.h"
#include "proc.h"
#include "srv_internal.h"

#define SRV_ACCEPT_BURST  64 /* accepts per readiness of the listening socket */
#define SRV_SHARED_BURST  4  /* the same when other processes accept on it too */
#define SRV_EVENTS        256
#define SRV_REFUSING_MAX  1024 /* refused connections lingering at once; beyond, closed bare */
#define SRV_REFUSE_LINGER 1000

/* ---- addresses ---- */

static unsigned
srv_ip_hash(const uint8_t addr[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	return h & (SRV_IP_BUCKETS - 1);
}

static struct srv_ip *
srv_ip_get(struct srv *s, const uint8_t addr[16])
{
	unsigned b = srv_ip_hash(addr);
	struct srv_ip *ip;

	for (ip = s->ips[b]; ip != NULL; ip = ip->next)
		if (memcmp(ip->addr, addr, 16) == 0)
			return ip;
	ip = calloc(1, sizeof(*ip));
	if (ip == NULL)
		return NULL;
	memcpy(ip->addr, addr, 16);
	ip->next = s->ips[b];
	s->ips[b] = ip;
	return ip;
}

/* One connection fewer; a node with none is removed (one just looked up and
 * never counted, too). */
static void
srv_ip_put(struct srv *s, struct srv_ip *ip)
{
	struct srv_ip **pp;

	if (ip == NULL || (ip->n > 0 && --ip->n > 0))
		return;
	for (pp = &s->ips[srv_ip_hash(ip->addr)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ip) {
			*pp = ip->next;
			free(ip);
			return;
		}
	}
}

void
srv_key_text(const uint8_t key[16], char *buf, size_t size)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	/* An IPv4 client of a dual-stack socket: the same text as on an IPv4
	 * socket ("::ffff:" would make one client two in logs and audit
	 * records). The key is the mapped form either way. */
	if (memcmp(key, mapped, 12) == 0)
		inet_ntop(AF_INET, key + 12, buf, (socklen_t)size);
	else
		inet_ntop(AF_INET6, key, buf, (socklen_t)size);
}

/* The peer as a 16-byte key and as text. */
static void
srv_peer(const struct sockaddr_storage *ss, uint8_t key[16], char *text, size_t size)
{
	memset(key, 0, 16);
	snprintf(text, size, "?");
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sa = (const struct sockaddr_in *)ss;

		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sa->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	} else {
		return;
	}
	srv_key_text(key, text, size);
}

int
srv_conn_client(struct srv_conn *c, const uint8_t *key)
{
	struct srv *s = c->s;
	struct srv_ip *ip;

	if (key == NULL) {
		srv_ip_put(s, c->ip);
		c->ip = NULL;
		c->named = false;
		memcpy(c->peer, c->proxy, sizeof(c->peer));
		return 0;
	}
	c->named = true;
	srv_key_text(key, c->peer, sizeof(c->peer));
	if (c->ip != NULL && memcmp(c->ip->addr, key, 16) == 0)
		return 0;
	ip = srv_ip_get(s, key);
	if (ip == NULL)
		return -ENOMEM;
	if (s->p.max_per_ip > 0 && ip->n >= (uint64_t)s->p.max_per_ip) {
		if (ip->n == 0)
			srv_ip_put(s, ip);
		s->stats.refused_per_ip++;
		return -EUSERS;
	}
	ip->n++;
	srv_ip_put(s, c->ip);
	c->ip = ip;
	return 0;
}

/* ---- connections ---- */

void
srv_conn_watch(struct srv_conn *c)
{
	uint32_t ev = 0;
	struct epoll_event e;

	if (c->dead)
		return;
	if (c->lingering || (!c->paused && !c->peer_eof) || c->tls_write_wants_read ||
	    (c->ssl != NULL && !c->tls_done))
		ev |= EPOLLIN;
	/* want_write: the layer writes on its own (sendfile) and waits for room. */
	if (c->out_n > c->out_head || c->want_write || (c->ssl != NULL && !c->tls_done))
		ev |= EPOLLOUT;
	if (ev == c->events)
		return;
	e.events = ev;
	e.data.ptr = c;
	if (epoll_ctl(c->s->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->events = ev;
	else
		log_warn(-errno, "epoll_ctl(MOD) failed for a connection from %s", c->peer);
}

void
srv_conn_pend(struct srv_conn *c)
{
	if (c->in_pending || c->dead)
		return;
	c->in_pending = true;
	c->next_pending = c->s->pending;
	c->s->pending = c;
}

/* Closes the fd and unlinks: nothing about the peer is left but the memory,
 * freed at the end of the round. */
void
srv_conn_final(struct srv_conn *c)
{
	struct srv *s = c->s;

	if (c->dead)
		return;
	/* What is still queued goes back to the layer first, then it forgets the
	 * connection. */
	srv_conn_drop_out(c);
	if (!c->told_closed && !c->refused && c->ops->closed != NULL) {
		c->told_closed = true;
		c->ops->closed(c->ctx, c);
	}
	c->dead = true;
	if (c->handshaking) {
		c->handshaking = false;
		s->stats.handshaking--;
	}
	if (c->refused)
		s->n_refusing--;
	else
		s->stats.open--;
	srv_ip_put(s, c->ip);
	c->ip = NULL;
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	s->n_conns--;
	c->next_zombie = s->zombies;
	s->zombies = c;
}

/* The queue is out: the write side ends and the peer's bytes are read and
 * dropped until it closes or linger_ms pass. */
static void
srv_conn_start_linger(struct srv_conn *c)
{
	if (!c->told_closed && !c->refused && c->ops->closed != NULL) {
		c->told_closed = true;
		c->ops->closed(c->ctx, c);
	}
	if (c->linger_ms <= 0 || c->peer_eof) {
		srv_conn_final(c);
		return;
	}
	if (c->ssl != NULL && c->tls_done)
		SSL_shutdown(c->ssl); /* close_notify; its answer is not awaited */
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	c->deadline_ms = proc_mono_ms() + c->linger_ms;
	srv_conn_watch(c);
}

static struct srv_conn *
srv_conn_new(struct srv *s, int fd, const char *peer, struct srv_ip *ip, bool refused)
{
	struct srv_conn *c = calloc(1, sizeof(*c) + (refused ? 0 : s->p.conn_size));
	struct epoll_event e = { .events = EPOLLIN };

	if (c == NULL)
		return NULL;
	c->kind = SRV_K_CONN;
	c->fd = fd;
	c->s = s;
	c->ops = s->ops;
	c->ctx = s->ctx;
	c->refused = refused;
	c->ip = ip;
	c->accepted_ms = c->last_rx_ms = proc_mono_ms();
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	if (s->tls != NULL && !refused) {
		c->ssl = SSL_new(s->tls);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
			SSL_free(c->ssl);
			free(c);
			return NULL;
		}
		SSL_set_accept_state(c->ssl);
		e.events |= EPOLLOUT;
	}
	e.data.ptr = c;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		SSL_free(c->ssl);
		free(c);
		return NULL;
	}
	c->events = e.events;
	c->next = s->conns;
	if (c->next != NULL)
		c->next->pprev = &c->next;
	c->pprev = &s->conns;
	s->conns = c;
	s->n_conns++;
	return c;
}

/* Over a cap: a canned answer (plain HTTP only; a TLS peer just sees the
 * close), then the connection lingers briefly so that the answer is read. */
static void
srv_refuse(struct srv *s, int fd, const char *peer, int status)
{
	static const char body429[] = "{\"error\":\"too many connections from this address\"}";
	static const char body503[] = "{\"error\":\"too many connections in their handshake\"}";
	const char *body = status == 429 ? body429 : body503;
	char head[256];
	struct srv_conn *c;
	int n;

	if (status == 429)
		s->stats.refused_per_ip++;
	else
		s->stats.refused_handshakes++;
	if (s->tls != NULL || s->n_refusing >= SRV_REFUSING_MAX ||
	    (c = srv_conn_new(s, fd, peer, NULL, true)) == NULL) {
		close(fd);
		return;
	}
	s->n_refusing++;
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "Retry-After: 1\r\nConnection: close\r\n\r\n",
		     status, status == 429 ? "Too Many Requests" : "Service Unavailable",
		     strlen(body));
	if (srv_conn_write_copy(c, head, (size_t)n) < 0 ||
	    srv_conn_write_copy(c, body, strlen(body)) < 0) {
		srv_conn_final(c);
		return;
	}
	srv_conn_shutdown(c, SRV_REFUSE_LINGER);
}

/* The listening socket's entry in the loop, last in the socket's queue of
 * waiters. The kernel wakes the first waiter that sleeps in epoll_wait
 * (EPOLLEXCLUSIVE): without the move, an idle worker started first would
 * take every connection. */
static int
srv_listen_watch(struct srv *s, bool again)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = &s->listen };

	if (s->p.shared)
		e.events |= EPOLLEXCLUSIVE; /* ADD only: hence DEL and ADD to move it */
	if (again && epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listen.fd, NULL) < 0)
		return -errno;
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen.fd, &e) < 0 ? -errno : 0;
}

static void
srv_accept(struct srv *s)
{
	int burst = s->p.shared ? SRV_SHARED_BURST : SRV_ACCEPT_BURST, taken = 0, r;

	if (s->listen.fd < 0)
		return; /* srv_stop_accepting */
	for (int i = 0; i < burst; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		uint8_t key[16];
		char peer[48];
		struct srv_ip *ip;
		struct srv_conn *c;
		bool proxied;
		int one = 1;
		int fd = accept4(s->listen.fd, (struct sockaddr *)&ss, &len,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn(-errno, "accept4() failed");
			break;
		}
		taken++;
		s->stats.accepted++;
		srv_peer(&ss, key, peer, sizeof(peer));
		/* A trusted proxy carries many clients: each is counted once its
		 * request names it (srv_conn_forwarded). */
		proxied = cfg_net_match(s->proxies, s->n_proxies, key);
		ip = proxied ? NULL : srv_ip_get(s, key);
		if (!proxied && ip == NULL) {
			close(fd);
			continue;
		}
		if (ip != NULL && s->p.max_per_ip > 0 && ip->n >= (uint64_t)s->p.max_per_ip) {
			srv_refuse(s, fd, peer, 429);
			continue;
		}
		if (s->p.max_handshakes > 0 &&
		    s->stats.handshaking >= (uint64_t)s->p.max_handshakes) {
			if (ip != NULL && ip->n == 0)
				srv_ip_put(s, ip);
			srv_refuse(s, fd, peer, 503);
			continue;
		}
		if (s->p.sndbuf > 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &s->p.sndbuf, sizeof(s->p.sndbuf)) < 0)
			log_warn(-errno, "setsockopt(SO_SNDBUF) failed");
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (ip != NULL)
			ip->n++;
		c = srv_conn_new(s, fd, peer, ip, false);
		if (c == NULL) {
			srv_ip_put(s, ip);
			close(fd);
			continue;
		}
		c->via_proxy = proxied;
		memcpy(c->proxy, c->peer, sizeof(c->proxy));
		c->handshaking = true;
		s->stats.handshaking++;
		s->stats.open++;
		if (s->stats.open > s->stats.peak_open)
			s->stats.peak_open = s->stats.open;
		if (c->ops->opened != NULL)
			c->ops->opened(c->ctx, c);
	}
	if (s->p.shared && taken > 0 && (r = srv_listen_watch(s, true)) < 0)
		log_error(r, "epoll_ctl() on the listening socket failed");
}

void
srv_conn_set_ops(struct srv_conn *c, const struct srv_ops *ops, void *ctx)
{
	c->ops = ops;
	c->ctx = ctx;
}

size_t
srv_conn_data_size(const struct srv_conn *c)
{
	return c->refused ? 0 : c->s->p.conn_size;
}

void *
srv_conn_data(struct srv_conn *c)
{
	return c->data;
}

struct srv_conn *
srv_conn_of(void *data)
{
	return (struct srv_conn *)((char *)data - offsetof(struct srv_conn, data));
}

int
srv_conn_fd(const struct srv_conn *c)
{
	return c->fd;
}

bool
srv_conn_is_tls(const struct srv_conn *c)
{
	return c->ssl != NULL;
}

const char *
srv_conn_peer(const struct srv_conn *c)
{
	return c->peer;
}

int64_t
srv_conn_last_rx(const struct srv_conn *c)
{
	return c->last_rx_ms;
}

int64_t
srv_conn_accepted_ms(const struct srv_conn *c)
{
	return c->accepted_ms;
}

void
srv_conn_established(struct srv_conn *c)
{
	if (!c->handshaking)
		return;
	c->handshaking = false;
	c->s->stats.handshaking--;
}

void
srv_conn_want_write(struct srv_conn *c)
{
	if (c->dead || c->ending)
		return;
	c->want_write = true;
	srv_conn_pend(c);
}

void
srv_conn_wait_writable(struct srv_conn *c)
{
	if (c->dead || c->ending)
		return;
	c->want_write = true;
	c->blocked = true;
	srv_conn_watch(c);
}

void
srv_conn_pause(struct srv_conn *c, bool paused)
{
	if (c->paused == paused)
		return;
	c->paused = paused;
	srv_conn_watch(c);
	/* OpenSSL may hold decrypted bytes the socket will not signal again. */
	if (!paused && c->ssl != NULL && SSL_pending(c->ssl) > 0) {
		c->read_pending = true;
		srv_conn_pend(c);
	}
}

void
srv_conn_deadline(struct srv_conn *c, int64_t at_ms)
{
	if (!c->lingering)
		c->deadline_ms = at_ms;
}

void
srv_conn_shutdown(struct srv_conn *c, int linger_ms)
{
	if (c->dead || c->ending)
		return;
	c->ending = true;
	c->want_write = false;
	c->linger_ms = linger_ms;
	srv_conn_pend(c);
}

void
srv_conn_abort(struct srv_conn *c)
{
	srv_conn_final(c);
}

bool
srv_conn_ending(const struct srv_conn *c)
{
	return c->ending || c->dead;
}

/* ---- the loop ---- */

/* The end of a round: the layers' queued writes go out, writable callbacks
 * run for those that asked, endings proceed. */
static void
srv_flush_pending(struct srv *s)
{
	struct srv_conn *list = s->pending;

	/* What is pended again while this runs waits for the next round (which
	 * then does not wait in epoll). */
	s->pending = NULL;
	while (list != NULL) {
		struct srv_conn *c = list;
		int more = 0;

		list = c->next_pending;
		c->in_pending = false;
		if (c->dead || c->lingering)
			continue;
		if (c->read_pending) {
			c->read_pending = false;
			srv_conn_read(c);
			if (c->dead)
				continue;
		}
		for (int round = 0; round < 4; round++) {
			if (c->want_write && !c->blocked && c->out_n == c->out_head && !c->ending) {
				c->want_write = false;
				c->ops->writable(c->ctx, c);
				if (c->dead)
					break;
			}
			more = srv_conn_flush(c);
			if (more != 0 || !c->want_write)
				break;
		}
		if (c->dead || more < 0)
			continue;
		if (more == 0 && c->ending)
			srv_conn_start_linger(c);
		else
			srv_conn_watch(c);
	}
}

static void
srv_tick(struct srv *s, int64_t now)
{
	struct srv_conn *c, *next;

	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (c->deadline_ms == 0 || now < c->deadline_ms)
			continue;
		if (c->lingering || c->refused) {
			srv_conn_final(c);
			continue;
		}
		c->deadline_ms = 0;
		if (c->ops->expired != NULL)
			c->ops->expired(c->ctx, c);
		else
			srv_conn_abort(c);
	}
	if (s->ops->tick != NULL)
		s->ops->tick(s->ctx);
}

static void
srv_reap(struct srv *s)
{
	struct srv_conn **pp = &s->pending;

	/* No pending entry may outlive its connection. */
	while (*pp != NULL) {
		if ((*pp)->dead)
			*pp = (*pp)->next_pending;
		else
			pp = &(*pp)->next_pending;
	}
	while (s->zombies != NULL) {
		struct srv_conn *c = s->zombies;

		s->zombies = c->next_zombie;
		free(c->out);
		free(c);
	}
}

int
srv_once(struct srv *s, int timeout_ms)
{
	struct epoll_event ev[SRV_EVENTS];
	int64_t now = proc_mono_ms();
	double t0, dt;
	int n;

	if (s->next_tick_ms - now < timeout_ms)
		timeout_ms = s->next_tick_ms > now ? (int)(s->next_tick_ms - now) : 0;
	if (s->pending != NULL)
		timeout_ms = 0;
	n = epoll_wait(s->epfd, ev, SRV_EVENTS, timeout_ms);
	if (n < 0 && errno != EINTR)
		return -errno;
	t0 = (double)proc_mono_us() / 1e6;
	for (int i = 0; i < n; i++) {
		struct srv_src *src = ev[i].data.ptr;
		uint64_t v;

		switch (src->kind) {
		case SRV_K_LISTEN:
			srv_accept(s);
			break;
		case SRV_K_STAGE:
			stage_service(s->st);
			break;
		case SRV_K_WAKE:
			if (read(s->wake.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_warn(-errno, "read(eventfd) failed");
			if (s->ops->wake != NULL)
				s->ops->wake(s->ctx);
			break;
		case SRV_K_CONN: {
			struct srv_conn *c = (struct srv_conn *)src;

			if (c->dead)
				break;
			/* A paused connection is not read, so a reset shows only here. */
			if (c->paused && !c->lingering && (ev[i].events & (EPOLLHUP | EPOLLERR))) {
				srv_conn_final(c);
				break;
			}
			if (ev[i].events & EPOLLOUT) {
				c->blocked = false;
				if (c->ssl != NULL && !c->tls_done)
					srv_conn_read(c); /* the handshake wanted to write */
				else if (!c->dead && srv_conn_flush(c) >= 0)
					srv_conn_pend(c);
			}
			if (!c->dead && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				srv_conn_read(c);
			break;
		}
		}
	}
	srv_flush_pending(s);
	now = proc_mono_ms();
	if (now >= s->next_tick_ms) {
		s->next_tick_ms += SRV_TICK_MS;
		if (s->next_tick_ms <= now)
			s->next_tick_ms = now + SRV_TICK_MS;
		srv_tick(s, now);
		srv_flush_pending(s);
	}
	srv_reap(s);
	dt = (double)proc_mono_us() / 1e6 - t0;
	stage_loop_round(s->st, dt);
	return 0;
}

void
srv_wake(struct srv *s)
{
	uint64_t one = 1;

	if (write(s->wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn(-errno, "write(eventfd) failed");
}

void
srv_stop_accepting(struct srv *s)
{
	if (s->listen.fd >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listen.fd, NULL) < 0)
		log_warn(-errno, "epoll_ctl(DEL) of the listening socket failed");
	s->listen.fd = -1; /* the stage's, which closes it */
}

void
srv_set_caps(struct srv *s, int64_t max_per_ip, int64_t max_handshakes)
{
	s->p.max_per_ip = max_per_ip;
	s->p.max_handshakes = max_handshakes;
}

void
srv_set_proxies(struct srv *s, const struct cfg_net *proxies, size_t n)
{
	s->n_proxies = n < CFG_PROXIES_MAX ? n : CFG_PROXIES_MAX;
	if (s->n_proxies > 0)
		memcpy(s->proxies, proxies, s->n_proxies * sizeof(*proxies));
}

const struct srv_stats *
srv_stats(const struct srv *s)
{
	return &s->stats;
}

void
srv_pack_listener(const struct srv *s, msgpack_packer *pk)
{
	mp_pack_kv_int(pk, "connectionsOpen", (int64_t)s->stats.open);
	mp_pack_kv_int(pk, "handshaking", (int64_t)s->stats.handshaking);
	mp_pack_kv_int(pk, "refusedPerIp", (int64_t)s->stats.refused_per_ip);
	mp_pack_kv_int(pk, "refusedHandshakes", (int64_t)s->stats.refused_handshakes);
}

size_t
srv_conn_count(const struct srv *s)
{
	return s->n_conns;
}

static int
srv_add(struct srv *s, struct srv_src *src, enum srv_kind kind, int fd)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = src };

	src->kind = kind;
	src->fd = fd;
	if (fd < 0)
		return 0;
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

struct srv *
srv_new(struct stage *st, const struct srv_params *p, const struct srv_ops *ops, void *ctx)
{
	struct srv *s = calloc(1, sizeof(*s));
	int r;

	if (s == NULL)
		return NULL;
	s->st = st;
	s->p = *p;
	s->p.proxies = NULL; /* copied: the caller's config may go at a reload */
	srv_set_proxies(s, p->proxies, p->proxies != NULL ? p->n_proxies : 0);
	s->ops = ops;
	s->ctx = ctx;
	s->wake.fd = -1;
	s->next_tick_ms = proc_mono_ms() + SRV_TICK_MS;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		r = -errno;
		goto err;
	}
	s->wake.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake.fd < 0) {
		r = -errno;
		goto err;
	}
	r = srv_tls_open(s);
	if (r < 0)
		goto err;
	s->listen = (struct srv_src){ .kind = SRV_K_LISTEN, .fd = p->listen_fd };
	if ((p->listen_fd >= 0 && (r = srv_listen_watch(s, false)) < 0) ||
	    (r = srv_add(s, &s->wake, SRV_K_WAKE, s->wake.fd)) < 0 ||
	    (r = srv_add(s, &s->sig, SRV_K_STAGE, stage_signal_fd(st))) < 0 ||
	    (r = srv_add(s, &s->bus, SRV_K_STAGE, stage_bus_fd(st))) < 0)
		goto err;
	return s;

err:
	srv_free(s);
	errno = -r;
	return NULL;
}

void
srv_free(struct srv *s)
{
	if (s == NULL)
		return;
	while (s->conns != NULL)
		srv_conn_final(s->conns);
	srv_reap(s);
	for (int b = 0; b < SRV_IP_BUCKETS; b++) {
		while (s->ips[b] != NULL) {
			struct srv_ip *ip = s->ips[b];

			s->ips[b] = ip->next;
			free(ip);
		}
	}
	if (s->tls != NULL)
		SSL_CTX_free(s->tls);
	if (s->wake.fd >= 0)
		close(s->wake.fd);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s);
}
