// The MPI library as a progress source (compiled once per MPI): started MPI requests and
// their completion records, tested in batches with MPI_Testsome. A request's result is
// its status's MPI_ERROR and its byte count (MPI_Get_count with MPI_BYTE).
//
// Which error handler acts on an error found at completion is the MPI library's choice:
// Open MPI raises it on the request's communicator (tandem's own communicators have
// MPI_ERRORS_RETURN, so the error becomes the result); MPICH 4.0 raises errors of
// MPI_Testsome and MPI_Test on MPI_COMM_WORLD's handler, so there the error becomes a
// result only when MPI_COMM_WORLD returns errors, and otherwise (fatal by default) the job
// stops at it, as it would have in the MPI library's own call.
#pragma once
#include <mpi.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "common/memory.hpp"
#include "progress/completion.hpp"
#include "progress/engine.hpp"

namespace tandem::transport {

class MpiSource final : public progress::Source {
 public:
  explicit MpiSource(progress::Engine* engine) noexcept : engine_(engine) {}
  // Hands a started request over (any thread): c->fn runs once it completes. Never fails.
  void submit(MPI_Request req, progress::Completion* c) noexcept;
  int progress() noexcept override;
  progress::Engine& engine() noexcept { return *engine_; }

 private:
  struct Entry {
    MPI_Request req;
    progress::Completion* c;
  };
  int test_one_by_one(std::size_t n) noexcept;
  void complete(progress::Completion* c, const MPI_Status& st, int error) noexcept;

  progress::Engine* engine_;
  std::mutex in_mu_;  // incoming_
  std::vector<Entry, PageAllocator<Entry>> incoming_;
  std::atomic<bool> queued_{false};  // incoming_ may be non-empty (a poll skips the lock when not)
  // Polled state (the engine's poll lock): tandem's memory, never the program's heap,
  // which may share pages with protected buffers. A completed request's entry has a null
  // completion until the end of the poll.
  std::vector<MPI_Request, PageAllocator<MPI_Request>> reqs_;
  std::vector<progress::Completion*, PageAllocator<progress::Completion*>> comps_;
  std::vector<int, PageAllocator<int>> idx_;
  std::vector<MPI_Status, PageAllocator<MPI_Status>> st_;
  bool warned_ = false;
};

}  // namespace tandem::transport
