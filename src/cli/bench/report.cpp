// Reporting for `tandem bench` and `tandem demo`: rounds combined, text tables, the JSON
// document and the SVG figures (cli/plot.hpp).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <thread>

#include "cli/bench/bench.hpp"

namespace tandem::cli::bench {
namespace fs = std::filesystem;

namespace {

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
  return buf;
}

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace

// ---- formatting --------------------------------------------------------------------

std::string fmt_time(double us) {
  if (!std::isfinite(us)) return "-";
  double a = std::abs(us);
  if (a >= 1e6) return fmt::format("{:.3g} s", us / 1e6);
  if (a >= 1e3) return fmt::format("{:.3g} ms", us / 1e3);
  return fmt::format("{:.3g} us", us);
}

std::string fmt_size(std::uint64_t b) { return plot::format_value(static_cast<double>(b), plot::Format::Bytes) + "B"; }

std::string fmt_ratio(double r) { return std::isfinite(r) ? fmt::format("{:.2f}", r) : "-"; }

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(header.size(), 0);
  auto width = [](const std::string& s) {  // count UTF-8 code points
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  for (std::size_t i = 0; i < header.size(); ++i) w[i] = width(header[i]);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (std::size_t i = 0; i < w.size(); ++i) {
      std::string cell = i < r.size() ? r[i] : "";
      s += std::string(w[i] - std::min(w[i], width(cell)) + (i ? 2 : 0), ' ') + cell;
    }
    fmt::print("{}\n", s);
  };
  line(header);
  std::size_t total = 0;
  for (auto x : w) total += x + 2;
  fmt::print("{}\n", std::string(total > 2 ? total - 2 : 0, '-'));
  for (const auto& r : rows) line(r);
}

// ---- combining rounds ----------------------------------------------------------------

double median_of(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double round3(double v) { return std::isfinite(v) ? std::round(v * 1000) / 1000 : v; }

json num(double v) { return std::isfinite(v) ? json(round3(v)) : json(nullptr); }

void Stat::finish() {
  if (rounds.empty()) return;
  median = median_of(rounds);
  lo = *std::min_element(rounds.begin(), rounds.end());
  hi = *std::max_element(rounds.begin(), rounds.end());
  best = lo;
  if (!mins.empty()) fastest = *std::min_element(mins.begin(), mins.end());
}

std::string Stat::cell() const {
  if (empty()) return "-";
  if (rounds.size() == 1) return fmt_time(median);
  double p = spread_pct();
  return p < 999.5 ? fmt::format("{} ±{:.0f}%", fmt_time(median), p) : fmt::format("{} ±>999%", fmt_time(median));
}

json Stat::to_json() const {
  if (empty()) return nullptr;
  json r = json::array();
  for (double v : rounds) r.push_back(num(v));
  return {{"median_us", num(median)},     {"best_us", num(best)},          {"min_round_us", num(lo)},
          {"max_round_us", num(hi)},      {"spread_pct", num(spread_pct())}, {"fastest_iteration_us", num(fastest)},
          {"rounds_us", r}};
}

// ---- the JSON document -----------------------------------------------------------------

json header(const Session& s, const std::string& bench) {
  json failures = json::object();
  for (const auto& [m, why] : s.failed) failures[m] = why;
  return {{"bench", bench},           {"tandem_version", "0.1.0"}, {"date", now_iso()},        {"host", hostname()},
          {"mpi", s.o.mpi},           {"where", s.o.where},        {"np", s.o.np},             {"rounds", s.o.rounds},
          {"modes", s.o.modes},       {"budget_s", s.o.budget},    {"commands", s.commands},   {"failures", failures},
          {"cores", std::thread::hardware_concurrency()},          {"loadavg_start", num(s.load_start)},
          {"loadavg_end", num(loadavg())}};
}

std::string mode_label(const Options& o, const std::string& mode) {
  return mode == "tandem" ? "tandem on " + o.mpi : o.mpi + " (plain)";
}

void save(const Outcome& out, const std::string& json_file, const std::string& plot_file) {
  if (!json_file.empty()) {
    fs::path p(json_file);
    std::error_code ec;
    if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
    std::ofstream f(p);
    f << out.doc.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write " + json_file);
    fmt::print("results: {}\n", fs::absolute(p).string());
  }
  if (!plot_file.empty()) {
    plot::write_svg(out.figure, plot_file);
    fmt::print("plot:    {}\n", fs::absolute(plot_file).string());
  }
}

std::string failures_message(const Outcome& out) {
  std::string why;
  for (const auto& [m, w] : out.doc["failures"].items()) why += "\n  " + w.get<std::string>();
  return "some runs failed:" + why;
}

// ---- plots -----------------------------------------------------------------------------

plot::Axis axis(std::string label, plot::Scale scale, plot::Format format) {
  plot::Axis a;
  a.label = std::move(label);
  a.scale = scale;
  a.format = format;
  return a;
}
plot::Axis size_axis() { return axis("message size (bytes)", plot::Scale::Log, plot::Format::Bytes); }

plot::Series series(std::string name, std::string color, bool dashed, bool markers) {
  plot::Series r;
  r.name = std::move(name);
  r.color = std::move(color);
  r.dashed = dashed;
  r.markers = markers;
  return r;
}

plot::Panel panel(std::string title, plot::Axis x, plot::Axis y) {
  plot::Panel p;
  p.title = std::move(title);
  p.x = std::move(x);
  p.y = std::move(y);
  return p;
}

}  // namespace tandem::cli::bench
