/* cfg_hint: for a key the table does not know, the key that was probably
 * meant: the same name one level up or down or in a sibling map ("size"
 * under limits: "did you mean ring.size?"), or a key of the same map spelt
 * nearly alike ("max_sentinel": "did you mean limits.max_sentinels?").
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cfg_internal.h"

#define HINT_NAME_MAX 32 /* longer names are not compared letter by letter */
#define HINT_MAX      3  /* suggestions named at most */

struct hint {
	char found[HINT_MAX][CFG_KEY_MAX];
	size_t n;
	unsigned best; /* score of what found holds; lower is closer */
};

/* Edits (insert, delete, change, swap two neighbours) from a to b, ignoring
 * case; HINT_NAME_MAX + 1 for names too long to compare. */
static unsigned
hint_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned d[HINT_NAME_MAX + 1][HINT_NAME_MAX + 1];

	if (la > HINT_NAME_MAX || lb > HINT_NAME_MAX)
		return HINT_NAME_MAX + 1;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned cost = tolower((unsigned char)a[i - 1]) !=
					tolower((unsigned char)b[j - 1]);
			unsigned v = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

static void
hint_offer(struct hint *h, const char *prefix, const char *name, unsigned score)
{
	if (score > h->best)
		return;
	if (score < h->best) {
		h->n = 0;
		h->best = score;
	}
	if (h->n < HINT_MAX)
		cfg_key_join(h->found[h->n++], sizeof(h->found[0]), prefix, name);
}

/* A name as far from name as a slip of the fingers: one edit for short names, two else. */
static unsigned
hint_near(const char *name, const char *known)
{
	unsigned d = hint_distance(name, known), most = strlen(known) <= 4 ? 1 : 2;

	return d <= most ? d : HINT_NAME_MAX + 1;
}

void
cfg_key_hint(const char *prefix, const char *name, const struct cfg_key *keys, char *buf,
	     size_t size)
{
	struct hint h = { .best = 2 }; /* worse is no hint */
	size_t len;

	buf[0] = '\0';
	/* The same map: a misspelling. Case alone scores 0, like the right name elsewhere. */
	for (const struct cfg_key *k = keys; k->name; k++)
		hint_offer(&h, prefix, k->name, hint_near(name, k->name));
	/* The file's tree, two levels deep (not into auth.tokens' entries, whose
	 * keys are not the tree's): the right name at the wrong level scores 0,
	 * a misspelling there one more than here. */
	if (strchr(prefix, '[') == NULL) {
		for (const struct cfg_key *k = cfg_keys_top; k->name; k++) {
			if (prefix[0] != '\0')
				hint_offer(&h, "", k->name,
					   strcmp(k->name, name) == 0
						   ? 0
						   : hint_near(name, k->name) + 1);
			if (k->kind != CFG_K_MAP || strcmp(k->name, prefix) == 0)
				continue;
			for (const struct cfg_key *s = k->sub; s->name; s++)
				hint_offer(&h, k->name, s->name,
					   strcmp(s->name, name) == 0
						   ? 0
						   : hint_near(name, s->name) + 1);
		}
	}
	if (h.n == 0)
		return;
	len = (size_t)snprintf(buf, size, "; did you mean ");
	for (size_t i = 0; i < h.n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
					i == 0         ? ""
					: i + 1 == h.n ? " or "
						       : ", ",
					h.found[i]);
	if (len < size)
		snprintf(buf + len, size - len, "?");
}
