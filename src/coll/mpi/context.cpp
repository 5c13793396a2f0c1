#include "coll/mpi/context.hpp"

#include <fmt/format.h>

#include <climits>
#include <set>

#include "coll/mpi/types.hpp"
#include "common/log.hpp"

namespace tandem::coll {

namespace {
bool rooted(Coll c) { return c == Coll::Bcast || c == Coll::Reduce || c == Coll::Gather || c == Coll::Scatter; }
bool reduces(Coll c) { return c == Coll::Reduce || c == Coll::Allreduce || c == Coll::ReduceScatterBlock; }

const char* mpi_name(Coll c) {
  switch (c) {
    case Coll::Bcast: return "MPI_Bcast";
    case Coll::Reduce: return "MPI_Reduce";
    case Coll::Allreduce: return "MPI_Allreduce";
    case Coll::Allgather: return "MPI_Allgather";
    case Coll::Alltoall: return "MPI_Alltoall";
    case Coll::Gather: return "MPI_Gather";
    case Coll::Scatter: return "MPI_Scatter";
    case Coll::ReduceScatterBlock: return "MPI_Reduce_scatter_block";
    case Coll::Barrier: return "MPI_Barrier";
  }
  return "?";
}

void reduce_local(const void* in, void* inout, std::uint64_t count, void* ctx) {
  auto* call = static_cast<MpiCall*>(ctx);
  PMPI_Reduce_local(in, inout, static_cast<int>(count), call->user_type, call->user_op);
}

std::string comm_label(MPI_Comm comm, int size) {
  char name[MPI_MAX_OBJECT_NAME] = {};
  int len = 0;
  if (PMPI_Comm_get_name(comm, name, &len) != MPI_SUCCESS || len <= 0)
    return fmt::format("a communicator of {} ranks", size);
  return fmt::format("{} ({} ranks)", std::string(name, static_cast<std::size_t>(len)), size);
}
}  // namespace

int world_rank() noexcept {
  int init = 0, fin = 0;
  PMPI_Initialized(&init);
  PMPI_Finalized(&fin);
  if (!init || fin) return -1;
  int r = -1;
  PMPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

MpiContext::MpiContext(const Config& cfg, progress::Engine* engine, transport::MpiSource* source)
    : cfg_(cfg), engine_(engine), source_(source) {
  selector_ = Selector::from_config(cfg_, &errors_);
}

MpiContext::~MpiContext() { shutdown(); }

bool MpiContext::describe(const MpiCallSpec& s, Described* d, std::string* why) noexcept {
  auto no = [&](std::string msg) {
    if (why) *why = std::move(msg);
    return false;
  };
  try {
    if (s.comm == MPI_COMM_NULL) return no("MPI_COMM_NULL");
    int inter = 0;
    PMPI_Comm_test_inter(s.comm, &inter);
    if (inter) return no("intercommunicators are not supported");
    if (s.count < 0) return no(fmt::format("negative count {}", s.count));
    int p = 0, rank = 0;
    PMPI_Comm_size(s.comm, &p);
    PMPI_Comm_rank(s.comm, &rank);
    if (rooted(s.coll) && (s.root < 0 || s.root >= p)) return no(fmt::format("root {} of {} ranks", s.root, p));
    int size = 1;
    if (s.coll != Coll::Barrier) {
      MPI_Aint lb = 0, extent = 0;
      if (PMPI_Type_size(s.type, &size) != MPI_SUCCESS || PMPI_Type_get_true_extent(s.type, &lb, &extent) != MPI_SUCCESS)
        return no("invalid datatype");
      if (size <= 0 || lb != 0 || extent != size) return no("datatype is not contiguous");
      MPI_Aint xlb = 0, xextent = 0;
      PMPI_Type_get_extent(s.type, &xlb, &xextent);
      if (xlb != 0 || xextent != size) return no("datatype has a resized extent");
      std::uint64_t total = static_cast<std::uint64_t>(s.count) * static_cast<std::uint64_t>(size) *
                            (s.coll == Coll::Bcast || s.coll == Coll::Allreduce || s.coll == Coll::Reduce
                                 ? 1u
                                 : static_cast<unsigned>(p));
      if (total > static_cast<std::uint64_t>(INT_MAX)) return no("more than 2 GiB of data");
    }
    Described& out = *d;
    out.spec = s;
    Args& a = out.args;
    a = Args{};
    a.coll = s.coll;
    a.rank = rank;
    a.size = p;
    a.root = rooted(s.coll) ? s.root : 0;
    a.count = static_cast<std::uint64_t>(s.count);
    a.elem_size = static_cast<std::uint32_t>(size);
    out.buffers = Buffers{s.sendbuf, s.recvbuf};
    if (s.coll == Coll::Scatter) {
      a.in_place = rank == a.root && s.recvbuf == MPI_IN_PLACE;
      if (a.in_place) out.buffers.recv = nullptr;
    } else if (s.coll != Coll::Bcast && s.coll != Coll::Barrier) {
      a.in_place = s.sendbuf == MPI_IN_PLACE && (!rooted(s.coll) || rank == a.root);
      if (s.sendbuf == MPI_IN_PLACE) out.buffers.send = nullptr;
    }
    out.reducer = Reducer{};
    Query& q = out.query;
    q = Query{};
    q.coll = s.coll;
    q.ranks = p;
    q.bytes = a.count * a.elem_size;
    if (reduces(s.coll)) {
      if (s.op == MPI_OP_NULL) return no("MPI_OP_NULL");
      auto t = dtype_of(s.type);
      auto o = rop_of(s.op);
      Reducer& r = out.reducer;
      r.elem = static_cast<std::uint32_t>(size);
      if (t && o) {
        r.type = *t;
        r.op = *o;
        q.dtype = t;
        q.op = o;
      } else {
        // A user operation, or a predefined one on a type tandem has no kernel for: applied
        // with MPI_Reduce_local (the call's MpiCall is its context, set by prepare()).
        int commute = 1;
        PMPI_Op_commutative(s.op, &commute);
        r.op = ROp::User;
        r.fn = reduce_local;
        r.commutative = commute != 0;
        q.op = ROp::User;
      }
      a.commutative = r.commutative;
      q.commutative = r.commutative;
    }
    return true;
  } catch (const std::exception& e) {
    return no(e.what());
  }
}

std::unique_ptr<MpiCall> MpiContext::prepare(const Described& d, const Choice& choice, std::string* why) noexcept {
  try {
    auto call = std::make_unique<MpiCall>();
    call->choice = choice;
    call->args = d.args;
    call->args.segsize = choice.segsize;
    call->args.fanout = choice.fanout;
    Reducer r = d.reducer;
    if (r.op == ROp::User) {
      call->user_type = d.spec.type;
      call->user_op = d.spec.op;
      r.ctx = call.get();
    }
    Channel* ch = channel(d.spec.comm);
    if (!ch) {
      if (why) *why = "cannot duplicate the communicator";
      return nullptr;
    }
    const Algorithm* alg = choice.alg;
    const Args& a = call->args;
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
      if (built && cfg_.coll_cache > 0) {
        if (ch->cache.size() < cfg_.coll_cache) {
          ch->cache.push_back({alg, a, sched});
        } else {
          ch->cache[ch->cache_next] = {alg, a, sched};
          ch->cache_next = (ch->cache_next + 1) % cfg_.coll_cache;
        }
      }
    }
    call->exec = std::make_unique<Execution>(std::move(sched), d.buffers, r, ch->p2p.get(), seq);
    return call;
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return nullptr;
  }
}

void MpiContext::note(MPI_Comm comm, const Described* d, Coll c, const Selection& s,
                      const std::string& unsupported) noexcept {
  try {
    auto i = static_cast<std::size_t>(c);
    if (!s.why_not.empty() && s.reason != Reason::Invalid && !noted_[i].exchange(true))
      log_message(world_rank(), "%s cannot run this %s (%s): it runs %s", selector_.describe_skipped(c, s).c_str(),
                  mpi_name(c), s.why_not.c_str(),
                  s.mpi() ? "with the MPI library's own algorithm" : ("as " + s.choice.str()).c_str());
    if (!unsupported.empty() && selector_.has_settings(c) && !noted_[i].exchange(true))
      log_message(world_rank(), "%s goes to the MPI library's own algorithm whatever the settings say: %s",
                  mpi_name(c), unsupported.c_str());
    if (cfg_.verbose < 1 || comm == MPI_COMM_NULL) return;
    std::string what = s.mpi() ? std::string("the MPI library's own algorithm") : s.choice.str();
    std::string reason = !unsupported.empty() ? "tandem cannot run it: " + unsupported : selector_.describe(c, s);
    std::string key = fmt::format("{} {} {}", coll_name(c), what, reason);
    int p = 0;
    PMPI_Comm_size(comm, &p);
    std::lock_guard<std::mutex> g(mu_);
    if (log_keyval_ == MPI_KEYVAL_INVALID)
      PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, delete_log, &log_keyval_, nullptr);
    void* v = nullptr;
    int flag = 0;
    PMPI_Comm_get_attr(comm, log_keyval_, &v, &flag);
    auto* seen = flag ? static_cast<std::set<std::string>*>(v) : new std::set<std::string>();
    if (!flag) PMPI_Comm_set_attr(comm, log_keyval_, seen);
    if (!seen->insert(key).second) return;
    std::string size = d ? fmt::format(", {} bytes per rank", d->query.bytes) : std::string();
    log_message(world_rank(), "%s on %s%s: %s (%s)", mpi_name(c), comm_label(comm, p).c_str(), size.c_str(),
                what.c_str(), reason.c_str());
  } catch (...) {
  }
}

int MpiContext::delete_channel(MPI_Comm, int, void* value, void*) {
  auto* ch = static_cast<Channel*>(value);
  if (ch->dup != MPI_COMM_NULL) PMPI_Comm_free(&ch->dup);
  delete ch;
  return MPI_SUCCESS;
}

int MpiContext::delete_log(MPI_Comm, int, void* value, void*) {
  delete static_cast<std::set<std::string>*>(value);
  return MPI_SUCCESS;
}

int MpiContext::at_finalize(MPI_Comm, int, void*, void* extra) {
  static_cast<MpiContext*>(extra)->shutdown();
  return MPI_SUCCESS;
}

void MpiContext::ensure_engine() {
  if (engine_started_ || engine_) return;
  int level = MPI_THREAD_SINGLE;
  PMPI_Query_thread(&level);
  auto mode = progress::parse_mode(cfg_.progress);
  const bool multiple = level == MPI_THREAD_MULTIPLE;
  if (!mode) {
    mode = multiple ? progress::Mode::Thread : progress::Mode::Poll;
  } else if (*mode == progress::Mode::Thread && !multiple) {
    log_message(world_rank(), "TANDEM_PROGRESS=thread needs MPI_THREAD_MULTIPLE (the program initialised MPI at "
                              "level %d): tandem's collectives progress while the program waits for them",
                level);
    mode = progress::Mode::Poll;
  } else if (*mode == progress::Mode::Block) {
    log_message(world_rank(), "TANDEM_PROGRESS=block: the MPI library has no event descriptor to sleep on, so a "
                              "waiting thread polls it");
  }
  own_engine_ = std::make_unique<progress::Engine>();
  own_source_ = std::make_unique<transport::MpiSource>(own_engine_.get());
  own_engine_->add_source(own_source_.get());
  own_engine_->start(progress::engine_options(cfg_, *mode));
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
  // Transport errors come back to tandem as results (then to wait(), or to the program's
  // own error handler of `comm` through the wrappers).
  PMPI_Comm_set_errhandler(ch->dup, MPI_ERRORS_RETURN);
  ch->p2p = std::make_unique<transport::MpiP2P>(ch->dup, source_ ? source_ : own_source_.get());
  std::lock_guard<std::mutex> g(mu_);
  PMPI_Comm_set_attr(comm, keyval_, ch.get());
  return ch.release();
}

void MpiContext::shutdown() noexcept {
  std::lock_guard<std::mutex> g(mu_);
  if (engine_started_ && own_engine_) own_engine_->stop();
  engine_started_ = false;
}

}  // namespace tandem::coll
