/* b64: standard base64 (RFC 4648 section 4, with padding) over OpenSSL.
 *
 * Decoding is strict: the length is a multiple of 4, every character is in the
 * alphabet, '=' appears only as the last one or two characters, the unused bits
 * of the last group are zero, and whitespace is refused. */
#ifndef VIGIL_B64_H
#define VIGIL_B64_H

#include <stddef.h>

/* Characters b64 encoding n bytes produces, without the NUL. */
#define B64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)
/* Bytes decoding n characters can produce at most (padding makes it less). */
#define B64_DECODED_MAX(n) ((n) / 4 * 3)

/* *ret_out is malloc'ed, NUL-terminated, without newlines. -ENOMEM, -EOVERFLOW. */
int b64_encode(const void *in, size_t len, char **ret_out, size_t *ret_len);

/* *ret_out is malloc'ed (never NULL, even for an empty result). -EINVAL for
 * input that is not strict base64, -ENOMEM. */
int b64_decode(const char *in, size_t len, void **ret_out, size_t *ret_len);

/* Decodes into out, which holds B64_DECODED_MAX(len) bytes; out's content is
 * unspecified on failure. -EINVAL as b64_decode. */
int b64_decode_to(const char *in, size_t len, void *out, size_t *ret_len);

#endif
