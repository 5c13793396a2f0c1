#include "stress.h"

/* Non-contiguous datatypes: a strided vector (only the blocks are the message;
 * the gaps between them lie in the same pages and must stay unchanged on the
 * receiver and stay writable on both sides right after the call), a contiguous
 * message received into a vector, and MPI_DOUBLE contiguous types. */
void case_datatypes(void) {
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
