// Rules files: which algorithm tandem runs for a collective, by rank count and message
// size. Written by hand or by the autotuner; read at MPI_Init (TANDEM_COLL_RULES).
//
//   # comments and blank lines are ignored
//   tandem-coll-rules 1                      <- first line: format and version
//   # collective  ranks   bytes      algorithm[:segsize[:fanout]]
//   allreduce     2-8     0-16K      recursive_doubling
//   allreduce     *       16K-       ring
//   bcast         4-      1M-64M     pipeline:64K
//   barrier       *       *          dissemination
//   bcast         *       0-1K       mpi        <- the MPI library's own (under `tandem run`)
//   bcast         4       2K-64K     mpi:3:32K  <- its algorithm 3 in 32 KiB segments
//
// ranks and bytes are `*`, `N`, `N-M` (inclusive) or `N-` (N and up); bytes take K/M/G
// suffixes (powers of 1024). The message size is the bytes of one rank's contribution:
// count x datatype size (for Allgather, Alltoall, Gather, Scatter and Reduce_scatter_block
// the per-rank block). For each call the first matching line of its collective wins;
// a call no line matches runs tandem's default choice. `mpi:ALG[:SEG[:FAN]]` names one of
// the MPI library's own algorithms: with Open MPI its coll_tuned number (ompi_info lists
// them), applied under `tandem run` through a coll_tuned dynamic rules file made at
// MPI_Init (coll/ompi_rules.hpp); segment size 0 or none is Open MPI's default (none), and
// a fan-out, which only Open MPI's chains of bcast and reduce take, defaults to what Open
// MPI runs when the algorithm is forced (coll_tuned_init_chain_fanout). Free of MPI.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coll/algorithms.hpp"

namespace tandem::coll {

constexpr int kRulesVersion = 1;

struct Rule {
  Coll coll;
  int ranks_lo = 0, ranks_hi = INT32_MAX;
  std::uint64_t bytes_lo = 0, bytes_hi = UINT64_MAX;
  Choice choice;  // alg == nullptr: `mpi`, the MPI library's own algorithm
  std::string mpi_alg;           // with alg == nullptr: `mpi:ALG`, one of the MPI's own ("" its default)
  std::uint64_t mpi_segsize = 0;  // `mpi:ALG:SEG`
  int mpi_fanout = 0;             // `mpi:ALG:SEG:FAN` (0: the algorithm's default)
  int line = 0;
  std::string choice_text() const;  // as written: "ring:32K", "mpi", "mpi:3:32K", "mpi:2:32K:3"
};

struct Rules {
  std::string source;  // file name, for messages
  std::vector<Rule> rules;
  // The first rule for (c, p, bytes), or nullptr.
  const Rule* match(Coll c, int p, std::uint64_t bytes) const;
  // Whether a line names one of the MPI library's own algorithms (`mpi:ALG`).
  bool forces_mpi_algorithm() const;
};

// How a rules file writes the MPI library's own algorithm: "mpi" (alg empty), "mpi:3",
// "mpi:3:32K", "mpi:2:32K:3" (a fan-out), "mpi:2:0:3" (a fan-out, unsegmented).
std::string mpi_choice_text(const std::string& alg, std::uint64_t segsize, int fanout = 0);

// Parses rules text; on error returns nullopt and sets *why to "SOURCE:LINE: what".
std::optional<Rules> parse_rules(std::string_view text, const std::string& source, std::string* why);
// Reads and parses a file (errors: cannot read, or as parse_rules).
std::optional<Rules> load_rules(const std::string& path, std::string* why);
// The text of rules (the format above), e.g. for the autotuner.
std::string format_rules(const Rules& r);

}  // namespace tandem::coll
