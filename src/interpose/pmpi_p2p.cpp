// PMPI wrappers: MPI_Send, MPI_Recv, MPI_Sendrecv and MPI_Sendrecv_replace become
// nonblocking calls completed by the progress engine, with their buffers protected.
// Every other MPI call that takes a buffer first waits for deferred operations that
// conflict with it. C ABI: nothing here throws.
#include <mpi.h>
#include <sys/mman.h>

#include <cstring>
#include <mutex>

#include "common/memory.hpp"

#include "common/stats.hpp"
#include "common/sys.hpp"
#include "common/thread_flags.hpp"
#include "interpose/runtime.hpp"

using tandem::InternalScope;
using tandem::stats;
using tandem::interpose::active;
using tandem::interpose::Extent;
using tandem::interpose::extent_of;
using tandem::interpose::runtime;
using tandem::interpose::wait_for_buffer;
using tandem::protect::Tracker;
using tandem::protect::Use;

namespace {

// Completion contexts are encoded in the pointer itself: no allocation per operation.
enum Kind : std::uintptr_t { kSendSlot = 0, kRecvSlot = 1, kTempBuffer = 2 };
void* encode(Kind k, std::uintptr_t v) { return reinterpret_cast<void*>((v << 2) | k); }

// Copies of send buffers in tandem's own pages: small sends (a copy costs less than
// protecting pages) and sends from buffers that share pages with other data. Reused.
struct TempHeader {
  std::size_t map_len;
  TempHeader* next;
};
constexpr std::size_t kTempOffset = 64;
constexpr std::size_t kCopyAlways = 64 << 10;  // below this a copy is cheaper than mprotect
constexpr std::size_t kCopyMax = 1 << 20;      // above this a copy costs too much: pass through
constexpr std::size_t kPoolClasses = 32;

struct CopyPool {
  std::mutex mu;
  TempHeader* free_[kPoolClasses] = {};
  static unsigned cls(std::size_t len) {
    unsigned c = 12;
    while ((std::size_t(1) << c) < len) ++c;
    return c;
  }
  TempHeader* get(std::size_t bytes) {
    unsigned c = cls(bytes + kTempOffset);
    {
      std::lock_guard<std::mutex> g(mu);
      if (TempHeader* h = free_[c]) {
        free_[c] = h->next;
        return h;
      }
    }
    std::size_t len = std::size_t(1) << c;
    void* m = tandem::sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    auto* h = static_cast<TempHeader*>(m);
    h->map_len = len;
    return h;
  }
  void put(TempHeader* h) {
    std::lock_guard<std::mutex> g(mu);
    unsigned c = cls(h->map_len);
    h->next = free_[c];
    free_[c] = h;
  }
};
CopyPool& copy_pool() { return tandem::immortal<CopyPool>(); }

void on_complete(void* ctx, const void* status) {
  auto v = reinterpret_cast<std::uintptr_t>(ctx);
  auto kind = static_cast<Kind>(v & 3);
  v >>= 2;
  if (kind == kSendSlot) {
    Tracker::instance().end_send(static_cast<int>(v));
  } else if (kind == kRecvSlot) {
    MPI_Status st;
    std::memcpy(&st, status, sizeof st);
    int bytes = 0;
    if (PMPI_Get_count(&st, MPI_BYTE, &bytes) != MPI_SUCCESS || bytes == MPI_UNDEFINED || bytes < 0) bytes = 0;
    Tracker::instance().end_recv(static_cast<int>(v), static_cast<std::size_t>(bytes));
  } else {
    copy_pool().put(reinterpret_cast<TempHeader*>(v << 2));
  }
}

bool eligible(const Extent& e, int peer) {
  return e.contiguous && peer != MPI_PROC_NULL && e.bytes >= runtime().cfg.threshold &&
         Tracker::instance().advise(e.lo, e.bytes);
}

// A send from a copy in tandem's pages: the program may change its buffer at once.
bool copy_send(const void* buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm, const Extent& e,
               int* rc) {
  wait_for_buffer(buf, count, dt, Use::Read);
  TempHeader* h = copy_pool().get(e.bytes);
  if (!h) return false;
  char* copy = reinterpret_cast<char*>(h) + kTempOffset;
  std::memcpy(copy, e.lo, e.bytes);
  const char* base = copy - (static_cast<const char*>(e.lo) - static_cast<const char*>(buf));
  MPI_Request req;
  {
    InternalScope internal;
    *rc = PMPI_Isend(base, count, dt, dest, tag, comm, &req);
  }
  if (*rc != MPI_SUCCESS) {
    copy_pool().put(h);
    return true;
  }
  runtime().engine.submit(tandem::transport::to_handle(req), on_complete,
                          encode(kTempBuffer, reinterpret_cast<std::uintptr_t>(h) >> 2));
  stats().bytes_deferred.fetch_add(e.bytes, std::memory_order_relaxed);
  return true;
}

// A deferred send: copied when small or when its pages cannot be protected alone, else protected.
bool send_deferred(const void* buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm, const Extent& e,
                   int* rc);

// A deferred send of (buf, count, dt) whose bytes are e; false when it must be passed through.
bool defer_send(const void* buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm, const Extent& e,
                int* rc) {
  int slot = Tracker::instance().begin_send(e.lo, e.bytes);
  if (slot < 0) return false;
  MPI_Request req;
  {
    InternalScope internal;
    *rc = PMPI_Isend(buf, count, dt, dest, tag, comm, &req);
  }
  if (*rc != MPI_SUCCESS) {
    Tracker::instance().end_send(slot);
    return true;
  }
  runtime().engine.submit(tandem::transport::to_handle(req), on_complete,
                          encode(kSendSlot, static_cast<std::uintptr_t>(slot)));
  stats().bytes_deferred.fetch_add(e.bytes, std::memory_order_relaxed);
  return true;
}

// A receive: deferred when possible, otherwise a blocking receive. Returns the MPI code;
// *deferred tells which.
int do_recv(void* buf, int count, MPI_Datatype dt, int source, int tag, MPI_Comm comm, MPI_Status* status,
            bool* deferred) {
  *deferred = false;
  Extent e = extent_of(buf, count, dt);
  auto& tracker = Tracker::instance();
  auto& rt = runtime();
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
    int slot = -1;
    if (bytes != MPI_UNDEFINED && static_cast<std::size_t>(bytes) <= e.bytes &&
        static_cast<std::size_t>(bytes) >= rt.cfg.threshold)
      slot = tracker.begin_recv(const_cast<void*>(e.lo), e.bytes, &dst);
    if (slot < 0) {
      wait_for_buffer(buf, count, dt, Use::Write);
      InternalScope internal;
      return PMPI_Mrecv(buf, count, dt, &msg, status);
    }
    void* base = static_cast<char*>(dst) - (static_cast<const char*>(e.lo) - static_cast<char*>(buf));
    {
      InternalScope internal;
      rc = PMPI_Imrecv(base, count, dt, &msg, &req);
    }
    if (rc != MPI_SUCCESS) {
      tracker.cancel_recv(slot);
      return rc;
    }
    rt.engine.submit(tandem::transport::to_handle(req), on_complete,
                     encode(kRecvSlot, static_cast<std::uintptr_t>(slot)));
    stats().bytes_deferred.fetch_add(static_cast<std::size_t>(bytes), std::memory_order_relaxed);
    *deferred = true;
    return MPI_SUCCESS;
  }
  int slot = tracker.begin_recv(const_cast<void*>(e.lo), e.bytes, &dst);
  if (slot < 0) {
    wait_for_buffer(buf, count, dt, Use::Write);
    InternalScope internal;
    return PMPI_Recv(buf, count, dt, source, tag, comm, status);
  }
  void* base = static_cast<char*>(dst) - (static_cast<const char*>(e.lo) - static_cast<char*>(buf));
  {
    InternalScope internal;
    rc = PMPI_Irecv(base, count, dt, source, tag, comm, &req);
  }
  if (rc != MPI_SUCCESS) {
    tracker.cancel_recv(slot);
    return rc;
  }
  rt.engine.submit(tandem::transport::to_handle(req), on_complete,
                   encode(kRecvSlot, static_cast<std::uintptr_t>(slot)));
  stats().bytes_deferred.fetch_add(e.bytes, std::memory_order_relaxed);
  *deferred = true;
  return MPI_SUCCESS;
}

bool send_deferred(const void* buf, int count, MPI_Datatype dt, int dest, int tag, MPI_Comm comm, const Extent& e,
                   int* rc) {
  if (e.bytes <= kCopyAlways) return copy_send(buf, count, dt, dest, tag, comm, e, rc);
  if (defer_send(buf, count, dt, dest, tag, comm, e, rc)) return true;
  return e.bytes <= kCopyMax && copy_send(buf, count, dt, dest, tag, comm, e, rc);
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
  if (e.bytes > kCopyMax || !copy_send(buf, count, dt, dest, sendtag, comm, e, &rc)) {
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
