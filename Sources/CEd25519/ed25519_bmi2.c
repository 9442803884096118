// The verifier compiled for CPUs with BMI2 and ADX (see impl/ed25519_impl.inc);
// only called where the CPU has them.
#if defined(__x86_64__) && defined(__clang__)
#define PLX_IMPL(name) plx_ed25519_bmi2_##name
#pragma clang attribute push(__attribute__((target("bmi2,adx"))), apply_to = function)
#include "impl/ed25519_impl.inc"
#pragma clang attribute pop
#endif
