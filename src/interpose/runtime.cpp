#include "interpose/runtime.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

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
