#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/units.hpp"

using namespace tandem;

namespace {
std::string load(std::vector<std::string> vars, Config& cfg) {
  std::vector<char*> env;
  for (auto& v : vars) env.push_back(v.data());
  env.push_back(nullptr);
  return load_config(cfg, env.data());
}
}  // namespace

TEST(Units, ParsesSizes) {
  std::uint64_t v = 0;
  EXPECT_TRUE(units::parse_bytes("4096", v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(units::parse_bytes("64K", v));
  EXPECT_EQ(v, 65536u);
  EXPECT_TRUE(units::parse_bytes("64kb", v));
  EXPECT_EQ(v, 65536u);
  EXPECT_TRUE(units::parse_bytes("1MiB", v));
  EXPECT_EQ(v, 1u << 20);
  EXPECT_TRUE(units::parse_bytes(" 2 g ", v));
  EXPECT_EQ(v, std::uint64_t(2) << 30);
  EXPECT_TRUE(units::parse_bytes("1.5K", v));
  EXPECT_EQ(v, 1536u);
  EXPECT_TRUE(units::parse_bytes("8B", v));
  EXPECT_EQ(v, 8u);
  std::string why;
  EXPECT_FALSE(units::parse_bytes("1.3", v, UINT64_MAX, &why));
  EXPECT_NE(why.find("whole number of bytes"), std::string::npos) << why;
  EXPECT_FALSE(units::parse_bytes("", v));
  EXPECT_FALSE(units::parse_bytes("K", v));
  EXPECT_FALSE(units::parse_bytes("12Q", v, UINT64_MAX, &why));
  EXPECT_EQ(why, "`12Q` is not a size (like 4096, 64K, 1M)");
  EXPECT_FALSE(units::parse_bytes("-1", v));
  EXPECT_FALSE(units::parse_bytes("99999999999999999999999", v));
  EXPECT_FALSE(units::parse_bytes("2G", v, 1u << 30, &why));
  EXPECT_NE(why.find("more than 1G"), std::string::npos) << why;
}

TEST(Units, ParsesRatesDurationsAndCounts) {
  std::uint64_t v = 0;
  EXPECT_TRUE(units::parse_rate("1gbit", v));
  EXPECT_EQ(v, 1000000000u);
  EXPECT_TRUE(units::parse_rate("2.5Gbit", v));
  EXPECT_EQ(v, 2500000000u);
  EXPECT_TRUE(units::parse_rate("100mbps", v));
  EXPECT_EQ(v, 100000000u);
  EXPECT_TRUE(units::parse_rate("1000000bit", v));
  EXPECT_EQ(v, 1000000u);
  EXPECT_FALSE(units::parse_rate("1g", v));
  EXPECT_FALSE(units::parse_rate("fast", v));
  EXPECT_TRUE(units::parse_duration("20us", units::TimeUnit::Seconds, v));
  EXPECT_EQ(v, 20000u);
  EXPECT_TRUE(units::parse_duration("1.5ms", units::TimeUnit::Seconds, v));
  EXPECT_EQ(v, 1500000u);
  EXPECT_TRUE(units::parse_duration("3", units::TimeUnit::Microseconds, v));
  EXPECT_EQ(v, 3000u);
  EXPECT_TRUE(units::parse_duration("2min", units::TimeUnit::Microseconds, v));
  EXPECT_EQ(v, 120000000000u);
  EXPECT_FALSE(units::parse_duration("3h", units::TimeUnit::Seconds, v));
  EXPECT_TRUE(units::parse_count("17", v, 20));
  EXPECT_FALSE(units::parse_count("21", v, 20));
  EXPECT_FALSE(units::parse_count("1.0", v));
  EXPECT_EQ(units::format_bytes(65536), "64K");
  EXPECT_EQ(units::format_bytes(1536), "1536");
  EXPECT_EQ(units::format_rate(2500000000u), "2500mbit");
}

TEST(Config, ParsesBools) {
  bool b = false;
  EXPECT_TRUE(parse_bool("yes", b));
  EXPECT_TRUE(b);
  EXPECT_TRUE(parse_bool("OFF", b));
  EXPECT_FALSE(b);
  EXPECT_FALSE(parse_bool("2", b));
  EXPECT_FALSE(parse_bool("", b));
}

TEST(Config, DefaultsWithoutVariables) {
  Config cfg;
  EXPECT_EQ(load({"PATH=/usr/bin"}, cfg), "");
  EXPECT_TRUE(cfg.enable);
  EXPECT_FALSE(cfg.stats);
  EXPECT_EQ(cfg.threshold, Config{}.threshold);
}

TEST(Config, ReadsEveryVariable) {
  Config cfg;
  EXPECT_EQ(load({"TANDEM_ENABLE=0", "TANDEM_THRESHOLD=128K", "TANDEM_STATS=1", "TANDEM_MAX_OPS=64",
                  "TANDEM_PROGRESS_SLEEP_US=50", "TANDEM_MPI=mpich"},
                 cfg),
            "");
  EXPECT_FALSE(cfg.enable);
  EXPECT_EQ(cfg.threshold, 131072u);
  EXPECT_TRUE(cfg.stats);
  EXPECT_EQ(cfg.max_ops, 64u);
  EXPECT_EQ(cfg.sleep_max_us, 50u);
  EXPECT_EQ(cfg.mpi, "mpich");
  EXPECT_EQ(config_value(cfg, "TANDEM_THRESHOLD"), "131072");
}

TEST(Config, BadValueNamesTheVariable) {
  Config cfg;
  std::string err = load({"TANDEM_THRESHOLD=lots", "TANDEM_MAX_OPS=3"}, cfg);
  EXPECT_NE(err.find("TANDEM_THRESHOLD='lots'"), std::string::npos) << err;
  EXPECT_NE(err.find("TANDEM_MAX_OPS='3'"), std::string::npos) << err;
  EXPECT_EQ(cfg.threshold, Config{}.threshold);
}

TEST(Config, UnknownVariableIsAnError) {
  Config cfg;
  std::string err = load({"TANDEM_THRESHOLDS=4096"}, cfg);
  EXPECT_NE(err.find("unknown setting TANDEM_THRESHOLDS"), std::string::npos) << err;
}

TEST(Config, EverySettingIsListedAndShown) {
  Config cfg;
  for (const auto& s : settings()) {
    EXPECT_EQ(s.name.substr(0, 7), "TANDEM_");
    EXPECT_FALSE(s.help.empty());
    EXPECT_EQ(config_value(cfg, s.name), s.default_value) << s.name;
    // Every default is a value its own parser accepts.
    Config c2;
    std::string detail;
    EXPECT_TRUE(s.apply(s.default_value, c2, &detail)) << s.name << ": " << detail;
  }
}

TEST(Config, DefaultsComeFromTheRegistry) {
  Config cfg;
  EXPECT_EQ(cfg.threshold, 4096u);
  EXPECT_EQ(cfg.copy_below, 65536u);
  EXPECT_EQ(cfg.progress, "auto");
  EXPECT_EQ(cfg.coll_small, 16384u);
  EXPECT_EQ(cfg.local, "auto");
}

TEST(Config, ListsOfSizesAndCounts) {
  Config cfg;
  EXPECT_EQ(load({"TANDEM_COLL_MODEL_SEGSIZES=0, 8K,1M", "TANDEM_COLL_MODEL_FANOUTS=2,16"}, cfg), "");
  EXPECT_EQ(cfg.model_segsizes, (std::vector<std::uint64_t>{0, 8192, 1 << 20}));
  EXPECT_EQ(cfg.model_fanouts, (std::vector<unsigned>{2, 16}));
  EXPECT_EQ(config_value(cfg, "TANDEM_COLL_MODEL_SEGSIZES"), "0,8K,1M");
  Config bad;
  std::string err = load({"TANDEM_COLL_MODEL_SEGSIZES=8K,lots", "TANDEM_COLL_MODEL_FANOUTS=1", "TANDEM_COLL_MODEL_FANOUTS="}, bad);
  EXPECT_NE(err.find("TANDEM_COLL_MODEL_SEGSIZES='8K,lots'"), std::string::npos) << err;
  EXPECT_NE(err.find("TANDEM_COLL_MODEL_FANOUTS='1'"), std::string::npos) << err;
  EXPECT_EQ(bad.model_segsizes, Config{}.model_segsizes);
}
