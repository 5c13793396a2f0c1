// Running tandem's collectives on MPI communicators (compiled once per MPI), shared by the
// C++ API and the PMPI wrappers: describes a call (checks it, maps its datatype and
// operation, and forms the selection's query), keeps one private duplicate communicator
// per program communicator (with MPI_ERRORS_RETURN, so that transport errors come back
// as results), builds or reuses the schedule and makes its execution. The choice itself
// is the Selector's (coll/select.hpp). Nothing here throws.
#pragma once
#include <mpi.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "coll/algorithms.hpp"
#include "coll/executor.hpp"
#include "coll/select.hpp"
#include "common/config.hpp"
#include "model/estimator.hpp"
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

struct Plan;

struct MpiCall {
  Choice choice;
  Args args;
  MPI_Datatype user_type = MPI_DATATYPE_NULL;  // for operations applied with MPI_Reduce_local
  MPI_Op user_op = MPI_OP_NULL;
  std::shared_ptr<Plan> plan;       // what it was made from (it goes back there for reuse)
  std::unique_ptr<Execution> exec;  // last: destroyed (waited for) first
};

// How one call signature runs on one communicator, decided the first time it is made and
// kept: a program repeats the same few calls, and the description, the selection and the
// schedule are the same each time (only the buffers differ).
struct Plan {
  Coll coll;
  int count;
  MPI_Datatype type;
  MPI_Op op;
  int root;
  bool send_in_place, recv_in_place;
  Fallback fallback;
  Choice call_choice;  // the C++ API's own choice (alg nullptr: none)
  bool runnable = false;    // tandem can run it; otherwise `unsupported` says why
  std::string unsupported;
  Described d;              // runnable: its description (buffers are the call's)
  Selection sel;            // runnable: the choice
  std::shared_ptr<const Schedule> schedule;       // when tandem's algorithm runs it
  std::vector<std::unique_ptr<MpiCall>> idle;     // finished calls, for reuse (MpiContext::mu_)
  bool same(const MpiCallSpec& s, Fallback fb, const Choice* c) const noexcept;
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

  // The plan of the call: taken from this communicator's recent calls, or made (described,
  // selected with `fb` and `call_choice`, noted) the first time. nullptr only when out of
  // memory or for MPI_COMM_NULL.
  // `quiet`: made for tandem's own use (a background copy of a call), not noted.
  std::shared_ptr<Plan> plan(const MpiCallSpec& s, Fallback fb, const Choice* call_choice, bool quiet = false) noexcept;
  // An execution of the plan's choice on the call's buffers, not started (the caller may set
  // an on-done function, then call->exec->start()): a finished one of the same plan when
  // there is one, else a new one (the schedule built the first time). nullptr and *why when
  // it cannot (the communicator cannot be duplicated, the algorithm refuses the call).
  std::unique_ptr<MpiCall> instantiate(const std::shared_ptr<Plan>& p, const MpiCallSpec& s, std::string* why) noexcept;
  // The fast path of a repeated call: a finished execution of this call signature's plan,
  // reset for the call's buffers, under one lock; nullptr when there is none (then plan()
  // and instantiate()).
  std::unique_ptr<MpiCall> reuse(const MpiCallSpec& s, Fallback fb, const Choice* call_choice) noexcept;
  // A finished call goes back to its plan for reuse.
  void recycle(std::unique_ptr<MpiCall> call) noexcept;

  // What the call got, for the user: with TANDEM_VERBOSE >= 1 each distinct choice once per
  // communicator; and, whatever the verbosity, once per collective, a setting that could
  // not be honoured (a skipped forced choice or rule, or a forced choice for a call tandem
  // cannot run: `unsupported`).
  void note(MPI_Comm comm, const Described* d, Coll c, const Selection& s, const std::string& unsupported) noexcept;

  // With TANDEM_COLL_RECORD: counts the call by {collective, ranks, bytes per rank,
  // datatype}; write_record() (at MPI_Finalize, before PMPI_Finalize) writes rank 0's
  // counts once. No communication.
  void record(const MpiCallSpec& s) noexcept;
  void write_record() noexcept;

  // Stops the engine of its own after every started call completed (at MPI_Finalize).
  void shutdown() noexcept;

 private:
  // tandem's state of one program communicator: its duplicate (made at the first call that
  // runs tandem's algorithm), and the plans of its recent calls: at most TANDEM_COLL_CACHE,
  // the oldest replaced first. Guarded by mu_.
  struct Channel {
    MPI_Comm dup = MPI_COMM_NULL;
    std::unique_ptr<transport::MpiP2P> p2p;
    std::shared_ptr<const NodeMap> nodes;  // made with the duplicate (TANDEM_COLL_NODES)
    std::uint32_t seq = 0;
    std::vector<std::shared_ptr<Plan>> plans;
    std::size_t next = 0;  // the plan to replace next
    std::size_t last = 0;  // the plan found last (looked at first)
  };
  static int delete_channel(MPI_Comm, int, void* value, void*);
  static int delete_log(MPI_Comm, int, void* value, void*);
  static int at_finalize(MPI_Comm, int, void*, void* extra);
  Channel* channel_locked(MPI_Comm comm);          // with mu_ held; made on first use
  bool ensure_dup(Channel* ch, MPI_Comm comm);     // without mu_ held (collective)
  void ensure_engine();

  Config cfg_;
  Selector selector_;
  std::shared_ptr<const model::ModelEstimator> model_;  // TANDEM_COLL_MODEL, or null
  std::atomic<bool> model_checked_{false};              // its mismatches said (rank 0)
  std::string errors_;
  std::mutex mu_;
  std::mutex record_mu_;
  std::map<std::tuple<int, int, std::uint64_t, std::string>, std::uint64_t> recorded_;  // TANDEM_COLL_RECORD
  bool record_written_ = false;
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
