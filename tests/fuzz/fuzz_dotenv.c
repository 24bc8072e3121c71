/* libFuzzer target for the .env parser (untrusted text). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/dotenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dotenv env = DOTENV_INIT;
	struct ops_err err = OPS_ERR_INIT;

	if (dotenv_parse((const char *)data, size, "fuzz", &env, &err) == 0) {
		/* every entry must be a well-formed key with a C string */
		for (size_t i = 0; i < env.n; i++)
			if (env.v[i].key[0] == '\0' ||
			    dotenv_get(&env, env.v[i].key) == NULL)
				__builtin_trap();
	}
	dotenv_release(&env);
	return 0;
}
