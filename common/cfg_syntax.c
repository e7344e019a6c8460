/* cfg_syntax: what libyaml could not parse, as the one line: the place
 * (a reader error's byte offset made a line and column), the problem in
 * libyaml's words, and for a line indented to no level the file has open,
 * which levels it could have been ("expected 2 (a key of limits, as
 * max_sentinels at line 5) or 0 (a top-level key)").
 *
 * libyaml's own message names the collection it was parsing by where that
 * began, which for a stray indentation is the file's first line. So the text
 * is parsed again as events up to the error, keeping the block collections
 * that are open there (and those the offending line closed) with their
 * columns and key paths.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "cfg_internal.h"

#define SYN_DEPTH 32 /* deeper nesting is not followed: libyaml's message alone */
#define SYN_WORD  40

/* A block collection met on the way to the error. */
struct syn_frame {
	bool map, flow;
	size_t col, line;       /* of its first key or entry */
	size_t end_line;        /* closed frames: where its end was found */
	char path[CFG_KEY_MAX]; /* "" for the top */
	char last[SYN_WORD];    /* maps: the last key read */
	size_t last_line;
	size_t items;  /* lists: entries read */
	bool want_key; /* maps: the next node is a key */
};

struct syn_scan {
	struct syn_frame open[SYN_DEPTH], closed[SYN_DEPTH];
	size_t n_open, n_closed;
	bool lost; /* nested beyond SYN_DEPTH */
};

/* Reader errors carry a byte offset instead of a mark. */
static yaml_mark_t
cfg_mark_at(const char *text, size_t len, size_t offset)
{
	yaml_mark_t mark = { 0 };

	for (size_t i = 0; i < offset && i < len; i++) {
		if (text[i] == '\n') {
			mark.line++;
			mark.column = 0;
		} else {
			mark.column++;
		}
	}
	return mark;
}

/* A node of the innermost open frame is done: a key read, a value, an entry. */
static void
syn_node(struct syn_scan *sc, const char *scalar, size_t line)
{
	struct syn_frame *f = sc->n_open > 0 ? &sc->open[sc->n_open - 1] : NULL;

	if (f == NULL)
		return;
	if (!f->map) {
		f->items++;
		return;
	}
	if (f->want_key) {
		snprintf(f->last, sizeof(f->last), "%s", scalar != NULL ? scalar : "?");
		f->last_line = line;
	}
	f->want_key = !f->want_key;
}

static void
syn_push(struct syn_scan *sc, const yaml_event_t *e)
{
	struct syn_frame *parent = sc->n_open > 0 ? &sc->open[sc->n_open - 1] : NULL, *f;

	if (sc->n_open == SYN_DEPTH) {
		sc->lost = true;
		return;
	}
	f = &sc->open[sc->n_open];
	*f = (struct syn_frame){
		.map = e->type == YAML_MAPPING_START_EVENT,
		.col = e->start_mark.column,
		.line = e->start_mark.line,
		.want_key = true,
	};
	f->flow = f->map ? e->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
			 : e->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
	if (parent != NULL && parent->map)
		cfg_key_join(f->path, sizeof(f->path), parent->path, parent->last);
	else if (parent != NULL)
		snprintf(f->path, sizeof(f->path), "%.*s[%zu]", CFG_KEY_MAX - 24, parent->path,
			 parent->items);
	sc->n_open++;
}

static void
syn_pop(struct syn_scan *sc, size_t line)
{
	if (sc->n_open == 0)
		return;
	sc->n_open--;
	if (sc->n_closed < SYN_DEPTH) {
		sc->closed[sc->n_closed] = sc->open[sc->n_open];
		sc->closed[sc->n_closed++].end_line = line;
	}
	/* The collection was a value or an entry of its parent. */
	syn_node(sc, NULL, line);
}

/* Parses text as events up to its first error, following the collections. */
static void
syn_scan(struct syn_scan *sc, const char *text, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t e;
	bool done = false;

	if (!yaml_parser_initialize(&parser)) {
		sc->lost = true;
		return;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && yaml_parser_parse(&parser, &e)) {
		/* Closed frames count only when the error comes right after them. */
		if (e.type != YAML_MAPPING_END_EVENT && e.type != YAML_SEQUENCE_END_EVENT)
			sc->n_closed = 0;
		switch (e.type) {
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			syn_push(sc, &e);
			done = sc->lost; /* too deep to follow */
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			syn_pop(sc, e.start_mark.line);
			break;
		case YAML_SCALAR_EVENT:
			syn_node(sc, (const char *)e.data.scalar.value, e.start_mark.line);
			break;
		case YAML_ALIAS_EVENT:
			syn_node(sc, "*alias", e.start_mark.line);
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&e);
	}
	yaml_parser_delete(&parser);
}

/* "2 (a key of limits, as max_sentinels at line 5)" */
static void
syn_level(char *buf, size_t size, const struct syn_frame *f)
{
	if (!f->map)
		snprintf(buf, size, "%zu (a '-' entry of %s)", f->col,
			 f->path[0] ? f->path : "the list");
	else if (f->path[0] == '\0')
		snprintf(buf, size, "%zu (a top-level key)", f->col);
	else if (f->last[0] != '\0')
		snprintf(buf, size, "%zu (a key of %s, as %s at line %zu)", f->col, f->path,
			 f->last, f->last_line + 1);
	else
		snprintf(buf, size, "%zu (a key of %s)", f->col, f->path);
}

/* The one line for a line indented to no open level; -EAGAIN when the error
 * is not one of indentation (or cannot be told). */
static int
syn_indent(struct cfg_ctx *ctx, const struct syn_scan *sc, const char *text, size_t len,
	   size_t line)
{
	const struct syn_frame *cand[2 * SYN_DEPTH];
	char levels[CFG_ERR_MAX], one[CFG_KEY_MAX + SYN_WORD + 96], word[SYN_WORD + 8];
	size_t n = 0, at = 0, indent = 0, w = 0, used = 0;
	yaml_mark_t mark = { .line = line };

	if (sc->lost || sc->n_open == 0 || sc->open[sc->n_open - 1].flow)
		return -EAGAIN;
	/* Innermost first: what the line closed, then what is still open. */
	for (size_t i = 0; i < sc->n_closed; i++) {
		if (sc->closed[i].end_line == line && !sc->closed[i].flow)
			cand[n++] = &sc->closed[i];
	}
	for (size_t i = sc->n_open; i-- > 0;)
		cand[n++] = &sc->open[i];
	for (size_t l = 0; l < line && at < len; at++) {
		if (text[at] == '\n')
			l++;
	}
	while (at + indent < len && text[at + indent] == ' ')
		indent++;
	for (size_t i = 0; i < n; i++) {
		if (cand[i]->col == indent)
			return -EAGAIN; /* a level that is open: something else is wrong */
	}
	while (at + indent + w < len && w < SYN_WORD && !strchr(" :\t\r\n", text[at + indent + w]))
		w++;
	if (w == 0 || text[at + indent] == '#')
		return -EAGAIN;
	snprintf(word, sizeof(word), "%.*s%s", (int)w, text + at + indent,
		 w == SYN_WORD ? "..." : "");
	levels[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen |= cand[j]->col == cand[i]->col;
		if (seen)
			continue;
		syn_level(one, sizeof(one), cand[i]);
		used += (size_t)snprintf(levels + used,
					 used < sizeof(levels) ? sizeof(levels) - used : 0, "%s%s",
					 used ? ", " : "", one);
		if (used >= sizeof(levels))
			break;
	}
	/* "a, b or c": the last comma becomes " or". */
	{
		char *comma = strrchr(levels, ',');

		if (comma != NULL && used < sizeof(levels) - 3) {
			memmove(comma + 3, comma + 1, strlen(comma + 1) + 1);
			memcpy(comma, " or", 3);
		}
	}
	mark.column = indent;
	return cfg_fail(ctx, mark, "-", "bad indentation: %zu space%s before %s; expected %s",
			indent, indent == 1 ? "" : "s", word, levels);
}

/* The collection libyaml names as its context, by its key path. */
static const struct syn_frame *
syn_frame_at(const struct syn_scan *sc, yaml_mark_t mark)
{
	for (size_t i = 0; i < sc->n_open; i++) {
		if (sc->open[i].line == mark.line && sc->open[i].col == mark.column &&
		    !sc->open[i].flow)
			return &sc->open[i];
	}
	for (size_t i = 0; i < sc->n_closed; i++) {
		if (sc->closed[i].line == mark.line && sc->closed[i].col == mark.column &&
		    !sc->closed[i].flow)
			return &sc->closed[i];
	}
	return NULL;
}

int
cfg_syntax(struct cfg_ctx *ctx, const yaml_parser_t *parser, const char *text, size_t len)
{
	const char *problem = parser->problem ? parser->problem : "unknown problem";
	const struct syn_frame *f;
	struct syn_scan *sc;
	char what[CFG_KEY_MAX + 32];
	int r;

	if (parser->error == YAML_MEMORY_ERROR)
		return cfg_oom(ctx);
	if (parser->error == YAML_READER_ERROR) {
		if (parser->problem_value < 0)
			return cfg_fail(ctx, cfg_mark_at(text, len, parser->problem_offset), "-",
					"syntax error: %s", problem);
		return cfg_fail(ctx, cfg_mark_at(text, len, parser->problem_offset), "-",
				"syntax error: %s (byte 0x%02X)", problem,
				(unsigned)parser->problem_value);
	}
	/* The commonest YAML mistake gets named. */
	if (parser->problem_mark.index < len && text[parser->problem_mark.index] == '\t')
		return cfg_fail(ctx, parser->problem_mark, "-",
				"syntax error: %s (a tab; indent with spaces)", problem);
	sc = calloc(1, sizeof(*sc));
	if (sc != NULL) {
		syn_scan(sc, text, len);
		r = syn_indent(ctx, sc, text, len, parser->problem_mark.line);
		if (r != -EAGAIN) {
			free(sc);
			return r;
		}
	}
	f = sc != NULL && parser->context ? syn_frame_at(sc, parser->context_mark) : NULL;
	if (f != NULL) {
		if (!f->map)
			snprintf(what, sizeof(what), "the entries of %s",
				 f->path[0] ? f->path : "the list");
		else if (f->path[0] != '\0')
			snprintf(what, sizeof(what), "the keys of %s", f->path);
		else
			snprintf(what, sizeof(what), "the top-level keys");
		r = cfg_fail(ctx, parser->problem_mark, "-",
			     "syntax error: %s while parsing %s (from line %zu)", problem, what,
			     f->line + 1);
	} else if (parser->context) {
		r = cfg_fail(ctx, parser->problem_mark, "-", "syntax error: %s %s at line %zu",
			     problem, parser->context, parser->context_mark.line + 1);
	} else {
		r = cfg_fail(ctx, parser->problem_mark, "-", "syntax error: %s", problem);
	}
	free(sc);
	return r;
}
