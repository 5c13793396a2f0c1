#include "coll/loopback.hpp"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <tuple>

namespace tandem::coll {

namespace {
struct RankState {
  std::vector<unsigned char> tmp;
  std::vector<std::uint32_t> waiting;
  std::vector<std::vector<std::uint32_t>> succ;
  std::vector<bool> posted;  // sends and receives posted, waiting for their match
};

void* locate(RankMemory& m, RankState& st, Loc l) {
  unsigned char* base = l.buf == Buf::Send ? m.send.data() : l.buf == Buf::Recv ? m.recv.data() : st.tmp.data();
  return base ? base + l.off : nullptr;
}
}  // namespace

void run_loopback(const std::vector<Schedule>& s, std::vector<RankMemory>& mem, const Reducer& r, std::uint64_t seed) {
  const std::size_t p = s.size();
  if (mem.size() != p) throw std::invalid_argument("one RankMemory per schedule");
  std::vector<RankState> st(p);
  std::size_t left = 0;
  // Ready steps of all ranks, as (rank, step).
  std::vector<std::pair<std::uint32_t, std::uint32_t>> ready;
  for (std::size_t i = 0; i < p; ++i) {
    const Schedule& sc = s[i];
    if (sc.size != static_cast<int>(p) || sc.rank != static_cast<int>(i))
      throw std::invalid_argument(fmt::format("schedule {} says rank {} of {}", i, sc.rank, sc.size));
    st[i].tmp.assign(sc.tmp_bytes, 0xA5);  // scratch starts as garbage, never zeros
    st[i].waiting.resize(sc.steps.size());
    st[i].succ.resize(sc.steps.size());
    st[i].posted.assign(sc.steps.size(), false);
    for (std::uint32_t k = 0; k < sc.steps.size(); ++k) {
      st[i].waiting[k] = sc.steps[k].dep_count;
      for (std::uint32_t d = 0; d < sc.steps[k].dep_count; ++d) st[i].succ[sc.deps[sc.steps[k].dep_begin + d]].push_back(k);
      if (sc.steps[k].dep_count == 0) ready.push_back({static_cast<std::uint32_t>(i), k});
    }
    left += sc.steps.size();
  }
  // Posted, unmatched operations: (src, dst, tag) -> step at the sender / receiver.
  using Key = std::tuple<int, int, std::uint32_t>;
  std::map<Key, std::uint32_t> sends, recvs;
  std::mt19937_64 rng(seed);
  std::vector<unsigned char> scratch;

  auto complete = [&](std::uint32_t rank, std::uint32_t step) {
    --left;
    for (std::uint32_t n : st[rank].succ[step])
      if (--st[rank].waiting[n] == 0) ready.push_back({rank, n});
  };
  auto match = [&](const Key& k) {
    auto si = sends.find(k);
    auto ri = recvs.find(k);
    if (si == sends.end() || ri == recvs.end()) return;
    auto [src, dst, tag] = k;
    const Step& ss = s[src].steps[si->second];
    const Step& rs = s[dst].steps[ri->second];
    if (ss.bytes != rs.bytes)
      throw std::runtime_error(fmt::format("message {} -> {} tag {}: {} bytes sent, {} expected", src, dst, tag, ss.bytes,
                                           rs.bytes));
    if (ss.bytes)
      std::memcpy(locate(mem[dst], st[dst], rs.dst), locate(mem[src], st[src], ss.src), ss.bytes);
    std::uint32_t a = si->second, b = ri->second;
    sends.erase(si);
    recvs.erase(ri);
    complete(static_cast<std::uint32_t>(src), a);
    complete(static_cast<std::uint32_t>(dst), b);
  };

  while (!ready.empty()) {
    std::size_t pick = seed ? static_cast<std::size_t>(rng() % ready.size()) : 0;
    auto [rank, step] = ready[pick];
    ready[pick] = ready.back();
    ready.pop_back();
    const Step& x = s[rank].steps[step];
    switch (x.kind) {
      case StepKind::Send:
      case StepKind::Recv: {
        Key k = x.kind == StepKind::Send ? Key{static_cast<int>(rank), x.peer, x.tag}
                                         : Key{x.peer, static_cast<int>(rank), x.tag};
        auto& table = x.kind == StepKind::Send ? sends : recvs;
        if (!table.emplace(k, step).second)
          throw std::runtime_error(fmt::format("rank {} posts a second {} with tag {} {} rank {}", rank,
                                               x.kind == StepKind::Send ? "send" : "receive", x.tag,
                                               x.kind == StepKind::Send ? "to" : "from", x.peer));
        match(k);
        break;
      }
      case StepKind::Reduce:
        if (scratch.size() < x.bytes) scratch.resize(x.bytes);
        r.apply(locate(mem[rank], st[rank], x.src), locate(mem[rank], st[rank], x.dst), x.bytes, x.src_first,
                scratch.data());
        complete(rank, step);
        break;
      case StepKind::Copy:
        if (x.bytes) std::memcpy(locate(mem[rank], st[rank], x.dst), locate(mem[rank], st[rank], x.src), x.bytes);
        complete(rank, step);
        break;
      case StepKind::Nop: complete(rank, step); break;
    }
  }
  if (left) {
    std::string what;
    for (const auto& [k, step] : sends)
      what += fmt::format(" send {}->{} tag {};", std::get<0>(k), std::get<1>(k), std::get<2>(k));
    for (const auto& [k, step] : recvs)
      what += fmt::format(" recv {}->{} tag {};", std::get<0>(k), std::get<1>(k), std::get<2>(k));
    throw std::runtime_error(fmt::format("deadlock: {} steps never ran; unmatched:{}", left, what.empty() ? " none" : what));
  }
}

}  // namespace tandem::coll
