// The reduction kernels for x86-64-v3 (CMake compiles this file with -march=x86-64-v3).
#if defined(__x86_64__)
#define TANDEM_ISA isa_avx2
#include "coll/reduce_kernels.inc"
#endif
