#include "interpose/runtime.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "coll/ompi_rules.hpp"
#include "common/log.hpp"
#include "common/memory.hpp"
#include "common/stats.hpp"
#include "common/thread_flags.hpp"
#include "defer/deferral.hpp"

#ifndef TANDEM_MPI_NAME
#error "TANDEM_MPI_NAME must name the MPI this library is built for"
#endif

namespace tandem::interpose {
namespace {

// The shared object that provides `symbol` after this library, e.g. the program's MPI.
const char* provider_of(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  Dl_info info{};
  if (!f || !dladdr(f, &info) || !info.dli_fname) return nullptr;
  return info.dli_fname;
}

bool matches_our_mpi(const char* lib) {
  std::string_view name(lib);
  if (std::string_view(TANDEM_MPI_NAME) == "openmpi") return name.find("libmpi.so.40") != std::string_view::npos;
  return name.find("libmpich") != std::string_view::npos || name.find("libmpi.so.12") != std::string_view::npos;
}

int hook_help(void*) { return runtime().engine.help(); }
void hook_begin(void*) { runtime().engine.begin_urgent(); }
void hook_end(void*) { runtime().engine.end_urgent(); }

// A deferred operation failed after its call returned: the program can no longer get the
// error from the call, so it is said here (the communicator's error handler, fatal by
// default, has acted already inside the MPI library if it was not MPI_ERRORS_RETURN).
void report_deferred_error(const defer::Op& op, int error) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (PMPI_Error_string(error, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof text, "error %d", error);
  log_message(runtime().rank, "a deferred %s (peer %d) failed after it returned: %s", op.what, op.peer, text);
}

// The engine's mode under `tandem run`: a thread when calls are deferred (overlap needs
// one), unless TANDEM_PROGRESS says otherwise; `deferring` false: collectives only.
progress::Mode progress_mode(const Config& cfg, bool deferring, int rank) {
  auto m = progress::parse_mode(cfg.progress);
  if (!m) return deferring ? progress::Mode::Thread : progress::Mode::Poll;
  if (*m == progress::Mode::Thread && !deferring) {
    if (rank == 0)
      log_message(-1, "TANDEM_PROGRESS=thread: tandem passes this job's calls through (see TANDEM_LOCAL and the "
                      "thread level), so its collectives progress in the calls that wait for them");
    return progress::Mode::Poll;
  }
  if (*m == progress::Mode::Block && rank == 0)
    log_message(-1, "TANDEM_PROGRESS=block: the MPI library has no event descriptor to sleep on, so a waiting "
                    "thread polls it");
  return *m;
}

// A deferred operation completes while the program computes, or while a thread that
// touches its memory waits inside the fault handler, where it cannot call MPI: only the
// progress thread can complete it. Without one (TANDEM_PROGRESS=poll|block) nothing is
// deferred.
bool deferral_possible(const Config& cfg, int rank) {
  auto m = progress::parse_mode(cfg.progress);
  if (!m || *m == progress::Mode::Thread) return true;
  if (rank == 0)
    log_message(-1, "TANDEM_PROGRESS=%s: deferring calls needs the progress thread, so point-to-point calls are "
                    "passed through%s",
                cfg.progress.c_str(), cfg.coll_overlap ? " and TANDEM_COLL_OVERLAP=1 has no effect" : "");
  return false;
}

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return end && *end == '\0' && x > 0 ? x : fallback;
}

// The launcher's rank of this process before MPI_Init (0 when it does not say).
long launcher_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMI_RANK"})
    if (const char* s = std::getenv(v)) return std::strtol(s, nullptr, 10);
  return 0;
}

// Rules lines `mpi:ALG[:SEG]` choose one of the MPI library's own algorithms. Open MPI's
// coll_tuned takes them from a dynamic rules file read while MPI_Init opens the component:
// made here (coll/ompi_rules.hpp) and named in the environment MPI_Init reads, unless the
// run sets coll_tuned's dynamic rules itself. Removed again once MPI_Init is done.
class MpiAlgorithms {
 public:
  void before_init(const Runtime& rt) noexcept {
    try {
      apply(rt);
    } catch (const std::exception& e) {
      if (launcher_rank() == 0)
        log_message(-1, "the rules' lines naming the MPI library's own algorithms are not applied: %s", e.what());
      after_init();
    }
  }
  void after_init() noexcept {
    if (path_.empty()) return;
    unlink(path_.c_str());
    unsetenv("OMPI_MCA_coll_tuned_use_dynamic_rules");
    unsetenv("OMPI_MCA_coll_tuned_dynamic_rules_filename");
    path_.clear();
  }

 private:
  void apply(const Runtime& rt) {
    const auto& sel = rt.coll->selector();
    if (!sel.rules() || !sel.rules()->forces_mpi_algorithm()) return;
    const bool speak = launcher_rank() == 0;
    coll::Rules rules = *sel.rules();  // without the collectives TANDEM_COLL_<COLL> decides
    std::erase_if(rules.rules, [&](const coll::Rule& r) { return sel.forced(r.coll); });
    if (std::string_view(TANDEM_MPI_NAME) != "openmpi") {
      if (speak)
        log_message(-1, "%s: the lines naming MPICH's own algorithms (mpi:ALG) run MPICH's default under `tandem run`; "
                        "MPICH takes its algorithms from the files of `tandem tune --mpich-export`",
                    rules.source.c_str());
      return;
    }
    for (const char* v : {"OMPI_MCA_coll_tuned_use_dynamic_rules", "OMPI_MCA_coll_tuned_dynamic_rules_filename"})
      if (std::getenv(v)) {
        if (speak)
          log_message(-1, "%s: the lines naming Open MPI's own algorithms (mpi:N) are not applied: this run sets %s "
                          "itself (its setting is kept)",
                      rules.source.c_str(), v + 9);
        return;
      }
    const long world = std::max(1L, env_long("OMPI_COMM_WORLD_SIZE", 1));
    std::string text, why;
    if (!coll::ompi_rules_for(rules, static_cast<int>(std::min(world, 1L << 20)), &text, &why)) {
      std::fprintf(stderr, "tandem: invalid TANDEM_COLL_RULES='%s': %s\ntandem: fix the settings above (see `tandem info`)\n",
                   rt.cfg.coll_rules.c_str(), why.c_str());
      std::exit(2);
    }
    if (text.empty()) return;
    bool said[coll::kCollCount] = {};
    for (const coll::Rule& r : rules.rules) {
      const auto i = static_cast<std::size_t>(r.coll);
      if (r.choice.alg || r.mpi_alg.empty() || said[i]) continue;
      said[i] = true;
      const std::string var = std::string("OMPI_MCA_coll_tuned_") + coll::coll_name(r.coll) + "_algorithm";
      if (speak && std::getenv(var.c_str()))
        log_message(-1, "%s: %s is set for this run: Open MPI runs that algorithm for every %s, not the rules' mpi:N",
                    rules.source.c_str(), var.c_str() + 9, coll::coll_name(r.coll));
    }
    const char* tmp = std::getenv("TMPDIR");
    path_ = std::string(tmp && *tmp ? tmp : "/tmp") + "/tandem-ompi-rules.XXXXXX";
    int fd = mkstemp(path_.data());
    bool ok = fd >= 0;
    for (std::size_t off = 0; ok && off < text.size();) {
      ssize_t n = write(fd, text.data() + off, text.size() - off);
      if (n <= 0) ok = false;
      else off += static_cast<std::size_t>(n);
    }
    if (fd >= 0 && close(fd) != 0) ok = false;
    if (!ok) {
      if (speak)
        log_message(-1, "%s: the lines naming Open MPI's own algorithms (mpi:N) are not applied: cannot write %s (%s)",
                    rules.source.c_str(), path_.c_str(), std::strerror(errno));
      if (fd >= 0) unlink(path_.c_str());
      path_.clear();
      return;
    }
    setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 1);
    setenv("OMPI_MCA_coll_tuned_dynamic_rules_filename", path_.c_str(), 1);
    if (speak && rt.cfg.verbose >= 1)
      log_message(-1, "%s: Open MPI runs the algorithms its lines mpi:N name, by coll_tuned dynamic rules (%zu bytes, "
                      "communicators of up to %ld ranks)",
                  rules.source.c_str(), text.size(), world);
  }
  std::string path_;
};

}  // namespace

Runtime& runtime() { return immortal<Runtime>(); }
CollStats& coll_stats() { return immortal<CollStats>(); }

int init(int* argc, char*** argv, int required, int* provided, bool thread_variant) {
  Runtime& rt = runtime();
  std::string errors = load_config(rt.cfg);
  rt.coll = std::make_unique<coll::MpiContext>(rt.cfg, &rt.engine, &rt.source);
  errors += rt.coll->errors();
  if (!errors.empty()) {
    std::fputs(errors.c_str(), stderr);
    std::fputs("tandem: fix the settings above (see `tandem info`)\n", stderr);
    std::exit(2);
  }
  const char* lib = provider_of("PMPI_Init_thread");
  if (lib && !matches_our_mpi(lib)) {
    std::fprintf(stderr,
                 "tandem: this program uses the MPI library %s, but the preload library was built for %s; "
                 "run it with `tandem run --mpi %s` (or set TANDEM_MPI)\n",
                 lib, TANDEM_MPI_NAME, std::strcmp(TANDEM_MPI_NAME, "openmpi") == 0 ? "mpich" : "openmpi");
    std::exit(2);
  }
  int granted = MPI_THREAD_SINGLE;
  int rc;
  if (!rt.cfg.enable) {
    rc = thread_variant ? PMPI_Init_thread(argc, argv, required, &granted) : PMPI_Init(argc, argv);
    if (provided) *provided = granted;
    return rc;
  }
  struct Forcing {
    MpiAlgorithms m;
    ~Forcing() { m.after_init(); }
  } forcing;
  forcing.m.before_init(rt);
  // A job the launcher says is all on this node, without a spare core per rank, is passed
  // through (TANDEM_LOCAL, below): decided before MPI_Init when the launcher tells the
  // sizes, so that it keeps the thread level the program asked for (MPI_THREAD_MULTIPLE
  // costs Open MPI about 0.3 us a call).
  bool pass_early = false;
  if (rt.cfg.local != "on") {
    long world = env_long("OMPI_COMM_WORLD_SIZE", env_long("PMI_SIZE", -1));
    long local = env_long("OMPI_COMM_WORLD_LOCAL_SIZE", env_long("MPI_LOCALNRANKS", -1));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    pass_early = world > 0 && local == world && (rt.cfg.local == "off" || cores < 2L * local);
  }
  // Without the progress thread (TANDEM_PROGRESS=poll|block) nothing is deferred and no
  // thread of tandem's calls MPI: the program keeps the thread level it asked for.
  auto mode = progress::parse_mode(rt.cfg.progress);
  const bool no_thread = mode && *mode != progress::Mode::Thread;
  if (pass_early || no_thread) {
    rc = thread_variant ? PMPI_Init_thread(argc, argv, required, &granted) : PMPI_Init(argc, argv);
    if (!thread_variant) PMPI_Query_thread(&granted);
  } else {
    rc = PMPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &granted);
  }
  if (provided) *provided = granted;
  if (rc != MPI_SUCCESS) return rc;
  PMPI_Comm_rank(MPI_COMM_WORLD, &rt.rank);
  // Whatever happens below, collectives can run tandem's algorithms: without the deferring
  // machinery the engine has no thread, and the calling thread drives it while it waits.
  rt.engine.add_source(&rt.source);
  struct CollectivesOnly {
    Runtime& rt;
    ~CollectivesOnly() {
      if (!rt.engine.running())
        rt.engine.start(progress::engine_options(rt.cfg, progress_mode(rt.cfg, false, rt.rank)));
      rt.coll_ready.store(true, std::memory_order_release);
    }
  } collectives_only{rt};
  if (pass_early) {
    if (rt.rank == 0 && rt.cfg.verbose >= 1)
      log_message(-1, "all ranks share this node without a spare core each: calls are passed through "
                      "(TANDEM_LOCAL=on defers them)");
    return rc;
  }
  if (no_thread) {
    deferral_possible(rt.cfg, rt.rank);  // says why calls are passed through
    return rc;
  }
  if (granted < MPI_THREAD_MULTIPLE) {
    if (rt.rank == 0)
      log_message(-1, "the MPI library did not grant MPI_THREAD_MULTIPLE (got %d): every call is passed through",
                  granted);
    return rc;
  }
  if (!deferral_possible(rt.cfg, rt.rank)) return rc;
  // A job whose ranks all share this node: the communication can only overlap computation
  // if there are cores left for it.
  int world = 1, local = 1;
  PMPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm node;
  if (PMPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    PMPI_Comm_size(node, &local);
    PMPI_Comm_free(&node);
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  bool all_local = local == world;
  if (all_local && (rt.cfg.local == "off" || (rt.cfg.local == "auto" && cores < 2L * local))) {
    if (rt.rank == 0 && rt.cfg.verbose >= 1)
      log_message(-1, "all %d ranks share this node's %ld cores: calls are passed through (TANDEM_LOCAL=on defers them)",
                  world, cores);
    return rc;
  }
  const char* err = nullptr;
  if (!protect::Tracker::instance().init(protect::tracker_options(rt.cfg), &err)) {
    if (rt.rank == 0) log_message(-1, "%s: every call is passed through", err);
    return rc;
  }
  protect::Tracker::instance().set_wait_hooks({nullptr, hook_help, hook_begin, hook_end});
  defer::Core::instance().configure(defer::options(rt.cfg));
  defer::Core::instance().set_error_reporter(report_deferred_error);
  rt.engine.start(progress::engine_options(rt.cfg, progress_mode(rt.cfg, true, rt.rank)));
  rt.active.store(true, std::memory_order_release);
  if (rt.cfg.verbose >= 1 && rt.rank == 0)
    log_message(-1, "active (%s), threshold %zu bytes", TANDEM_MPI_NAME, rt.cfg.threshold);
  (void)required;
  return rc;
}

int finalize() {
  Runtime& rt = runtime();
  if (rt.active.load()) {
    rt.engine.drain();
    protect::Tracker::instance().wait_all();
    rt.active.store(false, std::memory_order_release);
  }
  if (rt.coll_ready.exchange(false)) rt.engine.stop();
  if (rt.coll) rt.coll->write_record();
  if (rt.cfg.stats) {
    Stats& s = stats();
    int rank = rt.rank;
    if (rank < 0) PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const CollStats& c = coll_stats();
    char line[640];
    // Scripts parse this line: new fields go at its end, existing ones keep their order.
    std::snprintf(line, sizeof line,
                  "tandem[rank %d]: intercepted=%llu deferred=%llu passthrough=%llu bytes_deferred=%llu "
                  "access_waits=%llu wait_us=%llu coll_tandem=%llu coll_mpi=%llu coll_background=%llu\n",
                  rank, static_cast<unsigned long long>(s.intercepted.load()),
                  static_cast<unsigned long long>(s.deferred.load()),
                  static_cast<unsigned long long>(s.passthrough.load()),
                  static_cast<unsigned long long>(s.bytes_deferred.load()),
                  static_cast<unsigned long long>(s.access_waits.load()),
                  static_cast<unsigned long long>(s.wait_us.load()),
                  static_cast<unsigned long long>(c.tandem.load()), static_cast<unsigned long long>(c.mpi.load()),
                  static_cast<unsigned long long>(c.background.load()));
    log_raw(line);
    if (rt.cfg.verbose >= 1) log_message(rank, "stepped neighbour accesses=%llu",
                                         static_cast<unsigned long long>(s.stepped.load()));
  }
  return PMPI_Finalize();
}

Extent extent_of(const void* buf, std::int64_t count, MPI_Datatype dt) {
  Extent e;
  if (count <= 0 || buf == MPI_BOTTOM || buf == MPI_IN_PLACE) return e;
  MPI_Aint lb = 0, extent = 0, tlb = 0, textent = 0;
  int size = 0;
  if (PMPI_Type_get_extent(dt, &lb, &extent) != MPI_SUCCESS ||
      PMPI_Type_get_true_extent(dt, &tlb, &textent) != MPI_SUCCESS || PMPI_Type_size(dt, &size) != MPI_SUCCESS)
    return e;
  auto base = reinterpret_cast<std::uintptr_t>(buf);
  if (extent < 0 || textent < 0) return e;  // negative strides: treat as unknown
  e.lo = reinterpret_cast<const void*>(base + static_cast<std::uintptr_t>(tlb));
  e.bytes = static_cast<std::size_t>(extent) * static_cast<std::size_t>(count - 1) + static_cast<std::size_t>(textent);
  e.contiguous = textent == size && extent == size && size > 0;
  return e;
}

void wait_for_buffer(const void* buf, int count, MPI_Datatype dt, protect::Use use) {
  auto& tracker = protect::Tracker::instance();
  if (!tracker.any_active()) return;
  Extent e = extent_of(buf, count, dt);
  if (e.bytes) tracker.wait_conflicts(e.lo, e.bytes, use);
}

}  // namespace tandem::interpose
