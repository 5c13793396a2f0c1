#include <fmt/format.h>

#include "cli/cli.hpp"
#include "coll/algorithms.hpp"
#include "common/config.hpp"

namespace tandem::cli {

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "List every TANDEM_* setting with its value and meaning");
  static bool algorithms = false, verbose = false;
  cmd->add_flag("--algorithms", algorithms,
                "List every collective's algorithms, one line per collective: the names TANDEM_COLL_<COLL> accepts");
  cmd->add_flag("-v,--verbose", verbose, "With --algorithms: one line per algorithm, with its parameters and summary");
  cmd->callback([] {
    if (algorithms) {
      for (coll::Coll c : coll::all_colls()) {
        if (!verbose) {
          std::string names;
          for (const auto& a : coll::algorithms(c)) names += (names.empty() ? "" : ", ") + std::string(a.name);
          fmt::print("{}: {}\n", coll::coll_name(c), names);
          continue;
        }
        fmt::print("{}:\n", coll::coll_name(c));
        for (const auto& a : coll::algorithms(c))
          fmt::print("  {:28} {}{}{}{}\n", a.name, a.segmented ? "[segsize] " : "",
                     a.default_fanout ? fmt::format("[fanout, default {}] ", a.default_fanout) : "",
                     a.commutative_only ? "[commutative operations only] " : "", a.summary);
      }
      return;
    }
    Config cfg;
    std::string errors = load_config(cfg);
    fmt::print("tandem 0.1.0\n");
    for (const char* mpi : {"openmpi", "mpich"}) {
      auto p = lib_dir() / fmt::format("libtandem_preload_{}.so", mpi);
      fmt::print("preload ({}): {}{}\n", mpi, p.string(), std::filesystem::exists(p) ? "" : " (missing)");
    }
    fmt::print("\nsettings (environment variables):\n");
    for (const auto& s : settings()) {
      const char* env = std::getenv(std::string(s.name).c_str());
      fmt::print("  {}={}{}\n      {} Accepts {}; default {}.\n", s.name, config_value(cfg, s.name),
                 env ? "  (from environment)" : "", s.help, s.accepted, s.default_value);
    }
    if (!errors.empty()) {
      fmt::print(stderr, "{}", errors);
      throw CLI::RuntimeError(2);
    }
  });
}

}  // namespace tandem::cli
