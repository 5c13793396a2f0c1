// `tandem vcluster up|status|down|mpirun`: the virtual cluster (the library in src/vcluster).
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "vcluster/vcluster.hpp"

namespace tandem::cli {
namespace {

using namespace tandem::vcluster;

// Runs a subcommand body; VclusterErrors become "tandem: vcluster: ..." and their exit code.
template <class F>
void guarded(F&& body) {
  try {
    body();
  } catch (const VclusterError& e) {
    std::fprintf(stderr, "tandem: %s\n", e.what());
    throw CLI::RuntimeError(e.exit_code());
  }
}

std::string human_bytes(std::uint64_t b) {
  if (b >= 10ULL * 1000 * 1000 * 1000) return fmt::format("{:.1f} GB", b / 1e9);
  if (b >= 10ULL * 1000 * 1000) return fmt::format("{:.1f} MB", b / 1e6);
  if (b >= 10ULL * 1000) return fmt::format("{:.1f} kB", b / 1e3);
  return fmt::format("{} B", b);
}

void print_summary(const VclusterInfo& info) {
  fmt::print("vcluster: {} host{}, each link shaped to {} in both directions (tbf burst {} B, latency {} ms)\n",
             info.hosts.size(), info.hosts.size() == 1 ? "" : "s", info.rate, info.burst_bytes, info.latency_ms);
  fmt::print("created:   {}\n", info.created);
  fmt::print("bridge:    {} {}/24 in the root namespace (where mpirun runs)\n", info.bridge, info.bridge_address);
  fmt::print("device:    {} in each host, subnet {}\n", info.device, info.subnet);
  fmt::print("agent:     {}\n", info.agent);
  fmt::print("hostfiles: {} (Open MPI), {} (MPICH)\n", info.hostfile_openmpi, info.hostfile_mpich);
}

void add_up(CLI::App& vc) {
  auto* cmd = vc.add_subcommand("up", "Create the virtual cluster (needs root)");
  auto opts = std::make_shared<VclusterOptions>();
  cmd->add_option("--hosts", opts->hosts,
                  "Number of hosts, 1.." + std::to_string(kVclusterMaxHosts) +
                      " (namespaces tandem-h0.., addresses 198.18.0.1..)")
      ->capture_default_str();
  cmd->add_option("--rate", opts->rate, "Each host link's rate, each direction: e.g. 100mbit, 1gbit, 10gbit")
      ->capture_default_str();
  cmd->add_option(
      "--burst", opts->burst,
      "tbf burst in bytes, e.g. 128k (default: 1 ms of traffic, at least the smaller of 128k and 10 ms of traffic)");
  cmd->add_flag("--force", opts->force, "Recreate the vcluster when one (or a partial one) exists");
  cmd->callback([opts] {
    guarded([&] {
      bool already = false;
      VclusterInfo info = vcluster_up(*opts, &already);
      if (already)
        fmt::print("vcluster: already up with these settings; kept it (use --force to recreate it)\n");
      else
        fmt::print("vcluster: up\n");
      print_summary(info);
      for (const auto& h : info.hosts) fmt::print("  {:<11} {}\n", h.ns, h.address);
    });
  });
}

void add_status(CLI::App& vc) {
  auto* cmd = vc.add_subcommand("status", "Show the virtual cluster's hosts, addresses, rate and link counters");
  auto as_json = std::make_shared<bool>(false);
  auto quiet = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "Print the state and counters as JSON");
  cmd->add_flag("-q,--quiet", *quiet, "Print nothing; exit 0 when a complete vcluster is up, 1 otherwise");
  cmd->callback([as_json, quiet] {
    guarded([&] {
      if (*quiet) {
        if (!vcluster_exists() || !vcluster_problems().empty()) throw CLI::RuntimeError(1);
        return;
      }
      auto problems = vcluster_problems();
      if (!vcluster_exists()) {
        if (problems.empty()) {
          if (*as_json)
            fmt::print("{}\n", nlohmann::json{{"up", false}}.dump());
          else
            fmt::print("vcluster: none (create one with `tandem vcluster up --hosts N --rate RATE`)\n");
          throw CLI::RuntimeError(1);
        }
        fmt::print(stderr, "tandem: vcluster: a partial vcluster is left over:\n");
        for (const auto& p : problems) fmt::print(stderr, "  {}\n", p);
        fmt::print(stderr, "remove it with `tandem vcluster down` (or recreate it with `up --force`)\n");
        throw CLI::RuntimeError(1);
      }
      VclusterInfo info = vcluster_state();
      auto stats = vcluster_link_stats(info);
      if (*as_json) {
        nlohmann::json j{{"up", problems.empty()},
                         {"rate", info.rate},
                         {"rate_bps", info.rate_bps},
                         {"burst_bytes", info.burst_bytes},
                         {"latency_ms", info.latency_ms},
                         {"created", info.created},
                         {"bridge", info.bridge},
                         {"bridge_address", info.bridge_address},
                         {"subnet", info.subnet},
                         {"device", info.device},
                         {"agent", info.agent},
                         {"hostfile_openmpi", info.hostfile_openmpi},
                         {"hostfile_mpich", info.hostfile_mpich},
                         {"problems", problems}};
        for (std::size_t i = 0; i < info.hosts.size(); ++i) {
          const auto& h = info.hosts[i];
          j["hosts"].push_back({{"index", h.index},
                                {"namespace", h.ns},
                                {"address", h.address},
                                {"bridge_port", h.bridge_port},
                                {"shaped", stats[i].ok},
                                {"sent_bytes", stats[i].sent},
                                {"received_bytes", stats[i].received},
                                {"drops", stats[i].drops}});
        }
        fmt::print("{}\n", j.dump(2));
      } else {
        print_summary(info);
        fmt::print("\n{:<11} {:<13} {:<14} {:>10} {:>10} {:>6}\n", "namespace", "address", "bridge port", "sent",
                   "received", "drops");
        for (std::size_t i = 0; i < info.hosts.size(); ++i) {
          const auto& h = info.hosts[i];
          if (stats[i].ok)
            fmt::print("{:<11} {:<13} {:<14} {:>10} {:>10} {:>6}\n", h.ns, h.address, h.bridge_port,
                       human_bytes(stats[i].sent), human_bytes(stats[i].received), stats[i].drops);
          else
            fmt::print("{:<11} {:<13} {:<14} {:>10} {:>10} {:>6}\n", h.ns, h.address, h.bridge_port, "?", "?", "?");
        }
        if (!problems.empty()) {
          fmt::print(stderr, "tandem: vcluster: the vcluster is broken:\n");
          for (const auto& p : problems) fmt::print(stderr, "  {}\n", p);
        }
      }
      if (!problems.empty()) throw CLI::RuntimeError(1);
    });
  });
}

void add_down(CLI::App& vc) {
  auto* cmd =
      vc.add_subcommand("down", "Remove the virtual cluster (namespaces, bridge, files); fine when none exists");
  cmd->callback([] {
    guarded([] {
      auto done = vcluster_down();
      if (done.empty()) {
        fmt::print("vcluster: none; nothing to remove\n");
        return;
      }
      for (const auto& s : done) fmt::print("vcluster: {}\n", s);
      fmt::print("vcluster: down\n");
    });
  });
}

void add_mpirun(CLI::App& vc) {
  auto* cmd = vc.add_subcommand(
      "mpirun",
      "Run mpirun (Open MPI) or mpiexec (MPICH) with the ranks on the vcluster's hosts; exits with its status");
  struct Opts {
    std::string mpi;
    unsigned timeout = 0;
    bool dry_run = false;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("--mpi", opts->mpi, "openmpi or mpich (default: TANDEM_MPI, else the program's MPI, else openmpi)")
      ->check(CLI::IsMember({"openmpi", "mpich", "auto"}));
  cmd->add_option("--timeout", opts->timeout, "Stop the launcher after this many seconds (exit 124); 0: never")
      ->capture_default_str();
  cmd->add_flag("--dry-run", opts->dry_run, "Print the launcher command instead of running it");
  cmd->prefix_command();
  cmd->footer(
      "Everything after these options goes to the launcher, e.g.\n"
      "  tandem vcluster mpirun -np 2 ./app\n"
      "  tandem vcluster mpirun --mpi mpich -np 4 ./app args\n"
      "LD_PRELOAD and every TANDEM_* variable are forwarded to the ranks.");
  cmd->callback([opts, cmd] {
    guarded([&] {
      std::vector<std::string> args = cmd->remaining();
      if (!args.empty() && args.front() == "--") args.erase(args.begin());
      if (args.empty())
        throw VclusterError("mpirun: give the launcher's arguments, e.g. `tandem vcluster mpirun -np 2 ./app`");
      std::string mpi = opts->mpi;
      if (mpi.empty() || mpi == "auto") {
        const char* env = std::getenv("TANDEM_MPI");
        std::string e = env ? env : "";
        if (e == "openmpi" || e == "mpich")
          mpi = e;
        else
          mpi = detect_mpi(args).value_or("openmpi");
      }
      try {
        check_environment();
      } catch (const std::exception& e) {
        throw VclusterError(std::string("mpirun: ") + e.what());
      }
      auto argv = vcluster_mpirun_argv(mpi, args, !opts->dry_run);
      if (opts->dry_run) {
        std::string line;
        for (const auto& a : argv) {
          if (!line.empty()) line += ' ';
          bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`*?;&|<>()") == std::string::npos;
          if (plain) {
            line += a;
          } else {
            line += '\'';
            for (char c : a) line += c == '\'' ? std::string("'\\''") : std::string(1, c);
            line += '\'';
          }
        }
        fmt::print("{}\n", line);
        return;
      }
      int rc = vcluster_run(argv, opts->timeout);
      if (rc != 0) throw CLI::RuntimeError(rc);
    });
  });
}

}  // namespace

void add_vcluster(CLI::App& app) {
  auto* vc = app.add_subcommand("vcluster", "Virtual cluster: hosts as network namespaces with shaped links");
  vc->require_subcommand(1);
  add_up(*vc);
  add_status(*vc);
  add_down(*vc);
  add_mpirun(*vc);
}

}  // namespace tandem::cli
