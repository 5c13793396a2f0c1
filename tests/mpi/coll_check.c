/* coll_check: a plain MPI program (no tandem code) that checks the results of the nine
 * blocking collectives tandem can take over: MPI_Bcast, MPI_Reduce, MPI_Allreduce,
 * MPI_Allgather, MPI_Alltoall, MPI_Gather, MPI_Scatter, MPI_Reduce_scatter_block and
 * MPI_Barrier, on MPI_COMM_WORLD and on a split communicator, with several counts,
 * datatypes, operations, roots and MPI_IN_PLACE.
 *
 * Expected values are computed locally from closed forms, so the program checks whatever
 * runs the collectives (the MPI library, or tandem's algorithms under `tandem run` with
 * TANDEM_COLL_<COLL> or TANDEM_COLL_OVERLAP=1). Right after each call it overwrites the
 * send buffer (the result must not change) and reads the result (it must be complete):
 * what a program may do after a blocking call returns. MPI_Barrier is checked to hold
 * every rank until the last one arrives.
 *
 * Exit status 0 when every check passed; rank 0 prints one summary line. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long checks, failures;
/* MPICH 4.0 crashes in MPI_Reduce with MPI_IN_PLACE at a non-zero root (measured with
 * 1000 long longs on 2 ranks, without tandem): that case is skipped there. */
static int reduce_inplace_nonzero_root_broken;

static void fail(const char* what, int count, int root, int inplace, long idx, double got, double want) {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  if (++failures <= 10)
    fprintf(stderr, "rank %d: %s count %d root %d%s: element %ld is %.17g, expected %.17g\n", r, what, count, root,
            inplace ? " in place" : "", idx, got, want);
}

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Buffers: page-aligned and page-sized (tandem can protect them), or small heap blocks. */
static void* buffer(size_t bytes, int aligned) {
  if (bytes == 0) bytes = 1;
  if (!aligned) return malloc(bytes);
  void* p = NULL;
  size_t len = (bytes + 4095) & ~(size_t)4095;
  if (posix_memalign(&p, 4096, len)) return NULL;
  return p;
}

/* Values: exact in double and in int for the counts used. */
static double f(int r, long i) { return (double)((r + 1) * 1000 + (i % 997)); }

typedef struct {
  MPI_Datatype type;
  int size;
  const char* name;
} Type;
static const Type types[] = {{MPI_INT, 4, "int"}, {MPI_DOUBLE, 8, "double"}};

static void put(void* b, const Type* t, long i, double v) {
  if (t->type == MPI_INT) ((int*)b)[i] = (int)v;
  else ((double*)b)[i] = v;
}
static double get(const void* b, const Type* t, long i) {
  return t->type == MPI_INT ? (double)((const int*)b)[i] : ((const double*)b)[i];
}

static void check(const char* what, const void* b, const Type* t, long from, long n, double (*want)(long, void*),
                  void* ctx, int count, int root, int inplace) {
  for (long i = from; i < from + n; ++i) {
    ++checks;
    double w = want(i, ctx);
    double g = get(b, t, i);
    if (g != w) {
      fail(what, count, root, inplace, i, g, w);
      return;
    }
  }
}

typedef struct {
  int p, r, root, n, op_max;
} Ctx;
static double want_root(long i, void* c) { return f(((Ctx*)c)->root, i); }
static double want_reduce(long i, void* c) {
  Ctx* x = c;
  if (x->op_max) return f(x->p - 1, i);
  double s = 0;
  for (int r = 0; r < x->p; ++r) s += f(r, i);
  return s;
}
static double want_blocks(long i, void* c) { Ctx* x = c; return f((int)(i / x->n), i % x->n); }
static double a2a(int from, int to, long i) { return (double)(from * 100 + to * 10 + (i % 7)); }
static double want_a2a(long i, void* c) { Ctx* x = c; return a2a((int)(i / x->n), x->r, i % x->n); }
static double rsb(int r, long j) { return (double)(r * 3 + (j % 1001)); }
static double want_rsb(long i, void* c) {
  Ctx* x = c;
  double s = 0;
  for (int r = 0; r < x->p; ++r) s += rsb(r, (long)x->r * x->n + i);
  return s;
}
static double want_mine(long i, void* c) { return f(((Ctx*)c)->r, i); }

static void run_all(MPI_Comm comm, const char* label) {
  int p, r;
  MPI_Comm_size(comm, &p);
  MPI_Comm_rank(comm, &r);
  const int counts[] = {1, 7, 1000, 65536};
  char what[128];
  for (size_t ci = 0; ci < sizeof counts / sizeof *counts; ++ci)
    for (size_t ti = 0; ti < 2; ++ti)
      for (int aligned = 0; aligned < 2; ++aligned) {
        int n = counts[ci];
        const Type* t = &types[ti];
        size_t es = (size_t)t->size, nb = (size_t)n * es, pb = (size_t)p * nb;
        char* sb = buffer(pb, aligned);
        char* rb = buffer(pb, aligned);
        for (int root = 0; root < p; root += (p > 2 ? p - 1 : 1)) {
          for (int inplace = 0; inplace < 2; ++inplace) {
            Ctx x = {p, r, root, n, 0};
            /* Bcast */
            for (long i = 0; i < n; ++i) put(rb, t, i, r == root ? f(r, i) : -1);
            MPI_Bcast(rb, n, t->type, root, comm);
            if (r == root) put(rb, t, 0, -5); /* the root may write its buffer at once */
            snprintf(what, sizeof what, "%s bcast %s", label, t->name);
            check(what, rb, t, r == root ? 1 : 0, r == root ? n - 1 : n, want_root, &x, n, root, 0);
            /* Reduce and Allreduce, sum and max */
            for (int op = 0; op < 2; ++op) {
              x.op_max = op;
              MPI_Op mop = op ? MPI_MAX : MPI_SUM;
              for (long i = 0; i < n; ++i) put(sb, t, i, f(r, i)), put(rb, t, i, f(r, i));
              int ip = inplace && r == root;
              if (inplace && root != 0 && reduce_inplace_nonzero_root_broken) goto allreduce;
              MPI_Reduce(ip ? MPI_IN_PLACE : sb, rb, n, t->type, mop, root, comm);
              put(sb, t, 0, -7);
              snprintf(what, sizeof what, "%s reduce %s %s", label, t->name, op ? "max" : "sum");
              if (r == root) check(what, rb, t, 0, n, want_reduce, &x, n, root, inplace);
            allreduce:
              for (long i = 0; i < n; ++i) put(sb, t, i, f(r, i)), put(rb, t, i, f(r, i));
              MPI_Allreduce(inplace ? MPI_IN_PLACE : sb, rb, n, t->type, mop, comm);
              put(sb, t, 0, -7);
              snprintf(what, sizeof what, "%s allreduce %s %s", label, t->name, op ? "max" : "sum");
              check(what, rb, t, 0, n, want_reduce, &x, n, root, inplace);
            }
            /* Allgather */
            for (long i = 0; i < n; ++i) put(sb, t, i, f(r, i));
            memset(rb, 0, pb);
            for (long i = 0; i < n; ++i) put(rb, t, (long)r * n + i, f(r, i));
            MPI_Allgather(inplace ? MPI_IN_PLACE : sb, n, t->type, rb, n, t->type, comm);
            put(sb, t, 0, -7);
            snprintf(what, sizeof what, "%s allgather %s", label, t->name);
            check(what, rb, t, 0, (long)p * n, want_blocks, &x, n, root, inplace);
            /* Alltoall */
            for (int j = 0; j < p; ++j)
              for (long i = 0; i < n; ++i) put(inplace ? rb : sb, t, (long)j * n + i, a2a(r, j, i));
            MPI_Alltoall(inplace ? MPI_IN_PLACE : sb, n, t->type, rb, n, t->type, comm);
            if (!inplace) put(sb, t, 0, -7);
            snprintf(what, sizeof what, "%s alltoall %s", label, t->name);
            check(what, rb, t, 0, (long)p * n, want_a2a, &x, n, root, inplace);
            /* Gather */
            int gip = inplace && r == root;
            for (long i = 0; i < n; ++i) put(sb, t, i, f(r, i));
            memset(rb, 0, pb);
            if (gip) for (long i = 0; i < n; ++i) put(rb, t, (long)r * n + i, f(r, i));
            MPI_Gather(gip ? MPI_IN_PLACE : sb, n, t->type, rb, n, t->type, root, comm);
            put(sb, t, 0, -7);
            snprintf(what, sizeof what, "%s gather %s", label, t->name);
            if (r == root) check(what, rb, t, 0, (long)p * n, want_blocks, &x, n, root, inplace);
            /* Scatter */
            if (r == root)
              for (int j = 0; j < p; ++j)
                for (long i = 0; i < n; ++i) put(sb, t, (long)j * n + i, f(j, i));
            for (long i = 0; i < n; ++i) put(rb, t, i, -1);
            MPI_Scatter(sb, n, t->type, gip ? MPI_IN_PLACE : rb, n, t->type, root, comm);
            if (r == root) put(sb, t, 0, -7);
            snprintf(what, sizeof what, "%s scatter %s", label, t->name);
            if (!gip) check(what, rb, t, 0, n, want_mine, &x, n, root, inplace);
            /* Reduce_scatter_block (sum) */
            for (long j = 0; j < (long)p * n; ++j) put(inplace ? rb : sb, t, j, rsb(r, j));
            MPI_Reduce_scatter_block(inplace ? MPI_IN_PLACE : sb, rb, n, t->type, MPI_SUM, comm);
            if (!inplace) put(sb, t, 0, -7);
            snprintf(what, sizeof what, "%s reduce_scatter_block %s", label, t->name);
            check(what, rb, t, 0, n, want_rsb, &x, n, root, inplace);
          }
        }
        free(sb);
        free(rb);
      }
  /* A non-contiguous datatype (every other int of 16 KiB, page-aligned buffers): MPI_Bcast
   * and MPI_Allgather must fill exactly the strided elements and leave the gaps alone. */
  {
    const int n = 2048;
    MPI_Datatype strided;
    MPI_Type_vector(n, 1, 2, MPI_INT, &strided);
    MPI_Type_commit(&strided);
    int* v = buffer(2 * n * sizeof(int), 1);
    int* w = buffer(2 * n * sizeof(int), 1);
    for (int root = 0; root < p; root += (p > 2 ? p - 1 : 1)) {
      for (int i = 0; i < 2 * n; ++i) v[i] = (i % 2 == 0 && r == root) ? i * 3 + root : -1 - i;
      MPI_Bcast(v, 1, strided, root, comm);
      for (int i = 0; i < 2 * n; ++i) {
        ++checks;
        int want = i % 2 == 0 ? i * 3 + root : -1 - i;
        if (v[i] != want) {
          snprintf(what, sizeof what, "%s bcast strided", label);
          fail(what, 1, root, 0, i, v[i], want);
          break;
        }
      }
    }
    /* Allgather: block k (extent 2n-1 ints) from rank k, gaps untouched. */
    const int ext = 2 * n - 1;
    free(w);
    w = buffer((size_t)p * ext * sizeof(int), 1);
    for (int i = 0; i < 2 * n; ++i) v[i] = i % 2 == 0 ? i + 1000 * r : -7;
    for (int i = 0; i < p * ext; ++i) w[i] = -1 - i;
    MPI_Allgather(v, 1, strided, w, 1, strided, comm);
    v[0] = -9; /* the send buffer may change at once */
    for (int i = 0; i < p * ext; ++i) {
      ++checks;
      int k = i / ext, j = i % ext;
      int want = j % 2 == 0 ? j + 1000 * k : -1 - i;
      if (w[i] != want) {
        snprintf(what, sizeof what, "%s allgather strided", label);
        fail(what, 1, 0, 0, i, w[i], want);
        break;
      }
    }
    free(v);
    free(w);
    MPI_Type_free(&strided);
  }
  /* Barrier: nobody leaves before the last rank arrives. The last rank sleeps 30 ms, notes
   * when it enters (CLOCK_REALTIME: the ranks of these tests share one machine's clock) and
   * tells everyone afterwards; each rank must have left after that moment. */
  for (int k = 0; k < 3; ++k) {
    double entered = 0;
    if (r == p - 1) {
      struct timespec ts = {0, 30 * 1000 * 1000};
      nanosleep(&ts, NULL);
      entered = wall_seconds();
    }
    MPI_Barrier(comm);
    double left = wall_seconds();
    MPI_Bcast(&entered, 1, MPI_DOUBLE, p - 1, comm);
    ++checks;
    if (left < entered) {
      snprintf(what, sizeof what, "%s barrier", label);
      fail(what, 0, 0, 0, k, left - entered, 0);
    }
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  reduce_inplace_nonzero_root_broken = strstr(version, "MPICH Version:\t4.0") != NULL;
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (rank == 0)
    printf("coll_check: thread level %s\n", level == MPI_THREAD_MULTIPLE     ? "multiple"
                                          : level == MPI_THREAD_SERIALIZED ? "serialized"
                                          : level == MPI_THREAD_FUNNELED   ? "funneled"
                                                                           : "single");
  if (reduce_inplace_nonzero_root_broken && rank == 0)
    printf("coll_check: MPICH 4.0: skipping MPI_Reduce in place at a non-zero root (crashes in MPICH itself)\n");
  run_all(MPI_COMM_WORLD, "world");
  /* A communicator of every other rank, in reverse order. */
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, size - rank, &half);
  run_all(half, "split");
  MPI_Comm_free(&half);
  long mine[2] = {checks, failures}, all[2];
  MPI_Reduce(mine, all, 2, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank == 0) printf("coll_check: %d ranks: %ld checks, %ld failures\n", size, all[0], all[1]);
  MPI_Bcast(all, 2, MPI_LONG, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return all[1] ? 1 : 0;
}
