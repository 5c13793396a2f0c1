// The progress engine: completes the operations of its sources (one per transport: MPI
// now, UCX next, an in-process one for tests), in one of three modes:
//   Thread  a background thread polls the sources while operations are outstanding and
//           sleeps when there are none; a thread that must wait drives progress itself
//           (and the background thread stays out of its way meanwhile);
//   Poll    no thread: a waiting thread polls, as MPI's own blocking calls do;
//   Block   no thread: a waiting thread sleeps on its sources' event descriptors between
//           polls (UCX's ucp_worker_get_efd/ucp_worker_arm model), or polls a source that
//           has none.
// Every source's progress() runs under one lock, so a source needs no locking of its own
// between polls. Completion callbacks run inside progress(), never in a signal handler.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "common/config.hpp"

namespace tandem::progress {

class Source {
 public:
  virtual ~Source() = default;
  // Completes the operations that have finished (runs their completion callbacks) and
  // returns how many. Called by one thread at a time, with the engine's poll lock held.
  virtual int progress() noexcept = 0;
  // For Block mode: a file descriptor that turns readable when progress() may find
  // something to complete; -1 when the source has none (its waiters then poll).
  virtual int event_fd() const noexcept { return -1; }
  // Called before sleeping on event_fd(): true when nothing is pending and sleeping is
  // safe, false when progress() must run first (UCX's ucp_worker_arm returning BUSY).
  virtual bool arm() noexcept { return false; }
};

enum class Mode : std::uint8_t { Thread, Poll, Block };
const char* mode_name(Mode m) noexcept;
std::optional<Mode> parse_mode(std::string_view text) noexcept;

struct EngineOptions {
  Mode mode;
  unsigned spin_us;            // Thread: keep polling this long after the last completion
  unsigned sleep_max_us;       // Thread: longest back-off between polls; Block: longest sleep
  unsigned eager_us;           // Thread: poll period while a thread waits urgently
  unsigned slice_us;           // Thread: scheduler slice requested for the thread (0: leave it)
  unsigned timer_slack_ns;     // Thread: the thread's timer slack
  unsigned wait_spin_us;       // waiters: poll back to back this long after a completion
  unsigned wait_long_poll_us;  // waiters: a poll this long already gave the core away
};
// The engine settings of `cfg` (TANDEM_PROGRESS_*, TANDEM_WAIT_*), with mode `m`.
EngineOptions engine_options(const Config& cfg, Mode m) noexcept;

class Engine {
 public:
  Engine() = default;
  ~Engine() { stop(); }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Sources are added before start() and live as long as the engine.
  void add_source(Source* s);
  void start(const EngineOptions& opts);
  void stop() noexcept;  // completes every outstanding operation first
  bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  Mode mode() const noexcept { return opts_.mode; }
  const EngineOptions& options() const noexcept { return opts_; }

  // A source took `n` new operations: outstanding until its progress() counts them. From a
  // thread that holds the poll lock this is a plain count, folded into outstanding() when
  // the lock is released (an atomic operation per poll instead of one per operation).
  void added(std::size_t n = 1) noexcept;
  // Polls every source once if no other thread is polling. Returns the number of
  // operations completed, -1 when another thread was polling.
  int help() noexcept;
  // Until every operation has completed.
  void drain() noexcept;
  std::size_t outstanding() const noexcept { return outstanding_.load(std::memory_order_acquire); }

  // Until done(arg): drives progress as the mode says (see the top of this file).
  void wait(bool (*done)(const void* arg), const void* arg) noexcept;

  // The poll lock, taken by a thread that changes the state completion callbacks change
  // (an executor starting a call): everything such a state sees then happens under one
  // lock, the one every source's progress() runs under. Free if this thread holds it.
  class Locked {
   public:
    explicit Locked(Engine& e) noexcept;
    ~Locked();
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;

   private:
    Engine* e_;  // null: the thread held the lock already
  };
  // Whether the calling thread holds this engine's poll lock (inside progress(), a
  // completion callback, or a Locked scope): a source may then take new operations
  // straight into its polled state.
  bool polling_here() const noexcept;

  // While any thread is inside a Driving scope (a waiter that polls in a loop), the
  // background thread sleeps instead of competing for that thread's core.
  class Driving {
   public:
    explicit Driving(Engine& e) noexcept;
    ~Driving();
    Driving(const Driving&) = delete;
    Driving& operator=(const Driving&) = delete;

   private:
    Engine& e_;
  };
  // A thread starts waiting for an operation it cannot drive itself (a fault handler):
  // the background thread polls at once and then eagerly. Async-signal-safe.
  void begin_urgent() noexcept;
  void end_urgent() noexcept;

 private:
  int poll_locked() noexcept;
  void fold_added(std::size_t completed) noexcept;  // with the poll lock held
  bool block_once() noexcept;
  void thread_main();

  EngineOptions opts_{};
  std::vector<Source*> sources_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> outstanding_{0};

  std::mutex idle_mu_;  // the idle sleep of the background thread
  std::condition_variable idle_cv_;
  std::atomic<bool> idle_{false};

  std::mutex poll_mu_;  // held by whoever polls the sources
  std::size_t added_here_ = 0;  // operations added under the poll lock, not yet in outstanding_

  std::atomic<int> drivers_{0};   // threads inside a Driving scope
  std::atomic<int> parked_{0};    // background threads asleep because drivers poll
  std::atomic<int> urgent_{0};    // threads waiting urgently
  std::atomic<std::uint32_t> bell_{0};  // futex word the background thread sleeps on
};

}  // namespace tandem::progress
