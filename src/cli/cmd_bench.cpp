// `tandem bench pingpong|overlap` and `tandem demo`: drive the plain MPI benchmark
// programs of bench/ (pingpong_<mpi>, overlap_<mpi>) with and without tandem,
// alternating the modes round by round, and combine, print, save and plot the
// results.  See docs/benchmarks.md for what is measured and the formulas.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "cli/cli.hpp"
#include "cli/plot.hpp"
#include "cli/vcluster.hpp"
#include "coll/algorithms.hpp"

namespace tandem::cli {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- options -----------------------------------------------------------------------

struct Options {
  std::string mpi = "openmpi";
  int np = 2;
  std::string where = "shm";
  std::vector<std::string> modes{"plain", "tandem"};
  int rounds = 5;
  std::string json_file, plot_file;
  std::vector<std::string> sizes;    // as given (K/M/G suffixes allowed)
  std::vector<std::string> compute;  // microseconds per phase
  double budget = 1.0;               // seconds per size (and compute time), passed as -t
  long iters = 0;                    // most timed iterations per point (-n), 0: program default
  int timeout = 900;                 // seconds per program run
  int launch_timeout = 60;           // seconds for a run to print its first line (0: no limit)
};

std::uint64_t parse_bytes(const std::string& text) {
  std::size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw std::runtime_error("bad size `" + text + "` (e.g. 4096, 64K, 1M)");
  }
  std::string suffix = text.substr(pos);
  double mult = 1;
  if (!suffix.empty()) {
    char c = static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
    if (c == 'K') mult = 1024.0;
    else if (c == 'M') mult = 1024.0 * 1024;
    else if (c == 'G') mult = 1024.0 * 1024 * 1024;
    if (mult != 1) suffix.erase(0, 1);
    if (suffix == "B" || suffix == "b" || suffix == "iB") suffix.clear();
  }
  if (!suffix.empty() || v < 0 || v * mult > 2147483647.0)
    throw std::runtime_error("bad size `" + text + "` (e.g. 4096, 64K, 1M; at most 2G-1)");
  return static_cast<std::uint64_t>(v * mult);
}

std::vector<std::uint64_t> sizes_of(const Options& o, std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> s;
  if (o.sizes.empty()) {
    for (std::uint64_t v = first; v <= last; v *= 4) s.push_back(v);
  } else {
    for (const auto& t : o.sizes) s.push_back(parse_bytes(t));
  }
  return s;
}

// A --compute value: microseconds, a whole number >= 0.
long parse_compute_us(const std::string& t, const char* unit) {
  std::size_t pos = 0;
  long v = -1;
  try {
    v = std::stol(t, &pos);
  } catch (const std::exception&) {
  }
  if (v < 0 || pos != t.size()) throw std::runtime_error("bad compute time `" + t + "` (" + unit + ")");
  return v;
}

std::vector<long> computes_of(const Options& o) {
  std::vector<long> c;
  if (o.compute.empty()) return {200, 2000, 20000};
  for (const auto& t : o.compute) c.push_back(parse_compute_us(t, "microseconds per phase"));
  return c;
}

std::string join(const std::vector<std::string>& v, const std::string& sep = " ") {
  std::string r;
  for (const auto& s : v) r += (r.empty() ? "" : sep) + s;
  return r;
}

template <class T>
std::string join_nums(const std::vector<T>& v) {
  std::string r;
  for (const auto& x : v) r += (r.empty() ? "" : ",") + std::to_string(x);
  return r;
}

// ---- formatting --------------------------------------------------------------------

std::string fmt_time(double us) {
  if (!std::isfinite(us)) return "-";
  double a = std::abs(us);
  if (a >= 1e6) return fmt::format("{:.3g} s", us / 1e6);
  if (a >= 1e3) return fmt::format("{:.3g} ms", us / 1e3);
  return fmt::format("{:.3g} us", us);
}

std::string fmt_size(std::uint64_t b) { return plot::format_value(static_cast<double>(b), plot::Format::Bytes) + "B"; }

std::string fmt_ratio(double r) { return std::isfinite(r) ? fmt::format("{:.2f}", r) : "-"; }

// Right-aligned text table.
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(header.size(), 0);
  auto width = [](const std::string& s) {  // count UTF-8 code points
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  for (std::size_t i = 0; i < header.size(); ++i) w[i] = width(header[i]);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (std::size_t i = 0; i < w.size(); ++i) {
      std::string cell = i < r.size() ? r[i] : "";
      s += std::string(w[i] - std::min(w[i], width(cell)) + (i ? 2 : 0), ' ') + cell;
    }
    fmt::print("{}\n", s);
  };
  line(header);
  std::size_t total = 0;
  for (auto x : w) total += x + 2;
  fmt::print("{}\n", std::string(total > 2 ? total - 2 : 0, '-'));
  for (const auto& r : rows) line(r);
}

// ---- combining rounds ----------------------------------------------------------------

double median_of(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double round3(double v) { return std::isfinite(v) ? std::round(v * 1000) / 1000 : v; }

json num(double v) { return std::isfinite(v) ? json(round3(v)) : json(nullptr); }

// One measured quantity over the rounds: each round contributes its per-run
// median of per-iteration times.
struct Stat {
  std::vector<double> rounds;  // per-round medians, in round order
  std::vector<double> mins;    // per-round fastest iterations
  double median = kNaN, best = kNaN, lo = kNaN, hi = kNaN, fastest = kNaN;

  void finish() {
    if (rounds.empty()) return;
    median = median_of(rounds);
    lo = *std::min_element(rounds.begin(), rounds.end());
    hi = *std::max_element(rounds.begin(), rounds.end());
    best = lo;
    if (!mins.empty()) fastest = *std::min_element(mins.begin(), mins.end());
  }
  bool empty() const { return rounds.empty(); }
  // Half the range of the round medians, relative to their median, in percent.
  double spread_pct() const { return empty() || median <= 0 ? kNaN : 50.0 * (hi - lo) / median; }
  std::string cell() const {
    if (empty()) return "-";
    if (rounds.size() == 1) return fmt_time(median);
    double p = spread_pct();
    return p < 999.5 ? fmt::format("{} ±{:.0f}%", fmt_time(median), p) : fmt::format("{} ±>999%", fmt_time(median));
  }
  json to_json() const {
    if (empty()) return nullptr;
    json r = json::array();
    for (double v : rounds) r.push_back(num(v));
    return {{"median_us", num(median)},     {"best_us", num(best)},          {"min_round_us", num(lo)},
            {"max_round_us", num(hi)},      {"spread_pct", num(spread_pct())}, {"fastest_iteration_us", num(fastest)},
            {"rounds_us", r}};
  }
};

// ---- running the programs ---------------------------------------------------------------

fs::path tandem_exe() { return bin_dir() / "tandem"; }

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

fs::path program_path(const Options& o, const std::string& program) {
  return bin_dir() / (program + "_" + o.mpi);
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

// Key of one measured point: program, mode, size, compute time per phase (-1: none).
using Key = std::tuple<std::string, std::string, std::uint64_t, long>;

// What a run may add to the plain program-and-mode run.
struct RunExtras {
  std::string label;                       // this run's name (failures, commands); default: the mode
  Env env;                                 // added to the run's environment
  std::vector<std::string> launcher_args;  // given to the launcher, after its own
  // The key of a result line (nullopt: not a measurement); default: program, mode, size, compute_us.
  std::function<std::optional<Key>(const json&)> key;
};

struct Session {
  explicit Session(Options opts) : o(std::move(opts)) {}
  Options o;
  std::map<Key, Stat> stats;
  std::map<Key, std::vector<double>> compute_measured;
  std::map<Key, std::vector<double>> compute_alone;  // coll_bench --overlap: compute on every rank at once
  // Rank 0's process CPU time over wall time in the timed loop (1 = its core never idled).
  std::map<Key, std::vector<double>> busy;
  double busy_of(const std::string& program, const std::string& mode, std::uint64_t size, long c) const {
    auto it = busy.find(Key{program, mode, size, c});
    return it == busy.end() ? kNaN : median_of(it->second);
  }
  json runs = json::array();
  json commands = json::object();
  std::map<std::string, std::string> failed;  // mode (run label) -> why (that mode stops being run)
  std::map<Key, std::string> errors;          // points a program could not measure (an "error" line)
  long verify_failures = 0;                   // result lines with "verified": false
  double load_start = kNaN;

  // Runs `program` once in `mode`; false (and the mode recorded as failed) when it
  // fails or prints fewer results than `expected` lines. A line is a result when it has
  // `size` and `median_us` (or `error`: the point could not be measured).
  bool run(const std::string& program, const std::string& mode, const std::vector<std::string>& args, std::size_t expected,
           int round, const RunExtras& x = {}) {
    const std::string label = x.label.empty() ? mode : x.label;
    auto cmd = command(o, mode, program, args, x.launcher_args);
    commands[program + "/" + label] = join(cmd);
    std::vector<std::string> full{"timeout", "--foreground", "-k", "10", std::to_string(o.timeout)};
    full.insert(full.end(), cmd.begin(), cmd.end());
    std::fflush(stdout);
    fmt::print(stderr, "[round {}/{}] {} {} ...\n", round, o.rounds, program, label);
    std::fflush(stderr);
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
      std::string out;
      rc = 0;
      why.clear();
      bool stalled = false;
      try {
        rc = run_command(full, x.env, &out, static_cast<unsigned>(o.launch_timeout), &stalled);
      } catch (const std::exception& e) {
        rc = -1;
        why = e.what();
      }
      secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      lines = json::array();
      std::istringstream in(out);
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
                           lib_dir().string(), o.mpi);
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

  void finish() {
    for (auto& [k, s] : stats) s.finish();
  }

  const Stat* get(const std::string& program, const std::string& mode, std::uint64_t size, long c = -1) const {
    auto it = stats.find(Key{program, mode, size, c});
    return it == stats.end() || it->second.empty() ? nullptr : &it->second;
  }

  // Modes in the order of round r: reversed every other round (ABBA), so slow drifts
  // of the machine weigh on every mode alike.
  std::vector<std::string> order(int r) const {
    std::vector<std::string> m = o.modes;
    if (r % 2 == 0) std::reverse(m.begin(), m.end());
    return m;
  }
  bool wants(const std::string& mode) const { return !failed.count(mode); }
};

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
  return buf;
}

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// The 1-minute load average, or NaN.
double loadavg() {
  std::ifstream f("/proc/loadavg");
  double v = kNaN;
  if (!(f >> v)) return kNaN;
  return v;
}

// Timings on a busy machine are mostly scheduler waits: say so before and record it.
void warn_if_busy(Session& s) {
  s.load_start = loadavg();
  unsigned cores = std::thread::hardware_concurrency();
  if (cores > 0 && std::isfinite(s.load_start) && s.load_start > 0.5 * cores)
    fmt::print(stderr,
               "warning: this machine is busy (load average {:.1f} on {} cores): the ranks busy-poll, so timings will "
               "include scheduler waits; compare only alternated runs and mind the spread\n",
               s.load_start, cores);
}

json header(const Session& s, const std::string& bench) {
  json failures = json::object();
  for (const auto& [m, why] : s.failed) failures[m] = why;
  return {{"bench", bench},           {"tandem_version", "0.1.0"}, {"date", now_iso()},        {"host", hostname()},
          {"mpi", s.o.mpi},           {"where", s.o.where},        {"np", s.o.np},             {"rounds", s.o.rounds},
          {"modes", s.o.modes},       {"budget_s", s.o.budget},    {"commands", s.commands},   {"failures", failures},
          {"cores", std::thread::hardware_concurrency()},          {"loadavg_start", num(s.load_start)},
          {"loadavg_end", num(loadavg())}};
}

// Checks what the chosen modes and place need before anything runs.
void preflight(Options& o, bool drop_tandem_if_missing, std::string* dropped_why,
               const std::vector<std::string>& programs = {"pingpong", "overlap"}) {
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
    int rc = -1;
    try {
      rc = run_command({tandem_exe().string(), "vcluster", "status"}, {}, &out);
    } catch (const std::exception&) {
    }
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

std::string mode_label(const Options& o, const std::string& mode) {
  return mode == "tandem" ? "tandem on " + o.mpi : o.mpi + " (plain)";
}

plot::Axis axis(std::string label, plot::Scale scale, plot::Format format) {
  plot::Axis a;
  a.label = std::move(label);
  a.scale = scale;
  a.format = format;
  return a;
}
plot::Axis size_axis() { return axis("message size (bytes)", plot::Scale::Log, plot::Format::Bytes); }

plot::Series series(std::string name, std::string color, bool dashed = false, bool markers = true) {
  plot::Series r;
  r.name = std::move(name);
  r.color = std::move(color);
  r.dashed = dashed;
  r.markers = markers;
  return r;
}

plot::Panel panel(std::string title, plot::Axis x, plot::Axis y) {
  plot::Panel p;
  p.title = std::move(title);
  p.x = std::move(x);
  p.y = std::move(y);
  return p;
}

// Result of a benchmark: the document saved as JSON, the figure, and whether
// every requested mode ran to the end.
struct Outcome {
  json doc;
  plot::Figure figure;
  bool complete = true;
};

// ---- tandem bench pingpong ---------------------------------------------------------------

Outcome bench_pingpong(Options o) {
  preflight(o, false, nullptr);
  auto sizes = sizes_of(o, 4, 64u << 20);
  Session s(o);
  warn_if_busy(s);
  auto args = program_args(o, sizes);
  for (int r = 1; r <= o.rounds; ++r)
    for (const auto& m : s.order(r))
      if (s.wants(m)) s.run("pingpong", m, args, sizes.size(), r);
  s.finish();

  fmt::print("\nRound-trip time of MPI_Send/MPI_Recv, {} ranks, {} on {}: median over {} rounds of the per-run median, "
             "±half range over rounds\n",
             o.np, o.mpi, o.where, o.rounds);
  bool has_t = std::find(o.modes.begin(), o.modes.end(), "tandem") != o.modes.end();
  std::vector<std::string> head{"size"};
  for (const auto& m : o.modes) head.push_back(m), head.push_back(m + " best");
  if (has_t) head.push_back("tandem/plain");
  std::vector<std::vector<std::string>> rows;
  json points = json::array();
  for (auto size : sizes) {
    std::vector<std::string> row{fmt_size(size)};
    json p{{"size", size}};
    for (const auto& m : o.modes) {
      const Stat* st = s.get("pingpong", m, size);
      row.push_back(st ? st->cell() : "-");
      row.push_back(st ? fmt_time(st->best) : "-");
      p[m] = st ? st->to_json() : json(nullptr);
    }
    if (has_t) {
      const Stat *a = s.get("pingpong", "plain", size), *b = s.get("pingpong", "tandem", size);
      double ratio = a && b ? b->median / a->median : kNaN;
      row.push_back(fmt_ratio(ratio));
      p["tandem_over_plain"] = num(ratio);
      p["tandem_over_plain_best"] = a && b ? num(b->best / a->best) : json(nullptr);
    }
    rows.push_back(row);
    points.push_back(p);
  }
  print_table(head, rows);

  Outcome out;
  out.doc = header(s, "pingpong");
  out.doc["sizes"] = sizes;
  out.doc["results"] = points;
  out.doc["runs"] = s.runs;
  out.complete = s.failed.empty();

  plot::Panel lat = panel("Round-trip latency (" + o.mpi + ", " + o.where + ")", size_axis(),
                          axis("round-trip time", plot::Scale::Log, plot::Format::Microseconds));
  for (const auto& m : o.modes) {
    plot::Series ser = series(mode_label(o, m), m == "tandem" ? "#d62728" : "#1f77b4");
    for (auto size : sizes) {
      const Stat* st = s.get("pingpong", m, size);
      ser.x.push_back(static_cast<double>(size));
      ser.y.push_back(st ? st->median : kNaN);
      ser.lo.push_back(st ? st->lo : kNaN);
      ser.hi.push_back(st ? st->hi : kNaN);
    }
    lat.series.push_back(ser);
  }
  out.figure.panels.push_back(lat);
  if (has_t) {
    plot::Panel ov = panel("Overhead of tandem", size_axis(),
                           axis("tandem / plain round-trip time", plot::Scale::Linear, plot::Format::Number));
    plot::Series ser = series("tandem / plain (medians)", "#d62728");
    plot::Series one = series("1 (no overhead)", "#7f7f7f", true, false);
    for (auto size : sizes) {
      const Stat *a = s.get("pingpong", "plain", size), *b = s.get("pingpong", "tandem", size);
      ser.x.push_back(static_cast<double>(size));
      ser.y.push_back(a && b ? b->median / a->median : kNaN);
      one.x.push_back(static_cast<double>(size));
      one.y.push_back(1.0);
    }
    ov.series = {ser, one};
    out.figure.panels.push_back(ov);
  }
  return out;
}

// ---- tandem bench overlap ------------------------------------------------------------------

Outcome bench_overlap(Options o, const std::string& title_prefix = "") {
  auto sizes = sizes_of(o, 4096, 64u << 20);
  auto computes = computes_of(o);
  Session s(o);
  warn_if_busy(s);
  auto pp_args = program_args(o, sizes);
  auto ov_args = program_args(o, sizes);
  ov_args.insert(ov_args.end() - 1, {"-c", join_nums(computes)});
  std::size_t expected = sizes.size() * computes.size();
  for (int r = 1; r <= o.rounds; ++r) {
    // t_comm: the plain ping-pong, measured in the same invocation, every round.
    if (!s.run("pingpong", "plain", pp_args, sizes.size(), r))
      throw std::runtime_error("the plain ping-pong (t_comm) failed: " + s.failed["plain"]);
    for (const auto& m : s.order(r))
      if (s.wants(m)) s.run("overlap", m, ov_args, expected, r);
  }
  s.finish();

  bool has_p = std::find(o.modes.begin(), o.modes.end(), "plain") != o.modes.end();
  bool has_t = std::find(o.modes.begin(), o.modes.end(), "tandem") != o.modes.end();
  json points = json::array();
  fmt::print("\n{}Overlap microbenchmark, {} ranks, {} on {}: time per iteration, median over {} rounds of the per-run "
             "median (±half range over rounds)\n"
             "optimal = max(2 x compute, t_comm), t_comm = plain ping-pong round trip; speedup = plain / tandem;\n"
             "t.busy = CPU time of tandem's rank 0 (all threads, user + system) / wall time\n",
             title_prefix, o.np, o.mpi, o.where, o.rounds);
  plot::Figure fig;
  fig.title = fmt::format("Overlap microbenchmark: {}, {}, {} ranks", o.mpi, o.where, o.np);
  plot::Panel speed = panel("Speedup plain / tandem", size_axis(),
                            axis("speedup (plain / tandem)", plot::Scale::Linear, plot::Format::Number));
  const char* speed_colors[] = {"#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"};
  for (std::size_t ci = 0; ci < computes.size(); ++ci) {
    long c = computes[ci];
    double total = 2.0 * static_cast<double>(c);
    fmt::print("\ncompute 2 x {} us per iteration (t_compute = {})\n", c, fmt_time(total));
    std::vector<std::string> head{"size", "t_comm", "optimal"};
    for (const auto& m : o.modes) head.push_back(m);
    head.insert(head.end(), {"plain/opt"});
    if (has_t) head.insert(head.end(), {"tandem/opt", "speedup", "t.busy"});
    std::vector<std::vector<std::string>> rows;
    std::string ctitle = fmt::format("compute 2 × {}", plot::format_value(static_cast<double>(c), plot::Format::Microseconds));
    plot::Panel pan = panel(ctitle, size_axis(), axis("time per iteration", plot::Scale::Log, plot::Format::Microseconds));
    plot::Series sp = series(mode_label(o, "plain"), "#1f77b4");
    plot::Series st = series(mode_label(o, "tandem"), "#d62728");
    plot::Series opt = series("optimal max(t_compute, t_comm)", "#7f7f7f", true, false);
    plot::Series spd = series(ctitle, speed_colors[ci % std::size(speed_colors)]);
    for (auto size : sizes) {
      const Stat* comm = s.get("pingpong", "plain", size);
      const Stat* plain = s.get("overlap", "plain", size, c);
      const Stat* tand = s.get("overlap", "tandem", size, c);
      double t_comm = comm ? comm->median : kNaN;
      double optimal = std::max(total, std::isfinite(t_comm) ? t_comm : 0.0);
      double p_med = plain ? plain->median : kNaN, t_med = tand ? tand->median : kNaN;
      double p_opt = p_med / optimal, t_opt = t_med / optimal, speedup = p_med / t_med;
      std::vector<std::string> row{fmt_size(size), fmt_time(t_comm), fmt_time(optimal)};
      for (const auto& m : o.modes) row.push_back(m == "plain" ? (plain ? plain->cell() : "-") : (tand ? tand->cell() : "-"));
      row.push_back(fmt_ratio(p_opt));
      double t_busy = s.busy_of("overlap", "tandem", size, c);
      if (has_t)
        row.insert(row.end(), {fmt_ratio(t_opt), fmt_ratio(speedup), std::isfinite(t_busy) ? fmt::format("{:.0f}%", 100 * t_busy) : "-"});
      rows.push_back(row);

      std::vector<double> measured;
      for (const char* m : {"plain", "tandem"}) {
        auto it = s.compute_measured.find(Key{"overlap", m, size, c});
        if (it != s.compute_measured.end()) measured.insert(measured.end(), it->second.begin(), it->second.end());
      }
      json p{{"size", size},
             {"compute_us", c},
             {"compute_total_us", total},
             {"compute_measured_us", num(median_of(measured))},
             {"t_comm", comm ? comm->to_json() : json(nullptr)},
             {"t_comm_us", num(t_comm)},
             {"optimal_us", num(optimal)},
             {"t_compute_plus_t_comm_us", num(total + t_comm)},
             {"plain", plain ? plain->to_json() : json(nullptr)},
             {"tandem", tand ? tand->to_json() : json(nullptr)},
             {"plain_over_optimal", num(p_opt)},
             {"tandem_over_optimal", num(t_opt)},
             {"speedup", num(speedup)},
             {"plain_cpu_busy", num(s.busy_of("overlap", "plain", size, c))},
             {"tandem_cpu_busy", num(t_busy)},
             {"best",
              {{"optimal_us", num(std::max(total, comm ? comm->best : 0.0))},
               {"plain_over_optimal", num(plain ? plain->best / std::max(total, comm ? comm->best : 0.0) : kNaN)},
               {"tandem_over_optimal", num(tand ? tand->best / std::max(total, comm ? comm->best : 0.0) : kNaN)},
               {"speedup", num(plain && tand ? plain->best / tand->best : kNaN)}}}};
      points.push_back(p);

      double x = static_cast<double>(size);
      sp.x.push_back(x), sp.y.push_back(p_med), sp.lo.push_back(plain ? plain->lo : kNaN), sp.hi.push_back(plain ? plain->hi : kNaN);
      st.x.push_back(x), st.y.push_back(t_med), st.lo.push_back(tand ? tand->lo : kNaN), st.hi.push_back(tand ? tand->hi : kNaN);
      opt.x.push_back(x), opt.y.push_back(optimal);
      spd.x.push_back(x), spd.y.push_back(speedup);
    }
    print_table(head, rows);
    if (has_p) pan.series.push_back(sp);
    if (has_t) pan.series.push_back(st);
    pan.series.push_back(opt);
    fig.panels.push_back(pan);
    speed.series.push_back(spd);
  }
  if (has_t && has_p) {
    plot::Series one = series("1 (no gain)", "#7f7f7f", true, false);
    for (auto size : sizes) one.x.push_back(static_cast<double>(size)), one.y.push_back(1.0);
    speed.series.push_back(one);
    fig.panels.push_back(speed);
  }

  Outcome out;
  out.doc = header(s, "overlap");
  out.doc["sizes"] = sizes;
  out.doc["compute_us"] = computes;
  out.doc["results"] = points;
  out.doc["runs"] = s.runs;
  out.figure = fig;
  out.complete = s.failed.empty();
  return out;
}

// Writes the JSON document and the SVG figure when asked to.
void save(const Outcome& out, const std::string& json_file, const std::string& plot_file) {
  if (!json_file.empty()) {
    fs::path p(json_file);
    std::error_code ec;
    if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
    std::ofstream f(p);
    f << out.doc.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write " + json_file);
    fmt::print("results: {}\n", fs::absolute(p).string());
  }
  if (!plot_file.empty()) {
    plot::write_svg(out.figure, plot_file);
    fmt::print("plot:    {}\n", fs::absolute(plot_file).string());
  }
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
  cmd->add_option("--sizes", o.sizes, "Comma-separated message sizes in bytes (K/M suffixes allowed)")->delimiter(',');
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

// A subcommand's callback that runs `body` for its exit status: an exception becomes a
// message on standard error and status 1; a non-zero status ends the program with it.
template <class Body>
std::function<void()> exits_with(Body body) {
  return [body = std::move(body)] {
    int rc = 0;
    try {
      rc = body();
    } catch (const std::exception& e) {
      rc = hard_fail(e.what());
    }
    if (rc) throw CLI::RuntimeError(rc);
  };
}

// ---- tandem bench coll ----------------------------------------------------------------------
//
// Time mode: per round, one run of coll_bench timing every tandem algorithm and the MPI
// library's own collective (its default choice), and, with --ompi-algorithms, one run per
// algorithm of Open MPI's coll_tuned component forced (--only-mpi under
// `--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_<coll>_algorithm N`); the runs of
// a round alternate in ABBA order. Overlap mode: the plain blocking collective with compute
// after it, plain against `tandem run` with TANDEM_COLL_OVERLAP=1.

const char* const kCollProgram = "coll_bench";

struct CollBenchOptions {
  Options o;
  std::string coll = "allreduce";
  std::vector<std::string> algorithms{"all"};
  std::vector<std::string> segsizes;  // with `all`: segmented algorithms also at these segment sizes
  std::string begin, end, factor;     // -b/-e/-f; empty: the mode's default
  bool ompi = false;                  // --ompi-algorithms
  std::vector<int> ompi_numbers;      // only these (empty: all but 0)
  bool no_verify = false;
  std::string thread = "single";
  int root = 0;
  std::string rate;  // link rate for the bandwidth bound; empty: the virtual cluster's
  bool overlap = false;
  std::string tandem_algorithm;  // overlap mode: TANDEM_COLL_<COLL> under tandem
};

coll::Coll coll_of(const std::string& name) {
  auto c = coll::parse_coll(name);
  if (!c) {
    std::string known;
    for (coll::Coll x : coll::all_colls()) known += (known.empty() ? "" : ", ") + std::string(coll::coll_name(x));
    throw std::runtime_error(fmt::format("unknown collective `{}` (known: {})", name, known));
  }
  return *c;
}

bool is_reduction(coll::Coll c) {
  return c == coll::Coll::Reduce || c == coll::Coll::Allreduce || c == coll::Coll::ReduceScatterBlock;
}

// nccl-tests' conventions (as coll_bench prints them): the bytes a call moves as algbw
// counts them, and the factor from algbw to bus bandwidth.
double total_bytes_of(coll::Coll c, std::uint64_t n, int p) {
  switch (c) {
    case coll::Coll::Bcast: case coll::Coll::Reduce: case coll::Coll::Allreduce: return static_cast<double>(n);
    case coll::Coll::Barrier: return 0;
    default: return static_cast<double>(n) * p;
  }
}
double busbw_factor_of(coll::Coll c, int p) {
  double q = p;
  switch (c) {
    case coll::Coll::Allreduce: return 2 * (q - 1) / q;
    case coll::Coll::Bcast: case coll::Coll::Reduce: return 1;
    case coll::Coll::Barrier: return 0;
    default: return (q - 1) / q;
  }
}

std::string upper(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

std::vector<std::uint64_t> coll_sizes(const CollBenchOptions& cb, coll::Coll c) {
  if (c == coll::Coll::Barrier) return {0};
  std::vector<std::uint64_t> sizes;
  if (!cb.o.sizes.empty()) {
    for (const auto& t : cb.o.sizes) sizes.push_back(parse_bytes(t));
  } else {
    std::uint64_t b = parse_bytes(cb.begin.empty() ? (cb.overlap ? "4K" : "8") : cb.begin);
    std::uint64_t e = parse_bytes(cb.end.empty() ? "16M" : cb.end);
    std::uint64_t f = parse_bytes(cb.factor.empty() ? (cb.overlap ? "4" : "2") : cb.factor);
    if (f < 2) throw std::runtime_error("-f must be at least 2");
    for (std::uint64_t v = b; v <= e && sizes.size() < 256; v = v ? v * f : 1) sizes.push_back(v);
  }
  if (sizes.empty()) throw std::runtime_error("no message sizes (-b is above -e?)");
  for (auto v : sizes)
    if (is_reduction(c) && v % 4)
      throw std::runtime_error(fmt::format("size {} is not a multiple of 4: {} sums floats", v, cb.coll));
  return sizes;
}

// The tandem algorithms to time, as name[:segsize[:fanout]], checked.
std::vector<std::string> expand_algorithms(const CollBenchOptions& cb, coll::Coll c) {
  std::vector<std::string> out;
  auto add = [&](const std::string& a) {
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  };
  for (const auto& a : cb.algorithms) {
    if (a == "all") {
      for (const auto& alg : coll::algorithms(c)) {
        add(alg.name);
        if (alg.segmented)
          for (const auto& seg : cb.segsizes) add(std::string(alg.name) + ":" + seg);
      }
      continue;
    }
    std::string why;
    if (!coll::parse_choice(c, a, &why)) throw std::runtime_error(fmt::format("--algorithms: {}", why));
    add(a);
  }
  return out;
}

struct OmpiAlgorithm {
  int number;
  std::string name;
};

// Open MPI's coll_tuned algorithms of a collective, from ompi_info (0, "ignore", left out;
// two_proc only with 2 ranks: Open MPI refuses it on other counts).
std::vector<OmpiAlgorithm> ompi_algorithms(const CollBenchOptions& cb, std::vector<std::string>* skipped) {
  std::string out;
  int rc = -1;
  try {
    rc = run_command({"ompi_info", "--parsable", "--param", "coll", "tuned", "--level", "9"}, {}, &out);
  } catch (const std::exception&) {
  }
  if (rc != 0) throw std::runtime_error("--ompi-algorithms: `ompi_info --parsable --param coll tuned --level 9` failed");
  const std::string prefix = "mca:coll:tuned:param:coll_tuned_" + cb.coll + "_algorithm:enumerator:value:";
  std::vector<OmpiAlgorithm> algs;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::string rest = line.substr(prefix.size());
    auto colon = rest.find(':');
    if (colon == std::string::npos) continue;
    int n = std::atoi(rest.substr(0, colon).c_str());
    std::string name = rest.substr(colon + 1);
    if (n == 0) continue;
    if (!cb.ompi_numbers.empty() &&
        std::find(cb.ompi_numbers.begin(), cb.ompi_numbers.end(), n) == cb.ompi_numbers.end())
      continue;
    if (name.find("two_proc") != std::string::npos && cb.o.np != 2) {
      if (skipped) skipped->push_back(fmt::format("{} {} (2 ranks only)", n, name));
      continue;
    }
    algs.push_back({n, name});
  }
  if (algs.empty())
    throw std::runtime_error(fmt::format("--ompi-algorithms: ompi_info lists no coll_tuned_{}_algorithm values", cb.coll));
  return algs;
}

// The link rate in bits/s for the bandwidth bound: --rate, else the virtual cluster's; NaN on shm.
double link_rate(const CollBenchOptions& cb, std::string* note) {
  if (!cb.rate.empty()) return static_cast<double>(vcluster_parse_rate(cb.rate));
  if (cb.o.where != "vcluster") return kNaN;
  try {
    VclusterInfo info = vcluster_state();
    if (static_cast<std::size_t>(cb.o.np) > info.hosts.size() && note)
      *note = fmt::format("{} ranks on {} hosts: ranks share hosts, so the bound (one rank per link) does not hold",
                          cb.o.np, info.hosts.size());
    return static_cast<double>(info.rate_bps);
  } catch (const std::exception&) {
    return kNaN;
  }
}

std::vector<std::string> coll_program_args(const CollBenchOptions& cb, const std::vector<std::uint64_t>& sizes) {
  std::vector<std::string> a{"-c", cb.coll, "-s", join_nums(sizes), "-t", fmt::format("{}", cb.o.budget)};
  if (cb.o.iters > 0) a.insert(a.end(), {"-n", std::to_string(cb.o.iters)});
  if (cb.no_verify) a.push_back("--no-verify");
  if (cb.root) a.insert(a.end(), {"-r", std::to_string(cb.root)});
  return a;
}

std::string fmt_bw(double gbps) {  // GB/s -> text in MB/s or GB/s
  if (!std::isfinite(gbps)) return "-";
  return gbps >= 1 ? fmt::format("{:.3g} GB/s", gbps) : fmt::format("{:.3g} MB/s", gbps * 1e3);
}

// The result lines' verdict, after the tables.
void print_verification(const CollBenchOptions& cb, const Session& s) {
  if (cb.no_verify) return;
  fmt::print("verification: {}\n", s.verify_failures ? fmt::format("{} result line(s) with WRONG results", s.verify_failures)
                                                      : std::string("every result matched the collective's definition"));
}

json coll_header(const Session& s, const CollBenchOptions& cb, const char* mode) {
  json doc = header(s, "coll");
  doc["coll"] = cb.coll;
  doc["mode"] = mode;
  doc["root"] = cb.root;
  return doc;
}

Outcome bench_coll_time(CollBenchOptions cb) {
  Options& o = cb.o;
  const coll::Coll c = coll_of(cb.coll);
  auto sizes = coll_sizes(cb, c);
  auto algs = expand_algorithms(cb, c);
  std::vector<std::string> skipped;
  std::vector<OmpiAlgorithm> forced;
  if (cb.ompi) {
    if (o.mpi != "openmpi") throw std::runtime_error("--ompi-algorithms needs --mpi openmpi");
    forced = ompi_algorithms(cb, &skipped);
  }
  std::string rate_note;
  const double rate = link_rate(cb, &rate_note);
  const double factor = busbw_factor_of(c, o.np);

  Session s(o);
  warn_if_busy(s);
  struct Plan {
    std::string label;
    std::vector<std::string> args;
    RunExtras x;
    std::size_t expected;
  };
  std::vector<Plan> plans;
  auto base = coll_program_args(cb, sizes);
  {
    Plan p{"tandem+mpi", base, {}, sizes.size() * (algs.size() + 1)};
    p.args.insert(p.args.end(), {"-a", join(algs, ","), "--thread", cb.thread, "--json"});
    p.x.label = p.label;
    p.x.key = [](const json& j) -> std::optional<Key> {
      std::string v = j.value("variant", "");
      std::string series = v == "mpi" ? "mpi:same-run" : "tandem:" + j.value("algorithm", "");
      return Key{kCollProgram, series, j["size"].get<std::uint64_t>(), -1};
    };
    plans.push_back(std::move(p));
  }
  {
    // The MPI library's default in a run of its own, as the forced ones: interleaved with
    // tandem's calls it reads slower (measured on shm: 5-8 us alone, 10-13 us interleaved).
    Plan p{"mpi", base, {}, sizes.size()};
    p.args.insert(p.args.end(), {"--only-mpi", "--thread", cb.thread, "--json"});
    p.x.label = p.label;
    p.x.key = [](const json& j) -> std::optional<Key> {
      return Key{kCollProgram, "mpi", j["size"].get<std::uint64_t>(), -1};
    };
    plans.push_back(std::move(p));
  }
  for (const auto& f : forced) {
    Plan p{fmt::format("ompi:{}", f.number), base, {}, sizes.size()};
    p.args.insert(p.args.end(), {"--only-mpi", "--thread", cb.thread, "--json"});
    p.x.label = p.label;
    p.x.launcher_args = {"--mca", "coll_tuned_use_dynamic_rules", "1",
                         "--mca", fmt::format("coll_tuned_{}_algorithm", cb.coll), std::to_string(f.number)};
    std::string series = p.label;
    p.x.key = [series](const json& j) -> std::optional<Key> {
      return Key{kCollProgram, series, j["size"].get<std::uint64_t>(), -1};
    };
    plans.push_back(std::move(p));
  }
  for (const auto& sk : skipped) fmt::print(stderr, "note: Open MPI algorithm {} is left out\n", sk);
  for (int r = 1; r <= o.rounds; ++r) {
    std::vector<std::size_t> order(plans.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (r % 2 == 0) std::reverse(order.begin(), order.end());
    for (auto i : order)
      if (s.wants(plans[i].label)) s.run(kCollProgram, "plain", plans[i].args, plans[i].expected, r, plans[i].x);
  }
  s.finish();

  auto stat = [&](const std::string& series, std::uint64_t size) { return s.get(kCollProgram, series, size); };
  auto busbw = [&](std::uint64_t size, double us) {  // GB/s
    return us > 0 ? total_bytes_of(c, size, o.np) * factor / (us * 1e-6) / 1e9 : kNaN;
  };
  auto med = [](const Stat* st) { return st ? st->median : kNaN; };

  // Every series, one column each.
  std::vector<std::pair<std::string, std::string>> cols;  // series, heading
  for (const auto& a : algs) cols.emplace_back("tandem:" + a, a);
  cols.emplace_back("mpi:same-run", "default (with tandem's)");
  cols.emplace_back("mpi", o.mpi + " default");
  for (const auto& f : forced) cols.emplace_back(fmt::format("ompi:{}", f.number), fmt::format("{}:{}", f.number, f.name));
  fmt::print("\n{} on {} ranks, {} on {}: time per call (slowest rank), median over {} round{} of the per-run median\n",
             cb.coll, o.np, o.mpi, o.where, o.rounds, o.rounds == 1 ? "" : "s");
  {
    std::vector<std::string> head{"size"};
    for (const auto& [series, h] : cols) head.push_back(h);
    std::vector<std::vector<std::string>> rows;
    for (auto size : sizes) {
      std::vector<std::string> row{fmt_size(size)};
      for (const auto& [series, h] : cols) {
        const Stat* st = stat(series, size);
        row.push_back(st ? fmt_time(st->median) : s.errors.count(Key{kCollProgram, series, size, -1}) ? "refused" : "-");
      }
      rows.push_back(row);
    }
    print_table(head, rows);
  }

  const bool have_rate = std::isfinite(rate) && rate > 0;
  json points = json::array();
  std::vector<std::vector<std::string>> rows;
  int n_points = 0, within = 0, faster = 0;
  plot::Series s_best = series("tandem best", "#d62728"), s_def = series(o.mpi + " default", "#1f77b4"),
               s_ompi = series("Open MPI best forced", "#2ca02c");
  plot::Series bw_best = s_best, bw_def = s_def, bw_ompi = s_ompi, bw_link = series("link rate", "#7f7f7f", true, false);
  plot::Series r_ompi = series("tandem best / Open MPI best forced", "#2ca02c"),
               r_def = series(o.mpi + " default / tandem best", "#1f77b4");
  for (auto size : sizes) {
    json p{{"size", size}, {"total_bytes", total_bytes_of(c, size, o.np)}, {"busbw_factor", num(factor)}};
    json ser = json::object(), errs = json::object();
    std::string best_alg;
    const Stat* best = nullptr;
    for (const auto& [sname, h] : cols) {
      const Stat* st = stat(sname, size);
      auto e = s.errors.find(Key{kCollProgram, sname, size, -1});
      if (e != s.errors.end()) errs[sname] = e->second;
      if (!st) continue;
      json sj = st->to_json();
      sj["busbw_GBps"] = num(busbw(size, st->median));
      ser[sname] = sj;
      if (sname.rfind("tandem:", 0) == 0 && (!best || st->median < best->median)) best = st, best_alg = h;
    }
    const Stat* def = stat("mpi", size);
    const Stat* obest = nullptr;
    const OmpiAlgorithm* oalg = nullptr;
    for (const auto& f : forced) {
      const Stat* st = stat(fmt::format("ompi:{}", f.number), size);
      if (st && (!obest || st->median < obest->median)) obest = st, oalg = &f;
    }
    double t_best = med(best), t_def = med(def), t_ompi = med(obest);
    double r1 = t_best / t_ompi, r2 = t_def / t_best;
    double bound = have_rate && size ? total_bytes_of(c, size, o.np) * factor / (rate / 8) * 1e6 : kNaN;
    p["series"] = ser;
    if (!errs.empty()) p["errors"] = errs;
    p["tandem_best"] = best ? json{{"algorithm", best_alg}, {"median_us", num(t_best)}, {"busbw_GBps", num(busbw(size, t_best))}}
                            : json(nullptr);
    p["mpi_default"] = def ? json{{"median_us", num(t_def)}, {"busbw_GBps", num(busbw(size, t_def))}} : json(nullptr);
    p["mpi_default_over_tandem_best"] = num(r2);
    if (cb.ompi) {
      p["ompi_best_forced"] = obest ? json{{"number", oalg->number}, {"name", oalg->name}, {"median_us", num(t_ompi)}}
                                    : json(nullptr);
      p["tandem_best_over_ompi_best"] = num(r1);
    }
    if (have_rate) {
      p["bound_us"] = num(bound);
      p["tandem_best_over_bound"] = num(t_best / bound);
    }
    points.push_back(p);
    if (best && def) {
      ++n_points;
      if (r2 >= 1.3) ++faster;
      if (cb.ompi && obest && r1 <= 1.05) ++within;
    }
    std::vector<std::string> row{fmt_size(size), best ? best_alg : "-", fmt_time(t_best), fmt_bw(busbw(size, t_best)),
                                 fmt_time(t_def)};
    if (cb.ompi)
      row.insert(row.end(), {oalg ? fmt::format("{}:{}", oalg->number, oalg->name) : "-", fmt_time(t_ompi), fmt_ratio(r1)});
    row.push_back(fmt_ratio(r2));
    if (have_rate) row.insert(row.end(), {fmt_time(bound), fmt_ratio(t_best / bound)});
    rows.push_back(row);

    double x = static_cast<double>(size);
    auto add = [&](plot::Series& sr, double y, const Stat* st) {
      sr.x.push_back(x), sr.y.push_back(y);
      sr.lo.push_back(st ? st->lo : kNaN), sr.hi.push_back(st ? st->hi : kNaN);
    };
    add(s_best, t_best, best), add(s_def, t_def, def), add(s_ompi, t_ompi, obest);
    bw_best.x.push_back(x), bw_best.y.push_back(busbw(size, t_best) * 1e3);
    bw_def.x.push_back(x), bw_def.y.push_back(busbw(size, t_def) * 1e3);
    bw_ompi.x.push_back(x), bw_ompi.y.push_back(busbw(size, t_ompi) * 1e3);
    bw_link.x.push_back(x), bw_link.y.push_back(have_rate ? rate / 8 / 1e6 : kNaN);
    r_ompi.x.push_back(x), r_ompi.y.push_back(r1);
    r_def.x.push_back(x), r_def.y.push_back(r2);
  }
  fmt::print("\nSummary: tandem's fastest algorithm per size against {}'s default{}; busbw = bus bandwidth "
             "(nccl-tests: algbw x {:.3g})\n",
             o.mpi, cb.ompi ? " and the fastest of Open MPI's algorithms forced one by one" : "", factor);
  {
    std::vector<std::string> head{"size", "tandem best", "time", "busbw", o.mpi + " default"};
    if (cb.ompi) head.insert(head.end(), {"ompi best forced", "time", "tandem/ompi"});
    head.push_back("default/tandem");
    if (have_rate) head.insert(head.end(), {"bw bound", "tandem/bound"});
    print_table(head, rows);
  }
  json summary{{"sizes", n_points}, {"mpi_default_over_tandem_ge_1_3", faster}};
  if (cb.ompi) summary["tandem_within_1_05_of_ompi_best"] = within;
  fmt::print("\n");
  if (cb.ompi)
    fmt::print("tandem best <= 1.05 x Open MPI's best forced algorithm at {} of {} sizes\n", within, n_points);
  fmt::print("tandem best >= 1.3x faster than {}'s default at {} of {} sizes\n", o.mpi, faster, n_points);
  if (have_rate)
    fmt::print("bound = busbw_factor x bytes / link rate ({}), one rank per link{}\n", fmt_bw(rate / 8 / 1e9),
               rate_note.empty() ? "" : "; " + rate_note);
  if (!s.errors.empty())
    fmt::print("refused: {} point(s) an algorithm could not run (see the JSON's errors)\n", s.errors.size());
  print_verification(cb, s);

  Outcome out;
  out.doc = coll_header(s, cb, "time");
  out.doc["thread"] = cb.thread;
  out.doc["algorithms"] = algs;
  json fj = json::array();
  for (const auto& f : forced) fj.push_back({{"number", f.number}, {"name", f.name}});
  out.doc["ompi_algorithms"] = fj;
  out.doc["ompi_algorithms_skipped"] = skipped;
  out.doc["link_rate_bps"] = num(rate);
  out.doc["verified"] = cb.no_verify ? json(nullptr) : json(s.verify_failures == 0);
  out.doc["sizes"] = sizes;
  out.doc["summary"] = summary;
  out.doc["results"] = points;
  out.doc["runs"] = s.runs;
  out.complete = s.failed.empty();

  plot::Figure& fig = out.figure;
  fig.title = fmt::format("{}: {} ranks, {}, {}", cb.coll, o.np, o.mpi, o.where);
  // Not the colours of the summary series (MPI default blue, tandem best red, Open MPI best green);
  // past the palette, the colours repeat dashed.
  const char* palette[] = {"#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
                           "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94"};
  plot::Panel pt = panel("tandem's algorithms", size_axis(), axis("time per call", plot::Scale::Log, plot::Format::Microseconds));
  plot::Panel po = panel("Open MPI's algorithms forced", size_axis(), axis("time per call", plot::Scale::Log, plot::Format::Microseconds));
  std::size_t ti = 0, oi = 0;
  for (const auto& [sname, h] : cols) {
    bool is_t = sname.rfind("tandem:", 0) == 0, is_o = sname.rfind("ompi:", 0) == 0;
    if (!is_t && !is_o) continue;
    std::size_t k = is_t ? ti++ : oi++;
    plot::Series sr = series(h, palette[k % std::size(palette)], k >= std::size(palette));
    for (auto size : sizes) {
      const Stat* st = stat(sname, size);
      sr.x.push_back(static_cast<double>(size)), sr.y.push_back(med(st));
    }
    (is_t ? pt : po).series.push_back(sr);
  }
  pt.series.push_back(s_def);
  fig.panels.push_back(pt);
  if (cb.ompi) {
    po.series.push_back(s_def);
    plot::Series env = s_best;
    env.dashed = true;
    po.series.push_back(env);
    fig.panels.push_back(po);
  }
  plot::Panel pb = panel("Bus bandwidth", size_axis(), axis("busbw (MB/s)", plot::Scale::Log, plot::Format::Number));
  pb.series = {bw_best, bw_def};
  if (cb.ompi) pb.series.push_back(bw_ompi);
  if (have_rate) pb.series.push_back(bw_link);
  fig.panels.push_back(pb);
  plot::Panel pr = panel("Ratios", size_axis(), axis("ratio of times", plot::Scale::Log, plot::Format::Number));
  pr.series = {r_def};
  if (cb.ompi) pr.series.push_back(r_ompi);
  plot::Series one = series("1", "#7f7f7f", true, false);
  for (auto size : sizes) one.x.push_back(static_cast<double>(size)), one.y.push_back(1.0);
  pr.series.push_back(one);
  fig.panels.push_back(pr);
  return out;
}

Outcome bench_coll_overlap(CollBenchOptions cb) {
  Options& o = cb.o;
  const coll::Coll c = coll_of(cb.coll);
  if (c == coll::Coll::Barrier) throw std::runtime_error("--overlap: MPI_Barrier never overlaps (waiting is its meaning)");
  auto sizes = coll_sizes(cb, c);
  if (!cb.tandem_algorithm.empty()) {
    std::string why;
    if (cb.tandem_algorithm != "mpi" && !coll::parse_choice(c, cb.tandem_algorithm, &why))
      throw std::runtime_error("--tandem-algorithm: " + why);
  }
  Session s(o);
  warn_if_busy(s);
  auto base = coll_program_args(cb, sizes);
  auto key_as = [](const std::string& series) {
    return [series](const json& j) -> std::optional<Key> {
      return Key{kCollProgram, series, j["size"].get<std::uint64_t>(), -1};
    };
  };
  auto args_with = [&](const std::vector<std::string>& compute) {
    auto a = base;
    a.insert(a.end(), {"--overlap", join(compute, ","), "--json"});
    return a;
  };

  // Compute per size: given, or the plain collective's time measured first.
  std::vector<std::string> compute;
  bool calibrated = false;
  if (!o.compute.empty()) {
    for (const auto& t : o.compute) compute.push_back(std::to_string(parse_compute_us(t, "microseconds")));
    if (compute.size() != 1 && compute.size() != sizes.size())
      throw std::runtime_error(fmt::format("--compute takes one time or one per size ({})", sizes.size()));
    if (compute.size() == 1) compute.assign(sizes.size(), compute[0]);
  } else {
    RunExtras x;
    x.label = "calibration";
    x.key = key_as("calibration");
    if (!s.run(kCollProgram, "plain", args_with({"0"}), sizes.size(), 0, x))
      throw std::runtime_error("the calibration run (plain, no compute) failed: " + s.failed["calibration"]);
    s.finish();
    for (auto size : sizes) {
      const Stat* st = s.get(kCollProgram, "calibration", size);
      compute.push_back(std::to_string(st ? std::max(1L, std::lround(st->median)) : 1L));
    }
    calibrated = true;
  }

  RunExtras tcoll, plain, tand;
  tcoll.label = "t_coll", tcoll.key = key_as("t_coll");
  plain.label = "plain", plain.key = key_as("plain");
  tand.label = "tandem", tand.key = key_as("tandem");
  tand.env = {{"TANDEM_COLL_OVERLAP", "1"}};
  if (!cb.tandem_algorithm.empty()) tand.env.emplace_back("TANDEM_COLL_" + upper(cb.coll), cb.tandem_algorithm);
  auto zero = args_with({"0"}), with = args_with(compute);
  for (int r = 1; r <= o.rounds; ++r) {
    // t_coll: the plain collective without compute, in the same invocation, every round.
    if (!s.run(kCollProgram, "plain", zero, sizes.size(), r, tcoll))
      throw std::runtime_error("the plain collective without compute (t_coll) failed: " + s.failed["t_coll"]);
    for (const auto& m : s.order(r))
      if (s.wants(m)) s.run(kCollProgram, m, with, sizes.size(), r, m == "tandem" ? tand : plain);
  }
  s.finish();

  bool has_p = std::find(o.modes.begin(), o.modes.end(), "plain") != o.modes.end();
  bool has_t = std::find(o.modes.begin(), o.modes.end(), "tandem") != o.modes.end();
  fmt::print("\n{} overlap, {} ranks, {} on {}: MPI_{} (blocking), compute, touch the buffers; median over {} rounds "
             "(±half range)\noptimal = max(t_compute, t_coll): t_compute = the compute phase on every rank at once "
             "(`alone`; above nominal where ranks share cores), t_coll = the plain collective without compute;\n"
             "tandem: TANDEM_COLL_OVERLAP=1{}\n",
             cb.coll, o.np, o.mpi, o.where,
             static_cast<char>(std::toupper(static_cast<unsigned char>(cb.coll[0]))) + cb.coll.substr(1), o.rounds,
             cb.tandem_algorithm.empty() ? " (the MPI library's nonblocking collective)"
                                         : ", TANDEM_COLL_" + upper(cb.coll) + "=" + cb.tandem_algorithm);
  std::vector<std::string> head{"size", "compute", "alone", "t_coll", "optimal"};
  for (const auto& m : o.modes) head.push_back(m);
  if (has_p) head.push_back("plain/opt");
  if (has_t) head.push_back("tandem/opt");
  if (has_p && has_t) head.push_back("speedup");
  std::vector<std::vector<std::string>> rows;
  json points = json::array();
  plot::Series sp = series(mode_label(o, "plain"), "#1f77b4"), st = series(mode_label(o, "tandem"), "#d62728"),
               so = series("optimal max(t_compute alone, t_coll)", "#7f7f7f", true, false),
               sc = series("t_coll (plain, no compute)", "#2ca02c", true);
  plot::Series rp = series("plain / optimal", "#1f77b4"), rt = series("tandem / optimal", "#d62728");
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    auto size = sizes[k];
    double cu = std::stod(compute[k]);
    const Stat *tc = s.get(kCollProgram, "t_coll", size), *pl = s.get(kCollProgram, "plain", size),
               *ta = s.get(kCollProgram, "tandem", size);
    double t_coll = tc ? tc->median : kNaN;
    // The compute phase as it really runs: on every rank at once (ranks sharing cores take
    // longer than nominal), median over the plain and tandem runs.
    std::vector<double> alone_v;
    for (const char* m : {"plain", "tandem"}) {
      auto it = s.compute_alone.find(Key{kCollProgram, m, size, -1});
      if (it != s.compute_alone.end()) alone_v.insert(alone_v.end(), it->second.begin(), it->second.end());
    }
    double alone = median_of(alone_v);
    double t_compute = std::isfinite(alone) ? std::max(cu, alone) : cu;
    double optimal = std::max(t_compute, std::isfinite(t_coll) ? t_coll : 0.0);
    double p_med = pl ? pl->median : kNaN, t_med = ta ? ta->median : kNaN;
    std::vector<std::string> row{fmt_size(size), fmt_time(cu), fmt_time(alone), tc ? tc->cell() : "-", fmt_time(optimal)};
    for (const auto& m : o.modes) row.push_back(m == "plain" ? (pl ? pl->cell() : "-") : (ta ? ta->cell() : "-"));
    if (has_p) row.push_back(fmt_ratio(p_med / optimal));
    if (has_t) row.push_back(fmt_ratio(t_med / optimal));
    if (has_p && has_t) row.push_back(fmt_ratio(p_med / t_med));
    rows.push_back(row);
    std::vector<double> measured;
    for (const char* m : {"plain", "tandem"}) {
      auto it = s.compute_measured.find(Key{kCollProgram, m, size, -1});
      if (it != s.compute_measured.end()) measured.insert(measured.end(), it->second.begin(), it->second.end());
    }
    points.push_back({{"size", size},
                      {"compute_us", cu},
                      {"compute_measured_us", num(median_of(measured))},
                      {"compute_alone_us", num(alone)},
                      {"t_compute_us", num(t_compute)},
                      {"optimal_nominal_us", num(std::max(cu, std::isfinite(t_coll) ? t_coll : 0.0))},
                      {"t_coll", tc ? tc->to_json() : json(nullptr)},
                      {"t_coll_us", num(t_coll)},
                      {"optimal_us", num(optimal)},
                      {"t_compute_plus_t_coll_us", num(t_compute + t_coll)},
                      {"plain", pl ? pl->to_json() : json(nullptr)},
                      {"tandem", ta ? ta->to_json() : json(nullptr)},
                      {"plain_over_optimal", num(p_med / optimal)},
                      {"tandem_over_optimal", num(t_med / optimal)},
                      {"speedup", num(p_med / t_med)}});
    double x = static_cast<double>(size);
    sp.x.push_back(x), sp.y.push_back(p_med), sp.lo.push_back(pl ? pl->lo : kNaN), sp.hi.push_back(pl ? pl->hi : kNaN);
    st.x.push_back(x), st.y.push_back(t_med), st.lo.push_back(ta ? ta->lo : kNaN), st.hi.push_back(ta ? ta->hi : kNaN);
    so.x.push_back(x), so.y.push_back(optimal);
    sc.x.push_back(x), sc.y.push_back(t_coll);
    rp.x.push_back(x), rp.y.push_back(p_med / optimal);
    rt.x.push_back(x), rt.y.push_back(t_med / optimal);
  }
  print_table(head, rows);
  print_verification(cb, s);

  Outcome out;
  out.doc = coll_header(s, cb, "overlap");
  out.doc["compute_from"] = calibrated ? "calibration run (plain, no compute)" : "--compute";
  out.doc["tandem_env"] = [&] {
    json e = json::object();
    for (const auto& [k, v] : tand.env) e[k] = v;
    return e;
  }();
  out.doc["verified"] = cb.no_verify ? json(nullptr) : json(s.verify_failures == 0);
  out.doc["sizes"] = sizes;
  out.doc["results"] = points;
  out.doc["runs"] = s.runs;
  out.complete = s.failed.empty();
  plot::Panel pan = panel(fmt::format("{} + compute (= t_coll unless given)", cb.coll), size_axis(),
                          axis("time per iteration", plot::Scale::Log, plot::Format::Microseconds));
  if (has_p) pan.series.push_back(sp);
  if (has_t) pan.series.push_back(st);
  pan.series.push_back(so);
  pan.series.push_back(sc);
  plot::Panel rat = panel("Relative to optimal", size_axis(), axis("time / optimal", plot::Scale::Linear, plot::Format::Number));
  if (has_p) rat.series.push_back(rp);
  if (has_t) rat.series.push_back(rt);
  plot::Series one = series("1 (optimal)", "#7f7f7f", true, false);
  for (auto size : sizes) one.x.push_back(static_cast<double>(size)), one.y.push_back(1.0);
  rat.series.push_back(one);
  out.figure.title = fmt::format("{} overlap: {} ranks, {}, {}", cb.coll, o.np, o.mpi, o.where);
  out.figure.panels = {pan, rat};
  return out;
}

int run_bench_coll(CollBenchOptions cb) {
  Options& o = cb.o;
  if (cb.thread != "single" && cb.thread != "multiple") throw std::runtime_error("--thread takes single or multiple");
  if (cb.root < 0 || cb.root >= o.np) throw std::runtime_error("--root out of range");
  if (!cb.overlap) o.modes = {"plain"};  // the program links tandem's collectives itself
  preflight(o, false, nullptr, {kCollProgram});
  Outcome out = cb.overlap ? bench_coll_overlap(cb) : bench_coll_time(cb);
  save(out, o.json_file, o.plot_file);
  if (!out.complete) {
    std::string why;
    for (const auto& [m, w] : out.doc["failures"].items()) why += "\n  " + w.get<std::string>();
    return hard_fail("some runs failed:" + why);
  }
  return 0;
}

// ---- tandem demo ---------------------------------------------------------------------------

struct DemoOptions {
  Options o;
  std::string where = "auto";
  std::string out_dir = "results";
  std::string rate = "1gbit";
};

int run_demo(DemoOptions d) {
  Options& o = d.o;
  auto quiet = [](const std::vector<std::string>& argv) {
    std::string out;
    try {
      return run_command(argv, {}, &out);
    } catch (const std::exception&) {
      return -1;
    }
  };
  const std::string tandem = tandem_exe().string();
  bool started_cluster = false;
  std::string where_note;
  if (d.where == "shm") {
    o.where = "shm";
    where_note = "shared memory (--where shm)";
  } else {
    int st = quiet({tandem, "vcluster", "status"});
    if (st == 0) {
      o.where = "vcluster";
      where_note = "the virtual cluster that is up";
    } else {
      fmt::print(stderr, "demo: no virtual cluster is up; trying `tandem vcluster up --hosts 2 --rate {}`\n", d.rate);
      int up = -1;
      try {
        up = run_command({tandem, "vcluster", "up", "--hosts", "2", "--rate", d.rate});
      } catch (const std::exception& e) {
        fmt::print(stderr, "demo: {}\n", e.what());
      }
      if (up == 0) {
        o.where = "vcluster";
        started_cluster = true;
        where_note = fmt::format("a virtual cluster of 2 hosts at {} started for the demo", d.rate);
      } else if (d.where == "vcluster") {
        return hard_fail(fmt::format("--where vcluster: `tandem vcluster up` failed (exit {})", up));
      } else {
        o.where = "shm";
        where_note = fmt::format("shared memory, because no virtual cluster could be made (`tandem vcluster up` "
                                 "exited {}; see its message above)",
                                 up);
        fmt::print(stderr, "demo: falling back to {}\n", where_note);
      }
    }
  }
  // Take a cluster we started down on every way out.
  struct Down {
    std::function<void()> f;
    ~Down() { f(); }
  } down{[&] {
    if (!started_cluster) return;
    fmt::print(stderr, "demo: taking the virtual cluster down\n");
    try {
      run_command({tandem, "vcluster", "down"});
    } catch (const std::exception&) {
    }
  }};

  std::string dropped;
  preflight(o, true, &dropped);
  if (!dropped.empty()) fmt::print(stderr, "warning: {}; the demo runs plain MPI only\n", dropped);
  fmt::print("tandem demo: the overlap benchmark with and without tandem, {} on {}\n", o.mpi, where_note);
  Outcome out = bench_overlap(o);
  out.doc["demo"] = {{"where_note", where_note}, {"tandem_skipped", dropped.empty() ? json(nullptr) : json(dropped)}};
  fs::path dir(d.out_dir);
  std::string stem = fmt::format("demo_overlap_{}_{}", o.mpi, o.where);
  save(out, (dir / (stem + ".json")).string(), (dir / (stem + ".svg")).string());
  if (!dropped.empty()) return hard_fail("tandem mode was not measured: " + dropped);
  if (!out.complete) {
    std::string why;
    for (const auto& [m, w] : out.doc["failures"].items()) why += "\n  " + w.get<std::string>();
    return hard_fail("some runs failed:" + why);
  }
  return 0;
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks: MPI round-trip time and overlap, plain MPI against tandem; "
                                            "collectives");
  bench->require_subcommand(1);

  {
    auto o = std::make_shared<Options>();
    auto* cmd = bench->add_subcommand("pingpong", "Round-trip time of MPI_Send/MPI_Recv (the overhead of tandem)");
    add_common(cmd, *o);
    cmd->add_option("--json", o->json_file, "Write all results to this JSON file");
    cmd->add_option("--plot", o->plot_file, "Write an SVG plot to this file");
    cmd->callback(exits_with([o] {
      Outcome out = bench_pingpong(*o);
      save(out, o->json_file, o->plot_file);
      return out.complete ? 0 : hard_fail("some runs failed (see above); their mode is missing from the results");
    }));
  }
  {
    auto o = std::make_shared<Options>();
    auto* cmd = bench->add_subcommand("overlap", "The overlap microbenchmark: compute between blocking send and receive");
    add_common(cmd, *o);
    cmd->add_option("--compute", o->compute, "Comma-separated compute times per phase, in microseconds (default 200,2000,20000)")
        ->delimiter(',');
    cmd->add_option("--json", o->json_file, "Write all results to this JSON file");
    cmd->add_option("--plot", o->plot_file, "Write an SVG plot to this file");
    cmd->callback(exits_with([o] {
      Options opts = *o;
      preflight(opts, false, nullptr);
      Outcome out = bench_overlap(opts);
      save(out, o->json_file, o->plot_file);
      return out.complete ? 0 : hard_fail("some runs failed (see above); their mode is missing from the results");
    }));
  }
  {
    auto cb = std::make_shared<CollBenchOptions>();
    cb->o.rounds = 3;
    auto* cmd = bench->add_subcommand(
        "coll", "One collective: tandem's algorithms against the MPI library's own (and Open MPI's forced one by one); "
                "--overlap: the blocking collective with compute after it, plain against tandem");
    add_common(cmd, cb->o);
    cmd->get_option("--np")->description("Number of ranks");
    cmd->get_option("--rounds")->description("Runs of each kind, alternating (ABBA) between the kinds");
    cmd->get_option("--modes")->description("Overlap mode: plain (the MPI alone) and tandem (under `tandem run`)");
    cmd->get_option("--sizes")->description("Comma-separated message sizes in bytes, one rank's contribution (overrides -b/-e/-f)");
    cmd->get_option("--budget")->description("Seconds of timing per size and algorithm (the program's -t)");
    cmd->add_option("--coll,-c", cb->coll, "The collective: bcast, reduce, allreduce, allgather, alltoall, gather, scatter, "
                                           "reduce_scatter_block, barrier")
        ->capture_default_str();
    cmd->add_option("--algorithms,-a", cb->algorithms, "tandem's algorithms, name[:segsize[:fanout]], or all")
        ->delimiter(',')
        ->capture_default_str();
    cmd->add_option("--segsizes", cb->segsizes, "With `all`: also run every segmented algorithm at these segment sizes")
        ->delimiter(',');
    cmd->add_option("-b,--begin", cb->begin, "First size (default 8; overlap 4K)");
    cmd->add_option("-e,--end", cb->end, "Last size (default 16M)");
    cmd->add_option("-f,--factor", cb->factor, "Factor between sizes (default 2; overlap 4)");
    cmd->add_flag("--ompi-algorithms", cb->ompi,
                  "Also time Open MPI's coll_tuned algorithms of the collective forced one by one (from ompi_info)");
    cmd->add_option("--ompi-numbers", cb->ompi_numbers, "With --ompi-algorithms: only these algorithm numbers")
        ->delimiter(',');
    cmd->add_flag("--no-verify", cb->no_verify, "Do not check the results");
    cmd->add_option("--thread", cb->thread, "MPI thread level the program asks for: single (tandem's collectives "
                                            "progress in wait(), as a blocking call's do: the default) or multiple (tandem's "
                                            "progress thread runs too)")
        ->check(CLI::IsMember({"single", "multiple"}))
        ->capture_default_str();
    cmd->add_option("--root", cb->root, "Root of bcast, reduce, gather, scatter")->capture_default_str();
    cmd->add_option("--rate", cb->rate, "Link rate for the bandwidth bound, e.g. 1gbit (default: the virtual cluster's)");
    cmd->add_flag("--overlap", cb->overlap, "Overlap mode: blocking collective, compute, touch the buffers");
    cmd->add_option("--compute", cb->o.compute,
                    "Overlap mode: compute in us, one value or one per size (default: the plain collective's time)")
        ->delimiter(',');
    cmd->add_option("--tandem-algorithm", cb->tandem_algorithm,
                    "Overlap mode: TANDEM_COLL_<COLL> for the tandem runs (default: the MPI library's nonblocking "
                    "collective)");
    cmd->add_option("--json", cb->o.json_file, "Write all results to this JSON file");
    cmd->add_option("--plot", cb->o.plot_file, "Write an SVG plot to this file");
    cmd->callback(exits_with([cb] { return run_bench_coll(*cb); }));
  }
  {
    auto d = std::make_shared<DemoOptions>();
    d->o.rounds = 3;
    d->o.compute = {"2000"};
    d->o.budget = 0.5;
    // A run normally takes under a minute; bound a stuck launch (seen now and then with
    // Open MPI on the virtual cluster, with and without tandem) well below the default.
    d->o.timeout = 120;
    auto* cmd = app.add_subcommand(
        "demo", "The overlap benchmark (2 x 2000 us compute, 4 KB..64 MB) with and without tandem, on the virtual "
                "cluster when one can be made, else shared memory; writes results/*.json and *.svg");
    cmd->add_option("--mpi", d->o.mpi, "The MPI: openmpi or mpich")->check(CLI::IsMember({"openmpi", "mpich"}))->capture_default_str();
    cmd->add_option("--where", d->where, "auto: the virtual cluster if one is up or can be made, else shared memory")
        ->check(CLI::IsMember({"auto", "shm", "vcluster"}))
        ->capture_default_str();
    cmd->add_option("--rate", d->rate, "Link rate of a virtual cluster the demo starts")->capture_default_str();
    cmd->add_option("--rounds", d->o.rounds, "Runs of each mode, alternating")->capture_default_str();
    cmd->add_option("--sizes", d->o.sizes, "Comma-separated message sizes (default 4K..64M, steps of 4x)")->delimiter(',');
    cmd->add_option("--compute", d->o.compute, "Compute times per phase in us")->delimiter(',')->capture_default_str();
    cmd->add_option("--budget", d->o.budget, "Seconds of timing per size")->capture_default_str();
    cmd->add_option("--out", d->out_dir, "Directory for the JSON and SVG results")->capture_default_str();
    cmd->callback(exits_with([d] { return run_demo(*d); }));
  }
}

}  // namespace tandem::cli
