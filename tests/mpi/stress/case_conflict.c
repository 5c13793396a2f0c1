#include "stress.h"

/* The same buffer used by other MPI calls right after a blocking call returned:
 * MPI_Send then MPI_Irecv into it; MPI_Send then MPI_Isend of it; MPI_Recv then
 * MPI_Isend of it (forwarding without touching it); MPI_Recv then MPI_Irecv into
 * it; MPI_Recv then a collective (MPI_Allreduce) reading it; MPI_Send then
 * MPI_Bcast into it. */
void case_conflict(void) {
  rng_t r = rng_for(22);
  int np;
  pair_t* pairs = make_pairs(&r, &np);
  static const size_t sizes[] = {4096, 8192 + 1, 131072, (1 << 20) + 3};
  size_t maxs = (1 << 20) + 3 + 64;
  unsigned char* buf = xmalloc(maxs);
  unsigned char* rb = xmalloc(maxs);
  for (int p = 0; p < np; p++) {
    int a = pairs[p].a, b = pairs[p].b;
    for (int k = 0; k < 4; k++) {
      size_t size = sizes[k];
      uint64_t km[10];
      for (int m = 0; m < 10; m++) km[m] = key4(22, (uint64_t)p, (uint64_t)k, (uint64_t)m);
      char what[200];
      MPI_Request req;
      MPI_Status st;
      if (g_rank == a) {
        /* 1: a Sends buf, then Irecvs into buf (b's reply, tag 2) */
        pat_fill(buf, size, km[1], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 1, g_comm);
        MPI_Irecv(buf, (int)size + 64, MPI_BYTE, b, 2, g_comm, &req);
        MPI_Wait(&req, &st);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Irecv into a buffer right after MPI_Send of it", a,
                 b, size);
        check_status(&st, b, 2, MPI_BYTE, (int)size, what);
        pat_check(buf, size, km[2], 0, "%s", what);
        /* 3,4: a Sends buf, then Isends the same buffer */
        pat_fill(buf, size, km[3], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 3, g_comm);
        MPI_Isend(buf, (int)size, MPI_BYTE, b, 4, g_comm, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        memset(buf, 0, size);
        /* 5: a sends; b Recvs and forwards it back at once with Isend (tag 6) */
        pat_fill(buf, size, km[5], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 5, g_comm);
        memset(buf, 0, size);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Isend of a buffer right after MPI_Recv into it", a,
                 b, size);
        recv_check(rb, size + 64, b, 6, size, km[5], what);
        /* 7,8: b Recvs then Irecvs into one buffer */
        pat_fill(buf, size, km[7], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 7, g_comm);
        pat_fill(buf, size, km[8], 0);
        MPI_Send(buf, (int)size, MPI_BYTE, b, 8, g_comm);
        memset(buf, 0, size);
      } else if (g_rank == b) {
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: message sent right before the sender's MPI_Irecv", a, b,
                 size);
        recv_check(rb, size + 64, a, 1, size, km[1], what);
        pat_fill(rb, size, km[2], 0);
        MPI_Send(rb, (int)size, MPI_BYTE, a, 2, g_comm);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Send then MPI_Isend of one buffer (the MPI_Send)", a,
                 b, size);
        recv_check(rb, size + 64, a, 3, size, km[3], what);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Send then MPI_Isend of one buffer (the MPI_Isend)",
                 a, b, size);
        recv_check(rb, size + 64, a, 4, size, km[3], what);
        memset(buf, 0, size);
        MPI_Recv(buf, (int)size, MPI_BYTE, a, 5, g_comm, MPI_STATUS_IGNORE);
        MPI_Isend(buf, (int)size, MPI_BYTE, a, 6, g_comm, &req); /* forward without touching it */
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        pat_check(buf, size, km[5], 0, "pair %d<->%d %zu bytes: buffer after MPI_Recv + MPI_Isend of it", a, b, size);
        memset(buf, 0, size);
        MPI_Recv(buf, (int)size, MPI_BYTE, a, 7, g_comm, MPI_STATUS_IGNORE);
        MPI_Irecv(buf, (int)size, MPI_BYTE, a, 8, g_comm, &req);
        MPI_Wait(&req, &st);
        snprintf(what, sizeof what, "pair %d<->%d %zu bytes: MPI_Irecv into a buffer right after MPI_Recv into it", a,
                 b, size);
        check_status(&st, a, 8, MPI_BYTE, (int)size, what);
        pat_check(buf, size, km[8], 0, "%s: the later message must remain", what);
      }
    }
  }
  /* collectives on buffers right after point-to-point calls (all ranks) */
  {
    size_t n = 200000; /* bytes; as MPI_INT elements */
    int cnt = (int)(n / 4);
    int* ibuf = xmalloc(n);
    int* out = xmalloc(n);
    int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
    /* ring: each rank receives prev's vector (rank 0 sends first), then Allreduce(SUM) of what it received */
    for (int i = 0; i < cnt; i++) ibuf[i] = g_rank * 1000003 + i;
    if (g_rank == 0) {
      MPI_Send(ibuf, cnt, MPI_INT, next, 900, g_comm);
      MPI_Recv(ibuf, cnt, MPI_INT, prev, 900, g_comm, MPI_STATUS_IGNORE);
    } else {
      int* tmp = xmalloc(n);
      memcpy(tmp, ibuf, n);
      MPI_Recv(ibuf, cnt, MPI_INT, prev, 900, g_comm, MPI_STATUS_IGNORE);
      MPI_Send(tmp, cnt, MPI_INT, next, 900, g_comm);
      free(tmp);
    }
    /* ibuf (just received) read by the collective: sum over ranks of (r*1000003 + i) */
    MPI_Allreduce(ibuf, out, cnt, MPI_INT, MPI_SUM, g_comm);
    long long rs = (long long)g_size * (g_size - 1) / 2;
    size_t bad = 0;
    for (int i = 0; i < cnt; i++)
      if (out[i] != (int)(rs * 1000003 + (long long)g_size * i)) bad++;
    if (bad) errorf("MPI_Allreduce of a just-received buffer: %zu of %d elements wrong", bad, cnt);
    /* Send a buffer, then MPI_Bcast into it */
    for (int i = 0; i < cnt; i++) ibuf[i] = i ^ g_rank;
    if (g_rank == 0) {
      MPI_Send(ibuf, cnt, MPI_INT, next, 901, g_comm);
      MPI_Recv(out, cnt, MPI_INT, prev, 901, g_comm, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(out, cnt, MPI_INT, prev, 901, g_comm, MPI_STATUS_IGNORE);
      MPI_Send(ibuf, cnt, MPI_INT, next, 901, g_comm);
    }
    if (g_rank == g_size - 1)
      for (int i = 0; i < cnt; i++) ibuf[i] = i * 3 + 1;
    MPI_Bcast(ibuf, cnt, MPI_INT, g_size - 1, g_comm); /* into a just-sent buffer */
    bad = 0;
    for (int i = 0; i < cnt; i++)
      if (ibuf[i] != i * 3 + 1) bad++;
    if (bad) errorf("MPI_Bcast into a just-sent buffer: %zu of %d elements wrong", bad, cnt);
    bad = 0;
    for (int i = 0; i < cnt; i++)
      if (out[i] != (i ^ prev)) bad++;
    if (bad) errorf("ring message before the MPI_Bcast: %zu of %d elements wrong", bad, cnt);
    free(ibuf);
    free(out);
  }
  free(buf);
  free(rb);
  free(pairs);
}
