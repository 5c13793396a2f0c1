// Pruning at initialisation: SNIP (Lee et al., ICLR 2019) and its baselines, and the
// approximate-isometry step of the ICLR 2020 follow-up.
//
// SNIP: the connection sensitivity of weight j is |dL/dc_j| at c = 1 for the loss of the
// network with weights c (.) w on one minibatch, i.e. |g_j w_j| with g the gradient of
// the loss with respect to the weights; normalised over the whole model (which does not
// change the ranking), the global top kappa = (1 - sparsity) x (number of weights) are
// kept. Only weights compete: the reference code lets the biases compete too, and since
// they are zero at initialisation their sensitivity is zero and all are removed; here
// biases are never pruned.
#pragma once
#include <optional>
#include <string>

#include "train/models.hpp"

namespace tandem::train {

enum class PruneMethod { Snip, Random, Magnitude };
std::optional<PruneMethod> parse_prune(const std::string& name);  // "snip", "random", "magnitude"
std::string prune_name(PruneMethod m);

// The masks keeping the global top (1 - sparsity) of the weights of `net` (dense, not
// pruned) by the method's score: SNIP's sensitivity on (x, y), the magnitude, or a
// uniformly random score from `gen`'s seed. sparsity 0 gives no masks. Ties at the
// threshold are broken by position, so exactly kappa weights are kept.
Masks compute_masks(Net& net, PruneMethod m, double sparsity, const torch::Tensor& x, const torch::Tensor& y,
                    std::uint64_t seed);

// The approximate-isometry step: minimises sum over pruned layers of
// ||(C . W)^T (C . W) - I||_F (W as [fan_in x out], convolution kernels reshaped to
// [k*k*c_in x c_out]) over the kept weights, by SGD at rate lr for `iterations`. Returns
// the final objective.
double isometry(Net& net, const Masks& masks, int iterations, double lr);

}  // namespace tandem::train
