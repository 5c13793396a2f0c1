#include "protect/tracker.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "common/stats.hpp"
#include "common/sys.hpp"
#include "common/wait.hpp"
#include "protect/vma.hpp"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

namespace tandem::protect {
namespace {

const std::uintptr_t kPage = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
inline std::uintptr_t page_down(std::uintptr_t a) { return a & ~(kPage - 1); }
inline std::uintptr_t page_up(std::uintptr_t a) { return (a + kPage - 1) & ~(kPage - 1); }
// A waiter sleeps on a completion's futex, which the completion always wakes; without a
// way to drive progress itself it re-checks this often anyway (a safety net, not a tuning).
constexpr long kSafetyWakeNs = 10'000'000;

}  // namespace

TrackerOptions tracker_options(const Config& c) noexcept {
  TrackerOptions o;
  o.max_ops = c.max_ops;
  o.bounce_pool = c.bounce_pool;
  o.adaptive = c.adaptive;
  o.adaptive_retry = c.adaptive_retry;
  o.adaptive_patience = c.adaptive_patience;
  o.cost_us = c.defer_cost_us;
  o.cost_ps_per_byte = c.defer_cost_ps;
  o.wait_sleep_us = c.wait_sleep_us;
  o.fault_patience_us = c.fault_patience_us;
  return o;
}

Tracker& Tracker::instance() { return immortal<Tracker>(); }

bool Tracker::protected_hook(std::uintptr_t lo, std::uintptr_t hi) {
  const Tracker& t = instance();
  if (!t.slots_) return false;
  unsigned n = t.high_water_.load(std::memory_order_acquire);
  for (std::uintptr_t p = lo; p < hi; p += kPage) {
    bool found = false;
    for (unsigned i = 0; i < n && !found; ++i) {
      const Slot& s = t.slots_[i];
      found = s.state.load(std::memory_order_acquire) != kFree && s.plo <= p && p < s.phi;
    }
    if (!found) return false;
  }
  return true;
}

// The pages [page_down(lo), page_up(hi)) hold nothing but the buffer: its ends are page
// aligned, or the mapping starts and ends with it (a block the allocator mapped for itself,
// with at most its header before it). Heap (brk) blocks share their pages.
bool Tracker::exclusive(std::uintptr_t lo, std::uintptr_t hi, const VmaInfo& vi) {
  std::uintptr_t plo = page_down(lo), phi = page_up(hi);
  bool head = lo == plo || (!vi.heap && vi.first_start == plo && lo - plo <= 64);
  bool tail = hi == phi || (!vi.heap && vi.last_end == phi);
  return head && tail;
}

int Tracker::find_conflict_locked(std::uintptr_t plo, std::uintptr_t phi, bool any_kind) const {
  unsigned n = high_water_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < n; ++i) {
    const Slot& s = slots_[i];
    std::uint32_t st = s.state.load(std::memory_order_relaxed);
    if (st == kFree || (!any_kind && st == kSend)) continue;
    if (s.plo < phi && plo < s.phi) return static_cast<int>(i);
  }
  return -1;
}

int Tracker::alloc_slot_locked() {
  unsigned n = high_water_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < n; ++i)
    if (slots_[i].state.load(std::memory_order_relaxed) == kFree) return static_cast<int>(i);
  if (n < nslots_) {
    high_water_.store(n + 1, std::memory_order_release);
    return static_cast<int>(n);
  }
  return -1;
}

namespace {
inline unsigned history_index(std::uintptr_t addr) {
  return static_cast<unsigned>((addr >> 6) * 0x9E3779B97F4A7C15ull >> 54) % 1024u;
}
}  // namespace

void Tracker::note_wait(Slot& s) noexcept {
  std::uint64_t expected = 0;
  s.first_wait_us.compare_exchange_strong(expected, now_us(), std::memory_order_acq_rel);
}

bool Tracker::paid_off(std::uint64_t start_us, std::uint64_t first_wait_us, std::size_t n) const noexcept {
  // What deferring n bytes costs: protecting and releasing them, and a fault with its
  // wake-up (TANDEM_DEFER_COST_*; bench_protect_cost measures them). Deferring pays when
  // the program runs longer than that before it waits.
  std::uint64_t overhead_us = opts_.cost_us + static_cast<std::uint64_t>(n) * opts_.cost_ps_per_byte / 1000000;
  return first_wait_us == 0 || first_wait_us - start_us > 2 * overhead_us;
}

void Tracker::learn(std::uintptr_t lo, bool paid) noexcept {
  History& h = history_[history_index(lo)];
  if (h.addr.load(std::memory_order_relaxed) != lo) {
    h.addr.store(lo, std::memory_order_relaxed);
    h.score.store(0, std::memory_order_relaxed);
  }
  // The score counts recent outcomes, bounded at twice the patience either way so that a
  // change of the program's behaviour shows within a few operations.
  const int bound = 2 * static_cast<int>(opts_.adaptive_patience);
  int sc = h.score.load(std::memory_order_relaxed) + (paid ? 1 : -1);
  h.score.store(sc < -bound ? -bound : sc > bound ? bound : sc, std::memory_order_relaxed);
}

bool Tracker::advise(const void* p, std::size_t) noexcept {
  if (!opts_.adaptive) return true;
  auto lo = reinterpret_cast<std::uintptr_t>(p);
  History& h = history_[history_index(lo)];
  if (h.addr.load(std::memory_order_relaxed) != lo ||
      h.score.load(std::memory_order_relaxed) > -static_cast<int>(opts_.adaptive_patience))
    return true;
  // Mostly useless lately: pass through, but try again every adaptive_retry-th time.
  return h.skipped.fetch_add(1, std::memory_order_relaxed) % opts_.adaptive_retry == opts_.adaptive_retry - 1;
}

void Tracker::wait_slot(int slot, std::uint32_t gen, bool count_as_access) {
  std::uint64_t t0 = now_us();
  if (slots_[slot].gen.load(std::memory_order_acquire) == gen) note_wait(slots_[slot]);
  begin_urgent();
  while (slots_[slot].gen.load(std::memory_order_acquire) == gen) {
    // Drive progress ourselves, then sleep until the completion wakes us (or briefly, to
    // poll again): never yield in a loop, which on a core shared with the progress thread
    // can leave both threads waiting for each other's scheduler slice (measured: 7 ms
    // per round trip).
    int k = hooks_.help ? hooks_.help(hooks_.ctx) : -1;
    if (k <= 0 && slots_[slot].gen.load(std::memory_order_acquire) == gen)
      futex_wait(&slots_[slot].gen, gen,
                 hooks_.help ? static_cast<long>(opts_.wait_sleep_us) * 1000 : kSafetyWakeNs);
  }
  end_urgent();
  if (count_as_access) {
    stats().access_waits.fetch_add(1, std::memory_order_relaxed);
    stats().wait_us.fetch_add(now_us() - t0, std::memory_order_relaxed);
  }
}

// With g held on return: a free slot for a buffer at [lo, hi) once no pending operation
// conflicts with it (a send conflicts with receives, a receive with everything), or -1 when
// its memory cannot be protected for that use.
int Tracker::reserve(std::unique_lock<std::mutex>& g, std::uintptr_t lo, std::uintptr_t hi, bool recv) {
  std::uintptr_t plo = page_down(lo), phi = page_up(hi);
  for (;;) {
    g = std::unique_lock<std::mutex>(mu_);
    int c = find_conflict_locked(plo, phi, /*any_kind=*/recv);
    if (c >= 0) {
      std::uint32_t gen = slots_[c].gen.load(std::memory_order_acquire);
      g.unlock();
      wait_slot(c, gen, true);
      continue;
    }
    VmaInfo vi = vma_cache().query(plo, phi);
    if (!vi.mapped || !vi.rw || sys::on_current_stack(plo, phi) || !exclusive(lo, hi, vi)) return -1;
    if (recv && (!vi.private_ || vi.stack)) return -1;  // page moves need private, ordinary memory
    int s = alloc_slot_locked();
    if (s >= 0) return s;
    std::uint32_t fg = free_gen_.load(std::memory_order_acquire);
    g.unlock();
    begin_urgent();
    futex_wait(&free_gen_, fg, kSafetyWakeNs);
    end_urgent();
  }
}

int Tracker::begin_send(const void* p, std::size_t n) {
  if (!slots_ || n == 0) return -1;
  auto lo = reinterpret_cast<std::uintptr_t>(p), hi = lo + n;
  std::uintptr_t plo = page_down(lo), phi = page_up(hi);
  std::unique_lock<std::mutex> g;
  int s = reserve(g, lo, hi, false);
  if (s < 0) return -1;
  Slot& sl = slots_[s];
  sl.lo = lo, sl.hi = hi, sl.plo = plo, sl.phi = phi, sl.bounce = 0;
  sl.start_us = now_us();
  sl.first_wait_us.store(0, std::memory_order_relaxed);
  sl.state.store(kSend, std::memory_order_release);  // visible to the handler before the pages are
  if (sys::mprotect(reinterpret_cast<void*>(plo), phi - plo, PROT_READ) != 0) {
    sl.state.store(kFree, std::memory_order_release);
    return -1;
  }
  active_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  return s;
}

int Tracker::begin_recv(void* p, std::size_t n, void** dst) {
  if (!slots_ || n == 0) return -1;
  auto lo = reinterpret_cast<std::uintptr_t>(p), hi = lo + n;
  std::uintptr_t plo = page_down(lo), phi = page_up(hi);
  std::unique_lock<std::mutex> g;
  int s = reserve(g, lo, hi, true);
  if (s < 0) return -1;
  std::uintptr_t bounce = pool_take(phi - plo);
  if (!bounce) return -1;
  Slot& sl = slots_[s];
  sl.lo = lo, sl.hi = hi, sl.plo = plo, sl.phi = phi, sl.bounce = bounce;
  sl.start_us = now_us();
  sl.first_wait_us.store(0, std::memory_order_relaxed);
  sl.state.store(kRecv, std::memory_order_release);
  if (sys::mprotect(reinterpret_cast<void*>(plo), phi - plo, PROT_NONE) != 0) {
    sl.state.store(kFree, std::memory_order_release);
    pool_put(bounce, phi - plo);
    return -1;
  }
  active_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  *dst = reinterpret_cast<void*>(bounce + (lo - plo));
  return s;
}

void Tracker::release_locked(int slot) {
  Slot& sl = slots_[slot];
  learn(sl.lo, paid_off(sl.start_us, sl.first_wait_us.load(std::memory_order_acquire), sl.hi - sl.lo));
  sl.state.store(kFree, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  active_.fetch_sub(1, std::memory_order_acq_rel);
  sl.gen.fetch_add(1, std::memory_order_acq_rel);
  futex_wake_all(&sl.gen);
  free_gen_.fetch_add(1, std::memory_order_acq_rel);
  futex_wake_all(&free_gen_);
}

void Tracker::end_send(int slot) {
  std::lock_guard<std::mutex> g(mu_);
  Slot& sl = slots_[slot];
  // Give back write access to the pages no other pending send still covers.
  std::uintptr_t run = 0;
  auto flush = [&](std::uintptr_t end) {
    if (run) sys::mprotect(reinterpret_cast<void*>(run), end - run, PROT_READ | PROT_WRITE);
    run = 0;
  };
  unsigned n = high_water_.load(std::memory_order_relaxed);
  for (std::uintptr_t p = sl.plo; p < sl.phi; p += kPage) {
    bool covered = false;
    for (unsigned i = 0; i < n && !covered; ++i)
      covered = static_cast<int>(i) != slot && slots_[i].state.load(std::memory_order_relaxed) == kSend &&
                slots_[i].plo <= p && p < slots_[i].phi;
    if (covered) flush(p);
    else if (!run) run = p;
  }
  flush(sl.phi);
  release_locked(slot);
}

// Moves n bytes between `local` and address `at` of this process through /proc/self/mem,
// which reaches pages whatever their protection.
bool Tracker::proc_mem(bool write, std::uintptr_t at, char* local, std::size_t n) {
  if (mem_fd_ < 0) return false;
  while (n > 0) {
    long k = write ? sys::pwrite_raw(mem_fd_, local, n, static_cast<off_t>(at))
                   : sys::pread_raw(mem_fd_, local, n, static_cast<off_t>(at));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    local += k, at += static_cast<std::uintptr_t>(k), n -= static_cast<std::size_t>(k);
  }
  return true;
}

bool Tracker::copy_into_protected(std::uintptr_t dst, const void* src, std::size_t n) {
  return proc_mem(true, dst, const_cast<char*>(static_cast<const char*>(src)), n);
}

void Tracker::end_recv(int slot, std::size_t received) {
  std::lock_guard<std::mutex> g(mu_);
  Slot& sl = slots_[slot];
  // No thread may be letting an instruction through these pages while they move.
  sl.state.store(kCompleting, std::memory_order_seq_cst);
  while (sl.steppers.load(std::memory_order_seq_cst) != 0) sched_yield();
  std::size_t len = sl.phi - sl.plo;
  if (received > sl.hi - sl.lo) received = sl.hi - sl.lo;
  std::uintptr_t off = sl.lo - sl.plo;  // message offset within the pages
  auto* user = reinterpret_cast<void*>(sl.plo);
  // Move the old pages out (the range stays mapped, empty and inaccessible).
  void* old = sys::mremap(user, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, nullptr);
  if (old != MAP_FAILED) {
    auto o = reinterpret_cast<std::uintptr_t>(old);
    sys::mprotect(old, len, PROT_READ | PROT_WRITE);
    if (received * 2 < len) {
      // Little data: copy the message into the old pages and move those back.
      std::memcpy(reinterpret_cast<void*>(o + off), reinterpret_cast<void*>(sl.bounce + off), received);
      if (sys::mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, user) == MAP_FAILED) std::abort();
      pool_put(sl.bounce, len);
    } else {
      // Carry the bytes around the message over from the old pages, then move the bounce pages in.
      std::memcpy(reinterpret_cast<void*>(sl.bounce), old, off);
      std::memcpy(reinterpret_cast<void*>(sl.bounce + off + received), reinterpret_cast<void*>(o + off + received),
                  len - off - received);
      if (sys::mremap(reinterpret_cast<void*>(sl.bounce), len, len, MREMAP_MAYMOVE | MREMAP_FIXED, user) == MAP_FAILED)
        std::abort();
      pool_put(o, len);
    }
  } else {
    // The pages span mappings that cannot move: write the message through /proc/self/mem.
    if (!copy_into_protected(sl.lo, reinterpret_cast<void*>(sl.bounce + off), received)) {
      // Last resort (no /proc/self/mem): the memory is briefly readable before the copy ends.
      sys::mprotect(user, len, PROT_READ | PROT_WRITE);
      std::memcpy(reinterpret_cast<void*>(sl.lo), reinterpret_cast<void*>(sl.bounce + off), received);
    }
    sys::mprotect(user, len, PROT_READ | PROT_WRITE);
    pool_put(sl.bounce, len);
  }
  release_locked(slot);
}

void Tracker::cancel_recv(int slot) {
  std::lock_guard<std::mutex> g(mu_);
  Slot& sl = slots_[slot];
  sys::mprotect(reinterpret_cast<void*>(sl.plo), sl.phi - sl.plo, PROT_READ | PROT_WRITE);
  pool_put(sl.bounce, sl.phi - sl.plo);
  release_locked(slot);
}

bool Tracker::touches_protected(const void* p, std::size_t n, bool for_kernel_write) const noexcept {
  if (!slots_ || n == 0 || !any_active()) return false;
  auto lo = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t plo = page_down(lo), phi = page_up(lo + n);
  unsigned hw = high_water_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < hw; ++i) {
    std::uint32_t st = slots_[i].state.load(std::memory_order_acquire);
    if (st == kFree || (!for_kernel_write && st == kSend)) continue;
    if (slots_[i].plo < phi && plo < slots_[i].phi) return true;
  }
  return false;
}

bool Tracker::write_protected(void* dst, const void* src, std::size_t n) {
  std::lock_guard<std::mutex> g(mu_);
  return copy_into_protected(reinterpret_cast<std::uintptr_t>(dst), src, n);
}

bool Tracker::read_protected(void* dst, const void* src, std::size_t n) {
  std::lock_guard<std::mutex> g(mu_);
  return proc_mem(false, reinterpret_cast<std::uintptr_t>(src), static_cast<char*>(dst), n);
}

bool Tracker::wait_conflicts(const void* p, std::size_t n, Use use) {
  if (!any_active() || n == 0) return false;
  auto lo = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t plo = page_down(lo), phi = page_up(lo + n);
  bool waited = false;
  for (;;) {
    std::unique_lock<std::mutex> g(mu_);
    int c = find_conflict_locked(plo, phi, use == Use::Write);
    if (c < 0) return waited;
    std::uint32_t gen = slots_[c].gen.load(std::memory_order_acquire);
    g.unlock();
    wait_slot(c, gen, true);
    waited = true;
  }
}

void Tracker::wait_all() {
  while (any_active()) {
    std::unique_lock<std::mutex> g(mu_);
    unsigned n = high_water_.load(std::memory_order_relaxed);
    int c = -1;
    for (unsigned i = 0; i < n && c < 0; ++i)
      if (slots_[i].state.load(std::memory_order_relaxed) != kFree) c = static_cast<int>(i);
    if (c < 0) return;
    std::uint32_t gen = slots_[c].gen.load(std::memory_order_acquire);
    g.unlock();
    wait_slot(c, gen, false);
  }
}

std::uintptr_t Tracker::pool_take(std::size_t len) {
  // Best fit among the kept regions; split larger ones.
  int best = -1;
  for (std::size_t i = 0; i < pool_.size(); ++i)
    if (pool_[i].len >= len && (best < 0 || pool_[i].len < pool_[static_cast<std::size_t>(best)].len))
      best = static_cast<int>(i);
  if (best >= 0) {
    Region& r = pool_[static_cast<std::size_t>(best)];
    std::uintptr_t a = r.addr;
    pool_bytes_ -= len;
    if (r.len == len) pool_.erase(pool_.begin() + best);
    else r.addr += len, r.len -= len;
    return a;
  }
  void* m = sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? 0 : reinterpret_cast<std::uintptr_t>(m);
}

void Tracker::pool_put(std::uintptr_t addr, std::size_t len) {
  if (pool_bytes_ + len > opts_.bounce_pool) {
    sys::munmap(reinterpret_cast<void*>(addr), len);
    return;
  }
  pool_.push_back({addr, len});
  pool_bytes_ += len;
}

}  // namespace tandem::protect
