/* Buffers in every kind of memory: malloc'd and freed right after the call, on the
 * stack in frames that die, in .bss and .data. */
#include "stress.h"

/* malloc'd send buffers freed right after MPI_Send (and the memory, likely
 * handed out again by the next malloc, written at once); receive buffers freed
 * right after MPI_Recv without being read, then a fresh malloc of the same size
 * (probably the same memory) is written and used for the next receive.  Sizes
 * below and above glibc's mmap threshold (128 KiB). */
void case_free_after_send(void) {
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

void case_stack_buffers(void) {
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

void case_static_buffers(void) {
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
