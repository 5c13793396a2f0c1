// Runs the schedules of all ranks of one collective call inside one process, with every
// rank's buffers in memory: messages are matched by (source, destination, tag) exactly as
// the executor's transport matches them. Free of MPI. Used to verify algorithms quickly
// and, with a seed, in many interleavings: ready steps are taken in a random order and a
// send's bytes are read only when its receive runs, so a missing dependency shows up as
// wrong data.
#pragma once
#include <cstdint>
#include <vector>

#include "coll/reduce_ops.hpp"
#include "coll/schedule.hpp"

namespace tandem::coll {

struct RankMemory {
  std::vector<unsigned char> send, recv;
};

// Throws std::runtime_error on a deadlock (steps left that can never run), a message whose
// sizes differ between sender and receiver, or a message never received.
void run_loopback(const std::vector<Schedule>& schedules, std::vector<RankMemory>& mem, const Reducer& r,
                  std::uint64_t seed = 0);

}  // namespace tandem::coll
