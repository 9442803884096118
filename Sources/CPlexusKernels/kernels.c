// Integer block sums for the quantized dot products, vectorised where the
// CPU allows and plain C elsewhere; see plexus_kernels.h for the contract.

#include "plexus_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// IEEE half to float, exact (including subnormals, infinities and NaN).
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {
            // Subnormal: normalise.
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

float plx_half_to_float(uint16_t h) { return half_to_float(h); }

static inline float load_half(const uint8_t *p) {
    return half_to_float((uint16_t)(p[0] | (p[1] << 8)));
}

// ---------------------------------------------------------------- portable

static int32_t isum_q4_1_scalar(const uint8_t *qs, const int8_t *x) {
    int32_t s = 0;
    for (int j = 0; j < 16; j++) {
        s += (int32_t)(qs[j] & 0x0f) * x[j];
        s += (int32_t)(qs[j] >> 4) * x[j + 16];
    }
    return s;
}

static int32_t isum_q4_0_scalar(const uint8_t *qs, const int8_t *x) {
    int32_t s = 0;
    for (int j = 0; j < 16; j++) {
        s += ((int32_t)(qs[j] & 0x0f) - 8) * x[j];
        s += ((int32_t)(qs[j] >> 4) - 8) * x[j + 16];
    }
    return s;
}

static int32_t isum_q8_0_scalar(const int8_t *w, const int8_t *x) {
    int32_t s = 0;
    for (int j = 0; j < 32; j++) s += (int32_t)w[j] * x[j];
    return s;
}

static float dot_q4_1_scalar(const uint8_t *row, const int8_t *xq, const float *xd, const float *xs, int blocks) {
    float sum = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *p = row + 20 * b;
        float d = load_half(p), m = load_half(p + 2);
        int32_t si = isum_q4_1_scalar(p + 4, xq + 32 * b);
        float t = (d * xd[b]) * (float)si;
        float u = m * xs[b];
        sum = sum + (t + u);
    }
    return sum;
}

static float dot_q4_0_scalar(const uint8_t *row, const int8_t *xq, const float *xd, int blocks) {
    float sum = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *p = row + 18 * b;
        float d = load_half(p);
        float t = ((float)isum_q4_0_scalar(p + 2, xq + 32 * b) * d) * xd[b];
        sum = sum + t;
    }
    return sum;
}

static float dot_q8_0_scalar(const uint8_t *row, const int8_t *xq, const float *xd, int blocks) {
    float sum = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *p = row + 34 * b;
        float d = load_half(p);
        float t = (float)isum_q8_0_scalar((const int8_t *)(p + 2), xq + 32 * b) * (d * xd[b]);
        sum = sum + t;
    }
    return sum;
}

// ---------------------------------------------------------------- AVX2

#if defined(__x86_64__)
__attribute__((target("avx2")))
static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// Unsigned 4-bit weights (0..15) times signed bytes, summed exactly.
__attribute__((target("avx2")))
static inline int32_t isum_nibbles_avx2(const uint8_t *qs, const int8_t *x) {
    __m128i packed = _mm_loadu_si128((const __m128i *)qs);
    __m256i w = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
    w = _mm256_and_si256(w, _mm256_set1_epi8(0x0f));
    __m256i y = _mm256_loadu_si256((const __m256i *)x);
    // maddubs: u8 x s8 pairs into s16; |15*128*2| fits, so no saturation.
    __m256i p16 = _mm256_maddubs_epi16(w, y);
    __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    return hsum_i32(p32);
}

__attribute__((target("avx2")))
static inline int32_t isum_sum_x_avx2(const int8_t *x) {
    __m256i y = _mm256_loadu_si256((const __m256i *)x);
    __m256i p16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), y);
    return hsum_i32(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

__attribute__((target("avx2")))
static float dot_q4_1_avx2(const uint8_t *row, const int8_t *xq, const float *xd, const float *xs, int blocks) {
    float sum = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *p = row + 20 * b;
        float d = load_half(p), m = load_half(p + 2);
        int32_t si = isum_nibbles_avx2(p + 4, xq + 32 * b);
        float t = (d * xd[b]) * (float)si;
        float u = m * xs[b];
        sum = sum + (t + u);
    }
    return sum;
}

__attribute__((target("avx2")))
static float dot_q4_0_avx2(const uint8_t *row, const int8_t *xq, const float *xd, int blocks) {
    float sum = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *p = row + 18 * b;
        float d = load_half(p);
        int32_t si = isum_nibbles_avx2(p + 2, xq + 32 * b) - 8 * isum_sum_x_avx2(xq + 32 * b);
        float t = ((float)si * d) * xd[b];
        sum = sum + t;
    }
    return sum;
}

__attribute__((target("avx2")))
static float dot_q8_0_avx2(const uint8_t *row, const int8_t *xq, const float *xd, int blocks) {
    float sum = 0;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *p = row + 34 * b;
        float d = load_half(p);
        __m256i w = _mm256_loadu_si256((const __m256i *)(p + 2));
        __m256i y = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
        // |w| as unsigned times y with w's sign moved onto y: exact products.
        __m256i aw = _mm256_sign_epi8(w, w);
        __m256i sy = _mm256_sign_epi8(y, w);
        __m256i p32 = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sy), _mm256_set1_epi16(1));
        float t = (float)hsum_i32(p32) * (d * xd[b]);
        sum = sum + t;
    }
    return sum;
}

static int have_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached;
}
#else
static int have_avx2(void) { return 0; }
#endif

int plx_kernels_vectorized(void) { return have_avx2(); }

float plx_dot_q4_1_q8_1(const uint8_t *row, const int8_t *xq, const float *xd, const float *xs, int blocks) {
#if defined(__x86_64__)
    if (have_avx2()) return dot_q4_1_avx2(row, xq, xd, xs, blocks);
#endif
    return dot_q4_1_scalar(row, xq, xd, xs, blocks);
}

float plx_dot_q4_0_q8_0(const uint8_t *row, const int8_t *xq, const float *xd, int blocks) {
#if defined(__x86_64__)
    if (have_avx2()) return dot_q4_0_avx2(row, xq, xd, blocks);
#endif
    return dot_q4_0_scalar(row, xq, xd, blocks);
}

float plx_dot_q8_0_q8_0(const uint8_t *row, const int8_t *xq, const float *xd, int blocks) {
#if defined(__x86_64__)
    if (have_avx2()) return dot_q8_0_avx2(row, xq, xd, blocks);
#endif
    return dot_q8_0_scalar(row, xq, xd, blocks);
}
