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

namespace detail {
struct Call {
  coll::Choice choice;
  std::unique_ptr<coll::MpiCall> call;
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
coll::MpiContext& ctx() {
  static coll::MpiContext* c = [] {
    Config cfg;
    std::string errors = load_config(cfg);
    auto* m = new coll::MpiContext(cfg, nullptr, nullptr);
    if (!errors.empty()) m->add_errors(errors);
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
  coll::Described d;
  std::string why;
  if (!context.describe(spec, &d, &why)) throw CollError(fmt::format("tandem::i{}: {}", coll::coll_name(c), why));
  coll::Selection sel = context.selector().select(d.query, coll::Fallback::Builtin, call_choice ? &*call_choice : nullptr);
  if (sel.reason == coll::Reason::Invalid) throw CollError(fmt::format("tandem::i{}: {}", coll::coll_name(c), sel.why_not));
  context.note(comm, &d, c, sel, {});
  auto call = std::make_shared<detail::Call>();
  call->call = context.prepare(d, sel.choice, &why);
  if (!call->call) throw CollError(fmt::format("tandem::i{}: {}", coll::coll_name(c), why));
  call->choice = sel.choice;
  call->call->exec->start();
  return CollRequest(call);
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
