// The flow-level backend: the same schedules replayed as one SimGrid DAG (activities
// joined by add_successor, no actors) on a platform built from a profile: a host per
// rank, a link per rank inside its node, a link per NIC up and down to its leaf switch,
// and leaf-spine links between leaves, all shared by max-min fairness, so contention
// in the network is modelled where the event simulator (sim.hpp) assumes none.
// Free of MPI.
//
// SimGrid's network model is CM02 (no latency or bandwidth correction factors: the HPC
// setting; its default LV08 multiplies latencies by 13 for wide-area TCP). A message is
// an Exec of os(m) on the sender's host, a Comm of m bytes, an Exec of or(m) on the
// receiver's host after both the Comm and the receive's dependencies; reductions and
// copies are Execs of their profile cost. Each simulation runs in a child process (SimGrid
// keeps one engine per process).
#pragma once
#include "coll/algorithms.hpp"
#include "model/profile.hpp"
#include "model/sim.hpp"

namespace tandem::model {

// Whether this tandem was built with SimGrid.
bool flow_available();

// Replays `alg` for `a` (a.size == t.ranks) on SimGrid; SimResult::time and ::messages.
// Throws std::runtime_error when SimGrid is not built in or the simulation fails, and
// when it takes longer than `timeout_s` seconds (0: no limit).
SimResult simulate_flow(const coll::Algorithm& alg, const coll::Args& a, const Profile& p, const Topology& t,
                        const SimOptions& o = {}, double timeout_s = 0);

}  // namespace tandem::model
