/* bench_flood: a connection flood for the benchmarks (issue 15): keeps N
 * connections open to one listener from many source addresses
 * (127.0.0.K, K from --first-source), opening again what the server closes,
 * at most --rate new connections a second. --mode idle sends nothing (the
 * server drops them at its handshake timeout, or refuses them over its caps);
 * --mode slow sends a request head one byte a second and never ends it.
 * One thread, epoll, nonblocking connects; ends after --seconds with one line
 * of JSON: what it opened, what the server answered and closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FL_HEAD "GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: "

struct fl_conn {
	int fd;
	bool connected;
	size_t sent; /* bytes of the slow head sent */
	int64_t next_ms;
};

struct fl {
	struct sockaddr_in target;
	int n, rate, sources, first_source, seconds;
	bool slow;
	int epfd;
	struct fl_conn *c;
	uint64_t opened, closed_by_server, answered, refused_429, refused_503, connect_failed;
	int open_now, peak_open;
};

static int64_t
fl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
fl_open(struct fl *f, int i)
{
	struct fl_conn *c = &f->c[i];
	struct sockaddr_in src = { .sin_family = AF_INET };
	struct epoll_event e = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(f->first_source + i % f->sources));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    (connect(fd, (struct sockaddr *)&f->target, sizeof(f->target)) < 0 &&
	     errno != EINPROGRESS) ||
	    epoll_ctl(f->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		int r = -errno;

		close(fd);
		f->connect_failed++;
		return r;
	}
	*c = (struct fl_conn){ .fd = fd, .next_ms = fl_now_ms() + 1000 };
	f->opened++;
	f->open_now++;
	if (f->open_now > f->peak_open)
		f->peak_open = f->open_now;
	return 0;
}

static void
fl_close(struct fl *f, int i)
{
	struct fl_conn *c = &f->c[i];

	epoll_ctl(f->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	f->open_now--;
}

static void
fl_event(struct fl *f, int i, uint32_t ev)
{
	struct fl_conn *c = &f->c[i];
	char buf[4096];
	ssize_t n;

	if ((ev & EPOLLOUT) && !c->connected) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };

		c->connected = true;
		epoll_ctl(f->epfd, EPOLL_CTL_MOD, c->fd, &e);
	}
	if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = recv(c->fd, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		buf[n] = '\0';
		f->answered++;
		if (strncmp(buf, "HTTP/1.1 429", 12) == 0)
			f->refused_429++;
		else if (strncmp(buf, "HTTP/1.1 503", 12) == 0)
			f->refused_503++;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	f->closed_by_server++;
	fl_close(f, i);
}

/* Slow mode: the next byte of a head that never ends, once a second. */
static void
fl_trickle(struct fl *f, int64_t now)
{
	for (int i = 0; i < f->n; i++) {
		struct fl_conn *c = &f->c[i];
		char b;

		if (c->fd < 0 || !c->connected || now < c->next_ms)
			continue;
		b = c->sent < sizeof(FL_HEAD) - 1 ? FL_HEAD[c->sent] : 'a';
		if (send(c->fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
			c->sent++;
		c->next_ms = now + 1000;
	}
}

static void
fl_usage(void)
{
	fprintf(stderr, "usage: bench_flood --target 127.0.0.1:PORT --count N [--mode idle|slow]\n"
			"       [--rate NEW_PER_S] [--sources K] [--first-source 2] --seconds S\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "mode", required_argument, NULL, 'm' },
		{ "rate", required_argument, NULL, 'r' },
		{ "sources", required_argument, NULL, 's' },
		{ "first-source", required_argument, NULL, 'f' },
		{ "seconds", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct fl f = { .rate = 200, .sources = 100, .first_source = 2, .seconds = 0 };
	struct rlimit rl;
	char *colon;
	int64_t end, tick, budget_ms;
	double budget = 0;
	int opt, next = 0;

	f.target.sin_family = AF_INET;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			colon = strrchr(optarg, ':');
			if (colon == NULL)
				fl_usage();
			*colon = '\0';
			if (inet_pton(AF_INET, optarg, &f.target.sin_addr) != 1)
				fl_usage();
			f.target.sin_port = htons((uint16_t)atoi(colon + 1));
			break;
		case 'n':
			f.n = atoi(optarg);
			break;
		case 'm':
			f.slow = strcmp(optarg, "slow") == 0;
			break;
		case 'r':
			f.rate = atoi(optarg);
			break;
		case 's':
			f.sources = atoi(optarg);
			break;
		case 'f':
			f.first_source = atoi(optarg);
			break;
		case 'S':
			f.seconds = atoi(optarg);
			break;
		default:
			fl_usage();
		}
	}
	if (f.n <= 0 || f.seconds <= 0 || f.seconds > 3600 || f.sources <= 0 || f.rate <= 0 ||
	    f.first_source + f.sources > 255)
		fl_usage();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	f.c = calloc((size_t)f.n, sizeof(*f.c));
	f.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (f.c == NULL || f.epfd < 0)
		return 1;
	for (int i = 0; i < f.n; i++)
		f.c[i].fd = -1;
	end = fl_now_ms() + f.seconds * 1000;
	tick = fl_now_ms();
	while ((budget_ms = fl_now_ms()) < end) {
		struct epoll_event ev[256];
		int k;

		/* New connections at --rate, in place of those the server closed. */
		budget += (double)(budget_ms - tick) * f.rate / 1000.0;
		tick = budget_ms;
		if (budget > f.rate)
			budget = f.rate;
		for (int tries = 0; budget >= 1 && tries < f.n; tries++) {
			if (f.c[next].fd < 0) {
				fl_open(&f, next);
				budget -= 1;
			}
			next = (next + 1) % f.n;
		}
		k = epoll_wait(f.epfd, ev, 256, 10);
		for (int i = 0; i < k; i++)
			fl_event(&f, (int)ev[i].data.u32, ev[i].events);
		if (f.slow)
			fl_trickle(&f, fl_now_ms());
	}
	printf("{\"opened\": %llu, \"closedByServer\": %llu, \"answered\": %llu, "
	       "\"refused429\": %llu, \"refused503\": %llu, \"connectFailed\": %llu, "
	       "\"openAtEnd\": %d, \"peakOpen\": %d}\n",
	       (unsigned long long)f.opened, (unsigned long long)f.closed_by_server,
	       (unsigned long long)f.answered, (unsigned long long)f.refused_429,
	       (unsigned long long)f.refused_503, (unsigned long long)f.connect_failed, f.open_now,
	       f.peak_open);
	return 0;
}
