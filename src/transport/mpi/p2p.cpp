#include "transport/mpi/p2p.hpp"

#include <climits>

namespace tandem::transport {

namespace {
int bits_below(long v) {  // number of bits b with 2^b - 1 <= v
  int b = 0;
  while (b < 31 && ((1L << (b + 1)) - 1) <= v) ++b;
  return b;
}
}  // namespace

MpiP2P::MpiP2P(MPI_Comm comm, MpiSource* source) : comm_(comm), source_(source) {
  PMPI_Comm_rank(comm, &rank_);
  PMPI_Comm_size(comm, &size_);
  int* ub = nullptr;
  int flag = 0;
  PMPI_Comm_get_attr(comm, MPI_TAG_UB, &ub, &flag);
  long tag_ub = flag && ub ? *ub : 32767;  // the standard guarantees at least 32767
  int bits = bits_below(tag_ub);
  // Calls in flight at once on one communicator get distinct sequence bits; the rest tell
  // one call's messages between a pair apart (indices past them wrap, and MPI's ordering
  // of messages with equal tags keeps wrapped ones apart).
  seq_bits_ = bits >= 24 ? 8 : bits / 3;
  tag_bits_ = bits - seq_bits_;
}

int MpiP2P::tag_of(std::uint32_t seq, std::uint32_t tag) const noexcept {
  std::uint32_t s = seq & ((1u << seq_bits_) - 1), t = tag & ((1u << tag_bits_) - 1);
  return static_cast<int>((s << tag_bits_) | t);
}

int MpiP2P::isend(const void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
                  Completion* c) noexcept {
  if (bytes > static_cast<std::uint64_t>(INT_MAX)) return MPI_ERR_COUNT;
  MPI_Request req;
  int rc = PMPI_Isend(buf, static_cast<int>(bytes), MPI_BYTE, peer, tag_of(seq, tag), comm_, &req);
  if (rc != MPI_SUCCESS) return rc;
  source_->submit(req, c);
  return 0;
}

int MpiP2P::irecv(void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
                  Completion* c) noexcept {
  if (bytes > static_cast<std::uint64_t>(INT_MAX)) return MPI_ERR_COUNT;
  MPI_Request req;
  int rc = PMPI_Irecv(buf, static_cast<int>(bytes), MPI_BYTE, peer, tag_of(seq, tag), comm_, &req);
  if (rc != MPI_SUCCESS) return rc;
  source_->submit(req, c);
  return 0;
}

}  // namespace tandem::transport
