/* stress: correctness tests of MPI point-to-point semantics for buffer reuse.
 *
 * A plain C MPI program with no tandem code.  Every case checks that the
 * program-visible behaviour of blocking MPI_Send / MPI_Recv / MPI_Sendrecv /
 * MPI_Sendrecv_replace is exactly what the MPI standard promises: when the call
 * returns, a send buffer may be reused at once (the receiver still gets the old
 * content) and a receive buffer holds the whole message (and nothing beyond the
 * message was modified).  It is written to run unchanged with plain MPI and
 * under a library that defers those calls and page-protects the buffers, so it
 * deliberately touches buffers right after the calls in every way a program may:
 * loads and stores, neighbouring bytes on the same pages, other threads,
 * system calls, free(), stack frames that die, other MPI calls on the same
 * buffer, and its own SIGSEGV handler.
 *
 * Usage: stress [options] [case...]          (all cases by default, in order)
 *   -s, --seed N       seed of every schedule, size and pattern (default 1)
 *   -x, --scale F      multiply message/iteration counts by F (default 1.0)
 *   -m, --max-size B   largest random message in bytes (default 4194304)
 *   -t, --timeout S    per-case watchdog in seconds; a hang exits 3 (default 60)
 *   -l, --list         print the case names and exit
 *   -v, --verbose      each rank reports each case start
 * Needs at least 2 ranks (tested with 2..4).  Deterministic from the seed: every
 * rank computes the same schedules, which are deadlock-free with blocking
 * (rendezvous) sends.  Every byte of every message, and every byte that must
 * stay unchanged, is checked.  On any error the rank prints
 *   stress[rank R] FAIL case=NAME: what went wrong
 * on standard error, the run continues with the next case, rank 0 prints a
 * summary naming the failed cases, and every rank exits 1.  A hung case exits 3
 * (watchdog), an unexpected SIGSEGV in the sigsegv case exits 5.
 */
#define _GNU_SOURCE
#include <mpi.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* Globals and reporting                                                      */
/* ------------------------------------------------------------------------- */

static int g_rank, g_size;
static MPI_Comm g_comm = MPI_COMM_NULL; /* a private duplicate of MPI_COMM_WORLD per case */
static uint64_t g_seed = 1;
static double g_scale = 1.0;
static size_t g_max_size = 4u << 20;
static unsigned g_timeout = 60;
static int g_verbose;
static size_t g_page;
static const char* volatile g_case = "init";
static long g_errors;         /* errors of the current case on this rank */
static long g_errors_printed; /* messages printed for the current case */

#define MAX_PRINTED_ERRORS 12

static void errorf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void errorf(const char* fmt, ...) {
  g_errors++;
  if (g_errors_printed >= MAX_PRINTED_ERRORS) {
    if (g_errors_printed == MAX_PRINTED_ERRORS)
      fprintf(stderr, "stress[rank %d] FAIL case=%s: (further errors of this case not shown)\n", g_rank, g_case);
    g_errors_printed++;
    return;
  }
  g_errors_printed++;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "stress[rank %d] FAIL case=%s: %s\n", g_rank, g_case, msg);
  fflush(stderr);
}

/* Unrecoverable setup problems (not MPI semantics): abort the whole job. */
static void fatalf(const char* fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatalf(const char* fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "stress[rank %d] FAIL case=%s: fatal: %s\n", g_rank, g_case, msg);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 2);
  _exit(2);
}

static void* xmalloc(size_t n) {
  void* p = malloc(n ? n : 1);
  if (!p) fatalf("malloc(%zu) failed", n);
  return p;
}

static void* xalloc_pages(size_t n) { /* page-aligned, fresh anonymous pages */
  size_t len = (n + g_page - 1) / g_page * g_page;
  void* p = mmap(NULL, len ? len : g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fatalf("mmap(%zu) failed: %s", n, strerror(errno));
  return p;
}
static void xfree_pages(void* p, size_t n) {
  size_t len = (n + g_page - 1) / g_page * g_page;
  munmap(p, len ? len : g_page);
}

/* Async-signal-safe message building: one write(2) per line, so lines of
 * different ranks do not interleave. */
typedef struct {
  char b[512];
  size_t n;
} sigline_t;
static void sl_str(sigline_t* l, const char* s) {
  while (*s && l->n + 1 < sizeof l->b) l->b[l->n++] = *s++;
}
static void sl_hex(sigline_t* l, uintptr_t v) {
  char b[2 + 16 + 1];
  b[0] = '0';
  b[1] = 'x';
  for (int i = 0; i < 16; i++) b[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
  b[18] = 0;
  sl_str(l, b);
}
static void sl_int(sigline_t* l, long v) {
  char b[24];
  int i = 23;
  b[i] = 0;
  int neg = v < 0;
  unsigned long u = neg ? -(unsigned long)v : (unsigned long)v;
  do {
    b[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (neg) b[--i] = '-';
  sl_str(l, b + i);
}
static void sl_flush(sigline_t* l) {
  ssize_t r = write(2, l->b, l->n);
  (void)r;
  l->n = 0;
}

static void on_alarm(int sig) {
  (void)sig;
  sigline_t l = {.n = 0};
  sl_str(&l, "stress[rank ");
  sl_int(&l, g_rank);
  sl_str(&l, "] FAIL case=");
  sl_str(&l, g_case);
  sl_str(&l, ": TIMEOUT: the case did not finish within ");
  sl_int(&l, (long)g_timeout);
  sl_str(&l, " s (hang or deadlock)\n");
  sl_flush(&l);
  _exit(3);
}

/* Crash reporter: a fatal signal names the case, then the previous disposition
 * (MPI's or the default) takes over.  Under an interposing library this handler
 * must only ever see genuine crashes. */
static struct sigaction g_crash_old[32];
static const int k_crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static void on_crash(int sig, siginfo_t* si, void* ctx) {
  (void)ctx;
  sigline_t l = {.n = 0};
  sl_str(&l, "stress[rank ");
  sl_int(&l, g_rank);
  sl_str(&l, "] FAIL case=");
  sl_str(&l, g_case);
  sl_str(&l, ": crashed with signal ");
  sl_int(&l, sig);
  sl_str(&l, sig == SIGSEGV ? " (SIGSEGV)" : sig == SIGBUS ? " (SIGBUS)" : sig == SIGABRT ? " (SIGABRT)" : "");
  if (sig != SIGABRT) {
    sl_str(&l, " at address ");
    sl_hex(&l, (uintptr_t)si->si_addr);
  }
  sl_str(&l, "\n");
  sl_flush(&l);
  sigaction(sig, &g_crash_old[sig], NULL);
  if (sig == SIGABRT || si->si_code <= 0) raise(sig); /* else: returning re-executes the fault */
}
static void install_crash_reporter(void) {
  for (size_t i = 0; i < sizeof k_crash_signals / sizeof k_crash_signals[0]; i++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(k_crash_signals[i], &sa, &g_crash_old[k_crash_signals[i]]);
  }
}

/* ------------------------------------------------------------------------- */
/* Deterministic random numbers and byte patterns                            */
/* ------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint64_t hash_str(const char* s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
  return h;
}
/* A pattern key from the seed, the case and up to 4 numbers. */
static uint64_t key4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  uint64_t k = mix64(g_seed ^ hash_str(g_case));
  k = mix64(k ^ a);
  k = mix64(k ^ (b + 0x1234567ull));
  k = mix64(k ^ (c + 0x89abcdefull));
  return mix64(k ^ (d + 0x5555aaaaull));
}

typedef struct {
  uint64_t s;
} rng_t;
static rng_t rng_for(uint64_t salt) {
  rng_t r = {mix64(g_seed * 0x100000001b3ull ^ hash_str(g_case) ^ mix64(salt))};
  return r;
}
static uint64_t rng_next(rng_t* r) {
  r->s += 0x9e3779b97f4a7c15ull;
  return mix64(r->s);
}
static uint64_t rng_below(rng_t* r, uint64_t n) { return n ? rng_next(r) % n : 0; }

/* Byte i of the pattern `key` (i counted from the start of a region). */
static inline uint8_t pat_byte(uint64_t key, size_t i) {
  return (uint8_t)(mix64(key ^ ((uint64_t)(i >> 3) * 0xd6e8feb86659fd93ull)) >> (8 * (i & 7)));
}
/* p[i] = pattern(key, base + i) for i < n. */
static void pat_fill(void* p, size_t n, uint64_t key, size_t base) {
  unsigned char* b = p;
  size_t i = 0;
  while (i < n) {
    size_t idx = base + i;
    uint64_t w = mix64(key ^ ((uint64_t)(idx >> 3) * 0xd6e8feb86659fd93ull));
    for (unsigned k = idx & 7; k < 8 && i < n; k++, i++) b[i] = (uint8_t)(w >> (8 * k));
  }
}
/* Checks p[i] == pattern(key, base + i) for every i < n; reports and returns the
 * number of differing bytes. `what` is a printf format describing the region. */
static size_t pat_check(const void* p, size_t n, uint64_t key, size_t base, const char* what, ...)
    __attribute__((format(printf, 5, 6)));
static size_t pat_check(const void* p, size_t n, uint64_t key, size_t base, const char* what, ...) {
  const unsigned char* b = p;
  size_t bad = 0, first = 0, last = 0;
  uint8_t got0 = 0, exp0 = 0;
  size_t i = 0;
  while (i < n) {
    size_t idx = base + i;
    uint64_t w = mix64(key ^ ((uint64_t)(idx >> 3) * 0xd6e8feb86659fd93ull));
    for (unsigned k = idx & 7; k < 8 && i < n; k++, i++) {
      uint8_t e = (uint8_t)(w >> (8 * k));
      if (b[i] != e) {
        if (!bad) first = i, got0 = b[i], exp0 = e;
        last = i;
        bad++;
      }
    }
  }
  if (bad) {
    char desc[384];
    va_list ap;
    va_start(ap, what);
    vsnprintf(desc, sizeof desc, what, ap);
    va_end(ap);
    errorf("%s: %zu of %zu bytes wrong, first at offset %zu (got 0x%02x, expected 0x%02x), last at %zu; region at %p,"
           " its first page boundary at offset %zu",
           desc, bad, n, first, got0, exp0, last, p, (size_t)((g_page - (uintptr_t)p % g_page) % g_page));
  }
  return bad;
}
/* Checks that every byte of p[0..n) equals v. */
static size_t byte_check(const void* p, size_t n, uint8_t v, const char* what) {
  const unsigned char* b = p;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; i++)
    if (b[i] != v) {
      if (!bad) first = i;
      bad++;
    }
  if (bad)
    errorf("%s: %zu of %zu bytes differ from 0x%02x, first at offset %zu (got 0x%02x)", what, bad, n, v, first,
           b[first]);
  return bad;
}

static void check_status(const MPI_Status* st, int src, int tag, MPI_Datatype dt, int count, const char* what) {
  int n = -1;
  MPI_Get_count(st, dt, &n);
  if (st->MPI_SOURCE != src || st->MPI_TAG != tag || n != count)
    errorf("%s: status has MPI_SOURCE=%d MPI_TAG=%d count=%d, expected MPI_SOURCE=%d MPI_TAG=%d count=%d", what,
           st->MPI_SOURCE, st->MPI_TAG, n, src, tag, count);
}

/* Interesting sizes: zero, tiny, around the 4096-byte default threshold and page
 * boundaries (also 2 and 3 pages, 64 KiB, 128 KiB), and a few MB. */
static const size_t k_special_sizes[] = {0,      1,      2,      3,      7,      8,      63,      64,      255,
                                         1000,   2047,   2048,   4000,   4095,   4096,   4097,    4100,    6000,
                                         8191,   8192,   8193,   12287,  12288,  12289,  16383,   16384,   16385,
                                         65535,  65536,  65537,  131071, 131072, 131073, 262143,  262145,  1000000,
                                         1048575, 1048576, 1048577, 2097152 + 4095, 3145728 + 1, 4194304};
#define N_SPECIAL (sizeof k_special_sizes / sizeof k_special_sizes[0])

static size_t pick_size(rng_t* r, size_t max) {
  size_t s;
  uint64_t c = rng_below(r, 100);
  if (c < 20)
    s = k_special_sizes[rng_below(r, N_SPECIAL)];
  else if (c < 55)
    s = rng_below(r, 16385);
  else if (c < 88)
    s = rng_below(r, 262145);
  else
    s = rng_below(r, max + 1);
  return s > max ? max : s;
}

static int scaled(int n) {
  int v = (int)(n * g_scale + 0.5);
  return v < 1 ? 1 : v;
}

/* All ordered pairs (a, b), a != b, in a seed-shuffled order identical on every
 * rank.  Cases run "a does X to b" once per pair, strictly one pair at a time,
 * so blocking sends can never deadlock. */
typedef struct {
  int a, b;
} pair_t;
static pair_t* make_pairs(rng_t* r, int* n) {
  int cnt = g_size * (g_size - 1);
  pair_t* p = xmalloc(sizeof(pair_t) * (size_t)cnt);
  int k = 0;
  for (int i = 0; i < g_size; i++)
    for (int j = 0; j < g_size; j++)
      if (i != j) p[k].a = i, p[k].b = j, k++;
  for (int i = cnt - 1; i > 0; i--) {
    int j = (int)rng_below(r, (uint64_t)i + 1);
    pair_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  *n = cnt;
  return p;
}

/* Receives `size` bytes of pattern `key` from src/tag into buf (capacity cap bytes),
 * having filled the whole capacity with a sentinel first; checks the status, every
 * byte of the message and that the bytes beyond it are unchanged. */
static void recv_check(void* buf, size_t cap, int src, int tag, size_t size, uint64_t key, const char* what) {
  uint64_t skey = key ^ 0x5e5e5e5e5e5e5e5eull;
  pat_fill(buf, cap, skey, 0);
  MPI_Status st;
  MPI_Recv(buf, (int)cap, MPI_BYTE, src, tag, g_comm, &st);
  check_status(&st, src, tag, MPI_BYTE, (int)size, what);
  pat_check(buf, size, key, 0, "%s: payload", what);
  pat_check((char*)buf + size, cap - size, skey, size, "%s: bytes beyond the message (must be unchanged)", what);
}

/* ------------------------------------------------------------------------- */
/* Case: random_p2p                                                           */
/* ------------------------------------------------------------------------- */
/* A global, seed-determined sequence of messages with random sizes (every special
 * size once, then random ones up to --max-size), random tags and random peers,
 * random odd offsets and receive capacities larger than the message; the sender
 * refills its (reused) buffer with the next message right after MPI_Send returns,
 * the receiver checks status, payload and untouched slack at once.  Receives use
 * a specific tag, MPI_ANY_TAG or MPI_STATUS_IGNORE at random. */
static void case_random_p2p(void) {
  rng_t r = rng_for(1);
  int nrand = scaled(160);
  int nmsg = (int)N_SPECIAL + nrand;
  size_t cap_max = g_max_size + 8192 + 128;
  /* two send buffers used alternately, one receive buffer, all reused */
  unsigned char* sbuf[2] = {xmalloc(cap_max), xmalloc(cap_max)};
  unsigned char* rbuf = xmalloc(cap_max + 64);
  int turn = 0;
  for (int i = 0; i < nmsg; i++) {
    size_t size = i < (int)N_SPECIAL ? k_special_sizes[i] : pick_size(&r, g_max_size);
    if (size > g_max_size) size = g_max_size;
    int src = (int)rng_below(&r, (uint64_t)g_size);
    int dst = (int)rng_below(&r, (uint64_t)g_size - 1);
    if (dst >= src) dst++;
    int tag = (int)rng_below(&r, 32768);
    size_t soff = rng_below(&r, 4) == 0 ? 0 : rng_below(&r, 64);
    size_t roff = rng_below(&r, 4) == 0 ? 0 : rng_below(&r, 64);
    size_t slack = rng_below(&r, 3) == 0 ? rng_below(&r, 8193) : 0;
    int rmode = (int)rng_below(&r, 4); /* 0,1: tag  2: ANY_TAG  3: STATUS_IGNORE */
    uint64_t key = key4(1, (uint64_t)i, 0, 0);
    if (g_rank == src) {
      unsigned char* b = sbuf[turn];
      turn ^= 1;
      pat_fill(b + soff, size, key, 0);
      MPI_Send(b + soff, (int)size, MPI_BYTE, dst, tag, g_comm);
      /* reuse at once: the next message's content goes in (or junk) */
      memset(b + soff, (int)(i & 0xff), size);
      byte_check(b + soff, size, (uint8_t)(i & 0xff), "sender's own overwrite after MPI_Send");
    } else if (g_rank == dst) {
      size_t cap = size + slack;
      uint64_t skey = key ^ 0xabcdefull;
      pat_fill(rbuf, roff + cap + 64, skey, 0);
      MPI_Status st;
      char what[160];
      snprintf(what, sizeof what, "message %d (%zu bytes, %d->%d, tag %d, capacity %zu, offset %zu)", i, size, src,
               dst, tag, cap, roff);
      if (rmode == 3) {
        MPI_Recv(rbuf + roff, (int)cap, MPI_BYTE, src, tag, g_comm, MPI_STATUS_IGNORE);
      } else {
        MPI_Recv(rbuf + roff, (int)cap, MPI_BYTE, src, rmode == 2 ? MPI_ANY_TAG : tag, g_comm, &st);
        check_status(&st, src, tag, MPI_BYTE, (int)size, what);
      }
      pat_check(rbuf + roff, size, key, 0, "%s: payload", what);
      pat_check(rbuf, roff, skey, 0, "%s: bytes before the buffer", what);
      pat_check(rbuf + roff + size, cap - size + 64, skey, roff + size, "%s: bytes beyond the message", what);
    }
  }
  free(sbuf[0]);
  free(sbuf[1]);
  free(rbuf);
}

/* ------------------------------------------------------------------------- */
/* Case: wildcard                                                             */
/* ------------------------------------------------------------------------- */
/* Messages to a root received with MPI_ANY_SOURCE and/or MPI_ANY_TAG, checking
 * MPI_SOURCE, MPI_TAG and MPI_Get_count (bytes and MPI_INT) and that the bytes of
 * the (larger) receive buffer beyond each message stay unchanged.  Phase A:
 * ANY_SOURCE+ANY_TAG; phase B: each source in turn with ANY_TAG (MPI_INT data);
 * phase C: rounds of one common tag, ANY_SOURCE.  Per-source order is checked
 * (MPI's non-overtaking rule). */
typedef struct {
  int tag;
  size_t size;
} wmsg_t;

static void case_wildcard(void) {
  int K = scaled(12);
  const size_t cap = 300000; /* every message fits, most are much shorter */
  unsigned char* buf = xmalloc(cap);
  for (int round = 0; round < 2; round++) {
    int root = round == 0 ? 0 : g_size - 1;
    rng_t r = rng_for(100 + (uint64_t)round);
    /* msgs[s*K + j]: the j-th message of source s */
    wmsg_t* msgs = xmalloc(sizeof(wmsg_t) * (size_t)(g_size * K));
    for (int s = 0; s < g_size; s++)
      for (int j = 0; j < K; j++) {
        msgs[s * K + j].tag = (int)rng_below(&r, 30000);
        size_t sz = pick_size(&r, cap - 4096);
        if (j == 0) sz = 0;          /* a zero-byte message through a wildcard */
        if (j == 1) sz = 4096 * 2 + 1; /* above the default threshold */
        msgs[s * K + j].size = sz & ~(size_t)3; /* multiple of 4 for phase B */
      }
    /* ---- phase A: ANY_SOURCE + ANY_TAG ---- */
    if (g_rank == root) {
      int* next = calloc((size_t)g_size, sizeof(int));
      for (int n = 0; n < (g_size - 1) * K; n++) {
        uint64_t skey = key4(2, (uint64_t)round, (uint64_t)n, 99);
        pat_fill(buf, cap, skey, 0);
        MPI_Status st;
        MPI_Recv(buf, (int)cap, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, g_comm, &st);
        int s = st.MPI_SOURCE;
        if (s < 0 || s >= g_size || s == root || next[s] >= K) {
          errorf("phase A (ANY_SOURCE/ANY_TAG) receive %d: impossible MPI_SOURCE=%d", n, s);
          continue;
        }
        int j = next[s]++;
        char what[160];
        snprintf(what, sizeof what, "phase A (ANY_SOURCE/ANY_TAG) receive %d = message %d of rank %d (%zu bytes)", n,
                 j, s, msgs[s * K + j].size);
        check_status(&st, s, msgs[s * K + j].tag, MPI_BYTE, (int)msgs[s * K + j].size, what);
        size_t sz = msgs[s * K + j].size;
        pat_check(buf, sz, key4(2, (uint64_t)round, (uint64_t)s, (uint64_t)j), 0, "%s: payload", what);
        pat_check(buf + sz, cap - sz, skey, sz, "%s: bytes beyond the message", what);
      }
      free(next);
    } else {
      unsigned char* sb = xmalloc(cap);
      for (int j = 0; j < K; j++) {
        size_t sz = msgs[g_rank * K + j].size;
        pat_fill(sb, sz, key4(2, (uint64_t)round, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(sb, (int)sz, MPI_BYTE, root, msgs[g_rank * K + j].tag, g_comm);
        memset(sb, 0xee, sz);
      }
      free(sb);
    }
    MPI_Barrier(g_comm); /* phases must not mix: a sender may run ahead with eager sends */
    /* ---- phase B: specific source (descending), ANY_TAG, MPI_INT ---- */
    if (g_rank == root) {
      for (int s = g_size - 1; s >= 0; s--) {
        if (s == root) continue;
        for (int j = 0; j < K; j++) {
          size_t sz = msgs[s * K + j].size;
          uint64_t skey = key4(3, (uint64_t)round, (uint64_t)s, (uint64_t)j + 1000);
          pat_fill(buf, cap, skey, 0);
          MPI_Status st;
          MPI_Recv(buf, (int)(cap / 4), MPI_INT, s, MPI_ANY_TAG, g_comm, &st);
          char what[160];
          snprintf(what, sizeof what, "phase B (source %d, ANY_TAG, MPI_INT) message %d (%zu ints)", s, j, sz / 4);
          check_status(&st, s, msgs[s * K + j].tag, MPI_INT, (int)(sz / 4), what);
          pat_check(buf, sz, key4(3, (uint64_t)round, (uint64_t)s, (uint64_t)j), 0, "%s: payload", what);
          pat_check(buf + sz, cap - sz, skey, sz, "%s: bytes beyond the message", what);
        }
      }
    } else {
      int* sb = xmalloc(cap);
      for (int j = 0; j < K; j++) {
        size_t sz = msgs[g_rank * K + j].size;
        pat_fill(sb, sz, key4(3, (uint64_t)round, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(sb, (int)(sz / 4), MPI_INT, root, msgs[g_rank * K + j].tag, g_comm);
        memset(sb, 0xdd, sz);
      }
      free(sb);
    }
    MPI_Barrier(g_comm);
    /* ---- phase C: per round one tag, ANY_SOURCE ---- */
    for (int j = 0; j < K; j++) {
      int tag = 30000 + j;
      if (g_rank == root) {
        int* seen = calloc((size_t)g_size, sizeof(int));
        for (int n = 0; n < g_size - 1; n++) {
          uint64_t skey = key4(4, (uint64_t)round, (uint64_t)j, (uint64_t)n + 77);
          pat_fill(buf, cap, skey, 0);
          MPI_Status st;
          MPI_Recv(buf, (int)cap, MPI_BYTE, MPI_ANY_SOURCE, tag, g_comm, &st);
          int s = st.MPI_SOURCE;
          if (s < 0 || s >= g_size || s == root || seen[s]) {
            errorf("phase C (ANY_SOURCE, tag %d) receive %d: impossible or repeated MPI_SOURCE=%d", tag, n, s);
            continue;
          }
          seen[s] = 1;
          size_t sz = msgs[s * K + (K - 1 - j)].size;
          char what[160];
          snprintf(what, sizeof what, "phase C (ANY_SOURCE, tag %d) message from rank %d (%zu bytes)", tag, s, sz);
          check_status(&st, s, tag, MPI_BYTE, (int)sz, what);
          pat_check(buf, sz, key4(4, (uint64_t)round, (uint64_t)s, (uint64_t)j), 0, "%s: payload", what);
          pat_check(buf + sz, cap - sz, skey, sz, "%s: bytes beyond the message", what);
        }
        free(seen);
      } else {
        unsigned char* sb = xmalloc(cap);
        size_t sz = msgs[g_rank * K + (K - 1 - j)].size;
        pat_fill(sb, sz, key4(4, (uint64_t)round, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(sb, (int)sz, MPI_BYTE, root, tag, g_comm);
        memset(sb, 0xcc, sz);
        free(sb);
      }
    }
    free(msgs);
    MPI_Barrier(g_comm);
  }
  free(buf);
}

/* ------------------------------------------------------------------------- */
/* Case: send_overwrite                                                       */
/* ------------------------------------------------------------------------- */
/* The sender overwrites its buffer in various ways right after MPI_Send returns
 * (whole buffer, first byte, last byte, one byte per page, the next message's
 * content) and reads its writes back; the receiver must get the old content. */
static void case_send_overwrite(void) {
  rng_t r = rng_for(3);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {4096, 4097, 12288, 65536 + 3, 300000, 1 << 20, 4093};
  const int ns = (int)(sizeof sizes / sizeof sizes[0]);
  size_t maxs = 1 << 20;
  unsigned char* buf = xalloc_pages(maxs + g_page);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < ns * 5; k++) {
      size_t size = sizes[k % ns];
      int mode = k / ns; /* 0 whole, 1 first byte, 2 last byte, 3 one byte per page, 4 next content */
      size_t off = (size_t)(k % 3) * 17;
      uint64_t key = key4(5, (uint64_t)p, (uint64_t)k, 0);
      char what[160];
      snprintf(what, sizeof what, "pair %d->%d message %d (%zu bytes, overwrite mode %d)", a, b, k, size, mode);
      if (g_rank == a) {
        unsigned char* s = buf + off;
        if (mode != 4 || k % ns == 0) pat_fill(s, size, key, 0);
        MPI_Send(s, (int)size, MPI_BYTE, b, k, g_comm);
        switch (mode) {
          case 0:
            memset(s, 0x5a, size);
            byte_check(s, size, 0x5a, "sender reading back its overwrite");
            break;
          case 1:
            s[0] ^= 0xff;
            if (s[0] != (uint8_t)(pat_byte(key, 0) ^ 0xff)) errorf("%s: sender's own first-byte write lost", what);
            break;
          case 2:
            s[size - 1] ^= 0xff;
            if (s[size - 1] != (uint8_t)(pat_byte(key, size - 1) ^ 0xff))
              errorf("%s: sender's own last-byte write lost", what);
            break;
          case 3:
            for (size_t i = 0; i < size; i += 1000) s[i] = (uint8_t)(i * 7);
            for (size_t i = 0; i < size; i += 1000)
              if (s[i] != (uint8_t)(i * 7)) {
                errorf("%s: sender's own write at %zu lost", what, i);
                break;
              }
            break;
          case 4:
            if (k + 1 < ns * 5) {
              size_t nsz = sizes[(k + 1) % ns];
              size_t noff = (size_t)((k + 1) % 3) * 17;
              pat_fill(buf + noff, nsz, key4(5, (uint64_t)p, (uint64_t)k + 1, 0), 0);
            }
            break;
        }
      } else if (g_rank == b) {
        unsigned char* rb = xmalloc(size + 64);
        recv_check(rb, size + 64, a, k, size, key, what);
        free(rb);
      }
    }
  }
  xfree_pages(buf, maxs + g_page);
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: recv_read                                                            */
/* ------------------------------------------------------------------------- */
/* The receiver touches the receive buffer right after MPI_Recv returns in
 * different first-access orders (last byte, first byte, a middle page, memcpy of
 * all, a store before any load), receives twice back to back into two buffers and
 * reads the older first, and receives twice into the same buffer (the second
 * message must win). */
static void case_recv_read(void) {
  rng_t r = rng_for(4);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {4096, 5000, 3 * 4096 + 1, 200000, 1 << 20};
  const int ns = (int)(sizeof sizes / sizeof sizes[0]);
  size_t maxs = 1 << 20;
  unsigned char* b1 = xmalloc(maxs + 64);
  unsigned char* b2 = xmalloc(maxs + 64);
  unsigned char* copy = xmalloc(maxs + 64);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < ns; k++) {
      size_t size = sizes[k];
      char what[160];
      if (g_rank == a) {
        for (int m = 0; m < 5 + 2 + 2; m++) {
          pat_fill(b1, size, key4(6, (uint64_t)p, (uint64_t)k, (uint64_t)m), 0);
          MPI_Send(b1, (int)size, MPI_BYTE, b, m, g_comm);
        }
      } else if (g_rank == b) {
        for (int m = 0; m < 5; m++) {
          uint64_t key = key4(6, (uint64_t)p, (uint64_t)k, (uint64_t)m);
          snprintf(what, sizeof what, "pair %d->%d size %zu access order %d", a, b, size, m);
          memset(b1, 0, size);
          MPI_Recv(b1, (int)size, MPI_BYTE, a, m, g_comm, MPI_STATUS_IGNORE);
          switch (m) {
            case 0:
              if (b1[size - 1] != pat_byte(key, size - 1)) errorf("%s: last byte wrong on first access", what);
              break;
            case 1:
              if (b1[0] != pat_byte(key, 0)) errorf("%s: first byte wrong on first access", what);
              break;
            case 2: {
              size_t mid = size / 2 / g_page * g_page;
              pat_check(b1 + mid, size - mid > g_page ? g_page : size - mid, key, mid, "%s: middle page", what);
              break;
            }
            case 3:
              memcpy(copy, b1, size);
              pat_check(copy, size, key, 0, "%s: memcpy of the received buffer", what);
              break;
            case 4:
              b1[size / 2] = (uint8_t)~pat_byte(key, size / 2); /* store first */
              if (b1[size / 2] != (uint8_t)~pat_byte(key, size / 2)) errorf("%s: store right after receive lost", what);
              b1[size / 2] = pat_byte(key, size / 2);
              break;
          }
          pat_check(b1, size, key, 0, "%s: payload", what);
        }
        /* two buffers back to back, older read first */
        MPI_Recv(b1, (int)size, MPI_BYTE, a, 5, g_comm, MPI_STATUS_IGNORE);
        MPI_Recv(b2, (int)size, MPI_BYTE, a, 6, g_comm, MPI_STATUS_IGNORE);
        snprintf(what, sizeof what, "pair %d->%d size %zu back-to-back receives", a, b, size);
        pat_check(b1, size, key4(6, (uint64_t)p, (uint64_t)k, 5), 0, "%s: first buffer", what);
        pat_check(b2, size, key4(6, (uint64_t)p, (uint64_t)k, 6), 0, "%s: second buffer", what);
        /* same buffer twice: the later message must be what remains */
        MPI_Recv(b1, (int)size, MPI_BYTE, a, 7, g_comm, MPI_STATUS_IGNORE);
        MPI_Recv(b1, (int)size, MPI_BYTE, a, 8, g_comm, MPI_STATUS_IGNORE);
        snprintf(what, sizeof what, "pair %d->%d size %zu two receives into one buffer", a, b, size);
        pat_check(b1, size, key4(6, (uint64_t)p, (uint64_t)k, 8), 0, "%s: the second message", what);
      }
    }
  }
  free(b1);
  free(b2);
  free(copy);
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: shared_pages                                                         */
/* ------------------------------------------------------------------------- */
/* Messages in the middle of a page-spanning array, sharing pages with live data:
 * two adjacent messages A and B (B starts where A ends or a few bytes later) with
 * neighbours before A and after B, and counters at the ends of the array.  Right
 * after each call the neighbours (including the other message region) are read
 * and written; nothing outside the message may change and no program write may
 * be lost. */
static void case_shared_pages(void) {
  rng_t r = rng_for(5);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  const size_t area_len = 12 * g_page;
  unsigned char* area = xalloc_pages(area_len);
  volatile uint64_t* head = (volatile uint64_t*)area;                              /* first 64 bytes */
  volatile uint64_t* tail = (volatile uint64_t*)(area + area_len - 64);            /* last 64 bytes */
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < 8; k++) {
      size_t la, lb, gap, start;
      switch (k) {
        case 0: la = 1000, lb = 1000, gap = 0, start = g_page - 500; break;    /* small, straddling */
        case 1: la = 4096, lb = 4097, gap = 0, start = g_page - 100; break;    /* around the threshold */
        case 2: la = 5000, lb = 3 * g_page + 7, gap = 3, start = 700; break;
        case 3: la = 3 * g_page + 7, lb = 4096, gap = 1, start = 2 * g_page + 1; break;
        case 4: la = 2 * g_page, lb = 2 * g_page, gap = 0, start = g_page; break; /* page aligned */
        default:
          la = 4096 + rng_below(&r, 3 * g_page);
          lb = 4096 + rng_below(&r, 3 * g_page);
          gap = rng_below(&r, 3) == 0 ? 0 : rng_below(&r, 200);
          start = 64 + 64 + rng_below(&r, g_page);
          break;
      }
      if (start < 128) start = 128;
      size_t astart = start, bstart = start + la + gap;
      size_t end = bstart + lb;
      if (end + 64 + 64 > area_len) fatalf("shared_pages layout too large");
      size_t n1 = astart - 64; /* neighbour bytes before A: [64 .. astart) minus head */
      uint64_t ka = key4(7, (uint64_t)p, (uint64_t)k, 1), kb = key4(7, (uint64_t)p, (uint64_t)k, 2);
      uint64_t kbg = key4(7, (uint64_t)p, (uint64_t)k, 3), knew = key4(7, (uint64_t)p, (uint64_t)k, 4);
      char what[200];
      snprintf(what, sizeof what, "pair %d->%d layout %d (A=[%zu,+%zu) B=[%zu,+%zu) in a %zu-byte page-spanning array)",
               a, b, k, astart, la, bstart, lb, area_len);
      if (g_rank == a) {
        pat_fill(area, area_len, kbg, 0);
        pat_fill(area + astart, la, ka, 0);
        MPI_Send(area + astart, (int)la, MPI_BYTE, b, 1, g_comm);
        /* right away: write B's content (same page as A), the neighbour before A and the counters */
        pat_fill(area + bstart, lb, kb, 0);
        head[0]++;
        tail[0]++;
        pat_fill(area + 64, n1, knew, 0);
        MPI_Send(area + bstart, (int)lb, MPI_BYTE, b, 2, g_comm);
        /* right away: trash A and the gap, touch after-B */
        memset(area + astart, 0x11, la + gap);
        pat_fill(area + end, area_len - 64 - end, knew, end);
        head[1] = head[0] + 5;
        tail[1] = tail[0] + 7;
        pat_check(area + 64, n1, knew, 0, "%s: sender's neighbour before A", what);
        byte_check(area + astart, la + gap, 0x11, "shared_pages: sender's overwrite of A");
        pat_check(area + bstart, lb, kb, 0, "%s: sender's B region", what);
        pat_check(area + end, area_len - 64 - end, knew, end, "%s: sender's neighbour after B", what);
        if (head[1] != head[0] + 5 || tail[1] != tail[0] + 7) errorf("%s: sender's counters corrupted", what);
      } else if (g_rank == b) {
        pat_fill(area, area_len, kbg, 0);
        uint64_t h0 = head[0], t0 = tail[0];
        MPI_Recv(area + astart, (int)la, MPI_BYTE, a, 1, g_comm, MPI_STATUS_IGNORE);
        /* right away: write the neighbour before A and the counters, read after-B */
        pat_fill(area + 64, n1, knew, 0);
        head[0] = h0 + 1;
        tail[0] = t0 + 1;
        pat_check(area + end, area_len - 64 - end, kbg, end, "%s: bytes after B right after receiving A", what);
        pat_check(area + bstart, lb, kbg, bstart, "%s: B region right after receiving A (before B)", what);
        MPI_Recv(area + bstart, (int)lb, MPI_BYTE, a, 2, g_comm, MPI_STATUS_IGNORE);
        /* right away: write after-B and the gap, then check everything */
        pat_fill(area + end, area_len - 64 - end, knew, end);
        if (gap) memset(area + astart + la, 0x77, gap);
        head[1] = h0 + 42;
        tail[1] = t0 + 43;
        pat_check(area + astart, la, ka, 0, "%s: message A", what);
        pat_check(area + bstart, lb, kb, 0, "%s: message B", what);
        pat_check(area + 64, n1, knew, 0, "%s: neighbour before A (written after receiving A)", what);
        pat_check(area + end, area_len - 64 - end, knew, end, "%s: neighbour after B", what);
        if (gap) byte_check(area + astart + la, gap, 0x77, "shared_pages: gap between A and B");
        if (head[0] != h0 + 1 || tail[0] != t0 + 1 || head[1] != h0 + 42 || tail[1] != t0 + 43)
          errorf("%s: counters at the array ends corrupted", what);
        pat_check((const void*)(head + 2), 48, kbg, 16, "%s: untouched head bytes", what);
      }
    }
  }
  /* An array of structs: each message is one struct's payload, the id/flag fields
   * of the same and the neighbouring structs are updated right after each call. */
  struct rec {
    int id;
    double vals[700]; /* 5600 bytes: crosses a page */
    int flag;
  };
  enum { NREC = 6 };
  struct rec* recs = xmalloc(sizeof(struct rec) * NREC);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    uint64_t key = key4(8, (uint64_t)p, 0, 0);
    if (g_rank == a) {
      for (int i = 0; i < NREC; i++) {
        recs[i].id = i;
        recs[i].flag = -i;
        pat_fill(recs[i].vals, sizeof recs[i].vals, key, (size_t)i * 8192);
      }
      for (int i = 0; i < NREC; i++) {
        MPI_Send(recs[i].vals, 700, MPI_DOUBLE, b, 100 + i, g_comm);
        recs[i].id += 1000;
        recs[i].flag += 1000;
        if (i + 1 < NREC) recs[i + 1].id += 1;
        memset(recs[i].vals, 0, sizeof recs[i].vals);
      }
      for (int i = 0; i < NREC; i++)
        if (recs[i].id != i + 1000 + (i > 0) || recs[i].flag != -i + 1000)
          errorf("struct array pair %d->%d: sender's struct %d fields corrupted (id=%d flag=%d)", a, b, i, recs[i].id,
                 recs[i].flag);
    } else if (g_rank == b) {
      for (int i = 0; i < NREC; i++) {
        recs[i].id = i;
        recs[i].flag = -i;
        memset(recs[i].vals, 0xab, sizeof recs[i].vals);
      }
      for (int i = 0; i < NREC; i++) {
        MPI_Recv(recs[i].vals, 700, MPI_DOUBLE, a, 100 + i, g_comm, MPI_STATUS_IGNORE);
        recs[i].id += 2000;
        recs[i].flag += 2000;
        if (i + 1 < NREC) recs[i + 1].id += 1;
      }
      for (int i = 0; i < NREC; i++) {
        if (recs[i].id != i + 2000 + (i > 0) || recs[i].flag != -i + 2000)
          errorf("struct array pair %d->%d: receiver's struct %d fields corrupted (id=%d flag=%d)", a, b, i,
                 recs[i].id, recs[i].flag);
        pat_check(recs[i].vals, sizeof recs[i].vals, key, (size_t)i * 8192, "struct array pair %d->%d: struct %d vals",
                  a, b, i);
      }
    }
  }
  free(recs);
  xfree_pages(area, area_len);
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: multi_send                                                           */
/* ------------------------------------------------------------------------- */
/* A root sends one buffer to every other rank back to back (and once more to the
 * first peer with another tag, and overlapping halves of it to two peers), then
 * overwrites it and sends it to everyone again. */
static void case_multi_send(void) {
  static const size_t sizes[] = {4096, 100000, (1 << 20) + 13};
  for (int root = 0; root < g_size; root++) {
    for (int k = 0; k < 3; k++) {
      size_t size = sizes[k];
      uint64_t k1 = key4(9, (uint64_t)root, (uint64_t)k, 1), k2 = key4(9, (uint64_t)root, (uint64_t)k, 2);
      int first = (root + 1) % g_size, last = (root + g_size - 1) % g_size;
      char what[160];
      if (g_rank == root) {
        unsigned char* buf = xmalloc(2 * size);
        pat_fill(buf, 2 * size, k1, 0);
        for (int i = 1; i < g_size; i++) MPI_Send(buf, (int)size, MPI_BYTE, (root + i) % g_size, 1, g_comm);
        MPI_Send(buf, (int)size, MPI_BYTE, first, 2, g_comm);                 /* same buffer again, same peer */
        MPI_Send(buf + size / 2, (int)size, MPI_BYTE, first, 3, g_comm);      /* overlapping ranges ... */
        MPI_Send(buf + size / 4, (int)size, MPI_BYTE, last, 3, g_comm);       /* ... in outstanding sends */
        pat_fill(buf, 2 * size, k2, 0);
        for (int i = g_size - 1; i >= 1; i--) MPI_Send(buf, (int)size, MPI_BYTE, (root + i) % g_size, 4, g_comm);
        memset(buf, 0, 2 * size);
        free(buf);
      } else {
        unsigned char* rb = xmalloc(size + 64);
        snprintf(what, sizeof what, "root %d, %zu bytes, first send of the buffer", root, size);
        recv_check(rb, size + 64, root, 1, size, k1, what);
        if (g_rank == first) {
          snprintf(what, sizeof what, "root %d, %zu bytes, same buffer sent again", root, size);
          recv_check(rb, size + 64, root, 2, size, k1, what);
          memset(rb, 0, size);
          MPI_Recv(rb, (int)size, MPI_BYTE, root, 3, g_comm, MPI_STATUS_IGNORE);
          pat_check(rb, size, k1, size / 2, "root %d, %zu bytes, overlapping range [size/2, +size)", root, size);
        }
        if (g_rank == last) {
          memset(rb, 0, size);
          MPI_Recv(rb, (int)size, MPI_BYTE, root, 3, g_comm, MPI_STATUS_IGNORE);
          pat_check(rb, size, k1, size / 4, "root %d, %zu bytes, overlapping range [size/4, +size)", root, size);
        }
        snprintf(what, sizeof what, "root %d, %zu bytes, buffer overwritten after the sends", root, size);
        recv_check(rb, size + 64, root, 4, size, k2, what);
        free(rb);
      }
    }
  }
}

/* ------------------------------------------------------------------------- */
/* Case: forward_ring                                                         */
/* ------------------------------------------------------------------------- */
/* A ring: rank 0 sends, every other rank receives and immediately sends the same
 * buffer on (after adding its rank+1 to every byte, in one variant), rank 0 gets
 * it back and checks.  The next lap reuses the same buffers at once. */
static void case_forward_ring(void) {
  static const size_t sizes[] = {4096, 4097, 65536, 1000003, 8192};
  const int laps = scaled(3);
  size_t maxs = 1000003;
  unsigned char* buf = xmalloc(maxs);
  int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
  for (int lap = 0; lap < laps; lap++)
    for (int k = 0; k < (int)(sizeof sizes / sizeof sizes[0]); k++)
      for (int transform = 0; transform < 2; transform++) {
        size_t size = sizes[k];
        uint64_t key = key4(10, (uint64_t)lap, (uint64_t)k, (uint64_t)transform);
        int tag = lap * 100 + k * 2 + transform;
        if (g_rank == 0) {
          pat_fill(buf, size, key, 0);
          MPI_Send(buf, (int)size, MPI_BYTE, next, tag, g_comm);
          memset(buf, 0, size);
          MPI_Recv(buf, (int)size, MPI_BYTE, prev, tag, g_comm, MPI_STATUS_IGNORE);
          if (!transform) {
            pat_check(buf, size, key, 0, "lap %d, %zu bytes: message back at rank 0 after the ring", lap, size);
          } else {
            /* every rank r>0 added r+1 */
            uint8_t add = (uint8_t)((g_size - 1) * (g_size + 2) / 2);
            for (size_t i = 0; i < size; i++) buf[i] = (uint8_t)(buf[i] - add);
            pat_check(buf, size, key, 0, "lap %d, %zu bytes, transformed by every rank: message back at rank 0", lap,
                      size);
          }
        } else {
          MPI_Recv(buf, (int)size, MPI_BYTE, prev, tag, g_comm, MPI_STATUS_IGNORE);
          if (transform)
            for (size_t i = 0; i < size; i++) buf[i] = (uint8_t)(buf[i] + g_rank + 1);
          MPI_Send(buf, (int)size, MPI_BYTE, next, tag, g_comm);
          memset(buf, 0x33, size); /* reuse at once */
        }
      }
  free(buf);
}

/* ------------------------------------------------------------------------- */
/* Case: syscalls                                                             */
/* ------------------------------------------------------------------------- */
/* System calls on buffers right after MPI calls: write(2) of a just-received
 * buffer to a file and to a pipe, send(2) of it on a socketpair, read(2) from a
 * file / pipe and recv(2) from a socket into a just-sent buffer (the receiver
 * must get the old content), write(2) of a just-sent buffer, and read(2) into a
 * just-received buffer (the read data must win). Helper threads drain/feed pipes
 * and sockets so that any size works. */
typedef struct {
  int fd;
  unsigned char* buf;
  size_t n;
  int sock; /* use send/recv instead of write/read */
  int err;
} io_job_t;

static void* io_reader(void* arg) {
  io_job_t* j = arg;
  size_t got = 0;
  while (got < j->n) {
    ssize_t r = j->sock ? recv(j->fd, j->buf + got, j->n - got, 0) : read(j->fd, j->buf + got, j->n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      j->err = r < 0 ? errno : -1;
      break;
    }
    got += (size_t)r;
  }
  return NULL;
}
static void* io_writer(void* arg) {
  io_job_t* j = arg;
  size_t put = 0;
  while (put < j->n) {
    ssize_t r = j->sock ? send(j->fd, j->buf + put, j->n - put, MSG_NOSIGNAL) : write(j->fd, j->buf + put, j->n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      j->err = r < 0 ? errno : -1;
      break;
    }
    put += (size_t)r;
  }
  return NULL;
}
/* Writes/reads all n bytes on the calling thread; returns 0 or an errno. */
static int write_all(int fd, const unsigned char* b, size_t n, int sock) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = sock ? send(fd, b + put, n - put, MSG_NOSIGNAL) : write(fd, b + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? errno : EIO;
    put += (size_t)r;
  }
  return 0;
}
static int read_all(int fd, unsigned char* b, size_t n, int sock) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = sock ? recv(fd, b + got, n - got, MSG_WAITALL) : read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? errno : EIO;
    got += (size_t)r;
  }
  return 0;
}

static int temp_file(void) {
  const char* dir = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/stress-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0) fatalf("mkstemp(%s): %s", path, strerror(errno));
  unlink(path);
  return fd;
}

static void case_syscalls(void) {
  rng_t r = rng_for(11);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {5000, 65536 + 3, 300000, (1 << 20) + 1};
  const int ns = (int)(sizeof sizes / sizeof sizes[0]);
  size_t maxs = (1 << 20) + 1;
  unsigned char* buf = xmalloc(maxs + 16);
  unsigned char* other = xmalloc(maxs + 16);
  int fd = temp_file();
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < ns; k++) {
      size_t size = sizes[k];
      size_t off = (size_t)k * 3; /* odd offsets too */
      unsigned char* s = buf + off;
      char what[160];
      uint64_t km[8];
      for (int m = 0; m < 8; m++) km[m] = key4(11, (uint64_t)p, (uint64_t)k, (uint64_t)m);
      uint64_t kfile = key4(11, (uint64_t)p, (uint64_t)k, 100);
      if (g_rank == b) {
        /* 1: write(2) a just-received buffer to a file */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: write(2) to a file right after MPI_Recv", a, b, size);
        MPI_Recv(s, (int)size, MPI_BYTE, a, 1, g_comm, MPI_STATUS_IGNORE);
        if (lseek(fd, 0, SEEK_SET) != 0 || ftruncate(fd, 0) != 0) fatalf("lseek/ftruncate: %s", strerror(errno));
        int e = write_all(fd, s, size, 0);
        if (e) errorf("%s: write failed: %s", what, strerror(e));
        if (pread(fd, other, size, 0) != (ssize_t)size) errorf("%s: pread back failed", what);
        pat_check(other, size, km[1], 0, "%s: file content", what);
        pat_check(s, size, km[1], 0, "%s: buffer", what);
        /* 2: write(2) a just-received buffer to a pipe (reader thread drains it) */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: write(2) to a pipe right after MPI_Recv", a, b, size);
        int pf[2];
        if (pipe(pf) != 0) fatalf("pipe: %s", strerror(errno));
        io_job_t job = {pf[0], other, size, 0, 0};
        pthread_t th;
        memset(other, 0, size);
        MPI_Recv(s, (int)size, MPI_BYTE, a, 2, g_comm, MPI_STATUS_IGNORE);
        pthread_create(&th, NULL, io_reader, &job);
        e = write_all(pf[1], s, size, 0);
        if (e) errorf("%s: write failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        if (job.err) errorf("%s: reader failed: %d", what, job.err);
        pat_check(other, size, km[2], 0, "%s: data read from the pipe", what);
        close(pf[0]);
        close(pf[1]);
        /* 3: send(2) a just-received buffer on a socketpair */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: send(2) on a socketpair right after MPI_Recv", a, b, size);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) fatalf("socketpair: %s", strerror(errno));
        io_job_t sj = {sv[1], other, size, 1, 0};
        memset(other, 0, size);
        MPI_Recv(s, (int)size, MPI_BYTE, a, 3, g_comm, MPI_STATUS_IGNORE);
        pthread_create(&th, NULL, io_reader, &sj);
        e = write_all(sv[0], s, size, 1);
        if (e) errorf("%s: send failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        if (sj.err) errorf("%s: reader failed: %d", what, sj.err);
        pat_check(other, size, km[3], 0, "%s: data received from the socket", what);
        /* 4: read(2) from a file INTO a just-received buffer: the file data must win */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: read(2) into the buffer right after MPI_Recv", a, b, size);
        pat_fill(other, size, kfile, 0);
        if (pwrite(fd, other, size, 0) != (ssize_t)size) fatalf("pwrite: %s", strerror(errno));
        MPI_Recv(s, (int)size, MPI_BYTE, a, 4, g_comm, MPI_STATUS_IGNORE);
        if (lseek(fd, 0, SEEK_SET) != 0) fatalf("lseek: %s", strerror(errno));
        e = read_all(fd, s, size, 0);
        if (e) errorf("%s: read failed: %s", what, strerror(e));
        pat_check(s, size, kfile, 0, "%s: buffer must hold the file data", what);
        /* 5: recv(2) from a socket into a just-received buffer (data already queued by a writer) */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: recv(2) into the buffer right after MPI_Recv", a, b, size);
        pat_fill(other, size, kfile ^ 1, 0);
        io_job_t wj = {sv[1], other, size, 1, 0};
        pthread_create(&th, NULL, io_writer, &wj);
        MPI_Recv(s, (int)size, MPI_BYTE, a, 5, g_comm, MPI_STATUS_IGNORE);
        e = read_all(sv[0], s, size, 1);
        if (e) errorf("%s: recv failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        pat_check(s, size, kfile ^ 1, 0, "%s: buffer must hold the socket data", what);
        close(sv[0]);
        close(sv[1]);
        /* 6, 7: the sender's checks; just receive */
        for (int m = 6; m <= 7; m++) {
          snprintf(what, sizeof what, "pair %d->%d %zu bytes: message %d (sender did I/O on its buffer)", a, b, size, m);
          recv_check(other, size + 16, a, m, size, km[m], what);
        }
        /* after 8: the sender's buffer was read by read(2) from a pipe */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: message 8 (sender read(2) a pipe into it)", a, b, size);
        recv_check(other, size + 16, a, 8, size, km[0], what);
      } else if (g_rank == a) {
        for (int m = 1; m <= 5; m++) {
          pat_fill(s, size, km[m], 0);
          MPI_Send(s, (int)size, MPI_BYTE, b, m, g_comm);
        }
        /* 6: read(2) from a file into the just-sent buffer */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: read(2) from a file into the buffer right after MPI_Send",
                 a, b, size);
        pat_fill(other, size, kfile ^ 2, 0);
        if (pwrite(fd, other, size, 0) != (ssize_t)size) fatalf("pwrite: %s", strerror(errno));
        pat_fill(s, size, km[6], 0);
        MPI_Send(s, (int)size, MPI_BYTE, b, 6, g_comm);
        if (lseek(fd, 0, SEEK_SET) != 0) fatalf("lseek: %s", strerror(errno));
        int e = read_all(fd, s, size, 0);
        if (e) errorf("%s: read failed: %s", what, strerror(e));
        pat_check(s, size, kfile ^ 2, 0, "%s: buffer must hold the file data", what);
        /* 7: recv(2) from a socket into the just-sent buffer; then write(2) the just-sent buffer to a file */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: recv(2) into the buffer right after MPI_Send", a, b, size);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) fatalf("socketpair: %s", strerror(errno));
        pat_fill(other, size, kfile ^ 3, 0);
        io_job_t wj = {sv[1], other, size, 1, 0};
        pthread_t th;
        pthread_create(&th, NULL, io_writer, &wj);
        pat_fill(s, size, km[7], 0);
        MPI_Send(s, (int)size, MPI_BYTE, b, 7, g_comm);
        e = read_all(sv[0], s, size, 1);
        if (e) errorf("%s: recv failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        pat_check(s, size, kfile ^ 3, 0, "%s: buffer must hold the socket data", what);
        close(sv[0]);
        close(sv[1]);
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: write(2) of the buffer right after MPI_Send", a, b, size);
        pat_fill(s, size, km[0], 0);
        MPI_Send(s, (int)size, MPI_BYTE, b, 8, g_comm);
        if (lseek(fd, 0, SEEK_SET) != 0 || ftruncate(fd, 0) != 0) fatalf("lseek/ftruncate: %s", strerror(errno));
        e = write_all(fd, s, size, 0);
        if (e) errorf("%s: write failed: %s", what, strerror(e));
        memset(other, 0, size);
        if (pread(fd, other, size, 0) != (ssize_t)size) errorf("%s: pread back failed", what);
        pat_check(other, size, km[0], 0, "%s: file content", what);
        /* read(2) from a pipe into the just-sent buffer (a writer thread feeds the pipe) */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: read(2) from a pipe into the buffer right after MPI_Send",
                 a, b, size);
        int pf[2];
        if (pipe(pf) != 0) fatalf("pipe: %s", strerror(errno));
        pat_fill(other, size, kfile ^ 4, 0);
        io_job_t pj = {pf[1], other, size, 0, 0};
        pthread_create(&th, NULL, io_writer, &pj);
        e = read_all(pf[0], s, size, 0);
        if (e) errorf("%s: read failed: %s", what, strerror(e));
        pthread_join(th, NULL);
        pat_check(s, size, kfile ^ 4, 0, "%s: buffer must hold the pipe data", what);
        close(pf[0]);
        close(pf[1]);
      }
    }
  }
  close(fd);
  free(buf);
  free(other);
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: zero_unaligned                                                       */
/* ------------------------------------------------------------------------- */
/* Zero-byte messages (NULL and real buffers, MPI_BYTE and MPI_INT, capacity 0 and
 * larger: nothing may change), and messages at odd offsets of odd sizes that
 * start/end one byte into or before a page, including MPI_INT data at addresses
 * that are not 4-byte aligned. */
static void case_zero_unaligned(void) {
  rng_t r = rng_for(12);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  size_t offs[] = {1, 3, 7, g_page - 1, g_page + 1, 2 * g_page - 3};
  size_t sizes[] = {4095, 4097, 8191, 3 * g_page + 1, 65537, g_page - 1 + 4096};
  const int no = (int)(sizeof offs / sizeof offs[0]);
  const int nsz = (int)(sizeof sizes / sizeof sizes[0]);
  size_t alen = 4 * g_page + 70000;
  unsigned char* area = xalloc_pages(alen);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    char what[160];
    /* zero-size messages */
    if (g_rank == a) {
      MPI_Send(NULL, 0, MPI_BYTE, b, 1, g_comm);
      MPI_Send(area + 5, 0, MPI_BYTE, b, 2, g_comm);
      MPI_Send(NULL, 0, MPI_INT, b, 3, g_comm);
      MPI_Send(area, 0, MPI_BYTE, b, 4, g_comm);
    } else if (g_rank == b) {
      MPI_Status st;
      uint64_t sk = key4(12, (uint64_t)p, 0, 0);
      pat_fill(area, alen, sk, 0);
      MPI_Recv(NULL, 0, MPI_BYTE, a, 1, g_comm, &st);
      check_status(&st, a, 1, MPI_BYTE, 0, "zero-size message into NULL");
      MPI_Recv(area + 1, 100, MPI_BYTE, a, MPI_ANY_TAG, g_comm, &st);
      check_status(&st, a, 2, MPI_BYTE, 0, "zero-size message into a 100-byte buffer");
      MPI_Recv(area + 3, 5000, MPI_INT, a, 3, g_comm, &st); /* (ANY_SOURCE: case wildcard) */
      check_status(&st, a, 3, MPI_INT, 0, "zero-size MPI_INT message into a 20000-byte buffer");
      MPI_Recv(area + g_page - 1, 0, MPI_BYTE, a, 4, g_comm, &st);
      check_status(&st, a, 4, MPI_BYTE, 0, "zero-size message into a zero-size buffer");
      pat_check(area, alen, sk, 0, "zero-size messages (pair %d->%d): receive buffers must stay unchanged", a, b);
      area[1] = 1; /* writable right away */
    }
    /* unaligned buffers */
    for (int i = 0; i < no; i++)
      for (int j = 0; j < nsz; j += 1 + (i + p) % 2) {
        size_t off = offs[i], size = sizes[j];
        if (off + size + 64 > alen) continue;
        uint64_t key = key4(12, (uint64_t)p, (uint64_t)i, (uint64_t)j + 1);
        int tag = 10 + i * nsz + j;
        snprintf(what, sizeof what, "pair %d->%d %zu bytes at offset %zu from a page", a, b, size, off);
        if (g_rank == a) {
          pat_fill(area + off, size, key, 0);
          MPI_Send(area + off, (int)size, MPI_BYTE, b, tag, g_comm);
          area[off + size - 1] ^= 1;
          area[off] ^= 1;
        } else if (g_rank == b) {
          uint64_t sk = key ^ 77;
          pat_fill(area, alen, sk, 0);
          MPI_Status st;
          MPI_Recv(area + off, (int)size + 33, MPI_BYTE, a, tag, g_comm, &st);
          area[off - 1] ^= 0xff; /* neighbour byte, same page */
          check_status(&st, a, tag, MPI_BYTE, (int)size, what);
          pat_check(area + off, size, key, 0, "%s: payload", what);
          area[off - 1] ^= 0xff;
          pat_check(area, off, sk, 0, "%s: bytes before the buffer", what);
          pat_check(area + off + size, alen - off - size, sk, off + size, "%s: bytes after the message", what);
        }
      }
    /* MPI_INT at addresses that are not int-aligned */
    {
      int count = 3000 + p;
      uint64_t key = key4(12, (uint64_t)p, 99, 99);
      snprintf(what, sizeof what, "pair %d->%d %d MPI_INT at an odd address", a, b, count);
      if (g_rank == a) {
        pat_fill(area + 1, (size_t)count * 4, key, 0);
        MPI_Send(area + 1, count, MPI_INT, b, 999, g_comm);
        memset(area + 1, 0, (size_t)count * 4);
      } else if (g_rank == b) {
        uint64_t sk = key ^ 78;
        pat_fill(area, alen, sk, 0);
        MPI_Status st;
        MPI_Recv(area + 3, count + 10, MPI_INT, a, 999, g_comm, &st);
        check_status(&st, a, 999, MPI_INT, count, what);
        pat_check(area + 3, (size_t)count * 4, key, 0, "%s: payload", what);
        pat_check(area, 3, sk, 0, "%s: bytes before", what);
        pat_check(area + 3 + (size_t)count * 4, alen - 3 - (size_t)count * 4, sk, 3 + (size_t)count * 4,
                  "%s: bytes after", what);
      }
    }
  }
  xfree_pages(area, alen);
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: threads                                                              */
/* ------------------------------------------------------------------------- */
/* MPI_THREAD_FUNNELED: only the main thread calls MPI.  (1) A worker thread
 * reads every byte of the buffer right after the main thread's MPI_Recv returns
 * and writes a new content into it, which the main thread then sends on; right
 * after that MPI_Send the worker overwrites the buffer again.  (2) All along, a
 * "hammer" thread keeps incrementing counters and rewriting bytes that share
 * pages with the receive and send buffers; no increment or write may be lost. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int cmd; /* 0 idle, 1 check+rewrite, 2 overwrite, 3 quit */
  int done;
  unsigned char* buf;
  size_t size;
  uint64_t key_expect, key_new;
  size_t bad;
  char what[160];
} worker_t;

static void* worker_main(void* arg) {
  worker_t* w = arg;
  for (;;) {
    pthread_mutex_lock(&w->mu);
    while (w->cmd == 0) pthread_cond_wait(&w->cv, &w->mu);
    int cmd = w->cmd;
    if (cmd == 3) {
      w->done = 1;
      pthread_cond_broadcast(&w->cv);
      pthread_mutex_unlock(&w->mu);
      return NULL;
    }
    pthread_mutex_unlock(&w->mu);
    if (cmd == 1) {
      /* read every byte (no errorf from threads: count and report from main) */
      size_t bad = 0;
      for (size_t i = 0; i < w->size; i++)
        if (w->buf[i] != pat_byte(w->key_expect, i)) bad++;
      w->bad = bad;
      pat_fill(w->buf, w->size, w->key_new, 0);
    } else if (cmd == 2) {
      memset(w->buf, 0x99, w->size);
    }
    pthread_mutex_lock(&w->mu);
    w->cmd = 0;
    w->done = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
  }
}
static void worker_run(worker_t* w, int cmd) {
  pthread_mutex_lock(&w->mu);
  w->done = 0;
  w->cmd = cmd;
  pthread_cond_broadcast(&w->cv);
  while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

typedef struct {
  volatile uint64_t* counter_a; /* on the first page of the receive buffer */
  volatile uint64_t* counter_b; /* on the last page of the send buffer */
  volatile unsigned char* bytes; /* 64 bytes right after the receive buffer, same page */
  volatile int stop;
  uint64_t n;
  size_t lost;
} hammer_t;

static void* hammer_main(void* arg) {
  hammer_t* h = arg;
  struct timespec ts = {0, 20000};
  while (!h->stop) {
    (*h->counter_a)++;
    (*h->counter_b)++;
    uint64_t n = ++h->n;
    for (int i = 0; i < 64; i++) h->bytes[i] = (unsigned char)(n + (uint64_t)i);
    for (int i = 0; i < 64; i++)
      if (h->bytes[i] != (unsigned char)(n + (uint64_t)i)) h->lost++;
    if (*h->counter_a != n || *h->counter_b != n) h->lost++;
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void case_threads(void) {
  rng_t r = rng_for(13);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {4096, 10000, 250000, (1 << 20) + 5};
  const int ns = (int)(sizeof sizes / sizeof sizes[0]);
  size_t maxs = (1 << 20) + 5;
  /* layout: [counter_a 8 bytes][pad][ rbuf (maxs) ][hammer bytes 64][pad] and similarly for sbuf */
  size_t rlen = maxs + 256, slen = maxs + 256;
  unsigned char* rarea = xalloc_pages(rlen);
  unsigned char* sarea = xalloc_pages(slen);
  unsigned char* rbuf = rarea + 64;
  unsigned char* sbuf = sarea + 64;
  worker_t w;
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  pthread_t wt, ht;
  pthread_create(&wt, NULL, worker_main, &w);
  hammer_t h;
  memset(&h, 0, sizeof h);
  h.counter_a = (volatile uint64_t*)rarea;
  h.counter_b = (volatile uint64_t*)(sarea + 8);
  *h.counter_a = 0;
  *h.counter_b = 0;
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < ns; k++) {
      size_t size = sizes[k];
      /* the hammer's bytes follow the message on its last page */
      uint64_t k1 = key4(13, (uint64_t)p, (uint64_t)k, 1), k2 = key4(13, (uint64_t)p, (uint64_t)k, 2);
      char what[160];
      if (g_rank == a) {
        pat_fill(sbuf, size, k1, 0);
        MPI_Send(sbuf, (int)size, MPI_BYTE, b, 1, g_comm);
        w.buf = sbuf;
        w.size = size;
        worker_run(&w, 2); /* another thread overwrites the just-sent buffer */
        byte_check(sbuf, size, 0x99, "threads: main thread reading the worker's overwrite of a just-sent buffer");
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: forwarded after a worker rewrote it", a, b, size);
        recv_check(rbuf, size + 64, b, 2, size, k2, what);
      } else if (g_rank == b) {
        memset(rbuf, 0, size);
        MPI_Recv(rbuf, (int)size, MPI_BYTE, a, 1, g_comm, MPI_STATUS_IGNORE);
        w.buf = rbuf;
        w.size = size;
        w.key_expect = k1;
        w.key_new = k2;
        worker_run(&w, 1); /* another thread checks, then rewrites the just-received buffer */
        snprintf(what, sizeof what, "pair %d->%d %zu bytes: worker thread reading right after MPI_Recv", a, b, size);
        if (w.bad) errorf("%s: %zu of %zu bytes wrong", what, w.bad, size);
        pat_check(rbuf, size, k2, 0, "%s: main thread reading the worker's rewrite", what);
        MPI_Send(rbuf, (int)size, MPI_BYTE, a, 2, g_comm);
        worker_run(&w, 2); /* and overwrites it right after the main thread's MPI_Send */
      }
    }
    if (p == 0) {
      /* from now on a hammer thread runs on the pages of both buffers */
      h.bytes = rbuf + maxs + 64 + 8; /* beyond recv_check's capacity (size + 64) */
      pthread_create(&ht, NULL, hammer_main, &h);
    }
  }
  h.stop = 1;
  pthread_join(ht, NULL);
  if (h.lost) errorf("hammer thread: %zu lost writes on pages shared with MPI buffers", h.lost);
  if (*h.counter_a != h.n || *h.counter_b != h.n)
    errorf("hammer thread: counters next to the MPI buffers are %llu and %llu, expected %llu",
           (unsigned long long)*h.counter_a, (unsigned long long)*h.counter_b, (unsigned long long)h.n);
  worker_run(&w, 3);
  pthread_join(wt, NULL);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  xfree_pages(rarea, rlen);
  xfree_pages(sarea, slen);
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: sigsegv                                                              */
/* ------------------------------------------------------------------------- */
/* The program installs its own SIGSEGV handler (sigaction, SA_SIGINFO) and,
 * interleaved with MPI traffic whose buffers are touched right after the calls,
 * triggers genuine faults: a store to a PROT_NONE page it mapped itself (the
 * handler makes it writable and returns; the store must take effect), a load
 * from another PROT_NONE page (the handler siglongjmps out), and a fault on a
 * second thread.  The handler must run exactly once per genuine fault and never
 * for anything else (an unexpected fault prints its address and exits 5).
 * sigaction(SIGSEGV, NULL, &old) must report the program's handler. */
static unsigned char* volatile g_trap_rw;   /* PROT_NONE, handler mprotects RW */
static unsigned char* volatile g_trap_jmp;  /* PROT_NONE, handler siglongjmps */
static volatile sig_atomic_t g_segv_rw, g_segv_jmp;
static sigjmp_buf g_segv_jb;
static volatile int g_segv_jb_armed;

static void segv_handler(int sig, siginfo_t* si, void* ctx) {
  (void)ctx;
  unsigned char* addr = si->si_addr;
  if (sig == SIGSEGV && addr >= g_trap_rw && addr < g_trap_rw + g_page) {
    g_segv_rw++;
    mprotect(g_trap_rw, g_page, PROT_READ | PROT_WRITE);
    return;
  }
  if (sig == SIGSEGV && addr >= g_trap_jmp && addr < g_trap_jmp + g_page && g_segv_jb_armed) {
    g_segv_jmp++;
    g_segv_jb_armed = 0;
    siglongjmp(g_segv_jb, 1);
  }
  sigline_t l = {.n = 0};
  sl_str(&l, "stress[rank ");
  sl_int(&l, g_rank);
  sl_str(&l, "] FAIL case=");
  sl_str(&l, g_case);
  sl_str(&l, ": the program's SIGSEGV handler got a fault it did not cause, at address ");
  sl_hex(&l, (uintptr_t)addr);
  sl_str(&l, " (si_code ");
  sl_int(&l, si->si_code);
  sl_str(&l, ")\n");
  sl_flush(&l);
  _exit(5);
}

static void trigger_rw_fault(const char* what, int v) {
  sig_atomic_t before = g_segv_rw;
  mprotect(g_trap_rw, g_page, PROT_NONE);
  ((volatile unsigned char*)g_trap_rw)[100] = (unsigned char)v; /* faults; the handler makes it writable */
  if (g_segv_rw != before + 1) errorf("%s: store to a PROT_NONE page: handler ran %d times, expected once", what,
                                      (int)(g_segv_rw - before));
  if (((volatile unsigned char*)g_trap_rw)[100] != (unsigned char)v) errorf("%s: the faulting store did not take effect", what);
}
static void trigger_jmp_fault(const char* what) {
  sig_atomic_t before = g_segv_jmp;
  volatile int reached = 0;
  if (sigsetjmp(g_segv_jb, 1) == 0) {
    g_segv_jb_armed = 1;
    reached = ((volatile unsigned char*)g_trap_jmp)[7]; /* faults; the handler jumps back */
    reached = 1;
  }
  g_segv_jb_armed = 0;
  if (reached) errorf("%s: load from a PROT_NONE page did not fault", what);
  if (g_segv_jmp != before + 1) errorf("%s: siglongjmp handler ran %d times, expected once", what,
                                       (int)(g_segv_jmp - before));
}
static void* fault_thread(void* arg) {
  (void)arg;
  mprotect(g_trap_rw, g_page, PROT_NONE);
  ((volatile unsigned char*)g_trap_rw)[200] = 0x42;
  return NULL;
}

static void case_sigsegv(void) {
  rng_t r = rng_for(14);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  g_trap_rw = xalloc_pages(g_page);
  g_trap_jmp = xalloc_pages(g_page);
  mprotect(g_trap_jmp, g_page, PROT_NONE);
  struct sigaction sa, old, cur;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, &old) != 0) fatalf("sigaction: %s", strerror(errno));
  if (sigaction(SIGSEGV, NULL, &cur) != 0) fatalf("sigaction query: %s", strerror(errno));
  if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != segv_handler)
    errorf("sigaction(SIGSEGV, NULL, &old) does not report the handler the program installed");
  trigger_rw_fault("before any MPI traffic", 1);
  trigger_jmp_fault("before any MPI traffic");
  static const size_t sizes[] = {8192, 300000, (1 << 20) + 7};
  size_t maxs = (1 << 20) + 7;
  unsigned char* buf = xmalloc(maxs + 64);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < 3; k++) {
      size_t size = sizes[k];
      uint64_t k1 = key4(14, (uint64_t)p, (uint64_t)k, 1), k2 = key4(14, (uint64_t)p, (uint64_t)k, 2);
      char what[160];
      snprintf(what, sizeof what, "pair %d->%d %zu bytes", a, b, size);
      if (g_rank == a) {
        pat_fill(buf, size, k1, 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 1, g_comm);
        trigger_rw_fault(what, k + 2);       /* genuine fault while the send buffer may be protected */
        memset(buf, 0x44, size);             /* then the just-sent buffer itself */
        trigger_jmp_fault(what);
        pat_fill(buf, size, k2, 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 2, g_comm);
        pthread_t t;
        pthread_create(&t, NULL, fault_thread, NULL); /* a genuine fault on another thread */
        pthread_join(t, NULL);
        if (((volatile unsigned char*)g_trap_rw)[200] != 0x42) errorf("%s: the other thread's faulting store did not take effect", what);
        buf[size - 1] = 0; /* touch the just-sent buffer */
      } else if (g_rank == b) {
        memset(buf, 0, size);
        MPI_Recv(buf, (int)size, MPI_BYTE, a, 1, g_comm, MPI_STATUS_IGNORE);
        trigger_rw_fault(what, k + 3); /* genuine fault while the receive may be pending */
        pat_check(buf, size, k1, 0, "%s: first message (after a genuine fault)", what);
        MPI_Recv(buf, (int)size, MPI_BYTE, a, 2, g_comm, MPI_STATUS_IGNORE);
        trigger_jmp_fault(what);
        pthread_t t;
        pthread_create(&t, NULL, fault_thread, NULL);
        pthread_join(t, NULL);
        buf[0] ^= 0; /* store into the just-received buffer */
        pat_check(buf, size, k2, 0, "%s: second message (after genuine faults)", what);
      }
    }
  }
  if (sigaction(SIGSEGV, &old, NULL) != 0) fatalf("sigaction restore: %s", strerror(errno));
  free(buf);
  xfree_pages(g_trap_rw, g_page);
  xfree_pages(g_trap_jmp, g_page);
  g_trap_rw = g_trap_jmp = NULL;
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: sendrecv                                                             */
/* ------------------------------------------------------------------------- */
/* MPI_Sendrecv in ring shifts with per-sender sizes (receive capacity larger than
 * the message; wildcard and specific source/tag; send and receive buffers on the
 * same page), both buffers touched right after; MPI_Sendrecv_replace with equal
 * and shorter incoming messages (bytes beyond the incoming message keep the sent
 * content); a non-periodic chain whose ends talk to MPI_PROC_NULL. */
static size_t sr_size(int src, int shift, int k) {
  static const size_t base[] = {4096, 4100, 70000, 600001, 5000};
  return base[k % 5] + (size_t)src * 3 + (size_t)shift;
}

static void case_sendrecv(void) {
  size_t maxs = 600001 + 64;
  size_t cap = maxs + 128;
  unsigned char* area = xalloc_pages(2 * cap + 2 * g_page);
  for (int shift = 1; shift < g_size; shift++)
    for (int k = 0; k < 5; k++) {
      int to = (g_rank + shift) % g_size, from = (g_rank - shift + g_size) % g_size;
      size_t ssz = sr_size(g_rank, shift, k), rsz = sr_size(from, shift, k);
      /* variant: k even -> separate buffers; k odd -> receive buffer right after the send buffer */
      unsigned char* sb = area + 13;
      unsigned char* rb = (k & 1) ? sb + ssz : area + cap + g_page + 5;
      size_t rcap = rsz + 100;
      uint64_t ks = key4(15, (uint64_t)g_rank, (uint64_t)shift, (uint64_t)k);
      uint64_t kr = key4(15, (uint64_t)from, (uint64_t)shift, (uint64_t)k);
      uint64_t skey = ks ^ 0xfeed;
      pat_fill(rb, rcap, skey, 0);
      pat_fill(sb, ssz, ks, 0);
      int tag = shift * 10 + k;
      MPI_Status st;
      int src_arg = (k == 2) ? MPI_ANY_SOURCE : from;
      int tag_arg = (k == 3) ? MPI_ANY_TAG : tag;
      MPI_Sendrecv(sb, (int)ssz, MPI_BYTE, to, tag, rb, (int)rcap, MPI_BYTE, src_arg, tag_arg, g_comm, &st);
      char what[160];
      snprintf(what, sizeof what, "MPI_Sendrecv shift %d variant %d (send %zu to %d, receive %zu from %d)", shift, k,
               ssz, to, rsz, from);
      /* right after: overwrite the send buffer, read the receive buffer */
      memset(sb, 0x21, ssz);
      check_status(&st, from, tag, MPI_BYTE, (int)rsz, what);
      pat_check(rb, rsz, kr, 0, "%s: received payload", what);
      pat_check(rb + rsz, rcap - rsz, skey, rsz, "%s: bytes beyond the message", what);
      byte_check(sb, ssz, 0x21, "MPI_Sendrecv: sender's overwrite of its send buffer");
    }
  /* MPI_Sendrecv_replace */
  for (int shift = 1; shift < g_size; shift++)
    for (int k = 0; k < 4; k++) {
      int to = (g_rank + shift) % g_size, from = (g_rank - shift + g_size) % g_size;
      size_t count = (k == 0) ? 4096 : (k == 1) ? 100003 : (k == 2) ? 600000 : 8192;
      size_t scount = count, rcount = count, bufcount = count;
      unsigned char* b = area + 3 + (size_t)k;
      uint64_t ks = key4(16, (uint64_t)g_rank, (uint64_t)shift, (uint64_t)k);
      uint64_t kr = key4(16, (uint64_t)from, (uint64_t)shift, (uint64_t)k);
      pat_fill(b, bufcount + 64, ks, 0);
      MPI_Status st;
      char what[160];
      snprintf(what, sizeof what, "MPI_Sendrecv_replace shift %d variant %d (%zu bytes to %d, from %d)", shift, k,
               count, to, from);
      MPI_Sendrecv_replace(b, (int)scount, MPI_BYTE, to, 500 + k, from, 500 + k, g_comm, &st);
      b[0] ^= 0; /* touch right after */
      check_status(&st, from, 500 + k, MPI_BYTE, (int)rcount, what);
      pat_check(b, rcount, kr, 0, "%s: buffer after the call", what);
      pat_check(b + rcount, bufcount + 64 - rcount, ks, rcount, "%s: bytes beyond the message", what);
      memset(b, 0x31, rcount);
    }
  /* MPI_Sendrecv_replace with a shorter incoming message, on a non-periodic chain:
   * rank r sends n_r = base + 8r bytes to r+1 and receives up to n_r from r-1, which
   * sends n_{r-1} < n_r; the bytes beyond it keep the data this rank sent.  Rank 0
   * receives from MPI_PROC_NULL (buffer unchanged), the last rank sends to it. */
  {
    size_t base = 20000;
    size_t n_me = base + 8 * (size_t)g_rank;
    int to = g_rank + 1 < g_size ? g_rank + 1 : MPI_PROC_NULL;
    int from = g_rank > 0 ? g_rank - 1 : MPI_PROC_NULL;
    size_t n_from = g_rank > 0 ? base + 8 * (size_t)(g_rank - 1) : 0;
    unsigned char* b = area + 1;
    uint64_t ks = key4(17, (uint64_t)g_rank, 0, 0), kr = key4(17, (uint64_t)(g_rank - 1), 0, 0);
    pat_fill(b, n_me + 64, ks, 0);
    MPI_Status st;
    MPI_Sendrecv_replace(b, (int)n_me, MPI_BYTE, to, 600, from, 600, g_comm, &st);
    char what[160];
    snprintf(what, sizeof what, "MPI_Sendrecv_replace chain (send %zu to %d, receive %zu from %d)", n_me, to, n_from,
             from);
    if (from == MPI_PROC_NULL) {
      check_status(&st, MPI_PROC_NULL, MPI_ANY_TAG, MPI_BYTE, 0, what);
      pat_check(b, n_me + 64, ks, 0, "%s: buffer must be unchanged (source MPI_PROC_NULL)", what);
    } else {
      check_status(&st, from, 600, MPI_BYTE, (int)n_from, what);
      pat_check(b, n_from, kr, 0, "%s: received part", what);
      pat_check(b + n_from, n_me + 64 - n_from, ks, n_from, "%s: bytes beyond the shorter message (keep the sent data)",
                what);
    }
  }
  /* MPI_Sendrecv on a non-periodic chain: ends use MPI_PROC_NULL */
  {
    int to = g_rank + 1 < g_size ? g_rank + 1 : MPI_PROC_NULL;
    int from = g_rank > 0 ? g_rank - 1 : MPI_PROC_NULL;
    size_t n = 50000;
    unsigned char* sb = area + 7;
    unsigned char* rb = area + cap + g_page + 9;
    uint64_t ks = key4(18, (uint64_t)g_rank, 0, 0), kr = key4(18, (uint64_t)(g_rank - 1), 0, 0);
    uint64_t skey = ks ^ 1;
    pat_fill(sb, n, ks, 0);
    pat_fill(rb, n + 64, skey, 0);
    MPI_Status st;
    MPI_Sendrecv(sb, (int)n, MPI_BYTE, to, 700, rb, (int)n + 64, MPI_BYTE, from, 700, g_comm, &st);
    memset(sb, 0, n);
    char what[160];
    snprintf(what, sizeof what, "MPI_Sendrecv chain (to %d, from %d)", to, from);
    if (from == MPI_PROC_NULL) {
      check_status(&st, MPI_PROC_NULL, MPI_ANY_TAG, MPI_BYTE, 0, what);
      pat_check(rb, n + 64, skey, 0, "%s: receive buffer must be unchanged (source MPI_PROC_NULL)", what);
    } else {
      check_status(&st, from, 700, MPI_BYTE, (int)n, what);
      pat_check(rb, n, kr, 0, "%s: payload", what);
      pat_check(rb + n, 64, skey, n, "%s: bytes beyond", what);
    }
  }
  xfree_pages(area, 2 * cap + 2 * g_page);
}

/* ------------------------------------------------------------------------- */
/* Case: free_after_send                                                      */
/* ------------------------------------------------------------------------- */
/* malloc'd send buffers freed right after MPI_Send (and the memory, likely
 * handed out again by the next malloc, written at once); receive buffers freed
 * right after MPI_Recv without being read, then a fresh malloc of the same size
 * (probably the same memory) is written and used for the next receive.  Sizes
 * below and above glibc's mmap threshold (128 KiB). */
static void case_free_after_send(void) {
  rng_t r = rng_for(19);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {5000, 100000, 200000, 3 << 20, 4096};
  const int ns = (int)(sizeof sizes / sizeof sizes[0]);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < ns; k++) {
      size_t size = sizes[k];
      uint64_t k1 = key4(19, (uint64_t)p, (uint64_t)k, 1), k2 = key4(19, (uint64_t)p, (uint64_t)k, 2);
      uint64_t k3 = key4(19, (uint64_t)p, (uint64_t)k, 3);
      char what[160];
      snprintf(what, sizeof what, "pair %d->%d %zu bytes", a, b, size);
      if (g_rank == a) {
        unsigned char* x = xmalloc(size);
        pat_fill(x, size, k1, 0);
        MPI_Send(x, (int)size, MPI_BYTE, b, 1, g_comm);
        free(x);
        unsigned char* y = xmalloc(size); /* likely the same memory */
        pat_fill(y, size, k2, 0);
        MPI_Send(y, (int)size, MPI_BYTE, b, 2, g_comm);
        free(y);
        unsigned char* z = calloc(1, size);
        if (!z) fatalf("calloc failed");
        byte_check(z, size, 0, "free_after_send: calloc'd memory after freeing sent buffers");
        pat_fill(z, size, k3, 0);
        MPI_Send(z, (int)size, MPI_BYTE, b, 3, g_comm);
        z = realloc(z, size + 5000); /* may move; the old block is released */
        if (!z) fatalf("realloc failed");
        pat_check(z, size, k3, 0, "%s: realloc of a just-sent buffer must keep its content", what);
        memset(z, 1, size + 5000);
        free(z);
      } else if (g_rank == b) {
        unsigned char* x = xmalloc(size);
        MPI_Recv(x, (int)size, MPI_BYTE, a, 1, g_comm, MPI_STATUS_IGNORE);
        free(x); /* never read */
        unsigned char* y = xmalloc(size);
        memset(y, 0x3c, size);
        byte_check(y, size, 0x3c, "free_after_send: fresh malloc after freeing a just-received buffer");
        MPI_Recv(y, (int)size, MPI_BYTE, a, 2, g_comm, MPI_STATUS_IGNORE);
        pat_check(y, size, k2, 0, "%s: second message into a fresh malloc", what);
        free(y);
        unsigned char* z = xmalloc(size);
        MPI_Recv(z, (int)size, MPI_BYTE, a, 3, g_comm, MPI_STATUS_IGNORE);
        z = realloc(z, size * 2); /* realloc of a just-received buffer keeps the message */
        if (!z) fatalf("realloc failed");
        pat_check(z, size, k3, 0, "%s: realloc of a just-received buffer", what);
        free(z);
      }
    }
  }
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: stack_buffers                                                        */
/* ------------------------------------------------------------------------- */
/* Buffers on the stack, next to live locals, saved registers and return
 * addresses.  A send from a frame that returns at once (the next call's frame
 * reuses the memory and scribbles over it), a receive into a frame that returns
 * without reading it, then receives that are checked. */
#define STACK_MAX (256 * 1024)

static __attribute__((noinline)) void stack_send(int dst, int tag, size_t n, uint64_t key) {
  unsigned char buf[STACK_MAX];
  volatile int canary = 12345;
  pat_fill(buf, n, key, 0);
  MPI_Send(buf, (int)n, MPI_BYTE, dst, tag, g_comm);
  buf[0] = (unsigned char)canary; /* touch right after */
  if (canary != 12345) errorf("stack_send: local variable next to the buffer corrupted");
  __asm__ volatile("" : : "r"(buf) : "memory");
}
static __attribute__((noinline)) void stack_scribble(unsigned char v) {
  volatile unsigned char buf[STACK_MAX + 4096];
  for (size_t i = 0; i < sizeof buf; i += 64) buf[i] = v;
  for (size_t i = 0; i < sizeof buf; i += 64)
    if (buf[i] != v) {
      errorf("stack_scribble: a write to a reused stack frame was lost at offset %zu", i);
      break;
    }
}
static __attribute__((noinline)) void stack_recv_noread(int src, int tag, size_t n) {
  unsigned char buf[STACK_MAX];
  MPI_Recv(buf, (int)n, MPI_BYTE, src, tag, g_comm, MPI_STATUS_IGNORE);
  __asm__ volatile("" : : "r"(buf) : "memory");
}
static __attribute__((noinline)) void stack_recv_check(int src, int tag, size_t n, uint64_t key, const char* what) {
  unsigned char buf[STACK_MAX + 64];
  volatile int before = 777;
  uint64_t skey = key ^ 3;
  pat_fill(buf, n + 64, skey, 0);
  MPI_Status st;
  MPI_Recv(buf + 1, (int)n, MPI_BYTE, src, tag, g_comm, &st);
  if (before != 777) errorf("%s: local variable next to the stack buffer corrupted", what);
  check_status(&st, src, tag, MPI_BYTE, (int)n, what);
  pat_check(buf + 1, n, key, 0, "%s: payload", what);
  pat_check(buf, 1, skey, 0, "%s: byte before", what);
  pat_check(buf + 1 + n, 63, skey, n + 1, "%s: bytes after", what);
}
static __attribute__((noinline)) int stack_recurse(int depth, int src, int dst, int me, size_t n, uint64_t key) {
  /* a send from deep in a recursion; every level's frame holds live data */
  unsigned char small[6000];
  memset(small, depth, sizeof small);
  int r = 0;
  if (depth > 0)
    r = stack_recurse(depth - 1, src, dst, me, n, key);
  else if (me == src)
    stack_send(dst, 50, n, key);
  else
    stack_recv_check(src, 50, n, key, "recursion");
  for (size_t i = 0; i < sizeof small; i++)
    if (small[i] != (unsigned char)depth) r++;
  return r;
}

static void case_stack_buffers(void) {
  rng_t r = rng_for(20);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {4096, 6000, 70000, STACK_MAX};
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < 4; k++) {
      size_t size = sizes[k];
      uint64_t k1 = key4(20, (uint64_t)p, (uint64_t)k, 1), k2 = key4(20, (uint64_t)p, (uint64_t)k, 2);
      char what[160];
      snprintf(what, sizeof what, "pair %d->%d %zu-byte stack buffer", a, b, size);
      if (g_rank == a) {
        stack_send(b, 1, size, k1);
        stack_scribble(0xa5);
        stack_send(b, 2, size, k2);
        stack_send(b, 3, size, k1 ^ k2);
        stack_scribble(0x5a);
      } else if (g_rank == b) {
        stack_recv_noread(a, 1, size); /* frame dies unread */
        stack_scribble(0xc3);
        stack_recv_check(a, 2, size, k2, what);
        stack_recv_check(a, 3, size, k1 ^ k2, what);
      }
    }
    if (g_rank == a || g_rank == b) {
      int bad = stack_recurse(5, a, b, g_rank, 30000, key4(20, (uint64_t)p, 99, 0));
      if (bad) errorf("pair %d->%d: %d bytes of live stack frames corrupted around a deep send/receive", a, b, bad);
    }
  }
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: static_buffers                                                       */
/* ------------------------------------------------------------------------- */
/* Buffers in .bss and .data, between counters that are read and written right
 * after each call. */
#define BSS_BUF (2 * 1024 * 1024 + 4096 + 77)
#define DATA_BUF (5 * 4096 + 333)
static struct {
  volatile uint64_t head[8];
  unsigned char buf[BSS_BUF];
  volatile uint64_t tail[8];
} g_bss;
static struct {
  volatile uint64_t head[8];
  unsigned char buf[DATA_BUF];
  volatile uint64_t tail[8];
} g_data = {{1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3}, {9, 10, 11, 12, 13, 14, 15, 16}};
static unsigned char g_bss_plain[300000];

static void case_static_buffers(void) {
  rng_t r = rng_for(21);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  struct {
    unsigned char* base;
    size_t cap;
    volatile uint64_t* head;
    volatile uint64_t* tail;
    const char* name;
  } regions[] = {{g_bss.buf, BSS_BUF, g_bss.head, g_bss.tail, ".bss struct"},
                 {g_data.buf, DATA_BUF, g_data.head, g_data.tail, ".data struct"},
                 {g_bss_plain, sizeof g_bss_plain, NULL, NULL, ".bss array"}};
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int g = 0; g < 3; g++)
      for (int v = 0; v < 3; v++) {
        size_t cap = regions[g].cap;
        size_t off = v == 0 ? 0 : v == 1 ? 5 : 1000;
        size_t size = v == 0 ? cap : v == 1 ? cap / 3 : 4096;
        if (off + size > cap) size = cap - off;
        uint64_t key = key4(21, (uint64_t)p, (uint64_t)g, (uint64_t)v);
        char what[160];
        snprintf(what, sizeof what, "pair %d->%d %s, %zu bytes at offset %zu", a, b, regions[g].name, size, off);
        volatile uint64_t* head = regions[g].head;
        volatile uint64_t* tail = regions[g].tail;
        if (g_rank == a) {
          pat_fill(regions[g].base + off, size, key, 0);
          MPI_Send(regions[g].base + off, (int)size, MPI_BYTE, b, g * 3 + v, g_comm);
          if (head) {
            head[7] += 1;
            tail[0] += 1;
          }
          memset(regions[g].base + off, 0x12, size);
        } else if (g_rank == b) {
          uint64_t sk = key ^ 5;
          pat_fill(regions[g].base, cap, sk, 0);
          uint64_t h = head ? head[7] : 0, t = tail ? tail[0] : 0;
          MPI_Recv(regions[g].base + off, (int)size, MPI_BYTE, a, g * 3 + v, g_comm, MPI_STATUS_IGNORE);
          if (head) {
            head[7] = h + 3;
            tail[0] = t + 4;
            if (head[7] != h + 3 || tail[0] != t + 4) errorf("%s: counters next to the buffer lost a write", what);
          }
          pat_check(regions[g].base + off, size, key, 0, "%s: payload", what);
          pat_check(regions[g].base, off, sk, 0, "%s: bytes before", what);
          pat_check(regions[g].base + off + size, cap - off - size, sk, off + size, "%s: bytes after", what);
        }
      }
  }
  if (g_data.head[0] != 1 || g_data.tail[7] != 16) errorf(".data: initialized neighbours of the buffer changed");
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: conflict                                                             */
/* ------------------------------------------------------------------------- */
/* The same buffer used by other MPI calls right after a blocking call returned:
 * MPI_Send then MPI_Irecv into it; MPI_Send then MPI_Isend of it; MPI_Recv then
 * MPI_Isend of it (forwarding without touching it); MPI_Recv then MPI_Irecv into
 * it; MPI_Recv then a collective (MPI_Allreduce) reading it; MPI_Send then
 * MPI_Bcast into it. */
static void case_conflict(void) {
  rng_t r = rng_for(22);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {4096, 8192 + 1, 131072, (1 << 20) + 3};
  size_t maxs = (1 << 20) + 3 + 64;
  unsigned char* buf = xmalloc(maxs);
  unsigned char* rb = xmalloc(maxs);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < 4; k++) {
      size_t size = sizes[k];
      uint64_t km[10];
      for (int m = 0; m < 10; m++) km[m] = key4(22, (uint64_t)p, (uint64_t)k, (uint64_t)m);
      char what[200];
      MPI_Request req;
      MPI_Status st;
      if (g_rank == a) {
        /* 1: a Sends buf, then Irecvs into buf (b's reply, tag 2) */
        pat_fill(buf, size, km[1], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 1, g_comm);
        MPI_Irecv(buf, (int)size + 64, MPI_BYTE, b, 2, g_comm, &req);
        MPI_Wait(&req, &st);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Irecv into a buffer right after MPI_Send of it", a,
                 b, size);
        check_status(&st, b, 2, MPI_BYTE, (int)size, what);
        pat_check(buf, size, km[2], 0, "%s", what);
        /* 3,4: a Sends buf, then Isends the same buffer */
        pat_fill(buf, size, km[3], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 3, g_comm);
        MPI_Isend(buf, (int)size, MPI_BYTE, b, 4, g_comm, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        memset(buf, 0, size);
        /* 5: a sends; b Recvs and forwards it back at once with Isend (tag 6) */
        pat_fill(buf, size, km[5], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 5, g_comm);
        memset(buf, 0, size);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Isend of a buffer right after MPI_Recv into it", a,
                 b, size);
        recv_check(rb, size + 64, b, 6, size, km[5], what);
        /* 7,8: b Recvs then Irecvs into one buffer */
        pat_fill(buf, size, km[7], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 7, g_comm);
        pat_fill(buf, size, km[8], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 8, g_comm);
        memset(buf, 0, size);
      } else if (g_rank == b) {
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: message sent right before the sender's MPI_Irecv", a, b,
                 size);
        recv_check(rb, size + 64, a, 1, size, km[1], what);
        pat_fill(rb, size, km[2], 0);
        MPI_Send(rb, (int)size, MPI_BYTE, a, 2, g_comm);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Send then MPI_Isend of one buffer (the MPI_Send)", a,
                 b, size);
        recv_check(rb, size + 64, a, 3, size, km[3], what);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Send then MPI_Isend of one buffer (the MPI_Isend)",
                 a, b, size);
        recv_check(rb, size + 64, a, 4, size, km[3], what);
        memset(buf, 0, size);
        MPI_Recv(buf, (int)size, MPI_BYTE, a, 5, g_comm, MPI_STATUS_IGNORE);
        MPI_Isend(buf, (int)size, MPI_BYTE, a, 6, g_comm, &req); /* forward without touching it */
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        pat_check(buf, size, km[5], 0, "pair %d<->%d %zu bytes: buffer after MPI_Recv + MPI_Isend of it", a, b, size);
        memset(buf, 0, size);
        MPI_Recv(buf, (int)size, MPI_BYTE, a, 7, g_comm, MPI_STATUS_IGNORE);
        MPI_Irecv(buf, (int)size, MPI_BYTE, a, 8, g_comm, &req);
        MPI_Wait(&req, &st);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Irecv into a buffer right after MPI_Recv into it", a,
                 b, size);
        check_status(&st, a, 8, MPI_BYTE, (int)size, what);
        pat_check(buf, size, km[8], 0, "%s: the later message must remain", what);
      }
    }
  }
  /* collectives on buffers right after point-to-point calls (all ranks) */
  {
    size_t n = 200000; /* bytes; as MPI_INT elements */
    int cnt = (int)(n / 4);
    int* ibuf = xmalloc(n);
    int* out = xmalloc(n);
    int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
    /* ring: each rank receives prev's vector (rank 0 sends first), then Allreduce(SUM) of what it received */
    for (int i = 0; i < cnt; i++) ibuf[i] = g_rank * 1000003 + i;
    if (g_rank == 0) {
      MPI_Send(ibuf, cnt, MPI_INT, next, 900, g_comm);
      MPI_Recv(ibuf, cnt, MPI_INT, prev, 900, g_comm, MPI_STATUS_IGNORE);
    } else {
      int* tmp = xmalloc(n);
      memcpy(tmp, ibuf, n);
      MPI_Recv(ibuf, cnt, MPI_INT, prev, 900, g_comm, MPI_STATUS_IGNORE);
      MPI_Send(tmp, cnt, MPI_INT, next, 900, g_comm);
      free(tmp);
    }
    /* ibuf (just received) read by the collective: sum over ranks of (r*1000003 + i) */
    MPI_Allreduce(ibuf, out, cnt, MPI_INT, MPI_SUM, g_comm);
    long long rs = (long long)g_size * (g_size - 1) / 2;
    size_t bad = 0;
    for (int i = 0; i < cnt; i++)
      if (out[i] != (int)(rs * 1000003 + (long long)g_size * i)) bad++;
    if (bad) errorf("MPI_Allreduce of a just-received buffer: %zu of %d elements wrong", bad, cnt);
    /* Send a buffer, then MPI_Bcast into it */
    for (int i = 0; i < cnt; i++) ibuf[i] = i ^ g_rank;
    if (g_rank == 0) {
      MPI_Send(ibuf, cnt, MPI_INT, next, 901, g_comm);
      MPI_Recv(out, cnt, MPI_INT, prev, 901, g_comm, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(out, cnt, MPI_INT, prev, 901, g_comm, MPI_STATUS_IGNORE);
      MPI_Send(ibuf, cnt, MPI_INT, next, 901, g_comm);
    }
    if (g_rank == g_size - 1)
      for (int i = 0; i < cnt; i++) ibuf[i] = i * 3 + 1;
    MPI_Bcast(ibuf, cnt, MPI_INT, g_size - 1, g_comm); /* into a just-sent buffer */
    bad = 0;
    for (int i = 0; i < cnt; i++)
      if (ibuf[i] != i * 3 + 1) bad++;
    if (bad) errorf("MPI_Bcast into a just-sent buffer: %zu of %d elements wrong", bad, cnt);
    bad = 0;
    for (int i = 0; i < cnt; i++)
      if (out[i] != (i ^ prev)) bad++;
    if (bad) errorf("ring message before the MPI_Bcast: %zu of %d elements wrong", bad, cnt);
    free(ibuf);
    free(out);
  }
  free(buf);
  free(rb);
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Case: proc_null                                                            */
/* ------------------------------------------------------------------------- */
/* MPI_PROC_NULL peers: sends return at once and the buffer may be reused;
 * receives return MPI_SOURCE=MPI_PROC_NULL, MPI_TAG=MPI_ANY_TAG, count 0 and
 * leave the buffer unchanged; the same for MPI_Sendrecv(_replace). Interleaved
 * with real traffic on the same buffer. */
static void case_proc_null(void) {
  size_t n = 300000;
  unsigned char* buf = xmalloc(n + 64);
  unsigned char* rb = xmalloc(n + 64);
  uint64_t k1 = key4(23, (uint64_t)g_rank, 0, 0), k2 = key4(23, (uint64_t)g_rank, 1, 0);
  MPI_Status st;
  for (int it = 0; it < 3; it++) {
    size_t size = it == 0 ? 4096 : it == 1 ? 70001 : n;
    pat_fill(buf, size, k1, 0);
    MPI_Send(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 1, g_comm);
    memset(buf, 0x71, size);
    byte_check(buf, size, 0x71, "proc_null: buffer rewritten after MPI_Send to MPI_PROC_NULL");
    pat_fill(rb, size + 64, k2, 0);
    MPI_Recv(rb, (int)size, MPI_BYTE, MPI_PROC_NULL, 1, g_comm, &st);
    check_status(&st, MPI_PROC_NULL, MPI_ANY_TAG, MPI_BYTE, 0, "MPI_Recv from MPI_PROC_NULL");
    pat_check(rb, size + 64, k2, 0, "MPI_Recv from MPI_PROC_NULL (%zu bytes): buffer must be unchanged", size);
    rb[0] ^= 1;
    rb[0] ^= 1;
    MPI_Sendrecv(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 2, rb, (int)size, MPI_BYTE, MPI_PROC_NULL, 2, g_comm, &st);
    check_status(&st, MPI_PROC_NULL, MPI_ANY_TAG, MPI_BYTE, 0, "MPI_Sendrecv with MPI_PROC_NULL peers");
    pat_check(rb, size + 64, k2, 0, "MPI_Sendrecv from MPI_PROC_NULL (%zu bytes): buffer must be unchanged", size);
    pat_fill(buf, size, k1, 0);
    MPI_Sendrecv_replace(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 3, MPI_PROC_NULL, 3, g_comm, &st);
    check_status(&st, MPI_PROC_NULL, MPI_ANY_TAG, MPI_BYTE, 0, "MPI_Sendrecv_replace with MPI_PROC_NULL peers");
    pat_check(buf, size, k1, 0, "MPI_Sendrecv_replace with MPI_PROC_NULL (%zu bytes): buffer must be unchanged", size);
    /* real traffic on the same buffers: send to the next rank, receive from MPI_PROC_NULL then from prev */
    int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
    uint64_t kr = key4(23, (uint64_t)prev, 2, (uint64_t)it), ks = key4(23, (uint64_t)g_rank, 2, (uint64_t)it);
    pat_fill(buf, size, ks, 0);
    if (g_rank == 0) {
      MPI_Send(buf, (int)size, MPI_BYTE, next, 4, g_comm);
      MPI_Send(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 4, g_comm);
      memset(buf, 0, size);
      MPI_Recv(rb, (int)size, MPI_BYTE, MPI_PROC_NULL, 4, g_comm, MPI_STATUS_IGNORE);
      MPI_Recv(rb, (int)size, MPI_BYTE, prev, 4, g_comm, &st);
    } else {
      MPI_Recv(rb, (int)size, MPI_BYTE, MPI_PROC_NULL, 4, g_comm, MPI_STATUS_IGNORE);
      MPI_Recv(rb, (int)size, MPI_BYTE, prev, 4, g_comm, &st);
      MPI_Send(buf, (int)size, MPI_BYTE, next, 4, g_comm);
      MPI_Send(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 4, g_comm);
      memset(buf, 0, size);
    }
    check_status(&st, prev, 4, MPI_BYTE, (int)size, "ring message around MPI_PROC_NULL calls");
    pat_check(rb, size, kr, 0, "ring message around MPI_PROC_NULL calls (%zu bytes)", size);
  }
  free(buf);
  free(rb);
}

/* ------------------------------------------------------------------------- */
/* Case: many_to_one                                                          */
/* ------------------------------------------------------------------------- */
/* Every rank sends several messages (random sizes, one of 1 MB) to one root at
 * the same time; the root receives them source by source in descending rank
 * order, then with MPI_ANY_SOURCE; each rank is root once. */
static void case_many_to_one(void) {
  int M = scaled(6);
  size_t cap = (1 << 20) + 64;
  unsigned char* buf = xmalloc(cap);
  for (int root = 0; root < g_size; root++) {
    rng_t r = rng_for(200 + (uint64_t)root);
    size_t* sz = xmalloc(sizeof(size_t) * (size_t)(g_size * M));
    for (int i = 0; i < g_size * M; i++) sz[i] = (i % M == 0) ? (1 << 20) : pick_size(&r, 200000);
    if (g_rank == root) {
      for (int s = g_size - 1; s >= 0; s--) {
        if (s == root) continue;
        for (int j = 0; j < M; j++) {
          char what[160];
          snprintf(what, sizeof what, "root %d: message %d of rank %d (%zu bytes, by source)", root, j, s,
                   sz[s * M + j]);
          recv_check(buf, sz[s * M + j] + 64, s, j, sz[s * M + j], key4(24, (uint64_t)root, (uint64_t)s, (uint64_t)j),
                     what);
        }
      }
      int* next = calloc((size_t)g_size, sizeof(int));
      for (int n = 0; n < (g_size - 1) * M; n++) {
        MPI_Status st;
        uint64_t skey = key4(25, (uint64_t)root, (uint64_t)n, 7);
        pat_fill(buf, cap, skey, 0);
        MPI_Recv(buf, (int)cap, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, g_comm, &st);
        int s = st.MPI_SOURCE;
        if (s < 0 || s >= g_size || s == root || next[s] >= M) {
          errorf("root %d: ANY_SOURCE receive %d: impossible MPI_SOURCE=%d", root, n, s);
          continue;
        }
        int j = next[s]++;
        char what[160];
        snprintf(what, sizeof what, "root %d: ANY_SOURCE receive %d = message %d of rank %d (%zu bytes)", root, n, j, s,
                 sz[s * M + j]);
        check_status(&st, s, 100 + j, MPI_BYTE, (int)sz[s * M + j], what);
        pat_check(buf, sz[s * M + j], key4(25, (uint64_t)root, (uint64_t)s, (uint64_t)j), 0, "%s: payload", what);
        pat_check(buf + sz[s * M + j], cap - sz[s * M + j], skey, sz[s * M + j], "%s: bytes beyond", what);
      }
      free(next);
    } else {
      for (int j = 0; j < M; j++) {
        pat_fill(buf, sz[g_rank * M + j], key4(24, (uint64_t)root, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(buf, (int)sz[g_rank * M + j], MPI_BYTE, root, j, g_comm);
      }
      for (int j = 0; j < M; j++) {
        pat_fill(buf, sz[g_rank * M + j], key4(25, (uint64_t)root, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(buf, (int)sz[g_rank * M + j], MPI_BYTE, root, 100 + j, g_comm);
      }
      memset(buf, 0, cap);
    }
    free(sz);
  }
  free(buf);
}

/* ------------------------------------------------------------------------- */
/* Case: datatypes                                                            */
/* ------------------------------------------------------------------------- */
/* Non-contiguous datatypes: a strided vector (only the blocks are the message;
 * the gaps between them lie in the same pages and must stay unchanged on the
 * receiver and stay writable on both sides right after the call), a contiguous
 * message received into a vector, and MPI_DOUBLE contiguous types. */
static void case_datatypes(void) {
  rng_t r = rng_for(26);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  const int blocks = 40, blen = 1000, stride = 3000; /* extent ~117 KB, 40000 data bytes */
  MPI_Datatype vec, cont;
  MPI_Type_vector(blocks, blen, stride, MPI_BYTE, &vec);
  MPI_Type_commit(&vec);
  MPI_Type_contiguous(1250, MPI_DOUBLE, &cont); /* 10000 bytes */
  MPI_Type_commit(&cont);
  size_t extent = (size_t)(blocks - 1) * stride + blen;
  unsigned char* area = xmalloc(extent + 64);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    uint64_t key = key4(26, (uint64_t)p, 0, 0), sk = key4(26, (uint64_t)p, 1, 0), kn = key4(26, (uint64_t)p, 2, 0);
    char what[160];
    snprintf(what, sizeof what, "pair %d->%d vector(%d x %d bytes, stride %d)", a, b, blocks, blen, stride);
    if (g_rank == a) {
      pat_fill(area, extent + 1, key, 0);
      MPI_Send(area + 1, 1, vec, b, 1, g_comm);
      /* right away: write the gaps, then the blocks */
      for (int i = 0; i + 1 < blocks; i++) memset(area + 1 + (size_t)i * stride + blen, 0x66, (size_t)(stride - blen));
      memset(area, 0x67, extent);
      /* contiguous message received as a vector by b */
      pat_fill(area, (size_t)blocks * blen, kn, 0);
      MPI_Send(area, blocks * blen, MPI_BYTE, b, 2, g_comm);
      memset(area, 0, (size_t)blocks * blen);
      pat_fill(area, 2 * 10000, key ^ 9, 0);
      MPI_Send(area, 2, cont, b, 3, g_comm);
      memset(area, 0, 2 * 10000);
    } else if (g_rank == b) {
      MPI_Status st;
      pat_fill(area, extent + 64, sk, 0);
      MPI_Recv(area + 1, 1, vec, a, 1, g_comm, &st);
      area[0] = 0xfe; /* right away: the byte before, and the first gap */
      memset(area + 1 + blen, 0x55, 10);
      int cnt = -1;
      MPI_Get_count(&st, vec, &cnt);
      if (cnt != 1) errorf("%s: MPI_Get_count(vector) = %d, expected 1", what, cnt);
      for (int i = 0; i < blocks; i++) {
        size_t o = 1 + (size_t)i * stride;
        /* sender's block i holds pattern(key) at offsets o.. of its area */
        pat_check(area + o, (size_t)blen, key, o, "%s: block %d", what, i);
        if (i + 1 < blocks) {
          size_t go = o + blen, gl = (size_t)(stride - blen);
          if (i == 0) {
            byte_check(area + go, 10, 0x55, "datatypes: write into the first gap right after the receive");
            go += 10;
            gl -= 10;
          }
          pat_check(area + go, gl, sk, go, "%s: gap after block %d (must be unchanged)", what, i);
        }
      }
      pat_check(area + 1 + extent, 63, sk, 1 + extent, "%s: bytes after the last block", what);
      /* contiguous bytes into the vector */
      pat_fill(area, extent + 64, sk, 0);
      MPI_Recv(area, 1, vec, a, 2, g_comm, &st);
      for (int i = 0; i < blocks; i++) {
        pat_check(area + (size_t)i * stride, (size_t)blen, kn, (size_t)i * blen,
                  "pair %d->%d: contiguous message received into a vector, block %d", a, b, i);
        if (i + 1 < blocks)
          pat_check(area + (size_t)i * stride + blen, (size_t)(stride - blen), sk, (size_t)i * stride + blen,
                    "pair %d->%d: contiguous message received into a vector, gap %d", a, b, i);
      }
      pat_fill(area, 3 * 10000, sk, 0);
      MPI_Recv(area, 3, cont, a, 3, g_comm, &st);
      check_status(&st, a, 3, cont, 2, "datatypes: 2 of 3 contiguous-of-double elements");
      pat_check(area, 20000, key ^ 9, 0, "pair %d->%d: contiguous MPI_DOUBLE type", a, b);
      pat_check(area + 20000, 10000, sk, 20000, "pair %d->%d: contiguous MPI_DOUBLE type, bytes beyond", a, b);
    }
  }
  MPI_Type_free(&vec);
  MPI_Type_free(&cont);
  free(area);
  free(pairs);
}

/* ------------------------------------------------------------------------- */
/* Driver                                                                     */
/* ------------------------------------------------------------------------- */

typedef struct {
  const char* name;
  void (*fn)(void);
  const char* what;
} case_t;

static const case_t k_cases[] = {
    {"random_p2p", case_random_p2p, "random sizes (0 B..max, page/threshold edges), tags, peers, offsets"},
    {"wildcard", case_wildcard, "MPI_ANY_SOURCE/MPI_ANY_TAG, status, MPI_Get_count, short messages"},
    {"send_overwrite", case_send_overwrite, "send buffer overwritten right after MPI_Send"},
    {"recv_read", case_recv_read, "receive buffer read right after MPI_Recv"},
    {"shared_pages", case_shared_pages, "messages sharing pages with live data"},
    {"multi_send", case_multi_send, "one buffer in several outstanding sends"},
    {"forward_ring", case_forward_ring, "received buffer forwarded at once (ring)"},
    {"syscalls", case_syscalls, "read/write/recv/send(2) on buffers right after MPI calls"},
    {"zero_unaligned", case_zero_unaligned, "zero-size and unaligned buffers"},
    {"threads", case_threads, "other threads touching buffers (MPI_THREAD_FUNNELED)"},
    {"sigsegv", case_sigsegv, "the program's own SIGSEGV handler with genuine faults"},
    {"sendrecv", case_sendrecv, "MPI_Sendrecv and MPI_Sendrecv_replace"},
    {"free_after_send", case_free_after_send, "malloc'd buffers freed right after MPI_Send/MPI_Recv"},
    {"stack_buffers", case_stack_buffers, "stack buffers in dying frames"},
    {"static_buffers", case_static_buffers, ".bss and .data buffers"},
    {"conflict", case_conflict, "MPI_Isend/MPI_Irecv/collectives on a buffer right after a blocking call"},
    {"proc_null", case_proc_null, "MPI_PROC_NULL peers"},
    {"many_to_one", case_many_to_one, "messages from many ranks to one"},
    {"datatypes", case_datatypes, "non-contiguous (vector) and contiguous derived datatypes"},
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static void usage(FILE* f) {
  fprintf(f,
          "usage: stress [-s SEED] [-x SCALE] [-m MAX_SIZE] [-t TIMEOUT_S] [-v] [-l] [case...]\n"
          "cases (all by default):\n");
  for (int i = 0; i < N_CASES; i++) fprintf(f, "  %-16s %s\n", k_cases[i].name, k_cases[i].what);
}

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_page = (size_t)sysconf(_SC_PAGESIZE);

  int selected[N_CASES];
  int nsel = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if ((!strcmp(a, "-s") || !strcmp(a, "--seed")) && v) {
      g_seed = strtoull(v, NULL, 0);
      i++;
    } else if ((!strcmp(a, "-x") || !strcmp(a, "--scale")) && v) {
      g_scale = atof(v);
      i++;
    } else if ((!strcmp(a, "-m") || !strcmp(a, "--max-size")) && v) {
      g_max_size = strtoull(v, NULL, 0);
      i++;
    } else if ((!strcmp(a, "-t") || !strcmp(a, "--timeout")) && v) {
      g_timeout = (unsigned)atoi(v);
      i++;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
      g_verbose = 1;
    } else if (!strcmp(a, "-l") || !strcmp(a, "--list")) {
      if (g_rank == 0) usage(stdout);
      MPI_Finalize();
      return 0;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      if (g_rank == 0) usage(stdout);
      MPI_Finalize();
      return 0;
    } else {
      int found = -1;
      for (int c = 0; c < N_CASES; c++)
        if (!strcmp(a, k_cases[c].name)) found = c;
      if (found < 0) {
        if (g_rank == 0) {
          fprintf(stderr, "stress: unknown option or case '%s'\n", a);
          usage(stderr);
        }
        MPI_Finalize();
        return 2;
      }
      if (nsel < N_CASES) selected[nsel++] = found;
    }
  }
  if (nsel == 0)
    for (int c = 0; c < N_CASES; c++) selected[nsel++] = c;
  if (provided < MPI_THREAD_FUNNELED) fatalf("MPI_Init_thread provided level %d < MPI_THREAD_FUNNELED", provided);
  if (g_size < 2) fatalf("needs at least 2 ranks (has %d)", g_size);
  if (g_max_size > (1u << 30)) g_max_size = 1u << 30;
  int* tag_ub = NULL;
  int flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &flag);
  if (flag && *tag_ub < 32767) fatalf("MPI_TAG_UB %d < 32767", *tag_ub);

  install_crash_reporter();
  struct sigaction al;
  memset(&al, 0, sizeof al);
  al.sa_handler = on_alarm;
  sigemptyset(&al.sa_mask);
  sigaction(SIGALRM, &al, NULL);

  if (g_rank == 0) {
    printf("stress: %d ranks, seed %llu, scale %g, max size %zu, %d case(s)\n", g_size, (unsigned long long)g_seed,
           g_scale, g_max_size, nsel);
    fflush(stdout);
  }
  int failed[N_CASES];
  int nfailed = 0;
  double t_all = MPI_Wtime();
  for (int i = 0; i < nsel; i++) {
    const case_t* c = &k_cases[selected[i]];
    g_case = c->name;
    g_errors = 0;
    g_errors_printed = 0;
    MPI_Comm_dup(MPI_COMM_WORLD, &g_comm);
    MPI_Barrier(g_comm);
    if (g_verbose) {
      fprintf(stderr, "stress[rank %d]: case %s starts\n", g_rank, c->name);
      fflush(stderr);
    }
    double t0 = MPI_Wtime();
    alarm(g_timeout);
    c->fn();
    MPI_Barrier(g_comm);
    alarm(0);
    double dt = MPI_Wtime() - t0;
    long total = 0;
    MPI_Allreduce(&g_errors, &total, 1, MPI_LONG, MPI_SUM, g_comm);
    MPI_Comm_free(&g_comm);
    g_comm = MPI_COMM_NULL;
    if (total) failed[nfailed++] = selected[i];
    if (g_rank == 0) {
      printf("stress: %-16s %s (%.2f s)%s\n", c->name, total ? "FAILED" : "ok", dt,
             total ? " -- see the FAIL lines on stderr" : "");
      fflush(stdout);
    }
  }
  g_case = "finalize";
  if (g_rank == 0) {
    if (nfailed) {
      fprintf(stderr, "stress: FAILED %d of %d case(s):", nfailed, nsel);
      for (int i = 0; i < nfailed; i++) fprintf(stderr, " %s", k_cases[failed[i]].name);
      fprintf(stderr, " (seed %llu, %d ranks)\n", (unsigned long long)g_seed, g_size);
    } else {
      printf("stress: all %d case(s) passed in %.2f s (seed %llu, %d ranks)\n", nsel, MPI_Wtime() - t_all,
             (unsigned long long)g_seed, g_size);
    }
    fflush(stdout);
    fflush(stderr);
  }
  MPI_Finalize();
  return nfailed ? 1 : 0;
}
