/* layout: the archive's format on disk, coded once. vigil-archive writes it
 * (archive/store.c: atomic writes, the start-up repair, removal) and
 * vigil-httpd reads it (httpd/archive_read.c, httpd/catalog.c); both go
 * through the names, parsers and texts below, so a rule changes in one place.
 * docs/archive.md says what each field means and in which order things are
 * made durable.
 *
 *   data_dir/
 *     .deleted-sessions                  session ids deleted on request, one a line
 *     .revoked-tokens                    vigild's: SHA-256 (hex) of each revoked token and
 *                                        when, one a line (docs/operations.md)
 *     .deleting-{uuid}/                  a removal in progress: never read it
 *     .delete-intent-{sessionId}         a hard delete waiting for its audit record:
 *                                        {"sentinelId","sessionId","ref","id"}
 *     {sentinelId}/                      a lower-case UUID (layout_id_name)
 *       sentinel.json                    {"sentinelId","name","updated"}
 *       {sessionId}/                     a lower-case UUID
 *         session.json                   {"sentinelId","sessionId","name","codec","width",
 *                                         "height","timescale","startTime","endTime"|null,
 *                                         "inits"}
 *         init.mp4, init-1.mp4 ...       init generation 0, 1, ...
 *         000000.m4s, 000001.m4s ...     the sentinel's sequence, %06lld, bytes as sent
 *         index.jsonl                    one line per durable segment, sequences ascending:
 *           {"sequence","startTime","duration","bytes","keyframe","init","sha256"}\n
 *         marks.jsonl                    the session's marks, one line each (common/mark.h)
 *         thumb-10s-160-000042.jpg ...   httpd's cache of thumbnails (docs/httpd.md): a
 *                                        JPEG every 10 s, 160 pixels wide; removed with
 *                                        the session, never listed
 *   and NAME.tmp for any file above while it is written (temp, fsync, rename).
 *
 * Text, not binary: JSON written by jansson in this key order, compact, so no
 * magic and no version field; readers accept any JSON with the right keys and
 * types. Whole files are replaced atomically; index lines are appended only
 * after the segment file is durable, so a reader takes only complete lines.
 *
 * One strictness for index lines: a line is an entry only when every field is
 * there with its type and range and its sequence is above the previous
 * entry's (layout_index_next). archive's repair drops any other line; httpd
 * skips it, which shows what the repair will keep. Pure functions apart from
 * the *_read ones, which read a file beneath a directory fd without following
 * a symlink; any thread.
 */
#ifndef VIGIL_LAYOUT_H
#define VIGIL_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "id.h"

#define LAYOUT_INDEX    "index.jsonl"
#define LAYOUT_SESSION  "session.json"
#define LAYOUT_SENTINEL "sentinel.json"
#define LAYOUT_MARKS    "marks.jsonl"
#define LAYOUT_DELETED  ".deleted-sessions"
#define LAYOUT_REVOKED  ".revoked-tokens"
#define LAYOUT_DELETING ".deleting-"      /* followed by a UUID */
#define LAYOUT_INTENT   ".delete-intent-" /* followed by the session's UUID */
#define LAYOUT_TMP      ".tmp"            /* suffix of a file being written */

#define LAYOUT_SHA_HEX   65           /* 64 hex digits and the NUL */
#define LAYOUT_NAME_MAX  128          /* a sentinel's name, with its NUL */
#define LAYOUT_CODEC_MAX 64           /* an RFC 6381 codec string, with its NUL */
#define LAYOUT_LINE_MAX  512          /* an index line archive writes fits in this */
#define LAYOUT_INDEX_MAX (256u << 20) /* an index longer than this is not archive's */

/* One line of index.jsonl. */
struct layout_entry {
	int64_t sequence; /* >= 0; the file is layout_seg_name() of it */
	int64_t start_ms; /* unix ms of the first frame */
	uint32_t duration_ms;
	uint64_t bytes; /* the file's size */
	bool keyframe;
	uint32_t init; /* file generation: 0 = init.mp4, K = init-K.mp4 */
	char sha256[LAYOUT_SHA_HEX];
};

/* session.json. end_ms < 0 is null (live). */
struct layout_session {
	char sentinel[ID_STR_LEN];
	char session[ID_STR_LEN];
	char name[LAYOUT_NAME_MAX]; /* the sentinel's name during the session */
	char codec[LAYOUT_CODEC_MAX];
	uint32_t width, height, timescale;
	int64_t start_ms, end_ms;
	uint32_t inits; /* init generations: the highest is inits - 1 */
};

/* sentinel.json. */
struct layout_sentinel {
	char sentinel[ID_STR_LEN];
	char name[LAYOUT_NAME_MAX];
	int64_t updated_ms; /* unix ms of the write */
};

/* ---- names -------------------------------------------------------------- */

/* "%06lld.m4s", "init.mp4" / "init-%u.mp4". */
void layout_seg_name(int64_t sequence, char *buf, size_t size);
void layout_init_name(uint32_t gen, char *buf, size_t size);
/* A segment file's name ("000042.m4s": six digits at least); its sequence in
 * *ret_sequence (may be NULL). */
bool layout_seg_file(const char *name, int64_t *ret_sequence);
/* "thumb-{every_s}s-{width}-%06lld.jpg": httpd's cached thumbnail n of a
 * session, one every every_s seconds, width pixels wide. httpd writes it
 * (NAME.tmp, fsync, rename; the directory is not fsynced: a cache), archive
 * removes it with its session. */
void layout_thumb_name(uint32_t every_s, uint32_t width, int64_t n, char *buf, size_t size);
bool layout_thumb_file(const char *name);
/* True for a name of the layout inside a sentinel or session directory
 * (sentinel.json, session.json, index.jsonl, marks.jsonl, inits, segments,
 * thumbnails, and each of them with .tmp): the only names archive deletes there. */
bool layout_name(const char *name);
/* A directory name of the layout: a UUID in lower case, as archive names
 * sentinels and sessions; the id in ret (may be NULL). Anything else under
 * data_dir (other case, dot names) is not archive's to list or delete. */
bool layout_id_name(const char *name, uint8_t ret[16]);

/* ---- index.jsonl -------------------------------------------------------- */

/* The entry as one line with its '\n' and a NUL; returns the length, or
 * -ENOBUFS, -ENOMEM. */
int layout_entry_format(const struct layout_entry *e, char *buf, size_t size);
/* One line without its '\n': every field with its type and range (sequence
 * and bytes >= 0, duration and init within 32 bits, sha256 64 lower-case hex
 * digits), no key twice. -EINVAL otherwise. */
int layout_entry_parse(const char *line, size_t len, struct layout_entry *ret);
/* The same through jansson alone: the reference that layout_entry_parse,
 * which reads archive's own spelling without jansson, must agree with. */
int layout_entry_parse_json(const char *line, size_t len, struct layout_entry *ret);
/* SHA-256 in lower-case hex. -EIO if OpenSSL fails (out is then all '0'). */
int layout_sha256_hex(const void *data, size_t len, char out[LAYOUT_SHA_HEX]);

/* Walks the complete lines of (part of) an index text. last_seq is the
 * sequence of the entry before buf (-1 at the start of the file). */
struct layout_index_iter {
	const char *p, *end;
	int64_t last_seq;
};

void layout_index_begin(struct layout_index_iter *it, const char *buf, size_t len,
			int64_t last_seq);
/* The next complete line: 1 with its entry (ret_line and ret_len, which may be
 * NULL, give the line without its '\n'); -EINVAL for a line that is not an
 * entry or whose sequence does not ascend (it is passed over: call again); 0
 * when no complete line is left (it->p < it->end: a torn tail). */
int layout_index_next(struct layout_index_iter *it, struct layout_entry *ret, const char **ret_line,
		      size_t *ret_len);

/* Reads an open index from byte off to its end, NUL-terminated and malloc'ed
 * (*ret_buf is never NULL on success). -EINVAL if fd is not a regular file,
 * -EFBIG past LAYOUT_INDEX_MAX, -ENOMEM, -errno. */
int layout_index_read(int fd, uint64_t off, char **ret_buf, size_t *ret_len);

/* ---- session.json and sentinel.json ------------------------------------- */

/* The texts archive writes (malloc'ed; NULL: no memory). */
char *layout_session_text(const struct layout_session *s);
char *layout_sentinel_text(const struct layout_sentinel *s);
/* A session.json is an object with an integer startTime; the other fields
 * default to ""/0 and endTime to null (-1). -EINVAL otherwise. */
int layout_session_parse(const char *text, size_t len, struct layout_session *ret);
/* A sentinel.json is an object with a string name. -EINVAL otherwise. */
int layout_sentinel_parse(const char *text, size_t len, struct layout_sentinel *ret);
/* The file in dirfd: -ENOENT when there is none, -EINVAL when it is not one
 * (not a regular file, not valid, over 64 KiB). */
int layout_session_read(int dirfd, struct layout_session *ret);
int layout_sentinel_read(int dirfd, struct layout_sentinel *ret);

/* ---- .deleted-sessions -------------------------------------------------- */

/* The ids in dirfd's .deleted-sessions, oldest first, malloc'ed (NULL when
 * *ret_n is 0): complete lines that hold a UUID, from the file's last
 * LAYOUT_DELETED_READ bytes. -ENOENT when there is no file, -ENOMEM, -errno. */
#define LAYOUT_DELETED_READ (1u << 20)
int layout_deleted_read(int dirfd, uint8_t (**ret_ids)[16], size_t *ret_n);

#endif
