// Local reduction kernels: one typed loop per (operation, element type) that MPI defines.
#include "coll/reduce_ops.hpp"

#include <complex>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace tandem::coll {

namespace {

// The classes of MPI-4.0 section 6.9.2 that decide which operations a type admits.
enum class Kind { Int, Real, Complex, Logical, Byte };

constexpr bool allows(ROp o, Kind k) {
  switch (o) {
    case ROp::Max:
    case ROp::Min: return k == Kind::Int || k == Kind::Real;
    case ROp::Sum:
    case ROp::Prod: return k == Kind::Int || k == Kind::Real || k == Kind::Complex;
    case ROp::Land:
    case ROp::Lor:
    case ROp::Lxor: return k == Kind::Int || k == Kind::Logical;
    case ROp::Band:
    case ROp::Bor:
    case ROp::Bxor: return k == Kind::Int || k == Kind::Byte;
    case ROp::User: return true;
  }
  return false;
}

constexpr Kind kind_of(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F64:
    case DType::F80: return Kind::Real;
    case DType::C32:
    case DType::C64:
    case DType::C80: return Kind::Complex;
    case DType::Bool: return Kind::Logical;
    case DType::Byte: return Kind::Byte;
    default: return Kind::Int;
  }
}

// Integer arithmetic is done in an unsigned type at least as wide as unsigned int, so that
// overflow wraps (as in the MPI libraries in practice) instead of being undefined, also after
// the promotion of 8- and 16-bit operands to int.
template <class T>
using Wrap = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;

// The operations as f(src element, dst element) -> new dst element.
template <ROp O>
struct Fn;
template <>
struct Fn<ROp::Sum> {
  template <class T>
  static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(Wrap<T>(a) + Wrap<T>(b));
    else return a + b;
  }
};
template <>
struct Fn<ROp::Prod> {
  template <class T>
  static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(Wrap<T>(a) * Wrap<T>(b));
    else return a * b;
  }
};
// As Open MPI: out = out < in ? out : in (and > for max), which compiles to minps/maxps.
// With a NaN operand the result is the incoming (src) element.
template <>
struct Fn<ROp::Max> {
  template <class T>
  static T f(T a, T b) { return b > a ? b : a; }
};
template <>
struct Fn<ROp::Min> {
  template <class T>
  static T f(T a, T b) { return b < a ? b : a; }
};
// Logical operations yield 0 or 1 of the element type.
template <>
struct Fn<ROp::Land> {
  template <class T>
  static T f(T a, T b) { return static_cast<T>(a != 0 && b != 0); }
};
template <>
struct Fn<ROp::Lor> {
  template <class T>
  static T f(T a, T b) { return static_cast<T>(a != 0 || b != 0); }
};
template <>
struct Fn<ROp::Lxor> {
  template <class T>
  static T f(T a, T b) { return static_cast<T>((a == 0) != (b == 0)); }
};
template <>
struct Fn<ROp::Band> {
  template <class T>
  static T f(T a, T b) { return static_cast<T>(a & b); }
};
template <>
struct Fn<ROp::Bor> {
  template <class T>
  static T f(T a, T b) { return static_cast<T>(a | b); }
};
template <>
struct Fn<ROp::Bxor> {
  template <class T>
  static T f(T a, T b) { return static_cast<T>(a ^ b); }
};

// dst[i] = src[i] op dst[i] over n elements. The inner loop has a fixed trip count so that
// GCC vectorises it even under -O2's "very cheap" cost model; __restrict spares the alias check.
template <class T, ROp O>
void kernel(const T* __restrict s, T* __restrict d, std::size_t n) {
  constexpr std::size_t kUnroll = sizeof(T) >= 64 ? 1 : 64 / sizeof(T);
  std::size_t i = 0;
  for (; i + kUnroll <= n; i += kUnroll)
    for (std::size_t j = 0; j < kUnroll; ++j) d[i + j] = Fn<O>::f(s[i + j], d[i + j]);
  for (; i < n; ++i) d[i] = Fn<O>::f(s[i], d[i]);
}

template <class T>
bool aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0;
}

template <class T, ROp O>
void run(const void* src, void* dst, std::uint64_t bytes) {
  std::size_t n = static_cast<std::size_t>(bytes / sizeof(T));
  if (aligned<T>(src) && aligned<T>(dst)) {
    kernel<T, O>(static_cast<const T*>(src), static_cast<T*>(dst), n);
    return;
  }
  // A buffer not aligned for T: go through aligned blocks on the stack.
  constexpr std::size_t kBlock = 1024 / sizeof(T);
  T a[kBlock], b[kBlock];
  auto* s = static_cast<const unsigned char*>(src);
  auto* d = static_cast<unsigned char*>(dst);
  for (std::size_t i = 0; i < n; i += kBlock) {
    std::size_t m = n - i < kBlock ? n - i : kBlock, len = m * sizeof(T);
    std::memcpy(a, s + i * sizeof(T), len);
    std::memcpy(b, d + i * sizeof(T), len);
    kernel<T, O>(a, b, m);
    std::memcpy(d + i * sizeof(T), b, len);
  }
}

// Runs O on T when MPI defines it for T's kind; otherwise (never instantiated) nothing.
template <class T, Kind K, ROp O>
void run_if(const void* src, void* dst, std::uint64_t bytes) {
  if constexpr (O != ROp::User && allows(O, K)) run<T, O>(src, dst, bytes);
}

template <class T, Kind K>
void apply_typed(ROp o, const void* src, void* dst, std::uint64_t bytes) {
  switch (o) {
    case ROp::Sum: run_if<T, K, ROp::Sum>(src, dst, bytes); break;
    case ROp::Prod: run_if<T, K, ROp::Prod>(src, dst, bytes); break;
    case ROp::Max: run_if<T, K, ROp::Max>(src, dst, bytes); break;
    case ROp::Min: run_if<T, K, ROp::Min>(src, dst, bytes); break;
    case ROp::Land: run_if<T, K, ROp::Land>(src, dst, bytes); break;
    case ROp::Lor: run_if<T, K, ROp::Lor>(src, dst, bytes); break;
    case ROp::Lxor: run_if<T, K, ROp::Lxor>(src, dst, bytes); break;
    case ROp::Band: run_if<T, K, ROp::Band>(src, dst, bytes); break;
    case ROp::Bor: run_if<T, K, ROp::Bor>(src, dst, bytes); break;
    case ROp::Bxor: run_if<T, K, ROp::Bxor>(src, dst, bytes); break;
    case ROp::User: break;
  }
}

// std::complex<T> has the layout of T[2], as C's T _Complex.
void apply_predefined(DType t, ROp o, const void* src, void* dst, std::uint64_t bytes) {
  switch (t) {
    case DType::I8: apply_typed<std::int8_t, Kind::Int>(o, src, dst, bytes); break;
    case DType::U8: apply_typed<std::uint8_t, Kind::Int>(o, src, dst, bytes); break;
    case DType::I16: apply_typed<std::int16_t, Kind::Int>(o, src, dst, bytes); break;
    case DType::U16: apply_typed<std::uint16_t, Kind::Int>(o, src, dst, bytes); break;
    case DType::I32: apply_typed<std::int32_t, Kind::Int>(o, src, dst, bytes); break;
    case DType::U32: apply_typed<std::uint32_t, Kind::Int>(o, src, dst, bytes); break;
    case DType::I64: apply_typed<std::int64_t, Kind::Int>(o, src, dst, bytes); break;
    case DType::U64: apply_typed<std::uint64_t, Kind::Int>(o, src, dst, bytes); break;
    case DType::F32: apply_typed<float, Kind::Real>(o, src, dst, bytes); break;
    case DType::F64: apply_typed<double, Kind::Real>(o, src, dst, bytes); break;
    case DType::F80: apply_typed<long double, Kind::Real>(o, src, dst, bytes); break;
    case DType::C32: apply_typed<std::complex<float>, Kind::Complex>(o, src, dst, bytes); break;
    case DType::C64: apply_typed<std::complex<double>, Kind::Complex>(o, src, dst, bytes); break;
    case DType::C80: apply_typed<std::complex<long double>, Kind::Complex>(o, src, dst, bytes); break;
    // Bool is read as a byte, any nonzero value being true, so that stray bit patterns are
    // not undefined behaviour; results are 0 or 1.
    case DType::Bool: apply_typed<std::uint8_t, Kind::Logical>(o, src, dst, bytes); break;
    case DType::Byte: apply_typed<std::uint8_t, Kind::Byte>(o, src, dst, bytes); break;
  }
}

}  // namespace

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
    apply_predefined(type, op, src, dst, bytes);
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
