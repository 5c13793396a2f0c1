// coll_bench: times one collective, tandem's algorithms (C++ API, include/tandem/coll.hpp)
// against the MPI library's own, over a range of message sizes; or, in overlap mode, the
// MPI library's blocking collective followed by compute and a touch of the buffers.
//
// Driven by `tandem bench coll` (docs/benchmarks.md), but runs on its own:
//   mpirun -np 4 coll_bench_openmpi -c allreduce -a all -b 8 -e 16M -f 2
//
// Message size: one rank's contribution in bytes, as in tandem's rules files: count x
// element size, where count is the MPI call's count (for allgather, alltoall, gather,
// scatter and reduce_scatter_block one rank's block). Reductions (reduce, allreduce,
// reduce_scatter_block) use MPI_FLOAT and MPI_SUM, so their sizes must be multiples of 4;
// the other collectives use MPI_BYTE. Barrier has one point, size 0.
//
// Timing: per iteration, MPI_Barrier, then the call is timed on every rank; the
// iteration's time is the slowest rank's (maximum over ranks, reduced after the loop).
// The variants of a size (each tandem algorithm, the MPI library's collective) are
// interleaved iteration by iteration, starting with a different one each time, so drift
// of a shared machine weighs on all alike. Iteration counts: one probe call of each
// variant; warm-up of at most -w rounds and 20% of the budget; then
// clamp(0.8 * budget * variants / sum of the variants' median warm-up times, -m, -n)
// rounds, where the budget -t is per size and variant.
//
// Verification (unless --no-verify): once per size and variant, before timing, on inputs
// unique per rank and element (small integers as floats, so every sum is exact in any
// order): the result must equal, byte for byte, the collective's definition computed
// locally (which is what the MPI library's own gives). Mismatches are reported per line
// (`verified`, `mismatches`: elements summed over ranks) and make the exit status 3.
//
// Overlap mode (--overlap US[,US...]): only the MPI library's blocking call, plain MPI
// (run it under `tandem run` with TANDEM_COLL_OVERLAP=1 to have it overlapped):
//   MPI_Barrier; t0; MPI_<Coll>(...); compute(US); read the last received byte; write the
//   first sent byte (its own value); t = slowest rank's time since t0.
// One compute time for every size, or one per size (in the order of the sizes). Each line
// also gives compute_measured_us (one compute(US) on rank 0 at start-up) and
// compute_alone_us (compute(US) on every rank at once, slowest rank, median of 5): where
// ranks share cores the latter exceeds US, and no overlap can beat it.
//
// Output: one JSON object per line, per size and variant, from rank 0 only, on standard
// output; diagnostics on standard error.
#include <mpi.h>

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_compute.h"
#include "bench_util.h"
#include "tandem/coll.hpp"

namespace {

enum Coll { Bcast, Reduce, Allreduce, Allgather, Alltoall, Gather, Scatter, ReduceScatterBlock, Barrier, NColl };
const char* const kCollNames[NColl] = {"bcast",   "reduce",  "allreduce", "allgather", "alltoall",
                                       "gather",  "scatter", "reduce_scatter_block", "barrier"};

bool reduces(Coll c) { return c == Reduce || c == Allreduce || c == ReduceScatterBlock; }

// nccl-tests' conventions: "size" of a call (algbw = size / time) ...
std::uint64_t total_bytes(Coll c, std::uint64_t n, int p) {
  switch (c) {
    case Bcast: case Reduce: case Allreduce: return n;
    case Barrier: return 0;
    default: return n * static_cast<std::uint64_t>(p);  // the whole gathered / scattered / exchanged buffer
  }
}
// ... and the factor from algbw to bus bandwidth (busbw = algbw * factor): the speed a
// link must sustain for an optimal algorithm to take that time.
double busbw_factor(Coll c, int p) {
  double q = static_cast<double>(p);
  switch (c) {
    case Allreduce: return 2 * (q - 1) / q;
    case Bcast: case Reduce: return 1;
    case Barrier: return 0;
    default: return (q - 1) / q;  // allgather, alltoall, gather, scatter, reduce_scatter_block
  }
}

int rank_ = 0, size_ = 1;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "coll_bench (rank %d): %s\n", rank_, what);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

// ---- one size's buffers, inputs and expected results --------------------------------------

struct Point {
  Coll coll = Allreduce;
  MPI_Datatype type = MPI_FLOAT;
  int es = 4;          // element size
  int count = 0;       // the MPI call's count
  int root = 0;
  std::size_t n = 0;   // count * es
  char* send = nullptr;
  char* recv = nullptr;  // bcast: the one buffer
  std::size_t send_bytes = 0, recv_bytes = 0;
  // This rank's regions the collective reads (`out`) and defines (`in`): touched in overlap
  // mode, compared by the verification.
  char* out = nullptr;
  std::size_t out_bytes = 0;
  char* in = nullptr;
  std::size_t in_bytes = 0;
  std::vector<char> expect;  // in_bytes
};

// Input element j of rank r: small integers (exact float sums) unique per rank.
float fval(int r, std::size_t j) { return static_cast<float>(static_cast<long>((j * 131 + static_cast<std::size_t>(r) * 7919) % 1001) - 500); }
unsigned char bval(int r, std::size_t j) {
  return static_cast<unsigned char>(j * 131 + static_cast<std::size_t>(r) * 97 + (j >> 8) * 7 + 1);
}

// Fills `dst` with rank r's input elements [first, first + elems).
void fill(const Point& pt, char* dst, int r, std::size_t first, std::size_t elems) {
  if (pt.es == 4) {
    for (std::size_t j = 0; j < elems; ++j) {
      float v = fval(r, first + j);
      std::memcpy(dst + j * 4, &v, 4);
    }
  } else {
    for (std::size_t j = 0; j < elems; ++j) dst[j] = static_cast<char>(bval(r, first + j));
  }
}

// dst = sum over ranks of their input elements [first, first + elems) (floats).
void fill_sum(const Point& pt, char* dst, std::size_t first, std::size_t elems) {
  for (std::size_t j = 0; j < elems; ++j) {
    float s = 0;
    for (int r = 0; r < size_; ++r) s += fval(r, first + j);
    std::memcpy(dst + j * static_cast<std::size_t>(pt.es), &s, 4);
  }
}

void setup(Point& pt, Coll c, std::size_t bytes, int root) {
  pt.coll = c;
  pt.root = root;
  pt.type = reduces(c) ? MPI_FLOAT : MPI_BYTE;
  pt.es = reduces(c) ? 4 : 1;
  pt.count = static_cast<int>(bytes / static_cast<std::size_t>(pt.es));
  pt.n = bytes;
  const std::size_t p = static_cast<std::size_t>(size_), n = bytes, cnt = static_cast<std::size_t>(pt.count);
  const bool is_root = rank_ == root;
  std::size_t sb = 0, rb = 0;
  switch (c) {
    case Bcast: rb = n; break;
    case Reduce: case Allreduce: sb = n, rb = n; break;
    case Allgather: case Gather: sb = n, rb = n * p; break;
    case Alltoall: sb = n * p, rb = n * p; break;
    case Scatter: case ReduceScatterBlock: sb = n * p, rb = n; break;
    default: break;
  }
  pt.send_bytes = sb, pt.recv_bytes = rb;
  pt.send = static_cast<char*>(page_alloc(sb));
  pt.recv = static_cast<char*>(page_alloc(rb));
  if (!pt.send || !pt.recv) die("cannot allocate the buffers");
  // Inputs.
  switch (c) {
    case Bcast: if (is_root) fill(pt, pt.recv, rank_, 0, cnt); break;
    case Reduce: case Allreduce: case Allgather: case Gather: fill(pt, pt.send, rank_, 0, cnt); break;
    case Alltoall: case ReduceScatterBlock: fill(pt, pt.send, rank_, 0, cnt * p); break;
    case Scatter: if (is_root) fill(pt, pt.send, rank_, 0, cnt * p); break;
    default: break;
  }
  // What this rank sends (out) and receives (in).
  switch (c) {
    case Bcast:
      if (is_root) pt.out = pt.recv, pt.out_bytes = n;
      else pt.in = pt.recv, pt.in_bytes = n;
      break;
    case Reduce: case Gather:
      pt.out = pt.send, pt.out_bytes = n;
      if (is_root) pt.in = pt.recv, pt.in_bytes = rb;
      break;
    case Scatter:
      if (is_root) pt.out = pt.send, pt.out_bytes = sb;
      pt.in = pt.recv, pt.in_bytes = rb;
      break;
    case Barrier: break;
    default: pt.out = pt.send, pt.out_bytes = sb, pt.in = pt.recv, pt.in_bytes = rb; break;
  }
  // The collective's definition, for this rank's received region.
  pt.expect.assign(pt.in_bytes, 0);
  char* e = pt.expect.data();
  switch (c) {
    case Bcast: if (!is_root) fill(pt, e, root, 0, cnt); break;
    case Reduce: if (is_root) fill_sum(pt, e, 0, cnt); break;
    case Allreduce: fill_sum(pt, e, 0, cnt); break;
    case Allgather: case Gather:
      if (pt.in_bytes)
        for (int b = 0; b < size_; ++b) fill(pt, e + static_cast<std::size_t>(b) * n, b, 0, cnt);
      break;
    case Alltoall:
      for (int b = 0; b < size_; ++b) fill(pt, e + static_cast<std::size_t>(b) * n, b, static_cast<std::size_t>(rank_) * cnt, cnt);
      break;
    case Scatter: fill(pt, e, root, static_cast<std::size_t>(rank_) * cnt, cnt); break;
    case ReduceScatterBlock: fill_sum(pt, e, static_cast<std::size_t>(rank_) * cnt, cnt); break;
    default: break;
  }
}

void release(Point& pt) {
  std::free(pt.send);
  std::free(pt.recv);
  pt.send = pt.recv = nullptr;
}

// ---- the variants ---------------------------------------------------------------------------

struct Variant {
  std::string label;  // "mpi", or the tandem algorithm as given: name[:segsize[:fanout]]
  bool mpi = false;
  tandem::CollOptions opt;
  std::string ran;    // the algorithm tandem ran (CollRequest::algorithm())
  std::string error;  // the algorithm refused this call (tandem::CollError)
  bool quiet = false; // made by `all` with --segsizes: a refusal (no segments) is not reported
};

int call_mpi(const Point& pt) {
  MPI_Comm w = MPI_COMM_WORLD;
  const int n = pt.count;
  switch (pt.coll) {
    case Bcast: return MPI_Bcast(pt.recv, n, pt.type, pt.root, w);
    case Reduce: return MPI_Reduce(pt.send, pt.recv, n, pt.type, MPI_SUM, pt.root, w);
    case Allreduce: return MPI_Allreduce(pt.send, pt.recv, n, pt.type, MPI_SUM, w);
    case Allgather: return MPI_Allgather(pt.send, n, pt.type, pt.recv, n, pt.type, w);
    case Alltoall: return MPI_Alltoall(pt.send, n, pt.type, pt.recv, n, pt.type, w);
    case Gather: return MPI_Gather(pt.send, n, pt.type, pt.recv, n, pt.type, pt.root, w);
    case Scatter: return MPI_Scatter(pt.send, n, pt.type, pt.recv, n, pt.type, pt.root, w);
    case ReduceScatterBlock: return MPI_Reduce_scatter_block(pt.send, pt.recv, n, pt.type, MPI_SUM, w);
    default: return MPI_Barrier(w);
  }
}

tandem::CollRequest start_tandem(const Point& pt, const tandem::CollOptions& o) {
  MPI_Comm w = MPI_COMM_WORLD;
  const int n = pt.count;
  switch (pt.coll) {
    case Bcast: return tandem::ibcast(pt.recv, n, pt.type, pt.root, w, o);
    case Reduce: return tandem::ireduce(pt.send, pt.recv, n, pt.type, MPI_SUM, pt.root, w, o);
    case Allreduce: return tandem::iallreduce(pt.send, pt.recv, n, pt.type, MPI_SUM, w, o);
    case Allgather: return tandem::iallgather(pt.send, pt.recv, n, pt.type, w, o);
    case Alltoall: return tandem::ialltoall(pt.send, pt.recv, n, pt.type, w, o);
    case Gather: return tandem::igather(pt.send, pt.recv, n, pt.type, pt.root, w, o);
    case Scatter: return tandem::iscatter(pt.send, pt.recv, n, pt.type, pt.root, w, o);
    case ReduceScatterBlock: return tandem::ireduce_scatter_block(pt.send, pt.recv, n, pt.type, MPI_SUM, w, o);
    default: return tandem::ibarrier(w, o);
  }
}

volatile char touch_sink;

// One call of variant v, timed on this rank (seconds). Overlap mode: then compute and
// touch the buffers, as a program would use the result and reuse its send buffer.
double timed(const Point& pt, const Variant& v, double compute_us) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  int err;
  if (v.mpi) {
    err = call_mpi(pt);
  } else {
    tandem::CollRequest req = start_tandem(pt, v.opt);
    err = req.wait();
  }
  if (err != MPI_SUCCESS) die("the collective failed");
  if (compute_us >= 0) {
    bench_compute(compute_us);
    if (pt.in_bytes) touch_sink = static_cast<volatile char*>(pt.in)[pt.in_bytes - 1];
    if (pt.out_bytes) {
      volatile char* o = pt.out;
      o[0] = o[0];
    }
  }
  return MPI_Wtime() - t0;
}

// The first call of a variant at a size: catches an algorithm's refusal and, when asked,
// checks the result. Returns the mismatched elements summed over ranks (0 when not verified).
long first_call(Point& pt, Variant& v, bool verify) {
  if (verify && pt.in_bytes) std::memset(pt.in, 0x5a, pt.in_bytes);
  int err = MPI_SUCCESS;
  if (v.mpi) {
    err = call_mpi(pt);
  } else {
    try {
      tandem::CollRequest req = start_tandem(pt, v.opt);
      v.ran = req.algorithm();
      err = req.wait();
    } catch (const tandem::CollError& e) {
      v.error = e.what();  // the same on every rank: the same call everywhere
    }
  }
  if (err != MPI_SUCCESS) die("the collective failed");
  long bad = 0;
  if (verify && v.error.empty() && pt.in_bytes && std::memcmp(pt.in, pt.expect.data(), pt.in_bytes) != 0) {
    const std::size_t es = static_cast<std::size_t>(pt.es);
    std::size_t first_bad = SIZE_MAX;
    for (std::size_t j = 0; j < pt.in_bytes / es; ++j)
      if (std::memcmp(pt.in + j * es, pt.expect.data() + j * es, es) != 0) {
        ++bad;
        if (first_bad == SIZE_MAX) first_bad = j;
      }
    std::fprintf(stderr, "coll_bench (rank %d): %s %s, %zu bytes: %ld wrong elements, the first at %zu\n", rank_,
                 kCollNames[pt.coll], v.label.c_str(), pt.n, bad, first_bad);
  }
  long total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

// ---- output ---------------------------------------------------------------------------------

void library_name(char* out, std::size_t len) {
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int n = 0;
  MPI_Get_library_version(version, &n);
  // First line, up to a comma, as a plain JSON-safe string ("MPICH Version:\t4.0" has a tab).
  std::size_t j = 0;
  for (int i = 0; i < n && version[i] && version[i] != '\n' && version[i] != ',' && j + 1 < len; ++i) {
    char c = version[i];
    if (c == '"' || c == '\\') continue;
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    if (c == ' ' && (j == 0 || out[j - 1] == ' ')) continue;
    out[j++] = c;
  }
  while (j > 0 && out[j - 1] == ' ') --j;
  out[j] = '\0';
}

std::string json_string(const std::string& s) {
  std::string r = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\', r += c;
    else if (static_cast<unsigned char>(c) < 0x20) r += ' ';
    else r += c;
  }
  return r + "\"";
}

struct Common {
  std::string lib, thread;
  bool overlap = false;
};

// One line: the point's description, then `rest` (already JSON members, leading comma).
void print_line(const Common& cm, const Point& pt, const Variant& v, const std::string& rest) {
  std::printf("{\"bench\":\"coll\",\"mode\":\"%s\",\"coll\":\"%s\",\"variant\":\"%s\",\"algorithm\":%s,"
              "\"algorithm_run\":%s,\"mpi_library\":%s,\"thread\":\"%s\",\"ranks\":%d,\"root\":%d,\"size\":%zu,"
              "\"count\":%d,\"datatype\":\"%s\",\"total_bytes\":%" PRIu64 ",\"busbw_factor\":%.6g%s}\n",
              cm.overlap ? "overlap" : "time", kCollNames[pt.coll], v.mpi ? "mpi" : "tandem",
              json_string(v.label).c_str(), json_string(v.mpi ? "mpi" : v.ran).c_str(), json_string(cm.lib).c_str(),
              cm.thread.c_str(), size_, pt.root, pt.n, pt.count, pt.es == 4 ? "float" : "byte",
              total_bytes(pt.coll, pt.n, size_), busbw_factor(pt.coll, size_), rest.c_str());
  std::fflush(stdout);
}

std::string stats_json(const Point& pt, std::vector<double> t, long warm) {
  std::qsort(t.data(), t.size(), sizeof(double), cmp_double);
  const int n = static_cast<int>(t.size());
  double sum = 0;
  for (double x : t) sum += x;
  double med = quantile(t.data(), n, 0.5);
  double algbw = med > 0 ? static_cast<double>(total_bytes(pt.coll, pt.n, size_)) / med / 1e9 : 0;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                ",\"reps\":%d,\"warmup\":%ld,\"median_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f,\"mean_us\":%.3f,"
                "\"p25_us\":%.3f,\"p75_us\":%.3f,\"algbw_GBps\":%.6g,\"busbw_GBps\":%.6g",
                n, warm, med * 1e6, t[0] * 1e6, t[static_cast<std::size_t>(n - 1)] * 1e6, sum / n * 1e6,
                quantile(t.data(), n, 0.25) * 1e6, quantile(t.data(), n, 0.75) * 1e6, algbw,
                algbw * busbw_factor(pt.coll, size_));
  return buf;
}

void usage(FILE* f) {
  std::fprintf(
      f,
      "usage: coll_bench [-c COLL] [-a ALG[,ALG...]|all] [--segsizes LIST] [--only-mpi|--no-mpi]\n"
      "                  [-b SIZE] [-e SIZE] [-f FACTOR] [-s LIST] [-n ITERS] [-m MIN_ITERS] [-w WARMUP]\n"
      "                  [-t SECONDS] [-r ROOT] [--no-verify] [--thread single|multiple]\n"
      "                  [--overlap US[,US...]] [--json]\n"
      "  -c COLL        bcast reduce allreduce allgather alltoall gather scatter reduce_scatter_block barrier\n"
      "                 (default allreduce)\n"
      "  -a LIST        tandem algorithms, name[:segsize[:fanout]], or all (default all)\n"
      "  --segsizes L   with `all`: also run every segmented algorithm at these segment sizes\n"
      "  --only-mpi     time only the MPI library's collective; --no-mpi: only tandem's\n"
      "  -b/-e/-f       sizes from -b to -e, times -f (default 8, 16M, 2); -s: explicit list\n"
      "  -n/-m/-w/-t    most/fewest timed iterations (500/5), most warm-up rounds (10), budget\n"
      "                 in seconds per size and variant (1)\n"
      "  -r ROOT        root of bcast, reduce, gather, scatter (default 0)\n"
      "  --thread T     MPI thread level asked for (default single; multiple: tandem's progress thread runs too; single:\n"
      "                 tandem progresses in wait() only)\n"
      "  --overlap US   overlap mode: MPI's blocking call, compute US microseconds (one value, or\n"
      "                 one per size), touch the buffers\n");
}

bool split_list(const char* s, std::vector<std::string>& out) {
  std::string cur;
  for (const char* p = s;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (cur.empty()) return false;
      out.push_back(cur);
      cur.clear();
      if (*p == '\0') return true;
    } else {
      cur += *p;
    }
  }
}

// name[:segsize[:fanout]] into options; false when malformed.
bool parse_variant(const std::string& text, Variant& v) {
  v.label = text;
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t c = text.find(':', start);
    parts.push_back(text.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  if (parts.size() > 3 || parts[0].empty()) return false;
  v.opt.algorithm = parts[0];
  if (parts.size() > 1) {
    std::size_t seg = 0;
    if (parse_size(parts[1].c_str(), &seg) != 0) return false;
    v.opt.segsize = seg;
  }
  if (parts.size() > 2) {
    char* end = nullptr;
    long f = std::strtol(parts[2].c_str(), &end, 10);
    if (*end || f < 0 || f > 1024) return false;
    v.opt.fanout = static_cast<int>(f);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string coll_name = "allreduce", thread = "single";
  std::vector<std::string> algs{"all"}, segsizes;
  bool with_mpi = true, with_tandem = true, verify = true;
  std::size_t first = 8, last = std::size_t(16) << 20, factor = 2;
  std::vector<std::size_t> sizes, overlap;
  bool overlap_mode = false;
  long max_iters = 500, min_iters = 5, max_warmup = 10;
  double budget = 1.0;
  int root = 0;
  std::string bad;

  // The thread level is an option: look for it before MPI_Init.
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--thread")) thread = argv[i + 1];
  int provided = MPI_THREAD_SINGLE;
  if (thread == "multiple") MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  else MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (thread != "single" && thread != "multiple") bad = "--thread takes single or multiple";
  if (thread == "multiple" && provided < MPI_THREAD_MULTIPLE) {
    if (rank_ == 0) std::fprintf(stderr, "coll_bench: MPI_THREAD_MULTIPLE not granted (got %d)\n", provided);
    thread = "granted-" + std::to_string(provided);
  }

  for (int i = 1; i < argc && bad.empty(); ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--json") continue;
    if (a == "-h" || a == "--help") {
      if (rank_ == 0) usage(stdout);
      MPI_Finalize();
      return 0;
    }
    if (a == "--only-mpi") { with_tandem = false, with_mpi = true; continue; }
    if (a == "--no-mpi") { with_mpi = false; continue; }
    if (a == "--mpi") { with_mpi = true; continue; }
    if (a == "--no-verify") { verify = false; continue; }
    if (!v) { bad = "option " + a + " needs a value"; break; }
    ++i;
    if (a == "-c") coll_name = v;
    else if (a == "-a") { algs.clear(); if (!split_list(v, algs)) bad = "bad -a list"; }
    else if (a == "--segsizes") { segsizes.clear(); if (!split_list(v, segsizes)) bad = "bad --segsizes list"; }
    else if (a == "-b") { if (parse_size(v, &first)) bad = "bad -b"; }
    else if (a == "-e") { if (parse_size(v, &last)) bad = "bad -e"; }
    else if (a == "-f") { if (parse_size(v, &factor) || factor < 2) bad = "bad -f (at least 2)"; }
    else if (a == "-s" || a == "--overlap") {
      std::size_t items[256];
      int cnt = parse_list(v, items, 256);
      if (cnt <= 0) bad = "bad " + a + " list";
      else (a == "-s" ? sizes : overlap).assign(items, items + cnt);
      if (a == "--overlap") overlap_mode = true;
    }
    else if (a == "-n") { max_iters = std::atol(v); if (max_iters < 1) bad = "bad -n"; }
    else if (a == "-m") { min_iters = std::atol(v); if (min_iters < 1) bad = "bad -m"; }
    else if (a == "-w") { max_warmup = std::atol(v); if (max_warmup < 0) bad = "bad -w"; }
    else if (a == "-t") { budget = std::atof(v); if (budget <= 0) bad = "bad -t"; }
    else if (a == "-r") { root = std::atoi(v); if (root < 0 || root >= size_) bad = "root out of range"; }
    else if (a == "--thread") { /* read above */ }
    else bad = "unknown option " + a;
  }
  min_iters = std::min(min_iters, max_iters);

  int coll = -1;
  for (int c = 0; c < NColl; ++c)
    if (coll_name == kCollNames[c]) coll = c;
  if (bad.empty() && coll < 0) bad = "unknown collective " + coll_name;
  const Coll cl = static_cast<Coll>(coll < 0 ? 0 : coll);

  // Sizes.
  if (bad.empty() && cl == Barrier) {
    sizes.assign(1, 0);
  } else if (bad.empty() && sizes.empty()) {
    for (std::size_t s = first; s <= last && sizes.size() < 256; s = s ? s * factor : 1) sizes.push_back(s);
  }
  if (bad.empty() && sizes.empty()) bad = "no sizes";
  for (std::size_t s : sizes) {
    if (!bad.empty()) break;
    if (reduces(cl) && s % 4) bad = "size " + std::to_string(s) + " is not a whole number of floats (4 bytes)";
    if (s > static_cast<std::size_t>(INT_MAX) || (cl != Bcast && cl != Reduce && cl != Allreduce && s * static_cast<std::size_t>(size_) > static_cast<std::size_t>(INT_MAX)))
      bad = "size " + std::to_string(s) + " is too large for one call";
  }
  if (bad.empty() && overlap_mode && overlap.size() != 1 && overlap.size() != sizes.size())
    bad = "--overlap takes one compute time, or one per size (" + std::to_string(sizes.size()) + ")";

  // Variants.
  std::vector<Variant> variants;
  if (bad.empty() && with_tandem && !overlap_mode) {
    std::vector<std::pair<std::string, bool>> names;  // text, quiet
    for (const auto& a : algs) {
      if (a != "all") {
        names.emplace_back(a, false);
        continue;
      }
      std::vector<std::string> all;
      try {
        all = tandem::algorithm_names(kCollNames[cl]);
      } catch (const tandem::CollError& e) {
        bad = e.what();
      }
      for (const auto& n : all) {
        names.emplace_back(n, false);
        for (const auto& s : segsizes) names.emplace_back(n + ":" + s, true);  // refused if not segmented
      }
    }
    for (const auto& [n, quiet] : names) {
      Variant v;
      if (!parse_variant(n, v)) bad = "bad algorithm `" + n + "` (name[:segsize[:fanout]])";
      v.quiet = quiet;
      variants.push_back(v);
    }
  }
  if (bad.empty() && (with_mpi || overlap_mode)) {
    Variant v;
    v.label = "mpi";
    v.mpi = true;
    variants.push_back(v);
  }
  if (bad.empty() && variants.empty()) bad = "nothing to time (--no-mpi without tandem algorithms)";
  if (!bad.empty() || size_ < 2) {
    if (rank_ == 0) {
      std::fprintf(stderr, "coll_bench: %s\n", bad.empty() ? "needs at least 2 ranks" : bad.c_str());
      if (!bad.empty()) usage(stderr);
    }
    MPI_Finalize();
    return 2;
  }
  Common cm;
  char lib[128];
  library_name(lib, sizeof lib);
  announce_start("coll", rank_, size_);
  cm.lib = lib;
  cm.thread = thread;
  cm.overlap = overlap_mode;
  double compute_measured = -1;
  if (overlap_mode) bench_calibrate();

  long total_bad = 0;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    Point pt;
    setup(pt, cl, sizes[k], root);
    const double cu = overlap_mode ? static_cast<double>(overlap.size() == 1 ? overlap[0] : overlap[k]) : -1;
    if (overlap_mode) {  // what compute(cu) really takes here (median of 5, rank 0)
      double m[5];
      for (double& x : m) {
        double t0 = MPI_Wtime();
        bench_compute(cu);
        x = (MPI_Wtime() - t0) * 1e6;
      }
      std::sort(m, m + 5);
      compute_measured = m[2];
    }

    // First calls: refusals, verification, connections.
    std::vector<long> mismatches(variants.size(), 0);
    std::vector<std::size_t> act;
    for (std::size_t v = 0; v < variants.size(); ++v) {
      variants[v].error.clear();
      mismatches[v] = first_call(pt, variants[v], verify);
      total_bad += mismatches[v];
      if (variants[v].error.empty()) act.push_back(v);
    }
    // Overlap mode: the compute phase alone, every rank at once (slowest rank, median of 5):
    // longer than nominal where ranks share cores.
    double compute_alone = -1;
    if (overlap_mode) {
      double ca[5];
      for (double& x : ca) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        bench_compute(cu);
        x = MPI_Wtime() - t0;
      }
      MPI_Allreduce(MPI_IN_PLACE, ca, 5, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      std::sort(ca, ca + 5);
      compute_alone = ca[2] * 1e6;
    }
    const std::size_t V = act.size();
    std::vector<std::vector<double>> times(variants.size());
    long warm = 0, iters = 0;
    if (V) {
      // Probe, warm-up and timed rounds, each round every active variant once, rotating.
      std::vector<double> probe(V);
      for (std::size_t j = 0; j < V; ++j) probe[j] = timed(pt, variants[act[j]], cu);
      MPI_Allreduce(MPI_IN_PLACE, probe.data(), static_cast<int>(V), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      double sum = 0;
      for (double x : probe) sum += x;
      warm = std::min(max_warmup, static_cast<long>(0.2 * budget * static_cast<double>(V) / std::max(sum, 1e-9)));
      const std::size_t W = static_cast<std::size_t>(warm) + 1;
      std::vector<double> wt(V * W);
      for (std::size_t j = 0; j < V; ++j) wt[j * W] = probe[j];
      for (std::size_t r = 1; r < W; ++r)
        for (std::size_t q = 0; q < V; ++q) {
          std::size_t j = (r + q) % V;
          wt[j * W + r] = timed(pt, variants[act[j]], cu);
        }
      MPI_Allreduce(MPI_IN_PLACE, wt.data(), static_cast<int>(wt.size()), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      double est = 0;
      for (std::size_t j = 0; j < V; ++j) {
        std::vector<double> row(wt.begin() + static_cast<long>(j * W), wt.begin() + static_cast<long>((j + 1) * W));
        std::sort(row.begin(), row.end());
        est += quantile(row.data(), static_cast<int>(W), 0.5);
      }
      double want = 0.8 * budget * static_cast<double>(V) / std::max(est, 1e-9);
      iters = want > static_cast<double>(max_iters) ? max_iters
              : want < static_cast<double>(min_iters) ? min_iters
                                                       : static_cast<long>(want);
      const std::size_t I = static_cast<std::size_t>(iters);
      std::vector<double> t(V * I), tmax(V * I);
      for (std::size_t i = 0; i < I; ++i)
        for (std::size_t q = 0; q < V; ++q) {
          std::size_t j = (i + q) % V;
          t[j * I + i] = timed(pt, variants[act[j]], cu);
        }
      MPI_Reduce(t.data(), tmax.data(), static_cast<int>(t.size()), MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
      for (std::size_t j = 0; j < V; ++j)
        times[act[j]].assign(tmax.begin() + static_cast<long>(j * I), tmax.begin() + static_cast<long>((j + 1) * I));
    }
    if (rank_ == 0) {
      for (std::size_t v = 0; v < variants.size(); ++v) {
        std::string rest;
        if (!variants[v].error.empty() && variants[v].quiet) continue;
        if (!variants[v].error.empty()) {
          rest = ",\"error\":" + json_string(variants[v].error);
        } else {
          rest = stats_json(pt, times[v], warm);
          rest += verify ? (mismatches[v] ? ",\"verified\":false" : ",\"verified\":true") : ",\"verified\":null";
          rest += ",\"mismatches\":" + std::to_string(mismatches[v]);
        }
        if (overlap_mode) {
          char buf[160];
          std::snprintf(buf, sizeof buf, ",\"compute_us\":%.0f,\"compute_measured_us\":%.3f,\"compute_alone_us\":%.3f", cu,
                        compute_measured, compute_alone);
          rest += buf;
        }
        print_line(cm, pt, variants[v], rest);
      }
    }
    release(pt);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  MPI_Finalize();
  return total_bad ? 3 : 0;
}
