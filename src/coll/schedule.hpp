// A collective algorithm, as one rank's schedule of primitive steps.
//
// An algorithm is a builder (algorithms.hpp) that, for one rank, emits the steps that
// rank performs: send a byte range to a peer, receive one from a peer, combine one
// range into another with the reduction operation, copy a range, or nothing (a join
// point). Each step lists the steps it must wait for. The same schedule is
//   - executed by tandem's progress engine (executor.hpp) over a point-to-point
//     transport (transport/p2p.hpp),
//   - costed by the performance model and replayed by the simulator (both free of MPI).
// Nothing here knows about MPI.
//
// Buffers are named, not addressed: the caller's send buffer, its receive buffer, and
// one scratch area whose size the builder declares. Offsets and lengths are in bytes and
// always whole elements.
//
// Message matching: every Send and Recv carries a tag, the index of that message among
// the messages between the same two ranks in the same direction. Builders of the two
// ranks emit a pair's messages in the same logical order, so the tags agree without
// any exchange; the executor adds a per-call sequence number so that calls in flight
// at the same time never match each other's messages.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tandem::coll {

enum class StepKind : std::uint8_t {
  Send,    // send bytes at src to peer
  Recv,    // receive bytes from peer into dst
  Reduce,  // dst = combine(src, dst), see Step::src_first
  Copy,    // dst = src (ranges do not overlap)
  Nop,     // a join point: completes when its dependencies have
};

const char* kind_name(StepKind k);  // "send", "recv", ...

enum class Buf : std::uint8_t { Send, Recv, Tmp };

struct Loc {
  Buf buf = Buf::Tmp;
  std::uint64_t off = 0;
};

struct Step {
  StepKind kind = StepKind::Nop;
  // Reduce: true when src holds the operand of the lower ranks (dst = src op dst);
  // false when dst does (dst = dst op src). Matters for non-commutative operations.
  bool src_first = true;
  std::int32_t peer = -1;    // Send, Recv
  std::uint32_t tag = 0;     // Send, Recv: index among the messages of this pair and direction
  Loc src, dst;
  std::uint64_t bytes = 0;
  std::uint32_t dep_begin = 0, dep_count = 0;  // into Schedule::deps
};

struct Schedule {
  int rank = 0, size = 1;
  std::uint32_t elem_size = 1;
  std::uint64_t tmp_bytes = 0;
  std::vector<Step> steps;
  std::vector<std::uint32_t> deps;  // dependency lists of all steps, back to back
  // The reverse relation, filled by Builder::finish(): the steps that depend on step i are
  // succ[succ_begin[i] .. succ_begin[i+1]).
  std::vector<std::uint32_t> succ_begin, succ;

  // Checks the invariants the executor relies on (deps point backwards, ranges inside
  // the declared scratch area, peers in range, whole elements); throws std::logic_error
  // naming the first broken step.
  void validate(std::uint64_t send_bytes, std::uint64_t recv_bytes) const;
  std::size_t messages() const;
  std::string dump() const;  // one line per step, for debugging and tests
};

using StepId = std::uint32_t;
constexpr StepId kNoStep = 0xffffffffu;

// Emits steps, numbering tags per peer and keeping dependency lists.
class Builder {
 public:
  Builder(int rank, int size, std::uint32_t elem_size);

  int rank() const { return s_.rank; }
  int size() const { return s_.size; }
  std::uint32_t elem_size() const { return s_.elem_size; }

  // Each returns the new step's id. Dependencies equal to kNoStep are skipped, so
  // optional predecessors can be passed without branching.
  StepId send(int peer, Loc src, std::uint64_t bytes, std::initializer_list<StepId> deps = {});
  StepId recv(int peer, Loc dst, std::uint64_t bytes, std::initializer_list<StepId> deps = {});
  StepId reduce(Loc src, Loc dst, std::uint64_t bytes, bool src_first, std::initializer_list<StepId> deps = {});
  StepId copy(Loc src, Loc dst, std::uint64_t bytes, std::initializer_list<StepId> deps = {});
  StepId nop(std::initializer_list<StepId> deps = {});
  StepId nop(const std::vector<StepId>& deps);
  // A step like `st` (its kind, peer, ranges, bytes, operand order; a Send's or Recv's tag
  // is numbered here) after `deps`: how a schedule built for a sub-group is copied in.
  StepId add(const Step& st, const std::vector<StepId>& deps);

  // Adds a dependency to an emitted step; dep must be an earlier step (or kNoStep).
  void add_dep(StepId step, StepId dep);

  // Every step emitted after a fence depends on every step emitted before it (through
  // one join step): how phases are composed (reduce, then broadcast).
  void fence();

  // Scratch space: returns the offset of a fresh area of `bytes` in the Tmp buffer.
  std::uint64_t scratch(std::uint64_t bytes);

  std::size_t steps() const { return s_.steps.size(); }
  Schedule finish() &&;

 private:
  StepId emit(Step st, std::initializer_list<StepId> deps);
  Schedule s_;
  std::vector<std::vector<StepId>> deps_;  // per step, flattened by finish()
  std::vector<std::uint32_t> sent_, received_;  // per-peer tag counters
  StepId fence_ = kNoStep;
  std::size_t fence_from_ = 0;  // first step after the current fence
};

inline Loc at(Buf b, std::uint64_t off) { return Loc{b, off}; }

}  // namespace tandem::coll
