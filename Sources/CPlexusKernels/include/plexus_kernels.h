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

#endif
