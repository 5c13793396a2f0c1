// reduce_kernels: tandem's local reduction kernels (src/coll/reduce_ops.hpp) against the
// MPI library's own (MPI_Reduce_local), for every predefined datatype and operation that
// both have, at a few vector sizes: nanoseconds per call, medians of alternated
// repetitions, and a check that both give the same bytes.
//
//   reduce_kernels_openmpi [-s SIZES] [-r REPS] [-t SECONDS] [--json]
//
// SIZES: bytes per vector, comma-separated (default 8,4096,262144); each size is rounded
// down to whole elements (at least one). Per (type, operation, size): the loop count is
// calibrated so that one repetition takes about SECONDS / REPS (default 0.02 s / 9), then
// tandem's and the MPI's kernels run REPS repetitions each, alternating; the median of each
// is reported, with min and max. Inputs: small integers (as the type: every result is
// exact), the same for both; before timing, one call of each on identical inputs must give
// identical results (`same`). Exit status 3 when any result differs. Runs on one rank.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "coll/mpi/types.hpp"
#include "coll/reduce_ops.hpp"
#include "common/units.hpp"

namespace {

using tandem::coll::DType;
using tandem::coll::Reducer;
using tandem::coll::ROp;

struct TypeCase {
  const char* name;
  MPI_Datatype type;
};
struct OpCase {
  const char* name;
  MPI_Op op;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Element i of input k, as the type's bytes: small integers, exact in every type.
void fill(void* buf, DType t, std::size_t n, int k) {
  auto* p = static_cast<unsigned char*>(buf);
  const std::uint32_t size = tandem::coll::dtype_size(t);
  for (std::size_t i = 0; i < n; ++i) {
    long v = static_cast<long>((i * 7 + static_cast<std::size_t>(k) * 3) % 5) + (k == 0 ? 1 : 0);
    unsigned char* e = p + i * size;
    switch (t) {
      case DType::F32: { float x = static_cast<float>(v); std::memcpy(e, &x, sizeof x); break; }
      case DType::F64: { double x = static_cast<double>(v); std::memcpy(e, &x, sizeof x); break; }
      case DType::F80: { long double x = static_cast<long double>(v); std::memset(e, 0, size); std::memcpy(e, &x, 10); break; }
      case DType::C32: { std::complex<float> x(static_cast<float>(v), 1.0f); std::memcpy(e, &x, sizeof x); break; }
      case DType::C64: { std::complex<double> x(static_cast<double>(v), 1.0); std::memcpy(e, &x, sizeof x); break; }
      case DType::C80: {
        std::complex<long double> x(static_cast<long double>(v), 1.0L);
        std::memset(e, 0, size);
        std::memcpy(e, &x, size);
        break;
      }
      case DType::Bool: e[0] = static_cast<unsigned char>(v & 1); break;
      default: {
        std::uint64_t x = static_cast<std::uint64_t>(v);
        std::memcpy(e, &x, size);  // little endian: the low bytes
        break;
      }
    }
  }
}

// Whether two result vectors agree (long double: its 10 significant bytes only).
bool same(const unsigned char* a, const unsigned char* b, DType t, std::size_t n) {
  const std::uint32_t size = tandem::coll::dtype_size(t);
  const std::uint32_t used = t == DType::F80 ? 10 : t == DType::C80 ? size : size;
  for (std::size_t i = 0; i < n; ++i) {
    if (t == DType::C80) {
      long double x[2], y[2];
      std::memcpy(x, a + i * size, sizeof x);
      std::memcpy(y, b + i * size, sizeof y);
      if (x[0] != y[0] || x[1] != y[1]) return false;
      continue;
    }
    if (std::memcmp(a + i * size, b + i * size, used) != 0) return false;
  }
  return true;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void usage() {
  std::fprintf(stderr, "usage: reduce_kernels [-s SIZES] [-r REPS] [-t SECONDS] [--json]\n");
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  std::vector<size_t> sizes = {8, 4096, 262144};
  int reps = 9;
  double budget = 0.02;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-s" && i + 1 < argc) {
      sizes.clear();
      std::string list = argv[++i], why;
      for (std::size_t b = 0; b <= list.size();) {
        std::size_t e = list.find(',', b);
        if (e == std::string::npos) e = list.size();
        std::uint64_t v = 0;
        if (!tandem::units::parse_bytes(list.substr(b, e - b), v, 1u << 30, &why)) {
          std::fprintf(stderr, "reduce_kernels: -s: %s\n", why.c_str());
          MPI_Finalize();
          return 2;
        }
        sizes.push_back(static_cast<size_t>(v));
        b = e + 1;
      }
    } else if (a == "-r" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (a == "-t" && i + 1 < argc) {
      budget = std::atof(argv[++i]);
    } else if (a == "--json") {
      json = true;
    } else {
      usage();
      MPI_Finalize();
      return 2;
    }
  }
  if (reps < 1 || budget <= 0) {
    usage();
    MPI_Finalize();
    return 2;
  }
  const TypeCase types[] = {{"int8", MPI_INT8_T},     {"uint8", MPI_UINT8_T},   {"int16", MPI_INT16_T},
                            {"int32", MPI_INT},       {"uint32", MPI_UNSIGNED}, {"int64", MPI_INT64_T},
                            {"uint64", MPI_UINT64_T}, {"float", MPI_FLOAT},     {"double", MPI_DOUBLE},
                            {"long_double", MPI_LONG_DOUBLE}, {"float_complex", MPI_C_FLOAT_COMPLEX},
                            {"double_complex", MPI_C_DOUBLE_COMPLEX}, {"bool", MPI_C_BOOL}, {"byte", MPI_BYTE}};
  const OpCase ops[] = {{"sum", MPI_SUM},   {"prod", MPI_PROD}, {"max", MPI_MAX}, {"min", MPI_MIN},
                        {"land", MPI_LAND}, {"lor", MPI_LOR},   {"lxor", MPI_LXOR}, {"band", MPI_BAND},
                        {"bor", MPI_BOR},   {"bxor", MPI_BXOR}};
  int differ = 0;
  if (!json) std::printf("%-15s %-5s %9s %12s %12s %7s %s\n", "type", "op", "bytes", "tandem_ns", "mpi_ns", "ratio", "same");
  for (const auto& tc : types) {
    auto dt = tandem::coll::dtype_of(tc.type);
    if (!dt) continue;
    const std::uint32_t esize = tandem::coll::dtype_size(*dt);
    for (const auto& oc : ops) {
      auto op = tandem::coll::rop_of(oc.op);
      if (!op || !tandem::coll::valid(*op, *dt)) continue;
      for (size_t bytes : sizes) {
        const std::size_t n = std::max<std::size_t>(1, bytes / esize);
        const std::size_t nb = n * esize;
        std::vector<unsigned char> src(nb), d1(nb), d2(nb), in(nb), init(nb);
        fill(src.data(), *dt, n, 1);
        fill(init.data(), *dt, n, 0);
        Reducer r;
        r.type = *dt;
        r.op = *op;
        r.elem = esize;
        // The same result?
        d1 = init;
        d2 = init;
        r.apply(src.data(), d1.data(), nb, true, nullptr);
        MPI_Reduce_local(src.data(), d2.data(), static_cast<int>(n), tc.type, oc.op);
        bool ok = same(d1.data(), d2.data(), *dt, n);
        differ += !ok;
        // Calibrate the loop count on tandem's kernel (the results stay bounded: the
        // destination is reset whenever it would grow, outside the timed loops).
        long loops = 1;
        for (;;) {
          double t0 = now_s();
          for (long k = 0; k < loops; ++k) r.apply(src.data(), d1.data(), nb, true, nullptr);
          double t = now_s() - t0;
          if (t >= budget / reps / 2 || loops > (1L << 30)) break;
          loops *= 2;
        }
        // Both kernels run on the same buffers (one destination, reset before each timed
        // loop), alternately, so neither gains from where its memory happens to lie.
        std::vector<double> ta, tm;
        for (int rep = 0; rep < reps; ++rep) {
          d1 = init;
          double t0 = now_s();
          for (long k = 0; k < loops; ++k) r.apply(src.data(), d1.data(), nb, true, nullptr);
          ta.push_back((now_s() - t0) * 1e9 / static_cast<double>(loops));
          d1 = init;
          t0 = now_s();
          for (long k = 0; k < loops; ++k) MPI_Reduce_local(src.data(), d1.data(), static_cast<int>(n), tc.type, oc.op);
          tm.push_back((now_s() - t0) * 1e9 / static_cast<double>(loops));
        }
        double a = median(ta), m = median(tm);
        if (json) {
          std::printf("{\"bench\":\"reduce_kernels\",\"type\":\"%s\",\"op\":\"%s\",\"bytes\":%zu,\"count\":%zu,"
                      "\"tandem_ns\":%.2f,\"tandem_min_ns\":%.2f,\"tandem_max_ns\":%.2f,\"mpi_ns\":%.2f,"
                      "\"mpi_min_ns\":%.2f,\"mpi_max_ns\":%.2f,\"reps\":%d,\"loops\":%ld,\"same\":%s}\n",
                      tc.name, oc.name, nb, n, a, *std::min_element(ta.begin(), ta.end()),
                      *std::max_element(ta.begin(), ta.end()), m, *std::min_element(tm.begin(), tm.end()),
                      *std::max_element(tm.begin(), tm.end()), reps, loops, ok ? "true" : "false");
        } else {
          std::printf("%-15s %-5s %9zu %12.1f %12.1f %7.2f %s\n", tc.name, oc.name, nb, a, m, m > 0 ? a / m : 0.0,
                      ok ? "yes" : "NO");
        }
      }
    }
  }
  std::fflush(stdout);
  MPI_Finalize();
  return differ ? 3 : 0;
}
