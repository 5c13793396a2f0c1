#include <fmt/format.h>

#include <filesystem>

#include <cstdlib>
#include <stdexcept>

#include "cli/cli.hpp"
#include "common/config.hpp"

namespace tandem::cli {

void add_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Run a launcher command with every rank under tandem's preload library");
  struct Opts {
    bool stats = false;
    std::string record;
    std::string mpi;
    std::vector<std::string> command;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_flag("--stats", opts->stats, "Print one statistics line per rank at MPI_Finalize (TANDEM_STATS=1)");
  cmd->add_option("--record", opts->record,
                  "Record the collectives the program calls (collective, ranks, bytes, datatype, how often) into this "
                  "file at MPI_Finalize, for `tandem tune --from` (TANDEM_COLL_RECORD)");
  cmd->add_option("--mpi", opts->mpi, "The program's MPI (default: TANDEM_MPI, else detected)")
      ->check(CLI::IsMember({"openmpi", "mpich"}));
  cmd->add_option("command", opts->command, "The launcher command, after --, e.g. -- mpirun -np 2 ./app")
      ->required();
  cmd->callback([opts] {
    check_environment();
    Config cfg;
    load_config(cfg);
    std::string mpi = opts->mpi.empty() ? cfg.mpi : opts->mpi;
    if (mpi == "auto") {
      auto m = detect_mpi(opts->command);
      if (!m)
        throw std::runtime_error("cannot tell which MPI `" + opts->command[0] +
                                 "` runs; pass --mpi openmpi|mpich or set TANDEM_MPI");
      mpi = *m;
    }
    Env extra;
    if (opts->stats) extra.emplace_back("TANDEM_STATS", "1");
    if (!opts->record.empty())
      extra.emplace_back("TANDEM_COLL_RECORD", std::filesystem::absolute(opts->record).string());
    extra.emplace_back("TANDEM_MPI", mpi);
    if (mpi == "openmpi" && cfg.eager_limit > 0) {
      // Open MPI reads these from the environment of mpirun and passes them to every rank.
      // Its limits count the message header too (ob1 sends a message eagerly when its payload
      // fits in the limit minus the header): leave room so that payloads up to the setting
      // itself go eagerly.
      constexpr std::size_t kHeaderRoom = 256;
      for (const char* var : {"OMPI_MCA_btl_tcp_eager_limit", "OMPI_MCA_btl_tcp_rndv_eager_limit",
                              "OMPI_MCA_btl_tcp_max_send_size"})
        if (!std::getenv(var)) extra.emplace_back(var, std::to_string(cfg.eager_limit + kHeaderRoom));
    }
    process::Options run;
    run.env = preload_env(mpi, extra);
    int rc = process::run(opts->command, run).status;
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tandem::cli
