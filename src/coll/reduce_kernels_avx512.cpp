// The reduction kernels for x86-64-v4 (CMake compiles this file with -march=x86-64-v4).
#if defined(__x86_64__)
#define TANDEM_ISA isa_avx512
#include "coll/reduce_kernels.inc"
#endif
