// Activation quantization, f16 rounding, and the matrix product for weights
// that are not repacked (packed.c has the one for repacked weights).

#include "plexus_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

static inline float round_half(float f) { return plx_half_to_float(plx_float_to_half(f)); }

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

// ---------------------------------------------------------------- unpacked rows

// Matrices whose row count is not a multiple of eight are not repacked; they
// are rare (none in the default model), so they use the one-row kernels.
void plx_matmul(int type, const uint8_t *w, long rowBytes, int blocks, int rowLo, int rowHi,
                const int8_t *xq, const float *xd, const float *xs, int tokens,
                float *out, long outStride) {
    long cols = 32L * blocks;
    for (int r = rowLo; r < rowHi; r++) {
        const uint8_t *row = w + (long)r * rowBytes;
        for (int t = 0; t < tokens; t++) {
            const int8_t *q = xq + t * cols;
            const float *d = xd + (long)t * blocks;
            float v;
            if (type == PLX_Q4_1) v = plx_dot_q4_1_q8_1(row, q, d, xs + (long)t * blocks, blocks);
            else if (type == PLX_Q4_0) v = plx_dot_q4_0_q8_0(row, q, d, blocks);
            else v = plx_dot_q8_0_q8_0(row, q, d, blocks);
            out[(long)t * outStride + r] = v;
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
