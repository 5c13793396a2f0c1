// coll_verify: every tandem collective algorithm against the MPI library's own collective.
//
// For each collective, algorithm, count, datatype/operation, root and in-place mode, runs
// tandem's nonblocking collective (C++ API) and the MPI library's blocking one on inputs
// unique per rank and element, and compares the results byte for byte wherever MPI
// defines them. A non-commutative user operation (composition of affine maps) checks that
// reductions combine in rank order; algorithms that reorder operands must refuse it.
//
// usage: coll_verify [--coll NAME] [--alg NAME] [--counts LIST] [--quick] [--hier]
// The hierarchical compositions (hier/...) run only with --hier (then only they): on one
// machine their node map is one node unless TANDEM_COLL_NODES groups the ranks.
// Exit status 0 when every check passed; rank 0 prints one summary line.
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tandem/coll.hpp"

namespace {

int rank_ = 0, size_ = 1;
long checks = 0, failures = 0, refused = 0;

struct Affine {
  std::uint64_t a, b;
};

// inout = in ∘ inout: apply `in` first, then `inout` (associative, not commutative).
void affine_op(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* x = static_cast<Affine*>(in);
  auto* y = static_cast<Affine*>(inout);
  for (int i = 0; i < *len; ++i) y[i] = Affine{x[i].a * y[i].a, x[i].b * y[i].a + y[i].b};
}

struct TypeOp {
  const char* name;
  MPI_Datatype type;
  MPI_Op op;
  int size;
  bool commutative;
};

// Fills `bytes` with values unique per rank and element (small integers for exact sums).
void fill(void* buf, std::size_t count, const TypeOp& t, int salt) {
  for (std::size_t i = 0; i < count; ++i) {
    long v = (long)((i * 131 + (std::size_t)salt * 7919) % 100003) - 50000;
    char* p = static_cast<char*>(buf) + i * (std::size_t)t.size;
    if (t.type == MPI_LONG_LONG) { long long x = v; std::memcpy(p, &x, 8); }
    else if (t.type == MPI_DOUBLE) { double x = (double)v; std::memcpy(p, &x, 8); }
    else if (t.type == MPI_INT) { int x = (int)v; std::memcpy(p, &x, 4); }
    else if (t.type == MPI_UNSIGNED) { unsigned x = (unsigned)(v * 2654435761u); std::memcpy(p, &x, 4); }
    else if (t.type == MPI_FLOAT) { float x = (float)v; std::memcpy(p, &x, 4); }
    else if (t.type == MPI_UNSIGNED_SHORT) { unsigned short x = (unsigned short)(v | 1); std::memcpy(p, &x, 2); }
    else if (t.type == MPI_CHAR) { char x = (char)(v ^ salt); std::memcpy(p, &x, 1); }
    else { Affine x{(std::uint64_t)(v * 2 + 1), (std::uint64_t)(salt * 1000003 + i)}; std::memcpy(p, &x, 16); }
  }
}

const char* coll_list[] = {"bcast", "reduce", "allreduce", "allgather", "alltoall", "gather", "scatter",
                           "reduce_scatter_block", "barrier"};

bool reduces(const std::string& c) { return c == "reduce" || c == "allreduce" || c == "reduce_scatter_block"; }
bool rooted(const std::string& c) { return c == "bcast" || c == "reduce" || c == "gather" || c == "scatter"; }

// Runs one case; returns false on a mismatch (reported).
void run_case(const std::string& coll, const std::string& alg, int count, const TypeOp& t, int root, bool in_place,
              std::uint64_t segsize) {
  const int p = size_, r = rank_;
  const std::size_t n = (std::size_t)count, es = (std::size_t)t.size;
  // Buffer sizes in elements.
  std::size_t sendn = n, recvn = n;
  if (coll == "allgather" || coll == "gather") recvn = n * p;
  if (coll == "alltoall") sendn = recvn = n * p;
  if (coll == "scatter") sendn = n * p;
  if (coll == "reduce_scatter_block") sendn = n * p;
  if (coll == "reduce_scatter_block" && in_place) recvn = n * p;
  std::vector<char> in(sendn * es + 1), mine(recvn * es + 1, 0x5a), ref(recvn * es + 1, 0x5a);
  fill(in.data(), sendn, t, r + 1);
  bool root_here = r == root;
  bool ip = in_place && (!rooted(coll) || root_here || coll == "bcast");
  // In place: the input lives in the receive buffer (for gather, at the root's block; for
  // allgather, at this rank's block).
  auto prepare = [&](std::vector<char>& out) {
    std::memset(out.data(), 0x5a, out.size());
    if (coll == "bcast") {
      if (root_here) std::memcpy(out.data(), in.data(), n * es);
    } else if (ip) {
      if (coll == "allgather" || coll == "gather") std::memcpy(out.data() + (std::size_t)r * n * es, in.data(), n * es);
      else if (coll != "scatter") std::memcpy(out.data(), in.data(), sendn * es);
    }
  };
  prepare(mine);
  prepare(ref);
  const void* sb = ip && coll != "scatter" ? MPI_IN_PLACE : in.data();
  void* rb_mine = ip && coll == "scatter" ? MPI_IN_PLACE : (void*)mine.data();
  void* rb_ref = ip && coll == "scatter" ? MPI_IN_PLACE : (void*)ref.data();
  if (std::getenv("COLL_VERIFY_TRACE"))
    std::fprintf(stderr, "rank %d: %s %s segsize %llu count %d %s root %d%s\n", r, coll.c_str(), alg.c_str(),
                 (unsigned long long)segsize, count, t.name, root, in_place ? " in place" : "");
  tandem::CollOptions o;
  o.algorithm = alg;
  o.segsize = segsize;
  tandem::CollRequest req;
  try {
    if (coll == "bcast") req = tandem::ibcast(mine.data(), count, t.type, root, MPI_COMM_WORLD, o);
    else if (coll == "reduce") req = tandem::ireduce(sb, rb_mine, count, t.type, t.op, root, MPI_COMM_WORLD, o);
    else if (coll == "allreduce") req = tandem::iallreduce(sb, rb_mine, count, t.type, t.op, MPI_COMM_WORLD, o);
    else if (coll == "allgather") req = tandem::iallgather(sb, rb_mine, count, t.type, MPI_COMM_WORLD, o);
    else if (coll == "alltoall") req = tandem::ialltoall(sb, rb_mine, count, t.type, MPI_COMM_WORLD, o);
    else if (coll == "gather") req = tandem::igather(sb, rb_mine, count, t.type, root, MPI_COMM_WORLD, o);
    else if (coll == "scatter") req = tandem::iscatter(in.data(), rb_mine, count, t.type, root, MPI_COMM_WORLD, o);
    else if (coll == "reduce_scatter_block")
      req = tandem::ireduce_scatter_block(sb, rb_mine, count, t.type, t.op, MPI_COMM_WORLD, o);
    else req = tandem::ibarrier(MPI_COMM_WORLD, o);
  } catch (const tandem::CollError& e) {
    // A segment size given to an algorithm without segments: that variant does not exist.
    if (segsize && std::strstr(e.what(), "segment size")) return;
    // Allowed only for an operation the algorithm cannot combine in order.
    if (!t.commutative && std::strstr(e.what(), "commutative")) {
      ++refused;
      return;
    }
    ++failures;
    std::fprintf(stderr, "rank %d: %s %s count %d %s root %d%s: unexpected error: %s\n", r, coll.c_str(), alg.c_str(),
                 count, t.name, root, in_place ? " in place" : "", e.what());
    return;
  }
  int err = req.wait();
  // The reference never uses MPI_IN_PLACE for the send side (MPI defines the in-place call
  // as equivalent): MPICH 4.0.2 crashes in MPI_Reduce with MPI_IN_PLACE at a non-zero root
  // (1000 long longs, 2 ranks).
  sb = in.data();
  if (coll == "bcast") MPI_Bcast(ref.data(), count, t.type, root, MPI_COMM_WORLD);
  else if (coll == "reduce") MPI_Reduce(sb, rb_ref, count, t.type, t.op, root, MPI_COMM_WORLD);
  else if (coll == "allreduce") MPI_Allreduce(sb, rb_ref, count, t.type, t.op, MPI_COMM_WORLD);
  else if (coll == "allgather") MPI_Allgather(sb, count, t.type, rb_ref, count, t.type, MPI_COMM_WORLD);
  else if (coll == "alltoall") MPI_Alltoall(sb, count, t.type, rb_ref, count, t.type, MPI_COMM_WORLD);
  else if (coll == "gather") MPI_Gather(sb, count, t.type, rb_ref, count, t.type, root, MPI_COMM_WORLD);
  else if (coll == "scatter") MPI_Scatter(in.data(), count, t.type, rb_ref, count, t.type, root, MPI_COMM_WORLD);
  else if (coll == "reduce_scatter_block") MPI_Reduce_scatter_block(sb, rb_ref, count, t.type, t.op, MPI_COMM_WORLD);
  else MPI_Barrier(MPI_COMM_WORLD);
  ++checks;
  // The defined part of the receive buffer.
  std::size_t defined = recvn * es;
  if ((coll == "reduce" || coll == "gather") && !root_here) defined = 0;
  if (coll == "scatter" && ip) defined = 0;
  // Compared: the whole buffer (a write where MPI writes nothing is an error too), except
  // in-place Reduce_scatter_block, which defines only the first block.
  std::size_t compared = mine.size();
  if (coll == "reduce_scatter_block" && ip) compared = defined = n * es;
  bool ok = err == MPI_SUCCESS && std::memcmp(mine.data(), ref.data(), compared) == 0;
  if (!ok) {
    std::size_t first = 0;
    while (first < mine.size() && mine[first] == ref[first]) ++first;
    ++failures;
    if (failures < 20)
      std::fprintf(stderr,
                   "rank %d of %d: MISMATCH %s %s (segsize %llu) count %d %s root %d%s: err %d, first differing byte "
                   "%zu of %zu (defined part %zu)\n",
                   r, p, coll.c_str(), alg.c_str(), (unsigned long long)segsize, count, t.name, root,
                   in_place ? " in place" : "", err, first, mine.size(), defined);
  }
}

std::vector<int> parse_counts(const char* s) {
  std::vector<int> out;
  while (*s) {
    out.push_back(std::atoi(s));
    while (*s && *s != ',') ++s;
    if (*s == ',') ++s;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  std::string only_coll, only_alg;
  std::vector<int> counts = {0, 1, 7, 1000, 262144};
  bool quick = false, hier = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--coll" && i + 1 < argc) only_coll = argv[++i];
    else if (a == "--alg" && i + 1 < argc) only_alg = argv[++i];
    else if (a == "--counts" && i + 1 < argc) counts = parse_counts(argv[++i]);
    else if (a == "--quick") quick = true;
    else if (a == "--hier") hier = true;
    else {
      if (rank_ == 0) std::fprintf(stderr, "usage: coll_verify [--coll NAME] [--alg NAME] [--counts LIST] [--quick] [--hier]\n");
      MPI_Finalize();
      return 2;
    }
  }
  MPI_Datatype affine;
  MPI_Type_contiguous(2, MPI_UINT64_T, &affine);
  MPI_Type_commit(&affine);
  MPI_Op affine_compose;
  MPI_Op_create(affine_op, 0, &affine_compose);
  const TypeOp reductions[] = {
      {"long long sum", MPI_LONG_LONG, MPI_SUM, 8, true},   {"double sum", MPI_DOUBLE, MPI_SUM, 8, true},
      {"int max", MPI_INT, MPI_MAX, 4, true},              {"float min", MPI_FLOAT, MPI_MIN, 4, true},
      {"unsigned bxor", MPI_UNSIGNED, MPI_BXOR, 4, true},  {"unsigned short prod", MPI_UNSIGNED_SHORT, MPI_PROD, 2, true},
      {"affine compose (non-commutative)", affine, affine_compose, 16, false},
  };
  const TypeOp moves[] = {{"int", MPI_INT, MPI_OP_NULL, 4, true}, {"char", MPI_CHAR, MPI_OP_NULL, 1, true}};

  for (const char* c : coll_list) {
    std::string coll = c;
    if (!only_coll.empty() && coll != only_coll) continue;
    for (const std::string& alg : tandem::algorithm_names(coll)) {
      if (!only_alg.empty() && alg != only_alg) continue;
      if (only_alg.empty() && (alg.rfind("hier/", 0) == 0) != hier) continue;
      std::vector<int> roots = {0};
      if (rooted(coll)) {
        if (size_ > 1) roots.push_back(size_ - 1);
        if (size_ > 2) roots.push_back(size_ / 2);
      }
      for (int count : counts) {
        if (coll == "barrier" && count != counts.front()) continue;
        bool big = count > 10000;
        std::vector<const TypeOp*> types;
        if (reduces(coll)) {
          for (const TypeOp& t : reductions)
            if (!big || &t == &reductions[0] || (&t == &reductions[6] && !quick)) types.push_back(&t);
        } else {
          types.push_back(&moves[0]);
          if (!big) types.push_back(&moves[1]);
        }
        for (const TypeOp* t : types)
          for (int root : roots)
            for (bool ip : {false, true})
              for (std::uint64_t seg : {std::uint64_t{0}, std::uint64_t{big ? 65536u : 24u}}) {
                if (big && (ip || root != roots.front()) && quick) continue;
                run_case(coll, alg, count, *t, root, ip, seg);
              }
      }
    }
  }
  long totals[3] = {checks, failures, refused}, sums[3];
  MPI_Reduce(totals, sums, 3, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank_ == 0)
    std::printf("coll_verify: %d ranks: %ld checks, %ld failures, %ld refused (non-commutative on a reordering algorithm)\n",
                size_, sums[0], sums[1], sums[2]);
  MPI_Op_free(&affine_compose);
  MPI_Type_free(&affine);
  long any = failures, all = 0;
  MPI_Allreduce(&any, &all, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  MPI_Finalize();
  return all ? 1 : 0;
}
