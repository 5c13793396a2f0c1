/* coll_errors: a transport error inside a collective reaches the program as MPI says it
 * should. A broadcast whose receivers expect fewer elements than the root sends is
 * erroneous; the MPI library's receive of the longer message reports MPI_ERR_TRUNCATE.
 * Plain MPI C, no tandem code; run under `tandem run` with a tandem algorithm forced
 * (TANDEM_COLL_BCAST=binomial), where tandem's own receives see the error:
 *
 *   coll_errors return   MPI_ERRORS_RETURN on the communicator (and on MPI_COMM_WORLD,
 *                        whose handler MPICH 4.0 raises completion errors on): MPI_Bcast
 *                        returns an error of class MPI_ERR_TRUNCATE on every receiving
 *                        rank and MPI_SUCCESS at the root; prints "coll_errors: ok".
 *   coll_errors fatal    the default handler (MPI_ERRORS_ARE_FATAL): the job ends with
 *                        an error at that broadcast, it does not hang or go on.
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int fatal = argc > 1 && strcmp(argv[1], "fatal") == 0;
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (!fatal) {
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int buf[64];
  for (int i = 0; i < 64; ++i) buf[i] = rank == 0 ? i : -1;
  int rc = MPI_Bcast(buf, rank == 0 ? 64 : 16, MPI_INT, 0, comm);
  if (fatal) {
    /* The root's part succeeds; a receiving rank must not get here. */
    if (rank != 0) printf("coll_errors: rank %d went on after an erroneous broadcast (rc %d)\n", rank, rc);
    MPI_Finalize();
    return 3;
  }
  int cls = MPI_SUCCESS;
  if (rc != MPI_SUCCESS) MPI_Error_class(rc, &cls);
  int expected = rank == 0 ? MPI_SUCCESS : MPI_ERR_TRUNCATE;
  int bad = cls != expected;
  if (bad) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    text[0] = 0;
    if (rc != MPI_SUCCESS) MPI_Error_string(rc, text, &len);
    fprintf(stderr, "coll_errors: rank %d: MPI_Bcast returned class %d (%s), expected %d\n", rank, cls, text, expected);
  }
  /* The communicator still works afterwards. */
  int total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf(total ? "coll_errors: FAILED on %d ranks\n" : "coll_errors: ok (%d failures)\n", total);
  MPI_Comm_free(&comm);
  MPI_Finalize();
  return total ? 1 : 0;
}
