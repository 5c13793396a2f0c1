// C library interposition of the preload library:
//  - system calls that read or write user memory wait for deferred operations on that
//    memory instead of failing with EFAULT on protected pages;
//  - free/realloc/munmap/mremap/mprotect/mmap(MAP_FIXED) wait for deferred operations on the
//    memory they release or change, and keep the mapping cache current;
//  - sigaction/signal for SIGSEGV and SIGTRAP record the program's handler, which tandem's
//    handler chains to, instead of replacing tandem's.
// Inert (a direct call) until tandem is active. Nothing here throws.
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <cstdint>

#include "common/sys.hpp"
#include "common/thread_flags.hpp"
#include "protect/tracker.hpp"
#include "protect/vma.hpp"

using tandem::protect::Tracker;
using tandem::protect::Use;
using tandem::protect::vma_cache;

namespace {

template <class F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}
#define REAL(name) \
  static auto real = next<decltype(&::name)>(#name)

// True when this thread may have to wait for deferred operations.
inline bool guarding() {
  return tandem::t_internal == 0 && Tracker::instance().initialised() && Tracker::instance().any_active();
}
inline void guard(const void* p, std::size_t n, Use use) {
  if (guarding() && p && n) Tracker::instance().wait_conflicts(p, n, use);
}
inline void guard_iov(const struct iovec* iov, int n, Use use) {
  if (!guarding() || !iov) return;
  for (int i = 0; i < n; ++i) guard(iov[i].iov_base, iov[i].iov_len, use);
}
inline void mapping_changed(const void* p, std::size_t n) {
  auto lo = reinterpret_cast<std::uintptr_t>(p);
  vma_cache().invalidate(lo, lo + n);
}


// tandem's own threads (and the MPI library running in them) must never wait; when their
// system call touches a page protected for a pending operation (the MPI library's own data
// can share a page with a user buffer), the call goes through a scratch buffer instead and
// the protected memory is read or written through /proc/self/mem.
struct Scratch {
  char* p = nullptr;
  std::size_t len = 0;
  char* get(std::size_t n) {
    if (n > len) {
      if (p) tandem::sys::munmap(p, len);
      len = (n + 65535) & ~std::size_t(65535);
      void* m = tandem::sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      p = m == MAP_FAILED ? nullptr : static_cast<char*>(m);
      if (!p) len = 0;
    }
    return p;
  }
};
thread_local Scratch t_scratch;

bool internal_touch(const struct iovec* iov, int n, bool kernel_writes) {
  if (tandem::t_internal == 0 || !Tracker::instance().initialised() || !iov) return false;
  for (int i = 0; i < n; ++i)
    if (Tracker::instance().touches_protected(iov[i].iov_base, iov[i].iov_len, kernel_writes)) return true;
  return false;
}

std::size_t iov_total(const struct iovec* iov, int n) {
  std::size_t t = 0;
  for (int i = 0; i < n; ++i) t += iov[i].iov_len;
  return t;
}

// Copies between the iovecs and a contiguous buffer; protected memory through /proc/self/mem.
bool gather(const struct iovec* iov, int n, char* out) {
  for (int i = 0; i < n; ++i) {
    const auto* b = static_cast<const char*>(iov[i].iov_base);
    if (Tracker::instance().touches_protected(b, iov[i].iov_len, false)) {
      if (!Tracker::instance().read_protected(out, b, iov[i].iov_len)) return false;
    } else {
      std::memcpy(out, b, iov[i].iov_len);
    }
    out += iov[i].iov_len;
  }
  return true;
}
void scatter(const struct iovec* iov, int n, const char* in, std::size_t len) {
  for (int i = 0; i < n && len > 0; ++i) {
    std::size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;
    auto* b = static_cast<char*>(iov[i].iov_base);
    if (Tracker::instance().touches_protected(b, k, true)) Tracker::instance().write_protected(b, in, k);
    else std::memcpy(b, in, k);
    in += k, len -= k;
  }
}

// Runs a data transfer call for iovecs `iov`: directly, after waiting for pending operations
// (program threads), or through the scratch buffer (tandem's threads touching protected pages).
template <class Call>
ssize_t transfer(const struct iovec* iov, int n, bool kernel_writes, Call call) {
  if (guarding() && iov) {
    guard_iov(iov, n, kernel_writes ? Use::Write : Use::Read);
    return call(iov, n);
  }
  if (!internal_touch(iov, n, kernel_writes)) {
    ssize_t r = call(iov, n);
    if (!(r < 0 && errno == EFAULT && internal_touch(iov, n, kernel_writes))) return r;
  }
  std::size_t total = iov_total(iov, n);
  char* tmp = t_scratch.get(total);
  if (!tmp) {
    errno = ENOMEM;
    return -1;
  }
  struct iovec one{tmp, total};
  if (kernel_writes) {
    ssize_t r = call(&one, 1);
    if (r > 0) scatter(iov, n, tmp, static_cast<std::size_t>(r));
    return r;
  }
  if (!gather(iov, n, tmp)) {
    errno = EFAULT;
    return -1;
  }
  return call(&one, 1);
}

}  // namespace

extern "C" {

ssize_t read(int fd, void* buf, size_t n) {
  REAL(read);
  if (!Tracker::instance().any_active()) return real(fd, buf, n);
  static auto rv = next<decltype(&::readv)>("readv");
  struct iovec v{buf, n};
  return transfer(&v, 1, true, [&](const struct iovec* iv, int k) { return rv(fd, iv, k); });
}
ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  if (!Tracker::instance().any_active()) return real(fd, buf, n);
  static auto wv = next<decltype(&::writev)>("writev");
  struct iovec v{const_cast<void*>(buf), n};
  return transfer(&v, 1, false, [&](const struct iovec* iv, int k) { return wv(fd, iv, k); });
}
ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  REAL(preadv);
  struct iovec v{buf, n};
  return transfer(&v, 1, true, [&](const struct iovec* iv, int k) { return real(fd, iv, k, off); });
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwritev);
  struct iovec v{const_cast<void*>(buf), n};
  return transfer(&v, 1, false, [&](const struct iovec* iv, int k) { return real(fd, iv, k, off); });
}
ssize_t pread64(int fd, void* buf, size_t n, off64_t off) { return pread(fd, buf, n, static_cast<off_t>(off)); }
ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) { return pwrite(fd, buf, n, static_cast<off_t>(off)); }
ssize_t readv(int fd, const struct iovec* iov, int n) {
  REAL(readv);
  return transfer(iov, n, true, [&](const struct iovec* iv, int k) { return real(fd, iv, k); });
}
ssize_t writev(int fd, const struct iovec* iov, int n) {
  REAL(writev);
  return transfer(iov, n, false, [&](const struct iovec* iv, int k) { return real(fd, iv, k); });
}
ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  REAL(recvmsg);
  if (!msg) return real(fd, msg, flags);
  return transfer(msg->msg_iov, static_cast<int>(msg->msg_iovlen), true, [&](const struct iovec* iv, int k) {
    struct msghdr m = *msg;
    m.msg_iov = const_cast<struct iovec*>(iv);
    m.msg_iovlen = static_cast<std::size_t>(k);
    ssize_t r = real(fd, &m, flags);
    msg->msg_flags = m.msg_flags;
    msg->msg_namelen = m.msg_namelen;
    msg->msg_controllen = m.msg_controllen;
    return r;
  });
}
ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  REAL(sendmsg);
  if (!msg) return real(fd, msg, flags);
  return transfer(msg->msg_iov, static_cast<int>(msg->msg_iovlen), false, [&](const struct iovec* iv, int k) {
    struct msghdr m = *msg;
    m.msg_iov = const_cast<struct iovec*>(iv);
    m.msg_iovlen = static_cast<std::size_t>(k);
    return real(fd, &m, flags);
  });
}
ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* addr, socklen_t* len) {
  struct msghdr m{};
  struct iovec v{buf, n};
  m.msg_name = addr;
  m.msg_namelen = len ? *len : 0;
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  ssize_t r = recvmsg(fd, &m, flags);
  if (r >= 0 && len) *len = m.msg_namelen;
  return r;
}
ssize_t recv(int fd, void* buf, size_t n, int flags) { return recvfrom(fd, buf, n, flags, nullptr, nullptr); }
ssize_t sendto(int fd, const void* buf, size_t n, int flags, const struct sockaddr* addr, socklen_t len) {
  struct msghdr m{};
  struct iovec v{const_cast<void*>(buf), n};
  m.msg_name = const_cast<struct sockaddr*>(addr);
  m.msg_namelen = len;
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  return sendmsg(fd, &m, flags);
}
ssize_t send(int fd, const void* buf, size_t n, int flags) { return sendto(fd, buf, n, flags, nullptr, 0); }

void free(void* p) {
  static auto real = next<void (*)(void*)>("free");
  if (!real) return;  // only while the C library's free is being looked up: leak, never crash
  if (p && guarding()) {
    static auto usable = next<size_t (*)(void*)>("malloc_usable_size");
    std::size_t n = usable ? usable(p) : 0;
    // The allocator's header just before the block is written when it is freed.
    guard(static_cast<char*>(p) - 16, n + 16, Use::Write);
  }
  real(p);
}
void* realloc(void* p, size_t size) {
  static auto real = next<void* (*)(void*, size_t)>("realloc");
  if (p && guarding()) {
    static auto usable = next<size_t (*)(void*)>("malloc_usable_size");
    std::size_t n = usable ? usable(p) : 0;
    guard(static_cast<char*>(p) - 16, n + 16, Use::Write);
  }
  return real(p, size);
}

int munmap(void* addr, size_t len) {
  guard(addr, len, Use::Write);
  int rc = tandem::sys::munmap(addr, len);
  mapping_changed(addr, len);
  return rc;
}
int mprotect(void* addr, size_t len, int prot) {
  guard(addr, len, Use::Write);
  int rc = tandem::sys::mprotect(addr, len, prot);
  mapping_changed(addr, len);
  return rc;
}
void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (flags & MAP_FIXED) guard(addr, len, Use::Write);
  void* p = tandem::sys::mmap(addr, len, prot, flags, fd, off);
  if (p != MAP_FAILED) mapping_changed(p, len);
  return p;
}
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  return mmap(addr, len, prot, flags, fd, static_cast<off_t>(off));
}
void* mremap(void* old, size_t old_len, size_t new_len, int flags, ...) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
    guard(new_addr, new_len, Use::Write);
  }
  guard(old, old_len, Use::Write);
  void* p = tandem::sys::mremap(old, old_len, new_len, flags, new_addr);
  mapping_changed(old, old_len);
  if (p != MAP_FAILED) mapping_changed(p, new_len);
  return p;
}

// Loading or unloading a library maps and unmaps memory inside the C library.
void* dlopen(const char* file, int mode) {
  REAL(dlopen);
  void* h = real(file, mode);
  vma_cache().invalidate_all();
  return h;
}
int dlclose(void* handle) {
  REAL(dlclose);
  int rc = real(handle);
  vma_cache().invalidate_all();
  return rc;
}

int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  REAL(sigaction);
  auto& t = Tracker::instance();
  if ((sig == SIGSEGV || sig == SIGTRAP) && t.initialised()) {
    struct sigaction* chained = t.chained(sig);
    struct sigaction previous = *chained;
    if (act) *chained = *act;
    if (old) *old = previous;
    return 0;
  }
  return real(sig, act, old);
}

sighandler_t signal(int sig, sighandler_t handler) {
  REAL(signal);
  auto& t = Tracker::instance();
  if ((sig == SIGSEGV || sig == SIGTRAP) && t.initialised()) {
    struct sigaction* chained = t.chained(sig);
    sighandler_t previous = chained->sa_handler;
    if (chained->sa_flags & SA_SIGINFO) {
      auto action = chained->sa_sigaction;  // what signal() reports for an SA_SIGINFO handler
      static_assert(sizeof action == sizeof previous);
      std::memcpy(&previous, &action, sizeof previous);
    }
    struct sigaction sa{};
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    *chained = sa;
    return previous;
  }
  return real(sig, handler);
}

}  // extern "C"
