#include "cli/model_opts.hpp"

#include <stdexcept>

#include "cli/cli.hpp"
#include "common/config.hpp"

namespace tandem::cli {

void ProfileOpts::add(CLI::App* cmd) {
  auto* f = cmd->add_option("--profile", file, "Machine profile (JSON from `tandem profile`)");
  auto* m = cmd->add_option("--machine", machine, "A built-in machine instead of a profile: superpod (40 x 8 DGX H100)")
                ->check(CLI::IsMember(builtin_machines()));
  f->excludes(m);
}

model::Profile ProfileOpts::load() const {
  if (!file.empty()) return model::load_profile(file);
  if (machine == "superpod" || machine.empty()) {
    if (machine.empty()) throw std::runtime_error("give a machine profile (--profile FILE) or a built-in machine (--machine superpod)");
    return model::synthetic_profile(model::superpod_sheet());
  }
  throw std::runtime_error("unknown machine `" + machine + "`");
}

std::string ProfileOpts::describe() const { return file.empty() ? "built-in " + machine : file; }

void GridOpts::add(CLI::App* cmd) {
  cmd->add_option("--segsizes", segsizes, "Segment sizes to try (0: unsegmented; default TANDEM_COLL_MODEL_SEGSIZES)")
      ->delimiter(',')
      ->check(bytes_validator());
  cmd->add_option("--fanouts", fanouts, "Fan-outs to try beside each algorithm's default (default TANDEM_COLL_MODEL_FANOUTS)")
      ->delimiter(',')
      ->check(CLI::Range(2, 1024));
}

model::Grid GridOpts::grid() const {
  Config cfg;
  std::string errors = load_config(cfg);
  if (!errors.empty()) throw std::runtime_error(errors.substr(0, errors.find_last_not_of('\n') + 1));
  model::Grid g;
  g.segsizes.clear();
  if (segsizes.empty()) g.segsizes = cfg.model_segsizes;
  for (const auto& s : segsizes) g.segsizes.push_back(parse_bytes_or_throw(s));
  g.fanouts = {0};
  if (fanouts.empty())
    for (unsigned f : cfg.model_fanouts) g.fanouts.push_back(static_cast<int>(f));
  for (int f : fanouts) g.fanouts.push_back(f);
  return g;
}

std::pair<coll::DType, coll::ROp> parse_reduction(const std::string& dtype, const std::string& op) {
  std::pair<coll::DType, coll::ROp> r{coll::DType::F32, coll::ROp::Sum};
  bool found = false;
  std::string known;
  for (int i = 0; i <= static_cast<int>(coll::DType::Byte); ++i) {
    auto t = static_cast<coll::DType>(i);
    known += (known.empty() ? "" : ", ") + std::string(coll::dtype_name(t));
    if (dtype == coll::dtype_name(t)) r.first = t, found = true;
  }
  if (!found) throw std::runtime_error("unknown datatype `" + dtype + "` (known: " + known + ")");
  found = false;
  known.clear();
  for (int i = 0; i < static_cast<int>(coll::ROp::User); ++i) {
    auto o = static_cast<coll::ROp>(i);
    known += (known.empty() ? "" : ", ") + std::string(coll::rop_name(o));
    if (op == coll::rop_name(o)) r.second = o, found = true;
  }
  if (!found) throw std::runtime_error("unknown operation `" + op + "` (known: " + known + ")");
  if (!coll::valid(r.second, r.first))
    throw std::runtime_error("MPI does not define " + op + " on " + dtype);
  return r;
}

std::vector<std::string> builtin_machines() { return {"superpod"}; }

}  // namespace tandem::cli
