// The point-to-point layer under tandem's collectives: nonblocking send and receive of
// byte ranges between the ranks of one group, with a completion callback. MPI is the
// first implementation (mpi_p2p.hpp); a UCX one will follow. Nothing above this
// interface calls MPI.
#pragma once
#include <cstdint>

namespace tandem::transport {

// Intrusive completion record: the transport calls fn(this) once, from whichever thread
// completes the operation (the progress thread or one helping it), never from a signal
// handler. `error` is 0 on success.
struct Completion {
  void (*fn)(Completion* self, int error) = nullptr;
};

class P2P {
 public:
  virtual ~P2P() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // `seq` tells calls in flight at the same time apart; `tag` tells a call's messages
  // between one pair of ranks apart. Both sides pass the same (seq, tag) for a message.
  // Returns 0, or an error code when the operation could not be started (then `c` is
  // never called).
  virtual int isend(const void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
                    Completion* c) noexcept = 0;
  virtual int irecv(void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
                    Completion* c) noexcept = 0;
  // Drives progress once from a waiting thread (the background thread may be busy or absent).
  virtual void progress() noexcept = 0;
};

}  // namespace tandem::transport
