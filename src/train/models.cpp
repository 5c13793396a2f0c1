#include "train/models.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace tandem::train {

namespace F = torch::nn::functional;

std::optional<ModelKind> parse_model(const std::string& name) {
  if (name == "lenet300" || name == "lenet-300-100") return ModelKind::LeNet300;
  if (name == "lenet5" || name == "lenet-5-caffe") return ModelKind::LeNet5;
  return std::nullopt;
}

std::string model_name(ModelKind k) { return k == ModelKind::LeNet300 ? "lenet300" : "lenet5"; }

PrunableImpl::PrunableImpl(std::int64_t in, std::int64_t out, std::int64_t kernel) : in_(in), out_(out), kernel_(kernel) {
  const std::int64_t fan_in = kernel ? in * kernel * kernel : in;
  torch::Tensor w = kernel ? torch::empty({out, in, kernel, kernel}) : torch::empty({out, in});
  {
    torch::NoGradGuard g;
    w.normal_(0.0, std::sqrt(2.0 / static_cast<double>(fan_in)));
  }
  weight = register_parameter("weight", w);
  bias = register_parameter("bias", torch::zeros({out}));
}

std::vector<std::int64_t> PrunableImpl::weight_shape() const {
  if (kernel_) return {out_, in_, kernel_, kernel_};
  return {out_, in_};
}

torch::Tensor PrunableImpl::forward(const torch::Tensor& x) {
  if (!sparse_) {
    if (kernel_) return F::conv2d(x, weight, F::Conv2dFuncOptions().bias(bias));
    return F::linear(x, weight, bias);
  }
  if (!kernel_) return sparse_linear(x, values, pattern_) + bias;
  // A convolution as a product with the unfolded input: [n, in*k*k, positions].
  const std::int64_t n = x.size(0), oh = x.size(2) - kernel_ + 1, ow = x.size(3) - kernel_ + 1;
  auto cols = F::unfold(x, F::UnfoldFuncOptions({kernel_, kernel_}));  // [n, in*k*k, oh*ow]
  auto rows = cols.transpose(1, 2).reshape({n * oh * ow, in_ * kernel_ * kernel_});
  auto y = sparse_linear(rows, values, pattern_) + bias;  // [n*oh*ow, out]
  return y.view({n, oh * ow, out_}).transpose(1, 2).reshape({n, out_, oh, ow});
}

void PrunableImpl::prune(const torch::Tensor& mask, Kernels k) {
  if (!mask.sizes().equals(torch::IntArrayRef(weight_shape())))
    throw std::invalid_argument(fmt::format("a mask of shape {} for a weight of shape {}", fmt::join(mask.sizes(), "x"),
                                            fmt::join(weight_shape(), "x")));
  if (sparse_) throw std::logic_error("the layer is pruned already");
  mask_ = mask.ne(0).to(torch::kFloat);
  torch::NoGradGuard g;
  if (k == Kernels::Masked) {
    weight.mul_(mask_);
    return;
  }
  auto m2 = mask_.reshape({out_, -1});
  pattern_ = csr_pattern(m2);
  values = register_parameter("values", csr_values(weight.reshape({out_, -1}), pattern_));
  // The dense weight is no parameter any more: it is neither trained, sent nor saved.
  weight.set_requires_grad(false);
  parameters_.erase("weight");
  weight = torch::Tensor();
  sparse_ = true;
}

torch::Tensor PrunableImpl::dense_weight() const {
  if (!sparse_) return weight.detach();
  return csr_to_dense(values, pattern_).view(weight_shape());
}

NetImpl::NetImpl(ModelKind k) : kind_(k) {
  auto add = [&](const std::string& name, std::int64_t in, std::int64_t out, std::int64_t kernel = 0) {
    layers.push_back(register_module(name, Prunable(in, out, kernel)));
    layer_names.push_back(name);
  };
  if (k == ModelKind::LeNet300) {
    add("fc1", 784, 300);
    add("fc2", 300, 100);
    add("fc3", 100, 10);
  } else {
    add("conv1", 1, 20, 5);
    add("conv2", 20, 50, 5);
    add("fc3", 800, 500);
    add("fc4", 500, 10);
  }
}

torch::Tensor NetImpl::forward(torch::Tensor x) {
  if (kind_ == ModelKind::LeNet300) {
    x = x.reshape({x.size(0), 784});
    x = torch::relu(layers[0]->forward(x));
    x = torch::relu(layers[1]->forward(x));
    return layers[2]->forward(x);
  }
  x = x.reshape({x.size(0), 1, 28, 28});
  x = F::max_pool2d(layers[0]->forward(x), F::MaxPool2dFuncOptions(2));
  x = F::max_pool2d(layers[1]->forward(x), F::MaxPool2dFuncOptions(2));
  x = torch::relu(layers[2]->forward(x.reshape({x.size(0), 800})));
  return layers[3]->forward(x);
}

std::int64_t weight_count(const Net& net) {
  std::int64_t n = 0;
  for (const auto& l : net->layers) {
    std::int64_t c = 1;
    for (auto d : l->weight_shape()) c *= d;
    n += c;
  }
  return n;
}

std::int64_t kept_count(const Masks& m) {
  std::int64_t n = 0;
  for (const auto& [name, t] : m) n += t.ne(0).sum().item<std::int64_t>();
  return n;
}

void apply_masks(Net& net, const Masks& masks, Kernels k) {
  for (std::size_t i = 0; i < net->layers.size(); ++i)
    if (auto it = masks.find(net->layer_names[i]); it != masks.end()) net->layers[i]->prune(it->second, k);
  for (const auto& [name, t] : masks)
    if (std::find(net->layer_names.begin(), net->layer_names.end(), name) == net->layer_names.end())
      throw std::invalid_argument("a mask for `" + name + "`, which is no layer of " + model_name(net->kind()));
}

}  // namespace tandem::train
