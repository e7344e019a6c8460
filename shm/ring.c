/* ring: the segment ring in POSIX shared memory (layout and diagram in ring.h).
 *
 * One writer publishes segments lock-free and never waits; readers copy and then
 * confirm that nothing they used was overwritten meanwhile, as Varnish's VSL
 * readers do. The ordering argument is written out in docs/ring.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#define RING_SLOT_SIZE   128u
#define RING_SENT_FIXED  320u
#define RING_SENT_ALIGN  64u
#define RING_SEGMENT_MAX (1u << 31)
#define RING_SENT_TRIES  200
#define RING_SENT_SPINS  8

/* Page 0. The first block never changes after ring_create; the rest is the
 * writer's, each group on its own cache line. */
struct ring_hdr {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
	uint64_t total_size;
	uint64_t data_size;
	uint64_t slots_off;
	uint64_t sentinels_off;
	uint64_t data_off;
	uint32_t n_slots;
	uint32_t slot_size;
	uint32_t n_sentinels;
	uint32_t sentinel_size;
	uint32_t max_init_bytes;
	uint32_t max_segment_bytes;
	int64_t created_ms;
	uint8_t reserved0[40];
	uint64_t writer_nonce;
	uint32_t writer_pid;
	uint8_t reserved1[52];
	uint64_t head;
	uint64_t wpos;
	uint64_t reserve;
	uint64_t tail;
	uint64_t bytes_written;
	uint8_t reserved2[24];
};

/* Page 1: the only page readers map writable. */
struct ring_wake {
	uint32_t futex;
	uint32_t sleepers;
	uint32_t kicks;
	uint32_t reserved[13];
};

struct ring_slot {
	uint64_t index;
	uint64_t pos;
	int64_t sequence;
	int64_t start_ms;
	uint8_t session[16];
	uint32_t sentinel;
	uint32_t duration_ms;
	uint32_t flags;
	uint32_t init_gen;
	uint32_t len;
	uint32_t reserved0;
	int64_t publish_us;
	uint8_t reserved[48];
};

/* Followed by max_init_bytes of init segment. */
struct ring_sent {
	uint32_t seq;
	uint32_t online;
	uint8_t id[16];
	uint8_t session[16];
	char name[128];
	char codec[64];
	uint32_t width;
	uint32_t height;
	uint32_t timescale;
	uint32_t init_gen;
	int64_t last_sequence;
	int64_t session_start_ms;
	uint32_t init_len;
	uint8_t reserved[52];
};

/* The binary layout documented in ring.h: changing any of these is a new RING_VERSION. */
_Static_assert(sizeof(RING_MAGIC) - 1 == 8, "magic is 8 bytes");
_Static_assert(sizeof(struct ring_hdr) == 256, "header size");
_Static_assert(offsetof(struct ring_hdr, version) == 8, "hdr.version");
_Static_assert(offsetof(struct ring_hdr, page_size) == 12, "hdr.page_size");
_Static_assert(offsetof(struct ring_hdr, total_size) == 16, "hdr.total_size");
_Static_assert(offsetof(struct ring_hdr, data_size) == 24, "hdr.data_size");
_Static_assert(offsetof(struct ring_hdr, slots_off) == 32, "hdr.slots_off");
_Static_assert(offsetof(struct ring_hdr, data_off) == 48, "hdr.data_off");
_Static_assert(offsetof(struct ring_hdr, n_slots) == 56, "hdr.n_slots");
_Static_assert(offsetof(struct ring_hdr, max_segment_bytes) == 76, "hdr.max_segment_bytes");
_Static_assert(offsetof(struct ring_hdr, created_ms) == 80, "hdr.created_ms");
_Static_assert(offsetof(struct ring_hdr, writer_nonce) == 128, "hdr.writer_nonce");
_Static_assert(offsetof(struct ring_hdr, writer_pid) == 136, "hdr.writer_pid");
_Static_assert(offsetof(struct ring_hdr, head) == 192, "hdr.head");
_Static_assert(offsetof(struct ring_hdr, reserve) == 208, "hdr.reserve");
_Static_assert(offsetof(struct ring_hdr, bytes_written) == 224, "hdr.bytes_written");
_Static_assert(sizeof(struct ring_wake) == 64, "wake size");
_Static_assert(offsetof(struct ring_wake, sleepers) == 4, "wake.sleepers");
_Static_assert(offsetof(struct ring_wake, kicks) == 8, "wake.kicks");
_Static_assert(sizeof(struct ring_slot) == RING_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct ring_slot, pos) == 8, "slot.pos");
_Static_assert(offsetof(struct ring_slot, session) == 32, "slot.session");
_Static_assert(offsetof(struct ring_slot, sentinel) == 48, "slot.sentinel");
_Static_assert(offsetof(struct ring_slot, len) == 64, "slot.len");
_Static_assert(offsetof(struct ring_slot, publish_us) == 72, "slot.publish_us");
_Static_assert(sizeof(struct ring_sent) == RING_SENT_FIXED, "sentinel entry size");
_Static_assert(offsetof(struct ring_sent, id) == 8, "sent.id");
_Static_assert(offsetof(struct ring_sent, name) == 40, "sent.name");
_Static_assert(offsetof(struct ring_sent, codec) == 168, "sent.codec");
_Static_assert(offsetof(struct ring_sent, width) == 232, "sent.width");
_Static_assert(offsetof(struct ring_sent, last_sequence) == 248, "sent.last_sequence");
_Static_assert(offsetof(struct ring_sent, init_len) == 264, "sent.init_len");

struct ring_layout {
	uint64_t page_size;
	uint64_t data_size;
	uint64_t slots_off;
	uint64_t sentinels_off;
	uint64_t data_off;
	uint64_t total_size;
	uint32_t n_slots;
	uint32_t n_sentinels;
	uint32_t sentinel_size;
	uint32_t max_init_bytes;
	uint32_t max_segment_bytes;
};

/* Process-local. The sizes are copied from the validated header and never
 * re-read from the shared memory. */
struct ring {
	uint8_t *base; /* the whole reservation */
	size_t map_size;
	struct ring_hdr *hdr;
	struct ring_wake *wake;
	struct ring_slot *slots;
	uint8_t *sentinels;
	uint8_t *data; /* data_size bytes, then the same bytes again */
	struct ring_layout l;
	uint64_t slot_mask;
	int fd; /* writer: holds the flock; reader: -1 */
	bool writer;
	uint64_t w_head, w_pos, w_tail; /* writer's own copies of the shared positions */
};

static uint64_t
round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) / align * align;
}

static uint64_t
page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	return ps > 0 ? (uint64_t)ps : 4096;
}

static int
ring_name_check(const char *name)
{
	size_t len;

	if (!name || name[0] != '/')
		return -EINVAL;
	len = strlen(name);
	if (len < 2 || len > NAME_MAX || strchr(name + 1, '/'))
		return -EINVAL;
	return 0;
}

/* Validates p and places everything; the same function checks an existing
 * object on open, so that creator and opener can never disagree. */
static int
ring_layout_compute(const struct ring_params *p, uint64_t ps, struct ring_layout *ret)
{
	struct ring_layout l = { .page_size = ps };
	uint64_t table, map_size;

	if (!p || p->data_size < RING_DATA_MIN || p->data_size > RING_DATA_MAX ||
	    p->data_size % ps != 0)
		return -EINVAL;
	if (p->n_sentinels == 0 || p->n_sentinels > RING_SENTINELS_MAX)
		return -EINVAL;
	if (p->max_init_bytes > RING_INIT_MAX)
		return -EINVAL;
	if (p->max_segment_bytes > p->data_size / 4 || p->max_segment_bytes > RING_SEGMENT_MAX)
		return -EINVAL;
	l.data_size = p->data_size;
	l.n_sentinels = p->n_sentinels;
	l.max_init_bytes = p->max_init_bytes ? p->max_init_bytes : RING_INIT_DEFAULT;
	l.max_segment_bytes = p->max_segment_bytes;
	if (l.max_segment_bytes == 0)
		l.max_segment_bytes =
			(uint32_t)(p->data_size / 4 < RING_SEGMENT_MAX ? p->data_size / 4
								       : RING_SEGMENT_MAX);

	if (p->n_slots == 0) {
		uint64_t want = (p->data_size + RING_SLOT_BYTES_AUTO - 1) / RING_SLOT_BYTES_AUTO;

		l.n_slots = RING_SLOTS_AUTO_MIN;
		while (l.n_slots < want && l.n_slots < RING_SLOTS_MAX)
			l.n_slots *= 2;
	} else {
		if (p->n_slots < RING_SLOTS_MIN || p->n_slots > RING_SLOTS_MAX ||
		    (p->n_slots & (p->n_slots - 1)) != 0)
			return -EINVAL;
		l.n_slots = p->n_slots;
	}

	/* No overflow below: every term is bounded by the limits above
	 * (at most 2^24 slots, 2^16 sentinels of < 2^25 bytes, 2^36 data). */
	l.sentinel_size =
		(uint32_t)round_up(RING_SENT_FIXED + (uint64_t)l.max_init_bytes, RING_SENT_ALIGN);
	table = (uint64_t)l.n_sentinels * l.sentinel_size;
	l.slots_off = 2 * ps;
	l.sentinels_off = l.slots_off + round_up((uint64_t)l.n_slots * RING_SLOT_SIZE, ps);
	l.data_off = l.sentinels_off + round_up(table, ps);
	l.total_size = l.data_off + l.data_size;
	map_size = l.total_size + l.data_size;
	if (map_size > SIZE_MAX || l.total_size > (uint64_t)INT64_MAX)
		return -EINVAL;
	*ret = l;
	return 0;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
ring_unix_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long
ring_futex(uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
	/* Shared futexes (no FUTEX_PRIVATE_FLAG): waiters and waker are different processes. */
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

int
ring_create(const char *name, const struct ring_params *p)
{
	struct ring_layout l;
	struct ring_hdr *hdr;
	uint8_t *meta;
	int fd, r;

	r = ring_name_check(name);
	if (r < 0)
		return r;
	r = ring_layout_compute(p, page_size(), &l);
	if (r < 0)
		return r;

	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)l.total_size) < 0) {
		r = -errno;
		goto unlink_name;
	}
	/* tmpfs hands out pages on first touch: a full /dev/shm would be a
	 * SIGBUS in the writer. Allocating now turns that into -ENOSPC here. */
	do
		r = posix_fallocate(fd, 0, (off_t)l.total_size);
	while (r == EINTR);
	if (r != 0) {
		r = -r;
		goto unlink_name;
	}
	meta = mmap(NULL, l.data_off, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (meta == MAP_FAILED) {
		r = -errno;
		goto unlink_name;
	}

	/* The object is zero-filled; only what is not zero needs writing. */
	for (uint32_t i = 0; i < l.n_slots; i++) {
		struct ring_slot *slot = (struct ring_slot *)(meta + l.slots_off) + i;

		slot->index = RING_SLOT_EMPTY;
	}
	hdr = (struct ring_hdr *)meta;
	hdr->version = RING_VERSION;
	hdr->page_size = (uint32_t)l.page_size;
	hdr->total_size = l.total_size;
	hdr->data_size = l.data_size;
	hdr->slots_off = l.slots_off;
	hdr->sentinels_off = l.sentinels_off;
	hdr->data_off = l.data_off;
	hdr->n_slots = l.n_slots;
	hdr->slot_size = RING_SLOT_SIZE;
	hdr->n_sentinels = l.n_sentinels;
	hdr->sentinel_size = l.sentinel_size;
	hdr->max_init_bytes = l.max_init_bytes;
	hdr->max_segment_bytes = l.max_segment_bytes;
	hdr->created_ms = now_ms();
	/* Magic last: an object left by a vigild killed in the middle has none
	 * and is refused with -EPROTO. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(hdr->magic, RING_MAGIC, sizeof(hdr->magic));

	munmap(meta, l.data_off);
	close(fd);
	return 0;

unlink_name:
	shm_unlink(name);
	close(fd);
	return r;
}

int
ring_unlink(const char *name)
{
	int r = ring_name_check(name);

	if (r < 0)
		return r;
	if (shm_unlink(name) < 0)
		return -errno;
	return 0;
}

/* Checks a header read from an object of file_size bytes against the layout its
 * own parameters give. */
static int
ring_hdr_check(const struct ring_hdr *h, uint64_t file_size, struct ring_layout *ret)
{
	struct ring_params p = {
		.data_size = h->data_size,
		.n_slots = h->n_slots,
		.n_sentinels = h->n_sentinels,
		.max_init_bytes = h->max_init_bytes,
		.max_segment_bytes = h->max_segment_bytes,
	};
	struct ring_layout l;

	if (memcmp(h->magic, RING_MAGIC, sizeof(h->magic)) != 0 || h->version != RING_VERSION)
		return -EPROTO;
	if (h->page_size != page_size() || h->slot_size != RING_SLOT_SIZE)
		return -EPROTO;
	if (h->max_init_bytes == 0 || h->max_segment_bytes == 0 || h->n_slots == 0)
		return -EPROTO;
	if (ring_layout_compute(&p, h->page_size, &l) < 0)
		return -EPROTO;
	if (l.slots_off != h->slots_off || l.sentinels_off != h->sentinels_off ||
	    l.data_off != h->data_off || l.total_size != h->total_size ||
	    l.sentinel_size != h->sentinel_size || l.total_size != file_size)
		return -EPROTO;
	*ret = l;
	return 0;
}

/* Reserves address space for [meta | data | data] and maps the object into it. */
static int
ring_map(struct ring *ring, int fd, bool writer)
{
	const struct ring_layout *l = &ring->l;
	int prot = writer ? PROT_READ | PROT_WRITE : PROT_READ;
	/* The writer touches everything soon; readers only what they read. */
	int flags = MAP_SHARED | MAP_FIXED | (writer ? MAP_POPULATE : 0);
	size_t size = (size_t)(l->data_off + 2 * l->data_size);
	uint8_t *base, *data;
	int r;

	base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	if (mmap(base, (size_t)l->data_off, prot, flags, fd, 0) == MAP_FAILED)
		goto fail_unmap;
	/* Readers write only the wake page (sleeper count, ring_wake_all). */
	if (!writer && mmap(base + l->page_size, (size_t)l->page_size, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_FIXED, fd, (off_t)l->page_size) == MAP_FAILED)
		goto fail_unmap;
	data = base + l->data_off;
	if (mmap(data, (size_t)l->data_size, prot, flags, fd, (off_t)l->data_off) == MAP_FAILED)
		goto fail_unmap;
	if (mmap(data + l->data_size, (size_t)l->data_size, prot, flags, fd, (off_t)l->data_off) ==
	    MAP_FAILED)
		goto fail_unmap;

	ring->base = base;
	ring->map_size = size;
	ring->hdr = (struct ring_hdr *)base;
	ring->wake = (struct ring_wake *)(base + l->page_size);
	ring->slots = (struct ring_slot *)(base + l->slots_off);
	ring->sentinels = base + l->sentinels_off;
	ring->data = data;
	ring->slot_mask = l->n_slots - 1;
	return 0;

fail_unmap:
	r = -errno;
	munmap(base, size);
	return r;
}

static struct ring_sent *
ring_sent_at(const struct ring *ring, uint32_t slot)
{
	return (struct ring_sent *)(ring->sentinels + (size_t)slot * ring->l.sentinel_size);
}

static uint64_t
ring_nonce(void)
{
	struct timespec ts;
	uint64_t n = 0;

	if (getrandom(&n, sizeof(n), GRND_NONBLOCK) != (ssize_t)sizeof(n)) {
		/* Early boot: still unique enough to tell two writers apart. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		n = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
		    ((uint64_t)getpid() << 40);
	}
	return n ? n : 1;
}

/* Moves the writer's tail hint past segments whose slot is about to be reused
 * by index next or whose bytes lie before reserve - data_size. */
static void
ring_tail_advance(struct ring *ring, uint64_t next, uint64_t reserve)
{
	uint64_t t = ring->w_tail;

	while (t < next) {
		const struct ring_slot *s = &ring->slots[t & ring->slot_mask];

		if (t + ring->l.n_slots > next && s->index == t &&
		    reserve - s->pos <= ring->l.data_size)
			break;
		t++;
	}
	ring->w_tail = t;
	__atomic_store_n(&ring->hdr->tail, t, __ATOMIC_RELEASE);
}

void
ring_wake_all(const struct ring *ring)
{
	__atomic_fetch_add(&ring->wake->kicks, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&ring->wake->futex, 1, __ATOMIC_RELEASE);
	ring_futex(&ring->wake->futex, FUTEX_WAKE, INT_MAX, NULL);
}

/* A new writer continues where the last one stopped, whether it closed cleanly
 * or was killed between any two instructions of ring_write or ring_sentinel_put. */
static void
ring_attach(struct ring *ring)
{
	struct ring_hdr *hdr = ring->hdr;
	uint64_t head = __atomic_load_n(&hdr->head, __ATOMIC_ACQUIRE);
	uint64_t wpos = __atomic_load_n(&hdr->wpos, __ATOMIC_RELAXED);
	uint64_t reserve = __atomic_load_n(&hdr->reserve, __ATOMIC_RELAXED);
	uint64_t tail = __atomic_load_n(&hdr->tail, __ATOMIC_RELAXED);
	/* Bytes between wpos and reserve may be half written: never reuse them
	 * for a segment readers might pair with an old descriptor. */
	uint64_t pos = wpos > reserve ? wpos : reserve;
	uint64_t low = head > ring->l.n_slots ? head - ring->l.n_slots : 0;

	ring->w_head = head;
	ring->w_pos = pos;
	ring->w_tail = tail < low ? low : tail > head ? head : tail;
	__atomic_store_n(&hdr->wpos, pos, __ATOMIC_RELAXED);
	__atomic_store_n(&hdr->reserve, pos, __ATOMIC_RELAXED);
	ring_tail_advance(ring, head, pos);

	/* An entry left odd was being rewritten when its writer died: its
	 * content may be torn, so it becomes a free entry. */
	for (uint32_t i = 0; i < ring->l.n_sentinels; i++) {
		struct ring_sent *e = ring_sent_at(ring, i);
		uint32_t seq = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);

		if (!(seq & 1))
			continue;
		memset((uint8_t *)e + sizeof(e->seq), 0, ring->l.sentinel_size - sizeof(e->seq));
		__atomic_store_n(&e->seq, seq + 1, __ATOMIC_RELEASE);
	}

	__atomic_store_n(&hdr->writer_nonce, ring_nonce(), __ATOMIC_RELAXED);
	__atomic_store_n(&hdr->writer_pid, (uint32_t)getpid(), __ATOMIC_RELEASE);
	/* Sleeping readers get to notice the new writer. */
	ring_wake_all(ring);
}

int
ring_open(const char *name, bool writer, struct ring **ret_ring)
{
	struct ring_layout l;
	struct ring_hdr h;
	struct ring *ring;
	struct stat st;
	ssize_t n;
	int fd, r;

	r = ring_name_check(name);
	if (r < 0)
		return r;
	if (!ret_ring)
		return -EINVAL;
	/* Readers too open read-write: they map the wake page writable. */
	fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (writer && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto close_fd;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto close_fd;
	}
	n = pread(fd, &h, sizeof(h), 0);
	if (n < 0) {
		r = -errno;
		goto close_fd;
	}
	if ((size_t)n != sizeof(h)) {
		r = -EPROTO;
		goto close_fd;
	}
	r = ring_hdr_check(&h, (uint64_t)st.st_size, &l);
	if (r < 0)
		goto close_fd;
	ring = calloc(1, sizeof(*ring));
	if (!ring) {
		r = -ENOMEM;
		goto close_fd;
	}
	ring->l = l;
	r = ring_map(ring, fd, writer);
	if (r < 0)
		goto free_ring;

	ring->writer = writer;
	ring->fd = -1;
	if (writer) {
		ring->fd = fd;
		ring_attach(ring);
	} else {
		close(fd);
	}
	*ret_ring = ring;
	return 0;

free_ring:
	free(ring);
close_fd:
	close(fd);
	return r;
}

void
ring_close(struct ring *ring)
{
	if (!ring)
		return;
	if (ring->writer) {
		__atomic_store_n(&ring->hdr->writer_pid, 0, __ATOMIC_RELEASE);
		ring_wake_all(ring);
	}
	munmap(ring->base, ring->map_size);
	if (ring->fd >= 0)
		close(ring->fd);
	free(ring);
}

int
ring_write(struct ring *ring, const struct ring_seg *meta, const void *data, uint32_t len,
	   uint64_t *ret_index)
{
	struct ring_hdr *hdr;
	struct ring_slot *slot;
	uint64_t idx, pos, end;

	if (!ring || !meta || (len && !data))
		return -EINVAL;
	if (!ring->writer)
		return -EPERM;
	if (len > ring->l.max_segment_bytes)
		return -EMSGSIZE;
	if (meta->sentinel >= ring->l.n_sentinels)
		return -EINVAL;

	hdr = ring->hdr;
	idx = ring->w_head;
	pos = ring->w_pos;
	end = pos + len;

	/* 1. Claim the bytes: readers that check reserve after copying will see
	 * that [end - data_size, ...) may be gone. The full fence keeps the
	 * copy below from being seen before the claim (the seqlock write side). */
	__atomic_store_n(&hdr->reserve, end, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ring_tail_advance(ring, idx, end);

	/* 2. The bytes; the mirror mapping makes the wrap invisible. */
	if (len)
		memcpy(ring->data + pos % ring->l.data_size, data, len);

	/* 3. The descriptor: marked empty first, so that a reader that copies it
	 * while it changes sees the index differ when it re-checks. */
	slot = &ring->slots[idx & ring->slot_mask];
	__atomic_store_n(&slot->index, RING_SLOT_EMPTY, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	slot->pos = pos;
	slot->sequence = meta->sequence;
	slot->start_ms = meta->start_ms;
	memcpy(slot->session, meta->session, sizeof(slot->session));
	slot->sentinel = meta->sentinel;
	slot->duration_ms = meta->duration_ms;
	slot->flags = meta->flags;
	slot->init_gen = meta->init_gen;
	slot->len = len;
	slot->publish_us = ring_unix_us();
	__atomic_store_n(&slot->index, idx, __ATOMIC_RELEASE);

	/* 4. Publish, then wake sleepers. The fence pairs with the one in
	 * ring_wait: either we see its sleeper count or it sees our head. */
	ring->w_head = idx + 1;
	ring->w_pos = end;
	__atomic_store_n(&hdr->wpos, end, __ATOMIC_RELAXED);
	__atomic_store_n(&hdr->bytes_written, hdr->bytes_written + len, __ATOMIC_RELAXED);
	__atomic_store_n(&hdr->head, idx + 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&ring->wake->futex, 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&ring->wake->sleepers, __ATOMIC_RELAXED) != 0)
		ring_futex(&ring->wake->futex, FUTEX_WAKE, INT_MAX, NULL);

	if (ret_index)
		*ret_index = idx;
	return 0;
}

uint64_t
ring_head(const struct ring *ring)
{
	return __atomic_load_n(&ring->hdr->head, __ATOMIC_ACQUIRE);
}

uint64_t
ring_tail(const struct ring *ring)
{
	return __atomic_load_n(&ring->hdr->tail, __ATOMIC_ACQUIRE);
}

/* A consistent copy of descriptor index, or -EAGAIN / -ESTALE. Loading head
 * first makes the answer exact: once head > index the slot holds index or a
 * later one (or is being rewritten), never an older one. */
static int
ring_meta_get(const struct ring *ring, uint64_t index, struct ring_seg *ret)
{
	uint64_t head = ring_head(ring), reserve;
	const struct ring_slot *slot;
	struct ring_slot c;

	if (index >= head)
		return -EAGAIN;
	if (head - index > ring->l.n_slots)
		return -ESTALE;
	slot = &ring->slots[index & ring->slot_mask];
	if (__atomic_load_n(&slot->index, __ATOMIC_ACQUIRE) != index)
		return -ESTALE;
	/* A plain copy that may race with the writer; the re-check after the
	 * acquire fence discards it if it did (the seqlock read side). */
	memcpy(&c, slot, sizeof(c));
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (__atomic_load_n(&slot->index, __ATOMIC_RELAXED) != index)
		return -ESTALE;
	reserve = __atomic_load_n(&ring->hdr->reserve, __ATOMIC_RELAXED);
	if (reserve - c.pos > ring->l.data_size)
		return -ESTALE;
	/* Only the writer writes descriptors: a wrong length is a bug or a
	 * scribble, not a race. */
	if (c.len > ring->l.max_segment_bytes || c.sentinel >= ring->l.n_sentinels)
		return -EPROTO;

	ret->index = index;
	ret->sentinel = c.sentinel;
	memcpy(ret->session, c.session, sizeof(ret->session));
	ret->sequence = c.sequence;
	ret->start_ms = c.start_ms;
	ret->duration_ms = c.duration_ms;
	ret->flags = c.flags;
	ret->init_gen = c.init_gen;
	ret->len = c.len;
	ret->pos = c.pos;
	ret->publish_us = c.publish_us;
	return 0;
}

int
ring_check(const struct ring *ring, const struct ring_seg *meta)
{
	uint64_t reserve;

	/* Orders our earlier loads of the bytes before the load of reserve: if
	 * any of them saw a byte of a newer segment, reserve shows that claim. */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	reserve = __atomic_load_n(&ring->hdr->reserve, __ATOMIC_RELAXED);
	return reserve - meta->pos <= ring->l.data_size ? 0 : -ESTALE;
}

int
ring_read(const struct ring *ring, uint64_t index, struct ring_seg *ret_meta, void *buf,
	  size_t size)
{
	struct ring_seg m;
	int r;

	r = ring_meta_get(ring, index, &m);
	if (r < 0)
		return r;
	if (size < m.len)
		return -ENOBUFS;
	if (m.len && !buf)
		return -EINVAL;
	if (m.len)
		memcpy(buf, ring->data + m.pos % ring->l.data_size, m.len);
	r = ring_check(ring, &m);
	if (r < 0)
		return r;
	if (ret_meta)
		*ret_meta = m;
	return 0;
}

int
ring_peek(const struct ring *ring, uint64_t index, struct ring_seg *ret_meta, const void **ret_data)
{
	struct ring_seg m;
	int r;

	r = ring_meta_get(ring, index, &m);
	if (r < 0)
		return r;
	*ret_meta = m;
	*ret_data = ring->data + m.pos % ring->l.data_size;
	return 0;
}

static int
timespec_left(const struct timespec *deadline, struct timespec *ret)
{
	struct timespec now;
	int64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000000000 +
	     (deadline->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return -ETIMEDOUT;
	ret->tv_sec = ns / 1000000000;
	ret->tv_nsec = ns % 1000000000;
	return 0;
}

int
ring_wait(const struct ring *ring, uint64_t index, int timeout_ms)
{
	struct ring_wake *w = ring->wake;
	uint32_t kicks = __atomic_load_n(&w->kicks, __ATOMIC_ACQUIRE);
	struct timespec deadline = { 0 }, left = { 0 };
	long r;
	int err;

	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	for (;;) {
		uint32_t v = __atomic_load_n(&w->futex, __ATOMIC_ACQUIRE);

		if (ring_head(ring) > index ||
		    __atomic_load_n(&w->kicks, __ATOMIC_ACQUIRE) != kicks)
			return 0;
		if (timeout_ms >= 0 && timespec_left(&deadline, &left) < 0)
			return -ETIMEDOUT;
		/* Announce the sleep, then look again: a write after this either
		 * sees the count and wakes us, or is seen here (or changes v, and
		 * FUTEX_WAIT returns at once). */
		__atomic_fetch_add(&w->sleepers, 1, __ATOMIC_SEQ_CST);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (ring_head(ring) > index ||
		    __atomic_load_n(&w->kicks, __ATOMIC_ACQUIRE) != kicks) {
			__atomic_fetch_sub(&w->sleepers, 1, __ATOMIC_RELEASE);
			return 0;
		}
		r = ring_futex(&w->futex, FUTEX_WAIT, v, timeout_ms >= 0 ? &left : NULL);
		err = errno;
		__atomic_fetch_sub(&w->sleepers, 1, __ATOMIC_RELEASE);
		/* A signal: the caller has a flag to look at. */
		if (r < 0 && err == EINTR)
			return 0;
		/* EAGAIN (the word moved), ETIMEDOUT and wake-ups loop to look
		 * again; anything else would spin. */
		if (r < 0 && err != EAGAIN && err != ETIMEDOUT)
			return -err;
	}
}

int
ring_find_join(const struct ring *ring, uint32_t sentinel, const uint8_t *session, bool newest,
	       uint64_t *ret_index)
{
	uint64_t head = ring_head(ring), tail = ring_tail(ring);
	uint64_t low = head > ring->l.n_slots ? head - ring->l.n_slots : 0;
	struct ring_seg m;

	if (tail > low)
		low = tail;
	if (low > head)
		low = head;
	for (uint64_t n = 0; n < head - low; n++) {
		uint64_t i = newest ? head - 1 - n : low + n;
		int r = ring_meta_get(ring, i, &m);

		/* Going back in time, once a segment is gone so are the older ones. */
		if (r == -ESTALE && newest)
			break;
		if (r < 0 || m.sentinel != sentinel || !(m.flags & RING_SEG_KEYFRAME))
			continue;
		if (session && memcmp(session, m.session, sizeof(m.session)) != 0)
			continue;
		*ret_index = i;
		return 0;
	}
	return -ENOENT;
}

int
ring_find_join_within(const struct ring *ring, uint32_t sentinel, const uint8_t *session,
		      int64_t window_ms, uint64_t *ret_index)
{
	uint64_t head = ring_head(ring), tail = ring_tail(ring);
	uint64_t low = head > ring->l.n_slots ? head - ring->l.n_slots : 0;
	uint64_t found = 0;
	int64_t from = 0;
	bool edge = false, any = false;
	struct ring_seg m;

	if (tail > low)
		low = tail;
	if (low > head)
		low = head;
	for (uint64_t i = head; i > low; i--) {
		int r = ring_meta_get(ring, i - 1, &m);

		if (r == -ESTALE)
			break; /* going back in time: the older ones are gone too */
		if (r < 0 || m.sentinel != sentinel ||
		    (session && memcmp(session, m.session, sizeof(m.session)) != 0))
			continue;
		if (!edge) {
			edge = true;
			from = m.start_ms + (int64_t)m.duration_ms - window_ms;
		}
		if (m.start_ms < from && any)
			break;
		if (m.flags & RING_SEG_KEYFRAME) {
			found = i - 1;
			any = true;
			if (m.start_ms < from)
				break; /* the newest join point, older than the window */
		}
	}
	if (!any)
		return -ENOENT;
	*ret_index = found;
	return 0;
}

uint32_t
ring_sentinel_slots(const struct ring *ring)
{
	return ring->l.n_sentinels;
}

int
ring_sentinel_put(struct ring *ring, uint32_t slot, const struct ring_sentinel *s, const void *init,
		  uint32_t init_len)
{
	struct ring_sent n = { 0 };
	struct ring_sent *e;
	uint32_t seq;

	if (!ring || !s || slot >= ring->l.n_sentinels)
		return -EINVAL;
	if (!ring->writer)
		return -EPERM;
	if (!memchr(s->name, '\0', sizeof(s->name)) || !memchr(s->codec, '\0', sizeof(s->codec)))
		return -EINVAL;
	if (init && init_len > ring->l.max_init_bytes)
		return -EMSGSIZE;

	e = ring_sent_at(ring, slot);
	n.online = s->online;
	memcpy(n.id, s->id, sizeof(n.id));
	memcpy(n.session, s->session, sizeof(n.session));
	/* strncpy zero-fills: no stale bytes after the NUL in shared memory. */
	strncpy(n.name, s->name, sizeof(n.name));
	strncpy(n.codec, s->codec, sizeof(n.codec));
	n.width = s->width;
	n.height = s->height;
	n.timescale = s->timescale;
	n.init_gen = s->init_gen;
	n.last_sequence = s->last_sequence;
	n.session_start_ms = s->session_start_ms;
	n.init_len = init ? init_len : e->init_len;

	seq = e->seq;
	__atomic_store_n(&e->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy((uint8_t *)e + sizeof(e->seq), (const uint8_t *)&n + sizeof(n.seq),
	       sizeof(n) - sizeof(n.seq));
	if (init && init_len)
		memcpy((uint8_t *)e + RING_SENT_FIXED, init, init_len);
	__atomic_store_n(&e->seq, seq + 2, __ATOMIC_RELEASE);
	return 0;
}

int
ring_sentinel_get(const struct ring *ring, uint32_t slot, struct ring_sentinel *ret, void *init_buf,
		  size_t init_size)
{
	const struct ring_sent *e;
	struct ring_sent c;

	if (!ring || !ret || slot >= ring->l.n_sentinels)
		return -EINVAL;
	e = ring_sent_at(ring, slot);
	for (int tries = 0; tries < RING_SENT_TRIES; tries++) {
		uint32_t seq, len;

		/* The writer holds an entry for a memcpy of at most max_init_bytes:
		 * spin a little, then let it run. */
		if (tries >= RING_SENT_SPINS)
			sched_yield();
		seq = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
		if (seq & 1)
			continue;
		memcpy(&c, e, sizeof(c));
		len = c.init_len;
		if (init_buf && len <= init_size && len <= ring->l.max_init_bytes)
			memcpy(init_buf, (const uint8_t *)e + RING_SENT_FIXED, len);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != seq)
			continue;

		if (len > ring->l.max_init_bytes)
			return -EPROTO;
		if (init_buf && len > init_size)
			return -ENOBUFS;
		memcpy(ret->id, c.id, sizeof(ret->id));
		memcpy(ret->name, c.name, sizeof(ret->name));
		ret->name[sizeof(ret->name) - 1] = '\0';
		memcpy(ret->session, c.session, sizeof(ret->session));
		memcpy(ret->codec, c.codec, sizeof(ret->codec));
		ret->codec[sizeof(ret->codec) - 1] = '\0';
		ret->width = c.width;
		ret->height = c.height;
		ret->timescale = c.timescale;
		ret->online = c.online != 0;
		ret->last_sequence = c.last_sequence;
		ret->init_gen = c.init_gen;
		ret->session_start_ms = c.session_start_ms;
		ret->init_len = len;
		return 0;
	}
	return -EAGAIN;
}

int
ring_sentinel_find(const struct ring *ring, const uint8_t id[16], uint32_t *ret_slot)
{
	struct ring_sentinel s;

	for (uint32_t i = 0; i < ring->l.n_sentinels; i++) {
		if (ring_sentinel_get(ring, i, &s, NULL, 0) < 0)
			continue;
		if (memcmp(s.id, id, sizeof(s.id)) == 0) {
			*ret_slot = i;
			return 0;
		}
	}
	return -ENOENT;
}

void
ring_get_stats(const struct ring *ring, struct ring_stats *ret)
{
	const struct ring_hdr *hdr = ring->hdr;

	ret->head = ring_head(ring);
	ret->bytes_written = __atomic_load_n(&hdr->bytes_written, __ATOMIC_RELAXED);
	ret->data_size = ring->l.data_size;
	ret->n_slots = ring->l.n_slots;
	ret->writer_pid = __atomic_load_n(&hdr->writer_pid, __ATOMIC_ACQUIRE);
	ret->writer_nonce = __atomic_load_n(&hdr->writer_nonce, __ATOMIC_RELAXED);
	ret->tail = ring_tail(ring);
	ret->n_sentinels = ring->l.n_sentinels;
	ret->max_segment_bytes = ring->l.max_segment_bytes;
	ret->max_init_bytes = ring->l.max_init_bytes;
	ret->sleepers = __atomic_load_n(&ring->wake->sleepers, __ATOMIC_RELAXED);
}
