// The one registry of every TANDEM_* setting: name, default, meaning and parser. Used by
// the preload libraries (at MPI_Init), the C++ API (at its first call), `tandem run`
// (before launching) and `tandem info` (to list them). A Config's defaults are the
// registry's: a constructed Config holds every setting's documented default.
// Nothing here throws.
//
// Values are checked for form here. What needs a higher layer to judge (an algorithm
// name, a rules file) is checked there, when that layer reads the Config
// (coll::Selector::from_config).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

struct Config {
  Config() noexcept;  // every setting at its registry default

  // Transparent overlap of point-to-point calls.
  bool enable;                  // TANDEM_ENABLE
  std::uint64_t threshold;      // TANDEM_THRESHOLD (bytes)
  bool stats;                   // TANDEM_STATS
  bool adaptive;                // TANDEM_ADAPTIVE
  unsigned adaptive_retry;      // TANDEM_ADAPTIVE_RETRY
  unsigned adaptive_patience;   // TANDEM_ADAPTIVE_PATIENCE
  std::string local;            // TANDEM_LOCAL
  std::uint64_t eager_limit;    // TANDEM_EAGER_LIMIT (used by `tandem run`)
  bool wait_status;             // TANDEM_STATUS_PROBE
  std::uint64_t copy_below;     // TANDEM_COPY_BELOW (bytes)
  std::uint64_t copy_max;       // TANDEM_COPY_MAX (bytes)
  unsigned defer_cost_us;       // TANDEM_DEFER_COST_US
  unsigned defer_cost_ps;       // TANDEM_DEFER_COST_PS_PER_BYTE
  std::uint64_t bounce_pool;    // TANDEM_BOUNCE_POOL (bytes)
  unsigned max_ops;             // TANDEM_MAX_OPS
  unsigned wait_sleep_us;       // TANDEM_WAIT_SLEEP_US
  unsigned fault_patience_us;   // TANDEM_FAULT_PATIENCE_US
  // Progress engine.
  std::string progress;         // TANDEM_PROGRESS: auto|thread|poll|block
  unsigned spin_us;             // TANDEM_PROGRESS_SPIN_US
  unsigned sleep_max_us;        // TANDEM_PROGRESS_SLEEP_US
  unsigned eager_us;            // TANDEM_PROGRESS_EAGER_US
  unsigned slice_us;            // TANDEM_PROGRESS_SLICE_US
  unsigned timer_slack_ns;      // TANDEM_PROGRESS_SLACK_NS
  unsigned wait_spin_us;        // TANDEM_WAIT_SPIN_US
  unsigned wait_long_poll_us;   // TANDEM_WAIT_LONG_POLL_US
  int verbose;                  // TANDEM_VERBOSE
  // Collectives: per collective, in the order of coll::Coll, the algorithm forced by
  // TANDEM_COLL_<COLL> ("" none, "mpi" the MPI library's own).
  static constexpr int kColls = 9;
  std::string coll_forced[kColls];
  std::string coll_rules;       // TANDEM_COLL_RULES: rules file ("" none)
  bool coll_overlap;            // TANDEM_COLL_OVERLAP
  unsigned coll_cache;          // TANDEM_COLL_CACHE
  std::uint64_t coll_small;     // TANDEM_COLL_SMALL (bytes)
  std::string coll_record;      // TANDEM_COLL_RECORD: where to record the collectives called ("" none)
  std::string coll_model;       // TANDEM_COLL_MODEL: machine profile for model-driven selection ("" none)
  std::vector<std::uint64_t> model_segsizes;  // TANDEM_COLL_MODEL_SEGSIZES (bytes; 0: unsegmented)
  std::vector<unsigned> model_fanouts;        // TANDEM_COLL_MODEL_FANOUTS
  unsigned coll_nodes;          // TANDEM_COLL_NODES: 0 nodes by host, N: N consecutive ranks per node
  std::string mpi;              // TANDEM_MPI (used by `tandem run`)
};

struct SettingInfo {
  std::string_view name;
  std::string_view default_value;
  std::string_view accepted;  // what values are accepted, for `tandem info`
  std::string_view help;
  // false: malformed (a specific reason may be left in *detail, else `accepted` is shown)
  bool (*apply)(std::string_view value, Config& cfg, std::string* detail) noexcept;
  std::string (*show)(const Config& cfg);  // effective value
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
// Whether `name` is set in the environment (environ).
bool config_from_environment(std::string_view name) noexcept;

// One error line in the registry's format: "tandem: invalid NAME='VALUE': WHAT\n".
std::string setting_error(std::string_view name, std::string_view value, std::string_view what);

bool parse_bool(std::string_view text, bool& out) noexcept;

}  // namespace tandem
