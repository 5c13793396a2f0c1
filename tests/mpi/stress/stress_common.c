/* stress: correctness tests of MPI point-to-point semantics for buffer reuse.
 * (This file: the globals, reporting, patterns, watchdog, crash reporter and main with
 * the case table; the cases are in case_*.c, declared in stress.h.)
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
#include "stress.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

int g_rank, g_size;
MPI_Comm g_comm = MPI_COMM_NULL; /* a private duplicate of MPI_COMM_WORLD per case */
static uint64_t g_seed = 1;
static double g_scale = 1.0;
size_t g_max_size = 4u << 20;
static unsigned g_timeout = 60;
static int g_verbose;
size_t g_page;
const char* volatile g_case = "init";
static long g_errors;         /* errors of the current case on this rank */
static long g_errors_printed; /* messages printed for the current case */

#define MAX_PRINTED_ERRORS 12

void errorf(const char* fmt, ...) {
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

void fatalf(const char* fmt, ...) {
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

void* xmalloc(size_t n) {
  void* p = malloc(n ? n : 1);
  if (!p) fatalf("malloc(%zu) failed", n);
  return p;
}

void* xalloc_pages(size_t n) { /* page-aligned, fresh anonymous pages */
  size_t len = (n + g_page - 1) / g_page * g_page;
  void* p = mmap(NULL, len ? len : g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fatalf("mmap(%zu) failed: %s", n, strerror(errno));
  return p;
}
void xfree_pages(void* p, size_t n) {
  size_t len = (n + g_page - 1) / g_page * g_page;
  munmap(p, len ? len : g_page);
}

void sl_str(sigline_t* l, const char* s) {
  while (*s && l->n + 1 < sizeof l->b) l->b[l->n++] = *s++;
}
void sl_hex(sigline_t* l, uintptr_t v) {
  char b[2 + 16 + 1];
  b[0] = '0';
  b[1] = 'x';
  for (int i = 0; i < 16; i++) b[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
  b[18] = 0;
  sl_str(l, b);
}
void sl_int(sigline_t* l, long v) {
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
void sl_fail(sigline_t* l) {
  sl_str(l, "stress[rank ");
  sl_int(l, g_rank);
  sl_str(l, "] FAIL case=");
  sl_str(l, g_case);
  sl_str(l, ": ");
}
void sl_flush(sigline_t* l) {
  ssize_t r = write(2, l->b, l->n);
  (void)r;
  l->n = 0;
}

static void on_alarm(int sig) {
  (void)sig;
  sigline_t l = {.n = 0};
  sl_fail(&l);
  sl_str(&l, "TIMEOUT: the case did not finish within ");
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
  sl_fail(&l);
  sl_str(&l, "crashed with signal ");
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

static uint64_t hash_str(const char* s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
  return h;
}
uint64_t key4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  uint64_t k = mix64(g_seed ^ hash_str(g_case));
  k = mix64(k ^ a);
  k = mix64(k ^ (b + 0x1234567ull));
  k = mix64(k ^ (c + 0x89abcdefull));
  return mix64(k ^ (d + 0x5555aaaaull));
}

rng_t rng_for(uint64_t salt) {
  rng_t r = {mix64(g_seed * 0x100000001b3ull ^ hash_str(g_case) ^ mix64(salt))};
  return r;
}
static uint64_t rng_next(rng_t* r) {
  r->s += 0x9e3779b97f4a7c15ull;
  return mix64(r->s);
}
uint64_t rng_below(rng_t* r, uint64_t n) { return n ? rng_next(r) % n : 0; }

void pat_fill(void* p, size_t n, uint64_t key, size_t base) {
  unsigned char* b = p;
  size_t i = 0;
  while (i < n) {
    size_t idx = base + i;
    uint64_t w = mix64(key ^ ((uint64_t)(idx >> 3) * 0xd6e8feb86659fd93ull));
    for (unsigned k = idx & 7; k < 8 && i < n; k++, i++) b[i] = (uint8_t)(w >> (8 * k));
  }
}
size_t pat_check(const void* p, size_t n, uint64_t key, size_t base, const char* what, ...) {
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
size_t byte_check(const void* p, size_t n, uint8_t v, const char* what) {
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

void check_status(const MPI_Status* st, int src, int tag, MPI_Datatype dt, int count, const char* what) {
  int n = -1;
  MPI_Get_count(st, dt, &n);
  if (st->MPI_SOURCE != src || st->MPI_TAG != tag || n != count)
    errorf("%s: status has MPI_SOURCE=%d MPI_TAG=%d count=%d, expected MPI_SOURCE=%d MPI_TAG=%d count=%d", what,
           st->MPI_SOURCE, st->MPI_TAG, n, src, tag, count);
}

const size_t k_special_sizes[] = {0,      1,      2,      3,      7,      8,      63,      64,      255,
                                  1000,   2047,   2048,   4000,   4095,   4096,   4097,    4100,    6000,
                                  8191,   8192,   8193,   12287,  12288,  12289,  16383,   16384,   16385,
                                  65535,  65536,  65537,  131071, 131072, 131073, 262143,  262145,  1000000,
                                  1048575, 1048576, 1048577, 2097152 + 4095, 3145728 + 1, 4194304};
const size_t k_special_count = sizeof k_special_sizes / sizeof k_special_sizes[0];

size_t pick_size(rng_t* r, size_t max) {
  size_t s;
  uint64_t c = rng_below(r, 100);
  if (c < 20)
    s = k_special_sizes[rng_below(r, k_special_count)];
  else if (c < 55)
    s = rng_below(r, 16385);
  else if (c < 88)
    s = rng_below(r, 262145);
  else
    s = rng_below(r, max + 1);
  return s > max ? max : s;
}

int scaled(int n) {
  int v = (int)(n * g_scale + 0.5);
  return v < 1 ? 1 : v;
}

pair_t* make_pairs(rng_t* r, int* n) {
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

void recv_check(void* buf, size_t cap, int src, int tag, size_t size, uint64_t key, const char* what) {
  uint64_t skey = key ^ 0x5e5e5e5e5e5e5e5eull;
  pat_fill(buf, cap, skey, 0);
  MPI_Status st;
  MPI_Recv(buf, (int)cap, MPI_BYTE, src, tag, g_comm, &st);
  check_status(&st, src, tag, MPI_BYTE, (int)size, what);
  pat_check(buf, size, key, 0, "%s: payload", what);
  pat_check((char*)buf + size, cap - size, skey, size, "%s: bytes beyond the message (must be unchanged)", what);
}

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
