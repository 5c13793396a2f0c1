/* One buffer in several sends at once, and received buffers sent on at once. */
#include "stress.h"

/* A root sends one buffer to every other rank back to back (and once more to the
 * first peer with another tag, and overlapping halves of it to two peers), then
 * overwrites it and sends it to everyone again. */
void case_multi_send(void) {
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

/* A ring: rank 0 sends, every other rank receives and immediately sends the same
 * buffer on (after adding its rank+1 to every byte, in one variant), rank 0 gets
 * it back and checks.  The next lap reuses the same buffers at once. */
void case_forward_ring(void) {
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
