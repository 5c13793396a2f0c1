#include "common/config.hpp"

#include "coll/algorithms.hpp"
#include "coll/rules.hpp"

#include <unistd.h>

#include <cctype>
#include <cstring>
#include <limits>

extern char** environ;

namespace tandem {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

void add_error(std::string& errors, std::string_view name, std::string_view value, std::string_view accepted,
               const std::string& detail) {
  errors += "tandem: invalid ";
  errors += name;
  errors += "='";
  errors += value;
  errors += "': ";
  if (detail.empty()) {
    errors += "expected ";
    errors += accepted;
  } else {
    errors += detail;
  }
  errors += "\n";
}

// TANDEM_COLL_<COLL>: `mpi`, or an algorithm of that collective.
template <int I>
bool apply_coll(std::string_view v, Config& c, std::string* detail) noexcept {
  v = trim(v);
  auto coll = static_cast<coll::Coll>(I);
  if (v.empty() || v == "mpi") {
    c.coll_forced[I] = std::string(v);
    return true;
  }
  try {
    std::string why;
    if (!coll::parse_choice(coll, v, &why)) {
      if (detail) *detail = why;
      return false;
    }
    c.coll_forced[I] = std::string(v);
    return true;
  } catch (...) {
    return false;
  }
}
#define TANDEM_COLL_SETTING(I, NAME, COLL)                                                                          \
  {"TANDEM_COLL_" NAME, "", "mpi, or algorithm[:segsize[:fanout]] (`tandem info --algorithms`)",                   \
   "Runs every MPI_" COLL " under `tandem run` with this tandem algorithm (segment size in bytes, K/M suffixes; "  \
   "fan-out where the algorithm has one), or with the MPI library's own (mpi); overrides TANDEM_COLL_RULES.",      \
   apply_coll<I>, [](const Config& c) { return c.coll_forced[I]; }}


bool apply_uint(std::string_view v, std::uint64_t lo, std::uint64_t hi, unsigned& field) noexcept {
  std::uint64_t u = 0;
  if (!parse_uint(v, hi, u) || u < lo) return false;
  field = static_cast<unsigned>(u);
  return true;
}

const SettingInfo kSettings[] = {
    {"TANDEM_ENABLE", "1", "0|1", "Master switch: 0 passes every intercepted call to the MPI library unchanged.",
     [](std::string_view v, Config& c, std::string*) noexcept { return parse_bool(v, c.enable); },
     [](const Config& c) { return std::string(c.enable ? "1" : "0"); }},
    {"TANDEM_THRESHOLD", "4096", "bytes, e.g. 4096, 64K, 1M",
     "Messages smaller than this are passed through; larger ones are deferred with their buffer protected.",
     [](std::string_view v, Config& c, std::string*) noexcept { return parse_size(v, c.threshold); },
     [](const Config& c) { return std::to_string(c.threshold); }},
    {"TANDEM_STATS", "0", "0|1", "Print one statistics line per rank at MPI_Finalize.",
     [](std::string_view v, Config& c, std::string*) noexcept { return parse_bool(v, c.stats); },
     [](const Config& c) { return std::string(c.stats ? "1" : "0"); }},
    {"TANDEM_ADAPTIVE", "1", "0|1",
     "Stop deferring operations on a buffer that the program keeps touching right after the call (the "
     "protection would cost more than the overlap gains); retried every 16th call. 0 defers every eligible call.",
     [](std::string_view v, Config& c, std::string*) noexcept { return parse_bool(v, c.adaptive); },
     [](const Config& c) { return std::string(c.adaptive ? "1" : "0"); }},
    {"TANDEM_LOCAL", "auto", "auto|on|off",
     "Defer calls when every rank of the job runs on this node. Overlap needs a core to run the communication "
     "on: auto defers only when the node has at least twice as many online cores as ranks on it.",
     [](std::string_view v, Config& c, std::string*) noexcept {
       v = trim(v);
       if (v != "auto" && v != "on" && v != "off") return false;
       c.local = std::string(v);
       return true;
     },
     [](const Config& c) { return c.local; }},
    {"TANDEM_EAGER_LIMIT", "1048576", "bytes, e.g. 1M; 0 keeps the MPI's defaults",
     "Under `tandem run` with Open MPI: the TCP transport's eager limit (btl_tcp_eager_limit, btl_tcp_rndv_eager_limit, "
     "btl_tcp_max_send_size, unless set already), so that a deferred send completes without the receiver's help; a "
     "rendezvous needs both sides to make progress while they compute (measured: 256 KiB overlap 7.4 -> 5.4 ms).",
     [](std::string_view v, Config& c, std::string*) noexcept { return parse_size(v, c.eager_limit); },
     [](const Config& c) { return std::to_string(c.eager_limit); }},
    {"TANDEM_STATUS_PROBE", "1", "0|1",
     "A receive whose status is requested waits for the message envelope (MPI_Mprobe) and defers only the data; "
     "0 passes such receives through.",
     [](std::string_view v, Config& c, std::string*) noexcept { return parse_bool(v, c.wait_status); },
     [](const Config& c) { return std::string(c.wait_status ? "1" : "0"); }},
    {"TANDEM_PROGRESS_SPIN_US", "20", "0..100000 (microseconds)",
     "How long the progress thread keeps polling without sleeping after the last completion.",
     [](std::string_view v, Config& c, std::string*) noexcept { return apply_uint(v, 0, 100000, c.spin_us); },
     [](const Config& c) { return std::to_string(c.spin_us); }},
    {"TANDEM_PROGRESS_SLEEP_US", "200", "1..100000 (microseconds)",
     "Longest sleep of the progress thread between polls while operations are outstanding.",
     [](std::string_view v, Config& c, std::string*) noexcept { return apply_uint(v, 1, 100000, c.sleep_max_us); },
     [](const Config& c) { return std::to_string(c.sleep_max_us); }},
    {"TANDEM_MAX_OPS", "4096", "16..65536", "Most deferred operations outstanding at once per process; more wait.",
     [](std::string_view v, Config& c, std::string*) noexcept { return apply_uint(v, 16, 65536, c.max_ops); },
     [](const Config& c) { return std::to_string(c.max_ops); }},
    {"TANDEM_VERBOSE", "0", "0..3", "Diagnostics on standard error: 1 decisions, 2 each operation.",
     [](std::string_view v, Config& c, std::string*) noexcept {
       unsigned u = 0;
       return apply_uint(v, 0, 3, u) && (c.verbose = static_cast<int>(u), true);
     },
     [](const Config& c) { return std::to_string(c.verbose); }},
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
     "Chooses tandem's algorithm for each blocking collective by collective, rank count and message size; calls no "
     "rule matches (and all calls, when unset) go to the MPI library's own algorithms.",
     [](std::string_view v, Config& c, std::string* detail) noexcept {
       v = trim(v);
       if (v.empty()) {
         c.coll_rules.clear();
         return true;
       }
       try {
         std::string why;
         if (!coll::load_rules(std::string(v), &why)) {
           if (detail) *detail = why;
           return false;
         }
         c.coll_rules = std::string(v);
         return true;
       } catch (...) {
         return false;
       }
     },
     [](const Config& c) { return c.coll_rules; }},
    {"TANDEM_COLL_OVERLAP", "0", "0|1",
     "Blocking collectives (but MPI_Barrier) return at once with their buffers protected and complete in the "
     "background, like deferred point-to-point calls.",
     [](std::string_view v, Config& c, std::string*) noexcept { return parse_bool(v, c.coll_overlap); },
     [](const Config& c) { return std::string(c.coll_overlap ? "1" : "0"); }},
    {"TANDEM_MPI", "auto", "auto|openmpi|mpich",
     "Which MPI's preload library `tandem run` uses; auto reads the program's ELF dependencies.",
     [](std::string_view v, Config& c, std::string*) noexcept {
       v = trim(v);
       if (v != "auto" && v != "openmpi" && v != "mpich") return false;
       c.mpi = std::string(v);
       return true;
     },
     [](const Config& c) { return c.mpi; }},
};

}  // namespace

std::span<const SettingInfo> settings() noexcept { return kSettings; }

bool parse_bool(std::string_view text, bool& out) noexcept {
  text = trim(text);
  for (auto t : {"1", "true", "yes", "on"})
    if (iequals(text, t)) return out = true, true;
  for (auto f : {"0", "false", "no", "off"})
    if (iequals(text, f)) return out = false, true;
  return false;
}

bool parse_uint(std::string_view text, std::uint64_t max, std::uint64_t& out) noexcept {
  text = trim(text);
  if (text.empty()) return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    if (v > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}

bool parse_size(std::string_view text, std::size_t& out) noexcept {
  text = trim(text);
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return false;
  std::uint64_t v = 0;
  if (!parse_uint(text.substr(0, digits), std::numeric_limits<std::uint64_t>::max() / 2, v)) return false;
  std::string_view unit = trim(text.substr(digits));
  std::uint64_t mult = 1;
  if (unit.empty() || iequals(unit, "b")) {
    mult = 1;
  } else if (iequals(unit, "k") || iequals(unit, "kb") || iequals(unit, "kib")) {
    mult = 1ull << 10;
  } else if (iequals(unit, "m") || iequals(unit, "mb") || iequals(unit, "mib")) {
    mult = 1ull << 20;
  } else if (iequals(unit, "g") || iequals(unit, "gb") || iequals(unit, "gib")) {
    mult = 1ull << 30;
  } else {
    return false;
  }
  if (v > std::numeric_limits<std::size_t>::max() / mult) return false;
  out = static_cast<std::size_t>(v * mult);
  return true;
}

std::string load_config(Config& out, char** envp) noexcept {
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
    bool ok = info->apply(value, out, &detail);
    if (!ok) add_error(errors, name, value, info->accepted, detail);
  }
  return errors;
}

std::string config_value(const Config& cfg, std::string_view name) {
  for (const auto& s : kSettings)
    if (s.name == name) return s.show(cfg);
  return {};
}

}  // namespace tandem
