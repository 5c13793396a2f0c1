// Per-thread flags read by the fault handler (initial-exec TLS: async-signal-safe).
#pragma once

namespace tandem {

// Non-zero while the thread runs tandem's progress loop or is inside a tandem wrapper
// calling into the MPI library: such a thread must never wait for a deferred operation
// (it may be the one that completes it, or hold a lock the completer needs).
inline thread_local int t_internal __attribute__((tls_model("initial-exec"))) = 0;

struct InternalScope {
  InternalScope() noexcept { ++t_internal; }
  ~InternalScope() { --t_internal; }
  InternalScope(const InternalScope&) = delete;
  InternalScope& operator=(const InternalScope&) = delete;
};

}  // namespace tandem
