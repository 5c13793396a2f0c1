// `tandem tune`: the autotuner (src/tune) with the benchmark program as its measurer:
// per point {collective, ranks, size} the variants the method asks for are timed by one
// run of coll_bench_<mpi> (tandem's algorithms through the C++ API, the MPI library's
// default beside them), the MPI's own algorithms forced one per run. Writes tandem's
// rules file, keeps every measurement in a state file (an interrupted tuning resumes
// without measuring again) and reports per point the choice, measured, predicted and
// MPI-default times.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "cli/bench/bench.hpp"
#include "cli/cli.hpp"
#include "cli/model_opts.hpp"
#include "common/files.hpp"
#include "common/process.hpp"
#include "common/units.hpp"
#include "coll/ompi_rules.hpp"
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
  std::vector<std::string> colls;  // default allreduce (with --from: every recorded one)
  std::vector<std::string> sizes;
  std::string from;  // a record of `tandem run --record`
  std::string method = "smgd";
  ProfileOpts prof;
  GridOpts grid;
  double prune = 1.5;
  double margin = 1.05;
  int confirm = 2;
  int top = 3;
  double budget = 0.3;  // seconds per variant and size (coll_bench -t)
  int timeout = 600;
  std::string output, state, report, plot;
  bool report_flag = false;  // --report given (with or without a file)
  bool no_mpi_default = false;
  bool fresh = false;
  bool plain = false;  // measure without `tandem run` around the benchmark
  std::string ompi_export;  // Open MPI coll_tuned rules file to write
  bool mpi_algorithms = false;  // Open MPI's own algorithms are candidates of the rules (mpi:N)
  std::string mpich_export;  // MPICH csel JSON file to write (and its ch4 file beside it)
  std::string mpich_ch4;     // the ch4 file: written before the tuning, used by its forced runs
  std::string replay;  // a state file to take every measurement from (no runs)
};

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
    // tandem's variants and the MPI default in one run; each of the MPI's own algorithms
    // forced (mpi:N, Open MPI's coll_tuned number; mpi:0 its default) in a run of its own:
    // plain for the exports, as the rules run for a candidate of the rules (as_rules).
    std::vector<std::size_t> together;
    for (std::size_t i = 0; i < vs.size(); ++i) {
      if (vs[i].is_mpi() && !vs[i].mpi_alg.empty())
        run(p, {vs[i]}, {i}, out, forced_args(p, vs[i]), o_.plain || !vs[i].as_rules);
      else together.push_back(i);
    }
    if (!together.empty()) {
      std::vector<tune::Variant> g;
      for (auto i : together) g.push_back(vs[i]);
      run(p, g, together, out, {}, o_.plain);
    }
    return out;
  }

 private:
  std::vector<std::string> forced_args(const tune::Point& p, const tune::Variant& v) const {
    if (o_.mpi == "mpich") {
      // MPICH's MPIR algorithm forced, reached through ch4's flat path (the exported ch4
      // file), and an error instead of MPICH's silent substitute where it cannot run.
      std::string var = "MPIR_CVAR_" + std::string(coll::coll_name(p.coll)) + "_INTRA_ALGORITHM";
      std::transform(var.begin(), var.end(), var.begin(), [](unsigned char ch) { return std::toupper(ch); });
      std::vector<std::string> a{"-genv", "MPIR_CVAR_CH4_COLL_SELECTION_TUNING_JSON_FILE", o_.mpich_ch4};
      if (v.mpi_alg != "auto") a.insert(a.end(), {"-genv", var, v.mpi_alg, "-genv", "MPIR_CVAR_COLLECTIVE_FALLBACK", "error"});
      return a;
    }
    if (o_.mpi != "openmpi") throw std::runtime_error("forcing the MPI library's own algorithms needs --mpi openmpi or mpich");
    if (v.mpi_alg == "0") return {};
    const std::string c = coll::coll_name(p.coll);
    std::vector<std::string> a{"--mca", "coll_tuned_use_dynamic_rules", "1", "--mca", "coll_tuned_" + c + "_algorithm", v.mpi_alg};
    if (v.mpi_segsize)
      a.insert(a.end(), {"--mca", "coll_tuned_" + c + "_algorithm_segmentsize", std::to_string(v.mpi_segsize)});
    if (v.mpi_fanout)
      a.insert(a.end(), {"--mca", "coll_tuned_" + c + "_algorithm_chain_fanout", std::to_string(v.mpi_fanout)});
    return a;
  }

  void run(const tune::Point& p, const std::vector<tune::Variant>& vs, const std::vector<std::size_t>& where,
           std::vector<double>& out, const std::vector<std::string>& launcher_args, bool plain) {
    std::string algs;
    bool with_mpi = false;
    for (const auto& v : vs) {
      if (v.is_mpi()) with_mpi = true;
      else algs += (algs.empty() ? "" : ",") + v.label();
    }
    std::vector<std::string> args{"-c", coll::coll_name(p.coll), "-s", std::to_string(p.bytes), "-t",
                                  fmt::format("{}", o_.budget), "--json"};
    if (!algs.empty()) args.insert(args.end(), {"-a", algs});
    if (algs.empty()) args.push_back("--only-mpi");
    else if (!with_mpi) args.push_back("--no-mpi");
    // As the rules will be used: under `tandem run` (its eager limit, the MPI library's own
    // collectives passed through), unless --plain; the MPI's own algorithms forced for the
    // exports run plainly, as Open MPI runs them with the exported file alone.
    const auto cmd = bench::launch_command(bo_, "coll_bench", args, launcher_args, !plain);
    process::Options po;
    po.capture_out = true;
    po.capture_err = o_.mpi == "mpich";  // to tell MPICH's refusal of a forced algorithm
    po.timeout_s = static_cast<unsigned>(o_.timeout);
    po.own_group = true;
    po.stdin_null = true;
    const auto t0 = Clock::now();
    process::Result r = process::run(cmd, po);
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    ++launches;
    // A run of the variants every point needs (the MPI's default, tandem's algorithms)
    // that hung (seen once in some hundred launches on the virtual cluster: Open MPI's
    // default bcast of 256 KiB) is run once more before the tuning gives up.
    const bool forced = vs.size() == 1 && vs[0].is_mpi() && !vs[0].mpi_alg.empty() && vs[0].mpi_alg != "0" &&
                        vs[0].mpi_alg != "auto";
    if (r.status == 124 && !forced && r.out.find("median_us") == std::string::npos) {
      fmt::print(stderr, "tandem tune: a measurement at {} did not finish in --timeout ({} s): running it once more\n",
                 p.key(), o_.timeout);
      const auto t1 = Clock::now();
      r = process::run(cmd, po);
      seconds += std::chrono::duration<double>(Clock::now() - t1).count();
      ++launches;
    }
    bool any = false;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      json j = json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains("median_us") || !j.contains("algorithm")) continue;
      if (j.contains("verified") && j["verified"].is_boolean() && !j["verified"].get<bool>())
        throw std::runtime_error("a wrong result in " + bench::join(cmd) + ": " + line);
      const bool mpi_line = j.value("variant", "") == "mpi";
      const std::string label = mpi_line ? "" : j["algorithm"].get<std::string>();
      for (std::size_t k = 0; k < vs.size(); ++k)
        if ((mpi_line ? vs[k].is_mpi() : vs[k].label() == label) && j["median_us"].is_number())
          out[where[k]] = j["median_us"].get<double>() * 1e-6, any = true;
    }
    // MPICH stops a run whose forced algorithm cannot run the call (MPIR_CVAR_COLLECTIVE_FALLBACK=error,
    // "User set collective algorithm is not usable", also inside a composed one): not a
    // candidate there (NaN), said in one line.
    if (r.status != 0 && !any && o_.mpi == "mpich" && vs.size() == 1 && vs[0].is_mpi() && vs[0].mpi_alg != "auto") {
      const std::string all = r.out + r.err;
      const bool refused = all.find("not usable for the provided arguments") != std::string::npos;
      fmt::print(stderr, "tandem tune: MPICH {} {} at {}: not a candidate there\n", vs[0].label(),
                 refused ? "cannot run (it would substitute another algorithm)" : "failed", p.key());
      return;
    }
    // One of Open MPI's own algorithms forced that fails or hangs at this point (seen: its
    // scatter_allgather bcast of 512 bytes on 4 ranks over TCP never returned): not a
    // candidate there either, said in one line, instead of ending the tuning.
    if (r.status != 0 && !any && o_.mpi == "openmpi" && vs.size() == 1 && vs[0].is_mpi() && !vs[0].mpi_alg.empty() &&
        vs[0].mpi_alg != "0") {
      fmt::print(stderr, "tandem tune: Open MPI's {} at {} {} (exit status {}): not a candidate there\n", vs[0].label(),
                 p.key(), r.status == 124 ? "did not finish in --timeout" : "failed", r.status);
      return;
    }
    if (!r.err.empty()) fmt::print(stderr, "{}", r.err);  // what the run said, as if not captured
    if (r.status != 0 && !any)
      throw std::runtime_error(fmt::format("the measurement failed (exit status {}): {}", r.status, bench::join(cmd)));
  }

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

// The report's figure: predicted against measured time of every variant measured (as
// the paper's figure 2), and, per collective at its largest size, time against segment
// size per segmented algorithm, measured and predicted (as its figures 7 to 9).
plot::Figure report_figure(const std::vector<tune::Outcome>& outs) {
  plot::Figure f;
  f.title = "tandem tune: the model against measurements";
  plot::Panel scatter = bench::panel("predicted against measured",
                                     bench::axis("measured", plot::Scale::Log, plot::Format::Microseconds),
                                     bench::axis("predicted", plot::Scale::Log, plot::Format::Microseconds));
  std::map<std::string, plot::Series> by_coll;
  double lo = INFINITY, hi = 0;
  for (const auto& o : outs)
    for (const auto& [label, t] : o.measured) {
      auto it = o.predictions.find(label);
      if (it == o.predictions.end() || !(t > 0) || !(it->second > 0)) continue;
      auto& s = by_coll[coll::coll_name(o.point.coll)];
      s.name = coll::coll_name(o.point.coll);
      s.lines = false;
      s.x.push_back(t * 1e6);
      s.y.push_back(it->second * 1e6);
      lo = std::min({lo, t * 1e6, it->second * 1e6});
      hi = std::max({hi, t * 1e6, it->second * 1e6});
    }
  for (auto& [n, s] : by_coll) scatter.series.push_back(s);
  if (hi > 0) {
    plot::Series diag = bench::series("predicted = measured", "#7f7f7f", true, false);
    diag.x = {lo, hi};
    diag.y = {lo, hi};
    scatter.series.push_back(diag);
  }
  f.panels.push_back(scatter);
  std::map<int, const tune::Outcome*> largest;
  for (const auto& o : outs) {
    auto& l = largest[static_cast<int>(o.point.coll)];
    if (!l || o.point.bytes > l->point.bytes) l = &o;
  }
  for (const auto& [c, o] : largest) {
    plot::Panel p = bench::panel(fmt::format("{} {}: time against segment size", coll::coll_name(o->point.coll),
                                             bench::fmt_size(o->point.bytes)),
                                 bench::size_axis(), bench::axis("time", plot::Scale::Log, plot::Format::Microseconds));
    p.x.label = "segment size";
    for (const auto& a : coll::algorithms(o->point.coll)) {
      if (!a.segmented) continue;
      // (segment size, measured, predicted), in order of segment size
      std::vector<std::tuple<double, double, double>> pts;
      for (const auto& [label, t] : o->measured) {
        std::string why;
        auto ch = coll::parse_choice(o->point.coll, label, &why);
        if (!ch || ch->alg != &a || ch->fanout != 0 || ch->segsize == 0) continue;
        auto it = o->predictions.find(label);
        pts.emplace_back(static_cast<double>(ch->segsize), t * 1e6, it != o->predictions.end() ? it->second * 1e6 : bench::kNaN);
      }
      if (pts.size() < 2) continue;
      std::sort(pts.begin(), pts.end());
      plot::Series m = bench::series(std::string(a.name) + " measured", ""),
                   pr = bench::series(std::string(a.name) + " predicted", "", true);
      for (const auto& [seg, meas, pred] : pts) {
        m.x.push_back(seg), m.y.push_back(meas);
        pr.x.push_back(seg), pr.y.push_back(pred);
      }
      p.series.push_back(m);
      p.series.push_back(pr);
    }
    // A predicted series takes its measured one's colour.
    static const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
    for (std::size_t i = 0; i < p.series.size(); ++i) p.series[i].color = kColors[(i / 2) % std::size(kColors)];
    f.panels.push_back(p);
  }
  return f;
}

// The points to tune: the calls a program made (--from), most frequent first, or every
// collective of -c (default allreduce) at every size of --sizes.
std::vector<tune::Point> points_of(const TuneOpts& o) {
  std::vector<tune::Point> points;
  if (!o.from.empty()) {
    // Calls on other rank counts than --np, and reductions' sizes the benchmark's float
    // cannot express, are said and left out.
    json j = json::parse(files::read_text(o.from), nullptr, false);
    if (!j.is_object() || j.value("format", "") != "tandem-coll-record" || !j.contains("calls") || !j["calls"].is_array())
      throw std::runtime_error("the record " + o.from + " is not a `tandem run --record` file (truncated?)");
    if (j.value("version", 0) != 1) throw std::runtime_error("the record " + o.from + " has a version this tandem cannot read");
    std::vector<std::pair<std::uint64_t, tune::Point>> calls;
    std::map<int, std::uint64_t> other_ranks;
    for (const auto& e : j["calls"]) {
      auto c = coll::parse_coll(e.value("collective", ""));
      if (!c) throw std::runtime_error("the record " + o.from + " names an unknown collective " + e.dump());
      if (!o.colls.empty() && std::find(o.colls.begin(), o.colls.end(), coll::coll_name(*c)) == o.colls.end()) continue;
      const int ranks = e.value("ranks", 0);
      const std::uint64_t bytes = e.value("bytes", std::uint64_t{0}), n = e.value("calls", std::uint64_t{0});
      if (ranks != o.np) {
        other_ranks[ranks] += n;
        continue;
      }
      if ((coll::reduces(*c) && bytes % 4) || bytes > bench::kMaxSize) {
        fmt::print(stderr, "tandem tune: {} of {} bytes left out (the benchmark times reductions on floats, up to 2 GiB)\n",
                   coll::coll_name(*c), bytes);
        continue;
      }
      calls.push_back({n, tune::Point{*c, ranks, bytes}});
    }
    for (const auto& [r, n] : other_ranks)
      fmt::print(stderr, "tandem tune: {} calls on {} ranks left out (tuning {} ranks: run again with --np {})\n", n, r,
                 o.np, r);
    std::stable_sort(calls.begin(), calls.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [n, p] : calls) points.push_back(p);
    if (points.empty()) throw std::runtime_error("the record " + o.from + " has no call to tune on " + std::to_string(o.np) + " ranks");
    return points;
  }
  std::vector<std::uint64_t> sizes;
  for (const auto& s : o.sizes) sizes.push_back(parse_bytes_or_throw(s, bench::kMaxSize));
  if (sizes.empty()) sizes = {8, 512, 32768, 524288, 4 << 20, 16 << 20};
  for (const auto& cname : o.colls.empty() ? std::vector<std::string>{"allreduce"} : o.colls) {
    const coll::Coll c = bench::coll_of(cname);
    for (std::uint64_t b : c == coll::Coll::Barrier ? std::vector<std::uint64_t>{0} : sizes) {
      if (coll::reduces(c) && b % 4) throw std::runtime_error(fmt::format("{}: sizes must be multiples of 4 (float), not {}", cname, b));
      points.push_back({c, o.np, b});
    }
  }
  return points;
}

// Whether Open MPI 4.1's algorithm `name` of collective c cuts messages into segments
// (coll_tuned_<coll>_algorithm_segmentsize): the tree and chain algorithms of bcast and
// reduce, and allreduce's segmented ring.
bool ompi_segmented(coll::Coll c, const std::string& name) {
  static const std::set<std::string> trees = {"chain", "pipeline", "split_binary_tree", "binary_tree", "binomial",
                                              "knomial", "binary", "in-order_binary"};
  if (c == coll::Coll::Bcast || c == coll::Coll::Reduce) return trees.count(name) > 0;
  return c == coll::Coll::Allreduce && name == "segmented_ring";
}

// Open MPI's own algorithms of each collective, forced one by one (the segmented ones also
// at each segment size of the grid, the chains also at each fan-out), and its default ("0"): for --ompi-export measured
// plainly, as Open MPI runs with the exported file alone, into `into`; with `as_rules`, as
// candidates of tandem's rules (measured as the rules run them).
void add_ompi_variants(const TuneOpts& o, const std::vector<tune::Point>& points, const model::Grid& grid,
                       bool as_rules, std::map<int, std::vector<tune::Variant>>& into) {
  if (o.mpi != "openmpi")
    throw std::runtime_error(as_rules ? "--mpi-algorithms needs --mpi openmpi (MPICH's algorithms are chosen by the files "
                                        "of --mpich-export)"
                                      : "--ompi-export needs --mpi openmpi");
  for (const auto& p : points) {
    auto [it, fresh] = into.try_emplace(static_cast<int>(p.coll));
    if (!fresh) continue;
    std::vector<std::string> skipped;  // two_proc on other rank counts than 2
    // (as a candidate of the rules, Open MPI's default is the `mpi` variant measured anyway)
    if (!as_rules) it->second.push_back(tune::Variant{coll::Choice{}, "0", 0});
    for (const auto& a : bench::ompi_algorithms(coll::coll_name(p.coll), o.np, {}, &skipped)) {
      // A chain also at each fan-out of the grid it can have (1 to ranks - 1) but the one
      // Open MPI forces by default (its plain variant).
      std::vector<int> fans{0};
      if (coll::ompi_takes_fanout(p.coll, a.number))
        for (int f : grid.fanouts)
          if (f >= 1 && f < o.np && f != std::min(coll::kOmpiChainFanout, o.np - 1) &&
              std::find(fans.begin(), fans.end(), f) == fans.end())
            fans.push_back(f);
      const bool segmented = ompi_segmented(p.coll, a.name);
      for (int f : fans) {
        auto add = [&](std::uint64_t seg) {
          tune::Variant v{coll::Choice{}, std::to_string(a.number), seg, as_rules};
          v.mpi_fanout = f;
          it->second.push_back(v);
        };
        add(0);
        if (segmented)
          for (std::uint64_t seg : grid.segsizes)
            if (seg > 0) add(seg);
      }
    }
  }
}

// --mpich-export: MPICH's MPIR algorithms of each exported collective forced one by one,
// and its MPIR default ("auto"), all measured plainly through ch4's flat path.
void add_mpich_variants(const TuneOpts& o, const std::vector<tune::Point>& points, tune::Options& to) {
  if (o.mpi != "mpich") throw std::runtime_error("--mpich-export needs --mpi mpich");
  for (const auto& p : points) {
    const auto& algs = tune::mpich_algorithms(p.coll);
    if (algs.empty()) continue;
    auto [it, fresh] = to.mpi_variants.try_emplace(static_cast<int>(p.coll));
    if (!fresh) continue;
    it->second.push_back(tune::Variant{coll::Choice{}, "auto", 0});
    for (const auto& a : algs) it->second.push_back(tune::Variant{coll::Choice{}, a, 0});
  }
}

// MPICH's own default selection trees (MPIR and ch4), compiled into its library as JSON
// text: read from the libmpich the benchmark loads (`ldd`), so that the export is
// complete for exactly this MPICH.
std::pair<std::string, std::string> mpich_default_trees() {
  bench::Options bo;
  bo.mpi = "mpich";
  const std::string prog = bench::program_path(bo, "coll_bench").string();
  process::Options po;
  po.capture_out = true;
  po.stdin_null = true;
  const process::Result r = process::run({"ldd", prog}, po);
  std::string lib;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("libmpich.so");
    const auto arrow = line.find("=> ");
    if (at == std::string::npos || arrow == std::string::npos) continue;
    lib = line.substr(arrow + 3, line.find(" (", arrow) - arrow - 3);
  }
  if (lib.empty()) throw std::runtime_error("--mpich-export: `ldd " + prog + "` names no libmpich.so");
  const std::string bytes = files::read_text(lib);
  std::string mpir, ch4;
  for (std::size_t pos = bytes.find("{\"collective="); pos != std::string::npos;
       pos = bytes.find("{\"collective=", pos + 1)) {
    const std::size_t end = bytes.find('\0', pos);
    const std::string text = bytes.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (text.find("\"algorithm=MPIR_Bcast_intra_") != std::string::npos) mpir = text;
    else if (text.find("\"composition=MPIDI_Bcast_intra_composition_") != std::string::npos) ch4 = text;
  }
  if (mpir.empty() || ch4.empty())
    throw std::runtime_error("--mpich-export: " + lib + " holds no default collective selection tree (MPICH 4.0 has "
                             "them compiled in)");
  return {mpir, ch4};
}

// The model against the measurements: the error of every prediction of a variant that
// was measured, and per point and segmented algorithm the measured time at the segment
// size the model predicts best over the measured ones, against the best measured.
void model_summary(const std::vector<tune::Outcome>& outcomes, json& doc) {
  std::vector<double> errors, seg_ratios;
  for (const auto& out : outcomes) {
    std::map<std::string, std::pair<double, double>> by_alg;  // algorithm -> (best measured, measured at predicted best)
    std::map<std::string, double> pred_best;
    for (const auto& [label, t] : out.measured) {
      auto it = out.predictions.find(label);
      if (it == out.predictions.end() || !(t > 0)) continue;
      errors.push_back(std::abs(it->second - t) / t);
      std::string why;
      auto ch = coll::parse_choice(out.point.coll, label, &why);
      if (!ch || !ch->alg->segmented || ch->fanout) continue;
      const std::string a = ch->alg->name;
      auto& [best, at_pred] = by_alg.try_emplace(a, INFINITY, INFINITY).first->second;
      best = std::min(best, t);
      auto pb = pred_best.find(a);
      if (pb == pred_best.end() || it->second < pb->second) pred_best[a] = it->second, at_pred = t;
    }
    for (const auto& [a, v] : by_alg)
      if (std::isfinite(v.first) && std::isfinite(v.second)) seg_ratios.push_back(v.second / v.first);
  }
  const auto within = std::count_if(seg_ratios.begin(), seg_ratios.end(), [](double r) { return r <= 1.10; });
  const double med_err = errors.empty() ? bench::kNaN : bench::median_of(errors);
  if (!errors.empty())
    fmt::print("model: median error {:.1f}% over {} measured variants; the predicted best segment size is within 1.10x "
             "of the measured best for {} of {} (point, algorithm) pairs{}\n",
             med_err * 100, errors.size(), within, seg_ratios.size(),
             seg_ratios.empty() ? "" : fmt::format(" (worst {:.2f}x)", *std::max_element(seg_ratios.begin(), seg_ratios.end())));
  doc["model_median_error"] = bench::num(med_err);
  doc["model_predictions_compared"] = errors.size();
  doc["model_segsize_within_1_10"] = within;
  doc["model_segsize_pairs"] = seg_ratios.size();
}

int run_tune(const TuneOpts& opts) {
  TuneOpts o = opts;
  if (o.report_flag && o.report.empty()) {
    o.report = o.output + ".report.json";
    if (o.plot.empty()) o.plot = o.output + ".report.svg";
  }
  auto method = tune::parse_method(o.method);
  if (!method) throw std::runtime_error("unknown method `" + o.method + "`");
  std::optional<model::Profile> profile;
  if (!o.prof.file.empty() || !o.prof.machine.empty()) profile = o.prof.load();
  tune::Options to;
  to.method = *method;
  to.grid = o.grid.grid();
  to.prune = o.prune;
  to.margin = o.margin;
  to.confirm = o.confirm;
  to.guided_top = o.top;
  to.include_mpi_default = !o.no_mpi_default;
  to.ranks_per_node = o.ranks_per_node > 0 ? o.ranks_per_node : (o.where == "shm" ? o.np : 1);
  const std::string state_file = !o.state.empty() ? o.state : o.output + ".state.json";
  tune::Store store;
  if (!o.fresh && access(state_file.c_str(), F_OK) == 0) {
    store = tune::Store::from_json(files::read_text(state_file), state_file);
    std::size_t n = 0;
    for (const auto& [k, m] : store.times) n += m.size();
    fmt::print(stderr, "tandem tune: resuming from {} ({} measurements kept)\n", state_file, n);
  }
  BenchMeasurer bm(o);
  tune::Measurer measurer = std::ref(bm);
  to.on_store = [&] { files::write_text_atomically(state_file, store.to_json()); };
  // --replay: the measurements of an earlier tuning (an exhaustive one) stand in for runs,
  // so methods can be compared on the same times, and their experiments counted.
  std::optional<tune::Store> replayed;
  if (!o.replay.empty()) {
    replayed = tune::Store::from_json(files::read_text(o.replay), o.replay);
    measurer = [&](const tune::Point& p, const std::vector<tune::Variant>& vs) {
      std::vector<double> t;
      for (const auto& v : vs) {
        auto x = replayed->get(p, v);
        if (!x && v.repeat)
          throw std::runtime_error(fmt::format("--replay {}: no confirmation run {} of {} at {} (the tuning that made "
                                               "it confirmed less: replay with --confirm {})",
                                               o.replay, v.repeat, v.label(), p.key(), v.repeat - 1));
        if (!x)
          throw std::runtime_error(fmt::format("--replay {}: no measurement of {} at {} (make it with --method exhaustive "
                                               "and the same grid)", o.replay, v.label(), p.key()));
        t.push_back(*x);
      }
      ++bm.launches;
      return t;
    };
  }
  const std::vector<tune::Point> points = points_of(o);
  if (!o.ompi_export.empty()) add_ompi_variants(o, points, to.grid, false, to.mpi_variants);
  // Measured plainly, a candidate of the rules is the export's own measurement.
  if (o.mpi_algorithms) add_ompi_variants(o, points, to.grid, !o.plain, to.mpi_candidates);
  std::string mpich_mpir;
  if (!o.mpich_export.empty()) {
    add_mpich_variants(o, points, to);
    auto [mpir, ch4] = mpich_default_trees();
    mpich_mpir = mpir;
    o.mpich_ch4 = o.mpich_export + ".ch4.json";
    files::write_text_atomically(o.mpich_ch4, tune::mpich_ch4_flat_text(ch4));
  }
  tune::Tuner tuner(to, measurer, profile ? &*profile : nullptr, replayed ? nullptr : &store);
  std::vector<tune::Outcome> outcomes;
  const auto t0 = Clock::now();
  progress_line(0, points.size(), 0);
  for (const auto& p : points) {
    outcomes.push_back(tuner.tune(p));
    progress_line(outcomes.size(), points.size(), std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();

  // The exhaustive search's size, for comparison: every candidate and the MPI default per point.
  std::size_t exhaustive = 0;
  for (const auto& p : points) {
    exhaustive += tuner.candidates(p).size() + (to.include_mpi_default ? 1 : 0);
    if (auto mc = to.mpi_candidates.find(static_cast<int>(p.coll)); mc != to.mpi_candidates.end())
      exhaustive += mc->second.size();
  }
  const std::string comment = fmt::format(
      "made by `tandem tune --method {}` on {} ranks ({}, {}), {} experiments (an exhaustive search: {})",
      o.method, o.np, o.mpi, o.where, tuner.experiments(), exhaustive);
  auto t = [](double s) { return s > 0 && std::isfinite(s) ? bench::fmt_time(s * 1e6) : std::string("-"); };
  if (!o.output.empty()) files::write_text_atomically(o.output, tune::rules_text(outcomes, comment));
  if (!o.ompi_export.empty()) {
    files::write_text_atomically(o.ompi_export, tune::ompi_rules_text(outcomes));
    std::vector<std::vector<std::string>> er;
    for (const auto& out : outcomes) {
      auto d = out.measured.find("mpi:0");
      const double def = d != out.measured.end() ? d->second : bench::kNaN;
      er.push_back({coll::coll_name(out.point.coll), bench::fmt_size(out.point.bytes), out.best_mpi.label(),
                    t(out.best_mpi_time), t(def), bench::fmt_ratio(def / out.best_mpi_time)});
    }
    fmt::print("Open MPI's own algorithms (plain runs; {}):\n", o.ompi_export);
    bench::print_table({"collective", "bytes", "best forced", "time", "default", "speedup"}, er);
  }

  if (!o.mpich_export.empty()) {
    files::write_text_atomically(o.mpich_export, tune::mpich_json_text(outcomes, mpich_mpir));
    std::vector<std::vector<std::string>> er;
    for (const auto& out : outcomes) {
      if (tune::mpich_algorithms(out.point.coll).empty()) continue;
      auto d = out.measured.find("mpi:auto");
      const double def = d != out.measured.end() ? d->second : bench::kNaN;
      er.push_back({coll::coll_name(out.point.coll), bench::fmt_size(out.point.bytes), out.best_mpi.label(),
                    t(out.best_mpi_time), t(def), bench::fmt_ratio(def / out.best_mpi_time)});
    }
    fmt::print("MPICH's own algorithms (plain runs; use MPIR_CVAR_COLL_SELECTION_TUNING_JSON_FILE={} "
               "MPIR_CVAR_CH4_COLL_SELECTION_TUNING_JSON_FILE={}):\n", o.mpich_export, o.mpich_ch4);
    bench::print_table({"collective", "bytes", "best forced", "time", "MPIR default", "speedup"}, er);
  }

  std::vector<std::vector<std::string>> rows;
  json doc = {{"bench", "tune"}, {"method", o.method}, {"mpi", o.mpi}, {"where", o.where}, {"ranks", o.np},
              {"experiments", tuner.experiments()}, {"exhaustive_experiments", exhaustive},
              {"launches", bm.launches}, {"measure_seconds", bench::round3(bm.seconds)}, {"wall_seconds", bench::round3(wall)},
              {"profile", profile ? o.prof.describe() : ""}, {"points", json::array()}};
  int within = 0;
  for (const auto& out : outcomes) {
    const double speedup = out.mpi_default_time > 0 ? out.mpi_default_time / out.best_time : bench::kNaN;
    std::vector<std::string> row{coll::coll_name(out.point.coll), bench::fmt_size(out.point.bytes), out.best.rules_choice(),
                                 t(out.best_time), t(out.predicted), t(out.mpi_default_time), bench::fmt_ratio(speedup),
                                 std::to_string(out.experiments)};
    if (replayed) {
      // Against the best of every measurement of the replayed state at this point.
      double opt = bench::kNaN;
      std::string opt_label;
      auto it = replayed->times.find(out.point.key());
      if (it != replayed->times.end())
        for (const auto& [l, v] : it->second)
          if (std::isfinite(v) && v > 0 && (l.rfind("mpi:", 0) != 0 || l.ends_with("@run")) && !(v >= opt))
            opt = v, opt_label = l;
      auto mine = replayed->get(out.point, out.best);
      const double r = mine && std::isfinite(opt) ? *mine / opt : bench::kNaN;
      if (r <= 1.05) ++within;
      row.insert(row.end(), {opt_label, t(opt), bench::fmt_ratio(r)});
    }
    rows.push_back(row);
    json m = json::object(), pr = json::object();
    for (const auto& [l, v] : out.measured) m[l] = bench::num(v * 1e6);
    for (const auto& [l, v] : out.predictions) pr[l] = bench::num(v * 1e6);
    doc["points"].push_back({{"collective", coll::coll_name(out.point.coll)}, {"ranks", out.point.ranks},
                             {"bytes", out.point.bytes}, {"choice", out.best.rules_choice()},
                             {"time_us", bench::num(out.best_time * 1e6)},
                             {"predicted_us", bench::num(out.predicted * 1e6)},
                             {"mpi_default_us", bench::num(out.mpi_default_time * 1e6)},
                             {"speedup_over_mpi_default", bench::num(speedup)}, {"experiments", out.experiments},
                             {"measured_us", m}, {"predicted_candidates_us", pr}});
  }
  std::vector<std::string> head{"collective", "bytes", "choice", "measured", "predicted", "mpi default", "speedup",
                                "experiments"};
  if (replayed) head.insert(head.end(), {"exhaustive best", "its time", "choice/best"});
  bench::print_table(head, rows);
  if (replayed) {
    fmt::print("within 1.05x of the exhaustive best at {} of {} points\n", within, outcomes.size());
    doc["within_1_05_of_exhaustive"] = within;
    doc["replayed"] = o.replay;
  }
  fmt::print("{} experiments in {} launches, {:.0f} s (an exhaustive search: {} experiments){}\n", tuner.experiments(),
             bm.launches, wall, exhaustive, o.output.empty() ? "" : "; rules in " + o.output);
  if (profile) model_summary(outcomes, doc);
  if (!o.report.empty()) files::write_text_atomically(o.report, doc.dump(1) + "\n");
  if (!o.plot.empty()) bench::save({doc, report_figure(outcomes), true}, "", o.plot);
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
  auto* sizes = cmd->add_option("--sizes", o->sizes, "Bytes per rank (default 8,512,32K,512K,4M,16M)")
                    ->delimiter(',')
                    ->check(bytes_validator());
  cmd->add_option("--from", o->from,
                  "Tune only what a program calls: a record of `tandem run --record FILE` (with -c: of those collectives)")
      ->excludes(sizes);
  cmd->add_option("--method", o->method,
                  "exhaustive, mgd, smgd (default), pipeline, model (model-only) or guided (model-guided)")
      ->check([](const std::string& m) {
        return tune::parse_method(m) ? std::string()
                                     : "unknown method `" + m + "` (exhaustive, mgd, smgd, pipeline, model, guided)";
      });
  o->prof.add(cmd);
  o->grid.add(cmd);
  cmd->add_option("--prune", o->prune, "smgd: drop an algorithm whose first time is this many times the best")
      ->check(CLI::Range(1.0, 100.0));
  cmd->add_option("--margin", o->margin,
                  "Keep the MPI library's default unless another choice is faster by more than this factor "
                  "(1: the fastest measured wins)")
      ->check(CLI::Range(1.0, 10.0))
      ->capture_default_str();
  cmd->add_option("--confirm", o->confirm,
                  "Where one of the MPI's own algorithms, forced in a launch of its own, beats the MPI default, measure "
                  "both again this many times alternately and decide by the medians (0: no confirmation)")
      ->check(CLI::Range(0, 20))
      ->capture_default_str();
  cmd->add_option("--top", o->top, "guided: candidates measured")->check(CLI::Range(1, 1000));
  cmd->add_option("--budget", o->budget, "Seconds of timing per variant and size")->check(CLI::Range(0.01, 3600.0));
  cmd->add_option("--timeout", o->timeout, "Seconds each benchmark run may take")->check(CLI::Range(10, 86400));
  cmd->add_option("-o,--output", o->output, "The rules file to write")->required();
  cmd->add_option("--state", o->state, "Measurements kept for resuming (default OUTPUT.state.json)");
  cmd->add_flag("--fresh", o->fresh, "Ignore the state file's measurements (measure again)");
  cmd->add_option("--report", o->report,
                  "Write the per-point report as JSON (without a file name: OUTPUT.report.json, and its figure "
                  "OUTPUT.report.svg unless --plot names one)")
      ->expected(0, 1);
  cmd->add_option("--plot", o->plot, "Write the report's figure (SVG): predicted against measured, time against segment size");
  cmd->add_option("--replay", o->replay,
                  "Take every measurement from this state file of an earlier (exhaustive) tuning instead of running: "
                  "compares methods on the same times, counting the experiments each would run");
  cmd->add_option("--ompi-export", o->ompi_export,
                  "Also measure Open MPI's own algorithms forced one by one (and its default) in plain runs, and write "
                  "the fastest per point as an Open MPI 4.1 coll_tuned dynamic rules file (classic format)");
  cmd->add_flag("--mpi-algorithms", o->mpi_algorithms,
                "Open MPI's own algorithms, forced one by one (the segmented ones at each segment size, the chains at "
                "each fan-out), are candidates of the rules too, measured as the rules run them; the rules name them "
                "mpi:N[:SEG[:FAN]], which `tandem run` "
                "applies through a coll_tuned dynamic rules file it makes at MPI_Init");
  cmd->add_option("--mpich-export", o->mpich_export,
                  "Also measure MPICH's own algorithms of bcast, reduce, allreduce and allgather forced one by one (and "
                  "its default) in plain runs, and write the fastest per point as an MPICH 4.0 collective selection "
                  "file (JSON, complete: MPICH's own defaults elsewhere), with FILE.ch4.json beside it for ch4's flat "
                  "path");
  cmd->add_flag("--plain", o->plain,
                "Run the benchmark without `tandem run` around it (the MPI's own eager limits; default: under "
                "`tandem run`, as the rules are used)");
  cmd->add_flag("--no-mpi-default", o->no_mpi_default, "Do not measure the MPI library's default (tandem's algorithms only)");
  cmd->callback(bench::exits_with([o, cmd] {
    o->report_flag = cmd->count("--report") > 0;
    return run_tune(*o);
  }));
}

}  // namespace tandem::cli
