#include "model/flow.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef TANDEM_WITH_SIMGRID
#include <simgrid/s4u.hpp>
#include <xbt/log.h>
#endif

namespace tandem::model {

#ifndef TANDEM_WITH_SIMGRID

bool flow_available() { return false; }

SimResult simulate_flow(const coll::Algorithm&, const coll::Args&, const Profile&, const Topology&, const SimOptions&,
                        double) {
  throw std::runtime_error("this tandem was built without SimGrid (install libsimgrid-dev and rebuild)");
}

#else

bool flow_available() { return true; }

namespace {

namespace sg4 = simgrid::s4u;

// Simulated CPU speed: an Exec of s seconds is s x kFlops flops.
constexpr double kFlops = 1e9;

// The fixed part of a message's time on a link class: L + g at the smallest size, less
// what its bytes take at the asymptotic bandwidth.
double fixed_latency(const P2PTable& t, double bw) {
  const P2PPoint& s = t.points.front();
  return std::max(0.0, s.L + s.g - (bw > 0 ? s.bytes / bw : 0.0));
}

struct Result {
  double time;
  std::uint64_t messages;
};

Result run_in_child(const coll::Algorithm& alg, const coll::Args& a0, const Profile& p, const Topology& t,
                    const SimOptions& o) {
  int argc = 2;
  char arg0[] = "tandem-sim", arg1[] = "--log=root.thresh:critical";
  char* argv[] = {arg0, arg1, nullptr};
  sg4::Engine e(&argc, argv);
  e.set_config("network/model:CM02");
  e.set_config("network/crosstraffic:0");

  const int P = t.ranks;
  const double intra_bw = p.intra ? p.intra_bandwidth : p.inter_bandwidth;
  const double inter_bw = p.inter ? p.inter_bandwidth : p.intra_bandwidth;
  const double intra_lat = fixed_latency(p.link(true), intra_bw), inter_lat = fixed_latency(p.link(false), inter_bw);
  if (intra_bw <= 0 || inter_bw <= 0) throw std::runtime_error("the profile gives no link bandwidth");

  auto* zone = sg4::create_full_zone("machine");
  std::vector<sg4::Host*> hosts(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r) hosts[r] = zone->create_host(fmt::format("r{}", r), kFlops);
  auto link = [&](const std::string& name, double bw, double lat) {
    auto* l = zone->create_link(name, bw);
    l->set_latency(lat);
    return l->seal();
  };
  std::vector<sg4::Link*> iu(P), id(P);
  for (int r = 0; r < P; ++r) {
    iu[r] = link(fmt::format("intra{}u", r), intra_bw, intra_lat / 2);
    id[r] = link(fmt::format("intra{}d", r), intra_bw, intra_lat / 2);
  }
  const int nodes = t.nodes(), nics = nodes * t.nics_per_node;
  std::vector<sg4::Link*> nu(nics), nd(nics);
  for (int n = 0; n < nics; ++n) {
    nu[n] = link(fmt::format("nic{}u", n), inter_bw, inter_lat / 2);
    nd[n] = link(fmt::format("nic{}d", n), inter_bw, inter_lat / 2);
  }
  const int per_leaf = p.shape.nodes_per_leaf > 0 ? p.shape.nodes_per_leaf : nodes;
  const int leaves = (nodes + per_leaf - 1) / per_leaf;
  const int spines = leaves > 1 ? std::max(1, p.shape.spines) : 0;
  const double spine_bw = p.shape.spine_bandwidth > 0 ? p.shape.spine_bandwidth : inter_bw * t.nics_per_node;
  std::vector<sg4::Link*> su(static_cast<std::size_t>(leaves) * spines), sd(su.size());
  for (int l = 0; l < leaves; ++l)
    for (int s = 0; s < spines; ++s) {
      su[l * spines + s] = link(fmt::format("leaf{}spine{}u", l, s), spine_bw, 0);
      sd[l * spines + s] = link(fmt::format("leaf{}spine{}d", l, s), spine_bw, 0);
    }
  auto nic = [&](int r) { return t.node_of(r) * t.nics_per_node + (r % t.ranks_per_node) % t.nics_per_node; };
  for (int a = 0; a < P; ++a)
    for (int b = 0; b < P; ++b) {
      if (a == b) continue;
      std::vector<sg4::LinkInRoute> route;
      if (t.same_node(a, b)) {
        route = {sg4::LinkInRoute(iu[a]), sg4::LinkInRoute(id[b])};
      } else {
        const int la = t.node_of(a) / per_leaf, lb = t.node_of(b) / per_leaf;
        route.push_back(sg4::LinkInRoute(nu[nic(a)]));
        if (la != lb) {
          const int s = (a + b) % spines;
          route.push_back(sg4::LinkInRoute(su[la * spines + s]));
          route.push_back(sg4::LinkInRoute(sd[lb * spines + s]));
        }
        route.push_back(sg4::LinkInRoute(nd[nic(b)]));
      }
      zone->add_route(hosts[a]->get_netpoint(), hosts[b]->get_netpoint(), nullptr, nullptr, route, false);
    }
  zone->seal();

  // One DAG of every rank's steps. A step's "done" activity is what its successors wait for.
  const std::vector<coll::Schedule> s = build_all(alg, a0);
  const CostTable* reduce = nullptr;
  if (auto it = p.reduce.find(o.reduce_key); it != p.reduce.end()) reduce = &it->second;
  else if (!p.reduce.empty()) reduce = &p.reduce.begin()->second;
  // An activity a successor can be added to (add_successor is on the typed activities).
  struct Node {
    sg4::ExecPtr exec;
    sg4::CommPtr comm;
    void then(const sg4::ActivityPtr& a) const {
      if (exec) exec->add_successor(a);
      else comm->add_successor(a);
    }
  };
  std::vector<std::vector<sg4::ActivityPtr>> first(P);  // per step: where its dependencies enter
  std::vector<std::vector<Node>> done(P);               // per step: what completes it
  // Messages by (src, dst, tag): the Comm created at the send.
  std::vector<std::vector<std::vector<sg4::CommPtr>>> comms(P, std::vector<std::vector<sg4::CommPtr>>(P));
  std::vector<sg4::ActivityPtr> roots;
  std::uint64_t messages = 0;
  auto exec = [&](int r, double seconds) {
    return sg4::Exec::init()->set_flops_amount(std::max(0.0, seconds) * kFlops)->set_host(hosts[r]);
  };
  for (int r = 0; r < P; ++r) {
    first[r].resize(s[r].steps.size());
    done[r].resize(s[r].steps.size());
    for (std::size_t i = 0; i < s[r].steps.size(); ++i) {
      const coll::Step& st = s[r].steps[i];
      switch (st.kind) {
        case coll::StepKind::Send: {
          const bool same = t.same_node(r, st.peer);
          const P2PCost c = p.link(same).at(st.bytes);
          auto os = exec(r, c.os);
          auto comm = sg4::Comm::sendto_init(hosts[r], hosts[st.peer])->set_payload_size(st.bytes);
          os->add_successor(comm);
          first[r][i] = os;
          done[r][i].comm = comm;
          auto& v = comms[r][st.peer];
          if (v.size() <= st.tag) v.resize(st.tag + 1);
          v[st.tag] = comm;
          ++messages;
          break;
        }
        case coll::StepKind::Recv: {
          const P2PCost c = p.link(t.same_node(r, st.peer)).at(st.bytes);
          done[r][i].exec = exec(r, c.orecv);
          break;
        }
        case coll::StepKind::Reduce: done[r][i].exec = exec(r, reduce ? reduce->at(st.bytes) : 0.0); break;
        case coll::StepKind::Copy: done[r][i].exec = exec(r, p.copy.at(st.bytes)); break;
        case coll::StepKind::Nop: done[r][i].exec = exec(r, 0.0); break;
      }
      if (st.kind != coll::StepKind::Send) first[r][i] = done[r][i].exec;
    }
  }
  for (int r = 0; r < P; ++r)
    for (std::size_t i = 0; i < s[r].steps.size(); ++i) {
      const coll::Step& st = s[r].steps[i];
      for (std::uint32_t k = 0; k < st.dep_count; ++k) done[r][s[r].deps[st.dep_begin + k]].then(first[r][i]);
      if (st.kind == coll::StepKind::Recv) {
        auto& v = comms[st.peer][r];
        if (v.size() <= st.tag || !v[st.tag])
          throw std::runtime_error(fmt::format("rank {} receives tag {} from {}, which is never sent", r, st.tag, st.peer));
        v[st.tag]->add_successor(first[r][i]);
      }
      if (st.dep_count == 0 && st.kind != coll::StepKind::Recv) roots.push_back(first[r][i]);
    }
  // A receive with no dependencies waits only for its message: it is no root.
  for (auto& a : roots) a->start();
  e.run();
  return {e.get_clock(), messages};
}

}  // namespace

SimResult simulate_flow(const coll::Algorithm& alg, const coll::Args& a, const Profile& p, const Topology& t,
                        const SimOptions& o, double timeout_s) {
  if (a.size != t.ranks)
    throw std::invalid_argument(fmt::format("simulate: {} ranks in the call, {} in the topology", a.size, t.ranks));
  std::fflush(stdout);  // the child must not write the parent's buffered output again
  std::fflush(stderr);
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    try {
      Result r = run_in_child(alg, with_nodes(a, t), p, t, o);
      out = fmt::format("ok {:.17g} {}\n", r.time, r.messages);
    } catch (const std::exception& e) {
      out = std::string("error ") + e.what() + "\n";
    }
    (void)!write(fds[1], out.data(), out.size());
    _exit(0);
  }
  close(fds[1]);
  std::string got;
  const auto t0 = std::chrono::steady_clock::now();
  bool timed_out = false;
  for (;;) {
    int wait_ms = -1;
    if (timeout_s > 0) {
      const double left = timeout_s - std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (left <= 0) {
        timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(left * 1000) + 1;
    }
    pollfd pf{fds[0], POLLIN, 0};
    const int n = poll(&pf, 1, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) continue;
    char buf[4096];
    const ssize_t k = read(fds[0], buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got.append(buf, static_cast<std::size_t>(k));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) throw std::runtime_error(fmt::format("SimGrid took more than {:g} s", timeout_s));
  if (got.rfind("ok ", 0) == 0) {
    SimResult r;
    unsigned long long m = 0;
    std::sscanf(got.c_str() + 3, "%lf %llu", &r.time, &m);
    r.messages = m;
    return r;
  }
  if (got.rfind("error ", 0) == 0) throw std::runtime_error("SimGrid: " + got.substr(6, got.size() - 7));
  throw std::runtime_error(fmt::format("SimGrid's simulation ended without a result (status {})", status));
}

#endif

}  // namespace tandem::model
