// Gather and Scatter algorithms, over trees whose subtrees are runs of consecutive virtual
// ranks: a node forwards its whole subtree's blocks in one message (two when the run
// wraps past the last real rank), so the root reads and writes the caller's buffer in
// place and no rank reorders data.
#include <algorithm>

#include "coll/building.hpp"

namespace tandem::coll {

namespace {

int subtree_size(const TreeNode& node) {
  int s = 1;
  for (int x : node.subtree) s += x;
  return s;
}

// Gather: block of real rank j lands at the root's Recv + j*n. A non-root node collects
// its subtree's blocks in scratch, in virtual-rank order from itself.
Schedule gather_tree(const Args& a, TreeKind kind, int fanout) {
  Builder b(a.rank, a.size, a.elem_size);
  int p = a.size, root = a.root, v = to_virtual(a.rank, root, p);
  std::uint64_t n = a.count * a.elem_size;
  TreeNode node = tree_node(kind, p, v, fanout);
  bool is_root = node.parent < 0;
  if (!n) return std::move(b).finish();
  auto seg = [&](std::uint64_t off, std::uint64_t bytes) { return segments(off, bytes, a.segsize, a.elem_size); };
  if (node.children.empty() && !is_root) {
    for (const Range& s : seg(0, n)) b.send(to_real(node.parent, root, p), at(Buf::Send, s.off), s.bytes);
    return std::move(b).finish();
  }
  // Where virtual rank x's block goes on this rank.
  std::uint64_t base = is_root ? 0 : b.scratch(static_cast<std::uint64_t>(subtree_size(node)) * n);
  auto place = [&](int x) {
    return is_root ? at(Buf::Recv, static_cast<std::uint64_t>(to_real(x, root, p)) * n)
                   : at(Buf::Tmp, base + static_cast<std::uint64_t>(x - v) * n);
  };
  std::vector<StepId> have;
  if (!(is_root && a.in_place)) have.push_back(b.copy(at(Buf::Send, 0), place(v), n));
  for (std::size_t i = 0; i < node.children.size(); ++i) {
    int c = node.children[i], from = to_real(c, root, p);
    for (auto [first, cnt] : real_runs(c, c + node.subtree[i], root, p)) {
      Loc dst = place(first);
      for (const Range& s : seg(0, static_cast<std::uint64_t>(cnt) * n))
        have.push_back(b.recv(from, at(dst.buf, dst.off + s.off), s.bytes));
    }
  }
  if (!is_root) {
    StepId all = b.nop(have);
    for (auto [first, cnt] : real_runs(v, v + subtree_size(node), root, p)) {
      Loc src = place(first);
      for (const Range& s : seg(0, static_cast<std::uint64_t>(cnt) * n))
        b.send(to_real(node.parent, root, p), at(src.buf, src.off + s.off), s.bytes, {all});
    }
  }
  return std::move(b).finish();
}

// Scatter: the mirror image; the root sends each child its subtree's blocks straight from
// the send buffer.
Schedule scatter_tree(const Args& a, TreeKind kind, int fanout) {
  Builder b(a.rank, a.size, a.elem_size);
  int p = a.size, root = a.root, v = to_virtual(a.rank, root, p);
  std::uint64_t n = a.count * a.elem_size;
  TreeNode node = tree_node(kind, p, v, fanout);
  bool is_root = node.parent < 0;
  if (!n) return std::move(b).finish();
  auto seg = [&](std::uint64_t off, std::uint64_t bytes) { return segments(off, bytes, a.segsize, a.elem_size); };
  if (node.children.empty() && !is_root) {
    for (const Range& s : seg(0, n)) b.recv(to_real(node.parent, root, p), at(Buf::Recv, s.off), s.bytes);
    return std::move(b).finish();
  }
  std::uint64_t base = is_root ? 0 : b.scratch(static_cast<std::uint64_t>(subtree_size(node)) * n);
  auto place = [&](int x) {
    return is_root ? at(Buf::Send, static_cast<std::uint64_t>(to_real(x, root, p)) * n)
                   : at(Buf::Tmp, base + static_cast<std::uint64_t>(x - v) * n);
  };
  std::vector<StepId> got;
  if (!is_root)
    for (auto [first, cnt] : real_runs(v, v + subtree_size(node), root, p)) {
      Loc dst = place(first);
      for (const Range& s : seg(0, static_cast<std::uint64_t>(cnt) * n))
        got.push_back(b.recv(to_real(node.parent, root, p), at(dst.buf, dst.off + s.off), s.bytes));
    }
  StepId all = got.empty() ? kNoStep : b.nop(got);
  for (std::size_t i = 0; i < node.children.size(); ++i) {
    int c = node.children[i], to = to_real(c, root, p);
    for (auto [first, cnt] : real_runs(c, c + node.subtree[i], root, p)) {
      Loc src = place(first);
      for (const Range& s : seg(0, static_cast<std::uint64_t>(cnt) * n)) b.send(to, at(src.buf, src.off + s.off), s.bytes, {all});
    }
  }
  if (!(is_root && a.in_place)) b.copy(place(v), at(Buf::Recv, 0), n, {all});
  return std::move(b).finish();
}

Schedule g_linear(const Args& a) { return gather_tree(a, TreeKind::Linear, 0); }
Schedule g_chain(const Args& a) { return gather_tree(a, TreeKind::Chain, a.fanout); }
Schedule g_binary(const Args& a) { return gather_tree(a, TreeKind::Preorder, 0); }
Schedule g_binomial(const Args& a) { return gather_tree(a, TreeKind::Binomial, 0); }
Schedule s_linear(const Args& a) { return scatter_tree(a, TreeKind::Linear, 0); }
Schedule s_chain(const Args& a) { return scatter_tree(a, TreeKind::Chain, a.fanout); }
Schedule s_binary(const Args& a) { return scatter_tree(a, TreeKind::Preorder, 0); }
Schedule s_binomial(const Args& a) { return scatter_tree(a, TreeKind::Binomial, 0); }

}  // namespace

std::vector<Algorithm> gather_algorithms() {
  return {
      {"linear", Coll::Gather, true, 0, false, g_linear, "every rank sends its block to the root"},
      {"chain", Coll::Gather, true, 4, false, g_chain, "fan-out chains; each rank forwards its chain's blocks"},
      {"binary", Coll::Gather, true, 0, false, g_binary, "binary tree of runs of consecutive ranks"},
      {"binomial", Coll::Gather, true, 0, false, g_binomial, "binomial tree; each rank forwards its subtree's blocks"},
  };
}

std::vector<Algorithm> scatter_algorithms() {
  return {
      {"linear", Coll::Scatter, true, 0, false, s_linear, "the root sends every rank its block"},
      {"chain", Coll::Scatter, true, 4, false, s_chain, "fan-out chains; each rank forwards the rest of its chain's blocks"},
      {"binary", Coll::Scatter, true, 0, false, s_binary, "binary tree of runs of consecutive ranks"},
      {"binomial", Coll::Scatter, true, 0, false, s_binomial, "binomial tree; each rank forwards its subtree's blocks"},
  };
}

}  // namespace tandem::coll
