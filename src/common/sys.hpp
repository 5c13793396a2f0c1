// The C library's memory-mapping calls, bypassing tandem's own interposition of them
// (the preload library defines mmap, munmap, mremap and mprotect for the program).
// Calling the C library's functions (not raw system calls) keeps the MPI library's
// memory hooks informed of tandem's page moves.
#pragma once
#include <sys/mman.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace tandem::sys {

void resolve() noexcept;  // looks the functions up; called at start, safe to call again
int mprotect(void* addr, std::size_t len, int prot) noexcept;
void* mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) noexcept;
int munmap(void* addr, std::size_t len) noexcept;
void* mremap(void* old, std::size_t old_len, std::size_t new_len, int flags, void* new_addr = nullptr) noexcept;

// Plain file I/O that never goes through tandem's interposed read/write (which may wait
// for deferred operations and so must not run while tandem holds its own locks).
int open_raw(const char* path, int flags) noexcept;
long read_raw(int fd, void* buf, std::size_t n) noexcept;
long pread_raw(int fd, void* buf, std::size_t n, off_t off) noexcept;
long pwrite_raw(int fd, const void* buf, std::size_t n, off_t off) noexcept;
void close_raw(int fd) noexcept;

// Whether [lo, hi) overlaps the calling thread's stack (whose pages tandem never protects:
// the thread's own frames would fault while it protects them).
bool on_current_stack(std::uintptr_t lo, std::uintptr_t hi) noexcept;

}  // namespace tandem::sys
