// Model-driven selection: the coll::Estimator that picks, per collective, communicator
// size, ranks per node and size class, the candidate the simulator predicts fastest on a
// profile (TANDEM_COLL_MODEL). Free of MPI.
//
// A size class is a power of two of bytes per rank: a query is costed at its class's
// lower bound (whole elements), so every rank, whatever call of the class came first,
// computes the same choice; the choice is cached (NCCL fills its cost table the same
// way, once per communicator). The grid of segment sizes and fan-outs is
// TANDEM_COLL_MODEL_SEGSIZES and TANDEM_COLL_MODEL_FANOUTS.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "coll/select.hpp"
#include "common/config.hpp"
#include "model/predict.hpp"
#include "model/profile.hpp"

namespace tandem::model {

class ModelEstimator final : public coll::Estimator {
 public:
  ModelEstimator(Profile p, Grid g, std::string source);
  std::optional<coll::Choice> estimate(const coll::Query& q) const noexcept override;
  std::string describe() const override { return "model on " + source_; }
  const Profile& profile() const { return p_; }
  // The bytes a query is costed at: the lower bound of its size class, in whole elements.
  static std::uint64_t class_bytes(std::uint64_t bytes, std::uint32_t elem);

 private:
  Profile p_;
  Grid g_;
  std::string source_;
  using Key = std::tuple<int, int, int, std::uint64_t, bool, std::uint32_t, std::string>;
  mutable std::mutex mu_;
  mutable std::map<Key, std::optional<coll::Choice>> cache_;
};

// The estimator TANDEM_COLL_MODEL asks for (nullptr when unset). A profile that cannot be
// read adds one line to *errors in the registry's format and gives nullptr.
std::shared_ptr<const ModelEstimator> estimator_from_config(const Config& cfg, std::string* errors);

// The grid of TANDEM_COLL_MODEL_SEGSIZES and TANDEM_COLL_MODEL_FANOUTS.
Grid grid_from_config(const Config& cfg);

}  // namespace tandem::model
