// Data-parallel training of libtorch modules on tandem's collectives, as PyTorch's
// DistributedDataParallel does it: rank 0's parameters and buffers are broadcast at the
// start; during backward each parameter's gradient is packed, as soon as autograd has it,
// into a bucket (reverse registration order, the first bucket 1 MiB, then 25 MiB, as
// PyTorch's reducer), and each bucket's allreduce starts on tandem's progress engine the
// moment its last gradient is in, while the backward pass goes on; finish() waits for the
// buckets and writes the averaged gradients (the sum over ranks / P) into .grad.
//
//   #include <tandem/ddp.hpp>      link: -ltandem_ddp_openmpi (or _mpich), libtorch
//   tandem::ddp::DistributedDataParallel ddp(*model);
//   for (...) {
//     optimizer.zero_grad();
//     loss(model->forward(x), y).backward();
//     ddp.finish();               // the gradients are averaged over the ranks
//     optimizer.step();
//   }
//
// Masks: a parameter given a mask (same shape; nonzero = kept) has only its kept gradient
// elements packed, densely and without indices (every rank knows the mask), and its
// pruned gradient elements are exactly zero after finish(). Any world size.
//
// Rules: every rank wraps the same module (same parameters in the same order, same
// shapes, same masks) and calls backward() and finish() alike; a parameter that gets no
// gradient in a step contributes zeros (no find_unused_parameters needed). The background
// progress needs MPI_THREAD_MULTIPLE; at a lower level the allreduces progress only inside
// finish(). Errors (mismatched shapes or masks across ranks, backward() twice without
// finish()) throw tandem::CollError naming the parameter; a transport error from finish()
// throws it with the MPI error text.
#pragma once
#include <mpi.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tandem/coll.hpp"

namespace tandem::ddp {

struct Options {
  MPI_Comm comm = MPI_COMM_WORLD;
  int root = 0;                                  // whose parameters and buffers are broadcast
  std::size_t first_bucket_bytes = 1u << 20;     // PyTorch's reducer: 1 MiB first (0: like the others)
  std::size_t bucket_bytes = 25u << 20;          // then 25 MiB
  bool average = true;                           // scale the sum by 1/P (false: the sum)
  CollOptions allreduce;                         // tandem's algorithm for the buckets (default: its selection)
  bool broadcast = true;                         // broadcast root's parameters and buffers at construction
  // Per parameter name (as Module::named_parameters() gives it): the mask of kept elements.
  std::map<std::string, torch::Tensor> masks;
};

// One bucket's allreduce in the last step, for timelines: when it started and completed
// (steady clock), its bytes.
struct BucketTiming {
  std::chrono::steady_clock::time_point start, done;
  std::size_t bytes = 0;
};

struct Stats {
  std::uint64_t steps = 0;
  std::uint64_t bytes_per_step = 0;       // the bytes of the buckets (what one allreduce carries per step)
  std::uint64_t dense_bytes_per_step = 0; // what they would be without masks
  // The last step: from the first bucket's start to the last one's completion, and the
  // part of that spent inside finish() (waiting: communication not hidden).
  double comm_seconds = 0, wait_seconds = 0;
  std::vector<BucketTiming> buckets;
};

class DistributedDataParallel {
 public:
  explicit DistributedDataParallel(torch::nn::Module& module, Options o = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // Waits for every bucket of this step (starting those whose gradients never came, with
  // zeros for them) and writes the averaged gradients into the parameters' .grad.
  void finish();
  // The same, calling on_bucket(i) as soon as bucket i's gradients are written, while the
  // later buckets may still be in flight: an optimiser per bucket (bucket_tensors) steps
  // each part of the model without waiting for the rest.
  void finish(const std::function<void(std::size_t bucket)>& on_bucket);

  // Broadcasts root's parameters and buffers again (e.g. after loading a checkpoint there).
  void broadcast_state();

  int rank() const { return rank_; }
  int size() const { return size_; }
  const Stats& stats() const { return stats_; }
  std::size_t bucket_count() const;
  // The parameter names of bucket i, in packing order, and the parameters themselves.
  std::vector<std::string> bucket_parameters(std::size_t i) const;
  std::vector<torch::Tensor> bucket_tensors(std::size_t i) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
  Stats stats_;
};

}  // namespace tandem::ddp
