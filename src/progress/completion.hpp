// The completion record every transport operation carries: one intrusive callback, run
// once with the operation's result. Shared by the progress engine's sources (which run
// it), the transports (which start operations) and everything above that waits for them.
#pragma once
#include <cstdint>

namespace tandem::progress {

// What a finished operation reports. `error` is 0 on success, otherwise the transport's
// own error code (an MPI error class for MPI, a UCX status later); `bytes` is what a
// receive got (a send reports what it sent).
struct Result {
  int error = 0;
  std::uint64_t bytes = 0;
};

// Embedded in the owner's state (no allocation per operation): fn(this, result) runs once,
// in whichever thread completes the operation (the progress thread, or a thread driving
// progress while it waits), never inside a signal handler. After fn returns the transport
// no longer touches the record.
struct Completion {
  void (*fn)(Completion* self, const Result& result) = nullptr;
};

}  // namespace tandem::progress
