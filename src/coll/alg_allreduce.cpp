// Allreduce algorithms. Input: the Send buffer (the Recv buffer when in place); result:
// every rank's Recv buffer.
#include <algorithm>

#include "coll/building.hpp"

namespace tandem::coll {

namespace {
Loc plus(Loc l, std::uint64_t off) { return at(l.buf, l.off + off); }
bool same(Loc x, Loc y) { return x.buf == y.buf && x.off == y.off; }
Range span(const std::vector<Range>& blocks, int lo, int hi) {  // blocks [lo, hi)
  const Range& first = blocks[static_cast<std::size_t>(lo)];
  const Range& last = blocks[static_cast<std::size_t>(hi - 1)];
  return {first.off, last.off + last.bytes - first.off};
}
}  // namespace

HalvingResult reduce_scatter_halving(Builder& b, Loc input, Loc acc, std::uint64_t count) {
  int p = b.size(), r = b.rank();
  std::uint64_t n = count * b.elem_size();
  HalvingResult h;
  h.p2 = pow2_floor(p);
  h.rem = p - h.p2;
  h.blocks = split_even(count, h.p2, b.elem_size());
  StepId prev = same(input, acc) || !n ? kNoStep : b.copy(input, acc, n);
  std::uint64_t tmp = b.scratch(n);
  if (r < 2 * h.rem) {
    if (r % 2 == 0) {
      if (n) b.send(r + 1, acc, n, {prev});
      return h;  // vrank -1: folded away
    }
    if (n) {
      StepId got = b.recv(r - 1, at(Buf::Tmp, tmp), n);
      prev = b.reduce(at(Buf::Tmp, tmp), acc, n, true, {prev, got});
    }
    h.vrank = r / 2;
  } else {
    h.vrank = r - h.rem;
  }
  int lo = 0, hi = h.p2;
  for (int d = h.p2 / 2; d >= 1; d /= 2) {
    int pv = h.vrank ^ d, mid = lo + (hi - lo) / 2;
    bool upper = (h.vrank & d) != 0;
    Range give = span(h.blocks, upper ? lo : mid, upper ? mid : hi);
    Range keep = span(h.blocks, upper ? mid : lo, upper ? hi : mid);
    int peer = h.real(pv);
    if (give.bytes) b.send(peer, plus(acc, give.off), give.bytes, {prev});
    if (keep.bytes) {
      // The scratch area was read by the previous reduce (prev): receive after it.
      StepId got = b.recv(peer, at(Buf::Tmp, tmp + keep.off), keep.bytes, {prev});
      prev = b.reduce(at(Buf::Tmp, tmp + keep.off), plus(acc, keep.off), keep.bytes, pv < h.vrank, {prev, got});
    }
    if (upper) lo = mid;
    else hi = mid;
  }
  return h;
}

namespace {

// Reduce to rank 0 down a binomial tree (in rank order), then broadcast back.
Schedule reduce_bcast(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  std::uint64_t n = a.count * a.elem_size;
  Loc input = a.in_place ? at(Buf::Recv, 0) : at(Buf::Send, 0);
  // Fan-out k: k-nomial trees of radix k (2, the default: binomial; p or more: flat, every
  // rank a child of rank 0, the fewest hops for small vectors).
  int k = a.fanout > 2 ? a.fanout : 2;
  TreeKind kind = k == 2 ? TreeKind::Binomial : TreeKind::Knomial;
  tree_reduce(b, kind, k, 0, input, at(Buf::Recv, 0), n, a.segsize);
  b.fence();
  tree_bcast(b, kind, k, 0, Range{0, n}, a.segsize);
  return std::move(b).finish();
}

// Everyone sends its input to everyone, then combines all p inputs locally in rank order.
Schedule allgather_reduce(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  int p = a.size, r = a.rank;
  std::uint64_t n = a.count * a.elem_size;
  if (!n) return std::move(b).finish();
  std::vector<Loc> in(static_cast<std::size_t>(p));
  std::vector<StepId> ready(static_cast<std::size_t>(p), kNoStep);
  Loc mine = at(Buf::Send, 0);
  if (a.in_place) {  // the result overwrites the input: keep a copy to send and combine
    mine = at(Buf::Tmp, b.scratch(n));
    ready[static_cast<std::size_t>(r)] = b.copy(at(Buf::Recv, 0), mine, n);
  }
  in[static_cast<std::size_t>(r)] = mine;
  for (int k = 1; k < p; ++k) {  // staggered: rank r sends to r+1 first
    int to = (r + k) % p, from = (r - k + p) % p;
    b.send(to, mine, n, {ready[static_cast<std::size_t>(r)]});
    in[static_cast<std::size_t>(from)] = at(Buf::Tmp, b.scratch(n));
    ready[static_cast<std::size_t>(from)] = b.recv(from, in[static_cast<std::size_t>(from)], n);
  }
  // In place, the result overwrites the input: only after the input was saved.
  StepId saved = a.in_place ? ready[static_cast<std::size_t>(r)] : kNoStep;
  StepId prev = b.copy(in[0], at(Buf::Recv, 0), n, {ready[0], saved});
  for (int j = 1; j < p; ++j)
    prev = b.reduce(in[static_cast<std::size_t>(j)], at(Buf::Recv, 0), n, false, {prev, ready[static_cast<std::size_t>(j)]});
  return std::move(b).finish();
}

// Recursive doubling on the whole vector; ranks beyond a power of two fold pairwise
// (consecutive ranks, so operands stay in rank order).
Schedule recursive_doubling(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  int p = a.size, r = a.rank;
  std::uint64_t n = a.count * a.elem_size;
  if (!n) return std::move(b).finish();
  Loc acc = at(Buf::Recv, 0);
  StepId prev = a.in_place ? kNoStep : b.copy(at(Buf::Send, 0), acc, n);
  std::uint64_t tmp = b.scratch(n);
  int p2 = pow2_floor(p), rem = p - p2, vrank;
  auto real = [&](int v) { return v < rem ? 2 * v + 1 : v + rem; };
  if (r < 2 * rem) {
    if (r % 2 == 0) {
      StepId s = b.send(r + 1, acc, n, {prev});
      b.recv(r + 1, acc, n, {s});
      return std::move(b).finish();
    }
    StepId got = b.recv(r - 1, at(Buf::Tmp, tmp), n);
    prev = b.reduce(at(Buf::Tmp, tmp), acc, n, true, {prev, got});
    vrank = r / 2;
  } else {
    vrank = r - rem;
  }
  for (int d = 1; d < p2; d *= 2) {
    int pv = vrank ^ d, peer = real(pv);
    StepId s = b.send(peer, acc, n, {prev});
    StepId got = b.recv(peer, at(Buf::Tmp, tmp), n, {prev});
    prev = b.reduce(at(Buf::Tmp, tmp), acc, n, pv < vrank, {prev, s, got});
  }
  if (r < 2 * rem) b.send(r - 1, acc, n, {prev});
  return std::move(b).finish();
}

// Ring reduce-scatter then ring allgather over p blocks; with a segment size each block
// moves in segments pipelined around the ring (Open MPI's segmented ring).
Schedule ring(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  int p = a.size, r = a.rank;
  std::uint64_t n = a.count * a.elem_size;
  StepId init = a.in_place || !n ? kNoStep : b.copy(at(Buf::Send, 0), at(Buf::Recv, 0), n);
  if (p == 1 || !n) return std::move(b).finish();
  std::vector<Range> blocks = split_even(a.count, p, a.elem_size);
  std::uint64_t largest = 0;
  for (const Range& blk : blocks) largest = std::max(largest, blk.bytes);
  std::uint64_t slot[2] = {b.scratch(largest), b.scratch(largest)};
  int right = (r + 1) % p, left = (r - 1 + p) % p;
  auto segs_of = [&](int blk) {
    const Range& x = blocks[static_cast<std::size_t>(blk)];
    return segments(x.off, x.bytes, a.segsize, a.elem_size);
  };
  std::size_t nseg = segments(0, largest, a.segsize, a.elem_size).size();
  std::vector<StepId> reduced(nseg, init);                            // last reduce per segment index
  std::vector<std::vector<StepId>> slot_read(2, std::vector<StepId>(nseg, kNoStep));  // last reader per slot segment
  for (int k = 0; k < p - 1; ++k) {
    int sb = (r - k + p) % p, rb = (r - k - 1 + p) % p;
    auto ssegs = segs_of(sb), rsegs = segs_of(rb);
    for (std::size_t j = 0; j < ssegs.size(); ++j)
      b.send(right, at(Buf::Recv, ssegs[j].off), ssegs[j].bytes, {k == 0 ? init : reduced[j]});
    std::vector<StepId> next(nseg, kNoStep);
    for (std::size_t j = 0; j < rsegs.size(); ++j) {
      std::uint64_t rel = rsegs[j].off - blocks[static_cast<std::size_t>(rb)].off;
      Loc t = at(Buf::Tmp, slot[k % 2] + rel);
      StepId got = b.recv(left, t, rsegs[j].bytes, {slot_read[k % 2][j]});
      next[j] = b.reduce(t, at(Buf::Recv, rsegs[j].off), rsegs[j].bytes, false, {got, init});
      slot_read[k % 2][j] = next[j];
    }
    reduced = next;
  }
  b.fence();
  // Rank r now holds block r+1; pass blocks around once more.
  std::vector<Range> order(static_cast<std::size_t>(p));
  for (int k = 0; k < p - 1; ++k) {
    int sb = (r + 1 - k + p) % p, rb = (r - k + p) % p;
    auto ssegs = segs_of(sb), rsegs = segs_of(rb);
    for (std::size_t j = 0; j < ssegs.size(); ++j)
      b.send(right, at(Buf::Recv, ssegs[j].off), ssegs[j].bytes, {k == 0 ? kNoStep : reduced[j]});
    std::vector<StepId> next(nseg, kNoStep);
    for (std::size_t j = 0; j < rsegs.size(); ++j) next[j] = b.recv(left, at(Buf::Recv, rsegs[j].off), rsegs[j].bytes);
    reduced = next;
  }
  return std::move(b).finish();
}

// Rabenseifner: recursive-halving reduce-scatter, then recursive-doubling allgather.
Schedule rabenseifner(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  int r = a.rank;
  std::uint64_t n = a.count * a.elem_size;
  Loc acc = at(Buf::Recv, 0);
  HalvingResult h = reduce_scatter_halving(b, a.in_place ? acc : at(Buf::Send, 0), acc, a.count);
  if (!n) return std::move(b).finish();
  b.fence();
  if (h.vrank >= 0) {
    StepId prev = kNoStep;
    for (int d = 1; d < h.p2; d *= 2) {
      int pv = h.vrank ^ d;
      int mine = h.vrank & ~(d - 1), theirs = pv & ~(d - 1);
      Range give = span(h.blocks, mine, mine + d), get = span(h.blocks, theirs, theirs + d);
      if (give.bytes) b.send(h.real(pv), at(Buf::Recv, give.off), give.bytes, {prev});
      StepId got = get.bytes ? b.recv(h.real(pv), at(Buf::Recv, get.off), get.bytes) : kNoStep;
      prev = b.nop({prev, got});
    }
    if (r < 2 * h.rem) b.send(r - 1, acc, n, {prev});
  } else {
    b.recv(r + 1, acc, n);
  }
  return std::move(b).finish();
}

}  // namespace

std::vector<Algorithm> allreduce_algorithms() {
  return {
      {"reduce_bcast", Coll::Allreduce, true, 2, false, reduce_bcast,
       "k-nomial reduce to rank 0, then k-nomial broadcast (both segmented; fan-out 2: binomial)"},
      {"allgather_reduce", Coll::Allreduce, false, 0, false, allgather_reduce,
       "every input to every rank, combined locally in rank order"},
      {"recursive_doubling", Coll::Allreduce, false, 0, false, recursive_doubling,
       "log2(p) exchanges of the whole vector; extra ranks fold pairwise"},
      {"ring", Coll::Allreduce, false, 0, true, ring, "ring reduce-scatter, then ring allgather, over p blocks"},
      {"segmented_ring", Coll::Allreduce, true, 0, true, ring,
       "the ring with each block moved in segments, pipelined around the ring"},
      {"rabenseifner", Coll::Allreduce, false, 0, true, rabenseifner,
       "recursive-halving reduce-scatter, then recursive-doubling allgather"},
  };
}

}  // namespace tandem::coll
