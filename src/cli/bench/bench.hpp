// `tandem bench pingpong|overlap|coll` and `tandem demo`: drive the benchmark programs of
// bench/ (pingpong_<mpi>, overlap_<mpi>, coll_bench_<mpi>) with and without tandem,
// alternating the modes round by round, and combine, print, save and plot the results.
// See docs/benchmarks.md for what is measured and the formulas.
//
//   harness.cpp  options, sessions: launching runs (launch timeout, relaunch), rounds
//   report.cpp   combining rounds, tables, the JSON document, SVG plots (cli/plot.hpp)
//   p2p.cpp      bench pingpong, bench overlap, demo
//   coll.cpp     bench coll
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "cli/cli.hpp"
#include "coll/algorithms.hpp"
#include "cli/plot.hpp"

namespace tandem::cli::bench {

using json = nlohmann::json;

inline const double kNaN = std::numeric_limits<double>::quiet_NaN();
// The programs take message sizes as an int.
inline constexpr std::uint64_t kMaxSize = 2147483647;

// ---- options (harness.cpp) -------------------------------------------------------------

struct Options {
  std::string mpi = "openmpi";
  int np = 2;
  std::string where = "shm";
  std::vector<std::string> modes{"plain", "tandem"};
  int rounds = 5;
  std::string json_file, plot_file;
  std::vector<std::string> sizes;    // as given (K/M/G suffixes allowed)
  std::vector<std::string> compute;  // per phase; a bare number is microseconds
  double budget = 1.0;               // seconds per size (and compute time), passed as -t
  long iters = 0;                    // most timed iterations per point (-n), 0: program default
  int timeout = 900;                 // seconds per program run
  int launch_timeout = 60;           // seconds for a run to print its first line (0: no limit)
};

// The options every bench subcommand has (--mpi, --np, --where, --modes, --rounds, ...).
void add_common(CLI::App* cmd, Options& o);

// --sizes, or first, 4 x first, ... up to last.
std::vector<std::uint64_t> sizes_of(const Options& o, std::uint64_t first, std::uint64_t last);
// --compute in microseconds, or 200, 2000, 20000.
std::vector<long> computes_of(const Options& o);

std::string join(const std::vector<std::string>& v, const std::string& sep = " ");
template <class T>
std::string join_nums(const std::vector<T>& v) {
  std::string r;
  for (const auto& x : v) r += (r.empty() ? "" : ",") + std::to_string(x);
  return r;
}

// ---- combining rounds (report.cpp) -------------------------------------------------------

double median_of(std::vector<double> v);
double round3(double v);
json num(double v);  // rounded to 3 decimals; null when not finite

// One measured quantity over the rounds: each round contributes its per-run
// median of per-iteration times.
struct Stat {
  std::vector<double> rounds;  // per-round medians, in round order
  std::vector<double> mins;    // per-round fastest iterations
  double median = kNaN, best = kNaN, lo = kNaN, hi = kNaN, fastest = kNaN;

  void finish();
  bool empty() const { return rounds.empty(); }
  // Half the range of the round medians, relative to their median, in percent.
  double spread_pct() const { return empty() || median <= 0 ? kNaN : 50.0 * (hi - lo) / median; }
  std::string cell() const;  // "1.2 ms ±3%"
  json to_json() const;
};

// ---- running the programs (harness.cpp) ------------------------------------------------------

std::filesystem::path tandem_exe();
std::filesystem::path program_path(const Options& o, const std::string& program);

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
  json runs = json::array();
  json commands = json::object();
  std::map<std::string, std::string> failed;  // mode (run label) -> why (that mode stops being run)
  std::map<Key, std::string> errors;          // points a program could not measure (an "error" line)
  long verify_failures = 0;                   // result lines with "verified": false
  double load_start = kNaN;

  // Runs `program` once in `mode`; false (and the mode recorded as failed) when it
  // fails or prints fewer results than `expected` lines. A line is a result when it has
  // `size` and `median_us` (or `error`: the point could not be measured).
  bool run(const std::string& program, const std::string& mode, const std::vector<std::string>& args,
           std::size_t expected, int round, const RunExtras& x = {});
  void finish();
  const Stat* get(const std::string& program, const std::string& mode, std::uint64_t size, long c = -1) const;
  double busy_of(const std::string& program, const std::string& mode, std::uint64_t size, long c) const;
  // Modes in the order of round r: reversed every other round (ABBA), so slow drifts
  // of the machine weigh on every mode alike.
  std::vector<std::string> order(int r) const;
  bool wants(const std::string& mode) const { return !failed.count(mode); }
};

// The 1-minute load average, or NaN.
double loadavg();
// Timings on a busy machine are mostly scheduler waits: say so before and record it.
void warn_if_busy(Session& s);
// Checks what the chosen modes and place need before anything runs; with
// drop_tandem_if_missing, a missing preload library drops tandem mode (saying why in
// *dropped_why) instead of failing.
void preflight(Options& o, bool drop_tandem_if_missing, std::string* dropped_why,
               const std::vector<std::string>& programs = {"pingpong", "overlap"});
// The programs' -s, -t, -n and --json.
std::vector<std::string> program_args(const Options& o, const std::vector<std::uint64_t>& sizes);
// The launch of `program` (its _<mpi> build) with o.np ranks at o.where: the launcher and
// its options (then `launcher_args`), the program, `args`; with `under_tandem`, all of it
// under `tandem run --mpi <mpi> --`.
std::vector<std::string> launch_command(const Options& o, const std::string& program, const std::vector<std::string>& args,
                                        const std::vector<std::string>& launcher_args = {}, bool under_tandem = false);
// The collective of a name; throws naming the known ones.
coll::Coll coll_of(const std::string& name);
// Open MPI's coll_tuned algorithms of a collective, from ompi_info (0, "ignore", left
// out; only the numbers of `only` when it is not empty; two_proc only with 2 ranks: Open
// MPI refuses it on other counts, said in *skipped).
struct OmpiAlgorithm {
  int number;
  std::string name;
};
std::vector<OmpiAlgorithm> ompi_algorithms(const std::string& coll, int np, const std::vector<int>& only,
                                           std::vector<std::string>* skipped);
// Runs argv for its exit status, capturing its standard output (-1: it could not start).
int run_quietly(const std::vector<std::string>& argv, std::string* out = nullptr);

// ---- reporting (report.cpp) -----------------------------------------------------------------

std::string fmt_time(double us);
std::string fmt_size(std::uint64_t b);
std::string fmt_ratio(double r);
// Right-aligned text table.
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
// The JSON document's header: bench, date, host, the options, commands, failures, load.
json header(const Session& s, const std::string& bench);
std::string mode_label(const Options& o, const std::string& mode);

plot::Axis axis(std::string label, plot::Scale scale, plot::Format format);
plot::Axis size_axis();
plot::Series series(std::string name, std::string color, bool dashed = false, bool markers = true);
plot::Panel panel(std::string title, plot::Axis x, plot::Axis y);

// Result of a benchmark: the document saved as JSON, the figure, and whether
// every requested mode ran to the end.
struct Outcome {
  json doc;
  plot::Figure figure;
  bool complete = true;
};
// Writes the JSON document and the SVG figure when asked to.
void save(const Outcome& out, const std::string& json_file, const std::string& plot_file);
// "some runs failed:" and every failure of the document, as hard_fail's message.
std::string failures_message(const Outcome& out);

// ---- exit statuses (harness.cpp) ------------------------------------------------------------

// Prints "tandem: MSG" on standard error and returns 1.
int hard_fail(const std::string& msg);

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

// ---- the subcommands -----------------------------------------------------------------------

void add_pingpong(CLI::App& bench);  // p2p.cpp
void add_overlap(CLI::App& bench);   // p2p.cpp
void add_coll(CLI::App& bench);      // coll.cpp
void add_demo(CLI::App& app);        // p2p.cpp

}  // namespace tandem::cli::bench
