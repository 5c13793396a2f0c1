#include "stress.h"

/* A global, seed-determined sequence of messages with random sizes (every special
 * size once, then random ones up to --max-size), random tags and random peers,
 * random odd offsets and receive capacities larger than the message; the sender
 * refills its (reused) buffer with the next message right after MPI_Send returns,
 * the receiver checks status, payload and untouched slack at once.  Receives use
 * a specific tag, MPI_ANY_TAG or MPI_STATUS_IGNORE at random. */
void case_random_p2p(void) {
  rng_t r = rng_for(1);
  int nrand = scaled(160);
  int nmsg = (int)k_special_count + nrand;
  size_t cap_max = g_max_size + 8192 + 128;
  /* two send buffers used alternately, one receive buffer, all reused */
  unsigned char* sbuf[2] = {xmalloc(cap_max), xmalloc(cap_max)};
  unsigned char* rbuf = xmalloc(cap_max + 64);
  int turn = 0;
  for (int i = 0; i < nmsg; i++) {
    size_t size = i < (int)k_special_count ? k_special_sizes[i] : pick_size(&r, g_max_size);
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
