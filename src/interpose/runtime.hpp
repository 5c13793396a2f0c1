// tandem's state inside an MPI process (compiled once per MPI): configuration, the
// progress engine and the decisions shared by the wrappers. Nothing here throws.
#pragma once
#include <mpi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "coll/mpi/context.hpp"
#include "common/config.hpp"
#include "progress/engine.hpp"
#include "protect/tracker.hpp"
#include "transport/mpi/source.hpp"

namespace tandem::interpose {

struct Runtime {
  Config cfg;
  std::atomic<bool> active{false};      // deferring calls (MPI up, thread level granted)
  std::atomic<bool> coll_ready{false};  // collectives may run tandem's algorithms (MPI up)
  int rank = -1;
  progress::Engine engine;
  transport::MpiSource source{&engine};
  std::unique_ptr<coll::MpiContext> coll;  // made at MPI_Init, with cfg
};

Runtime& runtime();
inline bool active() { return runtime().active.load(std::memory_order_acquire); }
inline bool coll_ready() { return runtime().coll_ready.load(std::memory_order_acquire); }

// Collective calls per kind, for the statistics line.
struct CollStats {
  std::atomic<std::uint64_t> tandem{0};      // run with one of tandem's algorithms
  std::atomic<std::uint64_t> mpi{0};         // handed to the MPI library's own
  std::atomic<std::uint64_t> background{0};  // returned at once, completed in the background
};
CollStats& coll_stats();

// MPI_Init and MPI_Init_thread.
int init(int* argc, char*** argv, int required, int* provided, bool thread_variant);
// MPI_Finalize: completes every deferred operation, prints statistics, finalizes.
int finalize();

// The bytes a (buf, count, datatype) triple touches.
struct Extent {
  const void* lo = nullptr;
  std::size_t bytes = 0;  // from lo to the end of the last byte touched
  bool contiguous = false;
};
Extent extent_of(const void* buf, std::int64_t count, MPI_Datatype dt);

// Waits until no deferred operation conflicts with using (buf, count, dt) for `use`.
void wait_for_buffer(const void* buf, int count, MPI_Datatype dt, protect::Use use);

}  // namespace tandem::interpose
