#include "model/profile.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/files.hpp"

namespace tandem::model {

using json = nlohmann::json;

namespace {

// Linear interpolation of y over increasing x; the first value below, the last two's line
// above (never below zero).
template <class Pts, class Get>
double interp(const Pts& pts, std::uint64_t bytes, Get y, double floor = 0.0) {
  const double m = static_cast<double>(bytes);
  if (pts.size() == 1 || bytes <= pts.front().bytes) return y(pts.front());
  auto hi = std::lower_bound(pts.begin(), pts.end(), bytes, [](const auto& p, std::uint64_t b) { return p.bytes < b; });
  if (hi == pts.end()) hi = pts.end() - 1;
  auto lo = hi - 1;
  const double x0 = static_cast<double>(lo->bytes), x1 = static_cast<double>(hi->bytes);
  const double y0 = y(*lo), y1 = y(*hi);
  const double v = y0 + (y1 - y0) * (m - x0) / (x1 - x0);
  return std::max(floor, v);
}

[[noreturn]] void bad(const std::string& name, const std::string& what) {
  throw std::runtime_error("profile " + name + ": " + what);
}

const json& member(const json& o, const char* key, const std::string& name, const std::string& where) {
  if (!o.is_object() || !o.contains(key)) bad(name, "missing " + where + key);
  return o[key];
}

double number(const json& o, const char* key, const std::string& name, const std::string& where, bool required = true,
              double dflt = 0, bool negative_ok = false) {
  if (!o.is_object() || !o.contains(key)) {
    if (required) bad(name, "missing " + where + key);
    return dflt;
  }
  const json& v = o[key];
  if (!v.is_number()) bad(name, where + key + " is not a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || (d < 0 && !negative_ok))
    bad(name, where + key + " must be a finite number" + (negative_ok ? "" : " >= 0") + ", not " + v.dump());
  return d;
}

std::string text(const json& o, const char* key) {
  if (!o.is_object() || !o.contains(key) || !o[key].is_string()) return {};
  return o[key].get<std::string>();
}

template <class Pts>
void check_sizes(const Pts& pts, const std::string& name, const std::string& where) {
  if (pts.empty()) bad(name, where + " has no points");
  for (std::size_t i = 1; i < pts.size(); ++i)
    if (pts[i].bytes <= pts[i - 1].bytes)
      bad(name, where + ": sizes must increase (" + std::to_string(pts[i - 1].bytes) + " then " +
                    std::to_string(pts[i].bytes) + ")");
}

P2PTable parse_p2p(const json& j, const std::string& name, const std::string& where) {
  P2PTable t;
  const json& pts = member(j, "points", name, where + ".");
  if (!pts.is_array()) bad(name, where + ".points is not an array");
  for (std::size_t i = 0; i < pts.size(); ++i) {
    const std::string w = where + ".points[" + std::to_string(i) + "].";
    const json& p = pts[i];
    P2PPoint q;
    q.bytes = static_cast<std::uint64_t>(number(p, "bytes", name, w));
    q.os = number(p, "os_us", name, w) * 1e-6;
    q.orecv = number(p, "or_us", name, w) * 1e-6;
    q.g = number(p, "g_us", name, w) * 1e-6;
    q.L = number(p, "L_us", name, w, true, 0, true) * 1e-6;
    if (q.L + q.g < 0) bad(name, w + "L_us is below -g_us: a message would arrive before it leaves");
    q.rtt = number(p, "rtt_us", name, w, false) * 1e-6;
    q.ci = number(p, "ci", name, w, false);
    q.reps = static_cast<int>(number(p, "reps", name, w, false));
    t.points.push_back(q);
  }
  check_sizes(t.points, name, where + ".points");
  t.eager_limit = static_cast<std::uint64_t>(number(j, "eager_limit", name, where + ".", false));
  return t;
}

CostTable parse_cost(const json& j, const std::string& name, const std::string& where) {
  CostTable t;
  if (!j.is_array()) bad(name, where + " is not an array");
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string w = where + "[" + std::to_string(i) + "].";
    t.points.push_back({static_cast<std::uint64_t>(number(j[i], "bytes", name, w)), number(j[i], "us", name, w) * 1e-6});
  }
  check_sizes(t.points, name, where);
  return t;
}

json p2p_json(const P2PTable& t) {
  json pts = json::array();
  for (const auto& p : t.points) {
    json q = {{"bytes", p.bytes}, {"os_us", p.os * 1e6}, {"or_us", p.orecv * 1e6}, {"g_us", p.g * 1e6}, {"L_us", p.L * 1e6}};
    if (p.rtt > 0) q["rtt_us"] = p.rtt * 1e6;
    if (p.reps > 0) {
      q["ci"] = p.ci;
      q["reps"] = p.reps;
    }
    pts.push_back(q);
  }
  json j{{"points", pts}};
  if (t.eager_limit) j["eager_limit"] = t.eager_limit;
  return j;
}

json cost_json(const CostTable& t) {
  json a = json::array();
  for (const auto& p : t.points) a.push_back({{"bytes", p.bytes}, {"us", p.seconds * 1e6}});
  return a;
}

}  // namespace

P2PCost P2PTable::at(std::uint64_t bytes) const {
  P2PCost c{interp(points, bytes, [](const P2PPoint& p) { return p.os; }),
            interp(points, bytes, [](const P2PPoint& p) { return p.orecv; }),
            interp(points, bytes, [](const P2PPoint& p) { return p.g; }),
            interp(points, bytes, [](const P2PPoint& p) { return p.L; }, -1e300)};
  c.L = std::max(c.L, -c.g);  // never arrives before it leaves
  return c;
}

double CostTable::at(std::uint64_t bytes) const {
  if (bytes == 0) return 0;
  return interp(points, bytes, [](const CostPoint& p) { return p.seconds; });
}

const P2PTable& Profile::link(bool same_node) const {
  if (same_node && intra) return *intra;
  if (!same_node && inter) return *inter;
  return intra ? *intra : *inter;
}

double Profile::reduce_cost(const std::string& key, std::uint64_t bytes) const {
  auto it = reduce.find(key);
  if (it == reduce.end()) it = reduce.begin();
  return it == reduce.end() ? 0.0 : it->second.at(bytes);
}

double Profile::asymptotic_bandwidth(const P2PTable& t) {
  if (t.points.size() < 2) return t.points.empty() || t.points.back().g <= 0 ? 0 : t.points.back().bytes / t.points.back().g;
  const auto& a = t.points[t.points.size() - 2];
  const auto& b = t.points.back();
  const double dg = b.g - a.g;
  if (dg > 0) return static_cast<double>(b.bytes - a.bytes) / dg;
  return b.g > 0 ? b.bytes / b.g : 0;
}

Profile parse_profile(const std::string& body, const std::string& name) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    bad(name, std::string(body.empty() ? "empty file" : "not valid JSON (truncated?)") + ": " + e.what());
  }
  if (!j.is_object()) bad(name, "not a JSON object");
  const std::string format = text(j, "format");
  if (format != kProfileFormat)
    bad(name, "not a tandem profile (\"format\" is " + (j.contains("format") ? j["format"].dump() : std::string("missing")) +
                  ", expected \"" + kProfileFormat + "\")");
  if (!j.contains("version") || !j["version"].is_number_integer()) bad(name, "missing or non-integer \"version\"");
  Profile p;
  p.version = j["version"].get<int>();
  if (p.version != kProfileVersion)
    bad(name, "version " + std::to_string(p.version) + " is not supported (this tandem reads version " +
                  std::to_string(kProfileVersion) + "); make it again with `tandem profile`");
  const json& m = member(j, "machine", name, "");
  p.machine.host = text(m, "host");
  p.machine.cpu = text(m, "cpu");
  p.machine.description = text(m, "description");
  p.machine.cores = static_cast<int>(number(m, "cores", name, "machine.", false));
  p.transport = text(j, "transport");
  if (p.transport.empty()) bad(name, "missing \"transport\"");
  const json& s = member(j, "shape", name, "");
  p.shape.nodes = static_cast<int>(number(s, "nodes", name, "shape."));
  p.shape.ranks_per_node = static_cast<int>(number(s, "ranks_per_node", name, "shape."));
  p.shape.nics_per_node = static_cast<int>(number(s, "nics_per_node", name, "shape.", false, 1));
  p.shape.network = text(s, "network");
  p.shape.nodes_per_leaf = static_cast<int>(number(s, "nodes_per_leaf", name, "shape.", false));
  p.shape.spines = static_cast<int>(number(s, "spines", name, "shape.", false));
  p.shape.spine_bandwidth = number(s, "spine_bandwidth_Bps", name, "shape.", false);
  if (p.shape.nodes < 1 || p.shape.ranks_per_node < 1 || p.shape.nics_per_node < 1)
    bad(name, "shape.nodes, shape.ranks_per_node and shape.nics_per_node must be at least 1");
  if (j.contains("intra")) {
    p.intra = parse_p2p(j["intra"], name, "intra");
    p.intra_bandwidth = number(j["intra"], "bandwidth_Bps", name, "intra.", false);
  }
  if (j.contains("inter")) {
    p.inter = parse_p2p(j["inter"], name, "inter");
    p.inter_bandwidth = number(j["inter"], "bandwidth_Bps", name, "inter.", false);
  }
  if (!p.intra && !p.inter) bad(name, "has neither \"intra\" nor \"inter\" point-to-point table");
  if (p.intra && p.intra_bandwidth == 0) p.intra_bandwidth = Profile::asymptotic_bandwidth(*p.intra);
  if (p.inter && p.inter_bandwidth == 0) p.inter_bandwidth = Profile::asymptotic_bandwidth(*p.inter);
  p.copy = parse_cost(member(j, "copy", name, ""), name, "copy");
  const json& r = member(j, "reduce", name, "");
  if (!r.is_object() || r.empty()) bad(name, "\"reduce\" must be an object with at least one table");
  for (auto it = r.begin(); it != r.end(); ++it) p.reduce[it.key()] = parse_cost(it.value(), name, "reduce." + it.key());
  p.created = text(j, "created");
  p.command = text(j, "command");
  return p;
}

Profile load_profile(const std::string& path) {
  std::string text;
  try {
    text = files::read_text(path);
  } catch (const std::runtime_error&) {
    bad(path, "cannot be read (missing?)");
  }
  return parse_profile(text, path);
}

std::string to_json(const Profile& p) {
  json j;
  j["format"] = kProfileFormat;
  j["version"] = p.version;
  j["machine"] = {{"host", p.machine.host}, {"cpu", p.machine.cpu}, {"cores", p.machine.cores},
                  {"description", p.machine.description}};
  j["transport"] = p.transport;
  j["shape"] = {{"nodes", p.shape.nodes}, {"ranks_per_node", p.shape.ranks_per_node},
                {"nics_per_node", p.shape.nics_per_node}, {"network", p.shape.network}};
  if (p.shape.nodes_per_leaf > 0) {
    j["shape"]["nodes_per_leaf"] = p.shape.nodes_per_leaf;
    j["shape"]["spines"] = p.shape.spines;
    j["shape"]["spine_bandwidth_Bps"] = p.shape.spine_bandwidth;
  }
  if (p.intra) {
    j["intra"] = p2p_json(*p.intra);
    j["intra"]["bandwidth_Bps"] = p.intra_bandwidth;
  }
  if (p.inter) {
    j["inter"] = p2p_json(*p.inter);
    j["inter"]["bandwidth_Bps"] = p.inter_bandwidth;
  }
  j["copy"] = cost_json(p.copy);
  j["reduce"] = json::object();
  for (const auto& [k, t] : p.reduce) j["reduce"][k] = cost_json(t);
  if (!p.created.empty()) j["created"] = p.created;
  if (!p.command.empty()) j["command"] = p.command;
  return j.dump(1) + "\n";
}

void save_profile(const Profile& p, const std::string& path) { files::write_text_atomically(path, to_json(p)); }

std::vector<std::string> mismatches(const Profile& p, const std::string& transport, int ranks_per_node,
                                    const std::string& host_cpu) {
  std::vector<std::string> out;
  auto family = [](const std::string& t) { return t.substr(0, t.find(' ')); };
  if (!transport.empty() && family(p.transport) != family(transport))
    out.push_back("it was measured with transport " + p.transport + ", this is " + transport);
  if (ranks_per_node > 1 && !p.intra)
    out.push_back("it has no table for messages inside a node, and this job has " + std::to_string(ranks_per_node) +
                  " ranks per node");
  if (ranks_per_node == 1 && !p.inter && p.shape.nodes == 1)
    out.push_back("it has no table for messages between nodes, and this job has one rank per node");
  if (!host_cpu.empty() && !p.machine.cpu.empty() && p.machine.cpu != host_cpu && p.transport != "synthetic")
    out.push_back("it was measured on a " + p.machine.cpu + ", this is a " + host_cpu);
  return out;
}

std::string host_cpu() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto c = line.find(':');
      if (c == std::string::npos) break;
      auto b = line.find_first_not_of(" \t", c + 1);
      return b == std::string::npos ? std::string() : line.substr(b);
    }
  return {};
}

DataSheet superpod_sheet() {
  DataSheet d;
  d.name = "DGX H100 SuperPOD (40 nodes x 8 H100)";
  d.network = "NVLink 4 900 GB/s per GPU inside a node; InfiniBand NDR 400 Gb/s per GPU, leaf-spine";
  d.nodes = 40;
  d.ranks_per_node = 8;
  d.nics_per_node = 8;  // one ConnectX-7 port per GPU
  d.nodes_per_leaf = 4;  // 32 ports to the nodes, 32 to the spines per leaf (non-blocking)
  d.spines = 8;          // 4 ports from each leaf to each spine
  d.intra_latency = 1.0e-6;
  d.intra_bandwidth = 900e9 / 2;  // 900 GB/s is both directions: 450 GB/s each way
  d.intra_overhead = 0.5e-6;
  d.intra_gap = 0.5e-6;
  d.inter_latency = 2.0e-6;
  d.inter_bandwidth = 400e9 / 8;  // 50 GB/s per port
  d.inter_overhead = 0.5e-6;
  d.inter_gap = 0.5e-6;
  d.spine_bandwidth = 4 * 400e9 / 8;  // a leaf's 4 ports to one spine, 50 GB/s each
  d.copy_bandwidth = 1.5e12;   // device memory
  d.reduce_bandwidth = 1.0e12;
  return d;
}

Profile synthetic_profile(const DataSheet& d) {
  Profile p;
  p.machine.description = d.name;
  p.transport = "synthetic";
  p.shape = {d.nodes, d.ranks_per_node, d.nics_per_node, d.network, d.nodes_per_leaf, d.spines, d.spine_bandwidth};
  auto table = [](double lat, double bw, double o, double gap0) {
    P2PTable t;
    for (std::uint64_t m = 1; m <= (std::uint64_t{1} << 30); m *= 4) {
      P2PPoint q;
      q.bytes = m;
      q.os = o;
      q.orecv = o;
      q.g = gap0 + static_cast<double>(m) / bw;
      q.L = lat;
      t.points.push_back(q);
    }
    return t;
  };
  if (d.ranks_per_node > 1) {
    p.intra = table(d.intra_latency, d.intra_bandwidth, d.intra_overhead, d.intra_gap);
    p.intra_bandwidth = d.intra_bandwidth;
  }
  if (d.nodes > 1) {
    p.inter = table(d.inter_latency, d.inter_bandwidth, d.inter_overhead, d.inter_gap);
    p.inter_bandwidth = d.inter_bandwidth;
  }
  auto rate = [](double bw) {
    CostTable t;
    t.points = {{1, 1.0 / bw}, {std::uint64_t{1} << 30, static_cast<double>(std::uint64_t{1} << 30) / bw}};
    return t;
  };
  p.copy = rate(d.copy_bandwidth);
  p.reduce["float:sum"] = rate(d.reduce_bandwidth);
  return p;
}

}  // namespace tandem::model
