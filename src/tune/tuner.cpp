#include "tune/tuner.hpp"

#include "coll/ompi_rules.hpp"
#include "coll/rules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <tuple>

#include "common/units.hpp"
#include "model/sim.hpp"

namespace tandem::tune {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
bool ok(double t) { return std::isfinite(t) && t > 0; }
}  // namespace

const char* method_name(Method m) {
  switch (m) {
    case Method::Exhaustive: return "exhaustive";
    case Method::MGD: return "mgd";
    case Method::SMGD: return "smgd";
    case Method::Pipeline: return "pipeline";
    case Method::Model: return "model";
    case Method::Guided: return "guided";
  }
  return "?";
}

std::optional<Method> parse_method(const std::string& text) {
  std::string s;
  for (char c : text) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "model-only") s = "model";
  if (s == "model-guided") s = "guided";
  for (Method m : {Method::Exhaustive, Method::MGD, Method::SMGD, Method::Pipeline, Method::Model, Method::Guided})
    if (s == method_name(m)) return m;
  return std::nullopt;
}

std::string Variant::key() const { return repeat ? label() + "#" + std::to_string(repeat) : label(); }

std::string Variant::label() const {
  if (!is_mpi()) return choice.str();
  return coll::mpi_choice_text(mpi_alg, mpi_segsize, mpi_fanout) + (as_rules && !mpi_alg.empty() ? "@run" : "");
}

std::string Variant::rules_choice() const {
  if (!is_mpi()) return choice.str();
  if (mpi_alg == "0") return "mpi";
  return coll::mpi_choice_text(mpi_alg, mpi_segsize, mpi_fanout);
}

std::string Point::key() const { return fmt::format("{}/{}/{}", coll::coll_name(coll), ranks, bytes); }

std::optional<double> Store::get(const Point& p, const Variant& v) const {
  auto it = times.find(p.key());
  if (it == times.end()) return std::nullopt;
  auto jt = it->second.find(v.key());
  if (jt == it->second.end()) return std::nullopt;
  return jt->second;
}

void Store::put(const Point& p, const Variant& v, double seconds) { times[p.key()][v.key()] = seconds; }

std::string Store::to_json() const {
  nlohmann::json j;
  j["format"] = "tandem-tune-state";
  j["version"] = 1;
  j["times_s"] = nlohmann::json::object();
  for (const auto& [k, m] : times)
    for (const auto& [l, t] : m) j["times_s"][k][l] = std::isfinite(t) ? nlohmann::json(t) : nlohmann::json(nullptr);
  return j.dump(1) + "\n";
}

Store Store::from_json(const std::string& text, const std::string& name) {
  Store s;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error("tuning state " + name + ": not valid JSON (truncated?): " + e.what());
  }
  if (!j.is_object() || j.value("format", "") != "tandem-tune-state")
    throw std::runtime_error("tuning state " + name + ": not a tandem tuning state (\"format\": \"tandem-tune-state\")");
  if (j.value("version", 0) != 1)
    throw std::runtime_error("tuning state " + name + ": version " + j.value("version", nlohmann::json(0)).dump() +
                             " is not supported (this tandem reads version 1)");
  if (!j.contains("times_s") || !j["times_s"].is_object())
    throw std::runtime_error("tuning state " + name + ": missing \"times_s\"");
  for (auto it = j["times_s"].begin(); it != j["times_s"].end(); ++it) {
    if (!it.value().is_object()) throw std::runtime_error("tuning state " + name + ": times_s." + it.key() + " is not an object");
    for (auto jt = it.value().begin(); jt != it.value().end(); ++jt)
      s.times[it.key()][jt.key()] = jt.value().is_number() ? jt.value().get<double>() : kNaN;
  }
  return s;
}

Tuner::Tuner(Options o, Measurer m, const model::Profile* profile, Store* store)
    : o_(std::move(o)), m_(std::move(m)), profile_(profile), store_(store) {
  if (!profile_ && (o_.method == Method::Pipeline || o_.method == Method::Model || o_.method == Method::Guided))
    throw std::invalid_argument(std::string("method ") + method_name(o_.method) + " needs a machine profile");
}

model::Problem Tuner::problem(const Point& p) const {
  model::Problem pb;
  pb.coll = p.coll;
  pb.topo.ranks = p.ranks;
  pb.topo.ranks_per_node = std::clamp(o_.ranks_per_node, 1, p.ranks);
  if (profile_) pb.topo = model::topology_for(*profile_, p.ranks, o_.ranks_per_node);
  pb.elem_size = coll::reduces(p.coll) ? o_.elem_size : 1;
  pb.bytes = p.bytes / pb.elem_size * pb.elem_size;
  return pb;
}

std::vector<Variant> Tuner::candidates(const Point& p) const {
  std::vector<Variant> out;
  for (const auto& c : model::candidates(problem(p), o_.grid)) out.push_back(Variant{c, "", 0});
  return out;
}

std::vector<std::uint64_t> Tuner::segments_for(const coll::Algorithm& a, const Point& p) const {
  std::vector<std::uint64_t> s;
  const model::Problem pb = problem(p);
  for (const auto& c : model::candidates(pb, o_.grid))
    if (c.alg == &a && std::find(s.begin(), s.end(), c.segsize) == s.end()) s.push_back(c.segsize);
  std::sort(s.begin(), s.end());
  // 0 (unsegmented) is the largest segment: last in the descent's order.
  if (!s.empty() && s.front() == 0) {
    s.erase(s.begin());
    s.push_back(0);
  }
  return s;
}

std::vector<int> Tuner::fanouts_for(const coll::Algorithm& a, const Point& p) const {
  std::vector<int> f;
  for (const auto& c : model::candidates(problem(p), o_.grid))
    if (c.alg == &a && std::find(f.begin(), f.end(), c.fanout) == f.end()) f.push_back(c.fanout);
  return f;
}

std::vector<double> Tuner::measure(const Point& p, const std::vector<Variant>& vs, Outcome& out) {
  std::vector<double> t(vs.size(), kNaN);
  std::vector<Variant> todo;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < vs.size(); ++i) {
    if (auto it = out.measured.find(vs[i].key()); it != out.measured.end()) {
      t[i] = it->second;
    } else if (auto c = store_ ? store_->get(p, vs[i]) : std::nullopt) {
      t[i] = *c;
      out.measured[vs[i].key()] = *c;
    } else {
      todo.push_back(vs[i]);
      where.push_back(i);
    }
  }
  if (!todo.empty()) {
    std::vector<double> got = m_(p, todo);
    if (got.size() != todo.size()) throw std::logic_error("the measurer returned a wrong number of times");
    for (std::size_t k = 0; k < todo.size(); ++k) {
      t[where[k]] = got[k];
      out.measured[todo[k].key()] = got[k];
      if (store_) store_->put(p, todo[k], got[k]);
    }
    if (store_ && o_.on_store) o_.on_store();
    out.experiments += static_cast<int>(todo.size());
    experiments_ += static_cast<int>(todo.size());
  }
  return t;
}

double Tuner::measure_one(const Point& p, const Variant& v, Outcome& out) { return measure(p, {v}, out).front(); }

void Tuner::confirm(const Point& p, Variant* chosen, double* time, const Variant& dflt, Outcome& out) {
  auto first = [&](const Variant& v) {
    auto it = out.measured.find(v.key());
    return it != out.measured.end() ? it->second : kNaN;
  };
  std::vector<double> a{first(*chosen)}, b{first(dflt)};
  for (int r = 1; r <= o_.confirm; ++r) {
    Variant x = *chosen, y = dflt;
    x.repeat = y.repeat = r;
    const auto t = measure(p, {x, y}, out);
    a.push_back(t[0]);
    b.push_back(t[1]);
  }
  auto median = [](std::vector<double> v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !ok(x); }), v.end());
    if (v.empty()) return kNaN;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  const double ma = median(a), mb = median(b);
  if (!ok(mb)) {
    *time = ma;
    return;
  }
  if (!ok(ma) || ma * o_.margin >= mb) *chosen = dflt, *time = mb;
  else *time = ma;
}

// The descents of every algorithm and fan-out at once, a step each per round, so that
// one measurement run serves every algorithm's next step (the benchmark is launched once
// per round, not once per experiment). MGD: from a start (this algorithm's best segment
// size at the previous size, else the middle of its grid) to the faster neighbour until
// none is. SMGD: from the smallest segment size up while each is faster than the last;
// an algorithm whose first time exceeds `prune` times the best first time (or the MPI
// default) is dropped.
void Tuner::descend_all(const Point& p, bool scan, std::vector<Variant> first_batch, Outcome& out) {
  struct Walk {
    const coll::Algorithm* a = nullptr;
    int fan = 0;
    std::vector<std::uint64_t> segs;
    std::size_t i = 0;
    double cur = 0;
    bool done = false;
    std::string key;
  };
  const model::Problem pb = problem(p);
  std::vector<Walk> walks;
  for (const auto& a : coll::algorithms(p.coll)) {
    if (a.commutative_only && !pb.commutative) continue;
    for (int f : fanouts_for(a, p)) {
      Walk w;
      w.a = &a;
      w.fan = f;
      w.segs = segments_for(a, p);
      if (w.segs.empty()) continue;
      w.key = fmt::format("{}/{}/{}", coll::coll_name(p.coll), a.name, f);
      w.i = scan ? 0 : w.segs.size() / 2;
      if (!scan)
        if (auto it = last_seg_.find(w.key); it != last_seg_.end()) {
          auto at = std::find(w.segs.begin(), w.segs.end(), it->second);
          if (at != w.segs.end()) w.i = static_cast<std::size_t>(at - w.segs.begin());
        }
      walks.push_back(std::move(w));
    }
  }
  auto var = [](const Walk& w, std::size_t i) { return Variant{coll::Choice{w.a, w.segs[i], w.fan}, "", 0}; };
  auto time_of = [&](const Variant& v) {
    auto it = out.measured.find(v.label());
    return it != out.measured.end() && ok(it->second) ? it->second : std::numeric_limits<double>::infinity();
  };
  // Round 0: every walk's start, with whatever the caller needs measured too.
  for (const auto& w : walks) first_batch.push_back(var(w, w.i));
  measure(p, first_batch, out);
  double best = std::numeric_limits<double>::infinity();
  if (auto it = out.measured.find("mpi"); it != out.measured.end() && ok(it->second)) best = it->second;
  for (auto& w : walks) {
    w.cur = time_of(var(w, w.i));
    best = std::min(best, w.cur);
  }
  if (scan)
    for (auto& w : walks)
      if (w.cur > o_.prune * best) w.done = true;  // pruned
  for (;;) {
    std::vector<Variant> batch;
    for (auto& w : walks) {
      if (w.done) continue;
      if (scan) {
        if (w.i + 1 < w.segs.size()) batch.push_back(var(w, w.i + 1));
        else w.done = true;
      } else {
        if (w.i > 0) batch.push_back(var(w, w.i - 1));
        if (w.i + 1 < w.segs.size()) batch.push_back(var(w, w.i + 1));
        if (w.segs.size() == 1) w.done = true;
      }
    }
    if (batch.empty()) break;
    measure(p, batch, out);
    for (auto& w : walks) {
      if (w.done) continue;
      if (scan) {
        const double next = time_of(var(w, w.i + 1));
        if (next < w.cur) ++w.i, w.cur = next;
        else w.done = true;
        continue;
      }
      const double left = w.i > 0 ? time_of(var(w, w.i - 1)) : std::numeric_limits<double>::infinity();
      const double right = w.i + 1 < w.segs.size() ? time_of(var(w, w.i + 1)) : std::numeric_limits<double>::infinity();
      if (left < w.cur && left <= right) --w.i, w.cur = left;
      else if (right < w.cur) ++w.i, w.cur = right;
      else w.done = true;
    }
  }
  for (const auto& w : walks) last_seg_[w.key] = w.segs[w.i];
}

Outcome Tuner::tune(const Point& p) {
  Outcome out;
  out.point = p;
  const model::Problem pb = problem(p);
  std::vector<model::Prediction> ranked;
  if (profile_) {
    ranked = model::rank_candidates(pb, model::candidates(pb, o_.grid), *profile_);
    for (const auto& r : ranked) out.predictions[r.choice.str()] = r.time;
  }
  const Variant mpi_default{};
  // The MPI library's default and its forced algorithms go with the method's first
  // measurements (one run where the measurer can).
  std::vector<Variant> mpis;
  if (o_.method != Method::Model) {
    if (o_.include_mpi_default) mpis.push_back(mpi_default);
    for (const auto* m : {&o_.mpi_variants, &o_.mpi_candidates})
      if (auto it = m->find(static_cast<int>(p.coll)); it != m->end())
        for (const auto& v : it->second)
          if (std::none_of(mpis.begin(), mpis.end(), [&](const Variant& x) { return x.label() == v.label(); }))
            mpis.push_back(v);
  }
  auto with_mpis = [&](std::vector<Variant> v) {
    v.insert(v.begin(), mpis.begin(), mpis.end());
    return v;
  };
  switch (o_.method) {
    case Method::Exhaustive: measure(p, with_mpis(candidates(p)), out); break;
    case Method::MGD:
    case Method::SMGD: descend_all(p, o_.method == Method::SMGD, mpis, out); break;
    case Method::Pipeline: {
      // Per algorithm and fan-out, the segment size that minimises (depth + segments - 1)
      // times the longest edge's per-segment time (between nodes), then one measurement.
      const model::P2PTable& edge = profile_->link(pb.topo.nodes() <= 1);
      std::vector<Variant> picks;
      for (const auto& a : coll::algorithms(p.coll)) {
        if (a.commutative_only && !pb.commutative) continue;
        for (int f : fanouts_for(a, p)) {
          const int fan = f > 0 ? f : std::max(1, a.default_fanout);
          const std::string_view n = a.name;
          const int P = p.ranks;
          double depth = std::ceil(std::log2(std::max(2, P)));
          int sends = 1;  // per segment at the busiest rank
          if (n == "pipeline") depth = P - 1;
          else if (n == "chain") depth = std::ceil(static_cast<double>(P - 1) / fan), sends = fan;
          else if (n == "binary" || n == "in_order_binary") depth = std::floor(std::log2(P)), sends = 2;
          else if (n == "knomial") depth = std::ceil(std::log(P) / std::log(fan)), sends = fan - 1;
          else if (n == "linear") depth = 1, sends = P - 1;
          else if (n == "ring" || n == "segmented_ring") depth = 2.0 * (P - 1);
          const double msg = n == "ring" || n == "segmented_ring" ? static_cast<double>(pb.bytes) / P : pb.bytes;
          double best_t = std::numeric_limits<double>::infinity();
          std::uint64_t best_s = 0;
          for (std::uint64_t s : segments_for(a, p)) {
            const double seg = s == 0 ? msg : std::min<double>(msg, s);
            const double ns = seg > 0 ? std::ceil(msg / seg) : 1;
            const model::P2PCost c = edge.at(static_cast<std::uint64_t>(seg));
            const double per = std::max(c.one_way(), sends * c.g);
            const double t = (depth + ns - 1) * per;
            if (t < best_t) best_t = t, best_s = s;
          }
          picks.push_back(Variant{coll::Choice{&a, best_s, f}, "", 0});
        }
      }
      measure(p, with_mpis(picks), out);
      break;
    }
    case Method::Model: break;
    case Method::Guided: {
      std::vector<Variant> top;
      for (std::size_t i = 0; i < ranked.size() && static_cast<int>(top.size()) < o_.guided_top; ++i)
        top.push_back(Variant{ranked[i].choice, "", 0});
      measure(p, with_mpis(top), out);
      break;
    }
  }
  // The choice: fastest measured (Model: fastest predicted); ties keep tandem's order.
  double best = std::numeric_limits<double>::infinity();
  if (o_.method == Method::Model) {
    if (!ranked.empty()) out.best = Variant{ranked.front().choice, "", 0}, best = ranked.front().time;
  } else {
    auto consider = [&](const Variant& v) {
      auto it = out.measured.find(v.label());
      if (it != out.measured.end() && ok(it->second) && it->second < best) best = it->second, out.best = v;
    };
    if (o_.include_mpi_default) consider(mpi_default);
    for (const auto& c : candidates(p)) consider(c);
    if (auto mc = o_.mpi_candidates.find(static_cast<int>(p.coll)); mc != o_.mpi_candidates.end())
      for (const auto& v : mc->second) consider(v);
    if (auto mv = o_.mpi_variants.find(static_cast<int>(p.coll)); mv != o_.mpi_variants.end())
      for (const auto& v : mv->second) {
        auto it = out.measured.find(v.label());
        if (it != out.measured.end() && ok(it->second) && (out.best_mpi_time < 0 || it->second < out.best_mpi_time))
          out.best_mpi = v, out.best_mpi_time = it->second;
      }
    if (auto it = out.measured.find("mpi"); it != out.measured.end() && ok(it->second)) out.mpi_default_time = it->second;
    // Within the margin of the default, the default (the export's default is its "0").
    if (o_.include_mpi_default && out.mpi_default_time > 0 && best * o_.margin >= out.mpi_default_time)
      best = out.mpi_default_time, out.best = mpi_default;
    // A forced MPI algorithm ran in a launch of its own: confirmed against the default.
    if (o_.confirm > 0 && o_.include_mpi_default && out.mpi_default_time > 0 && out.best.is_mpi() &&
        !out.best.mpi_alg.empty())
      confirm(p, &out.best, &best, mpi_default, out);
    if (auto mv = o_.mpi_variants.find(static_cast<int>(p.coll)); mv != o_.mpi_variants.end() && out.best_mpi_time > 0)
      for (const auto& v : mv->second)
        if (v.is_export_default() && !out.best_mpi.is_export_default())
          if (auto it = out.measured.find(v.label()); it != out.measured.end() && ok(it->second)) {
            if (out.best_mpi_time * o_.margin >= it->second) out.best_mpi = v, out.best_mpi_time = it->second;
            else if (o_.confirm > 0) confirm(p, &out.best_mpi, &out.best_mpi_time, v, out);
          }
  }
  if (!std::isfinite(best)) throw std::runtime_error("no variant of " + p.key() + " could be measured");
  out.best_time = best;
  if (!out.best.is_mpi())
    if (auto it = out.predictions.find(out.best.choice.str()); it != out.predictions.end()) out.predicted = it->second;
  return out;
}

namespace {
std::uint64_t geo_mid(std::uint64_t a, std::uint64_t b) {
  return static_cast<std::uint64_t>(std::sqrt(static_cast<double>(std::max<std::uint64_t>(a, 1)) * static_cast<double>(b)));
}
}  // namespace

std::string ompi_rules_text(const std::vector<Outcome>& outcomes) {
  coll::OmpiTable t;
  std::map<int, std::map<int, std::vector<const Outcome*>>> by;
  for (const auto& o : outcomes) {
    const int id = coll::ompi_coll_id(o.point.coll);
    if (id < 0 || o.best_mpi_time < 0 || o.best_mpi.mpi_alg.empty()) continue;
    by[id][o.point.ranks].push_back(&o);
  }
  for (auto& [id, comms] : by)
    for (auto& [ranks, v] : comms) {
      std::sort(v.begin(), v.end(), [](const Outcome* a, const Outcome* b) { return a->point.bytes < b->point.bytes; });
      const bool total = coll::blocked(v.front()->point.coll);  // Open MPI counts the whole buffer
      auto ompi_bytes = [&](std::uint64_t b) { return total ? b * static_cast<std::uint64_t>(ranks) : b; };
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::uint64_t from = i == 0 ? 0 : ompi_bytes(geo_mid(v[i - 1]->point.bytes, v[i]->point.bytes) + 1);
        const Variant& b = v[i]->best_mpi;
        const long alg = std::atol(b.mpi_alg.c_str());
        t[id][ranks].push_back({from, alg, coll::ompi_fanout(v[i]->point.coll, alg, b.mpi_fanout), b.mpi_segsize});
      }
    }
  return coll::format_ompi_rules(t);
}

const std::vector<std::string>& mpich_algorithms(coll::Coll c) {
  static const std::vector<std::string> none;
  static const std::vector<std::string> bcast{"binomial", "scatter_recursive_doubling_allgather",
                                              "scatter_ring_allgather", "smp"};
  static const std::vector<std::string> reduce{"binomial", "reduce_scatter_gather", "smp"};
  static const std::vector<std::string> allreduce{"recursive_doubling", "reduce_scatter_allgather", "smp"};
  static const std::vector<std::string> allgather{"brucks", "recursive_doubling", "ring"};
  switch (c) {
    case coll::Coll::Bcast: return bcast;
    case coll::Coll::Reduce: return reduce;
    case coll::Coll::Allreduce: return allreduce;
    case coll::Coll::Allgather: return allgather;
    default: return none;
  }
}

std::string mpich_function(coll::Coll c, const std::string& alg) {
  std::string n = coll::coll_name(c);
  n[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(n[0])));
  return "MPIR_" + n + "_intra_" + alg;
}

namespace {
using ojson = nlohmann::ordered_json;  // MPICH reads a tree's branches in file order

ojson parse_tree(const std::string& text, const char* what) {
  ojson t = ojson::parse(text, nullptr, false);
  if (t.is_discarded() || !t.is_object() || !t.contains("collective=bcast"))
    throw std::runtime_error(std::string("MPICH's default ") + what + " selection tree is not a JSON object of collectives");
  return t;
}
}  // namespace

std::string mpich_json_text(const std::vector<Outcome>& outcomes, const std::string& base) {
  ojson tree = parse_tree(base, "MPIR");
  std::map<int, std::map<int, std::vector<const Outcome*>>> by;  // collective -> ranks -> outcomes
  for (const auto& o : outcomes)
    if (!mpich_algorithms(o.point.coll).empty() && !o.best_mpi.mpi_alg.empty() && o.best_mpi_time > 0)
      by[static_cast<int>(o.point.coll)][o.point.ranks].push_back(&o);
  for (auto& [ci, comms] : by) {
    const auto c = static_cast<coll::Coll>(ci);
    const std::string key = std::string("collective=") + coll::coll_name(c);
    if (!tree.contains(key) || !tree[key].is_object() || !tree[key].contains("comm_type=intra"))
      throw std::runtime_error("MPICH's default MPIR selection tree has no intracommunicator branch for " + key);
    const ojson dflt = tree[key]["comm_type=intra"];
    const bool total = c == coll::Coll::Allgather;
    const std::string metric = total ? "total_msg_size" : "avg_msg_size";
    ojson intra = ojson::object();
    for (auto& [ranks, v] : comms) {
      std::sort(v.begin(), v.end(), [](const Outcome* a, const Outcome* b) { return a->point.bytes < b->point.bytes; });
      const auto n = static_cast<std::uint64_t>(ranks);
      ojson sizes = ojson::object();
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string& alg = v[i]->best_mpi.mpi_alg;
        ojson leaf = alg == "auto" ? dflt : ojson{{"algorithm=" + mpich_function(c, alg), ojson::object()}};
        const std::string k = i + 1 == v.size()
                                  ? metric + "=any"
                                  : fmt::format("{}<={}", metric, geo_mid(v[i]->point.bytes, v[i + 1]->point.bytes) * (total ? n : 1));
        sizes[k] = leaf;
      }
      intra[fmt::format("comm_size<{}", ranks)] = dflt;
      intra[fmt::format("comm_size<={}", ranks)] = sizes;
    }
    intra["comm_size=any"] = dflt;
    tree[key]["comm_type=intra"] = intra;
  }
  return tree.dump() + "\n";
}

std::string mpich_ch4_flat_text(const std::string& base) {
  ojson tree = parse_tree(base, "ch4");
  const std::pair<const char*, const char*> flat[] = {{"bcast", "MPIDI_Bcast_intra_composition_gamma"},
                                                      {"reduce", "MPIDI_Reduce_intra_composition_gamma"},
                                                      {"allreduce", "MPIDI_Allreduce_intra_composition_beta"},
                                                      {"barrier", "MPIDI_Barrier_intra_composition_beta"}};
  for (const auto& [c, comp] : flat)
    tree[std::string("collective=") + c] = ojson{{"comm_type=intra", ojson{{std::string("composition=") + comp, ojson::object()}}}};
  return tree.dump() + "\n";
}

std::string rules_text(const std::vector<Outcome>& outcomes, const std::string& comment) {
  // Per collective and rank count, the outcomes by size.
  std::map<std::pair<int, int>, std::vector<const Outcome*>> groups;
  for (const auto& o : outcomes) groups[{static_cast<int>(o.point.coll), o.point.ranks}].push_back(&o);
  std::string out = "tandem-coll-rules 1\n";
  if (!comment.empty()) {
    std::size_t pos = 0;
    while (pos < comment.size()) {
      auto nl = comment.find('\n', pos);
      out += "# " + comment.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos) + "\n";
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
  }
  out += "# collective  ranks  bytes  choice    (measured; mpi: the MPI library's own default, mpi:N[:SEG] its algorithm N)\n";
  for (auto& [key, v] : groups) {
    std::sort(v.begin(), v.end(), [](const Outcome* a, const Outcome* b) { return a->point.bytes < b->point.bytes; });
    for (std::size_t i = 0; i < v.size(); ++i) {
      const Outcome& o = *v[i];
      // From the geometric midpoint with the size below (0 for the first) to the one above.
      auto mid = geo_mid;
      const std::uint64_t lo = i == 0 ? 0 : mid(v[i - 1]->point.bytes, o.point.bytes) + 1;
      const std::string hi = i + 1 == v.size() ? "" : std::to_string(mid(o.point.bytes, v[i + 1]->point.bytes));
      const std::string choice = o.best.rules_choice();
      out += fmt::format("{} {} {}-{} {}\n", coll::coll_name(o.point.coll), o.point.ranks, lo, hi, choice);
    }
  }
  return out;
}

}  // namespace tandem::tune
