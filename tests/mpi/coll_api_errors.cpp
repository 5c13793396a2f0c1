// coll_api_errors: a transport error inside one of tandem's collectives comes back from
// CollRequest::wait() and test() as an MPI error code (include/tandem/coll.hpp), for the
// C++ API. A broadcast whose receivers post fewer elements than the root sends (an
// erroneous call) makes each receiving rank's transfer fail with MPI_ERR_TRUNCATE; the
// root's call succeeds; later collectives on the communicator work. MPICH 4.0 raises
// errors found at completion on MPI_COMM_WORLD's handler: it is set to return them.
#include <mpi.h>

#include <cstdio>
#include <vector>

#include "tandem/coll.hpp"

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::vector<int> buf(64, rank == 0 ? 7 : -1);
  int bad = 0;
  for (bool use_test : {false, true}) {
    auto req = tandem::ibcast(buf.data(), rank == 0 ? 64 : 16, MPI_INT, 0, MPI_COMM_WORLD, {.algorithm = "binomial"});
    int rc = MPI_SUCCESS;
    if (use_test) {
      while (!req.test(&rc)) {
      }
    } else {
      rc = req.wait();
    }
    int cls = MPI_SUCCESS;
    if (rc != MPI_SUCCESS) MPI_Error_class(rc, &cls);
    int expected = rank == 0 ? MPI_SUCCESS : MPI_ERR_TRUNCATE;
    if (cls != expected) {
      std::fprintf(stderr, "coll_api_errors: rank %d (%s): class %d, expected %d\n", rank, use_test ? "test" : "wait",
                   cls, expected);
      bad = 1;
    }
  }
  int sum = 0, one = 1;
  tandem::iallreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD).wait();
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (sum != size) bad = 1;
  int total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::printf(total ? "coll_api_errors: FAILED on %d ranks\n" : "coll_api_errors: ok (%d failures)\n", total);
  tandem::coll_finalize();
  MPI_Finalize();
  return total ? 1 : 0;
}
