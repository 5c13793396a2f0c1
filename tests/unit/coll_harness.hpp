// Runs one collective call on all its ranks at once with the real executor and progress
// engines over the in-process transport (transport/inproc.hpp), for the unit tests.
//   - stepped: one thread starts every rank's execution and then polls the ranks' engines
//     in turn (Poll mode, no thread): fast and deterministic for a given seed, and a pass
//     without any completion while work is left is a deadlock, reported with the
//     operations still unmatched;
//   - threads: each rank is a thread that starts its execution and waits for it, on an
//     engine in the given mode (Thread: with its background progress thread; Poll;
//     Block: sleeping on the endpoint's eventfd).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "coll/reduce_ops.hpp"
#include "coll/schedule.hpp"
#include "progress/engine.hpp"
#include "transport/inproc.hpp"

namespace tandem::test {

struct RankMemory {
  std::vector<unsigned char> send, recv;
};

struct RunOptions {
  bool threads = false;                          // ranks as threads; false: stepped
  progress::Mode mode = progress::Mode::Poll;    // with threads
  transport::InprocOptions inproc;               // seed, injected failure
  unsigned timeout_s = 60;                       // with threads: a hang fails the process
};

// Each rank's error (Execution::error()). Throws std::runtime_error on a deadlock (stepped).
std::vector<int> run_collective(const std::vector<coll::Schedule>& schedules, std::vector<RankMemory>& mem,
                                const coll::Reducer& r, const RunOptions& o);

}  // namespace tandem::test
