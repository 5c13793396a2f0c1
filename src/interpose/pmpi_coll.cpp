// Blocking collectives under `tandem run`. For MPI_Bcast, MPI_Reduce, MPI_Allreduce,
// MPI_Allgather, MPI_Alltoall, MPI_Gather, MPI_Scatter, MPI_Reduce_scatter_block and
// MPI_Barrier, on any intracommunicator:
//   - the algorithm: TANDEM_COLL_<COLL> (forced), else the first matching line of the
//     TANDEM_COLL_RULES file, else the MPI library's own; a call tandem cannot run
//     (a non-contiguous datatype, a user operation an algorithm cannot keep in rank
//     order, an intercommunicator, ...) goes to the MPI library unchanged;
//   - with TANDEM_COLL_OVERLAP=1 (not MPI_Barrier, whose meaning is the waiting), the call
//     returns at once: the send side is made read-only, the receive side is written
//     through a bounce buffer swapped in at completion (the point-to-point design, see
//     docs/overlap.md), an in-place input is copied first; the collective (tandem's, or
//     the MPI library's nonblocking one) completes in the background.
// Before anything, deferred operations that conflict with the buffers are waited for.
// C ABI: nothing here throws.
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "coll/mpi/context.hpp"
#include "common/stats.hpp"
#include "common/thread_flags.hpp"
#include "defer/deferral.hpp"
#include "interpose/runtime.hpp"

using tandem::InternalScope;
using tandem::stats;
using tandem::coll::Coll;
using tandem::coll::MpiCallSpec;
using tandem::defer::Core;
using tandem::defer::Op;
using tandem::interpose::active;
using tandem::interpose::coll_stats;
using tandem::interpose::runtime;
using tandem::protect::Tracker;
using tandem::protect::Use;

namespace {

struct Region {
  const void* p = nullptr;
  std::size_t bytes = 0;
};

// What one call reads and writes in the caller's memory.
struct Regions {
  Region send;   // read from the send buffer
  Region input;  // an in-place input, read from the receive buffer
  Region recv;   // written (the receive buffer)
};

int comm_size(MPI_Comm comm) {
  int n = 1;
  PMPI_Comm_size(comm, &n);
  return n;
}
int comm_rank(MPI_Comm comm) {
  int r = 0;
  PMPI_Comm_rank(comm, &r);
  return r;
}
std::size_t type_size(MPI_Datatype t) {
  int s = 0;
  if (PMPI_Type_size(t, &s) != MPI_SUCCESS || s < 0) return 0;
  return static_cast<std::size_t>(s);
}
const char* at(const void* p, std::size_t off) { return static_cast<const char*>(p) + off; }

bool pending() { return Tracker::instance().initialised() && Tracker::instance().any_active(); }

void wait_region(const Region& r, Use use) {
  if (r.p && r.p != MPI_IN_PLACE && r.bytes) Tracker::instance().wait_conflicts(r.p, r.bytes, use);
}

using Blocking = int (*)(const MpiCallSpec&);
using Nonblocking = int (*)(const MpiCallSpec&, MPI_Request*);

// A collective running in the background: its deferral (the holds on its buffers) and,
// when tandem's algorithm runs it, its execution.
struct Background {
  Op* op = nullptr;
  std::unique_ptr<tandem::coll::MpiCall> call;
};

void release_background(void* arg) {
  auto* bg = static_cast<Background*>(arg);
  if (bg->call) runtime().coll->recycle(std::move(bg->call));
  delete bg;
}
// Tandem's execution finished: release the holds (the Background goes with them).
void execution_done(void* arg) {
  auto* bg = static_cast<Background*>(arg);
  tandem::progress::Result r;
  r.error = bg->call->exec->error();
  Core::instance().finish(bg->op, r);
}

// Starts the call in the background; false (nothing changed) when it cannot.
bool start_background(Coll c, const MpiCallSpec& spec, const Regions& rg, const tandem::coll::Choice* choice,
                      Nonblocking nonblocking) {
  auto& core = Core::instance();
  Op* op = core.acquire();
  if (!op) return false;
  auto bg = std::make_unique<Background>();
  bg->op = op;
  op->what = "background collective";
  MpiCallSpec s2 = spec;
  auto undo = [&] {
    core.abandon(op);
    return false;
  };
  if (rg.input.bytes) {  // in place: run the call on a copy of the input instead
    void* copy = core.hold_copy(op, rg.input.p, rg.input.bytes);
    if (!copy) return undo();
    s2.sendbuf = copy;
  }
  if (c == Coll::Bcast && rg.send.bytes) {
    // The root's buffer: the program may read it but not write it; the call works on a
    // copy (some algorithms write the root's buffer too, with the same bytes).
    void* copy = core.hold_copy(op, rg.send.p, rg.send.bytes);
    if (!copy) return undo();
    s2.recvbuf = copy;
  }
  if (rg.send.bytes && rg.send.p != MPI_IN_PLACE && !core.hold_read(op, rg.send.p, rg.send.bytes)) return undo();
  if (rg.recv.bytes) {
    void* dst = core.hold_write(op, const_cast<void*>(rg.recv.p), rg.recv.bytes, false);
    if (!dst) return undo();
    s2.recvbuf = static_cast<char*>(dst) + (static_cast<const char*>(spec.recvbuf) - static_cast<const char*>(rg.recv.p));
  }
  const std::size_t bytes = rg.send.bytes + rg.input.bytes + rg.recv.bytes;
  auto& ctx = *runtime().coll;
  if (choice) {
    // The call as it runs in the background (on copies and bounce buffers, never in place),
    // with the choice of the program's call.
    std::string why;
    auto plan = ctx.plan(s2, tandem::coll::Fallback::Mpi, choice, /*quiet=*/true);
    if (plan) bg->call = ctx.instantiate(plan, s2, &why);
    if (bg->call) {
      Background* raw = bg.release();
      op->on_release = release_background;
      op->release_ctx = raw;
      raw->call->exec->set_on_done(execution_done, raw);
      core.started(op, bytes);
      coll_stats().tandem.fetch_add(1, std::memory_order_relaxed);
      coll_stats().background.fetch_add(1, std::memory_order_relaxed);
      raw->call->exec->start();  // raw may be gone from here on
      return true;
    }
    ctx.note(spec.comm, nullptr, c, tandem::coll::Selection{}, why);
  }
  MPI_Request req;
  int rc;
  {
    InternalScope internal;
    rc = nonblocking(s2, &req);
  }
  if (rc != MPI_SUCCESS) return undo();
  op->on_release = release_background;
  op->release_ctx = bg.release();
  core.started(op, bytes);
  coll_stats().mpi.fetch_add(1, std::memory_order_relaxed);
  coll_stats().background.fetch_add(1, std::memory_order_relaxed);
  runtime().source.submit(req, op);
  return true;
}

// The program's error handler of its communicator acts on a transport error, as it would
// have for the MPI library's own collective.
int call_errhandler(MPI_Comm comm, int err) {
  if (err != MPI_SUCCESS) PMPI_Comm_call_errhandler(comm, err);
  return err;
}

// Whether the call's memory regions matter: deferred operations may conflict with them,
// or the call may go to the background. (Otherwise computing them is cost for nothing.)
bool needs_regions() {
  if (!tandem::interpose::coll_ready()) return false;
  return pending() || (active() && runtime().cfg.coll_overlap);
}

int run(Coll c, const MpiCallSpec& spec, const Regions& rg, Blocking blocking, Nonblocking nonblocking) {
  if (!tandem::interpose::coll_ready()) {
    InternalScope internal;
    return blocking(spec);
  }
  stats().intercepted.fetch_add(1, std::memory_order_relaxed);
  if (pending()) {
    wait_region(rg.send, Use::Read);
    wait_region(rg.input, Use::Write);
    wait_region(rg.recv, Use::Write);
  }
  auto& rt = runtime();
  auto& ctx = *rt.coll;
  const auto& cfg = rt.cfg;
  ctx.record(spec);
  // Runs tandem's execution of the call in this thread, which polls until it is done (a
  // background thread stays out of its way), and returns the call's result.
  auto run_here = [&](auto call) {
    std::optional<tandem::progress::Engine::Driving> driving;
    if (rt.engine.mode() == tandem::progress::Mode::Thread) driving.emplace(rt.engine);
    coll_stats().tandem.fetch_add(1, std::memory_order_relaxed);
    call->exec->start();
    call->exec->wait();
    int err = call->exec->error();
    ctx.recycle(std::move(call));
    return call_errhandler(spec.comm, err);
  };
  // The fast path of a repeated blocking call (background calls run on copies: no reuse).
  if (!(active() && cfg.coll_overlap)) {
    if (auto call = ctx.reuse(spec, tandem::coll::Fallback::Mpi, nullptr)) return run_here(std::move(call));
  }
  auto plan = ctx.plan(spec, tandem::coll::Fallback::Mpi, nullptr);
  const bool runnable = plan && plan->runnable;
  const tandem::coll::Choice* choice = runnable && !plan->sel.mpi() ? &plan->sel.choice : nullptr;
  std::size_t largest = std::max({rg.send.bytes, rg.input.bytes, rg.recv.bytes});
  // In the background only what tandem could also run itself: contiguous datatypes (the
  // regions above are then exactly the bytes the call reads and writes), intracommunicators.
  if (active() && cfg.coll_overlap && c != Coll::Barrier && largest >= cfg.threshold && nonblocking && runnable &&
      start_background(c, spec, rg, choice, nonblocking))
    return MPI_SUCCESS;
  if (choice) {
    std::string why;
    if (auto call = ctx.instantiate(plan, spec, &why)) return run_here(std::move(call));
    ctx.note(spec.comm, &plan->d, c, tandem::coll::Selection{}, why);
  }
  stats().passthrough.fetch_add(1, std::memory_order_relaxed);
  coll_stats().mpi.fetch_add(1, std::memory_order_relaxed);
  InternalScope internal;
  return blocking(spec);
}

Region region(const void* p, std::size_t bytes) { return Region{p, bytes}; }

// The memory `times` consecutive runs of (buf, count, dt) touch: the whole extent, so that
// conflict waits cover non-contiguous datatypes too (for contiguous ones: count x size).
Region span(const void* buf, int count, MPI_Datatype dt, std::size_t times = 1) {
  if (count <= 0 || buf == MPI_IN_PLACE) return {};
  auto e = tandem::interpose::extent_of(buf, static_cast<std::int64_t>(count) * static_cast<std::int64_t>(times), dt);
  return Region{e.lo, e.bytes};
}

}  // namespace

extern "C" {

int MPI_Bcast(void* buf, int count, MPI_Datatype dt, int root, MPI_Comm comm) {
  MpiCallSpec s{Coll::Bcast, nullptr, buf, count, dt, MPI_OP_NULL, root, comm};
  Regions rg;
  if (needs_regions()) (comm_rank(comm) == root ? rg.send : rg.recv) = span(buf, count, dt);
  return run(Coll::Bcast, s, rg,
             [](const MpiCallSpec& x) { return PMPI_Bcast(x.recvbuf, x.count, x.type, x.root, x.comm); },
             [](const MpiCallSpec& x, MPI_Request* r) { return PMPI_Ibcast(x.recvbuf, x.count, x.type, x.root, x.comm, r); });
}

int MPI_Reduce(const void* sbuf, void* rbuf, int count, MPI_Datatype dt, MPI_Op op, int root, MPI_Comm comm) {
  MpiCallSpec s{Coll::Reduce, sbuf, rbuf, count, dt, op, root, comm};
  Regions rg;
  if (needs_regions()) {
    bool is_root = comm_rank(comm) == root;
    if (sbuf == MPI_IN_PLACE && is_root) rg.input = span(rbuf, count, dt);
    else rg.send = span(sbuf, count, dt);
    if (is_root) rg.recv = span(rbuf, count, dt);
  }
  return run(Coll::Reduce, s, rg,
             [](const MpiCallSpec& x) { return PMPI_Reduce(x.sendbuf, x.recvbuf, x.count, x.type, x.op, x.root, x.comm); },
             [](const MpiCallSpec& x, MPI_Request* r) {
               return PMPI_Ireduce(x.sendbuf, x.recvbuf, x.count, x.type, x.op, x.root, x.comm, r);
             });
}

int MPI_Allreduce(const void* sbuf, void* rbuf, int count, MPI_Datatype dt, MPI_Op op, MPI_Comm comm) {
  MpiCallSpec s{Coll::Allreduce, sbuf, rbuf, count, dt, op, 0, comm};
  Regions rg;
  if (needs_regions()) {
    if (sbuf == MPI_IN_PLACE) rg.input = span(rbuf, count, dt);
    else rg.send = span(sbuf, count, dt);
    rg.recv = span(rbuf, count, dt);
  }
  return run(Coll::Allreduce, s, rg,
             [](const MpiCallSpec& x) { return PMPI_Allreduce(x.sendbuf, x.recvbuf, x.count, x.type, x.op, x.comm); },
             [](const MpiCallSpec& x, MPI_Request* r) {
               return PMPI_Iallreduce(x.sendbuf, x.recvbuf, x.count, x.type, x.op, x.comm, r);
             });
}

// The data-moving collectives with separate send and receive signatures: tandem runs them
// when both sides use the same datatype and count (else: the MPI library).
#define TANDEM_SAME_SIGNATURE(SCOUNT, STYPE, RCOUNT, RTYPE) ((SCOUNT) == (RCOUNT) && (STYPE) == (RTYPE))

int MPI_Allgather(const void* sbuf, int scount, MPI_Datatype stype, void* rbuf, int rcount, MPI_Datatype rtype,
                  MPI_Comm comm) {
  bool ip = sbuf == MPI_IN_PLACE;
  if (!ip && !TANDEM_SAME_SIGNATURE(scount, stype, rcount, rtype)) {
    if (pending()) {
      wait_region(span(sbuf, scount, stype), Use::Read);
      wait_region(span(rbuf, rcount, rtype, static_cast<std::size_t>(comm_size(comm))), Use::Write);
    }
    InternalScope internal;
    return PMPI_Allgather(sbuf, scount, stype, rbuf, rcount, rtype, comm);
  }
  MpiCallSpec s{Coll::Allgather, sbuf, rbuf, rcount, rtype, MPI_OP_NULL, 0, comm};
  Regions rg;
  std::size_t n = static_cast<std::size_t>(rcount > 0 ? rcount : 0) * type_size(rtype);
  if (needs_regions()) {
    std::size_t p = static_cast<std::size_t>(comm_size(comm)), r = static_cast<std::size_t>(comm_rank(comm));
    if (ip) rg.input = region(at(rbuf, r * n), n);  // in place: contiguous type (else MPI's own)
    else rg.send = span(sbuf, rcount, rtype);
    rg.recv = span(rbuf, rcount, rtype, p);
  }
  return run(Coll::Allgather, s, rg,
             [](const MpiCallSpec& x) {
               return PMPI_Allgather(x.sendbuf, x.count, x.type, x.recvbuf, x.count, x.type, x.comm);
             },
             [](const MpiCallSpec& x, MPI_Request* r) {
               return PMPI_Iallgather(x.sendbuf, x.count, x.type, x.recvbuf, x.count, x.type, x.comm, r);
             });
}

int MPI_Alltoall(const void* sbuf, int scount, MPI_Datatype stype, void* rbuf, int rcount, MPI_Datatype rtype,
                 MPI_Comm comm) {
  bool ip = sbuf == MPI_IN_PLACE;
  if (!ip && !TANDEM_SAME_SIGNATURE(scount, stype, rcount, rtype)) {
    if (pending()) {
      std::size_t p = static_cast<std::size_t>(comm_size(comm));
      wait_region(span(sbuf, scount, stype, p), Use::Read);
      wait_region(span(rbuf, rcount, rtype, p), Use::Write);
    }
    InternalScope internal;
    return PMPI_Alltoall(sbuf, scount, stype, rbuf, rcount, rtype, comm);
  }
  MpiCallSpec s{Coll::Alltoall, sbuf, rbuf, rcount, rtype, MPI_OP_NULL, 0, comm};
  Regions rg;
  if (needs_regions()) {
    std::size_t p = static_cast<std::size_t>(comm_size(comm));
    if (ip) rg.input = span(rbuf, rcount, rtype, p);
    else rg.send = span(sbuf, rcount, rtype, p);
    rg.recv = span(rbuf, rcount, rtype, p);
  }
  return run(Coll::Alltoall, s, rg,
             [](const MpiCallSpec& x) {
               return PMPI_Alltoall(x.sendbuf, x.count, x.type, x.recvbuf, x.count, x.type, x.comm);
             },
             [](const MpiCallSpec& x, MPI_Request* r) {
               return PMPI_Ialltoall(x.sendbuf, x.count, x.type, x.recvbuf, x.count, x.type, x.comm, r);
             });
}

int MPI_Gather(const void* sbuf, int scount, MPI_Datatype stype, void* rbuf, int rcount, MPI_Datatype rtype, int root,
               MPI_Comm comm) {
  int rank = comm_rank(comm);
  bool is_root = rank == root, ip = is_root && sbuf == MPI_IN_PLACE;
  // Every rank must decide alike: non-roots only know the send side, so the call goes to
  // tandem by the send signature, and the root checks that its receive side matches.
  int count = ip ? rcount : scount;
  MPI_Datatype type = ip ? rtype : stype;
  if (is_root && !ip && !TANDEM_SAME_SIGNATURE(scount, stype, rcount, rtype)) {
    if (pending()) {
      wait_region(span(sbuf, scount, stype), Use::Read);
      wait_region(span(rbuf, rcount, rtype, static_cast<std::size_t>(comm_size(comm))), Use::Write);
    }
    InternalScope internal;
    return PMPI_Gather(sbuf, scount, stype, rbuf, rcount, rtype, root, comm);
  }
  MpiCallSpec s{Coll::Gather, sbuf, rbuf, count, type, MPI_OP_NULL, root, comm};
  Regions rg;
  std::size_t n = static_cast<std::size_t>(count > 0 ? count : 0) * type_size(type);
  if (needs_regions()) {
    std::size_t p = static_cast<std::size_t>(comm_size(comm));
    if (ip) rg.input = region(at(rbuf, static_cast<std::size_t>(rank) * n), n);  // as in Allgather
    else rg.send = span(sbuf, count, type);
    if (is_root) rg.recv = span(rbuf, count, type, p);
  }
  return run(Coll::Gather, s, rg,
             [](const MpiCallSpec& x) {
               return PMPI_Gather(x.sendbuf, x.count, x.type, x.recvbuf, x.count, x.type, x.root, x.comm);
             },
             [](const MpiCallSpec& x, MPI_Request* r) {
               return PMPI_Igather(x.sendbuf, x.count, x.type, x.recvbuf, x.count, x.type, x.root, x.comm, r);
             });
}

int MPI_Scatter(const void* sbuf, int scount, MPI_Datatype stype, void* rbuf, int rcount, MPI_Datatype rtype, int root,
                MPI_Comm comm) {
  int rank = comm_rank(comm);
  bool is_root = rank == root, ip = is_root && rbuf == MPI_IN_PLACE;
  int count = ip ? scount : rcount;
  MPI_Datatype type = ip ? stype : rtype;
  if (is_root && !ip && !TANDEM_SAME_SIGNATURE(scount, stype, rcount, rtype)) {
    if (pending()) {
      wait_region(span(sbuf, scount, stype, static_cast<std::size_t>(comm_size(comm))), Use::Read);
      wait_region(span(rbuf, rcount, rtype), Use::Write);
    }
    InternalScope internal;
    return PMPI_Scatter(sbuf, scount, stype, rbuf, rcount, rtype, root, comm);
  }
  MpiCallSpec s{Coll::Scatter, sbuf, rbuf, count, type, MPI_OP_NULL, root, comm};
  Regions rg;
  if (needs_regions()) {
    if (is_root) rg.send = span(sbuf, count, type, static_cast<std::size_t>(comm_size(comm)));
    if (!ip) rg.recv = span(rbuf, count, type);
  }
  return run(Coll::Scatter, s, rg,
             [](const MpiCallSpec& x) {
               return PMPI_Scatter(x.sendbuf, x.count, x.type, x.recvbuf, x.count, x.type, x.root, x.comm);
             },
             [](const MpiCallSpec& x, MPI_Request* r) {
               return PMPI_Iscatter(x.sendbuf, x.count, x.type, x.recvbuf, x.count, x.type, x.root, x.comm, r);
             });
}

int MPI_Reduce_scatter_block(const void* sbuf, void* rbuf, int rcount, MPI_Datatype dt, MPI_Op op, MPI_Comm comm) {
  MpiCallSpec s{Coll::ReduceScatterBlock, sbuf, rbuf, rcount, dt, op, 0, comm};
  Regions rg;
  if (needs_regions()) {
    std::size_t p = static_cast<std::size_t>(comm_size(comm));
    // In place the whole buffer is input (and the library's scratch); the result is its start.
    if (sbuf == MPI_IN_PLACE) rg.input = span(rbuf, rcount, dt, p);
    else rg.send = span(sbuf, rcount, dt, p);
    rg.recv = span(rbuf, rcount, dt);
  }
  return run(Coll::ReduceScatterBlock, s, rg,
             [](const MpiCallSpec& x) {
               return PMPI_Reduce_scatter_block(x.sendbuf, x.recvbuf, x.count, x.type, x.op, x.comm);
             },
             [](const MpiCallSpec& x, MPI_Request* r) {
               return PMPI_Ireduce_scatter_block(x.sendbuf, x.recvbuf, x.count, x.type, x.op, x.comm, r);
             });
}

int MPI_Barrier(MPI_Comm comm) {
  MpiCallSpec s{Coll::Barrier, nullptr, nullptr, 0, MPI_BYTE, MPI_OP_NULL, 0, comm};
  return run(Coll::Barrier, s, Regions{}, [](const MpiCallSpec& x) { return PMPI_Barrier(x.comm); }, nullptr);
}

// A communicator freed while a background collective still uses it (or tandem's duplicate
// of it): finish everything first.
int MPI_Comm_free(MPI_Comm* comm) {
  if (active() && Tracker::instance().initialised()) Tracker::instance().wait_all();
  InternalScope internal;
  return PMPI_Comm_free(comm);
}

}  // extern "C"
