/* bench_ring: segment ring write throughput, the wake-up latency of a reader
 * process blocked in ring_wait, and plain memcpy of the same sizes for
 * comparison. Prints a table; bounded to about 10 s.
 * Run: build/tests/bench_ring, or meson test -C build --suite bench.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#define MiB          (1u << 20)
#define RUN_US       1500000
#define LAT_SAMPLES  4000
#define LAT_PAUSE_US 200

static char name[64];

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
pause_us(int64_t us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = us * 1000 };

	nanosleep(&ts, NULL);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* GB/s of ring_write with len-byte segments for RUN_US. */
static double
bench_write(struct ring *w, const uint8_t *src, uint32_t len, uint64_t *ret_count)
{
	struct ring_seg m = { .flags = RING_SEG_KEYFRAME };
	int64_t t0 = mono_ns(), t = t0;
	uint64_t n = 0;

	while (t - t0 < (int64_t)RUN_US * 1000) {
		for (int i = 0; i < 16; i++) {
			m.sequence = (int64_t)n++;
			if (ring_write(w, &m, src, len, NULL) < 0)
				return -1;
		}
		t = mono_ns();
	}
	*ret_count = n;
	return (double)n * len / ((double)(t - t0) / 1e9) / 1e9;
}

/* GB/s of memcpy into a buffer as large as the ring, same access pattern. */
static double
bench_memcpy(uint8_t *dst, uint64_t size, const uint8_t *src, uint32_t len)
{
	int64_t t0 = mono_ns(), t = t0;
	uint64_t n = 0, pos = 0;

	while (t - t0 < (int64_t)RUN_US * 1000) {
		for (int i = 0; i < 16; i++) {
			if (pos + len > size)
				pos = 0;
			memcpy(dst + pos, src, len);
			/* Keep the compiler from dropping the copies. */
			__asm__ __volatile__("" : : "r"(dst + pos) : "memory");
			pos += len;
			n++;
		}
		t = mono_ns();
	}
	return (double)n * len / ((double)(t - t0) / 1e9) / 1e9;
}

/* Reader process: sleeps in ring_wait for each next segment and records how
 * long after the writer's stamp it had the segment in hand. */
static void
latency_reader(uint64_t first, int64_t *samples, int ready)
{
	struct ring *r = NULL;
	struct ring_seg m;
	int64_t stamp;

	if (ring_open(name, false, &r) < 0)
		_exit(2);
	if (write(ready, "r", 1) != 1)
		_exit(2);
	for (int i = 0; i < LAT_SAMPLES; i++) {
		uint64_t idx = first + (uint64_t)i;
		int ret;

		while ((ret = ring_read(r, idx, &m, &stamp, sizeof(stamp))) == -EAGAIN)
			if (ring_wait(r, idx, 2000) == -ETIMEDOUT)
				_exit(3);
		if (ret < 0)
			_exit(4);
		samples[i] = mono_ns() - stamp;
	}
	ring_close(r);
	_exit(0);
}

static int
bench_latency(struct ring *w, int64_t *ret_p50, int64_t *ret_p99, int64_t *ret_max)
{
	size_t bytes = sizeof(int64_t) * LAT_SAMPLES;
	struct ring_seg m = { 0 };
	struct ring_stats st;
	int64_t *samples;
	int fds[2], status = 0, r = -1;
	pid_t pid;
	char c;

	samples = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (samples == MAP_FAILED)
		return -1;
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto unmap_samples;
	pid = fork();
	if (pid < 0)
		goto close_pipe;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(30);
		latency_reader(ring_head(w), samples, fds[1]);
	}
	if (read(fds[0], &c, 1) != 1)
		goto reap_child;
	for (int i = 0; i < LAT_SAMPLES; i++) {
		int64_t end = mono_ns() + 1000000000, stamp;

		/* Write only to a reader that sleeps, and give it time to get
		 * into FUTEX_WAIT: this measures the wake-up, not a spin. */
		do {
			ring_get_stats(w, &st);
			if (st.sleepers == 0)
				sched_yield();
		} while (st.sleepers == 0 && mono_ns() < end);
		pause_us(LAT_PAUSE_US);
		stamp = mono_ns();
		if (ring_write(w, &m, &stamp, sizeof(stamp), NULL) < 0)
			goto reap_child;
	}
	r = 0;
reap_child:
	if (r < 0)
		kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		r = -1;
	if (r == 0) {
		qsort(samples, LAT_SAMPLES, sizeof(int64_t), cmp_i64);
		*ret_p50 = samples[LAT_SAMPLES / 2];
		*ret_p99 = samples[LAT_SAMPLES * 99 / 100];
		*ret_max = samples[LAT_SAMPLES - 1];
	}
close_pipe:
	close(fds[0]);
	close(fds[1]);
unmap_samples:
	munmap(samples, bytes);
	return r;
}

int
main(void)
{
	static const uint32_t sizes[] = { 64u << 10, MiB };
	struct ring_params p = { .n_sentinels = 1, .max_segment_bytes = 4 * MiB };
	struct ring *w = NULL;
	int64_t p50, p99, max;
	uint8_t *src, *dst;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int r;

	snprintf(name, sizeof(name), "/vigil-bench-ring-%d", (int)getpid());
	/* 256 MiB like a production ring, beyond any cache; smaller if
	 * /dev/shm is small (containers). */
	p.data_size = 256ull * MiB;
	r = ring_create(name, &p);
	if (r == -ENOSPC) {
		ring_unlink(name);
		p.data_size = 32ull * MiB;
		r = ring_create(name, &p);
	}
	if (r < 0) {
		fprintf(stderr, "ring_create(%s): %s\n", name, strerror(-r));
		return 1;
	}
	r = ring_open(name, true, &w);
	if (r < 0) {
		fprintf(stderr, "ring_open(%s): %s\n", name, strerror(-r));
		goto unlink_ring;
	}
	src = malloc(MiB);
	dst = malloc(p.data_size);
	if (!src || !dst) {
		r = -ENOMEM;
		goto free_buffers;
	}
	for (uint32_t i = 0; i < MiB; i++)
		src[i] = (uint8_t)(i * 131 + 7);
	memset(dst, 1, p.data_size);

	printf("vigil ring benchmark: data %llu MiB, %ld CPUs, %.1f s per row\n\n",
	       (unsigned long long)(p.data_size / MiB), ncpu, RUN_US / 1e6);
	printf("%-28s %10s %14s %16s\n", "what", "segment", "GB/s", "segments/s");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t count = 0;
		double gbs;

		gbs = bench_write(w, src, sizes[i], &count);
		if (gbs < 0) {
			r = -EIO;
			goto free_buffers;
		}
		printf("%-28s %7u KiB %14.2f %16.0f\n", "ring_write (no reader)", sizes[i] >> 10,
		       gbs, (double)count / (RUN_US / 1e6));
		gbs = bench_memcpy(dst, p.data_size, src, sizes[i]);
		printf("%-28s %7u KiB %14.2f\n", "memcpy", sizes[i] >> 10, gbs);
	}

	r = bench_latency(w, &p50, &p99, &max);
	if (r < 0) {
		fprintf(stderr, "latency run failed\n");
		goto free_buffers;
	}
	printf("\n%-28s %10s %10s %10s %10s\n", "reader wake-up (us)", "samples", "p50", "p99",
	       "max");
	printf("%-28s %10d %10.1f %10.1f %10.1f\n", "ring_write -> ring_read", LAT_SAMPLES,
	       p50 / 1e3, p99 / 1e3, max / 1e3);

free_buffers:
	free(src);
	free(dst);
	ring_close(w);
unlink_ring:
	ring_unlink(name);
	return r < 0 ? 1 : 0;
}
