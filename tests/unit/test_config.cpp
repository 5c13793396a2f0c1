#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/config.hpp"

using namespace tandem;

namespace {
std::string load(std::vector<std::string> vars, Config& cfg) {
  std::vector<char*> env;
  for (auto& v : vars) env.push_back(v.data());
  env.push_back(nullptr);
  return load_config(cfg, env.data());
}
}  // namespace

TEST(Config, ParsesSizes) {
  std::size_t v = 0;
  EXPECT_TRUE(parse_size("4096", v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(parse_size("64K", v));
  EXPECT_EQ(v, 65536u);
  EXPECT_TRUE(parse_size("1MiB", v));
  EXPECT_EQ(v, 1u << 20);
  EXPECT_TRUE(parse_size(" 2 g ", v));
  EXPECT_EQ(v, std::size_t(2) << 30);
  EXPECT_FALSE(parse_size("", v));
  EXPECT_FALSE(parse_size("K", v));
  EXPECT_FALSE(parse_size("12Q", v));
  EXPECT_FALSE(parse_size("-1", v));
  EXPECT_FALSE(parse_size("99999999999999999999999", v));
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
  }
}
