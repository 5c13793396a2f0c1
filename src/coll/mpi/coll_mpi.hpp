// Running tandem's collectives on MPI communicators (compiled once per MPI): checks a call,
// maps its datatype and operation, keeps one private duplicate communicator per program
// communicator, builds the schedule and starts it on the progress engine. Shared by the
// C++ API and the PMPI wrappers. Nothing here throws.
#pragma once
#include <mpi.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "coll/algorithms.hpp"
#include "coll/executor.hpp"
#include "progress/engine.hpp"
#include "transport/mpi_p2p.hpp"
#include "transport/mpi_transport.hpp"

namespace tandem::coll {

struct MpiCallSpec {
  Coll coll;
  const void* sendbuf;
  void* recvbuf;
  int count;
  MPI_Datatype type;
  MPI_Op op;  // MPI_OP_NULL for collectives without reduction
  int root;
  MPI_Comm comm;
};

struct MpiCall {
  Choice choice;
  Args args;
  transport::P2P* p2p = nullptr;
  MPI_Datatype user_type = MPI_DATATYPE_NULL;  // for operations applied with MPI_Reduce_local
  MPI_Op user_op = MPI_OP_NULL;
  std::unique_ptr<Execution> exec;  // last: destroyed (waited for) first
};

class MpiContext {
 public:
  // With an engine, runs calls on it (the preload library's); without, starts its own at
  // the first call (the C++ API), with a thread when MPI_THREAD_MULTIPLE was granted.
  explicit MpiContext(progress::Engine* engine = nullptr) : external_(engine) {}
  // Whether tandem can run the call (intracommunicator, contiguous datatype, a reduction
  // tandem can apply); if not, *why says what it cannot do. Cheap; no communication.
  bool supported(const MpiCallSpec& s, std::string* why);
  // Starts the call with `forced` or else the default choice; nullptr and *why when the
  // call cannot run (unsupported, or the algorithm refuses the operation).
  std::unique_ptr<MpiCall> start(const MpiCallSpec& s, const Choice* forced, std::string* why);
  // The same in two halves: prepare() checks the call, builds the schedule and makes its
  // execution (with the spec's buffers) without starting it; the caller may then set an
  // on-done function and start it (call->exec->start()).
  std::unique_ptr<MpiCall> prepare(const MpiCallSpec& s, const Choice* forced, std::string* why);
  // Stops the progress thread after every started call completed (at MPI_Finalize).
  void shutdown() noexcept;

 private:
  struct Channel {
    MPI_Comm dup = MPI_COMM_NULL;
    std::unique_ptr<transport::MpiP2P> p2p;
    std::uint32_t seq = 0;
    // Schedules of recent calls (a program repeats the same few calls): at most
    // kCachedSchedules, the oldest replaced first. Guarded by MpiContext::mu_.
    struct Cached {
      const Algorithm* alg;
      Args args;
      std::shared_ptr<const Schedule> schedule;
    };
    std::vector<Cached> cache;
    std::size_t cache_next = 0;
  };
  static constexpr std::size_t kCachedSchedules = 16;
  static int delete_channel(MPI_Comm, int, void* value, void*);
  static int at_finalize(MPI_Comm, int, void*, void* extra);
  Channel* channel(MPI_Comm comm);
  void ensure_engine();

  std::mutex mu_;
  progress::Engine* external_ = nullptr;
  progress::Engine engine_;
  transport::MpiPoller poller_;
  bool engine_started_ = false;
  int keyval_ = MPI_KEYVAL_INVALID;
};

}  // namespace tandem::coll
