// The autotuner: for each point {collective, rank count, message size} it chooses the
// fastest variant (one of tandem's algorithms with a segment size and fan-out, or the MPI
// library's own algorithm), by one of the search methods of Vadhiyar, Fagg and Dongarra
// and the model, measuring through a Measurer the caller provides (the CLI launches the
// benchmark program). Free of MPI and of processes: the search is tested on synthetic
// measurers.
//
// Methods (Method):
//   Exhaustive  every candidate at every point
//   MGD         per algorithm, a descent over the segment sizes: from a start (the best
//               segment size of the previous size, else the middle of the grid) to the
//               neighbour that is faster, until none is
//   SMGD        the scanning descent with pruning: segment sizes from the smallest up,
//               stopped at the first that is slower; an algorithm whose first measurement
//               is more than `prune` times the best first one (or the MPI default) is
//               dropped
//               (both descents step every algorithm at once, one measurement run a round)
//   Pipeline    the pipeline shortcut: a tree's segment size from its longest edge alone
//               (the profile's point-to-point time t(s) between nodes: the time of a
//               segmented tree is about (depth + n/s - 1) t(s)); then one measurement per
//               algorithm
//   Model       the simulator's ranking only, nothing measured
//   Guided      the simulator's ranking, then the `guided_top` best candidates measured
// Every method but Model also measures the MPI library's own algorithm (its default), so
// a point never gets a choice slower than it.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coll/algorithms.hpp"
#include "model/predict.hpp"
#include "model/profile.hpp"

namespace tandem::tune {

enum class Method { Exhaustive, MGD, SMGD, Pipeline, Model, Guided };
const char* method_name(Method m);
std::optional<Method> parse_method(const std::string& s);

// What runs a call: tandem's algorithm, or (alg == nullptr) the MPI library's own; for
// the MPI's own, `mpi_alg` may force one of its algorithms (Open MPI's coll_tuned number,
// MPICH's name) with its segment size.
struct Variant {
  coll::Choice choice;       // alg == nullptr: the MPI library's
  std::string mpi_alg;       // "" the MPI's default; else its algorithm (number or name)
  std::uint64_t mpi_segsize = 0;
  // One of the MPI's own algorithms as a candidate of tandem's rules: measured as the rules
  // run (under `tandem run` unless the tuning is plain), apart from the exports' plain runs.
  bool as_rules = false;
  int mpi_fanout = 0;  // with mpi_alg: its fan-out (Open MPI's chains; 0: the default)
  // A confirmation run of the same variant (Options::confirm): 0 the first measurement.
  int repeat = 0;
  // The label, with "#R" for a confirmation run: how the store and Outcome::measured name
  // this measurement.
  std::string key() const;
  std::string label() const;  // "ring:32K", "mpi", "mpi:3:32K", "mpi:2:32K:3", "mpi:3:32K@run" (as_rules)
  // The exports' measurement of the MPI's default: Open MPI's fixed decision ("0"), MPICH's
  // MPIR default ("auto").
  bool is_export_default() const { return !as_rules && !choice.alg && (mpi_alg == "0" || mpi_alg == "auto"); }
  // As a rules file writes the choice: "ring:32K", "mpi" (also for "mpi:0", Open MPI's
  // fixed decision), "mpi:3:32K".
  std::string rules_choice() const;
  bool is_mpi() const { return choice.alg == nullptr; }
};

struct Point {
  coll::Coll coll = coll::Coll::Allreduce;
  int ranks = 2;
  std::uint64_t bytes = 0;  // one rank's contribution, as coll::Query::bytes
  std::string key() const;  // "allreduce/4/65536"
};

// Measures variants at a point: the median time in seconds of each (NaN: it failed).
// Called with several variants at once where the method allows (one launch for them all).
using Measurer = std::function<std::vector<double>(const Point&, const std::vector<Variant>&)>;

struct Options {
  Method method = Method::SMGD;
  model::Grid grid;                 // segment sizes and fan-outs
  double prune = 1.5;               // SMGD: drop an algorithm this many times the best
  int guided_top = 3;               // Guided: candidates measured
  bool include_mpi_default = true;  // measure the MPI library's default at every point
  // The MPI library's default stays the choice (of the rules, and of the exports) unless
  // another variant is faster by more than this factor: a choice within the timing noise
  // of the default gains nothing and may lose (1: the fastest measured wins).
  double margin = 1.0;
  // Where the choice is not the MPI's default and was measured in another launch than the
  // default (one of the MPI's own algorithms forced), the choice and the default are
  // measured again this many times each, alternately, and the medians of all their runs
  // decide (with the margin): the fastest of many variants each timed in a launch of its
  // own is biased low by the launches' spread (the winner's curse). 0: no confirmation.
  int confirm = 0;
  // Per collective (coll::Coll as int), the MPI's own algorithms to measure too, for the
  // exports (their best is Outcome::best_mpi, never the tuned choice of tandem's rules).
  std::map<int, std::vector<Variant>> mpi_variants;
  // Per collective, the MPI's own algorithms that are candidates of the tuned choice
  // (tandem's rules name them `mpi:N[:SEG]`), as_rules.
  std::map<int, std::vector<Variant>> mpi_candidates;
  std::uint32_t elem_size = 4;      // reductions' datatype size (float)
  int ranks_per_node = 1;
  std::function<void()> on_store;   // after each run's measurements are in the store (to save it)
};

struct Outcome {
  Point point;
  Variant best;                 // the fastest measured (Model: predicted)
  double best_time = 0;         // its measured time (Model: predicted), seconds
  double mpi_default_time = -1; // the MPI library's default, measured (-1: not)
  double predicted = -1;        // the model's time for `best` (-1: no profile)
  Variant best_mpi;             // the fastest of the MPI's own variants measured
  double best_mpi_time = -1;
  std::map<std::string, double> measured;   // label -> seconds, every variant measured here
  std::map<std::string, double> predictions;  // label -> seconds, with a profile
  int experiments = 0;          // variants measured at this point (cached ones not counted)
};

// The results measured so far, by point key and variant label: what makes an interrupted
// tuning resume without measuring again.
struct Store {
  std::map<std::string, std::map<std::string, double>> times;
  std::optional<double> get(const Point& p, const Variant& v) const;
  void put(const Point& p, const Variant& v, double seconds);
  std::string to_json() const;
  static Store from_json(const std::string& text, const std::string& name);  // throws naming the file
};

class Tuner {
 public:
  // `profile` may be null for methods that need no model (Exhaustive, MGD, SMGD).
  Tuner(Options o, Measurer m, const model::Profile* profile, Store* store);
  Outcome tune(const Point& p);
  // Every candidate variant of tandem at the point (the exhaustive search's set).
  std::vector<Variant> candidates(const Point& p) const;
  int experiments() const { return experiments_; }

 private:
  double measure_one(const Point& p, const Variant& v, Outcome& out);
  // The confirmation of `chosen` against `dflt` (Options::confirm): replaces *chosen by
  // dflt unless its median beats dflt's by the margin; *time becomes the winner's median.
  void confirm(const Point& p, Variant* chosen, double* time, const Variant& dflt, Outcome& out);
  std::vector<double> measure(const Point& p, const std::vector<Variant>& vs, Outcome& out);
  model::Problem problem(const Point& p) const;
  std::vector<std::uint64_t> segments_for(const coll::Algorithm& a, const Point& p) const;
  std::vector<int> fanouts_for(const coll::Algorithm& a, const Point& p) const;
  void descend_all(const Point& p, bool scan, std::vector<Variant> first_batch, Outcome& out);

  Options o_;
  Measurer m_;
  const model::Profile* profile_;
  Store* store_;
  int experiments_ = 0;
  std::map<std::string, std::uint64_t> last_seg_;  // MGD warm start: algorithm -> segment size
};

// Open MPI 4.1's coll_tuned dynamic rules file (the classic format, for
// `--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_dynamic_rules_filename FILE`)
// from the outcomes' best_mpi (variants whose mpi_alg is Open MPI's algorithm number; "0"
// its fixed decision): per collective its Open MPI id, per communicator size the message
// sizes from 0, each from the geometric midpoint with the tuned size below, in Open MPI's
// units (bytes per rank for bcast, reduce and allreduce; the whole buffer, bytes per rank
// times ranks, for the others). Only collectives Open MPI's tuned component decides and
// points with a measured best_mpi are written.
std::string ompi_rules_text(const std::vector<Outcome>& outcomes);

// MPICH 4.0's algorithms of its MPIR layer that collective c can be forced to
// (MPIR_CVAR_<COLL>_INTRA_ALGORITHM=name), and exported for (bcast, reduce, allreduce,
// allgather; empty for the others: their default trees are kept).
const std::vector<std::string>& mpich_algorithms(coll::Coll c);
// "MPIR_Allreduce_intra_ring" for (allreduce, "ring").
std::string mpich_function(coll::Coll c, const std::string& alg);
// An MPICH 4.0 collective selection file (MPIR_CVAR_COLL_SELECTION_TUNING_JSON_FILE):
// `base`, MPICH's own complete default tree (a collective missing from the file would
// assert), in which each exported collective's intracommunicator branch first checks the
// tuned communicator sizes exactly (comm_size<N: the default, comm_size<=N: the tuned
// choices by size, from the geometric midpoints between tuned sizes; MPICH compares
// bcast, reduce and allreduce on bytes per rank, allgather on the total) and otherwise
// keeps the default. A point whose best is MPICH's default ("auto") keeps the default
// tree there. Throws std::runtime_error when `base` is not such a tree.
std::string mpich_json_text(const std::vector<Outcome>& outcomes, const std::string& base);
// The ch4 selection file (MPIR_CVAR_CH4_COLL_SELECTION_TUNING_JSON_FILE) that sends
// bcast, reduce, allreduce and barrier on every intracommunicator down ch4's flat path
// (its netmod, which calls the MPIR selection above) instead of its node-aware
// compositions: `base` is MPICH's default ch4 tree, the other collectives are kept.
std::string mpich_ch4_flat_text(const std::string& base);

// The tandem rules that reproduce the outcomes: per collective and rank count, each
// tuned size's choice over the range from the geometric midpoint with the size below to
// the one with the size above (the first from 0, the last to infinity); a point whose
// best is the MPI library's own gives an `mpi` line.
std::string rules_text(const std::vector<Outcome>& outcomes, const std::string& comment);

}  // namespace tandem::tune
