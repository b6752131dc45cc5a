#include <gtest/gtest.h>

#include "reward/math_equiv.h"

using mathrl::math_equal;

#define EQ(a, b) EXPECT_TRUE(math_equal(a, b)) << "'" << (a) << "' vs '" << (b) << "'"
#define NE(a, b) EXPECT_FALSE(math_equal(a, b)) << "'" << (a) << "' vs '" << (b) << "'"

TEST(MathEqual, LatexNormalization) {
  EQ("\\dfrac{1}{2}", "\\frac{1}{2}");
  EQ("\\tfrac{3}{4}", "\\frac34");
  EQ("\\left( 1, 2 \\right)", "(1,2)");
  EQ("10\\!000", "10000");
  EQ("$5$", "5");
  EQ("5.", "5");
  EQ("5\\text{ cm}", "5");
  EQ("12 \\text{ square units}", "12");
  EQ("\\text{Monday}", "Monday");
  EQ("30^\\circ", "30");
  EQ("30^{\\circ}", "30");
  EQ("30 degrees", "30");
  EQ("\\mbox{east}", "east");
  NE("5\\text{ cm}", "6");
}

TEST(MathEqual, Numbers) {
  EQ("1,000", "1000");
  EQ("1,234,567", "1234567");
  EQ("10%", "0.1");
  EQ("10\\%", "10");
  EQ("\\frac12", "0.5");
  EQ("\\frac{1}{2}", "0.5");
  EQ("-\\frac{3}{4}", "-0.75");
  EQ("\\frac{-3}{4}", "-0.75");
  EQ("3/4", "0.75");
  EQ("1.5e3", "1500");
  EQ("1.5\\times10^{3}", "1500");
  EQ("0.50", "0.5");
  EQ("+7", "7");
  EQ("0.3333", "\\frac{1}{3}");
  NE("0.5", "0.05");
  NE("0.33", "\\frac13");
  NE("123456789", "123456788");
  NE("1000", "1001");
  NE("10%", "0.01");
  NE("1,00", "100");
  EQ("\\$32,\\!348", "32348");
  EQ("10, \\!080", "10080");   // ",\\!" is a thousands separator whatever the spacing
  NE("58, 500", "58,500");      // a list of two numbers vs one number
  EQ("0.667", "\\frac23");      // three significant digits, rounded
  NE("0.666", "\\frac23");      // truncated is not rounded
  NE("2", "-2");
}

TEST(MathEqual, RadicalsAndPi) {
  EQ("2\\sqrt{3}", "\\sqrt{12}");
  EQ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}");
  EQ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt2}{2}");
  EQ("\\sqrt[3]{8}", "2");
  EQ("2\\pi", "6.28318");
  EQ("\\frac{\\pi}{2}", "\\pi/2");
  NE("2\\sqrt{3}", "3\\sqrt{2}");
  NE("\\pi", "3");
}

TEST(MathEqual, SetsTuplesIntervals) {
  EQ("\\{1,2\\}", "\\{2,1\\}");
  EQ("(1,2)", "(1, 2)");
  NE("(1,2)", "(2,1)");
  NE("[1,2)", "[1,2]");
  NE("(1,2)", "[1,2]");
  EQ("[1,2)", "[1, 2)");
  EQ("(-\\infty, 3]", "(-\\infty,3]");
  EQ("(-\\infty,0)\\cup(1,\\infty)", "(1,\\infty)\\cup(-\\infty,0)");
  NE("(-\\infty,0)\\cup(1,\\infty)", "(-\\infty,0]\\cup(1,\\infty)");
  EQ("1, 2", "2, 1");
  EQ("(\\frac12, 3)", "(0.5, 3)");
  NE("\\{1,2\\}", "\\{1,3\\}");
  NE("\\{1,2\\}", "\\{1,2,3\\}");
}

TEST(MathEqual, Equations) {
  EQ("x = 3", "3");
  EQ("3", "x=3");
  EQ("y = 2x + 3", "2x+3");
  EQ("k=\\frac{1}{2}", "0.5");
  NE("x = 3", "4");
  EQ("y=x+1", "y = 1 + x");
}

TEST(MathEqual, Matrices) {
  EQ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}");
  EQ("\\begin{pmatrix} \\frac12 \\\\ 2 \\end{pmatrix}", "\\begin{bmatrix} 0.5 \\\\ 2 \\end{bmatrix}");
  NE("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 4 & 3 \\end{pmatrix}");
  NE("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\\\ 3 \\end{pmatrix}");
}

TEST(MathEqual, MultipleChoice) {
  EQ("B", "(B)");
  EQ("B)", "B");
  EQ("(B)", "\\text{(B)}");
  NE("A", "B");
  NE("(A)", "B");
}

TEST(MathEqual, Symbolic) {
  EQ("x^2+2x+1", "(x+1)^2");
  NE("x^2", "x^3");
  EQ("\\frac{x}{2}", "0.5x");
  EQ("2(a+b)", "2a+2b");
  EQ("\\sin^2 x + \\cos^2 x", "1");
  EQ("\\ln(e^2)", "2");
  EQ("\\exp(0)", "1");
  EQ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}");
  EQ("x y", "yx");
  EQ("\\theta+1", "1+\\theta");
  NE("x+1", "x+2");
  NE("x", "y");
  NE("a_1+a_2", "2a_1");
}

TEST(MathEqual, TextAnswers) {
  EQ("\\text{Evelyn}", "Evelyn");
  EQ("evelyn", "Evelyn");
  NE("\\text{Monday}", "\\text{Tuesday}");
}

TEST(MathEqual, BoundedOnPathologicalInput) {
  NE(std::string(5000, '{'), std::string(5000, '{') + "1");
  NE("10^{10^{10}}", "10^{10^{10}}+1");
  // Too deep to parse: compares unequal rather than recursing without bound.
  NE(std::string(900, '(') + "1" + std::string(900, ')'), "2");
  NE("", "");
  NE("", "1");
}
