// The MPI implementation of the progress engine's Poller (compiled once per MPI).
#pragma once
#include <mpi.h>

#include <cstdint>
#include <cstring>

#include "progress/engine.hpp"

namespace tandem::transport {

static_assert(sizeof(MPI_Request) <= sizeof(std::uint64_t));
static_assert(sizeof(MPI_Status) <= progress::kStatusBytes);

inline std::uint64_t to_handle(MPI_Request r) {
  std::uint64_t h = 0;
  std::memcpy(&h, &r, sizeof r);
  return h;
}
inline MPI_Request from_handle(std::uint64_t h) {
  MPI_Request r;
  std::memcpy(&r, &h, sizeof r);
  return r;
}

class MpiPoller final : public progress::Poller {
 public:
  int test_some(int n, std::uint64_t* reqs, int* done, unsigned char* statuses) override;
};

}  // namespace tandem::transport
