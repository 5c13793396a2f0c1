#include "stress.h"

/* MPI_Sendrecv in ring shifts with per-sender sizes (receive capacity larger than
 * the message; wildcard and specific source/tag; send and receive buffers on the
 * same page), both buffers touched right after; MPI_Sendrecv_replace with equal
 * and shorter incoming messages (bytes beyond the incoming message keep the sent
 * content); a non-periodic chain whose ends talk to MPI_PROC_NULL. */
static size_t sr_size(int src, int shift, int k) {
  static const size_t base[] = {4096, 4100, 70000, 600001, 5000};
  return base[k % 5] + (size_t)src * 3 + (size_t)shift;
}

void case_sendrecv(void) {
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
