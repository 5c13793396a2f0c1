#include "stress.h"

/* Messages to a root received with MPI_ANY_SOURCE and/or MPI_ANY_TAG, checking
 * MPI_SOURCE, MPI_TAG and MPI_Get_count (bytes and MPI_INT) and that the bytes of
 * the (larger) receive buffer beyond each message stay unchanged.  Phase A:
 * ANY_SOURCE+ANY_TAG; phase B: each source in turn with ANY_TAG (MPI_INT data);
 * phase C: rounds of one common tag, ANY_SOURCE.  Per-source order is checked
 * (MPI's non-overtaking rule). */
typedef struct {
  int tag;
  size_t size;
} wmsg_t;

void case_wildcard(void) {
  int K = scaled(12);
  const size_t cap = 300000; /* every message fits, most are much shorter */
  unsigned char* buf = xmalloc(cap);
  for (int round = 0; round < 2; round++) {
    int root = round == 0 ? 0 : g_size - 1;
    rng_t r = rng_for(100 + (uint64_t)round);
    /* msgs[s*K + j]: the j-th message of source s */
    wmsg_t* msgs = xmalloc(sizeof(wmsg_t) * (size_t)(g_size * K));
    for (int s = 0; s < g_size; s++)
      for (int j = 0; j < K; j++) {
        msgs[s * K + j].tag = (int)rng_below(&r, 30000);
        size_t sz = pick_size(&r, cap - 4096);
        if (j == 0) sz = 0;          /* a zero-byte message through a wildcard */
        if (j == 1) sz = 4096 * 2 + 1; /* above the default threshold */
        msgs[s * K + j].size = sz & ~(size_t)3; /* multiple of 4 for phase B */
      }
    /* ---- phase A: ANY_SOURCE + ANY_TAG ---- */
    if (g_rank == root) {
      int* next = calloc((size_t)g_size, sizeof(int));
      for (int n = 0; n < (g_size - 1) * K; n++) {
        uint64_t skey = key4(2, (uint64_t)round, (uint64_t)n, 99);
        pat_fill(buf, cap, skey, 0);
        MPI_Status st;
        MPI_Recv(buf, (int)cap, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, g_comm, &st);
        int s = st.MPI_SOURCE;
        if (s < 0 || s >= g_size || s == root || next[s] >= K) {
          errorf("phase A (ANY_SOURCE/ANY_TAG) receive %d: impossible MPI_SOURCE=%d", n, s);
          continue;
        }
        int j = next[s]++;
        char what[160];
        snprintf(what, sizeof what, "phase A (ANY_SOURCE/ANY_TAG) receive %d = message %d of rank %d (%zu bytes)", n,
                 j, s, msgs[s * K + j].size);
        check_status(&st, s, msgs[s * K + j].tag, MPI_BYTE, (int)msgs[s * K + j].size, what);
        size_t sz = msgs[s * K + j].size;
        pat_check(buf, sz, key4(2, (uint64_t)round, (uint64_t)s, (uint64_t)j), 0, "%s: payload", what);
        pat_check(buf + sz, cap - sz, skey, sz, "%s: bytes beyond the message", what);
      }
      free(next);
    } else {
      unsigned char* sb = xmalloc(cap);
      for (int j = 0; j < K; j++) {
        size_t sz = msgs[g_rank * K + j].size;
        pat_fill(sb, sz, key4(2, (uint64_t)round, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(sb, (int)sz, MPI_BYTE, root, msgs[g_rank * K + j].tag, g_comm);
        memset(sb, 0xee, sz);
      }
      free(sb);
    }
    MPI_Barrier(g_comm); /* phases must not mix: a sender may run ahead with eager sends */
    /* ---- phase B: specific source (descending), ANY_TAG, MPI_INT ---- */
    if (g_rank == root) {
      for (int s = g_size - 1; s >= 0; s--) {
        if (s == root) continue;
        for (int j = 0; j < K; j++) {
          size_t sz = msgs[s * K + j].size;
          uint64_t skey = key4(3, (uint64_t)round, (uint64_t)s, (uint64_t)j + 1000);
          pat_fill(buf, cap, skey, 0);
          MPI_Status st;
          MPI_Recv(buf, (int)(cap / 4), MPI_INT, s, MPI_ANY_TAG, g_comm, &st);
          char what[160];
          snprintf(what, sizeof what, "phase B (source %d, ANY_TAG, MPI_INT) message %d (%zu ints)", s, j, sz / 4);
          check_status(&st, s, msgs[s * K + j].tag, MPI_INT, (int)(sz / 4), what);
          pat_check(buf, sz, key4(3, (uint64_t)round, (uint64_t)s, (uint64_t)j), 0, "%s: payload", what);
          pat_check(buf + sz, cap - sz, skey, sz, "%s: bytes beyond the message", what);
        }
      }
    } else {
      int* sb = xmalloc(cap);
      for (int j = 0; j < K; j++) {
        size_t sz = msgs[g_rank * K + j].size;
        pat_fill(sb, sz, key4(3, (uint64_t)round, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(sb, (int)(sz / 4), MPI_INT, root, msgs[g_rank * K + j].tag, g_comm);
        memset(sb, 0xdd, sz);
      }
      free(sb);
    }
    MPI_Barrier(g_comm);
    /* ---- phase C: per round one tag, ANY_SOURCE ---- */
    for (int j = 0; j < K; j++) {
      int tag = 30000 + j;
      if (g_rank == root) {
        int* seen = calloc((size_t)g_size, sizeof(int));
        for (int n = 0; n < g_size - 1; n++) {
          uint64_t skey = key4(4, (uint64_t)round, (uint64_t)j, (uint64_t)n + 77);
          pat_fill(buf, cap, skey, 0);
          MPI_Status st;
          MPI_Recv(buf, (int)cap, MPI_BYTE, MPI_ANY_SOURCE, tag, g_comm, &st);
          int s = st.MPI_SOURCE;
          if (s < 0 || s >= g_size || s == root || seen[s]) {
            errorf("phase C (ANY_SOURCE, tag %d) receive %d: impossible or repeated MPI_SOURCE=%d", tag, n, s);
            continue;
          }
          seen[s] = 1;
          size_t sz = msgs[s * K + (K - 1 - j)].size;
          char what[160];
          snprintf(what, sizeof what, "phase C (ANY_SOURCE, tag %d) message from rank %d (%zu bytes)", tag, s, sz);
          check_status(&st, s, tag, MPI_BYTE, (int)sz, what);
          pat_check(buf, sz, key4(4, (uint64_t)round, (uint64_t)s, (uint64_t)j), 0, "%s: payload", what);
          pat_check(buf + sz, cap - sz, skey, sz, "%s: bytes beyond the message", what);
        }
        free(seen);
      } else {
        unsigned char* sb = xmalloc(cap);
        size_t sz = msgs[g_rank * K + (K - 1 - j)].size;
        pat_fill(sb, sz, key4(4, (uint64_t)round, (uint64_t)g_rank, (uint64_t)j), 0);
        MPI_Send(sb, (int)sz, MPI_BYTE, root, tag, g_comm);
        memset(sb, 0xcc, sz);
        free(sb);
      }
    }
    free(msgs);
    MPI_Barrier(g_comm);
  }
  free(buf);
}
