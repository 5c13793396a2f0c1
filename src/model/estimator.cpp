#include "model/estimator.hpp"

#include <bit>

namespace tandem::model {

ModelEstimator::ModelEstimator(Profile p, Grid g, std::string source)
    : p_(std::move(p)), g_(std::move(g)), source_(std::move(source)) {}

std::uint64_t ModelEstimator::class_bytes(std::uint64_t bytes, std::uint32_t elem) {
  if (bytes == 0) return 0;
  const std::uint64_t lo = std::bit_floor(bytes);
  const std::uint64_t e = elem ? elem : 1;
  return std::max<std::uint64_t>(e, lo / e * e);
}

std::optional<coll::Choice> ModelEstimator::estimate(const coll::Query& q) const noexcept {
  try {
    const std::uint32_t elem = q.elem_size ? q.elem_size : 1;
    const std::uint64_t bytes = class_bytes(q.bytes, elem);
    const std::string key = q.dtype && q.op && *q.op != coll::ROp::User ? reduce_key(*q.dtype, *q.op) : "float:sum";
    Key k{static_cast<int>(q.coll), q.ranks, q.ranks_per_node, bytes, q.commutative, elem, key};
    std::lock_guard<std::mutex> g(mu_);
    if (auto it = cache_.find(k); it != cache_.end()) return it->second;
    Problem pb;
    pb.coll = q.coll;
    pb.topo = topology_for(p_, q.ranks, q.ranks_per_node);
    pb.bytes = bytes;
    pb.elem_size = elem;
    pb.commutative = q.commutative;
    pb.sim.reduce_key = key;
    std::optional<coll::Choice> c;
    auto ranked = rank_candidates(pb, candidates(pb, g_), p_, 1);
    if (!ranked.empty()) c = ranked.front().choice;
    cache_.emplace(k, c);
    return c;
  } catch (...) {
    return std::nullopt;
  }
}

Grid grid_from_config(const Config& cfg) {
  Grid g;
  g.segsizes = cfg.model_segsizes;
  g.fanouts = {0};
  for (unsigned f : cfg.model_fanouts) g.fanouts.push_back(static_cast<int>(f));
  return g;
}

std::shared_ptr<const ModelEstimator> estimator_from_config(const Config& cfg, std::string* errors) {
  if (cfg.coll_model.empty()) return nullptr;
  try {
    return std::make_shared<const ModelEstimator>(load_profile(cfg.coll_model), grid_from_config(cfg), cfg.coll_model);
  } catch (const std::exception& e) {
    if (errors) *errors += setting_error("TANDEM_COLL_MODEL", cfg.coll_model, e.what());
    return nullptr;
  }
}

}  // namespace tandem::model
