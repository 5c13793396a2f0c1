// What kind of memory an address range is, read from /proc/self/maps and cached.
// The cache is invalidated for a range whenever the program or tandem changes the
// mappings there (interposed mmap/munmap/mremap/mprotect, tandem's own page swaps).
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "common/memory.hpp"

namespace tandem::protect {

struct VmaInfo {
  bool mapped = false;     // every page of the range is mapped
  bool rw = false;         // every page is readable and writable
  bool private_ = false;   // every page is a private mapping (anonymous or file copy-on-write)
  bool stack = false;      // some page is the main thread's [stack] or a special mapping
  bool heap = false;       // some page is in the [heap] (brk) area
  std::uintptr_t first_start = 0;  // where the mapping holding the first page starts
  std::uintptr_t last_end = 0;     // where the mapping holding the last page ends
};

class VmaCache {
 public:
  VmaInfo query(std::uintptr_t lo, std::uintptr_t hi);
  void invalidate(std::uintptr_t lo, std::uintptr_t hi);
  void invalidate_all();
  // Ranges for which this returns true are pages tandem itself protected: their
  // original protection was read-write, whatever /proc/self/maps shows now.
  void set_protected_hook(bool (*hook)(std::uintptr_t lo, std::uintptr_t hi)) { hook_ = hook; }

 private:
  struct Vma {
    std::uintptr_t lo, hi;
    bool r, w, p, special, heap;
  };
  bool refresh_locked();
  std::mutex mu_;
  std::vector<Vma, PageAllocator<Vma>> vmas_;  // sorted, non-overlapping; only ranges still known valid
  bool loaded_ = false;
  bool (*hook_)(std::uintptr_t, std::uintptr_t) = nullptr;
};

VmaCache& vma_cache();

}  // namespace tandem::protect
