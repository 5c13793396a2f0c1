#include "coll/ompi_rules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace tandem::coll {

int ompi_coll_id(Coll c) {
  switch (c) {
    case Coll::Allgather: return 0;
    case Coll::Allreduce: return 2;
    case Coll::Alltoall: return 3;
    case Coll::Barrier: return 6;
    case Coll::Bcast: return 7;
    case Coll::Gather: return 9;
    case Coll::Reduce: return 11;
    case Coll::ReduceScatterBlock: return 13;
    case Coll::Scatter: return 15;
  }
  return -1;
}

std::string format_ompi_rules(const OmpiTable& t) {
  std::string out = fmt::format("{}\n", t.size());
  for (const auto& [id, comms] : t) {
    out += fmt::format("{}\n{}\n", id, comms.size());
    for (const auto& [ranks, rules] : comms) {
      out += fmt::format("{}\n{}\n", ranks, rules.size());
      for (const auto& r : rules) out += fmt::format("{} {} {} {}\n", r.from, r.alg, r.fanout, r.segsize);
    }
  }
  return out;
}

bool ompi_takes_fanout(Coll c, long alg) { return (c == Coll::Bcast || c == Coll::Reduce) && alg == 2; }

long ompi_fanout(Coll c, long alg, int fanout) {
  if (!ompi_takes_fanout(c, alg)) return 0;
  return fanout > 0 ? fanout : kOmpiChainFanout;
}

bool ompi_algorithm_number(const std::string& s, long* out) {
  long v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v < 0) return false;
  *out = v;
  return true;
}

bool ompi_rules_for(const Rules& rules, int max_ranks, std::string* text, std::string* why) {
  text->clear();
  std::set<Coll> forced;
  for (const Rule& r : rules.rules) {
    if (r.choice.alg || r.mpi_alg.empty()) continue;
    long n = 0;
    if (!ompi_algorithm_number(r.mpi_alg, &n)) {
      if (why)
        *why = fmt::format("{}:{}: `mpi:{}`: Open MPI's algorithms are numbers (`ompi_info --param coll tuned --level 9` "
                           "lists them)", rules.source, r.line, r.mpi_alg);
      return false;
    }
    if (ompi_coll_id(r.coll) < 0) {
      if (why) *why = fmt::format("{}:{}: Open MPI's tuned component does not decide {}", rules.source, r.line, coll_name(r.coll));
      return false;
    }
    if (r.mpi_fanout > 0 && !ompi_takes_fanout(r.coll, n)) {
      if (why)
        *why = fmt::format("{}:{}: `{}`: Open MPI's algorithm {} of {} takes no fan-out (only the chains of bcast and "
                           "reduce, algorithm 2, do)", rules.source, r.line, r.choice_text(), n, coll_name(r.coll));
      return false;
    }
    forced.insert(r.coll);
  }
  if (forced.empty()) return true;
  OmpiTable t;
  for (Coll c : forced) {
    auto& comms = t[ompi_coll_id(c)];
    const std::vector<OmpiMsgRule>* below = nullptr;
    // The communicator sizes at which the entry can change: for the collectives Open MPI
    // counts in bytes per rank, where a line's rank range starts or ends; for those it
    // counts in whole buffers every size (the bounds scale with it).
    const int top = std::max(1, max_ranks);
    std::set<int> sizes{1};
    for (const Rule& r : rules.rules)
      if (r.coll == c) {
        if (r.ranks_lo <= top) sizes.insert(std::max(1, r.ranks_lo));
        if (r.ranks_hi < top) sizes.insert(r.ranks_hi + 1);
      }
    if (blocked(c))
      for (int p = 1; p <= top; ++p) sizes.insert(p);
    for (int p : sizes) {
      // The sizes at which the first matching line can change: every bound of the lines
      // for this collective and communicator size.
      std::set<std::uint64_t> bounds{0};
      for (const Rule& r : rules.rules)
        if (r.coll == c && p >= r.ranks_lo && p <= r.ranks_hi) {
          bounds.insert(r.bytes_lo);
          if (r.bytes_hi < UINT64_MAX) bounds.insert(r.bytes_hi + 1);
        }
      std::vector<OmpiMsgRule> msgs;
      for (std::uint64_t b : bounds) {
        const Rule* r = rules.match(c, p, b);
        OmpiMsgRule m;
        if (r && !r->choice.alg && !r->mpi_alg.empty()) {
          ompi_algorithm_number(r->mpi_alg, &m.alg);
          m.segsize = r->mpi_segsize;
          m.fanout = ompi_fanout(c, m.alg, r->mpi_fanout);
        }
        // Open MPI counts the whole buffer of the blocked collectives.
        const std::uint64_t scale = blocked(c) ? static_cast<std::uint64_t>(p) : 1;
        m.from = b > UINT64_MAX / scale ? UINT64_MAX : b * scale;
        if (!msgs.empty() && msgs.back().alg == m.alg && msgs.back().segsize == m.segsize &&
            msgs.back().fanout == m.fanout)
          continue;
        msgs.push_back(m);
      }
      if (below && *below == msgs) continue;
      below = &(comms[p] = std::move(msgs));
    }
  }
  *text = format_ompi_rules(t);
  return true;
}

}  // namespace tandem::coll
