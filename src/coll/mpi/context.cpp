#include "coll/mpi/context.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <set>

#include <sys/stat.h>
#include <unistd.h>

#include "coll/mpi/types.hpp"
#include "common/files.hpp"
#include "common/log.hpp"
#include "model/estimator.hpp"

namespace tandem::coll {

namespace {
// Ranks per node of a communicator, as the launcher tells it for the whole job (Open
// MPI's OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS); 0 for a communicator
// smaller than MPI_COMM_WORLD or when the launcher says nothing.
int ranks_per_node(MPI_Comm comm, int size) noexcept {
  static const int local = [] {
    for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
      if (const char* e = std::getenv(v)) {
        const int n = std::atoi(e);
        if (n > 0) return n;
      }
    return 0;
  }();
  int world = 0;
  if (comm != MPI_COMM_WORLD) PMPI_Comm_size(MPI_COMM_WORLD, &world);
  return comm == MPI_COMM_WORLD || world == size ? std::min(local, size) : 0;
}

// This process's node, as a key equal on every process of the same host and network
// namespace (the virtual cluster's hosts share one kernel and host name): FNV-1a of both.
std::uint64_t node_key() noexcept {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  struct stat st {};
  const std::uint64_t ns = stat("/proc/self/ns/net", &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (const char* c = host; *c; ++c) mix(static_cast<unsigned char>(*c));
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(ns >> (8 * i)));
  return h;
}

bool rooted(Coll c) { return c == Coll::Bcast || c == Coll::Reduce || c == Coll::Gather || c == Coll::Scatter; }

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
  model_ = model::estimator_from_config(cfg_, &errors_);
  selector_.set_estimator(model_);
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
                            (blocked(s.coll) ? static_cast<unsigned>(p) : 1u);
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
    q.elem_size = a.elem_size;
    q.ranks_per_node = ranks_per_node(s.comm, p);
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
        // with MPI_Reduce_local (the call's MpiCall is its context, set by instantiate()).
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

namespace {
// The call's buffers as the schedule names them (MPI_IN_PLACE is no buffer).
Buffers buffers_of(const MpiCallSpec& s, const Args& a) {
  Buffers b{s.sendbuf, s.recvbuf};
  if (s.coll == Coll::Scatter) {
    if (a.in_place) b.recv = nullptr;
  } else if (s.coll != Coll::Bcast && s.coll != Coll::Barrier) {
    if (s.sendbuf == MPI_IN_PLACE) b.send = nullptr;
  }
  return b;
}
}  // namespace

bool Plan::same(const MpiCallSpec& s, Fallback fb, const Choice* c) const noexcept {
  const Algorithm* alg = c ? c->alg : nullptr;
  return coll == s.coll && count == s.count && type == s.type && op == s.op && root == s.root &&
         send_in_place == (s.sendbuf == MPI_IN_PLACE) && recv_in_place == (s.recvbuf == MPI_IN_PLACE) &&
         fallback == fb && call_choice.alg == alg && (!alg || (call_choice.segsize == c->segsize && call_choice.fanout == c->fanout));
}

std::shared_ptr<Plan> MpiContext::plan(const MpiCallSpec& s, Fallback fb, const Choice* call_choice, bool quiet) noexcept {
  if (s.comm == MPI_COMM_NULL) return nullptr;
  try {
    {
      std::lock_guard<std::mutex> g(mu_);
      Channel* ch = channel_locked(s.comm);
      if (!ch) return nullptr;
      auto& v = ch->plans;
      if (ch->last < v.size() && v[ch->last]->same(s, fb, call_choice)) return v[ch->last];
      for (std::size_t i = 0; i < v.size(); ++i)
        if (v[i]->same(s, fb, call_choice)) {
          ch->last = i;
          return v[i];
        }
    }
    // First time on this communicator: describe, select and say so.
    auto p = std::make_shared<Plan>();
    p->coll = s.coll;
    p->count = s.count;
    p->type = s.type;
    p->op = s.op;
    p->root = s.root;
    p->send_in_place = s.sendbuf == MPI_IN_PLACE;
    p->recv_in_place = s.recvbuf == MPI_IN_PLACE;
    p->fallback = fb;
    if (call_choice) p->call_choice = *call_choice;
    p->runnable = describe(s, &p->d, &p->unsupported);
    if (p->runnable) p->sel = selector_.select(p->d.query, fb, call_choice);
    if (!quiet) note(s.comm, p->runnable ? &p->d : nullptr, s.coll, p->sel, p->unsupported);
    std::lock_guard<std::mutex> g(mu_);
    Channel* ch = channel_locked(s.comm);
    if (!ch) return p;
    if (cfg_.coll_cache == 0) return p;
    if (ch->plans.size() < cfg_.coll_cache) {
      ch->plans.push_back(p);
      ch->last = ch->plans.size() - 1;
    } else {
      ch->plans[ch->next] = p;
      ch->last = ch->next;
      ch->next = (ch->next + 1) % cfg_.coll_cache;
    }
    return p;
  } catch (...) {
    return nullptr;
  }
}

std::unique_ptr<MpiCall> MpiContext::instantiate(const std::shared_ptr<Plan>& p, const MpiCallSpec& s,
                                                 std::string* why) noexcept {
  try {
    if (!p->runnable || p->sel.mpi()) {
      if (why) *why = p->runnable ? "the MPI library's own algorithm was chosen" : p->unsupported;
      return nullptr;
    }
    Channel* ch = nullptr;
    std::unique_ptr<MpiCall> call;
    std::uint32_t seq = 0;
    {
      std::lock_guard<std::mutex> g(mu_);
      ch = channel_locked(s.comm);
      if (ch && ch->dup != MPI_COMM_NULL && !p->idle.empty()) {
        call = std::move(p->idle.back());
        p->idle.pop_back();
        seq = ch->seq++;
      }
    }
    if (call) {
      call->exec->reset(buffers_of(s, call->args), seq, call->user_op != MPI_OP_NULL ? call.get() : nullptr);
      return call;
    }
    if (!ch || !ensure_dup(ch, s.comm)) {
      if (why) *why = "cannot duplicate the communicator";
      return nullptr;
    }
    call = std::make_unique<MpiCall>();
    call->choice = p->sel.choice;
    call->args = p->d.args;
    call->args.segsize = p->sel.choice.segsize;
    call->args.fanout = p->sel.choice.fanout;
    {
      std::lock_guard<std::mutex> g(mu_);
      call->args.nodes = ch->nodes;
    }
    call->plan = p;
    std::shared_ptr<const Schedule> sched;
    {
      std::lock_guard<std::mutex> g(mu_);
      sched = p->schedule;
    }
    if (!sched) {
      try {
        sched = std::make_shared<const Schedule>(build(*p->sel.choice.alg, call->args));
      } catch (const std::exception& e) {
        if (why) *why = e.what();
        return nullptr;
      }
      std::lock_guard<std::mutex> g(mu_);
      if (!p->schedule) p->schedule = sched;
    }
    Reducer r = p->d.reducer;
    if (r.op == ROp::User) {
      call->user_type = s.type;
      call->user_op = s.op;
      r.ctx = call.get();
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      seq = ch->seq++;
    }
    call->exec = std::make_unique<Execution>(std::move(sched), buffers_of(s, call->args), r, ch->p2p.get(), seq);
    return call;
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return nullptr;
  }
}

std::unique_ptr<MpiCall> MpiContext::reuse(const MpiCallSpec& s, Fallback fb, const Choice* call_choice) noexcept {
  if (s.comm == MPI_COMM_NULL) return nullptr;
  std::unique_ptr<MpiCall> call;
  std::uint32_t seq = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    void* v = nullptr;
    int flag = 0;
    if (keyval_ == MPI_KEYVAL_INVALID || PMPI_Comm_get_attr(s.comm, keyval_, &v, &flag) != MPI_SUCCESS || !flag)
      return nullptr;
    auto* ch = static_cast<Channel*>(v);
    if (ch->dup == MPI_COMM_NULL) return nullptr;
    Plan* p = nullptr;
    if (ch->last < ch->plans.size() && ch->plans[ch->last]->same(s, fb, call_choice)) {
      p = ch->plans[ch->last].get();
    } else {
      for (std::size_t i = 0; i < ch->plans.size() && !p; ++i)
        if (ch->plans[i]->same(s, fb, call_choice)) p = ch->plans[i].get(), ch->last = i;
    }
    if (!p || p->idle.empty()) return nullptr;
    call = std::move(p->idle.back());
    p->idle.pop_back();
    seq = ch->seq++;
  }
  call->exec->reset(buffers_of(s, call->args), seq, call->user_op != MPI_OP_NULL ? call.get() : nullptr);
  return call;
}

void MpiContext::recycle(std::unique_ptr<MpiCall> call) noexcept {
  if (!call || !call->exec || !call->exec->done() || !call->plan) return;  // freed here otherwise
  std::shared_ptr<Plan> p = call->plan;
  try {
    std::lock_guard<std::mutex> g(mu_);
    p->idle.push_back(std::move(call));
  } catch (...) {
  }
}

void MpiContext::note(MPI_Comm comm, const Described* d, Coll c, const Selection& s,
                      const std::string& unsupported) noexcept {
  try {
    // Once, on rank 0: a profile from another transport or machine shape.
    if (model_ && !model_checked_.exchange(true) && world_rank() == 0) {
      char lib[MPI_MAX_LIBRARY_VERSION_STRING] = {};
      int len = 0;
      PMPI_Get_library_version(lib, &len);
      const std::string l(lib, static_cast<std::size_t>(std::max(0, len)));
      const std::string transport = l.find("Open MPI") != std::string::npos ? "mpi:openmpi"
                                    : l.find("MPICH") != std::string::npos  ? "mpi:mpich"
                                                                            : "";
      const int rpn = d ? d->query.ranks_per_node : 0;
      for (const auto& w : model::mismatches(model_->profile(), transport, rpn, model::host_cpu()))
        log_message(0, "warning: TANDEM_COLL_MODEL=%s: %s", cfg_.coll_model.c_str(), w.c_str());
    }
    auto i = static_cast<std::size_t>(c);
    if (!s.why_not.empty() && s.reason != Reason::Invalid && !noted_[i].exchange(true))
      log_message(world_rank(), "%s cannot run this %s (%s): it runs %s", selector_.describe_skipped(c, s).c_str(),
                  mpi_name(c), s.why_not.c_str(),
                  s.mpi() ? "with the MPI library's own algorithm" : ("as " + s.choice.str()).c_str());
    if (!unsupported.empty() && selector_.has_settings(c) && !noted_[i].exchange(true))
      log_message(world_rank(), "%s goes to the MPI library's own algorithm whatever the settings say: %s",
                  mpi_name(c), unsupported.c_str());
    if (cfg_.verbose < 1 || comm == MPI_COMM_NULL) return;
    std::string what = !s.mpi()                                    ? s.choice.str()
                       : s.rule && !s.rule->mpi_alg.empty() ? "the MPI library's own algorithm " + s.rule->choice_text()
                                                            : std::string("the MPI library's own algorithm");
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

MpiContext::Channel* MpiContext::channel_locked(MPI_Comm comm) {
  ensure_engine();
  if (keyval_ == MPI_KEYVAL_INVALID) PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, delete_channel, &keyval_, nullptr);
  void* v = nullptr;
  int flag = 0;
  PMPI_Comm_get_attr(comm, keyval_, &v, &flag);
  if (flag) return static_cast<Channel*>(v);
  auto ch = std::make_unique<Channel>();
  if (PMPI_Comm_set_attr(comm, keyval_, ch.get()) != MPI_SUCCESS) return nullptr;
  return ch.release();
}

bool MpiContext::ensure_dup(Channel* ch, MPI_Comm comm) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (ch->dup != MPI_COMM_NULL) return true;
  }
  // The first call on this communicator that runs tandem's algorithm: every rank makes it
  // (collectives are called in the same order everywhere, and every rank chose alike), so
  // the duplication, itself collective, matches.
  MPI_Comm dup = MPI_COMM_NULL;
  if (PMPI_Comm_dup(comm, &dup) != MPI_SUCCESS) return false;
  // Transport errors come back to tandem as results (then to wait(), or to the program's
  // own error handler of `comm` through the wrappers).
  PMPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  // The node map of the hierarchical algorithms, on the duplicate (collective as well).
  int size = 0;
  PMPI_Comm_size(dup, &size);
  std::shared_ptr<const NodeMap> nodes;
  if (cfg_.coll_nodes) {
    nodes = block_nodes(size, static_cast<int>(cfg_.coll_nodes));
  } else {
    std::vector<std::uint64_t> keys(static_cast<std::size_t>(size));
    std::uint64_t mine = node_key();
    if (PMPI_Allgather(&mine, 1, MPI_UINT64_T, keys.data(), 1, MPI_UINT64_T, dup) != MPI_SUCCESS) {
      PMPI_Comm_free(&dup);
      return false;
    }
    nodes = std::make_shared<const NodeMap>(node_ids(keys));
  }
  if (cfg_.verbose >= 1) {
    int me = 0;
    PMPI_Comm_rank(dup, &me);
    if (me == 0) {
      std::vector<int> per;
      for (int n : *nodes) {
        if (static_cast<std::size_t>(n) >= per.size()) per.resize(static_cast<std::size_t>(n) + 1, 0);
        ++per[static_cast<std::size_t>(n)];
      }
      std::string map;
      const std::size_t shown = std::min<std::size_t>(nodes->size(), 64);
      for (std::size_t r = 0; r < shown; ++r) map += fmt::format("{}{}", r ? "," : "", (*nodes)[r]);
      if (shown < nodes->size()) map += fmt::format(",... ({} more)", nodes->size() - shown);
      log_message(world_rank(), "%s: %zu node%s (TANDEM_COLL_NODES=%s), node of each rank %s",
                  comm_label(comm, size).c_str(), per.size(), per.size() == 1 ? "" : "s",
                  cfg_.coll_nodes ? std::to_string(cfg_.coll_nodes).c_str() : "host", map.c_str());
    }
  }
  auto p2p = std::make_unique<transport::MpiP2P>(dup, source_ ? source_ : own_source_.get());
  std::lock_guard<std::mutex> g(mu_);
  ch->nodes = std::move(nodes);
  ch->dup = dup;
  ch->p2p = std::move(p2p);
  return true;
}

void MpiContext::record(const MpiCallSpec& s) noexcept {
  if (cfg_.coll_record.empty()) return;
  try {
    int p = 0, size = 0;
    PMPI_Comm_size(s.comm, &p);
    if (s.coll != Coll::Barrier) PMPI_Type_size(s.type, &size);
    const std::uint64_t bytes = s.coll == Coll::Barrier ? 0 : static_cast<std::uint64_t>(std::max(0, s.count)) * static_cast<std::uint64_t>(std::max(0, size));
    std::string dt = s.coll == Coll::Barrier ? "" : "other";
    if (s.coll != Coll::Barrier)
      if (auto t = dtype_of(s.type)) dt = dtype_name(*t);
    std::lock_guard<std::mutex> g(record_mu_);
    ++recorded_[{static_cast<int>(s.coll), p, bytes, dt}];
  } catch (...) {
  }
}

void MpiContext::shutdown() noexcept {
  std::lock_guard<std::mutex> g(mu_);
  if (engine_started_ && own_engine_) own_engine_->stop();
  engine_started_ = false;
}

void MpiContext::write_record() noexcept {
  try {
    std::lock_guard<std::mutex> g(record_mu_);
    if (cfg_.coll_record.empty() || record_written_ || world_rank() != 0) return;
    record_written_ = true;
    std::string out = "{\"format\": \"tandem-coll-record\", \"version\": 1, \"calls\": [";
    bool first = true;
    for (const auto& [k, n] : recorded_) {
      const auto& [c, p, bytes, dt] = k;
      out += fmt::format("{}\n {{\"collective\": \"{}\", \"ranks\": {}, \"bytes\": {}, \"datatype\": \"{}\", \"calls\": {}}}",
                         first ? "" : ",", coll_name(static_cast<Coll>(c)), p, bytes, dt, n);
      first = false;
    }
    out += "\n]}\n";
    files::write_text_atomically(cfg_.coll_record, out);
  } catch (const std::exception& e) {
    log_message(0, "TANDEM_COLL_RECORD=%s: %s", cfg_.coll_record.c_str(), e.what());
  } catch (...) {
  }
}

}  // namespace tandem::coll
