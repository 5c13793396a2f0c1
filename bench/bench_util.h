/* Helpers shared by the plain MPI benchmark programs (pingpong.c, overlap.c): size
 * arguments, quantiles, page-aligned buffers, the start line. No tandem code. */
#ifndef TANDEM_BENCH_UTIL_H
#define TANDEM_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Once every rank has started (after MPI_Init, arguments accepted), rank 0 prints
 * {"bench":"<bench>","started":true,"ranks":N} and flushes it: `tandem bench` stops and
 * launches again a run that prints nothing for --launch-timeout seconds (a launch that
 * hung). Needs <mpi.h> included before this header. */
static void announce_start(const char* bench, int rank, int nranks) {
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    printf("{\"bench\":\"%s\",\"started\":true,\"ranks\":%d}\n", bench, nranks);
    fflush(stdout);
  }
}

/* A size such as 4096, 64K, 1M or 2GB (powers of 1024); 0 on success. */
static int parse_size(const char* s, size_t* out) {
  char* end = NULL;
  double v = strtod(s, &end);
  if (end == s || v < 0) return -1;
  switch (*end) {
    case 'k': case 'K': v *= 1024.0; ++end; break;
    case 'm': case 'M': v *= 1024.0 * 1024.0; ++end; break;
    case 'g': case 'G': v *= 1024.0 * 1024.0 * 1024.0; ++end; break;
    default: break;
  }
  if (*end == 'B' || *end == 'b') ++end;
  if (*end != '\0') return -1;
  *out = (size_t)v;
  return 0;
}

/* A comma-separated list of sizes into out[0..max); the count, or -1. */
static int parse_list(const char* s, size_t* out, int max) {
  int n = 0;
  char* copy = strdup(s);
  for (char* tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
    if (n == max || parse_size(tok, &out[n]) != 0) {
      free(copy);
      return -1;
    }
    ++n;
  }
  free(copy);
  return n;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* Quantile q of the sorted array v[0..n), linear interpolation. */
static double quantile(const double* v, int n, double q) {
  if (n <= 0) return 0.0;
  double pos = q * (n - 1);
  int i = (int)pos;
  if (i + 1 >= n) return v[n - 1];
  return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

/* A page-aligned buffer with every page faulted in before timing. */
static void* page_alloc(size_t size) {
  void* p = NULL;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t len = size ? (size + page - 1) / page * page : page;
  if (posix_memalign(&p, page, len) != 0) return NULL;
  memset(p, 0x5a, len); /* fault every page in before timing */
  return p;
}

#endif
