// The MPI implementation of the collectives' point-to-point layer (compiled once per MPI):
// nonblocking PMPI sends and receives of bytes on a communicator of tandem's own (a
// duplicate of the program's, so no message of the program can match), completed by the
// MPI progress source. Errors come back as results: the communicator must have
// MPI_ERRORS_RETURN (MpiContext sets it on its duplicates).
#pragma once
#include <mpi.h>

#include "transport/mpi/source.hpp"
#include "transport/p2p.hpp"

namespace tandem::transport {

class MpiP2P final : public P2P {
 public:
  // `comm` and `source` belong to the caller and must outlive this object.
  MpiP2P(MPI_Comm comm, MpiSource* source);
  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  int isend(const void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
            Completion* c) noexcept override;
  int irecv(void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
            Completion* c) noexcept override;
  progress::Engine& engine() noexcept override { return source_->engine(); }

 private:
  int tag_of(std::uint32_t seq, std::uint32_t tag) const noexcept;
  MPI_Comm comm_;
  MpiSource* source_;
  int rank_ = 0, size_ = 1;
  int seq_bits_ = 0, tag_bits_ = 0;
};

}  // namespace tandem::transport
