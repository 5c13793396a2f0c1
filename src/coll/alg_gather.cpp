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

// The messages that carry the blocks of virtual ranks [vlo, vlo + cnt) placed at place(x):
// split where the run wraps past the last real rank, then into segments; fn(loc, bytes)
// for each. Both ends of a message call this with the same run, so they agree.
template <class Place, class Fn>
void for_pieces(const Args& a, int vlo, int cnt, Place place, Fn fn) {
  std::uint64_t n = a.count * a.elem_size;
  for (auto [first, len] : real_runs(vlo, vlo + cnt, a.root, a.size)) {
    Loc l = place(first);
    for (const Range& s : segments(0, static_cast<std::uint64_t>(len) * n, a.segsize, a.elem_size))
      fn(at(l.buf, l.off + s.off), s.bytes);
  }
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
  if (node.children.empty() && !is_root) {
    for (const Range& s : segments(0, n, a.segsize, a.elem_size))
      b.send(to_real(node.parent, root, p), at(Buf::Send, s.off), s.bytes);
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
    int from = to_real(node.children[i], root, p);
    for_pieces(a, node.children[i], node.subtree[i], place,
               [&](Loc dst, std::uint64_t bytes) { have.push_back(b.recv(from, dst, bytes)); });
  }
  if (!is_root) {
    StepId all = b.nop(have);
    int parent = to_real(node.parent, root, p);
    for_pieces(a, v, subtree_size(node), place, [&](Loc src, std::uint64_t bytes) { b.send(parent, src, bytes, {all}); });
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
  if (node.children.empty() && !is_root) {
    for (const Range& s : segments(0, n, a.segsize, a.elem_size))
      b.recv(to_real(node.parent, root, p), at(Buf::Recv, s.off), s.bytes);
    return std::move(b).finish();
  }
  std::uint64_t base = is_root ? 0 : b.scratch(static_cast<std::uint64_t>(subtree_size(node)) * n);
  auto place = [&](int x) {
    return is_root ? at(Buf::Send, static_cast<std::uint64_t>(to_real(x, root, p)) * n)
                   : at(Buf::Tmp, base + static_cast<std::uint64_t>(x - v) * n);
  };
  std::vector<StepId> got;
  if (!is_root) {
    int parent = to_real(node.parent, root, p);
    for_pieces(a, v, subtree_size(node), place,
               [&](Loc dst, std::uint64_t bytes) { got.push_back(b.recv(parent, dst, bytes)); });
  }
  StepId all = got.empty() ? kNoStep : b.nop(got);
  for (std::size_t i = 0; i < node.children.size(); ++i) {
    int to = to_real(node.children[i], root, p);
    for_pieces(a, node.children[i], node.subtree[i], place,
               [&](Loc src, std::uint64_t bytes) { b.send(to, src, bytes, {all}); });
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
