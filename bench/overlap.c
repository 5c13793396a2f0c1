/* overlap: the COMMMAMA overlap microbenchmark (section IV-C of the paper).
 *
 * A plain MPI program with no tandem code.  One iteration, per message size and
 * compute time t (per phase):
 *
 *   rank 0: MPI_Send(buf)  compute(t)  write buf[0]        MPI_Recv(buf)  compute(t)  read buf[size-1]
 *   rank 1: MPI_Recv(buf)  compute(t)  read buf[size-1]    MPI_Send(buf)  compute(t)  write buf[0]
 *
 * compute(t) is a busy loop of integer work calibrated at start-up to take t
 * microseconds on an idle core; it never touches the buffer, so only the one-byte
 * access after it needs the preceding communication to be complete.  With
 * blocking MPI an iteration takes about t_comm + 2t; with perfect overlap it takes
 * max(2t, t_comm), where t_comm is the ping-pong round-trip time of the size.
 *
 * Every iteration is timed on rank 0 with MPI_Wtime; the median of the
 * per-iteration times is reported with min, max, mean and quartiles.  Output: one
 * JSON object per line and per (size, compute time), on standard output, from
 * rank 0 only.  Ranks above 1 only take part in the collectives.  Each line
 * also gives rank 0's process CPU time (all threads, user + system, getrusage)
 * per timed iteration next to the wall time per iteration: when the two are
 * equal the rank's core was busy the whole time, and no scheme can overlap more
 * on that core.
 *
 * Options (sizes accept K/M/G suffixes, powers of 1024):
 *   -b SIZE   first size            (default 4K)
 *   -e SIZE   last size             (default 64M)
 *   -f N      size factor           (default 4)
 *   -s LIST   explicit sizes, comma-separated (overrides -b/-e/-f)
 *   -c LIST   compute time per phase in microseconds, comma-separated
 *             (default 200,2000,20000: the paper's 2x200, 2x2000, 2x20000 us)
 *   -n N      most timed iterations per point    (default 200)
 *   -m N      fewest timed iterations per point  (default 5)
 *   -w N      most warm-up iterations per point  (default 5)
 *   -t SEC    time budget per point in seconds: the iteration count is scaled
 *             down for long iterations so a point takes about this long (default 1)
 *   --json    accepted for symmetry: the output is always JSON lines
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_compute.h"
#include "bench_util.h"

#define MAX_SIZES 64
#define MAX_COMPUTE 32

static void usage(FILE* f) {
  fprintf(f,
          "usage: overlap [-b SIZE] [-e SIZE] [-f FACTOR] [-s LIST] [-c US_LIST] [-n ITERS]\n"
          "               [-m MIN_ITERS] [-w WARMUP] [-t SECONDS] [--json]\n");
}

/* compute(t) is bench_compute(t) of bench_compute.h, calibrated at start-up. */

/* ---- the benchmark -------------------------------------------------------------- */

static volatile char read_sink;

/* CPU time of the whole process (every thread, user + system), in seconds. */
static double process_cpu(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static double iteration(int rank, char* buf, size_t size, double t_us, int i) {
  size_t last = size ? size - 1 : 0;
  int n = (int)size;
  double t0 = MPI_Wtime();
  if (rank == 0) {
    MPI_Send(buf, n, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
    bench_compute(t_us);
    if (size) ((volatile char*)buf)[0] = (char)i;
    MPI_Recv(buf, n, MPI_BYTE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    bench_compute(t_us);
    if (size) read_sink = ((volatile char*)buf)[last];
  } else if (rank == 1) {
    MPI_Recv(buf, n, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    bench_compute(t_us);
    if (size) read_sink = ((volatile char*)buf)[last];
    MPI_Send(buf, n, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
    bench_compute(t_us);
    if (size) ((volatile char*)buf)[0] = (char)i;
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
  size_t first = 4096, last = (size_t)64 << 20, factor = 4;
  size_t sizes[MAX_SIZES], computes[MAX_COMPUTE] = {200, 2000, 20000};
  int nsizes = 0, ncompute = 3;
  long max_iters = 200, min_iters = 5, max_warmup = 5;
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
      case 'c': ncompute = parse_list(v, computes, MAX_COMPUTE); bad = ncompute <= 0; break;
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
      else fprintf(stderr, "overlap: needs at least 2 ranks\n");
    }
    MPI_Finalize();
    return 2;
  }

  char lib[128];
  library_name(lib, sizeof lib);
  announce_start("overlap", rank, nranks);
  bench_calibrate();
  /* What compute(t) really takes here, per compute time (median of a few runs). */
  double measured[MAX_COMPUTE];
  for (int c = 0; c < ncompute; ++c) {
    double m[5];
    for (int k = 0; k < 5; ++k) {
      double t0 = MPI_Wtime();
      bench_compute((double)computes[c]);
      m[k] = (MPI_Wtime() - t0) * 1e6;
    }
    qsort(m, 5, sizeof(double), cmp_double);
    measured[c] = m[2];
  }

  double* times = malloc(sizeof(double) * (size_t)(max_iters + max_warmup + 1));
  if (!times) MPI_Abort(MPI_COMM_WORLD, 1);

  for (int k = 0; k < nsizes; ++k) {
    size_t size = sizes[k];
    char* buf = page_alloc(size);
    if (!buf) {
      fprintf(stderr, "overlap: cannot allocate %zu bytes\n", size);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (int c = 0; c < ncompute; ++c) {
      double t_us = (double)computes[c];
      MPI_Barrier(MPI_COMM_WORLD);
      long plan[2] = {0, 0};
      double probe = iteration(rank, buf, size, t_us, 0);
      if (rank == 0) {
        long w = (long)(0.2 * budget / (probe > 1e-9 ? probe : 1e-9));
        plan[0] = w < max_warmup ? w : max_warmup;
      }
      MPI_Bcast(plan, 2, MPI_LONG, 0, MPI_COMM_WORLD);
      times[0] = probe;
      for (long i = 0; i < plan[0]; ++i) times[i + 1] = iteration(rank, buf, size, t_us, (int)i);
      if (rank == 0) {
        qsort(times, (size_t)plan[0] + 1, sizeof(double), cmp_double);
        double est = quantile(times, (int)plan[0] + 1, 0.5);
        double n = 0.8 * budget / (est > 1e-9 ? est : 1e-9);
        plan[1] = n > (double)max_iters ? max_iters : n < (double)min_iters ? min_iters : (long)n;
      }
      MPI_Bcast(plan, 2, MPI_LONG, 0, MPI_COMM_WORLD);
      long iters = plan[1];

      double cpu0 = process_cpu(), wall0 = MPI_Wtime();
      for (long i = 0; i < iters; ++i) times[i] = iteration(rank, buf, size, t_us, (int)i);
      double cpu_per_iter = (process_cpu() - cpu0) / (double)iters;
      double wall_per_iter = (MPI_Wtime() - wall0) / (double)iters;

      if (rank == 0) {
        double sum = 0;
        for (long i = 0; i < iters; ++i) sum += times[i];
        qsort(times, (size_t)iters, sizeof(double), cmp_double);
        int n = (int)iters;
        printf("{\"bench\":\"overlap\",\"mpi_library\":\"%s\",\"ranks\":%d,\"size\":%zu,"
               "\"compute_us\":%zu,\"compute_total_us\":%zu,\"compute_measured_us\":%.3f,\"reps\":%ld,"
               "\"warmup\":%ld,\"median_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f,\"mean_us\":%.3f,"
               "\"p25_us\":%.3f,\"p75_us\":%.3f,\"cpu_us_per_iter\":%.1f,\"wall_us_per_iter\":%.1f}\n",
               lib, nranks, size, computes[c], 2 * computes[c], measured[c], iters, plan[0],
               quantile(times, n, 0.5) * 1e6, times[0] * 1e6, times[n - 1] * 1e6, sum / n * 1e6,
               quantile(times, n, 0.25) * 1e6, quantile(times, n, 0.75) * 1e6, cpu_per_iter * 1e6,
               wall_per_iter * 1e6);
        fflush(stdout);
      }
    }
    free(buf);
  }
  free(times);
  MPI_Finalize();
  return 0;
}
