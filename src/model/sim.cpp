#include "model/sim.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <queue>
#include <stdexcept>
#include <unordered_map>

namespace tandem::model {

using coll::Schedule;
using coll::StepKind;

Topology topology_for(const Profile& p, int ranks, int ranks_per_node) {
  Topology t;
  t.ranks = std::max(1, ranks);
  t.ranks_per_node = std::clamp(ranks_per_node > 0 ? ranks_per_node : p.shape.ranks_per_node, 1, t.ranks);
  t.nics_per_node = std::clamp(p.shape.nics_per_node, 1, t.ranks_per_node);
  return t;
}

namespace {

enum class Ev : std::uint8_t { Arrive, RecvCpu, Complete, RtsArrive, CtsArrive };

struct Event {
  double t;
  std::uint64_t seq;  // ties in time: first pushed, first run (deterministic)
  std::uint32_t id;   // a global step, or a message for Arrive
  Ev kind;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

struct Message {
  std::uint32_t src = 0, dst = 0;
  std::uint64_t bytes = 0;
  double arrived = -1;      // data complete at the receiver
  double posted = -1;       // the receive's dependencies done
  std::uint32_t recv = ~0u; // the receive's global step
  bool same_node = false;
  P2PCost cost;             // the link's parameters at this size
  // Rendezvous (bytes above the link's eager limit): the data leaves only after the
  // receiver's clear-to-send, which answers the request-to-send once the receive is posted.
  bool rndv = false;
  double rts_arrived = -1;
  std::uint32_t send = ~0u;  // the send's global step
  P2PCost ctl;               // a control message's parameters (the smallest size)
};

class Sim {
 public:
  Sim(const std::vector<Schedule>& s, const Profile& p, const Topology& t, const SimOptions& o)
      : s_(s), p_(p), t_(t), o_(o) {
    const auto n = s.size();
    if (static_cast<int>(n) != t.ranks)
      throw std::logic_error(fmt::format("simulate: {} schedules for {} ranks", n, t.ranks));
    base_.resize(n + 1);
    for (std::size_t r = 0; r < n; ++r) {
      if (s[r].rank != static_cast<int>(r) || s[r].size != t.ranks)
        throw std::logic_error(fmt::format("simulate: schedule {} is rank {} of {}", r, s[r].rank, s[r].size));
      base_[r + 1] = base_[r] + static_cast<std::uint32_t>(s[r].steps.size());
    }
    const std::uint32_t total = base_[n];
    pending_.resize(total);
    msg_of_.assign(total, ~0u);
    owner_.resize(total);
    for (std::size_t r = 0; r < n; ++r)
      for (std::uint32_t i = 0; i < s[r].steps.size(); ++i) {
        pending_[base_[r] + i] = s[r].steps[i].dep_count;
        owner_[base_[r] + i] = static_cast<std::uint32_t>(r);
      }
    cpu_.assign(n, 0.0);
    done_.assign(n, 0.0);
    // Endpoints: one per rank inside a node, nics_per_node per node between nodes.
    const std::size_t nics = static_cast<std::size_t>(t.nodes()) * t.nics_per_node;
    tx_intra_.assign(n, 0.0);
    rx_intra_.assign(n, 0.0);
    tx_inter_.assign(nics, 0.0);
    rx_inter_.assign(nics, 0.0);
    copy_ = &p.copy;
    auto it = p.reduce.find(o.reduce_key);
    reduce_ = it != p.reduce.end() ? &it->second : (p.reduce.empty() ? nullptr : &p.reduce.begin()->second);
    res_.steps = total;
  }

  SimResult run() {
    // A step becomes ready at the time of the event that completes its last dependency,
    // so it runs then, without a trip through the queue: the queue holds only what
    // happens later (completions, arrivals, receive overheads).
    for (std::uint32_t g = 0; g < pending_.size(); ++g)
      if (pending_[g] == 0) now_.push_back(g);
    drain(0.0);
    while (!q_.empty()) {
      Event e = q_.top();
      q_.pop();
      ++res_.events;
      switch (e.kind) {
        case Ev::Arrive: arrive(e.id, e.t); break;
        case Ev::RecvCpu: recv_cpu(e.id, e.t); break;
        case Ev::Complete: complete(e.id, e.t); break;
        case Ev::RtsArrive: rts_arrive(e.id, e.t); break;
        case Ev::CtsArrive: cts_arrive(e.id, e.t); break;
      }
      drain(e.t);
    }
    if (completed_ != pending_.size()) {
      for (std::uint32_t g = 0; g < pending_.size(); ++g)
        if (!finished(g)) {
          const std::uint32_t r = owner_[g];
          const coll::Step& st = step(g);
          throw std::logic_error(fmt::format(
              "simulate: rank {} step {} ({}, peer {}, tag {}) never completes: a receive without its send, or a wait cycle",
              r, g - base_[r], coll::kind_name(st.kind), st.peer, st.tag));
        }
    }
    res_.rank_done = done_;
    res_.time = done_.empty() ? 0 : *std::max_element(done_.begin(), done_.end());
    return std::move(res_);
  }

 private:
  const coll::Step& step(std::uint32_t g) const { return s_[owner_[g]].steps[g - base_[owner_[g]]]; }
  bool finished(std::uint32_t g) const { return pending_[g] == kDone; }

  void push(double t, std::uint32_t id, Ev k) { q_.push(Event{t, seq_++, id, k}); }

  // Runs the steps that became ready at time t, in the order they did.
  void drain(double t) {
    for (std::size_t i = 0; i < now_.size(); ++i) ready(now_[i], t);
    now_.clear();
  }

  int nic(int r) const { return t_.node_of(r) * t_.nics_per_node + (r % t_.ranks_per_node) % t_.nics_per_node; }

  std::uint32_t message(std::uint32_t src, std::uint32_t dst, std::uint32_t tag, std::uint64_t bytes) {
    const std::uint64_t key = ((std::uint64_t{src} * s_.size() + dst) << 32) | tag;
    auto [it, fresh] = match_.try_emplace(key, 0u);
    if (fresh) {
      it->second = static_cast<std::uint32_t>(msgs_.size());
      Message m;
      m.src = src;
      m.dst = dst;
      m.bytes = bytes;
      m.same_node = t_.same_node(static_cast<int>(src), static_cast<int>(dst));
      const P2PTable& link = p_.link(m.same_node);
      m.cost = link.at(bytes);
      m.rndv = link.eager_limit > 0 && bytes > link.eager_limit;
      if (m.rndv) m.ctl = link.at(0);
      msgs_.push_back(m);
    } else {
      if (msgs_[it->second].bytes != bytes)
        throw std::logic_error(fmt::format("simulate: message {}->{} tag {} is {} bytes at one end, {} at the other", src,
                                           dst, tag, msgs_[it->second].bytes, bytes));
      const std::uint32_t id = it->second;
      match_.erase(it);  // both ends have seen it
      return id;
    }
    return it->second;
  }

  void ready(std::uint32_t g, double t) {
    const coll::Step& st = step(g);
    const std::uint32_t r = owner_[g];
    switch (st.kind) {
      case StepKind::Nop: complete(g, t); return;  // its successors join now_
      case StepKind::Reduce:
      case StepKind::Copy: {
        const CostTable* table = st.kind == StepKind::Copy ? copy_ : reduce_;
        const double start = std::max(t, cpu_[r]);
        cpu_[r] = start + (table ? table->at(st.bytes) : 0.0);
        push(cpu_[r], g, Ev::Complete);
        return;
      }
      case StepKind::Send: {
        const auto dst = static_cast<std::uint32_t>(st.peer);
        const std::uint32_t id = message(r, dst, st.tag, st.bytes);
        Message& m = msgs_[id];
        const P2PCost& c = m.cost;
        const double start = std::max(t, cpu_[r]);
        cpu_[r] = start + c.os;
        double& tx = tx_of(m.same_node, static_cast<int>(r));
        ++res_.messages;
        res_.bytes += st.bytes;
        if (m.rndv) {  // the request-to-send leaves behind what this endpoint is sending
          m.send = g;
          const double leave = std::max(cpu_[r], tx);
          tx = leave + m.ctl.g;
          push(leave + m.ctl.g + m.ctl.L, id, Ev::RtsArrive);
          return;
        }
        const double leave = std::max(cpu_[r], tx);
        tx = leave + c.g;
        push(leave + c.g, g, Ev::Complete);
        push(leave + c.g + c.L, id, Ev::Arrive);
        return;
      }
      case StepKind::Recv: {
        const std::uint32_t id = message(static_cast<std::uint32_t>(st.peer), r, st.tag, st.bytes);
        Message& m = msgs_[id];
        m.posted = t;
        m.recv = g;
        msg_of_[g] = id;
        if (m.rndv) {
          if (m.rts_arrived >= 0) clear_to_send(id, t);
        } else if (m.arrived >= 0) {
          push(std::max(t, m.arrived), g, Ev::RecvCpu);
        }
        return;
      }
    }
  }

  double& tx_of(bool same_node, int r) { return same_node ? tx_intra_[r] : tx_inter_[nic(r)]; }

  void rts_arrive(std::uint32_t id, double t) {
    Message& m = msgs_[id];
    m.rts_arrived = t;
    if (m.posted >= 0) clear_to_send(id, t);
  }

  // The receiver answers at t (request arrived, receive posted); the answer queues behind
  // whatever its endpoint is sending.
  void clear_to_send(std::uint32_t id, double t) {
    Message& m = msgs_[id];
    double& tx = tx_of(m.same_node, static_cast<int>(m.dst));
    const double leave = std::max(t, tx);
    tx = leave + m.ctl.g;
    push(leave + m.ctl.g + m.ctl.L, id, Ev::CtsArrive);
  }

  void cts_arrive(std::uint32_t id, double t) {
    Message& m = msgs_[id];
    double& tx = tx_of(m.same_node, static_cast<int>(m.src));
    const double leave = std::max(t, tx);
    tx = leave + m.cost.g;
    push(leave + m.cost.g, m.send, Ev::Complete);
    push(leave + m.cost.g + m.cost.L, id, Ev::Arrive);
  }

  void arrive(std::uint32_t id, double t) {
    Message& m = msgs_[id];
    const P2PCost& c = m.cost;
    double& rx = m.same_node ? rx_intra_[m.dst] : rx_inter_[nic(static_cast<int>(m.dst))];
    m.arrived = std::max(t, rx + c.g);
    rx = m.arrived;
    if (m.recv != ~0u) push(std::max(m.arrived, m.posted), m.recv, Ev::RecvCpu);
  }

  void recv_cpu(std::uint32_t g, double t) {
    const std::uint32_t r = owner_[g];
    const Message& m = msgs_[msg_of_[g]];
    const double start = std::max(t, cpu_[r]);
    cpu_[r] = start + m.cost.orecv;
    push(cpu_[r], g, Ev::Complete);
  }

  void complete(std::uint32_t g, double t) {
    const std::uint32_t r = owner_[g];
    pending_[g] = kDone;
    ++completed_;
    done_[r] = std::max(done_[r], t);
    const Schedule& s = s_[r];
    const std::uint32_t i = g - base_[r];
    for (std::uint32_t k = s.succ_begin[i]; k < s.succ_begin[i + 1]; ++k) {
      const std::uint32_t h = base_[r] + s.succ[k];
      if (--pending_[h] == 0) now_.push_back(h);
    }
  }

  static constexpr std::uint32_t kDone = 0xffffffffu;
  const std::vector<Schedule>& s_;
  const Profile& p_;
  const Topology& t_;
  const SimOptions& o_;
  const CostTable* copy_ = nullptr;
  const CostTable* reduce_ = nullptr;
  std::vector<std::uint32_t> base_, pending_, msg_of_, owner_;
  std::vector<std::uint32_t> now_;  // ready at the current time, not yet run
  std::vector<double> cpu_, done_, tx_intra_, rx_intra_, tx_inter_, rx_inter_;
  std::vector<Message> msgs_;
  std::unordered_map<std::uint64_t, std::uint32_t> match_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> q_;
  std::uint64_t seq_ = 0;
  std::size_t completed_ = 0;
  SimResult res_;
};

}  // namespace

SimResult simulate(const std::vector<Schedule>& schedules, const Profile& p, const Topology& t, const SimOptions& o) {
  return Sim(schedules, p, t, o).run();
}

coll::Args with_nodes(const coll::Args& a, const Topology& t) {
  coll::Args b = a;
  if (!b.nodes) b.nodes = coll::block_nodes(t.ranks, t.ranks_per_node);
  return b;
}

std::vector<Schedule> build_all(const coll::Algorithm& alg, const coll::Args& a) {
  std::vector<Schedule> s;
  s.reserve(static_cast<std::size_t>(std::max(0, a.size)));
  for (int r = 0; r < a.size; ++r) {
    coll::Args ar = a;
    ar.rank = r;
    s.push_back(coll::build(alg, ar));
  }
  return s;
}

SimResult simulate(const coll::Algorithm& alg, const coll::Args& a, const Profile& p, const Topology& t,
                   const SimOptions& o) {
  if (a.size != t.ranks) throw std::invalid_argument(fmt::format("simulate: {} ranks in the call, {} in the topology", a.size, t.ranks));
  return simulate(build_all(alg, with_nodes(a, t)), p, t, o);
}

SimBound lower_bound(const coll::Algorithm& alg, const coll::Args& a, const Profile& p, const Topology& t,
                     const SimOptions& o) {
  if (a.size != t.ranks) throw std::invalid_argument(fmt::format("lower_bound: {} ranks in the call, {} in the topology", a.size, t.ranks));
  const coll::Args an = with_nodes(a, t);
  auto it = p.reduce.find(o.reduce_key);
  const CostTable* reduce = it != p.reduce.end() ? &it->second : (p.reduce.empty() ? nullptr : &p.reduce.begin()->second);
  std::vector<int> sample{0, std::clamp(a.root, 0, a.size - 1), a.size / 2, a.size - 1};
  std::sort(sample.begin(), sample.end());
  sample.erase(std::unique(sample.begin(), sample.end()), sample.end());
  SimBound b;
  for (int r : sample) {
    coll::Args ar = an;
    ar.rank = r;
    const Schedule s = coll::build(alg, ar);
    b.steps = std::max<std::uint64_t>(b.steps, s.steps.size() * static_cast<std::uint64_t>(a.size));
    // CPU; endpoints inside and between nodes, each way (a shared NIC only adds others' traffic).
    double cpu = 0, tx[2] = {0, 0}, rx[2] = {0, 0};
    for (const coll::Step& st : s.steps) {
      switch (st.kind) {
        case StepKind::Nop: break;
        case StepKind::Reduce: cpu += reduce ? reduce->at(st.bytes) : 0.0; break;
        case StepKind::Copy: cpu += p.copy.at(st.bytes); break;
        case StepKind::Send:
        case StepKind::Recv: {
          const bool same = t.same_node(r, st.peer);
          const P2PCost c = p.link(same).at(st.bytes);
          const bool send = st.kind == StepKind::Send;
          cpu += send ? c.os : c.orecv;
          (send ? tx : rx)[same ? 0 : 1] += c.g;  // (a rendezvous' control messages would only add)
          break;
        }
      }
    }
    b.time = std::max({b.time, cpu, tx[0], tx[1], rx[0], rx[1]});
  }
  return b;
}

}  // namespace tandem::model
