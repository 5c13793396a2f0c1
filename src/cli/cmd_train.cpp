// `tandem train ARGS...`: the data-parallel trainer (apps/train), started by an MPI
// launcher (`mpirun -np 2 tandem train ...`): runs the trainer built for the launcher's
// MPI with the same arguments, in this process (exec), so that it is the launcher's rank.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

#include "cli/cli.hpp"
#include "common/config.hpp"

namespace tandem::cli {

namespace {
// The MPI whose launcher started this process: Open MPI's and MPICH's (Hydra's) rank
// environment; none (a singleton): TANDEM_MPI, else Open MPI.
std::string launcher_mpi() {
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) return "openmpi";
  if (std::getenv("PMI_RANK") || std::getenv("PMI_SIZE") || std::getenv("HYDRA_CONTROL_FD")) return "mpich";
  Config cfg;
  load_config(cfg);
  return cfg.mpi == "mpich" ? "mpich" : "openmpi";
}
}  // namespace

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train",
                                 "Data-parallel training of LeNets on Fashion-MNIST, pruned at initialisation or not, over "
                                 "tandem's collectives; an MPI program: mpirun -np N tandem train --help");
  cmd->prefix_command();
  cmd->set_help_flag();  // --help goes to the trainer
  cmd->callback([cmd] {
    const std::string mpi = launcher_mpi();
    const auto path = process::executable_dir() / ("tandem_train_" + mpi);
    if (access(path.c_str(), X_OK) != 0)
      throw std::runtime_error(fmt::format("{} is missing: tandem was built without libtorch (install libtorch-dev, "
                                           "e.g. with scripts/install-deps.sh, and build again)",
                                           path.string()));
    std::vector<std::string> args = cmd->remaining();
    std::vector<char*> argv{const_cast<char*>(path.c_str())};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(path.c_str(), argv.data());
    throw std::runtime_error(fmt::format("cannot run {}: {}", path.string(), std::strerror(errno)));
  });
}

}  // namespace tandem::cli
