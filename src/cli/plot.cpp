// SVG line plots for the benchmarks (see plot.hpp).
#include "cli/plot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <stdexcept>

namespace tandem::cli::plot {
namespace {

const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string xml_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      default: r += c;
    }
  }
  return r;
}

// Compact number: up to 3 significant digits, no trailing zeros.
std::string compact(double v) {
  if (v == 0) return "0";
  std::string s = fmt::format("{:.3g}", v);
  if (s.find('e') != std::string::npos) {
    // 1e+06 -> 1e6
    auto e = s.find('e');
    std::string mant = s.substr(0, e), ex = s.substr(e + 1);
    int x = std::stoi(ex);
    return mant + "e" + std::to_string(x);
  }
  return s;
}

bool usable(double v, Scale s) { return std::isfinite(v) && (s == Scale::Linear || v > 0); }

struct Tick {
  double v;
  bool label;
};

// Ticks of a log axis in [lo, hi] (data units).
std::vector<Tick> log_ticks(double lo, double hi, Format f, std::vector<double>& minor) {
  std::vector<Tick> t;
  if (f == Format::Bytes) {
    int e0 = static_cast<int>(std::ceil(std::log2(lo) - 1e-9)), e1 = static_cast<int>(std::floor(std::log2(hi) + 1e-9));
    int n = e1 - e0 + 1, step = 1;
    while (n / step > 8) ++step;
    if (step > 1 && step % 2) ++step;  // even steps from an even exponent: 4, 64, 1K... (sizes are often powers of 4)
    int start = e0;
    if (step % 2 == 0 && (start % 2 != 0)) ++start;
    for (int e = e0; e <= e1; ++e) {
      bool lab = (e - start) % step == 0 && e >= start;
      t.push_back({std::ldexp(1.0, e), lab});
    }
    return t;
  }
  int d0 = static_cast<int>(std::floor(std::log10(lo) + 1e-9)), d1 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  int decades = d1 - d0;
  int step = 1;
  while (decades / step > 8) ++step;
  // Labelled mantissas: decades only, unless that leaves fewer than 3 labels on a short axis.
  auto in = [&](double v) { return v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9); };
  std::vector<int> labelled{1};
  if (decades <= 3) {
    for (const std::vector<int>& set : {std::vector<int>{1}, {1, 2, 5}, {1, 2, 3, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}}) {
      labelled = set;
      int count = 0;
      for (int d = d0; d <= d1; ++d)
        for (int m : set) count += in(m * std::pow(10.0, d));
      if (count >= 3) break;
    }
  }
  for (int d = d0; d <= d1; ++d) {
    double base = std::pow(10.0, d);
    for (int m = 1; m <= 9; ++m) {
      double v = m * base;
      if (!in(v)) continue;
      bool lab = std::find(labelled.begin(), labelled.end(), m) != labelled.end() && (m != 1 || (d - d0) % step == 0);
      if (m == 1) t.push_back({v, lab});
      else if (lab) t.push_back({v, true});
      else if (decades <= 6) minor.push_back(v);
    }
  }
  std::sort(t.begin(), t.end(), [](const Tick& a, const Tick& b) { return a.v < b.v; });
  return t;
}

std::vector<Tick> linear_ticks(double lo, double hi) {
  std::vector<Tick> t;
  double span = hi - lo;
  if (span <= 0) span = std::abs(hi) > 0 ? std::abs(hi) : 1;
  double raw = span / 6, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back({std::abs(v) < step * 1e-9 ? 0.0 : v, true});
  return t;
}

struct Mapper {
  Scale scale;
  double lo, hi;     // data range
  double p0, p1;     // pixel range
  double f(double v) const { return scale == Scale::Log ? std::log10(v) : v; }
  double operator()(double v) const { return p0 + (f(v) - f(lo)) / (f(hi) - f(lo)) * (p1 - p0); }
};

// Data range of an axis, padded a little, made non-empty.
std::pair<double, double> range_of(const Axis& a, const std::vector<double>& values) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values)
    if (usable(v, a.scale)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (!std::isfinite(lo)) {
    lo = a.scale == Scale::Log ? 1 : 0;
    hi = a.scale == Scale::Log ? 10 : 1;
  }
  if (a.scale == Scale::Log) {
    if (hi / lo < 1.5) {
      lo /= 1.5;
      hi *= 1.5;
    }
    double pad = std::pow(hi / lo, 0.04);
    lo /= pad;
    hi *= pad;
  } else {
    if (hi - lo <= 0) {
      double d = std::abs(hi) > 0 ? std::abs(hi) * 0.1 : 1;
      lo -= d;
      hi += d;
    }
    double pad = (hi - lo) * 0.05;
    bool nonneg = lo >= 0;
    lo -= pad;
    hi += pad;
    if (nonneg && lo < 0) lo = 0;
  }
  if (a.min && usable(*a.min, a.scale)) lo = *a.min;
  if (a.max && usable(*a.max, a.scale)) hi = *a.max;
  if (hi <= lo) hi = a.scale == Scale::Log ? lo * 10 : lo + 1;
  return {lo, hi};
}

void render_panel(std::string& o, const Panel& p, double ox, double oy, double w, double h, int id) {
  const double ml = 78, mr = 18, mt = 34, mb = 52;
  double x0 = ox + ml, x1 = ox + w - mr, y0 = oy + h - mb, y1 = oy + mt;

  std::vector<double> xs, ys;
  for (const auto& s : p.series) {
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
    ys.insert(ys.end(), s.lo.begin(), s.lo.end());
    ys.insert(ys.end(), s.hi.begin(), s.hi.end());
  }
  auto [xlo, xhi] = range_of(p.x, xs);
  auto [ylo, yhi] = range_of(p.y, ys);
  Mapper mx{p.x.scale, xlo, xhi, x0, x1}, my{p.y.scale, ylo, yhi, y0, y1};

  // Frame, grid and ticks.
  o += fmt::format("<g font-family=\"sans-serif\" font-size=\"11\">\n");
  o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
                   (x0 + x1) / 2, oy + 20, xml_escape(p.title));
  auto axis_ticks = [&](const Axis& a, double lo, double hi, std::vector<double>& minor) {
    return a.scale == Scale::Log ? log_ticks(lo, hi, a.format, minor) : linear_ticks(lo, hi);
  };
  std::vector<double> xminor, yminor;
  auto xt = axis_ticks(p.x, xlo, xhi, xminor);
  auto yt = axis_ticks(p.y, ylo, yhi, yminor);
  for (double v : yminor)
    o += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eeeeee\"/>\n", x0, x1, my(v), my(v));
  for (double v : xminor)
    o += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eeeeee\"/>\n", mx(v), mx(v), y0, y1);
  for (const auto& t : xt) {
    double x = mx(t.v);
    if (x < x0 - 0.5 || x > x1 + 0.5) continue;
    o += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\"/>\n", x, y0, y1,
                     t.label ? "#d9d9d9" : "#eeeeee");
    o += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#333\"/>\n", x, y0,
                     y0 + (t.label ? 5 : 3));
    if (t.label)
      o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x, y0 + 17,
                       xml_escape(format_value(t.v, p.x.format)));
  }
  for (const auto& t : yt) {
    double y = my(t.v);
    if (y > y0 + 0.5 || y < y1 - 0.5) continue;
    o += fmt::format("<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\"/>\n", x0, x1, y,
                     t.label ? "#d9d9d9" : "#eeeeee");
    o += fmt::format("<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#333\"/>\n", x0 - 5, x0, y);
    if (t.label)
      o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", x0 - 8, y + 4,
                       xml_escape(format_value(t.v, p.y.format)));
  }
  o += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" stroke=\"#333\"/>\n", x0,
                   y1, x1 - x0, y0 - y1);
  o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\n", (x0 + x1) / 2,
                   oy + h - 14, xml_escape(p.x.label));
  o += fmt::format("<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">{}</text>\n",
                   ox + 16, (y0 + y1) / 2, xml_escape(p.y.label));

  // Series, clipped to the plot area.
  o += fmt::format("<clipPath id=\"clip{}\"><rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"/></clipPath>\n", id,
                   x0, y1, x1 - x0, y0 - y1);
  o += fmt::format("<g clip-path=\"url(#clip{})\">\n", id);
  for (std::size_t si = 0; si < p.series.size(); ++si) {
    const auto& s = p.series[si];
    std::string color = s.color.empty() ? kPalette[si % std::size(kPalette)] : s.color;
    std::size_t n = std::min(s.x.size(), s.y.size());
    auto ok = [&](std::size_t i) { return usable(s.x[i], p.x.scale) && usable(s.y[i], p.y.scale); };
    std::string pts;
    auto flush = [&] {
      if (pts.empty()) return;
      o += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n", color,
                       s.dashed ? " stroke-dasharray=\"6,4\"" : "", pts);
      pts.clear();
    };
    for (std::size_t i = 0; i < n; ++i) {
      if (!ok(i)) {
        flush();
        continue;
      }
      if (s.lines) pts += fmt::format("{}{:.1f},{:.1f}", pts.empty() ? "" : " ", mx(s.x[i]), my(s.y[i]));
    }
    flush();
    for (std::size_t i = 0; i < n; ++i) {
      if (!ok(i)) continue;
      double x = mx(s.x[i]);
      if (i < s.lo.size() && i < s.hi.size() && usable(s.lo[i], p.y.scale) && usable(s.hi[i], p.y.scale)) {
        double a = my(s.lo[i]), b = my(s.hi[i]);
        o += fmt::format("<path d=\"M{0:.1f},{1:.1f}V{2:.1f}M{3:.1f},{1:.1f}H{4:.1f}M{3:.1f},{2:.1f}H{4:.1f}\" stroke=\"{5}\" "
                         "stroke-width=\"1.2\" fill=\"none\"/>\n",
                         x, a, b, x - 3, x + 3, color);
      }
      if (s.markers)
        o += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", x, my(s.y[i]), color);
    }
  }
  o += "</g>\n";

  // Legend, top left inside the plot area.
  if (!p.series.empty()) {
    double lw = 0;
    for (const auto& s : p.series) lw = std::max(lw, 6.5 * static_cast<double>(s.name.size()));
    double bw = lw + 44, lh = 16.0 * static_cast<double>(p.series.size()) + 8;
    // The corner whose box covers the fewest data points (lines sampled between points).
    std::vector<std::pair<double, double>> pts;
    for (const auto& s : p.series) {
      std::size_t n = std::min(s.x.size(), s.y.size());
      for (std::size_t i = 0; i < n; ++i) {
        if (!usable(s.x[i], p.x.scale) || !usable(s.y[i], p.y.scale)) continue;
        pts.emplace_back(mx(s.x[i]), my(s.y[i]));
        if (i + 1 < n && usable(s.x[i + 1], p.x.scale) && usable(s.y[i + 1], p.y.scale))
          for (int k = 1; k < 16; ++k) {
            double f = k / 16.0;
            pts.emplace_back(mx(s.x[i]) + f * (mx(s.x[i + 1]) - mx(s.x[i])), my(s.y[i]) + f * (my(s.y[i + 1]) - my(s.y[i])));
          }
      }
    }
    const std::pair<double, double> corners[] = {
        {x0 + 8, y1 + 8}, {x1 - 8 - bw, y1 + 8}, {x1 - 8 - bw, y0 - 8 - lh}, {x0 + 8, y0 - 8 - lh}};
    double lx = corners[0].first, ly = corners[0].second;
    std::size_t best = std::numeric_limits<std::size_t>::max();
    for (const auto& [cx, cy] : corners) {
      std::size_t hits = 0;
      for (const auto& [px, py] : pts)
        if (px >= cx - 4 && px <= cx + bw + 4 && py >= cy - 4 && py <= cy + lh + 4) ++hits;
      if (hits < best) {
        best = hits;
        lx = cx;
        ly = cy;
      }
    }
    o += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"white\" fill-opacity=\"0.85\" "
                     "stroke=\"#bbbbbb\"/>\n",
                     lx, ly, bw, lh);
    for (std::size_t si = 0; si < p.series.size(); ++si) {
      const auto& s = p.series[si];
      std::string color = s.color.empty() ? kPalette[si % std::size(kPalette)] : s.color;
      double yy = ly + 14 + 16.0 * static_cast<double>(si);
      o += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", lx + 6,
                       lx + 30, yy - 4, yy - 4, color, s.dashed ? " stroke-dasharray=\"6,4\"" : "");
      o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", lx + 36, yy, xml_escape(s.name));
    }
  }
  o += "</g>\n";
}

}  // namespace

std::string format_value(double v, Format f) {
  if (!std::isfinite(v)) return "-";
  switch (f) {
    case Format::Bytes: {
      const char* units[] = {"", "K", "M", "G", "T"};
      int u = 0;
      double x = v;
      while (std::abs(x) >= 1024 && u < 4) {
        x /= 1024;
        ++u;
      }
      return compact(x) + units[u];
    }
    case Format::Microseconds: {
      double a = std::abs(v);
      if (a >= 1e6) return compact(v / 1e6) + " s";
      if (a >= 1e3) return compact(v / 1e3) + " ms";
      if (a >= 1 || a == 0) return compact(v) + " µs";
      return compact(v * 1e3) + " ns";
    }
    case Format::Number:
    default: return compact(v);
  }
}

std::string render_svg(const Figure& fig) {
  std::size_t n = std::max<std::size_t>(fig.panels.size(), 1);
  std::size_t cols = fig.columns > 0 ? static_cast<std::size_t>(fig.columns) : (n <= 3 ? n : (n == 4 ? 2 : 3));
  std::size_t rows = (n + cols - 1) / cols;
  double top = fig.title.empty() ? 0 : 34;
  double W = static_cast<double>(cols * static_cast<std::size_t>(fig.panel_width));
  double H = top + static_cast<double>(rows * static_cast<std::size_t>(fig.panel_height));
  std::string o;
  o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\">\n",
                   W, H);
  o += fmt::format("<rect width=\"{:.0f}\" height=\"{:.0f}\" fill=\"white\"/>\n", W, H);
  if (!fig.title.empty())
    o += fmt::format("<text x=\"{:.1f}\" y=\"24\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"16\" "
                     "font-weight=\"bold\">{}</text>\n",
                     W / 2, xml_escape(fig.title));
  for (std::size_t i = 0; i < fig.panels.size(); ++i) {
    double ox = static_cast<double>((i % cols) * static_cast<std::size_t>(fig.panel_width));
    double oy = top + static_cast<double>((i / cols) * static_cast<std::size_t>(fig.panel_height));
    render_panel(o, fig.panels[i], ox, oy, fig.panel_width, fig.panel_height, static_cast<int>(i));
  }
  o += "</svg>\n";
  return o;
}

void write_svg(const Figure& fig, const std::filesystem::path& file) {
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  std::ofstream out(file);
  if (!out) throw std::runtime_error("cannot write " + file.string());
  out << render_svg(fig);
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

}  // namespace tandem::cli::plot
