// The verifier for any CPU (see impl/ed25519_impl.inc).
#define PLX_IMPL(name) plx_ed25519_generic_##name
#include "impl/ed25519_impl.inc"
