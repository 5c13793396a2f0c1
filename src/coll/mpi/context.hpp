// Running tandem's collectives on MPI communicators (compiled once per MPI), shared by the
// C++ API and the PMPI wrappers: describes a call (checks it, maps its datatype and
// operation, and forms the selection's query), keeps one private duplicate communicator
// per program communicator (with MPI_ERRORS_RETURN, so that transport errors come back
// as results), builds or reuses the schedule and makes its execution. The choice itself
// is the Selector's (coll/select.hpp). Nothing here throws.
#pragma once
#include <mpi.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "coll/algorithms.hpp"
#include "coll/executor.hpp"
#include "coll/select.hpp"
#include "common/config.hpp"
#include "progress/engine.hpp"
#include "transport/mpi/p2p.hpp"
#include "transport/mpi/source.hpp"

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

// A call tandem can run: what the selection needs to know, and what building it needs.
struct Described {
  MpiCallSpec spec;
  Query query;
  Args args;  // all but the choice's segment size and fan-out
  Reducer reducer;
  Buffers buffers;
};

struct MpiCall {
  Choice choice;
  Args args;
  MPI_Datatype user_type = MPI_DATATYPE_NULL;  // for operations applied with MPI_Reduce_local
  MPI_Op user_op = MPI_OP_NULL;
  std::unique_ptr<Execution> exec;  // last: destroyed (waited for) first
};

class MpiContext {
 public:
  // With an engine and its MPI source, runs calls on them (the preload library's); without,
  // starts an engine of its own at the first call (the C++ API), in the mode TANDEM_PROGRESS
  // asks for (auto: a thread when MPI_THREAD_MULTIPLE was granted, else poll).
  MpiContext(const Config& cfg, progress::Engine* engine, transport::MpiSource* source);
  ~MpiContext();
  MpiContext(const MpiContext&) = delete;
  MpiContext& operator=(const MpiContext&) = delete;

  const Config& config() const noexcept { return cfg_; }
  const Selector& selector() const noexcept { return selector_; }
  // The settings errors found at construction (empty: none), and more from the caller.
  const std::string& errors() const noexcept { return errors_; }
  void add_errors(const std::string& e) { errors_ += e; }

  // Whether tandem can run the call (intracommunicator, contiguous datatype, at most 2 GiB);
  // if so fills *d. Otherwise *why (when given) says what tandem cannot do. No communication.
  bool describe(const MpiCallSpec& s, Described* d, std::string* why) noexcept;
  // Builds (or reuses) the schedule of `choice` for the call and makes its execution with
  // the described buffers, not started (the caller may set an on-done function, then
  // call->exec->start()). nullptr and *why when it cannot.
  std::unique_ptr<MpiCall> prepare(const Described& d, const Choice& choice, std::string* why) noexcept;

  // What the call got, for the user: with TANDEM_VERBOSE >= 1 each distinct choice once per
  // communicator; and, whatever the verbosity, once per collective, a setting that could
  // not be honoured (a skipped forced choice or rule, or a forced choice for a call tandem
  // cannot run: `unsupported`).
  void note(MPI_Comm comm, const Described* d, Coll c, const Selection& s, const std::string& unsupported) noexcept;

  // Stops the engine of its own after every started call completed (at MPI_Finalize).
  void shutdown() noexcept;

 private:
  struct Channel {
    MPI_Comm dup = MPI_COMM_NULL;
    std::unique_ptr<transport::MpiP2P> p2p;
    std::uint32_t seq = 0;
    // Schedules of recent calls (a program repeats the same few calls): at most
    // TANDEM_COLL_CACHE, the oldest replaced first. Guarded by MpiContext::mu_.
    struct Cached {
      const Algorithm* alg;
      Args args;
      std::shared_ptr<const Schedule> schedule;
    };
    std::vector<Cached> cache;
    std::size_t cache_next = 0;
  };
  static int delete_channel(MPI_Comm, int, void* value, void*);
  static int delete_log(MPI_Comm, int, void* value, void*);
  static int at_finalize(MPI_Comm, int, void*, void* extra);
  Channel* channel(MPI_Comm comm);
  void ensure_engine();

  Config cfg_;
  Selector selector_;
  std::string errors_;
  std::mutex mu_;
  progress::Engine* engine_;
  transport::MpiSource* source_;
  std::unique_ptr<progress::Engine> own_engine_;
  std::unique_ptr<transport::MpiSource> own_source_;
  bool engine_started_ = false;
  int keyval_ = MPI_KEYVAL_INVALID;
  int log_keyval_ = MPI_KEYVAL_INVALID;
  std::atomic<bool> noted_[kCollCount] = {};
};

// The rank's world rank (for messages), -1 before MPI_Init.
int world_rank() noexcept;

}  // namespace tandem::coll
