// `tandem tune`: the autotuner (src/tune) with the benchmark program as its measurer:
// per point {collective, ranks, size} the variants the method asks for are timed by one
// run of coll_bench_<mpi> (tandem's algorithms through the C++ API, the MPI library's
// default beside them), the MPI's own algorithms forced one per run. Writes tandem's
// rules file, keeps every measurement in a state file (an interrupted tuning resumes
// without measuring again) and reports per point the choice, measured, predicted and
// MPI-default times.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/bench/bench.hpp"
#include "cli/cli.hpp"
#include "cli/model_opts.hpp"
#include "common/process.hpp"
#include "common/units.hpp"
#include "tune/tuner.hpp"

namespace tandem::cli {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct TuneOpts {
  std::string mpi = "openmpi";
  std::string where = "vcluster";
  int np = 4;
  int ranks_per_node = 0;
  std::vector<std::string> colls{"allreduce"};
  std::vector<std::string> sizes;
  std::string method = "smgd";
  ProfileOpts prof;
  GridOpts grid;
  double prune = 1.5;
  int top = 3;
  double budget = 0.3;  // seconds per variant and size (coll_bench -t)
  int timeout = 600;
  std::string output, state, report;
  bool no_mpi_default = false;
  bool fresh = false;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

// Measures variants by running coll_bench once for tandem's and the MPI default together.
class BenchMeasurer {
 public:
  explicit BenchMeasurer(const TuneOpts& o) : o_(o) {
    bo_.mpi = o.mpi;
    bo_.np = o.np;
    bo_.where = o.where;
  }
  int launches = 0;
  double seconds = 0;

  std::vector<double> operator()(const tune::Point& p, const std::vector<tune::Variant>& vs) {
    std::vector<double> out(vs.size(), bench::kNaN);
    std::string algs;
    bool with_mpi = false;
    for (const auto& v : vs) {
      if (v.is_mpi() && v.mpi_alg.empty()) with_mpi = true;
      else if (!v.is_mpi()) algs += (algs.empty() ? "" : ",") + v.label();
      else throw std::runtime_error("forcing the MPI library's own algorithms is not supported yet: " + v.label());
    }
    std::vector<std::string> args{"-c", coll::coll_name(p.coll), "-s", std::to_string(p.bytes), "-t",
                                  fmt::format("{}", o_.budget), "--json"};
    if (!algs.empty()) args.insert(args.end(), {"-a", algs});
    if (algs.empty()) args.push_back("--only-mpi");
    else if (!with_mpi) args.push_back("--no-mpi");
    auto cmd = bench::launch_command(bo_, "coll_bench", args);
    process::Options po;
    po.capture_out = true;
    po.timeout_s = static_cast<unsigned>(o_.timeout);
    po.own_group = true;
    po.stdin_null = true;
    const auto t0 = Clock::now();
    process::Result r = process::run(cmd, po);
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    ++launches;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      json j = json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains("median_us") || !j.contains("algorithm")) continue;
      if (j.contains("verified") && j["verified"].is_boolean() && !j["verified"].get<bool>())
        throw std::runtime_error("a wrong result in " + bench::join(cmd) + ": " + line);
      const std::string variant = j.value("variant", "");
      const std::string label = variant == "mpi" ? "mpi" : j["algorithm"].get<std::string>();
      for (std::size_t i = 0; i < vs.size(); ++i)
        if (vs[i].label() == label && j["median_us"].is_number()) out[i] = j["median_us"].get<double>() * 1e-6;
    }
    if (r.status != 0 && std::none_of(out.begin(), out.end(), [](double t) { return std::isfinite(t); }))
      throw std::runtime_error(fmt::format("the measurement failed (exit status {}): {}", r.status, bench::join(cmd)));
    return out;
  }

 private:
  const TuneOpts& o_;
  bench::Options bo_;
};

void progress_line(std::size_t done, std::size_t total, double elapsed) {
  if (!isatty(STDERR_FILENO)) return;
  const int width = 30;
  const int fill = total ? static_cast<int>(width * done / total) : width;
  const double left = done ? elapsed / done * (total - done) : 0;
  fmt::print(stderr, "\r[{}{}] {}/{} points, {:.0f} s elapsed, about {:.0f} s left   ", std::string(fill, '#'),
             std::string(width - fill, ' '), done, total, elapsed, left);
  if (done == total) fmt::print(stderr, "\n");
}

int run_tune(const TuneOpts& o) {
  auto method = tune::parse_method(o.method);
  if (!method) throw std::runtime_error("unknown method `" + o.method + "`");
  std::optional<model::Profile> profile;
  if (!o.prof.file.empty() || !o.prof.machine.empty()) profile = o.prof.load();
  tune::Options to;
  to.method = *method;
  to.grid = o.grid.grid();
  to.prune = o.prune;
  to.guided_top = o.top;
  to.include_mpi_default = !o.no_mpi_default;
  to.ranks_per_node = o.ranks_per_node > 0 ? o.ranks_per_node : (o.where == "shm" ? o.np : 1);
  const std::string state_file = !o.state.empty() ? o.state : o.output + ".state.json";
  tune::Store store;
  if (!o.fresh && access(state_file.c_str(), F_OK) == 0) {
    store = tune::Store::from_json(read_file(state_file), state_file);
    std::size_t n = 0;
    for (const auto& [k, m] : store.times) n += m.size();
    fmt::print(stderr, "tandem tune: resuming from {} ({} measurements kept)\n", state_file, n);
  }
  BenchMeasurer bm(o);
  tune::Measurer measurer = [&](const tune::Point& p, const std::vector<tune::Variant>& vs) {
    auto t = bm(p, vs);
    write_file_atomically(state_file, store.to_json());  // the tuner has put the previous ones
    return t;
  };
  tune::Tuner tuner(to, measurer, profile ? &*profile : nullptr, &store);
  std::vector<tune::Point> points;
  for (const auto& cname : o.colls) {
    auto c = coll::parse_coll(cname);
    if (!c) throw std::runtime_error("unknown collective `" + cname + "`");
    std::vector<std::uint64_t> sizes;
    for (const auto& s : o.sizes) sizes.push_back(parse_bytes_or_throw(s, bench::kMaxSize));
    if (sizes.empty()) sizes = {8, 512, 32768, 524288, 4 << 20, 16 << 20};
    if (*c == coll::Coll::Barrier) sizes = {0};
    const bool reduces = *c == coll::Coll::Reduce || *c == coll::Coll::Allreduce || *c == coll::Coll::ReduceScatterBlock;
    for (std::uint64_t b : sizes) {
      if (reduces && b % 4) throw std::runtime_error(fmt::format("{}: sizes must be multiples of 4 (float), not {}", cname, b));
      points.push_back({*c, o.np, b});
    }
  }
  std::vector<tune::Outcome> outcomes;
  const auto t0 = Clock::now();
  progress_line(0, points.size(), 0);
  for (const auto& p : points) {
    outcomes.push_back(tuner.tune(p));
    write_file_atomically(state_file, store.to_json());
    progress_line(outcomes.size(), points.size(), std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();

  // The exhaustive search's size, for comparison: every candidate and the MPI default per point.
  std::size_t exhaustive = 0;
  for (const auto& p : points) exhaustive += tuner.candidates(p).size() + (to.include_mpi_default ? 1 : 0);
  const std::string comment = fmt::format(
      "made by `tandem tune --method {}` on {} ranks ({}, {}), {} experiments (an exhaustive search: {})",
      o.method, o.np, o.mpi, o.where, tuner.experiments(), exhaustive);
  if (!o.output.empty()) write_file_atomically(o.output, tune::rules_text(outcomes, comment));

  std::vector<std::vector<std::string>> rows;
  json doc = {{"bench", "tune"}, {"method", o.method}, {"mpi", o.mpi}, {"where", o.where}, {"ranks", o.np},
              {"experiments", tuner.experiments()}, {"exhaustive_experiments", exhaustive},
              {"launches", bm.launches}, {"measure_seconds", bench::round3(bm.seconds)}, {"wall_seconds", bench::round3(wall)},
              {"profile", profile ? o.prof.describe() : ""}, {"points", json::array()}};
  auto t = [](double s) { return s > 0 && std::isfinite(s) ? bench::fmt_time(s * 1e6) : std::string("-"); };
  for (const auto& out : outcomes) {
    const double speedup = out.mpi_default_time > 0 ? out.mpi_default_time / out.best_time : bench::kNaN;
    rows.push_back({coll::coll_name(out.point.coll), bench::fmt_size(out.point.bytes), out.best.label(), t(out.best_time),
                    t(out.predicted), t(out.mpi_default_time), bench::fmt_ratio(speedup), std::to_string(out.experiments)});
    json m = json::object(), pr = json::object();
    for (const auto& [l, v] : out.measured) m[l] = bench::num(v * 1e6);
    for (const auto& [l, v] : out.predictions) pr[l] = bench::num(v * 1e6);
    doc["points"].push_back({{"collective", coll::coll_name(out.point.coll)}, {"ranks", out.point.ranks},
                             {"bytes", out.point.bytes}, {"choice", out.best.label()},
                             {"time_us", bench::num(out.best_time * 1e6)},
                             {"predicted_us", bench::num(out.predicted * 1e6)},
                             {"mpi_default_us", bench::num(out.mpi_default_time * 1e6)},
                             {"speedup_over_mpi_default", bench::num(speedup)}, {"experiments", out.experiments},
                             {"measured_us", m}, {"predicted_candidates_us", pr}});
  }
  bench::print_table({"collective", "bytes", "choice", "measured", "predicted", "mpi default", "speedup", "experiments"},
                     rows);
  fmt::print("{} experiments in {} launches, {:.0f} s (an exhaustive search: {} experiments){}\n", tuner.experiments(),
             bm.launches, wall, exhaustive, o.output.empty() ? "" : "; rules in " + o.output);
  if (!o.report.empty()) write_file_atomically(o.report, doc.dump(1) + "\n");
  return 0;
}

}  // namespace

void add_tune(CLI::App& app) {
  auto* cmd = app.add_subcommand("tune", "Choose the fastest algorithm and segment size per collective, rank count and "
                                         "size by measurement, the model, or both; write tandem's rules file");
  auto o = std::make_shared<TuneOpts>();
  cmd->add_option("--mpi", o->mpi, "The MPI to tune for")->check(CLI::IsMember({"openmpi", "mpich"}));
  cmd->add_option("--where", o->where, "shm or vcluster (default)")->check(CLI::IsMember({"shm", "vcluster"}));
  cmd->add_option("--np", o->np, "Ranks")->check(CLI::Range(2, 1 << 16));
  cmd->add_option("--ranks-per-node", o->ranks_per_node, "Ranks per node for the model (default: 1 on vcluster, --np on shm)")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("-c,--coll", o->colls, "Collectives (default allreduce)")->delimiter(',');
  cmd->add_option("--sizes", o->sizes, "Bytes per rank (default 8,512,32K,512K,4M,16M)")->delimiter(',')->check(bytes_validator());
  cmd->add_option("--method", o->method, "exhaustive, mgd, smgd (default), pipeline, model or guided")
      ->check(CLI::IsMember({"exhaustive", "mgd", "smgd", "pipeline", "model", "guided"}));
  o->prof.add(cmd);
  o->grid.add(cmd);
  cmd->add_option("--prune", o->prune, "smgd: drop an algorithm whose first time is this many times the best")
      ->check(CLI::Range(1.0, 100.0));
  cmd->add_option("--top", o->top, "guided: candidates measured")->check(CLI::Range(1, 1000));
  cmd->add_option("--budget", o->budget, "Seconds of timing per variant and size")->check(CLI::Range(0.01, 3600.0));
  cmd->add_option("--timeout", o->timeout, "Seconds each benchmark run may take")->check(CLI::Range(10, 86400));
  cmd->add_option("-o,--output", o->output, "The rules file to write")->required();
  cmd->add_option("--state", o->state, "Measurements kept for resuming (default OUTPUT.state.json)");
  cmd->add_flag("--fresh", o->fresh, "Ignore the state file's measurements (measure again)");
  cmd->add_option("--report", o->report, "Write the per-point report as JSON");
  cmd->add_flag("--no-mpi-default", o->no_mpi_default, "Do not measure the MPI library's default (tandem's algorithms only)");
  cmd->callback(bench::exits_with([o] { return run_tune(*o); }));
}

}  // namespace tandem::cli
