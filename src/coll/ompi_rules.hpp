// Open MPI 4.1's coll_tuned dynamic rules file, in its classic format (for
// `--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_dynamic_rules_filename FILE`):
//
//   NCOLLS
//   per collective: its id (ompi_coll_id), the number of communicator sizes,
//     per size: the size, the number of message rules, then lines
//       MSGSIZE ALGORITHM FANINOUT SEGSIZE
//
// Open MPI takes, for a call, the communicator entry with the largest size not above the
// call's (the first entry if all are above it) and in it the message rule with the largest
// size not above the call's message size, which it counts in bytes per rank for bcast,
// reduce and allreduce and in bytes of the whole buffer for the others; algorithm 0 is
// its fixed decision. Each entry's first message size must be 0, and any error makes Open
// MPI discard the whole file, silently. Used by the exports of `tandem tune` and, under
// `tandem run`, for rules lines that choose one of Open MPI's algorithms (`mpi:N`).
// Free of MPI.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coll/algorithms.hpp"
#include "coll/rules.hpp"

namespace tandem::coll {

// Open MPI's collective id (coll_base_functions.h), -1 for none.
int ompi_coll_id(Coll c);

struct OmpiMsgRule {
  std::uint64_t from = 0;  // Open MPI's message size (see above) from which it applies
  long alg = 0;            // coll_tuned's algorithm number, 0 its fixed decision
  long fanout = 0;         // the chains' fan-out (ompi_fanout); the others take none
  std::uint64_t segsize = 0;
  bool operator==(const OmpiMsgRule&) const = default;
};
// collective id -> communicator size -> message rules (the first from 0)
using OmpiTable = std::map<int, std::map<int, std::vector<OmpiMsgRule>>>;
std::string format_ompi_rules(const OmpiTable& t);

// Open MPI's fan-out of chains when the algorithm is forced without one
// (coll_tuned_init_chain_fanout, read-only in Open MPI 4.1).
constexpr int kOmpiChainFanout = 4;
// Whether Open MPI 4.1's algorithm `alg` of collective c takes a fan-out: the chains of
// bcast and reduce (number 2 of each).
bool ompi_takes_fanout(Coll c, long alg);
// The FANINOUT a dynamic rules file must name for algorithm `alg` with fan-out `fanout`
// (0: none given) to run what forcing it with that fan-out runs: a file's 0 would make a
// chain a single pipeline, not Open MPI's forced default of kOmpiChainFanout chains.
long ompi_fanout(Coll c, long alg, int fanout);

// Whether `s` names one of Open MPI's algorithms the way rules and exports do: a number.
bool ompi_algorithm_number(const std::string& s, long* out);

// The dynamic rules that make Open MPI run what `rules` choose for communicators of 1 to
// `max_ranks` ranks: for each collective with a line `mpi:N[:SEG]`, per communicator size
// the message rules of the lines that match it (Open MPI's algorithm N where such a line
// matches, 0 elsewhere: tandem's own algorithms and plain `mpi`), in Open MPI's units, one
// entry per communicator size where it differs from the size below. Empty when no line
// forces one of Open MPI's algorithms. A line whose algorithm is not a number is an error
// (*why: "SOURCE:LINE: ..."), and so is a collective Open MPI's tuned component does not
// decide; returns false then.
bool ompi_rules_for(const Rules& rules, int max_ranks, std::string* text, std::string* why);

}  // namespace tandem::coll
