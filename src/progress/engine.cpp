#include "progress/engine.hpp"

#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <signal.h>

#include <algorithm>

#include "common/thread_flags.hpp"
#include "common/wait.hpp"

namespace tandem::progress {

void Engine::start(Poller* poller, EngineOptions opts) {
  poller_ = poller;
  opts_ = opts;
  incoming_.reserve(1024);
  ops_.reserve(1024);
  reqs_.reserve(1024);
  done_.reserve(1024);
  statuses_.reserve(1024 * kStatusBytes);
  stop_.store(false);
  running_.store(true, std::memory_order_release);
  if (opts.thread) thread_ = std::thread([this] { thread_main(); });
}

void Engine::stop() {
  if (!running()) return;
  drain();
  {
    std::lock_guard<std::mutex> g(in_mu_);
    stop_.store(true, std::memory_order_release);
  }
  in_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  running_.store(false, std::memory_order_release);
}

void Engine::submit(std::uint64_t req, Callback cb, void* ctx) {
  outstanding_.fetch_add(1, std::memory_order_acq_rel);
  bool wake;
  {
    std::lock_guard<std::mutex> g(in_mu_);
    incoming_.push_back({req, cb, ctx});
    wake = idle_;
  }
  // A thread that drives progress itself needs no help.
  if (progress_drivers().load(std::memory_order_acquire) > 0) wake = false;
  // Wake the progress thread only from its idle sleep: while it is polling (backing off),
  // it picks the request up within TANDEM_PROGRESS_SLEEP_US, and a wake-up here would let it
  // preempt the calling thread on a busy machine (measured: 1-4 ms per call on 2 cores).
  if (wake) in_cv_.notify_one();
}

int Engine::poll_locked() {
  {
    std::lock_guard<std::mutex> g(in_mu_);
    if (!incoming_.empty()) {
      ops_.insert(ops_.end(), incoming_.begin(), incoming_.end());
      incoming_.clear();
    }
  }
  if (ops_.empty()) return 0;
  std::size_t n = ops_.size();
  reqs_.resize(n);
  done_.resize(n);
  statuses_.resize(n * kStatusBytes);
  for (std::size_t i = 0; i < n; ++i) reqs_[i] = ops_[i].req;
  int k = poller_->test_some(static_cast<int>(n), reqs_.data(), done_.data(), statuses_.data());
  if (k <= 0) return 0;
  for (int j = 0; j < k; ++j) {
    const Op& op = ops_[static_cast<std::size_t>(done_[j])];
    op.cb(op.ctx, statuses_.data() + static_cast<std::size_t>(done_[j]) * kStatusBytes);
  }
  // Drop the completed ones, keeping the order of the rest.
  std::sort(done_.begin(), done_.begin() + k);
  std::size_t w = 0, d = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (d < static_cast<std::size_t>(k) && static_cast<std::size_t>(done_[d]) == i) {
      ++d;
      continue;
    }
    ops_[w++] = ops_[i];
  }
  ops_.resize(w);
  outstanding_.fetch_sub(static_cast<std::size_t>(k), std::memory_order_acq_rel);
  return k;
}

int Engine::help() {
  std::unique_lock<std::mutex> g(poll_mu_, std::try_to_lock);
  if (!g.owns_lock()) return -1;
  InternalScope internal;
  return poll_locked();
}

void Engine::drain() {
  while (outstanding() > 0) {
    if (help() <= 0) sched_yield();
  }
}

namespace {

constexpr unsigned kEagerSleepUs = 20;

// The progress thread runs briefly and often and shares its core with a computing thread;
// it must get the CPU within microseconds of waking up, or each protocol step of a message
// (a rendezvous has several) waits for the end of a scheduler slice (milliseconds). With
// EEVDF (Linux 6.6+) a short requested slice lets a waking task run first.
struct SchedAttr {
  std::uint32_t size;
  std::uint32_t sched_policy;
  std::uint64_t sched_flags;
  std::int32_t sched_nice;
  std::uint32_t sched_priority;
  std::uint64_t sched_runtime;
  std::uint64_t sched_deadline;
  std::uint64_t sched_period;
};

void prefer_this_thread(unsigned slice_us) {
  SchedAttr a{};
  a.size = sizeof a;
  a.sched_policy = 0;  // SCHED_OTHER
  a.sched_runtime = static_cast<std::uint64_t>(slice_us) * 1000;
  syscall(SYS_sched_setattr, 0, &a, 0);  // refused by kernels before 6.12: the default slice stays
}

}  // namespace

void Engine::thread_main() {
  if (opts_.slice_us) prefer_this_thread(opts_.slice_us);
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);  // sleep microseconds, not the default 50 us
  // Faults in this thread must never wait (see thread_flags.hpp); signals the program
  // directs at the process are left to its own threads.
  InternalScope internal;
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, SIGSEGV);
  sigdelset(&set, SIGTRAP);
  sigdelset(&set, SIGBUS);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::uint64_t last_progress = now_us();
  unsigned sleep_us = 1;
  for (;;) {
    if (outstanding() == 0) {
      std::unique_lock<std::mutex> g(in_mu_);
      idle_ = true;
      in_cv_.wait(g, [&] { return stop_.load() || !incoming_.empty(); });
      idle_ = false;
      if (stop_.load() && incoming_.empty()) return;
      last_progress = now_us();
      sleep_us = 1;
    }
    {
      // Someone polls in a loop already (see progress_drivers()): stay out of the way, asleep
      // until the last such thread leaves (it rings the bell). Even timed wake-ups cost that
      // thread its core (measured: an 8-byte allreduce on 4 hosts 540 us instead of 165).
      // Parked first, then the bell's value, then the drivers (see DrivingScope).
      progress_parked().fetch_add(1, std::memory_order_seq_cst);
      std::uint32_t bell = progress_bell().load(std::memory_order_seq_cst);
      bool drivers = progress_drivers().load(std::memory_order_seq_cst) > 0;
      if (drivers) futex_wait(&progress_bell(), bell, 0);
      progress_parked().fetch_sub(1, std::memory_order_seq_cst);
      if (drivers) continue;
    }
    int k;
    {
      std::unique_lock<std::mutex> g(poll_mu_, std::try_to_lock);
      k = g.owns_lock() ? poll_locked() : -1;
    }
    std::uint64_t now = now_us();
    if (k > 0) {
      last_progress = now;
      sleep_us = 1;
      continue;
    }
    // Nothing completed. While someone waits, or shortly after progress, poll again after a
    // few microseconds; otherwise back off exponentially so a computing program keeps its core.
    // Never spin: on a machine whose cores all compute, a spinning thread takes the CPU from the
    // program and from the MPI library's other threads (measured: compute phases 2x longer).
    // k < 0: another thread is polling (a waiting thread drives progress itself): back off
    // as when nothing completes, and never spin on the lock (on a shared core the spinning
    // thread would hold the CPU its holder needs).
    bool eager = k >= 0 && (urgent_waiters().load(std::memory_order_acquire) > 0 || now - last_progress < opts_.spin_us);
    if (eager) sleep_us = 1;
    // Sleep on the bell: a thread that starts waiting for an operation rings it.
    std::uint32_t bell = progress_bell().load(std::memory_order_acquire);
    futex_wait(&progress_bell(), bell, static_cast<long>(eager ? kEagerSleepUs : sleep_us) * 1000);
    if (eager) continue;
    sleep_us = std::min(sleep_us * 2, opts_.sleep_max_us);
  }
}

}  // namespace tandem::progress
