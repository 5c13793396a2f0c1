// Local reduction kernels: one typed loop per (operation, element type) that MPI defines.
#include "coll/reduce_ops.hpp"

#include "coll/reduce_kinds.hpp"

#include <complex>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace tandem::coll {

// The kernels, once per instruction set (reduce_kernels.inc).
namespace isa_base {
void apply_predefined_kernel(DType t, ROp o, const void* src, void* dst, std::uint64_t bytes) noexcept;
}
#if defined(__x86_64__)
namespace isa_avx2 {
void apply_predefined_kernel(DType t, ROp o, const void* src, void* dst, std::uint64_t bytes) noexcept;
}
namespace isa_avx512 {
void apply_predefined_kernel(DType t, ROp o, const void* src, void* dst, std::uint64_t bytes) noexcept;
}
#endif

namespace {

using Kernel = void (*)(DType, ROp, const void*, void*, std::uint64_t) noexcept;

// The widest instruction set this CPU runs (Open MPI's op/avx component does the same).
Kernel pick_kernel() noexcept {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return isa_avx512::apply_predefined_kernel;
  if (__builtin_cpu_supports("x86-64-v3")) return isa_avx2::apply_predefined_kernel;
#endif
  return isa_base::apply_predefined_kernel;
}

Kernel kernel() noexcept {
  static const Kernel k = pick_kernel();
  return k;
}

}  // namespace

const char* kernel_isa() noexcept {
#if defined(__x86_64__)
  if (kernel() == isa_avx512::apply_predefined_kernel) return "x86-64-v4 (AVX-512)";
  if (kernel() == isa_avx2::apply_predefined_kernel) return "x86-64-v3 (AVX2)";
#endif
  return "baseline";
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::I8: return "int8";
    case DType::U8: return "uint8";
    case DType::I16: return "int16";
    case DType::U16: return "uint16";
    case DType::I32: return "int32";
    case DType::U32: return "uint32";
    case DType::I64: return "int64";
    case DType::U64: return "uint64";
    case DType::F32: return "float";
    case DType::F64: return "double";
    case DType::F80: return "long double";
    case DType::C32: return "float complex";
    case DType::C64: return "double complex";
    case DType::C80: return "long double complex";
    case DType::Bool: return "bool";
    case DType::Byte: return "byte";
  }
  return "?";
}

const char* rop_name(ROp o) {
  switch (o) {
    case ROp::Sum: return "sum";
    case ROp::Prod: return "prod";
    case ROp::Max: return "max";
    case ROp::Min: return "min";
    case ROp::Land: return "land";
    case ROp::Lor: return "lor";
    case ROp::Lxor: return "lxor";
    case ROp::Band: return "band";
    case ROp::Bor: return "bor";
    case ROp::Bxor: return "bxor";
    case ROp::User: return "user";
  }
  return "?";
}

std::uint32_t dtype_size(DType t) {
  switch (t) {
    case DType::I8:
    case DType::U8:
    case DType::Bool:
    case DType::Byte: return 1;
    case DType::I16:
    case DType::U16: return 2;
    case DType::I32:
    case DType::U32:
    case DType::F32: return 4;
    case DType::I64:
    case DType::U64:
    case DType::F64: return 8;
    case DType::F80: return sizeof(long double);
    case DType::C32: return sizeof(std::complex<float>);
    case DType::C64: return sizeof(std::complex<double>);
    case DType::C80: return sizeof(std::complex<long double>);
  }
  return 0;
}

bool valid(ROp o, DType t) { return allows(o, kind_of(t)); }

// Predefined operations are commutative, so src_first does not matter for them. An invalid
// (op, type) pair, a user operation without fn or a zero element size is a no-op: callers
// check valid() first. A non-commutative user operation with !src_first and no scratch is
// also a no-op. A user fn that throws terminates (noexcept).
void Reducer::apply(const void* src, void* dst, std::uint64_t bytes, bool src_first, void* scratch) const noexcept {
  if (bytes == 0) return;
  if (op != ROp::User) {
    kernel()(type, op, src, dst, bytes);
    return;
  }
  if (!fn || elem == 0) return;
  std::uint64_t n = bytes / elem;
  if (n == 0) return;
  if (src_first || commutative) {
    fn(src, dst, n, ctx);  // dst = src op dst
    return;
  }
  // dst = dst op src: fn(dst, scratch = copy of src) leaves dst op src in scratch.
  if (!scratch) return;
  std::uint64_t used = n * elem;
  std::memcpy(scratch, src, used);
  fn(dst, scratch, n, ctx);
  std::memcpy(dst, scratch, used);
}

}  // namespace tandem::coll
