// tandem's collectives for C++ programs, in the style of MPI's nonblocking collectives:
// each call starts the collective and returns a request; tandem's progress engine moves
// it forward in the background while the caller computes; wait() or test() completes it.
//
//   #include <tandem/coll.hpp>          link: -ltandem_coll_openmpi (or _mpich)
//   auto req = tandem::iallreduce(in, out, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD,
//                                 {.algorithm = "ring"});
//   compute();
//   req.wait();
//
// Rules (as for MPI's nonblocking collectives): every rank of the communicator makes the
// same calls in the same order; buffers are not touched until the request completes. The
// background thread needs MPI_THREAD_MULTIPLE; at a lower thread level no thread is
// started and the collective progresses inside wait() and test() only.
//
// Errors (unknown algorithm, an operation the algorithm cannot combine in rank order,
// root out of range, an unsupported datatype) throw tandem::CollError before anything is
// sent; a transport error is returned by wait() / test() as an MPI error code.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tandem {

struct CollError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CollOptions {
  std::string algorithm;     // empty: tandem's default choice for the collective and size
  std::uint64_t segsize = 0; // bytes per segment, 0: none
  int fanout = 0;            // 0: the algorithm's default
};

namespace detail {
struct Call;
}

class CollRequest {
 public:
  CollRequest() = default;
  bool valid() const noexcept { return call_ != nullptr; }
  // Completes the collective; returns MPI_SUCCESS or the MPI error of a failed transfer.
  int wait() noexcept;
  // True (and *err set) once complete; drives progress once otherwise.
  bool test(int* err = nullptr) noexcept;
  // The algorithm running, as name[:segsize[:fanout]].
  std::string algorithm() const;

  // Made by the i* functions (detail::Call is tandem's own).
  explicit CollRequest(std::shared_ptr<detail::Call> c) : call_(std::move(c)) {}

 private:
  std::shared_ptr<detail::Call> call_;
};

CollRequest ibcast(void* buf, int count, MPI_Datatype type, int root, MPI_Comm comm, const CollOptions& o = {});
CollRequest ireduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, int root, MPI_Comm comm,
                    const CollOptions& o = {});
CollRequest iallreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                       const CollOptions& o = {});
CollRequest iallgather(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Comm comm,
                       const CollOptions& o = {});
CollRequest ialltoall(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Comm comm,
                      const CollOptions& o = {});
CollRequest igather(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, int root, MPI_Comm comm,
                    const CollOptions& o = {});
CollRequest iscatter(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, int root, MPI_Comm comm,
                     const CollOptions& o = {});
CollRequest ireduce_scatter_block(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op,
                                  MPI_Comm comm, const CollOptions& o = {});
CollRequest ibarrier(MPI_Comm comm, const CollOptions& o = {});

// Every collective's algorithm names, as `tandem info --algorithms` prints them.
std::vector<std::string> coll_names();
std::vector<std::string> algorithm_names(const std::string& coll);

// Stops the background thread (waits for every started collective first). Optional:
// called automatically at exit; call it before MPI_Finalize if the program exits by other
// means than returning from main.
void coll_finalize() noexcept;

}  // namespace tandem
