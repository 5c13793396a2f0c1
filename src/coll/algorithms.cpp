#include "coll/algorithms.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>

#include "coll/building.hpp"
#include "common/units.hpp"

namespace tandem::coll {

namespace {
constexpr std::array<const char*, kCollCount> kNames = {
    "bcast", "reduce", "allreduce", "allgather", "alltoall", "gather", "scatter", "reduce_scatter_block", "barrier"};

using Table = std::array<std::vector<Algorithm>, kCollCount>;

Table make_table() {
  Table t = {bcast_algorithms(),     reduce_algorithms(),  allreduce_algorithms(),
             allgather_algorithms(), alltoall_algorithms(), gather_algorithms(),
             scatter_algorithms(),   reduce_scatter_block_algorithms(), barrier_algorithms()};
  // The compositions point at the flat entries: room for them first, so that appending
  // moves nothing (moving the table keeps every vector's elements where they are).
  std::array<const std::vector<Algorithm>*, kCollCount> flat{};
  for (std::size_t i = 0; i < t.size(); ++i) {
    t[i].reserve(2 * t[i].size());
    flat[i] = &t[i];
  }
  std::array<std::vector<Algorithm>, kCollCount> hier;
  for (std::size_t i = 0; i < t.size(); ++i) hier[i] = hierarchical_algorithms(static_cast<Coll>(i), flat);
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i].size() + hier[i].size() > t[i].capacity()) throw std::logic_error("algorithm table too small");
    t[i].insert(t[i].end(), hier[i].begin(), hier[i].end());
  }
  return t;
}

const Table& table() {
  static const Table t = make_table();
  return t;
}
}  // namespace

const char* coll_name(Coll c) { return kNames[static_cast<std::size_t>(c)]; }

std::optional<Coll> parse_coll(std::string_view s) {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (s == kNames[i]) return static_cast<Coll>(i);
  return std::nullopt;
}

const std::vector<Coll>& all_colls() {
  static const std::vector<Coll> v = {Coll::Bcast,   Coll::Reduce,  Coll::Allreduce,          Coll::Allgather,
                                      Coll::Alltoall, Coll::Gather, Coll::Scatter, Coll::ReduceScatterBlock,
                                      Coll::Barrier};
  return v;
}

std::uint64_t send_bytes(const Args& a) {
  std::uint64_t n = a.count * a.elem_size, p = static_cast<std::uint64_t>(a.size);
  bool root = a.rank == a.root;
  switch (a.coll) {
    case Coll::Bcast: return 0;
    case Coll::Reduce: return a.in_place && root ? 0 : n;
    case Coll::Allreduce: return a.in_place ? 0 : n;
    case Coll::Allgather: return a.in_place ? 0 : n;
    case Coll::Alltoall: return a.in_place ? 0 : n * p;
    case Coll::Gather: return a.in_place && root ? 0 : n;
    case Coll::Scatter: return root ? n * p : 0;
    case Coll::ReduceScatterBlock: return a.in_place ? 0 : n * p;
    case Coll::Barrier: return 0;
  }
  return 0;
}

std::uint64_t recv_bytes(const Args& a) {
  std::uint64_t n = a.count * a.elem_size, p = static_cast<std::uint64_t>(a.size);
  bool root = a.rank == a.root;
  switch (a.coll) {
    case Coll::Bcast: return n;
    case Coll::Reduce: return root ? n : 0;
    case Coll::Allreduce: return n;
    case Coll::Allgather: return n * p;
    case Coll::Alltoall: return n * p;
    case Coll::Gather: return root ? n * p : 0;
    case Coll::Scatter: return a.in_place && root ? 0 : n;
    case Coll::ReduceScatterBlock: return a.in_place ? n * p : n;
    case Coll::Barrier: return 0;
  }
  return 0;
}

const std::vector<Algorithm>& algorithms(Coll c) { return table()[static_cast<std::size_t>(c)]; }

const Algorithm* find_algorithm(Coll c, std::string_view name) {
  for (const auto& a : algorithms(c))
    if (name == a.name) return &a;
  return find_hierarchical(c, name);
}

Schedule build(const Algorithm& alg, const Args& a0) {
  Args a = a0;
  if (a.coll != alg.coll)
    throw std::invalid_argument(fmt::format("algorithm {} is for {}, not {}", alg.name, coll_name(alg.coll), coll_name(a.coll)));
  if (a.size < 1 || a.rank < 0 || a.rank >= a.size)
    throw std::invalid_argument(fmt::format("rank {} of {} ranks", a.rank, a.size));
  if (a.root < 0 || a.root >= a.size) throw std::invalid_argument(fmt::format("root {} of {} ranks", a.root, a.size));
  if (a.elem_size == 0) throw std::invalid_argument("element size 0");
  if (alg.commutative_only && !a.commutative)
    throw std::invalid_argument(fmt::format("{} algorithm {} combines out of rank order: it needs a commutative operation",
                                            coll_name(a.coll), alg.name));
  if (!alg.default_fanout) a.fanout = 0;
  else if (a.fanout == 0) a.fanout = alg.default_fanout;
  if (a.fanout < 0 || (a.fanout == 1 && std::string_view(alg.name) == "knomial"))
    throw std::invalid_argument(fmt::format("fan-out {} of {}", a.fanout, alg.name));
  if (!alg.segmented) a.segsize = 0;
  Schedule s = alg.hierarchical() ? build_hierarchical(alg, a) : alg.build(a);
  s.validate(send_bytes(a), recv_bytes(a));
  return s;
}

std::string Choice::str() const {
  if (!alg) return "(default)";
  std::string s = alg->name;
  if (segsize || fanout) s += ":" + units::format_bytes(segsize);
  if (fanout) s += fmt::format(":{}", fanout);
  return s;
}

namespace {
std::string names_of(Coll c) {
  std::string out;
  for (const auto& a : algorithms(c)) out += (out.empty() ? "" : ", ") + std::string(a.name);
  return out;
}
}  // namespace

std::optional<Choice> make_choice(Coll c, std::string_view name, std::uint64_t segsize, std::uint64_t fanout,
                                  std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<Choice> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  Choice ch;
  ch.alg = find_algorithm(c, name);
  if (!ch.alg) return fail(fmt::format("unknown {} algorithm `{}` (known: {})", coll_name(c), name, names_of(c)));
  if (segsize && !ch.alg->segmented)
    return fail(fmt::format("{} algorithm {} takes no segment size (use 0)", coll_name(c), ch.alg->name));
  if (fanout > kMaxFanout) return fail(fmt::format("fan-out {} is more than {}", fanout, kMaxFanout));
  if (fanout && !ch.alg->default_fanout)
    return fail(fmt::format("{} algorithm {} has no fan-out (use 0)", coll_name(c), ch.alg->name));
  auto radix = [](const Algorithm& a) {
    const std::string_view n = a.name;
    return n == "knomial" || n == "reduce_bcast";
  };
  bool any_radix = radix(*ch.alg);
  for (const Algorithm* ph : ch.alg->phases) any_radix = any_radix || (ph && radix(*ph));
  if (fanout == 1 && any_radix) return fail("k-nomial radix must be at least 2");
  ch.segsize = segsize;
  ch.fanout = static_cast<int>(fanout);
  return ch;
}

std::optional<Choice> parse_choice(Coll c, std::string_view text, std::string* why) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  auto fail = [&](std::string msg) -> std::optional<Choice> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  if (parts.size() > 3) return fail(fmt::format("`{}` has more than name:segsize:fanout", text));
  std::uint64_t seg = 0, fan = 0;
  if (parts.size() > 1 && !units::parse_bytes(parts[1], seg))
    return fail(fmt::format("segment size `{}` is not a byte count (like 0, 8192 or 64K)", parts[1]));
  if (parts.size() > 2 && !units::parse_count(parts[2], fan, kMaxFanout))
    return fail(fmt::format("fan-out `{}` is not a number up to {}", parts[2], kMaxFanout));
  return make_choice(c, parts[0], seg, fan, why);
}

// ---- helpers shared by the builders ----------------------------------------------------

std::vector<Range> segments(std::uint64_t off, std::uint64_t bytes, std::uint64_t segsize, std::uint32_t elem) {
  std::vector<Range> out;
  if (bytes == 0) return out;
  std::uint64_t seg = segsize ? std::max<std::uint64_t>(elem, segsize / elem * elem) : bytes;
  for (std::uint64_t o = 0; o < bytes; o += seg) out.push_back({off + o, std::min(seg, bytes - o)});
  return out;
}

std::vector<Range> split_even(std::uint64_t count, int p, std::uint32_t elem) {
  std::vector<Range> out(static_cast<std::size_t>(p));
  std::uint64_t base = count / static_cast<std::uint64_t>(p), extra = count % static_cast<std::uint64_t>(p), off = 0;
  for (int i = 0; i < p; ++i) {
    std::uint64_t n = base + (static_cast<std::uint64_t>(i) < extra ? 1 : 0);
    out[static_cast<std::size_t>(i)] = {off * elem, n * elem};
    off += n;
  }
  return out;
}

int pow2_floor(int n) {
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

namespace {
// Preorder binary tree over [lo, hi): node lo, left child lo+1 over [lo+1, mid), right
// child mid over [mid, hi).
void preorder_find(int lo, int hi, int v, TreeNode* n, int parent) {
  for (;;) {
    if (v == lo) {
      n->parent = parent;
      int rest = hi - lo - 1;
      if (rest > 0) {
        int left = (rest + 1) / 2;
        n->children.push_back(lo + 1);
        n->subtree.push_back(left);
        if (rest - left > 0) {
          n->children.push_back(lo + 1 + left);
          n->subtree.push_back(rest - left);
        }
      }
      return;
    }
    int rest = hi - lo - 1, left = (rest + 1) / 2, mid = lo + 1 + left;
    parent = lo;
    if (v < mid) lo = lo + 1, hi = mid;
    else lo = mid;
  }
}
}  // namespace

TreeNode tree_node(TreeKind kind, int p, int v, int fanout) {
  TreeNode n;
  switch (kind) {
    case TreeKind::Linear:
      if (v == 0)
        for (int c = 1; c < p; ++c) n.children.push_back(c), n.subtree.push_back(1);
      else n.parent = 0;
      break;
    case TreeKind::Chain: {
      // Non-root ranks 1..p-1 in `fanout` chains of consecutive ranks, the first ones longer.
      int f = std::max(1, std::min(fanout, p - 1));
      int rest = p - 1;
      std::vector<int> heads;
      std::vector<int> lens;
      int at = 1;
      for (int i = 0; i < f && rest > 0; ++i) {
        int len = (p - 1) / f + (i < (p - 1) % f ? 1 : 0);
        heads.push_back(at), lens.push_back(len);
        at += len;
      }
      if (v == 0) {
        n.children = heads;
        n.subtree = lens;
      } else {
        for (std::size_t i = 0; i < heads.size(); ++i) {
          int h = heads[i], end = heads[i] + lens[i];
          if (v >= h && v < end) {
            n.parent = v == h ? 0 : v - 1;
            if (v + 1 < end) n.children.push_back(v + 1), n.subtree.push_back(end - v - 1);
          }
        }
      }
      break;
    }
    case TreeKind::Heap:
      n.parent = v == 0 ? -1 : (v - 1) / 2;
      for (int c : {2 * v + 1, 2 * v + 2})
        if (c < p) n.children.push_back(c), n.subtree.push_back(0);
      break;
    case TreeKind::Preorder: preorder_find(0, p, v, &n, -1); break;
    case TreeKind::Binomial: {
      // Children v + 2^k for 2^k < lowbit(v) (any k at the root); the largest subtree first.
      int low = v == 0 ? pow2_floor(std::max(1, p - 1)) * 2 : (v & -v);
      n.parent = v == 0 ? -1 : v - (v & -v);
      for (int d = low / 2; d >= 1; d /= 2)
        if (v + d < p) n.children.push_back(v + d), n.subtree.push_back(std::min(d, p - (v + d)));
      break;
    }
    case TreeKind::Knomial: {
      int k = std::max(2, fanout);
      // The lowest nonzero base-k digit of v is at weight w: parent = v - digit * w; children
      // v + i * w' for weights w' < w (all weights at the root), i = 1..k-1, largest first.
      long w = 1;
      if (v == 0) {
        while (w * k < p) w *= k;
        w *= k;
      } else {
        while ((v / w) % k == 0) w *= k;
        n.parent = static_cast<int>(v - ((v / w) % k) * w);
      }
      for (long cw = w / k; cw >= 1; cw /= k)
        for (int i = k - 1; i >= 1; --i) {
          long c = v + i * cw;
          if (c < p) n.children.push_back(static_cast<int>(c)), n.subtree.push_back(static_cast<int>(std::min<long>(cw, p - c)));
        }
      break;
    }
  }
  return n;
}

std::vector<std::pair<int, int>> real_runs(int vlo, int vhi, int root, int p) {
  std::vector<std::pair<int, int>> out;
  if (vhi <= vlo) return out;
  int wrap = p - root;  // virtual rank of real rank 0
  if (vlo < wrap && vhi > wrap) {
    out.push_back({vlo, wrap - vlo});
    out.push_back({wrap, vhi - wrap});
  } else {
    out.push_back({vlo, vhi - vlo});
  }
  return out;
}

}  // namespace tandem::coll
