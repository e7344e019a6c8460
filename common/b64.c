/* b64: strict base64 over OpenSSL's EVP_EncodeBlock and EVP_DecodeBlock.
 *
 * EVP_DecodeBlock is lenient (it trims whitespace at both ends and reads '='
 * anywhere as zero bits), so the input is checked here first; both calls take
 * int lengths, so large buffers go through in chunks. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "b64.h"

/* Multiples of 3 input bytes and 4 characters, far below INT_MAX. */
#define B64_ENC_CHUNK ((size_t)3 << 28)
#define B64_DEC_CHUNK ((size_t)1 << 30)

static inline bool
b64_char_ok(unsigned char c)
{
	/* c | 0x20 folds 'A'..'Z' onto 'a'..'z' and nothing else onto them. */
	return (unsigned char)((c | 0x20) - 'a') < 26 || (unsigned char)(c - '0') < 10 ||
	       c == '+' || c == '/';
}

/* Returns the number of padding characters (0 to 2), or -EINVAL. */
static int
b64_check(const char *in, size_t len)
{
	size_t pad = 0;

	if (len % 4 != 0)
		return -EINVAL;
	if (len > 0 && in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++) {
		if (!b64_char_ok((unsigned char)in[i]))
			return -EINVAL;
	}
	return (int)pad;
}

int
b64_decode_to(const char *in, size_t len, void *out, size_t *ret_len)
{
	unsigned char *o = out;
	size_t done = 0;
	int pad = b64_check(in, len);

	if (pad < 0)
		return pad;
	while (done < len) {
		size_t n = len - done < B64_DEC_CHUNK ? len - done : B64_DEC_CHUNK;

		if (EVP_DecodeBlock(o + done / 4 * 3, (const unsigned char *)in + done, (int)n) < 0)
			return -EINVAL;
		done += n;
	}
	/* '=' decodes as zero bits: what it covers must be zero as well, so
	 * that every byte string has exactly one encoding. */
	if (pad > 0) {
		size_t end = len / 4 * 3;

		if (o[end - 1] != 0 || (pad == 2 && o[end - 2] != 0))
			return -EINVAL;
	}
	*ret_len = len / 4 * 3 - (size_t)pad;
	return 0;
}

int
b64_decode(const char *in, size_t len, void **ret_out, size_t *ret_len)
{
	size_t n;
	/* One spare byte so that an empty result is still a valid pointer. */
	void *out = malloc(B64_DECODED_MAX(len) + 1);
	int r;

	if (out == NULL)
		return -ENOMEM;
	r = b64_decode_to(in, len, out, &n);
	if (r < 0)
		goto free_out;
	*ret_out = out;
	*ret_len = n;
	return 0;

free_out:
	free(out);
	return r;
}

int
b64_encode(const void *in, size_t len, char **ret_out, size_t *ret_len)
{
	const unsigned char *p = in;
	size_t done = 0;
	char *out;

	if (len > (SIZE_MAX / 4 - 1) * 3)
		return -EOVERFLOW;
	out = malloc(B64_ENCODED_LEN(len) + 1);
	if (out == NULL)
		return -ENOMEM;
	out[0] = '\0';
	while (done < len) {
		size_t n = len - done < B64_ENC_CHUNK ? len - done : B64_ENC_CHUNK;

		/* Writes a NUL after each chunk, which the next one overwrites. */
		EVP_EncodeBlock((unsigned char *)out + done / 3 * 4, p + done, (int)n);
		done += n;
	}
	*ret_out = out;
	*ret_len = B64_ENCODED_LEN(len);
	return 0;
}
