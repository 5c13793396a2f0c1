// tandem::ddp (include/tandem/ddp.hpp): buckets of packed gradients, each allreduced on
// tandem's progress engine as soon as its gradients are in.
#include "tandem/ddp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace tandem::ddp {

namespace {

using Clock = std::chrono::steady_clock;

// The MPI type of a tensor's elements (MPI_DATATYPE_NULL: none).
MPI_Datatype mpi_type_of(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat: return MPI_FLOAT;
    case torch::kDouble: return MPI_DOUBLE;
    case torch::kLong: return MPI_INT64_T;
    case torch::kInt: return MPI_INT32_T;
    case torch::kBool:
    case torch::kByte: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
  }
}

// A gradient's type: only floating types are reduced.
MPI_Datatype mpi_type(const torch::Tensor& t, const std::string& name) {
  const MPI_Datatype m = mpi_type_of(t);
  if (m != MPI_FLOAT && m != MPI_DOUBLE)
    throw CollError(fmt::format("tandem::ddp: parameter `{}` is of type {}: only float and double are reduced", name,
                                c10::toString(t.scalar_type())));
  return m;
}

std::string mpi_error(int err) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", err);
  return text;
}

}  // namespace

struct DistributedDataParallel::Impl {
  struct Param {
    std::string name;
    torch::Tensor t;
    torch::Tensor idx;  // kept elements (int64), undefined: dense
    std::int64_t packed = 0;
    std::size_t bucket = 0;
    std::int64_t offset = 0;
    bool ready = false;
    unsigned hook = 0;
  };
  struct Bucket {
    torch::Tensor flat;
    std::vector<std::size_t> params;
    std::size_t pending = 0;
    MPI_Datatype type = MPI_FLOAT;
    CollRequest req;
    bool launched = false;
    bool done = false;  // seen complete (timing.done set)
    BucketTiming timing;
  };
  Options o;
  int rank = 0, size = 1;
  std::vector<Param> params;
  std::vector<Bucket> buckets;
  std::size_t next_launch = 0;
  // What broadcast_state() sends: every parameter (with or without gradient) and buffer.
  std::vector<std::pair<std::string, torch::Tensor>> state;

  void on_grad(std::size_t i, const torch::Tensor& g) {
    Param& p = params[i];
    if (p.ready)
      throw CollError(fmt::format("tandem::ddp: parameter `{}` got a second gradient before finish() (backward() twice "
                                  "without finish()?)", p.name));
    Bucket& b = buckets[p.bucket];
    torch::NoGradGuard no_grad;
    auto slice = b.flat.narrow(0, p.offset, p.packed);
    auto flat = g.reshape({-1});
    if (p.idx.defined()) torch::index_select_out(slice, flat, 0, p.idx);
    else slice.copy_(flat);
    p.ready = true;
    if (--b.pending == 0) launch_ready();
    observe();
  }

  // Notes the completion time of buckets in flight (for the timeline): called from the
  // hooks during backward and from finish().
  void observe() {
    for (std::size_t k = 0; k < next_launch; ++k) {
      Bucket& b = buckets[k];
      if (b.launched && !b.done && b.req.test()) {
        b.done = true;
        b.timing.done = Clock::now();
      }
    }
  }

  // Starts the ready buckets in order: every rank starts them in the same order, whatever
  // order autograd completed them in.
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      Bucket& b = buckets[next_launch++];
      b.timing.start = Clock::now();
      b.req = iallreduce(MPI_IN_PLACE, b.flat.data_ptr(), static_cast<int>(b.flat.numel()), b.type, MPI_SUM, o.comm,
                         o.allreduce);
      b.launched = true;
    }
  }
};

DistributedDataParallel::DistributedDataParallel(torch::nn::Module& module, Options o) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.o = std::move(o);
  MPI_Comm_rank(m.o.comm, &rank_);
  MPI_Comm_size(m.o.comm, &size_);
  m.rank = rank_;
  m.size = size_;
  if (m.o.root < 0 || m.o.root >= size_)
    throw CollError(fmt::format("tandem::ddp: root {} is not a rank of the communicator ({} ranks)", m.o.root, size_));
  if (m.o.bucket_bytes == 0) throw CollError("tandem::ddp: bucket_bytes must be positive");

  auto named = module.named_parameters(/*recurse=*/true);
  for (const auto& item : named) m.state.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) m.state.emplace_back(item.key(), item.value());
  std::map<std::string, torch::Tensor> masks = m.o.masks;
  for (const auto& item : named) {
    if (!item.value().requires_grad()) continue;
    Impl::Param p;
    p.name = item.key();
    p.t = item.value();
    mpi_type(p.t, p.name);
    if (!p.t.is_contiguous())
      throw CollError(fmt::format("tandem::ddp: parameter `{}` is not contiguous", p.name));
    p.packed = p.t.numel();
    if (auto it = masks.find(p.name); it != masks.end()) {
      const torch::Tensor& mask = it->second;
      if (!mask.sizes().equals(p.t.sizes()))
        throw CollError(fmt::format("tandem::ddp: the mask of `{}` has shape {}, the parameter {}", p.name,
                                    fmt::join(mask.sizes(), "x"), fmt::join(p.t.sizes(), "x")));
      p.idx = mask.reshape({-1}).ne(0).nonzero().reshape({-1}).to(torch::kLong).contiguous();
      p.packed = p.idx.numel();
      masks.erase(it);
    }
    m.params.push_back(std::move(p));
  }
  if (!masks.empty())
    throw CollError(fmt::format("tandem::ddp: a mask names `{}`, which is no parameter of the module that requires a "
                                "gradient", masks.begin()->first));

  // Every rank must have the same parameters, shapes and masks: compare (numel, packed)
  // per parameter and the count, as min and max over the ranks.
  {
    std::vector<long long> sig{static_cast<long long>(m.params.size())};
    for (const auto& p : m.params) sig.push_back(p.t.numel()), sig.push_back(p.packed);
    long long n = static_cast<long long>(sig.size()), lo = n, hi = n;
    MPI_Allreduce(&n, &lo, 1, MPI_LONG_LONG, MPI_MIN, m.o.comm);
    MPI_Allreduce(&n, &hi, 1, MPI_LONG_LONG, MPI_MAX, m.o.comm);
    if (lo != hi)
      throw CollError(fmt::format("tandem::ddp: the ranks' modules differ in their number of parameters (this rank: {})",
                                  m.params.size()));
    std::vector<long long> mn(sig.size()), mx(sig.size());
    MPI_Allreduce(sig.data(), mn.data(), static_cast<int>(sig.size()), MPI_LONG_LONG, MPI_MIN, m.o.comm);
    MPI_Allreduce(sig.data(), mx.data(), static_cast<int>(sig.size()), MPI_LONG_LONG, MPI_MAX, m.o.comm);
    for (std::size_t i = 1; i < sig.size(); ++i)
      if (mn[i] != mx[i]) {
        const auto& p = m.params[(i - 1) / 2];
        throw CollError(fmt::format("tandem::ddp: parameter `{}` differs across the ranks in its {} ({} to {})", p.name,
                                    (i - 1) % 2 ? "kept elements (masks)" : "number of elements", mn[i], mx[i]));
      }
  }

  // Buckets in reverse registration order (the order backward produces gradients), a new
  // one when the current one reaches its cap or the type changes.
  std::size_t cap = m.o.first_bucket_bytes ? m.o.first_bucket_bytes : m.o.bucket_bytes;
  std::size_t bytes = 0;
  std::vector<std::vector<std::size_t>> groups;
  MPI_Datatype cur = MPI_DATATYPE_NULL;
  for (std::size_t k = m.params.size(); k-- > 0;) {
    Impl::Param& p = m.params[k];
    const MPI_Datatype t = mpi_type(p.t, p.name);
    if (groups.empty() || t != cur || bytes >= cap) {
      if (!groups.empty()) cap = m.o.bucket_bytes;
      groups.emplace_back();
      bytes = 0;
      cur = t;
    }
    groups.back().push_back(k);
    bytes += static_cast<std::size_t>(p.packed) * p.t.element_size();
  }
  for (auto& g : groups) {
    Impl::Bucket b;
    std::int64_t n = 0;
    for (std::size_t k : g) {
      m.params[k].bucket = m.buckets.size();
      m.params[k].offset = n;
      n += m.params[k].packed;
    }
    const auto& first = m.params[g.front()].t;
    b.type = mpi_type(first, m.params[g.front()].name);
    b.flat = torch::zeros({std::max<std::int64_t>(n, 1)}, first.options().requires_grad(false)).narrow(0, 0, n);
    b.params = g;
    b.pending = g.size();
    b.timing.bytes = static_cast<std::size_t>(n) * first.element_size();
    stats_.bytes_per_step += b.timing.bytes;
    for (std::size_t k : g) stats_.dense_bytes_per_step += m.params[k].t.numel() * m.params[k].t.element_size();
    m.buckets.push_back(std::move(b));
  }

  if (m.o.broadcast) broadcast_state();

  Impl* impl = impl_.get();
  for (std::size_t i = 0; i < m.params.size(); ++i)
    m.params[i].hook = m.params[i].t.register_hook([impl, i](const torch::Tensor& g) { impl->on_grad(i, g); });
}

DistributedDataParallel::~DistributedDataParallel() {
  if (!impl_) return;
  for (auto& b : impl_->buckets)
    if (b.launched) b.req.wait();  // nothing may write into a freed bucket
  for (auto& p : impl_->params) p.t.remove_hook(p.hook);
}

void DistributedDataParallel::broadcast_state() {
  torch::NoGradGuard no_grad;
  std::vector<CollRequest> reqs;
  auto add = [&](torch::Tensor t, const std::string& name) {
    if (!t.is_contiguous()) throw CollError(fmt::format("tandem::ddp: `{}` is not contiguous", name));
    if (t.numel() == 0) return;
    const MPI_Datatype type = mpi_type_of(t);
    if (type == MPI_DATATYPE_NULL)
      throw CollError(fmt::format("tandem::ddp: cannot broadcast `{}` of type {}", name, c10::toString(t.scalar_type())));
    reqs.push_back(ibcast(t.data_ptr(), static_cast<int>(t.numel()), type, impl_->o.root, impl_->o.comm));
  };
  for (auto& [name, t] : impl_->state) add(t, name);
  for (auto& r : reqs)
    if (int err = r.wait(); err != MPI_SUCCESS)
      throw CollError("tandem::ddp: broadcasting the parameters failed: " + mpi_error(err));
}

void DistributedDataParallel::finish() { finish({}); }

void DistributedDataParallel::finish(const std::function<void(std::size_t)>& on_bucket) {
  Impl& m = *impl_;
  const auto t0 = Clock::now();
  // Parameters that got no gradient this step contribute zeros.
  for (auto& b : m.buckets)
    if (b.pending > 0) {
      for (std::size_t k : b.params)
        if (!m.params[k].ready) b.flat.narrow(0, m.params[k].offset, m.params[k].packed).zero_();
      b.pending = 0;
    }
  m.launch_ready();
  torch::NoGradGuard no_grad;
  std::string failure;
  stats_.buckets.clear();
  m.observe();
  for (std::size_t bi = 0; bi < m.buckets.size(); ++bi) {
    auto& b = m.buckets[bi];
    const int err = b.req.wait();
    if (!b.done) b.timing.done = Clock::now();
    b.launched = b.done = false;
    stats_.buckets.push_back(b.timing);
    if (err != MPI_SUCCESS && failure.empty()) failure = mpi_error(err);
    if (!failure.empty()) continue;
    if (m.o.average && m.size > 1) b.flat.mul_(1.0 / m.size);
    for (std::size_t k : b.params) {
      auto& p = m.params[k];
      auto slice = b.flat.narrow(0, p.offset, p.packed);
      torch::Tensor& grad = p.t.mutable_grad();
      if (!grad.defined()) grad = torch::zeros_like(p.t);
      if (p.idx.defined()) {
        torch::Tensor full = torch::zeros({p.t.numel()}, p.t.options());
        full.index_copy_(0, p.idx, slice);
        grad.copy_(full.view(p.t.sizes()));
      } else {
        grad.copy_(slice.view(p.t.sizes()));
      }
    }
    if (on_bucket) on_bucket(bi);
  }
  for (auto& b : m.buckets) b.pending = b.params.size();
  for (auto& p : m.params) p.ready = false;
  m.next_launch = 0;
  if (!failure.empty()) throw CollError("tandem::ddp: a gradient allreduce failed: " + failure);
  const auto end = Clock::now();
  ++stats_.steps;
  if (!stats_.buckets.empty()) {
    auto first = stats_.buckets.front().start;
    for (const auto& t : stats_.buckets) first = std::min(first, t.start);
    stats_.comm_seconds = std::chrono::duration<double>(end - first).count();
  }
  stats_.wait_seconds = std::chrono::duration<double>(end - t0).count();
}

std::size_t DistributedDataParallel::bucket_count() const { return impl_->buckets.size(); }

std::vector<torch::Tensor> DistributedDataParallel::bucket_tensors(std::size_t i) const {
  std::vector<torch::Tensor> ts;
  for (std::size_t k : impl_->buckets.at(i).params) ts.push_back(impl_->params[k].t);
  return ts;
}

std::vector<std::string> DistributedDataParallel::bucket_parameters(std::size_t i) const {
  std::vector<std::string> names;
  for (std::size_t k : impl_->buckets.at(i).params) names.push_back(impl_->params[k].name);
  return names;
}

}  // namespace tandem::ddp
