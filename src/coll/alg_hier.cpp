// Hierarchical compositions: a collective as phases on sub-groups of the communicator,
// for machines whose ranks share nodes (NVLink or shared memory inside a node, a network
// between nodes). The node map comes with the call (Args::nodes); each node has a leader
// (the root on the root's node, else its lowest rank), and
//   bcast:     leaders' bcast from the root, then a bcast inside every node from its leader
//   reduce:    a reduce inside every node to its leader, then the leaders' reduce to the root
//   allreduce: node-local reduce to the leader, leaders' allreduce, node-local bcast
//   allgather: node-local gather to the leader, leaders' allgather of the nodes' blocks,
//              node-local bcast of the whole vector
// Each phase is any flat algorithm of its collective: its schedule is built for the
// sub-group (ranks renumbered 0..k-1, leader 0) by the same builders as a flat call and
// copied into this rank's schedule with peers and buffers mapped back, so the runtime
// runs it, the model costs it and the simulator replays it like any other algorithm.
// Phases are separated by fences (a rank starts a phase when it finished the previous one).
// The reductions combine inside nodes first, so they need a commutative operation.
#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "coll/building.hpp"

namespace tandem::coll {

namespace {

struct Layout {
  int nodes = 0;
  std::vector<std::vector<int>> members;  // per node: its ranks, leader first, then ascending
  int node = 0, index = 0;                // this rank's node and place among its members
  int root_node = 0;
  std::vector<int> leaders() const {
    std::vector<int> l;
    for (const auto& m : members) l.push_back(m.front());
    return l;
  }
  bool leader() const { return index == 0; }
  const std::vector<int>& mine() const { return members[static_cast<std::size_t>(node)]; }
};

Layout layout_of(const Args& a, bool rooted) {
  if (a.nodes && a.nodes->size() != static_cast<std::size_t>(a.size))
    throw std::invalid_argument(fmt::format("node map of {} ranks for a call on {} ranks", a.nodes->size(), a.size));
  Layout l;
  std::map<int, int> id;
  for (int r = 0; r < a.size; ++r) {
    const int key = a.nodes ? (*a.nodes)[static_cast<std::size_t>(r)] : r;
    auto [it, fresh] = id.emplace(key, l.nodes);
    if (fresh) {
      ++l.nodes;
      l.members.emplace_back();
    }
    l.members[static_cast<std::size_t>(it->second)].push_back(r);
  }
  for (int n = 0; n < l.nodes; ++n) {
    auto& m = l.members[static_cast<std::size_t>(n)];
    for (std::size_t i = 0; i < m.size(); ++i) {
      if (rooted && m[i] == a.root) {
        l.root_node = n;
        std::rotate(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(i), m.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      }
    }
  }
  for (int n = 0; n < l.nodes; ++n) {
    const auto& m = l.members[static_cast<std::size_t>(n)];
    for (std::size_t i = 0; i < m.size(); ++i)
      if (m[i] == a.rank) l.node = n, l.index = static_cast<int>(i);
  }
  return l;
}

// The arguments of one phase: collective c on a group of `size` ranks, this rank `rank`.
Args phase_args(const Args& a, const Algorithm& alg, int rank, int size, int root, std::uint64_t count, bool in_place) {
  Args s;
  s.coll = alg.coll;
  s.rank = rank;
  s.size = size;
  s.root = root;
  s.count = count;
  s.elem_size = a.elem_size;
  s.in_place = in_place;
  s.commutative = a.commutative;
  s.segsize = alg.segmented ? a.segsize : 0;
  s.fanout = alg.default_fanout ? a.fanout : 0;
  return s;
}

// Copies the schedule of phase `alg` (for the group's ranks, `group[i]` being its rank i)
// into b: the phase's Send and Recv buffers are the areas at `send` and `recv`, its scratch
// a fresh area of b's.
void splice(Builder& b, const Algorithm& alg, const Args& pa, const std::vector<int>& group, Loc send, Loc recv) {
  const Schedule s = build(alg, pa);
  const std::uint64_t tmp = s.tmp_bytes ? b.scratch(s.tmp_bytes) : 0;
  auto map = [&](Loc l) {
    switch (l.buf) {
      case Buf::Send: return at(send.buf, send.off + l.off);
      case Buf::Recv: return at(recv.buf, recv.off + l.off);
      case Buf::Tmp: break;
    }
    return at(Buf::Tmp, tmp + l.off);
  };
  std::vector<StepId> id(s.steps.size()), deps;
  for (std::size_t i = 0; i < s.steps.size(); ++i) {
    Step st = s.steps[i];
    deps.clear();
    for (std::uint32_t k = 0; k < st.dep_count; ++k) deps.push_back(id[s.deps[st.dep_begin + k]]);
    switch (st.kind) {
      case StepKind::Send: st.peer = group[static_cast<std::size_t>(st.peer)], st.src = map(st.src); break;
      case StepKind::Recv: st.peer = group[static_cast<std::size_t>(st.peer)], st.dst = map(st.dst); break;
      case StepKind::Reduce:
      case StepKind::Copy: st.src = map(st.src), st.dst = map(st.dst); break;
      case StepKind::Nop: break;
    }
    id[i] = b.add(st, deps);
  }
}

const Algorithm& phase(const Algorithm& alg, int i) { return *alg.phases[static_cast<std::size_t>(i)]; }

Schedule h_bcast(const Algorithm& alg, const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const Layout l = layout_of(a, true);
  const Loc recv = at(Buf::Recv, 0), none = at(Buf::Send, 0);
  if (l.leader())
    splice(b, phase(alg, 0), phase_args(a, phase(alg, 0), l.node, l.nodes, l.root_node, a.count, false), l.leaders(),
           none, recv);
  b.fence();
  const auto& m = l.mine();
  splice(b, phase(alg, 1), phase_args(a, phase(alg, 1), l.index, static_cast<int>(m.size()), 0, a.count, false), m,
         none, recv);
  return std::move(b).finish();
}

Schedule h_reduce(const Algorithm& alg, const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const Layout l = layout_of(a, true);
  const bool root = a.rank == a.root;
  const Loc recv = at(Buf::Recv, 0), input = a.in_place && root ? recv : at(Buf::Send, 0);
  // The leader's partial result: the root's receive buffer on the root's node.
  const Loc partial = root ? recv : l.leader() ? at(Buf::Tmp, b.scratch(a.count * a.elem_size)) : recv;
  const auto& m = l.mine();
  splice(b, phase(alg, 0),
         phase_args(a, phase(alg, 0), l.index, static_cast<int>(m.size()), 0, a.count, root && a.in_place), m, input,
         partial);
  b.fence();
  if (l.leader())
    splice(b, phase(alg, 1), phase_args(a, phase(alg, 1), l.node, l.nodes, l.root_node, a.count, root), l.leaders(),
           partial, recv);
  return std::move(b).finish();
}

Schedule h_allreduce(const Algorithm& alg, const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const Layout l = layout_of(a, false);
  const Loc recv = at(Buf::Recv, 0), input = a.in_place ? recv : at(Buf::Send, 0);
  const auto& m = l.mine();
  const int k = static_cast<int>(m.size());
  splice(b, phase(alg, 0), phase_args(a, phase(alg, 0), l.index, k, 0, a.count, l.leader() && a.in_place), m, input,
         recv);
  b.fence();
  if (l.leader())
    splice(b, phase(alg, 1), phase_args(a, phase(alg, 1), l.node, l.nodes, 0, a.count, true), l.leaders(), recv, recv);
  b.fence();
  splice(b, phase(alg, 2), phase_args(a, phase(alg, 2), l.index, k, 0, a.count, false), m, recv, recv);
  return std::move(b).finish();
}

Schedule h_allgather(const Algorithm& alg, const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  const Layout l = layout_of(a, false);
  const std::uint64_t n = a.count * a.elem_size;
  const auto& m = l.mine();
  const int k = static_cast<int>(m.size());
  std::size_t kmax = 0;
  bool direct = true;  // every node is the same number of consecutive ranks: blocks stay in place
  for (int j = 0; j < l.nodes; ++j) {
    const auto& mj = l.members[static_cast<std::size_t>(j)];
    kmax = std::max(kmax, mj.size());
    for (std::size_t i = 0; i < mj.size(); ++i)
      direct = direct && mj[i] == static_cast<int>(static_cast<std::size_t>(j) * l.members[0].size() + i);
    direct = direct && mj.size() == l.members[0].size();
  }
  const Loc recv = at(Buf::Recv, 0);
  const Loc mine = a.in_place ? at(Buf::Recv, static_cast<std::uint64_t>(a.rank) * n) : at(Buf::Send, 0);
  const std::uint64_t chunk = kmax * n;  // one node's blocks
  // Where the leaders gather their nodes' blocks: the receive buffer itself when direct,
  // else a scratch vector of nodes x kmax blocks (padded), unpacked after the exchange.
  const Loc all = direct ? recv : l.leader() ? at(Buf::Tmp, b.scratch(chunk * static_cast<std::uint64_t>(l.nodes))) : recv;
  const Loc node_chunk = at(all.buf, all.off + static_cast<std::uint64_t>(l.node) * chunk);
  splice(b, phase(alg, 0), phase_args(a, phase(alg, 0), l.index, k, 0, a.count, direct && l.leader() && a.in_place), m,
         direct && l.leader() && a.in_place ? recv : mine, node_chunk);
  b.fence();
  if (l.leader()) {
    splice(b, phase(alg, 1), phase_args(a, phase(alg, 1), l.node, l.nodes, 0, a.count * kmax, true), l.leaders(), all,
           all);
    if (!direct && n) {
      b.fence();
      for (int j = 0; j < l.nodes; ++j) {
        const auto& mj = l.members[static_cast<std::size_t>(j)];
        for (std::size_t i = 0; i < mj.size(); ++i)
          b.copy(at(all.buf, all.off + static_cast<std::uint64_t>(j) * chunk + i * n),
                 at(Buf::Recv, static_cast<std::uint64_t>(mj[i]) * n), n);
      }
    }
  }
  b.fence();
  splice(b, phase(alg, 2), phase_args(a, phase(alg, 2), l.index, k, 0, a.count * static_cast<std::uint64_t>(a.size), false),
         m, recv, recv);
  return std::move(b).finish();
}

// The collectives of each phase of c's composition (empty: c has none).
std::vector<Coll> phase_colls(Coll c) {
  switch (c) {
    case Coll::Bcast: return {Coll::Bcast, Coll::Bcast};
    case Coll::Reduce: return {Coll::Reduce, Coll::Reduce};
    case Coll::Allreduce: return {Coll::Reduce, Coll::Allreduce, Coll::Bcast};
    case Coll::Allgather: return {Coll::Gather, Coll::Allgather, Coll::Bcast};
    default: return {};
  }
}

const char* phase_label(Coll c, int i) {
  static const char* const labels[][3] = {
      {"leaders' bcast", "node-local bcast", ""},
      {"node-local reduce", "leaders' reduce", ""},
      {"node-local reduce", "leaders' allreduce", "node-local bcast"},
      {"node-local gather", "leaders' allgather", "node-local bcast"}};
  const int row = c == Coll::Bcast ? 0 : c == Coll::Reduce ? 1 : c == Coll::Allreduce ? 2 : 3;
  return labels[row][i];
}

// Names and summaries of the compositions, kept for the life of the process.
std::mutex& store_mu() {
  static std::mutex m;
  return m;
}
std::deque<std::string>& strings() {
  static std::deque<std::string> s;
  return s;
}
const char* keep(std::string s) {
  std::lock_guard<std::mutex> g(store_mu());
  return strings().emplace_back(std::move(s)).c_str();
}

Algorithm compose(Coll c, const std::vector<const Algorithm*>& ph) {
  std::string name = "hier", summary;
  bool seg = false, comm_only = reduces(c);
  int fan = 0;
  for (std::size_t i = 0; i < ph.size(); ++i) {
    name += '/';
    name += ph[i]->name;
    summary += fmt::format("{}{} {}", i ? ", then " : "", phase_label(c, static_cast<int>(i)), ph[i]->name);
    seg = seg || ph[i]->segmented;
    comm_only = comm_only || ph[i]->commutative_only;
  }
  // The fan-out of the leaders' phase (the one between nodes) when it has one.
  const std::size_t leaders = c == Coll::Bcast ? 0 : 1;
  fan = ph[leaders]->default_fanout;
  for (const Algorithm* x : ph)
    if (!fan) fan = x->default_fanout;
  Algorithm alg{keep(name), c, seg, fan, comm_only, nullptr, keep(summary)};
  for (std::size_t i = 0; i < ph.size(); ++i) alg.phases[i] = ph[i];
  return alg;
}

const Algorithm* flat(const std::vector<Algorithm>& v, std::string_view name) {
  for (const auto& a : v)
    if (!a.hierarchical() && name == a.name) return &a;
  return nullptr;
}

}  // namespace

std::vector<Algorithm> hierarchical_algorithms(Coll c, const std::array<const std::vector<Algorithm>*, kCollCount>& t) {
  const auto pc = phase_colls(c);
  std::vector<Algorithm> out;
  if (pc.empty()) return out;
  const std::size_t leaders = c == Coll::Bcast ? 0 : 1;
  for (const Algorithm& l : *t[static_cast<std::size_t>(c)]) {
    std::vector<const Algorithm*> ph;
    for (std::size_t i = 0; i < pc.size(); ++i)
      ph.push_back(i == leaders ? &l : flat(*t[static_cast<std::size_t>(pc[i])], "binomial"));
    out.push_back(compose(c, ph));
  }
  return out;
}

const Algorithm* find_hierarchical(Coll c, std::string_view name) {
  const auto pc = phase_colls(c);
  if (pc.empty() || name.substr(0, 5) != "hier/") return nullptr;
  std::vector<const Algorithm*> ph;
  std::string_view rest = name.substr(5);
  for (std::size_t i = 0; i < pc.size(); ++i) {
    const std::size_t slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    const Algorithm* a = flat(algorithms(pc[i]), part);
    if (!a) return nullptr;
    ph.push_back(a);
    if ((slash == std::string_view::npos) != (i + 1 == pc.size())) return nullptr;
    if (slash != std::string_view::npos) rest = rest.substr(slash + 1);
  }
  static std::map<std::string, const Algorithm*, std::less<>> made;
  static std::deque<Algorithm> kept;
  {
    std::lock_guard<std::mutex> g(store_mu());
    if (auto it = made.find(name); it != made.end()) return it->second;
  }
  Algorithm alg = compose(c, ph);
  std::lock_guard<std::mutex> g(store_mu());
  if (auto it = made.find(name); it != made.end()) return it->second;
  const Algorithm* p = &kept.emplace_back(alg);
  made.emplace(std::string(name), p);
  return p;
}

Schedule build_hierarchical(const Algorithm& alg, const Args& a) {
  switch (alg.coll) {
    case Coll::Bcast: return h_bcast(alg, a);
    case Coll::Reduce: return h_reduce(alg, a);
    case Coll::Allreduce: return h_allreduce(alg, a);
    case Coll::Allgather: return h_allgather(alg, a);
    default: break;
  }
  throw std::logic_error(fmt::format("{} has no hierarchical composition", coll_name(alg.coll)));
}

std::shared_ptr<const NodeMap> block_nodes(int ranks, int per_node) {
  auto m = std::make_shared<NodeMap>(static_cast<std::size_t>(std::max(0, ranks)));
  for (int r = 0; r < ranks; ++r) (*m)[static_cast<std::size_t>(r)] = r / std::max(1, per_node);
  return m;
}

NodeMap node_ids(const std::vector<std::uint64_t>& keys) {
  NodeMap out;
  std::map<std::uint64_t, int> id;
  for (std::uint64_t k : keys) out.push_back(id.emplace(k, static_cast<int>(id.size())).first->second);
  return out;
}

}  // namespace tandem::coll
