// Predictions over candidates: every algorithm of a collective at every segment size and
// fan-out of a grid, ranked by the simulator. What model-driven selection, `tandem sim`
// and the tuner's model-only and model-guided methods use. Free of MPI.
#pragma once
#include <cstddef>
#include <cstdint>
#include <queue>
#include <string>
#include <vector>

#include "coll/algorithms.hpp"
#include "coll/reduce_ops.hpp"
#include "model/profile.hpp"
#include "model/sim.hpp"

namespace tandem::model {

// The profile's reduce table for a datatype and operation: "float:sum", "double:max", ...
std::string reduce_key(coll::DType t, coll::ROp o);

// The parameters tried for each algorithm: segment sizes (0: unsegmented) for algorithms
// that take one, fan-outs for those that have one (0: the algorithm's default).
struct Grid {
  std::vector<std::uint64_t> segsizes{0};
  std::vector<int> fanouts{0};
};

// One call to cost: the collective, the ranks and where they are, the bytes each rank
// contributes (as coll::Query::bytes: count x datatype size), the element size and the
// reduction's table.
struct Problem {
  coll::Coll coll = coll::Coll::Barrier;
  Topology topo;
  std::uint64_t bytes = 0;
  std::uint32_t elem_size = 1;
  bool commutative = true;
  int root = 0;
  SimOptions sim;
  coll::Args args(const coll::Choice& c) const;  // the call for a candidate
};

struct Prediction {
  coll::Choice choice;
  double time = 0;     // simulated seconds (bound: a lower bound of them)
  bool bound = false;  // not simulated: its lower bound already exceeds the `exact` best
};

// Every candidate that can run the problem: each algorithm (but those that need a
// commutative operation when it is not), at each grid segment size below the message
// (segmented algorithms) and fan-out (algorithms with one). Equivalent candidates (a
// segment size at least the message's: the same schedule as none) appear once.
std::vector<coll::Choice> candidates(const Problem& pb, const Grid& g);

// Simulates each candidate; by increasing time (ties: the order of candidates()). With
// `exact` below the number of candidates, only the first `exact` of the result are sure
// to be simulated: candidates are simulated from the smallest replay up (model::
// lower_bound's size), and one whose lower bound exceeds the exact-th best time simulated
// so far is left at that bound (Prediction::bound) — it cannot be among the first `exact`.
// The choice is the same as simulating all; at hundreds of ranks it skips the candidates
// that cut a large message into millions of small messages.
std::vector<Prediction> rank_candidates(const Problem& pb, const std::vector<coll::Choice>& cands, const Profile& p,
                                        std::size_t exact = SIZE_MAX);

// How rank_candidates skips candidates, for callers that simulate them themselves (`tandem
// sim`): each candidate's lower bound, the order to simulate them in, and whether one can
// no longer be among the first `exact`. A candidate whose bound cannot be computed (its
// schedule cannot be built) gets bound 0: it is simulated, which says what is wrong.
class Pruning {
 public:
  Pruning(const Problem& pb, const std::vector<coll::Choice>& cands, const Profile& p, std::size_t exact);
  const std::vector<std::size_t>& order() const { return order_; }  // indices into cands
  double bound(std::size_t i) const { return bounds_[i].time; }
  bool skip(std::size_t i) const { return kept_.size() >= exact_ && bounds_[i].time > kept_.top(); }
  void simulated(double t);  // a candidate's simulated time, in order()

 private:
  std::size_t exact_;
  std::vector<SimBound> bounds_;
  std::vector<std::size_t> order_;
  std::priority_queue<double> kept_;  // the `exact` best simulated so far (the largest on top)
};

// The fastest candidate (rank_candidates with exact 1).
Prediction best(const Problem& pb, const Grid& g, const Profile& p);

}  // namespace tandem::model
