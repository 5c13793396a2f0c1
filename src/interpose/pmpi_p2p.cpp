// PMPI wrappers: MPI_Send, MPI_Recv, MPI_Sendrecv and MPI_Sendrecv_replace become
// nonblocking calls completed by the progress engine, with their buffers protected.
// Every other MPI call that takes a buffer first waits for deferred operations that
// conflict with it. C ABI: nothing here throws.
#include <mpi.h>

#include "common/stats.hpp"
#include "common/thread_flags.hpp"
#include "defer/deferral.hpp"
#include "interpose/runtime.hpp"

using tandem::InternalScope;
using tandem::stats;
using tandem::defer::Core;
using tandem::defer::Op;
using tandem::interpose::active;
using tandem::interpose::Extent;
using tandem::interpose::extent_of;
using tandem::interpose::runtime;
using tandem::interpose::wait_for_buffer;
using tandem::protect::Tracker;
using tandem::protect::Use;

namespace {

// The address the transport must use for a datatype whose bytes start at `lo`, when those
// bytes are at `moved` instead (a copy or a bounce buffer).
template <class T>
T* rebase(const void* buf, const void* lo, T* moved) {
  return reinterpret_cast<T*>(reinterpret_cast<std::uintptr_t>(moved) -
                              (reinterpret_cast<std::uintptr_t>(lo) - reinterpret_cast<std::uintptr_t>(buf)));
}

// The request is the deferral core's from here on.
void hand_over(MPI_Request req, Op* op, std::size_t bytes) {
  Core::instance().started(op, bytes);
  runtime().source.submit(req, op);
}

bool eligible(const Extent& e, int peer) {
  return peer != MPI_PROC_NULL && Core::instance().worth(e.lo, e.bytes, e.contiguous);
}

// Starts the send of (buf, count, dt) from `op`'s holds; true (with *rc) once the call is
// the core's, whether MPI took it or refused it.
bool start_send(Op* op, const void* from, const void* buf, int count, MPI_Datatype dt, int dest, int tag,
                MPI_Comm comm, const Extent& e, int* rc) {
  op->what = "MPI_Send";
  op->peer = dest;
  MPI_Request req;
  {
    InternalScope internal;
    *rc = PMPI_Isend(rebase(buf, e.lo, from), count, dt, dest, tag, comm, &req);
  }
  if (*rc != MPI_SUCCESS) {
    Core::instance().abandon(op);
    return true;
  }
  hand_over(req, op, e.bytes);
  return true;
}

// A deferred send (copied when small or when its pages hold other data, else protected);
// false when it must be passed through.
bool send_deferred(const void* buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm, const Extent& e,
                   int* rc) {
  const void* from = nullptr;
  Op* op = Core::instance().send(e.lo, e.bytes, &from);
  return op && start_send(op, from, buf, count, dt, dest, tag, comm, e, rc);
}

// A receive: deferred when possible, otherwise a blocking receive. Returns the MPI code;
// *deferred tells which.
int do_recv(void* buf, int count, MPI_Datatype dt, int source, int tag, MPI_Comm comm, MPI_Status* status,
            bool* deferred) {
  *deferred = false;
  Extent e = extent_of(buf, count, dt);
  auto& rt = runtime();
  auto& core = Core::instance();
  if (!eligible(e, source) || (status != MPI_STATUS_IGNORE && !rt.cfg.wait_status)) {
    wait_for_buffer(buf, count, dt, Use::Write);
    InternalScope internal;
    return PMPI_Recv(buf, count, dt, source, tag, comm, status);
  }
  MPI_Request req;
  void* dst = nullptr;
  int rc;
  if (status != MPI_STATUS_IGNORE) {
    // The program may read the status: match the message now (its envelope is all that
    // has to arrive), then receive its data in the background.
    MPI_Message msg;
    {
      InternalScope internal;
      rc = PMPI_Mprobe(source, tag, comm, &msg, status);
    }
    if (rc != MPI_SUCCESS) return rc;
    int bytes = 0;
    PMPI_Get_count(status, MPI_BYTE, &bytes);
    Op* op = nullptr;
    if (bytes != MPI_UNDEFINED && static_cast<std::size_t>(bytes) <= e.bytes &&
        static_cast<std::uint64_t>(bytes) >= core.options().threshold)
      op = core.recv(const_cast<void*>(e.lo), e.bytes, &dst);
    if (!op) {
      wait_for_buffer(buf, count, dt, Use::Write);
      InternalScope internal;
      return PMPI_Mrecv(buf, count, dt, &msg, status);
    }
    op->what = "MPI_Recv";
    op->peer = status->MPI_SOURCE;
    {
      InternalScope internal;
      rc = PMPI_Imrecv(rebase(buf, e.lo, dst), count, dt, &msg, &req);
    }
    if (rc != MPI_SUCCESS) {
      core.abandon(op);
      return rc;
    }
    hand_over(req, op, static_cast<std::size_t>(bytes));
    *deferred = true;
    return MPI_SUCCESS;
  }
  Op* op = core.recv(const_cast<void*>(e.lo), e.bytes, &dst);
  if (!op) {
    wait_for_buffer(buf, count, dt, Use::Write);
    InternalScope internal;
    return PMPI_Recv(buf, count, dt, source, tag, comm, status);
  }
  op->what = "MPI_Recv";
  op->peer = source;
  {
    InternalScope internal;
    rc = PMPI_Irecv(rebase(buf, e.lo, dst), count, dt, source, tag, comm, &req);
  }
  if (rc != MPI_SUCCESS) {
    core.abandon(op);
    return rc;
  }
  hand_over(req, op, e.bytes);
  *deferred = true;
  return MPI_SUCCESS;
}

void count_call(bool deferred) {
  (deferred ? stats().deferred : stats().passthrough).fetch_add(1, std::memory_order_relaxed);
}

bool pages_overlap(const Extent& a, const Extent& b) {
  if (!a.bytes || !b.bytes) return false;
  const std::uintptr_t page = 4096;
  auto alo = reinterpret_cast<std::uintptr_t>(a.lo) & ~(page - 1);
  auto ahi = reinterpret_cast<std::uintptr_t>(a.lo) + a.bytes;
  auto blo = reinterpret_cast<std::uintptr_t>(b.lo) & ~(page - 1);
  auto bhi = reinterpret_cast<std::uintptr_t>(b.lo) + b.bytes;
  return alo < bhi + page && blo < ahi + page;
}

}  // namespace

extern "C" {

int MPI_Init(int* argc, char*** argv) { return tandem::interpose::init(argc, argv, MPI_THREAD_SINGLE, nullptr, false); }

int MPI_Init_thread(int* argc, char*** argv, int required, int* provided) {
  return tandem::interpose::init(argc, argv, required, provided, true);
}

int MPI_Finalize(void) { return tandem::interpose::finalize(); }

int MPI_Send(const void* buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm) {
  stats().intercepted.fetch_add(1, std::memory_order_relaxed);
  if (active()) {
    Extent e = extent_of(buf, count, dt);
    int rc = MPI_SUCCESS;
    if (eligible(e, dest) && send_deferred(buf, count, dt, dest, tag, comm, e, &rc)) {
      count_call(true);
      return rc;
    }
    wait_for_buffer(buf, count, dt, Use::Read);
  }
  count_call(false);
  InternalScope internal;
  return PMPI_Send(buf, count, dt, dest, tag, comm);
}

int MPI_Recv(void* buf, int count, MPI_Datatype dt, int source, int tag, MPI_Comm comm, MPI_Status* status) {
  stats().intercepted.fetch_add(1, std::memory_order_relaxed);
  if (!active()) {
    count_call(false);
    return PMPI_Recv(buf, count, dt, source, tag, comm, status);
  }
  bool deferred = false;
  int rc = do_recv(buf, count, dt, source, tag, comm, status, &deferred);
  count_call(deferred);
  return rc;
}

int MPI_Sendrecv(const void* sendbuf, int sendcount, MPI_Datatype sendtype, int dest, int sendtag, void* recvbuf,
                 int recvcount, MPI_Datatype recvtype, int source, int recvtag, MPI_Comm comm, MPI_Status* status) {
  stats().intercepted.fetch_add(1, std::memory_order_relaxed);
  if (!active()) {
    count_call(false);
    return PMPI_Sendrecv(sendbuf, sendcount, sendtype, dest, sendtag, recvbuf, recvcount, recvtype, source, recvtag,
                         comm, status);
  }
  Extent se = extent_of(sendbuf, sendcount, sendtype), re = extent_of(recvbuf, recvcount, recvtype);
  if (pages_overlap(se, re) || (!eligible(se, dest) && !eligible(re, source))) {
    wait_for_buffer(sendbuf, sendcount, sendtype, Use::Read);
    wait_for_buffer(recvbuf, recvcount, recvtype, Use::Write);
    count_call(false);
    InternalScope internal;
    return PMPI_Sendrecv(sendbuf, sendcount, sendtype, dest, sendtag, recvbuf, recvcount, recvtype, source, recvtag,
                         comm, status);
  }
  // The send goes first (deferred, or started plainly), so a blocking receive cannot deadlock.
  int rc = MPI_SUCCESS;
  bool send_deferred = false;
  MPI_Request plain = MPI_REQUEST_NULL;
  if (eligible(se, dest)) send_deferred = ::send_deferred(sendbuf, sendcount, sendtype, dest, sendtag, comm, se, &rc);
  if (rc != MPI_SUCCESS) return rc;
  if (!send_deferred) {
    wait_for_buffer(sendbuf, sendcount, sendtype, Use::Read);
    InternalScope internal;
    rc = PMPI_Isend(sendbuf, sendcount, sendtype, dest, sendtag, comm, &plain);
    if (rc != MPI_SUCCESS) return rc;
  }
  bool recv_deferred = false;
  rc = do_recv(recvbuf, recvcount, recvtype, source, recvtag, comm, status, &recv_deferred);
  if (plain != MPI_REQUEST_NULL) {
    InternalScope internal;
    int rc2 = PMPI_Wait(&plain, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS) rc = rc2;
  }
  count_call(send_deferred || recv_deferred);
  return rc;
}

int MPI_Sendrecv_replace(void* buf, int count, MPI_Datatype dt, int dest, int sendtag, int source, int recvtag,
                         MPI_Comm comm, MPI_Status* status) {
  stats().intercepted.fetch_add(1, std::memory_order_relaxed);
  if (!active()) {
    count_call(false);
    return PMPI_Sendrecv_replace(buf, count, dt, dest, sendtag, source, recvtag, comm, status);
  }
  Extent e = extent_of(buf, count, dt);
  if (!eligible(e, dest) || !eligible(e, source)) {
    wait_for_buffer(buf, count, dt, Use::Write);
    count_call(false);
    InternalScope internal;
    return PMPI_Sendrecv_replace(buf, count, dt, dest, sendtag, source, recvtag, comm, status);
  }
  // Send a copy (tandem's own pages, reused when the send completes), receive in place.
  wait_for_buffer(buf, count, dt, Use::Write);
  int rc = MPI_SUCCESS;
  const void* from = nullptr;
  Op* op = Core::instance().send_copy(e.lo, e.bytes, &from);
  if (!op || !start_send(op, from, buf, count, dt, dest, sendtag, comm, e, &rc)) {
    count_call(false);
    InternalScope internal;
    return PMPI_Sendrecv_replace(buf, count, dt, dest, sendtag, source, recvtag, comm, status);
  }
  if (rc != MPI_SUCCESS) return rc;
  bool deferred = false;
  rc = do_recv(buf, count, dt, source, recvtag, comm, status, &deferred);
  count_call(true);
  return rc;
}

}  // extern "C"
