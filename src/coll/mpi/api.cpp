// The C++ collectives API (include/tandem/coll.hpp) over MPI: compiled once per MPI into
// libtandem_coll_<mpi>.so.
#include <fmt/format.h>

#include <atomic>
#include <climits>
#include <mutex>
#include <optional>

#include "coll/algorithms.hpp"
#include "coll/executor.hpp"
#include "coll/mpi/coll_mpi.hpp"
#include "tandem/coll.hpp"
#include "transport/mpi_p2p.hpp"
#include "transport/mpi_transport.hpp"
#include "transport/mpi_types.hpp"

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
  if (!ex.done()) call_->call->p2p->progress();
  if (!ex.done()) return false;
  if (err) *err = ex.error();
  return true;
}

std::string CollRequest::algorithm() const { return call_ ? call_->choice.str() : ""; }

namespace {

coll::MpiContext& ctx() {
  static coll::MpiContext* c = new coll::MpiContext();  // lives to the end of the process
  return *c;
}

CollRequest start(coll::Coll c, const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, int root,
                  MPI_Comm comm, const CollOptions& o) {
  coll::MpiCallSpec spec{c, sendbuf, recvbuf, count, type, op, root, comm};
  coll::Choice choice;
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
      choice = last->choice;
    } else {
      std::string text = o.algorithm;
      if (o.segsize || o.fanout) text += fmt::format(":{}", o.segsize);
      if (o.fanout) text += fmt::format(":{}", o.fanout);
      std::string why;
      auto ch = coll::parse_choice(c, text, &why);
      if (!ch) throw CollError(fmt::format("tandem::i{}: {}", coll::coll_name(c), why));
      choice = *ch;
      last = Parsed{c, o.algorithm, o.segsize, o.fanout, choice};
    }
  }
  auto d = std::make_shared<detail::Call>();
  std::string why;
  d->call = ctx().start(spec, choice.alg ? &choice : nullptr, &why);
  if (!d->call) throw CollError(fmt::format("tandem::i{}: {}", coll::coll_name(c), why));
  d->choice = d->call->choice;
  return CollRequest(d);
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
