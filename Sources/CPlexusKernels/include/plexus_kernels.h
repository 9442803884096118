#ifndef PLEXUS_KERNELS_H
#define PLEXUS_KERNELS_H

#include <stdint.h>

/// Dot products of one quantized weight row (`blocks` blocks of 32) with an
/// activation vector quantized to 8 bits (`xq`, per-block scales `xd`, and for
/// Q8_1 the per-block `xs` = d * sum(q)).
///
/// The integer sum of each block is exact however it is computed (AVX2 when
/// the CPU has it, plain C otherwise); the float accumulation over blocks is
/// sequential with a fixed grouping and no fused multiply-add, so every path
/// gives the same bits:
///   Q4_1: sum += (dw * dx) * isum + mw * xs
///   Q4_0: sum += isum * dw * dx
///   Q8_0: sum += isum * (dw * dx)
float plx_dot_q4_1_q8_1(const uint8_t *row, const int8_t *xq, const float *xd, const float *xs, int blocks);
float plx_dot_q4_0_q8_0(const uint8_t *row, const int8_t *xq, const float *xd, int blocks);
float plx_dot_q8_0_q8_0(const uint8_t *row, const int8_t *xq, const float *xd, int blocks);

/// 1 if the vectorised integer kernels are in use.
int plx_kernels_vectorized(void);

/// Weight types of `plx_matmul`.
enum { PLX_Q8_0 = 0, PLX_Q4_0 = 1, PLX_Q4_1 = 2 };

/// IEEE half conversions (float to half rounds to nearest, ties to even).
float plx_half_to_float(uint16_t h);
uint16_t plx_float_to_half(float f);

/// Quantizes `n` floats (a multiple of 32) into blocks of 8-bit values `q`
/// with per-block scales `d` = f16(max|x| / 127) and, when `s` is not NULL,
/// `s` = f16(d * sum(q)), and when `isum` is not NULL the exact sum(q) of
/// each block; values round half away from zero.
void plx_quantize_q8(const float *x, int n, int8_t *q, float *d, float *s, int32_t *isum);

/// out[t * outStride + r] = W[r] . X[t] for rows r in [rowLo, rowHi) and
/// tokens t in [0, tokens): `w` holds rows of `rowBytes` bytes (`blocks`
/// blocks each); token t's quantized activations start at xq + t*32*blocks,
/// xd + t*blocks and xs + t*blocks (xs only for Q4_1), with the one-row
/// kernels above. For matrices that are not repacked (see plx_matmul_packed).
void plx_matmul(int type, const uint8_t *w, long rowBytes, int blocks, int rowLo, int rowHi,
                const int8_t *xq, const float *xd, const float *xs, int tokens,
                float *out, long outStride);

/// The reference engine's vectorised exp (no fused multiply-add), one lane,
/// and SiLU built on it.
float plx_exp(float x);
float plx_silu(float x);

/// One attention head for the query `q` (length hd) over positions [0, n):
/// key element d of position t at kT[d * kStride + t], value element d of
/// position t at v[t * vStride + d] (both f16). `att` (n floats) and `qh` (hd
/// floats) are scratch; the result goes to `out` (hd floats).
void plx_attention_head(const float *q, const uint16_t *kT, long kStride, const uint16_t *v, long vStride,
                        int n, int hd, float scale, float *att, float *qh, float *out, int vectorized);

/// Weights repacked in groups of eight rows (see packed.c): bytes of one group.
long plx_packed_group_bytes(int type, int blocks);
/// Repacks `groups` groups of eight rows of `rowBytes` bytes from `src` into `dst`.
void plx_repack8(int type, const uint8_t *src, long rowBytes, int blocks, int groups, uint8_t *dst);
/// Row `row` of a packed matrix, dequantized into `out` (32 * blocks floats).
void plx_unpack_row(int type, const uint8_t *packed, int blocks, int row, float *out);
/// Like plx_matmul over a packed matrix; rowLo and rowHi are multiples of 8.
/// `xsum` holds each activation block's exact integer sum (for Q4_0). `level`
/// caps the instruction set used: 0 portable, 1 AVX2, 2 AVX-VNNI; every level
/// gives the same bits.
void plx_matmul_packed(int type, const uint8_t *packed, int blocks, int rowLo, int rowHi, const int8_t *xq,
                       const float *xd, const float *xs, const int32_t *xsum, int tokens, float *out, long outStride,
                       int level);
/// The highest level this CPU supports.
int plx_cpu_level(void);

/// gate[i] = silu(gate[i]) * up[i]; `level` 0 forces the portable path (same bits).
void plx_silu_mul(float *gate, const float *up, int n, int level);
/// h[i] = f16(x[i]); `level` 0 forces the portable path (same bits).
void plx_to_half(const float *x, uint16_t *h, int n, int level);
/// plx_quantize_q8 with `level` 0 forcing the portable path (same bits).
void plx_quantize_q8_level(const float *x, int n, int8_t *q, float *d, float *s, int32_t *isum, int level);

/// A hint to the CPU inside a spin-wait loop.
void plx_cpu_relax(void);

#endif
