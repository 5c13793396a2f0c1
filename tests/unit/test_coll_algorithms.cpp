// Every collective algorithm (all of algorithms(c) for every c in all_colls(), so the ones
// added later are covered too), run for all ranks at once on the real executor and
// progress engines over the in-process transport (coll_harness.hpp), and compared with
// MPI's semantics computed directly.
//
// Per algorithm, stepped (one thread polls every rank's engine): p in {1,2,3,4,5,7,8},
// counts {0,1,7,100,1000}, segment sizes {0, 3 elements, 256 B} when segmented (count
// 1000: {0, 256 B}), fan-outs {default, 3} when it has one, roots {0, p-1, p/2} for rooted
// collectives, in place or not where MPI allows it, seeds {0,1,2} (count 1000: {0,1};
// seed 0 completes in order, the others in random orders). Then with ranks as threads,
// every algorithm x p in {1,2,3,4,5,7,8} x progress mode {thread, poll, block}. Elements are 64-bit; the reduction is a non-commutative, associative
// user operation (composition of affine maps) unless the algorithm is commutative_only,
// then a sum. Besides the results: send buffers must be unchanged, and for counts <= 100
// every rank's schedule is checked statically for steps that touch overlapping memory
// (one of them writing) without being ordered by dependencies. Barriers are checked for
// the barrier property: every rank's steps depend, through messages, on every rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "coll/algorithms.hpp"
#include "coll/building.hpp"
#include "coll/select.hpp"
#include "coll_harness.hpp"
#include "coll/reduce_ops.hpp"
#include "coll/schedule.hpp"

namespace {

using namespace tandem::coll;
using tandem::test::RankMemory;
using tandem::test::RunOptions;

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Affine maps x -> alpha x + beta (mod 2^32), alpha in the high half: a op b = "a, then b".
// Associative, not commutative.
std::uint64_t compose(std::uint64_t a, std::uint64_t b) {
  std::uint32_t aa = static_cast<std::uint32_t>(a >> 32), ab = static_cast<std::uint32_t>(a);
  std::uint32_t ba = static_cast<std::uint32_t>(b >> 32), bb = static_cast<std::uint32_t>(b);
  std::uint32_t alpha = aa * ba, beta = ba * ab + bb;
  return (std::uint64_t{alpha} << 32) | beta;
}

void affine_fn(const void* in, void* inout, std::uint64_t count, void*) {
  const auto* a = static_cast<const std::uint64_t*>(in);
  auto* b = static_cast<std::uint64_t*>(inout);
  for (std::uint64_t k = 0; k < count; ++k) b[k] = compose(a[k], b[k]);
}

void sum_fn(const void* in, void* inout, std::uint64_t count, void*) {
  const auto* a = static_cast<const std::uint64_t*>(in);
  auto* b = static_cast<std::uint64_t*>(inout);
  for (std::uint64_t k = 0; k < count; ++k) b[k] += a[k];
}

constexpr std::uint32_t kElem = 8;

// Input element i of rank q, wherever it lives (send buffer, or receive buffer in place).
std::uint64_t data(int q, std::uint64_t i) {
  return mix((static_cast<std::uint64_t>(q) << 40) ^ i) | (std::uint64_t{1} << 32);  // odd alpha
}
// What a receive buffer holds before the call where it is not input.
std::uint64_t sentinel(int q, std::uint64_t i) {
  return ~mix((static_cast<std::uint64_t>(q) << 40) ^ i ^ 0x5e5e5e5e5e5e);
}

bool rooted(Coll c) { return c == Coll::Bcast || c == Coll::Reduce || c == Coll::Gather || c == Coll::Scatter; }
bool has_in_place(Coll c) { return c != Coll::Bcast && c != Coll::Barrier; }

struct Case {
  int p = 1, root = 0;
  std::uint64_t count = 0, segsize = 0;
  int fanout = 0;
  bool in_place = false;
  std::shared_ptr<const NodeMap> nodes;  // null: a node per rank
  std::string str(const Algorithm& alg) const {
    std::ostringstream o;
    o << coll_name(alg.coll) << "/" << alg.name << " p=" << p << " count=" << count << " root=" << root
      << " in_place=" << in_place << " segsize=" << segsize << " fanout=" << fanout;
    if (nodes) {
      o << " nodes=";
      for (int x : *nodes) o << x;
    }
    return o.str();
  }
};

Args args_of(const Algorithm& alg, const Case& k, int rank) {
  Args a;
  a.coll = alg.coll;
  a.rank = rank;
  a.size = k.p;
  a.root = k.root;
  a.count = k.count;
  a.elem_size = kElem;
  // MPI_IN_PLACE is given at the root only for the rooted collectives.
  a.in_place = k.in_place && (!rooted(alg.coll) || rank == k.root);
  a.commutative = alg.commutative_only;
  a.segsize = k.segsize;
  a.fanout = k.fanout;
  a.nodes = k.nodes;
  return a;
}

using Words = std::vector<std::uint64_t>;

Words get(const std::vector<unsigned char>& v) {
  Words w(v.size() / kElem);
  if (!w.empty()) std::memcpy(w.data(), v.data(), w.size() * kElem);
  return w;
}
void put(std::vector<unsigned char>& v, const Words& w) {
  v.resize(w.size() * kElem);
  if (!w.empty()) std::memcpy(v.data(), w.data(), v.size());
}

// Initial memory of rank q: send and receive buffers sized by send_bytes / recv_bytes.
RankMemory initial(const Args& a) {
  const int q = a.rank;
  const std::uint64_t n = a.count;
  Words s(send_bytes(a) / kElem), r(recv_bytes(a) / kElem);
  for (std::uint64_t i = 0; i < s.size(); ++i) s[i] = data(q, i);
  for (std::uint64_t i = 0; i < r.size(); ++i) r[i] = sentinel(q, i);
  const bool root = q == a.root;
  switch (a.coll) {
    case Coll::Bcast:
      if (root)
        for (std::uint64_t i = 0; i < n; ++i) r[i] = data(q, i);
      break;
    case Coll::Reduce:
    case Coll::Allreduce:
    case Coll::Alltoall:
    case Coll::ReduceScatterBlock:
      if (a.in_place)
        for (std::uint64_t i = 0; i < r.size(); ++i) r[i] = data(q, i);
      break;
    case Coll::Allgather:
    case Coll::Gather:
      if (a.in_place)
        for (std::uint64_t i = 0; i < n; ++i) r[static_cast<std::uint64_t>(q) * n + i] = data(q, i);
      break;
    case Coll::Scatter:
    case Coll::Barrier:
      break;
  }
  RankMemory m;
  put(m.send, s);
  put(m.recv, r);
  return m;
}

std::uint64_t fold(int p, std::uint64_t i, bool affine) {
  std::uint64_t acc = data(0, i);
  for (int q = 1; q < p; ++q) acc = affine ? compose(acc, data(q, i)) : acc + data(q, i);
  return acc;
}

// The expected receive buffer of rank q (of initial contents `init`), and how many leading
// elements of it MPI defines (the rest: anything).
Words expected(const Args& a, const Words& init, bool affine, std::size_t* defined) {
  const int q = a.rank, p = a.size;
  const std::uint64_t n = a.count, P = static_cast<std::uint64_t>(p), Q = static_cast<std::uint64_t>(q);
  Words e = init;
  *defined = e.size();
  switch (a.coll) {
    case Coll::Bcast:
      for (std::uint64_t i = 0; i < n; ++i) e[i] = data(a.root, i);
      break;
    case Coll::Reduce:
    case Coll::Allreduce:
      for (std::uint64_t i = 0; i < e.size(); ++i) e[i] = fold(p, i, affine);
      break;
    case Coll::Allgather:
    case Coll::Gather:
      for (std::uint64_t j = 0; j < P && !e.empty(); ++j)
        for (std::uint64_t i = 0; i < n; ++i) e[j * n + i] = data(static_cast<int>(j), i);
      break;
    case Coll::Alltoall:
      for (std::uint64_t j = 0; j < P; ++j)
        for (std::uint64_t i = 0; i < n; ++i) e[j * n + i] = data(static_cast<int>(j), Q * n + i);
      break;
    case Coll::Scatter:
      for (std::uint64_t i = 0; i < e.size(); ++i) e[i] = data(a.root, Q * n + i);
      break;
    case Coll::ReduceScatterBlock:
      for (std::uint64_t i = 0; i < n; ++i) e[i] = fold(p, Q * n + i, affine);
      *defined = n;  // in place, the rest of the buffer is scratch
      break;
    case Coll::Barrier:
      break;
  }
  return e;
}

// ---- static checks of the schedules ----------------------------------------------------

struct Access {
  Buf buf;
  std::uint64_t lo, hi;
  bool write;
  std::uint32_t step;
};

// Steps of one schedule that touch overlapping bytes, one writing, with neither depending
// (transitively) on the other: what the executor may run at the same time.
std::string races(const Schedule& s) {
  const std::size_t N = s.steps.size(), W = (N + 63) / 64;
  std::vector<std::uint64_t> anc(N * W, 0);
  for (std::size_t i = 0; i < N; ++i)
    for (std::uint32_t k = 0; k < s.steps[i].dep_count; ++k) {
      std::size_t d = s.deps[s.steps[i].dep_begin + k];
      for (std::size_t w = 0; w < W; ++w) anc[i * W + w] |= anc[d * W + w];
      anc[i * W + d / 64] |= std::uint64_t{1} << (d % 64);
    }
  auto before = [&](std::size_t a, std::size_t b) { return (anc[b * W + a / 64] >> (a % 64)) & 1; };
  std::vector<Access> acc;
  for (std::uint32_t i = 0; i < N; ++i) {
    const Step& st = s.steps[i];
    if (!st.bytes) continue;
    switch (st.kind) {
      case StepKind::Send:
        acc.push_back({st.src.buf, st.src.off, st.src.off + st.bytes, false, i});
        break;
      case StepKind::Recv:
        acc.push_back({st.dst.buf, st.dst.off, st.dst.off + st.bytes, true, i});
        break;
      case StepKind::Reduce:
      case StepKind::Copy:
        acc.push_back({st.src.buf, st.src.off, st.src.off + st.bytes, false, i});
        acc.push_back({st.dst.buf, st.dst.off, st.dst.off + st.bytes, true, i});
        break;
      case StepKind::Nop:
        break;
    }
  }
  std::sort(acc.begin(), acc.end(),
            [](const Access& a, const Access& b) { return std::tie(a.buf, a.lo) < std::tie(b.buf, b.lo); });
  for (std::size_t i = 0; i < acc.size(); ++i)
    for (std::size_t j = i + 1; j < acc.size() && acc[j].buf == acc[i].buf && acc[j].lo < acc[i].hi; ++j) {
      const Access &a = acc[i], &b = acc[j];
      if (a.step == b.step || !(a.write || b.write)) continue;
      if (before(a.step, b.step) || before(b.step, a.step)) continue;
      std::ostringstream o;
      o << "rank " << s.rank << ": steps " << a.step << " and " << b.step << " touch overlapping bytes [" << a.lo
        << ", " << a.hi << ") / [" << b.lo << ", " << b.hi << ") unordered\n";
      std::string d = s.dump();
      if (d.size() > 6000) d = d.substr(0, 6000) + "...\n";
      return o.str() + d;
    }
  return {};
}

// Whether every rank's steps depend, through local dependencies and messages, on a step of
// every rank.
std::string not_a_barrier(const std::vector<Schedule>& all) {
  const int p = static_cast<int>(all.size());
  std::vector<std::size_t> base(static_cast<std::size_t>(p) + 1, 0);
  for (int q = 0; q < p; ++q) base[q + 1] = base[q] + all[q].steps.size();
  std::vector<std::vector<std::size_t>> preds(base[p]);
  std::map<std::tuple<int, int, std::uint32_t>, std::size_t> sends;
  for (int q = 0; q < p; ++q)
    for (std::size_t i = 0; i < all[q].steps.size(); ++i) {
      const Step& st = all[q].steps[i];
      for (std::uint32_t k = 0; k < st.dep_count; ++k)
        preds[base[q] + i].push_back(base[q] + all[q].deps[st.dep_begin + k]);
      if (st.kind == StepKind::Send) sends[{q, st.peer, st.tag}] = base[q] + i;
    }
  for (int q = 0; q < p; ++q)
    for (std::size_t i = 0; i < all[q].steps.size(); ++i) {
      const Step& st = all[q].steps[i];
      if (st.kind == StepKind::Recv) preds[base[q] + i].push_back(sends.at({st.peer, q, st.tag}));
    }
  auto owner = [&](std::size_t g) {
    return static_cast<int>(std::upper_bound(base.begin(), base.end(), g) - base.begin()) - 1;
  };
  for (int r = 0; r < p; ++r) {
    std::vector<bool> seen(base[p], false);
    std::vector<std::size_t> todo;
    for (std::size_t g = base[r]; g < base[r + 1]; ++g) seen[g] = true, todo.push_back(g);
    std::set<int> ranks;
    while (!todo.empty()) {
      std::size_t g = todo.back();
      todo.pop_back();
      ranks.insert(owner(g));
      for (std::size_t x : preds[g])
        if (!seen[x]) seen[x] = true, todo.push_back(x);
    }
    if (static_cast<int>(ranks.size()) != p)
      return "rank " + std::to_string(r) + " may leave before all ranks entered (depends on " +
             std::to_string(ranks.size()) + " ranks)";
  }
  return {};
}

// Runs one case under the given seeds (stepped), or once with ranks as threads in `mode`;
// returns the first problem, or "".
std::string run_case(const Algorithm& alg, const Case& k, const std::vector<std::uint64_t>& seeds,
                     std::optional<tandem::progress::Mode> mode = std::nullopt) {
  const bool affine = reduces(alg.coll) && !alg.commutative_only;
  Reducer red;
  red.type = DType::U64;
  red.op = ROp::User;
  red.fn = affine ? affine_fn : sum_fn;
  red.elem = kElem;
  red.commutative = !affine;
  std::vector<Schedule> sch;
  std::vector<Args> args;
  for (int q = 0; q < k.p; ++q) {
    args.push_back(args_of(alg, k, q));
    try {
      sch.push_back(build(alg, args.back()));
    } catch (const std::exception& e) {
      return std::string("build of rank ") + std::to_string(q) + " throws: " + e.what();
    }
  }
  if (k.count <= 100)
    for (const Schedule& s : sch)
      if (std::string why = races(s); !why.empty()) return why;
  if (alg.coll == Coll::Barrier && k.p > 1)
    if (std::string why = not_a_barrier(sch); !why.empty()) return why;
  for (std::uint64_t seed : seeds) {
    std::vector<RankMemory> mem;
    for (const Args& a : args) mem.push_back(initial(a));
    const std::vector<RankMemory> init = mem;
    RunOptions o;
    o.inproc.seed = seed;
    if (mode) o.threads = true, o.mode = *mode;
    try {
      std::vector<int> errors = tandem::test::run_collective(sch, mem, red, o);
      for (int q = 0; q < k.p; ++q)
        if (errors[static_cast<std::size_t>(q)]) return "rank " + std::to_string(q) + " reports error " + std::to_string(errors[q]);
    } catch (const std::exception& e) {
      return "seed " + std::to_string(seed) + ": " + e.what();
    }
    for (int q = 0; q < k.p; ++q) {
      if (mem[q].send != init[q].send)
        return "seed " + std::to_string(seed) + ": rank " + std::to_string(q) + "'s send buffer changed";
      if (mem[q].recv.size() != init[q].recv.size()) return "receive buffer resized";
      std::size_t defined = 0;
      Words want = expected(args[q], get(init[q].recv), affine, &defined);
      Words got = get(mem[q].recv);
      for (std::size_t i = 0; i < defined; ++i)
        if (got[i] != want[i]) {
          std::ostringstream o;
          o << "seed " << seed << ": rank " << q << " element " << i << " of " << got.size() << " is " << std::hex
            << got[i] << ", expected " << want[i] << (got[i] == get(init[q].recv)[i] ? " (untouched)" : "");
          return o.str();
        }
    }
  }
  return {};
}

std::vector<int> roots_for(Coll c, int p) {
  if (!rooted(c)) return {0};
  std::vector<int> r = {0, p - 1, p / 2};
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

class CollAlgorithms : public ::testing::TestWithParam<Coll> {};

TEST_P(CollAlgorithms, MatchMpiSemanticsStepped) {
  const Coll c = GetParam();
  ASSERT_FALSE(algorithms(c).empty()) << coll_name(c) << " has no algorithm";
  for (const Algorithm& alg : algorithms(c)) {
    std::size_t cases = 0;
    std::string failure;
    const std::vector<std::uint64_t> counts =
        c == Coll::Barrier ? std::vector<std::uint64_t>{0, 7} : std::vector<std::uint64_t>{0, 1, 7, 100, 1000};
    for (int p : {1, 2, 3, 4, 5, 7, 8}) {
      for (std::uint64_t count : counts) {
        const bool big = count >= 1000;
        std::vector<std::uint64_t> segs = {0};
        if (alg.segmented)
          segs = big ? std::vector<std::uint64_t>{0, 256} : std::vector<std::uint64_t>{0, 3 * kElem, 256};
        std::vector<int> fans = {0};
        if (alg.default_fanout) fans = {0, 3};
        std::vector<std::uint64_t> seeds = big ? std::vector<std::uint64_t>{0, 1} : std::vector<std::uint64_t>{0, 1, 2};
        for (int root : roots_for(c, p))
          for (bool in_place : {false, true}) {
            if (in_place && !has_in_place(c)) continue;
            for (std::uint64_t seg : segs)
              for (int fan : fans) {
                Case k;
                k.p = p, k.root = root, k.count = count, k.segsize = seg, k.fanout = fan, k.in_place = in_place;
                ++cases;
                failure = run_case(alg, k, seeds);
                if (!failure.empty()) {
                  ADD_FAILURE() << k.str(alg) << ": " << failure;
                  goto next_algorithm;  // one report per algorithm
                }
              }
          }
      }
    }
  next_algorithm:
    EXPECT_GT(cases, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(All, CollAlgorithms, ::testing::ValuesIn(all_colls()),
                         [](const ::testing::TestParamInfo<Coll>& i) { return std::string(coll_name(i.param)); });

// Node maps of p ranks for the hierarchical compositions: consecutive pairs and triples,
// round robin over two nodes (no node's ranks consecutive), uneven nodes (one of a single
// rank), and one node.
std::vector<std::shared_ptr<const NodeMap>> node_maps(int p) {
  std::vector<std::shared_ptr<const NodeMap>> out = {block_nodes(p, 2), block_nodes(p, 3), block_nodes(p, p)};
  NodeMap rr, uneven;
  for (int r = 0; r < p; ++r) {
    rr.push_back(r % 2);
    uneven.push_back(r == 0 ? 0 : r < 3 ? 1 : 2 + (r - 3) / 3);
  }
  out.push_back(std::make_shared<const NodeMap>(rr));
  out.push_back(std::make_shared<const NodeMap>(uneven));
  return out;
}

TEST(HierarchicalAlgorithms, ListedOnesMatchMpiSemanticsOnNodeMaps) {
  std::size_t listed = 0;
  for (Coll c : all_colls())
    for (const Algorithm& alg : algorithms(c)) {
      if (!alg.hierarchical()) continue;
      ++listed;
      EXPECT_EQ(find_algorithm(c, alg.name), &alg);
      for (int p : {2, 3, 5, 7, 8}) {
        for (const auto& nodes : node_maps(p))
          for (std::uint64_t count : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{100}})
            for (int root : roots_for(c, p))
              for (bool in_place : {false, true}) {
                if (in_place && !has_in_place(c)) continue;
                for (std::uint64_t seg : alg.segmented ? std::vector<std::uint64_t>{0, 3 * kElem} : std::vector<std::uint64_t>{0}) {
                  Case k;
                  k.p = p, k.root = root, k.count = count, k.segsize = seg, k.in_place = in_place, k.nodes = nodes;
                  if (std::string f = run_case(alg, k, {0, 1}); !f.empty()) {
                    ADD_FAILURE() << k.str(alg) << ": " << f;
                    goto next;
                  }
                }
              }
      }
    next:;
    }
  // bcast, reduce, allreduce and allgather each have one per algorithm of the leaders' phase.
  EXPECT_EQ(listed, algorithms(Coll::Bcast).size() / 2 + algorithms(Coll::Reduce).size() / 2 +
                        algorithms(Coll::Allreduce).size() / 2 + algorithms(Coll::Allgather).size() / 2);
}

// Any flat algorithm in any phase: every composition, by name, on two uneven node maps.
TEST(HierarchicalAlgorithms, EveryCompositionByName) {
  auto flat = [](Coll c) {
    std::vector<std::string> v;
    for (const Algorithm& a : algorithms(c))
      if (!a.hierarchical()) v.push_back(a.name);
    return v;
  };
  std::vector<std::pair<Coll, std::vector<std::vector<std::string>>>> colls = {
      {Coll::Bcast, {flat(Coll::Bcast), flat(Coll::Bcast)}},
      {Coll::Reduce, {flat(Coll::Reduce), flat(Coll::Reduce)}},
      {Coll::Allreduce, {flat(Coll::Reduce), flat(Coll::Allreduce), flat(Coll::Bcast)}},
      {Coll::Allgather, {flat(Coll::Gather), flat(Coll::Allgather), flat(Coll::Bcast)}}};
  const auto uneven5 = std::make_shared<const NodeMap>(NodeMap{0, 1, 0, 1, 0});
  const auto uneven6 = std::make_shared<const NodeMap>(NodeMap{0, 0, 1, 1, 1, 2});
  std::size_t made = 0;
  for (const auto& [c, phases] : colls) {
    std::vector<std::string> names = {"hier"};
    for (const auto& ph : phases) {
      std::vector<std::string> next;
      for (const auto& n : names)
        for (const auto& a : ph) next.push_back(n + "/" + a);
      names = next;
    }
    for (const auto& name : names) {
      const Algorithm* alg = find_algorithm(c, name);
      ASSERT_NE(alg, nullptr) << name;
      EXPECT_EQ(find_algorithm(c, name), alg) << "made twice: " << name;
      EXPECT_EQ(std::string(alg->name), name);
      ++made;
      for (const auto& nodes : {uneven5, uneven6}) {
        Case k;
        k.p = static_cast<int>(nodes->size()), k.root = k.p - 1, k.count = 7, k.nodes = nodes;
        k.segsize = alg->segmented ? 2 * kElem : 0;
        if (std::string f = run_case(*alg, k, {1}); !f.empty()) {
          ADD_FAILURE() << k.str(*alg) << ": " << f;
          break;
        }
      }
    }
  }
  EXPECT_GT(made, 500u);
  std::string why;
  EXPECT_FALSE(parse_choice(Coll::Allreduce, "hier/binomial/ring", &why)) << "a phase missing";
  EXPECT_FALSE(parse_choice(Coll::Allreduce, "hier/binomial/ring/binomial/x", &why)) << "a phase too many";
  EXPECT_FALSE(parse_choice(Coll::Allreduce, "hier/binomial/nosuch/binomial", &why));
  EXPECT_FALSE(parse_choice(Coll::Alltoall, "hier/linear/linear", &why)) << "alltoall has no composition";
  EXPECT_FALSE(parse_choice(Coll::Allreduce, "hier/binomial/hier/binomial/ring/binomial/binomial", &why));
  auto ch = parse_choice(Coll::Allreduce, "hier/binomial/segmented_ring/pipeline:32K", &why);
  ASSERT_TRUE(ch) << why;
  EXPECT_EQ(ch->segsize, 32u * 1024);
  EXPECT_TRUE(ch->alg->commutative_only) << "it combines inside nodes first";
}

// A hierarchical composition on a machine of nodes sends fewer messages between nodes than
// its flat leaders' algorithm: one rank per node takes part in the leaders' phase.
TEST(HierarchicalAlgorithms, FewerMessagesBetweenNodes) {
  const int p = 8;
  const auto nodes = block_nodes(p, 4);
  for (auto [c, flat_name, hier_name] : {std::tuple{Coll::Allreduce, "ring", "hier/binomial/ring/binomial"},
                                         std::tuple{Coll::Allgather, "ring", "hier/binomial/ring/binomial"},
                                         std::tuple{Coll::Bcast, "linear", "hier/linear/binomial"}}) {
    auto between = [&](const char* name) {
      const Algorithm* alg = find_algorithm(c, name);
      std::uint64_t bytes = 0;
      for (int r = 0; r < p; ++r) {
        Args a;
        a.coll = c, a.rank = r, a.size = p, a.count = 1024, a.elem_size = kElem, a.nodes = nodes;
        for (const Step& st : build(*alg, a).steps)
          if (st.kind == StepKind::Send && (*nodes)[static_cast<std::size_t>(st.peer)] != (*nodes)[static_cast<std::size_t>(r)])
            bytes += st.bytes;
      }
      return bytes;
    };
    EXPECT_LT(between(hier_name), between(flat_name)) << coll_name(c);
  }
}

// Ranks as threads, each waiting for its execution, on engines in every progress mode:
// every algorithm x rank count x mode, with two counts (one segmented when the algorithm
// is) and a random completion order.
using ModeCase = std::tuple<Coll, tandem::progress::Mode>;
class CollAlgorithmsInModes : public ::testing::TestWithParam<ModeCase> {};

TEST_P(CollAlgorithmsInModes, MatchMpiSemanticsWithRanksAsThreads) {
  const auto [c, mode] = GetParam();
  for (const Algorithm& alg : algorithms(c)) {
    for (int p : {1, 2, 3, 4, 5, 7, 8}) {
      for (std::uint64_t count : std::vector<std::uint64_t>{7, 300}) {
        Case k;
        k.p = p, k.count = c == Coll::Barrier ? 0 : count, k.root = rooted(c) ? p - 1 : 0;
        k.segsize = alg.segmented && count > 7 ? 256 : 0;
        std::string failure = run_case(alg, k, {count}, mode);
        if (!failure.empty()) {
          ADD_FAILURE() << k.str(alg) << " mode " << tandem::progress::mode_name(mode) << ": " << failure;
          break;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, CollAlgorithmsInModes,
    ::testing::Combine(::testing::ValuesIn(all_colls()),
                       ::testing::Values(tandem::progress::Mode::Thread, tandem::progress::Mode::Poll,
                                         tandem::progress::Mode::Block)),
    [](const ::testing::TestParamInfo<ModeCase>& i) {
      return std::string(coll_name(std::get<0>(i.param))) + "_" + tandem::progress::mode_name(std::get<1>(i.param));
    });

// A transport error at completion reaches every affected rank's execution: the call still
// completes (no rank hangs) and reports the error, in every progress mode.
TEST(CollErrors, InjectedTransportFailureReachesWait) {
  const Algorithm* alg = find_algorithm(Coll::Allreduce, "ring");
  ASSERT_NE(alg, nullptr);
  for (auto mode : {tandem::progress::Mode::Thread, tandem::progress::Mode::Poll, tandem::progress::Mode::Block})
    for (std::uint64_t fail_at : {1, 5, 17}) {
      const int p = 4;
      std::vector<Schedule> sch;
      std::vector<RankMemory> mem;
      for (int q = 0; q < p; ++q) {
        Case k;
        k.p = p, k.count = 100;
        Args a = args_of(*alg, k, q);
        sch.push_back(build(*alg, a));
        mem.push_back(initial(a));
      }
      Reducer red;
      red.type = DType::U64;
      red.op = ROp::Sum;
      red.elem = kElem;
      RunOptions o;
      o.threads = true;
      o.mode = mode;
      o.inproc.fail_at = fail_at;
      o.inproc.fail_error = 4242;
      std::vector<int> errors = tandem::test::run_collective(sch, mem, red, o);
      int failed = 0;
      for (int e : errors) {
        EXPECT_TRUE(e == 0 || e == 4242) << e;
        failed += e == 4242;
      }
      EXPECT_EQ(failed, 1) << "fail_at " << fail_at << " mode " << tandem::progress::mode_name(mode);
    }
}

// A receive shorter than its message completes with the transport's truncation error.
TEST(CollErrors, TruncatedReceiveIsAnError) {
  Builder b0(0, 2, 1), b1(1, 2, 1);
  b0.send(1, at(Buf::Send, 0), 16);
  b1.recv(0, at(Buf::Recv, 0), 8);
  std::vector<Schedule> sch;
  sch.push_back(std::move(b0).finish());
  sch.push_back(std::move(b1).finish());
  std::vector<RankMemory> mem(2);
  mem[0].send.assign(16, 1);
  mem[1].recv.assign(8, 0);
  Reducer red;
  for (bool threads : {false, true}) {
    RunOptions o;
    o.threads = threads;
    std::vector<int> errors = tandem::test::run_collective(sch, mem, red, o);
    EXPECT_EQ(errors[0], 0);
    EXPECT_EQ(errors[1], tandem::transport::kInprocTruncated);
    EXPECT_EQ(mem[1].recv, std::vector<unsigned char>(8, 1));  // what fits arrived
  }
}

// A schedule that can never complete is reported as a deadlock, naming what is unmatched.
TEST(CollErrors, DeadlockIsReportedWithTheUnmatchedOperations) {
  Builder b0(0, 2, 1), b1(1, 2, 1);
  b0.recv(1, at(Buf::Recv, 0), 8);
  b1.recv(0, at(Buf::Recv, 0), 8);
  std::vector<Schedule> sch;
  sch.push_back(std::move(b0).finish());
  sch.push_back(std::move(b1).finish());
  std::vector<RankMemory> mem(2);
  mem[0].recv.assign(8, 0);
  mem[1].recv.assign(8, 0);
  try {
    tandem::test::run_collective(sch, mem, Reducer{}, RunOptions{});
    FAIL() << "no deadlock reported";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("recv 1->0 seq 7 tag 0"), std::string::npos) << e.what();
  }
}

// ---- the reusable phases of building.hpp, composed into allreduces --------------------
// Uneven blocks (split_even) and, for the halving, MPICH-style blocks (count split over
// the m = pow2_floor(p) ranks that stay, empty blocks for the others).

std::vector<Range> even_blocks(const Args& a) { return split_even(a.count, a.size, a.elem_size); }
std::vector<Range> pow2_blocks(const Args& a) {
  const int m = pow2_floor(a.size);
  std::vector<Range> v = split_even(a.count, m, a.elem_size);
  v.resize(static_cast<std::size_t>(a.size), Range{a.count * a.elem_size, 0});
  return v;
}
Loc input_of(const Args& a) { return at(a.in_place ? Buf::Recv : Buf::Send, 0); }

Schedule ring_ring(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (a.count) {
    auto blocks = even_blocks(a);
    StepId rs = reduce_scatter_ring(b, input_of(a), blocks, at(Buf::Recv, blocks[a.rank].off), a.segsize);
    allgather_ring(b, Buf::Recv, blocks, a.segsize, rs);
  }
  return std::move(b).finish();
}
template <bool Mpich, bool Unfold>
Schedule halving_doubling(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (a.count) {
    auto blocks = Mpich ? pow2_blocks(a) : even_blocks(a);
    StepId rs = reduce_scatter_recursive_halving(b, input_of(a), at(Buf::Recv, 0), blocks, Unfold);
    allgather_recursive_doubling(b, Buf::Recv, blocks, rs, !Unfold);
  }
  return std::move(b).finish();
}
// Ring reduce-scatter into a scratch area, recursive doubling from there.
Schedule ring_to_tmp(const Args& a) {
  Builder b(a.rank, a.size, a.elem_size);
  if (a.count) {
    auto blocks = even_blocks(a);
    const std::uint64_t t = b.scratch(a.count * a.elem_size);
    const Range mine = blocks[static_cast<std::size_t>(a.rank)];
    StepId rs = reduce_scatter_ring(b, input_of(a), blocks, at(Buf::Tmp, t + mine.off), a.segsize);
    if (mine.bytes) rs = b.copy(at(Buf::Tmp, t + mine.off), at(Buf::Recv, mine.off), mine.bytes, {rs});
    allgather_recursive_doubling(b, Buf::Recv, blocks, rs);
  }
  return std::move(b).finish();
}

TEST(CollPhases, ComposeIntoAllreduce) {
  const std::vector<Algorithm> phases = {
      {"rs_ring+ag_ring", Coll::Allreduce, true, 0, true, ring_ring, "-"},
      {"rs_halving+ag_doubling", Coll::Allreduce, false, 0, true, halving_doubling<false, true>, "-"},
      {"rs_halving+ag_doubling folded", Coll::Allreduce, false, 0, true, halving_doubling<false, false>, "-"},
      {"rs_halving+ag_doubling mpich blocks", Coll::Allreduce, false, 0, true, halving_doubling<true, false>, "-"},
      {"rs_ring to tmp+ag_doubling", Coll::Allreduce, true, 0, true, ring_to_tmp, "-"},
  };
  for (const Algorithm& alg : phases)
    for (int p : {1, 2, 3, 4, 5, 6, 7, 8, 11})
      for (std::uint64_t count : {0, 1, 5, 7, 9, 100})
        for (bool in_place : {false, true})
          for (std::uint64_t seg : {0, 8, 24})
            if (seg == 0 || alg.segmented) {
              Case k;
              k.p = p, k.count = count, k.in_place = in_place, k.segsize = seg;
              std::string failure = run_case(alg, k, {0, 1, 2});
              if (!failure.empty()) {
                ADD_FAILURE() << k.str(alg) << ": " << failure;
                return;
              }
            }
}

TEST(CollAlgorithmTables, NamesSummariesAndOrderCheck) {
  for (Coll c : all_colls()) {
    std::set<std::string> names;
    for (const Algorithm& alg : algorithms(c)) {
      EXPECT_EQ(alg.coll, c) << alg.name;
      EXPECT_TRUE(names.insert(alg.name).second) << coll_name(c) << " lists " << alg.name << " twice";
      EXPECT_NE(std::string(alg.summary), "") << alg.name;
      EXPECT_EQ(find_algorithm(c, alg.name), &alg);
      Args a;
      a.coll = c, a.size = 4, a.count = 3, a.elem_size = kElem, a.commutative = false;
      if (alg.commutative_only)
        EXPECT_THROW(build(alg, a), std::invalid_argument) << alg.name;
      else
        EXPECT_NO_THROW(build(alg, a)) << alg.name;
    }
  }
}

}  // namespace
