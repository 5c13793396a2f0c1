#include "stress.h"

/* Zero-byte messages (NULL and real buffers, MPI_BYTE and MPI_INT, capacity 0 and
 * larger: nothing may change), and messages at odd offsets of odd sizes that
 * start/end one byte into or before a page, including MPI_INT data at addresses
 * that are not 4-byte aligned. */
void case_zero_unaligned(void) {
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
