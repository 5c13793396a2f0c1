// Per-process counters printed with TANDEM_STATS=1. Lock-free; updated from any thread
// and from signal handlers.
#pragma once
#include <atomic>
#include <cstdint>

namespace tandem {

struct Stats {
  std::atomic<std::uint64_t> intercepted{0};     // calls into an intercepting wrapper
  std::atomic<std::uint64_t> deferred{0};        // ... made nonblocking
  std::atomic<std::uint64_t> passthrough{0};     // ... handed to the MPI library unchanged
  std::atomic<std::uint64_t> bytes_deferred{0};  // payload bytes of deferred operations
  std::atomic<std::uint64_t> access_waits{0};    // times a thread waited for a deferred operation
  std::atomic<std::uint64_t> wait_us{0};         // total time of those waits
  std::atomic<std::uint64_t> stepped{0};         // neighbour accesses let through one instruction at a time
};

inline Stats& stats() {
  static Stats s;
  return s;
}

}  // namespace tandem
