/* Buffers reused right after the call: the sender overwrites its send buffer, the
 * receiver reads its receive buffer in different orders. */
#include "stress.h"

/* The sender overwrites its buffer in various ways right after MPI_Send returns
 * (whole buffer, first byte, last byte, one byte per page, the next message's
 * content) and reads its writes back; the receiver must get the old content. */
void case_send_overwrite(void) {
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

/* The receiver touches the receive buffer right after MPI_Recv returns in
 * different first-access orders (last byte, first byte, a middle page, memcpy of
 * all, a store before any load), receives twice back to back into two buffers and
 * reads the older first, and receives twice into the same buffer (the second
 * message must win). */
void case_recv_read(void) {
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
