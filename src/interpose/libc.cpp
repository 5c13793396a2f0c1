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

#include <cstdarg>
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

}  // namespace

extern "C" {

ssize_t read(int fd, void* buf, size_t n) {
  REAL(read);
  guard(buf, n, Use::Write);
  return real(fd, buf, n);
}
ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  guard(buf, n, Use::Read);
  return real(fd, buf, n);
}
ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  REAL(pread);
  guard(buf, n, Use::Write);
  return real(fd, buf, n, off);
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite);
  guard(buf, n, Use::Read);
  return real(fd, buf, n, off);
}
ssize_t pread64(int fd, void* buf, size_t n, off64_t off) {
  REAL(pread64);
  guard(buf, n, Use::Write);
  return real(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  REAL(pwrite64);
  guard(buf, n, Use::Read);
  return real(fd, buf, n, off);
}
ssize_t readv(int fd, const struct iovec* iov, int n) {
  REAL(readv);
  guard_iov(iov, n, Use::Write);
  return real(fd, iov, n);
}
ssize_t writev(int fd, const struct iovec* iov, int n) {
  REAL(writev);
  guard_iov(iov, n, Use::Read);
  return real(fd, iov, n);
}
ssize_t recv(int fd, void* buf, size_t n, int flags) {
  REAL(recv);
  guard(buf, n, Use::Write);
  return real(fd, buf, n, flags);
}
ssize_t send(int fd, const void* buf, size_t n, int flags) {
  REAL(send);
  guard(buf, n, Use::Read);
  return real(fd, buf, n, flags);
}
ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* addr, socklen_t* len) {
  REAL(recvfrom);
  guard(buf, n, Use::Write);
  return real(fd, buf, n, flags, addr, len);
}
ssize_t sendto(int fd, const void* buf, size_t n, int flags, const struct sockaddr* addr, socklen_t len) {
  REAL(sendto);
  guard(buf, n, Use::Read);
  return real(fd, buf, n, flags, addr, len);
}
ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  REAL(recvmsg);
  if (msg) guard_iov(msg->msg_iov, static_cast<int>(msg->msg_iovlen), Use::Write);
  return real(fd, msg, flags);
}
ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  REAL(sendmsg);
  if (msg) guard_iov(msg->msg_iov, static_cast<int>(msg->msg_iovlen), Use::Read);
  return real(fd, msg, flags);
}

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
    sighandler_t previous = (chained->sa_flags & SA_SIGINFO) ? reinterpret_cast<sighandler_t>(chained->sa_sigaction)
                                                              : chained->sa_handler;
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
