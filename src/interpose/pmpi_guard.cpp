// MPI calls tandem does not defer but that take buffers (the collectives tandem runs
// itself are in pmpi_coll.cpp): before handing them to the
// MPI library, wait for deferred operations that conflict with those buffers (a pending
// receive into memory that is about to be sent, or any pending operation on memory that
// is about to be written). C ABI: nothing here throws.
#include <mpi.h>

#include "common/thread_flags.hpp"
#include "interpose/runtime.hpp"

using tandem::InternalScope;
using tandem::interpose::wait_for_buffer;
using tandem::protect::Tracker;
using tandem::protect::Use;

namespace {
inline bool pending() { return Tracker::instance().initialised() && Tracker::instance().any_active(); }
// The receive buffer of a rooted collective: only the root's matters for gather-like
// calls, but waiting on every rank's is harmless and simple.
inline void rd(const void* b, int c, MPI_Datatype t) {
  if (pending() && b != MPI_IN_PLACE) wait_for_buffer(b, c, t, Use::Read);
}
inline void wr(const void* b, int c, MPI_Datatype t) {
  if (pending() && b != MPI_IN_PLACE) wait_for_buffer(b, c, t, Use::Write);
}
}  // namespace

#define TANDEM_SEND_LIKE(NAME)                                                                              \
  int MPI_##NAME(const void* buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm) {          \
    rd(buf, count, dt);                                                                                     \
    InternalScope internal;                                                                                 \
    return PMPI_##NAME(buf, count, dt, dest, tag, comm);                                                    \
  }
#define TANDEM_ISEND_LIKE(NAME)                                                                             \
  int MPI_##NAME(const void* buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm,             \
                 MPI_Request* req) {                                                                        \
    rd(buf, count, dt);                                                                                     \
    InternalScope internal;                                                                                 \
    return PMPI_##NAME(buf, count, dt, dest, tag, comm, req);                                               \
  }

extern "C" {

TANDEM_SEND_LIKE(Ssend)
TANDEM_SEND_LIKE(Bsend)
TANDEM_SEND_LIKE(Rsend)
TANDEM_ISEND_LIKE(Isend)
TANDEM_ISEND_LIKE(Issend)
TANDEM_ISEND_LIKE(Ibsend)
TANDEM_ISEND_LIKE(Irsend)

int MPI_Irecv(void* buf, int count, MPI_Datatype dt, int source, int tag, MPI_Comm comm, MPI_Request* req) {
  wr(buf, count, dt);
  InternalScope internal;
  return PMPI_Irecv(buf, count, dt, source, tag, comm, req);
}

int MPI_Mrecv(void* buf, int count, MPI_Datatype dt, MPI_Message* msg, MPI_Status* status) {
  wr(buf, count, dt);
  InternalScope internal;
  return PMPI_Mrecv(buf, count, dt, msg, status);
}

int MPI_Imrecv(void* buf, int count, MPI_Datatype dt, MPI_Message* msg, MPI_Request* req) {
  wr(buf, count, dt);
  InternalScope internal;
  return PMPI_Imrecv(buf, count, dt, msg, req);
}

int MPI_Scan(const void* sbuf, void* rbuf, int count, MPI_Datatype dt, MPI_Op op, MPI_Comm comm) {
  rd(sbuf, count, dt);
  wr(rbuf, count, dt);
  InternalScope internal;
  return PMPI_Scan(sbuf, rbuf, count, dt, op, comm);
}

}  // extern "C"
