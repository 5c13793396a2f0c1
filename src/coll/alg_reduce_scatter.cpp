// Reduce_scatter_block algorithms, and the reduce-scatter phases other collectives reuse
// (ring and recursive halving over a general block layout, building.hpp).
//
// Input: p blocks of n bytes (block j goes to rank j), in the send buffer, or in place in
// the receive buffer; result: n bytes at the start of the receive buffer.
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

Loc plus(Loc l, std::uint64_t off) { return at(l.buf, l.off + off); }

bool overlaps(Loc a, std::uint64_t abytes, Loc b, std::uint64_t bbytes) {
  return a.buf == b.buf && abytes && bbytes && a.off < b.off + bbytes && b.off < a.off + abytes;
}

// [first offset, end) of the blocks.
Range extent(const std::vector<Range>& blocks) {
  std::uint64_t lo = UINT64_MAX, hi = 0;
  for (const Range& r : blocks)
    if (r.bytes) lo = std::min(lo, r.off), hi = std::max(hi, r.off + r.bytes);
  return lo < hi ? Range{lo, hi - lo} : Range{0, 0};
}
}  // namespace

StepId reduce_scatter_ring(Builder& b, Loc in, const std::vector<Range>& blocks, Loc out, std::uint64_t segsize,
                           StepId ready) {
  const int p = b.size(), r = b.rank();
  const std::uint32_t e = b.elem_size();
  const Range& mine = blocks[static_cast<std::size_t>(r)];
  const bool same = out.buf == in.buf && out.off == in.off + mine.off;
  if (p == 1) {
    if (same || !mine.bytes) return ready;
    return b.copy(plus(in, mine.off), out, mine.bytes, {ready});
  }
  const Range ext = extent(blocks);
  const bool clobbers = !same && overlaps(out, mine.bytes, plus(in, ext.off), ext.bytes);
  std::uint64_t maxb = 0;
  for (const Range& x : blocks) maxb = std::max(maxb, x.bytes);
  // Two slots of a block, alternating: received partial results, combined in place with
  // the own input and forwarded at the next step.
  const std::uint64_t slots = maxb ? b.scratch(2 * maxb) : 0;
  auto slot = [&](int k) { return at(Buf::Tmp, slots + static_cast<std::uint64_t>(k % 2) * maxb); };
  const int right = (r + 1) % p, left = (r - 1 + p) % p;
  std::vector<StepId> all, reads_in;   // reads_in: steps reading the input
  std::vector<StepId> red_prev;        // per segment, the previous step's combining
  std::vector<StepId> slot_reader[2];  // per slot and segment, the last send reading it
  for (int k = 0; k < p - 1; ++k) {
    const bool last = k == p - 2;
    const int sb = (r - k - 1 + p) % p, rb = (r - k - 2 + 2 * p) % p;
    const Range& S = blocks[static_cast<std::size_t>(sb)];
    const Range& R = blocks[static_cast<std::size_t>(rb)];
    auto ss = segments(0, S.bytes, segsize, e);
    std::vector<StepId> send_cur;
    for (std::size_t i = 0; i < ss.size(); ++i) {
      Loc src = k == 0 ? plus(in, S.off + ss[i].off) : plus(slot(k - 1), ss[i].off);
      StepId x = b.send(right, src, ss[i].bytes, {ready, k ? red_prev[i] : kNoStep});
      send_cur.push_back(x);
      if (k == 0)
        reads_in.push_back(x);
      else {
        auto& rd = slot_reader[(k - 1) % 2];
        if (rd.size() <= i) rd.resize(i + 1, kNoStep);
        rd[i] = x;
      }
    }
    auto rs = segments(0, R.bytes, segsize, e);
    std::vector<StepId> red_cur;
    for (std::size_t i = 0; i < rs.size(); ++i) {
      const std::uint64_t o = rs[i].off, n = rs[i].bytes;
      StepId v, x;
      if (last && !same) {
        // Straight into the output, then combined with the own input.
        v = b.recv(left, plus(out, o), n, {ready});
        if (clobbers) add_deps(b, v, reads_in);
        x = b.reduce(plus(in, R.off + o), plus(out, o), n, false, {v});
      } else {
        // The slot's segment was last read by a send (of the previous step, or earlier
        // when the blocks in between were shorter).
        const auto& rd = slot_reader[k % 2];
        v = b.recv(left, plus(slot(k), o), n, {ready, i < rd.size() ? rd[i] : kNoStep});
        if (last)
          x = b.reduce(plus(slot(k), o), plus(out, o), n, true, {v});
        else
          x = b.reduce(plus(in, R.off + o), plus(slot(k), o), n, false, {v});
      }
      all.push_back(v);
      all.push_back(x);
      red_cur.push_back(x);
      if (!last || !same) reads_in.push_back(x);
    }
    all.insert(all.end(), send_cur.begin(), send_cur.end());
    red_prev = std::move(red_cur);
  }
  return join(b, all, ready);
}

StepId reduce_scatter_recursive_halving(Builder& b, Loc in, Loc work, const std::vector<Range>& blocks, bool unfold,
                                        StepId ready) {
  const int p = b.size(), r = b.rank();
  const int m = pow2_floor(p), x = p - m;
  const bool same = in.buf == work.buf && in.off == work.off;
  std::vector<int> every;
  for (int j = 0; j < p; ++j) every.push_back(j);
  std::vector<StepId> all;
  if (r >= m) {
    std::vector<StepId> sent;
    for (const Range& rg : block_runs(blocks, every))
      sent.push_back(b.send(r - m, plus(in, rg.off), rg.bytes, {ready}));
    all = sent;
    if (unfold)
      for (const Range& rg : block_runs(blocks, {r})) {
        StepId v = b.recv(r - m, plus(work, rg.off), rg.bytes, {ready});
        add_deps(b, v, sent);  // work may be the input being sent
        all.push_back(v);
      }
    return join(b, all, ready);
  }
  auto group = [&](int base, int d) {
    std::vector<int> idx;
    for (int j = base; j < base + d; ++j) idx.push_back(j);
    for (int j = base; j < std::min(base + d, x); ++j) idx.push_back(m + j);
    return idx;
  };
  auto bytes_of = [&](const std::vector<Range>& runs) {
    std::uint64_t t = 0;
    for (const Range& rg : runs) t += rg.bytes;
    return t;
  };
  // Receive area for partial results combined into work, sized for the largest use.
  std::uint64_t rbytes = same && r < x ? bytes_of(block_runs(blocks, every)) : 0;
  for (int d = m / 2; d >= 1; d /= 2) {
    int base = r & ~(2 * d - 1);
    rbytes = std::max(rbytes, bytes_of(block_runs(blocks, group((r & d) ? base + d : base, d))));
  }
  const std::uint64_t rarea = rbytes ? b.scratch(rbytes) : 0;
  bool init = same;          // whether work holds this rank's partial results (else `in` does)
  std::vector<StepId> done;  // the last combining steps: what the next step reads
  // Receives `runs` from peer and combines them into work; `mine_first` when this rank's
  // operand comes first.
  auto receive = [&](int peer, const std::vector<Range>& runs, bool mine_first) {
    std::vector<StepId> cur;
    std::uint64_t c = 0;
    for (const Range& rg : runs) {
      if (!init) {
        // Partner's partial straight into work, then the own input combined in.
        StepId v = b.recv(peer, plus(work, rg.off), rg.bytes, {ready});
        cur.push_back(b.reduce(plus(in, rg.off), plus(work, rg.off), rg.bytes, mine_first, {v}));
        all.push_back(v);
      } else {
        StepId v = b.recv(peer, at(Buf::Tmp, rarea + c), rg.bytes, {ready});
        add_deps(b, v, done);  // the previous combining steps read the area
        cur.push_back(b.reduce(at(Buf::Tmp, rarea + c), plus(work, rg.off), rg.bytes, !mine_first, {v}));
        add_deps(b, cur.back(), done);
        all.push_back(v);
        c += rg.bytes;
      }
    }
    all.insert(all.end(), cur.begin(), cur.end());
    if (!runs.empty()) done = std::move(cur);
    init = true;
  };
  if (r < x) receive(r + m, block_runs(blocks, every), true);
  for (int d = m / 2; d >= 1; d /= 2) {
    const int partner = r ^ d, base = r & ~(2 * d - 1);
    const bool upper = (r & d) != 0;
    for (const Range& rg : block_runs(blocks, group(upper ? base : base + d, d))) {
      StepId s = b.send(partner, plus(init ? work : in, rg.off), rg.bytes, {ready});
      add_deps(b, s, done);
      all.push_back(s);
    }
    receive(partner, block_runs(blocks, group(upper ? base + d : base, d)), r < partner);
  }
  if (!init) {  // p == 1
    const Range& b0 = blocks[0];
    if (!same && b0.bytes) all.push_back(b.copy(plus(in, b0.off), plus(work, b0.off), b0.bytes, {ready}));
  }
  if (unfold && r < x)
    for (const Range& rg : block_runs(blocks, {m + r})) {
      StepId s = b.send(m + r, plus(work, rg.off), rg.bytes, {ready});
      add_deps(b, s, done);
      all.push_back(s);
    }
  return join(b, all, ready);
}

namespace {

std::vector<Range> uniform(int p, std::uint64_t n) {
  std::vector<Range> v;
  for (int j = 0; j < p; ++j) v.push_back({static_cast<std::uint64_t>(j) * n, n});
  return v;
}

Schedule ring(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (a.count) {
    const std::uint64_t n = a.count * a.elem_size;
    reduce_scatter_ring(b, at(a.in_place ? Buf::Recv : Buf::Send, 0), uniform(a.size, n), at(Buf::Recv, 0), a.segsize);
  }
  return std::move(b).finish();
}

Schedule recursive_halving(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (a.count) {
    const std::uint64_t n = a.count * a.elem_size, R = static_cast<std::uint64_t>(a.rank);
    const Loc in = at(a.in_place ? Buf::Recv : Buf::Send, 0);
    // In place, the input itself is the work area; otherwise a scratch vector.
    const Loc work = a.in_place ? in : at(Buf::Tmp, b.scratch(static_cast<std::uint64_t>(a.size) * n));
    StepId d = reduce_scatter_recursive_halving(b, in, work, uniform(a.size, n), true);
    if (!(work.buf == Buf::Recv && R == 0)) b.copy(at(work.buf, work.off + R * n), at(Buf::Recv, 0), n, {d});
  }
  return std::move(b).finish();
}

// Binomial reduce of the whole p*n vector to rank 0, children combined in rank order (the
// subtrees are consecutive runs of ranks), then binomial scatter of the blocks: a child
// gets its own block (straight into its result) and its subtree's others.
Schedule reduce_then_scatter(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (!a.count) return std::move(b).finish();
  const int p = a.size, r = a.rank;
  const std::uint64_t n = a.count * a.elem_size, total = static_cast<std::uint64_t>(p) * n;
  const Loc in = at(a.in_place ? Buf::Recv : Buf::Send, 0);
  const Loc res = at(Buf::Recv, 0);
  if (p == 1) {
    if (!a.in_place) b.copy(in, res, n);
    return std::move(b).finish();
  }
  TreeNode t = tree_node(TreeKind::Binomial, p, r, 0);
  std::vector<std::pair<int, int>> kids;
  int mine = 1;
  for (std::size_t i = 0; i < t.children.size(); ++i) {
    kids.push_back({t.children[i], t.subtree[i]});
    mine += t.subtree[i];
  }
  std::sort(kids.begin(), kids.end());
  // acc: this rank's partial result (its subtree's reduction of the whole vector).
  Loc acc = in;
  if (!kids.empty() && !a.in_place) acc = at(Buf::Tmp, b.scratch(total));
  const std::size_t in_slots = a.in_place ? kids.size() : kids.size() - std::min<std::size_t>(kids.size(), 1);
  const std::uint64_t slots = in_slots ? b.scratch(std::min<std::size_t>(in_slots, 2) * total) : 0;
  StepId last = kNoStep;
  std::vector<StepId> slot_reader;  // per slot use, the combining step reading it
  for (std::size_t k = 0; k < kids.size(); ++k) {
    const int c = kids[k].first;
    if (!a.in_place && k == 0) {
      StepId v = b.recv(c, acc, total);
      last = b.reduce(in, acc, total, true, {v});  // acc = mine op child's
    } else {
      const std::size_t u = a.in_place ? k : k - 1;
      const Loc slot = at(Buf::Tmp, slots + (u % 2) * total);
      StepId v = b.recv(c, slot, total, {u >= 2 ? slot_reader[u - 2] : kNoStep});
      last = b.reduce(slot, acc, total, false, {v, last});  // acc = acc op child's
      slot_reader.push_back(last);
    }
  }
  auto send_down = [&](StepId after) {
    for (const auto& [c, sz] : kids) {
      const auto C = static_cast<std::uint64_t>(c);
      b.send(c, plus(acc, C * n), n, {after});
      if (sz > 1) b.send(c, plus(acc, (C + 1) * n), static_cast<std::uint64_t>(sz - 1) * n, {after});
    }
  };
  if (t.parent < 0) {
    if (!a.in_place) b.copy(acc, res, n, {last});
    send_down(last);
  } else {
    StepId up = b.send(t.parent, acc, total, {last});
    // Both receives overwrite what was just sent up (in place, or acc reused).
    b.recv(t.parent, res, n, {up});
    StepId rest = kNoStep;
    if (mine > 1)
      rest = b.recv(t.parent, plus(acc, static_cast<std::uint64_t>(r + 1) * n),
                    static_cast<std::uint64_t>(mine - 1) * n, {up});
    send_down(rest);
  }
  return std::move(b).finish();
}

}  // namespace

std::vector<Algorithm> reduce_scatter_block_algorithms() {
  return {
      {"ring", Coll::ReduceScatterBlock, true, 0, true, ring,
       "p-1 steps around the ring, each combining one block on its way to its owner; segments pipelined"},
      {"recursive_halving", Coll::ReduceScatterBlock, false, 0, true, recursive_halving,
       "log2 steps halving the blocks kept; for p not a power of two the extra ranks fold onto partners first"},
      {"reduce_scatter", Coll::ReduceScatterBlock, false, 0, false, reduce_then_scatter,
       "binomial reduce of the whole vector to rank 0 in rank order, then binomial scatter of the blocks"},
  };
}

}  // namespace tandem::coll
