/* ring: the segment ring in POSIX shared memory, one writer (ingest) and many
 * lock-free readers (relay, archive, httpd) that detect being overrun.
 *
 * The only code that knows the layout below is shm/ring.c. Every int function
 * returns >= 0 on success and a negative errno on failure; ret_* stay untouched
 * on failure. docs/ring.md explains the protocols and why they are safe.
 */
#ifndef VIGIL_RING_H
#define VIGIL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Layout of the shm object (offsets in the file; ps = page size, 4096 here).
 * Everything is native-endian: the object never leaves the machine.
 *
 *   0          +-------------------------------------------+  readers map
 *              | header: struct ring_hdr (256 bytes used)  |  R   (writer RW)
 *   ps         +-------------------------------------------+
 *              | wake page: futex word, sleepers, kicks    |  RW  (everyone)
 *   2 ps       +-------------------------------------------+  = slots_off
 *              | descriptors: n_slots x 128 bytes          |  R   (writer RW)
 *              | index i lives in slot i & (n_slots - 1)   |
 *              +-------------------------------------------+  = sentinels_off (page aligned)
 *              | sentinel table: n_sentinels entries of    |  R   (writer RW)
 *              | round_up(320 + max_init_bytes, 64) bytes  |
 *              +-------------------------------------------+  = data_off (page aligned)
 *              | data: data_size bytes; byte position p    |  R   (writer RW)
 *              | lives at data_off + p % data_size         |
 *   total_size +-------------------------------------------+
 *
 * Each process maps the object into one reservation of address space, the data
 * area twice back to back, so that a segment that wraps is still contiguous:
 *
 *   base                  base + data_off     + data_size          + 2 data_size
 *   | header|wake|slots|sentinels | data ................ | data again ........ |
 *
 * header (offset 0):
 *     0  char     magic[8]          RING_MAGIC, stored last by ring_create
 *     8  uint32   version           RING_VERSION
 *    12  uint32   page_size
 *    16  uint64   total_size        bytes of the object
 *    24  uint64   data_size         multiple of page_size
 *    32  uint64   slots_off, 40 sentinels_off, 48 data_off
 *    56  uint32   n_slots           power of two
 *    60  uint32   slot_size         128
 *    64  uint32   n_sentinels
 *    68  uint32   sentinel_size     entry stride
 *    72  uint32   max_init_bytes
 *    76  uint32   max_segment_bytes
 *    80  int64    created_ms        unix ms
 *   128  uint64   writer_nonce      random, new at every writer attach; 0 = never attached
 *   136  uint32   writer_pid        0 when no writer is attached (clean close)
 *   192  uint64   head              publish counter: index the next segment gets
 *   200  uint64   wpos              published end: byte position after the last segment
 *   208  uint64   reserve           end of the bytes the writer may be overwriting now
 *   216  uint64   tail              hint: oldest index that may still be intact
 *   224  uint64   bytes_written
 *
 * wake page (offset ps): 0 uint32 futex (bumped after every publish and by
 * ring_wake_all), 4 uint32 sleepers (readers inside FUTEX_WAIT), 8 uint32 kicks
 * (bumped by ring_wake_all). It is the only page readers map writable.
 *
 * descriptor (128 bytes):
 *     0  uint64   index             RING_SLOT_EMPTY while empty or being rewritten;
 *                                   the published index, stored last (release)
 *     8  uint64   pos               absolute byte position of the segment
 *    16  int64    sequence,  24 int64 start_ms
 *    32  uint8    session[16]
 *    48  uint32   sentinel,  52 duration_ms, 56 flags, 60 init_gen, 64 len
 *    68  uint32   reserved (zero)
 *    72  int64    publish_us        unix us (CLOCK_REALTIME) when the writer published it
 *    80  ...      reserved (zero)
 *
 * sentinel entry (320 bytes, then the init segment bytes):
 *     0  uint32   seq               seqlock: odd while the writer changes the entry
 *     4  uint32   online
 *     8  uint8    id[16]            all zero: the entry is free
 *    24  uint8    session[16]
 *    40  char     name[128]         NUL-terminated
 *   168  char     codec[64]         NUL-terminated, e.g. "avc1.64001f"
 *   232  uint32   width, 236 height, 240 timescale, 244 init_gen
 *   248  int64    last_sequence,  256 int64 session_start_ms
 *   264  uint32   init_len
 *   268  ...      reserved (zero)
 *   320  uint8    init[max_init_bytes]
 *
 * Segment index i is valid once head > i, until slot i & (n_slots - 1) is
 * reused or its bytes are overwritten (reserve - pos > data_size).
 */

#define RING_MAGIC      "VIGILRNG" /* 8 bytes, no NUL stored */
#define RING_VERSION    1u
#define RING_SLOT_EMPTY UINT64_MAX

/* Limits checked by ring_create. */
#define RING_DATA_MIN        (1ull << 20)
#define RING_DATA_MAX        (64ull << 30)
#define RING_SLOTS_MIN       16u
#define RING_SLOTS_MAX       (1u << 24)
#define RING_SLOTS_AUTO_MIN  1024u
#define RING_SLOT_BYTES_AUTO (16u << 10) /* auto n_slots = data_size / this, rounded up */
#define RING_SENTINELS_MAX   65536u
#define RING_INIT_DEFAULT    (64u << 10)
#define RING_INIT_MAX        (16u << 20)

struct ring;

struct ring_params {
	uint64_t data_size;         /* config ring.size; a multiple of the page size */
	uint32_t n_slots;           /* power of two; 0 = auto */
	uint32_t n_sentinels;       /* config limits.max_sentinels */
	uint32_t max_init_bytes;    /* 0 = RING_INIT_DEFAULT */
	uint32_t max_segment_bytes; /* config limits.max_message_bytes; <= data_size / 4;
	                             * 0 = data_size / 4 */
};

/* vigild: creates the object (O_EXCL: -EEXIST if present), sizes it with
 * posix_fallocate (-ENOSPC now rather than SIGBUS later), initialises it and
 * closes it. Mode 0600: the stages run as vigild's user. name is "/vigil-...". */
int ring_create(const char *name, const struct ring_params *p);
/* 0, or -ENOENT when there was nothing to remove. */
int ring_unlink(const char *name);

/* Maps the ring. A writer maps everything read-write and takes an exclusive
 * flock on the object (-EBUSY while another writer lives; the kernel drops it
 * when that writer dies, even by SIGKILL). It continues from the shared
 * positions with a new nonce and repairs a sentinel entry left odd by a killed
 * writer (the entry is cleared). A reader maps everything read-only except the
 * wake page. -EPROTO when the magic, version or layout do not match. */
int ring_open(const char *name, bool writer, struct ring **ret_ring);
void ring_close(struct ring *ring);

#define RING_SEG_KEYFRAME 1u /* a join point: a reader may start here */

struct ring_seg {
	uint64_t index;    /* filled by the ring */
	uint32_t sentinel; /* sentinel table slot */
	uint8_t session[16];
	int64_t sequence;
	int64_t start_ms; /* unix ms */
	uint32_t duration_ms;
	uint32_t flags;     /* RING_SEG_* */
	uint32_t init_gen;  /* the sentinel's init generation the segment decodes with */
	uint32_t len;       /* filled by the ring */
	uint64_t pos;       /* filled by the ring: absolute byte position, for ring_check */
	int64_t publish_us; /* filled by the ring: unix us when published, for readers' latency */
};

/* Writer only (-EPERM otherwise). meta->index, len and pos are ignored.
 * -EMSGSIZE above max_segment_bytes, -EINVAL for a sentinel out of range.
 * Never waits for readers. */
int ring_write(struct ring *ring, const struct ring_seg *meta, const void *data, uint32_t len,
	       uint64_t *ret_index);

/* The index the next write gets (the publish counter). */
uint64_t ring_head(const struct ring *ring);
/* The oldest index whose bytes may still be intact: a hint, reads can still fail. */
uint64_t ring_tail(const struct ring *ring);

/* Copies segment index into buf. -EAGAIN: not written yet; -ESTALE: overwritten
 * before or during the copy (buf then holds garbage); -ENOBUFS: size < len (a
 * buffer of max_segment_bytes, see ring_get_stats, always fits); -EPROTO: a
 * descriptor that cannot be right (a bug, not a race). */
int ring_read(const struct ring *ring, uint64_t index, struct ring_seg *ret_meta, void *buf,
	      size_t size);
/* Zero copy: *ret_data points into the mapping, valid as memory until ring_close
 * but its bytes only until overwritten. Use them, then call ring_check: only a
 * 0 from ring_check says that what was used was intact. */
int ring_peek(const struct ring *ring, uint64_t index, struct ring_seg *ret_meta,
	      const void **ret_data);
/* 0 if the bytes of meta (from ring_peek or ring_read) were not overwritten up
 * to now, else -ESTALE. */
int ring_check(const struct ring *ring, const struct ring_seg *meta);

/* Sleeps until head > index, ring_wake_all, a signal or timeout_ms (< 0: no
 * limit). 0 means "look again" (it may come early: callers re-check), else
 * -ETIMEDOUT. A FUTEX_WAIT on the shared wake page; the writer makes a wake-up
 * syscall only while somebody sleeps. Event-loop stages run ring_wait in a
 * helper thread that posts to the loop (e.g. lws_cancel_service, an eventfd)
 * and stop it with ring_wake_all. A reader killed while sleeping leaves the
 * sleeper count one too high: the writer then makes one needless FUTEX_WAKE
 * per segment, never misses a wake-up. */
int ring_wait(const struct ring *ring, uint64_t index, int timeout_ms);
/* Wakes every ring_wait of every process (shutdown). Readers may call it. */
void ring_wake_all(const struct ring *ring);

/* Finds the newest (or oldest) keyframe segment of a sentinel whose bytes are
 * still intact; session NULL means any session. -ENOENT when there is none.
 * A scan of at most n_slots descriptors; the join point can still be overrun
 * before it is read (ring_read then says -ESTALE). */
int ring_find_join(const struct ring *ring, uint32_t sentinel, const uint8_t *session, bool newest,
		   uint64_t *ret_index);
/* The oldest keyframe segment of a sentinel (and session, unless NULL) whose
 * start is at most window_ms before the live edge, the end (start_ms +
 * duration_ms) of the sentinel's newest intact segment: a proctor's rewind of
 * buffer_seconds, however much more the ring holds. When no join point is
 * that recent (a keyframe interval longer than the window) the newest one.
 * -ENOENT when there is none. Times are the sentinel's (ring_seg.start_ms);
 * the scan stops at the first segment of the sentinel that starts before the
 * window, at most n_slots descriptors. */
int ring_find_join_within(const struct ring *ring, uint32_t sentinel, const uint8_t *session,
			  int64_t window_ms, uint64_t *ret_index);

/* The per-sentinel table: identity, session, codec and the latest init
 * segment, which outlive the data window. */
struct ring_sentinel {
	uint8_t id[16]; /* all zero: a free entry */
	char name[128];
	uint8_t session[16];
	char codec[64];
	uint32_t width, height, timescale;
	bool online;
	int64_t last_sequence;
	uint32_t init_gen;
	int64_t session_start_ms;
	uint32_t init_len; /* filled by the ring on get; ignored by put */
};

uint32_t ring_sentinel_slots(const struct ring *ring);
/* Writer only. init NULL keeps the stored init bytes; else init_len <=
 * max_init_bytes (-EMSGSIZE). name and codec must be NUL-terminated within
 * their arrays (-EINVAL). */
int ring_sentinel_put(struct ring *ring, uint32_t slot, const struct ring_sentinel *s,
		      const void *init, uint32_t init_len);
/* A consistent copy; init_buf may be NULL (only ret->init_len is then given).
 * -ENOBUFS when init_size < init_len, -EAGAIN when the writer kept the entry
 * busy through every retry. */
int ring_sentinel_get(const struct ring *ring, uint32_t slot, struct ring_sentinel *ret,
		      void *init_buf, size_t init_size);
/* The first entry with that id; an all-zero id finds a free entry. -ENOENT. */
int ring_sentinel_find(const struct ring *ring, const uint8_t id[16], uint32_t *ret_slot);

/* For metrics. */
struct ring_stats {
	uint64_t head;
	uint64_t bytes_written;
	uint64_t data_size;
	uint32_t n_slots;
	uint32_t writer_pid;   /* 0: no writer attached */
	uint64_t writer_nonce; /* changes when a writer (re)attaches */
	uint64_t tail;
	uint32_t n_sentinels;
	uint32_t max_segment_bytes;
	uint32_t max_init_bytes;
	uint32_t sleepers; /* readers in ring_wait now (too high after a killed reader) */
};

void ring_get_stats(const struct ring *ring, struct ring_stats *ret);

#endif
