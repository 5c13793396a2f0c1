// The virtual-cluster library without privileges: rates and bursts, the default burst,
// the errors when no vcluster is up, and vcluster_run. Nothing here creates or removes
// namespaces; what a vcluster that happens to be up changes is checked as such.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "vcluster/vcluster.hpp"

using namespace tandem::vcluster;

namespace {

// The message of the VclusterError `f` throws ("" when it throws none).
template <class F>
std::string error_of(F&& f, int* exit_code = nullptr) {
  try {
    f();
  } catch (const VclusterError& e) {
    if (exit_code) *exit_code = e.exit_code();
    return e.what();
  }
  return "";
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Whether anything of a vcluster exists on this machine (state directory, namespaces,
// bridge), found as the library finds it.
bool anything_exists() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(kVclusterDir, ec) || fs::exists(std::string("/sys/class/net/") + kVclusterBridge, ec)) return true;
  for (const auto& d : fs::directory_iterator("/run/netns", ec))
    if (d.path().filename().string().rfind("tandem-h", 0) == 0) return true;
  for (const auto& d : fs::directory_iterator("/sys/class/net", ec))
    if (d.path().filename().string().rfind("tandem-h", 0) == 0) return true;
  return false;
}

const char* const kNoVcluster = "vcluster: no vcluster is up; create one with `tandem vcluster up --hosts N --rate RATE`";

}  // namespace

TEST(VclusterRate, ParsesRatesWithUnits) {
  EXPECT_EQ(vcluster_parse_rate("1gbit"), 1000000000u);
  EXPECT_EQ(vcluster_parse_rate("100mbit"), 100000000u);
  EXPECT_EQ(vcluster_parse_rate("2.5gbit"), 2500000000u);
  EXPECT_EQ(vcluster_parse_rate("10gbit"), 10000000000u);
  EXPECT_EQ(vcluster_parse_rate("1000000bit"), 1000000u);
  EXPECT_EQ(vcluster_parse_rate("1500kbit"), 1500000u);
  EXPECT_EQ(vcluster_parse_rate(" 1GBit "), 1000000000u);  // case and blanks as units::parse_rate
  EXPECT_EQ(vcluster_parse_rate("1gbps"), 1000000000u);    // `bps` is bits per second too
}

TEST(VclusterRate, RangeIs1mbitTo400gbit) {
  EXPECT_EQ(vcluster_parse_rate("1mbit"), 1000000u);
  EXPECT_EQ(vcluster_parse_rate("400gbit"), 400000000000u);
  EXPECT_EQ(error_of([] { vcluster_parse_rate("999999bit"); }), "vcluster: rate `999999bit` is out of range (1mbit .. 400gbit)");
  EXPECT_EQ(error_of([] { vcluster_parse_rate("0.5mbit"); }), "vcluster: rate `0.5mbit` is out of range (1mbit .. 400gbit)");
  EXPECT_EQ(error_of([] { vcluster_parse_rate("401gbit"); }), "vcluster: rate `401gbit` is out of range (1mbit .. 400gbit)");
}

TEST(VclusterRate, RefusesWhatIsNoRate) {
  int code = 0;
  EXPECT_EQ(error_of([] { vcluster_parse_rate("fast"); }, &code),
            "vcluster: bad rate `fast`: give bits per second with a unit, e.g. 100mbit, 1gbit, 2.5gbit, 10gbit");
  EXPECT_EQ(code, 1);
  for (const char* bad : {"", "1", "1000000", "1g", "1gb", "gbit", "-1gbit", "1.0000000001gbit"})
    EXPECT_TRUE(starts_with(error_of([&] { vcluster_parse_rate(bad); }), std::string("vcluster: bad rate `") + bad + "`"))
        << bad;
}

TEST(VclusterRate, FormatsCanonically) {
  EXPECT_EQ(vcluster_format_rate(1000000000), "1gbit");
  EXPECT_EQ(vcluster_format_rate(2500000000), "2.5gbit");
  EXPECT_EQ(vcluster_format_rate(100000000), "100mbit");
  EXPECT_EQ(vcluster_format_rate(1500000), "1.5mbit");
  EXPECT_EQ(vcluster_format_rate(1234567), "1234567bit");
  EXPECT_EQ(vcluster_format_rate(2000000000000), "2tbit");
  for (std::uint64_t bps : {1000000ULL, 2500000000ULL, 123456789ULL, 400000000000ULL})
    EXPECT_EQ(vcluster_parse_rate(vcluster_format_rate(bps)), bps) << bps;
}

TEST(VclusterBurst, ParsesBytes) {
  EXPECT_EQ(vcluster_parse_burst("131072"), 131072u);
  EXPECT_EQ(vcluster_parse_burst("128k"), 131072u);
  EXPECT_EQ(vcluster_parse_burst("128kb"), 131072u);
  EXPECT_EQ(vcluster_parse_burst("128KiB"), 131072u);
  EXPECT_EQ(vcluster_parse_burst("1m"), 1048576u);
  EXPECT_EQ(vcluster_parse_burst("2.5k"), 2560u);
  EXPECT_EQ(vcluster_parse_burst("2000"), 2000u);
  EXPECT_EQ(vcluster_parse_burst("64m"), 64u << 20);
}

TEST(VclusterBurst, RangeIs2000BytesTo64MiB) {
  EXPECT_EQ(error_of([] { vcluster_parse_burst("1999"); }), "vcluster: burst `1999` is out of range (2000 bytes .. 64m)");
  EXPECT_EQ(error_of([] { vcluster_parse_burst("65m"); }), "vcluster: burst `65m` is out of range (2000 bytes .. 64m)");
  EXPECT_EQ(error_of([] { vcluster_parse_burst("1g"); }), "vcluster: burst `1g` is out of range (2000 bytes .. 64m)");
  EXPECT_EQ(error_of([] { vcluster_parse_burst("lots"); }), "vcluster: bad burst `lots`: give bytes, e.g. 131072, 128k, 1m");
  EXPECT_TRUE(starts_with(error_of([] { vcluster_parse_burst("2000.5"); }), "vcluster: bad burst `2000.5`"));
}

TEST(VclusterBurst, DefaultIsAMillisecondOfTrafficWithFloors) {
  EXPECT_EQ(vcluster_default_burst(1000000000), 131072u);    // 1 ms = 125000 B, raised to 128 KiB
  EXPECT_EQ(vcluster_default_burst(100000000), 125000u);     // 10 ms of traffic is below 128 KiB
  EXPECT_EQ(vcluster_default_burst(10000000000), 1250000u);  // 1 ms
  EXPECT_EQ(vcluster_default_burst(1000000), 3000u);         // at least 3000 B
}

TEST(VclusterError, MessageAndExitCode) {
  VclusterError e("boom");
  EXPECT_STREQ(e.what(), "vcluster: boom");
  EXPECT_EQ(e.exit_code(), 1);
  EXPECT_EQ(VclusterError("x", kVclusterUnsupported).exit_code(), 77);
}

// With nothing of a vcluster on this machine (the usual case) the state and the launcher
// command say so; with one up they describe it; a partial one is named as such.
TEST(VclusterState, ErrorsWhenNoneIsUp) {
  if (!anything_exists()) {
    EXPECT_FALSE(vcluster_exists());
    EXPECT_TRUE(vcluster_problems().empty());
    int code = 0;
    EXPECT_EQ(error_of([] { vcluster_state(); }, &code), kNoVcluster);
    EXPECT_EQ(code, 1);
    EXPECT_EQ(error_of([] { vcluster_mpirun_argv("openmpi", {"-np", "2", "./app"}); }), kNoVcluster);
    EXPECT_EQ(error_of([] { vcluster_mpirun_argv("mpich", {"-np", "2", "./app"}, false); }), kNoVcluster);
    EXPECT_EQ(error_of([] { vcluster_mpirun_argv("lam", {"./app"}, false); }), kNoVcluster);
    EXPECT_TRUE(vcluster_down().empty());  // nothing to remove, no privileges needed
  } else if (vcluster_exists()) {
    VclusterInfo info = vcluster_state();
    EXPECT_FALSE(info.hosts.empty());
    EXPECT_EQ(info.hosts[0].ns, "tandem-h0");
    auto argv = vcluster_mpirun_argv("openmpi", {"-np", "2", "./app"}, false);
    EXPECT_EQ(argv.back(), "./app");
    EXPECT_TRUE(starts_with(error_of([] { vcluster_mpirun_argv("lam", {"./app"}, false); }), "vcluster: unknown MPI `lam`"));
  } else {
    std::string e = error_of([] { vcluster_state(); });
    EXPECT_TRUE(starts_with(e, "vcluster: a partial vcluster is left over") || starts_with(e, "vcluster: the vcluster in"))
        << e;
  }
}

TEST(VclusterRun, ExitStatusTimeoutAndErrors) {
  EXPECT_EQ(vcluster_run({"sh", "-c", "exit 3"}), 3);
  auto t0 = std::chrono::steady_clock::now();
  testing::internal::CaptureStderr();
  EXPECT_EQ(vcluster_run({"sleep", "30"}, 1), 124);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5);
  EXPECT_EQ(err, "tandem: vcluster: sleep did not finish within 1 s; stopping it\n");
  EXPECT_EQ(error_of([] { vcluster_run({"/nonexistent/launcher"}); }),
            "vcluster: cannot run /nonexistent/launcher: No such file or directory");
  EXPECT_EQ(error_of([] { vcluster_run({}); }), "vcluster: no command to run");
}

// SIGINT and SIGQUIT are left to the launcher (this process ignores them while it runs);
// SIGTERM is passed on to it.
TEST(VclusterRun, SignalsWhileTheLauncherRuns) {
  EXPECT_EQ(vcluster_run({"sh", "-c", "kill -INT $PPID; kill -QUIT $PPID; sleep 0.2; exit 5"}), 5);
  EXPECT_EQ(vcluster_run({"sh", "-c", "kill -TERM $PPID; exec sleep 5"}), 128 + SIGTERM);
  struct sigaction cur {};
  sigaction(SIGTERM, nullptr, &cur);
  EXPECT_EQ(cur.sa_handler, SIG_DFL);
}
