// Page protection of the buffers of deferred operations.
//
// A deferred send makes the pages of its buffer read-only until the send completes;
// a deferred receive makes them inaccessible and hands the transport a bounce buffer
// (same offset within the page) to write into; at completion the bounce pages are
// moved into place with mremap (no copy of the payload), the bytes of the pages that
// are not part of the message are carried over from the old pages, and the old pages
// become the next bounce buffer. See docs/overlap.md.
//
// A thread that touches protected memory faults; the handler (fault.cpp) waits until
// the operations covering the page complete, then lets the access proceed. Faults
// outside tracked pages go to the previously installed handler.
#pragma once
#include <signal.h>
#include <ucontext.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "common/config.hpp"
#include "common/memory.hpp"

namespace tandem::protect {

enum class Use { Read, Write };  // what a caller is about to do with memory

// How a waiting thread reaches the progress engine (set by the layer that owns it):
// help() drives progress once (completions, or -1 when another thread polls); begin()
// and end() bracket a wait that needs the fastest progress (async-signal-safe).
struct WaitHooks {
  void* ctx = nullptr;
  int (*help)(void* ctx) = nullptr;
  void (*begin)(void* ctx) = nullptr;
  void (*end)(void* ctx) = nullptr;
};

struct TrackerOptions {
  unsigned max_ops;            // TANDEM_MAX_OPS
  std::uint64_t bounce_pool;   // TANDEM_BOUNCE_POOL
  bool adaptive;               // TANDEM_ADAPTIVE
  unsigned adaptive_retry;     // TANDEM_ADAPTIVE_RETRY
  unsigned adaptive_patience;  // TANDEM_ADAPTIVE_PATIENCE
  unsigned cost_us;            // TANDEM_DEFER_COST_US
  unsigned cost_ps_per_byte;   // TANDEM_DEFER_COST_PS_PER_BYTE
  unsigned wait_sleep_us;      // TANDEM_WAIT_SLEEP_US
  unsigned fault_patience_us;  // TANDEM_FAULT_PATIENCE_US
};
TrackerOptions tracker_options(const Config& cfg) noexcept;

class Tracker {
 public:
  static Tracker& instance();

  // Allocates the slot table and installs the fault handlers. Returns false (with a
  // message in *error) when the handlers cannot be installed.
  bool init(const TrackerOptions& opts, const char** error);
  bool initialised() const noexcept { return slots_ != nullptr; }

  // Protects [p, p+n) for a deferred send. Returns a slot, or -1 when the memory
  // cannot be protected (the caller then passes the call through). Waits first for
  // pending receives that share a page with the buffer. Only buffers whose first and last
  // pages hold nothing else (see exclusive()) are protected: other data there may belong
  // to the MPI library, whose threads must not be stopped by the protection.
  int begin_send(const void* p, std::size_t n);
  // Protects [p, p+n) for a deferred receive; *dst receives the address the
  // transport must write the message to. Returns a slot or -1.
  int begin_recv(void* p, std::size_t n, void** dst);
  // Completion (any thread, never inside a signal handler).
  void end_send(int slot);
  void end_recv(int slot, std::size_t received_bytes);
  void cancel_recv(int slot);

  // Waits until no deferred operation conflicts with the caller using [p, p+n):
  // Use::Read conflicts with pending receives, Use::Write with any pending operation
  // on the same pages. Returns true when it had to wait.
  bool wait_conflicts(const void* p, std::size_t n, Use use);
  // Whether deferring an operation on [p, p+n) is likely to pay for its protection: false
  // when recent operations on the same buffer were waited for almost at once (the program
  // touched the buffer before the protection cost could be recovered). Every few refusals
  // it says yes again, to notice a change. Always true when adaptation is off.
  bool advise(const void* p, std::size_t n) noexcept;
  void set_adaptive(bool on) noexcept { opts_.adaptive = on; }
  // Records whether deferring an operation on the buffer at `lo` paid off (done at release).
  void learn(std::uintptr_t lo, bool paid) noexcept;
  // An operation of n bytes deferred at start_us and first waited for at first_wait_us
  // (0: never) paid off when the program ran longer than twice what deferring costs
  // (TANDEM_DEFER_COST_US + n x TANDEM_DEFER_COST_PS_PER_BYTE).
  bool paid_off(std::uint64_t start_us, std::uint64_t first_wait_us, std::size_t n) const noexcept;

  // For tandem's own threads and the MPI library inside them, which must not wait: whether
  // [p, p+n) shares a page with a pending operation that keeps the kernel from writing it
  // (for_kernel_write) or reading it, and a way to write such memory anyway (through
  // /proc/self/mem, serialised with completions). See interpose/libc.cpp.
  bool touches_protected(const void* p, std::size_t n, bool for_kernel_write) const noexcept;
  bool write_protected(void* dst, const void* src, std::size_t n);
  bool read_protected(void* dst, const void* src, std::size_t n);

  // Waits until every deferred operation completed.
  void wait_all();
  bool any_active() const noexcept { return active_.load(std::memory_order_acquire) > 0; }

  // Fault handling (fault.cpp). Return true when the fault was tandem's and was dealt with.
  bool on_segv(siginfo_t* info, ucontext_t* uc) noexcept;
  bool on_trap(ucontext_t* uc) noexcept;

  // Lets a waiting thread drive progress itself (set by the layer that owns the engine).
  void set_wait_hooks(const WaitHooks& h) noexcept { hooks_ = h; }

  // Handlers the program installed; tandem's stay installed and chain to these.
  struct sigaction* chained(int sig) noexcept;

 private:
  enum : std::uint32_t { kFree = 0, kSend = 1, kRecv = 2, kCompleting = 3 };  // kCompleting: a receive being swapped in
  struct Slot {
    std::atomic<std::uint32_t> state{kFree};
    std::atomic<std::uint32_t> gen{0};  // futex word, bumped at release
    std::uintptr_t lo = 0, hi = 0;      // the buffer
    std::uintptr_t plo = 0, phi = 0;    // its pages
    std::uintptr_t bounce = 0;          // receive: where the transport writes (page aligned)
    std::uint64_t start_us = 0;         // when the operation was deferred
    std::atomic<std::uint64_t> first_wait_us{0};  // when a thread first had to wait for it (0: never)
    std::atomic<int> steppers{0};                 // threads letting one instruction through its pages
  };
  // What deferring operations on a buffer has been worth lately (see advise()).
  struct History {
    std::atomic<std::uintptr_t> addr{0};
    std::atomic<int> score{0};
    std::atomic<unsigned> skipped{0};
  };
  static constexpr unsigned kHistory = 1024;  // must match history_index()
  struct Region {
    std::uintptr_t addr, len;
  };

  // Slots (other than `self`) active on pages [plo, phi) that conflict; -1 if none.
  int find_conflict_locked(std::uintptr_t plo, std::uintptr_t phi, bool any_kind) const;
  int alloc_slot_locked();
  int reserve(std::unique_lock<std::mutex>& g, std::uintptr_t lo, std::uintptr_t hi, bool recv);
  void release_locked(int slot);
  void wait_slot(int slot, std::uint32_t gen, bool count_as_access);
  int required_prot(std::uintptr_t page) const noexcept;  // lock-free, for the handlers
  void reprotect_page(std::uintptr_t page) noexcept;
  std::uintptr_t pool_take(std::size_t len);
  void pool_put(std::uintptr_t addr, std::size_t len);
  bool proc_mem(bool write, std::uintptr_t at, char* local, std::size_t n);
  bool copy_into_protected(std::uintptr_t dst, const void* src, std::size_t n);
  static bool protected_hook(std::uintptr_t lo, std::uintptr_t hi);
  static bool exclusive(std::uintptr_t lo, std::uintptr_t hi, const struct VmaInfo& vi);

  Slot* slots_ = nullptr;
  unsigned nslots_ = 0;
  std::atomic<unsigned> high_water_{0};  // slots [0, high_water) may be in use
  std::atomic<int> active_{0};
  std::atomic<std::uint32_t> epoch_{0};     // bumped after every protection change
  std::atomic<std::uint32_t> free_gen_{0};  // futex word: a slot became free
  std::mutex mu_;
  std::vector<Region, PageAllocator<Region>> pool_;
  std::size_t pool_bytes_ = 0;
  int mem_fd_ = -1;  // /proc/self/mem, for the copy fallback
  WaitHooks hooks_;
  TrackerOptions opts_{};  // set by init(); nothing reads it before (no allocation here: mmap calls reach instance())
  History history_[kHistory];
  void note_wait(Slot& s) noexcept;
  void begin_urgent() noexcept {
    if (hooks_.begin) hooks_.begin(hooks_.ctx);
  }
  void end_urgent() noexcept {
    if (hooks_.end) hooks_.end(hooks_.ctx);
  }
};

}  // namespace tandem::protect
