// Rules files and algorithm choices: parsing, matching, errors naming file and line.
#include <gtest/gtest.h>

#include "coll/rules.hpp"

using namespace tandem::coll;

TEST(CollRules, ParsesAndMatchesFirstRule) {
  std::string why;
  auto r = parse_rules(
      "# tuned\ntandem-coll-rules 1\n\nallreduce 2-8 0-16K recursive_doubling  # small\n"
      "allreduce * 16K- segmented_ring:64K\nbcast 4- 1M-64M pipeline:64K\nbcast * 7 chain:0:3\nbarrier * * dissemination\n",
      "t.rules", &why);
  ASSERT_TRUE(r) << why;
  ASSERT_EQ(r->rules.size(), 5u);
  const Rule* m = r->match(Coll::Allreduce, 4, 8);
  ASSERT_NE(m, nullptr);
  EXPECT_STREQ(m->choice.alg->name, "recursive_doubling");
  EXPECT_EQ(m->line, 4);
  m = r->match(Coll::Allreduce, 4, 16 * 1024);  // ranges are inclusive: first rule
  EXPECT_STREQ(m->choice.alg->name, "recursive_doubling");
  m = r->match(Coll::Allreduce, 16, 100);  // 16 ranks: only the second rule's ranks match, not its bytes
  EXPECT_EQ(m, nullptr);
  m = r->match(Coll::Allreduce, 16, 1 << 20);
  ASSERT_NE(m, nullptr);
  EXPECT_STREQ(m->choice.alg->name, "segmented_ring");
  EXPECT_EQ(m->choice.segsize, 64u * 1024);
  EXPECT_EQ(r->match(Coll::Bcast, 3, 1 << 20), nullptr);  // ranks 4-
  EXPECT_STREQ(r->match(Coll::Bcast, 4, 1 << 20)->choice.alg->name, "pipeline");
  m = r->match(Coll::Bcast, 2, 7);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->choice.fanout, 3);
  EXPECT_EQ(r->match(Coll::Gather, 4, 8), nullptr);
  // The text form parses back to the same rules.
  auto again = parse_rules(format_rules(*r), "again", &why);
  ASSERT_TRUE(again) << why;
  EXPECT_EQ(format_rules(*again), format_rules(*r));
}

TEST(CollRules, ErrorsNameFileAndLine) {
  auto bad = [](const std::string& text) {
    std::string why;
    auto r = parse_rules(text, "f.rules", &why);
    EXPECT_FALSE(r);
    return why;
  };
  EXPECT_EQ(bad("allreduce * * ring\n"),
            "f.rules:1: the first line must be `tandem-coll-rules 1` (format and version)");
  EXPECT_NE(bad("tandem-coll-rules 2\n").find("f.rules:1: rules format version `2` is not supported"), std::string::npos);
  EXPECT_NE(bad("tandem-coll-rules 1\nallreduce * *\n").find("f.rules:2: expected: collective ranks bytes"),
            std::string::npos);
  EXPECT_NE(bad("tandem-coll-rules 1\nallredcue * * ring\n").find("f.rules:2: unknown collective `allredcue`"),
            std::string::npos);
  EXPECT_NE(bad("tandem-coll-rules 1\n\nallreduce 8-2 * ring\n").find("f.rules:3: rank range `8-2`"), std::string::npos);
  EXPECT_NE(bad("tandem-coll-rules 1\nallreduce * 1X ring\n").find("f.rules:2: size range `1X`"), std::string::npos);
  EXPECT_NE(bad("tandem-coll-rules 1\nallreduce * * fastest\n").find("f.rules:2: unknown allreduce algorithm `fastest`"),
            std::string::npos);
  EXPECT_NE(bad("tandem-coll-rules 1\nallreduce * * ring:64K\n").find("takes no segment size"), std::string::npos);
  EXPECT_NE(bad("tandem-coll-rules 1\nbarrier * * linear:0:4\n").find("has no fan-out"), std::string::npos);
  EXPECT_NE(bad("").find("empty rules file"), std::string::npos);
  std::string why;
  EXPECT_FALSE(load_rules("/nonexistent/x.rules", &why));
  EXPECT_EQ(why, "cannot read rules file /nonexistent/x.rules");
}

TEST(CollChoice, ParsesNameSegmentAndFanout) {
  std::string why;
  auto c = parse_choice(Coll::Bcast, "knomial:8K:3", &why);
  ASSERT_TRUE(c) << why;
  EXPECT_STREQ(c->alg->name, "knomial");
  EXPECT_EQ(c->segsize, 8192u);
  EXPECT_EQ(c->fanout, 3);
  EXPECT_EQ(c->str(), "knomial:8K:3");
  EXPECT_FALSE(parse_choice(Coll::Bcast, "knomial:8K:1", &why));  // radix below 2
  EXPECT_FALSE(parse_choice(Coll::Bcast, "knomial:8K:3:9", &why));
  EXPECT_FALSE(parse_choice(Coll::Bcast, "binomial:-1", &why));
  EXPECT_FALSE(parse_choice(Coll::Allreduce, "binomial", &why));
  EXPECT_NE(why.find("known: reduce_bcast"), std::string::npos);
  // Every algorithm of every collective parses by its own name.
  for (Coll k : all_colls())
    for (const auto& a : algorithms(k)) EXPECT_TRUE(parse_choice(k, a.name, &why)) << coll_name(k) << " " << a.name;
}

TEST(CollRules, MpiIsTheMpiLibrarysOwn) {
  std::string why;
  auto r = parse_rules("tandem-coll-rules 1\nbcast * 0-1K mpi\nbcast * 1K- pipeline:64K\n", "m.rules", &why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->match(Coll::Bcast, 4, 8)->choice.alg, nullptr);
  EXPECT_NE(format_rules(*r).find("bcast * 0-1024 mpi\n"), std::string::npos) << format_rules(*r);
  auto again = parse_rules(format_rules(*r), "again", &why);
  ASSERT_TRUE(again) << why;
  EXPECT_EQ(format_rules(*again), format_rules(*r));
}

TEST(CollRules, MpiAlgorithmNamesOneOfTheMpiLibrarysOwn) {
  std::string why;
  auto r = parse_rules("tandem-coll-rules 1\nbcast 4 0-8K mpi:3:32K\nbcast 4 8K- mpi:6\nbcast * * mpi\n"
                       "allreduce * * mpi:recursive_doubling\n", "m.rules", &why);
  ASSERT_TRUE(r) << why;
  const Rule* a = r->match(Coll::Bcast, 4, 100);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->choice.alg, nullptr);
  EXPECT_EQ(a->mpi_alg, "3");
  EXPECT_EQ(a->mpi_segsize, 32768u);
  EXPECT_EQ(r->match(Coll::Bcast, 4, 1 << 20)->mpi_alg, "6");
  EXPECT_EQ(r->match(Coll::Bcast, 4, 1 << 20)->mpi_segsize, 0u);
  EXPECT_EQ(r->match(Coll::Bcast, 8, 100)->mpi_alg, "");
  EXPECT_TRUE(r->forces_mpi_algorithm());
  EXPECT_NE(format_rules(*r).find("bcast 4 0-8192 mpi:3:32K\n"), std::string::npos) << format_rules(*r);
  auto again = parse_rules(format_rules(*r), "again", &why);
  ASSERT_TRUE(again) << why;
  EXPECT_EQ(format_rules(*again), format_rules(*r));
  EXPECT_FALSE(parse_rules("tandem-coll-rules 1\nbcast * * mpi\n", "m", &why)->forces_mpi_algorithm());
  auto bad = [](const std::string& line) {
    std::string w;
    EXPECT_FALSE(parse_rules("tandem-coll-rules 1\n" + line + "\n", "f.rules", &w)) << line;
    return w;
  };
  EXPECT_NE(bad("bcast * * mpi:").find("f.rules:2: `mpi:`: expected mpi:ALGORITHM[:SEGSIZE[:FANOUT]]"), std::string::npos);
  EXPECT_NE(bad("bcast * * mpi:3:lots").find("segment size `lots` is not a size"), std::string::npos);
  EXPECT_NE(bad("bcast * * mpi:a/b").find("expected mpi:ALGORITHM"), std::string::npos);
}

// Open MPI's chains take a fan-out: mpi:ALG:SEG:FAN, with SEG 0 for an unsegmented chain.
TEST(CollRules, MpiAlgorithmWithFanout) {
  std::string why;
  auto r = parse_rules("tandem-coll-rules 1\nbcast 4 0-8K mpi:2:16K:3\nbcast 4 8K- mpi:2:0:1\nreduce * * mpi:2\n",
                       "f.rules", &why);
  ASSERT_TRUE(r) << why;
  const Rule* a = r->match(Coll::Bcast, 4, 100);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->mpi_alg, "2");
  EXPECT_EQ(a->mpi_segsize, 16384u);
  EXPECT_EQ(a->mpi_fanout, 3);
  EXPECT_EQ(a->choice_text(), "mpi:2:16K:3");
  const Rule* b = r->match(Coll::Bcast, 4, 1 << 20);
  EXPECT_EQ(b->mpi_segsize, 0u);
  EXPECT_EQ(b->mpi_fanout, 1);
  EXPECT_EQ(b->choice_text(), "mpi:2:0:1");
  EXPECT_EQ(r->match(Coll::Reduce, 4, 1)->mpi_fanout, 0);
  EXPECT_EQ(r->match(Coll::Reduce, 4, 1)->choice_text(), "mpi:2");
  auto again = parse_rules(format_rules(*r), "again", &why);
  ASSERT_TRUE(again) << why;
  EXPECT_EQ(format_rules(*again), format_rules(*r));
  auto bad = [](const std::string& line) {
    std::string w;
    EXPECT_FALSE(parse_rules("tandem-coll-rules 1\n" + line + "\n", "f.rules", &w)) << line;
    return w;
  };
  EXPECT_NE(bad("bcast * * mpi:2:16K:0").find("fan-out `0` is not a count from 1 to 1024"), std::string::npos);
  EXPECT_NE(bad("bcast * * mpi:2:16K:2000").find("fan-out `2000`"), std::string::npos);
  EXPECT_NE(bad("bcast * * mpi:2:16K:x").find("fan-out `x`"), std::string::npos);
  EXPECT_NE(bad("bcast * * mpi:2:16K:3:4").find("expected mpi:ALGORITHM[:SEGSIZE[:FANOUT]]"), std::string::npos);
}
