// The run harness of `tandem bench` and `tandem demo`: options, the launch commands, one
// session's runs (a launch that prints nothing in time is stopped and launched again),
// and the checks made before anything runs.
#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/bench/bench.hpp"
#include "common/process.hpp"

namespace tandem::cli::bench {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> launcher(const Options& o) {
  std::string np = std::to_string(o.np);
  if (o.where == "vcluster") {
    std::vector<std::string> l{tandem_exe().string(), "vcluster", "mpirun"};
    if (o.mpi == "mpich") l.insert(l.end(), {"--mpi", "mpich"});
    l.insert(l.end(), {"-np", np});
    return l;
  }
  if (o.mpi == "mpich") return {"mpiexec.mpich", "-n", np};
  std::vector<std::string> l{"mpirun.openmpi", "--allow-run-as-root", "-np", np, "--mca", "btl", "self,vader", "--bind-to", "none"};
  unsigned cores = std::thread::hardware_concurrency();
  if (cores > 0 && static_cast<unsigned>(o.np) > cores)
    l.insert(l.end(), {"--oversubscribe", "--mca", "mpi_yield_when_idle", "1"});
  return l;
}

// The full command of one run, without the watchdog. `launcher_args` go to the
// launcher, after its own (e.g. --mca NAME VALUE).
std::vector<std::string> command(const Options& o, const std::string& mode, const std::string& program,
                                 const std::vector<std::string>& args,
                                 const std::vector<std::string>& launcher_args = {}) {
  std::vector<std::string> cmd;
  if (mode == "tandem") cmd = {tandem_exe().string(), "run", "--mpi", o.mpi, "--"};
  auto l = launcher(o);
  cmd.insert(cmd.end(), l.begin(), l.end());
  cmd.insert(cmd.end(), launcher_args.begin(), launcher_args.end());
  cmd.push_back(program_path(o, program).string());
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

// How a run is started: its standard output captured; with a launch timeout, a run that
// prints nothing for that long is stopped with everything it started (a process group of
// its own, so standard input is /dev/null: a background group must not read the
// terminal), and SIGINT, SIGTERM and SIGHUP that reach tandem meanwhile go to that group
// and stop it too, then end tandem as before.
process::Options run_options(const Options& o, const RunExtras& x) {
  process::Options p;
  p.env = x.env;
  p.capture_out = true;
  if (o.launch_timeout > 0) {
    p.silence_limit_s = static_cast<unsigned>(o.launch_timeout);
    p.own_group = true;
    p.stdin_null = true;
    p.forward_signals = {SIGINT, SIGTERM, SIGHUP};
    p.keep_ignored = true;
    p.stop_on_signal = true;
  }
  return p;
}

}  // namespace

std::vector<std::string> launch_command(const Options& o, const std::string& program, const std::vector<std::string>& args,
                                        const std::vector<std::string>& launcher_args, bool under_tandem) {
  return command(o, under_tandem ? "tandem" : "plain", program, args, launcher_args);
}

double loadavg() {
  std::ifstream f("/proc/loadavg");
  double v = kNaN;
  if (!(f >> v)) return kNaN;
  return v;
}

std::vector<std::uint64_t> sizes_of(const Options& o, std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> s;
  if (o.sizes.empty()) {
    for (std::uint64_t v = first; v <= last; v *= 4) s.push_back(v);
  } else {
    for (const auto& t : o.sizes) s.push_back(parse_bytes_or_throw(t, kMaxSize));
  }
  return s;
}

std::vector<long> computes_of(const Options& o) {
  std::vector<long> c;
  if (o.compute.empty()) return {200, 2000, 20000};
  for (const auto& t : o.compute) c.push_back(static_cast<long>(parse_us_or_throw(t)));
  return c;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string r;
  for (const auto& s : v) r += (r.empty() ? "" : sep) + s;
  return r;
}

fs::path tandem_exe() { return process::executable_dir() / "tandem"; }

fs::path program_path(const Options& o, const std::string& program) {
  return process::executable_dir() / (program + "_" + o.mpi);
}

bool Session::run(const std::string& program, const std::string& mode, const std::vector<std::string>& args,
                  std::size_t expected, int round, const RunExtras& x) {
  const std::string label = x.label.empty() ? mode : x.label;
  auto cmd = command(o, mode, program, args, x.launcher_args);
  commands[program + "/" + label] = join(cmd);
  std::vector<std::string> full{"timeout", "--foreground", "-k", "10", std::to_string(o.timeout)};
  full.insert(full.end(), cmd.begin(), cmd.end());
  std::fflush(stdout);
  fmt::print(stderr, "[round {}/{}] {} {} ...\n", round, o.rounds, program, label);
  std::fflush(stderr);
  const process::Options how = run_options(o, x);
  json lines;
  int rc = 0;
  double secs = 0;
  std::string why;
  // Now and then an Open MPI launch on the virtual cluster hangs before the program
  // starts (one orted never comes up). The programs print a line once every rank has
  // started: a run silent for --launch-timeout seconds is stopped and launched again
  // (twice at most), and one that times out without printing anything runs once more.
  int stalls = 0;
  for (int attempt = 1;; ++attempt) {
    auto t0 = std::chrono::steady_clock::now();
    process::Result res;
    why.clear();
    try {
      res = process::run(full, how);
    } catch (const std::exception& e) {
      res.status = -1;
      why = e.what();
    }
    rc = res.status;
    const bool stalled = res.stalled;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    lines = json::array();
    std::istringstream in(res.out);
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] != '{') continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("size") ||
          !(j.contains("median_us") || j.contains("error")))
        continue;
      lines.push_back(j);
    }
    json run_doc{{"round", round}, {"program", program}, {"mode", mode}, {"exit", rc}, {"seconds", round3(secs)}};
    if (label != mode) run_doc["label"] = label;
    if (attempt > 1) run_doc["attempt"] = attempt;
    if (!x.env.empty()) {
      json env = json::object();
      for (const auto& [k, v] : x.env) env[k] = v;
      run_doc["env"] = env;
    }
    run_doc["results"] = lines;
    if (stalled) run_doc["stalled"] = true;
    runs.push_back(run_doc);
    if (stalled && why.empty() && stalls < 2) {
      ++stalls;
      fmt::print(stderr, "warning: {} {} printed nothing in {} s (a launch that hung?); stopped it, launching it "
                         "again\n", program, label, o.launch_timeout);
      continue;
    }
    if (stalled && why.empty()) {
      why = fmt::format("printed nothing in {} s, {} launches in a row (--launch-timeout)", o.launch_timeout,
                        stalls + 1);
      break;
    }
    bool hung = why.empty() && (rc == 124 || rc == 128 + 9) && lines.empty();
    if (!hung || attempt - stalls == 2) break;
    fmt::print(stderr, "warning: {} {} printed nothing in {} s (a launch that hung?); running it once more\n", program,
               label, o.timeout);
  }
  long wrong = 0;
  for (const auto& j : lines)
    if (j.contains("verified") && j["verified"].is_boolean() && !j["verified"].get<bool>()) ++wrong;
  verify_failures += wrong;
  bool timed_out = rc == 124 || rc == 128 + 9;
  if (why.empty() && timed_out && lines.size() >= expected) {
    // Every result was printed: the program finished and only its launcher did not exit
    // (an orted left behind); the results stand.
    fmt::print(stderr, "warning: {} {}: all results printed, but the launcher did not exit within {} s; "
                       "results kept\n", program, mode, o.timeout);
    timed_out = false;
    rc = 0;
  }
  // Wrong results: every line is there, the timings stand, the run counts as failed.
  bool only_wrong = false;
  if (why.empty()) {
    if (timed_out)
      why = fmt::format("timed out after {} s", o.timeout);
    else if (rc != 0 && wrong > 0 && lines.size() >= expected) {
      why = fmt::format("verification failed: {} result line{} with wrong results (exit status {})", wrong,
                        wrong == 1 ? "" : "s", rc);
      only_wrong = true;
    } else if (rc != 0)
      why = fmt::format("exited with status {}", rc);
    else if (lines.size() < expected)
      why = fmt::format("printed {} result lines instead of {}", lines.size(), expected);
  }
  if (!why.empty()) {
    std::string msg = fmt::format("{} {} run {}: {}", program, label, why, join(cmd));
    if (mode == "tandem" && !only_wrong)
      msg += fmt::format("\n  (tandem mode runs the same command under `tandem run`: is the preload library "
                         "{}/libtandem_preload_{}.so built and working?)",
                         process::library_dir().string(), o.mpi);
    fmt::print(stderr, "error: {}\n", msg);
    failed.emplace(label, msg);
    if (!only_wrong) return false;
  } else {
    fmt::print(stderr, "[round {}/{}] {} {} done in {:.1f} s\n", round, o.rounds, program, label, secs);
  }
  for (const auto& j : lines) {
    long c = j.contains("compute_us") ? j["compute_us"].get<long>() : -1;
    std::optional<Key> key = x.key ? x.key(j) : std::optional<Key>(Key{program, mode, j["size"].get<std::uint64_t>(), c});
    if (!key) continue;
    const Key& k = *key;
    if (!j.contains("median_us")) {
      if (j.contains("error")) errors[k] = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
      continue;
    }
    stats[k].rounds.push_back(j["median_us"].get<double>());
    if (j.contains("min_us")) stats[k].mins.push_back(j["min_us"].get<double>());
    if (j.contains("compute_measured_us")) compute_measured[k].push_back(j["compute_measured_us"].get<double>());
    if (j.contains("compute_alone_us")) compute_alone[k].push_back(j["compute_alone_us"].get<double>());
    if (j.contains("cpu_us_per_iter") && j.contains("wall_us_per_iter") && j["wall_us_per_iter"].get<double>() > 0)
      busy[k].push_back(j["cpu_us_per_iter"].get<double>() / j["wall_us_per_iter"].get<double>());
  }
  return why.empty();
}

void Session::finish() {
  for (auto& [k, s] : stats) s.finish();
}

const Stat* Session::get(const std::string& program, const std::string& mode, std::uint64_t size, long c) const {
  auto it = stats.find(Key{program, mode, size, c});
  return it == stats.end() || it->second.empty() ? nullptr : &it->second;
}

double Session::busy_of(const std::string& program, const std::string& mode, std::uint64_t size, long c) const {
  auto it = busy.find(Key{program, mode, size, c});
  return it == busy.end() ? kNaN : median_of(it->second);
}

std::vector<std::string> Session::order(int r) const {
  std::vector<std::string> m = o.modes;
  if (r % 2 == 0) std::reverse(m.begin(), m.end());
  return m;
}

void warn_if_busy(Session& s) {
  s.load_start = loadavg();
  unsigned cores = std::thread::hardware_concurrency();
  if (cores > 0 && std::isfinite(s.load_start) && s.load_start > 0.5 * cores)
    fmt::print(stderr,
               "warning: this machine is busy (load average {:.1f} on {} cores): the ranks busy-poll, so timings will "
               "include scheduler waits; compare only alternated runs and mind the spread\n",
               s.load_start, cores);
}

int run_quietly(const std::vector<std::string>& argv, std::string* out) {
  process::Options p;
  p.capture_out = true;
  try {
    process::Result r = process::run(argv, p);
    if (out) *out = std::move(r.out);
    return r.status;
  } catch (const std::exception&) {
    return -1;
  }
}

void preflight(Options& o, bool drop_tandem_if_missing, std::string* dropped_why,
               const std::vector<std::string>& programs) {
  if (o.np < 2) throw std::runtime_error("--np must be at least 2");
  if (o.rounds < 1) throw std::runtime_error("--rounds must be at least 1");
  if (o.modes.empty()) throw std::runtime_error("--modes is empty");
  for (const auto& m : o.modes)
    if (m != "plain" && m != "tandem") throw std::runtime_error("unknown mode `" + m + "` (plain, tandem)");
  std::vector<std::string> uniq;
  for (const auto& m : o.modes)
    if (std::find(uniq.begin(), uniq.end(), m) == uniq.end()) uniq.push_back(m);
  o.modes = uniq;
  for (const auto& p : programs)
    if (!fs::exists(program_path(o, p)))
      throw std::runtime_error(fmt::format("benchmark program {} is missing; build it: cmake --build build --target {}_{}",
                                           program_path(o, p).string(), p, o.mpi));
  if (std::find(o.modes.begin(), o.modes.end(), "tandem") != o.modes.end()) {
    try {
      preload_library(o.mpi);
    } catch (const std::exception& e) {
      std::string why = fmt::format("tandem mode needs the preload library: {}", e.what());
      if (!drop_tandem_if_missing)
        throw std::runtime_error(why + fmt::format(" (cmake --build build --target tandem_preload_{}), or pass --modes plain", o.mpi));
      if (dropped_why) *dropped_why = why;
      o.modes.erase(std::remove(o.modes.begin(), o.modes.end(), "tandem"), o.modes.end());
      if (o.modes.empty()) o.modes.push_back("plain");
    }
  }
  if (o.where == "vcluster") {
    std::string out;
    int rc = run_quietly({tandem_exe().string(), "vcluster", "status"}, &out);
    if (rc != 0)
      throw std::runtime_error(fmt::format("--where vcluster: no virtual cluster is up (`tandem vcluster status` exited {}); "
                                           "start one with `tandem vcluster up`, or use --where shm",
                                           rc));
  }
}

std::vector<std::string> program_args(const Options& o, const std::vector<std::uint64_t>& sizes) {
  std::vector<std::string> a{"-s", join_nums(sizes), "-t", fmt::format("{}", o.budget)};
  if (o.iters > 0) a.insert(a.end(), {"-n", std::to_string(o.iters)});
  a.push_back("--json");
  return a;
}

void add_common(CLI::App* cmd, Options& o) {
  cmd->add_option("--mpi", o.mpi, "The MPI: openmpi or mpich")->check(CLI::IsMember({"openmpi", "mpich"}))->capture_default_str();
  cmd->add_option("--np", o.np, "Number of ranks (ranks 0 and 1 exchange messages)")->capture_default_str();
  cmd->add_option("--where", o.where, "shm: one machine, shared memory; vcluster: across the virtual cluster "
                                      "(`tandem vcluster up`)")
      ->check(CLI::IsMember({"shm", "vcluster"}))
      ->capture_default_str();
  cmd->add_option("--modes", o.modes, "Comma-separated modes: plain (the MPI alone) and tandem (under `tandem run`)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--rounds", o.rounds, "Runs of each mode, alternating between the modes")->capture_default_str();
  cmd->add_option("--sizes", o.sizes, "Comma-separated message sizes in bytes (K/M suffixes allowed)")
      ->delimiter(',')
      ->check(bytes_validator(kMaxSize));
  cmd->add_option("--budget", o.budget, "Seconds of timing per size (the programs' -t): bounds the iteration count")
      ->capture_default_str();
  cmd->add_option("--iters", o.iters, "Most timed iterations per size (default: the program's)");
  cmd->add_option("--timeout", o.timeout, "Seconds before a run is killed")->capture_default_str();
  cmd->add_option("--launch-timeout", o.launch_timeout,
                  "Seconds for a run to print its first line (the programs print one once every rank has "
                  "started) before it is stopped and launched again, twice at most; 0: no limit")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

int hard_fail(const std::string& msg) {
  std::fflush(stdout);
  fmt::print(stderr, "tandem: {}\n", msg);
  return 1;
}

}  // namespace tandem::cli::bench

namespace tandem::cli {

void add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks: MPI round-trip time and overlap, plain MPI against tandem; "
                                            "collectives");
  bench->require_subcommand(1);
  bench::add_pingpong(*bench);
  bench::add_overlap(*bench);
  bench::add_coll(*bench);
  bench::add_demo(app);
}

}  // namespace tandem::cli
