#include <fmt/format.h>

#include "cli/cli.hpp"
#include "common/config.hpp"

namespace tandem::cli {

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "List every TANDEM_* setting with its value and meaning");
  cmd->callback([] {
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
