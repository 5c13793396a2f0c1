#include "model/predict.hpp"

#include <algorithm>
#include <queue>
#include <stdexcept>

namespace tandem::model {

std::string reduce_key(coll::DType t, coll::ROp o) {
  return std::string(coll::dtype_name(t)) + ":" + coll::rop_name(o);
}

coll::Args Problem::args(const coll::Choice& c) const {
  coll::Args a;
  a.coll = coll;
  a.size = topo.ranks;
  a.root = root;
  a.elem_size = elem_size;
  a.count = elem_size ? bytes / elem_size : 0;
  a.commutative = commutative;
  a.segsize = c.segsize;
  a.fanout = c.fanout;
  a.nodes = coll::block_nodes(topo.ranks, topo.ranks_per_node);
  return a;
}

std::vector<coll::Choice> candidates(const Problem& pb, const Grid& g) {
  std::vector<coll::Choice> out;
  // The largest message a segment size can cut: the whole vector for the rooted and
  // reducing collectives, a block for the others (as the builders segment them).
  const std::uint64_t msg = pb.bytes;
  // With one rank per node or one node, a hierarchical composition is its leaders' (or
  // node-local) algorithm with trivial other phases: no candidate of its own.
  const bool hierarchy = pb.topo.ranks_per_node > 1 && pb.topo.nodes() > 1;
  for (const auto& alg : coll::algorithms(pb.coll)) {
    if (alg.commutative_only && !pb.commutative) continue;
    if (alg.hierarchical() && !hierarchy) continue;
    std::vector<std::uint64_t> segs{0};
    if (alg.segmented)
      for (std::uint64_t s : g.segsizes)
        if (s > 0 && s < msg && s % pb.elem_size == 0) segs.push_back(s);
    std::vector<int> fans{0};
    if (alg.default_fanout)
      for (int f : g.fanouts)
        if (f > 0 && f != alg.default_fanout && f < pb.topo.ranks && !(f == 1 && std::string_view(alg.name) == "knomial"))
          fans.push_back(f);
    for (std::uint64_t s : segs)
      for (int f : fans) out.push_back(coll::Choice{&alg, s, f});
  }
  return out;
}

std::vector<Prediction> rank_candidates(const Problem& pb, const std::vector<coll::Choice>& cands, const Profile& p,
                                        std::size_t exact) {
  std::vector<Prediction> out(cands.size());
  if (exact >= cands.size()) {
    for (std::size_t i = 0; i < cands.size(); ++i) out[i] = {cands[i], simulate(*cands[i].alg, pb.args(cands[i]), p, pb.topo, pb.sim).time};
  } else {
    std::vector<SimBound> bounds(cands.size());
    std::vector<std::size_t> order(cands.size());
    for (std::size_t i = 0; i < cands.size(); ++i) {
      bounds[i] = lower_bound(*cands[i].alg, pb.args(cands[i]), p, pb.topo, pb.sim);
      order[i] = i;
    }
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return bounds[a].steps < bounds[b].steps; });
    std::priority_queue<double> kept;  // the `exact` best times simulated so far (the largest on top)
    for (std::size_t i : order) {
      if (kept.size() >= std::max<std::size_t>(exact, 1) && bounds[i].time > kept.top()) {
        out[i] = {cands[i], bounds[i].time, true};
        continue;
      }
      const double t = simulate(*cands[i].alg, pb.args(cands[i]), p, pb.topo, pb.sim).time;
      out[i] = {cands[i], t, false};
      kept.push(t);
      if (kept.size() > std::max<std::size_t>(exact, 1)) kept.pop();
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Prediction& a, const Prediction& b) { return a.time < b.time; });
  return out;
}

Prediction best(const Problem& pb, const Grid& g, const Profile& p) {
  auto r = rank_candidates(pb, candidates(pb, g), p, 1);
  if (r.empty()) throw std::invalid_argument(std::string("no algorithm of ") + coll::coll_name(pb.coll) + " can run this call");
  return r.front();
}

}  // namespace tandem::model
