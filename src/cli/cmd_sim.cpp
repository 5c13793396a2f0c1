// `tandem sim`: the performance model on a profile. Per collective, size and candidate
// (algorithm, segment size, fan-out) the simulator's prediction, beside the closed-form
// Hockney and LogGP estimates and, with --backend simgrid|both, SimGrid's flow-level one.
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli/bench/bench.hpp"
#include "cli/cli.hpp"
#include "cli/model_opts.hpp"
#include "model/closed_form.hpp"
#include "model/flow.hpp"
#include "model/predict.hpp"
#include "model/sim.hpp"

namespace tandem::cli {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct SimOpts {
  ProfileOpts prof;
  std::vector<std::string> colls{"allreduce"};
  int np = 0;
  int rpn = 0;
  std::vector<std::string> sizes;
  std::vector<std::string> algorithms;
  GridOpts grid;
  std::string backend = "builtin";
  std::string dtype = "float", op = "sum";
  int top = 0;
  bool exact = false;  // with --top: simulate every candidate, not only those that may be among the top
  bool total = false;
  double flow_timeout = 600;
  std::string json_file;
};

int run_sim(const SimOpts& o) {
  const model::Profile prof = o.prof.load();
  const int np = o.np > 0 ? o.np : prof.shape.nodes * prof.shape.ranks_per_node;
  const model::Topology topo = model::topology_for(prof, np, o.rpn);
  const bool builtin = o.backend != "simgrid", flow = o.backend != "builtin";
  const auto [dt, rop] = parse_reduction(o.dtype, o.op);
  const model::Grid grid = o.grid.grid();
  json doc = {{"profile", o.prof.describe()}, {"ranks", np}, {"ranks_per_node", topo.ranks_per_node},
              {"backend", o.backend}, {"points", json::array()}, {"point_walls", json::array()}};
  fmt::print("{} ranks ({} per node, {} node{}), profile {}\n", np, topo.ranks_per_node, topo.nodes(),
             topo.nodes() == 1 ? "" : "s", o.prof.describe());
  for (const auto& cname : o.colls) {
    const coll::Coll c = bench::coll_of(cname);
    std::vector<std::uint64_t> sizes;
    for (const auto& s : o.sizes) sizes.push_back(parse_bytes_or_throw(s));
    if (sizes.empty()) sizes = {8, 1024, 65536, 1 << 20, 16 << 20};
    if (c == coll::Coll::Barrier) sizes = {0};
    for (std::uint64_t bytes : sizes) {
      model::Problem pb;
      pb.coll = c;
      pb.topo = topo;
      pb.elem_size = coll::dtype_size(dt);
      const std::uint64_t per = o.total && coll::blocked(c) ? bytes / static_cast<std::uint64_t>(np) : bytes;
      pb.bytes = per / pb.elem_size * pb.elem_size;
      pb.sim.reduce_key = model::reduce_key(dt, rop);
      std::vector<coll::Choice> cands;
      if (o.algorithms.empty()) {
        cands = model::candidates(pb, grid);
      } else {
        for (const auto& a : o.algorithms) {
          std::string why;
          auto ch = coll::parse_choice(c, a, &why);
          if (!ch) throw std::runtime_error(why);
          cands.push_back(*ch);
        }
      }
      struct Row {
        coll::Choice ch;
        double sim = bench::kNaN, wall = bench::kNaN, flow = bench::kNaN, flow_wall = bench::kNaN;
        bool bound = false;  // sim is a lower bound: not simulated (it cannot be among the --top fastest)
        std::optional<double> hockney, loggp;
        std::string error;
      };
      // With --top N and the built-in simulator alone, candidates are simulated from the
      // smallest replay up, and one whose lower bound (model::lower_bound) exceeds the N-th
      // best simulated so far is left at its bound: the N shown are those of simulating all.
      const bool prune = builtin && !flow && o.top > 0 && !o.exact;
      const auto point_t0 = Clock::now();
      std::vector<Row> rows(cands.size());
      std::optional<model::Pruning> pruning;
      std::vector<std::size_t> order(cands.size());
      for (std::size_t i = 0; i < cands.size(); ++i) order[i] = i;
      if (prune) {
        pruning.emplace(pb, cands, prof, static_cast<std::size_t>(o.top));
        order = pruning->order();
      }
      std::size_t skipped = 0;
      for (std::size_t i : order) {
        const auto& ch = cands[i];
        Row& r = rows[i];
        r.ch = ch;
        const coll::Args a = pb.args(ch);
        try {
          if (pruning && pruning->skip(i)) {
            r.sim = pruning->bound(i);
            r.bound = true;
            ++skipped;
          } else if (builtin) {
            auto t0 = Clock::now();
            r.sim = model::simulate(*ch.alg, a, prof, topo, pb.sim).time;
            r.wall = seconds_since(t0);
            if (pruning) pruning->simulated(r.sim);
          }
          if (flow) {
            auto t0 = Clock::now();
            r.flow = model::simulate_flow(*ch.alg, a, prof, topo, pb.sim, o.flow_timeout).time;
            r.flow_wall = seconds_since(t0);
          }
          r.hockney = model::closed_form(model::Closed::Hockney, *ch.alg, a, prof, topo, pb.sim);
          r.loggp = model::closed_form(model::Closed::LogGP, *ch.alg, a, prof, topo, pb.sim);
        } catch (const std::exception& e) {
          r.error = e.what();
        }
      }
      const double point_wall = seconds_since(point_t0);
      std::stable_sort(rows.begin(), rows.end(), [&](const Row& x, const Row& y) {
        const double a = builtin ? x.sim : x.flow, b = builtin ? y.sim : y.flow;
        return std::isnan(b) ? !std::isnan(a) : a < b;
      });
      fmt::print("\n{} {}{}: {} candidates in {:.2f} s{}\n", coll::coll_name(c), bench::fmt_size(pb.bytes),
                 coll::blocked(c) ? fmt::format(" per block ({} in all)", bench::fmt_size(pb.bytes * np)) : "",
                 cands.size(), point_wall,
                 prune ? fmt::format(" ({} simulated, {} left at a lower bound above the {} fastest)", cands.size() - skipped,
                                     skipped, o.top)
                       : "");
      doc["point_walls"].push_back({{"collective", coll::coll_name(c)}, {"bytes", pb.bytes}, {"candidates", cands.size()},
                                   {"simulated", cands.size() - skipped}, {"wall_s", point_wall}});
      std::vector<std::string> head{"algorithm"};
      if (builtin) head.insert(head.end(), {"simulated", "sim wall"});
      if (flow) head.insert(head.end(), {"simgrid", "simgrid wall"});
      head.insert(head.end(), {"hockney", "loggp"});
      std::vector<std::vector<std::string>> table;
      auto t = [](double s) { return std::isnan(s) ? std::string("-") : bench::fmt_time(s * 1e6); };
      auto ot = [&](const std::optional<double>& v) { return v ? t(*v) : std::string("-"); };
      int shown = 0;
      for (const auto& r : rows) {
        json pt = {{"collective", coll::coll_name(c)}, {"bytes", pb.bytes}, {"algorithm", r.ch.str()}};
        if (!r.error.empty()) {
          pt["error"] = r.error;
          fmt::print(stderr, "tandem: {} {} {}: {}\n", coll::coll_name(c), pb.bytes, r.ch.str(), r.error);
        } else {
          if (builtin && r.bound) pt["simulated_at_least_s"] = r.sim;
          else if (builtin) pt["simulated_s"] = r.sim, pt["sim_wall_s"] = r.wall;
          if (flow) pt["simgrid_s"] = r.flow, pt["simgrid_wall_s"] = r.flow_wall;
          if (r.hockney) pt["hockney_s"] = *r.hockney;
          if (r.loggp) pt["loggp_s"] = *r.loggp;
        }
        doc["points"].push_back(pt);
        if (o.top > 0 && shown >= o.top) continue;
        ++shown;
        std::vector<std::string> row{r.ch.str()};
        if (builtin) row.insert(row.end(), {r.bound ? ">= " + t(r.sim) : t(r.sim), t(r.wall)});
        if (flow) row.insert(row.end(), {t(r.flow), t(r.flow_wall)});
        row.insert(row.end(), {ot(r.hockney), ot(r.loggp)});
        table.push_back(row);
      }
      bench::print_table(head, table);
    }
  }
  if (!o.json_file.empty()) {
    std::ofstream out(o.json_file);
    out << doc.dump(1) << "\n";
    if (!out) throw std::runtime_error("cannot write " + o.json_file);
  }
  return 0;
}

}  // namespace

void add_sim(CLI::App& app) {
  auto* cmd = app.add_subcommand("sim", "Predict collectives' times on a machine profile: the simulator that replays "
                                        "tandem's schedules, closed-form Hockney and LogGP estimates, SimGrid");
  auto o = std::make_shared<SimOpts>();
  o->prof.add(cmd);
  cmd->add_option("-c,--coll", o->colls, "Collectives (default allreduce)")->delimiter(',');
  cmd->add_option("--np", o->np, "Ranks (default: the profile's nodes x ranks per node)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--ranks-per-node", o->rpn, "Ranks per node (default: the profile's)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--sizes", o->sizes, "Bytes per rank, as coll's count x datatype size (K/M/G suffixes)")
      ->delimiter(',')
      ->check(bytes_validator());
  cmd->add_option("-a,--algorithms", o->algorithms,
                  "Candidates as algorithm[:segsize[:fanout]] (default: every algorithm over --segsizes and --fanouts)");
  o->grid.add(cmd);
  cmd->add_option("--backend", o->backend, "builtin (the event simulator), simgrid (flow-level), or both")
      ->check(CLI::IsMember({"builtin", "simgrid", "both"}));
  cmd->add_option("--dtype", o->dtype, "Datatype of reductions (float, double, int32, ...)");
  cmd->add_option("--op", o->op, "Reduction operation (sum, max, ...)");
  cmd->add_option("--top", o->top,
                  "Show only the N fastest candidates per point (with the built-in backend alone, candidates whose lower "
                  "bound exceeds the N-th fastest are not simulated)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_flag("--exact", o->exact, "With --top: simulate every candidate all the same");
  cmd->add_option("--simgrid-timeout", o->flow_timeout, "Seconds a SimGrid simulation may take (0: no limit)")
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_flag("--total", o->total,
                "Sizes of allgather, alltoall, gather, scatter and reduce_scatter_block are a rank's whole buffer "
                "(all blocks), not one block");
  cmd->add_option("--json", o->json_file, "Write every prediction to this JSON file");
  cmd->callback(bench::exits_with([o] { return run_sim(*o); }));
}

}  // namespace tandem::cli
