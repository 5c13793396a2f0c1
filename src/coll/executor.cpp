#include "coll/executor.hpp"

#include <cstring>

namespace tandem::coll {

Execution::Execution(std::shared_ptr<const Schedule> s, Buffers b, Reducer r, transport::P2P* p2p, std::uint32_t seq)
    : s_(std::move(s)), b_(b), r_(r), p2p_(p2p), seq_(seq) {
  const Schedule& sc = *s_;
  const std::size_t n = sc.steps.size();
  tmp_.resize(sc.tmp_bytes);
  std::uint64_t largest_reduce = 0;
  waiting_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Step& st = sc.steps[i];
    waiting_[i] = st.dep_count;
    if (st.kind == StepKind::Reduce && st.bytes > largest_reduce) largest_reduce = st.bytes;
  }
  if (r_.op == ROp::User && !r_.commutative) scratch_.resize(largest_reduce);
  ready_.reserve(n);
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

void Execution::reset(Buffers b, std::uint32_t seq, void* reducer_ctx) noexcept {
  const Schedule& sc = *s_;
  const std::size_t n = sc.steps.size();
  b_ = b;
  seq_ = seq;
  r_.ctx = reducer_ctx;
  for (std::size_t i = 0; i < n; ++i) waiting_[i] = sc.steps[i].dep_count;
  remaining_ = static_cast<std::uint32_t>(n);
  signalled_ = false;
  on_done_ = nullptr;
  on_done_arg_ = nullptr;
  error_.store(0, std::memory_order_relaxed);
  done_.store(0, std::memory_order_release);
}

int Execution::start() noexcept {
  bool finished;
  int err;
  {
    progress::Engine::Locked g(p2p_->engine());
    for (std::uint32_t i = 0; i < s_->steps.size(); ++i)
      if (waiting_[i] == 0) ready_.push_back(i);
    run_ready();
    finished = remaining_ == 0 && !signalled_;
    if (finished) signalled_ = true;
    err = error();
  }
  if (finished) signal_done();  // may destroy this object (on-done function)
  return err;
}

// With the poll lock held: runs local steps at once and posts transfers; completions of
// transfers come back through on_complete (possibly in another thread, which holds the
// poll lock then).
void Execution::run_ready() {
  while (!ready_.empty()) {
    std::uint32_t i = ready_.back();
    ready_.pop_back();
    const Step& st = s_->steps[i];
    switch (st.kind) {
      case StepKind::Send: {
        int rc = p2p_->isend(addr(st.src), st.bytes, st.peer, seq_, st.tag, &ops_[i]);
        if (rc != 0) {
          note_error(rc);
          finish_step(i);  // keep going so that the call completes (with its error)
        }
        break;
      }
      case StepKind::Recv: {
        int rc = p2p_->irecv(addr(st.dst), st.bytes, st.peer, seq_, st.tag, &ops_[i]);
        if (rc != 0) {
          note_error(rc);
          finish_step(i);
        }
        break;
      }
      case StepKind::Reduce:
        r_.apply(addr(st.src), addr(st.dst), st.bytes, st.src_first, scratch_.data());
        finish_step(i);
        break;
      case StepKind::Copy:
        if (st.bytes) std::memmove(addr(st.dst), addr(st.src), st.bytes);
        finish_step(i);
        break;
      case StepKind::Nop: finish_step(i); break;
    }
  }
}

void Execution::finish_step(std::uint32_t step) {
  const Schedule& sc = *s_;
  for (std::uint32_t k = sc.succ_begin[step]; k < sc.succ_begin[step + 1]; ++k)
    if (--waiting_[sc.succ[k]] == 0) ready_.push_back(sc.succ[k]);
  --remaining_;
}

void Execution::signal_done() noexcept {
  // After the store a waiter may return and destroy this object: only the on-done
  // function, copied first, may follow. (Waiters poll done(); nobody sleeps on the word.)
  void (*fn)(void*) = on_done_;
  void* arg = on_done_arg_;
  done_.store(1, std::memory_order_release);
  if (fn) fn(arg);
}

void Execution::note_error(int err) noexcept {
  int zero = 0;
  error_.compare_exchange_strong(zero, err, std::memory_order_acq_rel);
}

void Execution::on_complete(transport::Completion* c, const transport::Result& res) {
  auto* op = static_cast<Op*>(c);
  Execution* ex = op->ex;
  if (res.error) ex->note_error(res.error);
  // The poll lock is held (completions run inside the source's progress()).
  ex->finish_step(op->step);
  ex->run_ready();
  bool finished = ex->remaining_ == 0 && !ex->signalled_;
  if (finished) {
    ex->signalled_ = true;
    ex->signal_done();
  }
}

void Execution::wait() noexcept {
  p2p_->engine().wait([](const void* e) { return static_cast<const Execution*>(e)->done(); }, this);
}

bool Execution::test() noexcept {
  if (done()) return true;
  p2p_->engine().help();
  return done();
}

}  // namespace tandem::coll
