// The reduction kernels for the baseline instruction set.
#define TANDEM_ISA isa_base
#include "coll/reduce_kernels.inc"
