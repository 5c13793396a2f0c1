// Bcast algorithms. The buffer is the Recv buffer on every rank (the root's holds the data).
#include <algorithm>

#include "coll/building.hpp"

namespace tandem::coll {

void tree_bcast(Builder& b, TreeKind kind, int fanout, int root, Range whole, std::uint64_t segsize) {
  int p = b.size();
  int v = to_virtual(b.rank(), root, p);
  TreeNode node = tree_node(kind, p, v, fanout);
  for (const Range& seg : segments(whole.off, whole.bytes, segsize, b.elem_size())) {
    StepId got = kNoStep;
    if (node.parent >= 0) got = b.recv(to_real(node.parent, root, p), at(Buf::Recv, seg.off), seg.bytes);
    for (int c : node.children) b.send(to_real(c, root, p), at(Buf::Recv, seg.off), seg.bytes, {got});
  }
}

namespace {

Schedule tree(const Args& a, TreeKind kind, int fanout) {
  Builder b(a.rank, a.size, a.elem_size);
  tree_bcast(b, kind, fanout, a.root, Range{0, a.count * a.elem_size}, a.segsize);
  return std::move(b).finish();
}

Schedule linear(const Args& a) { return tree(a, TreeKind::Linear, 0); }
Schedule chain(const Args& a) { return tree(a, TreeKind::Chain, a.fanout); }
Schedule pipeline(const Args& a) { return tree(a, TreeKind::Chain, 1); }
Schedule binary(const Args& a) { return tree(a, TreeKind::Heap, 0); }
Schedule binomial(const Args& a) { return tree(a, TreeKind::Binomial, 0); }
Schedule knomial(const Args& a) { return tree(a, TreeKind::Knomial, a.fanout); }

// Van de Geijn: the root scatters the buffer in p blocks (block r to rank r) down a
// binomial tree, then everyone allgathers the blocks.
Schedule scatter_allgather(const Args& a, bool ring) {
  Builder b(a.rank, a.size, a.elem_size);
  int p = a.size, root = a.root;
  std::vector<Range> blocks = split_even(a.count, p, a.elem_size);
  int v = to_virtual(a.rank, root, p);
  TreeNode node = tree_node(TreeKind::Binomial, p, v, 0);
  // Bytes of the run of virtual ranks [vlo, vlo + n), as contiguous pieces of the buffer.
  auto pieces = [&](int vlo, int n) {
    std::vector<Range> out;
    for (auto [first, cnt] : real_runs(vlo, vlo + n, root, p)) {
      int r0 = to_real(first, root, p);
      const Range& lo = blocks[static_cast<std::size_t>(r0)];
      const Range& hi = blocks[static_cast<std::size_t>(r0 + cnt - 1)];
      if (hi.off + hi.bytes > lo.off) out.push_back({lo.off, hi.off + hi.bytes - lo.off});
    }
    return out;
  };
  if (p > 1) {
    std::vector<StepId> got;
    if (node.parent >= 0) {
      int mine = 1;
      for (int s : node.subtree) mine += s;
      for (const Range& r : pieces(v, mine))
        for (const Range& seg : segments(r.off, r.bytes, a.segsize, a.elem_size))
          got.push_back(b.recv(to_real(node.parent, root, p), at(Buf::Recv, seg.off), seg.bytes));
    }
    StepId have = got.empty() ? kNoStep : b.nop(got);
    for (std::size_t i = 0; i < node.children.size(); ++i)
      for (const Range& r : pieces(node.children[i], node.subtree[i]))
        for (const Range& seg : segments(r.off, r.bytes, a.segsize, a.elem_size))
          b.send(to_real(node.children[i], root, p), at(Buf::Recv, seg.off), seg.bytes, {have});
    b.fence();
    if (ring) allgather_ring(b, Buf::Recv, blocks, a.segsize);
    else allgather_recursive_doubling(b, Buf::Recv, blocks);
  }
  return std::move(b).finish();
}

Schedule scatter_rd(const Args& a) { return scatter_allgather(a, false); }
Schedule scatter_ring(const Args& a) { return scatter_allgather(a, true); }

}  // namespace

std::vector<Algorithm> bcast_algorithms() {
  return {
      {"linear", Coll::Bcast, true, 0, false, linear, "the root sends to every rank in turn"},
      {"chain", Coll::Bcast, true, 4, false, chain, "fan-out chains of ranks, segments pipelined down each chain"},
      {"pipeline", Coll::Bcast, true, 0, false, pipeline, "one chain through all ranks, segments pipelined"},
      {"binary", Coll::Bcast, true, 0, false, binary, "binary tree (children 2v+1, 2v+2), segments pipelined"},
      {"binomial", Coll::Bcast, true, 0, false, binomial, "binomial tree, largest subtree first"},
      {"knomial", Coll::Bcast, true, 4, false, knomial, "k-nomial tree of radix fan-out"},
      {"scatter_recursive_doubling", Coll::Bcast, true, 0, false, scatter_rd,
       "binomial scatter of p blocks, then recursive-doubling allgather"},
      {"scatter_ring", Coll::Bcast, true, 0, false, scatter_ring, "binomial scatter of p blocks, then ring allgather"},
  };
}

}  // namespace tandem::coll
