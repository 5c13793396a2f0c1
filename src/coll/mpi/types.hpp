// MPI's predefined datatypes and reduction operations as tandem's reduction kernels see
// them (compiled once per MPI).
#pragma once
#include <mpi.h>

#include <optional>

#include "coll/reduce_ops.hpp"

namespace tandem::coll {

inline std::optional<DType> dtype_of(MPI_Datatype t) {
   
  auto sized_int = [](int size, bool is_signed) -> std::optional<DType> {
    switch (size) {
      case 1: return is_signed ? DType::I8 : DType::U8;
      case 2: return is_signed ? DType::I16 : DType::U16;
      case 4: return is_signed ? DType::I32 : DType::U32;
      case 8: return is_signed ? DType::I64 : DType::U64;
      default: return std::nullopt;
    }
  };
  if (t == MPI_DATATYPE_NULL) return std::nullopt;
  struct {
    MPI_Datatype t;
    bool is_signed;
  } ints[] = {{MPI_CHAR, true},           {MPI_SIGNED_CHAR, true},    {MPI_SHORT, true},         {MPI_INT, true},
              {MPI_LONG, true},           {MPI_LONG_LONG, true},      {MPI_LONG_LONG_INT, true}, {MPI_INT8_T, true},
              {MPI_INT16_T, true},        {MPI_INT32_T, true},        {MPI_INT64_T, true},       {MPI_AINT, true},
              {MPI_OFFSET, true},         {MPI_COUNT, true},          {MPI_UNSIGNED_CHAR, false}, {MPI_UNSIGNED_SHORT, false},
              {MPI_UNSIGNED, false},      {MPI_UNSIGNED_LONG, false}, {MPI_UNSIGNED_LONG_LONG, false},
              {MPI_UINT8_T, false},       {MPI_UINT16_T, false},      {MPI_UINT32_T, false},     {MPI_UINT64_T, false},
              {MPI_WCHAR, false}};
  for (auto& e : ints)
    if (t == e.t) {
      int size = 0;
      PMPI_Type_size(t, &size);
      return sized_int(size, e.is_signed);
    }
  if (t == MPI_FLOAT) return DType::F32;
  if (t == MPI_DOUBLE) return DType::F64;
  if (t == MPI_LONG_DOUBLE) return DType::F80;
  if (t == MPI_C_FLOAT_COMPLEX || t == MPI_C_COMPLEX) return DType::C32;
  if (t == MPI_C_DOUBLE_COMPLEX) return DType::C64;
  if (t == MPI_C_LONG_DOUBLE_COMPLEX) return DType::C80;
  if (t == MPI_C_BOOL) return DType::Bool;
  if (t == MPI_BYTE) return DType::Byte;
  return std::nullopt;
}

inline std::optional<ROp> rop_of(MPI_Op op) {
   
  if (op == MPI_SUM) return ROp::Sum;
  if (op == MPI_PROD) return ROp::Prod;
  if (op == MPI_MAX) return ROp::Max;
  if (op == MPI_MIN) return ROp::Min;
  if (op == MPI_LAND) return ROp::Land;
  if (op == MPI_LOR) return ROp::Lor;
  if (op == MPI_LXOR) return ROp::Lxor;
  if (op == MPI_BAND) return ROp::Band;
  if (op == MPI_BOR) return ROp::Bor;
  if (op == MPI_BXOR) return ROp::Bxor;
  return std::nullopt;
}

}  // namespace tandem::coll
