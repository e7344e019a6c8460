/* mark: a proctor's mark on a moment of a session (PROTOCOL.md section 8), as
 * every stage spells it: the checks of its fields, its JSON object (the wire's
 * and the disk's), its msgpack map (the bus's), and the session's file of
 * marks, data_dir/{sentinelId}/{sessionId}/marks.jsonl (common/layout.h),
 * which archive appends to and httpd reads:
 *
 *   {"markId","sentinelId","sessionId","at","by","kind","note"}\n   one line per mark,
 *                                                                    in the order stored
 *
 * Readers take complete lines only (a torn last line is not there yet) and
 * skip a line that is not a mark; archive never writes one markId twice.
 * Pure functions but mark_file_read; any thread.
 */
#ifndef VIGIL_MARK_H
#define VIGIL_MARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

#include "id.h"

#define MARK_NOTE_MAX    500        /* bytes of UTF-8 (PROTOCOL.md section 8) */
#define MARK_BY_MAX      256        /* a token's name, with its NUL */
#define MARK_SESSION_MAX 1000       /* marks one session holds */
#define MARK_FUTURE_MS   5000       /* a live session's marks may be this far past now (clocks) */
#define MARK_FILE_MAX    (4u << 20) /* a marks.jsonl longer than this is not archive's */
#define MARK_LINE_MAX    4096       /* a line archive writes fits in this */

enum mark_kind {
	MARK_NOTE = 0,
	MARK_SUSPICIOUS,
	MARK_INCIDENT,
	MARK_N_KINDS,
};

struct mark {
	char id[ID_STR_LEN]; /* markId, lower case */
	char sentinel[ID_STR_LEN];
	char session[ID_STR_LEN];
	int64_t at; /* unix ms */
	char by[MARK_BY_MAX];
	enum mark_kind kind;
	char note[MARK_NOTE_MAX + 1];
};

/* "note", "suspicious", "incident". */
const char *mark_kind_name(enum mark_kind kind);
/* -EINVAL for any other text (case matters), which is refused with this. */
#define MARK_KIND_PROBLEM "kind must be \"note\", \"suspicious\" or \"incident\""
int mark_kind_parse(const char *s, size_t len, enum mark_kind *ret);
/* What is wrong with a note of len bytes (a static text), or NULL when it is
 * one: valid UTF-8 (RFC 3629), no NUL, at most MARK_NOTE_MAX bytes. */
const char *mark_note_problem(const char *s, size_t len);

/* The object { markId, sentinelId, sessionId, at, by, kind, note }, in that
 * order. NULL when out of memory. */
json_t *mark_json(const struct mark *m);
/* An object with every key of a mark, each of its type (UUIDs in either case,
 * kept in lower case; at an integer; by at most MARK_BY_MAX - 1 bytes; kind
 * known; note as mark_note_problem wants). Other keys are ignored. -EINVAL. */
int mark_from_json(const json_t *j, struct mark *ret);
/* The same map as msgpack (7 entries), and back. */
void mark_pack(msgpack_packer *pk, const struct mark *m);
int mark_from_mp(const msgpack_object *o, struct mark *ret);
/* The line of marks.jsonl with its '\n', NUL-terminated, malloc'ed; NULL when
 * out of memory. At most MARK_LINE_MAX bytes. */
char *mark_line(const struct mark *m, size_t *ret_len);

/* The marks of an open marks.jsonl, in file order, malloc'ed (NULL when there
 * is none). *ret_end: the offset just past the last complete line (where the
 * next line goes once a torn tail is cut). -EFBIG past MARK_FILE_MAX,
 * -EINVAL when fd is not a regular file, -ENOMEM, -errno. */
int mark_file_read(int fd, struct mark **ret, size_t *ret_n, uint64_t *ret_end);
/* Oldest first: by at, and in file order for equal ones. -ENOMEM (v unchanged). */
int mark_sort(struct mark *v, size_t n);

#endif
