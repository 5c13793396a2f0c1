// The virtual cluster (see vcluster.hpp and docs/vcluster.md). Everything is
// done with iproute2's `ip` and `tc`, each call bounded in time.
#include "vcluster/vcluster.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "common/process.hpp"
#include "common/units.hpp"

extern char** environ;

namespace tandem::vcluster {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr unsigned kCommandTimeoutS = 30;  // any single ip/tc call
constexpr unsigned kLockTimeoutS = 120;    // waiting for another up/down
constexpr unsigned kLatencyMs = 20;        // tbf latency: the queue holds at most this much
constexpr int kStateVersion = 1;

std::string state_file() { return std::string(kVclusterDir) + "/state.json"; }
std::string agent_file() { return std::string(kVclusterDir) + "/agent.sh"; }
std::string hostfile_openmpi() { return std::string(kVclusterDir) + "/hostfile"; }
std::string hostfile_mpich() { return std::string(kVclusterDir) + "/hostfile.mpich"; }

std::string ns_name(int i) { return std::string(kVclusterPrefix) + "-h" + std::to_string(i); }
std::string port_name(int i) { return ns_name(i) + "-br"; }
std::string host_address(int i) { return "198.18.0." + std::to_string(i + 1); }

bool is_ns_name(const std::string& s) { return std::regex_match(s, std::regex("tandem-h[0-9]{1,3}")); }
bool is_port_name(const std::string& s) { return std::regex_match(s, std::regex("tandem-h[0-9]{1,3}-br")); }

std::string quote(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\n')) ++b;
  return s.substr(b);
}

// A program in PATH, or in the sbin directories a non-root PATH often lacks.
std::optional<std::string> find_tool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin";
  std::stringstream ss(dirs);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0 && !fs::is_directory(p)) return p.string();
  }
  return std::nullopt;
}

std::string tool(const std::string& name) {
  auto p = find_tool(name);
  if (!p) throw VclusterError("`" + name + "` not found (install iproute2)", kVclusterUnsupported);
  return *p;
}

// Runs an `ip`/`tc` call with standard input from /dev/null, capturing its standard
// output and error; killed after timeout_s seconds (status 124).
process::Result capture(const std::vector<std::string>& argv, unsigned timeout_s = kCommandTimeoutS) {
  process::Options o;
  o.capture_out = o.capture_err = o.stdin_null = true;
  o.timeout_s = timeout_s;
  o.kill_after_s = 0;
  try {
    process::Result r = process::run(argv, o);
    if (r.timed_out) r.err += "(timed out after " + std::to_string(timeout_s) + " s)";
    return r;
  } catch (const process::Error& e) {
    throw VclusterError(e.what());
  }
}

// Runs a command that must succeed; throws naming the command and its error output.
std::string must(const std::vector<std::string>& argv) {
  process::Result r = capture(argv);
  if (r.status != 0) {
    std::string err = trim(r.err.empty() ? r.out : r.err);
    throw VclusterError("`" + quote(argv) + "` failed (status " + std::to_string(r.status) + ")" +
                        (err.empty() ? "" : ": " + err));
  }
  return r.out;
}

// Effective capabilities of this process (bit n = capability n).
std::uint64_t effective_caps() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("CapEff:", 0) == 0) return std::strtoull(line.c_str() + 7, nullptr, 16);
  return 0;
}

constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;

void require_privileges() {
  if (auto why = vcluster_unsupported_reason(); !why.empty()) throw VclusterError(why, kVclusterUnsupported);
}

// Serializes up/down/mpirun-file-reads between processes.
class Lock {
 public:
  Lock() {
    std::error_code ec;
    fs::create_directories(fs::path(kVclusterLock).parent_path(), ec);
    fd_ = ::open(kVclusterLock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw VclusterError(std::string("cannot open ") + kVclusterLock + ": " + std::strerror(errno));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kLockTimeoutS);
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        ::close(fd_);
        throw VclusterError(std::string("cannot lock ") + kVclusterLock + ": " + std::strerror(errno));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ::close(fd_);
        throw VclusterError(std::string("another `tandem vcluster up/down` holds ") + kVclusterLock + " for over " +
                            std::to_string(kLockTimeoutS) + " s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~Lock() {
    if (fd_ >= 0) ::close(fd_);
  }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  int fd_ = -1;
};

// What exists now, found without privileges: namespaces in /run/netns, links in
// /sys/class/net (this process's namespace).
struct Existing {
  std::vector<std::string> namespaces;
  std::vector<std::string> ports;
  bool bridge = false;
  bool dir = false;
  bool any() const { return !namespaces.empty() || !ports.empty() || bridge || dir; }
};

Existing existing() {
  Existing e;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator("/run/netns", ec)) {
    std::string n = d.path().filename().string();
    if (is_ns_name(n)) e.namespaces.push_back(n);
  }
  for (const auto& d : fs::directory_iterator("/sys/class/net", ec)) {
    std::string n = d.path().filename().string();
    if (is_port_name(n)) e.ports.push_back(n);
    if (n == kVclusterBridge) e.bridge = true;
  }
  e.dir = fs::exists(kVclusterDir, ec);
  std::sort(e.namespaces.begin(), e.namespaces.end());
  std::sort(e.ports.begin(), e.ports.end());
  return e;
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void write_file(const std::string& path, const std::string& text, fs::perms perms) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw VclusterError("cannot write " + tmp);
  }
  fs::permissions(tmp, perms);
  fs::rename(tmp, path);
}

json to_json(const VclusterInfo& info) {
  json hosts = json::array();
  for (const auto& h : info.hosts)
    hosts.push_back({{"index", h.index}, {"namespace", h.ns}, {"address", h.address}, {"bridge_port", h.bridge_port}});
  return {{"version", kStateVersion},
          {"created", info.created},
          {"rate", info.rate},
          {"rate_bps", info.rate_bps},
          {"burst_bytes", info.burst_bytes},
          {"latency_ms", info.latency_ms},
          {"bridge", info.bridge},
          {"bridge_address", info.bridge_address},
          {"subnet", info.subnet},
          {"device", info.device},
          {"dir", info.dir},
          {"agent", info.agent},
          {"hostfile_openmpi", info.hostfile_openmpi},
          {"hostfile_mpich", info.hostfile_mpich},
          {"hosts", hosts}};
}

std::optional<VclusterInfo> read_state(std::string* why = nullptr) {
  std::ifstream in(state_file());
  if (!in) {
    if (why) *why = "no state file " + state_file();
    return std::nullopt;
  }
  try {
    json j = json::parse(in);
    if (j.value("version", 0) != kStateVersion) {
      if (why) *why = state_file() + " has an unknown version";
      return std::nullopt;
    }
    VclusterInfo info;
    info.created = j.at("created").get<std::string>();
    info.rate = j.at("rate").get<std::string>();
    info.rate_bps = j.at("rate_bps").get<std::uint64_t>();
    info.burst_bytes = j.at("burst_bytes").get<std::uint64_t>();
    info.latency_ms = j.at("latency_ms").get<unsigned>();
    info.agent = j.at("agent").get<std::string>();
    info.hostfile_openmpi = j.at("hostfile_openmpi").get<std::string>();
    info.hostfile_mpich = j.at("hostfile_mpich").get<std::string>();
    for (const auto& h : j.at("hosts")) {
      VclusterHost host;
      host.index = h.at("index").get<int>();
      host.ns = h.at("namespace").get<std::string>();
      host.address = h.at("address").get<std::string>();
      host.bridge_port = h.at("bridge_port").get<std::string>();
      info.hosts.push_back(host);
    }
    if (info.hosts.empty()) throw std::runtime_error("no hosts");
    return info;
  } catch (const std::exception& e) {
    if (why) *why = state_file() + " is unreadable: " + e.what();
    return std::nullopt;
  }
}

// The processors host i may use: the machine's online processors shared out among the hosts,
// so that, as on a real cluster, a host's ranks and their helper threads compete only with
// each other (measured: with two hosts floating over two cores, a rank's progress thread
// waited milliseconds for a core and the overlap benchmark stayed serialised; with one core
// per host tandem reached 1.05x of the optimal time at 4 KiB).
std::string host_cpus(std::size_t i, std::size_t hosts) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  std::size_t ncpu = n > 0 ? static_cast<std::size_t>(n) : 1;
  if (hosts >= ncpu) return std::to_string(i % ncpu);
  std::size_t k = ncpu / hosts, first = i * k;
  return k == 1 ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(first + k - 1);
}

std::string agent_script(const VclusterInfo& info, const std::string& ip, const std::string& env_tool) {
  std::string cases;
  for (std::size_t i = 0; i < info.hosts.size(); ++i) {
    const auto& h = info.hosts[i];
    cases += "  " + h.address + "|" + h.ns + ") ns=" + h.ns + " addr=" + h.address +
             " cpus=" + host_cpus(i, info.hosts.size()) + " ;;\n";
  }
  std::string pin = fs::exists("/usr/bin/taskset") ? "/usr/bin/taskset -c \"$cpus\" " : "";
  return "#!/bin/sh\n"
         "# Launch agent of the tandem vcluster, written by `tandem vcluster up` on " +
         info.created +
         ".\n"
         "# mpirun/mpiexec call it like ssh:  agent.sh [ssh options] [user@]HOST COMMAND...\n"
         "# It runs COMMAND with /bin/sh in HOST's network namespace, where HOST is a\n"
         "# host's address or namespace name, on the processors given to that host.\n"
         "# Do not edit; `tandem vcluster up` rewrites it.\n"
         "while [ $# -gt 0 ]; do\n"
         "  case \"$1\" in\n"
         "    --) shift; break ;;\n"
         "    -[BbcDEeFIiJLlmOoPpQRSWw]) shift 2 ;;\n"
         "    -*) shift ;;\n"
         "    *) break ;;\n"
         "  esac\n"
         "done\n"
         "if [ $# -lt 2 ]; then\n"
         "  echo \"tandem vcluster agent: usage: $0 [ssh options] HOST COMMAND...\" >&2\n"
         "  exit 255\n"
         "fi\n"
         "host=${1#*@}\n"
         "shift\n"
         "case \"$host\" in\n" +
         cases + "  *) echo \"tandem vcluster agent: unknown host '$host' (the vcluster has " +
         std::to_string(info.hosts.size()) + " hosts: " + info.hosts.front().address + " .. " +
         info.hosts.back().address +
         ")\" >&2; exit 255 ;;\n"
         "esac\n"
         "exec " + pin +
         ip + " netns exec \"$ns\" " + env_tool +
         " VCLUSTER_HOST=\"$ns\" VCLUSTER_ADDRESS=\"$addr\" /bin/sh -c \"$*\"\n";
}

// Processes still running in a namespace (never this process or its ancestors).
std::vector<pid_t> ns_pids(const std::string& ip, const std::string& ns) {
  std::vector<pid_t> pids;
  process::Result r = capture({ip, "netns", "pids", ns}, 10);
  if (r.status != 0) return pids;
  std::vector<pid_t> ancestors;
  for (pid_t p = getpid(); p > 1;) {
    ancestors.push_back(p);
    std::ifstream st("/proc/" + std::to_string(p) + "/stat");
    std::string s;
    std::getline(st, s);
    auto close = s.rfind(')');
    if (close == std::string::npos) break;
    std::istringstream rest(s.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    p = ppid;
  }
  std::istringstream in(r.out);
  long p;
  while (in >> p)
    if (p > 1 && std::find(ancestors.begin(), ancestors.end(), static_cast<pid_t>(p)) == ancestors.end())
      pids.push_back(static_cast<pid_t>(p));
  return pids;
}

// `down` without taking the lock (the caller holds it).
std::vector<std::string> down_locked() {
  std::vector<std::string> done;
  Existing e = existing();
  if (!e.any()) return done;
  if (!e.namespaces.empty() || !e.ports.empty() || e.bridge) require_privileges();
  std::string ip = e.namespaces.empty() && e.ports.empty() && !e.bridge ? "" : tool("ip");
  std::vector<std::string> errors;

  // End what still runs in the hosts (stray orted/hydra proxies, servers).
  std::vector<pid_t> pids;
  for (const auto& ns : e.namespaces)
    for (pid_t p : ns_pids(ip, ns)) pids.push_back(p);
  if (!pids.empty()) {
    for (pid_t p : pids) ::kill(p, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    auto alive = [&] {
      for (pid_t p : pids)
        if (::kill(p, 0) == 0) {
          // A zombie of ours is not alive.
          std::ifstream st("/proc/" + std::to_string(p) + "/stat");
          std::string s;
          std::getline(st, s);
          auto close = s.rfind(')');
          if (close != std::string::npos && close + 2 < s.size() && s[close + 2] == 'Z') continue;
          return true;
        }
      return false;
    };
    while (alive() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (pid_t p : pids) ::kill(p, SIGKILL);
    done.push_back("ended " + std::to_string(pids.size()) + " process(es) still running in the hosts");
  }

  // `ip ARGS` removes `what`; a failure is an error only when `path` still exists.
  auto remove_one = [&](const std::vector<std::string>& args, const std::string& what, const std::string& path) {
    std::vector<std::string> argv{ip};
    argv.insert(argv.end(), args.begin(), args.end());
    process::Result r = capture(argv);
    if (r.status == 0)
      done.push_back("removed " + what);
    else if (fs::exists(path))
      errors.push_back("`ip " + quote(args) + "`: " + trim(r.err));
  };
  // Deleting the bridge-side end removes the pair at once (deleting only the
  // namespace removes it asynchronously).
  for (const auto& port : e.ports) remove_one({"link", "del", port}, "link " + port, "/sys/class/net/" + port);
  for (const auto& ns : e.namespaces) remove_one({"netns", "del", ns}, "namespace " + ns, "/run/netns/" + ns);
  if (e.bridge)
    remove_one({"link", "del", kVclusterBridge}, std::string("bridge ") + kVclusterBridge,
               std::string("/sys/class/net/") + kVclusterBridge);
  if (e.dir) {
    std::error_code ec;
    fs::remove_all(kVclusterDir, ec);
    if (ec)
      errors.push_back(std::string("cannot remove ") + kVclusterDir + ": " + ec.message());
    else
      done.push_back(std::string("removed ") + kVclusterDir);
  }
  if (!errors.empty()) {
    std::string msg = "could not remove everything:";
    for (const auto& s : errors) msg += "\n  " + s;
    throw VclusterError(msg);
  }
  return done;
}

// The tbf qdisc of a device (in namespace `ns` unless empty), from `tc -j -s`.
std::optional<json> tbf_of(const std::string& tc, const std::string& ns, const std::string& dev) {
  std::vector<std::string> argv{tc};
  if (!ns.empty()) argv.insert(argv.end(), {"-n", ns});
  argv.insert(argv.end(), {"-j", "-s", "qdisc", "show", "dev", dev});
  process::Result r = capture(argv, 10);
  if (r.status != 0) return std::nullopt;
  try {
    json j = json::parse(r.out);
    for (const auto& q : j)
      if (q.value("kind", "") == "tbf" && q.value("root", false)) return q;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::vector<std::string> mpi_forwarded_names() {
  std::vector<std::string> names;
  for (char** e = environ; *e; ++e) {
    std::string s(*e);
    auto eq = s.find('=');
    if (eq == std::string::npos) continue;
    std::string name = s.substr(0, eq);
    if (name.rfind("TANDEM_", 0) == 0 || (name == "LD_PRELOAD" && eq + 1 < s.size())) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

// The number of processes user_args ask for (-np/-n/--np/--n/-c N), or 0.
int requested_np(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string val;
    if ((a == "-np" || a == "-n" || a == "--np" || a == "--n" || a == "-c") && i + 1 < args.size())
      val = args[i + 1];
    else if (a.rfind("-np=", 0) == 0 || a.rfind("--np=", 0) == 0 || a.rfind("--n=", 0) == 0)
      val = a.substr(a.find('=') + 1);
    else
      continue;
    char* end = nullptr;
    long n = std::strtol(val.c_str(), &end, 10);
    if (end && *end == '\0' && n > 0) return static_cast<int>(n);
  }
  return 0;
}

bool has_any(const std::vector<std::string>& args, std::initializer_list<const char*> opts) {
  for (const auto& a : args)
    for (const char* o : opts)
      if (a == o || a.rfind(std::string(o) + "=", 0) == 0) return true;
  return false;
}

// True when user_args set MCA parameter `name` (--mca/-mca/--gmca name value).
bool user_sets_mca(const std::vector<std::string>& args, const std::string& name) {
  for (std::size_t i = 0; i + 1 < args.size(); ++i)
    if ((args[i] == "--mca" || args[i] == "-mca" || args[i] == "--gmca" || args[i] == "-gmca") && args[i + 1] == name)
      return true;
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------

std::uint64_t vcluster_parse_rate(const std::string& text) {
  std::uint64_t v = 0;
  if (!units::parse_rate(text, v))
    throw VclusterError("bad rate `" + text +
                        "`: give bits per second with a unit, e.g. 100mbit, 1gbit, 2.5gbit, 10gbit");
  if (v < 1000000ULL || v > 400000000000ULL)
    throw VclusterError("rate `" + text + "` is out of range (1mbit .. 400gbit)");
  return v;
}

std::string vcluster_format_rate(std::uint64_t bps) {
  const std::pair<std::uint64_t, const char*> units[] = {
      {1000000000000ULL, "tbit"}, {1000000000ULL, "gbit"}, {1000000ULL, "mbit"}, {1000ULL, "kbit"}};
  for (const auto& [scale, name] : units) {
    if (bps < scale) continue;
    if (bps % scale == 0) return std::to_string(bps / scale) + name;
    if ((bps * 10) % scale == 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f%s", static_cast<double>(bps) / static_cast<double>(scale), name);
      return buf;
    }
  }
  return std::to_string(bps) + "bit";
}

std::uint64_t vcluster_parse_burst(const std::string& text) {
  std::uint64_t v = 0;
  if (!units::parse_bytes(text, v)) throw VclusterError("bad burst `" + text + "`: give bytes, e.g. 131072, 128k, 1m");
  if (v < 2000 || v > 64ULL * 1048576)
    throw VclusterError("burst `" + text + "` is out of range (2000 bytes .. 64m)");
  return v;
}

std::uint64_t vcluster_default_burst(std::uint64_t rate_bps) {
  std::uint64_t per_ms = rate_bps / 8 / 1000;
  return std::max<std::uint64_t>({3000, per_ms, std::min<std::uint64_t>(128 * 1024, 10 * per_ms)});
}

std::string vcluster_unsupported_reason() {
  std::uint64_t caps = effective_caps();
  if (!(caps & (1ULL << kCapNetAdmin)) || !(caps & (1ULL << kCapSysAdmin)))
    return "creating and removing network namespaces needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); "
           "this process has " +
           std::string(geteuid() == 0 ? "uid 0 but not both capabilities" : "uid " + std::to_string(geteuid())) +
           ": run it as root (e.g. with sudo)";
  if (!find_tool("ip")) return "`ip` (iproute2) not found";
  if (!find_tool("tc")) return "`tc` (iproute2) not found";
  if (!fs::exists("/proc/self/ns/net")) return "this kernel has no network namespaces";
  return "";
}

bool vcluster_exists() {
  auto info = read_state();
  if (!info) return false;
  if (!fs::exists(std::string("/sys/class/net/") + kVclusterBridge)) return false;
  for (const auto& h : info->hosts)
    if (!fs::exists("/run/netns/" + h.ns) || !fs::exists("/sys/class/net/" + h.bridge_port)) return false;
  return fs::exists(info->agent);
}

std::vector<std::string> vcluster_problems() {
  std::vector<std::string> p;
  Existing e = existing();
  std::string why;
  auto info = read_state(&why);
  if (!info) {
    if (e.any()) {
      p.push_back(why);
      for (const auto& ns : e.namespaces) p.push_back("left over: namespace " + ns);
      for (const auto& port : e.ports) p.push_back("left over: link " + port);
      if (e.bridge) p.push_back(std::string("left over: bridge ") + kVclusterBridge);
    }
    return p;
  }
  if (!e.bridge) p.push_back(std::string("bridge ") + kVclusterBridge + " is missing");
  for (const char* f : {"agent", "hostfile_openmpi", "hostfile_mpich"}) {
    std::string path = f == std::string("agent")              ? info->agent
                       : f == std::string("hostfile_openmpi") ? info->hostfile_openmpi
                                                              : info->hostfile_mpich;
    if (!fs::exists(path)) p.push_back(path + " is missing");
  }
  auto tc = find_tool("tc");
  for (const auto& h : info->hosts) {
    if (!fs::exists("/run/netns/" + h.ns)) {
      p.push_back("namespace " + h.ns + " is missing");
      continue;
    }
    if (!fs::exists("/sys/class/net/" + h.bridge_port)) p.push_back("link " + h.bridge_port + " is missing");
    if (tc && effective_caps() & (1ULL << kCapSysAdmin)) {
      if (!tbf_of(*tc, "", h.bridge_port)) p.push_back("no tbf qdisc on " + h.bridge_port);
      if (!tbf_of(*tc, h.ns, kVclusterDevice))
        p.push_back("no tbf qdisc on " + std::string(kVclusterDevice) + " in " + h.ns);
    }
  }
  for (const auto& ns : e.namespaces)
    if (std::none_of(info->hosts.begin(), info->hosts.end(), [&](const auto& h) { return h.ns == ns; }))
      p.push_back("left over: namespace " + ns + " (not in the state file)");
  return p;
}

VclusterInfo vcluster_state() {
  std::string why;
  auto info = read_state(&why);
  if (!info) {
    if (existing().any())
      throw VclusterError("a partial vcluster is left over (" + why +
                          "); run `tandem vcluster down` or `tandem vcluster up --force`");
    throw VclusterError("no vcluster is up; create one with `tandem vcluster up --hosts N --rate RATE`");
  }
  if (!vcluster_exists())
    throw VclusterError("the vcluster in " + state_file() +
                        " is incomplete (see `tandem vcluster status`); recreate it with `tandem vcluster up --force`");
  return *info;
}

std::vector<VclusterLinkStats> vcluster_link_stats(const VclusterInfo& info) {
  std::vector<VclusterLinkStats> out;
  auto tc = find_tool("tc");
  for (const auto& h : info.hosts) {
    VclusterLinkStats s;
    if (tc) {
      auto in_ns = tbf_of(*tc, h.ns, info.device);
      auto on_bridge = tbf_of(*tc, "", h.bridge_port);
      s.ok = in_ns && on_bridge;
      if (in_ns) {
        s.sent = in_ns->value("bytes", std::uint64_t{0});
        s.drops += in_ns->value("drops", std::uint64_t{0});
      }
      if (on_bridge) {
        s.received = on_bridge->value("bytes", std::uint64_t{0});
        s.drops += on_bridge->value("drops", std::uint64_t{0});
      }
    }
    out.push_back(s);
  }
  return out;
}

VclusterInfo vcluster_up(const VclusterOptions& opts, bool* already) {
  if (already) *already = false;
  if (opts.hosts < 1 || opts.hosts > kVclusterMaxHosts)
    throw VclusterError("--hosts must be 1.." + std::to_string(kVclusterMaxHosts) + " (got " +
                        std::to_string(opts.hosts) + ")");
  std::uint64_t rate = vcluster_parse_rate(opts.rate);
  std::uint64_t burst = opts.burst.empty() ? vcluster_default_burst(rate) : vcluster_parse_burst(opts.burst);
  require_privileges();
  std::string ip = tool("ip"), tc = tool("tc");
  std::string env_tool = find_tool("env").value_or("/usr/bin/env");

  Lock lock;
  Existing e = existing();
  if (e.any()) {
    auto old = read_state();
    bool complete = old && vcluster_exists() && vcluster_problems().empty();
    if (!opts.force) {
      if (complete && static_cast<int>(old->hosts.size()) == opts.hosts && old->rate_bps == rate &&
          old->burst_bytes == burst) {
        if (already) *already = true;
        return *old;
      }
      if (complete)
        throw VclusterError("a vcluster is already up (" + std::to_string(old->hosts.size()) + " hosts at " +
                            old->rate + ", burst " + std::to_string(old->burst_bytes) +
                            " B); use --force to recreate it, or `tandem vcluster down` first");
      throw VclusterError(
          std::string(old ? "the vcluster that is up is incomplete or broken" : "a partial vcluster is left over") +
          " (see `tandem vcluster status`); use --force to recreate it, or `tandem vcluster down` first");
    }
    down_locked();
  }

  VclusterInfo info;
  info.rate_bps = rate;
  info.rate = vcluster_format_rate(rate);
  info.burst_bytes = burst;
  info.latency_ms = kLatencyMs;
  info.created = now_utc();
  info.agent = agent_file();
  info.hostfile_openmpi = hostfile_openmpi();
  info.hostfile_mpich = hostfile_mpich();
  for (int i = 0; i < opts.hosts; ++i) info.hosts.push_back({i, ns_name(i), host_address(i), port_name(i)});

  const std::string rate_arg = std::to_string(rate) + "bit";
  const std::string burst_arg = std::to_string(burst);
  const std::string latency_arg = std::to_string(kLatencyMs) + "ms";
  try {
    std::error_code ec;
    fs::create_directories(kVclusterDir, ec);
    if (ec) throw VclusterError(std::string("cannot create ") + kVclusterDir + ": " + ec.message());

    must({ip, "link", "add", kVclusterBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"});
    must({ip, "link", "set", "dev", kVclusterBridge, "addrgenmode", "none"});
    must({ip, "addr", "add", std::string(kVclusterBridgeAddress) + "/24", "dev", kVclusterBridge});
    must({ip, "link", "set", "dev", kVclusterBridge, "up"});
    for (const auto& h : info.hosts) {
      must({ip, "netns", "add", h.ns});
      must({ip, "link", "add", h.bridge_port, "type", "veth", "peer", "name", kVclusterDevice, "netns", h.ns});
      must({ip, "link", "set", "dev", h.bridge_port, "addrgenmode", "none"});
      must({ip, "link", "set", "dev", h.bridge_port, "master", kVclusterBridge});
      must({ip, "-n", h.ns, "link", "set", "dev", kVclusterDevice, "addrgenmode", "none"});
      must({ip, "-n", h.ns, "addr", "add", h.address + "/24", "dev", kVclusterDevice});
      must({ip, "-n", h.ns, "link", "set", "dev", "lo", "up"});
      // Both directions: the host's egress (namespace side) and traffic to the host
      // (the bridge side's egress).
      must({tc, "-n", h.ns, "qdisc", "replace", "dev", kVclusterDevice, "root", "tbf", "rate", rate_arg, "burst",
            burst_arg, "latency", latency_arg});
      must({tc, "qdisc", "replace", "dev", h.bridge_port, "root", "tbf", "rate", rate_arg, "burst", burst_arg,
            "latency", latency_arg});
      must({ip, "-n", h.ns, "link", "set", "dev", kVclusterDevice, "up"});
      must({ip, "link", "set", "dev", h.bridge_port, "up"});
    }

    std::string hf_ompi, hf_mpich;
    for (const auto& h : info.hosts) {
      hf_ompi += h.address + " slots=1\n";
      hf_mpich += h.address + ":1\n";
    }
    write_file(info.hostfile_openmpi, hf_ompi, fs::perms(0644));
    write_file(info.hostfile_mpich, hf_mpich, fs::perms(0644));
    write_file(info.agent, agent_script(info, ip, env_tool), fs::perms(0755));
    write_file(state_file(), to_json(info).dump(2) + "\n", fs::perms(0644));
    auto problems = vcluster_problems();
    if (!problems.empty()) {
      std::string msg = "the new vcluster is incomplete:";
      for (const auto& s : problems) msg += "\n  " + s;
      throw VclusterError(msg);
    }
  } catch (...) {
    try {
      down_locked();
    } catch (const std::exception&) {
    }
    throw;
  }
  return info;
}

std::vector<std::string> vcluster_down() {
  Existing e = existing();
  if (!e.any()) return {};
  if (!e.namespaces.empty() || !e.ports.empty() || e.bridge) require_privileges();
  Lock lock;
  return down_locked();
}

std::vector<std::string> vcluster_mpirun_argv(const std::string& mpi, const std::vector<std::string>& user_args,
                                              bool check_privileges) {
  VclusterInfo info = vcluster_state();
  if (check_privileges && !(effective_caps() & (1ULL << kCapSysAdmin)))
    throw VclusterError(
        "mpirun: placing ranks on the hosts needs root (the launch agent enters their network "
        "namespaces with `ip netns exec`, which needs CAP_SYS_ADMIN); run it as root",
        kVclusterUnsupported);
  int np = requested_np(user_args);
  int nhosts = static_cast<int>(info.hosts.size());
  std::vector<std::string> argv;
  if (mpi == "openmpi") {
    argv.push_back(find_tool("mpirun.openmpi").value_or(find_tool("mpiexec.openmpi").value_or("mpirun.openmpi")));
    argv.push_back("--allow-run-as-root");
    const std::vector<std::pair<std::string, std::string>> mca = {
        {"plm_rsh_agent", info.agent},
        {"plm_rsh_no_tree_spawn", "1"},
        {"pml", "ob1"},
        {"osc", "^ucx"},
        {"btl", "tcp,self"},
        {"btl_tcp_if_include", info.device},
        {"oob_tcp_if_include", info.subnet},
        {"mpi_yield_when_idle", "1"},
        // Each host's processes already run on that host's processors (the agent's taskset);
        // Open MPI's own binding would put every host's first rank on core 0.
        {"hwloc_base_binding_policy", "none"},
        // Start the hosts' daemons one after the other: with concurrent launches through the
        // agent, 3 of 10 starts hung waiting for the second host's orted (0 of 22 serialised).
        {"plm_rsh_num_concurrent", "1"},
    };
    for (const auto& [k, v] : mca)
      if (!user_sets_mca(user_args, k)) argv.insert(argv.end(), {"--mca", k, v});
    bool own_hosts = has_any(user_args, {"--host", "-host", "-H", "--hostfile", "-hostfile", "--machinefile",
                                         "-machinefile", "--default-hostfile", "-default-hostfile"});
    if (!own_hosts) argv.insert(argv.end(), {"--hostfile", info.hostfile_openmpi});
    if (np > nhosts && !has_any(user_args, {"--oversubscribe", "-oversubscribe"})) argv.push_back("--oversubscribe");
    // More ranks than hosts: round robin over the hosts (as MPICH does), not
    // filling the first host.
    if (np > nhosts && !own_hosts &&
        !has_any(user_args, {"--map-by", "-map-by", "--bynode", "-bynode", "--byslot", "-byslot", "--npernode",
                             "-npernode", "-N", "--ppr", "-ppr", "--rankfile", "-rankfile", "-rf"}))
      argv.insert(argv.end(), {"--map-by", "node"});
    for (const auto& name : mpi_forwarded_names()) argv.insert(argv.end(), {"-x", name});
  } else if (mpi == "mpich") {
    argv.push_back(find_tool("mpiexec.mpich").value_or(find_tool("mpiexec.hydra").value_or("mpiexec.mpich")));
    argv.insert(argv.end(), {"-launcher", "ssh", "-launcher-exec", info.agent, "-localhost", info.bridge_address});
    bool own_hosts = has_any(user_args, {"-f", "-hosts", "-host", "-machinefile", "-hostfile", "-configfile"});
    if (!own_hosts) argv.insert(argv.end(), {"-f", info.hostfile_mpich});
    // UCX would find the other hosts' ranks through shared memory (namespaces share
    // /dev/shm and the process table): keep it on TCP over the hosts' link.
    argv.insert(argv.end(), {"-genv", "UCX_TLS", "tcp,self", "-genv", "UCX_NET_DEVICES", info.device});
    // MPICH 4.0 + UCX over TCP can hang in MPI_Finalize (docs/vcluster.md); when a
    // bounded-flush workaround library is installed next to tandem's libraries,
    // the ranks preload it.
    std::string fix;
    if (auto p = process::library_dir() / kVclusterMpichFinalizeFix; fs::exists(p)) fix = p.string();
    bool preload_sent = false;
    for (const auto& name : mpi_forwarded_names()) {
      const char* v = std::getenv(name.c_str());
      std::string value = v ? v : "";
      if (name == "LD_PRELOAD" && !fix.empty() && value.find(fix) == std::string::npos) {
        value = fix + ":" + value;
        preload_sent = true;
      }
      argv.insert(argv.end(), {"-genv", name, value});
    }
    if (!fix.empty() && !preload_sent && !std::getenv("LD_PRELOAD"))
      argv.insert(argv.end(), {"-genv", "LD_PRELOAD", fix});
  } else {
    throw VclusterError("unknown MPI `" + mpi + "` (openmpi or mpich)");
  }
  argv.insert(argv.end(), user_args.begin(), user_args.end());
  return argv;
}

int vcluster_run(const std::vector<std::string>& argv, unsigned timeout_s) {
  if (argv.empty()) throw VclusterError("no command to run");
  process::Options o;
  o.parent_death_signal = SIGTERM;
  o.ignore_signals = {SIGINT, SIGQUIT};
  o.forward_signals = {SIGTERM, SIGHUP};
  o.timeout_s = timeout_s;
  o.kill_after_s = 10;
  o.on_timeout = [&] {
    std::fprintf(stderr, "tandem: vcluster: %s did not finish within %u s; stopping it\n", argv[0].c_str(), timeout_s);
  };
  try {
    return process::run(argv, o).status;
  } catch (const process::Error& e) {
    throw VclusterError(e.what());
  }
}

}  // namespace tandem::vcluster
