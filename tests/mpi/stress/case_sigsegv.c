#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

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
  sl_fail(&l);
  sl_str(&l, "the program's SIGSEGV handler got a fault it did not cause, at address ");
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

void case_sigsegv(void) {
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
