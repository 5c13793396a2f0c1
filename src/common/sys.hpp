// The C library's memory-mapping calls, bypassing tandem's own interposition of them
// (the preload library defines mmap, munmap, mremap and mprotect for the program).
// Calling the C library's functions (not raw system calls) keeps the MPI library's
// memory hooks informed of tandem's page moves.
#pragma once
#include <sys/mman.h>
#include <sys/types.h>

#include <cstddef>

namespace tandem::sys {

void resolve() noexcept;  // looks the functions up; called at start, safe to call again
int mprotect(void* addr, std::size_t len, int prot) noexcept;
void* mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) noexcept;
int munmap(void* addr, std::size_t len) noexcept;
void* mremap(void* old, std::size_t old_len, std::size_t new_len, int flags, void* new_addr = nullptr) noexcept;

}  // namespace tandem::sys
