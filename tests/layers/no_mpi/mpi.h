/* On the include path of the MPI-free configuration (TANDEM_WITH_MPI=OFF) only: a layer
 * that is meant to be free of MPI and includes <mpi.h> stops the build here. */
#error "this configuration is free of MPI: a layer that must not use MPI includes <mpi.h>"
