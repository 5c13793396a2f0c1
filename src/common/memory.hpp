// Memory for tandem's own state. Nothing tandem touches while operations are pending
// may live in the program's heap: a heap page can be shared with a protected buffer,
// and a write there from the progress thread would fault. So singletons live in the
// library's static storage and containers allocate whole pages with mmap.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <new>

#include "common/sys.hpp"

namespace tandem {

// A singleton in static storage that is never destroyed (handlers may run during exit).
template <class T>
T& immortal() {
  alignas(T) static unsigned char storage[sizeof(T)];
  static T* p = new (storage) T();
  return *p;
}

template <class T>
struct PageAllocator {
  using value_type = T;
  PageAllocator() noexcept = default;
  template <class U>
  PageAllocator(const PageAllocator<U>&) noexcept {}
  static std::size_t round(std::size_t bytes) {
    std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return (bytes + page - 1) / page * page;
  }
  T* allocate(std::size_t n) {
    void* p = sys::mmap(nullptr, round(n * sizeof(T)), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept { sys::munmap(p, round(n * sizeof(T))); }
  template <class U>
  bool operator==(const PageAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace tandem
