#include "common/sys.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tandem::sys {
namespace {

using mprotect_fn = int (*)(void*, std::size_t, int);
using mmap_fn = void* (*)(void*, std::size_t, int, int, int, off_t);
using munmap_fn = int (*)(void*, std::size_t);
using mremap_fn = void* (*)(void*, std::size_t, std::size_t, int, ...);

mprotect_fn g_mprotect = nullptr;
mmap_fn g_mmap = nullptr;
munmap_fn g_munmap = nullptr;
mremap_fn g_mremap = nullptr;

}  // namespace

void resolve() noexcept {
  if (g_mremap) return;
  g_mprotect = reinterpret_cast<mprotect_fn>(dlsym(RTLD_NEXT, "mprotect"));
  g_mmap = reinterpret_cast<mmap_fn>(dlsym(RTLD_NEXT, "mmap"));
  g_munmap = reinterpret_cast<munmap_fn>(dlsym(RTLD_NEXT, "munmap"));
  g_mremap = reinterpret_cast<mremap_fn>(dlsym(RTLD_NEXT, "mremap"));
}

int mprotect(void* addr, std::size_t len, int prot) noexcept {
  if (g_mprotect) return g_mprotect(addr, len, prot);
  return static_cast<int>(syscall(SYS_mprotect, addr, len, prot));
}

void* mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) noexcept {
  if (g_mmap) return g_mmap(addr, len, prot, flags, fd, off);
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}

int munmap(void* addr, std::size_t len) noexcept {
  if (g_munmap) return g_munmap(addr, len);
  return static_cast<int>(syscall(SYS_munmap, addr, len));
}

void* mremap(void* old, std::size_t old_len, std::size_t new_len, int flags, void* new_addr) noexcept {
  if (g_mremap) return g_mremap(old, old_len, new_len, flags, new_addr);
  return reinterpret_cast<void*>(syscall(SYS_mremap, old, old_len, new_len, flags, new_addr));
}

int open_raw(const char* path, int flags) noexcept {
  return static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, flags, 0));
}
long read_raw(int fd, void* buf, std::size_t n) noexcept { return syscall(SYS_read, fd, buf, n); }
long pread_raw(int fd, void* buf, std::size_t n, off_t off) noexcept { return syscall(SYS_pread64, fd, buf, n, off); }
long pwrite_raw(int fd, const void* buf, std::size_t n, off_t off) noexcept {
  return syscall(SYS_pwrite64, fd, buf, n, off);
}
void close_raw(int fd) noexcept { syscall(SYS_close, fd); }

bool on_current_stack(std::uintptr_t lo, std::uintptr_t hi) noexcept {
  thread_local std::uintptr_t stack_lo = 0, stack_hi = 0;
  if (stack_hi == 0) {
    pthread_attr_t attr;
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstack(&attr, &addr, &size);
      pthread_attr_destroy(&attr);
    }
    stack_lo = reinterpret_cast<std::uintptr_t>(addr);
    stack_hi = stack_lo + size;
    if (stack_hi == 0) stack_hi = 1;  // unknown: checked by address below
  }
  std::uintptr_t here = reinterpret_cast<std::uintptr_t>(&lo);
  if (stack_hi > 1) return lo < stack_hi && stack_lo < hi;
  // Without the bounds, treat the 8 MiB below the current frame as the stack.
  return lo < here + 4096 && here - (std::uintptr_t(8) << 20) < hi;
}

}  // namespace tandem::sys
