#ifndef PLEXUS_CED25519_H
#define PLEXUS_CED25519_H

#include <stddef.h>
#include <stdint.h>

/// Verifies `n` Ed25519 signatures at once with the cofactored equation
/// [8]( sum z_i ([s_i]B - R_i - [k_i]A_i) ) == 0, where k_i = SHA-512(R_i || A_i || M_i)
/// has been computed by the caller (64 bytes each, little-endian) and z_i are
/// 128-bit random weights supplied by the caller (16 bytes each; z_0 may be 1 when n == 1).
///
/// Arrays are packed: r[32*n], a[32*n], s[32*n], k[64*n], z[16*n].
/// Returns 1 if every signature is valid, 0 otherwise (including any s >= L
/// any R or A that is not a curve point, or any A of small order). `n` must be between 1 and 256.
/// Variable time: use only on public data.
int plx_ed25519_verify_batch(size_t n, const uint8_t *r, const uint8_t *a, const uint8_t *s,
                             const uint8_t *k, const uint8_t *z);

/// Size of a prepared public key: the odd multiples -A, -3A, ..., -15A in cached form.
#define PLX_ED25519_KEY_TABLE_BYTES 2560

/// Decodes public key `a` and writes its prepared table. Returns 1 on success,
/// 0 if `a` is not a point or has small order (such keys never verify).
int plx_ed25519_prepare_key(const uint8_t a[32], uint8_t table[PLX_ED25519_KEY_TABLE_BYTES]);

/// As `plx_ed25519_verify_batch`, with each public key given as a prepared
/// table (`tables` holds n pointers) instead of 32 bytes, skipping the
/// decoding and table building that dominate repeated keys.
int plx_ed25519_verify_batch_prepared(size_t n, const uint8_t *r, const uint8_t *const *tables,
                                      const uint8_t *s, const uint8_t *k, const uint8_t *z);

/// The generic build of `plx_ed25519_verify_batch` (for tests: the dispatcher uses it only on CPUs without BMI2/ADX).
int plx_ed25519_generic_verify_batch(size_t n, const uint8_t *r, const uint8_t *a, const uint8_t *s,
                                     const uint8_t *k, const uint8_t *z);

#endif
