// The one registry of every TANDEM_* setting: name, default, meaning and parser.
// Used by the preload libraries (at MPI_Init), by `tandem run` (before launching)
// and by `tandem info` (to list them). Nothing here throws.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tandem {

struct Config {
  bool enable = true;                    // TANDEM_ENABLE
  std::size_t threshold = 4096;          // TANDEM_THRESHOLD (bytes)
  bool stats = false;                    // TANDEM_STATS
  bool adaptive = true;                  // TANDEM_ADAPTIVE
  std::string local = "auto";            // TANDEM_LOCAL
  std::size_t eager_limit = 1 << 20;     // TANDEM_EAGER_LIMIT (used by `tandem run`)
  bool wait_status = true;               // TANDEM_STATUS_PROBE
  unsigned spin_us = 20;                 // TANDEM_PROGRESS_SPIN_US
  unsigned sleep_max_us = 200;           // TANDEM_PROGRESS_SLEEP_US
  unsigned max_ops = 4096;               // TANDEM_MAX_OPS
  int verbose = 0;                       // TANDEM_VERBOSE
  std::string mpi = "auto";              // TANDEM_MPI (used by `tandem run`)
  // Collectives (coll/algorithms.hpp): per collective, in the order of coll::Coll, the
  // algorithm forced by TANDEM_COLL_<COLL> ("" none, "mpi" the MPI library's own).
  std::string coll_forced[9];
  std::string coll_rules;                // TANDEM_COLL_RULES: rules file ("" none)
  bool coll_overlap = false;             // TANDEM_COLL_OVERLAP
};

struct SettingInfo {
  std::string_view name;
  std::string_view default_value;
  std::string_view accepted;  // what values are accepted, for `tandem info`
  std::string_view help;
  // false: malformed (a specific reason may be left in *detail, else `accepted` is shown)
  bool (*apply)(std::string_view value, Config& cfg, std::string* detail) noexcept;
  std::string (*show)(const Config& cfg);                        // effective value
};

// Every setting, in the order `tandem info` lists them.
std::span<const SettingInfo> settings() noexcept;

// Reads every TANDEM_* variable of `envp` (environ when null) into `out`.
// Returns an empty string on success, otherwise one message per bad variable
// (each naming the variable, its value and what is accepted), and `out` keeps
// the defaults for those. Unknown TANDEM_* variables are errors too.
std::string load_config(Config& out, char** envp = nullptr) noexcept;

// The effective value of a setting in `cfg`, as text (for `tandem info`).
std::string config_value(const Config& cfg, std::string_view name);

// Parsers, exposed for tests. Return false on malformed input.
bool parse_bool(std::string_view text, bool& out) noexcept;
bool parse_size(std::string_view text, std::size_t& out) noexcept;
bool parse_uint(std::string_view text, std::uint64_t max, std::uint64_t& out) noexcept;

}  // namespace tandem
