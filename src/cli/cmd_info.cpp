#include <fmt/format.h>

#include "cli/cli.hpp"
#include "coll/algorithms.hpp"
#include "coll/select.hpp"
#include "common/config.hpp"
#include "common/units.hpp"
#include "model/estimator.hpp"

namespace tandem::cli {

namespace {

void print_algorithms(bool verbose) {
  for (coll::Coll c : coll::all_colls()) {
    if (!verbose) {
      std::string names;
      for (const auto& a : coll::algorithms(c)) names += (names.empty() ? "" : ", ") + std::string(a.name);
      fmt::print("{}: {}\n", coll::coll_name(c), names);
      continue;
    }
    fmt::print("{}:\n", coll::coll_name(c));
    for (const auto& a : coll::algorithms(c))
      fmt::print("  {:28} {}{}{}{}\n", a.name, a.segmented ? "[segsize] " : "",
                 a.default_fanout ? fmt::format("[fanout, default {}] ", a.default_fanout) : "",
                 a.commutative_only ? "[commutative operations only] " : "", a.summary);
  }
}

// The selection per collective and size, as the settings of this environment make it:
// under `tandem run` (the PMPI wrappers) and in the C++ API.
void print_selection(int np, const std::vector<std::uint64_t>& sizes) {
  Config cfg;
  std::string errors = load_config(cfg);
  coll::Selector sel = coll::Selector::from_config(cfg, &errors);
  sel.set_estimator(model::estimator_from_config(cfg, &errors));
  if (!errors.empty()) {
    fmt::print(stderr, "{}", errors);
    throw CLI::RuntimeError(2);
  }
  fmt::print("selection for {} ranks (commutative operations; sizes are bytes per rank):\n", np);
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"collective", "bytes", "under tandem run", "why", "C++ API", "why"});
  for (coll::Coll c : coll::all_colls()) {
    std::vector<std::uint64_t> sz = c == coll::Coll::Barrier ? std::vector<std::uint64_t>{0} : sizes;
    for (std::uint64_t b : sz) {
      coll::Query q;
      q.coll = c;
      q.ranks = np;
      q.bytes = b;
      coll::Selection run = sel.select(q, coll::Fallback::Mpi), api = sel.select(q, coll::Fallback::Builtin);
      auto what = [](const coll::Selection& s) { return s.mpi() ? std::string(coll::kMpiChoice) : s.choice.str(); };
      rows.push_back({coll::coll_name(c), units::format_bytes(b), what(run), sel.describe(c, run), what(api),
                      sel.describe(c, api)});
    }
  }
  std::vector<std::size_t> w(rows[0].size(), 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) line += fmt::format("{:<{}}  ", r[i], w[i]);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    fmt::print("  {}\n", line);
  }
}

}  // namespace

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "List every TANDEM_* setting with its value and meaning");
  struct Opts {
    bool algorithms = false, verbose = false, selection = false;
    int np = 4;
    std::vector<std::string> sizes;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_flag("--algorithms", o->algorithms,
                "List every collective's algorithms, one line per collective: the names TANDEM_COLL_<COLL> accepts");
  cmd->add_flag("-v,--verbose", o->verbose, "With --algorithms: one line per algorithm, with its parameters and summary");
  cmd->add_flag("--selection", o->selection,
                "Print the algorithm each collective gets per message size under this environment's settings "
                "(TANDEM_COLL_<COLL>, TANDEM_COLL_RULES), under `tandem run` and in the C++ API, with the reason");
  cmd->add_option("--np", o->np, "With --selection: the communicator size")->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--sizes", o->sizes, "With --selection: message sizes in bytes per rank (K/M/G suffixes)")
      ->delimiter(',')
      ->check(bytes_validator());
  cmd->callback([o] {
    if (o->algorithms) {
      print_algorithms(o->verbose);
      return;
    }
    if (o->selection) {
      std::vector<std::uint64_t> sizes;
      for (const auto& t : o->sizes) sizes.push_back(parse_bytes_or_throw(t));
      if (sizes.empty()) sizes = {8, 1024, 16384, 65536, 1 << 20, 16 << 20};
      print_selection(o->np, sizes);
      return;
    }
    Config cfg;
    std::string errors = load_config(cfg);
    coll::Selector::from_config(cfg, &errors);
    model::estimator_from_config(cfg, &errors);
    fmt::print("tandem 0.1.0\n");
    for (const char* mpi : {"openmpi", "mpich"}) {
      auto p = process::library_dir() / fmt::format("libtandem_preload_{}.so", mpi);
      fmt::print("preload ({}): {}{}\n", mpi, p.string(), std::filesystem::exists(p) ? "" : " (missing)");
    }
    fmt::print("\nsettings (environment variables):\n");
    for (const auto& s : settings()) {
      fmt::print("  {}={}{}\n      {} Accepts {}; default {}.\n", s.name, config_value(cfg, s.name),
                 config_from_environment(s.name) ? "  (from environment)" : "", s.help, s.accepted,
                 s.default_value.empty() ? "unset" : s.default_value);
    }
    if (!errors.empty()) {
      fmt::print(stderr, "{}", errors);
      throw CLI::RuntimeError(2);
    }
  });
}

}  // namespace tandem::cli
