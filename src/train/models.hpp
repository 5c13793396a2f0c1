// The networks of the SNIP experiments, with layers that can be pruned: LeNet-300-100
// (784-300-100-10, ReLU) and LeNet-5-Caffe (conv 5x5x20, max-pool 2, conv 5x5x50,
// max-pool 2, fc 800-500 with ReLU, fc 500-10; as in Caffe, no ReLU after the
// convolutions). A pruned layer holds either its dense weight with the pruned entries
// zero (Kernels::Masked, as the reference implementations do) or only its kept weights in
// compressed rows (Kernels::Sparse: parameter `values`, costs in proportion to them).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "train/sparse.hpp"

namespace tandem::train {

enum class ModelKind { LeNet300, LeNet5 };
std::optional<ModelKind> parse_model(const std::string& name);  // "lenet300", "lenet5"
std::string model_name(ModelKind k);

enum class Kernels { Masked, Sparse };

// A linear or convolution layer (weight [out x in] or [out x in x k x k], bias [out]).
class PrunableImpl : public torch::nn::Module {
 public:
  // A dense layer, weights by variance scaling over the fan-in (He normal), bias zero.
  PrunableImpl(std::int64_t in, std::int64_t out, std::int64_t kernel = 0);
  torch::Tensor forward(const torch::Tensor& x);
  // Keeps only the entries where mask (the weight's shape) is nonzero: Masked zeroes the
  // others in `weight`; Sparse replaces `weight` by `values` (the kept ones, in CSR order).
  void prune(const torch::Tensor& mask, Kernels k);
  bool is_conv() const { return kernel_ > 0; }
  bool is_sparse() const { return sparse_; }
  // The weight as a dense tensor of its own shape (pruned entries zero), and the mask.
  torch::Tensor dense_weight() const;
  const torch::Tensor& mask() const { return mask_; }  // undefined: not pruned
  std::vector<std::int64_t> weight_shape() const;
  torch::Tensor weight, bias, values;

 private:
  std::int64_t in_, out_, kernel_;
  bool sparse_ = false;
  torch::Tensor mask_;
  CsrPattern pattern_;
};
TORCH_MODULE(Prunable);

class NetImpl : public torch::nn::Module {
 public:
  explicit NetImpl(ModelKind k);
  torch::Tensor forward(torch::Tensor x);  // x [n x 1 x 28 x 28] or [n x 784]: logits [n x 10]
  ModelKind kind() const { return kind_; }
  // The prunable layers, input to output, and their names ("fc1", "conv1", ...).
  std::vector<Prunable> layers;
  std::vector<std::string> layer_names;

 private:
  ModelKind kind_;
};
TORCH_MODULE(Net);

// Masks per layer name. The fraction of the weights (not the biases) kept is 1 - sparsity.
using Masks = std::map<std::string, torch::Tensor>;
std::int64_t weight_count(const Net& net);
std::int64_t kept_count(const Masks& m);

// Applies masks to every layer they name (see PrunableImpl::prune).
void apply_masks(Net& net, const Masks& masks, Kernels k);

}  // namespace tandem::train
