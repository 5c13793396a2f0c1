// The trainer's building blocks: the IDX reader and its errors, the sparse kernels
// against dense products (values and gradients), pruning (exactly kappa kept, biases
// never), masks that keep pruned weights at zero through training, the isometry step.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "train/data.hpp"
#include "train/idx.hpp"
#include "train/models.hpp"
#include "train/prune.hpp"
#include "train/sparse.hpp"

namespace tt = tandem::train;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path p;
  TempDir() {
    char t[] = "/tmp/tandem-train-XXXXXX";
    p = mkdtemp(t);
  }
  ~TempDir() { fs::remove_all(p); }
};

std::vector<unsigned char> idx_bytes(std::vector<std::uint32_t> dims, unsigned char fill, std::size_t drop = 0) {
  std::vector<unsigned char> b{0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  std::size_t n = 1;
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
    n *= d;
  }
  for (std::size_t i = 0; i + drop < n; ++i) b.push_back(static_cast<unsigned char>((fill + i) % 10));
  return b;
}

void write_gz(const fs::path& p, const std::vector<unsigned char>& b) {
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
  gzclose(f);
}

std::string error_of(const fs::path& p) {
  try {
    tt::read_idx(p.string());
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Idx, ReadsGzipAndPlainFilesAndNamesWhatIsWrong) {
  TempDir d;
  write_gz(d.p / "a.gz", idx_bytes({3, 2, 2}, 1));
  auto a = tt::read_idx((d.p / "a.gz").string());
  EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{3, 2, 2}));
  EXPECT_EQ(a.item_size(), 4u);
  ASSERT_EQ(a.data.size(), 12u);
  EXPECT_EQ(a.data[5], 6);
  {
    auto b = idx_bytes({4}, 0);
    std::ofstream(d.p / "plain", std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<long>(b.size()));
    EXPECT_EQ(tt::read_idx((d.p / "plain").string()).data.size(), 4u);
  }
  write_gz(d.p / "short.gz", idx_bytes({3, 2, 2}, 1, 5));
  EXPECT_NE(error_of(d.p / "short.gz").find("short.gz: truncated: 7 of the 12 data bytes"), std::string::npos)
      << error_of(d.p / "short.gz");
  auto bad = idx_bytes({2}, 0);
  bad[0] = 0x50;
  write_gz(d.p / "bad.gz", bad);
  EXPECT_NE(error_of(d.p / "bad.gz").find("not an IDX file"), std::string::npos);
  auto ty = idx_bytes({2}, 0);
  ty[2] = 0x0d;
  write_gz(d.p / "float.gz", ty);
  EXPECT_NE(error_of(d.p / "float.gz").find("is not unsigned byte"), std::string::npos);
  auto extra = idx_bytes({2}, 0);
  extra.push_back(7);
  write_gz(d.p / "extra.gz", extra);
  EXPECT_NE(error_of(d.p / "extra.gz").find("data after"), std::string::npos);
  write_gz(d.p / "empty.gz", {});
  EXPECT_NE(error_of(d.p / "empty.gz").find("truncated: no IDX header"), std::string::npos);
  EXPECT_NE(error_of(d.p / "missing.gz").find("missing.gz: cannot open"), std::string::npos);
}

TEST(Idx, AMnistDirectoryIsCheckedAsAWhole) {
  TempDir d;
  write_gz(d.p / "train-images-idx3-ubyte.gz", idx_bytes({5, 28, 28}, 0));
  write_gz(d.p / "train-labels-idx1-ubyte.gz", idx_bytes({4}, 0));
  write_gz(d.p / "t10k-images-idx3-ubyte.gz", idx_bytes({2, 28, 28}, 0));
  try {
    tt::read_mnist(d.p.string());
    FAIL() << "a missing file";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("no t10k-labels-idx1-ubyte.gz"), std::string::npos) << e.what();
  }
  write_gz(d.p / "t10k-labels-idx1-ubyte.gz", idx_bytes({2}, 0));
  try {
    tt::read_mnist(d.p.string());
    FAIL() << "5 images, 4 labels";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("has 5 images but"), std::string::npos) << e.what();
  }
  write_gz(d.p / "train-labels-idx1-ubyte.gz", idx_bytes({5}, 0));
  EXPECT_EQ(tt::read_mnist(d.p.string()).train_images.count(), 5u);
}

TEST(Data, FashionMnistSplitsAndStandardises) {
  const char* dir = std::getenv("TANDEM_TEST_DATA");
  if (!dir || !fs::exists(fs::path(dir) / "train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no Fashion-MNIST here";
  auto s = tt::load_mnist(dir, 0.1, 3);
  EXPECT_EQ(s.train.size(), 54000);
  EXPECT_EQ(s.val.size(), 6000);
  EXPECT_EQ(s.test.size(), 10000);
  EXPECT_NEAR(s.train.x.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(s.train.x.std().item<double>(), 1.0, 1e-3);
  auto again = tt::load_mnist(dir, 0.1, 3);
  EXPECT_TRUE(torch::equal(again.val.y, s.val.y)) << "the hold-out is fixed by the seed";
}

// The sparse product and its gradients equal the dense ones of the same pruned matrix.
TEST(Sparse, LinearMatchesTheDenseProduct) {
  torch::manual_seed(0);
  auto w = torch::randn({7, 13}, torch::kDouble);
  auto mask = torch::rand({7, 13}).lt(0.3);
  mask[2].fill_(false);  // an empty row
  auto p = tt::csr_pattern(mask);
  EXPECT_EQ(p.nnz(), mask.sum().item<std::int64_t>());
  auto values = tt::csr_values(w, p).set_requires_grad(true);
  EXPECT_TRUE(torch::allclose(tt::csr_to_dense(values, p), w * mask));
  auto x = torch::randn({5, 13}, torch::kDouble).set_requires_grad(true);
  auto y = tt::sparse_linear(x, values, p);
  auto wd = (w * mask).set_requires_grad(true);
  auto x2 = x.detach().clone().set_requires_grad(true);
  auto yd = torch::matmul(x2, wd.t());
  EXPECT_TRUE(torch::allclose(y, yd, 1e-12, 1e-12));
  auto gy = torch::randn({5, 7}, torch::kDouble);
  (y * gy).sum().backward();
  (yd * gy).sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), x2.grad(), 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(values.grad(), tt::csr_values(wd.grad(), p), 1e-12, 1e-12));
}

// Both networks, sparse and masked, compute the same outputs and the same gradients of
// the kept weights; pruned weights stay zero through SGD with momentum and weight decay.
TEST(Models, SparseAndMaskedNetworksAgree) {
  for (auto kind : {tt::ModelKind::LeNet300, tt::ModelKind::LeNet5}) {
    torch::manual_seed(1);
    tt::Net a(kind);
    tt::Net b(kind);
    {
      torch::NoGradGuard g;
      auto pa = a->parameters(), pb = b->parameters();
      for (std::size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
    }
    auto x = torch::randn({8, 1, 28, 28}), y = torch::randint(0, 10, {8}, torch::kLong);
    auto masks = tt::compute_masks(a, tt::PruneMethod::Magnitude, 0.9, x, y, 1);
    EXPECT_EQ(tt::kept_count(masks), std::llround(0.1 * static_cast<double>(tt::weight_count(a))));
    tt::apply_masks(a, masks, tt::Kernels::Masked);
    tt::apply_masks(b, masks, tt::Kernels::Sparse);
    EXPECT_EQ(b->parameters().size(), a->parameters().size()) << "values replace weight";
    for (const auto& item : b->named_parameters()) EXPECT_EQ(item.key().find(".weight"), std::string::npos) << item.key();
    auto ya = a->forward(x), yb = b->forward(x);
    EXPECT_TRUE(torch::allclose(ya, yb, 1e-4, 1e-5)) << tt::model_name(kind);
    torch::optim::SGD oa(a->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(5e-4));
    torch::optim::SGD ob(b->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(5e-4));
    for (int step = 0; step < 3; ++step) {
      oa.zero_grad();
      ob.zero_grad();
      torch::nn::functional::cross_entropy(a->forward(x), y).backward();
      torch::nn::functional::cross_entropy(b->forward(x), y).backward();
      // The masked network's pruned gradients are what tandem::ddp zeroes.
      for (std::size_t i = 0; i < a->layers.size(); ++i) a->layers[i]->weight.mutable_grad().mul_(a->layers[i]->mask());
      oa.step();
      ob.step();
    }
    for (std::size_t i = 0; i < a->layers.size(); ++i) {
      auto wa = a->layers[i]->dense_weight(), wb = b->layers[i]->dense_weight();
      EXPECT_TRUE(torch::allclose(wa, wb, 1e-4, 1e-5)) << a->layer_names[i];
      EXPECT_EQ(wb.masked_select(a->layers[i]->mask().eq(0)).abs().sum().item<double>(), 0.0);
      EXPECT_EQ(wa.masked_select(a->layers[i]->mask().eq(0)).abs().sum().item<double>(), 0.0);
    }
  }
}

// SNIP keeps the weights of largest |g w| over the whole model, exactly kappa of them;
// random keeps exactly kappa too; the biases are never pruned.
TEST(Prune, SnipKeepsTheMostSensitiveWeights) {
  torch::manual_seed(2);
  tt::Net net(tt::ModelKind::LeNet300);
  auto x = torch::randn({100, 784}), y = torch::randint(0, 10, {100}, torch::kLong);
  auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
  std::vector<torch::Tensor> ws;
  for (auto& l : net->layers) ws.push_back(l->weight);
  auto g = torch::autograd::grad({loss}, ws);
  std::vector<torch::Tensor> scores;
  for (std::size_t i = 0; i < ws.size(); ++i) scores.push_back((g[i] * ws[i]).abs().reshape({-1}));
  auto all = torch::cat(scores);
  auto masks = tt::compute_masks(net, tt::PruneMethod::Snip, 0.95, x, y, 1);
  const auto kept = tt::kept_count(masks);
  EXPECT_EQ(kept, std::llround(0.05 * static_cast<double>(all.numel())));
  auto flat = torch::cat({masks["fc1"].reshape({-1}), masks["fc2"].reshape({-1}), masks["fc3"].reshape({-1})});
  const double lowest_kept = all.masked_select(flat.ne(0)).min().item<double>();
  const double highest_pruned = all.masked_select(flat.eq(0)).max().item<double>();
  EXPECT_GE(lowest_kept, highest_pruned);
  auto r = tt::compute_masks(net, tt::PruneMethod::Random, 0.5, x, y, 9);
  EXPECT_EQ(tt::kept_count(r), std::llround(0.5 * static_cast<double>(all.numel())));
  EXPECT_EQ(masks.count("fc1.bias"), 0u);
  EXPECT_TRUE(tt::compute_masks(net, tt::PruneMethod::Snip, 0.0, x, y, 1).empty());
  EXPECT_THROW(tt::compute_masks(net, tt::PruneMethod::Snip, 1.0, x, y, 1), std::invalid_argument);
}

// The isometry step lowers its objective and leaves pruned weights exactly zero.
TEST(Prune, IsometryImprovesTheObjective) {
  torch::manual_seed(3);
  tt::Net net(tt::ModelKind::LeNet5);
  auto x = torch::randn({16, 1, 28, 28}), y = torch::randint(0, 10, {16}, torch::kLong);
  auto masks = tt::compute_masks(net, tt::PruneMethod::Snip, 0.9, x, y, 1);
  const double before = tt::isometry(net, masks, 0, 0.1);
  const double after = tt::isometry(net, masks, 200, 0.1);
  EXPECT_LT(after, 0.6 * before);
  for (std::size_t i = 0; i < net->layers.size(); ++i)
    EXPECT_EQ(net->layers[i]->weight.detach().masked_select(masks[net->layer_names[i]].eq(0)).abs().sum().item<double>(), 0.0);
}
