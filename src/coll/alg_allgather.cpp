// Allgather algorithms, and the allgather phases other collectives reuse (ring and
// recursive doubling over a general block layout, building.hpp).
//
// Layout: rank j's block is at Recv[j*n, (j+1)*n). Not in place, a rank first copies its
// send buffer into its block; in place, the block is already there.
#include <algorithm>

#include "coll/building.hpp"

namespace tandem::coll {

namespace {
void add_deps(Builder& b, StepId s, const std::vector<StepId>& deps) {
  for (StepId d : deps) b.add_dep(s, d);
}

StepId join(Builder& b, const std::vector<StepId>& all, StepId ready) {
  if (all.empty()) return ready;
  return b.nop(all);
}

Loc recv_at(std::uint64_t off) { return at(Buf::Recv, off); }
}  // namespace

std::vector<Range> block_runs(const std::vector<Range>& blocks, const std::vector<int>& idx) {
  std::vector<Range> out;
  for (int i : idx) {
    const Range& r = blocks[static_cast<std::size_t>(i)];
    if (!r.bytes) continue;
    if (!out.empty() && out.back().off + out.back().bytes == r.off)
      out.back().bytes += r.bytes;
    else
      out.push_back(r);
  }
  return out;
}

// Step k = 0..p-2: send block r-k to the right, receive block r-k-1 from the left; the
// block received at step k is forwarded at step k+1, segment by segment.
StepId allgather_ring(Builder& b, Buf buf, const std::vector<Range>& blocks, std::uint64_t segsize, StepId ready) {
  const int p = b.size(), r = b.rank();
  const std::uint32_t e = b.elem_size();
  if (p == 1) return ready;
  const int right = (r + 1) % p, left = (r - 1 + p) % p;
  std::vector<StepId> all, prev;
  for (int k = 0; k < p - 1; ++k) {
    const Range& sb = blocks[static_cast<std::size_t>((r - k + p) % p)];
    const Range& rb = blocks[static_cast<std::size_t>((r - k - 1 + 2 * p) % p)];
    auto ss = segments(sb.off, sb.bytes, segsize, e);
    for (std::size_t i = 0; i < ss.size(); ++i)
      all.push_back(b.send(right, at(buf, ss[i].off), ss[i].bytes, {ready, k ? prev[i] : kNoStep}));
    auto rs = segments(rb.off, rb.bytes, segsize, e);
    std::vector<StepId> cur;
    for (const Range& s : rs) cur.push_back(b.recv(left, at(buf, s.off), s.bytes, {ready}));
    all.insert(all.end(), cur.begin(), cur.end());
    prev = std::move(cur);
  }
  return join(b, all, ready);
}

// m = pow2_floor(p), x = p - m. Rank m+i (i < x) hands its block to rank i, ranks 0..m-1
// exchange by recursive doubling (rank i's group at distance d: the blocks of ranks
// [base, base+d) and of their partners m+[base, base+d)), rank i returns the whole
// result to m+i.
StepId allgather_recursive_doubling(Builder& b, Buf buf, const std::vector<Range>& blocks, StepId ready, bool folded) {
  const int p = b.size(), r = b.rank();
  if (p == 1) return ready;
  const int m = pow2_floor(p), x = p - m;
  std::vector<StepId> all;
  if (r >= m) {
    std::vector<StepId> sent;
    if (!folded)
      for (const Range& rg : block_runs(blocks, {r})) sent.push_back(b.send(r - m, at(buf, rg.off), rg.bytes, {ready}));
    all = sent;
    std::vector<int> rest;
    for (int j = 0; j < p; ++j)
      if (folded || j != r) rest.push_back(j);
    for (const Range& rg : block_runs(blocks, rest)) all.push_back(b.recv(r - m, at(buf, rg.off), rg.bytes, {ready}));
    return join(b, all, ready);
  }
  auto group = [&](int base, int d) {
    std::vector<int> idx;
    for (int j = base; j < base + d; ++j) idx.push_back(j);
    for (int j = base; j < std::min(base + d, x); ++j) idx.push_back(m + j);
    return idx;
  };
  std::vector<StepId> got;  // every receive so far: the data the next sends forward
  if (!folded && r < x)
    for (const Range& rg : block_runs(blocks, {r + m}))
      got.push_back(b.recv(r + m, at(buf, rg.off), rg.bytes, {ready}));
  all = got;
  for (int d = 1; d < m; d *= 2) {
    const int partner = r ^ d;
    for (const Range& rg : block_runs(blocks, group(r & ~(d - 1), d))) {
      StepId s = b.send(partner, at(buf, rg.off), rg.bytes, {ready});
      add_deps(b, s, got);
      all.push_back(s);
    }
    for (const Range& rg : block_runs(blocks, group(partner & ~(d - 1), d))) {
      StepId v = b.recv(partner, at(buf, rg.off), rg.bytes, {ready});
      got.push_back(v);
      all.push_back(v);
    }
  }
  if (r < x) {
    std::vector<int> rest;
    for (int j = 0; j < p; ++j)
      if (folded || j != r + m) rest.push_back(j);
    for (const Range& rg : block_runs(blocks, rest)) {
      StepId s = b.send(r + m, at(buf, rg.off), rg.bytes, {ready});
      add_deps(b, s, got);
      all.push_back(s);
    }
  }
  return join(b, all, ready);
}

namespace {

struct Setup {
  std::uint64_t n = 0;  // block bytes
  std::vector<Range> blocks;
  StepId ready = kNoStep;  // own block in place
};

Setup setup(Builder& b, const Args& a) {
  Setup s;
  s.n = a.count * a.elem_size;
  for (int j = 0; j < a.size; ++j) s.blocks.push_back({static_cast<std::uint64_t>(j) * s.n, s.n});
  if (!a.in_place) s.ready = b.copy(at(Buf::Send, 0), recv_at(static_cast<std::uint64_t>(a.rank) * s.n), s.n);
  return s;
}

Schedule ring(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (a.count) {
    Setup s = setup(b, a);
    allgather_ring(b, Buf::Recv, s.blocks, a.segsize, s.ready);
  }
  return std::move(b).finish();
}

Schedule recursive_doubling(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (a.count) {
    Setup s = setup(b, a);
    allgather_recursive_doubling(b, Buf::Recv, s.blocks, s.ready, false);
  }
  return std::move(b).finish();
}

// Binomial gather of the blocks to rank 0 (subtrees are contiguous runs of blocks), then
// binomial broadcast of the whole p*n buffer, pipelined by segment.
Schedule gather_bcast(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (!a.count) return std::move(b).finish();
  Setup s = setup(b, a);
  const int p = a.size, r = a.rank;
  const std::uint64_t n = s.n;
  TreeNode t = tree_node(TreeKind::Binomial, p, r, 0);
  std::vector<StepId> got{s.ready};
  int mine = 1;
  for (std::size_t i = 0; i < t.children.size(); ++i) {
    const auto c = static_cast<std::uint64_t>(t.children[i]);
    got.push_back(b.recv(t.children[i], recv_at(c * n), static_cast<std::uint64_t>(t.subtree[i]) * n));
    mine += t.subtree[i];
  }
  StepId have_all = kNoStep;  // root: everything gathered
  StepId up = kNoStep;
  if (t.parent >= 0) {
    up = b.send(t.parent, recv_at(static_cast<std::uint64_t>(r) * n), static_cast<std::uint64_t>(mine) * n);
    add_deps(b, up, got);
  } else {
    have_all = b.nop(got);
  }
  for (const Range& seg : segments(0, static_cast<std::uint64_t>(p) * n, a.segsize, a.elem_size)) {
    StepId have = have_all;
    if (t.parent >= 0) have = b.recv(t.parent, recv_at(seg.off), seg.bytes, {up});
    for (int c : t.children) b.send(c, recv_at(seg.off), seg.bytes, {have});
  }
  return std::move(b).finish();
}

// Bruck: Tmp[j] holds block (r + j) mod p; at distance k a rank sends its first min(k, p-k)
// blocks to r - k and appends those of r + k; then the blocks are rotated into place.
Schedule bruck(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (!a.count) return std::move(b).finish();
  const int p = a.size, r = a.rank;
  const std::uint64_t n = a.count * a.elem_size, P = static_cast<std::uint64_t>(p), R = static_cast<std::uint64_t>(r);
  if (p == 1) {
    if (!a.in_place) b.copy(at(Buf::Send, 0), recv_at(0), n);
    return std::move(b).finish();
  }
  const std::uint64_t t = b.scratch(P * n);
  std::vector<StepId> got{b.copy(a.in_place ? recv_at(R * n) : at(Buf::Send, 0), at(Buf::Tmp, t), n)};
  for (int k = 1; k < p; k *= 2) {
    const auto cnt = static_cast<std::uint64_t>(std::min(k, p - k));
    StepId s = b.send((r - k + p) % p, at(Buf::Tmp, t), cnt * n);
    add_deps(b, s, got);
    got.push_back(b.recv((r + k) % p, at(Buf::Tmp, t + static_cast<std::uint64_t>(k) * n), cnt * n));
  }
  // Tmp[j] -> block r + j: Tmp[0, p-r) -> Recv[r, p), Tmp[p-r, p) -> Recv[0, r).
  const std::uint64_t skip = a.in_place ? 1 : 0;  // in place, the own block is there already
  if (P - R > skip) add_deps(b, b.copy(at(Buf::Tmp, t + skip * n), recv_at((R + skip) * n), (P - R - skip) * n), got);
  if (r > 0) add_deps(b, b.copy(at(Buf::Tmp, t + (P - R) * n), recv_at(0), R * n), got);
  return std::move(b).finish();
}

// Chen et al.'s neighbor exchange (as in Open MPI): p/2 steps, the first exchanging one
// block with one neighbor, the others two blocks alternately with either neighbor.
Schedule neighbor_exchange(const Args& a) {
  if (a.size % 2) return ring(a);
  Builder b(a.rank, a.size, a.elem_size);
  if (!a.count) return std::move(b).finish();
  Setup s = setup(b, a);
  const int p = a.size, r = a.rank;
  const std::uint64_t n = s.n;
  const bool even = r % 2 == 0;
  const int nb[2] = {even ? (r + 1) % p : (r - 1 + p) % p, even ? (r - 1 + p) % p : (r + 1) % p};
  const int step[2] = {even ? 2 : -2, even ? -2 : 2};
  int from[2] = {even ? r : nb[0], even ? r : nb[0]};
  auto blk = [&](int j) { return recv_at(static_cast<std::uint64_t>(j) * n); };
  b.send(nb[0], blk(r), n, {s.ready});
  std::vector<StepId> got{s.ready, b.recv(nb[0], blk(nb[0]), n)};
  int send_from = even ? r : from[0];
  for (int i = 1; i < p / 2; ++i) {
    const int par = i % 2;
    from[par] = (from[par] + step[par] + p) % p;
    StepId x = b.send(nb[par], blk(send_from), 2 * n);
    add_deps(b, x, got);
    got.push_back(b.recv(nb[par], blk(from[par]), 2 * n));
    send_from = from[par];
  }
  return std::move(b).finish();
}

}  // namespace

std::vector<Algorithm> allgather_algorithms() {
  return {
      {"gather_bcast", Coll::Allgather, true, 0, false, gather_bcast,
       "binomial gather of the blocks to rank 0, then binomial broadcast of the whole buffer (segmented)"},
      {"ring", Coll::Allgather, true, 0, false, ring,
       "p-1 steps, each passing one block to the right neighbor; segments pipelined along the ring"},
      {"recursive_doubling", Coll::Allgather, false, 0, false, recursive_doubling,
       "log2 steps doubling the blocks held; for p not a power of two the extra ranks fold onto partners first"},
      {"bruck", Coll::Allgather, false, 0, false, bruck,
       "ceil(log2 p) steps in a rotated scratch area, then one rotation back: any p"},
      {"neighbor_exchange", Coll::Allgather, false, 0, false, neighbor_exchange,
       "Chen et al.: p/2 steps exchanging two blocks with alternating neighbors; odd p falls back to the ring"},
  };
}

}  // namespace tandem::coll
