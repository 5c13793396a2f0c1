// The one place that chooses a collective's algorithm, for the C++ API and for the PMPI
// wrappers alike. Free of MPI.
//
// Precedence, first that applies wins:
//   1. the call's own choice (the C++ API's CollOptions::algorithm)
//   2. TANDEM_COLL_<COLL> (forced; `mpi`: the MPI library's own, under `tandem run`)
//   3. the first matching line of the TANDEM_COLL_RULES file
//   4. the performance model's estimate, with a profile given (TANDEM_COLL_MODEL): an
//      Estimator (model/estimator.hpp) set by the layer that made the Selector
//   5. the fallback: under `tandem run` the MPI library's own algorithm; in the C++ API
//      tandem's built-in default
// A choice that cannot run the call (an algorithm that reorders operands, given a
// non-commutative operation) is skipped for the next level, and the selection says
// which one was skipped and why; an explicit call choice that cannot run is an error.
// Validity is checked here, once: what the executor then builds is known to be valid.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "coll/algorithms.hpp"
#include "coll/reduce_ops.hpp"
#include "coll/rules.hpp"
#include "common/config.hpp"

namespace tandem::coll {

// What the MPI library's own algorithm is called in selections and tables.
inline constexpr const char* kMpiChoice = "mpi";

enum class Fallback : std::uint8_t { Mpi, Builtin };

struct Query {
  Coll coll = Coll::Barrier;
  int ranks = 1;
  std::uint64_t bytes = 0;          // one rank's contribution: count x datatype size
  std::optional<DType> dtype;       // a reduction's datatype, when tandem has kernels for it
  std::optional<ROp> op;            // a reduction's operation (ROp::User for a user's)
  bool commutative = true;
  std::uint32_t elem_size = 1;      // the datatype's size
  int ranks_per_node = 0;           // ranks of the communicator per node (0: not known)
};

enum class Reason : std::uint8_t {
  Call,      // the call's own choice (C++ API)
  Forced,    // TANDEM_COLL_<COLL>
  ForcedMpi, // TANDEM_COLL_<COLL>=mpi
  Rule,      // a rules file line
  Model,     // the performance model's estimate (TANDEM_COLL_MODEL)
  Default,   // tandem's built-in default (C++ API)
  NoChoice,  // no setting decides: the MPI library's own (under `tandem run`)
  Invalid,   // the call's own choice cannot run the call (see why_not)
};

struct Selection {
  Choice choice;                // alg == nullptr: the MPI library's own
  Reason reason = Reason::NoChoice;
  const Rule* rule = nullptr;   // Reason::Rule: the line
  // A choice that was skipped because it cannot run this call (a forced setting or a
  // rule), or the reason of Reason::Invalid; empty when nothing was skipped.
  std::string why_not;
  Reason skipped = Reason::NoChoice;   // what was skipped (Forced or Rule)
  const Rule* skipped_rule = nullptr;  // ... and which line
  bool mpi() const noexcept { return choice.alg == nullptr; }
};

// A performance model's choice for a query: the fastest it predicts. Implemented above
// coll (model/estimator.hpp); thread-safe; the same on every rank for the same query.
class Estimator {
 public:
  virtual ~Estimator() = default;
  // nullopt: no estimate (the next level decides). Never throws.
  virtual std::optional<Choice> estimate(const Query& q) const noexcept = 0;
  virtual std::string describe() const = 0;  // "model on profile.json"
};

class Selector {
 public:
  Selector() = default;
  // Reads TANDEM_COLL_<COLL>, TANDEM_COLL_RULES and TANDEM_COLL_SMALL of `cfg`. Errors go to
  // *errors, one line per bad setting in the registry's format ("tandem: invalid
  // TANDEM_COLL_ALLREDUCE='fastest': unknown allreduce algorithm ..."); those settings
  // are then left unset.
  static Selector from_config(const Config& cfg, std::string* errors);

  Selection select(const Query& q, Fallback fb, const Choice* call_choice = nullptr) const noexcept;

  // The model consulted after the rules (nullptr: none).
  void set_estimator(std::shared_ptr<const Estimator> e) { estimator_ = std::move(e); }
  const Estimator* estimator() const noexcept { return estimator_.get(); }

  // What a selection's reason is, for messages and `tandem info --selection`:
  // "TANDEM_COLL_ALLREDUCE=ring", "rules.txt:3", "built-in default", ...
  std::string describe(Coll c, const Selection& s) const;
  // The same for a skipped choice ("TANDEM_COLL_ALLREDUCE=ring", "rules.txt:3").
  std::string describe_skipped(Coll c, const Selection& s) const;
  // tandem's built-in choice (when neither TANDEM_COLL_<COLL> nor a rule decides): a
  // latency algorithm below TANDEM_COLL_SMALL bytes per rank, a bandwidth one above.
  Choice builtin(const Query& q) const;

  bool has_settings(Coll c) const noexcept;  // forced, any rule for c, or a model
  const std::optional<Rules>& rules() const noexcept { return rules_; }
  // Whether TANDEM_COLL_<COLL> decides collective c (an algorithm or `mpi`): the rules never do.
  bool forced(Coll c) const noexcept {
    auto i = static_cast<std::size_t>(c);
    return forced_[i].has_value() || forced_mpi_[i];
  }

 private:
  std::optional<Choice> forced_[kCollCount];
  std::string forced_text_[kCollCount];  // as written in TANDEM_COLL_<COLL>
  bool forced_mpi_[kCollCount] = {};
  std::optional<Rules> rules_;
  std::uint64_t small_ = Config{}.coll_small;
  std::shared_ptr<const Estimator> estimator_;
};

// Why `alg` cannot run the call q (empty when it can): an operation it cannot combine in
// rank order, an operation MPI does not define on the datatype.
std::string cannot_run(const Algorithm& alg, const Query& q);

// The setting that forces collective c: "TANDEM_COLL_ALLREDUCE".
std::string forced_setting(Coll c);

}  // namespace tandem::coll
