// The point-to-point layer under tandem's collectives: nonblocking send and receive of
// byte ranges between the ranks of one group, each with a completion record, completed
// by the progress engine the transport feeds. Implementations: MPI (transport/mpi/), an
// in-process one with ranks as threads (transport/inproc.hpp), UCX next. Nothing above
// this interface calls a transport's own API.
#pragma once
#include <cstdint>

#include "progress/completion.hpp"
#include "progress/engine.hpp"

namespace tandem::transport {

using progress::Completion;
using progress::Result;

class P2P {
 public:
  virtual ~P2P() = default;
  virtual int rank() const noexcept = 0;
  virtual int size() const noexcept = 0;
  // `seq` tells calls in flight at the same time apart; `tag` tells a call's messages
  // between one pair of ranks apart. Both sides pass the same (seq, tag) for a message.
  // Returns 0, or the transport's error code when the operation could not be started
  // (then `c` is never called). An error found later is c's result.error.
  virtual int isend(const void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
                    Completion* c) noexcept = 0;
  virtual int irecv(void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
                    Completion* c) noexcept = 0;
  // The engine that completes this transport's operations (waiters drive it).
  virtual progress::Engine& engine() noexcept = 0;
};

}  // namespace tandem::transport
