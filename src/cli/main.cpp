#include <cstdio>
#include <exception>
#include <string>

#include "cli/cli.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tandem: communication and computation in tandem for MPI programs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tandem 0.1.0");
  tandem::cli::add_info(app);
  tandem::cli::add_run(app);
  tandem::cli::add_vcluster(app);
  tandem::cli::add_bench(app);
  tandem::cli::add_sim(app);
  tandem::cli::add_profile(app);
  tandem::cli::add_tune(app);
  tandem::cli::add_train(app);
  // A first word that is no command is an error naming it (CLI11 would only say that a
  // subcommand is required, and with --help after it print the main help and exit 0).
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known = known || sub->check_name(argv[1]);
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "tandem: unknown command `%s` (commands: %s); see tandem --help\n", argv[1], names.c_str());
      return 2;
    }
  }
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
