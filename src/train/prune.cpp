#include "train/prune.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace tandem::train {

std::optional<PruneMethod> parse_prune(const std::string& name) {
  if (name == "snip") return PruneMethod::Snip;
  if (name == "random") return PruneMethod::Random;
  if (name == "magnitude") return PruneMethod::Magnitude;
  return std::nullopt;
}

std::string prune_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::Snip: return "snip";
    case PruneMethod::Random: return "random";
    case PruneMethod::Magnitude: return "magnitude";
  }
  return "?";
}

Masks compute_masks(Net& net, PruneMethod m, double sparsity, const torch::Tensor& x, const torch::Tensor& y,
                    std::uint64_t seed) {
  if (!(sparsity >= 0 && sparsity < 1)) throw std::invalid_argument(fmt::format("sparsity {} is not in [0, 1)", sparsity));
  Masks masks;
  if (sparsity == 0) return masks;
  std::vector<torch::Tensor> scores;
  if (m == PruneMethod::Snip) {
    for (auto& l : net->layers)
      if (l->weight.grad().defined()) l->weight.mutable_grad().zero_();
    auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    auto grads = torch::autograd::grad({loss}, [&] {
      std::vector<torch::Tensor> ws;
      for (auto& l : net->layers) ws.push_back(l->weight);
      return ws;
    }());
    for (std::size_t i = 0; i < net->layers.size(); ++i)
      scores.push_back((grads[i] * net->layers[i]->weight.detach()).abs().reshape({-1}));
  } else if (m == PruneMethod::Magnitude) {
    for (auto& l : net->layers) scores.push_back(l->weight.detach().abs().reshape({-1}));
  } else {
    auto gen = at::detail::createCPUGenerator(seed);
    for (auto& l : net->layers) scores.push_back(torch::rand({l->weight.numel()}, gen));
  }
  auto all = torch::cat(scores);
  all = all / all.sum().clamp_min(1e-30);  // SNIP's normalisation over the whole model
  const std::int64_t total = all.numel();
  const auto keep = static_cast<std::int64_t>(std::llround((1.0 - sparsity) * static_cast<double>(total)));
  if (keep < 1) throw std::invalid_argument(fmt::format("sparsity {} keeps no weight of {}", sparsity, total));
  // Exactly `keep` kept: the indices of the largest scores (stable: by position at ties).
  auto order = std::get<1>(all.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  auto flat = torch::zeros({total}, torch::kFloat);
  flat.index_fill_(0, order.narrow(0, 0, keep), 1.0);
  std::int64_t at = 0;
  for (std::size_t i = 0; i < net->layers.size(); ++i) {
    const auto n = net->layers[i]->weight.numel();
    masks[net->layer_names[i]] = flat.narrow(0, at, n).reshape(net->layers[i]->weight.sizes()).clone();
    at += n;
  }
  return masks;
}

double isometry(Net& net, const Masks& masks, int iterations, double lr) {
  std::vector<torch::Tensor> ws, cs;
  for (std::size_t i = 0; i < net->layers.size(); ++i) {
    auto it = masks.find(net->layer_names[i]);
    if (it == masks.end()) continue;
    ws.push_back(net->layers[i]->weight);
    cs.push_back(it->second.to(torch::kFloat));
  }
  if (ws.empty()) return 0;
  torch::optim::SGD opt(ws, torch::optim::SGDOptions(lr));
  double value = 0;
  for (int it = 0; it <= iterations; ++it) {
    opt.zero_grad();
    torch::Tensor loss = torch::zeros({});
    for (std::size_t i = 0; i < ws.size(); ++i) {
      // [out x fan_in] as stored: its transpose is the [fan_in x out] W of the objective.
      auto w = (ws[i] * cs[i]).reshape({ws[i].size(0), -1});
      auto gram = torch::matmul(w, w.t());  // (C.W)^T (C.W) with W = w^T: [out x out]
      loss = loss + (gram - torch::eye(gram.size(0))).norm();
    }
    value = loss.item<double>();
    if (it == iterations) break;
    loss.backward();
    opt.step();
  }
  torch::NoGradGuard g;
  for (std::size_t i = 0; i < ws.size(); ++i) ws[i].mul_(cs[i]);  // pruned entries exactly zero
  return value;
}

}  // namespace tandem::train
