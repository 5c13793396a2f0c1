/* The compute phase of the overlap benchmarks (overlap.c, coll_bench.cpp): a busy loop
 * of register-only integer work calibrated at start-up. No tandem code.
 *
 * compute(t) is CPU work, not a sleep nor a clock-polling spin, and never touches
 * memory, so time taken from it by other threads (a progress thread, other processes)
 * makes it longer, as it would a real computation. Needs MPI_Wtime (after MPI_Init). */
#ifndef TANDEM_BENCH_COMPUTE_H
#define TANDEM_BENCH_COMPUTE_H

#include <mpi.h>
#include <stdint.h>

static uint64_t bench_compute_sink;
static double bench_loops_per_us = 0;

/* A serial chain of xorshift steps: pure register work, no memory traffic, and the
 * empty asm keeps the compiler from collapsing or vectorising the loop. */
static inline void bench_spin(uint64_t n) {
  uint64_t x = 0x9e3779b97f4a7c15ull ^ n;
  for (uint64_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    __asm__ volatile("" : "+r"(x));
  }
  bench_compute_sink += x;
}

/* The loop rate of an idle core: best of 30 short timed runs of about 1 ms (time
 * slices lost to other processes only ever make a run slower). */
static inline void bench_calibrate(void) {
  uint64_t n = 1000;
  for (;;) { /* grow the probe to about 1 ms */
    double t0 = MPI_Wtime();
    bench_spin(n);
    double dt = MPI_Wtime() - t0;
    if (dt > 1e-3 || n > ((uint64_t)1 << 40)) break;
    n *= 2;
  }
  double best = 1e30;
  for (int k = 0; k < 30; ++k) {
    double t0 = MPI_Wtime();
    bench_spin(n);
    double dt = MPI_Wtime() - t0;
    if (dt < best) best = dt;
  }
  bench_loops_per_us = (double)n / (best * 1e6);
}

/* About `us` microseconds of work on an idle core (bench_calibrate() first). */
static inline void bench_compute(double us) {
  if (us > 0) bench_spin((uint64_t)(us * bench_loops_per_us));
}

#endif
