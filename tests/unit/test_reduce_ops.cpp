#include <gtest/gtest.h>

#include <complex>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "coll/reduce_ops.hpp"

using namespace tandem::coll;

namespace {

constexpr DType kTypes[] = {DType::I8,  DType::U8,  DType::I16, DType::U16, DType::I32, DType::U32,
                            DType::I64, DType::U64, DType::F32, DType::F64, DType::F80, DType::C32,
                            DType::C64, DType::C80, DType::Bool, DType::Byte};
constexpr ROp kOps[] = {ROp::Sum, ROp::Prod, ROp::Max,  ROp::Min, ROp::Land, ROp::Lor,
                        ROp::Lxor, ROp::Band, ROp::Bor, ROp::Bxor, ROp::User};

template <class T>
struct IsComplex : std::false_type {};
template <class T>
struct IsComplex<std::complex<T>> : std::true_type {};

// Operands, chosen so that the reference below stays free of undefined behaviour (small
// values; int8 products wrap through the defined int -> int8 conversion).
template <class T>
std::vector<T> sources() {
  if constexpr (IsComplex<T>::value) return {{1, 2}, {-3, 0.5}, {0, 0}, {2.5, -1}, {-1, -1}};
  else if constexpr (std::is_floating_point_v<T>) return {-3.5, 0, 5.25, 7, -1, 2, 100, -0.5, 1e3};
  else if constexpr (std::is_signed_v<T>) return {-3, 0, 5, 7, -1, 2, 100, -100, 0};
  else return {3, 0, 5, 7, 1, 2, 100, 200, 0};
}
template <class T>
std::vector<T> targets() {
  if constexpr (IsComplex<T>::value) return {{3, -1}, {2, 2}, {7, 1}, {0, 4}, {-1, 1}};
  else if constexpr (std::is_floating_point_v<T>) return {2, -4, 5.25, 0, -2, 2, -100, 0.25, -1e3};
  else if constexpr (std::is_signed_v<T>) return {2, -4, 0, -7, -1, 0, 3, -100, 0};
  else return {2, 4, 0, 9, 1, 0, 3, 100, 0};
}
// Bool and Byte are stored as bytes; Bool includes a nonzero non-one value (true).
template <>
std::vector<std::uint8_t> sources<std::uint8_t>() { return {0, 1, 0, 1, 2, 0xF0, 0xAA, 0xFF, 0}; }
template <>
std::vector<std::uint8_t> targets<std::uint8_t>() { return {0, 0, 1, 1, 1, 0x0F, 0x0F, 0x00, 3}; }

// The straightforward reference: src op dst.
template <class T>
T reference(ROp o, T a, T b) {
  if constexpr (IsComplex<T>::value) {
    if (o == ROp::Sum) return {a.real() + b.real(), a.imag() + b.imag()};
    return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
  } else {
    switch (o) {
      case ROp::Sum: return static_cast<T>(a + b);
      case ROp::Prod: return static_cast<T>(a * b);
      case ROp::Max: return a > b ? a : b;
      case ROp::Min: return a < b ? a : b;
      case ROp::Land: return (a != 0 && b != 0) ? 1 : 0;
      case ROp::Lor: return (a != 0 || b != 0) ? 1 : 0;
      case ROp::Lxor: return ((a != 0) != (b != 0)) ? 1 : 0;
      default: break;
    }
    if constexpr (std::is_integral_v<T>) {
      switch (o) {
        case ROp::Band: return static_cast<T>(a & b);
        case ROp::Bor: return static_cast<T>(a | b);
        case ROp::Bxor: return static_cast<T>(a ^ b);
        default: break;
      }
    }
    ADD_FAILURE() << "no reference for " << rop_name(o);
    return T{};
  }
}

template <class T>
void check(DType t, ROp o) {
  ASSERT_EQ(dtype_size(t), sizeof(T));
  std::vector<T> src = sources<T>(), dst = targets<T>(), want(dst.size());
  for (std::size_t i = 0; i < src.size(); ++i) want[i] = reference(o, src[i], dst[i]);
  Reducer r{.type = t, .op = o, .elem = dtype_size(t)};
  for (bool src_first : {true, false}) {
    std::vector<T> d = dst;
    r.apply(src.data(), d.data(), src.size() * sizeof(T), src_first, nullptr);
    for (std::size_t i = 0; i < src.size(); ++i)
      EXPECT_TRUE(d[i] == want[i]) << rop_name(o) << " on " << dtype_name(t) << " element " << i;
  }
}

void check_any(DType t, ROp o) {
  switch (t) {
    case DType::I8: return check<std::int8_t>(t, o);
    case DType::U8: return check<std::uint8_t>(t, o);
    case DType::I16: return check<std::int16_t>(t, o);
    case DType::U16: return check<std::uint16_t>(t, o);
    case DType::I32: return check<std::int32_t>(t, o);
    case DType::U32: return check<std::uint32_t>(t, o);
    case DType::I64: return check<std::int64_t>(t, o);
    case DType::U64: return check<std::uint64_t>(t, o);
    case DType::F32: return check<float>(t, o);
    case DType::F64: return check<double>(t, o);
    case DType::F80: return check<long double>(t, o);
    case DType::C32: return check<std::complex<float>>(t, o);
    case DType::C64: return check<std::complex<double>>(t, o);
    case DType::C80: return check<std::complex<long double>>(t, o);
    case DType::Bool:
    case DType::Byte: return check<std::uint8_t>(t, o);
  }
}

bool is_int(DType t) { return t <= DType::U64; }
bool is_real(DType t) { return t == DType::F32 || t == DType::F64 || t == DType::F80; }
bool is_complex(DType t) { return t == DType::C32 || t == DType::C64 || t == DType::C80; }

}  // namespace

TEST(ReduceOps, NamesAndSizes) {
  EXPECT_STREQ(dtype_name(DType::I32), "int32");
  EXPECT_STREQ(dtype_name(DType::U8), "uint8");
  EXPECT_STREQ(dtype_name(DType::F32), "float");
  EXPECT_STREQ(dtype_name(DType::F64), "double");
  EXPECT_STREQ(dtype_name(DType::Bool), "bool");
  EXPECT_STREQ(dtype_name(DType::Byte), "byte");
  EXPECT_STREQ(rop_name(ROp::Sum), "sum");
  EXPECT_STREQ(rop_name(ROp::Band), "band");
  EXPECT_STREQ(rop_name(ROp::Lxor), "lxor");
  EXPECT_STREQ(rop_name(ROp::User), "user");
  std::vector<std::string> names;
  for (DType t : kTypes) {
    std::string n = dtype_name(t);
    EXPECT_FALSE(n.empty());
    for (const auto& m : names) EXPECT_NE(n, m);
    names.push_back(n);
  }
  names.clear();
  for (ROp o : kOps) {
    std::string n = rop_name(o);
    EXPECT_FALSE(n.empty());
    for (const auto& m : names) EXPECT_NE(n, m);
    names.push_back(n);
  }

  const std::uint32_t sizes[] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8, sizeof(long double), 8, 16,
                                 2 * sizeof(long double), 1, 1};
  for (std::size_t i = 0; i < std::size(kTypes); ++i) EXPECT_EQ(dtype_size(kTypes[i]), sizes[i]) << i;
}

TEST(ReduceOps, ValidFollowsMpi) {
  for (DType t : kTypes) {
    bool i = is_int(t), r = is_real(t), c = is_complex(t);
    bool logical = i || t == DType::Bool, bytes = i || t == DType::Byte;
    EXPECT_EQ(valid(ROp::Max, t), i || r) << dtype_name(t);
    EXPECT_EQ(valid(ROp::Min, t), i || r) << dtype_name(t);
    EXPECT_EQ(valid(ROp::Sum, t), i || r || c) << dtype_name(t);
    EXPECT_EQ(valid(ROp::Prod, t), i || r || c) << dtype_name(t);
    for (ROp o : {ROp::Land, ROp::Lor, ROp::Lxor}) EXPECT_EQ(valid(o, t), logical) << dtype_name(t);
    for (ROp o : {ROp::Band, ROp::Bor, ROp::Bxor}) EXPECT_EQ(valid(o, t), bytes) << dtype_name(t);
    EXPECT_TRUE(valid(ROp::User, t));
  }
  EXPECT_FALSE(valid(ROp::Max, DType::C64));
  EXPECT_FALSE(valid(ROp::Band, DType::F64));
  EXPECT_FALSE(valid(ROp::Land, DType::Byte));
  EXPECT_FALSE(valid(ROp::Sum, DType::Bool));
  EXPECT_FALSE(valid(ROp::Min, DType::Byte));
  EXPECT_TRUE(valid(ROp::Bxor, DType::Byte));
  EXPECT_TRUE(valid(ROp::Lor, DType::Bool));
  EXPECT_TRUE(valid(ROp::Prod, DType::C80));
}

TEST(ReduceOps, EveryValidPairMatchesReference) {
  int pairs = 0;
  for (DType t : kTypes)
    for (ROp o : kOps)
      if (o != ROp::User && valid(o, t)) {
        check_any(t, o);
        ++pairs;
      }
  // 8 integer types x 10, 3 reals x 4, 3 complex x 2, bool x 3, byte x 3.
  EXPECT_EQ(pairs, 80 + 12 + 6 + 3 + 3);
}

TEST(ReduceOps, SpotChecks) {
  auto run = [](DType t, ROp o, auto src, auto dst) {
    Reducer{.type = t, .op = o}.apply(&src, &dst, sizeof(src), true, nullptr);
    return dst;
  };
  EXPECT_EQ(run(DType::I32, ROp::Min, std::int32_t{-5}, std::int32_t{3}), -5);
  EXPECT_EQ(run(DType::I32, ROp::Max, std::int32_t{-5}, std::int32_t{-3}), -3);
  EXPECT_EQ(run(DType::I64, ROp::Land, std::int64_t{-7}, std::int64_t{42}), 1);
  EXPECT_EQ(run(DType::I16, ROp::Lxor, std::int16_t{-7}, std::int16_t{0}), 1);
  EXPECT_EQ(run(DType::U8, ROp::Lor, std::uint8_t{0}, std::uint8_t{0}), 0);
  EXPECT_EQ(run(DType::Byte, ROp::Bxor, std::uint8_t{0xF0}, std::uint8_t{0xFF}), 0x0F);
  EXPECT_EQ(run(DType::Bool, ROp::Land, std::uint8_t{2}, std::uint8_t{4}), 1);
  EXPECT_EQ(run(DType::F64, ROp::Min, -0.5, 0.25), -0.5);
  EXPECT_EQ(run(DType::F32, ROp::Max, -1.5f, -2.5f), -1.5f);
  // Integer overflow wraps.
  EXPECT_EQ(run(DType::I32, ROp::Sum, std::numeric_limits<std::int32_t>::max(), std::int32_t{1}),
            std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(run(DType::U16, ROp::Prod, std::uint16_t{65535}, std::uint16_t{65535}), 1);
  EXPECT_EQ(run(DType::I8, ROp::Prod, std::int8_t{-128}, std::int8_t{-1}), -128);
  // (1 + 2i)(3 - i) = 5 + 5i
  EXPECT_EQ(run(DType::C64, ROp::Prod, std::complex<double>(1, 2), std::complex<double>(3, -1)),
            std::complex<double>(5, 5));
  EXPECT_EQ(run(DType::C32, ROp::Sum, std::complex<float>(1, 2), std::complex<float>(3, -1)),
            std::complex<float>(4, 1));
}

// Long buffers (past the unrolled blocks, with a tail) at aligned and misaligned addresses.
TEST(ReduceOps, LongAndMisalignedBuffers) {
  constexpr std::size_t n = 3 * 1024 + 7;
  std::vector<std::int32_t> a(n), b(n);
  std::vector<double> x(n), y(n);
  for (std::size_t i = 0; i < n; ++i) {
    a[i] = static_cast<std::int32_t>(i * 2654435761u % 2001) - 1000;
    b[i] = static_cast<std::int32_t>(i * 40503u % 999) - 500;
    x[i] = static_cast<double>(a[i]) / 8;
    y[i] = static_cast<double>(b[i]) / 4;
  }
  for (std::size_t shift : {0, 1, 3}) {
    std::vector<unsigned char> s(n * 8 + 16), d(n * 8 + 16);
    std::memcpy(s.data() + shift, a.data(), n * 4);
    std::memcpy(d.data() + shift, b.data(), n * 4);
    Reducer{.type = DType::I32, .op = ROp::Sum}.apply(s.data() + shift, d.data() + shift, n * 4, true, nullptr);
    std::vector<std::int32_t> got(n);
    std::memcpy(got.data(), d.data() + shift, n * 4);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], a[i] + b[i]) << "shift " << shift << " at " << i;

    std::memcpy(s.data() + shift, x.data(), n * 8);
    std::memcpy(d.data() + shift, y.data(), n * 8);
    Reducer{.type = DType::F64, .op = ROp::Max}.apply(s.data() + shift, d.data() + shift, n * 8, false, nullptr);
    std::vector<double> m(n);
    std::memcpy(m.data(), d.data() + shift, n * 8);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(m[i], x[i] > y[i] ? x[i] : y[i]) << "shift " << shift << " at " << i;
  }
}

TEST(ReduceOps, InvalidPairIsNoOp) {
  std::complex<double> s(1, 2), d(3, 4);
  Reducer{.type = DType::C64, .op = ROp::Max}.apply(&s, &d, sizeof(d), true, nullptr);
  EXPECT_EQ(d, std::complex<double>(3, 4));
  double fs = 1.5, fd = 2.5;
  Reducer{.type = DType::F64, .op = ROp::Band}.apply(&fs, &fd, sizeof(fd), true, nullptr);
  EXPECT_EQ(fd, 2.5);
  std::uint8_t bs = 1, bd = 0;
  Reducer{.type = DType::Byte, .op = ROp::Land}.apply(&bs, &bd, 1, true, nullptr);
  EXPECT_EQ(bd, 0);
  // A user operation without a function does nothing either.
  Reducer{.type = DType::Byte, .op = ROp::User}.apply(&bs, &bd, 1, true, nullptr);
  EXPECT_EQ(bd, 0);
}

namespace {

// A non-commutative user operation on pairs of int64: a op b = (10 a.x + b.x, 10 a.y + b.y).
struct Pair {
  std::int64_t x, y;
};
struct Calls {
  int calls = 0;
  std::uint64_t count = 0;
};
void shift_add(const void* in, void* inout, std::uint64_t count, void* ctx) {
  auto* c = static_cast<Calls*>(ctx);
  ++c->calls;
  c->count = count;
  const Pair* a = static_cast<const Pair*>(in);
  Pair* b = static_cast<Pair*>(inout);
  for (std::uint64_t i = 0; i < count; ++i) b[i] = {10 * a[i].x + b[i].x, 10 * a[i].y + b[i].y};
}

}  // namespace

TEST(ReduceOps, UserOperationOrientation) {
  const std::vector<Pair> src = {{1, 2}, {3, -4}, {5, 6}};
  const std::vector<Pair> dst = {{7, 8}, {9, 0}, {-1, 2}};
  const std::uint64_t bytes = src.size() * sizeof(Pair);
  Calls calls;
  Reducer r{.type = DType::Byte, .op = ROp::User, .fn = shift_add, .ctx = &calls, .elem = sizeof(Pair),
            .commutative = false};

  // src_first: dst = src op dst.
  std::vector<Pair> d = dst;
  r.apply(src.data(), d.data(), bytes, true, nullptr);
  EXPECT_EQ(calls.calls, 1);
  EXPECT_EQ(calls.count, src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(d[i].x, 10 * src[i].x + dst[i].x);
    EXPECT_EQ(d[i].y, 10 * src[i].y + dst[i].y);
  }

  // !src_first: dst = dst op src, through the scratch; src is left alone.
  d = dst;
  std::vector<Pair> scratch(src.size());
  std::vector<Pair> s = src;
  r.apply(s.data(), d.data(), bytes, false, scratch.data());
  EXPECT_EQ(calls.calls, 2);
  EXPECT_EQ(calls.count, src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(d[i].x, 10 * dst[i].x + src[i].x);
    EXPECT_EQ(d[i].y, 10 * dst[i].y + src[i].y);
    EXPECT_EQ(s[i].x, src[i].x);
    EXPECT_EQ(s[i].y, src[i].y);
  }

  // Declared commutative, the operation is called as is and needs no scratch.
  r.commutative = true;
  d = dst;
  r.apply(src.data(), d.data(), bytes, false, nullptr);
  EXPECT_EQ(calls.calls, 3);
  for (std::size_t i = 0; i < src.size(); ++i) EXPECT_EQ(d[i].x, 10 * src[i].x + dst[i].x);
}

TEST(ReduceOps, ZeroBytes) {
  Calls calls;
  for (DType t : kTypes)
    for (ROp o : kOps) {
      Reducer r{.type = t, .op = o, .fn = shift_add, .ctx = &calls, .elem = dtype_size(t), .commutative = false};
      r.apply(nullptr, nullptr, 0, true, nullptr);
      r.apply(nullptr, nullptr, 0, false, nullptr);
    }
  EXPECT_EQ(calls.calls, 0);
  std::int32_t s = 5, d = 6;
  Reducer{.type = DType::I32, .op = ROp::Sum}.apply(&s, &d, 0, true, nullptr);
  EXPECT_EQ(d, 6);
}
