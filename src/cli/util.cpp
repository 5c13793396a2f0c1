#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "cli/cli.hpp"
#include "coll/select.hpp"
#include "common/config.hpp"
#include "common/units.hpp"

extern char** environ;

namespace tandem::cli {
namespace fs = std::filesystem;

fs::path bin_dir() { return fs::read_symlink("/proc/self/exe").parent_path(); }
fs::path lib_dir() { return bin_dir().parent_path() / "lib"; }

fs::path preload_library(const std::string& mpi) {
  auto p = lib_dir() / ("libtandem_preload_" + mpi + ".so");
  if (!fs::exists(p)) throw std::runtime_error("preload library " + p.string() + " is missing; build tandem first");
  return p;
}

namespace {

// The DT_NEEDED entries of an ELF file, or nothing when it is not a 64-bit ELF.
std::optional<std::vector<std::string>> elf_needed(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    ::close(fd);
    return std::nullopt;
  }
  auto size = static_cast<std::size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return std::nullopt;
  const auto* base = static_cast<const unsigned char*>(map);
  std::optional<std::vector<std::string>> result;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  auto in = [&](std::uint64_t off, std::uint64_t len) { return off <= size && len <= size - off; };
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
      in(eh->e_phoff, std::uint64_t(eh->e_phnum) * sizeof(Elf64_Phdr))) {
    result.emplace();
    const auto* ph = reinterpret_cast<const Elf64_Phdr*>(base + eh->e_phoff);
    const Elf64_Phdr* dyn = nullptr;
    for (int i = 0; i < eh->e_phnum; ++i)
      if (ph[i].p_type == PT_DYNAMIC) dyn = &ph[i];
    // Map a virtual address to a file offset through the PT_LOAD segments.
    auto v2o = [&](std::uint64_t va) -> std::optional<std::uint64_t> {
      for (int i = 0; i < eh->e_phnum; ++i)
        if (ph[i].p_type == PT_LOAD && va >= ph[i].p_vaddr && va < ph[i].p_vaddr + ph[i].p_filesz)
          return va - ph[i].p_vaddr + ph[i].p_offset;
      return std::nullopt;
    };
    if (dyn && in(dyn->p_offset, dyn->p_filesz)) {
      const auto* d = reinterpret_cast<const Elf64_Dyn*>(base + dyn->p_offset);
      std::size_t n = dyn->p_filesz / sizeof(Elf64_Dyn);
      std::optional<std::uint64_t> strtab;
      for (std::size_t i = 0; i < n && d[i].d_tag != DT_NULL; ++i)
        if (d[i].d_tag == DT_STRTAB) strtab = v2o(d[i].d_un.d_ptr);
      if (strtab) {
        for (std::size_t i = 0; i < n && d[i].d_tag != DT_NULL; ++i)
          if (d[i].d_tag == DT_NEEDED && *strtab + d[i].d_un.d_val < size) {
            const char* s = reinterpret_cast<const char*>(base + *strtab + d[i].d_un.d_val);
            result->emplace_back(s, strnlen(s, size - (*strtab + d[i].d_un.d_val)));
          }
      }
    }
  }
  munmap(map, size);
  return result;
}

std::optional<fs::path> which(const std::string& name) {
  if (name.find('/') != std::string::npos) return fs::exists(name) ? std::optional<fs::path>(name) : std::nullopt;
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

std::optional<std::string> mpi_of_needed(const std::vector<std::string>& needed) {
  for (const auto& n : needed) {
    if (n.rfind("libmpi.so.40", 0) == 0 || n.rfind("libopen-rte.so", 0) == 0) return "openmpi";
    if (n.rfind("libmpich.so", 0) == 0 || n.rfind("libmpi.so.12", 0) == 0) return "mpich";
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> detect_mpi(const std::vector<std::string>& argv) {
  // Programs named in the command (the application is usually the first ELF file that links an MPI).
  std::optional<std::string> launcher_guess;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    auto p = i == 0 ? which(argv[i]) : (fs::exists(argv[i]) ? std::optional<fs::path>(argv[i]) : which(argv[i]));
    if (!p || fs::is_directory(*p)) continue;
    std::error_code ec;
    fs::path real = fs::canonical(*p, ec);
    if (ec) continue;
    std::string base = real.filename().string();
    if (base.find("orterun") != std::string::npos || base.find(".openmpi") != std::string::npos)
      launcher_guess = launcher_guess.value_or("openmpi");
    if (base.find("hydra") != std::string::npos || base.find(".mpich") != std::string::npos)
      launcher_guess = launcher_guess.value_or("mpich");
    auto needed = elf_needed(real);
    if (!needed) continue;
    if (auto m = mpi_of_needed(*needed); m && base.find("orterun") == std::string::npos &&
                                         base.find("orted") == std::string::npos)
      return m;
  }
  return launcher_guess;
}

Env preload_env(const std::string& mpi, const Env& extra) {
  std::string lib = preload_library(mpi).string();
  const char* old = std::getenv("LD_PRELOAD");
  Env env{{"LD_PRELOAD", old && *old ? lib + ":" + old : lib}};
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

namespace {
// run_command's watched child runs in a process group of its own, so the terminal's
// Ctrl-C no longer reaches it: forward SIGINT, SIGTERM and SIGHUP to that group while it
// runs, then take the signal ourselves.
volatile sig_atomic_t g_watched_group = 0;
volatile sig_atomic_t g_caught_signal = 0;
extern "C" void forward_to_group(int sig) {
  g_caught_signal = sig;
  if (g_watched_group > 0) ::kill(-static_cast<pid_t>(g_watched_group), sig);
}
}  // namespace

int run_command(const std::vector<std::string>& argv, const Env& env, std::string* out, unsigned silence_limit_s,
                bool* stalled) {
  if (argv.empty()) throw std::runtime_error("no command to run");
  if (stalled) *stalled = false;
  const bool watch = out && silence_limit_s > 0;
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e; ++e) {
    std::string s(*e);
    auto eq = s.find('=');
    if (eq != std::string::npos) vars[s.substr(0, eq)] = s.substr(eq + 1);
  }
  for (const auto& [k, v] : env) vars[k] = v;
  std::vector<std::string> envs;
  for (const auto& [k, v] : vars) envs.push_back(k + "=" + v);
  std::vector<char*> cenv, cargv;
  for (auto& s : envs) cenv.push_back(s.data());
  cenv.push_back(nullptr);
  std::vector<std::string> args = argv;
  for (auto& s : args) cargv.push_back(s.data());
  cargv.push_back(nullptr);

  int pipefd[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (out) {
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
      posix_spawn_file_actions_destroy(&fa);
      posix_spawnattr_destroy(&attr);
      throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
    }
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  }
  // A group of its own is a background group on a terminal: it must not read from it.
  constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction old_actions[3] {};
  if (watch) {
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    g_caught_signal = 0;
    struct sigaction fwd {};
    fwd.sa_handler = forward_to_group;
    sigemptyset(&fwd.sa_mask);
    for (int i = 0; i < 3; ++i) {
      sigaction(kForwarded[i], nullptr, &old_actions[i]);
      if (old_actions[i].sa_handler != SIG_IGN) sigaction(kForwarded[i], &fwd, nullptr);  // ignored stays ignored
    }
  }
  auto restore_signals = [&] {
    if (!watch) return;
    g_watched_group = 0;
    for (int i = 0; i < 3; ++i) sigaction(kForwarded[i], &old_actions[i], nullptr);
  };
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (out) ::close(pipefd[1]);
  if (rc != 0) {
    restore_signals();
    if (out) ::close(pipefd[0]);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  if (watch) {
    g_watched_group = pid;
    if (g_caught_signal) ::kill(-pid, g_caught_signal);  // one that came during the spawn
  }
  if (out) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::seconds(silence_limit_s);
    bool heard = false, stopped = false, killed = false;
    clock::time_point kill_at{};
    char buf[65536];
    while (true) {
      if (watch && !killed) {
        auto now = clock::now();
        bool silent = !heard && now >= deadline;
        if (!stopped && (silent || g_caught_signal)) {
          // Nothing printed in time, or the user stopped us (the signal went to the group
          // already; what ignores it, e.g. a shell's background job, gets SIGTERM): stop
          // the whole group, then read on until the pipe closes. The child is not reaped
          // before that, so its group id stays ours.
          stopped = true;
          if (silent && stalled) *stalled = true;
          ::kill(-pid, SIGTERM);
          kill_at = now + std::chrono::seconds(10);
        } else if (stopped && now >= kill_at) {
          killed = true;
          ::kill(-pid, SIGKILL);
        }
        auto until = stopped ? kill_at : heard ? now + std::chrono::seconds(1) : deadline;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
        pollfd pfd{pipefd[0], POLLIN, 0};
        int n = ::poll(&pfd, 1, static_cast<int>(std::clamp<long long>(left, 1, 1000)));
        if (n == 0 || (n < 0 && errno == EINTR)) continue;
      }
      ssize_t n = ::read(pipefd[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      heard = true;
      out->append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipefd[0]);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  restore_signals();
  if (watch && g_caught_signal) ::raise(g_caught_signal);  // the user stopped us: stop as before
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void check_environment() {
  Config cfg;
  std::string errors = load_config(cfg);
  coll::Selector::from_config(cfg, &errors);
  if (!errors.empty()) {
    if (errors.back() == '\n') errors.pop_back();
    throw std::runtime_error("bad configuration:\n" + errors);
  }
}

CLI::Validator bytes_validator(std::uint64_t max) {
  return CLI::Validator(
      [max](std::string& t) {
        std::uint64_t v = 0;
        std::string why;
        return units::parse_bytes(t, v, max, &why) ? std::string() : why;
      },
      "BYTES");
}

CLI::Validator rate_validator() {
  return CLI::Validator(
      [](std::string& t) {
        std::uint64_t v = 0;
        std::string why;
        return units::parse_rate(t, v, &why) ? std::string() : why;
      },
      "RATE");
}

CLI::Validator duration_validator(bool bare_us) {
  return CLI::Validator(
      [bare_us](std::string& t) {
        std::uint64_t v = 0;
        std::string why;
        return units::parse_duration(t, bare_us ? units::TimeUnit::Microseconds : units::TimeUnit::Seconds, v, &why)
                   ? std::string()
                   : why;
      },
      "DURATION");
}

std::uint64_t parse_bytes_or_throw(const std::string& text, std::uint64_t max) {
  std::uint64_t v = 0;
  std::string why;
  if (!units::parse_bytes(text, v, max, &why)) throw std::runtime_error(why);
  return v;
}

std::uint64_t parse_rate_or_throw(const std::string& text) {
  std::uint64_t v = 0;
  std::string why;
  if (!units::parse_rate(text, v, &why)) throw std::runtime_error(why);
  return v;
}

std::uint64_t parse_us_or_throw(const std::string& text) {
  std::uint64_t ns = 0;
  std::string why;
  if (!units::parse_duration(text, units::TimeUnit::Microseconds, ns, &why)) throw std::runtime_error(why);
  return ns / 1000;
}

}  // namespace tandem::cli
