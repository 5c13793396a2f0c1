// SIGSEGV and SIGTRAP handling for protected buffers. Everything here is async-signal-safe:
// no locks, no allocation; only atomics, futex, mprotect and sigaction.
#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.hpp"
#include "common/stats.hpp"
#include "common/sys.hpp"
#include "common/thread_flags.hpp"
#include "common/wait.hpp"
#include "protect/tracker.hpp"
#include "protect/vma.hpp"

namespace tandem::protect {
namespace {

const std::uintptr_t kPage = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
constexpr int kMaxStepped = 8;
// A faulting thread sleeps on the covering operation's futex, which its completion always
// wakes; it re-checks this often anyway (a safety net, not a tuning). A wait for data that
// merely shares a page with the buffer re-checks its patience (TANDEM_FAULT_PATIENCE_US)
// ten times over.
constexpr long kSafetyWakeNs = 100'000'000;
constexpr long kPatienceChecks = 10;

// The program's handlers (and the MPI library's), which tandem's chain to.
struct sigaction g_prev_segv, g_prev_trap;
int (*g_real_sigaction)(int, const struct sigaction*, struct sigaction*) = nullptr;

// Per-thread state of the single-step mechanism.
thread_local std::uintptr_t t_stepped[kMaxStepped] __attribute__((tls_model("initial-exec")));
thread_local int t_stepped_slot[kMaxStepped] __attribute__((tls_model("initial-exec")));
thread_local int t_nstepped __attribute__((tls_model("initial-exec"))) = 0;
thread_local std::uintptr_t t_last_addr __attribute__((tls_model("initial-exec"))) = 0;
thread_local std::uint32_t t_last_epoch __attribute__((tls_model("initial-exec"))) = 0;

constexpr unsigned long kTrapFlag = 0x100;

void chain(int sig, siginfo_t* info, void* uc, struct sigaction* prev) {
  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction) {
      if (prev->sa_flags & SA_RESETHAND) {
        struct sigaction dfl{};
        dfl.sa_handler = SIG_DFL;
        g_real_sigaction(sig, &dfl, nullptr);
      }
      prev->sa_sigaction(sig, info, uc);
      return;
    }
  } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
    prev->sa_handler(sig);
    return;
  }
  // Default action: restore it; the faulting instruction runs again and the kernel
  // delivers the default action (core dump) as it would have without tandem.
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  g_real_sigaction(sig, &dfl, nullptr);
  if (sig == SIGTRAP) raise(SIGTRAP);
}

void segv_handler(int sig, siginfo_t* info, void* uc) {
  int saved = errno;
  bool ours = Tracker::instance().on_segv(info, static_cast<ucontext_t*>(uc));
  errno = saved;
  if (!ours) chain(sig, info, uc, &g_prev_segv);
}

void trap_handler(int sig, siginfo_t* info, void* uc) {
  int saved = errno;
  bool ours = Tracker::instance().on_trap(static_cast<ucontext_t*>(uc));
  errno = saved;
  if (!ours) chain(sig, info, uc, &g_prev_trap);
}

}  // namespace

struct sigaction* Tracker::chained(int sig) noexcept {
  if (sig == SIGSEGV) return &g_prev_segv;
  if (sig == SIGTRAP) return &g_prev_trap;
  return nullptr;
}

int Tracker::required_prot(std::uintptr_t page) const noexcept {
  int prot = PROT_READ | PROT_WRITE;
  unsigned n = high_water_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    const Slot& s = slots_[i];
    std::uint32_t st = s.state.load(std::memory_order_acquire);
    if (st == kFree || page < s.plo || page >= s.phi) continue;
    if (st == kRecv || st == kCompleting) return PROT_NONE;
    prot = PROT_READ;
  }
  return prot;
}

void Tracker::reprotect_page(std::uintptr_t page) noexcept {
  // Retry until no protection change raced with ours.
  for (;;) {
    std::uint32_t e = epoch_.load(std::memory_order_acquire);
    sys::mprotect(reinterpret_cast<void*>(page), kPage, required_prot(page));
    if (epoch_.load(std::memory_order_acquire) == e) return;
  }
}

bool Tracker::on_segv(siginfo_t* info, ucontext_t* uc) noexcept {
  if (!slots_ || (info->si_code != SEGV_ACCERR && info->si_code != SEGV_MAPERR)) return false;
  auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  std::uintptr_t page = addr & ~(kPage - 1);
  std::uint64_t start = 0;
  bool waited = false;
  for (;;) {
    std::uint32_t epoch = epoch_.load(std::memory_order_acquire);
    unsigned n = high_water_.load(std::memory_order_acquire);
    int cover = -1;
    bool in_buffer = false;
    for (unsigned i = 0; i < n; ++i) {
      const Slot& s = slots_[i];
      if (s.state.load(std::memory_order_acquire) == kFree || page < s.plo || page >= s.phi) continue;
      cover = static_cast<int>(i);
      if (addr >= s.lo && addr < s.hi) {
        in_buffer = true;
        break;
      }
    }
    if (cover < 0) {
      if (waited) {
        stats().access_waits.fetch_add(1, std::memory_order_relaxed);
        stats().wait_us.fetch_add(now_us() - start, std::memory_order_relaxed);
        t_last_addr = 0;
        return true;  // the access can proceed now
      }
      // Not covered now. If a protection change happened since this thread last faulted here,
      // the fault may have been ours and already resolved: let the instruction run once more.
      if (t_last_addr == addr && t_last_epoch == epoch) return false;
      t_last_addr = addr, t_last_epoch = epoch;
      return true;
    }
    // Covered by a deferred operation. Threads that may be needed to complete it never wait;
    // accesses to bytes outside the buffer (data sharing a page with it) wait a bounded time.
    if (!start) start = now_us();
    bool step = t_internal > 0 || (!in_buffer && now_us() - start > opts_.fault_patience_us);
    if (step) {
      if (t_nstepped >= kMaxStepped) return false;  // cannot happen for one instruction
      // Announce the step, then check the pages are not being swapped in (end_recv waits
      // for steppers to leave before it moves them): otherwise wait for that to finish.
      Slot& cs = slots_[cover];
      cs.steppers.fetch_add(1, std::memory_order_seq_cst);
      if (cs.state.load(std::memory_order_seq_cst) == kCompleting) {
        cs.steppers.fetch_sub(1, std::memory_order_seq_cst);
        while (cs.state.load(std::memory_order_acquire) == kCompleting) sched_yield();
        continue;
      }
      t_stepped_slot[t_nstepped] = cover;
      t_stepped[t_nstepped++] = page;
      sys::mprotect(reinterpret_cast<void*>(page), kPage, PROT_READ | PROT_WRITE);
      uc->uc_mcontext.gregs[REG_EFL] |= kTrapFlag;
      stats().stepped.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    Slot& s = slots_[cover];
    std::uint32_t gen = s.gen.load(std::memory_order_acquire);
    if (s.state.load(std::memory_order_acquire) != kFree) {
      if (in_buffer) note_wait(s);
      begin_urgent();
      long neighbour_ns = std::max(1000L, static_cast<long>(opts_.fault_patience_us) * 1000 / kPatienceChecks);
      futex_wait(&s.gen, gen, in_buffer ? kSafetyWakeNs : neighbour_ns);
      end_urgent();
    }
    waited = true;
  }
}

bool Tracker::on_trap(ucontext_t* uc) noexcept {
  if (t_nstepped == 0) return false;
  uc->uc_mcontext.gregs[REG_EFL] &= ~kTrapFlag;
  while (t_nstepped > 0) {
    --t_nstepped;
    reprotect_page(t_stepped[t_nstepped]);
    slots_[t_stepped_slot[t_nstepped]].steppers.fetch_sub(1, std::memory_order_seq_cst);
  }
  return true;
}

bool Tracker::init(const TrackerOptions& opts, const char** error) {
  if (slots_) return true;
  opts_ = opts;
  const unsigned max_ops = opts.max_ops;
  sys::resolve();
  // The C library's sigaction, not the interposed one of the preload library.
  g_real_sigaction =
      reinterpret_cast<int (*)(int, const struct sigaction*, struct sigaction*)>(dlsym(RTLD_NEXT, "sigaction"));
  if (!g_real_sigaction) {
    *error = "cannot find the C library's sigaction";
    return false;
  }
  void* mem = sys::mmap(nullptr, sizeof(Slot) * max_ops, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    *error = "cannot allocate the operation table";
    return false;
  }
  auto* slots = static_cast<Slot*>(mem);
  for (unsigned i = 0; i < max_ops; ++i) new (&slots[i]) Slot;
  nslots_ = max_ops;
  mem_fd_ = sys::open_raw("/proc/self/mem", O_RDWR | O_CLOEXEC);
  struct sigaction sa{};
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  struct sigaction st = sa;
  st.sa_sigaction = trap_handler;
  if (g_real_sigaction(SIGSEGV, &sa, &g_prev_segv) != 0 || g_real_sigaction(SIGTRAP, &st, &g_prev_trap) != 0) {
    *error = "cannot install the SIGSEGV/SIGTRAP handlers";
    return false;
  }
  vma_cache().set_protected_hook(&Tracker::protected_hook);
  slots_ = slots;  // last: the handlers act only once everything is ready
  return true;
}

}  // namespace tandem::protect
