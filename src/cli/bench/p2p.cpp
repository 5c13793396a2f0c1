// `tandem bench pingpong`, `tandem bench overlap` and `tandem demo`: the point-to-point
// programs (pingpong_<mpi>, overlap_<mpi>), plain MPI against tandem.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "cli/bench/bench.hpp"
#include "common/process.hpp"

namespace tandem::cli::bench {
namespace fs = std::filesystem;

namespace {

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

struct DemoOptions {
  Options o;
  std::string where = "auto";
  std::string out_dir = "results";
  std::string rate = "1gbit";
};

int run_demo(DemoOptions d) {
  Options& o = d.o;
  const std::string tandem = tandem_exe().string();
  bool started_cluster = false;
  std::string where_note;
  if (d.where == "shm") {
    o.where = "shm";
    where_note = "shared memory (--where shm)";
  } else {
    int st = run_quietly({tandem, "vcluster", "status"});
    if (st == 0) {
      o.where = "vcluster";
      where_note = "the virtual cluster that is up";
    } else {
      fmt::print(stderr, "demo: no virtual cluster is up; trying `tandem vcluster up --hosts 2 --rate {}`\n", d.rate);
      int up = -1;
      try {
        up = process::run({tandem, "vcluster", "up", "--hosts", "2", "--rate", d.rate}).status;
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
      process::run({tandem, "vcluster", "down"});
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
  if (!out.complete) return hard_fail(failures_message(out));
  return 0;
}

}  // namespace

void add_pingpong(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  auto* cmd = bench.add_subcommand("pingpong", "Round-trip time of MPI_Send/MPI_Recv (the overhead of tandem)");
  add_common(cmd, *o);
  cmd->add_option("--json", o->json_file, "Write all results to this JSON file");
  cmd->add_option("--plot", o->plot_file, "Write an SVG plot to this file");
  cmd->callback(exits_with([o] {
    Outcome out = bench_pingpong(*o);
    save(out, o->json_file, o->plot_file);
    return out.complete ? 0 : hard_fail("some runs failed (see above); their mode is missing from the results");
  }));
}

void add_overlap(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  auto* cmd = bench.add_subcommand("overlap", "The overlap microbenchmark: compute between blocking send and receive");
  add_common(cmd, *o);
  cmd->add_option("--compute", o->compute, "Comma-separated compute times per phase, in microseconds (default 200,2000,20000)")
      ->delimiter(',')
      ->check(duration_validator(true));
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

void add_demo(CLI::App& app) {
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
  cmd->add_option("--rate", d->rate, "Link rate of a virtual cluster the demo starts")
      ->check(rate_validator())
      ->capture_default_str();
  cmd->add_option("--rounds", d->o.rounds, "Runs of each mode, alternating")->capture_default_str();
  cmd->add_option("--sizes", d->o.sizes, "Comma-separated message sizes (default 4K..64M, steps of 4x)")
      ->delimiter(',')
      ->check(bytes_validator(kMaxSize));
  cmd->add_option("--compute", d->o.compute, "Compute times per phase in us")
      ->delimiter(',')
      ->check(duration_validator(true))
      ->capture_default_str();
  cmd->add_option("--budget", d->o.budget, "Seconds of timing per size")->capture_default_str();
  cmd->add_option("--out", d->out_dir, "Directory for the JSON and SVG results")->capture_default_str();
  cmd->callback(exits_with([d] { return run_demo(*d); }));
}

}  // namespace tandem::cli::bench
