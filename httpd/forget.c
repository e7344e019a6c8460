/* forget: the sessions a hard delete removed, so that nothing of them is
 * served from the ring either (see httpd.h). Loop thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd.h"
#include "id.h"
#include "log.h"

#define FORGET_FILE ".deleted-sessions" /* archive's (docs/archive.md, Deletion) */
#define FORGET_MAX  4096                /* ids kept; archive's file keeps the last 1024 */

struct forget {
	bool loaded;
	size_t n, next;
	uint8_t ids[FORGET_MAX][16];
};

static struct forget *
forget_get(struct httpd *h)
{
	if (h->forget == NULL)
		h->forget = calloc(1, sizeof(*h->forget));
	return h->forget;
}

static void
forget_add(struct forget *f, const uint8_t id[16])
{
	for (size_t i = 0; i < f->n; i++)
		if (memcmp(f->ids[i], id, 16) == 0)
			return;
	memcpy(f->ids[f->next], id, 16);
	f->next = (f->next + 1) % FORGET_MAX;
	if (f->n < FORGET_MAX)
		f->n++;
}

/* archive's file: one id a line, written before the delete was answered. */
static void
forget_load(struct httpd *h, struct forget *f)
{
	char buf[64 * ID_STR_LEN], line[ID_STR_LEN];
	int fd = ar_data_fd(h) < 0 ? -1
				   : openat(h->data_fd, FORGET_FILE,
					    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	size_t have = 0;
	ssize_t n;

	if (ar_data_fd(h) < 0)
		return; /* data_dir not there yet: asked again next time */
	f->loaded = true;
	if (fd < 0)
		return;
	while ((n = read(fd, buf + have, sizeof(buf) - have)) > 0) {
		size_t end = have + (size_t)n, at = 0;
		char *nl;

		while ((nl = memchr(buf + at, '\n', end - at)) != NULL) {
			uint8_t id[16];
			size_t len = (size_t)(nl - (buf + at));

			if (len == ID_STR_LEN - 1) {
				memcpy(line, buf + at, len);
				line[len] = '\0';
				if (id_parse(line, id) == 0)
					forget_add(f, id);
			}
			at += len + 1;
		}
		memmove(buf, buf + at, end - at);
		have = end - at;
		if (have == sizeof(buf))
			have = 0; /* a line that long is not an id */
	}
	close(fd);
}

bool
ar_forgotten_id(struct httpd *h, const uint8_t session[16])
{
	struct forget *f = forget_get(h);

	if (f == NULL)
		return false;
	if (!f->loaded)
		forget_load(h, f);
	for (size_t i = 0; i < f->n; i++)
		if (memcmp(f->ids[i], session, 16) == 0)
			return true;
	return false;
}

bool
ar_forgotten(struct httpd *h, const char *session)
{
	uint8_t id[16];

	return id_parse(session, id) == 0 && ar_forgotten_id(h, id);
}

void
ar_forget(struct httpd *h, const uint8_t session[16])
{
	struct forget *f = forget_get(h);
	char id[ID_STR_LEN];

	id_format(session, id);
	xplan_forget(h, id); /* what an export of it measured goes too */
	if (f == NULL) {
		log_error(-ENOMEM, "a deleted session could not be remembered");
		return;
	}
	if (!f->loaded)
		forget_load(h, f);
	forget_add(f, session);
}

void
ar_forget_free(struct httpd *h)
{
	free(h->forget);
	h->forget = NULL;
}
