/* stress: what the cases share (stress_common.c): the run's globals, error reporting,
 * allocation, deterministic random numbers and byte patterns, checks, and the cases
 * themselves (case_*.c), run by main in stress_common.c. */
#ifndef TANDEM_TESTS_STRESS_H
#define TANDEM_TESTS_STRESS_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <mpi.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The run */
extern int g_rank, g_size;
extern MPI_Comm g_comm; /* a private duplicate of MPI_COMM_WORLD per case */
extern size_t g_max_size;
extern size_t g_page;
extern const char* volatile g_case;

/* A failed check of the current case on this rank: "stress[rank R] FAIL case=NAME: ..." on
 * standard error (the first few per case); the case counts as failed. */
void errorf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/* Unrecoverable setup problems (not MPI semantics): abort the whole job. */
void fatalf(const char* fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

void* xmalloc(size_t n);
void* xalloc_pages(size_t n); /* page-aligned, fresh anonymous pages */
void xfree_pages(void* p, size_t n);

/* Async-signal-safe message building: one write(2) per line, so lines of
 * different ranks do not interleave. */
typedef struct {
  char b[512];
  size_t n;
} sigline_t;
void sl_str(sigline_t* l, const char* s);
void sl_hex(sigline_t* l, uintptr_t v);
void sl_int(sigline_t* l, long v);
void sl_fail(sigline_t* l); /* "stress[rank R] FAIL case=NAME: " */
void sl_flush(sigline_t* l);

/* Deterministic random numbers and byte patterns, from the seed and the case's name. */
static inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/* A pattern key from the seed, the case and up to 4 numbers. */
uint64_t key4(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
typedef struct {
  uint64_t s;
} rng_t;
rng_t rng_for(uint64_t salt);
uint64_t rng_below(rng_t* r, uint64_t n);

/* Byte i of the pattern `key` (i counted from the start of a region). */
static inline uint8_t pat_byte(uint64_t key, size_t i) {
  return (uint8_t)(mix64(key ^ ((uint64_t)(i >> 3) * 0xd6e8feb86659fd93ull)) >> (8 * (i & 7)));
}
/* p[i] = pattern(key, base + i) for i < n. */
void pat_fill(void* p, size_t n, uint64_t key, size_t base);
/* Checks p[i] == pattern(key, base + i) for every i < n; reports and returns the
 * number of differing bytes. `what` is a printf format describing the region. */
size_t pat_check(const void* p, size_t n, uint64_t key, size_t base, const char* what, ...)
    __attribute__((format(printf, 5, 6)));
/* Checks that every byte of p[0..n) equals v. */
size_t byte_check(const void* p, size_t n, uint8_t v, const char* what);
void check_status(const MPI_Status* st, int src, int tag, MPI_Datatype dt, int count, const char* what);

/* Interesting sizes: zero, tiny, around the 4096-byte default threshold and page
 * boundaries (also 2 and 3 pages, 64 KiB, 128 KiB), and a few MB. */
extern const size_t k_special_sizes[];
extern const size_t k_special_count;
/* A message size up to max: special sizes, small, medium and large ones. */
size_t pick_size(rng_t* r, size_t max);
/* n times the --scale factor, at least 1. */
int scaled(int n);

/* All ordered pairs (a, b), a != b, in a seed-shuffled order identical on every
 * rank.  Cases run "a does X to b" once per pair, strictly one pair at a time,
 * so blocking sends can never deadlock. */
typedef struct {
  int a, b;
} pair_t;
pair_t* make_pairs(rng_t* r, int* n);

/* Receives `size` bytes of pattern `key` from src/tag into buf (capacity cap bytes),
 * having filled the whole capacity with a sentinel first; checks the status, every
 * byte of the message and that the bytes beyond it are unchanged. */
void recv_check(void* buf, size_t cap, int src, int tag, size_t size, uint64_t key, const char* what);

/* The cases, in the order they run (the table in stress_common.c). */
void case_random_p2p(void);
void case_wildcard(void);
void case_send_overwrite(void);
void case_recv_read(void);
void case_shared_pages(void);
void case_multi_send(void);
void case_forward_ring(void);
void case_syscalls(void);
void case_zero_unaligned(void);
void case_threads(void);
void case_sigsegv(void);
void case_sendrecv(void);
void case_free_after_send(void);
void case_stack_buffers(void);
void case_static_buffers(void);
void case_conflict(void);
void case_proc_null(void);
void case_many_to_one(void);
void case_datatypes(void);

#endif
