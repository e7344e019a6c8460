/* proc: this process's CPU and memory use, read from /proc, for heartbeats and metrics. */
#ifndef VIGIL_PROC_H
#define VIGIL_PROC_H

#include <stdint.h>

struct proc_sample {
	uint64_t cpu_ticks; /* utime + stime, in clock ticks */
	int64_t mono_ns;    /* CLOCK_MONOTONIC when taken */
};

int proc_sample(struct proc_sample *ret_sample);
/* CPU use between two samples, in percent of one core. */
double proc_cpu_percent(const struct proc_sample *a, const struct proc_sample *b);
/* Resident private memory in bytes (RSS less shared and file-backed pages,
 * so the ring's shared mapping is not counted); -errno on failure. */
int64_t proc_rss_bytes(void);
int64_t proc_now_ms(void);  /* CLOCK_REALTIME, unix milliseconds */
int64_t proc_unix_us(void); /* CLOCK_REALTIME, unix microseconds */
int64_t proc_mono_ms(void); /* CLOCK_MONOTONIC milliseconds */
int64_t proc_mono_us(void); /* CLOCK_MONOTONIC microseconds */

#endif
