#include "cli/cli.hpp"

namespace tandem::cli {
void add_vcluster(CLI::App& app) {
  app.add_subcommand("vcluster", "Virtual cluster of network namespaces (not built yet)");
}
}  // namespace tandem::cli
