// Line plots as standalone SVG text: axes with "nice" ticks and labels, several series, a legend.
// Non-finite points break a line (NaN steps stay visible as gaps); a one-point series is a marker.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mathrl::report {

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length
};

struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 640, height = 400;
  bool markers = false;      // a dot at every point (always drawn for isolated points)
  bool y_from_zero = false;  // include 0 in the y range (accuracies, rates)
};

// Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart, about `target` of them).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// A tick label with the fewest digits that still shows `v` to within a millionth of the tick step.
std::string format_tick(double v, double step);
std::string xml_escape(std::string_view text);

std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& options);

}  // namespace mathrl::report
