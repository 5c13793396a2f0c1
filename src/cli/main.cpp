#include <cstdio>
#include <exception>

#include "cli/cli.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tandem: communication and computation in tandem for MPI programs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tandem 0.1.0");
  tandem::cli::add_info(app);
  tandem::cli::add_run(app);
  tandem::cli::add_vcluster(app);
  tandem::cli::add_bench(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem: %s\n", e.what());
    return 1;
  }
  return 0;
}
