#include "coll/executor.hpp"

#include <sched.h>

#include <cstring>

#include "common/wait.hpp"

namespace tandem::coll {

Execution::Execution(std::shared_ptr<const Schedule> s, Buffers b, Reducer r, transport::P2P* p2p, std::uint32_t seq)
    : s_(std::move(s)), b_(b), r_(r), p2p_(p2p), seq_(seq) {
  const Schedule& sc = *s_;
  const std::size_t n = sc.steps.size();
  tmp_.resize(sc.tmp_bytes);
  std::uint64_t largest_reduce = 0;
  waiting_.resize(n);
  succ_begin_.assign(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const Step& st = sc.steps[i];
    waiting_[i] = st.dep_count;
    for (std::uint32_t k = 0; k < st.dep_count; ++k) ++succ_begin_[sc.deps[st.dep_begin + k] + 1];
    if (st.kind == StepKind::Reduce && st.bytes > largest_reduce) largest_reduce = st.bytes;
  }
  for (std::size_t i = 0; i < n; ++i) succ_begin_[i + 1] += succ_begin_[i];
  succ_.resize(succ_begin_[n]);
  std::vector<std::uint32_t> fill(succ_begin_.begin(), succ_begin_.end() - 1);
  for (std::size_t i = 0; i < n; ++i) {
    const Step& st = sc.steps[i];
    for (std::uint32_t k = 0; k < st.dep_count; ++k) succ_[fill[sc.deps[st.dep_begin + k]]++] = static_cast<std::uint32_t>(i);
  }
  if (r_.op == ROp::User && !r_.commutative) scratch_.resize(largest_reduce);
  ops_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    ops_[i].fn = &Execution::on_complete;
    ops_[i].ex = this;
    ops_[i].step = static_cast<std::uint32_t>(i);
  }
  remaining_ = static_cast<std::uint32_t>(n);
}

Execution::~Execution() {
  // Outstanding operations reference this object: never leave before they complete.
  if (!done()) wait();
}

void* Execution::addr(Loc l) const {
  unsigned char* base = l.buf == Buf::Send   ? static_cast<unsigned char*>(const_cast<void*>(b_.send))
                        : l.buf == Buf::Recv ? static_cast<unsigned char*>(b_.recv)
                                             : const_cast<unsigned char*>(tmp_.data());
  return base ? base + l.off : nullptr;
}

int Execution::start() noexcept {
  std::vector<std::uint32_t> ready;
  bool finished;
  int err;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (std::uint32_t i = 0; i < s_->steps.size(); ++i)
      if (waiting_[i] == 0) ready.push_back(i);
    run_ready(ready);
    finished = remaining_ == 0 && !signalled_;
    if (finished) signalled_ = true;
    err = error();
  }
  if (finished) signal_done();  // may destroy this object (on-done function)
  return err;
}

// Called with mu_ held: runs local steps at once and posts transfers; completions of
// transfers come back through on_complete (possibly in another thread, which then waits
// for mu_).
void Execution::run_ready(std::vector<std::uint32_t>& ready) {
  while (!ready.empty()) {
    std::uint32_t i = ready.back();
    ready.pop_back();
    const Step& st = s_->steps[i];
    switch (st.kind) {
      case StepKind::Send: {
        int rc = p2p_->isend(addr(st.src), st.bytes, st.peer, seq_, st.tag, &ops_[i]);
        if (rc != 0) {
          int zero = 0;
          error_.compare_exchange_strong(zero, rc);
          finish_step(i, ready);  // keep going so that the call completes (with its error)
        }
        break;
      }
      case StepKind::Recv: {
        int rc = p2p_->irecv(addr(st.dst), st.bytes, st.peer, seq_, st.tag, &ops_[i]);
        if (rc != 0) {
          int zero = 0;
          error_.compare_exchange_strong(zero, rc);
          finish_step(i, ready);
        }
        break;
      }
      case StepKind::Reduce:
        r_.apply(addr(st.src), addr(st.dst), st.bytes, st.src_first, scratch_.data());
        finish_step(i, ready);
        break;
      case StepKind::Copy:
        if (st.bytes) std::memmove(addr(st.dst), addr(st.src), st.bytes);
        finish_step(i, ready);
        break;
      case StepKind::Nop: finish_step(i, ready); break;
    }
  }
}

void Execution::finish_step(std::uint32_t step, std::vector<std::uint32_t>& ready) {
  for (std::uint32_t k = succ_begin_[step]; k < succ_begin_[step + 1]; ++k)
    if (--waiting_[succ_[k]] == 0) ready.push_back(succ_[k]);
  --remaining_;
}

void Execution::signal_done() noexcept {
  // After the store a waiter may return and destroy this object: nothing but the wake-up
  // (harmless on a reused word: futex waiters re-check) and the on-done function, copied
  // first, may follow.
  void (*fn)(void*) = on_done_;
  void* arg = on_done_arg_;
  std::atomic<std::uint32_t>* word = &done_;
  word->store(1, std::memory_order_release);
  futex_wake_all(word);
  if (fn) fn(arg);
}

void Execution::on_complete(transport::Completion* c, int err) {
  auto* op = static_cast<Op*>(c);
  Execution* ex = op->ex;
  if (err) {
    int zero = 0;
    ex->error_.compare_exchange_strong(zero, err);
  }
  std::vector<std::uint32_t> ready;
  bool finished;
  {
    std::lock_guard<std::mutex> g(ex->mu_);
    ex->finish_step(op->step, ready);
    ex->run_ready(ready);
    finished = ex->remaining_ == 0 && !ex->signalled_;
    if (finished) ex->signalled_ = true;
  }
  if (finished) ex->signal_done();
}

void Execution::wait() noexcept {
  if (done()) return;
  // Poll as the MPI library's own blocking calls do (with Open MPI's mpi_yield_when_idle),
  // giving the core away between polls. A collective is a chain of dependent messages and
  // any sleep adds to every link (sleeping 50 us between polls made an 8-byte allreduce on
  // 4 hosts 680 us instead of 140). While it polls, the progress thread sleeps instead of
  // competing for the core (DrivingScope).
  DrivingScope driving;
  while (!done()) {
    p2p_->progress();
    if (!done()) sched_yield();
  }
}

}  // namespace tandem::coll
