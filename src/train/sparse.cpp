#include "train/sparse.hpp"

#include <stdexcept>

namespace tandem::train {

CsrPattern csr_pattern(const torch::Tensor& mask) {
  if (mask.dim() != 2) throw std::invalid_argument("csr_pattern: the mask is not a matrix");
  CsrPattern p;
  p.rows = mask.size(0);
  p.cols = mask.size(1);
  auto kept = mask.ne(0).to(torch::kCPU).contiguous();
  auto counts = kept.sum(1, false, torch::kLong);
  p.row_ptr = torch::zeros({p.rows + 1}, torch::kLong);
  p.row_ptr.narrow(0, 1, p.rows).copy_(counts.cumsum(0));
  // nonzero() lists the kept entries row by row, columns ascending: CSR order.
  p.col_idx = kept.nonzero().select(1, 1).contiguous();
  return p;
}

namespace {
// Each kept entry's index in the row-major dense matrix.
torch::Tensor flat_index(const CsrPattern& p) {
  auto per_row = p.row_ptr.narrow(0, 1, p.rows) - p.row_ptr.narrow(0, 0, p.rows);
  return torch::repeat_interleave(torch::arange(p.rows, torch::kLong), per_row) * p.cols + p.col_idx;
}
}  // namespace

torch::Tensor csr_values(const torch::Tensor& dense, const CsrPattern& p) {
  return dense.detach().reshape({-1}).index_select(0, flat_index(p)).clone();
}

torch::Tensor csr_to_dense(const torch::Tensor& values, const CsrPattern& p) {
  auto out = torch::zeros({p.rows * p.cols}, values.options().requires_grad(false));
  out.index_put_({flat_index(p)}, values.detach());
  return out.view({p.rows, p.cols});
}

namespace {

// The kernels work on transposed operands, so that the innermost loop runs over the batch
// contiguously (and vectorises): xt [cols x n], yt [rows x n].
template <typename T>
void spmm_t(const std::int64_t* rp, const std::int64_t* ci, const T* v, const T* xt, T* yt, std::int64_t rows,
            std::int64_t n) {
  for (std::int64_t r = 0; r < rows; ++r) {
    T* __restrict y = yt + r * n;
    for (std::int64_t j = 0; j < n; ++j) y[j] = 0;
    for (std::int64_t k = rp[r]; k < rp[r + 1]; ++k) {
      const T w = v[k];
      const T* __restrict x = xt + ci[k] * n;
      for (std::int64_t j = 0; j < n; ++j) y[j] += w * x[j];
    }
  }
}

// gxt [cols x n] = W^T gyt, gv[k] = <gyt[row(k)], xt[col(k)]>.
template <typename T>
void spmm_t_backward(const std::int64_t* rp, const std::int64_t* ci, const T* v, const T* xt, const T* gyt, T* gxt,
                     T* gv, std::int64_t rows, std::int64_t n) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* __restrict gy = gyt + r * n;
    for (std::int64_t k = rp[r]; k < rp[r + 1]; ++k) {
      const T* __restrict x = xt + ci[k] * n;
      T* __restrict gx = gxt ? gxt + ci[k] * n : nullptr;
      T dot = 0;
      const T w = v[k];
      for (std::int64_t j = 0; j < n; ++j) dot += gy[j] * x[j];
      if (gx)
        for (std::int64_t j = 0; j < n; ++j) gx[j] += w * gy[j];
      gv[k] = dot;
    }
  }
}

struct SparseLinearFn : torch::autograd::Function<SparseLinearFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor values,
                               torch::Tensor row_ptr, torch::Tensor col_idx, std::int64_t cols) {
    const std::int64_t rows = row_ptr.numel() - 1, n = x.size(0);
    if (x.dim() != 2 || x.size(1) != cols)
      throw std::invalid_argument("sparse_linear: the input's shape does not match the weight's columns");
    auto xt = x.t().contiguous();
    auto yt = torch::empty({rows, n}, x.options());
    auto v = values.contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sparse_linear", [&] {
      spmm_t<scalar_t>(row_ptr.data_ptr<std::int64_t>(), col_idx.data_ptr<std::int64_t>(), v.data_ptr<scalar_t>(),
                       xt.data_ptr<scalar_t>(), yt.data_ptr<scalar_t>(), rows, n);
    });
    ctx->save_for_backward({xt, v, row_ptr, col_idx});
    ctx->saved_data["needs_x"] = x.requires_grad();
    return yt.t();
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto xt = saved[0], v = saved[1], row_ptr = saved[2], col_idx = saved[3];
    const std::int64_t rows = row_ptr.numel() - 1, n = xt.size(1), cols = xt.size(0);
    auto gyt = grads[0].t().contiguous();
    const bool needs_x = ctx->saved_data["needs_x"].toBool();
    torch::Tensor gxt = needs_x ? torch::zeros({cols, n}, xt.options()) : torch::Tensor();
    auto gv = torch::empty_like(v);
    AT_DISPATCH_FLOATING_TYPES(xt.scalar_type(), "sparse_linear_backward", [&] {
      spmm_t_backward<scalar_t>(row_ptr.data_ptr<std::int64_t>(), col_idx.data_ptr<std::int64_t>(),
                                v.data_ptr<scalar_t>(), xt.data_ptr<scalar_t>(), gyt.data_ptr<scalar_t>(),
                                needs_x ? gxt.data_ptr<scalar_t>() : nullptr, gv.data_ptr<scalar_t>(), rows, n);
    });
    return {needs_x ? gxt.t() : torch::Tensor(), gv, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sparse_linear(const torch::Tensor& x, const torch::Tensor& values, const CsrPattern& p) {
  return SparseLinearFn::apply(x, values, p.row_ptr, p.col_idx, p.cols);
}

}  // namespace tandem::train
