// A small self-contained SVG line-plot writer for the benchmarks: one or more
// panels in a grid, each with linear or logarithmic axes, labelled ticks, a
// legend and several series (with optional error bars).  No external tool.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tandem::cli::plot {

enum class Scale { Linear, Log };
// How tick labels read: plain numbers, byte sizes (ticks at powers of two: 4K,
// 1M, ...) or times given in microseconds (10 µs, 1 ms, ...).
enum class Format { Number, Bytes, Microseconds };

struct Axis {
  std::string label;
  Scale scale = Scale::Log;
  Format format = Format::Number;
  std::optional<double> min, max;  // forced range, else from the data
};

struct Series {
  std::string name;
  std::vector<double> x, y;    // points with a non-finite (or, on a log axis, non-positive) value are gaps
  std::vector<double> lo, hi;  // optional error bars: empty, or one per point
  std::string color;           // CSS color; empty picks from the palette
  bool dashed = false;
  bool markers = true;
  bool lines = true;           // false: markers only (a scatter plot)
};

struct Panel {
  std::string title;
  Axis x, y;
  std::vector<Series> series;
};

struct Figure {
  std::string title;
  std::vector<Panel> panels;
  int columns = 0;  // 0: automatic
  int panel_width = 520, panel_height = 380;
};

// The figure as a standalone SVG document.
std::string render_svg(const Figure& figure);

// Writes render_svg(figure) to `file` (creating its directory); throws
// std::runtime_error when it cannot.
void write_svg(const Figure& figure, const std::filesystem::path& file);

// Tick label text for a value, as the axis format prints it (for tables too).
std::string format_value(double v, Format format);

}  // namespace tandem::cli::plot
