// Quantized weights repacked eight rows at a time, and the matrix kernels over them.
//
// In a group of eight rows, block b holds the eight rows' f16 scales side by
// side (d[8], and for Q4_1 m[8]), then the quant bytes in chunks of 32: lane r
// (four bytes) of chunk c holds bytes 4c..4c+3 of row r's block. One vector
// instruction then multiplies four weights of each of the eight rows by the
// same four activations, so every lane accumulates its own row's exact
// integer block sum with no horizontal reduction, and the eight scales load
// as one vector. The float accumulation is then the one-row kernel's, one
// row per lane, so every path (portable, AVX2, AVX-VNNI) gives the same bits
// as plx_dot_* on the original rows.

#include "plexus_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static int block_bytes(int type) { return type == PLX_Q4_1 ? 20 : type == PLX_Q4_0 ? 18 : 34; }
static int header_bytes(int type) { return type == PLX_Q4_1 ? 32 : 16; }
static int quant_offset(int type) { return type == PLX_Q4_1 ? 4 : 2; }
static int chunk_count(int type) { return type == PLX_Q8_0 ? 8 : 4; }

long plx_packed_group_bytes(int type, int blocks) { return 8L * block_bytes(type) * blocks; }

void plx_repack8(int type, const uint8_t *src, long rowBytes, int blocks, int groups, uint8_t *dst) {
    int bb = block_bytes(type), hb = header_bytes(type), qo = quant_offset(type), nc = chunk_count(type);
    for (int g = 0; g < groups; g++) {
        for (int b = 0; b < blocks; b++) {
            uint8_t *o = dst + ((long)g * blocks + b) * 8 * bb;
            for (int r = 0; r < 8; r++) {
                const uint8_t *p = src + (long)(8 * g + r) * rowBytes + (long)b * bb;
                memcpy(o + 2 * r, p, 2);
                if (type == PLX_Q4_1) memcpy(o + 16 + 2 * r, p + 2, 2);
                for (int c = 0; c < nc; c++) memcpy(o + hb + 32 * c + 4 * r, p + qo + 4 * c, 4);
            }
        }
    }
}

// Quant byte j of lane r in a packed block.
static inline uint8_t qbyte(const uint8_t *o, int hb, int r, int j) { return o[hb + 32 * (j / 4) + 4 * r + (j % 4)]; }

void plx_unpack_row(int type, const uint8_t *packed, int blocks, int row, float *out) {
    int bb = block_bytes(type), hb = header_bytes(type), r = row % 8;
    const uint8_t *group = packed + (long)(row / 8) * 8 * bb * blocks;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *o = group + (long)b * 8 * bb;
        float d = plx_half_to_float(ld16(o + 2 * r));
        float *y = out + 32 * b;
        if (type == PLX_Q8_0) {
            for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)qbyte(o, hb, r, j);
        } else if (type == PLX_Q4_0) {
            for (int j = 0; j < 16; j++) {
                uint8_t v = qbyte(o, hb, r, j);
                y[j] = d * (float)((int)(v & 0x0f) - 8);
                y[j + 16] = d * (float)((int)(v >> 4) - 8);
            }
        } else {
            float m = plx_half_to_float(ld16(o + 16 + 2 * r));
            for (int j = 0; j < 16; j++) {
                uint8_t v = qbyte(o, hb, r, j);
                y[j] = d * (float)(v & 0x0f) + m;
                y[j + 16] = d * (float)(v >> 4) + m;
            }
        }
    }
}

// ---------------------------------------------------------------- portable

static void group_scalar(int type, const uint8_t *group, int blocks, const int8_t *xq, const float *xd,
                         const float *xs, float *out) {
    int bb = block_bytes(type), hb = header_bytes(type);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int b = 0; b < blocks; b++) {
        const uint8_t *o = group + (long)b * 8 * bb;
        const int8_t *y = xq + 32 * b;
        for (int r = 0; r < 8; r++) {
            int32_t s = 0;
            float d = plx_half_to_float(ld16(o + 2 * r));
            if (type == PLX_Q8_0) {
                for (int j = 0; j < 32; j++) s += (int32_t)(int8_t)qbyte(o, hb, r, j) * y[j];
                float t = (float)s * (d * xd[b]);
                acc[r] = acc[r] + t;
            } else {
                int off = type == PLX_Q4_0 ? 8 : 0;
                for (int j = 0; j < 16; j++) {
                    uint8_t v = qbyte(o, hb, r, j);
                    s += ((int32_t)(v & 0x0f) - off) * y[j];
                    s += ((int32_t)(v >> 4) - off) * y[j + 16];
                }
                if (type == PLX_Q4_0) {
                    float t = ((float)s * d) * xd[b];
                    acc[r] = acc[r] + t;
                } else {
                    float m = plx_half_to_float(ld16(o + 16 + 2 * r));
                    float t = (d * xd[b]) * (float)s;
                    float u = m * xs[b];
                    acc[r] = acc[r] + (t + u);
                }
            }
        }
    }
    memcpy(out, acc, sizeof acc);
}

// ---------------------------------------------------------------- x86

#if defined(__x86_64__)

// The body of a group kernel for NT tokens at once (the weights are unpacked
// once per chunk for all of them). DOT(acc, u8, s8) adds the four-byte dot
// products of each 32-bit lane to acc.
#define GROUP_KERNEL(NAME, TARGET, DOT)                                                                        \
    __attribute__((target(TARGET))) static inline void NAME(                                                   \
        int type, const uint8_t *group, int blocks, const int8_t *xq, const float *xd, const float *xs,       \
        const int32_t *xsum, long cols, float *out, long outStride, const int NT) {                          \
        const __m256i ones16 = _mm256_set1_epi16(1);                                                          \
        (void)ones16;                                                                                         \
        const __m256i nib = _mm256_set1_epi8(0x0f);                                                           \
        const int bb = block_bytes(type);                                                                     \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}; \
        for (int b = 0; b < blocks; b++) {                                                                    \
            const uint8_t *o = group + (long)b * 8 * bb;                                                      \
            _mm_prefetch((const char *)(o + 2048), _MM_HINT_T0);                                              \
            _mm_prefetch((const char *)(o + 2048 + 64), _MM_HINT_T0);                                         \
            _mm_prefetch((const char *)(o + 2048 + 128), _MM_HINT_T0);                                        \
            _mm_prefetch((const char *)(o + 2048 + 192), _MM_HINT_T0);                                        \
            __m256i is[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),          \
                             _mm256_setzero_si256()};                                                         \
            if (type == PLX_Q8_0) {                                                                           \
                for (int c = 0; c < 8; c++) {                                                                 \
                    __m256i raw = _mm256_loadu_si256((const __m256i *)(o + 16 + 32 * c));                    \
                    __m256i aw = _mm256_sign_epi8(raw, raw);                                                  \
                    for (int t = 0; t < NT; t++) {                                                            \
                        int32_t y4;                                                                           \
                        memcpy(&y4, xq + t * cols + 32 * b + 4 * c, 4);                                       \
                        is[t] = DOT(is[t], aw, _mm256_sign_epi8(_mm256_set1_epi32(y4), raw));                \
                    }                                                                                         \
                }                                                                                             \
            } else {                                                                                          \
                const int hb = type == PLX_Q4_1 ? 32 : 16;                                                    \
                for (int c = 0; c < 4; c++) {                                                                 \
                    __m256i raw = _mm256_loadu_si256((const __m256i *)(o + hb + 32 * c));                    \
                    __m256i lo = _mm256_and_si256(raw, nib);                                                  \
                    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);                            \
                    for (int t = 0; t < NT; t++) {                                                            \
                        int32_t ylo, yhi;                                                                     \
                        memcpy(&ylo, xq + t * cols + 32 * b + 4 * c, 4);                                      \
                        memcpy(&yhi, xq + t * cols + 32 * b + 16 + 4 * c, 4);                                 \
                        is[t] = DOT(is[t], lo, _mm256_set1_epi32(ylo));                                       \
                        is[t] = DOT(is[t], hi, _mm256_set1_epi32(yhi));                                       \
                    }                                                                                         \
                }                                                                                             \
            }                                                                                                 \
            __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)o));                                  \
            for (int t = 0; t < NT; t++) {                                                                    \
                long k = t * (cols / 32) + b;                                                                 \
                if (type == PLX_Q4_1) {                                                                       \
                    __m256 m = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16)));                   \
                    __m256 tt = _mm256_mul_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[k])), _mm256_cvtepi32_ps(is[t])); \
                    __m256 u = _mm256_mul_ps(m, _mm256_set1_ps(xs[k]));                                       \
                    acc[t] = _mm256_add_ps(acc[t], _mm256_add_ps(tt, u));                                     \
                } else if (type == PLX_Q4_0) {                                                                \
                    __m256i s = _mm256_sub_epi32(is[t], _mm256_set1_epi32(8 * xsum[k]));                      \
                    __m256 tt = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), d), _mm256_set1_ps(xd[k])); \
                    acc[t] = _mm256_add_ps(acc[t], tt);                                                       \
                } else {                                                                                      \
                    __m256 tt = _mm256_mul_ps(_mm256_cvtepi32_ps(is[t]), _mm256_mul_ps(d, _mm256_set1_ps(xd[k]))); \
                    acc[t] = _mm256_add_ps(acc[t], tt);                                                       \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
        for (int t = 0; t < NT; t++) _mm256_storeu_ps(out + t * outStride, acc[t]);                           \
    }

#define DOT_AVX2(acc, w, y) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, y), ones16))
#define DOT_VNNI(acc, w, y) _mm256_dpbusd_avx_epi32(acc, w, y)
// The same instruction in its EVEX form, on machines with AVX-512 VNNI but not AVX-VNNI (AMD Zen 4).
#define DOT_VNNI512(acc, w, y) _mm256_dpbusd_epi32(acc, w, y)

GROUP_KERNEL(group_avx2, "avx2,f16c", DOT_AVX2)
GROUP_KERNEL(group_vnni, "avx2,f16c,avxvnni", DOT_VNNI)
GROUP_KERNEL(group_vnni512, "avx2,f16c,avx512f,avx512vl,avx512vnni", DOT_VNNI512)

// The group kernel for 1...4 tokens, each count its own specialisation.
#define RUN_KERNEL(NAME, TARGET, GROUP)                                                                    \
    __attribute__((target(TARGET))) static void NAME(int type, const uint8_t *g, int blocks, const int8_t *xq, \
                                                     const float *xd, const float *xs, const int32_t *xsum,    \
                                                     long cols, float *out, long outStride, int nt) {          \
        switch (nt) {                                                                                      \
        case 1: GROUP(type, g, blocks, xq, xd, xs, xsum, cols, out, outStride, 1); break;                  \
        case 2: GROUP(type, g, blocks, xq, xd, xs, xsum, cols, out, outStride, 2); break;                  \
        case 3: GROUP(type, g, blocks, xq, xd, xs, xsum, cols, out, outStride, 3); break;                  \
        default: GROUP(type, g, blocks, xq, xd, xs, xsum, cols, out, outStride, 4); break;                 \
        }                                                                                                  \
    }

RUN_KERNEL(run_avx2, "avx2,f16c", group_avx2)
RUN_KERNEL(run_vnni, "avx2,f16c,avxvnni", group_vnni)
RUN_KERNEL(run_vnni512, "avx2,f16c,avx512f,avx512vl,avx512vnni", group_vnni512)

// Whether level 2 runs the VEX (AVX-VNNI) or the EVEX (AVX-512 VNNI) form of vpdpbusd.
static int vex_vnni = 0;

static int cpu_level(void) {
    static int cached = -1;
    if (cached < 0) {
        int level = 0;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) level = 1;
        if (level == 1 && __builtin_cpu_supports("avxvnni")) {
            level = 2;
            vex_vnni = 1;
        } else if (level == 1 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl")) {
            level = 2;
        }
        cached = level;
    }
    return cached;
}
#else
static int cpu_level(void) { return 0; }
#endif

int plx_cpu_level(void) { return cpu_level(); }

void plx_matmul_packed(int type, const uint8_t *packed, int blocks, int rowLo, int rowHi, const int8_t *xq,
                       const float *xd, const float *xs, const int32_t *xsum, int tokens, float *out, long outStride,
                       int level) {
    int use = level < cpu_level() ? level : cpu_level();
    long cols = 32L * blocks, groupBytes = plx_packed_group_bytes(type, blocks);
    for (int g = rowLo / 8; g < rowHi / 8; g++) {
        const uint8_t *group = packed + (long)g * groupBytes;
        for (int t = 0; t < tokens; t += 4) {
            int nt = tokens - t < 4 ? tokens - t : 4;
            const int8_t *q = xq + t * cols;
            const float *d = xd + (long)t * blocks, *s = xs ? xs + (long)t * blocks : NULL;
            const int32_t *sum = xsum ? xsum + (long)t * blocks : NULL;
            float *o = out + (long)t * outStride + 8L * g;
#if defined(__x86_64__)
            if (use == 2 && vex_vnni) { run_vnni(type, group, blocks, q, d, s, sum, cols, o, outStride, nt); continue; }
            if (use == 2) { run_vnni512(type, group, blocks, q, d, s, sum, cols, o, outStride, nt); continue; }
            if (use == 1) { run_avx2(type, group, blocks, q, d, s, sum, cols, o, outStride, nt); continue; }
#endif
            for (int i = 0; i < nt; i++) {
                group_scalar(type, group, blocks, q + i * cols, d + (long)i * blocks, s ? s + (long)i * blocks : NULL,
                             o + i * outStride);
            }
        }
    }
}
