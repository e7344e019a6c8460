/* alog_internal: what alog.c (the lines, the thread, the stage's side) and
 * alog_disk.c (day files, head and base, the start-up scan, retention)
 * share. Not for the rest of archive: alog.h is the interface. */
#ifndef VIGIL_ALOG_INTERNAL_H
#define VIGIL_ALOG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "alog.h"

#define ALOG_SRC_MAX    256         /* senders remembered for de-duplication */
#define ALOG_SCAN_BYTES (8u << 20)  /* of the newest files read at start for ids */
#define ALOG_IN_MAX     (16u << 20) /* bytes waiting for the thread; more: dropped, sent again */
#define ALOG_DAY_MS     86400000LL
#define ALOG_ZERO_HASH  "0000000000000000000000000000000000000000000000000000000000000000"

struct alog_in {
	struct alog_in *next;
	struct alog_ack *own; /* alog_put's: its answer, made beforehand; NULL: a sender's */
	char from[16];
	char src[48];
	uint64_t n, base;
	size_t len;
	char text[];
};

struct alog_ack {
	struct alog_ack *next;
	void *own;  /* alog_put's ctx: status is its record's outcome */
	int status; /* 0: durable; -errno: not in the log, and never will be */
	char to[16];
	char src[48];
	uint64_t n;
};

struct alog_src {
	char src[48];
	char to[16];
	uint64_t known;   /* every n up to it is durable */
	uint64_t pending; /* ... up to it is in the batch being written */
	bool ack;         /* the batch touched it: acknowledge */
	int64_t used_ms;
};

struct alog {
	char *dir;
	int dirfd;
	int fd;       /* the day file, O_APPEND */
	int64_t day;  /* of fd, days since the epoch */
	uint64_t seq; /* the newest durable record */
	char prev[65];
	uint64_t base_seq; /* base's: the last record retention removed */
	struct alog_src src[ALOG_SRC_MAX];
	size_t n_src;
	char *buf; /* the batch's lines */
	size_t buf_len, buf_cap;

	pthread_t thread;
	bool started;
	int efd;
	pthread_mutex_t mu; /* the fields below */
	pthread_cond_t cond;
	bool stop;
	struct alog_in *in, **in_tail;
	size_t in_bytes;
	struct alog_ack *acks, **acks_tail;
	struct alog_figures fig;
	int64_t retention_days;
	int64_t retention_done_ms;
};

/* alog.c: the sender src, remembered (add: made when unknown; the table full,
 * the one heard of longest ago goes). */
struct alog_src *alog_src_find(struct alog *al, const char *src, bool add);

/* alog_disk.c */
/* The day file (days since the epoch) opened for appending as al->fd. -errno. */
int alog_open_day(struct alog *al, int64_t day);
/* head or base written: { seq, hash }; sync: fsynced, else only renamed. */
int alog_write_mark(struct alog *al, const char *name, uint64_t seq, const char *hash, bool sync);
/* Where the chain stands at start (docs/audit.md), and retention. */
int alog_recover(struct alog *al);
/* Removes whole day files older than days_kept (0: none); at_start also
 * the ones an interrupted pass left behind base. */
void alog_retention(struct alog *al, int64_t days_kept, bool at_start);

#endif
