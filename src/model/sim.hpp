// The event-driven simulator: replays the schedules src/coll builds for the runtime (the
// same builders), every rank's steps, over a machine profile. Free of MPI.
//
// What it models, per rank: one CPU that runs, in the order they become ready, the send
// overheads os(m), the receive overheads or(m), the reductions and the copies; per
// network endpoint (a rank's own inside a node, a shared NIC between nodes) the
// serialisation of outgoing and of incoming messages by the gap g(m), so that
// outstanding nonblocking sends overlap each other and the CPU as in the broadcast
// schedule of Vadhiyar, Fagg and Dongarra; the latency L(m) between them. A lone
// message takes os + L + g + or, as measured. Receives match sends by (source,
// destination, tag) exactly as the executor's messages do; a message may arrive before
// its receive is posted. A message above its link's eager limit goes by rendezvous: a
// request-to-send, then the receiver's clear-to-send once its receive is posted (queued
// behind what the receiver's endpoint is sending), then the data. Not modelled:
// contention inside the network (the flow-level backend does that), noise.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "coll/algorithms.hpp"
#include "model/profile.hpp"

namespace tandem::model {

// Where the ranks are: consecutive ranks fill a node (as launchers place them by default).
struct Topology {
  int ranks = 1;
  int ranks_per_node = 1;
  int nics_per_node = 1;
  int node_of(int r) const { return r / ranks_per_node; }
  bool same_node(int a, int b) const { return node_of(a) == node_of(b); }
  int nodes() const { return (ranks + ranks_per_node - 1) / ranks_per_node; }
};
// The topology of a profile's own shape cut to `ranks` (ranks_per_node at most `ranks`).
Topology topology_for(const Profile& p, int ranks, int ranks_per_node = 0);

struct SimResult {
  double time = 0;                 // seconds from the start until the last rank is done
  std::vector<double> rank_done;   // per rank
  std::uint64_t steps = 0, messages = 0, bytes = 0, events = 0;
};

struct SimOptions {
  std::string reduce_key = "float:sum";  // the profile's reduce table to cost Reduce steps
};

// Replays one schedule per rank (schedules[r].rank == r). Throws std::logic_error when
// the schedules cannot all complete (a receive without its send, a wait cycle).
SimResult simulate(const std::vector<coll::Schedule>& schedules, const Profile& p, const Topology& t,
                   const SimOptions& o = {});

// Every rank's schedule of `alg` for `a` (a.rank is ignored).
std::vector<coll::Schedule> build_all(const coll::Algorithm& alg, const coll::Args& a);
// The call with the topology's node map (ranks r on node r / ranks_per_node) when it has
// none: what the hierarchical algorithms are costed with.
coll::Args with_nodes(const coll::Args& a, const Topology& t);

// Builds every rank's schedule of `alg` for `a` (a.rank is ignored, a.size must be
// t.ranks) and replays them.
SimResult simulate(const coll::Algorithm& alg, const coll::Args& a, const Profile& p, const Topology& t,
                   const SimOptions& o = {});

// A lower bound of what `simulate` returns, from a few ranks' schedules alone (rank 0, the
// root, the middle and the last rank): each of them needs at least the sum of its CPU
// costs (send and receive overheads, reductions, copies: its one CPU runs them one after
// another) and, at each of its endpoints, the sum of the gaps of the messages it sends and
// of those it receives (they pass it one after another). Costs a few schedules' building
// instead of every rank's and a replay: what lets a search skip candidates that cannot
// beat the best simulated so far.
struct SimBound {
  double time = 0;          // seconds, at most what simulate() returns
  std::uint64_t steps = 0;  // the largest sampled schedule's steps x ranks: the replay's size
};
SimBound lower_bound(const coll::Algorithm& alg, const coll::Args& a, const Profile& p, const Topology& t,
                     const SimOptions& o = {});

}  // namespace tandem::model
