#include "transport/mpi_transport.hpp"

#include <vector>

#include "common/memory.hpp"

namespace tandem::transport {

int MpiPoller::test_some(int n, std::uint64_t* reqs, int* done, unsigned char* statuses) {
  // Only the polling thread is here (the engine serialises polls), so static buffers are fine.
  static std::vector<MPI_Request, PageAllocator<MPI_Request>> rq;
  static std::vector<MPI_Status, PageAllocator<MPI_Status>> st;
  if (rq.size() < static_cast<std::size_t>(n)) {
    rq.resize(static_cast<std::size_t>(n) * 2);
    st.resize(static_cast<std::size_t>(n) * 2);
  }
  for (int i = 0; i < n; ++i) rq[static_cast<std::size_t>(i)] = from_handle(reqs[i]);
  int outcount = 0;
  // MPI_ERR_IN_STATUS still reports the completed requests; an error of a deferred
  // operation cannot be returned to the program (its call returned already): the
  // communicator's error handler (fatal by default) is what acts on it.
  PMPI_Testsome(n, rq.data(), &outcount, done, st.data());
  if (outcount == MPI_UNDEFINED || outcount < 0) return 0;
  for (int k = 0; k < outcount; ++k) {
    auto i = static_cast<std::size_t>(done[k]);
    std::memcpy(statuses + i * progress::kStatusBytes, &st[static_cast<std::size_t>(k)], sizeof(MPI_Status));
    reqs[i] = to_handle(rq[i]);
  }
  return outcount;
}

}  // namespace tandem::transport
