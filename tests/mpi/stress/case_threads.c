#include "stress.h"

#include <pthread.h>
#include <time.h>

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

void case_threads(void) {
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
