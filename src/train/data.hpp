// Fashion-MNIST as tensors: images standardised by the mean and standard deviation of the
// training split's pixels, a fixed-seed hold-out of the training set for validation.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace tandem::train {

struct Dataset {
  torch::Tensor x;  // float [n x 1 x 28 x 28], standardised
  torch::Tensor y;  // int64 [n], classes 0..9
  std::int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

struct Splits {
  Dataset train, val, test;
  double mean = 0, std = 1;  // of the training split's pixels (in [0, 1])
};

// Reads the IDX files of `dir` (train::read_mnist) and holds out `val_fraction` of the
// training set (a permutation from `seed`) for validation. Throws naming the file at fault.
Splits load_mnist(const std::string& dir, double val_fraction, std::uint64_t seed);

}  // namespace tandem::train
