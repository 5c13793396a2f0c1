// Running a program as a child process: the one runner behind `tandem run`, the benchmark
// harness's watched runs, the virtual cluster's `ip`/`tc` calls and `vcluster mpirun`.
#pragma once
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tandem::process {

using Env = std::vector<std::pair<std::string, std::string>>;

// A child that could not be started (no pipe, no fork, exec failed): what() says
// "cannot run <program>: <reason>" (or names the system call).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  // Added to this process's environment (replacing variables of the same name).
  Env env;
  // Standard output / error into Result::out / Result::err instead of passed through.
  bool capture_out = false;
  bool capture_err = false;
  // Standard input from /dev/null instead of this process's.
  bool stdin_null = false;
  // The child in a process group of its own; stops, timeouts and forwarded signals then
  // go to the whole group (everything it started), else to the child alone.
  bool own_group = false;
  // The signal the child gets when this process dies (PR_SET_PDEATHSIG); 0: none.
  int parent_death_signal = 0;

  // After this many seconds (0: never) the child is stopped and the result is status 124,
  // timed_out. `on_timeout` (when set) runs first, e.g. to say so.
  unsigned timeout_s = 0;
  std::function<void()> on_timeout;
  // With capture_out: a child that writes nothing to its standard output for this many
  // seconds from its start (0: no limit) is stopped and the result is `stalled`.
  unsigned silence_limit_s = 0;
  // How a child is stopped: SIGTERM, then SIGKILL this many seconds later; 0: SIGKILL at once.
  unsigned kill_after_s = 10;

  // Ignored by this process while the child runs (the child keeps the default action: a
  // terminal's Ctrl-C reaches it directly).
  std::vector<int> ignore_signals;
  // Passed on to the child while it runs; with keep_ignored, one this process ignores
  // stays ignored (and is not passed on).
  std::vector<int> forward_signals;
  bool keep_ignored = false;
  // A forwarded signal also stops the child (as a stall does), and once the child has
  // ended this process takes the signal itself, with its former disposition.
  bool stop_on_signal = false;
};

struct Result {
  int status = 0;          // exit status; 128+signal when killed; 124 when timed out
  std::string out, err;    // what the child wrote, with capture_out / capture_err
  bool timed_out = false;  // stopped after timeout_s
  bool stalled = false;    // stopped after silence_limit_s without output
};

// Runs argv[0] (looked up in PATH when it has no '/') with the arguments argv; throws
// Error when it cannot be started. One run at a time may forward signals.
Result run(const std::vector<std::string>& argv, const Options& options = {});

// The directory of this process's executable (build/bin for build/bin/tandem) and the
// library directory beside it (build/lib), where tandem's libraries are.
std::filesystem::path executable_dir();
std::filesystem::path library_dir();

}  // namespace tandem::process
