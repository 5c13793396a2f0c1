// An in-process transport: the ranks of one group are threads of one process (as gloo's
// tests run them), each with its own progress engine, and messages are matched by
// (source, destination, sequence, tag) exactly as the MPI transport's tags match them.
// Free of MPI. It lets the real executor and engine run every algorithm in unit tests, in
// every progress mode:
//   - a send's bytes are read when its receive is matched, not when it is posted, so a
//     schedule that changes a buffer it is still sending shows up as wrong data;
//   - with a seed, the completions each rank's engine finds at one poll run in a random
//     order (other interleavings of the same schedule);
//   - a failure can be injected: the n-th completion of the world reports an error, as a
//     transport would report a broken connection;
//   - a receive shorter than its message completes with kTruncated (MPI_ERR_TRUNCATE's
//     counterpart) after the bytes that fit;
//   - each endpoint has an event descriptor (eventfd), so Block mode really sleeps.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "progress/engine.hpp"
#include "transport/p2p.hpp"

namespace tandem::transport {

inline constexpr int kInprocTruncated = 1001;  // a receive shorter than its message
inline constexpr int kInprocInjected = 1002;   // the default injected error

struct InprocOptions {
  std::uint64_t seed = 0;     // 0: completions in the order they happened; else seeded random order per poll
  std::uint64_t fail_at = 0;  // the fail_at-th completion of the world (1-based) reports fail_error; 0: none
  int fail_error = kInprocInjected;
};

class InprocWorld {
 public:
  class Endpoint;
  explicit InprocWorld(int ranks, InprocOptions opts = {});
  ~InprocWorld();
  InprocWorld(const InprocWorld&) = delete;
  InprocWorld& operator=(const InprocWorld&) = delete;

  int size() const noexcept { return static_cast<int>(endpoints_.size()); }
  // Rank r's endpoint; attach it to the engine that will complete its operations (before
  // that engine starts).
  Endpoint& endpoint(int r) { return *endpoints_.at(static_cast<std::size_t>(r)); }
  // Posted operations still waiting for their match, one per line (deadlock reports).
  std::string unmatched() const;
  // Completions delivered so far (all ranks).
  std::uint64_t completions() const;

 private:
  friend class Endpoint;
  using Key = std::tuple<int, int, std::uint32_t, std::uint32_t>;  // src, dst, seq, tag
  struct Send {
    const void* buf;
    std::uint64_t bytes;
    Completion* c;
  };
  struct Recv {
    void* buf;
    std::uint64_t bytes;
    Completion* c;
  };
  void post_send(const Key& k, const Send& s);
  void post_recv(const Key& k, const Recv& r);
  void match(const Key& k, const Send& s, const Recv& r);  // with mu_ held
  int next_error(int error);                               // with mu_ held

  InprocOptions opts_;
  mutable std::mutex mu_;
  std::map<Key, std::deque<Send>> sends_;
  std::map<Key, std::deque<Recv>> recvs_;
  std::uint64_t delivered_ = 0;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
};

class InprocWorld::Endpoint final : public P2P, public progress::Source {
 public:
  Endpoint(InprocWorld* world, int rank, std::uint64_t seed);
  ~Endpoint() override;
  void attach(progress::Engine* engine);

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return world_->size(); }
  int isend(const void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
            Completion* c) noexcept override;
  int irecv(void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
            Completion* c) noexcept override;
  progress::Engine& engine() noexcept override { return *engine_; }

  int progress() noexcept override;
  int event_fd() const noexcept override { return efd_; }
  bool arm() noexcept override;

 private:
  friend class InprocWorld;
  void push(Completion* c, Result r);  // from any thread

  InprocWorld* world_;
  int rank_;
  progress::Engine* engine_ = nullptr;
  int efd_ = -1;
  std::mutex mu_;
  std::vector<std::pair<Completion*, Result>> ready_;
  std::vector<std::pair<Completion*, Result>> running_;  // the poll's batch (poll lock)
  std::mt19937_64 rng_;
  bool shuffle_;
};

}  // namespace tandem::transport
