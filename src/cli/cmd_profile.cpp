// `tandem profile`: measures a machine profile for the performance model (model/profile.hpp).
// Point-to-point parameters by bench/logp.c between two ranks inside a node (shared
// memory) and between two hosts of the virtual cluster, the local copy and reduce costs
// in this process with tandem's own kernels.
// `--machine superpod` writes the built-in data sheet instead.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <vector>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/bench/bench.hpp"
#include "cli/cli.hpp"
#include "cli/model_opts.hpp"
#include "coll/reduce_ops.hpp"
#include "common/config.hpp"
#include "common/memory.hpp"
#include "common/process.hpp"
#include "common/units.hpp"
#include "model/profile.hpp"
#include "vcluster/vcluster.hpp"

namespace tandem::cli {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct ProfOpts {
  std::string output;
  std::string mpi = "openmpi";
  std::string where;  // shm, vcluster, both (default: both when a virtual cluster is up)
  std::vector<std::string> sizes;
  double ci = 0.05;
  int min_reps = 10, max_reps = 1000;
  double budget = 1.0;
  int ranks_per_node = 0;
  std::vector<std::string> reduce{"float:sum", "double:sum", "int32:sum", "int64:sum", "float:max", "double:max"};
  std::string machine;
  int timeout = 1800;
  bool plain = false;  // without `tandem run` around the measurement
};

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

// Relative half-width of the distribution-free 95% interval of the median (as logp.c).
double rel_ci(std::vector<double> v) {
  if (v.size() < 6) return INFINITY;
  std::sort(v.begin(), v.end());
  const double n = static_cast<double>(v.size()), h = 0.98 * std::sqrt(n);
  const auto lo = static_cast<std::size_t>(std::max(0.0, std::floor(n / 2 - h)));
  const auto hi = static_cast<std::size_t>(std::min(n - 1, std::ceil(n / 2 + h)));
  const double med = bench::median_of(v);
  return med > 0 ? (v[hi] - v[lo]) / (2 * med) : 0;
}

// Times `f` until the median's interval is within the target; the median in seconds.
template <class F>
double time_until(const ProfOpts& o, F f) {
  std::vector<double> v;
  const auto t0 = Clock::now();
  for (;;) {
    const auto a = Clock::now();
    f();
    v.push_back(std::chrono::duration<double>(Clock::now() - a).count());
    const int n = static_cast<int>(v.size());
    if (n >= o.max_reps) break;
    if (n >= o.min_reps &&
        (rel_ci(v) <= o.ci || std::chrono::duration<double>(Clock::now() - t0).count() > o.budget))
      break;
  }
  return bench::median_of(v);
}

// The point-to-point table of one place, from logp's lines.
model::P2PTable run_logp(const ProfOpts& o, const std::string& where, const std::vector<std::uint64_t>& sizes,
                         std::string* library) {
  bench::Options bo;
  bo.mpi = o.mpi;
  bo.np = 2;
  bo.where = where;
  std::vector<std::string> args{"-s", bench::join_nums(sizes), "--ci", fmt::format("{}", o.ci),
                                "--min-reps", std::to_string(o.min_reps), "--max-reps", std::to_string(o.max_reps),
                                "--budget", fmt::format("{}", o.budget)};
  // As tandem's collectives run: under `tandem run` (its eager limit), interception off so
  // that the program's own sends are timed as they are.
  const auto cmd = bench::launch_command(bo, "logp", args, {}, !o.plain);
  process::Options po;
  if (!o.plain) po.env.emplace_back("TANDEM_ENABLE", "0");
  fmt::print(stderr, "tandem profile: {} ({} sizes): {}\n", where, sizes.size(), bench::join(cmd));
  po.capture_out = true;
  po.timeout_s = static_cast<unsigned>(o.timeout);
  po.own_group = true;
  po.stdin_null = true;
  process::Result r = process::run(cmd, po);
  if (r.status != 0)
    throw std::runtime_error(fmt::format("the measurement at {} failed (exit status {}{}): {}", where, r.status,
                                         r.timed_out ? ", timed out" : "", bench::join(cmd)));
  model::P2PTable t;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("size")) continue;
    model::P2PPoint q;
    q.bytes = j["size"].get<std::uint64_t>();
    q.rtt = j["rtt_us"].get<double>() * 1e-6;
    q.os = j["os_us"].get<double>() * 1e-6;
    q.orecv = j["or_us"].get<double>() * 1e-6;
    q.g = j["g_us"].get<double>() * 1e-6;
    // A lone message takes rtt/2: L is what the parts leave of it. The receive overhead is
    // at most what the send's leaves (on shared memory the receive's copy is the transfer,
    // so g and or count it twice; the paper derives or + g from the round trip); L is
    // negative where a lone message beats a stream's gap (a token bucket's burst).
    q.orecv = std::min(q.orecv, std::max(0.0, q.rtt / 2 - q.os));
    q.L = std::max(-q.g, q.rtt / 2 - q.os - q.g - q.orecv);  // os alone may exceed rtt/2 by noise
    q.ci = j["ci"].get<double>();
    q.reps = j["reps"].get<int>();
    if (library && j.contains("library")) *library = j["library"].get<std::string>();
    t.points.push_back(q);
  }
  if (t.points.size() != sizes.size())
    throw std::runtime_error(fmt::format("the measurement at {} printed {} of {} sizes", where, t.points.size(), sizes.size()));
  return t;
}

// Page-aligned buffers for the local measurements.
using PageBuffer = std::vector<char, PageAllocator<char>>;

model::CostTable measure_copy(const ProfOpts& o, const std::vector<std::uint64_t>& sizes) {
  model::CostTable t;
  const std::uint64_t max = *std::max_element(sizes.begin(), sizes.end());
  PageBuffer a(max, 1), b(max, 2);
  for (std::uint64_t m : sizes) {
    const double s = time_until(o, [&] {
      std::memcpy(b.data(), a.data(), m);
      asm volatile("" : : "r"(b.data()) : "memory");
    });
    t.points.push_back({m, s});
  }
  return t;
}

model::CostTable measure_reduce(const ProfOpts& o, coll::DType dt, coll::ROp op, const std::vector<std::uint64_t>& sizes) {
  model::CostTable t;
  coll::Reducer red;
  red.type = dt;
  red.op = op;
  red.elem = coll::dtype_size(dt);
  const std::uint64_t max = *std::max_element(sizes.begin(), sizes.end()) + red.elem;
  PageBuffer a(max, 0), b(max, 0);  // zeros: every type's sum, max, ... stay finite
  for (std::uint64_t m0 : sizes) {
    const std::uint64_t m = std::max<std::uint64_t>(red.elem, m0 / red.elem * red.elem);
    const double s = time_until(o, [&] {
      red.apply(a.data(), b.data(), m, true, nullptr);
      asm volatile("" : : "r"(b.data()) : "memory");
    });
    if (!t.points.empty() && t.points.back().bytes >= m) continue;
    t.points.push_back({m, s});
  }
  return t;
}

// The largest payload Open MPI sends eagerly through a BTL: its eager limit (ompi_info)
// less ob1's match header, which the limit counts; 0 when it cannot be told.
std::uint64_t ompi_eager_payload(const std::string& btl) {
  std::string out;
  if (bench::run_quietly({"ompi_info", "--parsable", "--param", "btl", btl, "--level", "9"}, &out) != 0) return 0;
  const std::string key = "mca:btl:" + btl + ":param:btl_" + btl + "_eager_limit:value:";
  auto at = out.find(key);
  if (at == std::string::npos) return 0;
  constexpr std::uint64_t kOb1Header = 64;
  const std::uint64_t limit = std::strtoull(out.c_str() + at + key.size(), nullptr, 10);
  return limit > kOb1Header ? limit - kOb1Header : 0;
}

int run_profile(const ProfOpts& o) {
  if (!o.machine.empty()) {
    model::Profile p = model::synthetic_profile(model::superpod_sheet());
    p.created = now_utc();
    p.command = "tandem profile --machine " + o.machine;
    model::save_profile(p, o.output);
    fmt::print("wrote {} (built-in {})\n", o.output, o.machine);
    return 0;
  }
  std::string where = o.where;
  const bool have_vc = vcluster::vcluster_exists();
  if (where.empty()) where = have_vc ? "both" : "shm";
  if ((where == "vcluster" || where == "both") && !have_vc)
    throw std::runtime_error("--where " + where + " needs a virtual cluster: tandem vcluster up --hosts 2 --rate 1gbit");
  std::vector<std::uint64_t> sizes;
  for (const auto& s : o.sizes) sizes.push_back(parse_bytes_or_throw(s, std::uint64_t{1} << 30));
  if (sizes.empty()) sizes = {1, 8, 64, 512, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20};
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  std::vector<std::pair<coll::DType, coll::ROp>> reductions;
  for (const auto& k : o.reduce) {
    auto colon = k.find(':');
    if (colon == std::string::npos) throw std::runtime_error("--reduce takes datatype:operation, not `" + k + "`");
    reductions.push_back(parse_reduction(k.substr(0, colon), k.substr(colon + 1)));
  }

  model::Profile p;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  p.machine.host = host;
  p.machine.cpu = model::host_cpu();
  p.machine.cores = static_cast<int>(std::thread::hardware_concurrency());
  std::string library;
  if (where == "shm" || where == "both") p.intra = run_logp(o, "shm", sizes, &library);
  if (where == "vcluster" || where == "both") {
    p.inter = run_logp(o, "vcluster", sizes, &library);
    const vcluster::VclusterInfo vc = vcluster::vcluster_state();
    p.shape.nodes = static_cast<int>(vc.hosts.size());
    p.shape.network = "vcluster " + vc.rate + " (network namespaces, veth, tbf)";
  } else {
    p.shape.network = "shared memory";
  }
  p.shape.ranks_per_node = o.ranks_per_node > 0 ? o.ranks_per_node : (p.inter ? 1 : std::max(1, p.machine.cores));
  p.transport = "mpi:" + o.mpi + (library.empty() ? "" : " " + library.substr(0, library.find(',')));
  // The protocol switch: Open MPI's BTLs' eager payloads; under `tandem run`,
  // TANDEM_EAGER_LIMIT is TCP's. MPICH's are left unknown (0).
  if (o.mpi == "openmpi") {
    Config cfg;
    load_config(cfg);
    if (p.intra) p.intra->eager_limit = ompi_eager_payload("vader");
    if (p.inter) p.inter->eager_limit = !o.plain && cfg.eager_limit > 0 ? cfg.eager_limit : ompi_eager_payload("tcp");
  }
  if (p.intra) p.intra_bandwidth = model::Profile::asymptotic_bandwidth(*p.intra);
  if (p.inter) p.inter_bandwidth = model::Profile::asymptotic_bandwidth(*p.inter);
  fmt::print(stderr, "tandem profile: copy and {} reductions in this process\n", reductions.size());
  p.copy = measure_copy(o, sizes);
  for (auto [dt, op] : reductions) p.reduce[model::reduce_key(dt, op)] = measure_reduce(o, dt, op, sizes);
  p.created = now_utc();
  p.command = "tandem profile --mpi " + o.mpi + " --where " + where + (o.plain ? " --plain" : "");
  model::save_profile(p, o.output);

  auto show = [&](const char* name, const model::P2PTable& t) {
    fmt::print("{}:\n", name);
    std::vector<std::vector<std::string>> rows;
    for (const auto& q : t.points)
      rows.push_back({bench::fmt_size(q.bytes), bench::fmt_time(q.rtt * 1e6), bench::fmt_time(q.os * 1e6),
                      bench::fmt_time(q.orecv * 1e6), bench::fmt_time(q.g * 1e6), bench::fmt_time(q.L * 1e6),
                      fmt::format("{:.1f}%", q.ci * 100), std::to_string(q.reps)});
    bench::print_table({"bytes", "rtt", "os", "or", "g", "L", "ci", "reps"}, rows);
  };
  if (p.intra) show("inside a node (shm)", *p.intra);
  if (p.inter) show("between nodes (vcluster)", *p.inter);
  fmt::print("wrote {} ({}, {})\n", o.output, p.transport, p.shape.network);
  return 0;
}

}  // namespace

void add_profile(CLI::App& app) {
  auto* cmd = app.add_subcommand("profile", "Measure this machine's point-to-point and local costs for the performance "
                                            "model (os, or, g, L per size; copy and reduce per byte) into a profile");
  auto o = std::make_shared<ProfOpts>();
  cmd->add_option("-o,--output", o->output, "The profile to write (JSON)")->required();
  cmd->add_option("--mpi", o->mpi, "The MPI to measure")->check(CLI::IsMember({"openmpi", "mpich"}));
  cmd->add_option("--where", o->where,
                  "shm (two ranks on this node), vcluster (two hosts of the virtual cluster) or both (default: both "
                  "when a virtual cluster is up, else shm)")
      ->check(CLI::IsMember({"shm", "vcluster", "both"}));
  cmd->add_option("--sizes", o->sizes, "Message sizes (default 1 B to 16 MiB)")->delimiter(',')->check(bytes_validator(1ull << 30));
  cmd->add_option("--ci", o->ci, "Target relative half-width of each median's 95% interval")->check(CLI::Range(0.001, 1.0));
  cmd->add_option("--min-reps", o->min_reps, "Fewest repetitions per quantity and size")->check(CLI::Range(6, 100000));
  cmd->add_option("--max-reps", o->max_reps, "Most repetitions per quantity and size")->check(CLI::Range(6, 100000));
  cmd->add_option("--budget", o->budget, "Seconds per quantity and size after which the interval reached is kept")
      ->check(CLI::Range(0.01, 3600.0));
  cmd->add_option("--ranks-per-node", o->ranks_per_node, "Ranks per node of the machine the profile describes")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--reduce", o->reduce, "Reductions to measure as datatype:operation")->delimiter(',');
  cmd->add_option("--machine", o->machine, "Write a built-in machine's data sheet instead of measuring: superpod")
      ->check(CLI::IsMember(builtin_machines()));
  cmd->add_option("--timeout", o->timeout, "Seconds each measurement run may take")->check(CLI::Range(10, 86400));
  cmd->add_flag("--plain", o->plain,
                "Measure without `tandem run` around the program (the MPI's own eager limits; default: under `tandem "
                "run`, as tandem's collectives and `tandem tune` run)");
  cmd->callback(bench::exits_with([o] {
    if (o->min_reps > o->max_reps) throw std::runtime_error("--min-reps is larger than --max-reps");
    return run_profile(*o);
  }));
}

}  // namespace tandem::cli
