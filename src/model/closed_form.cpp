#include "model/closed_form.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string_view>

namespace tandem::model {

const char* closed_name(Closed c) { return c == Closed::Hockney ? "hockney" : "loggp"; }

namespace {

using coll::Coll;

// A message's cost under one closed form: the first of a sequence, end to end, and each
// further one from the same endpoint.
struct Costs {
  std::function<double(double)> hop, rep, red, cp;
};

Costs costs(Closed c, const Profile& p, const Topology& t, const SimOptions& o) {
  const P2PTable& link = p.link(t.nodes() <= 1);
  const P2PPoint& small = link.points.front();
  const double one0 = small.os + small.L + small.g + small.orecv;
  const double bw = Profile::asymptotic_bandwidth(link);
  const double per_byte = bw > 0 ? 1.0 / bw : 0.0;
  Costs k;
  const std::string key = o.reduce_key;
  k.red = [&p, key](double m) { return p.reduce_cost(key, static_cast<std::uint64_t>(m)); };
  k.cp = [&p](double m) { return p.copy.at(static_cast<std::uint64_t>(m)); };
  if (c == Closed::Hockney) {
    // alpha + beta m through the smallest size's one-way time, beta from the bandwidth.
    const double alpha = std::max(0.0, one0 - small.bytes * per_byte);
    k.hop = [alpha, per_byte](double m) { return alpha + per_byte * m; };
    k.rep = k.hop;
  } else {
    const double ov = (small.os + small.orecv) / 2, gap = small.g;
    const double L = std::max(0.0, one0 - 2 * ov - small.bytes * per_byte);
    k.hop = [L, ov, per_byte](double m) { return L + 2 * ov + per_byte * m; };
    k.rep = [ov, gap, per_byte](double m) { return std::max(gap, ov + per_byte * m); };
  }
  return k;
}

int ceil_log(int p, int k) {
  int l = 0;
  for (long v = 1; v < p; v *= k) ++l;
  return l;
}

}  // namespace

std::optional<double> closed_form(Closed c, const coll::Algorithm& alg, const coll::Args& a, const Profile& p,
                                  const Topology& t, const SimOptions& o) {
  const Costs k = costs(c, p, t, o);
  const int P = a.size;
  if (P <= 1) return 0.0;
  const double n = static_cast<double>(a.count) * a.elem_size;  // whole vector, or one block
  const double seg = alg.segmented && a.segsize > 0 ? std::min<double>(static_cast<double>(a.segsize), n) : n;
  const double ns = seg > 0 ? std::ceil(n / seg) : 1;
  const int fan = a.fanout > 0 ? a.fanout : std::max(1, alg.default_fanout);
  const int lg = ceil_log(P, 2);
  const int h = static_cast<int>(std::floor(std::log2(static_cast<double>(P))));
  const std::string_view name = alg.name;
  auto hop = [&](double m) { return k.hop(m); };
  auto rep = [&](double m) { return k.rep(m); };
  auto red = [&](double m) { return k.red(m); };
  auto both = [&](double m) { return std::max(rep(m), red(m)); };
  // sum over i = 1..lg of f(n / 2^i) and of f(m 2^(i-1))
  auto halves = [&](double m, const std::function<double(double)>& f) {
    double s = 0;
    for (int i = 1; i <= lg; ++i) s += f(m / std::pow(2.0, i));
    return s;
  };
  auto doublings = [&](double m, const std::function<double(double)>& f) {
    double s = 0;
    for (int i = 1; i <= lg; ++i) s += f(m * std::pow(2.0, i - 1));
    return s;
  };
  const double chains = std::ceil(static_cast<double>(P - 1) / fan);
  switch (a.coll) {
    case Coll::Bcast:
      if (name == "linear") return hop(seg) + (ns * (P - 1) - 1) * rep(seg);
      if (name == "pipeline") return (P - 1) * hop(seg) + (ns - 1) * rep(seg);
      if (name == "chain") return chains * hop(seg) + (ns * fan - 1) * rep(seg);
      if (name == "binary") return h * (hop(seg) + rep(seg)) + (ns - 1) * 2 * rep(seg);
      if (name == "binomial") return lg * hop(seg) + (ns - 1) * lg * rep(seg);
      if (name == "knomial") {
        const int lv = ceil_log(P, fan);
        return lv * (hop(seg) + (fan - 2) * rep(seg)) + (ns - 1) * (fan - 1) * rep(seg);
      }
      if (name == "scatter_recursive_doubling") return 2 * halves(n, hop);
      if (name == "scatter_ring") return halves(n, hop) + (P - 1) * hop(n / P);
      return std::nullopt;
    case Coll::Reduce:
      if (name == "linear") return hop(n) + (P - 2) * both(n) + red(n);
      if (name == "pipeline") return (P - 1) * (hop(seg) + red(seg)) + (ns - 1) * both(seg);
      if (name == "chain") return chains * (hop(seg) + red(seg)) + (ns * fan - 1) * both(seg);
      if (name == "binary" || name == "in_order_binary")
        return h * (hop(seg) + rep(seg) + 2 * red(seg)) + (ns - 1) * 2 * both(seg);
      if (name == "binomial") return lg * (hop(seg) + red(seg)) + (ns - 1) * lg * both(seg);
      if (name == "rabenseifner")
        return halves(n, [&](double m) { return hop(m) + red(m); }) + halves(n, hop);
      return std::nullopt;
    case Coll::Allreduce:
      if (name == "reduce_bcast")
        return 2 * h * (hop(seg) + rep(seg)) + 2 * h * red(seg) + (ns - 1) * 2 * (both(seg) + rep(seg));
      if (name == "allgather_reduce") return doublings(n, hop) + (P - 1) * red(n);
      if (name == "recursive_doubling") return lg * (hop(n) + red(n));
      if (name == "ring" || name == "segmented_ring") {
        const double blk = n / P;
        const double s = name == "ring" || a.segsize == 0 ? blk : std::min<double>(blk, static_cast<double>(a.segsize));
        const double per = s > 0 ? std::ceil(blk / s) : 1;
        return 2 * (P - 1) * (hop(s) + (per - 1) * rep(s)) + (P - 1) * red(blk);
      }
      if (name == "rabenseifner")
        return halves(n, [&](double m) { return hop(m) + red(m); }) + halves(n, hop);
      return std::nullopt;
    case Coll::Allgather:
      if (name == "gather_bcast") return doublings(n, hop) + lg * hop(n * P);
      if (name == "ring") return (P - 1) * (hop(seg) + (ns - 1) * rep(seg));
      if (name == "recursive_doubling") return doublings(n, hop);
      if (name == "bruck") {
        double s = 0;
        for (int i = 1; i <= lg; ++i) s += hop(n * std::min(std::pow(2.0, i - 1), P - std::pow(2.0, i - 1)));
        return s + k.cp(n * P);
      }
      if (name == "neighbor_exchange") return hop(n) + (P / 2.0 - 1) * hop(2 * n);
      return std::nullopt;
    case Coll::Alltoall:
      if (name == "linear") return hop(n) + (P - 2) * rep(n);
      if (name == "pairwise") return (P - 1) * hop(n);
      if (name == "bruck") return lg * (hop(n * P / 2) + k.cp(n * P / 2)) + 2 * k.cp(n * P);
      if (name == "gather_scatter") return 2 * (hop(n * P) + (P - 2) * rep(n * P));
      return std::nullopt;
    case Coll::Gather:
    case Coll::Scatter:
      if (name == "linear") return hop(seg) + (ns * (P - 1) - 1) * rep(seg);
      if (name == "binomial" || name == "binary") return doublings(n, hop) + (name == "binary" ? h * rep(n) : 0.0);
      if (name == "chain") return chains * hop(n) + std::max(0.0, P - 1 - chains) * rep(n);
      return std::nullopt;
    case Coll::ReduceScatterBlock:
      if (name == "ring") return (P - 1) * (hop(n) + red(n));
      if (name == "recursive_halving") return halves(n * P, [&](double m) { return hop(m) + red(m); });
      if (name == "reduce_scatter")
        return lg * (hop(n * P) + red(n * P)) + doublings(n, hop);
      return std::nullopt;
    case Coll::Barrier:
      if (name == "linear") return 2 * (hop(0) + (P - 2) * rep(0));
      if (name == "double_ring") return 2.0 * P * hop(0);
      if (name == "dissemination" || name == "recursive_doubling") return lg * hop(0);
      if (name == "tournament") return 2.0 * lg * hop(0);
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace tandem::model
