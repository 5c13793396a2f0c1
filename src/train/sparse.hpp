// Sparse layers for pruned networks: the kept weights of a [rows x cols] weight matrix in
// compressed sparse row layout (values, column indices, row offsets), and the products a
// linear or convolution layer needs, forward and backward, as a libtorch autograd function
// whose only parameter is the values: their gradient is dense over the kept weights, so
// data-parallel training sends exactly them. A step costs in proportion to the kept
// weights (batch x kept multiply-adds per product), not to the dense shape.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace tandem::train {

// The structure of a pruned [rows x cols] matrix: rows+1 offsets into the kept entries'
// column indices (int64 tensors, on the CPU).
struct CsrPattern {
  std::int64_t rows = 0, cols = 0;
  torch::Tensor row_ptr, col_idx;
  std::int64_t nnz() const { return col_idx.defined() ? col_idx.numel() : 0; }
};

// The pattern of `mask` ([rows x cols], nonzero = kept) and the kept values of `dense`
// in its order.
CsrPattern csr_pattern(const torch::Tensor& mask);
torch::Tensor csr_values(const torch::Tensor& dense, const CsrPattern& p);
// The dense [rows x cols] matrix of values on pattern p (zeros elsewhere).
torch::Tensor csr_to_dense(const torch::Tensor& values, const CsrPattern& p);

// y = x W^T for x [n x cols], W the sparse [rows x cols] matrix: y [n x rows]. Autograd
// flows to x and to values.
torch::Tensor sparse_linear(const torch::Tensor& x, const torch::Tensor& values, const CsrPattern& p);

}  // namespace tandem::train
