// Which operations MPI defines on which datatypes, shared by the reduction kernels and
// their dispatcher (internal to src/coll).
#pragma once
#include "coll/reduce_ops.hpp"

namespace tandem::coll {

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

}  // namespace tandem::coll
