#include "coll/mpi/coll_mpi.hpp"

#include <fmt/format.h>

#include <climits>

#include "transport/mpi_types.hpp"

namespace tandem::coll {

namespace {
bool rooted(Coll c) { return c == Coll::Bcast || c == Coll::Reduce || c == Coll::Gather || c == Coll::Scatter; }
bool reduces(Coll c) { return c == Coll::Reduce || c == Coll::Allreduce || c == Coll::ReduceScatterBlock; }

void reduce_local(const void* in, void* inout, std::uint64_t count, void* ctx) {
  auto* call = static_cast<MpiCall*>(ctx);
  PMPI_Reduce_local(in, inout, static_cast<int>(count), call->user_type, call->user_op);
}
}  // namespace

bool MpiContext::supported(const MpiCallSpec& s, std::string* why) {
  auto no = [&](std::string msg) {
    if (why) *why = std::move(msg);
    return false;
  };
  if (s.comm == MPI_COMM_NULL) return no("MPI_COMM_NULL");
  int inter = 0;
  PMPI_Comm_test_inter(s.comm, &inter);
  if (inter) return no("intercommunicators are not supported");
  if (s.count < 0) return no(fmt::format("negative count {}", s.count));
  int p = 0;
  PMPI_Comm_size(s.comm, &p);
  if (rooted(s.coll) && (s.root < 0 || s.root >= p)) return no(fmt::format("root {} of {} ranks", s.root, p));
  if (s.coll == Coll::Barrier) return true;
  int size = 0;
  MPI_Aint lb = 0, extent = 0;
  if (PMPI_Type_size(s.type, &size) != MPI_SUCCESS || PMPI_Type_get_true_extent(s.type, &lb, &extent) != MPI_SUCCESS)
    return no("invalid datatype");
  if (size <= 0 || lb != 0 || extent != size) return no("datatype is not contiguous");
  MPI_Aint xlb = 0, xextent = 0;
  PMPI_Type_get_extent(s.type, &xlb, &xextent);
  if (xlb != 0 || xextent != size) return no("datatype has a resized extent");
  std::uint64_t total = static_cast<std::uint64_t>(s.count) * static_cast<std::uint64_t>(size) *
                        (s.coll == Coll::Bcast || s.coll == Coll::Allreduce || s.coll == Coll::Reduce ? 1u
                                                                                                      : static_cast<unsigned>(p));
  if (total > static_cast<std::uint64_t>(INT_MAX)) return no("more than 2 GiB of data");
  if (reduces(s.coll)) {
    auto t = transport::dtype_of(s.type);
    auto o = transport::rop_of(s.op);
    if (o && !t) {
      // A predefined operation on a type tandem has no kernel for: MPI_Reduce_local applies it.
    } else if (o && t && !valid(*o, *t)) {
      return no(fmt::format("MPI does not define {} on {}", rop_name(*o), dtype_name(*t)));
    }
    if (s.op == MPI_OP_NULL) return no("MPI_OP_NULL");
  }
  return true;
}

std::unique_ptr<MpiCall> MpiContext::start(const MpiCallSpec& s, const Choice* forced, std::string* why) {
  auto call = prepare(s, forced, why);
  if (call) call->exec->start();
  return call;
}

std::unique_ptr<MpiCall> MpiContext::prepare(const MpiCallSpec& s, const Choice* forced, std::string* why) {
  if (!supported(s, why)) return nullptr;
  auto call = std::make_unique<MpiCall>();
  int rank = 0, p = 1;
  PMPI_Comm_rank(s.comm, &rank);
  PMPI_Comm_size(s.comm, &p);
  int size = 1;
  if (s.coll != Coll::Barrier) PMPI_Type_size(s.type, &size);
  Args& a = call->args;
  a.coll = s.coll;
  a.rank = rank;
  a.size = p;
  a.root = rooted(s.coll) ? s.root : 0;
  a.count = static_cast<std::uint64_t>(s.count);
  a.elem_size = static_cast<std::uint32_t>(size);
  Buffers b{s.sendbuf, s.recvbuf};
  if (s.coll == Coll::Scatter) {
    a.in_place = rank == a.root && s.recvbuf == MPI_IN_PLACE;
    if (a.in_place) b.recv = nullptr;
  } else if (s.coll != Coll::Bcast && s.coll != Coll::Barrier) {
    a.in_place = s.sendbuf == MPI_IN_PLACE && (!rooted(s.coll) || rank == a.root);
    if (s.sendbuf == MPI_IN_PLACE) b.send = nullptr;
  }
  Reducer r;
  if (reduces(s.coll)) {
    auto t = transport::dtype_of(s.type);
    auto o = transport::rop_of(s.op);
    if (t && o) {
      r.type = *t;
      r.op = *o;
      r.elem = static_cast<std::uint32_t>(size);
    } else {
      int commute = 1;
      PMPI_Op_commutative(s.op, &commute);
      call->user_type = s.type;
      call->user_op = s.op;
      r.op = ROp::User;
      r.fn = reduce_local;
      r.ctx = call.get();
      r.elem = static_cast<std::uint32_t>(size);
      r.commutative = commute != 0;
    }
    a.commutative = r.commutative;
  }
  call->choice = forced ? *forced : default_choice(s.coll, p, a.count * a.elem_size, a.commutative);
  a.segsize = call->choice.segsize;
  a.fanout = call->choice.fanout;
  Channel* ch = channel(s.comm);
  if (!ch) {
    if (why) *why = "cannot duplicate the communicator";
    return nullptr;
  }
  call->p2p = ch->p2p.get();
  const Algorithm* alg = call->choice.alg;
  std::shared_ptr<const Schedule> sched;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& c : ch->cache)
      if (c.alg == alg && c.args == a) sched = c.schedule;
  }
  bool built = false;
  if (!sched) {
    try {
      sched = std::make_shared<const Schedule>(build(*alg, a));
    } catch (const std::exception& e) {
      if (why) *why = e.what();
      return nullptr;
    }
    built = true;
  }
  std::uint32_t seq;
  {
    std::lock_guard<std::mutex> g(mu_);
    seq = ch->seq++;
    if (built && ch->cache.size() < kCachedSchedules) {
      ch->cache.push_back({alg, a, sched});
    } else if (built) {
      ch->cache[ch->cache_next] = {alg, a, sched};
      ch->cache_next = (ch->cache_next + 1) % kCachedSchedules;
    }
  }
  call->exec = std::make_unique<Execution>(std::move(sched), b, r, ch->p2p.get(), seq);
  return call;
}

int MpiContext::delete_channel(MPI_Comm, int, void* value, void*) {
  auto* ch = static_cast<Channel*>(value);
  if (ch->dup != MPI_COMM_NULL) PMPI_Comm_free(&ch->dup);
  delete ch;
  return MPI_SUCCESS;
}

int MpiContext::at_finalize(MPI_Comm, int, void*, void* extra) {
  static_cast<MpiContext*>(extra)->shutdown();
  return MPI_SUCCESS;
}

void MpiContext::ensure_engine() {
  if (engine_started_ || external_) return;
  int level = MPI_THREAD_SINGLE;
  PMPI_Query_thread(&level);
  progress::EngineOptions opts;
  opts.thread = level == MPI_THREAD_MULTIPLE;
  engine_.start(&poller_, opts);
  engine_started_ = true;
  // Stop the thread at MPI_Finalize: attributes of MPI_COMM_SELF are deleted first thing there.
  int kv = MPI_KEYVAL_INVALID;
  PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, at_finalize, &kv, this);
  PMPI_Comm_set_attr(MPI_COMM_SELF, kv, this);
}

MpiContext::Channel* MpiContext::channel(MPI_Comm comm) {
  {
    std::lock_guard<std::mutex> g(mu_);
    ensure_engine();
    if (keyval_ == MPI_KEYVAL_INVALID) PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, delete_channel, &keyval_, nullptr);
    void* v = nullptr;
    int flag = 0;
    PMPI_Comm_get_attr(comm, keyval_, &v, &flag);
    if (flag) return static_cast<Channel*>(v);
  }
  // First tandem collective on this communicator: every rank is here (collectives are
  // called in the same order everywhere), so the duplication, itself collective, matches.
  auto ch = std::make_unique<Channel>();
  if (PMPI_Comm_dup(comm, &ch->dup) != MPI_SUCCESS) return nullptr;
  ch->p2p = std::make_unique<transport::MpiP2P>(ch->dup, external_ ? external_ : &engine_);
  std::lock_guard<std::mutex> g(mu_);
  PMPI_Comm_set_attr(comm, keyval_, ch.get());
  return ch.release();
}

void MpiContext::shutdown() noexcept {
  std::lock_guard<std::mutex> g(mu_);
  if (engine_started_) engine_.stop();
  engine_started_ = false;
}

}  // namespace tandem::coll
