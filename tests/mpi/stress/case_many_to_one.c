#include "stress.h"

/* Every rank sends several messages (random sizes, one of 1 MB) to one root at
 * the same time; the root receives them source by source in descending rank
 * order, then with MPI_ANY_SOURCE; each rank is root once. */
void case_many_to_one(void) {
  int M = scaled(6);
  size_t cap = (1 << 20) + 64;
  unsigned char* buf = xmalloc(cap);
  for (int root = 0; root < g_size; root++) {
    rng_t r = rng_for(200 + (uint64_t)root);
    size_t* sz = xmalloc(sizeof(size_t) * (size_t)(g_size * M));
    for (int i = 0; i < g_size * M; i++) sz[i] = (i % M == 0) ? (1 << 20) : pick_size(&r, 200000);
    if (g_rank == root) {
      for (int s = g_size - 1; s >= 0; s--) {
        if (s == root) continue;
        for (int j = 0; j < M; j++) {
          char what[160];
          snprintf(what, sizeof what, "root %d: message %d of rank %d (%zu bytes, by source)", root, j, s,
                   sz[s * M + j]);
          recv_check(buf, sz[s * M + j] + 64, s, j, sz[s * M + j], key4(24, (uint64_t)root, (uint64_t)s, (uint64_t)j),
                     what);
        }
      }
      int* next = calloc((size_t)g_size, sizeof(int));
      for (int n = 0; n < (g_size - 1) * M; n++) {
        MPI_Status st;
        uint64_t skey = key4(25, (uint64_t)root, (uint64_t)n, 7);
        pat_fill(buf, cap, skey, 0);
        MPI_Recv(buf, (int)cap, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, g_comm, &st);
        int s = st.MPI_SOURCE;
        if (s < 0 || s >= g_size || s == root || next[s] >= M) {
          errorf("root %d: ANY_SOURCE receive %d: impossible MPI_SOURCE=%d", root, n, s);
          continue;
        }
        int j = next[s]++;
        char what[160];
        snprintf(what, sizeof what, "root %d: ANY_SOURCE receive %d = message %d of rank %d (%zu bytes)", root, n, j, s,
                 sz[s * M + j]);
        check_status(&st, s, 100 + j, MPI_BYTE, (int)sz[s * M + j], what);
        pat_check(buf, sz[s * M + j], key4(25, (uint64_t)root, (uint64_t)s, (uint64_t)j), 0, "%s: payload", what);
        pat_check(buf + sz[s * M + j], cap - sz[s * M + j], skey, sz[s * M + j], "%s: bytes beyond", what);
      }
      free(next);
    } else {
      for (int j = 0; j < M; j++) {
        pat_fill(buf, sz[g_rank * M + j], key4(24, (uint64_t)root, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(buf, (int)sz[g_rank * M + j], MPI_BYTE, root, j, g_comm);
      }
      for (int j = 0; j < M; j++) {
        pat_fill(buf, sz[g_rank * M + j], key4(25, (uint64_t)root, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(buf, (int)sz[g_rank * M + j], MPI_BYTE, root, 100 + j, g_comm);
      }
      memset(buf, 0, cap);
    }
    free(sz);
  }
  free(buf);
}
