// The autotuner's search methods on synthetic measurers (times as a known function of the
// variant), its state for resuming, and the rules it writes.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "coll/ompi_rules.hpp"
#include "coll/rules.hpp"
#include "model/profile.hpp"
#include "tune/tuner.hpp"

using namespace tandem;
using tune::Method;
using tune::Point;
using tune::Variant;

namespace {

// A bowl over log2(segment size) per algorithm: best at 2^(10 + index of the algorithm),
// each algorithm slower than the one before by `step`; unsegmented = 2^30; the MPI's
// default at `mpi` seconds.
struct Bowl {
  double mpi = 1.0, step = 0.1;
  int calls = 0;
  std::map<std::string, int> per_label;
  std::vector<double> operator()(const Point& p, const std::vector<Variant>& vs) {
    ++calls;
    std::vector<double> t;
    for (const auto& v : vs) {
      ++per_label[v.label()];
      if (v.is_mpi()) {
        t.push_back(mpi);
        continue;
      }
      int idx = 0;
      for (const auto& a : coll::algorithms(p.coll)) {
        if (&a == v.choice.alg) break;
        ++idx;
      }
      const double seg = v.choice.segsize ? static_cast<double>(v.choice.segsize) : std::pow(2.0, 30);
      t.push_back(0.1 + step * idx + 0.01 * std::abs(std::log2(seg) - (10 + idx)) + 0.001 * v.choice.fanout);
    }
    return t;
  }
};

tune::Options opts(Method m) {
  tune::Options o;
  o.method = m;
  o.grid.segsizes = {0, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
  o.grid.fanouts = {0};
  return o;
}

const Point kBcast{coll::Coll::Bcast, 8, 1 << 20};

}  // namespace

TEST(Tune, ExhaustiveMeasuresEveryCandidateAndFindsTheBest) {
  Bowl b;
  tune::Tuner t(opts(Method::Exhaustive), std::ref(b), nullptr, nullptr);
  const auto out = t.tune(kBcast);
  EXPECT_EQ(out.experiments, static_cast<int>(t.candidates(kBcast).size()) + 1);
  // The first algorithm at its optimum 2^10.
  EXPECT_EQ(out.best.choice.alg, &coll::algorithms(coll::Coll::Bcast).front());
  EXPECT_EQ(out.best.choice.segsize, 1024u);
  EXPECT_NEAR(out.best_time, 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(out.mpi_default_time, 1.0);
}

TEST(Tune, DescentsFindEachAlgorithmsOptimumWithFewerExperiments) {
  Bowl ex, mgd, smgd;
  tune::Tuner te(opts(Method::Exhaustive), std::ref(ex), nullptr, nullptr);
  tune::Tuner tm(opts(Method::MGD), std::ref(mgd), nullptr, nullptr);
  auto so = opts(Method::SMGD);
  so.prune = 100;  // no pruning: every algorithm scanned to its optimum
  tune::Tuner ts(so, std::ref(smgd), nullptr, nullptr);
  const auto e = te.tune(kBcast), m = tm.tune(kBcast), s = ts.tune(kBcast);
  EXPECT_EQ(m.best.label(), e.best.label());
  EXPECT_EQ(s.best.label(), e.best.label());
  EXPECT_LT(m.experiments, e.experiments);
  EXPECT_LT(s.experiments, e.experiments);
  // Each segmented algorithm's best segment size was measured by both descents.
  int idx = 0;
  for (const auto& a : coll::algorithms(coll::Coll::Bcast)) {
    if (a.segmented) {
      const std::uint64_t opt = std::uint64_t{1} << (10 + idx);
      if (opt <= 65536) {
        Variant v{coll::Choice{&a, opt, 0}, "", 0};
        EXPECT_TRUE(m.measured.count(v.label())) << v.label();
        EXPECT_TRUE(s.measured.count(v.label())) << v.label();
      }
    }
    ++idx;
  }
}

TEST(Tune, ScanningDescentPrunesSlowAlgorithms) {
  Bowl b;
  b.step = 10;  // every algorithm after the first is 100x slower than the first
  auto o = opts(Method::SMGD);
  o.prune = 1.5;
  tune::Tuner t(o, std::ref(b), nullptr, nullptr);
  const auto out = t.tune(kBcast);
  EXPECT_EQ(out.best.choice.alg, &coll::algorithms(coll::Coll::Bcast).front());
  // Pruned ones were measured once, at their smallest segment size.
  for (const auto& a : coll::algorithms(coll::Coll::Bcast)) {
    if (&a == &coll::algorithms(coll::Coll::Bcast).front() || !a.segmented || a.hierarchical()) continue;  // (no candidates on one rank per node)
    int n = 0;
    for (const auto& [label, k] : b.per_label)
      if (label.rfind(std::string(a.name) + ":", 0) == 0 || label == a.name) n += k;
    EXPECT_EQ(n, 1) << a.name;
  }
}

TEST(Tune, TheMpiDefaultWinsWhereItIsFaster) {
  Bowl b;
  b.mpi = 0.05;
  tune::Tuner t(opts(Method::SMGD), std::ref(b), nullptr, nullptr);
  const auto out = t.tune(kBcast);
  EXPECT_TRUE(out.best.is_mpi());
  EXPECT_EQ(out.best.label(), "mpi");
}

// With a margin, a choice within it of the MPI's default leaves the default in place (for
// the rules and for the exports); one faster by more than the margin still wins.
TEST(Tune, TheMpiDefaultStaysWithinTheMargin) {
  Bowl b;
  b.mpi = 0.104;  // the best of tandem's is 0.1 (the first algorithm at its best segment size)
  auto o = opts(Method::Exhaustive);
  o.margin = 1.05;
  o.mpi_variants[static_cast<int>(coll::Coll::Bcast)] = {Variant{coll::Choice{}, "0", 0}, Variant{coll::Choice{}, "3", 0}};
  auto measurer = [&](const Point& p, const std::vector<Variant>& vs) {
    auto t = b(p, vs);
    for (std::size_t i = 0; i < vs.size(); ++i)
      if (vs[i].mpi_alg == "3") t[i] = 0.1;  // the fastest of the MPI's own, by 4 %
    return t;
  };
  tune::Tuner t(o, measurer, nullptr, nullptr);
  auto out = t.tune(kBcast);
  EXPECT_EQ(out.best.label(), "mpi") << "0.1 is within 1.05x of the default's 0.104";
  EXPECT_DOUBLE_EQ(out.best_time, 0.104);
  EXPECT_EQ(out.best_mpi.label(), "mpi:0") << "0.1 is within 1.05x of the fixed decision's 0.104";
  o.margin = 1.0;
  tune::Tuner fastest(o, measurer, nullptr, nullptr);
  out = fastest.tune(kBcast);
  EXPECT_FALSE(out.best.is_mpi());
  EXPECT_EQ(out.best_mpi.label(), "mpi:3");
  b.mpi = 0.2;
  o.margin = 1.05;
  tune::Tuner wide(o, measurer, nullptr, nullptr);
  out = wide.tune(kBcast);
  EXPECT_FALSE(out.best.is_mpi()) << "twice as fast as the default";
  EXPECT_EQ(out.best_mpi.label(), "mpi:3");
}

// A forced MPI algorithm that won by a lucky launch loses its confirmation runs against
// the default; one that is really faster keeps the point, at the median of its runs.
TEST(Tune, ForcedWinnersAreConfirmedAgainstTheDefault) {
  auto o = opts(Method::Exhaustive);
  o.grid.segsizes = {0};
  o.confirm = 2;
  o.margin = 1.05;
  o.mpi_candidates[static_cast<int>(coll::Coll::Bcast)] = {Variant{coll::Choice{}, "3", 0, true},
                                                           Variant{coll::Choice{}, "5", 0, true}};
  std::vector<std::string> runs;
  auto measurer = [&](const Point&, const std::vector<Variant>& vs) {
    std::vector<double> t;
    for (const auto& v : vs) {
      runs.push_back(v.key());
      if (!v.is_mpi()) t.push_back(1.0);
      else if (v.mpi_alg == "3") t.push_back(v.repeat ? 0.12 : 0.08);  // lucky once
      else if (v.mpi_alg == "5") t.push_back(0.11);
      else t.push_back(v.repeat == 1 ? 0.09 : 0.1);  // the default
    }
    return t;
  };
  tune::Tuner t(o, measurer, nullptr, nullptr);
  auto out = t.tune(kBcast);
  EXPECT_EQ(out.best.label(), "mpi") << "mpi:3's runs 0.08, 0.12, 0.12 against the default's 0.1, 0.09, 0.1";
  EXPECT_DOUBLE_EQ(out.best_time, 0.1);
  EXPECT_NE(std::find(runs.begin(), runs.end(), "mpi:3@run#2"), runs.end());
  EXPECT_NE(std::find(runs.begin(), runs.end(), "mpi#2"), runs.end());
  EXPECT_EQ(out.measured.at("mpi:3@run#1"), 0.12);

  auto fast = [&](const Point&, const std::vector<Variant>& vs) {
    std::vector<double> t;
    for (const auto& v : vs) t.push_back(!v.is_mpi() ? 1.0 : v.mpi_alg == "3" ? (v.repeat ? 0.06 : 0.05) : 0.1);
    return t;
  };
  tune::Tuner f(o, fast, nullptr, nullptr);
  out = f.tune(kBcast);
  EXPECT_EQ(out.best.label(), "mpi:3@run");
  EXPECT_DOUBLE_EQ(out.best_time, 0.06) << "the median of 0.05, 0.06, 0.06";
  // Without confirmation the lucky launch wins.
  o.confirm = 0;
  tune::Tuner n(o, measurer, nullptr, nullptr);
  EXPECT_EQ(n.tune(kBcast).best.label(), "mpi:3@run");
}

TEST(Tune, AStoreResumesWithoutMeasuringAgain) {
  Bowl b1, b2;
  tune::Store store;
  tune::Tuner t1(opts(Method::MGD), std::ref(b1), nullptr, &store);
  const auto a = t1.tune(kBcast);
  const auto again = tune::Store::from_json(store.to_json(), "state.json");
  tune::Store s2 = again;
  tune::Tuner t2(opts(Method::MGD), std::ref(b2), nullptr, &s2);
  const auto b = t2.tune(kBcast);
  EXPECT_EQ(b2.calls, 0);
  EXPECT_EQ(b.experiments, 0);
  EXPECT_EQ(b.best.label(), a.best.label());
  EXPECT_THROW(tune::Store::from_json("{\"format\": \"tandem-tune-state\", \"version\": 2}", "s.json"), std::runtime_error);
  // The store is handed over after every run of measurements, with them in it (to save
  // it then: an interruption loses at most the run in progress).
  Bowl b3;
  tune::Store s3;
  std::vector<std::size_t> sizes_seen;
  auto o3 = opts(Method::MGD);
  o3.on_store = [&] {
    std::size_t n = 0;
    for (const auto& [k, m] : s3.times) n += m.size();
    sizes_seen.push_back(n);
  };
  tune::Tuner t3(o3, std::ref(b3), nullptr, &s3);
  const auto c = t3.tune(kBcast);
  ASSERT_EQ(sizes_seen.size(), static_cast<std::size_t>(b3.calls));
  EXPECT_EQ(sizes_seen.back(), static_cast<std::size_t>(c.experiments));
  for (std::size_t i = 1; i < sizes_seen.size(); ++i) EXPECT_GT(sizes_seen[i], sizes_seen[i - 1]);
  EXPECT_THROW(tune::Store::from_json("{\"format\": \"tandem-tune", "s.json"), std::runtime_error);
}

TEST(Tune, ModelAndGuidedMethodsUseTheProfile) {
  const model::Profile p = model::synthetic_profile(model::superpod_sheet());
  Bowl b;
  EXPECT_THROW(tune::Tuner(opts(Method::Model), std::ref(b), nullptr, nullptr), std::invalid_argument);
  tune::Tuner tm(opts(Method::Model), std::ref(b), &p, nullptr);
  const auto m = tm.tune(kBcast);
  EXPECT_EQ(b.calls, 0);
  EXPECT_GT(m.predicted, 0);
  EXPECT_DOUBLE_EQ(m.best_time, m.predicted);
  auto go = opts(Method::Guided);
  go.guided_top = 3;
  tune::Tuner tg(go, std::ref(b), &p, nullptr);
  const auto g = tg.tune(kBcast);
  EXPECT_EQ(g.experiments, 4);  // the MPI default and the model's three best
  tune::Tuner tp(opts(Method::Pipeline), std::ref(b), &p, nullptr);
  const auto pl = tp.tune(kBcast);
  // One per algorithm (fan-outs: the defaults only; no hierarchical ones on one rank per
  // node) and the MPI's default.
  int flat = 0;
  for (const auto& a : coll::algorithms(coll::Coll::Bcast)) flat += !a.hierarchical();
  EXPECT_EQ(pl.experiments, flat + 1);
}

TEST(Tune, RulesCoverTheSizesBetweenPoints) {
  Bowl b;
  b.mpi = 0.05;
  tune::Tuner t(opts(Method::SMGD), std::ref(b), nullptr, nullptr);
  std::vector<tune::Outcome> outs;
  outs.push_back(t.tune({coll::Coll::Bcast, 8, 1024}));
  Bowl slow_mpi;
  tune::Tuner t2(opts(Method::SMGD), std::ref(slow_mpi), nullptr, nullptr);
  outs.push_back(t2.tune({coll::Coll::Bcast, 8, 1 << 20}));
  const std::string text = tune::rules_text(outs, "test\nrules");
  std::string why;
  auto r = coll::parse_rules(text, "tuned.rules", &why);
  ASSERT_TRUE(r) << why << "\n" << text;
  ASSERT_EQ(r->rules.size(), 2u);
  const coll::Rule* small = r->match(coll::Coll::Bcast, 8, 0);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(small->choice.alg, nullptr);  // mpi
  EXPECT_EQ(r->match(coll::Coll::Bcast, 8, 32 * 1024), small);  // sqrt(1K x 1M) = 32K: still the first
  const coll::Rule* big = r->match(coll::Coll::Bcast, 8, 32 * 1024 + 1);
  ASSERT_NE(big, nullptr);
  EXPECT_NE(big->choice.alg, nullptr);
  EXPECT_EQ(r->match(coll::Coll::Bcast, 8, std::uint64_t{1} << 40), big);
  EXPECT_EQ(r->match(coll::Coll::Bcast, 4, 1024), nullptr);  // tuned for 8 ranks only
}

// An outcome on 4 ranks whose best of the MPI library's own algorithms is `alg`.
tune::Outcome mpi_outcome(coll::Coll c, std::uint64_t bytes, const char* alg) {
  tune::Outcome o;
  o.point = {c, 4, bytes};
  o.best_mpi = Variant{coll::Choice{}, alg, 0};
  o.best_mpi_time = 1e-3;
  return o;
}

TEST(Tune, OpenMpiRulesInTheClassicFormat) {
  // Outcomes whose best of Open MPI's own algorithms is known: allreduce (bytes per rank)
  // and allgather (Open MPI counts the whole buffer).
  std::vector<tune::Outcome> outs{mpi_outcome(coll::Coll::Allreduce, 1 << 20, "4"), mpi_outcome(coll::Coll::Allreduce, 1024, "3"),
                                  mpi_outcome(coll::Coll::Allgather, 1024, "2"), mpi_outcome(coll::Coll::Bcast, 8, "0")};
  tune::Outcome none = mpi_outcome(coll::Coll::Bcast, 1 << 20, "");  // no Open MPI measurement: left out
  none.best_mpi_time = -1;
  outs.push_back(none);
  EXPECT_EQ(tune::ompi_rules_text(outs),
            "3\n"
            "0\n1\n4\n1\n0 2 0 0\n"              // allgather: one rule from 0
            "2\n1\n4\n2\n0 3 0 0\n32769 4 0 0\n"  // allreduce: from 0, then from sqrt(1K x 1M) + 1
            "7\n1\n4\n1\n0 0 0 0\n");             // bcast: Open MPI's fixed decision
  EXPECT_EQ(coll::ompi_coll_id(coll::Coll::ReduceScatterBlock), 13);
}

TEST(Tune, MpichSelectionFileKeepsTheDefaultsAndChecksSizesExactly) {
  const std::string base =
      R"({"collective=bcast":{"comm_type=intra":{"algorithm=MPIR_Bcast_intra_binomial":{}}},)"
      R"("collective=allgather":{"comm_type=intra":{"algorithm=MPIR_Allgather_intra_ring":{}}},)"
      R"("collective=alltoall":{"comm_type=intra":{"algorithm=MPIR_Alltoall_intra_pairwise":{}}}})";
  std::vector<tune::Outcome> outs{mpi_outcome(coll::Coll::Bcast, 1 << 20, "scatter_ring_allgather"),
                                  mpi_outcome(coll::Coll::Bcast, 1024, "auto"),
                                  mpi_outcome(coll::Coll::Allgather, 1024, "brucks")};
  const std::string d = R"({"algorithm=MPIR_Bcast_intra_binomial":{}})";
  EXPECT_EQ(tune::mpich_json_text(outs, base),
            R"({"collective=bcast":{"comm_type=intra":{"comm_size<4":)" + d + R"(,"comm_size<=4":{"avg_msg_size<=32768":)" +
                d + R"(,"avg_msg_size=any":{"algorithm=MPIR_Bcast_intra_scatter_ring_allgather":{}}},"comm_size=any":)" + d +
                R"(}},"collective=allgather":{"comm_type=intra":{"comm_size<4":{"algorithm=MPIR_Allgather_intra_ring":{}},)"
                R"("comm_size<=4":{"total_msg_size=any":{"algorithm=MPIR_Allgather_intra_brucks":{}}},)"
                R"("comm_size=any":{"algorithm=MPIR_Allgather_intra_ring":{}}}},)"
                R"("collective=alltoall":{"comm_type=intra":{"algorithm=MPIR_Alltoall_intra_pairwise":{}}}})"
                "\n");
  EXPECT_THROW(tune::mpich_json_text(outs, "{\"collective=bcast\": 3"), std::runtime_error);
  EXPECT_THROW(tune::mpich_json_text(outs, R"({"collective=bcast":{}})"), std::runtime_error);
  const std::string ch4 = tune::mpich_ch4_flat_text(
      R"({"collective=bcast":{"comm_type=intra":{"composition=MPIDI_Bcast_intra_composition_alpha":{}}},)"
      R"("collective=gather":{"comm_type=intra":{"composition=MPIDI_Gather_intra_composition_alpha":{}}}})");
  EXPECT_NE(ch4.find(R"("collective=bcast":{"comm_type=intra":{"composition=MPIDI_Bcast_intra_composition_gamma":{}}})"),
            std::string::npos);
  EXPECT_NE(ch4.find("MPIDI_Gather_intra_composition_alpha"), std::string::npos) << "the others are kept";
  EXPECT_NE(ch4.find("MPIDI_Allreduce_intra_composition_beta"), std::string::npos);
  EXPECT_EQ(tune::mpich_function(coll::Coll::Allreduce, "recursive_doubling"), "MPIR_Allreduce_intra_recursive_doubling");
  EXPECT_TRUE(tune::mpich_algorithms(coll::Coll::Alltoall).empty());
}

// Rules lines naming Open MPI's own algorithms become the coll_tuned dynamic rules that
// make Open MPI run them: per communicator size the sizes of the first matching lines,
// Open MPI's units, 0 where tandem's algorithm or plain `mpi` decides.
TEST(Tune, OpenMpiRulesFromRulesLines) {
  std::string why, text;
  auto r = coll::parse_rules("tandem-coll-rules 1\n"
                             "bcast 4 0-1K mpi\n"
                             "bcast 4 1025-64K mpi:3:32K\n"
                             "bcast 4 64K- pipeline:64K\n"
                             "bcast 5- * mpi:1\n"
                             "allgather 2-3 16- mpi:2\n"
                             "allreduce * * ring\n",
                             "t.rules", &why);
  ASSERT_TRUE(r) << why;
  ASSERT_TRUE(coll::ompi_rules_for(*r, 6, &text, &why)) << why;
  EXPECT_EQ(text,
            "2\n"
            "0\n4\n"                                 // allgather: the whole buffer (bytes per rank x ranks)
            "1\n1\n0 0 0 0\n"                        //   1 rank: no line
            "2\n2\n0 0 0 0\n32 2 0 0\n"              //   2 ranks: 16 B a rank = 32 B
            "3\n2\n0 0 0 0\n48 2 0 0\n"              //   3 ranks
            "4\n1\n0 0 0 0\n"                        //   4 to 6 ranks: no line again (else 3's would apply)
            "7\n3\n"                                 // bcast, bytes per rank
            "1\n1\n0 0 0 0\n"
            "4\n3\n0 0 0 0\n1025 3 0 32768\n65537 0 0 0\n"
            "5\n1\n0 1 0 0\n");                      //   5 and 6 ranks alike
  // Nothing forced: no file.
  auto plain = coll::parse_rules("tandem-coll-rules 1\nbcast * * mpi\nallreduce * * ring\n", "p.rules", &why);
  ASSERT_TRUE(coll::ompi_rules_for(*plain, 4, &text, &why));
  EXPECT_EQ(text, "");
  // Open MPI's algorithms are numbers.
  auto named = coll::parse_rules("tandem-coll-rules 1\nbcast * * mpi:binomial\n", "n.rules", &why);
  EXPECT_FALSE(coll::ompi_rules_for(*named, 4, &text, &why));
  EXPECT_NE(why.find("n.rules:2: `mpi:binomial`: Open MPI's algorithms are numbers"), std::string::npos) << why;
}

// A chain forced without a fan-out runs Open MPI's default of 4 chains; a rules file's 0
// would make it one pipeline, so the file names 4 (or the fan-out the rule gives).
TEST(Tune, OpenMpiRulesWriteTheChainsFanout) {
  std::string why, text;
  auto r = coll::parse_rules("tandem-coll-rules 1\nbcast 8 0-1K mpi:2:16K\nbcast 8 1K- mpi:2:0:2\n"
                             "reduce 8 * mpi:1\n", "c.rules", &why);
  ASSERT_TRUE(r) << why;
  ASSERT_TRUE(coll::ompi_rules_for(*r, 8, &text, &why)) << why;
  EXPECT_NE(text.find("8\n2\n0 2 4 16384\n1025 2 2 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("8\n1\n0 1 0 0\n"), std::string::npos) << "the reduce's algorithm 1 takes no fan-out: " << text;
  EXPECT_EQ(coll::ompi_fanout(coll::Coll::Bcast, 2, 0), coll::kOmpiChainFanout);
  EXPECT_EQ(coll::ompi_fanout(coll::Coll::Reduce, 2, 3), 3);
  EXPECT_EQ(coll::ompi_fanout(coll::Coll::Bcast, 3, 3), 0);
  EXPECT_EQ(coll::ompi_fanout(coll::Coll::Allreduce, 2, 0), 0);
  // A fan-out for an algorithm that takes none is an error, not silently dropped.
  auto bad = coll::parse_rules("tandem-coll-rules 1\nbcast * * mpi:3:16K:2\n", "b.rules", &why);
  ASSERT_TRUE(bad) << why;
  EXPECT_FALSE(coll::ompi_rules_for(*bad, 4, &text, &why));
  EXPECT_NE(why.find("b.rules:2: `mpi:3:16K:2`: Open MPI's algorithm 3 of bcast takes no fan-out"), std::string::npos)
      << why;
}

TEST(Tune, ForcedMpiAlgorithmsAsCandidatesOfTheRules) {
  // The MPI library's algorithm 3 is the fastest: the rules name it.
  auto measurer = [](const tune::Point&, const std::vector<Variant>& vs) {
    std::vector<double> t;
    for (const auto& v : vs) t.push_back(v.is_mpi() && v.mpi_alg == "3" ? 1e-4 : v.is_mpi() ? 5e-4 : 1e-3);
    return t;
  };
  auto o = opts(Method::Exhaustive);
  o.mpi_candidates[static_cast<int>(coll::Coll::Bcast)] = {Variant{coll::Choice{}, "3", 32768, true},
                                                           Variant{coll::Choice{}, "1", 0, true}};
  tune::Tuner t(o, measurer, nullptr, nullptr);
  auto out = t.tune({coll::Coll::Bcast, 4, 4096});
  EXPECT_EQ(out.best.label(), "mpi:3:32K@run");
  EXPECT_EQ(out.best.rules_choice(), "mpi:3:32K");
  EXPECT_EQ(out.best_mpi_time, -1) << "candidates of the rules are not the exports' measurements";
  const std::string text = tune::rules_text({out}, "");
  EXPECT_NE(text.find("bcast 4 0- mpi:3:32K\n"), std::string::npos) << text;
  std::string why;
  ASSERT_TRUE(coll::parse_rules(text, "t", &why)) << why;
  EXPECT_EQ((Variant{coll::Choice{}, "0", 0}.rules_choice()), "mpi");
}
