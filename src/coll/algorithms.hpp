// The collective algorithms: for each collective, named builders that emit one rank's
// schedule (schedule.hpp). Free of MPI: the model and the simulator use them too.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
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

// Which node each rank of a communicator is on: node ids 0, 1, ... numbered in order of
// their lowest rank (the hierarchical algorithms' leaders and phases follow from it).
using NodeMap = std::vector<int>;
// Ranks r of `ranks` on node r / per_node (the layout the model and simulator assume).
std::shared_ptr<const NodeMap> block_nodes(int ranks, int per_node);
// Renumbers node keys (one per rank, any values) to node ids in order of first rank.
NodeMap node_ids(const std::vector<std::uint64_t>& keys);

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
  // The node of every rank (null: every rank on a node of its own). Read by the
  // hierarchical algorithms only; the others ignore it.
  std::shared_ptr<const NodeMap> nodes;
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
  Schedule (*build)(const Args&);  // null for a hierarchical composition (phases)
  const char* summary;
  // A hierarchical composition (alg_hier.cpp) runs these algorithms one after another on
  // sub-groups of the communicator (null where a collective has fewer phases):
  //   bcast:     leaders' bcast, node-local bcast
  //   reduce:    node-local reduce, leaders' reduce
  //   allreduce: node-local reduce, leaders' allreduce, node-local bcast
  //   allgather: node-local gather, leaders' allgather, node-local bcast
  std::array<const Algorithm*, 3> phases{};
  bool hierarchical() const { return phases[0] != nullptr; }
};

// The algorithms of a collective, as listed to users and tried by the tuner and the model:
// the flat ones, then hierarchical compositions whose node-local phases are binomial
// trees (one per leaders' algorithm).
const std::vector<Algorithm>& algorithms(Coll c);
// One of algorithms(c), or any hierarchical composition named `hier/A/B[/C]` of the
// collective's phases (made on first use and kept), or nullptr.
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
