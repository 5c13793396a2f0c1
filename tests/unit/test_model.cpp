// The performance model: profiles (parsing, errors, interpolation), the event simulator
// against hand-derived times, closed forms, candidates, the flow-level backend.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "coll/schedule.hpp"
#include "model/closed_form.hpp"
#include "model/flow.hpp"
#include "model/predict.hpp"
#include "model/profile.hpp"
#include "model/sim.hpp"

using namespace tandem;
using namespace tandem::model;

namespace {

// One link class with constant overheads: os, or, L and g(m) = g0 + m / bw.
Profile simple(double os, double orecv, double L, double g0, double bw, bool two_classes = false) {
  Profile p;
  p.transport = "synthetic";
  P2PTable t;
  for (std::uint64_t m : {1ull, 1ull << 10, 1ull << 20, 1ull << 26})
    t.points.push_back({m, os, orecv, g0 + static_cast<double>(m) / bw, L});
  p.inter = t;
  p.inter_bandwidth = bw;
  if (two_classes) {
    P2PTable in = t;
    for (auto& q : in.points) q.g = g0 + static_cast<double>(q.bytes) / (10 * bw), q.L = L / 10;
    p.intra = in;
    p.intra_bandwidth = 10 * bw;
    p.shape.ranks_per_node = 2;
  }
  p.copy.points = {{1, 1e-9}, {1ull << 26, (1ull << 26) * 1e-9}};
  p.reduce["float:sum"].points = {{1, 2e-9}, {1ull << 26, (1ull << 26) * 2e-9}};
  return p;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(ModelProfile, RoundTripsAndInterpolates) {
  Profile p = simple(1e-6, 2e-6, 5e-6, 1e-6, 1e9);
  p.machine.host = "h";
  p.shape.network = "test";
  const std::string path = ::testing::TempDir() + "p.json";
  save_profile(p, path);
  Profile q = load_profile(path);
  ASSERT_TRUE(q.inter);
  EXPECT_FALSE(q.intra);
  ASSERT_EQ(q.inter->points.size(), 4u);
  EXPECT_NEAR(q.inter->points[2].g, p.inter->points[2].g, 1e-15);
  EXPECT_EQ(to_json(q), to_json(p));
  // Linear between points, the last two's line above, the first's values below.
  const P2PCost mid = q.inter->at(512 * 1024 + 512);
  EXPECT_NEAR(mid.g, 1e-6 + (512 * 1024 + 512) / 1e9, 1e-12);
  EXPECT_NEAR(q.inter->at(1ull << 28).g, 1e-6 + (1ull << 28) / 1e9, 1e-9);
  EXPECT_DOUBLE_EQ(q.inter->at(0).os, 1e-6);
  EXPECT_NEAR(q.inter->at(1000).one_way(), 1e-6 + 5e-6 + 1e-6 + 1000 / 1e9 + 2e-6, 1e-12);
  EXPECT_NEAR(q.reduce_cost("float:sum", 1000), 2e-6, 1e-12);
  EXPECT_NEAR(q.reduce_cost("double:max", 1000), 2e-6, 1e-12);  // unmeasured: the first table
  // With one class only, both kinds of message use it.
  EXPECT_EQ(&q.link(true), &*q.inter);
}

TEST(ModelProfile, BadFilesAreClearErrors) {
  auto error_of = [](const std::string& path) {
    try {
      load_profile(path);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("/nonexistent/p.json").find("profile /nonexistent/p.json: cannot be read"), std::string::npos);
  const std::string good = to_json(simple(1e-6, 1e-6, 1e-6, 1e-6, 1e9));
  const std::string trunc = write_temp("trunc.json", good.substr(0, good.size() / 2));
  EXPECT_NE(error_of(trunc).find("profile " + trunc + ": not valid JSON (truncated?)"), std::string::npos);
  std::string v2 = good;
  v2.replace(v2.find("\"version\": 1"), 12, "\"version\": 2");
  EXPECT_NE(error_of(write_temp("v2.json", v2)).find("version 2 is not supported (this tandem reads version 1)"),
            std::string::npos);
  EXPECT_NE(error_of(write_temp("other.json", "{\"format\": \"x\"}")).find("not a tandem profile"), std::string::npos);
  std::string neg = good;
  neg.replace(neg.find("\"os_us\": "), 9, "\"os_us\": -");
  EXPECT_NE(error_of(write_temp("neg.json", neg)).find("inter.points[0].os_us must be a finite number >= 0"),
            std::string::npos);
  std::string early = good;
  early.replace(early.find("\"L_us\": "), 8, "\"L_us\": -1");
  EXPECT_NE(error_of(write_temp("early.json", early)).find("L_us is below -g_us"), std::string::npos);
  std::string nocopy = good;
  nocopy.replace(nocopy.find("\"copy\""), 6, "\"kopy\"");
  EXPECT_NE(error_of(write_temp("nocopy.json", nocopy)).find("missing copy"), std::string::npos);
  EXPECT_NE(error_of(write_temp("empty.json", "")).find("empty file"), std::string::npos);
}

TEST(ModelProfile, MismatchesAreNamed) {
  Profile p = simple(1e-6, 1e-6, 1e-6, 1e-6, 1e9);
  p.transport = "mpi:openmpi 4.1.4";
  p.machine.cpu = "cpu A";
  EXPECT_TRUE(mismatches(p, "mpi:openmpi 4.1.5", 1, "cpu A").empty());
  auto m = mismatches(p, "mpi:mpich 4.0", 2, "cpu B");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_NE(m[0].find("transport mpi:openmpi"), std::string::npos);
  EXPECT_NE(m[1].find("no table for messages inside a node"), std::string::npos);
  EXPECT_NE(m[2].find("cpu A"), std::string::npos);
}

TEST(ModelSim, LoneMessageAndPipelinedSends) {
  const double os = 1e-6, orecv = 2e-6, L = 5e-6, g0 = 3e-6, bw = 1e9;
  const Profile p = simple(os, orecv, L, g0, bw);
  Topology t;
  t.ranks = 2;
  // One message of m bytes: os + L + g(m) + or.
  const std::uint64_t m = 4096;
  coll::Builder b0(0, 2, 1), b1(1, 2, 1);
  b0.send(1, coll::at(coll::Buf::Send, 0), m);
  b1.recv(0, coll::at(coll::Buf::Recv, 0), m);
  std::vector<coll::Schedule> s;
  s.push_back(std::move(b0).finish());
  s.push_back(std::move(b1).finish());
  const double g = g0 + m / bw;
  EXPECT_NEAR(simulate(s, p, t).time, os + L + g + orecv, 1e-12);
  // k sends posted at once: they leave one gap apart (g > os), arrive one gap apart, and
  // the receiver's overheads overlap the later arrivals (or < g).
  const int k = 5;
  coll::Builder c0(0, 2, 1), c1(1, 2, 1);
  for (int i = 0; i < k; ++i) {
    c0.send(1, coll::at(coll::Buf::Send, 0), m);
    c1.recv(0, coll::at(coll::Buf::Recv, 0), m);
  }
  s.clear();
  s.push_back(std::move(c0).finish());
  s.push_back(std::move(c1).finish());
  const SimResult r = simulate(s, p, t);
  EXPECT_NEAR(r.time, os + k * g + L + orecv, 1e-12);
  EXPECT_EQ(r.messages, static_cast<std::uint64_t>(k));
  EXPECT_EQ(r.bytes, k * m);
}

TEST(ModelSim, RendezvousWaitsForTheReceiversAnswer) {
  const double os = 1e-6, orecv = 2e-6, L = 5e-6, g0 = 3e-6, bw = 1e9;
  Profile p = simple(os, orecv, L, g0, bw);
  p.inter->eager_limit = 1024;
  Topology t;
  t.ranks = 2;
  auto lone = [&](std::uint64_t m) {
    coll::Builder b0(0, 2, 1), b1(1, 2, 1);
    b0.send(1, coll::at(coll::Buf::Send, 0), m);
    b1.recv(0, coll::at(coll::Buf::Recv, 0), m);
    std::vector<coll::Schedule> s;
    s.push_back(std::move(b0).finish());
    s.push_back(std::move(b1).finish());
    return simulate(s, p, t).time;
  };
  const double ctl = p.inter->at(0).g + p.inter->at(0).L;  // a control message's one way
  EXPECT_NEAR(lone(1024), os + L + g0 + 1024 / bw + orecv, 1e-12);  // eager
  EXPECT_NEAR(lone(4096), os + 2 * ctl + L + g0 + 4096 / bw + orecv, 1e-12);
}

TEST(ModelSim, LinearBcastSerialisesAtTheRootAndFanInAtTheReceiver) {
  const double os = 1e-6, orecv = 1e-6, L = 10e-6, g0 = 2e-6, bw = 1e8;
  const Profile p = simple(os, orecv, L, g0, bw);
  const int P = 6;
  Topology t;
  t.ranks = P;
  coll::Args a;
  a.coll = coll::Coll::Bcast;
  a.size = P;
  a.count = 100000;
  const double g = g0 + a.count / bw;
  const SimResult r = simulate(*coll::find_algorithm(coll::Coll::Bcast, "linear"), a, p, t);
  EXPECT_NEAR(r.time, os + (P - 1) * g + L + orecv, 1e-12);
  // Linear gather: p-1 blocks into one receiver, one gap apart at its endpoint (the root's
  // copy of its own block is done while the first arrives).
  a.coll = coll::Coll::Gather;
  a.count = 10000;
  const double gb = g0 + a.count / bw;
  const SimResult q = simulate(*coll::find_algorithm(coll::Coll::Gather, "linear"), a, p, t);
  EXPECT_NEAR(q.time, os + L + (P - 1) * gb + orecv, 1e-12);
}

TEST(ModelSim, IntraAndInterNodeLinksDiffer) {
  Profile p = simple(1e-6, 1e-6, 10e-6, 1e-6, 1e9, true);
  p.reduce["float:sum"].points = {{1, 1e-12}, {1ull << 26, (1ull << 26) * 1e-12}};  // links dominate
  coll::Args a;
  a.coll = coll::Coll::Allreduce;
  a.count = 1 << 18;
  a.elem_size = 4;
  a.size = 8;
  const auto* rd = coll::find_algorithm(coll::Coll::Allreduce, "recursive_doubling");
  Topology flat;
  flat.ranks = 8;
  Topology nodes = flat;
  nodes.ranks_per_node = 4;  // only the last of the three exchanges leaves a node
  nodes.nics_per_node = 4;   // a NIC per rank, as in a DGX
  const double t_flat = simulate(*rd, a, p, flat).time, t_nodes = simulate(*rd, a, p, nodes).time;
  EXPECT_LT(t_nodes, t_flat * 0.6);
  EXPECT_GT(t_nodes, t_flat / 3);
  // One NIC per node: the four ranks' messages of the last exchange leave one after another.
  Topology shared = nodes;
  shared.nics_per_node = 1;
  EXPECT_GT(simulate(*rd, a, p, shared).time, t_nodes + 2.9 * (a.count * 4.0 / 1e9));
}

TEST(ModelSim, EveryAlgorithmCompletesAndReplaysDeterministically) {
  const Profile p = synthetic_profile(superpod_sheet());
  for (coll::Coll c : coll::all_colls())
    for (const auto& alg : coll::algorithms(c)) {
      coll::Args a;
      a.coll = c;
      a.size = 12;
      a.root = 5;
      a.count = 3000;
      a.elem_size = 4;
      a.segsize = alg.segmented ? 4096 : 0;
      Topology t = topology_for(p, 12, 4);
      SCOPED_TRACE(std::string(coll::coll_name(c)) + " " + alg.name);
      const SimResult r = simulate(alg, a, p, t);
      EXPECT_GT(r.time, 0);
      EXPECT_EQ(simulate(alg, a, p, t).time, r.time);
      std::size_t msgs = 0;
      for (const auto& s : build_all(alg, with_nodes(a, t))) msgs += s.messages();
      EXPECT_EQ(r.messages * 2, msgs);  // every send and every receive
    }
}

// The lower bound from a few ranks' schedules never exceeds the simulated time, and the
// ranking that skips candidates by it keeps the first `exact` of the full ranking.
TEST(ModelSim, LowerBoundsHoldAndPruningKeepsTheFastest) {
  const Profile p = synthetic_profile(superpod_sheet());
  for (coll::Coll c : coll::all_colls())
    for (const auto& alg : coll::algorithms(c))
      for (int ranks : {7, 16}) {
        coll::Args a;
        a.coll = c;
        a.size = ranks;
        a.root = 3;
        a.count = 50000;
        a.elem_size = 4;
        a.segsize = alg.segmented ? 8192 : 0;
        const Topology t = topology_for(p, ranks, 4);
        SCOPED_TRACE(std::string(coll::coll_name(c)) + " " + alg.name + " on " + std::to_string(ranks));
        const SimBound b = lower_bound(alg, a, p, t);
        EXPECT_GT(b.time, 0);
        EXPECT_LE(b.time, simulate(alg, a, p, t).time * (1 + 1e-12));
        EXPECT_GT(b.steps, 0u);
      }
  Problem pb;
  pb.coll = coll::Coll::Allreduce;
  pb.topo = topology_for(p, 64, 8);
  pb.bytes = 16 << 20;
  pb.elem_size = 4;
  Grid g;
  g.segsizes = {0, 4096, 65536, 1 << 20};
  const auto cands = candidates(pb, g);
  const auto all = rank_candidates(pb, cands, p);
  for (std::size_t exact : {std::size_t{1}, std::size_t{3}}) {
    const auto some = rank_candidates(pb, cands, p, exact);
    ASSERT_EQ(some.size(), all.size());
    for (std::size_t i = 0; i < exact; ++i) {
      EXPECT_FALSE(some[i].bound);
      EXPECT_EQ(some[i].choice.str(), all[i].choice.str());
      EXPECT_EQ(some[i].time, all[i].time);
    }
    std::size_t bounded = 0;
    for (const auto& x : some) bounded += x.bound;
    EXPECT_GT(bounded, 0u) << "4 KiB segments of 16 MB on 64 ranks cannot be among the fastest";
    for (const auto& x : some)
      if (x.bound) {
        EXPECT_GE(x.time, some[exact - 1].time);
      }
  }
  EXPECT_EQ(best(pb, g, p).choice.str(), all.front().choice.str());
}

TEST(ModelSim, AReceiveWithoutItsSendIsAnError) {
  coll::Builder b0(0, 2, 1), b1(1, 2, 1);
  b1.recv(0, coll::at(coll::Buf::Recv, 0), 8);
  std::vector<coll::Schedule> s;
  s.push_back(std::move(b0).finish());
  s.push_back(std::move(b1).finish());
  Topology t;
  t.ranks = 2;
  try {
    simulate(s, simple(1e-6, 1e-6, 1e-6, 1e-6, 1e9), t);
    FAIL() << "no error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 step 0 (recv, peer 0, tag 0) never completes"), std::string::npos);
  }
}

TEST(ModelClosedForm, AgreesWithTheSimulatorWhereItIsExact) {
  const Profile p = simple(1e-6, 1e-6, 10e-6, 1e-6, 1e8);
  Topology t;
  t.ranks = 8;
  coll::Args a;
  a.coll = coll::Coll::Bcast;
  a.size = 8;
  a.count = 1 << 16;
  const auto* lin = coll::find_algorithm(coll::Coll::Bcast, "linear");
  const double sim = simulate(*lin, a, p, t).time;
  // LogGP overlaps the root's sends as the simulator does; Hockney does not.
  EXPECT_NEAR(*closed_form(Closed::LogGP, *lin, a, p, t), sim, 0.02 * sim);
  EXPECT_GT(*closed_form(Closed::Hockney, *lin, a, p, t), sim);
  a.coll = coll::Coll::Allreduce;
  a.elem_size = 4;
  a.count = 1 << 14;
  const auto* rd = coll::find_algorithm(coll::Coll::Allreduce, "recursive_doubling");
  const double s2 = simulate(*rd, a, p, t).time;
  EXPECT_NEAR(*closed_form(Closed::Hockney, *rd, a, p, t), s2, 0.1 * s2);
}

TEST(ModelPredict, CandidatesHonourTheCall) {
  Problem pb;
  pb.coll = coll::Coll::Allreduce;
  pb.topo.ranks = 4;
  pb.bytes = 64 * 1024;
  pb.elem_size = 4;
  pb.commutative = false;
  Grid g;
  g.segsizes = {0, 16 * 1024, 64 * 1024, 1 << 20};
  g.fanouts = {0, 2, 8};
  for (const auto& c : candidates(pb, g)) {
    EXPECT_FALSE(c.alg->commutative_only) << c.str();
    EXPECT_LT(c.segsize, pb.bytes) << c.str();
    EXPECT_TRUE(c.segsize == 0 || c.alg->segmented) << c.str();
    EXPECT_LT(c.fanout, pb.topo.ranks) << c.str();
  }
  pb.commutative = true;
  const Profile p = simple(1e-6, 1e-6, 30e-6, 1e-6, 1.25e8);
  const auto ranked = rank_candidates(pb, candidates(pb, g), p);
  ASSERT_GT(ranked.size(), 4u);
  for (std::size_t i = 1; i < ranked.size(); ++i) EXPECT_LE(ranked[i - 1].time, ranked[i].time);
  EXPECT_EQ(best(pb, g, p).time, ranked.front().time);
}

TEST(ModelFlow, AgreesWithTheEventSimulatorWithoutContention) {
  if (!flow_available()) GTEST_SKIP() << "built without SimGrid";
  const Profile p = simple(0.5e-6, 0.5e-6, 5e-6, 0.1e-6, 1e9);
  Topology t;
  t.ranks = 2;
  coll::Args a;
  a.coll = coll::Coll::Bcast;
  a.size = 2;
  a.count = 1 << 20;
  const auto* lin = coll::find_algorithm(coll::Coll::Bcast, "linear");
  const double ev = simulate(*lin, a, p, t).time, fl = simulate_flow(*lin, a, p, t).time;
  EXPECT_NEAR(fl, ev, 0.02 * ev);
  // Eight ranks on two nodes with one NIC each: the flow model shares the NIC between the
  // four flows that cross at once (linear alltoall), the event model serialises them by
  // the gap: both give at least the NIC's bytes over its bandwidth.
  const Profile q = simple(0.5e-6, 0.5e-6, 5e-6, 0.1e-6, 1e9, true);
  Topology n2 = topology_for(q, 8, 4);
  a.coll = coll::Coll::Alltoall;
  a.size = 8;
  a.count = 1 << 18;
  const auto* at = coll::find_algorithm(coll::Coll::Alltoall, "linear");
  const double bound = 4.0 * 4 * a.count / 1e9;  // 16 blocks leave each node through its NIC
  EXPECT_GE(simulate_flow(*at, a, q, n2).time, bound * 0.99);
  EXPECT_GE(simulate(*at, a, q, n2).time, bound * 0.99);
}
