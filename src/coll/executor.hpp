// Runs one rank's schedule over a point-to-point transport: posts every step whose
// dependencies are complete, runs local steps (reduce, copy) in whichever thread
// completes their last dependency, and signals completion. Its state changes only under
// the engine's poll lock (start() takes it; completions come with it held), so one lock
// serves the transport and the schedule. The call's error is the first
// error a transfer reported (when it was started, or at its completion); the remaining
// steps still run, so that the call always completes. Free of MPI.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "coll/reduce_ops.hpp"
#include "coll/schedule.hpp"
#include "common/memory.hpp"
#include "transport/p2p.hpp"

namespace tandem::coll {

struct Buffers {
  const void* send = nullptr;
  void* recv = nullptr;
};

class Execution {
 public:
  // The schedule is shared (schedules may be cached and reused by several calls).
  Execution(std::shared_ptr<const Schedule> s, Buffers b, Reducer r, transport::P2P* p2p, std::uint32_t seq);
  ~Execution();
  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;

  // fn(arg) runs once the call is done, in the thread that finished it (after done() turned
  // true; it may destroy this object). Set before start().
  void set_on_done(void (*fn)(void*), void* arg) noexcept { on_done_ = fn, on_done_arg_ = arg; }
  // Posts the steps without dependencies. Returns 0, or the first transport error. With an
  // on_done function set, the object may be gone when start() returns.
  int start() noexcept;
  // Makes a finished (or never started) execution ready to run its schedule again, on other
  // buffers, with another sequence number and reducer context: a repeated call reuses it
  // instead of allocating its state anew.
  void reset(Buffers b, std::uint32_t seq, void* reducer_ctx) noexcept;
  bool done() const noexcept { return done_.load(std::memory_order_acquire) != 0; }
  int error() const noexcept { return error_.load(std::memory_order_acquire); }
  // Until done: drives the transport's engine as its mode says (progress/engine.hpp).
  void wait() noexcept;
  // Drives progress once unless done; whether done.
  bool test() noexcept;

 private:
  struct Op : transport::Completion {
    Execution* ex;
    std::uint32_t step;
  };
  static void on_complete(transport::Completion* c, const transport::Result& r);
  void note_error(int err) noexcept;
  void finish_step(std::uint32_t step);
  void run_ready();
  void* addr(Loc l) const;
  void signal_done() noexcept;

  std::shared_ptr<const Schedule> s_;
  Buffers b_;
  Reducer r_;
  transport::P2P* p2p_;
  std::uint32_t seq_;
  // Scratch in whole pages of tandem's own (common/memory.hpp): never sharing a page with
  // the program's data, which may be protected while the transport writes here, and
  // page-aligned as the program's large buffers usually are (a copy between buffers
  // misaligned to each other, as the kernel's single-copy transfers do, ran at a third of
  // the speed on AMD EPYC: a 2-rank 256 KiB allreduce 233 us against 78).
  std::vector<unsigned char, PageAllocator<unsigned char>> tmp_;
  std::vector<unsigned char, PageAllocator<unsigned char>> scratch_;  // for non-commutative user reductions
  std::vector<std::uint32_t> waiting_;          // unfinished dependencies per step
  std::vector<std::uint32_t> ready_;            // steps to run now
  std::vector<Op> ops_;
  // Under the engine's poll lock:
  std::uint32_t remaining_ = 0;  // steps not finished
  bool signalled_ = false;       // done_ set or about to be
  void (*on_done_)(void*) = nullptr;
  void* on_done_arg_ = nullptr;
  std::atomic<std::uint32_t> done_{0};
  std::atomic<int> error_{0};
};

}  // namespace tandem::coll
