// The verifier's entry points: the BMI2/ADX build where the CPU has those
// instructions, the generic build elsewhere. Both accept exactly the same
// signatures; the choice is made once per process.

#include "include/ced25519.h"

int plx_ed25519_generic_prepare_key(const uint8_t a[32], uint8_t table[PLX_ED25519_KEY_TABLE_BYTES]);
int plx_ed25519_generic_verify_batch(size_t n, const uint8_t *r, const uint8_t *a, const uint8_t *s, const uint8_t *k, const uint8_t *z);
int plx_ed25519_generic_verify_batch_prepared(size_t n, const uint8_t *r, const uint8_t *const *tables, const uint8_t *s,
                                              const uint8_t *k, const uint8_t *z);

#if defined(__x86_64__) && defined(__clang__)
int plx_ed25519_bmi2_prepare_key(const uint8_t a[32], uint8_t table[PLX_ED25519_KEY_TABLE_BYTES]);
int plx_ed25519_bmi2_verify_batch(size_t n, const uint8_t *r, const uint8_t *a, const uint8_t *s, const uint8_t *k, const uint8_t *z);
int plx_ed25519_bmi2_verify_batch_prepared(size_t n, const uint8_t *r, const uint8_t *const *tables, const uint8_t *s,
                                           const uint8_t *k, const uint8_t *z);

static int use_bmi2(void) {
    static int choice = -1;
    if (choice < 0) {
        __builtin_cpu_init();
        choice = __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("adx");
    }
    return choice;
}
#define PICK(name, ...) (use_bmi2() ? plx_ed25519_bmi2_##name(__VA_ARGS__) : plx_ed25519_generic_##name(__VA_ARGS__))
#else
#define PICK(name, ...) plx_ed25519_generic_##name(__VA_ARGS__)
#endif

int plx_ed25519_prepare_key(const uint8_t a[32], uint8_t table[PLX_ED25519_KEY_TABLE_BYTES]) {
    return PICK(prepare_key, a, table);
}

int plx_ed25519_verify_batch(size_t n, const uint8_t *r, const uint8_t *a, const uint8_t *s, const uint8_t *k, const uint8_t *z) {
    return PICK(verify_batch, n, r, a, s, k, z);
}

int plx_ed25519_verify_batch_prepared(size_t n, const uint8_t *r, const uint8_t *const *tables, const uint8_t *s,
                                      const uint8_t *k, const uint8_t *z) {
    return PICK(verify_batch_prepared, n, r, tables, s, k, z);
}
