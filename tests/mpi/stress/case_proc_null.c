#include "stress.h"

/* MPI_PROC_NULL peers: sends return at once and the buffer may be reused;
 * receives return MPI_SOURCE=MPI_PROC_NULL, MPI_TAG=MPI_ANY_TAG, count 0 and
 * leave the buffer unchanged; the same for MPI_Sendrecv(_replace). Interleaved
 * with real traffic on the same buffer. */
void case_proc_null(void) {
  size_t n = 300000;
  unsigned char* buf = xmalloc(n + 64);
  unsigned char* rb = xmalloc(n + 64);
  uint64_t k1 = key4(23, (uint64_t)g_rank, 0, 0), k2 = key4(23, (uint64_t)g_rank, 1, 0);
  MPI_Status st;
  for (int it = 0; it < 3; it++) {
    size_t size = it == 0 ? 4096 : it == 1 ? 70001 : n;
    pat_fill(buf, size, k1, 0);
    MPI_Send(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 1, g_comm);
    memset(buf, 0x71, size);
    byte_check(buf, size, 0x71, "proc_null: buffer rewritten after MPI_Send to MPI_PROC_NULL");
    pat_fill(rb, size + 64, k2, 0);
    MPI_Recv(rb, (int)size, MPI_BYTE, MPI_PROC_NULL, 1, g_comm, &st);
    check_status(&st, MPI_PROC_NULL, MPI_ANY_TAG, MPI_BYTE, 0, "MPI_Recv from MPI_PROC_NULL");
    pat_check(rb, size + 64, k2, 0, "MPI_Recv from MPI_PROC_NULL (%zu bytes): buffer must be unchanged", size);
    rb[0] ^= 1;
    rb[0] ^= 1;
    MPI_Sendrecv(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 2, rb, (int)size, MPI_BYTE, MPI_PROC_NULL, 2, g_comm, &st);
    check_status(&st, MPI_PROC_NULL, MPI_ANY_TAG, MPI_BYTE, 0, "MPI_Sendrecv with MPI_PROC_NULL peers");
    pat_check(rb, size + 64, k2, 0, "MPI_Sendrecv from MPI_PROC_NULL (%zu bytes): buffer must be unchanged", size);
    pat_fill(buf, size, k1, 0);
    MPI_Sendrecv_replace(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 3, MPI_PROC_NULL, 3, g_comm, &st);
    check_status(&st, MPI_PROC_NULL, MPI_ANY_TAG, MPI_BYTE, 0, "MPI_Sendrecv_replace with MPI_PROC_NULL peers");
    pat_check(buf, size, k1, 0, "MPI_Sendrecv_replace with MPI_PROC_NULL (%zu bytes): buffer must be unchanged", size);
    /* real traffic on the same buffers: send to the next rank, receive from MPI_PROC_NULL then from prev */
    int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
    uint64_t kr = key4(23, (uint64_t)prev, 2, (uint64_t)it), ks = key4(23, (uint64_t)g_rank, 2, (uint64_t)it);
    pat_fill(buf, size, ks, 0);
    if (g_rank == 0) {
      MPI_Send(buf, (int)size, MPI_BYTE, next, 4, g_comm);
      MPI_Send(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 4, g_comm);
      memset(buf, 0, size);
      MPI_Recv(rb, (int)size, MPI_BYTE, MPI_PROC_NULL, 4, g_comm, MPI_STATUS_IGNORE);
      MPI_Recv(rb, (int)size, MPI_BYTE, prev, 4, g_comm, &st);
    } else {
      MPI_Recv(rb, (int)size, MPI_BYTE, MPI_PROC_NULL, 4, g_comm, MPI_STATUS_IGNORE);
      MPI_Recv(rb, (int)size, MPI_BYTE, prev, 4, g_comm, &st);
      MPI_Send(buf, (int)size, MPI_BYTE, next, 4, g_comm);
      MPI_Send(buf, (int)size, MPI_BYTE, MPI_PROC_NULL, 4, g_comm);
      memset(buf, 0, size);
    }
    check_status(&st, prev, 4, MPI_BYTE, (int)size, "ring message around MPI_PROC_NULL calls");
    pat_check(rb, size, kr, 0, "ring message around MPI_PROC_NULL calls (%zu bytes)", size);
  }
  free(buf);
  free(rb);
}
