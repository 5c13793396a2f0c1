// The MPI implementation of the collectives' point-to-point layer (compiled once per MPI):
// nonblocking PMPI sends and receives of bytes on a communicator of tandem's own (a
// duplicate of the program's, so no message of the program can match), completed by the
// progress engine.
#pragma once
#include <mpi.h>

#include "progress/engine.hpp"
#include "transport/p2p.hpp"

namespace tandem::transport {

class MpiP2P final : public P2P {
 public:
  // `comm` belongs to the caller and must outlive this object.
  MpiP2P(MPI_Comm comm, progress::Engine* engine);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int isend(const void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
            Completion* c) noexcept override;
  int irecv(void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
            Completion* c) noexcept override;
  void progress() noexcept override;

 private:
  int tag_of(std::uint32_t seq, std::uint32_t tag) const noexcept;
  MPI_Comm comm_;
  progress::Engine* engine_;
  int rank_ = 0, size_ = 1;
  int seq_bits_ = 0, tag_bits_ = 0;
};

}  // namespace tandem::transport
