// Reduce algorithms. Input: the Send buffer (the Recv buffer at an in-place root); the
// result goes to the root's Recv buffer.
#include <algorithm>

#include "coll/building.hpp"

namespace tandem::coll {

void tree_reduce(Builder& b, TreeKind kind, int fanout, int tree_root, Loc input, Loc result, std::uint64_t bytes,
                 std::uint64_t segsize) {
  int p = b.size();
  int v = to_virtual(b.rank(), tree_root, p);
  TreeNode node = tree_node(kind, p, v, fanout);
  int parent = node.parent >= 0 ? to_real(node.parent, tree_root, p) : -1;
  auto same = [](Loc x, Loc y) { return x.buf == y.buf && x.off == y.off; };
  if (node.children.empty()) {
    if (parent >= 0) {
      for (const Range& seg : segments(0, bytes, segsize, b.elem_size()))
        b.send(parent, at(input.buf, input.off + seg.off), seg.bytes);
    } else if (!same(input, result) && bytes) {
      b.copy(input, result, bytes);
    }
    return;
  }
  Loc acc = parent < 0 ? result : at(Buf::Tmp, b.scratch(bytes));
  // Children in increasing virtual rank: their subtrees follow ours in that order.
  std::vector<int> kids = node.children;
  std::sort(kids.begin(), kids.end());
  std::vector<std::uint64_t> slot;
  for (std::size_t i = 0; i < kids.size(); ++i) slot.push_back(b.scratch(bytes));
  for (const Range& seg : segments(0, bytes, segsize, b.elem_size())) {
    StepId prev = same(acc, input) ? kNoStep : b.copy(at(input.buf, input.off + seg.off), at(acc.buf, acc.off + seg.off), seg.bytes);
    for (std::size_t i = 0; i < kids.size(); ++i) {
      StepId r = b.recv(to_real(kids[i], tree_root, p), at(Buf::Tmp, slot[i] + seg.off), seg.bytes);
      prev = b.reduce(at(Buf::Tmp, slot[i] + seg.off), at(acc.buf, acc.off + seg.off), seg.bytes, false, {prev, r});
    }
    if (parent >= 0) b.send(parent, at(acc.buf, acc.off + seg.off), seg.bytes, {prev});
  }
}

namespace {

// A tree reduction to a.root. A non-commutative operation is reduced down a tree rooted
// at rank 0 (whose subtrees are runs of consecutive ranks, combined in order) and the
// result sent on to the root.
Schedule reduce_tree(const Args& a, TreeKind kind, int fanout) {
  Builder b(a.rank, a.size, a.elem_size);
  std::uint64_t n = a.count * a.elem_size;
  int tree_root = a.commutative ? a.root : 0;
  bool is_root = a.rank == a.root;
  Loc input = a.in_place && is_root ? at(Buf::Recv, 0) : at(Buf::Send, 0);
  Loc result = at(Buf::Recv, 0);
  if (a.rank == tree_root && !is_root) result = at(Buf::Tmp, b.scratch(n));
  tree_reduce(b, kind, fanout, tree_root, input, result, n, a.segsize);
  if (tree_root != a.root && n) {
    b.fence();
    for (const Range& seg : segments(0, n, a.segsize, a.elem_size)) {
      if (a.rank == tree_root) b.send(a.root, at(result.buf, result.off + seg.off), seg.bytes);
      if (is_root) b.recv(tree_root, at(Buf::Recv, seg.off), seg.bytes);
    }
  }
  return std::move(b).finish();
}

Schedule linear(const Args& a) { return reduce_tree(a, TreeKind::Linear, 0); }
Schedule chain(const Args& a) { return reduce_tree(a, TreeKind::Chain, a.fanout); }
Schedule pipeline(const Args& a) { return reduce_tree(a, TreeKind::Chain, 1); }
Schedule binary(const Args& a) { return reduce_tree(a, TreeKind::Heap, 0); }
Schedule binomial(const Args& a) { return reduce_tree(a, TreeKind::Binomial, 0); }
Schedule in_order_binary(const Args& a) { return reduce_tree(a, TreeKind::Preorder, 0); }

Schedule rabenseifner(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  std::uint64_t n = a.count * a.elem_size;
  bool is_root = a.rank == a.root;
  Loc input = a.in_place && is_root ? at(Buf::Recv, 0) : at(Buf::Send, 0);
  Loc acc = at(Buf::Tmp, b.scratch(n));
  HalvingResult h = reduce_scatter_halving(b, input, acc, a.count);
  b.fence();
  // Every block's holder sends it to the root.
  for (int j = 0; j < h.p2 && n; ++j) {
    const Range& blk = h.blocks[static_cast<std::size_t>(j)];
    if (!blk.bytes) continue;
    int holder = h.real(j);
    if (holder == a.rank && is_root) b.copy(at(acc.buf, acc.off + blk.off), at(Buf::Recv, blk.off), blk.bytes);
    else if (holder == a.rank) b.send(a.root, at(acc.buf, acc.off + blk.off), blk.bytes);
    else if (is_root) b.recv(holder, at(Buf::Recv, blk.off), blk.bytes);
  }
  return std::move(b).finish();
}

}  // namespace

std::vector<Algorithm> reduce_algorithms() {
  return {
      {"linear", Coll::Reduce, true, 0, false, linear, "every rank sends to the root, which combines in rank order"},
      {"chain", Coll::Reduce, true, 4, false, chain, "fan-out chains of ranks, segments pipelined up each chain"},
      {"pipeline", Coll::Reduce, true, 0, false, pipeline, "one chain through all ranks, segments pipelined"},
      {"binary", Coll::Reduce, true, 0, true, binary, "binary tree (children 2v+1, 2v+2), segments pipelined"},
      {"binomial", Coll::Reduce, true, 0, false, binomial, "binomial tree"},
      {"in_order_binary", Coll::Reduce, true, 0, false, in_order_binary,
       "binary tree whose subtrees are runs of consecutive ranks: combines in rank order"},
      {"rabenseifner", Coll::Reduce, false, 0, true, rabenseifner,
       "reduce-scatter by recursive halving, then the blocks gathered at the root"},
  };
}

}  // namespace tandem::coll
