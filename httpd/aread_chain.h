/* aread_chain: the audit log's hash chain checked as docs/audit.md
 * ("Verifying a copy offline") defines it: from base (or from record 1 with
 * prev 64 zeros) through every day file in name order, then against head.
 * Any thread: it touches only the directory it is given; memory stays bounded
 * (one read buffer) whatever the log's size. */
#ifndef VIGIL_HTTPD_AREAD_CHAIN_H
#define VIGIL_HTTPD_AREAD_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aread_query.h"

#define AREAD_LINE_MAX (1u << 20) /* a longer line is not a record the writer made */

struct aread_verdict {
	int64_t records; /* good records read, in order, up to the first bad one */
	bool ok;
	int64_t first_bad;             /* the seq the first bad position should hold; -1: none */
	char reason[192];              /* "" when ok */
	char file[AREAD_NAME_LEN + 1]; /* the first bad record's file, "" if none */
	int64_t line;                  /* its line in that file (from 1); 0 if none */
	int64_t base, head;            /* their seq, -1 when absent */
};

/* Checks the log in dirfd (data_dir/audit; -1: there is none, an empty log).
 * head is read first, so records the writer adds meanwhile never make the
 * log look short; a day file that retention removes meanwhile starts the
 * check again (at most three times). Always fills v (a file that cannot be
 * read is a verdict too); 0, or -ENOMEM. */
int aread_chain_check(int dirfd, struct aread_verdict *v);
/* The days of the day files in dirfd (aread_day_of_name), ascending, into
 * *ret (malloc'ed; NULL when none). 0 or -errno. */
int aread_days(int dirfd, int64_t **ret, size_t *ret_n);

#endif
