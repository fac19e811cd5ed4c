/* bench/bench_scram.h: the client side of SCRAM-SHA-1 (RFC 5802, no
 * channel binding) for pl-bench, with a cache of salted passwords.
 *
 * Every benchmark account has the same password and salt, so one PBKDF2
 * run serves every login: the generator then spends a few HMACs per
 * login instead of 4096 iterations, and the figure measures the server.
 * The server's own work (it keeps StoredKey and ServerKey) is the same
 * whatever the salt. */
#ifndef PL_BENCH_SCRAM_H
#define PL_BENCH_SCRAM_H

#include <stddef.h>

typedef struct pl_bench_scram pl_bench_scram;

/* A new exchange for user (a plain localpart: no ',' or '=') with a
 * random nonce. */
pl_bench_scram *pl_bench_scram_new(const char *user);
/* The same with a fixed nonce (test vectors), at most 32 characters. */
pl_bench_scram *pl_bench_scram_new_nonce(const char *user, const char *nonce);
void pl_bench_scram_free(pl_bench_scram *s);

/* client-first-message, base64 encoded for <auth/>; malloced. */
char *pl_bench_scram_first_b64(pl_bench_scram *s);

/* Takes the base64 server-first-message from <challenge/> and returns the
 * base64 client-final-message for <response/> (malloced), or NULL if the
 * challenge is malformed or does not extend our nonce. */
char *pl_bench_scram_final_b64(pl_bench_scram *s, const char *password,
                               const char *challenge_b64, size_t len);

/* 1 if the base64 server-final-message in <success/> proves the server,
 * 0 otherwise. */
int pl_bench_scram_verify_b64(pl_bench_scram *s, const char *success_b64, size_t len);

/* Base64 of data (malloced, NUL terminated). */
char *pl_bench_b64(const void *data, size_t len);

/* Decodes base64 into a malloced NUL-terminated buffer; NULL on error. */
char *pl_bench_unb64(const char *b64, size_t len, size_t *outlen);

#endif
