/* wd_table: vigild's children, by stage and worker: the table, the names
 * it answers to (a stage's: all of its processes; a worker's, "relay/1"),
 * and the workers' load (their clients), which each worker learns of the
 * others' so that the stage's limits and counts are the server's. Runs in
 * vigild only. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mp.h"
#include "wd.h"

_Static_assert(CFG_RELAY_WORKERS_MAX == BUS_WORKERS_MAX, "relay.workers fit the bus's names");

void
wd_init_children(struct wd *wd, const unsigned workers[BUS_N_STAGES])
{
	unsigned n = 0;

	for (int s = 0; s < BUS_N_STAGES; s++) {
		unsigned count = workers[s] < 1 ? 1 : workers[s];

		if (count > BUS_WORKERS_MAX || n + count > WD_MAX_CHILDREN)
			count = 1;
		wd->first[s] = n;
		wd->count[s] = count;
		for (unsigned i = 0; i < count; i++, n++) {
			struct wd_child *c = &wd->child[n];

			memset(c, 0, sizeof(*c));
			c->which = (enum bus_stage)s;
			/* One process keeps the stage's own name, as before workers. */
			c->worker = count > 1 ? (int)i : -1;
			if (count > 1)
				snprintf(c->name, sizeof(c->name), "%s/%u", bus_stage_name(s), i);
			else
				snprintf(c->name, sizeof(c->name), "%s", bus_stage_name(s));
			c->state = WD_DOWN;
			c->log_fd = -1;
			c->bus_fd = -1;
			c->listen_fd = wd->listen_fd[s];
			c->backoff_ms = WD_BACKOFF_MIN_MS;
		}
	}
	wd->n_child = n;
}

void
wd_free_children(struct wd *wd)
{
	for (unsigned i = 0; i < wd->n_child; i++) {
		struct wd_child *c = &wd->child[i];

		if (c->log_fd >= 0)
			close(c->log_fd);
		if (c->bus_fd >= 0)
			close(c->bus_fd);
		wd_bus_reset(c);
		json_decref(c->heartbeat);
		wd_log_free(c);
		memset(c, 0, sizeof(*c));
		c->log_fd = c->bus_fd = c->listen_fd = -1;
	}
	wd->n_child = 0;
}

int
wd_lookup(const struct wd *wd, const char *name, unsigned *ret_first, unsigned *ret_n)
{
	int worker, which = bus_name_parse(name, &worker);

	if (which < 0)
		return which;
	if (worker < 0) {
		*ret_first = wd->first[which];
		*ret_n = wd->count[which];
		return 0;
	}
	/* "relay/0" names a worker only where the stage has workers. */
	if (wd->count[which] < 2 || (unsigned)worker >= wd->count[which])
		return -EINVAL;
	*ret_first = wd->first[which] + (unsigned)worker;
	*ret_n = 1;
	return 0;
}

struct wd_child *
wd_child_named(struct wd *wd, const char *name)
{
	for (unsigned i = 0; i < wd->n_child; i++) {
		if (strcmp(wd->child[i].name, name) == 0)
			return &wd->child[i];
	}
	return NULL;
}

void
wd_load_send(struct wd *wd, enum bus_stage which, struct wd_child *to)
{
	unsigned first = wd->first[which], n = wd->count[which];
	msgpack_sbuffer sb;
	msgpack_packer pk;

	for (unsigned i = first; i < first + n; i++) {
		struct wd_child *w = &wd->child[i];

		if ((to != NULL && to != w) || w->bus_fd < 0)
			continue;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		bus_pack_begin(&pk, "workers.load", "vigild", w->name);
		msgpack_pack_map(&pk, 1);
		mp_pack_str(&pk, "connections");
		msgpack_pack_array(&pk, n);
		for (unsigned k = first; k < first + n; k++)
			msgpack_pack_int64(&pk, wd->child[k].state == WD_RUNNING ? wd->child[k].load
										 : 0);
		/* Queued if need be: a worker's limits count on it. */
		wd_bus_send(wd, w, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
}

void
wd_on_load(struct wd *wd, struct wd_child *c, int64_t connections)
{
	if (connections < 0 || connections == c->load)
		return;
	c->load = connections;
	if (c->worker >= 0)
		wd_load_send(wd, c->which, NULL);
}
