// The process runner (common/process.hpp): exit statuses, captured output, environment,
// timeouts, stalls, process groups and signal handling, with real child processes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/process.hpp"

using namespace tandem;

namespace {

process::Result sh(const std::string& script, process::Options o = {}) {
  return process::run({"sh", "-c", script}, o);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Alive: it exists and is not a zombie.
bool alive(pid_t pid) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(st, s)) return false;
  auto close = s.rfind(')');
  return close != std::string::npos && close + 2 < s.size() && s[close + 2] != 'Z';
}

// Whether `pid` is gone within 3 s: a killed process closes its files (so the run it
// belonged to can end) a moment before it is a zombie.
bool ends(pid_t pid) {
  for (int i = 0; i < 300 && alive(pid); ++i) usleep(10000);
  return !alive(pid);
}

bool is_default(int sig) {
  struct sigaction cur {};
  sigaction(sig, nullptr, &cur);
  return cur.sa_handler == SIG_DFL;
}

}  // namespace

TEST(Process, ExitStatusAndCapturedOutput) {
  process::Options o;
  o.capture_out = o.capture_err = true;
  process::Result r = sh("echo out; echo err >&2; exit 3", o);
  EXPECT_EQ(r.status, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.stalled);
}

TEST(Process, KilledChildIs128PlusSignal) { EXPECT_EQ(sh("kill -KILL $$").status, 128 + SIGKILL); }

TEST(Process, EnvironmentAdditionsKeepTheRest) {
  setenv("TANDEM_PROCESS_TEST_KEPT", "kept", 1);
  setenv("TANDEM_PROCESS_TEST_REPLACED", "old", 1);
  process::Options o;
  o.capture_out = true;
  o.env = {{"TANDEM_PROCESS_TEST_NEW", "a b"}, {"TANDEM_PROCESS_TEST_REPLACED", "new"}};
  process::Result r =
      sh("printf '%s|%s|%s' \"$TANDEM_PROCESS_TEST_KEPT\" \"$TANDEM_PROCESS_TEST_NEW\" \"$TANDEM_PROCESS_TEST_REPLACED\"", o);
  EXPECT_EQ(r.out, "kept|a b|new");
  unsetenv("TANDEM_PROCESS_TEST_KEPT");
  unsetenv("TANDEM_PROCESS_TEST_REPLACED");
}

TEST(Process, StandardInputFromDevNull) {
  process::Options o;
  o.capture_out = o.stdin_null = true;
  process::Result r = sh("readlink /proc/self/fd/0", o);
  EXPECT_EQ(r.out, "/dev/null\n");
}

TEST(Process, ProgramThatCannotRunIsAnError) {
  try {
    process::run({"/nonexistent/tandem-test-program"});
    FAIL() << "no error";
  } catch (const process::Error& e) {
    EXPECT_STREQ(e.what(), "cannot run /nonexistent/tandem-test-program: No such file or directory");
  }
  EXPECT_THROW(process::run({"tandem-no-such-program-in-path"}), process::Error);
  EXPECT_THROW(process::run({}), process::Error);
}

TEST(Process, TimeoutKillsAtOnceAndIs124) {
  process::Options o;
  o.timeout_s = 1;
  o.kill_after_s = 0;
  int said = 0;
  o.on_timeout = [&] { ++said; };
  auto t0 = std::chrono::steady_clock::now();
  process::Result r = sh("trap '' TERM; exec sleep 30", o);
  EXPECT_LT(seconds_since(t0), 5);
  EXPECT_EQ(r.status, 124);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(said, 1);
}

TEST(Process, TimeoutTerminatesThenKills) {
  process::Options o;
  o.timeout_s = 1;
  o.kill_after_s = 1;
  auto t0 = std::chrono::steady_clock::now();
  process::Result r = sh("trap '' TERM; exec sleep 30", o);  // ignores SIGTERM: killed a second later
  double s = seconds_since(t0);
  EXPECT_GE(s, 1.9);
  EXPECT_LT(s, 6);
  EXPECT_EQ(r.status, 124);
}

TEST(Process, SilentChildIsStoppedWithItsGroup) {
  process::Options o;
  o.capture_out = o.capture_err = o.own_group = true;
  o.silence_limit_s = 1;
  o.kill_after_s = 2;
  // The background sleep keeps the output pipes open: only stopping the group ends the run.
  auto t0 = std::chrono::steady_clock::now();
  process::Result r = sh("sleep 30 & echo $! >&2; wait", o);
  EXPECT_LT(seconds_since(t0), 5);
  EXPECT_TRUE(r.stalled);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 128 + SIGTERM);
  pid_t bg = static_cast<pid_t>(std::atol(r.err.c_str()));
  ASSERT_GT(bg, 0) << r.err;
  EXPECT_TRUE(ends(bg));
}

TEST(Process, SilenceLimitCountsOnlyUntilTheFirstOutput) {
  process::Options o;
  o.capture_out = o.own_group = true;
  o.silence_limit_s = 1;
  process::Result r = sh("echo started; sleep 2; echo done", o);
  EXPECT_FALSE(r.stalled);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "started\ndone\n");
}

TEST(Process, ForwardedSignalReachesTheChild) {
  process::Options o;
  o.forward_signals = {SIGUSR1};
  // Without forwarding, SIGUSR1 would end this test program.
  process::Result r = sh("trap 'exit 7' USR1; kill -USR1 $PPID; while :; do sleep 0.05; done", o);
  EXPECT_EQ(r.status, 7);
  EXPECT_TRUE(is_default(SIGUSR1));
}

TEST(Process, IgnoredSignalLeavesThisProcessAlone) {
  process::Options o;
  o.ignore_signals = {SIGUSR2};
  process::Result r = sh("kill -USR2 $PPID; sleep 0.2; exit 4", o);
  EXPECT_EQ(r.status, 4);
  EXPECT_TRUE(is_default(SIGUSR2));
}

// With keep_ignored a forwarded signal this process ignores stays ignored, in the child
// too; without, the child gets it back at its default action.
TEST(Process, KeptIgnoredSignalStaysIgnored) {
  auto child_ignores_usr1 = [](bool keep) {
    process::Options o;
    o.forward_signals = {SIGUSR1};
    o.keep_ignored = keep;
    o.capture_out = true;
    process::Result r = process::run({"grep", "SigIgn", "/proc/self/status"}, o);
    auto mask = std::strtoull(r.out.substr(r.out.find(':') + 1).c_str(), nullptr, 16);
    return (mask & (1ULL << (SIGUSR1 - 1))) != 0;
  };
  signal(SIGUSR1, SIG_IGN);
  EXPECT_TRUE(child_ignores_usr1(true));
  EXPECT_FALSE(child_ignores_usr1(false));
  struct sigaction cur {};
  sigaction(SIGUSR1, nullptr, &cur);
  EXPECT_EQ(cur.sa_handler, SIG_IGN);  // restored after the run
  signal(SIGUSR1, SIG_DFL);
}

// A forwarded signal with stop_on_signal stops the whole group and then ends this process
// by that signal (run in a forked copy of the test).
TEST(Process, StopOnSignalStopsTheGroupThenTakesTheSignal) {
  char path[] = "/tmp/tandem-process-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    process::Options o;
    o.capture_out = o.own_group = o.stdin_null = true;
    o.silence_limit_s = 100;
    o.forward_signals = {SIGTERM};
    o.stop_on_signal = true;
    try {
      process::run({"sh", "-c", std::string("sleep 30 & echo $! > ") + path + "; kill -TERM $PPID; wait"}, o);
    } catch (...) {
      _exit(2);
    }
    _exit(0);  // not reached: the signal is taken once the group is stopped
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << "status " << status;
  std::ifstream in(path);
  pid_t bg = 0;
  in >> bg;
  unlink(path);
  ASSERT_GT(bg, 0);
  EXPECT_TRUE(ends(bg));
}

TEST(Process, ExecutableAndLibraryDirectories) {
  auto bin = process::executable_dir();
  EXPECT_TRUE(std::filesystem::is_directory(bin));
  EXPECT_EQ(process::library_dir(), bin.parent_path() / "lib");
}
