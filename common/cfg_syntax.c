/* cfg_syntax: what libyaml could not parse, as the one line: the place
 * (a reader error's byte offset made a line and column), the problem in
 * libyaml's words, and for a line indented to no level the file has open,
 * which levels it could have been.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "cfg_internal.h"

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

int
cfg_syntax(struct cfg_ctx *ctx, const yaml_parser_t *parser, const char *text, size_t len)
{
	const char *problem = parser->problem ? parser->problem : "unknown problem";

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
	if (parser->context)
		return cfg_fail(ctx, parser->problem_mark, "-", "syntax error: %s %s at line %zu",
				problem, parser->context, parser->context_mark.line + 1);
	return cfg_fail(ctx, parser->problem_mark, "-", "syntax error: %s", problem);
}
