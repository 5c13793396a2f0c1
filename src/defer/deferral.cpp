#include "defer/deferral.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "common/memory.hpp"
#include "common/stats.hpp"
#include "common/sys.hpp"
#include "protect/tracker.hpp"

namespace tandem::defer {

// A copy lives in pages of its own, its header first (64 bytes: any alignment the data
// needs within a page-aligned mapping).
struct Copy {
  std::size_t map_len;
  Copy* next;
  char* data() noexcept { return reinterpret_cast<char*>(this) + kHeader; }
  static constexpr std::size_t kHeader = 64;
};

namespace {
using protect::Tracker;
using protect::Use;

unsigned size_class(std::size_t len) {
  unsigned c = 12;  // one page at least
  while ((std::size_t(1) << c) < len) ++c;
  return c;
}

}  // namespace

Options options(const Config& c) noexcept { return Options{c.threshold, c.copy_below, c.copy_max}; }

Core& Core::instance() noexcept { return immortal<Core>(); }

// Ops come in batches of tandem's own pages: the first is returned, the rest go to the
// free list.
Op* Core::new_batch(Op** free_list) noexcept {
  const std::size_t len = static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) * 4;
  void* m = sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  Op* ops = static_cast<Op*>(m);
  const std::size_t n = len / sizeof(Op);
  for (std::size_t i = n - 1; i >= 1; --i) {
    Op* op = new (&ops[i]) Op();
    op->next_free_ = *free_list;
    *free_list = op;
  }
  return new (&ops[0]) Op();
}

bool Core::worth(const void* lo, std::size_t n, bool contiguous) const noexcept {
  return contiguous && n >= opts_.threshold && Tracker::instance().advise(lo, n);
}

Op* Core::acquire() noexcept {
  Op* op = nullptr;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (free_ops_) {
      op = free_ops_;
      free_ops_ = op->next_free_;
    } else {
      op = new_batch(&free_ops_);
    }
  }
  if (!op) return nullptr;
  new (op) Op();
  op->fn = &Core::on_complete;
  return op;
}

void Core::put(Op* op) noexcept {
  std::lock_guard<std::mutex> g(mu_);
  op->next_free_ = free_ops_;
  free_ops_ = op;
}

Copy* Core::copy_get(std::size_t bytes) noexcept {
  unsigned c = size_class(bytes + Copy::kHeader);
  if (c >= kCopyClasses) return nullptr;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (Copy* h = free_copies_[c]) {
      free_copies_[c] = h->next;
      return h;
    }
  }
  std::size_t len = std::size_t(1) << c;
  void* m = sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  auto* h = static_cast<Copy*>(m);
  h->map_len = len;
  h->next = nullptr;
  return h;
}

void Core::copy_put(Copy* h) noexcept {
  std::lock_guard<std::mutex> g(mu_);
  unsigned c = size_class(h->map_len);
  h->next = free_copies_[c];
  free_copies_[c] = h;
}

bool Core::hold_read(Op* op, const void* p, std::size_t n) noexcept {
  if (op->read_slot_ >= 0) return false;
  op->read_slot_ = Tracker::instance().begin_send(p, n);
  return op->read_slot_ >= 0;
}

void* Core::hold_copy(Op* op, const void* p, std::size_t n) noexcept {
  int free_at = op->copies_[0] ? 1 : 0;
  if (op->copies_[free_at]) return nullptr;
  // A pending receive into these bytes must land before they are copied.
  Tracker::instance().wait_conflicts(p, n, Use::Read);
  Copy* c = copy_get(n);
  if (!c) return nullptr;
  if (n) std::memcpy(c->data(), p, n);
  op->copies_[free_at] = c;
  return c->data();
}

void* Core::hold_write(Op* op, void* p, std::size_t n, bool counts_result) noexcept {
  if (op->write_slot_ >= 0) return nullptr;
  void* dst = nullptr;
  op->write_slot_ = Tracker::instance().begin_recv(p, n, &dst);
  if (op->write_slot_ < 0) return nullptr;
  op->write_bytes_ = n;
  op->write_counts_result_ = counts_result;
  return dst;
}

void Core::started(Op* op, std::size_t bytes) noexcept {
  (void)op;
  stats().deferred.fetch_add(1, std::memory_order_relaxed);
  stats().bytes_deferred.fetch_add(bytes, std::memory_order_relaxed);
}

void Core::abandon(Op* op) noexcept {
  auto& tr = Tracker::instance();
  if (op->write_slot_ >= 0) tr.cancel_recv(op->write_slot_);
  if (op->read_slot_ >= 0) tr.end_send(op->read_slot_);
  for (Copy*& c : op->copies_)
    if (c) copy_put(c), c = nullptr;
  put(op);
}

void Core::release(Op* op, const progress::Result& r) noexcept {
  auto& tr = Tracker::instance();
  if (op->read_slot_ >= 0) tr.end_send(op->read_slot_);
  if (op->write_slot_ >= 0) tr.end_recv(op->write_slot_, op->write_counts_result_ ? r.bytes : op->write_bytes_);
  for (Copy*& c : op->copies_)
    if (c) copy_put(c), c = nullptr;
  if (r.error && report_) report_(*op, r.error);
  if (op->on_release) op->on_release(op->release_ctx);
  put(op);
}

void Core::on_complete(progress::Completion* c, const progress::Result& r) {
  instance().release(static_cast<Op*>(c), r);
}

void Core::finish(Op* op, const progress::Result& r) noexcept { release(op, r); }

Op* Core::send(const void* lo, std::size_t n, const void** from) noexcept {
  Op* op = acquire();
  if (!op) return nullptr;
  if (n <= opts_.copy_below || !hold_read(op, lo, n)) {
    // Small (a copy costs less than changing the protection), or the pages hold other data.
    if (n > opts_.copy_below && n > opts_.copy_max) {  // too large to copy: pass through
      abandon(op);
      return nullptr;
    }
    void* copy = hold_copy(op, lo, n);
    if (!copy) {
      abandon(op);
      return nullptr;
    }
    *from = copy;
    return op;
  }
  *from = lo;
  return op;
}

Op* Core::send_copy(const void* lo, std::size_t n, const void** from) noexcept {
  if (n > opts_.copy_max) return nullptr;
  Op* op = acquire();
  if (!op) return nullptr;
  void* copy = hold_copy(op, lo, n);
  if (!copy) {
    abandon(op);
    return nullptr;
  }
  *from = copy;
  return op;
}

Op* Core::recv(void* lo, std::size_t n, void** to) noexcept {
  Op* op = acquire();
  if (!op) return nullptr;
  void* dst = hold_write(op, lo, n, true);
  if (!dst) {
    abandon(op);
    return nullptr;
  }
  *to = dst;
  return op;
}

}  // namespace tandem::defer
