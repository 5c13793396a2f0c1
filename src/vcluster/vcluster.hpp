// The virtual cluster: hosts as Linux network namespaces on one bridge, each link
// shaped with tbf in both directions, and the launch agent that places MPI ranks
// on those hosts. Used by `tandem vcluster` and by other commands, tests and
// benchmarks that want ranks on separate (shaped) hosts. See docs/vcluster.md.
//
// There is at most one vcluster per machine and its names are fixed, so every
// test suite and benchmark finds the same one:
//   host i:  network namespace tandem-h<i>, device vceth0, address 198.18.0.<i+1>/24
//   bridge:  tandem-br0 in the root namespace, 198.18.0.254/24, ports tandem-h<i>-br
//   files:   /run/tandem-vcluster/{state.json, agent.sh, hostfile, hostfile.mpich}
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tandem::vcluster {

inline constexpr const char* kVclusterPrefix = "tandem";  // namespaces tandem-h<i>
inline constexpr const char* kVclusterBridge = "tandem-br0";
inline constexpr const char* kVclusterDevice = "vceth0";  // each host's link, inside its namespace
inline constexpr const char* kVclusterSubnet = "198.18.0.0/24";
inline constexpr const char* kVclusterBridgeAddress = "198.18.0.254";
inline constexpr const char* kVclusterDir = "/run/tandem-vcluster";
inline constexpr const char* kVclusterLock = "/run/lock/tandem-vcluster.lock";
inline constexpr int kVclusterMaxHosts = 253;
// Optional library in tandem's lib directory (process::library_dir()) that `vcluster
// mpirun --mpi mpich` preloads into the ranks: a bounded flush for MPICH 4.0's UCX
// disconnect in MPI_Finalize, which can hang over TCP (docs/vcluster.md). Not built
// by tandem yet.
inline constexpr const char* kVclusterMpichFinalizeFix = "libtandem_mpich_finalize_fix.so";
// Exit status of `tandem vcluster up` when this machine or user cannot host a
// vcluster (no CAP_NET_ADMIN/CAP_SYS_ADMIN, no `ip` or `tc`): the CTest skip code.
inline constexpr int kVclusterUnsupported = 77;

// Errors of this API; what() starts with "vcluster: ". `exit_code` is what the
// CLI exits with (kVclusterUnsupported when the machine cannot host a vcluster).
class VclusterError : public std::runtime_error {
 public:
  explicit VclusterError(const std::string& msg, int exit_code = 1)
      : std::runtime_error("vcluster: " + msg), exit_code_(exit_code) {}
  int exit_code() const noexcept { return exit_code_; }

 private:
  int exit_code_;
};

struct VclusterHost {
  int index = 0;            // 0-based
  std::string ns;           // network namespace, tandem-h<index>
  std::string address;      // 198.18.0.<index+1>
  std::string bridge_port;  // the veth end on the bridge, tandem-h<index>-br
};

struct VclusterInfo {
  std::vector<VclusterHost> hosts;
  std::string rate;               // canonical, e.g. "1gbit"
  std::uint64_t rate_bps = 0;     // bits per second, each direction of each link
  std::uint64_t burst_bytes = 0;  // tbf burst
  unsigned latency_ms = 0;        // tbf latency (bounds the queue)
  std::string created;            // UTC, ISO 8601
  std::string bridge = kVclusterBridge;
  std::string bridge_address = kVclusterBridgeAddress;
  std::string subnet = kVclusterSubnet;
  std::string device = kVclusterDevice;
  std::string dir = kVclusterDir;
  std::string agent;             // launch agent script
  std::string hostfile_openmpi;  // "<address> slots=1" per host
  std::string hostfile_mpich;    // "<address>:1" per host
};

struct VclusterOptions {
  int hosts = 2;
  std::string rate = "1gbit";
  std::string burst;   // empty: default_burst(rate)
  bool force = false;  // recreate when one exists (or a partial one is left over)
};

// Traffic counters of one host's link, from its two tbf qdiscs.
struct VclusterLinkStats {
  bool ok = false;             // both qdiscs found and shaped
  std::uint64_t sent = 0;      // bytes the host sent (egress of its namespace side)
  std::uint64_t received = 0;  // bytes sent to the host (egress of the bridge side)
  std::uint64_t drops = 0;     // packets dropped by either qdisc
};

// "1gbit", "100mbit", "2.5gbit", "10gbit", "500kbit", "1000000bit" -> bits/s, as
// units::parse_rate reads rates (common/units.hpp: `bps` works as `bit`, the value must
// be a whole number of bits per second). Accepts 1mbit..400gbit; throws VclusterError
// naming the bad text otherwise.
std::uint64_t vcluster_parse_rate(const std::string& text);
// Canonical text of a rate: 1000000000 -> "1gbit".
std::string vcluster_format_rate(std::uint64_t bps);
// "131072", "128k", "128kb", "1m", "64KiB" -> bytes (k = 1024), as units::parse_bytes
// reads sizes; 2000 B..64 MiB.
std::uint64_t vcluster_parse_burst(const std::string& text);
// tbf burst used when none is given: about 1 ms of traffic, at least 128 KiB
// when that is under 10 ms of traffic (so 1 Gbit/s is really reached with TSO/GRO
// super-packets), at least 3000 B.
std::uint64_t vcluster_default_burst(std::uint64_t rate_bps);

// Empty when this process can create and remove a vcluster; otherwise why not
// (missing capability, missing `ip`/`tc`, no network namespace support).
std::string vcluster_unsupported_reason();

// True when a complete vcluster is up: its state file is readable and its bridge
// and every namespace exist.
bool vcluster_exists();
// The vcluster that is up; throws VclusterError when there is none or it is broken.
VclusterInfo vcluster_state();
// What is wrong with the current vcluster (empty when it is complete, or when
// nothing at all exists). Checks files, bridge, namespaces, devices and qdiscs.
std::vector<std::string> vcluster_problems();
// Per-host link counters (same order as info.hosts).
std::vector<VclusterLinkStats> vcluster_link_stats(const VclusterInfo& info);

// Creates the vcluster. When one exists with the same settings it is kept and
// `*already` (when given) is set; with other settings, or when a partial one is
// left over, throws unless opts.force (then it is removed and made anew). On any
// failure everything made so far is removed again.
VclusterInfo vcluster_up(const VclusterOptions& opts, bool* already = nullptr);

// Removes every namespace, bridge, veth and file a vcluster may have left
// (complete or partial), ending processes still running in its namespaces.
// Returns one line per thing removed (empty: nothing existed). Throws only when
// something exists and cannot be removed (e.g. no privileges).
std::vector<std::string> vcluster_down();

// The launcher command that runs `user_args` (mpirun arguments: -np, program...)
// on the vcluster's hosts with `mpi` ("openmpi" or "mpich"): the launcher, the
// launch agent, a hostfile (unless user_args name hosts), TCP over the hosts'
// device, and LD_PRELOAD plus every TANDEM_* variable of this environment
// forwarded to the ranks. Throws VclusterError when no vcluster is up, and (when
// `check_privileges`) with exit code kVclusterUnsupported when this process
// cannot enter the hosts' namespaces (the agent runs `ip netns exec`: root).
std::vector<std::string> vcluster_mpirun_argv(const std::string& mpi, const std::vector<std::string>& user_args,
                                              bool check_privileges = true);

// Runs argv (PATH lookup) and returns its exit status (128+signal when killed).
// The child gets SIGTERM if this process dies; SIGINT/SIGQUIT are left to the
// child while it runs, SIGTERM/SIGHUP are passed on to it. With timeout_s > 0 the child gets SIGTERM after that many
// seconds (SIGKILL 10 s later) and the result is 124.
int vcluster_run(const std::vector<std::string>& argv, unsigned timeout_s = 0);

}  // namespace tandem::vcluster
