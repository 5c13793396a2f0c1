// A machine profile: what the performance model knows of a machine, measured by
// `tandem profile` (or written from a machine's data sheet for one that is not here).
// Free of MPI.
//
// Point-to-point costs per message size m, in the parametrised LogP sense (Kielmann et
// al. 2000) as the schedule model of Vadhiyar, Fagg and Dongarra uses them:
//   os(m)  the sender's CPU time to start a nonblocking send of m bytes
//   or(m)  the receiver's CPU time to complete the receive of m bytes that have arrived
//   g(m)   the gap: the least time between the starts of two m-byte messages leaving (or
//          entering) one endpoint, so 1/g(m) messages per second is its throughput
//   L(m)   what is left of the one-way time: a lone message started at t is received at
//          t + os(m) + L(m) + g(m) + or(m), i.e. L(m) = rtt(m)/2 - os(m) - g(m) - or(m).
//          Negative (down to -g(m)) where a lone message is faster than a stream's gap:
//          a link shaped by a token bucket lets a burst through at line rate
//          (the virtual cluster's tbf), and a stream pays the rate
// one table for messages inside a node and one for messages between nodes, plus the local
// cost of copying and of combining m bytes (per datatype and operation).
//
// Saved as JSON (format "tandem-profile", version kProfileVersion), naming the machine,
// the transport and the topology it was measured on: docs/tuning.md describes the fields.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tandem::model {

inline constexpr int kProfileVersion = 1;
inline constexpr const char* kProfileFormat = "tandem-profile";

// Point-to-point parameters at one message size (seconds).
struct P2PPoint {
  std::uint64_t bytes = 0;
  double os = 0, orecv = 0, g = 0, L = 0;
  double rtt = 0;         // the round trip measured, when measured (0: derived)
  double ci = 0;          // relative half-width of the 95% interval reached (0: not measured)
  int reps = 0;           // repetitions it took
};

// The parameters at size m: interpolated linearly between measured sizes, extrapolated
// from the last two above the largest, the smallest's values below it.
struct P2PCost {
  double os = 0, orecv = 0, g = 0, L = 0;
  double one_way() const { return os + L + g + orecv; }  // a lone message, send start to receive end
};

struct P2PTable {
  std::vector<P2PPoint> points;  // by increasing size, at least one
  // Messages above this many bytes go by rendezvous (0: all eagerly, or not known): the
  // simulator sends a request, waits for the receiver's clear-to-send, then the data.
  std::uint64_t eager_limit = 0;
  P2PCost at(std::uint64_t bytes) const;
};

// A local cost per size: seconds to process m bytes.
struct CostPoint {
  std::uint64_t bytes = 0;
  double seconds = 0;
};
struct CostTable {
  std::vector<CostPoint> points;  // by increasing size, at least one
  double at(std::uint64_t bytes) const;
};

struct Machine {
  std::string host, cpu, description;
  int cores = 0;
};

// Where the profile's numbers come from: which nodes, how many ranks per node, how the
// nodes are joined. `nics_per_node` network endpoints are shared by a node's ranks for
// messages between nodes (rank r uses endpoint local_rank % nics_per_node).
struct Shape {
  int nodes = 1;
  int ranks_per_node = 1;
  int nics_per_node = 1;
  std::string network;  // "vcluster 1gbit", "shm", "InfiniBand NDR 400 Gb/s leaf-spine", ...
  // Leaf-spine layout for the flow-level simulator (0: a flat cluster behind one switch).
  int nodes_per_leaf = 0;
  int spines = 0;
  double spine_bandwidth = 0;  // bytes/s of each leaf-spine link (0: as the node links)
};

struct Profile {
  int version = kProfileVersion;
  Machine machine;
  std::string transport;  // "mpi:openmpi 4.1.4", "synthetic", ...
  Shape shape;
  std::optional<P2PTable> intra, inter;  // inside a node, between nodes (at least one)
  CostTable copy;
  std::map<std::string, CostTable> reduce;  // "float:sum", "double:max", ... (at least one)
  // Link rates for the flow-level backend (bytes/s) and latencies (s); filled from the
  // tables when not given: the asymptotic throughput of g(m).
  double intra_bandwidth = 0, inter_bandwidth = 0;
  std::string created, command;  // when and by what it was made

  // The table for a message between two ranks on the same node or not; when the
  // profile has only one of them, that one.
  const P2PTable& link(bool same_node) const;
  // The cost of combining m bytes of `key` ("float:sum"); a key the profile lacks
  // takes the profile's first reduce table (the estimate for an unmeasured type).
  double reduce_cost(const std::string& key, std::uint64_t bytes) const;
  // Throughput (bytes/s) of the table's largest messages; 0 when it cannot be told.
  static double asymptotic_bandwidth(const P2PTable& t);
};

// Reads and checks a profile. Throws std::runtime_error naming the file and what is wrong
// (missing, not JSON or truncated, another format or version, a field missing or out of
// range, sizes not increasing).
Profile load_profile(const std::string& path);
Profile parse_profile(const std::string& text, const std::string& name);
std::string to_json(const Profile& p);  // indented
void save_profile(const Profile& p, const std::string& path);

// Differences that make a profile a poor description of where it is used: another
// transport or machine shape. Empty when none; one line each otherwise.
std::vector<std::string> mismatches(const Profile& p, const std::string& transport, int ranks_per_node,
                                    const std::string& host_cpu);

// This machine's CPU as /proc/cpuinfo names it ("" when it cannot be told).
std::string host_cpu();

// A profile from a machine's data sheet: per-message overhead, latency and bandwidth
// inside and between nodes (Hockney-like, g(m) = gap0 + m / bandwidth), copy and reduce
// rates. The built-in `superpod` is a DGX H100 SuperPOD: 40 nodes of 8 ranks, NVLink
// 900 GB/s inside a node, one 400 Gb/s InfiniBand port per rank, leaf-spine.
struct DataSheet {
  std::string name, network;
  int nodes = 1, ranks_per_node = 1, nics_per_node = 1, nodes_per_leaf = 0, spines = 0;
  double intra_latency = 0, intra_bandwidth = 0, intra_overhead = 0, intra_gap = 0;
  double inter_latency = 0, inter_bandwidth = 0, inter_overhead = 0, inter_gap = 0;
  double spine_bandwidth = 0;
  double copy_bandwidth = 0, reduce_bandwidth = 0;  // bytes/s
};
DataSheet superpod_sheet();
Profile synthetic_profile(const DataSheet& d);

}  // namespace tandem::model
