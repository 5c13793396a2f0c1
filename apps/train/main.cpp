// tandem's data-parallel trainer (docs/training.md): LeNet-300-100 or LeNet-5-Caffe on
// Fashion-MNIST, optionally pruned at initialisation (SNIP, random, magnitude), each rank
// a share of every global batch, gradients averaged by tandem::ddp. An MPI program:
//   mpirun -np 2 tandem train --model lenet300 --sparsity 0.95 --epochs 10
#include <mpi.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tandem/ddp.hpp"
#include "train/data.hpp"
#include "train/idx.hpp"
#include "train/models.hpp"
#include "train/prune.hpp"

namespace tt = tandem::train;
using Clock = std::chrono::steady_clock;

namespace {

// An error every rank finds alike (the arguments, the launcher's environment): rank 0
// says it and every rank exits, without MPI_Abort (which may cut the message short).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string model = "lenet300";
  std::string data = tt::kFashionMnistDir;
  int epochs = 10;
  long steps = 0;  // 0: epochs decide
  int batch = 100;
  double lr = 0.01, momentum = 0.9, weight_decay = 5e-4;
  double sparsity = 0;
  std::string prune = "snip";
  int prune_batch = 100;
  bool isometry = false;
  int isometry_iters = 10000;
  double isometry_lr = 0.1;
  std::string kernels = "sparse";
  std::uint64_t seed = 1;
  int threads = 1;
  long eval_every = 0;  // 0: at the end of each epoch
  long log_every = 100;
  double val_fraction = 0.1;
  long checkpoint_every = 0;
  std::string checkpoint = "tandem-train.ckpt";
  bool resume = false;
  bool json = false;
  std::string save;  // write the final parameters (for comparisons)
  std::string algorithm;  // tandem's allreduce algorithm for the buckets
  double first_bucket_mb = 1, bucket_mb = 25;
  std::string trace;  // Chrome trace file
  long trace_from = 10, trace_steps = 20;
};

// A timeline in the Chrome trace format (chrome://tracing, Perfetto): per rank (pid) the
// compute on thread 0 and each bucket's allreduce on thread 1.
struct Trace {
  Clock::time_point origin;
  std::string events;  // this rank's, comma-separated JSON objects
  void add(const std::string& name, int rank, int tid, Clock::time_point a, Clock::time_point b) {
    const double ts = std::chrono::duration<double, std::micro>(a - origin).count();
    const double dur = std::chrono::duration<double, std::micro>(b - a).count();
    nlohmann::json e{{"name", name}, {"ph", "X"}, {"pid", rank}, {"tid", tid}, {"ts", ts}, {"dur", dur}};
    if (!events.empty()) events += ",\n";
    events += e.dump();
  }
  // Gathers every rank's events to rank 0, which writes the file.
  void write(const std::string& path, int rank, int size) {
    int len = static_cast<int>(events.size());
    std::vector<int> lens(size), offs(size);
    MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    std::string all;
    if (rank == 0) {
      int total = 0;
      for (int r = 0; r < size; ++r) offs[r] = total, total += lens[r];
      all.resize(static_cast<std::size_t>(total));
    }
    MPI_Gatherv(events.data(), len, MPI_CHAR, all.data(), lens.data(), offs.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank != 0) return;
    std::string out = "{\"traceEvents\": [\n";
    bool first = true;
    for (int r = 0; r < size; ++r) {
      if (!lens[r]) continue;
      out += (first ? "" : ",\n") + all.substr(static_cast<std::size_t>(offs[r]), static_cast<std::size_t>(lens[r]));
      first = false;
    }
    out += "\n]}\n";
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f || std::fwrite(out.data(), 1, out.size(), f) != out.size() || std::fclose(f) != 0)
      throw std::runtime_error("cannot write the trace " + tmp);
    std::filesystem::rename(tmp, path);
  }
};

// The environment torchrun sets, checked against MPI's view when present.
void check_launcher_env(int rank, int size) {
  auto env = [](const char* n) -> std::optional<long> {
    const char* v = std::getenv(n);
    if (!v || !*v) return std::nullopt;
    char* end = nullptr;
    long x = std::strtol(v, &end, 10);
    if (*end || x < 0) throw UsageError(fmt::format("{}='{}' is not a non-negative integer", n, v));
    return x;
  };
  if (auto w = env("WORLD_SIZE"); w && *w != size)
    throw UsageError(fmt::format("WORLD_SIZE={} but MPI started {} ranks: start the ranks with mpirun -np {}",
                                         *w, size, *w));
  if (auto r = env("RANK"); r && *r != rank)
    throw std::runtime_error(fmt::format("RANK={} but this is MPI rank {}", *r, rank));
  if (auto l = env("LOCAL_RANK"), lw = env("LOCAL_WORLD_SIZE"); l && lw && *l >= *lw)
    throw UsageError(fmt::format("LOCAL_RANK={} is not below LOCAL_WORLD_SIZE={}", *l, *lw));
}

struct Eval {
  double loss = 0, error = 0;  // mean loss, error in percent
};

// Every rank evaluates its share; the sums are combined.
Eval evaluate(tt::Net& net, const tt::Dataset& d, int rank, int size) {
  torch::NoGradGuard g;
  net->eval();
  const std::int64_t n = d.size(), lo = n * rank / size, hi = n * (rank + 1) / size;
  double sums[2] = {0, 0};
  for (std::int64_t i = lo; i < hi; i += 1000) {
    const std::int64_t m = std::min<std::int64_t>(1000, hi - i);
    auto logits = net->forward(d.x.narrow(0, i, m));
    auto y = d.y.narrow(0, i, m);
    sums[0] += torch::nn::functional::cross_entropy(logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)).item<double>();
    sums[1] += logits.argmax(1).ne(y).sum().item<double>();
  }
  double all[2];
  MPI_Allreduce(sums, all, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  net->train();
  return {all[0] / static_cast<double>(n), 100.0 * all[1] / static_cast<double>(n)};
}

// One SGD per gradient bucket: each steps as soon as its bucket's allreduce is done.
using Optimizers = std::vector<std::unique_ptr<torch::optim::SGD>>;

void save_checkpoint(const std::string& path, tt::Net& net, Optimizers& opts, const tt::Masks& masks, long step) {
  torch::serialize::OutputArchive a;
  net->save(a);
  for (std::size_t k = 0; k < opts.size(); ++k) {
    torch::serialize::OutputArchive o;
    opts[k]->save(o);
    a.write(fmt::format("optimizer{}", k), o);
  }
  torch::serialize::OutputArchive m;
  for (const auto& [name, t] : masks) m.write(name, t);
  a.write("masks", m);
  a.write("step", torch::tensor(static_cast<std::int64_t>(step)));
  const std::string tmp = path + ".tmp";
  a.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Args a;
  CLI::App app{"tandem train: data-parallel training of (pruned) LeNets on Fashion-MNIST over tandem's collectives"};
  app.add_option("--model", a.model, "lenet300 (LeNet-300-100) or lenet5 (LeNet-5-Caffe)")
      ->check(CLI::IsMember({"lenet300", "lenet5"}));
  app.add_option("--data", a.data, "Directory of the Fashion-MNIST IDX files (gzip)");
  app.add_option("--epochs", a.epochs, "Passes over the training split")->check(CLI::Range(1, 100000));
  app.add_option("--steps", a.steps, "Stop after this many steps (0: --epochs decide)")->check(CLI::Range(0L, 100000000L));
  app.add_option("--batch", a.batch, "Global batch (split evenly over the ranks)")->check(CLI::Range(1, 1 << 20));
  app.add_option("--lr", a.lr, "Learning rate (SGD)")->check(CLI::Range(0.0, 100.0));
  app.add_option("--momentum", a.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0));
  app.add_option("--weight-decay", a.weight_decay, "SGD weight decay")->check(CLI::Range(0.0, 1.0));
  app.add_option("--sparsity", a.sparsity, "Fraction of the weights pruned at initialisation")->check(CLI::Range(0.0, 0.9999));
  app.add_option("--prune", a.prune, "snip, random or magnitude")->check(CLI::IsMember({"snip", "random", "magnitude"}));
  app.add_option("--prune-batch", a.prune_batch, "Examples SNIP scores on")->check(CLI::Range(1, 60000));
  app.add_flag("--isometry", a.isometry, "Approximate-isometry step after pruning (ICLR 2020)");
  app.add_option("--isometry-iters", a.isometry_iters, "Its SGD iterations")->check(CLI::Range(0, 1000000));
  app.add_option("--isometry-lr", a.isometry_lr, "Its learning rate")->check(CLI::Range(0.0, 100.0));
  app.add_option("--kernels", a.kernels, "sparse (kept weights only) or masked (dense weights, pruned ones zero)")
      ->check(CLI::IsMember({"sparse", "masked"}));
  app.add_option("--seed", a.seed, "Seed of the initialisation, the data order and the hold-out");
  app.add_option("--threads", a.threads, "Intra-op threads per rank")->check(CLI::Range(1, 1024));
  app.add_option("--eval-every", a.eval_every, "Validate every N steps (0: at each epoch's end)")->check(CLI::Range(0L, 100000000L));
  app.add_option("--log-every", a.log_every, "A progress line every N steps")->check(CLI::Range(1L, 100000000L));
  app.add_option("--checkpoint-every", a.checkpoint_every, "Write a checkpoint every K steps (0: never)")
      ->check(CLI::Range(0L, 100000000L));
  app.add_option("--checkpoint", a.checkpoint, "The checkpoint file");
  app.add_flag("--resume", a.resume, "Continue from --checkpoint");
  app.add_flag("--json", a.json, "Print a JSON summary on standard output");
  app.add_option("--save", a.save, "Write the final parameters to this file (torch archive)");
  app.add_option("--algorithm", a.algorithm, "tandem's allreduce algorithm for the gradient buckets (default: its selection)");
  app.add_option("--first-bucket-mb", a.first_bucket_mb, "First bucket's cap, MiB")->check(CLI::Range(0.0, 4096.0));
  app.add_option("--bucket-mb", a.bucket_mb, "Other buckets' cap, MiB")->check(CLI::Range(0.001, 4096.0));
  app.add_option("--trace", a.trace, "Write a Chrome-trace timeline (forward, backward, each bucket's allreduce per rank)");
  app.add_option("--trace-from", a.trace_from, "First step traced")->check(CLI::Range(0L, 100000000L));
  app.add_option("--trace-steps", a.trace_steps, "Steps traced")->check(CLI::Range(1L, 100000L));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = rank == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
    MPI_Finalize();
    return rc;
  }
  try {
    check_launcher_env(rank, size);
    if (a.batch % size != 0)
      throw UsageError(fmt::format("--batch {} is not a multiple of the {} ranks", a.batch, size));
    torch::set_num_threads(a.threads);
    torch::manual_seed(a.seed);
    const auto kind = *tt::parse_model(a.model);
    tt::Splits data = tt::load_mnist(a.data, a.val_fraction, a.seed);
    tt::Net net(kind);
    tt::Masks masks;
    if (a.sparsity > 0) {
      auto gen = at::detail::createCPUGenerator(a.seed + 7919);
      auto pick = torch::randperm(data.train.size(), gen, torch::kLong).narrow(0, 0, a.prune_batch);
      masks = tt::compute_masks(net, *tt::parse_prune(a.prune), a.sparsity, data.train.x.index_select(0, pick),
                                data.train.y.index_select(0, pick), a.seed);
      if (a.isometry) tt::isometry(net, masks, a.isometry_iters, a.isometry_lr);
      tt::apply_masks(net, masks, a.kernels == "sparse" ? tt::Kernels::Sparse : tt::Kernels::Masked);
    }
    tandem::ddp::Options dopt;
    dopt.first_bucket_bytes = static_cast<std::size_t>(a.first_bucket_mb * (1 << 20));
    dopt.bucket_bytes = static_cast<std::size_t>(a.bucket_mb * (1 << 20));
    dopt.allreduce.algorithm = a.algorithm;
    if (a.kernels == "masked")
      for (const auto& [layer, m] : masks) dopt.masks[layer + ".weight"] = m;
    long step = 0;
    std::optional<torch::serialize::InputArchive> resumed;
    if (a.resume) {
      if (!std::filesystem::exists(a.checkpoint))
        throw std::runtime_error(fmt::format("--resume: no checkpoint {}", a.checkpoint));
      resumed.emplace();
      resumed->load_from(a.checkpoint);
      net->load(*resumed);
      torch::Tensor s;
      resumed->read("step", s);
      step = s.item<std::int64_t>();
    }
    tandem::ddp::DistributedDataParallel ddp(*net, dopt);
    Optimizers opts;
    for (std::size_t k = 0; k < ddp.bucket_count(); ++k) {
      opts.push_back(std::make_unique<torch::optim::SGD>(
          ddp.bucket_tensors(k), torch::optim::SGDOptions(a.lr).momentum(a.momentum).weight_decay(a.weight_decay)));
      if (resumed) {
        torch::serialize::InputArchive o;
        resumed->read(fmt::format("optimizer{}", k), o);
        opts[k]->load(o);
      }
    }
    const std::int64_t n = data.train.size(), per_epoch = n / a.batch, local = a.batch / size;
    if (per_epoch < 1) throw std::runtime_error(fmt::format("--batch {} exceeds the {} training examples", a.batch, n));
    const long total = a.steps ? a.steps : static_cast<long>(per_epoch) * a.epochs;
    double step_seconds = 0, hidden_sum = 0, comm_sum = 0;
    long timed = 0;
    Eval val;
    Trace trace;
    MPI_Barrier(MPI_COMM_WORLD);
    trace.origin = Clock::now();
    while (step < total) {
      const long epoch = step / per_epoch;
      auto gen = at::detail::createCPUGenerator(a.seed * 1000003 + static_cast<std::uint64_t>(epoch));
      auto perm = torch::randperm(n, gen, torch::kLong);
      for (long s = step % per_epoch; s < per_epoch && step < total; ++s) {
        const auto t0 = Clock::now();
        auto idx = perm.narrow(0, s * a.batch + rank * local, local);
        auto x = data.train.x.index_select(0, idx), y = data.train.y.index_select(0, idx);
        for (auto& o : opts) o->zero_grad();
        auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
        const auto t1 = Clock::now();
        loss.backward();
        const auto t2 = Clock::now();
        // Each bucket's parameters are updated as soon as its allreduce is done.
        ddp.finish([&](std::size_t k) { opts[k]->step(); });
        const auto t3 = Clock::now();
        if (!a.trace.empty() && step >= a.trace_from && step < a.trace_from + a.trace_steps) {
          trace.add("forward", rank, 0, t0, t1);
          trace.add("backward", rank, 0, t1, t2);
          trace.add("finish (waiting, optimizer steps per bucket)", rank, 0, t2, t3);
          const auto& b = ddp.stats().buckets;
          for (std::size_t k = 0; k < b.size(); ++k)
            trace.add(fmt::format("allreduce bucket {} ({} B)", k, b[k].bytes), rank, 1, b[k].start, b[k].done);
        }
        ++step;
        const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
        step_seconds += dt;
        ++timed;
        const auto& st = ddp.stats();
        comm_sum += st.comm_seconds;
        hidden_sum += std::max(0.0, st.comm_seconds - st.wait_seconds);
        if (a.checkpoint_every && step % a.checkpoint_every == 0 && rank == 0)
          save_checkpoint(a.checkpoint, net, opts, masks, step);
        if (rank == 0 && step % a.log_every == 0)
          fmt::print(stderr, "step {}/{} epoch {} loss {:.4f} {:.2f} ms/step {} B/step\n", step, total, epoch + 1,
                     loss.item<double>(), 1e3 * step_seconds / static_cast<double>(timed), st.bytes_per_step);
        if (a.eval_every && step % a.eval_every == 0) {
          val = evaluate(net, data.val, rank, size);
          if (rank == 0) fmt::print(stderr, "step {} validation error {:.2f}%\n", step, val.error);
        }
      }
      if (!a.eval_every) {
        val = evaluate(net, data.val, rank, size);
        if (rank == 0) fmt::print(stderr, "epoch {} validation error {:.2f}% loss {:.4f}\n", epoch + 1, val.error, val.loss);
      }
    }
    const Eval test = evaluate(net, data.test, rank, size);
    if (!a.trace.empty()) trace.write(a.trace, rank, size);
    if (!a.save.empty() && rank == 0) {
      // Flat, dense: "fc1.weight" (pruned entries zero, whatever the kernels), "fc1.bias".
      torch::serialize::OutputArchive out;
      for (std::size_t i = 0; i < net->layers.size(); ++i) {
        out.write(net->layer_names[i] + ".weight", net->layers[i]->dense_weight());
        out.write(net->layer_names[i] + ".bias", net->layers[i]->bias.detach());
      }
      const std::string tmp = a.save + ".tmp";
      out.save_to(tmp);
      std::filesystem::rename(tmp, a.save);
    }
    if (rank == 0) {
      fmt::print(stderr, "test error {:.2f}% after {} steps\n", test.error, step);
      if (a.json) {
        const auto& st = ddp.stats();
        // What the unpruned network's gradients take (float weights and biases).
        std::int64_t dense_bytes = 4 * tt::weight_count(net);
        for (const auto& l : net->layers) dense_bytes += 4 * l->bias.numel();
        nlohmann::json j{{"model", a.model},
                         {"ranks", size},
                         {"batch", a.batch},
                         {"sparsity", a.sparsity},
                         {"prune", a.sparsity > 0 ? a.prune : "none"},
                         {"kernels", a.kernels},
                         {"steps", step},
                         {"test_error", test.error},
                         {"validation_error", val.error},
                         {"time_per_step_s", timed ? step_seconds / static_cast<double>(timed) : 0.0},
                         {"comm_bytes_per_step", st.bytes_per_step},
                         {"dense_comm_bytes_per_step", dense_bytes},
                         {"buckets", ddp.bucket_count()},
                         {"comm_hidden_fraction", comm_sum > 0 ? hidden_sum / comm_sum : 0.0},
                         {"weights_kept", a.sparsity > 0 ? tt::kept_count(masks) : tt::weight_count(net)},
                         {"weights", tt::weight_count(net)}};
        std::printf("%s\n", j.dump(1).c_str());
      }
    }
  } catch (const UsageError& e) {
    if (rank == 0) std::fprintf(stderr, "tandem train: %s\n", e.what());
    MPI_Finalize();
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem train (rank %d): %s\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
  tandem::coll_finalize();
  MPI_Finalize();
  return 0;
}
