// The progress engine: a background thread that owns every deferred request, tests
// them in batches through a transport's Poller and runs their completion callbacks.
// Threads that must wait can drive progress themselves (help()), so a waiting thread
// never depends on the background thread being scheduled.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "common/memory.hpp"

namespace tandem::progress {

constexpr std::size_t kStatusBytes = 64;  // room for any MPI's MPI_Status

// The transport side: tests native requests (stored as 64-bit handles).
class Poller {
 public:
  virtual ~Poller() = default;
  // Tests reqs[0..n). For each completed one writes its index to done[k] and its status
  // to statuses + index*kStatusBytes, and sets reqs[index] to the null request. Returns k.
  virtual int test_some(int n, std::uint64_t* reqs, int* done, unsigned char* statuses) = 0;
};

using Callback = void (*)(void* ctx, const void* status);

struct EngineOptions {
  unsigned spin_us = 20;        // keep polling this long after the last completion
  unsigned sleep_max_us = 200;  // longest sleep between polls while work is outstanding
  unsigned slice_us = 100;      // scheduler slice requested for the progress thread (0: leave it)
  bool thread = true;           // false: no background thread; waiting threads drive progress (help())
};

class Engine {
 public:
  void start(Poller* poller, EngineOptions opts);
  void stop();  // waits for every outstanding request first
  bool running() const noexcept { return running_.load(std::memory_order_acquire); }

  // Hands a started request to the engine; cb(ctx, status) runs once it completes,
  // in whichever thread completed it (never in a signal handler).
  void submit(std::uint64_t req, Callback cb, void* ctx);
  // Polls once if no other thread is polling. Returns the number completed, -1 if busy.
  int help();
  // Until every submitted request has completed.
  void drain();
  std::size_t outstanding() const noexcept { return outstanding_.load(std::memory_order_acquire); }

 private:
  struct Op {
    std::uint64_t req;
    Callback cb;
    void* ctx;
  };
  int poll_locked();
  void thread_main();

  Poller* poller_ = nullptr;
  EngineOptions opts_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> outstanding_{0};

  std::mutex in_mu_;  // incoming_ and the sleep condition
  std::condition_variable in_cv_;
  std::vector<Op, PageAllocator<Op>> incoming_;
  bool idle_ = false;  // the thread sleeps until work arrives (guarded by in_mu_)

  std::mutex poll_mu_;  // held by whoever polls; owns the vectors below
  std::vector<Op, PageAllocator<Op>> ops_;
  std::vector<std::uint64_t, PageAllocator<std::uint64_t>> reqs_;
  std::vector<int, PageAllocator<int>> done_;
  std::vector<unsigned char, PageAllocator<unsigned char>> statuses_;
};

}  // namespace tandem::progress
