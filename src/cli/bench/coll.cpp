// `tandem bench coll`: one collective, tandem's algorithms against the MPI library's own.
//
// Time mode: per round, one run of coll_bench timing every tandem algorithm and the MPI
// library's own collective (its default choice), and, with --ompi-algorithms, one run per
// algorithm of Open MPI's coll_tuned component forced (--only-mpi under
// `--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_<coll>_algorithm N`); the runs of
// a round alternate in ABBA order. Overlap mode: the plain blocking collective with compute
// after it, plain against `tandem run` with TANDEM_COLL_OVERLAP=1.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>

#include "cli/bench/bench.hpp"
#include "coll/algorithms.hpp"
#include "vcluster/vcluster.hpp"

namespace tandem::cli::bench {
namespace {

const char* const kCollProgram = "coll_bench";

struct CollBenchOptions {
  Options o;
  std::string coll = "allreduce";
  std::vector<std::string> algorithms{"all"};
  std::vector<std::string> segsizes;  // with `all`: segmented algorithms also at these segment sizes
  std::string begin, end;             // -b/-e; empty: the mode's default
  std::uint64_t factor = 0;           // -f; 0: the mode's default
  bool ompi = false;                  // --ompi-algorithms
  std::vector<int> ompi_numbers;      // only these (empty: all but 0)
  bool no_verify = false;
  std::string thread = "single";
  int root = 0;
  std::string rate;  // link rate for the bandwidth bound; empty: the virtual cluster's
  bool overlap = false;
  std::string tandem_algorithm;  // overlap mode: TANDEM_COLL_<COLL> under tandem
};

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
    for (const auto& t : cb.o.sizes) sizes.push_back(parse_bytes_or_throw(t, kMaxSize));
  } else {
    std::uint64_t b = parse_bytes_or_throw(cb.begin.empty() ? (cb.overlap ? "4K" : "8") : cb.begin, kMaxSize);
    std::uint64_t e = parse_bytes_or_throw(cb.end.empty() ? "16M" : cb.end, kMaxSize);
    std::uint64_t f = cb.factor ? cb.factor : cb.overlap ? 4 : 2;
    if (f < 2) throw std::runtime_error("-f must be at least 2");
    for (std::uint64_t v = b; v <= e && sizes.size() < 256; v = v ? v * f : 1) sizes.push_back(v);
  }
  if (sizes.empty()) throw std::runtime_error("no message sizes (-b is above -e?)");
  for (auto v : sizes)
    if (coll::reduces(c) && v % 4)
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

}  // namespace

coll::Coll coll_of(const std::string& name) {
  auto c = coll::parse_coll(name);
  if (!c) {
    std::string known;
    for (coll::Coll x : coll::all_colls()) known += (known.empty() ? "" : ", ") + std::string(coll::coll_name(x));
    throw std::runtime_error(fmt::format("unknown collective `{}` (known: {})", name, known));
  }
  return *c;
}

std::vector<OmpiAlgorithm> ompi_algorithms(const std::string& coll, int np, const std::vector<int>& only,
                                           std::vector<std::string>* skipped) {
  std::string out;
  int rc = run_quietly({"ompi_info", "--parsable", "--param", "coll", "tuned", "--level", "9"}, &out);
  if (rc != 0) throw std::runtime_error("`ompi_info --parsable --param coll tuned --level 9` failed");
  const std::string prefix = "mca:coll:tuned:param:coll_tuned_" + coll + "_algorithm:enumerator:value:";
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
    if (!only.empty() && std::find(only.begin(), only.end(), n) == only.end()) continue;
    if (name.find("two_proc") != std::string::npos && np != 2) {
      if (skipped) skipped->push_back(fmt::format("{} {} (2 ranks only)", n, name));
      continue;
    }
    algs.push_back({n, name});
  }
  if (algs.empty()) throw std::runtime_error(fmt::format("ompi_info lists no coll_tuned_{}_algorithm values", coll));
  return algs;
}

namespace {

// The link rate in bits/s for the bandwidth bound: --rate, else the virtual cluster's; NaN on shm.
double link_rate(const CollBenchOptions& cb, std::string* note) {
  if (!cb.rate.empty()) return static_cast<double>(parse_rate_or_throw(cb.rate));
  if (cb.o.where != "vcluster") return kNaN;
  try {
    vcluster::VclusterInfo info = vcluster::vcluster_state();
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
    forced = ompi_algorithms(cb.coll, cb.o.np, cb.ompi_numbers, &skipped);
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
    for (const auto& t : o.compute) compute.push_back(std::to_string(parse_us_or_throw(t)));
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
  if (!out.complete) return hard_fail(failures_message(out));
  return 0;
}

}  // namespace

void add_coll(CLI::App& bench) {
  auto cb = std::make_shared<CollBenchOptions>();
  cb->o.rounds = 3;
  auto* cmd = bench.add_subcommand(
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
      ->delimiter(',')
      ->check(bytes_validator());
  cmd->add_option("-b,--begin", cb->begin, "First size (default 8; overlap 4K)")->check(bytes_validator(kMaxSize));
  cmd->add_option("-e,--end", cb->end, "Last size (default 16M)")->check(bytes_validator(kMaxSize));
  cmd->add_option("-f,--factor", cb->factor, "Factor between sizes (default 2; overlap 4)")->check(CLI::PositiveNumber);
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
  cmd->add_option("--rate", cb->rate, "Link rate for the bandwidth bound, e.g. 1gbit (default: the virtual cluster's)")
      ->check(rate_validator());
  cmd->add_flag("--overlap", cb->overlap, "Overlap mode: blocking collective, compute, touch the buffers");
  cmd->add_option("--compute", cb->o.compute,
                  "Overlap mode: compute in us, one value or one per size (default: the plain collective's time)")
      ->delimiter(',')
      ->check(duration_validator(true));
  cmd->add_option("--tandem-algorithm", cb->tandem_algorithm,
                  "Overlap mode: TANDEM_COLL_<COLL> for the tandem runs (default: the MPI library's nonblocking "
                  "collective)");
  cmd->add_option("--json", cb->o.json_file, "Write all results to this JSON file");
  cmd->add_option("--plot", cb->o.plot_file, "Write an SVG plot to this file");
  cmd->callback(exits_with([cb] { return run_bench_coll(*cb); }));
}

}  // namespace tandem::cli::bench
