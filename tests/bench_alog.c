/* bench_alog: how many audit records a second the writer (archive/alog.c)
 * makes durable with its batched fdatasync, against the same disk's rate for
 * one fdatasync per record (the reference), in the same run.
 *
 * Senders behave as the stages' outboxes do (common/audit.c): each keeps at
 * most 256 records in flight and sends more as acks come. Bounded: at most
 * RECORDS records or SECONDS seconds.
 *
 *   bench_alog [DIR] [SENDERS] [RECORDS]     (DIR: where the log goes, default
 *   $TMPDIR; it should be on the disk data_dir is on)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"

#define WINDOW  256
#define SECONDS 20
#define MAXSEND 64

struct sender {
	char src[48];
	uint64_t sent, acked;
};

struct run {
	struct sender s[MAXSEND];
	int n;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_ack(void *ctx, const char *to, const char *src, uint64_t n)
{
	struct run *r = ctx;

	for (int i = 0; i < r->n; i++) {
		if (strcmp(r->s[i].src, src) == 0 && n > r->s[i].acked)
			r->s[i].acked = n;
	}
}

static void
send_one(struct alog *al, struct sender *s)
{
	char text[320];
	int len;

	s->sent++;
	/* about the size of a history.read record */
	len = snprintf(text, sizeof(text),
		       "{\"time\":1796000000000,\"actor\":\"hall-a-proctors\",\"role\":\"proctor\","
		       "\"remote\":\"10.1.2.3\",\"action\":\"history.read\",\"sentinelId\":"
		       "\"4f1c2b1e-8d51-4c1e-9a57-2d6f0e4b7a10\",\"sessionId\":"
		       "\"9b2d7c4e-1a3f-4e5b-8c6d-7e8f9a0b1c2d\",\"requests\":12,\"bytes\":4812345,"
		       "\"id\":\"%s.%" PRIu64 "\"}",
		       s->src, s->sent);
	alog_push(al, "relay", s->src, s->sent, s->acked + 1, text, (size_t)len);
}

/* One fdatasync per record: what the writer would cost without batching. */
static double
reference(const char *dir, int n)
{
	char path[4200], line[300];
	double t0;
	int fd;

	snprintf(path, sizeof(path), "%s/reference.jsonl", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (fd < 0)
		return -1;
	memset(line, 'x', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		if (write(fd, line, sizeof(line)) < 0 || fdatasync(fd) < 0)
			break;
	}
	t0 = now_s() - t0;
	close(fd);
	unlink(path);
	return n / t0;
}

int
main(int argc, char **argv)
{
	const char *base = argc > 1 ? argv[1] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	int senders = argc > 2 ? atoi(argv[2]) : 5;
	uint64_t records = argc > 3 ? strtoull(argv[3], NULL, 10) : 300000, done = 0, sent = 0;
	struct run run = { .n = senders };
	struct alog_figures f;
	char dir[4096], cmd[4200];
	struct alog *al;
	double t0, t;
	int r;

	if (senders < 1 || senders > MAXSEND || records == 0) {
		fprintf(stderr, "usage: bench_alog [DIR] [SENDERS 1..%d] [RECORDS]\n", MAXSEND);
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/bench_alog.XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	r = alog_open(dir, 0, &al);
	if (r < 0) {
		fprintf(stderr, "alog_open: %s\n", strerror(-r));
		return 1;
	}
	for (int i = 0; i < senders; i++)
		snprintf(run.s[i].src, sizeof(run.s[i].src), "bench%d.0", i);
	t0 = now_s();
	while (done < records && now_s() - t0 < SECONDS) {
		struct pollfd p = { .fd = alog_fd(al), .events = POLLIN };

		for (int i = 0; i < senders; i++) {
			while (run.s[i].sent < run.s[i].acked + WINDOW && sent < records) {
				send_one(al, &run.s[i]);
				sent++;
			}
		}
		if (poll(&p, 1, 1000) > 0)
			alog_take_acks(al, on_ack, NULL, &run);
		done = 0;
		for (int i = 0; i < senders; i++)
			done += run.s[i].acked;
	}
	t = now_s() - t0;
	alog_figures(al, &f);
	alog_close(al);
	printf("audit writer: %" PRIu64 " records from %d senders in %.2f s: %.0f records/s, "
	       "%" PRIu64 " fdatasyncs (%.1f records each), last %.2f ms\n",
	       done, senders, t, done / t, f.fsyncs, f.fsyncs ? (double)f.written / f.fsyncs : 0,
	       f.fsync_ms);
	printf("reference, one fdatasync per record on the same disk: %.0f records/s\n",
	       reference(dir, 2000));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "%s failed\n", cmd);
	return f.written == done ? 0 : 1;
}
