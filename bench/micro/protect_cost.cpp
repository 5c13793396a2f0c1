// Cost of protecting and releasing a buffer, per size: what a deferred send or receive
// adds to a message, to compare with the message's own time (docs/overlap.md uses this
// to choose TANDEM_THRESHOLD). Google Benchmark; no MPI.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstring>

#include "protect/tracker.hpp"

using tandem::protect::Tracker;

namespace {

Tracker& tracker() {
  static bool ready = [] {
    const char* err = nullptr;
    auto o = tandem::protect::tracker_options(tandem::Config{});
    o.max_ops = 64;
    return Tracker::instance().init(o, &err);
  }();
  (void)ready;
  return Tracker::instance();
}

void BM_SendProtection(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  auto* buf = static_cast<char*>(std::malloc(n + 64)) + 8;  // a heap buffer, not page aligned
  std::memset(buf, 1, n);
  auto& t = tracker();
  for (auto _ : state) {
    int s = t.begin_send(buf, n);
    t.end_send(s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
  std::free(buf - 8);
}

void BM_RecvProtectionAndSwap(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  auto* buf = static_cast<char*>(std::malloc(n + 64)) + 8;
  std::memset(buf, 1, n);
  auto& t = tracker();
  for (auto _ : state) {
    void* dst = nullptr;
    int s = t.begin_recv(buf, n, &dst);
    static_cast<char*>(dst)[0] = 2;  // the transport writes the bounce pages
    t.end_recv(s, n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
  std::free(buf - 8);
}

void BM_Memcpy(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  auto* a = static_cast<char*>(std::malloc(n));
  auto* b = static_cast<char*>(std::malloc(n));
  std::memset(a, 1, n);
  std::memset(b, 2, n);
  for (auto _ : state) {
    std::memcpy(b, a, n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
  std::free(a);
  std::free(b);
}

}  // namespace

BENCHMARK(BM_SendProtection)->RangeMultiplier(4)->Range(4 << 10, 64 << 20)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK(BM_RecvProtectionAndSwap)->RangeMultiplier(4)->Range(4 << 10, 64 << 20)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK(BM_Memcpy)->RangeMultiplier(4)->Range(4 << 10, 64 << 20)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK_MAIN();
