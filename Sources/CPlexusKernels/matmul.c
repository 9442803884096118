// Quantized matrix times a batch of quantized vectors, eight rows at a time.
//
// Each output is the same sequence of float operations as the one-row kernels
// in kernels.c (sequential over blocks, no fused multiply-add); the vector path
// only computes eight rows side by side, one row per lane, so the bits do not
// depend on the path, the batch size or how rows are split between threads.

#include "plexus_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline float h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {
            int e = -1;
            do { mant <<= 1; e++; } while ((mant & 0x400) == 0);
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float plx_half_to_float(uint16_t h) { return h2f(h); }

uint16_t plx_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));  // NaN stays NaN
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00);  // rounds to infinity
    if (ax >= 0x38800000) {  // normal half
        uint32_t h = (ax - 0x38000000) >> 13;
        uint32_t rest = ax & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    if (ax < 0x33000000) return (uint16_t)sign;  // at most half the smallest subnormal: zero
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // 14 ... 24
    uint32_t h = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static inline float round_half(float f) { return h2f(plx_float_to_half(f)); }

// ---------------------------------------------------------------- quantize

static void quantize_scalar(const float *x, int n, int8_t *q, float *d, float *s, int32_t *isum) {
    for (int b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(xb[j]);
            if (a > amax) amax = a;
        }
        float scale = amax / 127;
        float inv = scale != 0 ? 1 / scale : 0;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            // Round half away from zero, exactly as roundf (|v| <= 127, so the
            // integer conversion truncates exactly).
            float v = xb[j] * inv;
            float t = (float)(int32_t)v;
            float r = v - t;
            if (r >= 0.5f) t += 1;
            else if (r <= -0.5f) t -= 1;
            int8_t qi = (int8_t)t;
            q[32 * b + j] = qi;
            sum += qi;
        }
        d[b] = round_half(scale);
        if (s) s[b] = round_half((float)sum * scale);
        if (isum) isum[b] = sum;
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) static void quantize_avx2(const float *x, int n, int8_t *q, float *d, float *s,
                                                              int32_t *isum) {
    const __m256 signMask = _mm256_set1_ps(-0.0f);
    const __m256 half = _mm256_set1_ps(0.5f), mhalf = _mm256_set1_ps(-0.5f), one = _mm256_set1_ps(1.0f);
    for (int b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(xb + 8 * i);
            m = _mm256_max_ps(_mm256_andnot_ps(signMask, v[i]), m);  // a NaN input is ignored, as in the scalar loop
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float scale = amax / 127;
        float inv = scale != 0 ? 1 / scale : 0;
        __m256 vinv = _mm256_set1_ps(inv);
        __m256i qi[4];
        __m256i total = _mm256_setzero_si256();
        for (int i = 0; i < 4; i++) {
            __m256 y = _mm256_mul_ps(v[i], vinv);
            __m256 t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256 r = _mm256_sub_ps(y, t);
            t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(r, half, _CMP_GE_OQ), one));
            t = _mm256_sub_ps(t, _mm256_and_ps(_mm256_cmp_ps(r, mhalf, _CMP_LE_OQ), one));
            qi[i] = _mm256_cvttps_epi32(t);
            total = _mm256_add_epi32(total, qi[i]);
        }
        // Pack 32 int32 into 32 int8 in order.
        __m256i p01 = _mm256_packs_epi32(qi[0], qi[1]), p23 = _mm256_packs_epi32(qi[2], qi[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + 32 * b), p);
        __m128i t4 = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
        t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0x4e));
        t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0xb1));
        int32_t sum = _mm_cvtsi128_si32(t4);
        d[b] = round_half(scale);
        if (s) s[b] = round_half((float)sum * scale);
        if (isum) isum[b] = sum;
    }
}

static int have_avx2_quant(void) {
    static int cached = -1;
    if (cached < 0) cached = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) ? 1 : 0;
    return cached;
}
#endif

void plx_quantize_q8_level(const float *x, int n, int8_t *q, float *d, float *s, int32_t *isum, int level) {
#if defined(__x86_64__)
    if (level > 0 && have_avx2_quant()) { quantize_avx2(x, n, q, d, s, isum); return; }
#endif
    (void)level;
    quantize_scalar(x, n, q, d, s, isum);
}

void plx_quantize_q8(const float *x, int n, int8_t *q, float *d, float *s, int32_t *isum) {
    plx_quantize_q8_level(x, n, q, d, s, isum, 2);
}

// ---------------------------------------------------------------- one row

static inline int32_t isum_nib(const uint8_t *qs, const int8_t *x, int offset) {
    int32_t s = 0;
    for (int j = 0; j < 16; j++) {
        s += ((int32_t)(qs[j] & 0x0f) - offset) * x[j];
        s += ((int32_t)(qs[j] >> 4) - offset) * x[j + 16];
    }
    return s;
}

static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static float row_dot(int type, const uint8_t *row, int blocks, const int8_t *xq, const float *xd, const float *xs) {
    float sum = 0;
    for (int b = 0; b < blocks; b++) {
        const int8_t *y = xq + 32 * b;
        if (type == PLX_Q4_1) {
            const uint8_t *p = row + 20 * b;
            float t = (h2f(ld16(p)) * xd[b]) * (float)isum_nib(p + 4, y, 0);
            float u = h2f(ld16(p + 2)) * xs[b];
            sum = sum + (t + u);
        } else if (type == PLX_Q4_0) {
            const uint8_t *p = row + 18 * b;
            float t = ((float)isum_nib(p + 2, y, 8) * h2f(ld16(p))) * xd[b];
            sum = sum + t;
        } else {
            const uint8_t *p = row + 34 * b;
            const int8_t *w = (const int8_t *)(p + 2);
            int32_t si = 0;
            for (int j = 0; j < 32; j++) si += (int32_t)w[j] * y[j];
            float t = (float)si * (h2f(ld16(p)) * xd[b]);
            sum = sum + t;
        }
    }
    return sum;
}

// ---------------------------------------------------------------- AVX2, 8 rows

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2,f16c")))

// Eight vectors of eight int32 into one vector of their eight totals.
AVX2 static inline __m256i reduce8(__m256i v0, __m256i v1, __m256i v2, __m256i v3,
                                   __m256i v4, __m256i v5, __m256i v6, __m256i v7) {
    __m256i a = _mm256_hadd_epi32(v0, v1), b = _mm256_hadd_epi32(v2, v3);
    __m256i c = _mm256_hadd_epi32(v4, v5), e = _mm256_hadd_epi32(v6, v7);
    __m256i ab = _mm256_hadd_epi32(a, b), ce = _mm256_hadd_epi32(c, e);
    // ab = [r0 r1 r2 r3 | r0 r1 r2 r3] (low and high halves), likewise ce for r4..r7.
    __m256i lo = _mm256_permute2x128_si256(ab, ce, 0x20);
    __m256i hi = _mm256_permute2x128_si256(ab, ce, 0x31);
    return _mm256_add_epi32(lo, hi);
}

AVX2 static inline __m256i nib_madd(const uint8_t *qs, __m256i y) {
    __m128i packed = _mm_loadu_si128((const __m128i *)qs);
    __m256i w = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
    w = _mm256_and_si256(w, _mm256_set1_epi8(0x0f));
    // u8 (0..15) x s8 pairs into s16: at most 2*15*128, no saturation.
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, y), _mm256_set1_epi16(1));
}

AVX2 static inline __m256i q8_madd(const int8_t *w8, __m256i y) {
    __m256i w = _mm256_loadu_si256((const __m256i *)w8);
    __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

AVX2 static inline __m256 halves8(const uint8_t *base, long stride) {
    __m128i h = _mm_setr_epi16((short)ld16(base), (short)ld16(base + stride), (short)ld16(base + 2 * stride),
                               (short)ld16(base + 3 * stride), (short)ld16(base + 4 * stride),
                               (short)ld16(base + 5 * stride), (short)ld16(base + 6 * stride),
                               (short)ld16(base + 7 * stride));
    return _mm256_cvtph_ps(h);
}

AVX2 static void rows8_avx2(int type, const uint8_t *w, long rb, int blocks,
                            const int8_t *xq, const float *xd, const float *xs, float *out) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        __m256i y = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
        if (type == PLX_Q4_1) {
            const uint8_t *p = w + 20 * b;
            __m256i s = reduce8(nib_madd(p + 4, y), nib_madd(p + rb + 4, y), nib_madd(p + 2 * rb + 4, y),
                                nib_madd(p + 3 * rb + 4, y), nib_madd(p + 4 * rb + 4, y), nib_madd(p + 5 * rb + 4, y),
                                nib_madd(p + 6 * rb + 4, y), nib_madd(p + 7 * rb + 4, y));
            __m256 t = _mm256_mul_ps(_mm256_mul_ps(halves8(p, rb), _mm256_set1_ps(xd[b])), _mm256_cvtepi32_ps(s));
            __m256 u = _mm256_mul_ps(halves8(p + 2, rb), _mm256_set1_ps(xs[b]));
            acc = _mm256_add_ps(acc, _mm256_add_ps(t, u));
        } else if (type == PLX_Q4_0) {
            const uint8_t *p = w + 18 * b;
            __m256i s = reduce8(nib_madd(p + 2, y), nib_madd(p + rb + 2, y), nib_madd(p + 2 * rb + 2, y),
                                nib_madd(p + 3 * rb + 2, y), nib_madd(p + 4 * rb + 2, y), nib_madd(p + 5 * rb + 2, y),
                                nib_madd(p + 6 * rb + 2, y), nib_madd(p + 7 * rb + 2, y));
            // Σ(n − 8)·y = Σn·y − 8·Σy.
            __m256i sy = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), y), _mm256_set1_epi16(1));
            __m256i ysum = reduce8(sy, sy, sy, sy, sy, sy, sy, sy);
            s = _mm256_sub_epi32(s, _mm256_slli_epi32(ysum, 3));
            __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), halves8(p, rb)), _mm256_set1_ps(xd[b]));
            acc = _mm256_add_ps(acc, t);
        } else {
            const uint8_t *p = w + 34 * b;
            __m256i s = reduce8(q8_madd((const int8_t *)(p + 2), y), q8_madd((const int8_t *)(p + rb + 2), y),
                                q8_madd((const int8_t *)(p + 2 * rb + 2), y), q8_madd((const int8_t *)(p + 3 * rb + 2), y),
                                q8_madd((const int8_t *)(p + 4 * rb + 2), y), q8_madd((const int8_t *)(p + 5 * rb + 2), y),
                                q8_madd((const int8_t *)(p + 6 * rb + 2), y), q8_madd((const int8_t *)(p + 7 * rb + 2), y));
            __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(halves8(p, rb), _mm256_set1_ps(xd[b])));
            acc = _mm256_add_ps(acc, t);
        }
    }
    _mm256_storeu_ps(out, acc);
}

static int have_avx2_f16c(void) {
    static int cached = -1;
    if (cached < 0) cached = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) ? 1 : 0;
    return cached;
}
#endif

void plx_matmul(int type, const uint8_t *w, long rowBytes, int blocks, int rowLo, int rowHi,
                const int8_t *xq, const float *xd, const float *xs, int tokens,
                float *out, long outStride, int vectorized) {
    int cols = 32 * blocks;
    int r = rowLo;
#if defined(__x86_64__)
    if (vectorized && have_avx2_f16c()) {
        float tmp[8];
        for (; r + 8 <= rowHi; r += 8) {
            const uint8_t *wr = w + (long)r * rowBytes;
            for (int t = 0; t < tokens; t++) {
                rows8_avx2(type, wr, rowBytes, blocks, xq + (long)t * cols, xd + (long)t * blocks,
                           xs ? xs + (long)t * blocks : NULL, tmp);
                memcpy(out + (long)t * outStride + r, tmp, sizeof tmp);
            }
        }
    }
#else
    (void)vectorized;
#endif
    for (; r < rowHi; r++) {
        const uint8_t *wr = w + (long)r * rowBytes;
        for (int t = 0; t < tokens; t++) {
            out[(long)t * outStride + r] = row_dot(type, wr, blocks, xq + (long)t * cols, xd + (long)t * blocks,
                                                   xs ? xs + (long)t * blocks : NULL);
        }
    }
}

void plx_cpu_relax(void) {
#if defined(__x86_64__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
