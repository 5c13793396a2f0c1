#include "cli/cli.hpp"

namespace tandem::cli {
void add_bench(CLI::App& app) {
  app.add_subcommand("bench", "Benchmarks (not built yet)");
  app.add_subcommand("demo", "The overlap benchmark with and without tandem (not built yet)");
}
}  // namespace tandem::cli
