// Ed25519 signature verification, single and batched, for the ledger's hot path.
//
// Field elements are five 51-bit limbs (radix 2^51) multiplied with 128-bit
// products; points use extended twisted Edwards coordinates (X:Y:Z:T) with
// the "hwcd" addition and doubling formulas for a = -1. Verification uses
// the cofactored equation so that batch and single verification accept
// exactly the same signatures, whatever the batch composition; a ledger
// replica must never accept a block another replica rejects.
// Everything here is variable time and must only see public data.

#include "ced25519.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;
typedef uint64_t fe[5];

#define MASK51 ((uint64_t)0x7ffffffffffffULL)

// ---------------------------------------------------------------- field

static inline uint64_t load64_le(const uint8_t *p) {
    uint64_t r = 0;
    for (int i = 7; i >= 0; i--) r = (r << 8) | p[i];
    return r;
}

static inline void store64_le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) { p[i] = (uint8_t)v; v >>= 8; }
}

static inline void fe_copy(fe h, const fe f) { memcpy(h, f, sizeof(fe)); }
static inline void fe_zero(fe h) { h[0] = h[1] = h[2] = h[3] = h[4] = 0; }
static inline void fe_one(fe h) { h[0] = 1; h[1] = h[2] = h[3] = h[4] = 0; }

static inline void fe_carry(fe h) {
    uint64_t c;
    c = h[0] >> 51; h[0] &= MASK51; h[1] += c;
    c = h[1] >> 51; h[1] &= MASK51; h[2] += c;
    c = h[2] >> 51; h[2] &= MASK51; h[3] += c;
    c = h[3] >> 51; h[3] &= MASK51; h[4] += c;
    c = h[4] >> 51; h[4] &= MASK51; h[0] += c * 19;
}

// Inputs below 2^52 per limb give outputs below 2^53.
static inline void fe_add(fe h, const fe f, const fe g) {
    for (int i = 0; i < 5; i++) h[i] = f[i] + g[i];
}

// f - g + 4p, then carried; g's limbs must be below 2^53 - 76.
static inline void fe_sub(fe h, const fe f, const fe g) {
    h[0] = f[0] + 0x1fffffffffffb4ULL - g[0];
    h[1] = f[1] + 0x1ffffffffffffcULL - g[1];
    h[2] = f[2] + 0x1ffffffffffffcULL - g[2];
    h[3] = f[3] + 0x1ffffffffffffcULL - g[3];
    h[4] = f[4] + 0x1ffffffffffffcULL - g[4];
    fe_carry(h);
}

static inline void fe_neg(fe h, const fe f) {
    fe z;
    fe_zero(z);
    fe_sub(h, z, f);
}

static void fe_mul(fe h, const fe f, const fe g) {
    uint64_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4];
    uint64_t g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3], g4 = g[4];
    uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
    u128 r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 + (u128)f4 * g1_19;
    u128 r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 + (u128)f4 * g2_19;
    u128 r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 + (u128)f4 * g3_19;
    u128 r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
    u128 r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
    uint64_t h0, h1, h2, h3, h4, c;
    r1 += (uint64_t)(r0 >> 51); h0 = (uint64_t)r0 & MASK51;
    r2 += (uint64_t)(r1 >> 51); h1 = (uint64_t)r1 & MASK51;
    r3 += (uint64_t)(r2 >> 51); h2 = (uint64_t)r2 & MASK51;
    r4 += (uint64_t)(r3 >> 51); h3 = (uint64_t)r3 & MASK51;
    c = (uint64_t)(r4 >> 51); h4 = (uint64_t)r4 & MASK51;
    h0 += c * 19;
    c = h0 >> 51; h0 &= MASK51; h1 += c;
    h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4;
}

static void fe_sq(fe h, const fe f) {
    uint64_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4];
    uint64_t f0_2 = 2 * f0, f1_2 = 2 * f1, f2_2 = 2 * f2, f3_2 = 2 * f3;
    uint64_t f3_19 = 19 * f3, f4_19 = 19 * f4;
    u128 r0 = (u128)f0 * f0 + (u128)f1_2 * f4_19 + (u128)f2_2 * f3_19;
    u128 r1 = (u128)f0_2 * f1 + (u128)f2_2 * f4_19 + (u128)f3 * f3_19;
    u128 r2 = (u128)f0_2 * f2 + (u128)f1 * f1 + (u128)f3_2 * f4_19;
    u128 r3 = (u128)f0_2 * f3 + (u128)f1_2 * f2 + (u128)f4 * f4_19;
    u128 r4 = (u128)f0_2 * f4 + (u128)f1_2 * f3 + (u128)f2 * f2;
    uint64_t h0, h1, h2, h3, h4, c;
    r1 += (uint64_t)(r0 >> 51); h0 = (uint64_t)r0 & MASK51;
    r2 += (uint64_t)(r1 >> 51); h1 = (uint64_t)r1 & MASK51;
    r3 += (uint64_t)(r2 >> 51); h2 = (uint64_t)r2 & MASK51;
    r4 += (uint64_t)(r3 >> 51); h3 = (uint64_t)r3 & MASK51;
    c = (uint64_t)(r4 >> 51); h4 = (uint64_t)r4 & MASK51;
    h0 += c * 19;
    c = h0 >> 51; h0 &= MASK51; h1 += c;
    h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4;
}

static void fe_sq_times(fe h, const fe f, int n) {
    fe_sq(h, f);
    for (int i = 1; i < n; i++) fe_sq(h, h);
}

// Bit 255 is ignored; values >= p are accepted and reduced implicitly.
static void fe_frombytes(fe h, const uint8_t s[32]) {
    h[0] = load64_le(s) & MASK51;
    h[1] = (load64_le(s + 6) >> 3) & MASK51;
    h[2] = (load64_le(s + 12) >> 6) & MASK51;
    h[3] = (load64_le(s + 19) >> 1) & MASK51;
    h[4] = (load64_le(s + 24) >> 12) & MASK51;
}

// Canonical (fully reduced) little-endian encoding.
static void fe_tobytes(uint8_t s[32], const fe f) {
    fe h;
    fe_copy(h, f);
    fe_carry(h);
    fe_carry(h);
    uint64_t q = (h[0] + 19) >> 51;
    q = (h[1] + q) >> 51;
    q = (h[2] + q) >> 51;
    q = (h[3] + q) >> 51;
    q = (h[4] + q) >> 51;
    h[0] += 19 * q;
    uint64_t c;
    c = h[0] >> 51; h[0] &= MASK51; h[1] += c;
    c = h[1] >> 51; h[1] &= MASK51; h[2] += c;
    c = h[2] >> 51; h[2] &= MASK51; h[3] += c;
    c = h[3] >> 51; h[3] &= MASK51; h[4] += c;
    h[4] &= MASK51;
    store64_le(s, h[0] | (h[1] << 51));
    store64_le(s + 8, (h[1] >> 13) | (h[2] << 38));
    store64_le(s + 16, (h[2] >> 26) | (h[3] << 25));
    store64_le(s + 24, (h[3] >> 39) | (h[4] << 12));
}

static int fe_iszero(const fe f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++) acc |= s[i];
    return acc == 0;
}

static int fe_isneg(const fe f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    return s[0] & 1;
}

// z^(p-2) = z^(2^255 - 21).
static void fe_invert(fe out, const fe z) {
    fe t0, t1, t2, t3;
    fe_sq(t0, z);
    fe_sq_times(t1, t0, 2);
    fe_mul(t1, z, t1);
    fe_mul(t0, t0, t1);
    fe_sq(t2, t0);
    fe_mul(t1, t1, t2);
    fe_sq_times(t2, t1, 5);
    fe_mul(t1, t2, t1);
    fe_sq_times(t2, t1, 10);
    fe_mul(t2, t2, t1);
    fe_sq_times(t3, t2, 20);
    fe_mul(t2, t3, t2);
    fe_sq_times(t2, t2, 10);
    fe_mul(t1, t2, t1);
    fe_sq_times(t2, t1, 50);
    fe_mul(t2, t2, t1);
    fe_sq_times(t3, t2, 100);
    fe_mul(t2, t3, t2);
    fe_sq_times(t2, t2, 50);
    fe_mul(t1, t2, t1);
    fe_sq_times(t1, t1, 5);
    fe_mul(out, t1, t0);
}

// z^((p-5)/8) = z^(2^252 - 3).
static void fe_pow22523(fe out, const fe z) {
    fe t0, t1, t2;
    fe_sq(t0, z);
    fe_sq_times(t1, t0, 2);
    fe_mul(t1, z, t1);
    fe_mul(t0, t0, t1);
    fe_sq(t0, t0);
    fe_mul(t0, t1, t0);
    fe_sq_times(t1, t0, 5);
    fe_mul(t0, t1, t0);
    fe_sq_times(t1, t0, 10);
    fe_mul(t1, t1, t0);
    fe_sq_times(t2, t1, 20);
    fe_mul(t1, t2, t1);
    fe_sq_times(t1, t1, 10);
    fe_mul(t0, t1, t0);
    fe_sq_times(t1, t0, 50);
    fe_mul(t1, t1, t0);
    fe_sq_times(t2, t1, 100);
    fe_mul(t1, t2, t1);
    fe_sq_times(t1, t1, 50);
    fe_mul(t0, t1, t0);
    fe_sq_times(t0, t0, 2);
    fe_mul(out, t0, z);
}

// base^e for a little-endian 32-byte exponent (only used at start-up).
static void fe_pow(fe out, const fe base, const uint8_t e[32]) {
    fe r;
    fe_one(r);
    for (int i = 255; i >= 0; i--) {
        fe_sq(r, r);
        if ((e[i >> 3] >> (i & 7)) & 1) fe_mul(r, r, base);
    }
    fe_copy(out, r);
}

// ---------------------------------------------------------------- group

typedef struct { fe X, Y, Z, T; } ge_p3;
typedef struct { fe YplusX, YminusX, Z2, T2d; } ge_cached;

static fe CONST_D, CONST_D2, CONST_SQRTM1;
static ge_p3 CONST_B;
// The base point's odd multiples, built once: its scalar uses width-7 digits.
#define B_WIDTH 7
#define B_TABLE_SIZE (1 << (B_WIDTH - 2))
static ge_cached B_TABLE[B_TABLE_SIZE];
static int constants_ok = 0;
static pthread_once_t constants_once = PTHREAD_ONCE_INIT;

static void ge_identity(ge_p3 *p) {
    fe_zero(p->X); fe_one(p->Y); fe_one(p->Z); fe_zero(p->T);
}

static void ge_to_cached(ge_cached *c, const ge_p3 *p) {
    fe_add(c->YplusX, p->Y, p->X);
    fe_sub(c->YminusX, p->Y, p->X);
    fe_add(c->Z2, p->Z, p->Z);
    fe_mul(c->T2d, p->T, CONST_D2);
}

static void ge_neg(ge_p3 *r, const ge_p3 *p) {
    fe_neg(r->X, p->X);
    fe_copy(r->Y, p->Y);
    fe_copy(r->Z, p->Z);
    fe_neg(r->T, p->T);
}

// The operations below leave T out when `with_t` is 0: a doubling reads
// only X, Y and Z, so a result that is doubled next needs no T (one field
// multiplication saved each time).

// r = p + q (add-2008-hwcd-3, a = -1).
static void ge_add_t(ge_p3 *r, const ge_p3 *p, const ge_cached *q, int with_t) {
    fe a, b, c, d, e, f, g, h;
    fe_sub(a, p->Y, p->X); fe_mul(a, a, q->YminusX);
    fe_add(b, p->Y, p->X); fe_mul(b, b, q->YplusX);
    fe_mul(c, p->T, q->T2d);
    fe_mul(d, p->Z, q->Z2);
    fe_sub(e, b, a); fe_sub(f, d, c); fe_add(g, d, c); fe_add(h, b, a);
    fe_mul(r->X, e, f); fe_mul(r->Y, g, h); if (with_t) fe_mul(r->T, e, h); fe_mul(r->Z, f, g);
}

// r = p - q.
static void ge_sub_t(ge_p3 *r, const ge_p3 *p, const ge_cached *q, int with_t) {
    fe a, b, c, d, e, f, g, h;
    fe_sub(a, p->Y, p->X); fe_mul(a, a, q->YplusX);
    fe_add(b, p->Y, p->X); fe_mul(b, b, q->YminusX);
    fe_mul(c, p->T, q->T2d);
    fe_mul(d, p->Z, q->Z2);
    fe_sub(e, b, a); fe_add(f, d, c); fe_sub(g, d, c); fe_add(h, b, a);
    fe_mul(r->X, e, f); fe_mul(r->Y, g, h); if (with_t) fe_mul(r->T, e, h); fe_mul(r->Z, f, g);
}

// r = 2p (dbl-2008-hwcd, a = -1); reads X, Y, Z only.
static void ge_dbl_t(ge_p3 *r, const ge_p3 *p, int with_t) {
    fe a, b, c, e, f, g, h, t;
    fe_sq(a, p->X);
    fe_sq(b, p->Y);
    fe_sq(c, p->Z); fe_add(c, c, c);
    fe_add(t, p->X, p->Y); fe_sq(t, t);
    fe_add(h, a, b);
    fe_sub(e, t, h);
    fe_sub(g, b, a);
    fe_sub(f, g, c);
    fe_neg(h, h);
    fe_mul(r->X, e, f); fe_mul(r->Y, g, h); if (with_t) fe_mul(r->T, e, h); fe_mul(r->Z, f, g);
}

static void ge_add(ge_p3 *r, const ge_p3 *p, const ge_cached *q) { ge_add_t(r, p, q, 1); }
static void ge_dbl(ge_p3 *r, const ge_p3 *p) { ge_dbl_t(r, p, 1); }

static int ge_is_identity(const ge_p3 *p) {
    fe t;
    if (!fe_iszero(p->X)) return 0;
    fe_sub(t, p->Y, p->Z);
    return fe_iszero(t);
}

// Decodes a point (RFC 8032 5.1.3, accepting y >= p as ZIP-215 does).
static int ge_frombytes(ge_p3 *h, const uint8_t s[32]) {
    fe u, v, v3, vxx, check, one;
    fe_one(one);
    fe_frombytes(h->Y, s);
    fe_one(h->Z);
    fe_sq(u, h->Y);
    fe_mul(v, u, CONST_D);
    fe_sub(u, u, one);
    fe_add(v, v, one);
    fe_sq(v3, v);
    fe_mul(v3, v3, v);
    fe_sq(h->X, v3);
    fe_mul(h->X, h->X, v);
    fe_mul(h->X, h->X, u);
    fe_pow22523(h->X, h->X);
    fe_mul(h->X, h->X, v3);
    fe_mul(h->X, h->X, u);
    fe_sq(vxx, h->X);
    fe_mul(vxx, vxx, v);
    fe_sub(check, vxx, u);
    if (!fe_iszero(check)) {
        fe_add(check, vxx, u);
        if (!fe_iszero(check)) return 0;
        fe_mul(h->X, h->X, CONST_SQRTM1);
    }
    int sign = s[31] >> 7;
    if (fe_isneg(h->X) != sign) {
        if (fe_iszero(h->X)) return 0;
        fe_neg(h->X, h->X);
    }
    fe_mul(h->T, h->X, h->Y);
    return 1;
}

static void init_constants(void) {
    fe num, den, one;
    fe_one(one);
    fe_zero(num); num[0] = 121665;
    fe_neg(num, num);
    fe_zero(den); den[0] = 121666;
    fe_invert(den, den);
    fe_mul(CONST_D, num, den);
    fe_add(CONST_D2, CONST_D, CONST_D);
    fe_carry(CONST_D2);
    // sqrt(-1) = 2^((p-1)/4); 2 is a non-residue because p = 5 mod 8.
    uint8_t e[32];
    memset(e, 0xff, 32);
    e[0] = 0xfb;
    e[31] = 0x1f;
    fe two;
    fe_zero(two); two[0] = 2;
    fe_pow(CONST_SQRTM1, two, e);
    fe t, m1;
    fe_sq(t, CONST_SQRTM1);
    fe_neg(m1, one);
    fe_sub(t, t, m1);
    if (!fe_iszero(t)) return;
    uint8_t b[32];
    memset(b, 0x66, 32);
    b[0] = 0x58;
    if (!ge_frombytes(&CONST_B, b)) return;
    // B, 3B, ..., 63B for the base point's width-7 digits.
    ge_p3 b2, cur;
    ge_cached c2;
    ge_to_cached(&B_TABLE[0], &CONST_B);
    ge_dbl(&b2, &CONST_B);
    ge_to_cached(&c2, &b2);
    cur = CONST_B;
    for (int i = 1; i < B_TABLE_SIZE; i++) {
        ge_add(&cur, &cur, &c2);
        ge_to_cached(&B_TABLE[i], &cur);
    }
    constants_ok = 1;
}

// ---------------------------------------------------------------- scalars

// L = 2^252 + 27742317777372353535851937790883648493, as 64-bit limbs.
static const uint64_t L[4] = {0x5812631a5cf5d3edULL, 0x14def9dea2f79cd6ULL, 0, 0x1000000000000000ULL};

// r = (little-endian bytes) mod L, by Horner's rule from the top byte.
static void sc_reduce_bytes(uint64_t r[4], const uint8_t *in, size_t len) {
    uint64_t x[5] = {0, 0, 0, 0, 0};
    for (size_t i = len; i-- > 0;) {
        x[4] = x[3] >> 56;
        x[3] = (x[3] << 8) | (x[2] >> 56);
        x[2] = (x[2] << 8) | (x[1] >> 56);
        x[1] = (x[1] << 8) | (x[0] >> 56);
        x[0] = (x[0] << 8) | in[i];
        // x < 2^261; write x = q * 2^252 + low, so x = low - q*c (mod L).
        uint64_t q = (x[4] << 4) | (x[3] >> 60);
        x[4] = 0;
        x[3] &= 0x0fffffffffffffffULL;
        u128 p0 = (u128)q * L[0];
        u128 p1 = (u128)q * L[1] + (uint64_t)(p0 >> 64);
        uint64_t t0 = (uint64_t)p0, t1 = (uint64_t)p1, t2 = (uint64_t)(p1 >> 64);
        u128 d;
        uint64_t borrow;
        d = (u128)x[0] - t0; x[0] = (uint64_t)d; borrow = (uint64_t)(d >> 64) & 1;
        d = (u128)x[1] - t1 - borrow; x[1] = (uint64_t)d; borrow = (uint64_t)(d >> 64) & 1;
        d = (u128)x[2] - t2 - borrow; x[2] = (uint64_t)d; borrow = (uint64_t)(d >> 64) & 1;
        d = (u128)x[3] - borrow; x[3] = (uint64_t)d; borrow = (uint64_t)(d >> 64) & 1;
        if (borrow) {
            // low - q*c is in (-2^134, 0): adding L lands in (0, L).
            u128 s = 0;
            for (int j = 0; j < 4; j++) {
                s += (u128)x[j] + L[j];
                x[j] = (uint64_t)s;
                s >>= 64;
            }
        }
    }
    memcpy(r, x, 4 * sizeof(uint64_t));
}

static int sc_is_canonical(const uint8_t s[32]) {
    uint64_t v[4];
    for (int i = 0; i < 4; i++) v[i] = load64_le(s + 8 * i);
    for (int i = 3; i >= 0; i--) {
        if (v[i] < L[i]) return 1;
        if (v[i] > L[i]) return 0;
    }
    return 0;
}

static void sc_mul(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t p[8] = {0};
    for (int i = 0; i < 4; i++) {
        u128 carry = 0;
        for (int j = 0; j < 4; j++) {
            u128 t = (u128)a[i] * b[j] + p[i + j] + carry;
            p[i + j] = (uint64_t)t;
            carry = t >> 64;
        }
        p[i + 4] = (uint64_t)carry;
    }
    uint8_t bytes[64];
    for (int i = 0; i < 8; i++) store64_le(bytes + 8 * i, p[i]);
    sc_reduce_bytes(r, bytes, 64);
}

static void sc_add(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    uint8_t bytes[40];
    u128 s = 0;
    for (int i = 0; i < 4; i++) {
        s += (u128)a[i] + b[i];
        store64_le(bytes + 8 * i, (uint64_t)s);
        s >>= 64;
    }
    memset(bytes + 32, 0, 8);
    bytes[32] = (uint8_t)s;
    sc_reduce_bytes(r, bytes, 33);
}

// Width-w non-adjacent form: digits odd in [-(2^(w-1) - 1), 2^(w-1) - 1]. Returns the top index or -1.
static int wnaf(int8_t naf[257], const uint64_t k_in[4], int w) {
    const uint64_t window = (uint64_t)1 << w, half = window >> 1;
    uint64_t k[5] = {k_in[0], k_in[1], k_in[2], k_in[3], 0};
    memset(naf, 0, 257);
    int top = -1;
    for (int i = 0; i < 257; i++) {
        if ((k[0] | k[1] | k[2] | k[3] | k[4]) == 0) break;
        if (k[0] & 1) {
            int d = (int)(k[0] & (window - 1));
            if ((uint64_t)d >= half) d -= (int)window;
            naf[i] = (int8_t)d;
            top = i;
            if (d > 0) {
                k[0] -= (uint64_t)d;
            } else {
                u128 s = (u128)k[0] + (uint64_t)(-d);
                k[0] = (uint64_t)s;
                for (int j = 1; j < 5 && (s >> 64); j++) {
                    s = (u128)k[j] + 1;
                    k[j] = (uint64_t)s;
                }
            }
        }
        k[0] = (k[0] >> 1) | (k[1] << 63);
        k[1] = (k[1] >> 1) | (k[2] << 63);
        k[2] = (k[2] >> 1) | (k[3] << 63);
        k[3] = (k[3] >> 1) | (k[4] << 63);
        k[4] >>= 1;
    }
    return top;
}

static int wnaf5(int8_t naf[257], const uint64_t k_in[4]) { return wnaf(naf, k_in, 5); }

// P, 3P, 5P, ..., 15P in cached form.
static void build_table(ge_cached t[8], const ge_p3 *p) {
    ge_p3 p2, cur;
    ge_cached c2;
    ge_to_cached(&t[0], p);
    ge_dbl(&p2, p);
    ge_to_cached(&c2, &p2);
    cur = *p;
    for (int i = 1; i < 8; i++) {
        ge_add(&cur, &cur, &c2);
        ge_to_cached(&t[i], &cur);
    }
}

// ---------------------------------------------------------------- verification

// Decodes A and checks it is not of small order.
static int decode_key(ge_p3 *A, const uint8_t a[32]) {
    if (!ge_frombytes(A, a)) return 0;
    // Keys of small order "sign" every message under the cofactored
    // equation (the all-zero treasury key is one): refuse them.
    ge_p3 a8;
    ge_dbl(&a8, A);
    ge_dbl(&a8, &a8);
    ge_dbl(&a8, &a8);
    return !ge_is_identity(&a8);
}

int plx_ed25519_prepare_key(const uint8_t a[32], uint8_t table[PLX_ED25519_KEY_TABLE_BYTES]) {
    pthread_once(&constants_once, init_constants);
    if (!constants_ok) return 0;
    _Static_assert(sizeof(ge_cached) * 8 == PLX_ED25519_KEY_TABLE_BYTES, "key table size");
    ge_p3 A, neg;
    if (!decode_key(&A, a)) return 0;
    ge_neg(&neg, &A);
    ge_cached t[8];
    build_table(t, &neg);
    memcpy(table, t, sizeof(t));
    return 1;
}

// The first `count` odd multiples of p (P, 3P, ...) in cached form.
static void build_table_n(ge_cached *t, const ge_p3 *p, int count) {
    ge_to_cached(&t[0], p);
    if (count <= 1) return;
    ge_p3 p2, cur;
    ge_cached c2;
    ge_dbl(&p2, p);
    ge_to_cached(&c2, &p2);
    cur = *p;
    for (int i = 1; i < count; i++) {
        ge_add(&cur, &cur, &c2);
        ge_to_cached(&t[i], &cur);
    }
}

// Table entries a digit string needs: up to its largest |digit|.
static int entries_needed(const int8_t *naf, int top) {
    int most = 1;
    for (int i = 0; i <= top; i++) {
        int d = naf[i] < 0 ? -naf[i] : naf[i];
        if (d > most) most = d;
    }
    return (most >> 1) + 1;
}

// Shared core: keys come either as bytes (`a`) or prepared tables.
static int verify_batch(size_t n, const uint8_t *r, const uint8_t *a, const uint8_t *const *prepared,
                        const uint8_t *s, const uint8_t *k, const uint8_t *z) {
    pthread_once(&constants_once, init_constants);
    if (!constants_ok || n == 0 || n > 256) return 0;
    // Points 0 .. 2n-1: -R_i and -A_i with width-5 digits; the base point separately with width-7 digits.
    size_t points = 2 * n;
    ge_cached *tables = malloc(points * 8 * sizeof(ge_cached));
    int8_t *nafs = malloc((points + 1) * 257);
    int *tops = malloc((points + 1) * sizeof(int));
    int ok = 0;
    if (!tables || !nafs || !tops) goto done;

    uint64_t sum[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (!sc_is_canonical(s + 32 * i)) goto done;
        ge_p3 R, neg;
        if (!ge_frombytes(&R, r + 32 * i)) goto done;
        if (prepared) {
            memcpy(tables + 8 * (2 * i + 1), prepared[i], 8 * sizeof(ge_cached));
        } else {
            ge_p3 A;
            if (!decode_key(&A, a + 32 * i)) goto done;
            ge_neg(&neg, &A);
            build_table(tables + 8 * (2 * i + 1), &neg);
        }
        uint64_t zi[4] = {load64_le(z + 16 * i), load64_le(z + 16 * i + 8), 0, 0};
        uint64_t si[4], ki[4], t[4], zk[4];
        for (int j = 0; j < 4; j++) si[j] = load64_le(s + 32 * i + 8 * j);
        sc_reduce_bytes(ki, k + 64 * i, 64);
        sc_mul(t, zi, si);
        sc_add(sum, sum, t);
        sc_mul(zk, zi, ki);
        // -z_i R_i and -(z_i k_i) A_i: the points are negated, the scalars stay short.
        tops[2 * i] = wnaf5(nafs + 257 * (2 * i), zi);
        tops[2 * i + 1] = wnaf5(nafs + 257 * (2 * i + 1), zk);
        ge_neg(&neg, &R);
        // A weight of 1 (a lone signature) needs R alone, not its multiples.
        build_table_n(tables + 8 * (2 * i), &neg, entries_needed(nafs + 257 * (2 * i), tops[2 * i]));
    }
    int8_t *bnaf = nafs + 257 * points;
    tops[points] = wnaf(bnaf, sum, B_WIDTH);

    int top = -1;
    for (size_t j = 0; j <= points; j++) if (tops[j] > top) top = tops[j];
    ge_p3 acc;
    ge_identity(&acc);
    for (int i = top; i >= 0; i--) {
        // How many additions follow this doubling: the last operation before the next doubling skips T.
        int adds = bnaf[i] != 0;
        for (size_t j = 0; j < points; j++) adds += nafs[257 * j + i] != 0;
        ge_dbl_t(&acc, &acc, adds > 0);
        for (size_t j = 0; j < points && adds > 0; j++) {
            int d = nafs[257 * j + i];
            if (d == 0) continue;
            adds--;
            if (d > 0) ge_add_t(&acc, &acc, &tables[8 * j + (d >> 1)], adds > 0);
            else ge_sub_t(&acc, &acc, &tables[8 * j + ((-d) >> 1)], adds > 0);
        }
        int d = bnaf[i];
        if (d > 0) ge_add_t(&acc, &acc, &B_TABLE[d >> 1], 0);
        else if (d < 0) ge_sub_t(&acc, &acc, &B_TABLE[(-d) >> 1], 0);
    }
    // Cofactored: [8] * sum must be the identity (the check reads X, Y and Z only).
    ge_dbl_t(&acc, &acc, 0);
    ge_dbl_t(&acc, &acc, 0);
    ge_dbl_t(&acc, &acc, 0);
    ok = ge_is_identity(&acc);

done:
    free(tables);
    free(nafs);
    free(tops);
    return ok;
}

int plx_ed25519_verify_batch(size_t n, const uint8_t *r, const uint8_t *a, const uint8_t *s,
                             const uint8_t *k, const uint8_t *z) {
    return verify_batch(n, r, a, NULL, s, k, z);
}

int plx_ed25519_verify_batch_prepared(size_t n, const uint8_t *r, const uint8_t *const *tables,
                                      const uint8_t *s, const uint8_t *k, const uint8_t *z) {
    if (!tables) return 0;
    return verify_batch(n, r, NULL, tables, s, k, z);
}
