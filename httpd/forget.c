/* forget: the sessions a hard delete removed, so that nothing of them is
 * served from the ring either (see httpd.h). Loop thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "archive_read.h"
#include "forget.h"
#include "httpd.h"
#include "id.h"
#include "layout.h"
#include "log.h"
#include "xplan.h"

#define FORGET_MAX 4096 /* ids kept; archive's file keeps the last 1024 */

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

/* archive's file (common/layout.h), written before the delete was answered. */
static void
forget_load(struct httpd *h, struct forget *f)
{
	uint8_t(*ids)[16];
	size_t n;
	int r;

	if (ar_data_fd(h) < 0)
		return; /* data_dir not there yet: asked again next time */
	f->loaded = true;
	r = layout_deleted_read(h->data_fd, &ids, &n);
	if (r < 0) {
		if (r != -ENOENT)
			log_warn(r, LAYOUT_DELETED " not read");
		return;
	}
	for (size_t i = 0; i < n; i++)
		forget_add(f, ids[i]);
	free(ids);
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
