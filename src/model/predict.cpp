#include "model/predict.hpp"

#include <algorithm>
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

Pruning::Pruning(const Problem& pb, const std::vector<coll::Choice>& cands, const Profile& p, std::size_t exact)
    : exact_(std::max<std::size_t>(exact, 1)), bounds_(cands.size()), order_(cands.size()) {
  for (std::size_t i = 0; i < cands.size(); ++i) {
    try {
      bounds_[i] = lower_bound(*cands[i].alg, pb.args(cands[i]), p, pb.topo, pb.sim);
    } catch (const std::exception&) {
      bounds_[i] = {};
    }
    order_[i] = i;
  }
  std::stable_sort(order_.begin(), order_.end(), [&](std::size_t a, std::size_t b) { return bounds_[a].steps < bounds_[b].steps; });
}

void Pruning::simulated(double t) {
  kept_.push(t);
  if (kept_.size() > exact_) kept_.pop();
}

std::vector<Prediction> rank_candidates(const Problem& pb, const std::vector<coll::Choice>& cands, const Profile& p,
                                        std::size_t exact) {
  std::vector<Prediction> out(cands.size());
  auto sim = [&](std::size_t i) { return simulate(*cands[i].alg, pb.args(cands[i]), p, pb.topo, pb.sim).time; };
  if (exact >= cands.size()) {
    for (std::size_t i = 0; i < cands.size(); ++i) out[i] = {cands[i], sim(i)};
  } else {
    Pruning pr(pb, cands, p, exact);
    for (std::size_t i : pr.order()) {
      if (pr.skip(i)) {
        out[i] = {cands[i], pr.bound(i), true};
        continue;
      }
      out[i] = {cands[i], sim(i), false};
      pr.simulated(out[i].time);
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
