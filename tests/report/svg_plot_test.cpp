// SVG line plots: well-formed markup, every series and label present, and the edge cases (NaN
// gaps, empty series, one point) rendered without breaking the document.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "report/svg_plot.h"

namespace mathrl::report {
namespace {

// Checks that tags nest and close, attributes are quoted and '&' only starts an entity; returns
// the element names in document order (or throws with the reason).
std::vector<std::string> check_xml(const std::string& s) {
  std::vector<std::string> stack, names;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '&') {
      size_t semi = s.find(';', i);
      std::string ent = semi == std::string::npos ? "" : s.substr(i, semi - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;")
        throw std::runtime_error("bare & at " + std::to_string(i));
      i = semi + 1;
      continue;
    }
    if (s[i] == '>') throw std::runtime_error("bare > at " + std::to_string(i));
    if (s[i] != '<') {
      ++i;
      continue;
    }
    size_t end = i + 1;
    char quote = 0;
    while (end < s.size() && (quote || s[end] != '>')) {
      if (quote && s[end] == quote) quote = 0;
      else if (!quote && (s[end] == '"' || s[end] == '\'')) quote = s[end];
      else if (!quote && s[end] == '<') throw std::runtime_error("< inside a tag at " + std::to_string(end));
      ++end;
    }
    if (end >= s.size()) throw std::runtime_error("unterminated tag");
    std::string tag = s.substr(i + 1, end - i - 1);
    if (tag.empty()) throw std::runtime_error("empty tag");
    if (tag[0] == '/') {
      std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) throw std::runtime_error("mismatched </" + name + ">");
      stack.pop_back();
    } else {
      bool self_closing = tag.back() == '/';
      std::string name = tag.substr(0, tag.find_first_of(" /\n"));
      names.push_back(name);
      if (!self_closing) stack.push_back(name);
    }
    i = end + 1;
  }
  if (!stack.empty()) throw std::runtime_error("unclosed <" + stack.back() + ">");
  return names;
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(SvgPlot, SeriesLabelsAndLegend) {
  Series a{"reward <mean>", {1, 2, 3, 4}, {0.1, 0.4, 0.3, 0.8}};
  Series b{"kl & co", {1, 2, 3, 4}, {0.0, 0.01, 0.02, 0.05}};
  PlotOptions o;
  o.title = "RL \"metrics\"";
  o.x_label = "step";
  o.y_label = "value";
  std::string svg = svg_line_plot({a, b}, o);
  auto names = check_xml(svg);
  EXPECT_EQ(names.front(), "svg");
  EXPECT_NE(svg.find("data-name=\"reward &lt;mean&gt;\""), std::string::npos);
  EXPECT_NE(svg.find(">kl &amp; co</text>"), std::string::npos);  // legend entry
  EXPECT_NE(svg.find(">RL &quot;metrics&quot;</text>"), std::string::npos);
  EXPECT_NE(svg.find("class=\"xlabel\""), std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_NE(svg.find(">value</text>"), std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 2);
  EXPECT_EQ(count(svg, "<polyline fill=\"none\" stroke-width=\"2\" points=\""), 2);
  // Four points per line.
  std::smatch m;
  std::string rest = svg;
  int lines = 0;
  std::regex pts("points=\"([^\"]*)\"");
  while (std::regex_search(rest, m, pts)) {
    EXPECT_EQ(count(m[1].str(), ",") , 4);
    rest = m.suffix();
    ++lines;
  }
  EXPECT_EQ(lines, 2);
  EXPECT_GE(count(svg, "class=\"xtick\""), 3);
  EXPECT_GE(count(svg, "class=\"ytick\""), 3);
}

TEST(SvgPlot, TicksCoverTheRangeWithRoundSteps) {
  auto t = nice_ticks(0.013, 0.87);
  ASSERT_GE(t.size(), 3u);
  double step = t[1] - t[0];
  EXPECT_NEAR(step, 0.2, 1e-12);
  EXPECT_LE(t.front(), 0.2 + 1e-12);
  EXPECT_GE(t.back(), 0.8 - 1e-12);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, 1e-9);
  auto big = nice_ticks(0, 12000);
  EXPECT_NEAR(big[1] - big[0], 2000, 1e-9);
  EXPECT_EQ(format_tick(0.30000000000000004, 0.1), "0.3");
  EXPECT_EQ(format_tick(2000, 2000), "2000");
  EXPECT_EQ(format_tick(1500, 500), "1500");
  EXPECT_EQ(format_tick(0.25, 0.25), "0.25");
  EXPECT_EQ(format_tick(-0.0, 0.5), "0");
  EXPECT_EQ(format_tick(2e7, 1e7), "2e+07");
  EXPECT_EQ(format_tick(125, 25), "125");
  EXPECT_TRUE(nice_ticks(1, 1).empty());
  EXPECT_TRUE(nice_ticks(NAN, 1).empty());
}

TEST(SvgPlot, NanBreaksTheLine) {
  Series s{"loss", {1, 2, 3, 4, 5, 6}, {3, 2, NAN, 1.5, 1.2, INFINITY}};
  std::string svg = svg_line_plot({s}, {});
  check_xml(svg);
  EXPECT_EQ(count(svg, "<polyline"), 2);  // 1-2, then 4-5; inf dropped
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(SvgPlot, EmptyAndSinglePoint) {
  std::string empty = svg_line_plot({Series{"nothing", {}, {}}}, {"empty", "x", "y"});
  check_xml(empty);
  EXPECT_NE(empty.find("no data"), std::string::npos);
  EXPECT_NE(empty.find(">nothing</text>"), std::string::npos);
  std::string none = svg_line_plot({}, {});
  check_xml(none);

  std::string one = svg_line_plot({Series{"greedy", {4}, {0.25}}}, {"one", "k", "acc"});
  check_xml(one);
  EXPECT_EQ(count(one, "<polyline"), 0);
  EXPECT_EQ(count(one, "<circle"), 1);
  EXPECT_EQ(one.find("nan"), std::string::npos);
  // The lone point lies inside the plot area (x 70..470 for the default 640 width, legend at right).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(one, m, std::regex("<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"")));
  double cx = std::stod(m[1]), cy = std::stod(m[2]);
  EXPECT_GT(cx, 70);
  EXPECT_LT(cx, 470);
  EXPECT_GT(cy, 40);
  EXPECT_LT(cy, 345);
}

TEST(SvgPlot, WholeNumberAxisAndWideLegend) {
  Series s{"completion/length_mean_over_the_batch", {1, 2, 3}, {50, 59, 58}};
  std::string svg = svg_line_plot({s}, {});
  check_xml(svg);
  std::regex xtick("class=\"xtick\"[^>]*>([^<]*)<");
  int ticks = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), xtick); it != std::sregex_iterator(); ++it, ++ticks)
    EXPECT_EQ((*it)[1].str().find('.'), std::string::npos) << (*it)[1];
  EXPECT_EQ(ticks, 3);
  // The image widens so the legend entry fits: 40 + 7 px per character beside the plot.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, std::regex("<svg [^>]*width=\"(\\d+)\"")));
  EXPECT_GE(std::stoi(m[1]), 640 + static_cast<int>(40 + 7 * s.name.size()) - 150);
}

TEST(SvgPlot, MismatchedSeriesIsAnError) {
  EXPECT_THROW(svg_line_plot({Series{"bad", {1, 2}, {1}}}, {}), std::exception);
}

}  // namespace
}  // namespace mathrl::report
