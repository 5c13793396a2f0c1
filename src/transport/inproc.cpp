#include "transport/inproc.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace tandem::transport {

InprocWorld::InprocWorld(int ranks, InprocOptions opts) : opts_(opts) {
  if (ranks < 1) throw std::invalid_argument("an in-process world needs at least one rank");
  for (int r = 0; r < ranks; ++r)
    endpoints_.push_back(std::make_unique<Endpoint>(this, r, opts.seed ? opts.seed * 1000003u + r : 0));
}

InprocWorld::~InprocWorld() = default;

int InprocWorld::next_error(int error) {
  ++delivered_;
  if (opts_.fail_at && delivered_ == opts_.fail_at) return opts_.fail_error;
  return error;
}

void InprocWorld::match(const Key& k, const Send& s, const Recv& r) {
  (void)k;
  std::uint64_t n = std::min(s.bytes, r.bytes);
  if (n) std::memcpy(r.buf, s.buf, n);
  int recv_error = next_error(s.bytes > r.bytes ? kInprocTruncated : 0);
  int send_error = next_error(0);
  endpoints_[static_cast<std::size_t>(std::get<1>(k))]->push(r.c, Result{recv_error, n});
  endpoints_[static_cast<std::size_t>(std::get<0>(k))]->push(s.c, Result{send_error, s.bytes});
}

void InprocWorld::post_send(const Key& k, const Send& s) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = recvs_.find(k);
  if (it != recvs_.end()) {
    Recv r = it->second.front();
    it->second.pop_front();
    if (it->second.empty()) recvs_.erase(it);
    match(k, s, r);
    return;
  }
  sends_[k].push_back(s);
}

void InprocWorld::post_recv(const Key& k, const Recv& r) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = sends_.find(k);
  if (it != sends_.end()) {
    Send s = it->second.front();
    it->second.pop_front();
    if (it->second.empty()) sends_.erase(it);
    match(k, s, r);
    return;
  }
  recvs_[k].push_back(r);
}

std::string InprocWorld::unmatched() const {
  std::lock_guard<std::mutex> g(mu_);
  std::string out;
  auto line = [&](const char* what, const Key& k, std::size_t n) {
    out += std::string(what) + " " + std::to_string(std::get<0>(k)) + "->" + std::to_string(std::get<1>(k)) +
           " seq " + std::to_string(std::get<2>(k)) + " tag " + std::to_string(std::get<3>(k));
    if (n > 1) out += " (x" + std::to_string(n) + ")";
    out += "\n";
  };
  for (const auto& [k, q] : sends_) line("send", k, q.size());
  for (const auto& [k, q] : recvs_) line("recv", k, q.size());
  return out;
}

std::uint64_t InprocWorld::completions() const {
  std::lock_guard<std::mutex> g(mu_);
  return delivered_;
}

InprocWorld::Endpoint::Endpoint(InprocWorld* world, int rank, std::uint64_t seed)
    : world_(world), rank_(rank), rng_(seed), shuffle_(seed != 0) {
  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

InprocWorld::Endpoint::~Endpoint() {
  if (efd_ >= 0) ::close(efd_);
}

void InprocWorld::Endpoint::attach(progress::Engine* engine) {
  engine_ = engine;
  engine->add_source(this);
}

void InprocWorld::Endpoint::push(Completion* c, Result r) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> g(mu_);
    was_empty = ready_.empty();
    ready_.emplace_back(c, r);
  }
  if (was_empty && efd_ >= 0) {
    std::uint64_t one = 1;
    ssize_t w = ::write(efd_, &one, sizeof one);
    (void)w;
  }
}

int InprocWorld::Endpoint::isend(const void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
                                 Completion* c) noexcept {
  if (peer < 0 || peer >= size()) return kInprocInjected;
  try {
    engine_->added();
    world_->post_send({rank_, peer, seq, tag}, {buf, bytes, c});
  } catch (...) {
    return kInprocInjected;
  }
  return 0;
}

int InprocWorld::Endpoint::irecv(void* buf, std::uint64_t bytes, int peer, std::uint32_t seq, std::uint32_t tag,
                                 Completion* c) noexcept {
  if (peer < 0 || peer >= size()) return kInprocInjected;
  try {
    engine_->added();
    world_->post_recv({peer, rank_, seq, tag}, {buf, bytes, c});
  } catch (...) {
    return kInprocInjected;
  }
  return 0;
}

int InprocWorld::Endpoint::progress() noexcept {
  if (efd_ >= 0) {
    std::uint64_t v;
    ssize_t r = ::read(efd_, &v, sizeof v);
    (void)r;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    if (ready_.empty()) return 0;
    running_.swap(ready_);
  }
  if (shuffle_) std::shuffle(running_.begin(), running_.end(), rng_);
  int k = static_cast<int>(running_.size());
  for (auto& [c, r] : running_) c->fn(c, r);
  running_.clear();
  return k;
}

bool InprocWorld::Endpoint::arm() noexcept {
  std::lock_guard<std::mutex> g(mu_);
  return ready_.empty();
}

}  // namespace tandem::transport
