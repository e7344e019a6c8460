/* proc: CPU ticks and RSS of the calling process from /proc/self. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

static int
proc_read(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

int
proc_sample(struct proc_sample *ret_sample)
{
	char buf[1024];
	unsigned long long utime, stime;
	struct timespec ts;
	const char *p;
	int r;

	r = proc_read("/proc/self/stat", buf, sizeof(buf));
	if (r < 0)
		return r;
	/* The command name may hold spaces and parentheses: fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&utime, &stime) != 2)
		return -EIO;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ret_sample->cpu_ticks = utime + stime;
	ret_sample->mono_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	return 0;
}

double
proc_cpu_percent(const struct proc_sample *a, const struct proc_sample *b)
{
	double secs = (double)(b->mono_ns - a->mono_ns) / 1e9;
	double ticks = (double)(b->cpu_ticks - a->cpu_ticks);

	if (secs <= 0)
		return 0;
	return 100.0 * ticks / (double)sysconf(_SC_CLK_TCK) / secs;
}

int64_t
proc_rss_bytes(void)
{
	char buf[256];
	unsigned long long size, resident, shared;
	int r = proc_read("/proc/self/statm", buf, sizeof(buf));

	if (r < 0)
		return r;
	if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3)
		return -EIO;
	/* Private pages only: the ring's shared mapping (twice, for ingest) is not
	 * the stage's memory, and counting it would hide what the stage itself uses. */
	return (int64_t)(resident - shared) * sysconf(_SC_PAGESIZE);
}

int64_t
proc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
proc_unix_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
proc_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
proc_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
