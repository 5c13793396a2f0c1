#include "protect/vma.hpp"

#include "common/sys.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tandem::protect {

VmaCache& vma_cache() { return immortal<VmaCache>(); }

bool VmaCache::refresh_locked() {
  int fd = sys::open_raw("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::vector<char, PageAllocator<char>> text;
  text.reserve(1 << 16);
  char buf[65536];
  ssize_t n;
  while ((n = sys::read_raw(fd, buf, sizeof buf)) > 0) text.insert(text.end(), buf, buf + n);
  sys::close_raw(fd);
  text.push_back('\0');
  vmas_.clear();
  char* line = text.data();
  while (*line) {
    char* end = std::strchr(line, '\n');
    if (end) *end = '\0';
    unsigned long lo = 0, hi = 0;
    char perms[8] = {};
    int consumed = 0;
    if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perms, &consumed) >= 3) {
      const char* path = line + consumed;
      while (*path == ' ') ++path;
      bool special = path[0] == '[' && std::strncmp(path, "[heap]", 6) != 0;
      bool r = perms[0] == 'r', w = perms[1] == 'w';
      if (!(r && w) && hook_ && hook_(lo, hi)) r = w = true;
      Vma v{lo, hi, r, w, perms[3] == 'p', special, std::strncmp(path, "[heap]", 6) == 0};
      // Merge neighbours that differ only by a boundary (tandem's own protections and page
      // swaps split mappings): a boundary must never make a buffer look like it has its own.
      if (!vmas_.empty()) {
        Vma& b = vmas_.back();
        if (b.hi == v.lo && b.r == v.r && b.w == v.w && b.p == v.p && b.special == v.special && b.heap == v.heap) {
          b.hi = v.hi;
          v.lo = v.hi;
        }
      }
      if (v.lo < v.hi) vmas_.push_back(v);
    }
    if (!end) break;
    line = end + 1;
  }
  loaded_ = true;
  return true;
}

VmaInfo VmaCache::query(std::uintptr_t lo, std::uintptr_t hi) {
  std::lock_guard<std::mutex> g(mu_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt == 1 || !loaded_) {
      if (!refresh_locked()) return {};
    }
    VmaInfo info{true, true, true, false, false, 0, 0};
    std::uintptr_t at = lo;
    auto it = std::upper_bound(vmas_.begin(), vmas_.end(), lo, [](std::uintptr_t a, const Vma& v) { return a < v.hi; });
    bool covered = true;
    while (at < hi) {
      if (it == vmas_.end() || it->lo > at) {
        covered = false;
        break;
      }
      info.rw = info.rw && it->r && it->w;
      info.private_ = info.private_ && it->p;
      info.stack = info.stack || it->special;
      info.heap = info.heap || it->heap;
      if (at == lo) info.first_start = it->lo;
      info.last_end = it->hi;
      at = it->hi;
      ++it;
    }
    if (covered) return info;
    // Not (or no longer) known: read the maps again once.
    if (attempt == 1) return {};
  }
  return {};
}

void VmaCache::invalidate(std::uintptr_t lo, std::uintptr_t hi) {
  std::lock_guard<std::mutex> g(mu_);
  vmas_.erase(std::remove_if(vmas_.begin(), vmas_.end(), [&](const Vma& v) { return v.lo < hi && lo < v.hi; }),
              vmas_.end());
}

void VmaCache::invalidate_all() {
  std::lock_guard<std::mutex> g(mu_);
  vmas_.clear();
  loaded_ = false;
}

}  // namespace tandem::protect
