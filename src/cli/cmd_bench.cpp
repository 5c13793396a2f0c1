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
#include <sstream>
#include <stdexcept>
#include <thread>

#include "cli/cli.hpp"
#include "cli/plot.hpp"

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

std::vector<long> computes_of(const Options& o) {
  std::vector<long> c;
  if (o.compute.empty()) return {200, 2000, 20000};
  for (const auto& t : o.compute) {
    std::size_t pos = 0;
    long v = -1;
    try {
      v = std::stol(t, &pos);
    } catch (const std::exception&) {
    }
    if (v < 0 || pos != t.size()) throw std::runtime_error("bad compute time `" + t + "` (microseconds per phase)");
    c.push_back(v);
  }
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

// The full command of one run, without the watchdog.
std::vector<std::string> command(const Options& o, const std::string& mode, const std::string& program,
                                 const std::vector<std::string>& args) {
  std::vector<std::string> cmd;
  if (mode == "tandem") cmd = {tandem_exe().string(), "run", "--mpi", o.mpi, "--"};
  auto l = launcher(o);
  cmd.insert(cmd.end(), l.begin(), l.end());
  cmd.push_back(program_path(o, program).string());
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

// Key of one measured point: program, mode, size, compute time per phase (-1: none).
using Key = std::tuple<std::string, std::string, std::uint64_t, long>;

struct Session {
  explicit Session(Options opts) : o(std::move(opts)) {}
  Options o;
  std::map<Key, Stat> stats;
  std::map<Key, std::vector<double>> compute_measured;
  // Rank 0's process CPU time over wall time in the timed loop (1 = its core never idled).
  std::map<Key, std::vector<double>> busy;
  double busy_of(const std::string& program, const std::string& mode, std::uint64_t size, long c) const {
    auto it = busy.find(Key{program, mode, size, c});
    return it == busy.end() ? kNaN : median_of(it->second);
  }
  json runs = json::array();
  json commands = json::object();
  std::map<std::string, std::string> failed;  // mode -> why (that mode stops being run)
  double load_start = kNaN;

  // Runs `program` once in `mode`; false (and the mode recorded as failed) when it
  // fails or prints fewer results than `expected` lines.
  bool run(const std::string& program, const std::string& mode, const std::vector<std::string>& args, std::size_t expected,
           int round) {
    auto cmd = command(o, mode, program, args);
    commands[program + "/" + mode] = join(cmd);
    std::vector<std::string> full{"timeout", "--foreground", "-k", "10", std::to_string(o.timeout)};
    full.insert(full.end(), cmd.begin(), cmd.end());
    std::fflush(stdout);
    fmt::print(stderr, "[round {}/{}] {} {} ...\n", round, o.rounds, program, mode);
    std::fflush(stderr);
    auto t0 = std::chrono::steady_clock::now();
    std::string out;
    int rc = 0;
    std::string why;
    try {
      rc = run_command(full, {}, &out);
    } catch (const std::exception& e) {
      rc = -1;
      why = e.what();
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    json lines = json::array();
    std::size_t nstray = 0;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] != '{') {
        if (!line.empty()) ++nstray;
        continue;
      }
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("size") || !j.contains("median_us")) continue;
      lines.push_back(j);
    }
    runs.push_back({{"round", round}, {"program", program}, {"mode", mode}, {"exit", rc},
                    {"seconds", round3(secs)}, {"results", lines}});
    bool timed_out = rc == 124 || rc == 128 + 9;
    if (why.empty() && timed_out && lines.size() >= expected) {
      // Every result was printed: the program finished and only its launcher did not exit
      // (an orted left behind); the results stand.
      fmt::print(stderr, "warning: {} {}: all results printed, but the launcher did not exit within {} s; "
                         "results kept\n", program, mode, o.timeout);
      timed_out = false;
      rc = 0;
    }
    if (why.empty()) {
      if (timed_out)
        why = fmt::format("timed out after {} s", o.timeout);
      else if (rc != 0)
        why = fmt::format("exited with status {}", rc);
      else if (lines.size() < expected)
        why = fmt::format("printed {} result lines instead of {}", lines.size(), expected);
    }
    if (!why.empty()) {
      std::string msg = fmt::format("{} {} run {}: {}", program, mode, why, join(cmd));
      if (mode == "tandem")
        msg += fmt::format("\n  (tandem mode runs the same command under `tandem run`: is the preload library "
                           "{}/libtandem_preload_{}.so built and working?)",
                           lib_dir().string(), o.mpi);
      fmt::print(stderr, "error: {}\n", msg);
      failed.emplace(mode, msg);
      return false;
    }
    fmt::print(stderr, "[round {}/{}] {} {} done in {:.1f} s\n", round, o.rounds, program, mode, secs);
    for (const auto& j : lines) {
      long c = j.contains("compute_us") ? j["compute_us"].get<long>() : -1;
      Key k{program, mode, j["size"].get<std::uint64_t>(), c};
      stats[k].rounds.push_back(j["median_us"].get<double>());
      if (j.contains("min_us")) stats[k].mins.push_back(j["min_us"].get<double>());
      if (j.contains("compute_measured_us")) compute_measured[k].push_back(j["compute_measured_us"].get<double>());
      if (j.contains("cpu_us_per_iter") && j.contains("wall_us_per_iter") && j["wall_us_per_iter"].get<double>() > 0)
        busy[k].push_back(j["cpu_us_per_iter"].get<double>() / j["wall_us_per_iter"].get<double>());
    }
    return true;
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
void preflight(Options& o, bool drop_tandem_if_missing, std::string* dropped_why) {
  if (o.np < 2) throw std::runtime_error("--np must be at least 2");
  if (o.rounds < 1) throw std::runtime_error("--rounds must be at least 1");
  if (o.modes.empty()) throw std::runtime_error("--modes is empty");
  for (const auto& m : o.modes)
    if (m != "plain" && m != "tandem") throw std::runtime_error("unknown mode `" + m + "` (plain, tandem)");
  std::vector<std::string> uniq;
  for (const auto& m : o.modes)
    if (std::find(uniq.begin(), uniq.end(), m) == uniq.end()) uniq.push_back(m);
  o.modes = uniq;
  for (const char* p : {"pingpong", "overlap"})
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
}

int hard_fail(const std::string& msg) {
  std::fflush(stdout);
  fmt::print(stderr, "tandem: {}\n", msg);
  return 1;
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
  auto* bench = app.add_subcommand("bench", "Benchmarks: MPI round-trip time and overlap, plain MPI against tandem");
  bench->require_subcommand(1);

  {
    auto o = std::make_shared<Options>();
    auto* cmd = bench->add_subcommand("pingpong", "Round-trip time of MPI_Send/MPI_Recv (the overhead of tandem)");
    add_common(cmd, *o);
    cmd->add_option("--json", o->json_file, "Write all results to this JSON file");
    cmd->add_option("--plot", o->plot_file, "Write an SVG plot to this file");
    cmd->callback([o] {
      int rc = 0;
      try {
        Outcome out = bench_pingpong(*o);
        save(out, o->json_file, o->plot_file);
        if (!out.complete) rc = hard_fail("some runs failed (see above); their mode is missing from the results");
      } catch (const std::exception& e) {
        rc = hard_fail(e.what());
      }
      if (rc) throw CLI::RuntimeError(rc);
    });
  }
  {
    auto o = std::make_shared<Options>();
    auto* cmd = bench->add_subcommand("overlap", "The overlap microbenchmark: compute between blocking send and receive");
    add_common(cmd, *o);
    cmd->add_option("--compute", o->compute, "Comma-separated compute times per phase, in microseconds (default 200,2000,20000)")
        ->delimiter(',');
    cmd->add_option("--json", o->json_file, "Write all results to this JSON file");
    cmd->add_option("--plot", o->plot_file, "Write an SVG plot to this file");
    cmd->callback([o] {
      int rc = 0;
      try {
        Options opts = *o;
        preflight(opts, false, nullptr);
        Outcome out = bench_overlap(opts);
        save(out, o->json_file, o->plot_file);
        if (!out.complete) rc = hard_fail("some runs failed (see above); their mode is missing from the results");
      } catch (const std::exception& e) {
        rc = hard_fail(e.what());
      }
      if (rc) throw CLI::RuntimeError(rc);
    });
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
    cmd->callback([d] {
      int rc = 0;
      try {
        rc = run_demo(*d);
      } catch (const std::exception& e) {
        rc = hard_fail(e.what());
      }
      if (rc) throw CLI::RuntimeError(rc);
    });
  }
}

}  // namespace tandem::cli
