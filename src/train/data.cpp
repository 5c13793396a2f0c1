#include "train/data.hpp"

#include <stdexcept>

#include "train/idx.hpp"

namespace tandem::train {

namespace {
torch::Tensor images(const IdxArray& a) {
  auto t = torch::from_blob(const_cast<std::uint8_t*>(a.data.data()),
                            {static_cast<std::int64_t>(a.dims[0]), 1, static_cast<std::int64_t>(a.dims[1]),
                             static_cast<std::int64_t>(a.dims[2])},
                            torch::kUInt8);
  return t.to(torch::kFloat).div_(255.0);
}
torch::Tensor labels(const IdxArray& a) {
  return torch::from_blob(const_cast<std::uint8_t*>(a.data.data()), {static_cast<std::int64_t>(a.dims[0])}, torch::kUInt8)
      .to(torch::kLong);
}
}  // namespace

Splits load_mnist(const std::string& dir, double val_fraction, std::uint64_t seed) {
  if (!(val_fraction >= 0 && val_fraction < 1)) throw std::invalid_argument("the validation fraction is not in [0, 1)");
  const Mnist m = read_mnist(dir);
  auto x = images(m.train_images), y = labels(m.train_labels);
  const std::int64_t n = y.size(0), nval = static_cast<std::int64_t>(static_cast<double>(n) * val_fraction);
  auto gen = at::detail::createCPUGenerator(seed);
  auto perm = torch::randperm(n, gen, torch::kLong);
  // Each split in the files' order.
  auto vi = std::get<0>(perm.narrow(0, 0, nval).sort()), ti = std::get<0>(perm.narrow(0, nval, n - nval).sort());
  Splits s;
  s.train = Dataset{x.index_select(0, ti), y.index_select(0, ti)};
  s.val = Dataset{x.index_select(0, vi), y.index_select(0, vi)};
  s.test = Dataset{images(m.test_images), labels(m.test_labels)};
  s.mean = s.train.x.mean().item<double>();
  s.std = s.train.x.std().item<double>();
  for (Dataset* d : {&s.train, &s.val, &s.test}) d->x.sub_(s.mean).div_(s.std);
  return s;
}

}  // namespace tandem::train
