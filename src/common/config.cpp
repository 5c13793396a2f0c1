#include "common/config.hpp"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>

#include "common/units.hpp"

extern char** environ;

namespace tandem {
namespace {

using units::iequals;
using units::trim;

// ---- one parser and one printer per kind of field ---------------------------------------

template <bool Config::*F>
bool apply_bool(std::string_view v, Config& c, std::string*) noexcept {
  return parse_bool(v, c.*F);
}
template <bool Config::*F>
std::string show_bool(const Config& c) {
  return c.*F ? "1" : "0";
}

template <std::uint64_t Config::*F>
bool apply_bytes(std::string_view v, Config& c, std::string* why) noexcept {
  return units::parse_bytes(v, c.*F, UINT64_MAX / 2, why);
}
template <std::uint64_t Config::*F>
std::string show_bytes(const Config& c) {
  return std::to_string(c.*F);
}

template <unsigned Config::*F, unsigned Lo, unsigned Hi>
bool apply_uint(std::string_view v, Config& c, std::string*) noexcept {
  std::uint64_t u = 0;
  if (!units::parse_count(v, u, Hi) || u < Lo) return false;
  c.*F = static_cast<unsigned>(u);
  return true;
}
template <unsigned Config::*F>
std::string show_uint(const Config& c) {
  return std::to_string(c.*F);
}

// A word out of a fixed set; `Words` is "a|b|c".
template <std::string Config::*F, const char* Words>
bool apply_word(std::string_view v, Config& c, std::string*) noexcept {
  v = trim(v);
  std::string_view words(Words);
  while (!words.empty()) {
    std::size_t bar = words.find('|');
    std::string_view w = words.substr(0, bar);
    if (v == w) {
      try {
        c.*F = std::string(v);
      } catch (...) {
        return false;
      }
      return true;
    }
    if (bar == std::string_view::npos) break;
    words.remove_prefix(bar + 1);
  }
  return false;
}
template <std::string Config::*F>
std::string show_string(const Config& c) {
  return c.*F;
}

// A free text (checked by a higher layer).
template <std::string Config::*F>
bool apply_text(std::string_view v, Config& c, std::string*) noexcept {
  try {
    c.*F = std::string(trim(v));
  } catch (...) {
    return false;
  }
  return true;
}

template <int I>
bool apply_coll(std::string_view v, Config& c, std::string*) noexcept {
  try {
    c.coll_forced[I] = std::string(trim(v));
  } catch (...) {
    return false;
  }
  return true;
}
template <int I>
std::string show_coll(const Config& c) {
  return c.coll_forced[I];
}

// A comma-separated list, each item parsed by `item` into T: false (the list unchanged)
// when one fails or the list is empty.
template <class T, class Item>
bool apply_list(std::string_view v, std::vector<T>& to, Item item) noexcept {
  try {
    std::vector<T> out;
    v = trim(v);
    while (!v.empty()) {
      const std::size_t comma = v.find(',');
      T x{};
      if (!item(trim(v.substr(0, comma)), x)) return false;
      out.push_back(x);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
    if (out.empty()) return false;
    to = std::move(out);
    return true;
  } catch (...) {
    return false;
  }
}
template <class T, class Show>
std::string show_list(const std::vector<T>& v, Show show) {
  std::string r;
  for (const auto& x : v) r += (r.empty() ? "" : ",") + show(x);
  return r;
}

// Sizes (K/M/G suffixes).
template <std::vector<std::uint64_t> Config::*F>
bool apply_bytes_list(std::string_view v, Config& c, std::string* why) noexcept {
  return apply_list(v, c.*F, [why](std::string_view t, std::uint64_t& b) { return units::parse_bytes(t, b, UINT64_MAX / 2, why); });
}
template <std::vector<std::uint64_t> Config::*F>
std::string show_bytes_list(const Config& c) {
  return show_list(c.*F, [](std::uint64_t b) { return units::format_bytes(b); });
}
// Counts in Lo..Hi.
template <std::vector<unsigned> Config::*F, unsigned Lo, unsigned Hi>
bool apply_uint_list(std::string_view v, Config& c, std::string*) noexcept {
  return apply_list(v, c.*F, [](std::string_view t, unsigned& u) {
    std::uint64_t x = 0;
    if (!units::parse_count(t, x, Hi) || x < Lo) return false;
    u = static_cast<unsigned>(x);
    return true;
  });
}
template <std::vector<unsigned> Config::*F>
std::string show_uint_list(const Config& c) {
  return show_list(c.*F, [](unsigned u) { return std::to_string(u); });
}

bool apply_nodes(std::string_view v, Config& c, std::string*) noexcept {
  v = trim(v);
  if (iequals(v, "host")) return c.coll_nodes = 0, true;
  std::uint64_t u = 0;
  if (!units::parse_count(v, u, 1u << 20) || u < 1) return false;
  c.coll_nodes = static_cast<unsigned>(u);
  return true;
}
std::string show_nodes(const Config& c) { return c.coll_nodes ? std::to_string(c.coll_nodes) : "host"; }

bool apply_verbose(std::string_view v, Config& c, std::string*) noexcept {
  std::uint64_t u = 0;
  if (!units::parse_count(v, u, 3)) return false;
  c.verbose = static_cast<int>(u);
  return true;
}
std::string show_verbose(const Config& c) { return std::to_string(c.verbose); }

constexpr char kLocalWords[] = "auto|on|off";
constexpr char kProgressWords[] = "auto|thread|poll|block";
constexpr char kMpiWords[] = "auto|openmpi|mpich";

#define TANDEM_COLL_SETTING(I, NAME, COLL)                                                                          \
  {"TANDEM_COLL_" NAME, "", "mpi, or algorithm[:segsize[:fanout]] (`tandem info --algorithms`)",                   \
   "Runs every MPI_" COLL " under `tandem run` (and every tandem::i" COLL " without an algorithm of its own) with " \
   "this tandem algorithm (segment size in bytes, K/M suffixes; fan-out where the algorithm has one), or under "    \
   "`tandem run` with the MPI library's own (mpi); overrides TANDEM_COLL_RULES.",                                   \
   apply_coll<I>, show_coll<I>}

const SettingInfo kSettings[] = {
    {"TANDEM_ENABLE", "1", "0|1", "Master switch: 0 passes every intercepted call to the MPI library unchanged.",
     apply_bool<&Config::enable>, show_bool<&Config::enable>},
    {"TANDEM_THRESHOLD", "4096", "bytes, e.g. 4096, 64K, 1M",
     "Messages smaller than this are passed through; larger ones are deferred with their buffer protected.",
     apply_bytes<&Config::threshold>, show_bytes<&Config::threshold>},
    {"TANDEM_STATS", "0", "0|1", "Print one statistics line per rank at MPI_Finalize.", apply_bool<&Config::stats>,
     show_bool<&Config::stats>},
    {"TANDEM_ADAPTIVE", "1", "0|1",
     "Stop deferring operations on a buffer that the program keeps touching right after the call (the protection "
     "would cost more than the overlap gains); retried every TANDEM_ADAPTIVE_RETRY-th call. 0 defers every eligible "
     "call.",
     apply_bool<&Config::adaptive>, show_bool<&Config::adaptive>},
    {"TANDEM_ADAPTIVE_RETRY", "16", "1..65536",
     "With TANDEM_ADAPTIVE: a buffer whose deferrals did not pay is deferred again every this many calls, to notice "
     "a change in the program.",
     apply_uint<&Config::adaptive_retry, 1, 65536>, show_uint<&Config::adaptive_retry>},
    {"TANDEM_ADAPTIVE_PATIENCE", "2", "1..64",
     "With TANDEM_ADAPTIVE: how many more of a buffer's recent deferrals must have failed to pay than paid before it "
     "stops being deferred.",
     apply_uint<&Config::adaptive_patience, 1, 64>, show_uint<&Config::adaptive_patience>},
    {"TANDEM_LOCAL", "auto", "auto|on|off",
     "Defer calls when every rank of the job runs on this node. Overlap needs a core to run the communication on: "
     "auto defers only when the node has at least twice as many online cores as ranks on it.",
     apply_word<&Config::local, kLocalWords>, show_string<&Config::local>},
    {"TANDEM_EAGER_LIMIT", "1048576", "bytes, e.g. 1M; 0 keeps the MPI's defaults",
     "Under `tandem run` with Open MPI: the TCP transport's eager limit (btl_tcp_eager_limit, btl_tcp_rndv_eager_limit, "
     "btl_tcp_max_send_size, unless set already), so that a deferred send completes without the receiver's help; a "
     "rendezvous needs both sides to make progress while they compute (measured: 256 KiB overlap 7.4 -> 5.4 ms).",
     apply_bytes<&Config::eager_limit>, show_bytes<&Config::eager_limit>},
    {"TANDEM_STATUS_PROBE", "1", "0|1",
     "A receive whose status is requested waits for the message envelope (MPI_Mprobe) and defers only the data; 0 "
     "passes such receives through.",
     apply_bool<&Config::wait_status>, show_bool<&Config::wait_status>},
    {"TANDEM_COPY_BELOW", "65536", "bytes",
     "Deferred sends up to this size are copied into tandem's memory instead of protected (a copy costs less than "
     "changing the protection of the pages; bench_protect_cost measures both).",
     apply_bytes<&Config::copy_below>, show_bytes<&Config::copy_below>},
    {"TANDEM_COPY_MAX", "1048576", "bytes",
     "A deferred send whose pages cannot be protected alone (they hold other data) is copied up to this size, and "
     "passed through above it.",
     apply_bytes<&Config::copy_max>, show_bytes<&Config::copy_max>},
    {"TANDEM_DEFER_COST_US", "30", "0..1000000 (microseconds)",
     "What deferring one operation costs besides its size: protecting and releasing its pages, a fault and its "
     "wake-up. With TANDEM_DEFER_COST_PS_PER_BYTE it decides, for TANDEM_ADAPTIVE, whether a deferral paid "
     "(bench_protect_cost measures both on a machine).",
     apply_uint<&Config::defer_cost_us, 0, 1000000>, show_uint<&Config::defer_cost_us>},
    {"TANDEM_DEFER_COST_PS_PER_BYTE", "61", "0..1000000 (picoseconds per byte)",
     "What deferring costs per byte of the buffer (changing the protection of its pages).",
     apply_uint<&Config::defer_cost_ps, 0, 1000000>, show_uint<&Config::defer_cost_ps>},
    {"TANDEM_BOUNCE_POOL", "536870912", "bytes",
     "Most memory kept for reuse as bounce pages of deferred receives (more is returned to the system).",
     apply_bytes<&Config::bounce_pool>, show_bytes<&Config::bounce_pool>},
    {"TANDEM_MAX_OPS", "4096", "16..65536", "Most deferred operations outstanding at once per process; more wait.",
     apply_uint<&Config::max_ops, 16, 65536>, show_uint<&Config::max_ops>},
    {"TANDEM_WAIT_SLEEP_US", "30", "1..1000000 (microseconds)",
     "A thread waiting for a deferred operation drives progress itself, then sleeps at most this long on the "
     "operation's completion before it polls again.",
     apply_uint<&Config::wait_sleep_us, 1, 1000000>, show_uint<&Config::wait_sleep_us>},
    {"TANDEM_FAULT_PATIENCE_US", "20000", "0..10000000 (microseconds)",
     "How long an access to data sharing a page with a pending operation waits before it is let through one "
     "instruction at a time.",
     apply_uint<&Config::fault_patience_us, 0, 10000000>, show_uint<&Config::fault_patience_us>},
    {"TANDEM_PROGRESS", "auto", "auto|thread|poll|block",
     "How operations progress: thread (a background thread polls while work is outstanding), poll (no thread; a "
     "waiting thread polls), block (no thread; a waiting thread sleeps on the transport's event descriptor where it "
     "has one). auto: thread where the MPI library grants MPI_THREAD_MULTIPLE and tandem defers calls, else poll. "
     "Under tandem run, poll and block defer nothing and leave the program the MPI thread level it asked for; "
     "thread asks for MPI_THREAD_MULTIPLE.",
     apply_word<&Config::progress, kProgressWords>, show_string<&Config::progress>},
    {"TANDEM_PROGRESS_SPIN_US", "20", "0..100000 (microseconds)",
     "How long the progress thread keeps polling without sleeping after the last completion.",
     apply_uint<&Config::spin_us, 0, 100000>, show_uint<&Config::spin_us>},
    {"TANDEM_PROGRESS_SLEEP_US", "200", "1..100000 (microseconds)",
     "Longest sleep of the progress thread between polls while operations are outstanding (and of a blocked "
     "waiter, in block mode).",
     apply_uint<&Config::sleep_max_us, 1, 100000>, show_uint<&Config::sleep_max_us>},
    {"TANDEM_PROGRESS_EAGER_US", "20", "1..100000 (microseconds)",
     "The progress thread's poll period while a thread waits for a deferred operation.",
     apply_uint<&Config::eager_us, 1, 100000>, show_uint<&Config::eager_us>},
    {"TANDEM_PROGRESS_SLICE_US", "100", "0..100000 (microseconds)",
     "Scheduler slice the progress thread asks for (sched_setattr; a short slice lets a waking thread run first on "
     "Linux 6.12+); 0 keeps the default.",
     apply_uint<&Config::slice_us, 0, 100000>, show_uint<&Config::slice_us>},
    {"TANDEM_PROGRESS_SLACK_NS", "1000", "1..1000000 (nanoseconds)",
     "Timer slack of the progress thread (the kernel's default, 50 us, would lengthen every short sleep).",
     apply_uint<&Config::timer_slack_ns, 1, 1000000>, show_uint<&Config::timer_slack_ns>},
    {"TANDEM_WAIT_SPIN_US", "10", "0..100000 (microseconds)",
     "A thread waiting for a collective polls back to back this long after each completion, then gives the core "
     "away between polls.",
     apply_uint<&Config::wait_spin_us, 0, 100000>, show_uint<&Config::wait_spin_us>},
    {"TANDEM_WAIT_LONG_POLL_US", "10", "0..100000 (microseconds)",
     "A poll that took at least this long already gave the core away inside the transport: the waiting thread "
     "does not yield after it.",
     apply_uint<&Config::wait_long_poll_us, 0, 100000>, show_uint<&Config::wait_long_poll_us>},
    {"TANDEM_VERBOSE", "0", "0..3",
     "Diagnostics on standard error: 1 decisions (each collective algorithm chosen, once per communicator), 2 each "
     "operation.",
     apply_verbose, show_verbose},
    TANDEM_COLL_SETTING(0, "BCAST", "Bcast"),
    TANDEM_COLL_SETTING(1, "REDUCE", "Reduce"),
    TANDEM_COLL_SETTING(2, "ALLREDUCE", "Allreduce"),
    TANDEM_COLL_SETTING(3, "ALLGATHER", "Allgather"),
    TANDEM_COLL_SETTING(4, "ALLTOALL", "Alltoall"),
    TANDEM_COLL_SETTING(5, "GATHER", "Gather"),
    TANDEM_COLL_SETTING(6, "SCATTER", "Scatter"),
    TANDEM_COLL_SETTING(7, "REDUCE_SCATTER_BLOCK", "Reduce_scatter_block"),
    TANDEM_COLL_SETTING(8, "BARRIER", "Barrier"),
    {"TANDEM_COLL_RULES", "", "path of a rules file (docs/collectives.md)",
     "Chooses tandem's algorithm for each collective by collective, rank count and message size; under `tandem "
     "run`, calls no rule matches (and all calls, when unset) go to the MPI library's own algorithms.",
     apply_text<&Config::coll_rules>, show_string<&Config::coll_rules>},
    {"TANDEM_COLL_OVERLAP", "0", "0|1",
     "Blocking collectives (but MPI_Barrier) return at once with their buffers protected and complete in the "
     "background, like deferred point-to-point calls.",
     apply_bool<&Config::coll_overlap>, show_bool<&Config::coll_overlap>},
    {"TANDEM_COLL_CACHE", "16", "0..4096",
     "Schedules of recent collective calls kept per communicator for reuse (a program repeats the same few calls).",
     apply_uint<&Config::coll_cache, 0, 4096>, show_uint<&Config::coll_cache>},
    {"TANDEM_COLL_SMALL", "16384", "bytes",
     "tandem's built-in choice (when neither TANDEM_COLL_<COLL> nor a rule decides): latency algorithms below this "
     "many bytes per rank, bandwidth algorithms from it.",
     apply_bytes<&Config::coll_small>, show_bytes<&Config::coll_small>},
    {"TANDEM_COLL_RECORD", "", "path of a file to write",
     "Records which collectives the program calls, per communicator size, bytes per rank and datatype, and how "
     "often (rank 0's calls, written at MPI_Finalize as JSON) for `tandem tune --from`; set by `tandem run --record`.",
     apply_text<&Config::coll_record>, show_string<&Config::coll_record>},
    {"TANDEM_COLL_MODEL", "", "path of a machine profile (`tandem profile`, docs/tuning.md)",
     "Model-driven selection: where neither TANDEM_COLL_<COLL> nor a rule decides, the algorithm, segment size and "
     "fan-out the performance model predicts fastest on this profile, per collective, communicator size and size "
     "class. Under `tandem run` the model's choice then replaces the MPI library's own algorithm, which is no "
     "candidate of the model: `tandem tune` measures both and writes rules that keep the MPI's where it is faster.",
     apply_text<&Config::coll_model>, show_string<&Config::coll_model>},
    {"TANDEM_COLL_MODEL_SEGSIZES", "0,4K,8K,16K,32K,64K,128K,256K,1M", "comma-separated bytes (0: unsegmented)",
     "Segment sizes the performance model tries for algorithms that take one (`tandem sim`, TANDEM_COLL_MODEL, "
     "`tandem tune`).",
     apply_bytes_list<&Config::model_segsizes>, show_bytes_list<&Config::model_segsizes>},
    {"TANDEM_COLL_MODEL_FANOUTS", "2,4,8", "comma-separated counts 2..1024",
     "Fan-outs the performance model tries for algorithms that have one, beside their default.",
     apply_uint_list<&Config::model_fanouts, 2, 1024>, show_uint_list<&Config::model_fanouts>},
    {"TANDEM_COLL_NODES", "host", "host|N (ranks per node, 1..1048576)",
     "How the hierarchical algorithms (hier/...) group a communicator's ranks into nodes: host, by host name and "
     "network namespace (exchanged once per communicator); N, every N consecutive ranks of the communicator as "
     "one node (to try a hierarchy on one machine).",
     apply_nodes, show_nodes},
    {"TANDEM_MPI", "auto", "auto|openmpi|mpich",
     "Which MPI's preload library `tandem run` uses; auto reads the program's ELF dependencies.",
     apply_word<&Config::mpi, kMpiWords>, show_string<&Config::mpi>},
};

}  // namespace

Config::Config() noexcept {
  for (const auto& s : kSettings) s.apply(s.default_value, *this, nullptr);
}

std::span<const SettingInfo> settings() noexcept { return kSettings; }

bool parse_bool(std::string_view text, bool& out) noexcept {
  text = trim(text);
  for (auto t : {"1", "true", "yes", "on"})
    if (iequals(text, t)) return out = true, true;
  for (auto f : {"0", "false", "no", "off"})
    if (iequals(text, f)) return out = false, true;
  return false;
}

std::string setting_error(std::string_view name, std::string_view value, std::string_view what) {
  std::string e = "tandem: invalid ";
  e += name;
  e += "='";
  e += value;
  e += "': ";
  e += what;
  e += "\n";
  return e;
}

std::string load_config(Config& out, char** envp) noexcept {
  try {
    std::string errors;
    if (!envp) envp = environ;
    for (char** e = envp; e && *e; ++e) {
      std::string_view entry(*e);
      if (entry.substr(0, 7) != "TANDEM_") continue;
      auto eq = entry.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view name = entry.substr(0, eq), value = entry.substr(eq + 1);
      const SettingInfo* info = nullptr;
      for (const auto& s : kSettings)
        if (s.name == name) info = &s;
      if (!info) {
        errors += "tandem: unknown setting ";
        errors += name;
        errors += " (run `tandem info` for the list)\n";
        continue;
      }
      std::string detail;
      if (!info->apply(value, out, &detail))
        errors += setting_error(name, value, detail.empty() ? "expected " + std::string(info->accepted) : detail);
    }
    return errors;
  } catch (...) {
    return "tandem: out of memory reading the settings\n";
  }
}

std::string config_value(const Config& cfg, std::string_view name) {
  for (const auto& s : kSettings)
    if (s.name == name) return s.show(cfg);
  return {};
}

bool config_from_environment(std::string_view name) noexcept {
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    if (entry.size() > name.size() && entry.substr(0, name.size()) == name && entry[name.size()] == '=') return true;
  }
  return false;
}

}  // namespace tandem
