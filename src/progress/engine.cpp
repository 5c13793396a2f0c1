#include "progress/engine.hpp"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "common/thread_flags.hpp"
#include "common/wait.hpp"

namespace tandem::progress {

const char* mode_name(Mode m) noexcept {
  switch (m) {
    case Mode::Thread: return "thread";
    case Mode::Poll: return "poll";
    case Mode::Block: return "block";
  }
  return "?";
}

std::optional<Mode> parse_mode(std::string_view t) noexcept {
  if (t == "thread") return Mode::Thread;
  if (t == "poll") return Mode::Poll;
  if (t == "block") return Mode::Block;
  return std::nullopt;
}

EngineOptions engine_options(const Config& c, Mode m) noexcept {
  EngineOptions o;
  o.mode = m;
  o.spin_us = c.spin_us;
  o.sleep_max_us = c.sleep_max_us;
  o.eager_us = c.eager_us;
  o.slice_us = c.slice_us;
  o.timer_slack_ns = c.timer_slack_ns;
  o.wait_spin_us = c.wait_spin_us;
  o.wait_long_poll_us = c.wait_long_poll_us;
  return o;
}

void Engine::add_source(Source* s) {
  std::lock_guard<std::mutex> g(poll_mu_);
  sources_.push_back(s);
}

void Engine::start(const EngineOptions& opts) {
  opts_ = opts;
  stop_.store(false);
  running_.store(true, std::memory_order_release);
  if (opts.mode == Mode::Thread) thread_ = std::thread([this] { thread_main(); });
}

void Engine::stop() noexcept {
  if (!running()) return;
  drain();
  {
    std::lock_guard<std::mutex> g(idle_mu_);
    stop_.store(true, std::memory_order_seq_cst);
  }
  idle_cv_.notify_all();
  bell_.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&bell_);
  if (thread_.joinable()) thread_.join();
  running_.store(false, std::memory_order_release);
}

void Engine::added(std::size_t n) noexcept {
  if (polling_here()) {
    added_here_ += n;
    return;
  }
  outstanding_.fetch_add(n, std::memory_order_seq_cst);
  // Wake the background thread only from its idle sleep, and not while a thread drives
  // progress itself: while the thread backs off it picks new work up within
  // TANDEM_PROGRESS_SLEEP_US, and waking it here would let it preempt the calling thread
  // on a busy machine (measured: 1-4 ms per call on 2 cores).
  if (!idle_.load(std::memory_order_seq_cst) || drivers_.load(std::memory_order_acquire) > 0) return;
  std::lock_guard<std::mutex> g(idle_mu_);
  idle_cv_.notify_one();
}

namespace {
// The engine whose poll lock this thread holds (one at a time).
thread_local const Engine* t_polling __attribute__((tls_model("initial-exec"))) = nullptr;
struct PollingHere {
  explicit PollingHere(const Engine* e) noexcept : prev(t_polling) { t_polling = e; }
  ~PollingHere() { t_polling = prev; }
  const Engine* prev;
};
}  // namespace

bool Engine::polling_here() const noexcept { return t_polling == this; }

Engine::Locked::Locked(Engine& e) noexcept : e_(e.polling_here() ? nullptr : &e) {
  if (!e_) return;
  e_->poll_mu_.lock();
  t_polling = e_;
  ++t_internal;
}

Engine::Locked::~Locked() {
  if (!e_) return;
  e_->fold_added(0);
  --t_internal;
  t_polling = nullptr;
  e_->poll_mu_.unlock();
}

void Engine::fold_added(std::size_t completed) noexcept {
  std::size_t added = added_here_;
  added_here_ = 0;
  if (added == completed) return;
  if (added > completed) {
    outstanding_.fetch_add(added - completed, std::memory_order_seq_cst);
    // As in added(): a background thread idle since before these operations wakes up.
    if (idle_.load(std::memory_order_seq_cst) && drivers_.load(std::memory_order_acquire) == 0) {
      std::lock_guard<std::mutex> g(idle_mu_);
      idle_cv_.notify_one();
    }
  } else {
    outstanding_.fetch_sub(completed - added, std::memory_order_acq_rel);
  }
}

int Engine::poll_locked() noexcept {
  int k = 0;
  for (Source* s : sources_) k += s->progress();
  fold_added(static_cast<std::size_t>(k));
  return k;
}

int Engine::help() noexcept {
  if (polling_here()) return -1;  // inside a completion callback: the poll is under way
  std::unique_lock<std::mutex> g(poll_mu_, std::try_to_lock);
  if (!g.owns_lock()) return -1;
  InternalScope internal;
  PollingHere here(this);
  return poll_locked();
}

void Engine::drain() noexcept {
  while (outstanding() > 0)
    if (help() <= 0) sched_yield();
}

Engine::Driving::Driving(Engine& e) noexcept : e_(e) { e_.drivers_.fetch_add(1, std::memory_order_seq_cst); }

Engine::Driving::~Driving() {
  // The last driver leaving wakes the background thread, which slept while drivers polled.
  // The bell always moves (a thread about to sleep on its old value returns at once); the
  // system call only when a thread is parked.
  if (e_.drivers_.fetch_sub(1, std::memory_order_seq_cst) == 1) {
    e_.bell_.fetch_add(1, std::memory_order_seq_cst);
    if (e_.parked_.load(std::memory_order_seq_cst) > 0) futex_wake_all(&e_.bell_);
  }
}

void Engine::begin_urgent() noexcept {
  urgent_.fetch_add(1, std::memory_order_acq_rel);
  bell_.fetch_add(1, std::memory_order_acq_rel);
  futex_wake_all(&bell_);
}

void Engine::end_urgent() noexcept { urgent_.fetch_sub(1, std::memory_order_acq_rel); }

bool Engine::block_once() noexcept {
  // Sleep only when every source has a descriptor and none has events pending.
  pollfd fds[8];
  std::size_t n = 0;
  {
    std::unique_lock<std::mutex> g(poll_mu_, std::try_to_lock);
    if (!g.owns_lock()) return false;
    if (sources_.empty() || sources_.size() > 8) return false;
    for (Source* s : sources_) {
      int fd = s->event_fd();
      if (fd < 0) return false;
      if (!s->arm()) return true;  // events pending: poll again at once
      fds[n++] = pollfd{fd, POLLIN, 0};
    }
  }
  timespec ts{static_cast<time_t>(opts_.sleep_max_us / 1000000), static_cast<long>(opts_.sleep_max_us % 1000000) * 1000};
  ppoll(fds, n, &ts, nullptr);
  return true;
}

void Engine::wait(bool (*done)(const void*), const void* arg) noexcept {
  if (done(arg)) return;
  if (opts_.mode == Mode::Block) {
    while (!done(arg)) {
      int k = help();
      if (k > 0 || done(arg)) continue;
      if (k < 0 || !block_once()) sched_yield();
    }
    return;
  }
  // Poll as the MPI library's own blocking calls do. A collective is a chain of dependent
  // messages and any sleep adds to every link (sleeping 50 us between polls made an 8-byte
  // allreduce on 4 hosts 680 us instead of 140). For wait_spin_us after a completion, poll
  // back to back: with a core per rank the next message is often that close (a yield is a
  // system call: always yielding made a 2-rank shared-memory allreduce 4.8 us instead of
  // 1). After that, give the core away between polls, as Open MPI's mpi_yield_when_idle
  // does, so that ranks sharing cores can run — unless the poll itself took long: then the
  // library yielded inside it (Open MPI does, in opal_progress, when it found nothing), and
  // yielding again would only put off noticing a message that arrived meanwhile. While it
  // polls, the background thread sleeps instead of competing for the core (Driving).
  // The clock is read only after a poll that completed nothing (a completion restarts the
  // spin from the next such poll). Without a background thread there is none to keep away.
  std::optional<Driving> driving;
  if (opts_.mode == Mode::Thread) driving.emplace(*this);
  std::uint64_t before = 0, spin_until = 0;
  bool restart = true;
  while (!done(arg)) {
    int k = help();
    if (done(arg)) break;
    if (k > 0) {
      restart = true;
      continue;
    }
    std::uint64_t now = now_us();
    if (restart) {
      spin_until = now + opts_.wait_spin_us;
      before = now;
      restart = false;
    }
    if (k < 0 || (now >= spin_until && now - before < opts_.wait_long_poll_us)) {
      sched_yield();
      now = now_us();
    }
    before = now;
  }
}

namespace {

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
  prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(opts_.timer_slack_ns), 0, 0, 0);
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
      std::unique_lock<std::mutex> g(idle_mu_);
      idle_.store(true, std::memory_order_seq_cst);
      idle_cv_.wait(g, [&] { return stop_.load() || outstanding() > 0; });
      idle_.store(false, std::memory_order_seq_cst);
      if (stop_.load() && outstanding() == 0) return;
      last_progress = now_us();
      sleep_us = 1;
    }
    {
      // Someone polls in a loop already (see Driving): stay out of the way, asleep until the
      // last such thread leaves (it rings the bell). Even timed wake-ups cost that thread
      // its core (measured: an 8-byte allreduce on 4 hosts 540 us instead of 165).
      // Parked first, then the bell's value, then the drivers (see ~Driving).
      parked_.fetch_add(1, std::memory_order_seq_cst);
      std::uint32_t bell = bell_.load(std::memory_order_seq_cst);
      bool drivers = drivers_.load(std::memory_order_seq_cst) > 0 && !stop_.load();
      if (drivers) futex_wait(&bell_, bell, 0);
      parked_.fetch_sub(1, std::memory_order_seq_cst);
      if (drivers) continue;
    }
    int k = -1;
    {
      std::unique_lock<std::mutex> g(poll_mu_, std::try_to_lock);
      if (g.owns_lock()) {
        PollingHere here(this);
        k = poll_locked();
      }
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
    bool eager = k >= 0 && (urgent_.load(std::memory_order_acquire) > 0 || now - last_progress < opts_.spin_us);
    if (eager) sleep_us = 1;
    // Sleep on the bell: a thread that starts waiting urgently rings it.
    std::uint32_t bell = bell_.load(std::memory_order_acquire);
    futex_wait(&bell_, bell, static_cast<long>(eager ? opts_.eager_us : sleep_us) * 1000);
    if (eager) continue;
    sleep_us = std::min(sleep_us * 2, opts_.sleep_max_us);
  }
}

}  // namespace tandem::progress
