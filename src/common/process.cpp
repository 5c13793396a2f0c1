#include "common/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <thread>

extern char** environ;

namespace tandem::process {
namespace {

using Clock = std::chrono::steady_clock;

// The running child's pid, or minus its process group, while signals are forwarded to it.
volatile sig_atomic_t g_target = 0;
// The last forwarded signal that reached this process during the run.
volatile sig_atomic_t g_caught = 0;

extern "C" void forward_signal(int sig) {
  g_caught = sig;
  if (g_target != 0) ::kill(static_cast<pid_t>(g_target), sig);
}

std::string why(const char* call) { return std::string(call) + ": " + std::strerror(errno); }

// The signal dispositions a run changes, restored when it ends (or throws).
class Signals {
 public:
  explicit Signals(const Options& o) {
    g_caught = 0;
    struct sigaction ign {}, fwd{};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    fwd.sa_handler = forward_signal;  // no SA_RESTART: waiting calls return EINTR
    sigemptyset(&fwd.sa_mask);
    for (int sig : o.ignore_signals) change(sig, ign);
    for (int sig : o.forward_signals) {
      struct sigaction cur {};
      sigaction(sig, nullptr, &cur);
      if (o.keep_ignored && cur.sa_handler == SIG_IGN) continue;
      change(sig, fwd);
    }
  }
  ~Signals() { restore(); }
  Signals(const Signals&) = delete;
  Signals& operator=(const Signals&) = delete;

  void restore() {
    g_target = 0;
    for (auto it = changed_.rbegin(); it != changed_.rend(); ++it) sigaction(it->first, &it->second, nullptr);
    changed_.clear();
  }
  // The signals the child must get back at their default action.
  std::vector<int> changed() const {
    std::vector<int> s;
    for (const auto& c : changed_) s.push_back(c.first);
    return s;
  }

 private:
  void change(int sig, const struct sigaction& to) {
    struct sigaction old {};
    if (sigaction(sig, &to, &old) == 0) changed_.emplace_back(sig, old);
  }
  std::vector<std::pair<int, struct sigaction>> changed_;
};

class Fd {
 public:
  Fd() = default;
  ~Fd() { close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int* set() { return &fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

void open_pipe(Fd& read_end, Fd& write_end) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw Error(why("pipe"));
  *read_end.set() = p[0];
  *write_end.set() = p[1];
}

// "NAME=value" for this process's environment with `extra` added, by name.
std::vector<std::string> merged_environment(const Env& extra) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e; ++e) {
    std::string s(*e);
    auto eq = s.find('=');
    if (eq != std::string::npos) vars[s.substr(0, eq)] = s.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) vars[k] = v;
  std::vector<std::string> envs;
  for (const auto& [k, v] : vars) envs.push_back(k + "=" + v);
  return envs;
}

// Reads what is there on `fd` into `into`; false once it is closed (end of file or error).
bool read_some(int fd, std::string& into, bool* got) {
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<std::size_t>(n));
      *got = true;
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && errno == EAGAIN;
  }
}

}  // namespace

Result run(const std::vector<std::string>& argv, const Options& o) {
  if (argv.empty()) throw Error("no command to run");
  Result r;
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& s : args) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  std::vector<std::string> envs;
  std::vector<char*> cenv;
  if (!o.env.empty()) {
    envs = merged_environment(o.env);
    for (auto& s : envs) cenv.push_back(s.data());
    cenv.push_back(nullptr);
  }

  Fd out_r, out_w, err_r, err_w, exec_r, exec_w;
  if (o.capture_out) open_pipe(out_r, out_w);
  if (o.capture_err) open_pipe(err_r, err_w);
  open_pipe(exec_r, exec_w);  // the child reports a failed exec here

  Signals signals(o);
  const std::vector<int> reset = signals.changed();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw Error(why("fork"));
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    if (o.own_group) setpgid(0, 0);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig : reset) sigaction(sig, &dfl, nullptr);
    if (o.parent_death_signal) {
      prctl(PR_SET_PDEATHSIG, o.parent_death_signal);
      if (getppid() != parent) _exit(127);  // the parent is already gone
    }
    int err = 0;
    if (o.stdin_null) {
      int fd = ::open("/dev/null", O_RDONLY);
      if (fd < 0 || dup2(fd, 0) < 0) err = errno;
      if (fd > 0) ::close(fd);
    }
    if (!err && o.capture_out && dup2(out_w.get(), 1) < 0) err = errno;
    if (!err && o.capture_err && dup2(err_w.get(), 2) < 0) err = errno;
    if (!err) {
      if (cenv.empty())
        execvp(cargv[0], cargv.data());
      else
        execvpe(cargv[0], cargv.data(), cenv.data());
      err = errno;
    }
    ssize_t w = ::write(exec_w.get(), &err, sizeof err);
    (void)w;
    _exit(127);
  }
  out_w.close();
  err_w.close();
  exec_w.close();
  int exec_err = 0;
  ssize_t got;
  while ((got = ::read(exec_r.get(), &exec_err, sizeof exec_err)) < 0 && errno == EINTR) {
  }
  int status = 0;
  if (got == static_cast<ssize_t>(sizeof exec_err)) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw Error("cannot run " + argv[0] + ": " + std::strerror(exec_err));
  }
  // Exec succeeded: the child is in its own group by now.
  const pid_t target = o.own_group ? -pid : pid;
  g_target = target;
  if (g_caught) ::kill(target, g_caught);  // one that came during the start

  const auto start = Clock::now();
  const auto timeout_at = start + std::chrono::seconds(o.timeout_s);
  const auto silence_at = start + std::chrono::seconds(o.silence_limit_s);
  const bool watch_silence = o.capture_out && o.silence_limit_s > 0;
  bool heard = false, stopping = false, killed = false;
  Clock::time_point kill_at{};
  // Stops the child for the first reason that holds; then SIGKILL when its grace is over.
  // The child is not reaped before it ends, so its pid and group stay ours to signal.
  auto check = [&] {
    auto now = Clock::now();
    if (!stopping) {
      bool why_stop = false;
      if (o.timeout_s && now >= timeout_at) {
        r.timed_out = why_stop = true;
        if (o.on_timeout) o.on_timeout();
      } else if (watch_silence && !heard && now >= silence_at) {
        r.stalled = why_stop = true;
      } else if (o.stop_on_signal && g_caught) {
        // The signal went to the child already; what ignores it (e.g. a shell's
        // background job) gets stopped too.
        why_stop = true;
      }
      if (why_stop) {
        stopping = true;
        if (o.kill_after_s == 0) {
          ::kill(target, SIGKILL);
          killed = true;
        } else {
          ::kill(target, SIGTERM);
          kill_at = now + std::chrono::seconds(o.kill_after_s);
        }
      }
    } else if (!killed && now >= kill_at) {
      ::kill(target, SIGKILL);
      killed = true;
    }
  };
  // The next moment check() has something to do, if any.
  auto next_event = [&]() -> std::optional<Clock::time_point> {
    if (killed) return std::nullopt;
    if (stopping) return kill_at;
    std::optional<Clock::time_point> t;
    if (o.timeout_s) t = timeout_at;
    if (watch_silence && !heard) t = t ? std::min(*t, silence_at) : silence_at;
    return t;
  };

  // Read the captured output until both pipes close; after SIGKILL, what is left in them.
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  std::string* into[2] = {&r.out, &r.err};
  auto open_fds = [&] { return (fds[0].fd >= 0) + (fds[1].fd >= 0); };
  while (open_fds() > 0) {
    check();
    if (killed) {
      for (int k = 0; k < 2; ++k) {
        if (fds[k].fd < 0) continue;
        fcntl(fds[k].fd, F_SETFL, fcntl(fds[k].fd, F_GETFL) | O_NONBLOCK);
        bool any = false;
        while (read_some(fds[k].fd, *into[k], &any) && any) any = false;
      }
      break;
    }
    int wait_ms = 1000;
    if (auto t = next_event()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*t - Clock::now()).count();
      wait_ms = static_cast<int>(std::clamp<long long>(left, 1, 1000));
    }
    int n = ::poll(fds, 2, wait_ms);
    if (n <= 0) continue;  // time to check, or a signal
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      bool any = false;
      if (!read_some(fds[k].fd, *into[k], &any)) fds[k].fd = -1;
      if (any && k == 0) heard = true;
    }
  }
  out_r.close();
  err_r.close();

  // Wait for the child; poll while a deadline is pending, else block (a forwarded signal
  // interrupts the wait, so stop_on_signal is seen at once).
  auto nap = std::chrono::milliseconds(1);
  while (true) {
    check();
    if (next_event()) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR)) break;
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::milliseconds(20));
    } else {
      pid_t w = waitpid(pid, &status, 0);
      if (w == pid || (w < 0 && errno != EINTR)) break;
    }
  }
  const int caught = g_caught;
  signals.restore();
  if (o.stop_on_signal && caught) ::raise(caught);  // stopped by the user: stop as before

  if (r.timed_out)
    r.status = 124;
  else if (WIFEXITED(status))
    r.status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.status = 128 + WTERMSIG(status);
  else
    r.status = 1;
  return r;
}

std::filesystem::path executable_dir() { return std::filesystem::read_symlink("/proc/self/exe").parent_path(); }
std::filesystem::path library_dir() { return executable_dir().parent_path() / "lib"; }

}  // namespace tandem::process
