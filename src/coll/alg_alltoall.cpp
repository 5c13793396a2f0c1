// Alltoall algorithms. Block j of a rank's input goes to rank j; block j of its result
// comes from rank j. In place, the input is the receive buffer: it is first copied to
// scratch (the receives overwrite it).
#include <algorithm>

#include "coll/building.hpp"

namespace tandem::coll {

namespace {
void add_deps(Builder& b, StepId s, const std::vector<StepId>& deps) {
  for (StepId d : deps) b.add_dep(s, d);
}

struct Input {
  Loc base;                // block j at base.off + j*n
  StepId ready = kNoStep;  // in place: the copy to scratch
};

Input input(Builder& b, const Args& a) {
  const std::uint64_t total = static_cast<std::uint64_t>(a.size) * a.count * a.elem_size;
  if (!a.in_place) return {at(Buf::Send, 0), kNoStep};
  Loc t = at(Buf::Tmp, b.scratch(total));
  return {t, b.copy(at(Buf::Recv, 0), t, total)};
}

Loc blk(Loc base, int j, std::uint64_t n) { return at(base.buf, base.off + static_cast<std::uint64_t>(j) * n); }

// Every receive and send posted at once.
Schedule linear(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (!a.count) return std::move(b).finish();
  const int p = a.size, r = a.rank;
  const std::uint64_t n = a.count * a.elem_size;
  if (a.in_place && p > 1) {
    // The own block stays where it is; the others are sent from a copy.
    Input in = input(b, a);
    for (int i = 1; i < p; ++i) b.recv((r - i + p) % p, blk(at(Buf::Recv, 0), (r - i + p) % p, n), n, {in.ready});
    for (int i = 1; i < p; ++i) b.send((r + i) % p, blk(in.base, (r + i) % p, n), n, {in.ready});
    return std::move(b).finish();
  }
  if (!a.in_place) b.copy(blk(at(Buf::Send, 0), r, n), blk(at(Buf::Recv, 0), r, n), n);
  for (int i = 1; i < p; ++i) b.recv((r - i + p) % p, blk(at(Buf::Recv, 0), (r - i + p) % p, n), n);
  for (int i = 1; i < p; ++i) b.send((r + i) % p, blk(at(Buf::Send, 0), (r + i) % p, n), n);
  return std::move(b).finish();
}

// p-1 steps, one after another: at step k send to r+k, receive from r-k.
Schedule pairwise(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (!a.count) return std::move(b).finish();
  const int p = a.size, r = a.rank;
  const std::uint64_t n = a.count * a.elem_size;
  Input in = a.in_place && p > 1 ? input(b, a) : Input{at(Buf::Send, 0), kNoStep};
  if (!a.in_place) b.copy(blk(in.base, r, n), blk(at(Buf::Recv, 0), r, n), n);
  StepId ps = in.ready, pr = kNoStep;
  for (int k = 1; k < p; ++k) {
    StepId s = b.send((r + k) % p, blk(in.base, (r + k) % p, n), n, {ps, pr, in.ready});
    StepId v = b.recv((r - k + p) % p, blk(at(Buf::Recv, 0), (r - k + p) % p, n), n, {ps, pr, in.ready});
    ps = s, pr = v;
  }
  return std::move(b).finish();
}

// Bruck: rotate the blocks so that position i holds the block for r+i; at distance k send
// the positions with bit k set to r+k (packed), receive the same positions from r-k
// (unpacked); then position i holds the block from r-i.
Schedule bruck(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (!a.count) return std::move(b).finish();
  const int p = a.size, r = a.rank;
  const std::uint64_t n = a.count * a.elem_size, P = static_cast<std::uint64_t>(p), R = static_cast<std::uint64_t>(r);
  const Loc src = at(a.in_place ? Buf::Recv : Buf::Send, 0), res = at(Buf::Recv, 0);
  if (p == 1) {
    if (!a.in_place) b.copy(src, res, n);
    return std::move(b).finish();
  }
  const Loc rot = at(Buf::Tmp, b.scratch(P * n));
  std::uint64_t most = 0;  // blocks moved at one step, at most
  for (int k = 1; k < p; k *= 2) {
    std::uint64_t c = 0;
    for (int i = 0; i < p; ++i) c += (i & k) != 0;
    most = std::max(most, c);
  }
  const Loc pack = at(Buf::Tmp, b.scratch(most * n)), unpack = at(Buf::Tmp, b.scratch(most * n));
  // rot[i] = src[(r + i) mod p]
  std::vector<StepId> rotated{b.copy(blk(src, r, n), rot, (P - R) * n)};
  if (r > 0) rotated.push_back(b.copy(src, blk(rot, p - r, n), R * n));
  std::vector<StepId> unpacked = rotated;  // the steps that last wrote rot
  StepId sent = kNoStep;                   // the last send (reads pack)
  std::vector<StepId> unpack_readers;      // the last unpacking copies (read unpack)
  for (int k = 1; k < p; k *= 2) {
    // Runs of positions with bit k set: [j, min(j + k, p)) for j = k, 3k, 5k, ...
    std::vector<std::pair<int, int>> runs;
    for (int j = k; j < p; j += 2 * k) runs.push_back({j, std::min(j + k, p) - j});
    std::vector<StepId> packed;
    std::uint64_t o = 0;
    for (auto [j, c] : runs) {
      StepId x = b.copy(blk(rot, j, n), at(Buf::Tmp, pack.off + o), static_cast<std::uint64_t>(c) * n, {sent});
      add_deps(b, x, unpacked);
      packed.push_back(x);
      o += static_cast<std::uint64_t>(c) * n;
    }
    sent = b.send((r + k) % p, pack, o);
    add_deps(b, sent, packed);
    StepId v = b.recv((r - k + p) % p, unpack, o);
    add_deps(b, v, unpack_readers);
    unpack_readers.clear();
    o = 0;
    for (auto [j, c] : runs) {
      StepId x = b.copy(at(Buf::Tmp, unpack.off + o), blk(rot, j, n), static_cast<std::uint64_t>(c) * n, {v});
      add_deps(b, x, packed);  // the packing read these positions
      unpack_readers.push_back(x);
      o += static_cast<std::uint64_t>(c) * n;
    }
    unpacked.insert(unpacked.end(), unpack_readers.begin(), unpack_readers.end());
  }
  // res[(r - i) mod p] = rot[i]
  for (int i = 0; i < p; ++i) {
    if (a.in_place && i == 0) continue;  // the own block is in place already
    StepId x = b.copy(blk(rot, i, n), blk(res, (r - i + p) % p, n), n);
    add_deps(b, x, unpacked);
  }
  return std::move(b).finish();
}

// Everything to rank 0 (each rank's whole input), transposed there, then each rank's
// result scattered from it.
Schedule gather_scatter(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (!a.count) return std::move(b).finish();
  const int p = a.size, r = a.rank;
  const std::uint64_t n = a.count * a.elem_size, P = static_cast<std::uint64_t>(p), total = P * n;
  const Loc res = at(Buf::Recv, 0);
  if (r != 0) {
    const Loc in = at(a.in_place ? Buf::Recv : Buf::Send, 0);
    StepId up = b.send(0, in, total);
    b.recv(0, res, total, {up});
    return std::move(b).finish();
  }
  if (p == 1) {
    if (!a.in_place) b.copy(at(Buf::Send, 0), res, n);
    return std::move(b).finish();
  }
  // rows[j]: rank j's input (row 0: the own input, copied when in place).
  Input own = input(b, a);
  const Loc rows = at(Buf::Tmp, b.scratch((P - 1) * total));
  auto row = [&](int j) {
    return j == 0 ? own.base : at(Buf::Tmp, rows.off + static_cast<std::uint64_t>(j - 1) * total);
  };
  std::vector<StepId> got(static_cast<std::size_t>(p), own.ready);
  for (int j = 1; j < p; ++j) got[static_cast<std::size_t>(j)] = b.recv(j, row(j), total);
  // cols[d] (d >= 1): what goes to rank d, block j from rank j.
  const Loc cols = at(Buf::Tmp, b.scratch((P - 1) * total));
  for (int d = 1; d < p; ++d) {
    const Loc col = at(Buf::Tmp, cols.off + static_cast<std::uint64_t>(d - 1) * total);
    std::vector<StepId> moved;
    for (int j = 0; j < p; ++j)
      moved.push_back(b.copy(blk(row(j), d, n), blk(col, j, n), n, {got[static_cast<std::size_t>(j)]}));
    StepId s = b.send(d, col, total);
    add_deps(b, s, moved);
  }
  for (int j = 0; j < p; ++j) {
    if (a.in_place && j == 0) continue;  // the own block is in place already
    b.copy(blk(row(j), 0, n), blk(res, j, n), n, {got[static_cast<std::size_t>(j)], own.ready});
  }
  return std::move(b).finish();
}

}  // namespace

std::vector<Algorithm> alltoall_algorithms() {
  return {
      {"linear", Coll::Alltoall, false, 0, false, linear, "all p-1 receives and sends posted at once"},
      {"pairwise", Coll::Alltoall, false, 0, false, pairwise,
       "p-1 steps one after another: at step k send to rank+k, receive from rank-k"},
      {"bruck", Coll::Alltoall, false, 0, false, bruck,
       "ceil(log2 p) steps, each moving about half the blocks (packed in scratch): few, larger messages"},
      {"gather_scatter", Coll::Alltoall, false, 0, false, gather_scatter,
       "every rank's input gathered to rank 0, transposed there, results scattered"},
  };
}

}  // namespace tandem::coll
