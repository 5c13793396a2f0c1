// The collective algorithms: for each collective, named builders that emit one rank's
// schedule (schedule.hpp). Free of MPI: the model and the simulator use them too.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coll/schedule.hpp"

namespace tandem::coll {

enum class Coll : std::uint8_t {
  Bcast,
  Reduce,
  Allreduce,
  Allgather,
  Alltoall,
  Gather,
  Scatter,
  ReduceScatterBlock,
  Barrier,
};
constexpr int kCollCount = 9;

const char* coll_name(Coll c);                    // "allreduce", "reduce_scatter_block", ...
std::optional<Coll> parse_coll(std::string_view);  // the same names
const std::vector<Coll>& all_colls();
// Whether the collective combines with a reduction operation (Reduce, Allreduce,
// Reduce_scatter_block).
constexpr bool reduces(Coll c) { return c == Coll::Reduce || c == Coll::Allreduce || c == Coll::ReduceScatterBlock; }
// Whether a call's count is one rank's block of a buffer of `size` blocks (Allgather,
// Alltoall, Gather, Scatter, Reduce_scatter_block), not the whole vector (see Args).
constexpr bool blocked(Coll c) {
  return c == Coll::Allgather || c == Coll::Alltoall || c == Coll::Gather || c == Coll::Scatter ||
         c == Coll::ReduceScatterBlock;
}

// One call of a collective as one rank sees it. Counts follow MPI: for Bcast, Reduce and
// Allreduce `count` is the whole vector; for Allgather, Gather, Scatter, Alltoall and
// Reduce_scatter_block it is one rank's block (sendcount / recvcount); Barrier ignores it.
struct Args {
  Coll coll = Coll::Barrier;
  int rank = 0, size = 1, root = 0;
  std::uint64_t count = 0;
  std::uint32_t elem_size = 1;
  bool in_place = false;     // MPI_IN_PLACE (at the root only, for Gather, Scatter and Reduce)
  bool commutative = true;   // of the reduction operation
  std::uint64_t segsize = 0; // bytes per segment, 0: no segmentation
  int fanout = 0;            // 0: the algorithm's default
  bool operator==(const Args&) const = default;  // same arguments, same schedule
};

// The bytes of the caller's send and receive buffers a call uses (0 when unused, as on a
// non-root rank's receive buffer of Reduce, or the send buffer of an in-place call).
std::uint64_t send_bytes(const Args& a);
std::uint64_t recv_bytes(const Args& a);

struct Algorithm {
  const char* name;
  Coll coll;
  bool segmented;           // takes a segment size
  int default_fanout;       // 0: has no fan-out
  bool commutative_only;    // reorders operands: refuses non-commutative operations
  Schedule (*build)(const Args&);
  const char* summary;
};

const std::vector<Algorithm>& algorithms(Coll c);
const Algorithm* find_algorithm(Coll c, std::string_view name);

// Builds and validates the schedule. Throws std::invalid_argument for a bad call (root
// out of range, an operation the algorithm cannot combine in order, ...).
Schedule build(const Algorithm& alg, const Args& a);

// A choice: algorithm plus its parameters, as written in TANDEM_COLL_<COLL> and in rules
// files: `name[:segsize[:fanout]]` with K/M suffixes on the segment size.
struct Choice {
  const Algorithm* alg = nullptr;
  std::uint64_t segsize = 0;
  int fanout = 0;
  std::string str() const;
};
// Parses `text` for collective c; on error returns nullopt and sets *why.
std::optional<Choice> parse_choice(Coll c, std::string_view text, std::string* why);
// The same from its parts (segment size 0: none; fan-out 0: the algorithm's default).
inline constexpr std::uint64_t kMaxFanout = 1024;
std::optional<Choice> make_choice(Coll c, std::string_view name, std::uint64_t segsize, std::uint64_t fanout,
                                  std::string* why);

}  // namespace tandem::coll
