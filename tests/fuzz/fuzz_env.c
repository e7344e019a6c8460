/* fuzz_env: libFuzzer target for the envelope codec. Each input is decoded as
 * JSON and as MessagePack; a decoded envelope is encoded again in both
 * encodings and freed. Leaks, overreads and undefined behaviour are caught by
 * the sanitizers. Each encoding must also decode again to the same type
 * (env.h's promise; corpus/env/nul-key.msgpack once broke it). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
round_trip(const struct env *env)
{
	static const enum env_enc encs[] = { ENV_JSON, ENV_MSGPACK };

	for (int i = 0; i < 2; i++) {
		struct env *again = NULL;
		char *buf = NULL, err[256];
		size_t len;
		int r = env_encode(env, encs[i], &buf, &len);

		if (r == -ENOMEM)
			continue;
		if (r < 0)
			__builtin_trap();
		/* What the codec wrote, it reads back. */
		if (env_decode(buf, len, encs[i], &again, err, sizeof(err)) != 0)
			__builtin_trap();
		if (strcmp(env_type(again), env_type(env)) != 0)
			__builtin_trap();
		env_free(again);
		free(buf);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum env_enc encs[] = { ENV_JSON, ENV_MSGPACK };

	for (int i = 0; i < 2; i++) {
		struct env *env = NULL;
		char err[256] = "";
		int r = env_decode(data, size, encs[i], &env, err, sizeof(err));

		if (r == 0) {
			round_trip(env);
			env_free(env);
		} else if (r != -EBADMSG && r != -ENOMEM) {
			__builtin_trap();
		}
	}
	return 0;
}
