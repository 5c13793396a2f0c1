/* logp: the point-to-point parameters of the parametrised LogP model between two ranks,
 * measured as Kielmann's logp_mpi does, for `tandem profile`. A plain MPI program, no
 * tandem code. Per message size m:
 *   rtt(m)  round trip of blocking MPI_Send / MPI_Recv (rank 0 -> 1 -> 0)
 *   os(m)   the sender's CPU time in MPI for m bytes: inside MPI_Isend, then inside the
 *           MPI_Test calls (polled every few microseconds) until it completes, in a round
 *           trip (rank 1 replies with 0 bytes)
 *   or(m)   the receiver's CPU time in MPI for m bytes sent before it looks: rank 0
 *           computes for twice rtt(m) after rank 1 sent, then MPI_Irecv and MPI_Test
 *           (polled) until complete. A message MPI sent eagerly has arrived by then (the
 *           time is its copy out); a rendezvous one moves while rank 0 tests (the time is
 *           what the transfer costs the receiver's CPU)
 *   g(m)    gap: n Isends back to back into pre-posted receives, (T(2n) - T(n)) / n, with n
 *           doubled until two estimates agree within the target (or n reaches its bound)
 * Each is repeated until the 95% confidence interval of its median is within --ci of it (at
 * least --min-reps, at most --max-reps repetitions, or --budget seconds per size); the
 * median is reported, with the interval reached.
 *
 *   logp -s 1,1K,64K,1M [--ci 0.05] [--min-reps 10] [--max-reps 1000] [--budget 2]
 * prints one JSON line per size:
 *   {"bench":"logp","size":m,"rtt_us":..,"os_us":..,"or_us":..,"g_us":..,"L_us":..,
 *    "ci":..,"reps":..,"n_gap":..,"library":"<MPI_Get_library_version's first line>"}
 * after the start line. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>

#include "bench_util.h"

#define MAX_SIZES 64
#define MAX_REPS 100000

static int rank;
static char* buf;
static double ci_target = 0.05, budget = 2.0;
static int min_reps = 10, max_reps = 1000;

/* Relative half-width of the distribution-free 95% interval of the median of v[0..n)
 * (order statistics n/2 -+ 0.98 sqrt(n)): robust to the heavy tails of timings. */
static double rel_ci(const double* v, int n) {
  if (n < 6) return INFINITY;
  double* w = malloc(sizeof(double) * (size_t)n);
  memcpy(w, v, sizeof(double) * (size_t)n);
  qsort(w, (size_t)n, sizeof(double), cmp_double);
  double h = 0.98 * sqrt((double)n);
  int lo = (int)floor(n / 2.0 - h), hi = (int)ceil(n / 2.0 + h);
  if (lo < 0) lo = 0;
  if (hi > n - 1) hi = n - 1;
  double med = n % 2 ? w[n / 2] : 0.5 * (w[n / 2 - 1] + w[n / 2]);
  double r = med > 0 ? (w[hi] - w[lo]) / (2 * med) : 0;
  free(w);
  return r;
}

static double median(double* v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Rank 0 decides when to stop; both ranks follow. */
static int keep_going(const double* v, int n, double t0) {
  int go = 1;
  if (rank == 0) {
    if (n >= max_reps || n >= MAX_REPS) go = 0;
    else if (n >= min_reps && (rel_ci(v, n) <= ci_target || MPI_Wtime() - t0 > budget)) go = 0;
  }
  MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return go;
}

static double spin_until(double t) {
  volatile double x = 0;
  while (MPI_Wtime() < t) x += 1;
  return x;
}

/* The time spent inside MPI completing *r: MPI_Test polled, a short spin between polls. */
static double cpu_to_complete(MPI_Request* r, double t_start_call) {
  double in_mpi = MPI_Wtime() - t_start_call;
  int done = 0;
  for (;;) {
    double t = MPI_Wtime();
    MPI_Test(r, &done, MPI_STATUS_IGNORE);
    in_mpi += MPI_Wtime() - t;
    if (done) return in_mpi;
    spin_until(MPI_Wtime() + 2e-6);
  }
}

typedef struct {
  double med, ci;
  int reps;
} Est;

static double* samples;

static Est finish(int n) {
  Est e;
  e.ci = rel_ci(samples, n);
  e.reps = n;
  e.med = median(samples, n);
  return e;
}

static Est measure_rtt(size_t m) {
  int n = 0;
  double t0 = MPI_Wtime();
  do {
    MPI_Barrier(MPI_COMM_WORLD);
    double t = MPI_Wtime();
    if (rank == 0) {
      MPI_Send(buf, (int)m, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
      MPI_Recv(buf, (int)m, MPI_BYTE, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(buf, (int)m, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf, (int)m, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
    }
    samples[n++] = MPI_Wtime() - t;
  } while (keep_going(samples, n, t0));
  return finish(n);
}

static Est measure_os(size_t m) {
  int n = 0;
  double t0 = MPI_Wtime();
  do {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      MPI_Request r;
      double t = MPI_Wtime();
      MPI_Isend(buf, (int)m, MPI_BYTE, 1, 2, MPI_COMM_WORLD, &r);
      samples[n] = cpu_to_complete(&r, t);
      MPI_Recv(NULL, 0, MPI_BYTE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(buf, (int)m, MPI_BYTE, 0, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(NULL, 0, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
    }
    ++n;
  } while (keep_going(samples, n, t0));
  return finish(n);
}

static Est measure_or(size_t m, double rtt) {
  int n = 0;
  double t0 = MPI_Wtime();
  do {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      /* The message is sent at about the barrier's end: after two round trips it is here. */
      spin_until(MPI_Wtime() + 2 * rtt + 5e-6);
      MPI_Request r;
      double t = MPI_Wtime();
      MPI_Irecv(buf, (int)m, MPI_BYTE, 1, 3, MPI_COMM_WORLD, &r);
      samples[n] = cpu_to_complete(&r, t);
    } else {
      MPI_Send(buf, (int)m, MPI_BYTE, 0, 3, MPI_COMM_WORLD);
    }
    ++n;
  } while (keep_going(samples, n, t0));
  return finish(n);
}

/* Time of k back-to-back Isends from 0 into receives 1 pre-posted, until 1 acknowledges. */
static double stream(size_t m, int k, MPI_Request* reqs) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t = 0;
  if (rank == 1) {
    for (int i = 0; i < k; ++i) MPI_Irecv(buf, (int)m, MPI_BYTE, 0, 4, MPI_COMM_WORLD, &reqs[i]);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Waitall(k, reqs, MPI_STATUSES_IGNORE);
    MPI_Send(NULL, 0, MPI_BYTE, 0, 5, MPI_COMM_WORLD);
  } else {
    MPI_Barrier(MPI_COMM_WORLD);
    t = MPI_Wtime();
    for (int i = 0; i < k; ++i) MPI_Isend(buf, (int)m, MPI_BYTE, 1, 4, MPI_COMM_WORLD, &reqs[i]);
    MPI_Waitall(k, reqs, MPI_STATUSES_IGNORE);
    MPI_Recv(NULL, 0, MPI_BYTE, 1, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    t = MPI_Wtime() - t;
  }
  return t;
}

static Est measure_g(size_t m, int* n_used, size_t max_stream_bytes, int max_stream) {
  static MPI_Request reqs[4096];
  int k = 4;
  double prev = -1;
  Est e = {0, INFINITY, 0};
  for (;;) {
    /* per-message gap estimate from k and 2k messages, repeated to the interval */
    int n = 0;
    double t0 = MPI_Wtime();
    do {
      double a = stream(m, k, reqs), b = stream(m, 2 * k, reqs);
      samples[n++] = (b - a) / k;
    } while (keep_going(samples, n, t0));
    e = finish(n);
    int stop = 0;
    if (rank == 0) {
      if (prev > 0 && fabs(e.med - prev) <= ci_target * fmax(e.med, prev)) stop = 1;
      if ((size_t)(4 * k) * (m ? m : 1) > max_stream_bytes || 4 * k > max_stream) stop = 1;
    }
    MPI_Bcast(&stop, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (stop) break;
    prev = e.med;
    k *= 2;
  }
  *n_used = k;
  if (e.med < 0) e.med = 0;
  return e;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  size_t sizes[MAX_SIZES];
  int nsizes = 0;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = v != NULL;
    if (!strcmp(a, "-s") && v) ok = (nsizes = parse_list(v, sizes, MAX_SIZES)) > 0;
    else if (!strcmp(a, "--ci") && v) ok = (ci_target = atof(v)) > 0;
    else if (!strcmp(a, "--min-reps") && v) ok = (min_reps = atoi(v)) >= 2;
    else if (!strcmp(a, "--max-reps") && v) ok = (max_reps = atoi(v)) >= 2 && max_reps <= MAX_REPS;
    else if (!strcmp(a, "--budget") && v) ok = (budget = atof(v)) > 0;
    else ok = 0;
    if (!ok) {
      if (rank == 0)
        fprintf(stderr, "logp: bad argument `%s`; usage: logp -s SIZES [--ci F] [--min-reps N] [--max-reps N] [--budget S]\n", a);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    ++i;
  }
  if (nranks != 2 || nsizes == 0) {
    if (rank == 0) fprintf(stderr, "logp: needs exactly 2 ranks (has %d) and -s SIZES\n", nranks);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (min_reps > max_reps) min_reps = max_reps;
  size_t maxm = 1;
  for (int i = 0; i < nsizes; ++i)
    if (sizes[i] > maxm) maxm = sizes[i];
  if (maxm > (size_t)1 << 30) {
    if (rank == 0) fprintf(stderr, "logp: sizes up to 1 GiB\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  buf = page_alloc(maxm);
  memset(buf, 1, maxm);
  samples = malloc(sizeof(double) * MAX_REPS);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(lib, &len);
  for (int i = 0; i < len; ++i)
    if (lib[i] == '\n') lib[i] = 0;
    else if (lib[i] == '"' || lib[i] == '\\' || (unsigned char)lib[i] < 32) lib[i] = ' ';
  announce_start("logp", rank, nranks);
  /* streams of at most 64 MiB and 1024 messages */
  const size_t max_stream_bytes = (size_t)64 << 20;
  for (int i = 0; i < nsizes; ++i) {
    size_t m = sizes[i];
    Est rtt = measure_rtt(m);
    double r = rtt.med;
    MPI_Bcast(&r, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    Est os = measure_os(m);
    Est orr = measure_or(m, r);
    int n_gap = 0;
    Est g = measure_g(m, &n_gap, max_stream_bytes, 1024);
    if (rank == 0) {
      double L = rtt.med / 2 - os.med - g.med - orr.med;
      if (L < 0) L = 0;
      double ci = fmax(fmax(rtt.ci, os.ci), fmax(orr.ci, g.ci));
      int reps = rtt.reps + os.reps + orr.reps + g.reps;
      printf("{\"bench\":\"logp\",\"size\":%zu,\"rtt_us\":%.4f,\"os_us\":%.4f,\"or_us\":%.4f,\"g_us\":%.4f,"
             "\"L_us\":%.4f,\"ci\":%.4f,\"reps\":%d,\"n_gap\":%d,\"library\":\"%s\"}\n",
             m, rtt.med * 1e6, os.med * 1e6, orr.med * 1e6, g.med * 1e6, L * 1e6, isfinite(ci) ? ci : 99.0, reps,
             n_gap, lib);
      fflush(stdout);
    }
  }
  free(samples);
  MPI_Finalize();
  return 0;
}
