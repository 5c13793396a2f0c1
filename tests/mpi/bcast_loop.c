/* bcast_loop: N broadcasts of M bytes from rank 0, a plain MPI program for the tests that
 * observe which algorithm an MPI library runs (by the traffic its monitoring counts).
 *   bcast_loop BYTES ITERATIONS */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (argc != 3 || atol(argv[1]) < 1 || atol(argv[2]) < 1) {
    if (rank == 0) fprintf(stderr, "usage: bcast_loop BYTES ITERATIONS\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int n = atoi(argv[1]), iters = atoi(argv[2]);
  char* buf = malloc((size_t)n);
  memset(buf, rank == 0 ? 7 : 0, (size_t)n);
  for (int i = 0; i < iters; ++i) MPI_Bcast(buf, n, MPI_BYTE, 0, MPI_COMM_WORLD);
  int ok = buf[n - 1] == 7, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  if (rank == 0) printf("bcast_loop: %d x %d bytes, %s\n", iters, n, all ? "correct" : "WRONG");
  free(buf);
  MPI_Finalize();
  return all ? 0 : 1;
}
