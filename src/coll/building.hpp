// Shared pieces of the algorithm builders (internal to src/coll).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "coll/algorithms.hpp"
#include "coll/schedule.hpp"

namespace tandem::coll {

// Each family file defines its table; algorithms.cpp collects them.
std::vector<Algorithm> bcast_algorithms();
std::vector<Algorithm> reduce_algorithms();
std::vector<Algorithm> allreduce_algorithms();
std::vector<Algorithm> allgather_algorithms();
std::vector<Algorithm> alltoall_algorithms();
std::vector<Algorithm> gather_algorithms();
std::vector<Algorithm> scatter_algorithms();
std::vector<Algorithm> reduce_scatter_block_algorithms();
std::vector<Algorithm> barrier_algorithms();
// The hierarchical compositions listed in algorithms(c) (alg_hier.cpp), over the flat
// tables (which must outlive them); and any other one by name (nullptr when the name is
// not a composition of c's phases). Built by build_hierarchical().
std::vector<Algorithm> hierarchical_algorithms(Coll c, const std::array<const std::vector<Algorithm>*, kCollCount>& flat);
const Algorithm* find_hierarchical(Coll c, std::string_view name);
Schedule build_hierarchical(const Algorithm& alg, const Args& a);

// A byte range of a buffer.
struct Range {
  std::uint64_t off = 0, bytes = 0;
};

// Splits [off, off + bytes) into pieces of at most segsize bytes, in whole elements
// (segsize 0: one piece). Zero bytes gives no piece.
std::vector<Range> segments(std::uint64_t off, std::uint64_t bytes, std::uint64_t segsize, std::uint32_t elem);

// Splits `count` elements into p blocks as evenly as possible (the first count % p blocks
// get one more), as byte ranges from offset 0.
std::vector<Range> split_even(std::uint64_t count, int p, std::uint32_t elem);

// The largest power of two <= n (n >= 1).
int pow2_floor(int n);

// Rooted trees over virtual ranks (v = (rank - root) mod p, root is v = 0). Every tree
// here gives each node a subtree that is a contiguous range of virtual ranks
// [v, v + subtree) except Heap, whose subtrees are not contiguous.
enum class TreeKind : std::uint8_t {
  Linear,    // root's children: everyone
  Chain,     // fanout chains of consecutive virtual ranks hanging off the root
  Heap,      // binary tree, children 2v+1 and 2v+2
  Preorder,  // binary tree, children v+1 and the middle of the rest: contiguous subtrees
  Binomial,  // children v + 2^k for 2^k below v's lowest set bit
  Knomial,   // radix fanout: children v + i k^j
};

struct TreeNode {
  int parent = -1;                 // virtual rank, -1 at the root
  std::vector<int> children;       // virtual ranks, in the order data is sent to them
  std::vector<int> subtree;        // per child: its subtree's size (contiguous trees only)
};

// The node of virtual rank v in the tree of p ranks.
TreeNode tree_node(TreeKind kind, int p, int v, int fanout);

inline int to_virtual(int rank, int root, int p) { return (rank - root + p) % p; }
inline int to_real(int v, int root, int p) { return (v + root) % p; }

// Pieces of a run of virtual ranks [vlo, vhi) that are contiguous in real-rank order:
// one, or two when the run wraps past real rank p - 1. Each piece: (first vrank, count).
std::vector<std::pair<int, int>> real_runs(int vlo, int vhi, int root, int p);

// ---- building blocks shared between collectives ----------------------------------------

// Broadcast of `whole` (a range of the Recv buffer) down a tree rooted at `root`.
void tree_bcast(Builder& b, TreeKind kind, int fanout, int root, Range whole, std::uint64_t segsize);

// Reduction of `bytes` from each rank's `input` down a tree rooted at tree_root, into
// `result` at that rank (and in scratch elsewhere). Children are combined in virtual-rank
// order, so the result is in rank order when tree_root is 0 and the tree's subtrees are
// contiguous (every kind but Heap). `result` may equal `input` (in place); on other
// ranks `result` is ignored.
void tree_reduce(Builder& b, TreeKind kind, int fanout, int tree_root, Loc input, Loc result, std::uint64_t bytes,
                   std::uint64_t segsize);

// Recursive-halving reduce-scatter for commutative operations, any p: with p2 the largest
// power of two <= p and rem = p - p2, ranks below 2*rem first fold pairwise (the odd one
// keeps going as virtual rank r/2), the others are virtual rank r - rem. `acc` is a
// count-element area (it may equal `input`); on return, on a rank with vrank >= 0, acc's
// block `vrank` of split_even(count, p2) holds the reduction of that block over all ranks.
struct HalvingResult {
  int p2 = 1, rem = 0, vrank = -1;
  std::vector<Range> blocks;
  int real(int v) const { return v < rem ? 2 * v + 1 : v + rem; }
};
HalvingResult reduce_scatter_halving(Builder& b, Loc input, Loc acc, std::uint64_t count);

// ---- allgather and reduce-scatter phases (alg_allgather.cpp, alg_reduce_scatter.cpp) ----
// Each emits this rank's steps only. Every step emitted depends on `ready` (kNoStep: none),
// and the step returned is a join of all of them: after it the phase is complete and its
// buffers may be reused (it is `ready` itself when nothing was emitted, e.g. p == 1).
// Blocks may have different sizes and may be empty; blocks that are adjacent in memory
// travel as one message.

// Allgather of p blocks (block r is rank r's, possibly of different sizes, possibly
// empty) held in buffer `buf` (not Send): on entry (after `ready`) each rank's own block is
// in place; on exit all are. The ring forwards in segments of segsize (0: whole blocks).
StepId allgather_ring(Builder& b, Buf buf, const std::vector<Range>& blocks, std::uint64_t segsize,
                      StepId ready = kNoStep);
// Recursive doubling, any p: with m = pow2_floor(p), rank m+i (i < p-m) first hands its
// block to rank i, ranks 0..m-1 exchange in log2(m) steps (rank i's group at distance d is
// the blocks of ranks [base, base+d) and m+[base, base+d)), then rank i sends the whole
// result to m+i. folded = true skips the first hand-over: on entry rank i < p-m already
// holds blocks i and m+i, ranks >= m hold nothing and receive all p blocks (the state
// reduce_scatter_recursive_halving leaves with unfold = false).
StepId allgather_recursive_doubling(Builder& b, Buf buf, const std::vector<Range>& blocks, StepId ready = kNoStep,
                                    bool folded = false);

// Ring reduce-scatter of p blocks, for commutative operations: the input vector is at `in`
// (block j at in.off + blocks[j].off), only read; rank r's reduced block r (blocks[r].bytes)
// is written at `out`, which is either exactly block r of the input (in place) or does
// not overlap it (it may overlap the input's other blocks: the writes wait for their
// reads). Step k = 0..p-2: send block r-k-1 to r+1, receive block r-k-2 from r-1 and
// combine; pipelined in segments of segsize (0: whole blocks). Scratch: up to two blocks.
StepId reduce_scatter_ring(Builder& b, Loc in, const std::vector<Range>& blocks, Loc out, std::uint64_t segsize,
                           StepId ready = kNoStep);
// Recursive-halving reduce-scatter of p blocks, any p, commutative operations: rank m+i
// (m = pow2_floor(p), i < p-m) first sends its whole input to rank i; ranks 0..m-1 halve
// in log2(m) steps over the same groups as allgather_recursive_doubling. `in` is only
// read; `work` is a vector-sized area (block j at work.off + blocks[j].off) that is either
// exactly `in` (in place) or disjoint from it. On exit rank i < m holds reduced blocks i
// and (i < p-m) m+i at work; with unfold, rank i then sends block m+i to rank m+i, so that
// every rank r holds reduced block r at work. Scratch: at most the whole vector.
StepId reduce_scatter_recursive_halving(Builder& b, Loc in, Loc work, const std::vector<Range>& blocks, bool unfold,
                                        StepId ready = kNoStep);

// The byte ranges of blocks idx (in that order), merging blocks adjacent in memory.
std::vector<Range> block_runs(const std::vector<Range>& blocks, const std::vector<int>& idx);

}  // namespace tandem::coll
