// compare_params MODEL A B TOL: loads two parameter archives of `tandem train --save`
// (flat: "fc1.weight", "fc1.bias", ... dense) and prints the relative difference
// ||a - b|| / ||b|| over all parameters; exit status 1 above TOL or when their names differ.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "train/models.hpp"

namespace tt = tandem::train;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: compare_params MODEL A B TOL\n");
    return 2;
  }
  auto kind = tt::parse_model(argv[1]);
  if (!kind) return 2;
  auto load = [&](const char* path) {
    torch::serialize::InputArchive in;
    in.load_from(path);
    std::vector<torch::Tensor> out;
    std::vector<std::string> keys = in.keys();
    std::sort(keys.begin(), keys.end());
    if (keys.empty()) throw std::runtime_error(std::string(path) + ": no parameters");
    for (const auto& k : keys) {
      torch::Tensor t;
      in.read(k, t);
      out.push_back(t.reshape({-1}));
    }
    return torch::cat(out);
  };
  auto a = load(argv[2]), b = load(argv[3]);
  if (a.numel() != b.numel()) {
    std::fprintf(stderr, "compare_params: %lld and %lld parameters\n", static_cast<long long>(a.numel()),
                 static_cast<long long>(b.numel()));
    return 1;
  }
  const double rel = (a - b).norm().item<double>() / b.norm().item<double>();
  std::printf("relative difference %.3g\n", rel);
  return rel <= std::atof(argv[4]) ? 0 : 1;
}
