/* pingpong: round-trip time of blocking MPI_Send/MPI_Recv between ranks 0 and 1.
 *
 * A plain MPI program with no tandem code: run it as is, or under `tandem run`
 * to measure what tandem adds (section IV-B of the COMMMAMA paper).
 *
 * Per message size: rank 0 does MPI_Send(buf) then MPI_Recv(buf); rank 1 does
 * MPI_Recv(buf) then MPI_Send(buf).  Every iteration is timed on rank 0 with
 * MPI_Wtime and the median of the per-iteration times is reported, with min,
 * max, mean and quartiles for the spread.  Output: one JSON object per line and
 * per size, on standard output, from rank 0 only.  Ranks above 1 only take part
 * in the collectives.
 *
 * Options (sizes accept K/M/G suffixes, powers of 1024):
 *   -b SIZE   first size            (default 4)
 *   -e SIZE   last size             (default 64M)
 *   -f N      size factor           (default 4; 2 for every power of two)
 *   -s LIST   explicit sizes, comma-separated (overrides -b/-e/-f)
 *   -n N      most timed iterations per size     (default 1000)
 *   -m N      fewest timed iterations per size   (default 10)
 *   -w N      most warm-up iterations per size   (default 10)
 *   -t SEC    time budget per size in seconds: the iteration count is scaled
 *             down for big sizes so a size takes about this long (default 1)
 *   --json    accepted for symmetry: the output is always JSON lines
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_SIZES 64

static void usage(FILE* f) {
  fprintf(f,
          "usage: pingpong [-b SIZE] [-e SIZE] [-f FACTOR] [-s LIST] [-n ITERS] [-m MIN_ITERS]\n"
          "                [-w WARMUP] [-t SECONDS] [--json]\n");
}

/* One round trip; rank 0 returns its duration in seconds. */
static double round_trip(int rank, char* buf, size_t size) {
  double t0 = MPI_Wtime();
  if (rank == 0) {
    MPI_Send(buf, (int)size, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
    MPI_Recv(buf, (int)size, MPI_BYTE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else if (rank == 1) {
    MPI_Recv(buf, (int)size, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(buf, (int)size, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
  }
  return MPI_Wtime() - t0;
}

static void library_name(char* out, size_t len) {
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int n = 0;
  MPI_Get_library_version(version, &n);
  /* First line, up to a comma, as a plain JSON-safe string ("MPICH Version:\t4.0" has a tab). */
  size_t j = 0;
  for (int i = 0; i < n && version[i] && version[i] != '\n' && version[i] != ',' && j + 1 < len; ++i) {
    char c = version[i];
    if (c == '"' || c == '\\') continue;
    if ((unsigned char)c < 0x20) c = ' ';
    if (c == ' ' && (j == 0 || out[j - 1] == ' ')) continue;
    out[j++] = c;
  }
  while (j > 0 && out[j - 1] == ' ') --j;
  out[j] = '\0';
}

int main(int argc, char** argv) {
  size_t first = 4, last = (size_t)64 << 20, factor = 4;
  size_t sizes[MAX_SIZES];
  int nsizes = 0;
  long max_iters = 1000, min_iters = 10, max_warmup = 10;
  double budget = 1.0;
  int bad = 0;

  MPI_Init(&argc, &argv);
  int rank = 0, nranks = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);

  for (int i = 1; i < argc && !bad; ++i) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--json")) continue;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      if (rank == 0) usage(stdout);
      MPI_Finalize();
      return 0;
    }
    if (!v || a[0] != '-' || a[1] == '\0' || a[2] != '\0') {
      bad = 1;
      break;
    }
    ++i;
    switch (a[1]) {
      case 'b': bad = parse_size(v, &first) != 0; break;
      case 'e': bad = parse_size(v, &last) != 0; break;
      case 'f': bad = parse_size(v, &factor) != 0 || factor < 2; break;
      case 's': nsizes = parse_list(v, sizes, MAX_SIZES); bad = nsizes <= 0; break;
      case 'n': max_iters = atol(v); bad = max_iters < 1; break;
      case 'm': min_iters = atol(v); bad = min_iters < 1; break;
      case 'w': max_warmup = atol(v); bad = max_warmup < 0; break;
      case 't': budget = atof(v); bad = budget <= 0; break;
      default: bad = 1;
    }
  }
  if (min_iters > max_iters) min_iters = max_iters;
  if (!bad && nsizes == 0) {
    for (size_t s = first; s <= last && nsizes < MAX_SIZES; s = s ? s * factor : 1) sizes[nsizes++] = s;
    bad = nsizes == 0;
  }
  for (int i = 0; i < nsizes && !bad; ++i)
    if (sizes[i] > (size_t)2147483647) bad = 1;
  if (bad || nranks < 2) {
    if (rank == 0) {
      if (bad) usage(stderr);
      else fprintf(stderr, "pingpong: needs at least 2 ranks\n");
    }
    MPI_Finalize();
    return 2;
  }

  char lib[128];
  library_name(lib, sizeof lib);
  announce_start("pingpong", rank, nranks);
  double* times = malloc(sizeof(double) * (size_t)(max_iters + max_warmup + 1));
  if (!times) MPI_Abort(MPI_COMM_WORLD, 1);

  for (int k = 0; k < nsizes; ++k) {
    size_t size = sizes[k];
    char* buf = page_alloc(size);
    if (!buf) {
      fprintf(stderr, "pingpong: cannot allocate %zu bytes\n", size);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Barrier(MPI_COMM_WORLD);

    /* One probe iteration sizes the warm-up, the warm-up sizes the measurement. */
    long plan[2] = {0, 0};
    double probe = round_trip(rank, buf, size);
    if (rank == 0) {
      long w = (long)(0.2 * budget / (probe > 1e-9 ? probe : 1e-9));
      plan[0] = w < max_warmup ? w : max_warmup;
    }
    MPI_Bcast(plan, 2, MPI_LONG, 0, MPI_COMM_WORLD);
    times[0] = probe;
    for (long i = 0; i < plan[0]; ++i) times[i + 1] = round_trip(rank, buf, size);
    if (rank == 0) {
      qsort(times, (size_t)plan[0] + 1, sizeof(double), cmp_double);
      double est = quantile(times, (int)plan[0] + 1, 0.5);
      double n = 0.8 * budget / (est > 1e-9 ? est : 1e-9);
      plan[1] = n > (double)max_iters ? max_iters : n < (double)min_iters ? min_iters : (long)n;
    }
    MPI_Bcast(plan, 2, MPI_LONG, 0, MPI_COMM_WORLD);
    long iters = plan[1];

    for (long i = 0; i < iters; ++i) times[i] = round_trip(rank, buf, size);

    if (rank == 0) {
      double sum = 0;
      for (long i = 0; i < iters; ++i) sum += times[i];
      qsort(times, (size_t)iters, sizeof(double), cmp_double);
      int n = (int)iters;
      printf("{\"bench\":\"pingpong\",\"mpi_library\":\"%s\",\"ranks\":%d,\"size\":%zu,\"reps\":%ld,"
             "\"warmup\":%ld,\"median_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f,\"mean_us\":%.3f,"
             "\"p25_us\":%.3f,\"p75_us\":%.3f}\n",
             lib, nranks, size, iters, plan[0], quantile(times, n, 0.5) * 1e6, times[0] * 1e6,
             times[n - 1] * 1e6, sum / n * 1e6, quantile(times, n, 0.25) * 1e6, quantile(times, n, 0.75) * 1e6);
      fflush(stdout);
    }
    free(buf);
  }
  free(times);
  MPI_Finalize();
  return 0;
}
