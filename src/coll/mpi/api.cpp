// The C++ collectives API (include/tandem/coll.hpp) over MPI: compiled once per MPI into
// libtandem_coll_<mpi>.so.
#include <fmt/format.h>

#include <atomic>
#include <climits>
#include <mutex>
#include <optional>

#include "coll/algorithms.hpp"
#include "coll/executor.hpp"
#include "coll/mpi/context.hpp"
#include "common/config.hpp"
#include "tandem/coll.hpp"

namespace tandem {

namespace {
coll::MpiContext* context_if_made();

// The memory of requests (std::allocate_shared puts the call's state and its reference
// counts in one block): blocks of each size are kept per thread for reuse, so a program
// that repeats its calls does not go through malloc for them.
struct FreeBlock {
  FreeBlock* next;
};
template <std::size_t Size>
struct BlockCache {
  FreeBlock* head = nullptr;
  ~BlockCache() {
    while (head) {
      FreeBlock* b = head;
      head = b->next;
      ::operator delete(b);
    }
  }
};
template <class T>
struct RequestAllocator {
  using value_type = T;
  RequestAllocator() = default;
  template <class U>
  RequestAllocator(const RequestAllocator<U>&) noexcept {}
  static constexpr std::size_t kSize = sizeof(T) < sizeof(FreeBlock) ? sizeof(FreeBlock) : sizeof(T);
  static BlockCache<kSize>& cache() {
    thread_local BlockCache<kSize> c __attribute__((tls_model("initial-exec")));
    return c;
  }
  T* allocate(std::size_t n) {
    if (n == 1) {
      auto& c = cache();
      if (FreeBlock* b = c.head) {
        c.head = b->next;
        return reinterpret_cast<T*>(b);
      }
      return static_cast<T*>(::operator new(kSize));
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n != 1) {
      ::operator delete(p);
      return;
    }
    auto* b = reinterpret_cast<FreeBlock*>(p);
    auto& c = cache();
    b->next = c.head;
    c.head = b;
  }
  template <class U>
  bool operator==(const RequestAllocator<U>&) const noexcept {
    return true;
  }
};
}

namespace detail {
struct Call {
  coll::Choice choice;
  std::unique_ptr<coll::MpiCall> call;
  // A finished call's state goes back for the next call of the same kind.
  ~Call() {
    if (coll::MpiContext* c = context_if_made()) c->recycle(std::move(call));
  }
};
}  // namespace detail

int CollRequest::wait() noexcept {
  if (!call_) return MPI_SUCCESS;
  call_->call->exec->wait();
  return call_->call->exec->error();
}

bool CollRequest::test(int* err) noexcept {
  if (!call_) {
    if (err) *err = MPI_SUCCESS;
    return true;
  }
  auto& ex = *call_->call->exec;
  if (!ex.test()) return false;
  if (err) *err = ex.error();
  return true;
}

std::string CollRequest::algorithm() const { return call_ ? call_->choice.str() : ""; }

namespace {

// The API's context: the settings of this process's environment (TANDEM_COLL_*,
// TANDEM_PROGRESS, ...), read at the first call. Lives to the end of the process.
std::atomic<coll::MpiContext*> g_context{nullptr};
coll::MpiContext* context_if_made() { return g_context.load(std::memory_order_acquire); }

coll::MpiContext& ctx() {
  static coll::MpiContext* c = [] {
    Config cfg;
    std::string errors = load_config(cfg);
    auto* m = new coll::MpiContext(cfg, nullptr, nullptr);
    if (!errors.empty()) m->add_errors(errors);
    g_context.store(m, std::memory_order_release);
    return m;
  }();
  if (!c->errors().empty()) {
    std::string e = c->errors();
    if (!e.empty() && e.back() == '\n') e.pop_back();
    throw CollError(e);
  }
  return *c;
}

CollRequest start(coll::Coll c, const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, int root,
                  MPI_Comm comm, const CollOptions& o) {
  coll::MpiContext& context = ctx();
  coll::MpiCallSpec spec{c, sendbuf, recvbuf, count, type, op, root, comm};
  std::optional<coll::Choice> call_choice;
  if (!o.algorithm.empty()) {
    // A program repeats the same options: keep the last parse of this thread.
    struct Parsed {
      coll::Coll coll;
      std::string algorithm;
      std::uint64_t segsize;
      int fanout;
      coll::Choice choice;
    };
    thread_local std::optional<Parsed> last;
    if (last && last->coll == c && last->algorithm == o.algorithm && last->segsize == o.segsize &&
        last->fanout == o.fanout) {
      call_choice = last->choice;
    } else {
      // The name may carry its parameters (`ring:64K`); the fields, when set, override them.
      std::string why;
      auto ch = coll::parse_choice(c, o.algorithm, &why);
      if (ch && (o.segsize || o.fanout))
        ch = coll::make_choice(c, ch->alg->name, o.segsize ? o.segsize : ch->segsize,
                               o.fanout ? static_cast<std::uint64_t>(o.fanout) : static_cast<std::uint64_t>(ch->fanout),
                               &why);
      if (!ch || o.fanout < 0) throw CollError(fmt::format("tandem::i{}: {}", coll::coll_name(c), ch ? "negative fan-out" : why));
      call_choice = *ch;
      last = Parsed{c, o.algorithm, o.segsize, o.fanout, *ch};
    }
  }
  const coll::Choice* cc = call_choice ? &*call_choice : nullptr;
  auto call = std::allocate_shared<detail::Call>(RequestAllocator<detail::Call>());
  call->call = context.reuse(spec, coll::Fallback::Builtin, cc);
  if (call->call) {
    call->choice = call->call->choice;
    call->call->exec->start();
    return CollRequest(std::move(call));
  }
  std::shared_ptr<coll::Plan> plan = context.plan(spec, coll::Fallback::Builtin, cc);
  auto fail = [&](const std::string& why) { return CollError(fmt::format("tandem::i{}: {}", coll::coll_name(c), why)); };
  if (!plan) throw fail(comm == MPI_COMM_NULL ? "MPI_COMM_NULL" : "out of memory");
  if (!plan->runnable) throw fail(plan->unsupported);
  if (plan->sel.reason == coll::Reason::Invalid) throw fail(plan->sel.why_not);
  std::string why;
  call->call = context.instantiate(plan, spec, &why);
  if (!call->call) throw fail(why);
  call->choice = plan->sel.choice;
  call->call->exec->start();
  return CollRequest(std::move(call));
}

}  // namespace

CollRequest ibcast(void* buf, int count, MPI_Datatype type, int root, MPI_Comm comm, const CollOptions& o) {
  return start(coll::Coll::Bcast, nullptr, buf, count, type, MPI_OP_NULL, root, comm, o);
}
CollRequest ireduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, int root, MPI_Comm comm,
                    const CollOptions& o) {
  return start(coll::Coll::Reduce, sendbuf, recvbuf, count, type, op, root, comm, o);
}
CollRequest iallreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                       const CollOptions& o) {
  return start(coll::Coll::Allreduce, sendbuf, recvbuf, count, type, op, 0, comm, o);
}
CollRequest iallgather(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Comm comm,
                       const CollOptions& o) {
  return start(coll::Coll::Allgather, sendbuf, recvbuf, count, type, MPI_OP_NULL, 0, comm, o);
}
CollRequest ialltoall(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Comm comm,
                      const CollOptions& o) {
  return start(coll::Coll::Alltoall, sendbuf, recvbuf, count, type, MPI_OP_NULL, 0, comm, o);
}
CollRequest igather(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, int root, MPI_Comm comm,
                    const CollOptions& o) {
  return start(coll::Coll::Gather, sendbuf, recvbuf, count, type, MPI_OP_NULL, root, comm, o);
}
CollRequest iscatter(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, int root, MPI_Comm comm,
                     const CollOptions& o) {
  return start(coll::Coll::Scatter, sendbuf, recvbuf, count, type, MPI_OP_NULL, root, comm, o);
}
CollRequest ireduce_scatter_block(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op,
                                  MPI_Comm comm, const CollOptions& o) {
  return start(coll::Coll::ReduceScatterBlock, sendbuf, recvbuf, count, type, op, 0, comm, o);
}
CollRequest ibarrier(MPI_Comm comm, const CollOptions& o) {
  return start(coll::Coll::Barrier, nullptr, nullptr, 0, MPI_BYTE, MPI_OP_NULL, 0, comm, o);
}

std::vector<std::string> coll_names() {
  std::vector<std::string> out;
  for (coll::Coll c : coll::all_colls()) out.push_back(coll::coll_name(c));
  return out;
}

std::vector<std::string> algorithm_names(const std::string& name) {
  auto c = coll::parse_coll(name);
  if (!c) throw CollError(fmt::format("unknown collective `{}`", name));
  std::vector<std::string> out;
  for (const auto& a : coll::algorithms(*c)) out.push_back(a.name);
  return out;
}

void coll_finalize() noexcept { ctx().shutdown(); }

}  // namespace tandem
