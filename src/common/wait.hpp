// Futex-based waiting shared by the protection layer (which may wait inside a
// signal handler) and the progress engine (which polls faster while anyone waits).
#pragma once
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace tandem {

// Number of threads currently blocked waiting for a deferred operation; the
// progress engine does not sleep while it is non-zero.
inline std::atomic<int>& urgent_waiters() {
  static std::atomic<int> n{0};
  return n;
}

// Number of threads driving progress themselves in a loop (a blocking collective waiting
// for its schedule): while non-zero the progress thread stays asleep, because on a busy
// core each of its polls would take the CPU from the thread that is already polling.
inline std::atomic<int>& progress_drivers() {
  static std::atomic<int> n{0};
  return n;
}
// Number of progress threads asleep on the bell because drivers poll (set before they read
// the bell's value to sleep on): only then does the last driver leaving need a wake-up call.
inline std::atomic<int>& progress_parked() {
  static std::atomic<int> n{0};
  return n;
}
inline std::atomic<std::uint32_t>& progress_bell();
inline void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept;
struct DrivingScope {
  DrivingScope() noexcept { progress_drivers().fetch_add(1, std::memory_order_seq_cst); }
  ~DrivingScope() {
    // The last driver leaving wakes the progress thread, which slept while drivers polled.
    // The bell always moves (a thread about to sleep on its old value returns at once);
    // the system call only when a thread is parked.
    if (progress_drivers().fetch_sub(1, std::memory_order_seq_cst) == 1) {
      progress_bell().fetch_add(1, std::memory_order_seq_cst);
      if (progress_parked().load(std::memory_order_seq_cst) > 0) futex_wake_all(&progress_bell());
    }
  }
  DrivingScope(const DrivingScope&) = delete;
  DrivingScope& operator=(const DrivingScope&) = delete;
};

// Rung when a thread starts waiting for a deferred operation, so that a sleeping progress
// thread polls at once instead of at the end of its back-off.
inline std::atomic<std::uint32_t>& progress_bell() {
  static std::atomic<std::uint32_t> bell{0};
  return bell;
}

// Async-signal-safe. Sleeps while *word == expected, at most timeout_ns (0: no limit).
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, long timeout_ns) noexcept {
  struct timespec ts{timeout_ns / 1000000000L, timeout_ns % 1000000000L};
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected,
          timeout_ns > 0 ? &ts : nullptr, nullptr, 0);
}

inline void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

// Async-signal-safe: registers the calling thread as waiting and wakes the progress thread.
inline void begin_urgent_wait() noexcept {
  urgent_waiters().fetch_add(1, std::memory_order_acq_rel);
  progress_bell().fetch_add(1, std::memory_order_acq_rel);
  futex_wake_all(&progress_bell());
}
inline void end_urgent_wait() noexcept { urgent_waiters().fetch_sub(1, std::memory_order_acq_rel); }

// Async-signal-safe monotonic clock in microseconds.
inline std::uint64_t now_us() noexcept {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace tandem
