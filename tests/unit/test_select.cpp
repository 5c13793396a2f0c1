// The one selection: the call's choice > TANDEM_COLL_<COLL> > the rules file > the
// fallback (the MPI library's own under `tandem run`, tandem's built-in default in the
// C++ API); choices that cannot run a call are skipped and said; bad settings are errors
// in the registry's format.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "coll/select.hpp"

using namespace tandem;
using namespace tandem::coll;

namespace {

std::string write_rules(const std::string& text) {
  char path[] = "/tmp/tandem_select_XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}

Query query(Coll c, int p, std::uint64_t bytes, bool commutative = true) {
  Query q;
  q.coll = c;
  q.ranks = p;
  q.bytes = bytes;
  q.commutative = commutative;
  return q;
}

}  // namespace

TEST(Selection, FallbackWithoutSettings) {
  Selector s;
  Selection run = s.select(query(Coll::Allreduce, 4, 8), Fallback::Mpi);
  EXPECT_TRUE(run.mpi());
  EXPECT_EQ(run.reason, Reason::NoChoice);
  Selection api = s.select(query(Coll::Allreduce, 4, 8), Fallback::Builtin);
  ASSERT_FALSE(api.mpi());
  EXPECT_EQ(api.reason, Reason::Default);
  EXPECT_STREQ(api.choice.alg->name, "recursive_doubling");
  EXPECT_STREQ(s.select(query(Coll::Allreduce, 4, 1 << 20), Fallback::Builtin).choice.alg->name, "ring");
  EXPECT_EQ(s.describe(Coll::Allreduce, api), "built-in default");
  // A default exists for every collective, size and commutativity, and can run the call.
  for (Coll k : all_colls())
    for (bool commutative : {true, false})
      for (std::uint64_t bytes : {0ull, 8ull, 1ull << 20}) {
        Selection d = s.select(query(k, 5, bytes, commutative), Fallback::Builtin);
        ASSERT_FALSE(d.mpi()) << coll_name(k);
        EXPECT_TRUE(cannot_run(*d.choice.alg, query(k, 5, bytes, commutative)).empty()) << d.choice.alg->name;
      }
}

TEST(Selection, BuiltinBoundaryIsTheSetting) {
  Config cfg;
  cfg.coll_small = 1024;
  std::string errors;
  Selector s = Selector::from_config(cfg, &errors);
  EXPECT_EQ(errors, "");
  EXPECT_STREQ(s.select(query(Coll::Allreduce, 4, 1023), Fallback::Builtin).choice.alg->name, "recursive_doubling");
  EXPECT_STREQ(s.select(query(Coll::Allreduce, 4, 1024), Fallback::Builtin).choice.alg->name, "ring");
}

TEST(Selection, PrecedenceCallForcedRulesFallback) {
  std::string path = write_rules("tandem-coll-rules 1\nallreduce * 0-4K recursive_doubling\nallreduce * 4K- segmented_ring:64K\n");
  Config cfg;
  cfg.coll_rules = path;
  std::string errors;
  Selector rules_only = Selector::from_config(cfg, &errors);
  ASSERT_EQ(errors, "");
  Selection r = rules_only.select(query(Coll::Allreduce, 4, 1 << 20), Fallback::Mpi);
  ASSERT_EQ(r.reason, Reason::Rule);
  EXPECT_EQ(r.choice.str(), "segmented_ring:64K");
  EXPECT_EQ(rules_only.describe(Coll::Allreduce, r), path + ":3");
  EXPECT_EQ(rules_only.select(query(Coll::Bcast, 4, 8), Fallback::Mpi).reason, Reason::NoChoice);

  cfg.coll_forced[static_cast<int>(Coll::Allreduce)] = "rabenseifner";
  Selector forced = Selector::from_config(cfg, &errors);
  Selection f = forced.select(query(Coll::Allreduce, 4, 8), Fallback::Mpi);
  ASSERT_EQ(f.reason, Reason::Forced);
  EXPECT_STREQ(f.choice.alg->name, "rabenseifner");
  EXPECT_EQ(forced.describe(Coll::Allreduce, f), "TANDEM_COLL_ALLREDUCE=rabenseifner");

  auto call = parse_choice(Coll::Allreduce, "reduce_bcast", nullptr);
  Selection c = forced.select(query(Coll::Allreduce, 4, 8), Fallback::Mpi, &*call);
  EXPECT_EQ(c.reason, Reason::Call);
  EXPECT_STREQ(c.choice.alg->name, "reduce_bcast");

  cfg.coll_forced[static_cast<int>(Coll::Allreduce)] = "mpi";
  Selector to_mpi = Selector::from_config(cfg, &errors);
  EXPECT_EQ(to_mpi.select(query(Coll::Allreduce, 4, 8), Fallback::Mpi).reason, Reason::ForcedMpi);
  // The C++ API cannot run the MPI library's own: the rules decide there.
  EXPECT_EQ(to_mpi.select(query(Coll::Allreduce, 4, 8), Fallback::Builtin).reason, Reason::Rule);
  std::remove(path.c_str());
}

TEST(Selection, ChoicesThatCannotRunAreSkippedAndSaid) {
  std::string path = write_rules("tandem-coll-rules 1\nallreduce * * ring\nallreduce * * reduce_bcast\n");
  Config cfg;
  cfg.coll_rules = path;
  cfg.coll_forced[static_cast<int>(Coll::Allreduce)] = "rabenseifner";
  std::string errors;
  Selector s = Selector::from_config(cfg, &errors);
  ASSERT_EQ(errors, "");
  // A non-commutative operation: the forced rabenseifner and the ring rule cannot keep rank order.
  Selection x = s.select(query(Coll::Allreduce, 4, 8, false), Fallback::Mpi);
  ASSERT_EQ(x.reason, Reason::Rule);
  EXPECT_STREQ(x.choice.alg->name, "reduce_bcast");
  EXPECT_EQ(x.skipped, Reason::Forced);
  EXPECT_NE(x.why_not.find("needs a commutative operation"), std::string::npos) << x.why_not;
  EXPECT_EQ(s.describe_skipped(Coll::Allreduce, x), "TANDEM_COLL_ALLREDUCE=rabenseifner");
  // The call's own choice that cannot run is an error, not skipped.
  auto call = parse_choice(Coll::Allreduce, "ring", nullptr);
  Selection e = s.select(query(Coll::Allreduce, 4, 8, false), Fallback::Builtin, &*call);
  EXPECT_EQ(e.reason, Reason::Invalid);
  // An operation MPI does not define on the datatype goes nowhere tandem's.
  Query q = query(Coll::Allreduce, 4, 8);
  q.dtype = DType::Bool;
  q.op = ROp::Sum;
  Selection inv = s.select(q, Fallback::Mpi);
  EXPECT_EQ(inv.reason, Reason::Invalid);
  EXPECT_TRUE(inv.mpi());
  EXPECT_EQ(inv.why_not, "MPI does not define sum on bool");
  std::remove(path.c_str());
}

TEST(Selection, BadSettingsAreErrorsNamingTheVariable) {
  Config cfg;
  cfg.coll_forced[static_cast<int>(Coll::Allreduce)] = "fastest";
  cfg.coll_forced[static_cast<int>(Coll::Reduce)] = "rabenseifner:64K";
  cfg.coll_rules = "/nonexistent/tandem.rules";
  std::string errors;
  Selector s = Selector::from_config(cfg, &errors);
  EXPECT_NE(errors.find("tandem: invalid TANDEM_COLL_ALLREDUCE='fastest': unknown allreduce algorithm `fastest` "
                        "(known: "),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("TANDEM_COLL_REDUCE='rabenseifner:64K': reduce algorithm rabenseifner takes no segment size"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("TANDEM_COLL_RULES='/nonexistent/tandem.rules': cannot read rules file"), std::string::npos)
      << errors;
  EXPECT_EQ(s.select(query(Coll::Allreduce, 4, 8), Fallback::Mpi).reason, Reason::NoChoice);
}

namespace {
// An estimator that always proposes one choice and counts its calls.
class FixedEstimator final : public Estimator {
 public:
  explicit FixedEstimator(std::optional<Choice> c) : c_(c) {}
  std::optional<Choice> estimate(const Query&) const noexcept override {
    ++calls;
    return c_;
  }
  std::string describe() const override { return "model on test.json"; }
  mutable int calls = 0;

 private:
  std::optional<Choice> c_;
};
}  // namespace

TEST(Selection, TheModelComesAfterRulesAndBeforeTheFallback) {
  Config cfg;
  cfg.coll_rules = write_rules("tandem-coll-rules 1\nallreduce * 0-1K recursive_doubling\nbcast * 0-64 mpi\n");
  std::string errors;
  Selector s = Selector::from_config(cfg, &errors);
  ASSERT_EQ(errors, "");
  auto e = std::make_shared<FixedEstimator>(Choice{find_algorithm(Coll::Allreduce, "ring"), 0, 0});
  s.set_estimator(e);
  Selection a = s.select(query(Coll::Allreduce, 4, 512), Fallback::Mpi);
  EXPECT_EQ(a.reason, Reason::Rule);
  EXPECT_EQ(e->calls, 0);
  Selection b = s.select(query(Coll::Allreduce, 4, 1 << 20), Fallback::Mpi);
  EXPECT_EQ(b.reason, Reason::Model);
  EXPECT_STREQ(b.choice.alg->name, "ring");
  EXPECT_EQ(s.describe(Coll::Allreduce, b), "model on test.json");
  // A model's choice that cannot run the call (ring needs a commutative operation) is
  // passed over for the fallback.
  Selection c = s.select(query(Coll::Allreduce, 4, 1 << 20, false), Fallback::Mpi);
  EXPECT_EQ(c.reason, Reason::NoChoice);
  EXPECT_TRUE(c.mpi());
  // A rule `mpi`: the MPI library's own under tandem run; the C++ API goes on (to the model).
  Selection d = s.select(query(Coll::Bcast, 4, 8), Fallback::Mpi);
  EXPECT_EQ(d.reason, Reason::Rule);
  EXPECT_TRUE(d.mpi());
  auto eb = std::make_shared<FixedEstimator>(Choice{find_algorithm(Coll::Bcast, "binomial"), 0, 0});
  s.set_estimator(eb);
  Selection f = s.select(query(Coll::Bcast, 4, 8), Fallback::Builtin);
  EXPECT_EQ(f.reason, Reason::Model);
  EXPECT_STREQ(f.choice.alg->name, "binomial");
  // No estimate: the fallback.
  s.set_estimator(std::make_shared<FixedEstimator>(std::nullopt));
  EXPECT_EQ(s.select(query(Coll::Gather, 4, 8), Fallback::Builtin).reason, Reason::Default);
}
