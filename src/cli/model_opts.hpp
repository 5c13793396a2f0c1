// Options the model commands share (`tandem sim`, `tandem profile`, `tandem tune`): the
// profile to use, the grid of segment sizes and fan-outs, a reduction's datatype and
// operation.
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <utility>
#include <vector>

#include "coll/reduce_ops.hpp"
#include "model/predict.hpp"
#include "model/profile.hpp"

namespace tandem::cli {

struct ProfileOpts {
  std::string file;     // --profile
  std::string machine;  // --machine superpod
  void add(CLI::App* cmd);
  // The profile (a file, or a built-in machine's data sheet); throws naming what is wrong.
  model::Profile load() const;
  std::string describe() const;
};

struct GridOpts {
  std::vector<std::string> segsizes;  // --segsizes (default TANDEM_COLL_MODEL_SEGSIZES)
  std::vector<int> fanouts;           // --fanouts (default TANDEM_COLL_MODEL_FANOUTS)
  void add(CLI::App* cmd);
  model::Grid grid() const;
};

// "float", "sum" -> the enums; throws naming the unknown word and listing the known ones.
std::pair<coll::DType, coll::ROp> parse_reduction(const std::string& dtype, const std::string& op);

// The built-in machines of --machine.
std::vector<std::string> builtin_machines();

}  // namespace tandem::cli
