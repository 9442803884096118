// One attention head for one query over an f16 KV cache.
//
// The arithmetic is the reference engine's: the query is rounded to f16, each
// score is a sum over the head dimension in double of float products taken in
// order; the softmax uses the vectorised exp evaluated lane by lane and sums
// in groups of four; the weights are rounded to f16 and each output element
// is an ordered double sum over positions. Keys are stored transposed (one row
// per head dimension) so that eight positions are scored side by side, one per
// lane, each lane keeping the sequential order; values are stored by position
// so that eight output elements are summed side by side.

#include "plexus_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline float bits_to_float(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static inline uint32_t float_to_bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

float plx_exp(float x) {
    const float r = 0x1.8p23f;
    float z = x * 0x1.715476p+0f + r;
    float n = z - r;
    float b = (x - n * 0x1.62e4p-1f) - n * 0x1.7f7d1cp-20f;
    uint32_t e = float_to_bits(z) << 23;
    float k = bits_to_float(e + float_to_bits(1.0f));
    float u = b * b;
    float j = ((0x1.0e4020p-7f * b + 0x1.573e2ep-5f) * u + (0x1.555e66p-3f * b + 0x1.fffdb6p-2f)) * u + 0x1.ffffecp-1f * b;
    if (!(fabsf(n) > 126)) return j * k + k;
    uint32_t g = n <= 0 ? 0x82000000u : 0;
    float s1 = bits_to_float(g + 0x7f000000u);
    float s2 = bits_to_float(e - g);
    if (fabsf(n) > 192) return s1 * s1;
    return (s2 * j + s2) * s1;
}

float plx_silu(float x) { return x / (1 + plx_exp(0 - x)); }

#if defined(__x86_64__)
// plx_exp on eight lanes: the same operations lane by lane.
__attribute__((target("avx2,f16c"))) static inline __m256 exp8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    __m256 z = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(0x1.715476p+0f)), r);
    __m256 n = _mm256_sub_ps(z, r);
    __m256 b = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0x1.62e4p-1f))),
                             _mm256_mul_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f)));
    __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    __m256 u = _mm256_mul_ps(b, b);
    __m256 j = _mm256_add_ps(
        _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0x1.0e4020p-7f), b),
                                                                _mm256_set1_ps(0x1.573e2ep-5f)),
                                                  u),
                                    _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0x1.555e66p-3f), b),
                                                  _mm256_set1_ps(0x1.fffdb6p-2f))),
                      u),
        _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    __m256 absn = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    __m256 normal = _mm256_add_ps(_mm256_mul_ps(j, k), k);
    __m256 big = _mm256_cmp_ps(absn, _mm256_set1_ps(126), _CMP_GT_OQ);
    if (_mm256_movemask_ps(big) == 0) return normal;
    __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                 _mm256_set1_epi32((int)0x82000000u));
    __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    __m256 huge = _mm256_mul_ps(s1, s1);
    __m256 mid = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(s2, j), s2), s1);
    __m256 veryBig = _mm256_cmp_ps(absn, _mm256_set1_ps(192), _CMP_GT_OQ);
    __m256 special = _mm256_blendv_ps(mid, huge, veryBig);
    return _mm256_blendv_ps(normal, special, big);
}

__attribute__((target("avx2,f16c"))) static int silu_mul_avx2(float *gate, const float *up, int n) {
    int i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    return i;
}

__attribute__((target("avx2,f16c"))) static int to_half_avx2(const float *x, uint16_t *h, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    }
    return i;
}

__attribute__((target("avx2,f16c"))) static int round_half_avx2(float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    return i;
}

static int have_f16c(void) {
    static int cached = -1;
    if (cached < 0) cached = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) ? 1 : 0;
    return cached;
}
#endif

void plx_silu_mul(float *gate, const float *up, int n, int level) {
    int i = 0;
#if defined(__x86_64__)
    if (level > 0 && have_f16c()) i = silu_mul_avx2(gate, up, n);
#endif
    (void)level;
    for (; i < n; i++) gate[i] = plx_silu(gate[i]) * up[i];
}

void plx_to_half(const float *x, uint16_t *h, int n, int level) {
    int i = 0;
#if defined(__x86_64__)
    if (level > 0 && have_f16c()) i = to_half_avx2(x, h, n);
#endif
    (void)level;
    for (; i < n; i++) h[i] = plx_float_to_half(x[i]);
}

static void round_through_half(float *x, int n, int level) {
    int i = 0;
#if defined(__x86_64__)
    if (level > 0 && have_f16c()) i = round_half_avx2(x, n);
#endif
    (void)level;
    for (; i < n; i++) x[i] = plx_half_to_float(plx_float_to_half(x[i]));
}

static void scores_scalar(const float *qh, const uint16_t *kT, long kStride, int lo, int n, int hd, float scale, float *att) {
    for (int t = lo; t < n; t++) {
        double sum = 0;
        for (int d = 0; d < hd; d++) sum += (double)(plx_half_to_float(kT[(long)d * kStride + t]) * qh[d]);
        att[t] = (float)sum * scale;
    }
}

static void values_scalar(const float *a, const uint16_t *v, long vStride, int lo, int n, int hd, float *out) {
    for (int d = lo; d < hd; d++) {
        double sum = 0;
        for (int t = 0; t < n; t++) sum += (double)(plx_half_to_float(v[(long)t * vStride + d]) * a[t]);
        out[d] = (float)sum;
    }
}

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2,f16c")))

AVX2 static int scores_avx2(const float *qh, const uint16_t *kT, long kStride, int n, int hd, float scale, float *att) {
    int t = 0;
    // Two groups of eight positions at once: four independent sums per step.
    for (; t + 16 <= n; t += 16) {
        __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), b0 = _mm256_setzero_pd(), b1 = _mm256_setzero_pd();
        for (int d = 0; d < hd; d++) {
            const uint16_t *row = kT + (long)d * kStride + t;
            __m256 qd = _mm256_set1_ps(qh[d]);
            __m256 p = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)row)), qd);
            __m256 r = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 8))), qd);
            a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
            a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
            b0 = _mm256_add_pd(b0, _mm256_cvtps_pd(_mm256_castps256_ps128(r)));
            b1 = _mm256_add_pd(b1, _mm256_cvtps_pd(_mm256_extractf128_ps(r, 1)));
        }
        _mm256_storeu_ps(att + t, _mm256_mul_ps(_mm256_set_m128(_mm256_cvtpd_ps(a1), _mm256_cvtpd_ps(a0)), _mm256_set1_ps(scale)));
        _mm256_storeu_ps(att + t + 8, _mm256_mul_ps(_mm256_set_m128(_mm256_cvtpd_ps(b1), _mm256_cvtpd_ps(b0)), _mm256_set1_ps(scale)));
    }
    for (; t + 8 <= n; t += 8) {
        __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
        for (int d = 0; d < hd; d++) {
            __m256 k = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kT + (long)d * kStride + t)));
            __m256 p = _mm256_mul_ps(k, _mm256_set1_ps(qh[d]));
            lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
            hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
        }
        __m256 s = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
        _mm256_storeu_ps(att + t, _mm256_mul_ps(s, _mm256_set1_ps(scale)));
    }
    return t;
}

AVX2 static int values_avx2(const float *a, const uint16_t *v, long vStride, int n, int hd, float *out) {
    int d = 0;
    // Sixteen output elements at once: four independent sums per step.
    for (; d + 16 <= hd; d += 16) {
        __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), b0 = _mm256_setzero_pd(), b1 = _mm256_setzero_pd();
        for (int t = 0; t < n; t++) {
            const uint16_t *row = v + (long)t * vStride + d;
            __m256 w = _mm256_set1_ps(a[t]);
            __m256 p = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)row)), w);
            __m256 r = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 8))), w);
            a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
            a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
            b0 = _mm256_add_pd(b0, _mm256_cvtps_pd(_mm256_castps256_ps128(r)));
            b1 = _mm256_add_pd(b1, _mm256_cvtps_pd(_mm256_extractf128_ps(r, 1)));
        }
        _mm256_storeu_ps(out + d, _mm256_set_m128(_mm256_cvtpd_ps(a1), _mm256_cvtpd_ps(a0)));
        _mm256_storeu_ps(out + d + 8, _mm256_set_m128(_mm256_cvtpd_ps(b1), _mm256_cvtpd_ps(b0)));
    }
    for (; d + 8 <= hd; d += 8) {
        __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
        for (int t = 0; t < n; t++) {
            __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + (long)t * vStride + d)));
            __m256 p = _mm256_mul_ps(x, _mm256_set1_ps(a[t]));
            lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
            hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
        }
        _mm256_storeu_ps(out + d, _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)));
    }
    return d;
}

// att[t] = plx_exp(att[t] - m) for whole groups of eight (exp8 is plx_exp lane by lane).
AVX2 static int exps_avx2(float *att, int n, float m) {
    int t = 0;
    for (; t + 8 <= n; t += 8) _mm256_storeu_ps(att + t, exp8(_mm256_sub_ps(_mm256_loadu_ps(att + t), _mm256_set1_ps(m))));
    return t;
}

static int have_avx2_f16c(void) {
    static int cached = -1;
    if (cached < 0) cached = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) ? 1 : 0;
    return cached;
}
#endif

void plx_attention_head(const float *q, const uint16_t *kT, long kStride, const uint16_t *v, long vStride,
                        int n, int hd, float scale, float *att, float *qh, float *out, int vectorized) {
    for (int d = 0; d < hd; d++) qh[d] = q[d];
    round_through_half(qh, hd, vectorized);
    int done = 0;
#if defined(__x86_64__)
    if (vectorized && have_avx2_f16c()) done = scores_avx2(qh, kT, kStride, n, hd, scale, att);
#endif
    scores_scalar(qh, kT, kStride, done, n, hd, scale, att);

    float maxScore = -INFINITY;
    for (int t = 0; t < n; t++) if (att[t] > maxScore) maxScore = att[t];
    // The exponentials (eight lanes at a time where possible: the same bits), then their sum
    // in groups of four, in order.
    int exps = 0;
#if defined(__x86_64__)
    if (vectorized && have_avx2_f16c()) exps = exps_avx2(att, n, maxScore);
#endif
    for (int t = exps; t < n; t++) att[t] = plx_exp(att[t] - maxScore);
    double total = 0;
    for (int t = 0; t < n; t += 4) {
        float e[4] = {0, 0, 0, 0};
        for (int i = 0; i < 4 && t + i < n; i++) e[i] = att[t + i];
        total += (double)((e[0] + e[1]) + (e[2] + e[3]));
    }
    float inv = (float)(1 / total);
    for (int t = 0; t < n; t++) att[t] = att[t] * inv;
    round_through_half(att, n, vectorized);

    done = 0;
#if defined(__x86_64__)
    if (vectorized && have_avx2_f16c()) done = values_avx2(att, v, vStride, n, hd, out);
#endif
    values_scalar(att, v, vStride, done, n, hd, out);
}
