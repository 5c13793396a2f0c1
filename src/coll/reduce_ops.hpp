// Local reduction kernels for the predefined MPI datatypes and operations, free of MPI
// (the interposition layer maps MPI_Datatype / MPI_Op to these enums), plus user
// operations given as a function (the C++ API).
#pragma once
#include <cstdint>

namespace tandem::coll {

enum class DType : std::uint8_t {
  I8, U8, I16, U16, I32, U32, I64, U64,
  F32, F64, F80,      // float, double, long double
  C32, C64, C80,      // float, double, long double _Complex
  Bool,               // C _Bool / bool (1 byte)
  Byte,               // MPI_BYTE: bitwise operations only
};

enum class ROp : std::uint8_t { Sum, Prod, Max, Min, Land, Lor, Lxor, Band, Bor, Bxor, User };

const char* dtype_name(DType t);
const char* rop_name(ROp o);
std::uint32_t dtype_size(DType t);

// Whether MPI defines op on type (MPI-4.0 section 6.9.2): max/min on integers and reals;
// sum/prod on integers, reals and complex; logical ops on integers and bool; bitwise ops on
// integers and bytes.
bool valid(ROp o, DType t);

// The instruction set the predefined kernels use on this CPU (the widest it runs, chosen
// at the first use): "x86-64-v4 (AVX-512)", "x86-64-v3 (AVX2)" or "baseline".
const char* kernel_isa() noexcept;

// inout = in op inout, for `count` elements: MPI_User_function's convention.
using UserFn = void (*)(const void* in, void* inout, std::uint64_t count, void* ctx);

struct Reducer {
  DType type = DType::Byte;
  ROp op = ROp::Sum;
  UserFn fn = nullptr;     // for ROp::User
  void* ctx = nullptr;     // passed to fn
  std::uint32_t elem = 1;  // element size in bytes (dtype_size(type), or the user type's size)
  bool commutative = true;

  // dst = src op dst when src_first, else dst = dst op src, over `bytes` (whole elements).
  // A non-commutative user operation with !src_first needs `scratch` of `bytes` bytes.
  // Never throws; src and dst do not overlap.
  void apply(const void* src, void* dst, std::uint64_t bytes, bool src_first, void* scratch) const noexcept;
};

}  // namespace tandem::coll
