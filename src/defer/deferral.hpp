// The one deferral core of point-to-point calls and collectives: what an operation that
// completes after its call returned holds of the program's memory, and the release of it.
//
//   acquire   a completion record (Op) from tandem's own pages
//   hold      each region the operation uses: a buffer it reads is made read-only
//             (hold_read) or copied into tandem's memory (hold_copy); a buffer it writes is
//             made inaccessible and the transport gets a bounce buffer (hold_write);
//   started   the transport took the operation: it counts as deferred, and the Op's
//             Completion goes to the transport's progress source (or the collective's
//             executor calls finish());
//   complete  at completion every hold is released (the bounce pages moved into place with
//             the received byte count), then the owner's hook runs and the Op returns to the
//             pool; an error the transport reports is passed to the error reporter;
//   abandon   the transport refused the operation: every hold is undone.
// The point-to-point policy (copy small sends, protect large ones, copy what cannot be
// protected alone up to a limit) is here too, so that the PMPI wrappers only translate
// arguments. Free of MPI; nothing here throws.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "common/config.hpp"
#include "progress/completion.hpp"

namespace tandem::defer {

struct Options {
  std::uint64_t threshold;   // TANDEM_THRESHOLD: smaller operations are not deferred
  std::uint64_t copy_below;  // TANDEM_COPY_BELOW: sends up to this size are copied
  std::uint64_t copy_max;    // TANDEM_COPY_MAX: largest copy of a send that cannot be protected
};
Options options(const Config& cfg) noexcept;

struct Copy;  // a copy in tandem's memory (deferral.cpp)

class Op final : public progress::Completion {
 public:
  // What the operation was and with whom, for error messages ("MPI_Send", peer 3).
  const char* what = "";
  int peer = -1;
  // Runs after the holds are released, before the Op goes back to the pool.
  void (*on_release)(void* ctx) = nullptr;
  void* release_ctx = nullptr;

 private:
  friend class Core;
  int read_slot_ = -1, write_slot_ = -1;
  std::size_t write_bytes_ = 0;     // the held receive region
  bool write_counts_result_ = false;  // the result's byte count is what arrived (point-to-point)
  Copy* copies_[2] = {nullptr, nullptr};
  Op* next_free_ = nullptr;
};

class Core {
 public:
  static Core& instance() noexcept;
  void configure(const Options& o) noexcept { opts_ = o; }
  const Options& options() const noexcept { return opts_; }
  // Called with every failed deferred operation (the transport's error code).
  void set_error_reporter(void (*fn)(const Op& op, int error)) noexcept { report_ = fn; }

  // Whether an operation on [lo, lo + n) is worth deferring at all: contiguous, at least
  // the threshold, and the adaptive advice agrees.
  bool worth(const void* lo, std::size_t n, bool contiguous) const noexcept;

  Op* acquire() noexcept;  // nullptr when out of memory
  // Holds (each at most once per Op). hold_read protects [p, p+n) read-only; false when it
  // cannot. hold_copy copies [p, p+n) into tandem's memory (after waiting for pending
  // receives into it) and returns the copy, or nullptr. hold_write protects [p, p+n) and
  // returns where the transport must write instead, or nullptr; `counts_result`: the
  // completion's byte count is what arrived (else all n bytes are taken as written).
  bool hold_read(Op* op, const void* p, std::size_t n) noexcept;
  void* hold_copy(Op* op, const void* p, std::size_t n) noexcept;
  void* hold_write(Op* op, void* p, std::size_t n, bool counts_result) noexcept;

  // The transport took the operation (`bytes` of payload: statistics).
  void started(Op* op, std::size_t bytes) noexcept;
  // The transport refused it: undoes every hold and returns the Op to the pool.
  void abandon(Op* op) noexcept;
  // Completion without a transport source (a collective's executor finished): as when the
  // Op's Completion runs.
  void finish(Op* op, const progress::Result& r) noexcept;

  // Point-to-point policy. A deferred send of [lo, lo + n): copied when small, protected
  // when large, copied when its pages hold other data (up to copy_max); *from is what the
  // transport must read (lo, or the copy). nullptr: pass the call through.
  Op* send(const void* lo, std::size_t n, const void** from) noexcept;
  // A send that must come from a copy (the buffer is received into next), up to copy_max.
  Op* send_copy(const void* lo, std::size_t n, const void** from) noexcept;
  // A deferred receive into [lo, lo + n): *to is where the transport writes. nullptr: pass
  // it through.
  Op* recv(void* lo, std::size_t n, void** to) noexcept;

 private:
  static void on_complete(progress::Completion* c, const progress::Result& r);
  void release(Op* op, const progress::Result& r) noexcept;
  Copy* copy_get(std::size_t bytes) noexcept;
  void copy_put(Copy* c) noexcept;
  void put(Op* op) noexcept;
  static Op* new_batch(Op** free_list) noexcept;

  Options opts_{};  // set by configure() before any deferral
  void (*report_)(const Op&, int) = nullptr;
  std::mutex mu_;        // the free lists below
  Op* free_ops_ = nullptr;
  static constexpr unsigned kCopyClasses = 48;  // power-of-two size classes of copies
  Copy* free_copies_[kCopyClasses] = {};
};

}  // namespace tandem::defer
