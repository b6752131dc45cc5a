#include "report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "common/error.h"

namespace mathrl::report {

namespace {

// Colour-blind-safe qualitative palette (Okabe-Ito), cycled.
const char* const kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
  // A degenerate range (one value) widens so the point sits mid-axis.
  void widen() {
    if (empty()) lo = 0, hi = 1;
    if (lo == hi) {
      double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
      lo -= pad;
      hi += pad;
    }
  }
};

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(std::isfinite(lo) && std::isfinite(hi)) || hi <= lo || target < 1) return {};
  double raw = (hi - lo) / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  // The finest round step that gives at most target + 1.5 intervals.
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if ((hi - lo) / (m * mag) <= target + 1.5) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string format_tick(double v, double step) {
  char buf[32];
  if (step == 0) {
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }
  // Fixed notation in the usual range (2000, 0.25), %g beyond it (1e+07, 1e-05).
  bool fixed = std::abs(v) < 1e6 && (v == 0 || std::abs(v) >= 1e-4);
  for (int digits = fixed ? 0 : 1; digits <= 12; ++digits) {
    std::snprintf(buf, sizeof buf, fixed ? "%.*f" : "%.*g", digits, v);
    if (std::abs(std::strtod(buf, nullptr) - v) <= std::abs(step) * 1e-6) break;
  }
  if (std::strcmp(buf, "-0") == 0) return "0";
  return buf;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& o) {
  for (const auto& s : series) MATHRL_CHECK(s.x.size() == s.y.size(), "series '", s.name, "': x and y differ in length");
  Range xr, yr;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        xr.add(s.x[i]);
        yr.add(s.y[i]);
      }
  bool no_data = xr.empty();
  if (o.y_from_zero && !yr.empty()) yr.add(0);
  xr.widen();
  yr.widen();
  std::vector<double> xt = nice_ticks(xr.lo, xr.hi), yt = nice_ticks(yr.lo, yr.hi);
  // Steps and k are whole numbers: no ticks between them.
  bool whole_x = !no_data;
  for (const auto& s : series)
    for (double x : s.x)
      if (std::isfinite(x) && x != std::floor(x)) whole_x = false;
  if (whole_x && xt.size() > 1 && xt[1] - xt[0] < 1) xt = nice_ticks(xr.lo, xr.hi, std::max(1, static_cast<int>(xr.hi - xr.lo)));
  if (whole_x && xt.size() > 1 && xt[1] - xt[0] < 1) xt.clear();
  if (whole_x && xt.empty())
    for (double t = std::ceil(xr.lo); t <= xr.hi; ++t) xt.push_back(t);
  // The axes span the outer ticks so every tick lies on them.
  if (!xt.empty()) xr.lo = std::min(xr.lo, xt.front()), xr.hi = std::max(xr.hi, xt.back());
  if (!yt.empty()) {
    double step = yt.size() > 1 ? yt[1] - yt[0] : 1;
    if (yt.front() > yr.lo) yt.insert(yt.begin(), yt.front() - step);
    if (yt.back() < yr.hi) yt.push_back(yt.back() + step);
    yr.lo = yt.front(), yr.hi = yt.back();
  }

  // The legend column fits the longest name (about 7 px a character at 12 px); the image widens for it.
  size_t longest = 0;
  for (const auto& s : series) longest = std::max(longest, s.name.size());
  const double legend = series.empty() ? 0 : std::min(360.0, 40 + 7.0 * static_cast<double>(longest));
  const int width = o.width + static_cast<int>(std::max(0.0, legend - 150));
  const double left = 70, right = 20 + legend, top = 40, bottom = 55;
  const double W = width, H = o.height, pw = W - left - right, ph = H - top - bottom;
  auto px = [&](double x) { return left + (x - xr.lo) / (xr.hi - xr.lo) * pw; };
  auto py = [&](double y) { return top + ph - (y - yr.lo) / (yr.hi - yr.lo) * ph; };

  std::string svg = str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", width, "\" height=\"", o.height,
                        "\" viewBox=\"0 0 ", width, " ", o.height, "\" font-family=\"sans-serif\" font-size=\"12\">\n");
  svg += str("<rect x=\"0\" y=\"0\" width=\"", width, "\" height=\"", o.height, "\" fill=\"white\"/>\n");
  svg += str("<text x=\"", num(left + pw / 2), "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", xml_escape(o.title),
             "</text>\n");
  // Grid, ticks and tick labels.
  svg += "<g class=\"axes\" stroke=\"#ccc\" stroke-width=\"1\">\n";
  for (double t : xt) svg += str("<line x1=\"", num(px(t)), "\" y1=\"", num(top), "\" x2=\"", num(px(t)), "\" y2=\"", num(top + ph), "\"/>\n");
  for (double t : yt) svg += str("<line x1=\"", num(left), "\" y1=\"", num(py(t)), "\" x2=\"", num(left + pw), "\" y2=\"", num(py(t)), "\"/>\n");
  svg += "</g>\n";
  svg += str("<rect x=\"", num(left), "\" y=\"", num(top), "\" width=\"", num(pw), "\" height=\"", num(ph),
             "\" fill=\"none\" stroke=\"#333\"/>\n");
  double xstep = xt.size() > 1 ? xt[1] - xt[0] : 0, ystep = yt.size() > 1 ? yt[1] - yt[0] : 0;
  for (double t : xt)
    svg += str("<text class=\"xtick\" x=\"", num(px(t)), "\" y=\"", num(top + ph + 16), "\" text-anchor=\"middle\">",
               format_tick(t, xstep), "</text>\n");
  for (double t : yt)
    svg += str("<text class=\"ytick\" x=\"", num(left - 6), "\" y=\"", num(py(t) + 4), "\" text-anchor=\"end\">",
               format_tick(t, ystep), "</text>\n");
  svg += str("<text class=\"xlabel\" x=\"", num(left + pw / 2), "\" y=\"", num(H - 12), "\" text-anchor=\"middle\">",
             xml_escape(o.x_label), "</text>\n");
  svg += str("<text class=\"ylabel\" x=\"16\" y=\"", num(top + ph / 2), "\" text-anchor=\"middle\" transform=\"rotate(-90 16 ",
             num(top + ph / 2), ")\">", xml_escape(o.y_label), "</text>\n");
  if (no_data)
    svg += str("<text x=\"", num(left + pw / 2), "\" y=\"", num(top + ph / 2), "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n");

  // Series: one polyline per run of finite points; isolated points get a marker.
  for (size_t si = 0; si < series.size(); ++si) {
    const Series& s = series[si];
    const char* colour = kColours[si % (sizeof kColours / sizeof *kColours)];
    svg += str("<g class=\"series\" data-name=\"", xml_escape(s.name), "\" stroke=\"", colour, "\" fill=\"", colour, "\">\n");
    size_t i = 0;
    while (i < s.x.size()) {
      if (!(std::isfinite(s.x[i]) && std::isfinite(s.y[i]))) {
        ++i;
        continue;
      }
      size_t j = i;
      std::string points;
      while (j < s.x.size() && std::isfinite(s.x[j]) && std::isfinite(s.y[j])) {
        points += str(points.empty() ? "" : " ", num(px(s.x[j])), ",", num(py(s.y[j])));
        ++j;
      }
      if (j - i > 1) svg += str("<polyline fill=\"none\" stroke-width=\"2\" points=\"", points, "\"/>\n");
      for (size_t k = i; k < j; ++k)
        if (o.markers || j - i == 1)
          svg += str("<circle cx=\"", num(px(s.x[k])), "\" cy=\"", num(py(s.y[k])), "\" r=\"3\"/>\n");
      i = j;
    }
    svg += "</g>\n";
  }
  // Legend, right of the plot area.
  if (!series.empty()) {
    svg += "<g class=\"legend\">\n";
    for (size_t si = 0; si < series.size(); ++si) {
      const char* colour = kColours[si % (sizeof kColours / sizeof *kColours)];
      double y = top + 10 + 18.0 * static_cast<double>(si);
      double x = left + pw + 12;
      svg += str("<line x1=\"", num(x), "\" y1=\"", num(y), "\" x2=\"", num(x + 18), "\" y2=\"", num(y), "\" stroke=\"", colour,
                 "\" stroke-width=\"2\"/>\n");
      svg += str("<text x=\"", num(x + 24), "\" y=\"", num(y + 4), "\">", xml_escape(series[si].name), "</text>\n");
    }
    svg += "</g>\n";
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace mathrl::report
